//! The `filters:` section of the agent's configuration, as users write it.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole `filters:` section. Every key is optional.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct FilterConfig {
    /// Keep only processes that match (empty or absent: keep everything).
    pub include: SelectorConfig,
    /// Drop processes that match; wins over `include`.
    pub exclude: SelectorConfig,
    /// Drop traffic on unix sockets (only IPv4/IPv6 sockets are captured today, so `false`
    /// is refused until unix sockets are supported).
    pub drop_unix: bool,
    /// Drop connections whose two ends are loopback addresses (traffic between two
    /// processes of this host).
    pub drop_loopback: bool,
    /// Protocols to capture; absent: all of `http`, `mysql`, `pgsql`, `redis`, `dns`.
    pub protocols: Option<Vec<String>>,
    /// Ports: with a non-empty `include`, only connections with a local or remote port in
    /// it; connections with a local or remote port in `exclude` are dropped.
    pub ports: PortFilter,
    /// What a process not decided yet gets (the moments between its exec and the agent's
    /// decision): `capture` or `drop`.
    pub undecided: Undecided,
}

impl Default for FilterConfig {
    fn default() -> Self {
        FilterConfig {
            include: SelectorConfig::default(),
            exclude: SelectorConfig::default(),
            drop_unix: true,
            drop_loopback: false,
            protocols: None,
            ports: PortFilter::default(),
            undecided: Undecided::Capture,
        }
    }
}

/// One selector: regular expressions per property of a process.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SelectorConfig {
    /// The command line, arguments joined by spaces.
    pub cmdline: Vec<String>,
    /// The executable's path (`/proc/PID/exe`).
    pub exe: Vec<String>,
    /// The process's cgroup v2 path (e.g. `/system.slice/nginx.service`).
    pub cgroup: Vec<String>,
    /// Container name (from Kubernetes metadata).
    pub container: Vec<String>,
    /// Kubernetes pod name.
    pub pod: Vec<String>,
    /// Kubernetes namespace.
    pub namespace: Vec<String>,
    /// Pod labels: key -> regex of the value.
    pub labels: BTreeMap<String, String>,
    /// Labels of the pod's namespace: key -> regex of the value.
    pub namespace_labels: BTreeMap<String, String>,
    /// Pod annotations: key -> regex of the value.
    pub annotations: BTreeMap<String, String>,
    /// Environment variables of the process: name -> regex of the value.
    pub env: BTreeMap<String, String>,
    /// Network namespaces: inode numbers or paths such as `/var/run/netns/NAME`.
    pub netns: Vec<NsRef>,
    /// PID namespaces: inode numbers or paths.
    pub pidns: Vec<NsRef>,
}

/// A namespace given by inode number or by a path to resolve.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum NsRef {
    Inode(u64),
    Path(String),
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PortFilter {
    pub include: Vec<u16>,
    pub exclude: Vec<u16>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Undecided {
    #[default]
    Capture,
    Drop,
}
