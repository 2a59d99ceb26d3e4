//! What the agent reads about processes and cgroups from /proc and the cgroup v2 tree.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use wirelens_filters::Subject;

/// Every process id in /proc.
pub fn pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect()
}

/// The inode of a namespace file (`/proc/PID/ns/net`, `/var/run/netns/NAME`).
pub fn ns_inode(path: &Path) -> Result<u64, String> {
    std::fs::metadata(path)
        .map(|m| m.ino())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The facts filters look at, for one process; `None` when it is gone or unreadable.
pub fn subject(pid: u32, with_env: bool) -> Option<Subject> {
    let base = PathBuf::from(format!("/proc/{pid}"));
    let raw = std::fs::read(base.join("cmdline")).ok()?;
    let cmdline = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let exe = std::fs::read_link(base.join("exe"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cgroup = std::fs::read_to_string(base.join("cgroup"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("0::").map(str::to_string))
        })
        .unwrap_or_default();
    let env = if with_env {
        std::fs::read(base.join("environ"))
            .map(|raw| {
                raw.split(|b| *b == 0)
                    .filter_map(|kv| {
                        let kv = String::from_utf8_lossy(kv);
                        kv.split_once('=')
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default()
    } else {
        BTreeMap::new()
    };
    let mut s = Subject {
        pid,
        cmdline,
        exe,
        cgroup,
        env,
        netns: ns_inode(&base.join("ns/net")).ok(),
        pidns: ns_inode(&base.join("ns/pid")).ok(),
        ..Subject::default()
    };
    crate::k8s::fill_subject(pid, &mut s);
    Some(s)
}

/// Where the cgroup v2 hierarchy is mounted: /sys/fs/cgroup (unified) or
/// /sys/fs/cgroup/unified (hybrid).
pub fn cgroup2_root() -> Option<PathBuf> {
    ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.join("cgroup.controllers").exists())
}

/// Every cgroup under the v2 root: (path as /proc/PID/cgroup shows it, cgroup id). The id
/// is the directory's inode, which is what `bpf_get_current_cgroup_id` returns. Bounded.
pub fn cgroups(root: &Path, limit: usize) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if out.len() >= limit {
            break;
        }
        let Ok(meta) = std::fs::metadata(&dir) else {
            continue;
        };
        let rel = dir
            .strip_prefix(root)
            .map(|p| p.to_path_buf())
            .unwrap_or_default();
        out.push((format!("/{}", rel.to_string_lossy()), meta.ino()));
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(e.path());
                }
            }
        }
    }
    out
}
