//! Who a pod is, for the person on call: `service.name` and the `k8s.*` resource attributes
//! (OpenTelemetry semantic conventions, "Kubernetes" resource attributes).
//!
//! The rule for `service.name`, first that applies:
//! 1. the pod's `app.kubernetes.io/name` label (Kubernetes recommended labels), when not empty;
//! 2. the name of the workload that controls the pod: a ReplicaSet's Deployment, a Job's
//!    CronJob, else the ReplicaSet, Job, StatefulSet, DaemonSet (or any other controller kind)
//!    itself;
//! 3. the pod's name.
//!
//! The pod only names its direct controller; the next level up (ReplicaSet -> Deployment,
//! Job -> CronJob) comes from an [`Owners`] lookup the agent fills from its watch. When the
//! ReplicaSet is not known (yet), the Deployment is still found from the name the Deployment
//! controller gives its ReplicaSets, `<deployment>-<pod-template-hash>`, when the pod's
//! `pod-template-hash` label confirms the suffix. A Job has no such rule (a hand-made Job may
//! look like a CronJob's), so an unknown Job stays a Job.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use serde::Serialize;

use crate::ids::{ContainerId, PodUid};

/// Label of the application's name (Kubernetes "recommended labels").
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
/// Label the Deployment controller puts on the pods (and into the name) of each ReplicaSet.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
/// Annotation of a mirror pod: the kubelet's hash of the static pod's manifest, which is the
/// UID the kubelet uses for that pod's cgroup.
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// What wirelens needs of a Pod (core/v1), filled by the agent from the API.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodMeta {
    pub namespace: String,
    pub name: String,
    /// `metadata.uid`.
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub owner_references: Vec<OwnerRef>,
    /// `spec.nodeName`; empty until scheduled.
    pub node_name: Option<String>,
    /// `status.podIPs`. A `host_network` pod has the node's addresses, which name the node
    /// rather than this pod.
    pub pod_ips: Vec<IpAddr>,
    pub host_network: bool,
    /// Statuses of the regular, init and ephemeral containers.
    pub containers: Vec<ContainerStatus>,
}

/// One `metadata.ownerReferences` entry (meta/v1 OwnerReference).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnerRef {
    /// `apps/v1`, `batch/v1`, … (the group tells a built-in kind from a custom one).
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
    /// Whether this owner is the managing controller; only a controller is a workload.
    pub controller: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ContainerKind {
    #[default]
    Regular,
    Init,
    Ephemeral,
}

/// One `status.{,init,ephemeral}ContainerStatuses` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerStatus {
    pub name: String,
    pub kind: ContainerKind,
    /// `None` until the runtime has created the container.
    pub container_id: Option<ContainerId>,
}

impl ContainerStatus {
    /// From the API's fields; `container_id` is the raw `containerID` (`containerd://…`).
    pub fn new(name: &str, kind: ContainerKind, container_id: Option<&str>) -> ContainerStatus {
        ContainerStatus {
            name: name.to_string(),
            kind,
            container_id: container_id.and_then(ContainerId::from_status),
        }
    }
}

impl PodMeta {
    /// The owner reference that is the pod's controller, if any.
    pub fn controller(&self) -> Option<&OwnerRef> {
        self.owner_references.iter().find(|o| o.controller)
    }

    /// The status of the container with this id.
    pub fn container(&self, id: &ContainerId) -> Option<&ContainerStatus> {
        self.containers
            .iter()
            .find(|c| c.container_id.as_ref() == Some(id))
    }

    /// Whether a cgroup's pod UID is this pod: its `metadata.uid`, or for a mirror pod the
    /// static pod's UID in the `kubernetes.io/config.mirror` annotation.
    pub fn has_cgroup_uid(&self, uid: &PodUid) -> bool {
        self.uid == uid.as_str()
            || self
                .annotations
                .get(MIRROR_ANNOTATION)
                .is_some_and(|m| m == uid.as_str())
    }
}

/// What the agent knows of a workload object's own controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    Owner(OwnerRef),
    /// Known, with no controller.
    NoOwner,
    /// Not seen (yet, or the watch is down).
    Unknown,
}

/// The controllers of workload objects (ReplicaSets and Jobs), by namespace, kind and name.
pub trait Owners {
    fn controller_of(&self, namespace: &str, kind: &str, name: &str) -> Lookup;
}

/// No lookup: every workload is [`Lookup::Unknown`].
pub struct NoOwners;

impl Owners for NoOwners {
    fn controller_of(&self, _: &str, _: &str, _: &str) -> Lookup {
        Lookup::Unknown
    }
}

/// An in-memory [`Owners`]: what the agent's watch fills.
#[derive(Clone, Debug, Default)]
pub struct OwnerIndex {
    map: HashMap<(String, String, String), Option<OwnerRef>>,
}

impl OwnerIndex {
    /// Records the controller of `kind/name` (`None`: it has none).
    pub fn insert(&mut self, namespace: &str, kind: &str, name: &str, owner: Option<OwnerRef>) {
        self.map
            .insert((namespace.into(), kind.into(), name.into()), owner);
    }

    pub fn remove(&mut self, namespace: &str, kind: &str, name: &str) {
        self.map
            .remove(&(namespace.into(), kind.into(), name.into()));
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl Owners for OwnerIndex {
    fn controller_of(&self, namespace: &str, kind: &str, name: &str) -> Lookup {
        match self
            .map
            .get(&(namespace.to_string(), kind.to_string(), name.to_string()))
        {
            Some(Some(owner)) => Lookup::Owner(owner.clone()),
            Some(None) => Lookup::NoOwner,
            None => Lookup::Unknown,
        }
    }
}

/// The kind of workload that runs a pod.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum WorkloadKind {
    Deployment,
    ReplicaSet,
    StatefulSet,
    DaemonSet,
    Job,
    CronJob,
    ReplicationController,
    /// Any other controller (an operator's custom resource, e.g. an Argo Rollout).
    Other(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Workload {
    pub kind: WorkloadKind,
    pub name: String,
}

/// Where `service.name` came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceNameSource {
    Label,
    Workload,
    PodName,
}

/// The identity of a pod (and one of its containers) in records, spans and metrics.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub service_name: String,
    pub service_name_source: ServiceNameSource,
    pub namespace: String,
    pub pod_name: String,
    pub pod_uid: String,
    pub node_name: Option<String>,
    pub container_name: Option<String>,
    /// The top workload: the Deployment of a ReplicaSet, the CronJob of a Job.
    pub workload: Option<Workload>,
    /// The ReplicaSet between a Deployment and the pod.
    pub replicaset: Option<String>,
    /// The Job between a CronJob and the pod.
    pub job: Option<String>,
}

impl Identity {
    /// The identity of `pod`, and of the container with id `container` when given and found.
    pub fn of(pod: &PodMeta, container: Option<&ContainerId>, owners: &dyn Owners) -> Identity {
        let (workload, replicaset, job) = match pod.controller() {
            Some(c) => resolve(pod, c, owners),
            None => (None, None, None),
        };
        let label = pod
            .labels
            .get(NAME_LABEL)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty());
        let (service_name, service_name_source) = match (label, &workload) {
            (Some(l), _) => (l.to_string(), ServiceNameSource::Label),
            (None, Some(w)) => (w.name.clone(), ServiceNameSource::Workload),
            (None, None) => (pod.name.clone(), ServiceNameSource::PodName),
        };
        Identity {
            service_name,
            service_name_source,
            namespace: pod.namespace.clone(),
            pod_name: pod.name.clone(),
            pod_uid: pod.uid.clone(),
            node_name: pod.node_name.clone().filter(|n| !n.is_empty()),
            container_name: container
                .and_then(|id| pod.container(id))
                .map(|c| c.name.clone()),
            workload,
            replicaset,
            job,
        }
    }

    /// The OpenTelemetry resource attributes, in a stable order; absent values are left out.
    pub fn attributes(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![
            ("service.name", self.service_name.clone()),
            ("k8s.namespace.name", self.namespace.clone()),
            ("k8s.pod.name", self.pod_name.clone()),
            ("k8s.pod.uid", self.pod_uid.clone()),
        ];
        if let Some(n) = &self.node_name {
            out.push(("k8s.node.name", n.clone()));
        }
        if let Some(c) = &self.container_name {
            out.push(("k8s.container.name", c.clone()));
        }
        if let Some(rs) = &self.replicaset {
            out.push(("k8s.replicaset.name", rs.clone()));
        }
        if let Some(job) = &self.job {
            out.push(("k8s.job.name", job.clone()));
        }
        if let Some(w) = &self.workload {
            let key = match w.kind {
                WorkloadKind::Deployment => Some("k8s.deployment.name"),
                WorkloadKind::ReplicaSet => Some("k8s.replicaset.name"),
                WorkloadKind::StatefulSet => Some("k8s.statefulset.name"),
                WorkloadKind::DaemonSet => Some("k8s.daemonset.name"),
                WorkloadKind::Job => Some("k8s.job.name"),
                WorkloadKind::CronJob => Some("k8s.cronjob.name"),
                // The conventions define no attribute for these.
                WorkloadKind::ReplicationController | WorkloadKind::Other(_) => None,
            };
            if let Some(key) = key {
                out.push((key, w.name.clone()));
            }
        }
        out
    }
}

/// The API group of an `apiVersion` (`apps/v1` -> `apps`, `v1` -> core, the empty string).
fn group(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

/// (top workload, ReplicaSet under a Deployment, Job under a CronJob) for the pod's
/// controller `c`.
fn resolve(
    pod: &PodMeta,
    c: &OwnerRef,
    owners: &dyn Owners,
) -> (Option<Workload>, Option<String>, Option<String>) {
    let of = |kind: WorkloadKind, name: &str| {
        Some(Workload {
            kind,
            name: name.to_string(),
        })
    };
    match (group(&c.api_version), c.kind.as_str()) {
        ("apps", "ReplicaSet") => {
            match owners.controller_of(&pod.namespace, "ReplicaSet", &c.name) {
                Lookup::Owner(o) if group(&o.api_version) == "apps" && o.kind == "Deployment" => (
                    of(WorkloadKind::Deployment, &o.name),
                    Some(c.name.clone()),
                    None,
                ),
                Lookup::Owner(o) => (workload_of(&o), Some(c.name.clone()), None),
                Lookup::NoOwner => (of(WorkloadKind::ReplicaSet, &c.name), None, None),
                Lookup::Unknown => match deployment_by_name(pod, &c.name) {
                    Some(d) => (of(WorkloadKind::Deployment, d), Some(c.name.clone()), None),
                    None => (of(WorkloadKind::ReplicaSet, &c.name), None, None),
                },
            }
        }
        ("batch", "Job") => match owners.controller_of(&pod.namespace, "Job", &c.name) {
            Lookup::Owner(o) if group(&o.api_version) == "batch" && o.kind == "CronJob" => (
                of(WorkloadKind::CronJob, &o.name),
                None,
                Some(c.name.clone()),
            ),
            Lookup::Owner(o) => (workload_of(&o), None, Some(c.name.clone())),
            Lookup::NoOwner | Lookup::Unknown => (of(WorkloadKind::Job, &c.name), None, None),
        },
        // A mirror pod's controller is its Node: not a workload.
        ("", "Node") => (None, None, None),
        _ => (workload_of(c), None, None),
    }
}

fn workload_of(o: &OwnerRef) -> Option<Workload> {
    let kind = match (group(&o.api_version), o.kind.as_str()) {
        ("apps", "Deployment") => WorkloadKind::Deployment,
        ("apps", "ReplicaSet") => WorkloadKind::ReplicaSet,
        ("apps", "StatefulSet") => WorkloadKind::StatefulSet,
        ("apps", "DaemonSet") => WorkloadKind::DaemonSet,
        ("batch", "Job") => WorkloadKind::Job,
        ("batch", "CronJob") => WorkloadKind::CronJob,
        ("", "ReplicationController") => WorkloadKind::ReplicationController,
        (_, kind) => WorkloadKind::Other(kind.to_string()),
    };
    Some(Workload {
        kind,
        name: o.name.clone(),
    })
}

/// `<deployment>` from a ReplicaSet named `<deployment>-<hash>`, when the pod's
/// `pod-template-hash` label is that hash.
fn deployment_by_name<'a>(pod: &PodMeta, replicaset: &'a str) -> Option<&'a str> {
    let hash = pod.labels.get(POD_TEMPLATE_HASH_LABEL)?;
    let name = replicaset.strip_suffix(hash.as_str())?.strip_suffix('-')?;
    (!hash.is_empty() && !name.is_empty()).then_some(name)
}
