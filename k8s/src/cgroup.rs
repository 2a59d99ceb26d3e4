//! From a process's cgroup membership to the container and the pod it runs in.
//!
//! `/proc/PID/cgroup` (cgroups(7)) holds one line per hierarchy,
//! `hierarchy-ID:controller-list:cgroup-path`. cgroup v2 has the single line `0::PATH`; v1 has
//! one line per mounted hierarchy (`4:cpu,cpuacct:/kubepods/…`, `1:name=systemd:/…`); a hybrid
//! host has both. The path is relative to the reader's cgroup namespace, so an agent in a
//! container of its own sees the pods' cgroups as `/../../kubepods-…` on cgroup v2: `..`
//! segments are skipped, the names that follow still carry the identity.
//!
//! Who names each level, and how:
//!
//! | level | systemd driver | cgroupfs driver |
//! |---|---|---|
//! | kubelet, QoS | `kubepods.slice/kubepods-burstable.slice` (`-besteffort`; Guaranteed pods have no QoS level) | `/kubepods/burstable` (`besteffort`; Guaranteed: none) |
//! | kubelet, pod | `kubepods-burstable-pod<uid>.slice`, the uid's `-` written `_` | `pod<uid>` |
//! | containerd | `cri-containerd-<id>.scope` | `<id>` |
//! | CRI-O | `crio-<id>.scope` (its monitor: `crio-conmon-<id>.scope`) | `crio-<id>` |
//! | Docker | `docker-<id>.scope` | `<id>` under a pod, `/docker/<id>` outside Kubernetes |
//! | Podman | `libpod-<id>.scope` | `libpod-<id>` |
//!
//! A kubelet started with `--cgroup-root` (kind: `/kubelet.slice/kubelet-kubepods.slice/…`)
//! prefixes these names; a node that is itself a container (kind, Docker in Docker) nests them
//! under its own container's cgroup. The container is therefore the innermost container name
//! below the innermost pod name.

use crate::ids::{ContainerId, PodUid, Runtime};

/// Lines read from one `/proc/PID/cgroup`: the kernel writes one per hierarchy, about a
/// dozen on a v1 host; more than this is not a cgroup file.
pub const MAX_LINES: usize = 64;

/// The pod's quality-of-service class (core/v1 `PodQOSClass`), which the kubelet writes
/// into the cgroup path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

/// What a cgroup path says about its processes. Every field is independent: a process in a
/// pod's cgroup but no container's (the pod slice itself) has a pod and no container; a Docker
/// container outside Kubernetes has a container and no pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CgroupIdentity {
    pub pod_uid: Option<PodUid>,
    /// Only when the kubelet's own naming shows it (`None` under an unknown parent).
    pub qos: Option<QosClass>,
    pub container: Option<ContainerId>,
}

impl CgroupIdentity {
    fn rank(&self) -> u8 {
        2 * u8::from(self.container.is_some()) + u8::from(self.pod_uid.is_some())
    }
}

/// One line of `/proc/PID/cgroup`, borrowed from the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CgroupLine<'a> {
    pub hierarchy: u32,
    /// Comma-separated controllers (`cpu,cpuacct`, `name=systemd`); empty for cgroup v2.
    pub controllers: &'a str,
    /// The cgroup path, without the ` (deleted)` the kernel appends to a removed cgroup.
    pub path: &'a str,
}

impl<'a> CgroupLine<'a> {
    /// The cgroup v2 (unified) hierarchy: ID 0 and no controllers.
    pub fn is_unified(&self) -> bool {
        self.hierarchy == 0 && self.controllers.is_empty()
    }

    pub fn controllers(&self) -> impl Iterator<Item = &'a str> {
        self.controllers.split(',').filter(|c| !c.is_empty())
    }

    pub fn identity(&self) -> CgroupIdentity {
        identity_of_path(self.path)
    }
}

/// A parsed `/proc/PID/cgroup`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcCgroup<'a> {
    pub lines: Vec<CgroupLine<'a>>,
    /// Lines that are not `ID:controllers:/path`, and lines past [`MAX_LINES`]: counted so
    /// the caller can report them, never silently dropped.
    pub skipped_lines: usize,
}

impl<'a> ProcCgroup<'a> {
    /// The cgroup v2 path (`0::PATH`), if this process is in the unified hierarchy.
    pub fn unified_path(&self) -> Option<&'a str> {
        self.lines.iter().find(|l| l.is_unified()).map(|l| l.path)
    }

    /// The identity of the process: that of the line that says the most (container and pod,
    /// then container, then pod), the unified line first among equals. On a hybrid host the
    /// v1 controllers carry the container's path while the v2 line may be just `/`.
    pub fn identity(&self) -> CgroupIdentity {
        let mut best = CgroupIdentity::default();
        let mut best_key = (0, false);
        for line in &self.lines {
            let id = line.identity();
            let key = (id.rank(), line.is_unified());
            if key > best_key {
                best = id;
                best_key = key;
            }
        }
        best
    }
}

/// Parses the text of `/proc/PID/cgroup`. Never fails: malformed lines are counted.
pub fn parse_proc_cgroup(text: &str) -> ProcCgroup<'_> {
    let mut out = ProcCgroup::default();
    for (n, raw) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        if n >= MAX_LINES {
            out.skipped_lines += 1;
            continue;
        }
        match parse_line(raw) {
            Some(line) => out.lines.push(line),
            None => out.skipped_lines += 1,
        }
    }
    out
}

fn parse_line(raw: &str) -> Option<CgroupLine<'_>> {
    let mut parts = raw.splitn(3, ':');
    let hierarchy = parts.next()?.parse().ok()?;
    let controllers = parts.next()?;
    let path = parts.next()?;
    let path = path.strip_suffix(" (deleted)").unwrap_or(path);
    path.starts_with('/').then_some(CgroupLine {
        hierarchy,
        controllers,
        path,
    })
}

/// What one cgroup path says: the innermost pod, and the innermost container below it (any
/// container when no pod is named).
pub fn identity_of_path(path: &str) -> CgroupIdentity {
    let mut out = CgroupIdentity::default();
    let mut parent = "";
    let segments = path
        .split('/')
        .filter(|s| !s.is_empty() && *s != "." && *s != "..");
    for seg in segments {
        if let Some((uid, qos)) = pod_segment(seg, parent) {
            // A container named above the pod is the node's own (kind, Docker in Docker).
            out = CgroupIdentity {
                pod_uid: Some(uid),
                qos,
                container: None,
            };
        } else if let Some(container) = container_segment(seg, parent) {
            out.container = Some(container);
        }
        parent = seg;
    }
    out
}

/// `kubepods-<qos>-pod<uid_with_underscores>.slice` (systemd) or `pod<uid>` (cgroupfs, where
/// the parent names the QoS class).
fn pod_segment(seg: &str, parent: &str) -> Option<(PodUid, Option<QosClass>)> {
    if let Some(name) = seg.strip_suffix(".slice") {
        if !name.contains("kubepods") {
            return None;
        }
        // systemd escapes `-` in a unit name as `_`; hex digits hold no "-pod".
        let at = name.rfind("-pod")?;
        let uid = PodUid::parse(&name[at + 4..].replace('_', "-"))?;
        let prefix = &name[..at];
        let qos = if prefix.ends_with("-burstable") {
            Some(QosClass::Burstable)
        } else if prefix.ends_with("-besteffort") {
            Some(QosClass::BestEffort)
        } else if prefix.ends_with("kubepods") {
            Some(QosClass::Guaranteed)
        } else {
            None
        };
        return Some((uid, qos));
    }
    let uid = PodUid::parse(seg.strip_prefix("pod")?)?;
    let qos = match parent {
        "burstable" => Some(QosClass::Burstable),
        "besteffort" => Some(QosClass::BestEffort),
        "kubepods" => Some(QosClass::Guaranteed),
        _ => None,
    };
    Some((uid, qos))
}

/// A runtime's scope (`cri-containerd-<id>.scope`, `crio-<id>.scope`, `docker-<id>.scope`,
/// `libpod-<id>.scope`), the same names without `.scope` (cgroupfs), or a bare id.
fn container_segment(seg: &str, parent: &str) -> Option<ContainerId> {
    const PREFIXES: [(&str, Runtime); 4] = [
        ("cri-containerd-", Runtime::Containerd),
        ("crio-", Runtime::CriO),
        ("docker-", Runtime::Docker),
        ("libpod-", Runtime::Podman),
    ];
    let name = seg.strip_suffix(".scope").unwrap_or(seg);
    for (prefix, runtime) in PREFIXES {
        if let Some(id) = name.strip_prefix(prefix) {
            // `crio-conmon-<id>` is CRI-O's monitor process, not the container: no match.
            return ContainerId::new(runtime, id);
        }
    }
    let runtime = if parent == "docker" {
        Runtime::Docker
    } else {
        Runtime::Unknown
    };
    ContainerId::new(runtime, name)
}
