//! The kernel's control maps, seen from user space: settings, per-process and per-cgroup
//! decisions, port rules. Changing them changes what the running programs capture; the
//! programs are never reloaded.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use libbpf_rs::{MapCore, MapFlags, MapHandle};

use super::skel::types::{wl_decision, wl_port_rule, wl_settings};
use super::CaptureError;

/// Settings the kernel reads on every call (the `settings` map).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// Bit (1 << protocol code) per protocol to infer.
    pub proto_mask: u32,
    /// Decide processes by the tgid and cgroup maps (else capture every process).
    pub filter: bool,
    /// A process in neither map is dropped.
    pub undecided_drop: bool,
    pub drop_loopback: bool,
    /// Only connections with a port marked include.
    pub port_include: bool,
    /// exec clears a process's decision and sends an exec event.
    pub exec_redecide: bool,
}

/// Handles on the control maps; cheap to clone (duplicated fds), usable from any thread.
#[derive(Debug)]
pub struct ControlMaps {
    settings: MapHandle,
    tgid_filter: MapHandle,
    cgroup_filter: MapHandle,
    port_filter: MapHandle,
    filter_gen: MapHandle,
}

/// The next user-space filter generation. Values are never written twice (one counter for
/// every handle of the process), so a thread's verdict stamped with a generation was read
/// from maps at least as new as the change that wrote it.
static NEXT_GEN: AtomicU64 = AtomicU64::new(1);

fn map_err(what: &'static str) -> impl FnOnce(libbpf_rs::Error) -> CaptureError {
    move |source| CaptureError::Map { what, source }
}

fn decision(keep: bool) -> u8 {
    if keep {
        wl_decision::WL_KEEP.0 as u8
    } else {
        wl_decision::WL_DROP.0 as u8
    }
}

impl ControlMaps {
    pub(super) fn new(maps: &super::skel::WirelensMaps<'_>) -> Result<ControlMaps, CaptureError> {
        Ok(ControlMaps {
            settings: MapHandle::try_from(&maps.settings).map_err(map_err("settings"))?,
            tgid_filter: MapHandle::try_from(&maps.tgid_filter).map_err(map_err("tgid_filter"))?,
            cgroup_filter: MapHandle::try_from(&maps.cgroup_filter)
                .map_err(map_err("cgroup_filter"))?,
            port_filter: MapHandle::try_from(&maps.port_filter).map_err(map_err("port_filter"))?,
            filter_gen: MapHandle::try_from(&maps.filter_gen).map_err(map_err("filter_gen"))?,
        })
    }

    pub fn try_clone(&self) -> Result<ControlMaps, CaptureError> {
        Ok(ControlMaps {
            settings: MapHandle::try_from(&self.settings).map_err(map_err("settings"))?,
            tgid_filter: MapHandle::try_from(&self.tgid_filter).map_err(map_err("tgid_filter"))?,
            cgroup_filter: MapHandle::try_from(&self.cgroup_filter)
                .map_err(map_err("cgroup_filter"))?,
            port_filter: MapHandle::try_from(&self.port_filter).map_err(map_err("port_filter"))?,
            filter_gen: MapHandle::try_from(&self.filter_gen).map_err(map_err("filter_gen"))?,
        })
    }

    /// Tells the programs that decisions or settings changed: the verdicts threads keep
    /// (task-local storage) are made again at their next call. Called after every change.
    fn changed(&self) -> Result<(), CaptureError> {
        let g = NEXT_GEN.fetch_add(1, Ordering::Relaxed);
        self.filter_gen
            .update(&0u32.to_ne_bytes(), &g.to_ne_bytes(), MapFlags::ANY)
            .map_err(map_err("filter_gen"))
    }

    pub fn write_settings(&self, s: &Settings) -> Result<(), CaptureError> {
        let v = wl_settings {
            proto_mask: s.proto_mask,
            filter: u8::from(s.filter),
            undecided_drop: u8::from(s.undecided_drop),
            drop_loopback: u8::from(s.drop_loopback),
            port_include: u8::from(s.port_include),
            exec_redecide: u8::from(s.exec_redecide),
            ..Default::default()
        };
        // SAFETY: wl_settings is Plain (fixed-width fields, explicit padding).
        let bytes = unsafe { plain::as_bytes(&v) };
        self.settings
            .update(&0u32.to_ne_bytes(), bytes, MapFlags::ANY)
            .map_err(map_err("settings"))?;
        self.changed()
    }

    /// Keeps or drops a process (by tgid).
    pub fn decide_tgid(&self, tgid: u32, keep: bool) -> Result<(), CaptureError> {
        self.tgid_filter
            .update(&tgid.to_ne_bytes(), &[decision(keep)], MapFlags::ANY)
            .map_err(map_err("tgid_filter"))?;
        self.changed()
    }

    /// The tgids that have a decision.
    pub fn decided_tgids(&self) -> HashSet<u32> {
        self.tgid_filter
            .keys()
            .filter_map(|k| k.get(..4).and_then(|b| b.try_into().ok()))
            .map(u32::from_ne_bytes)
            .collect()
    }

    pub fn forget_tgid(&self, tgid: u32) {
        if self.tgid_filter.delete(&tgid.to_ne_bytes()).is_ok() {
            let _ = self.changed();
        }
    }

    /// Replaces every cgroup decision with `decisions` (cgroup id, keep).
    pub fn set_cgroups(&self, decisions: &[(u64, bool)]) -> Result<(), CaptureError> {
        let r = self.write_cgroups(decisions);
        // Even a change cut short by an error changed the map. The programs read the
        // thread's cgroup only while the map holds a decision (`filter_gen[2]`); that is
        // written before the generation, so a verdict of the new generation saw it.
        let any = u64::from(self.cgroup_filter.keys().next().is_some());
        let p = self
            .filter_gen
            .update(&2u32.to_ne_bytes(), &any.to_ne_bytes(), MapFlags::ANY)
            .map_err(map_err("filter_gen"));
        let g = self.changed();
        r.and(p).and(g)
    }

    fn write_cgroups(&self, decisions: &[(u64, bool)]) -> Result<(), CaptureError> {
        let keep: HashSet<u64> = decisions.iter().map(|(id, _)| *id).collect();
        let old: Vec<Vec<u8>> = self.cgroup_filter.keys().collect();
        for k in old {
            let id = k
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_ne_bytes);
            if id.is_some_and(|id| !keep.contains(&id)) {
                let _ = self.cgroup_filter.delete(&k);
            }
        }
        for (id, k) in decisions {
            self.cgroup_filter
                .update(&id.to_ne_bytes(), &[decision(*k)], MapFlags::ANY)
                .map_err(map_err("cgroup_filter"))?;
        }
        Ok(())
    }

    /// Replaces the port rules.
    pub fn set_ports(&self, include: &[u16], exclude: &[u16]) -> Result<(), CaptureError> {
        let old: Vec<Vec<u8>> = self.port_filter.keys().collect();
        for k in old {
            let _ = self.port_filter.delete(&k);
        }
        let rules = include
            .iter()
            .map(|p| (*p, wl_port_rule::WL_PORT_INCLUDE.0 as u8))
            .chain(
                exclude
                    .iter()
                    .map(|p| (*p, wl_port_rule::WL_PORT_EXCLUDE.0 as u8)),
            );
        for (port, rule) in rules {
            self.port_filter
                .update(&port.to_ne_bytes(), &[rule], MapFlags::ANY)
                .map_err(map_err("port_filter"))?;
        }
        Ok(())
    }
}
