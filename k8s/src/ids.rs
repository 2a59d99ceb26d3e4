//! The two identifiers that tie a process to Kubernetes: the container id its runtime gave
//! it and the UID of its pod. Both are validated on construction, so a value of these types
//! is always well formed.

use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Serialize, Serializer};

/// Length of a container id in hex digits: every runtime here (containerd, CRI-O, Docker,
/// Podman) names a container by 32 random bytes written as 64 lowercase hex digits.
pub const CONTAINER_ID_LEN: usize = 64;

/// The container runtime that named a container, when its cgroup or status says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    Containerd,
    #[serde(rename = "cri-o")]
    CriO,
    Docker,
    Podman,
    /// A bare id (cgroupfs driver: containerd and dockershim name the cgroup by the id alone)
    /// or a status scheme this crate does not know.
    Unknown,
}

/// A container id. Two ids are equal when their hex digits are, whatever runtime they were
/// seen with: a cgroupfs path gives no runtime while the pod status does, and both must find
/// each other in a map.
#[derive(Clone, Debug)]
pub struct ContainerId {
    runtime: Runtime,
    id: String,
}

impl ContainerId {
    /// `id` must be 64 lowercase hex digits.
    pub fn new(runtime: Runtime, id: &str) -> Option<ContainerId> {
        is_lower_hex(id, CONTAINER_ID_LEN).then(|| ContainerId {
            runtime,
            id: id.to_string(),
        })
    }

    /// From a pod's `status.containerStatuses[].containerID` (core/v1 ContainerStatus), which
    /// is `<type>://<container_id>`: `containerd://…`, `cri-o://…`, `docker://…`. An empty
    /// string (a container not started yet) or any other shape gives `None`.
    pub fn from_status(s: &str) -> Option<ContainerId> {
        let (scheme, id) = s.split_once("://")?;
        let runtime = match scheme {
            "containerd" => Runtime::Containerd,
            "cri-o" => Runtime::CriO,
            "docker" => Runtime::Docker,
            "podman" => Runtime::Podman,
            _ => Runtime::Unknown,
        };
        ContainerId::new(runtime, id)
    }

    pub fn runtime(&self) -> Runtime {
        self.runtime
    }

    /// The 64 hex digits.
    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// The 12-digit prefix tools such as `crictl ps` and `docker ps` print.
    pub fn short(&self) -> &str {
        &self.id[..12]
    }
}

impl PartialEq for ContainerId {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for ContainerId {}

impl Hash for ContainerId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

impl Serialize for ContainerId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.id)
    }
}

/// A pod UID as the kubelet names the pod's cgroup: the API object's `metadata.uid` (an RFC
/// 4122 UUID, lowercase, with dashes), or for a static pod the kubelet's hash of its manifest
/// (32 lowercase hex digits), which the API shows in the mirror pod's
/// `kubernetes.io/config.mirror` annotation (the mirror pod has a UID of its own).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct PodUid(String);

impl PodUid {
    /// A UUID `8-4-4-4-12` or 32 hex digits, lowercase; anything else gives `None`.
    pub fn parse(s: &str) -> Option<PodUid> {
        (is_uuid(s) || is_lower_hex(s, 32)).then(|| PodUid(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PodUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn is_uuid(s: &str) -> bool {
    let mut groups = s.split('-');
    let ok = [8, 4, 4, 4, 12]
        .iter()
        .all(|len| groups.next().is_some_and(|g| is_lower_hex(g, *len)));
    ok && groups.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "9a8f7e6d5c4b3a291807f6e5d4c3b2a19a8f7e6d5c4b3a291807f6e5d4c3b2a1";

    #[test]
    fn status_ids_of_each_runtime() {
        for (status, runtime) in [
            (format!("containerd://{HEX}"), Runtime::Containerd),
            (format!("cri-o://{HEX}"), Runtime::CriO),
            (format!("docker://{HEX}"), Runtime::Docker),
            (format!("rkt://{HEX}"), Runtime::Unknown),
        ] {
            let id = ContainerId::from_status(&status).expect(&status);
            assert_eq!(id.runtime(), runtime, "{status}");
            assert_eq!(id.as_str(), HEX);
            assert_eq!(id.short(), &HEX[..12]);
        }
    }

    #[test]
    fn status_ids_that_are_not_ids() {
        for s in [
            "",
            HEX,
            "containerd://",
            "containerd://abc",
            &format!("containerd://{}", HEX.to_uppercase()),
            &format!("containerd://{HEX}0"),
        ] {
            assert_eq!(ContainerId::from_status(s), None, "{s:?}");
        }
    }

    #[test]
    fn equal_whatever_the_runtime() {
        let a = ContainerId::new(Runtime::Unknown, HEX).unwrap();
        let b = ContainerId::new(Runtime::Containerd, HEX).unwrap();
        assert_eq!(a, b);
        let set: std::collections::HashSet<_> = [a].into_iter().collect();
        assert!(set.contains(&b));
    }

    #[test]
    fn pod_uids() {
        assert!(PodUid::parse("0f3e5c1a-7b2d-4e8f-9a6b-1c2d3e4f5a6b").is_some());
        assert!(PodUid::parse("7d5a2f0e4b1c3a9d8e6f1b2c3d4e5f60").is_some());
        for bad in [
            "",
            "0f3e5c1a_7b2d_4e8f_9a6b_1c2d3e4f5a6b",
            "0F3E5C1A-7B2D-4E8F-9A6B-1C2D3E4F5A6B",
            "0f3e5c1a-7b2d-4e8f-9a6b-1c2d3e4f5a6b-",
            "0f3e5c1a-7b2d-4e8f-9a6b",
            "7d5a2f0e4b1c3a9d8e6f1b2c3d4e5f6",
        ] {
            assert_eq!(PodUid::parse(bad), None, "{bad:?}");
        }
    }
}
