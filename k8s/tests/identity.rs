//! The identity rule, one test per branch, on pods shaped as the API serves them.

use wirelens_k8s::{
    ContainerId, ContainerKind, ContainerStatus, Identity, NoOwners, OwnerIndex, OwnerRef, PodMeta,
    PodUid, ServiceNameSource, Workload, WorkloadKind,
};

const CID: &str = "fa0c4b20a6b9a462b152a2d353393a0d3e42cd476107cf191a25e69b359fad36";
const SIDECAR: &str = "9fe13daa90e356f55025bc09f63a85ee994f6a251e8633ba0a7213113f33227a";

fn owner(api_version: &str, kind: &str, name: &str) -> OwnerRef {
    OwnerRef {
        api_version: api_version.into(),
        kind: kind.into(),
        name: name.into(),
        uid: format!("uid-of-{name}"),
        controller: true,
    }
}

fn pod(name: &str, labels: &[(&str, &str)], owners: Vec<OwnerRef>) -> PodMeta {
    PodMeta {
        namespace: "shop".into(),
        name: name.into(),
        uid: "0f3e5c1a-7b2d-4e8f-9a6b-1c2d3e4f5a6b".into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        owner_references: owners,
        node_name: Some("node-1".into()),
        pod_ips: vec!["10.244.1.7".parse().unwrap()],
        containers: vec![
            ContainerStatus::new(
                "app",
                ContainerKind::Regular,
                Some(&format!("containerd://{CID}")),
            ),
            ContainerStatus::new(
                "proxy",
                ContainerKind::Regular,
                Some(&format!("containerd://{SIDECAR}")),
            ),
            ContainerStatus::new("migrate", ContainerKind::Init, None),
        ],
        ..PodMeta::default()
    }
}

fn workload(kind: WorkloadKind, name: &str) -> Option<Workload> {
    Some(Workload {
        kind,
        name: name.into(),
    })
}

/// A Deployment's pod: owned by ReplicaSet `cart-7c9f8d6b5`.
fn deployment_pod(labels: &[(&str, &str)]) -> PodMeta {
    pod(
        "cart-7c9f8d6b5-x2x9q",
        labels,
        vec![owner("apps/v1", "ReplicaSet", "cart-7c9f8d6b5")],
    )
}

fn index_with_deployment() -> OwnerIndex {
    let mut idx = OwnerIndex::default();
    idx.insert(
        "shop",
        "ReplicaSet",
        "cart-7c9f8d6b5",
        Some(owner("apps/v1", "Deployment", "cart")),
    );
    idx
}

#[test]
fn the_name_label_wins() {
    let p = deployment_pod(&[
        ("app.kubernetes.io/name", "cart-api"),
        ("pod-template-hash", "7c9f8d6b5"),
    ]);
    let id = Identity::of(&p, None, &index_with_deployment());
    assert_eq!(id.service_name, "cart-api");
    assert_eq!(id.service_name_source, ServiceNameSource::Label);
    // The workload is still resolved for the k8s.* attributes.
    assert_eq!(id.workload, workload(WorkloadKind::Deployment, "cart"));
}

#[test]
fn an_empty_name_label_does_not_count() {
    let p = deployment_pod(&[("app.kubernetes.io/name", " ")]);
    let id = Identity::of(&p, None, &index_with_deployment());
    assert_eq!(id.service_name, "cart");
    assert_eq!(id.service_name_source, ServiceNameSource::Workload);
}

#[test]
fn replicaset_owned_by_a_deployment() {
    let p = deployment_pod(&[("pod-template-hash", "7c9f8d6b5")]);
    let id = Identity::of(&p, None, &index_with_deployment());
    assert_eq!(id.service_name, "cart");
    assert_eq!(id.workload, workload(WorkloadKind::Deployment, "cart"));
    assert_eq!(id.replicaset.as_deref(), Some("cart-7c9f8d6b5"));
}

#[test]
fn replicaset_not_seen_yet_falls_back_to_the_template_hash() {
    let p = deployment_pod(&[("pod-template-hash", "7c9f8d6b5")]);
    let id = Identity::of(&p, None, &NoOwners);
    assert_eq!(id.service_name, "cart");
    assert_eq!(id.workload, workload(WorkloadKind::Deployment, "cart"));
    assert_eq!(id.replicaset.as_deref(), Some("cart-7c9f8d6b5"));
}

#[test]
fn replicaset_not_seen_and_no_matching_hash_stays_a_replicaset() {
    for labels in [vec![], vec![("pod-template-hash", "other")]] {
        let p = deployment_pod(&labels);
        let id = Identity::of(&p, None, &NoOwners);
        assert_eq!(id.service_name, "cart-7c9f8d6b5", "{labels:?}");
        assert_eq!(
            id.workload,
            workload(WorkloadKind::ReplicaSet, "cart-7c9f8d6b5")
        );
        assert_eq!(id.replicaset, None);
    }
}

#[test]
fn bare_replicaset() {
    // Known to have no controller: its name is the workload, even with a hash-like suffix.
    let p = deployment_pod(&[("pod-template-hash", "7c9f8d6b5")]);
    let mut idx = OwnerIndex::default();
    idx.insert("shop", "ReplicaSet", "cart-7c9f8d6b5", None);
    let id = Identity::of(&p, None, &idx);
    assert_eq!(id.service_name, "cart-7c9f8d6b5");
    assert_eq!(
        id.workload,
        workload(WorkloadKind::ReplicaSet, "cart-7c9f8d6b5")
    );
}

#[test]
fn replicaset_owned_by_a_custom_controller() {
    let p = deployment_pod(&[]);
    let mut idx = OwnerIndex::default();
    idx.insert(
        "shop",
        "ReplicaSet",
        "cart-7c9f8d6b5",
        Some(owner("argoproj.io/v1alpha1", "Rollout", "cart")),
    );
    let id = Identity::of(&p, None, &idx);
    assert_eq!(id.service_name, "cart");
    assert_eq!(
        id.workload,
        workload(WorkloadKind::Other("Rollout".into()), "cart")
    );
}

#[test]
fn job_owned_by_a_cronjob() {
    let p = pod(
        "report-29123456-abcde",
        &[],
        vec![owner("batch/v1", "Job", "report-29123456")],
    );
    let mut idx = OwnerIndex::default();
    idx.insert(
        "shop",
        "Job",
        "report-29123456",
        Some(owner("batch/v1", "CronJob", "report")),
    );
    let id = Identity::of(&p, None, &idx);
    assert_eq!(id.service_name, "report");
    assert_eq!(id.workload, workload(WorkloadKind::CronJob, "report"));
    assert_eq!(id.job.as_deref(), Some("report-29123456"));
}

#[test]
fn job_alone_or_unknown() {
    let p = pod(
        "migrate-abcde",
        &[],
        vec![owner("batch/v1", "Job", "migrate")],
    );
    let mut idx = OwnerIndex::default();
    idx.insert("shop", "Job", "migrate", None);
    for id in [
        Identity::of(&p, None, &idx),
        Identity::of(&p, None, &NoOwners),
    ] {
        assert_eq!(id.service_name, "migrate");
        assert_eq!(id.workload, workload(WorkloadKind::Job, "migrate"));
        assert_eq!(id.job, None);
    }
}

#[test]
fn statefulset_and_daemonset() {
    for (kind, want) in [
        ("StatefulSet", WorkloadKind::StatefulSet),
        ("DaemonSet", WorkloadKind::DaemonSet),
    ] {
        let p = pod("db-0", &[], vec![owner("apps/v1", kind, "db")]);
        let id = Identity::of(&p, None, &NoOwners);
        assert_eq!(id.service_name, "db", "{kind}");
        assert_eq!(id.workload, workload(want, "db"));
    }
}

#[test]
fn no_controller_means_the_pod_name() {
    let mut not_controller = owner("apps/v1", "ReplicaSet", "cart-7c9f8d6b5");
    not_controller.controller = false;
    for owners in [vec![], vec![not_controller]] {
        let p = pod("debug-shell", &[], owners);
        let id = Identity::of(&p, None, &NoOwners);
        assert_eq!(id.service_name, "debug-shell");
        assert_eq!(id.service_name_source, ServiceNameSource::PodName);
        assert_eq!(id.workload, None);
    }
}

#[test]
fn mirror_pod_is_not_a_workload_of_its_node() {
    let mut p = pod(
        "kube-apiserver-node-1",
        &[("component", "kube-apiserver")],
        vec![owner("v1", "Node", "node-1")],
    );
    let hash = "8c5bfd6fae2c2caff9fb61699e366262";
    p.annotations
        .insert("kubernetes.io/config.mirror".into(), hash.into());
    let id = Identity::of(&p, None, &NoOwners);
    assert_eq!(id.service_name, "kube-apiserver-node-1");
    assert_eq!(id.workload, None);
    // Its cgroup carries the static pod's UID, not the mirror pod's.
    assert!(p.has_cgroup_uid(&PodUid::parse(hash).unwrap()));
    assert!(p.has_cgroup_uid(&PodUid::parse(&p.uid).unwrap()));
    assert!(!p.has_cgroup_uid(&PodUid::parse("7d5a2f0e4b1c3a9d8e6f1b2c3d4e5f60").unwrap()));
}

#[test]
fn kind_from_another_group_is_not_a_builtin() {
    let p = pod(
        "cart-xyz",
        &[],
        vec![owner("example.com/v1", "ReplicaSet", "cart")],
    );
    let id = Identity::of(&p, None, &index_with_deployment());
    assert_eq!(
        id.workload,
        workload(WorkloadKind::Other("ReplicaSet".into()), "cart")
    );
}

#[test]
fn container_name_from_the_cgroup_id() {
    let p = deployment_pod(&[]);
    let cid = ContainerId::from_status(&format!("containerd://{SIDECAR}")).unwrap();
    let id = Identity::of(&p, Some(&cid), &index_with_deployment());
    assert_eq!(id.container_name.as_deref(), Some("proxy"));
    // The pause container (the sandbox) is in no status: the pod, without a container.
    let pause = ContainerId::from_status(
        "containerd://1111111111111111111111111111111111111111111111111111111111111111",
    )
    .unwrap();
    let id = Identity::of(&p, Some(&pause), &index_with_deployment());
    assert_eq!(id.container_name, None);
    assert_eq!(id.pod_name, "cart-7c9f8d6b5-x2x9q");
}

#[test]
fn attributes_follow_the_semantic_conventions() {
    let p = deployment_pod(&[("pod-template-hash", "7c9f8d6b5")]);
    let cid = ContainerId::from_status(&format!("containerd://{CID}")).unwrap();
    let id = Identity::of(&p, Some(&cid), &index_with_deployment());
    let attrs = id.attributes();
    let want: Vec<(&str, String)> = vec![
        ("service.name", "cart".into()),
        ("k8s.namespace.name", "shop".into()),
        ("k8s.pod.name", "cart-7c9f8d6b5-x2x9q".into()),
        ("k8s.pod.uid", "0f3e5c1a-7b2d-4e8f-9a6b-1c2d3e4f5a6b".into()),
        ("k8s.node.name", "node-1".into()),
        ("k8s.container.name", "app".into()),
        ("k8s.replicaset.name", "cart-7c9f8d6b5".into()),
        ("k8s.deployment.name", "cart".into()),
    ];
    assert_eq!(attrs, want);

    let cron = pod(
        "report-29123456-abcde",
        &[],
        vec![owner("batch/v1", "Job", "report-29123456")],
    );
    let mut idx = OwnerIndex::default();
    idx.insert(
        "shop",
        "Job",
        "report-29123456",
        Some(owner("batch/v1", "CronJob", "report")),
    );
    let attrs = Identity::of(&cron, None, &idx).attributes();
    assert!(attrs.contains(&("k8s.job.name", "report-29123456".into())));
    assert!(attrs.contains(&("k8s.cronjob.name", "report".into())));
    assert!(!attrs.iter().any(|(k, _)| *k == "k8s.container.name"));
}

#[test]
fn owner_index_forgets() {
    let mut idx = index_with_deployment();
    assert_eq!(idx.len(), 1);
    idx.remove("shop", "ReplicaSet", "cart-7c9f8d6b5");
    assert!(idx.is_empty());
    let p = deployment_pod(&[]);
    assert_eq!(
        Identity::of(&p, None, &idx).workload,
        workload(WorkloadKind::ReplicaSet, "cart-7c9f8d6b5")
    );
}
