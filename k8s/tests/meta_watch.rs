//! The metadata source against the API stand-in (wirelens-k8s-standin: list and watch over
//! HTTP as the API serves them; not an API server): what a record's identity would be after
//! each change the cluster makes.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use wirelens_k8s::meta::{client, Meta, MetaSettings, MetaSource, ObjKind, Peer};
use wirelens_k8s::{ContainerId, Runtime, WorkloadKind};
use wirelens_k8s_standin::{objects as o, Kind, StandIn};

const NODE: &str = "node-a";

fn cid(n: u8) -> String {
    format!("{:02x}", n).repeat(32)
}

fn container(n: u8) -> ContainerId {
    ContainerId::new(Runtime::Containerd, &cid(n)).expect("64 hex digits")
}

struct Fixture {
    api: StandIn,
    rt: tokio::runtime::Runtime,
    source: Option<MetaSource>,
    meta: Arc<Meta>,
    kubeconfig: std::path::PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // Watch tasks first, while the runtime still runs.
        self.source.take();
        let _ = std::fs::remove_file(&self.kubeconfig);
        self.api.down();
    }
}

/// The stand-in with `objects`, and a source pointed at it through a kubeconfig file,
/// synced.
fn start(objects: Vec<serde_json::Value>, grace: Duration) -> Fixture {
    let api = StandIn::start().expect("stand-in");
    for obj in objects {
        api.apply(obj).expect("object");
    }
    let kubeconfig = std::env::temp_dir().join(format!(
        "wirelens-k8s-test-{}-{}.yaml",
        std::process::id(),
        api.addr().port()
    ));
    std::fs::write(&kubeconfig, api.kubeconfig()).expect("kubeconfig");
    let mut settings = MetaSettings::for_node(NODE);
    settings.kubeconfig = Some(kubeconfig.clone());
    settings.grace = grace;
    settings.backoff_max = Duration::from_millis(500);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let c = rt.block_on(client(&settings)).expect("client");
    let source = {
        let _g = rt.enter();
        MetaSource::spawn(c, &settings)
    };
    assert!(
        rt.block_on(source.wait_synced(Duration::from_secs(10))),
        "not synced; requests: {:?}",
        api.requests()
    );
    let meta = source.meta();
    Fixture {
        api,
        rt,
        source: Some(source),
        meta,
        kubeconfig,
    }
}

fn eventually(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < end, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn service_of(meta: &Meta, n: u8) -> Option<String> {
    meta.read()
        .identity(Some(&container(n)), None)
        .map(|i| i.service_name)
}

fn shop() -> Vec<serde_json::Value> {
    vec![
        o::namespace("shop", &[("team", "payments")]),
        o::pod(
            "shop",
            "cart-0",
            "11111111-1111-4111-8111-111111111111",
            NODE,
            &[],
            None,
            "10.244.1.10",
            &[("cart", &cid(1))],
        ),
        // Another node's pod: not watched.
        o::pod(
            "shop",
            "cart-1",
            "22222222-2222-4222-8222-222222222222",
            "node-b",
            &[],
            None,
            "10.244.2.10",
            &[("cart", &cid(2))],
        ),
    ]
}

#[test]
fn add_update_and_delete_after_the_grace_period() {
    let f = start(shop(), Duration::from_secs(2));
    assert_eq!(
        service_of(&f.meta, 1).as_deref(),
        Some("cart-0"),
        "pod name"
    );
    assert_eq!(service_of(&f.meta, 2), None, "a pod of another node");
    assert_eq!(
        f.meta
            .read()
            .namespace_labels("shop")
            .and_then(|l| l.get("team"))
            .map(String::as_str),
        Some("payments")
    );
    let id = f
        .meta
        .read()
        .identity(Some(&container(1)), None)
        .expect("identity");
    assert_eq!(
        (
            id.namespace.as_str(),
            id.pod_name.as_str(),
            id.container_name.as_deref()
        ),
        ("shop", "cart-0", Some("cart"))
    );
    assert_eq!(id.node_name.as_deref(), Some(NODE));

    // Added after the list: arrives through the watch.
    f.api
        .apply(o::pod(
            "shop",
            "orders-0",
            "33333333-3333-4333-8333-333333333333",
            NODE,
            &[("app.kubernetes.io/name", "orders")],
            None,
            "10.244.1.11",
            &[("orders", &cid(3))],
        ))
        .unwrap();
    eventually("the new pod", Duration::from_secs(5), || {
        service_of(&f.meta, 3).as_deref() == Some("orders")
    });
    // By pod UID too (a process in the pod's cgroup but no container's).
    let uid = wirelens_k8s::PodUid::parse("33333333-3333-4333-8333-333333333333").unwrap();
    assert_eq!(
        f.meta.read().identity(None, Some(&uid)).map(|i| i.pod_name),
        Some("orders-0".to_string())
    );

    // Updated: the label now names it.
    let mut pod = o::pod(
        "shop",
        "cart-0",
        "11111111-1111-4111-8111-111111111111",
        NODE,
        &[("app.kubernetes.io/name", "cart")],
        None,
        "10.244.1.10",
        &[("cart", &cid(1))],
    );
    f.api.apply(pod.clone()).unwrap();
    eventually("the label", Duration::from_secs(5), || {
        service_of(&f.meta, 1).as_deref() == Some("cart")
    });
    // A restarted container gets a new id: the old one no longer names the pod.
    pod["status"]["containerStatuses"][0]["containerID"] =
        json!(format!("containerd://{}", cid(4)));
    f.api.apply(pod).unwrap();
    eventually("the new container id", Duration::from_secs(5), || {
        service_of(&f.meta, 4).as_deref() == Some("cart") && service_of(&f.meta, 1).is_none()
    });

    // Deleted: still named during the grace period, then gone.
    assert!(f.api.delete(Kind::Pod, "shop", "orders-0"));
    let deleted = Instant::now();
    eventually("the deletion", Duration::from_secs(5), || {
        f.meta.read().stats(ObjKind::Pod).deleting == 1
    });
    if deleted.elapsed() < Duration::from_millis(1500) {
        assert_eq!(
            service_of(&f.meta, 3).as_deref(),
            Some("orders"),
            "within grace"
        );
    }
    eventually("the purge", Duration::from_secs(6), || {
        service_of(&f.meta, 3).is_none()
    });
    assert!(
        deleted.elapsed() >= Duration::from_secs(2),
        "purged before the grace period"
    );
    let s = f.meta.read().stats(ObjKind::Pod);
    assert_eq!((s.objects, s.deleting, s.purged), (1, 0, 1), "{s:?}");
}

#[test]
fn owners_resolve_to_the_top_workload() {
    let rs_owner = o::owner("apps/v1", "ReplicaSet", "web-7d9f8b6c5d", "aaaa");
    let job_owner = o::owner("batch/v1", "Job", "report-29012345", "bbbb");
    let sts_owner = o::owner("apps/v1", "StatefulSet", "db", "cccc");
    let ds_owner = o::owner("apps/v1", "DaemonSet", "fluent", "dddd");
    let pod = |name: &str, uid: &str, owner: serde_json::Value, n: u8| {
        o::pod(
            "shop",
            name,
            uid,
            NODE,
            &[],
            Some(owner),
            &format!("10.244.1.{n}"),
            &[("c", &cid(n))],
        )
    };
    let f = start(
        vec![
            o::deployment("shop", "web", "d-uid"),
            o::replicaset("shop", "web-7d9f8b6c5d", Some(("web", "d-uid"))),
            o::job("shop", "report-29012345", Some(("report", "cj-uid"))),
            pod(
                "web-7d9f8b6c5d-x1",
                "44444444-4444-4444-8444-444444444441",
                rs_owner,
                11,
            ),
            pod(
                "report-29012345-q",
                "44444444-4444-4444-8444-444444444442",
                job_owner,
                12,
            ),
            pod(
                "db-0",
                "44444444-4444-4444-8444-444444444443",
                sts_owner,
                13,
            ),
            pod(
                "fluent-abcde",
                "44444444-4444-4444-8444-444444444444",
                ds_owner,
                14,
            ),
        ],
        Duration::from_secs(60),
    );
    let id = |n| {
        f.meta
            .read()
            .identity(Some(&container(n)), None)
            .expect("identity")
    };
    let web = id(11);
    assert_eq!(web.service_name, "web");
    assert_eq!(
        web.workload.as_ref().map(|w| (&w.kind, w.name.as_str())),
        Some((&WorkloadKind::Deployment, "web"))
    );
    assert_eq!(web.replicaset.as_deref(), Some("web-7d9f8b6c5d"));
    let report = id(12);
    assert_eq!(report.service_name, "report");
    assert_eq!(
        report.workload.as_ref().map(|w| &w.kind),
        Some(&WorkloadKind::CronJob)
    );
    assert_eq!(report.job.as_deref(), Some("report-29012345"));
    let db = id(13);
    assert_eq!(
        (db.service_name.as_str(), db.workload.map(|w| w.kind)),
        ("db", Some(WorkloadKind::StatefulSet))
    );
    let fl = id(14);
    assert_eq!(
        (fl.service_name.as_str(), fl.workload.map(|w| w.kind)),
        ("fluent", Some(WorkloadKind::DaemonSet))
    );

    // A Job made by hand (no CronJob) stays a Job once the watch says so.
    f.api
        .apply(o::job("shop", "report-29012345", None))
        .unwrap();
    eventually("the Job without owner", Duration::from_secs(5), || {
        id(12).workload.map(|w| w.kind) == Some(WorkloadKind::Job)
    });
}

#[test]
fn peers_are_named_by_pod_ip_cluster_ip_and_endpointslice() {
    let f = start(
        vec![
            o::pod(
                "shop",
                "cart-0",
                "55555555-5555-4555-8555-555555555551",
                NODE,
                &[("app.kubernetes.io/name", "cart")],
                None,
                "10.244.1.20",
                &[("cart", &cid(20))],
            ),
            o::service("shop", "cart", "10.96.0.20", 80),
            o::endpointslice(
                "shop",
                "cart-abcde",
                "cart",
                &[
                    ("10.244.1.20", "cart-0", NODE),
                    ("10.244.2.21", "cart-1", "node-b"),
                ],
            ),
        ],
        Duration::from_secs(60),
    );
    let peer = |ip: &str| f.meta.read().peer(&ip.parse::<IpAddr>().unwrap());
    assert_eq!(
        peer("10.244.1.20"),
        Some(Peer {
            namespace: "shop".into(),
            pod: Some("cart-0".into()),
            service: Some("cart".into()),
            workload: Some("cart".into()),
        }),
        "a pod of this node"
    );
    assert_eq!(
        peer("10.96.0.20"),
        Some(Peer {
            namespace: "shop".into(),
            service: Some("cart".into()),
            ..Peer::default()
        }),
        "the cluster IP"
    );
    assert_eq!(
        peer("10.244.2.21"),
        Some(Peer {
            namespace: "shop".into(),
            pod: Some("cart-1".into()),
            service: Some("cart".into()),
            workload: None,
        }),
        "a pod of another node, through the EndpointSlice"
    );
    assert_eq!(peer("10.244.9.9"), None);
    assert_eq!(peer("127.0.0.1"), None);
}

#[test]
fn expired_history_makes_the_watch_list_again() {
    let f = start(shop(), Duration::from_millis(500));
    let pod_lists = |api: &StandIn| {
        api.requests()
            .iter()
            .filter(|r| r.starts_with("GET /api/v1/pods?") && !r.contains("watch=true"))
            .count()
    };
    assert_eq!(pod_lists(&f.api), 1);
    // Changes the watch never sees: the API is down while they happen, and their history
    // is gone when it comes back, so resuming gets 410 Gone and the source lists again.
    f.api.down();
    assert!(f.api.delete(Kind::Pod, "shop", "cart-0"));
    f.api
        .apply(o::pod(
            "shop",
            "cart-2",
            "66666666-6666-4666-8666-666666666666",
            NODE,
            &[],
            None,
            "10.244.1.12",
            &[("cart", &cid(6))],
        ))
        .unwrap();
    f.api.expire_history();
    f.api.up().unwrap();
    eventually("the relist", Duration::from_secs(15), || {
        service_of(&f.meta, 6).is_some()
    });
    assert!(pod_lists(&f.api) >= 2, "{:?}", f.api.requests());
    let h = f.meta.health();
    let pods = h.iter().find(|k| k.kind == ObjKind::Pod).unwrap();
    assert!(pods.watch_restarts >= 1, "{pods:?}");
    // The pod missing from the new list is deleted, after the grace period.
    eventually(
        "cart-0 deleted by the relist",
        Duration::from_secs(5),
        || service_of(&f.meta, 1).is_none(),
    );
}

#[test]
fn the_last_state_serves_while_the_api_is_down_and_the_watch_resumes() {
    let f = start(shop(), Duration::from_millis(500));
    f.api.down();
    // Down for a while: errors counted, identities still served.
    eventually("watch errors", Duration::from_secs(10), || {
        f.meta.health().iter().any(|k| k.watch_errors > 0)
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        service_of(&f.meta, 1).as_deref(),
        Some("cart-0"),
        "served while down"
    );
    // A change made while down reaches the store once the API is back.
    f.api
        .apply(o::pod(
            "shop",
            "late-0",
            "77777777-7777-4777-8777-777777777777",
            NODE,
            &[],
            None,
            "10.244.1.13",
            &[("late", &cid(7))],
        ))
        .unwrap();
    f.api.up().unwrap();
    eventually(
        "the change made while down",
        Duration::from_secs(15),
        || service_of(&f.meta, 7).as_deref() == Some("late-0"),
    );
    assert_eq!(service_of(&f.meta, 1).as_deref(), Some("cart-0"));
    // Dropped watch connections resume too.
    f.api.drop_watches();
    f.api.apply(o::namespace("late", &[])).unwrap();
    eventually("a change after the drop", Duration::from_secs(10), || {
        f.meta.read().namespace_labels("late").is_some()
    });
    let _ = &f.rt;
}
