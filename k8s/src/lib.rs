//! Kubernetes identity for wirelens: from a process's cgroup to its container and pod, and
//! from a pod's metadata to the `service.name` and `k8s.*` attributes its records carry.
//!
//! A pure library: no I/O, no API client. The agent reads `/proc/PID/cgroup` and watches the
//! API; this crate turns what it read into identities. The deploy manifests in `deploy/` are
//! checked by this crate's tests too (`tests/manifests.rs`), with the same Kubernetes types
//! the agent's watcher uses.

pub mod cgroup;
pub mod identity;
mod ids;

pub use cgroup::{
    identity_of_path, parse_proc_cgroup, CgroupIdentity, CgroupLine, ProcCgroup, QosClass,
};
pub use identity::{
    ContainerKind, ContainerStatus, Identity, Lookup, NoOwners, OwnerIndex, OwnerRef, Owners,
    PodMeta, ServiceNameSource, Workload, WorkloadKind,
};
pub use ids::{ContainerId, PodUid, Runtime, CONTAINER_ID_LEN};
