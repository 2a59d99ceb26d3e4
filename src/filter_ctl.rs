//! Filter control: turns the configured filters into decisions in the kernel's control maps,
//! at start, when a process execs, and on reload (SIGHUP or a change of the config file).
//!
//! Modes: no filters and no `--pid`: every process is captured and the maps stay empty.
//! `--pid`/`pids`: exactly those processes, plus the children they fork (a child inherits
//! its parent's decision in the kernel). Filters: every process in /proc is decided at
//! start, a process that execs is decided again within milliseconds (until then
//! `undecided` applies), and when the filters only use per-cgroup properties every cgroup
//! is decided too, so the kernel decides a new process by its cgroup at once.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime};

use wirelens_filters::{Decision, FilterConfig, Filters, Undecided};
use wirelens_protocols::Protocol;

use crate::capture::control::{ControlMaps, Settings};
use crate::capture::{CaptureError, ExecEvent};
use crate::procfs;

/// Most cgroups decided one by one.
const MAX_CGROUPS: usize = 16_384;

/// What is selected: built from the configuration, checked before anything changes.
#[derive(Clone, Debug)]
pub struct Policy {
    pub mode: Mode,
    pub cfg: FilterConfig,
    pub protocols: Vec<Protocol>,
}

#[derive(Clone, Debug)]
pub enum Mode {
    All,
    Pids(HashSet<u32>),
    Select(Box<Filters>),
}

impl Policy {
    /// Checks and compiles; errors name the field.
    pub fn build(pids: &[u32], cfg: &FilterConfig) -> Result<Policy, String> {
        let protocols = match &cfg.protocols {
            None => Protocol::ALL.to_vec(),
            Some(names) => names
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    Protocol::from_name(n).ok_or_else(|| {
                        format!(
                            "filters.protocols[{i}]: unknown protocol `{n}` \
                             (known: http, mysql, pgsql, redis, dns)"
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let filters = Filters::build(cfg, &|p| procfs::ns_inode(std::path::Path::new(p)))
            .map_err(|e| e.to_string())?;
        let mode = if !pids.is_empty() {
            Mode::Pids(pids.iter().copied().collect())
        } else if filters.keeps_everything() {
            Mode::All
        } else {
            Mode::Select(Box::new(filters))
        };
        Ok(Policy {
            mode,
            cfg: cfg.clone(),
            protocols,
        })
    }

    pub fn settings(&self) -> Settings {
        let (filter, undecided_drop, exec_redecide) = match &self.mode {
            Mode::All => (false, false, false),
            Mode::Pids(_) => (true, true, false),
            Mode::Select(_) => (true, self.cfg.undecided == Undecided::Drop, true),
        };
        Settings {
            proto_mask: self.protocols.iter().fold(0, |m, p| m | 1 << (*p as u32)),
            filter,
            undecided_drop,
            drop_loopback: self.cfg.drop_loopback,
            port_include: !self.cfg.ports.include.is_empty(),
            exec_redecide,
        }
    }

    fn decide(&self, pid: u32) -> Option<bool> {
        match &self.mode {
            Mode::All => None,
            Mode::Pids(p) => Some(p.contains(&pid)),
            Mode::Select(f) => {
                procfs::subject(pid, f.needs_env()).map(|s| f.decide(&s) == Decision::Keep)
            }
        }
    }
}

/// What one application of a policy did, for the log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub kept: usize,
    pub dropped: usize,
    pub cgroups: usize,
}

/// Writes a policy into the control maps.
pub fn apply(maps: &ControlMaps, policy: &Policy) -> Result<Applied, CaptureError> {
    let mut done = Applied::default();
    maps.set_ports(&policy.cfg.ports.include, &policy.cfg.ports.exclude)?;
    // Decisions before settings: when filtering turns on, every known process is decided.
    let before = maps.decided_tgids();
    let mut seen = HashSet::new();
    match &policy.mode {
        Mode::All => {}
        Mode::Pids(pids) => {
            for pid in pids {
                maps.decide_tgid(*pid, true)?;
                seen.insert(*pid);
                done.kept += 1;
            }
        }
        Mode::Select(_) => {
            for pid in procfs::pids() {
                if let Some(keep) = policy.decide(pid) {
                    maps.decide_tgid(pid, keep)?;
                    seen.insert(pid);
                    if keep {
                        done.kept += 1;
                    } else {
                        done.dropped += 1;
                    }
                }
            }
        }
    }
    for gone in before.difference(&seen) {
        maps.forget_tgid(*gone);
    }
    let mut cgroups = Vec::new();
    if let (Mode::Select(f), Some(root)) = (&policy.mode, procfs::cgroup2_root()) {
        if f.per_cgroup() {
            for (path, id) in procfs::cgroups(&root, MAX_CGROUPS) {
                let mut s = wirelens_filters::Subject {
                    cgroup: path,
                    ..Default::default()
                };
                crate::k8s::fill_subject_for_cgroup(&s.cgroup.clone(), &mut s);
                cgroups.push((id, f.decide(&s) == Decision::Keep));
            }
        }
    }
    maps.set_cgroups(&cgroups)?;
    done.cgroups = cgroups.len();
    maps.write_settings(&policy.settings())?;
    Ok(done)
}

/// Messages to the control thread.
pub enum Msg {
    Exec(ExecEvent),
    Reload,
}

/// Rebuilds the policy from the configuration's current state (the file and the flags).
pub type Loader = Box<dyn Fn() -> Result<Policy, String> + Send>;

/// The control thread: decides processes that exec, and reloads on request or when the
/// configuration file changes. Ends when every sender is gone.
pub fn run(
    maps: ControlMaps,
    mut policy: Policy,
    rx: Receiver<Msg>,
    watch: Option<PathBuf>,
    load: Loader,
) {
    let mtime = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut seen: Option<SystemTime> = watch.as_ref().and_then(mtime);
    let mut last_check = Instant::now();
    let mut k8s_seen = crate::k8s::filter_generation();
    loop {
        let msg = match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut reload = false;
        match msg {
            Some(Msg::Exec(ev)) => {
                crate::k8s::forget_pid(ev.tgid);
                if let Some(keep) = policy.decide(ev.tgid) {
                    if let Err(e) = maps.decide_tgid(ev.tgid, keep) {
                        tracing::warn!(pid = ev.tgid, error = %e, "could not record a decision");
                    }
                    let now = crate::capture::decode::clock_ns(libc::CLOCK_REALTIME);
                    tracing::debug!(
                        pid = ev.tgid,
                        keep,
                        after_exec_us = now.saturating_sub(ev.ts_ns) / 1000,
                        "process decided"
                    );
                }
            }
            Some(Msg::Reload) => reload = true,
            None => {}
        }
        if let Some(path) = &watch {
            if last_check.elapsed() >= Duration::from_millis(500) {
                last_check = Instant::now();
                let now = mtime(path);
                if now != seen {
                    seen = now;
                    reload = true;
                }
            }
        }
        // Pods came, went or changed, or a namespace's labels did: decide processes and
        // cgroups again with the same policy (only filters can name pods).
        let k8s_now = crate::k8s::filter_generation();
        if k8s_now != k8s_seen {
            k8s_seen = k8s_now;
            if matches!(policy.mode, Mode::Select(_)) && !reload {
                match apply(&maps, &policy) {
                    Ok(done) => tracing::debug!(
                        kept = done.kept,
                        dropped = done.dropped,
                        cgroups = done.cgroups,
                        "pods or namespace labels changed; filters applied again"
                    ),
                    Err(e) => tracing::warn!(
                        error = %e,
                        "applying the filters after a pod or namespace change"
                    ),
                }
            }
        }
        if reload {
            match load() {
                Ok(next) => match apply(&maps, &next) {
                    Ok(done) => {
                        tracing::info!(
                            mode = mode_name(&next.mode),
                            kept = done.kept,
                            dropped = done.dropped,
                            cgroups = done.cgroups,
                            protocols = ?next.protocols,
                            "configuration reloaded"
                        );
                        policy = next;
                    }
                    Err(e) => tracing::error!(error = %e, "applying the reloaded configuration"),
                },
                Err(e) => tracing::error!(
                    error = %e,
                    "configuration refused; the previous one stays in force"
                ),
            }
        }
    }
}

pub fn mode_name(m: &Mode) -> &'static str {
    match m {
        Mode::All => "all",
        Mode::Pids(_) => "pids",
        Mode::Select(_) => "filters",
    }
}
