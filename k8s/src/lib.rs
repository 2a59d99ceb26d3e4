//! Kubernetes identity for wirelens: from a process's cgroup to its container and pod, and
//! from a pod's metadata to the `service.name` and `k8s.*` attributes its records carry.
//!
//! `cgroup` and `identity` are pure: no I/O. `meta` is the metadata source: kube-runtime
//! watches of the API filling a bounded store the agent queries. The deploy manifests in `deploy/` are
//! checked by this crate's tests too (`tests/manifests.rs`), with the same Kubernetes types
//! the agent's watcher uses.

pub mod cgroup;
pub mod identity;
mod ids;
pub mod meta;

pub use cgroup::{
    identity_of_path, parse_proc_cgroup, CgroupIdentity, CgroupLine, ProcCgroup, QosClass,
};
pub use identity::{
    ContainerKind, ContainerStatus, Identity, Lookup, NoOwners, OwnerIndex, OwnerRef, Owners,
    PodMeta, ServiceNameSource, Workload, WorkloadKind,
};
pub use ids::{ContainerId, PodUid, Runtime, CONTAINER_ID_LEN};
