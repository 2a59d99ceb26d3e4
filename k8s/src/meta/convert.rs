//! From the API's objects (k8s-openapi types) to the store's [`Object`]s. Nothing here
//! fails: a missing field is an empty value, an address that does not parse is left out.

use std::net::IpAddr;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::store::{ObjKind, Object};
use crate::identity::{ContainerKind, ContainerStatus, OwnerRef, PodMeta};

/// Label of an EndpointSlice naming its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A type the source watches.
pub trait Watched:
    kube::Resource<DynamicType = ()>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    const KIND: ObjKind;
    fn to_object(&self) -> Object;
}

fn owner(o: &OwnerReference) -> OwnerRef {
    OwnerRef {
        api_version: o.api_version.clone(),
        kind: o.kind.clone(),
        name: o.name.clone(),
        uid: o.uid.clone(),
        controller: o.controller.unwrap_or(false),
    }
}

fn ns_name(m: &ObjectMeta) -> (String, String) {
    (
        m.namespace.clone().unwrap_or_default(),
        m.name.clone().unwrap_or_default(),
    )
}

fn ips<'a>(it: impl IntoIterator<Item = &'a String>) -> Vec<IpAddr> {
    it.into_iter().filter_map(|s| s.parse().ok()).collect()
}

impl Watched for Pod {
    const KIND: ObjKind = ObjKind::Pod;

    fn to_object(&self) -> Object {
        let m = &self.metadata;
        let (namespace, name) = ns_name(m);
        let spec = self.spec.as_ref();
        let status = self.status.as_ref();
        let mut containers = Vec::new();
        if let Some(s) = status {
            for (list, kind) in [
                (&s.container_statuses, ContainerKind::Regular),
                (&s.init_container_statuses, ContainerKind::Init),
                (&s.ephemeral_container_statuses, ContainerKind::Ephemeral),
            ] {
                for c in list.iter().flatten() {
                    containers.push(ContainerStatus::new(
                        &c.name,
                        kind,
                        c.container_id.as_deref(),
                    ));
                }
            }
        }
        let mut pod_ips = status
            .and_then(|s| s.pod_ips.as_ref())
            .map(|v| ips(v.iter().map(|p| &p.ip)))
            .unwrap_or_default();
        if pod_ips.is_empty() {
            pod_ips = ips(status.and_then(|s| s.pod_ip.as_ref()));
        }
        Object::Pod(PodMeta {
            namespace,
            name,
            uid: m.uid.clone().unwrap_or_default(),
            labels: m.labels.clone().unwrap_or_default(),
            annotations: m.annotations.clone().unwrap_or_default(),
            owner_references: m.owner_references.iter().flatten().map(owner).collect(),
            node_name: spec.and_then(|s| s.node_name.clone()),
            pod_ips,
            host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
            containers,
        })
    }
}

fn owned(kind: ObjKind, m: &ObjectMeta) -> Object {
    let (namespace, name) = ns_name(m);
    Object::Owned {
        kind,
        namespace,
        name,
        controller: m
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(owner),
    }
}

impl Watched for ReplicaSet {
    const KIND: ObjKind = ObjKind::ReplicaSet;
    fn to_object(&self) -> Object {
        owned(Self::KIND, &self.metadata)
    }
}

impl Watched for Job {
    const KIND: ObjKind = ObjKind::Job;
    fn to_object(&self) -> Object {
        owned(Self::KIND, &self.metadata)
    }
}

impl Watched for Namespace {
    const KIND: ObjKind = ObjKind::Namespace;
    fn to_object(&self) -> Object {
        Object::Namespace {
            name: self.metadata.name.clone().unwrap_or_default(),
            labels: self.metadata.labels.clone().unwrap_or_default(),
        }
    }
}

impl Watched for Service {
    const KIND: ObjKind = ObjKind::Service;
    fn to_object(&self) -> Object {
        let (namespace, name) = ns_name(&self.metadata);
        let spec = self.spec.as_ref();
        let mut cluster_ips = spec
            .and_then(|s| s.cluster_ips.as_ref())
            .map(|v| ips(v.iter()))
            .unwrap_or_default();
        if cluster_ips.is_empty() {
            // `None` (headless) does not parse and is left out.
            cluster_ips = ips(spec.and_then(|s| s.cluster_ip.as_ref()));
        }
        Object::Service {
            namespace,
            name,
            cluster_ips,
        }
    }
}

impl Watched for EndpointSlice {
    const KIND: ObjKind = ObjKind::EndpointSlice;
    fn to_object(&self) -> Object {
        let (namespace, name) = ns_name(&self.metadata);
        let mut endpoints = Vec::new();
        for ep in &self.endpoints {
            let pod = ep
                .target_ref
                .as_ref()
                .filter(|r| r.kind.as_deref() == Some("Pod"))
                .and_then(|r| r.name.clone());
            for ip in ips(ep.addresses.iter()) {
                endpoints.push((ip, pod.clone()));
            }
        }
        Object::EndpointSlice {
            namespace,
            name,
            service: self
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL).cloned()),
            endpoints,
        }
    }
}
