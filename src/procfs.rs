//! What the agent reads about processes and cgroups from /proc and the cgroup v2 tree.

use std::collections::BTreeMap;
use std::net::SocketAddr;
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
    let cgroup = proc_cgroup(pid)
        .map(|p| host_cgroup_path(&p))
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

/// The cgroup v2 path of `pid` as `/proc/PID/cgroup` shows it: relative to the reader's
/// cgroup namespace root.
fn proc_cgroup(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::").map(str::to_string))
}

/// A cgroup path read from `/proc/PID/cgroup`, named as the mounted cgroup tree names it
/// (the names [`cgroups`] gives, and the ones users write in the `cgroup` filter key).
///
/// They differ when the agent runs in a cgroup namespace of its own (a container's, the
/// default on cgroup v2) with the host's tree mounted (the DaemonSet mounts it): `/proc`
/// then shows paths from the namespace's root, `/../../kubepods.slice/...` for a pod beside
/// the agent's, `/` for the agent's own cgroup.
pub fn host_cgroup_path(path: &str) -> String {
    match cgroupns_root() {
        Some(root) => join_cgroup_path(root, path),
        None => path.to_string(),
    }
}

/// `rel` (from `/proc/PID/cgroup`, which may climb with `..`) under `root`, normalised.
fn join_cgroup_path(root: &str, rel: &str) -> String {
    let mut parts: Vec<&str> = root.split('/').filter(|s| !s.is_empty()).collect();
    for seg in rel.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Where the agent's cgroup namespace is rooted in the mounted cgroup tree; `None` when the
/// agent shares pid 1's cgroup namespace (nothing to translate), or when the root is not in
/// the mounted tree (a mount of the namespace's own view: paths already agree). Found once.
fn cgroupns_root() -> Option<&'static str> {
    static ROOT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        // pid 1, the host's init, is outside a namespace of the agent's own: seen from in
        // there its path climbs with `..`, once per level the namespace's root is deep. (Its
        // /proc/1/ns/cgroup link is not always readable, even as root; this file is.)
        let depth = proc_cgroup(1)?
            .split('/')
            .skip(1)
            .take_while(|s| *s == "..")
            .count();
        if depth == 0 {
            return None;
        }
        let found = find_cgroupns_root(depth);
        match &found {
            Some(root) => tracing::info!(
                root = %root,
                "in a cgroup namespace of its own: cgroup paths are named from the host's tree"
            ),
            None => tracing::info!(
                "in a cgroup namespace of its own, without the host's cgroup tree mounted: \
                 cgroup paths are named from this namespace's root"
            ),
        }
        found
    })
    .as_deref()
}

/// Of the directories `depth` deep in the mounted tree, the one under which this process's
/// own cgroup (as its namespace names it) holds this process.
fn find_cgroupns_root(depth: usize) -> Option<String> {
    let own = proc_cgroup(std::process::id())?;
    let me = std::process::id().to_string();
    let root = cgroup2_root()?;
    let mut level = vec![root.clone()];
    for _ in 0..depth {
        level = level
            .iter()
            .filter_map(|d| std::fs::read_dir(d).ok())
            .flat_map(|entries| entries.flatten())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect();
    }
    level.into_iter().find_map(|d| {
        let procs = d.join(own.trim_start_matches('/')).join("cgroup.procs");
        let procs = std::fs::read_to_string(procs).ok()?;
        procs.lines().any(|l| l == me).then(|| {
            let rel = d.strip_prefix(&root).unwrap_or(&d);
            format!("/{}", rel.to_string_lossy())
        })
    })
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

/// Whether this process holds a socket bound to `local`, and connected to `peer` when one is
/// given: one of the agent's own connections (its exports), seen by the capture at its other
/// end. Without `peer`, the local address alone decides: through a Service address, the
/// agent's socket is connected to an address the collector does not have.
///
/// Looks at the process's own descriptors, so only for the rare connection that may be one
/// (see [`crate::conntrack::ConntrackConfig::own_ports`]).
pub fn own_connection(local: SocketAddr, peer: Option<SocketAddr>) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return false;
    };
    let (local, peer) = (canonical(local), peer.map(canonical));
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .any(|fd| {
            // A descriptor closed since the listing, or not a socket, fails both calls. A
            // listening socket has no peer: getpeername fails, so it never matches.
            sock_name(fd, libc::getsockname) == Some(local)
                && sock_name(fd, libc::getpeername)
                    .is_some_and(|p| peer.is_none_or(|want| p == want))
        })
}

type NameCall = unsafe extern "C" fn(i32, *mut libc::sockaddr, *mut libc::socklen_t) -> i32;

/// The address `call` (getsockname or getpeername) gives for `fd`, when it is an IP socket.
fn sock_name(fd: i32, call: NameCall) -> Option<SocketAddr> {
    // SAFETY: sockaddr_storage is plain data, valid when zeroed.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: the buffer and its length are those of `ss`, which outlives the call; a bad
    // descriptor only makes the call fail.
    if unsafe { call(fd, (&raw mut ss).cast(), &mut len) } != 0 {
        return None;
    }
    match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a: libc::sockaddr_in = unsafe { std::ptr::read((&raw const ss).cast()) };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::new(ip.into(), u16::from_be(a.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a: libc::sockaddr_in6 = unsafe { std::ptr::read((&raw const ss).cast()) };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(canonical(SocketAddr::new(
                ip.into(),
                u16::from_be(a.sin6_port),
            )))
        }
        _ => None,
    }
}

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`, a dual-stack socket) as IPv4.
fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Paths read through a cgroup namespace are placed under its root; `..` climbs.
    #[test]
    fn cgroup_paths_join_under_the_namespace_root() {
        let root = "/kubepods.slice/kubepods-burstable.slice/pod1.slice/cri-containerd-a.scope";
        assert_eq!(join_cgroup_path(root, "/"), root);
        assert_eq!(
            join_cgroup_path(root, "/../../pod2.slice/cri-containerd-b.scope"),
            "/kubepods.slice/kubepods-burstable.slice/pod2.slice/cri-containerd-b.scope"
        );
        assert_eq!(
            join_cgroup_path(root, "/../../../../system.slice/nginx.service"),
            "/system.slice/nginx.service"
        );
        assert_eq!(join_cgroup_path(root, "/child"), format!("{root}/child"));
        // More `..` than the root is deep stops at the top.
        assert_eq!(join_cgroup_path("/a", "/../../../b"), "/b");
        assert_eq!(join_cgroup_path("/", "/x/./y/"), "/x/y");
    }

    /// A connection this process made is found from either address pair it has; a pair of
    /// another process's connection, or the reversed pair, is not.
    #[test]
    fn own_connections_are_found_by_their_addresses() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let server = listener.local_addr().expect("addr");
        let client = std::net::TcpStream::connect(server).expect("connect");
        let (accepted, _) = listener.accept().expect("accept");
        let local = client.local_addr().expect("addr");
        assert!(own_connection(local, Some(server)));
        // The accepted end is this process's too.
        assert!(own_connection(server, Some(local)));
        // Its own address alone finds it too (a peer behind a translated address).
        assert!(own_connection(local, None));
        let other = SocketAddr::new(local.ip(), local.port().wrapping_add(1).max(1));
        assert!(!own_connection(other, Some(server)));
        assert!(!own_connection(other, None));
        // The right address, connected elsewhere.
        let elsewhere = SocketAddr::new(server.ip(), server.port().wrapping_add(1).max(1));
        assert!(!own_connection(local, Some(elsewhere)));
        // A listening socket is bound, but is no connection.
        let idle = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        assert!(!own_connection(idle.local_addr().expect("addr"), None));
        drop((client, accepted));
        assert!(!own_connection(local, Some(server)), "closed");
        assert!(!own_connection(local, None), "closed");
        // Written as IPv6, the same address.
        let v6 = SocketAddr::new(std::net::Ipv6Addr::LOCALHOST.into(), 1);
        assert_eq!(canonical(v6), v6);
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:80".parse().expect("addr");
        assert_eq!(canonical(mapped), "127.0.0.1:80".parse().expect("addr"));
    }
}
