//! What the host must offer before the agent loads anything, and `wirelens check`.

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};

use crate::capture::skel::WirelensSkelBuilder;
use crate::capture::sys;

/// Syscall tracepoints the programs attach to (`events/syscalls/NAME` in tracefs): the data
/// calls at their exit alone, connect at both ends, accept at exit, close at enter.
pub const TRACEPOINTS: &[&str] = &[
    "sys_exit_read",
    "sys_exit_write",
    "sys_exit_readv",
    "sys_exit_writev",
    "sys_exit_sendto",
    "sys_exit_recvfrom",
    "sys_exit_sendmsg",
    "sys_exit_recvmsg",
    "sys_exit_sendmmsg",
    "sys_exit_recvmmsg",
    "sys_exit_sendfile64",
    "sys_enter_connect",
    "sys_exit_connect",
    "sys_exit_accept",
    "sys_exit_accept4",
    "sys_enter_close",
];

/// Fails with what is missing when this process may not load BPF programs.
pub fn require_privileges() -> anyhow::Result<()> {
    let missing = missing_privileges();
    if missing.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "insufficient privileges: missing {}; run as root, or grant CAP_BPF and CAP_PERFMON \
         (CAP_SYS_ADMIN on kernels before 5.8) and CAP_DAC_READ_SEARCH to read other \
         processes' /proc entries",
        missing.join(" and ")
    )
}

/// Names of the capabilities this process lacks to load and attach the programs.
pub fn missing_privileges() -> Vec<&'static str> {
    let caps = sys::effective_caps();
    if sys::has_cap(caps, sys::CAP_SYS_ADMIN) {
        return Vec::new();
    }
    let mut missing = Vec::new();
    if !sys::has_cap(caps, sys::CAP_BPF) {
        missing.push("CAP_BPF");
    }
    if !sys::has_cap(caps, sys::CAP_PERFMON) {
        missing.push("CAP_PERFMON");
    }
    missing
}

struct Check {
    name: String,
    result: Result<String, String>,
}

/// `wirelens check`: every requirement, each with what to do when missing. Returns whether
/// the agent can run here.
pub fn check() -> bool {
    let mut checks = Vec::new();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    checks.push(Check {
        name: "kernel".into(),
        result: Ok(kernel),
    });
    checks.push(Check {
        name: "BTF".into(),
        result: if Path::new(sys::BTF).exists() {
            Ok(sys::BTF.into())
        } else {
            Err(format!(
                "{} is missing: use a kernel built with CONFIG_DEBUG_INFO_BTF=y",
                sys::BTF
            ))
        },
    });
    let missing = missing_privileges();
    checks.push(Check {
        name: "privileges".into(),
        result: if missing.is_empty() {
            Ok("root or CAP_BPF+CAP_PERFMON".into())
        } else {
            Err(format!(
                "missing {}: run as root or grant CAP_BPF and CAP_PERFMON",
                missing.join(" and ")
            ))
        },
    });
    let tracefs = sys::ensure_tracefs();
    checks.push(Check {
        name: "tracefs".into(),
        result: tracefs.clone().map(|_| sys::TRACEFS.to_string()),
    });
    if tracefs.is_ok() {
        let absent: Vec<&str> = TRACEPOINTS
            .iter()
            .copied()
            .filter(|tp| {
                !Path::new(sys::TRACEFS)
                    .join("events/syscalls")
                    .join(tp)
                    .is_dir()
            })
            .collect();
        checks.push(Check {
            name: "syscall tracepoints".into(),
            result: if absent.is_empty() {
                Ok(format!("{} present", TRACEPOINTS.len()))
            } else {
                Err(format!(
                    "missing {}: the kernel needs CONFIG_FTRACE_SYSCALLS=y",
                    absent.join(", ")
                ))
            },
        });
    }
    if missing.is_empty() && tracefs.is_ok() {
        match load_and_attach() {
            Ok((detail, verified)) => {
                checks.push(Check {
                    name: "load and attach".into(),
                    result: Ok(detail),
                });
                checks.push(Check {
                    name: "verifier headroom".into(),
                    result: Ok(headroom(&verified)),
                });
            }
            Err(what) => checks.push(Check {
                name: "load and attach".into(),
                result: Err(what),
            }),
        }
    }
    let mut ok = true;
    for c in &checks {
        match &c.result {
            Ok(detail) => println!("ok    {:<20} {detail}", c.name),
            Err(what) => {
                ok = false;
                println!("FAIL  {:<20} {what}", c.name)
            }
        }
    }
    println!(
        "{}",
        if ok {
            "wirelens can run on this host"
        } else {
            "wirelens cannot run on this host until the failures above are fixed"
        }
    );
    ok
}

/// The verifier's limit on the instructions it processes for one program
/// (`BPF_COMPLEXITY_LIMIT_INSNS`): past it, loading fails with E2BIG.
pub const VERIFIER_LIMIT: u32 = 1_000_000;

/// Instructions the verifier processed for a loaded program (`verified_insns` of its
/// `bpf_prog_info`, kernel 5.16 and later); 0 where the kernel does not say, or the query
/// fails (the program loaded either way).
fn verified_insns(prog: &libbpf_rs::ProgramMut<'_>) -> u32 {
    use libbpf_rs::libbpf_sys::{bpf_prog_get_info_by_fd, bpf_prog_info};
    let mut info = bpf_prog_info::default();
    let mut len = std::mem::size_of::<bpf_prog_info>() as u32;
    // SAFETY: `info` is a zeroed bpf_prog_info of `len` bytes with no array pointers set, so
    // the kernel writes only its scalar fields; the fd belongs to the loaded program.
    let rc = unsafe { bpf_prog_get_info_by_fd(prog.as_fd().as_raw_fd(), &mut info, &mut len) };
    if rc == 0 {
        info.verified_insns
    } else {
        0
    }
}

/// The `verifier headroom` line: the program closest to the verifier's limit.
fn headroom(verified: &[(String, u32)]) -> String {
    match verified.iter().max_by_key(|(_, n)| *n) {
        Some((name, n)) if *n > 0 => format!(
            "largest {name}: {n} of {VERIFIER_LIMIT} instructions processed ({:.1} %)",
            f64::from(*n) * 100.0 / f64::from(VERIFIER_LIMIT)
        ),
        _ => "not reported (kernels give verified_insns from 5.16 on)".into(),
    }
}

/// Loads the programs (ring buffer included) and attaches each once, then detaches. Returns
/// what was done and, per program, the instructions the verifier processed.
fn load_and_attach() -> Result<(String, Vec<(String, u32)>), String> {
    let mut object = MaybeUninit::uninit();
    let open = WirelensSkelBuilder::default()
        .open(&mut object)
        .map_err(|e| format!("opening the BPF object: {e}"))?;
    let skel = open
        .load()
        .map_err(|e| format!("loading (verifier or ring buffer): {e}"))?;
    let mut links = Vec::new();
    let mut verified = Vec::new();
    for prog in skel.object().progs_mut() {
        let name = prog.name().to_string_lossy().into_owned();
        verified.push((name.clone(), verified_insns(&prog)));
        links.push(
            prog.attach()
                .map_err(|e| format!("attaching {name}: {e}"))?,
        );
    }
    Ok((
        format!(
            "{} programs attached and detached, ring buffer created",
            links.len()
        ),
        verified,
    ))
}

#[cfg(test)]
mod tests {
    use super::TRACEPOINTS;

    /// `wirelens check` looks for exactly the syscall tracepoints the programs attach to.
    #[test]
    fn checked_tracepoints_are_the_programs_ones() {
        let source = include_str!("../bpf/wirelens.bpf.c");
        let prefix = "SEC(\"tracepoint/syscalls/";
        let mut attached: Vec<&str> = source
            .lines()
            .filter_map(|l| l.trim().strip_prefix(prefix))
            .filter_map(|rest| rest.split('"').next())
            .collect();
        let mut checked = TRACEPOINTS.to_vec();
        attached.sort_unstable();
        checked.sort_unstable();
        assert!(!attached.is_empty());
        assert_eq!(checked, attached);
    }
}
