//! Real-shaped objects, as `kubectl get -o json` prints them (the fields wirelens reads and
//! the usual ones around them). Each returns JSON the test may change further before
//! [`crate::StandIn::apply`].

use serde_json::{json, Map, Value};

fn labels(pairs: &[(&str, &str)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect::<Map<_, _>>(),
    )
}

/// An `ownerReferences` entry with `controller: true`.
pub fn owner(api_version: &str, kind: &str, name: &str, uid: &str) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "name": name, "uid": uid,
           "controller": true, "blockOwnerDeletion": true})
}

/// A running pod on `node` with one IP and the given containers (name, containerd id in
/// 64 hex digits).
#[allow(clippy::too_many_arguments)] // one argument per field a test varies
pub fn pod(
    namespace: &str,
    name: &str,
    uid: &str,
    node: &str,
    pod_labels: &[(&str, &str)],
    controller: Option<Value>,
    ip: &str,
    containers: &[(&str, &str)],
) -> Value {
    let specs: Vec<Value> = containers
        .iter()
        .map(|(n, _)| {
            json!({"name": n, "image": format!("registry.example/{n}:1.0"),
                             "imagePullPolicy": "IfNotPresent"})
        })
        .collect();
    let statuses: Vec<Value> = containers
        .iter()
        .map(|(n, id)| {
            json!({"name": n, "containerID": format!("containerd://{id}"),
                   "image": format!("registry.example/{n}:1.0"),
                   "imageID": "registry.example/sha256:00", "ready": true,
                   "restartCount": 0, "started": true,
                   "state": {"running": {"startedAt": "2026-11-22T00:00:01Z"}}})
        })
        .collect();
    json!({
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": name, "namespace": namespace, "uid": uid,
            "labels": labels(pod_labels),
            "annotations": {},
            "ownerReferences": controller.into_iter().collect::<Vec<_>>(),
        },
        "spec": {"nodeName": node, "containers": specs, "restartPolicy": "Always",
                 "serviceAccountName": "default", "dnsPolicy": "ClusterFirst"},
        "status": {
            "phase": "Running", "qosClass": "BestEffort",
            "hostIP": "192.0.2.10", "hostIPs": [{"ip": "192.0.2.10"}],
            "podIP": ip, "podIPs": [{"ip": ip}],
            "startTime": "2026-11-22T00:00:00Z",
            "containerStatuses": statuses,
        }
    })
}

/// A ReplicaSet owned by `deployment` (uid `deployment_uid`), or by nothing.
pub fn replicaset(namespace: &str, name: &str, deployment: Option<(&str, &str)>) -> Value {
    let owners: Vec<Value> = deployment
        .map(|(d, uid)| owner("apps/v1", "Deployment", d, uid))
        .into_iter()
        .collect();
    json!({"kind": "ReplicaSet", "apiVersion": "apps/v1",
           "metadata": {"name": name, "namespace": namespace, "ownerReferences": owners},
           "spec": {"replicas": 1, "selector": {"matchLabels": {}},
                    "template": {"metadata": {}, "spec": {"containers": []}}},
           "status": {"replicas": 1, "readyReplicas": 1}})
}

pub fn deployment(namespace: &str, name: &str, uid: &str) -> Value {
    json!({"kind": "Deployment", "apiVersion": "apps/v1",
           "metadata": {"name": name, "namespace": namespace, "uid": uid},
           "spec": {"replicas": 1, "selector": {"matchLabels": {}},
                    "template": {"metadata": {}, "spec": {"containers": []}}},
           "status": {"replicas": 1}})
}

/// A Job owned by `cronjob` (name, uid), or by nothing.
pub fn job(namespace: &str, name: &str, cronjob: Option<(&str, &str)>) -> Value {
    let owners: Vec<Value> = cronjob
        .map(|(c, uid)| owner("batch/v1", "CronJob", c, uid))
        .into_iter()
        .collect();
    json!({"kind": "Job", "apiVersion": "batch/v1",
           "metadata": {"name": name, "namespace": namespace, "ownerReferences": owners},
           "spec": {"template": {"metadata": {}, "spec": {"containers": [],
                                                          "restartPolicy": "Never"}}},
           "status": {"active": 1}})
}

pub fn namespace(name: &str, ns_labels: &[(&str, &str)]) -> Value {
    json!({"kind": "Namespace", "apiVersion": "v1",
           "metadata": {"name": name, "labels": labels(ns_labels)},
           "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
}

/// A ClusterIP Service on `port`.
pub fn service(namespace: &str, name: &str, cluster_ip: &str, port: u16) -> Value {
    json!({"kind": "Service", "apiVersion": "v1",
           "metadata": {"name": name, "namespace": namespace},
           "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
                    "ipFamilies": ["IPv4"], "selector": {"app.kubernetes.io/name": name},
                    "ports": [{"name": "http", "port": port, "protocol": "TCP",
                               "targetPort": port}]},
           "status": {"loadBalancer": {}}})
}

/// An EndpointSlice of `service` with one endpoint per (address, pod name, node).
pub fn endpointslice(
    namespace: &str,
    name: &str,
    service: &str,
    endpoints: &[(&str, &str, &str)],
) -> Value {
    let eps: Vec<Value> = endpoints
        .iter()
        .map(|(ip, pod, node)| {
            json!({"addresses": [ip], "conditions": {"ready": true, "serving": true,
                                                     "terminating": false},
                   "nodeName": node,
                   "targetRef": {"kind": "Pod", "name": pod, "namespace": namespace}})
        })
        .collect();
    json!({"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
           "metadata": {"name": name, "namespace": namespace,
                        "labels": {"kubernetes.io/service-name": service,
                                   "endpointslice.kubernetes.io/managed-by":
                                       "endpointslice-controller.k8s.io"}},
           "addressType": "IPv4", "endpoints": eps,
           "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]})
}
