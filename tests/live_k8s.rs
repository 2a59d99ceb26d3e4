//! Live Kubernetes enrichment: HTTP servers placed in cgroup v2 directories named the way the
//! kubelet and containerd name a pod's container, the API stand-in (wirelens-k8s-standin;
//! not an API server) serving those pods with their ReplicaSet -> Deployment owners, and the
//! agent pointed at it by KUBECONFIG and NODE_NAME as the DaemonSet would be. Root only (CI
//! is root); WIRELENS_SKIP_ROOT_TESTS=1 skips them.

mod common;
mod otlp;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use wirelens_k8s_standin::{objects as o, StandIn};

const NODE: &str = "wl-test-node";
const REQUESTS: usize = 5;

/// A pod's container cgroup under the systemd driver:
/// `kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid>.slice/
/// cri-containerd-<id>.scope`. The directories this test made are removed on drop (after
/// the processes in them, whose guards are declared later).
struct PodCgroup {
    made: Vec<PathBuf>,
    leaf: PathBuf,
}

impl PodCgroup {
    fn new(uid: &str, container_id: &str) -> PodCgroup {
        let root = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.join("cgroup.controllers").exists())
            .expect("a cgroup v2 hierarchy");
        let mut dir = root;
        let mut made = Vec::new();
        for seg in [
            "kubepods.slice".to_string(),
            "kubepods-besteffort.slice".to_string(),
            format!("kubepods-besteffort-pod{}.slice", uid.replace('-', "_")),
            format!("cri-containerd-{container_id}.scope"),
        ] {
            dir = dir.join(seg);
            if std::fs::create_dir(&dir).is_ok() {
                made.push(dir.clone());
            }
        }
        assert!(dir.is_dir(), "cgroup {} not made", dir.display());
        PodCgroup { made, leaf: dir }
    }
}

impl Drop for PodCgroup {
    fn drop(&mut self) {
        for dir in self.made.iter().rev() {
            for _ in 0..50 {
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// `python3 -m http.server PORT` moved into `cgroup` before it starts.
fn server_in(cgroup: &Path, port: u16) -> Proc {
    let script = format!(
        "echo $$ > {}/cgroup.procs; exec python3 -m http.server {port} --bind 127.0.0.1 \
         --directory {} >/dev/null 2>&1",
        cgroup.display(),
        std::env::temp_dir().display()
    );
    let child = Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting python3 -m http.server");
    Proc {
        child,
        name: format!("http.server {port} in a pod cgroup"),
    }
}

/// Pods' containers running on this host: each pod's cgroup with an HTTP server in it,
/// listening on `ports` (in the pods' order). Dropped: the servers first, then the cgroups.
struct Running {
    servers: Vec<Proc>,
    cgroups: Vec<PodCgroup>,
    ports: Vec<u16>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.servers.clear();
        // The last made first: the first pod's cgroup made the parents the others share.
        while let Some(cg) = self.cgroups.pop() {
            drop(cg);
        }
    }
}

impl Running {
    fn start(pods: &[&TestPod]) -> Running {
        let cgroups: Vec<PodCgroup> = pods
            .iter()
            .map(|p| PodCgroup::new(&p.uid, &p.container_id))
            .collect();
        let ports: Vec<u16> = pods.iter().map(|_| free_port()).collect();
        let servers = cgroups
            .iter()
            .zip(&ports)
            .map(|(cg, port)| server_in(&cg.leaf, *port))
            .collect();
        for port in &ports {
            wait_for_port(*port);
        }
        Running {
            servers,
            cgroups,
            ports,
        }
    }
}

/// A pod of a Deployment on this node: (uid, container id, pod object, owners).
struct TestPod {
    uid: String,
    container_id: String,
    deployment: String,
    replicaset: String,
    pod: String,
    app: String,
    namespace: String,
}

impl TestPod {
    fn new(n: u8, deployment: &str, app: &str) -> TestPod {
        let tag = std::process::id();
        TestPod {
            uid: format!("{tag:08x}-0000-4000-8000-{:012x}", n),
            container_id: format!("{tag:08x}{}", format!("{n:02x}").repeat(28)),
            deployment: deployment.into(),
            replicaset: format!("{deployment}-5d8f7c9b6a"),
            pod: format!("{deployment}-5d8f7c9b6a-x{n}"),
            app: app.into(),
            namespace: "shop".into(),
        }
    }

    /// The same pod in namespace `ns` (the test applies that Namespace).
    fn in_namespace(mut self, ns: &str) -> TestPod {
        self.namespace = ns.into();
        self
    }

    fn objects(&self, n: u8) -> Vec<Value> {
        let d_uid = format!("d0000000-0000-4000-8000-{:012x}", n);
        vec![
            o::deployment(&self.namespace, &self.deployment, &d_uid),
            o::replicaset(
                &self.namespace,
                &self.replicaset,
                Some((&self.deployment, &d_uid)),
            ),
            o::pod(
                &self.namespace,
                &self.pod,
                &self.uid,
                NODE,
                &[
                    ("app.kubernetes.io/name", &self.app),
                    ("pod-template-hash", "5d8f7c9b6a"),
                ],
                Some(o::owner(
                    "apps/v1",
                    "ReplicaSet",
                    &self.replicaset,
                    "rs-uid",
                )),
                &format!("10.244.1.{n}"),
                &[("web", &self.container_id)],
            ),
        ]
    }

    fn expected_k8s(&self) -> Value {
        json!({
            "namespace": self.namespace,
            "pod": self.pod,
            "pod_uid": self.uid,
            "container": "web",
            "workload": self.deployment,
            "workload_kind": "Deployment",
            "service": self.app,
            "node": NODE,
        })
    }
}

fn counter(stderr: &str, name: &str) -> u64 {
    stderr
        .split_whitespace()
        .filter_map(|w| w.strip_prefix(name)?.strip_prefix('='))
        .filter_map(|v| v.parse().ok())
        .next_back()
        .unwrap_or_else(|| panic!("no {name} in {stderr}"))
}

fn served_on(records: &[Value], port: u16) -> Vec<&Value> {
    records
        .iter()
        .filter(|r| r["server"]["port"] == port && r["role"] == "server")
        .collect()
}

struct Cluster {
    api: StandIn,
    dir: tempfile::TempDir,
    kubeconfig: String,
}

impl Cluster {
    fn new(pods: &[(&TestPod, u8)]) -> Cluster {
        let api = StandIn::start().expect("API stand-in");
        api.apply(o::namespace("shop", &[("team", "web")]))
            .expect("ns");
        for (p, n) in pods {
            for obj in p.objects(*n) {
                api.apply(obj).expect("object");
            }
        }
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("kubeconfig");
        std::fs::write(&path, api.kubeconfig()).expect("kubeconfig");
        Cluster {
            api,
            kubeconfig: path.display().to_string(),
            dir,
        }
    }

    fn agent(&self, config: &str) -> Agent {
        let cfg = self.dir.path().join("wirelens.yaml");
        std::fs::write(&cfg, config).expect("config");
        Agent::start_with_env(
            &["--config".into(), cfg.display().to_string()],
            &[("KUBECONFIG", &self.kubeconfig), ("NODE_NAME", NODE)],
        )
    }
}

/// The agent's `/metrics` text.
fn scrape(port: u16) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("metrics endpoint");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text
}

/// One connection per request: python's http.server speaks HTTP/1.0 and closes.
fn send(port: u16, tag: &str) {
    for i in 0..REQUESTS {
        // The temp dir has no such file: python answers 404, a real status either way.
        let status = Client::connect(port).send(&[("GET", &format!("/{tag}-{i}"))]);
        assert_eq!(status, vec![404]);
    }
}

/// The requests counted under the pod's service with python's 404.
fn storefront_404s(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("http_server_request_duration_seconds_count{"))
        .filter(|l| l.contains("service_name=\"storefront\"") && l.contains("status_code=\"404\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn root_k8s_records_carry_the_pods_identity() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let web = TestPod::new(1, "web", "storefront");
    let cg = PodCgroup::new(&web.uid, &web.container_id);
    let port = free_port();
    let _server = server_in(&cg.leaf, port);
    wait_for_port(port);
    let cluster = Cluster::new(&[(&web, 1)]);
    let metrics_port = free_port();
    let receiver = otlp::Receiver::start(otlp::Wire::Grpc);
    let agent = cluster.agent(&format!(
        "metrics_addr: 127.0.0.1:{metrics_port}\nfilters:\n  include:\n    cgroup: [\"kubepods\"]\n\
         otlp:\n  endpoint: {}\n  protocol: grpc\n",
        receiver.endpoint()
    ));
    send(port, "identity");
    // The records reach /metrics one by one: wait for all of them, not the first.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = scrape(metrics_port);
        if storefront_404s(&text) >= REQUESTS as f64 || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (records, stderr) = agent.stop();
    // The series are the pod's service, not the process name (python3): one per path here.
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("http_server_request_duration_seconds_count{"))
        .collect();
    let storefront = storefront_404s(&text);
    assert_eq!(storefront, REQUESTS as f64, "{series:#?}\n{stderr}");
    assert!(!text.contains("service_name=\"python3\""), "{series:#?}");
    assert!(
        text.contains("wirelens_k8s_objects{kind=\"pod\"} 1\n"),
        "{text}"
    );
    let mine = served_on(&records, port);
    assert_eq!(mine.len(), REQUESTS, "{stderr}");
    for r in &mine {
        assert_eq!(r["k8s"], web.expected_k8s(), "{r}");
        assert_eq!(r["response"]["status"], 404);
    }
    // The spans go out under the pod's resource: service.name and the k8s.* attributes.
    receiver.wait(Duration::from_secs(10), "the pod's spans", |r| {
        r.spans().len() >= REQUESTS
    });
    let spans = receiver.spans();
    assert_eq!(spans.len(), REQUESTS, "{spans:#?}");
    for (res, span) in &spans {
        let want = [
            ("service.name", web.app.as_str()),
            ("k8s.namespace.name", "shop"),
            ("k8s.pod.name", web.pod.as_str()),
            ("k8s.pod.uid", web.uid.as_str()),
            ("k8s.container.name", "web"),
            ("k8s.deployment.name", web.deployment.as_str()),
            ("k8s.node.name", NODE),
        ];
        for (k, v) in want {
            assert_eq!(
                res.get(k).map(String::as_str),
                Some(v),
                "{k} of {res:?} ({span:?})"
            );
        }
    }
    let log = stderr.as_str();
    assert!(log.contains("kubernetes metadata synced"), "{log}");
    // The agent read the pods of its node only.
    assert!(
        cluster
            .api
            .requests()
            .iter()
            .any(|r| r.contains("/api/v1/pods?") && r.contains("spec.nodeName%3Dwl-test-node")),
        "{:?}",
        cluster.api.requests()
    );
}

#[test]
fn root_k8s_label_selector_keeps_a_pods_traffic_in_the_kernel() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let web = TestPod::new(2, "web", "storefront");
    let admin = TestPod::new(3, "admin", "backoffice");
    let running = Running::start(&[&web, &admin]);
    let (p_web, p_admin) = (running.ports[0], running.ports[1]);
    let cluster = Cluster::new(&[(&web, 2), (&admin, 3)]);
    // Only pods' cgroups, minus the storefront: the test's own client (not in a pod) and
    // the storefront server are decided in the kernel. Processes other work on this host
    // starts meanwhile are dropped until decided, so the counts below are this test's.
    let agent = cluster.agent(
        "filters:\n  include:\n    cgroup: [\"kubepods\"]\n  exclude:\n    \
         labels: {app.kubernetes.io/name: \"^storefront$\"}\n  undecided: drop\n",
    );
    send(p_web, "excluded");
    send(p_admin, "kept");
    let (records, stderr) = agent.stop();
    assert_eq!(served_on(&records, p_web).len(), 0, "{stderr}");
    let kept = served_on(&records, p_admin);
    assert_eq!(kept.len(), REQUESTS, "{stderr}");
    for r in &kept {
        assert_eq!(r["k8s"], admin.expected_k8s(), "{r}");
    }
    assert_eq!(records.len(), REQUESTS, "nothing else is kept: {records:?}");
    // Only the kept server's connections reached user space, one per request: the
    // storefront's and every client side never left the kernel.
    assert_eq!(counter(&stderr, "conns"), REQUESTS as u64, "{stderr}");
}

/// The `namespace_labels` key selects pods by their namespace's labels, and decisions follow
/// a namespace relabelled while the agent runs: its pods' servers, kept until then, are dropped
/// in the kernel from then on.
#[test]
fn root_k8s_namespace_labels_select_pods_and_follow_a_relabel() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let web = TestPod::new(6, "web", "storefront");
    let admin = TestPod::new(7, "admin", "backoffice").in_namespace("back");
    let running = Running::start(&[&web, &admin]);
    let (p_web, p_admin) = (running.ports[0], running.ports[1]);
    // Namespace `shop` is labelled team=web by the cluster; `back` team=ops.
    let cluster = Cluster::new(&[(&web, 6)]);
    cluster
        .api
        .apply(o::namespace("back", &[("team", "ops")]))
        .expect("ns");
    for obj in admin.objects(7) {
        cluster.api.apply(obj).expect("object");
    }
    let cfg = cluster.dir.path().join("wirelens.yaml");
    std::fs::write(
        &cfg,
        "filters:\n  include:\n    cgroup: [\"kubepods\"]\n  exclude:\n    \
         namespace_labels: {team: \"^web$\"}\n  undecided: drop\n",
    )
    .expect("config");
    // The filter control's debug lines say when decisions were made again.
    let agent = Agent::start_with_env(
        &["--config".into(), cfg.display().to_string()],
        &[
            ("KUBECONFIG", &cluster.kubeconfig),
            ("NODE_NAME", NODE),
            ("WIRELENS_LOG", "info,wirelens::filter_ctl=debug"),
        ],
    );
    const AGAIN: &str = "filters applied again";
    let log = || std::fs::read_to_string(&agent.stderr).unwrap_or_default();
    send(p_web, "excluded");
    send(p_admin, "kept");
    let before = log().matches(AGAIN).count();
    cluster
        .api
        .apply(o::namespace("back", &[("team", "web")]))
        .expect("relabel");
    let start = std::time::Instant::now();
    while log().matches(AGAIN).count() == before {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the filters were not applied again within 10 s of the relabel:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    send(p_admin, "relabelled");
    let (records, stderr) = agent.stop();
    assert_eq!(served_on(&records, p_web).len(), 0, "{stderr}");
    let kept = served_on(&records, p_admin);
    let paths: Vec<&str> = kept
        .iter()
        .filter_map(|r| r["request"]["path"].as_str())
        .collect();
    let want: Vec<String> = (0..REQUESTS).map(|i| format!("/kept-{i}")).collect();
    assert_eq!(paths, want, "{stderr}");
    for r in &kept {
        assert_eq!(r["k8s"], admin.expected_k8s(), "{r}");
    }
    assert_eq!(records.len(), REQUESTS, "nothing else is kept: {records:?}");
}

#[test]
fn root_k8s_pods_that_appear_later_are_decided_as_they_come() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let web = TestPod::new(4, "web", "storefront");
    let admin = TestPod::new(5, "admin", "backoffice");
    // The agent starts with no pods known, and no pod cgroups on the host.
    let cluster = Cluster::new(&[]);
    let agent = cluster.agent(
        "filters:\n  include:\n    cgroup: [\"kubepods\"]\n  exclude:\n    \
         labels: {app.kubernetes.io/name: \"^storefront$\"}\n  undecided: drop\n",
    );
    // Then the kubelet's part: cgroups, pods in the API, containers started.
    let cg_web = PodCgroup::new(&web.uid, &web.container_id);
    let cg_admin = PodCgroup::new(&admin.uid, &admin.container_id);
    for (p, n) in [(&web, 4), (&admin, 5)] {
        for obj in p.objects(n) {
            cluster.api.apply(obj).expect("object");
        }
    }
    let (p_web, p_admin) = (free_port(), free_port());
    let _s_web = server_in(&cg_web.leaf, p_web);
    let _s_admin = server_in(&cg_admin.leaf, p_admin);
    wait_for_port(p_web);
    wait_for_port(p_admin);
    send(p_web, "excluded");
    send(p_admin, "kept");
    let (records, stderr) = agent.stop();
    assert_eq!(served_on(&records, p_web).len(), 0, "{stderr}");
    let kept = served_on(&records, p_admin);
    assert_eq!(kept.len(), REQUESTS, "{stderr}");
    for r in &kept {
        assert_eq!(r["k8s"], admin.expected_k8s(), "{r}");
    }
    assert_eq!(counter(&stderr, "conns"), REQUESTS as u64, "{stderr}");
}
