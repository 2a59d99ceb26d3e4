//! Enrichment with Kubernetes metadata: pid -> `/proc/PID/cgroup` -> container -> pod ->
//! identity, and peer address -> pod or Service. The metadata comes from the k8s crate's
//! source (watches of this node's pods and the cluster's Services); this module starts it,
//! caches what each pid's cgroup says, and serves filters and records.
//!
//! One source per process, set once at start ([`start`]); without it (a plain host, or
//! `kubernetes.enabled: false`) every lookup answers "not in a pod".

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use wirelens_filters::Subject;
use wirelens_k8s::meta::{Meta, MetaSettings, MetaSource, Peer};
use wirelens_k8s::{identity_of_path, parse_proc_cgroup, CgroupIdentity, Identity, PodMeta};
use wirelens_protocols::Role;

use crate::output::Record;

/// How long what a pid's cgroup said is trusted: a pid that exits and is reused, or a
/// process moved to another cgroup, is seen again after this. Exec forgets it at once.
const CGROUP_TTL: Duration = Duration::from_secs(5);
/// Pids whose cgroup is remembered.
const CGROUP_CACHE: usize = 65_536;
/// Peer addresses whose answer is remembered.
const PEER_CACHE: usize = 65_536;

struct K8s {
    enricher: Enricher,
    /// Keeps the watches running for the life of the process.
    _source: MetaSource,
}

/// The metadata and what the agent remembers of it per process: answers who a pid is and
/// what a peer address is, for records and filters.
///
/// Working an identity out of the store takes a dozen string copies and is the same for
/// every record of a process, so each pid keeps its `k8s` object, and each peer address its
/// `peer_k8s`, shared by the records, until the store changes ([`Store::generation`]).
///
/// [`Store::generation`]: wirelens_k8s::meta::Store::generation
pub struct Enricher {
    meta: Arc<Meta>,
    cache: Mutex<Cache>,
}

/// The `k8s` object as records hold it.
pub type SharedK8s = Arc<Shared<K8sRecord>>;
/// The `peer_k8s` object as records hold it.
pub type SharedPeer = Arc<Shared<PeerRecord>>;

struct Cache {
    pids: lru::LruCache<u32, PidEntry>,
    peers: lru::LruCache<IpAddr, (u64, Option<SharedPeer>)>,
}

struct PidEntry {
    /// When `/proc/PID/cgroup` was read (trusted for [`CGROUP_TTL`]).
    read_at: Instant,
    cgroup: CgroupIdentity,
    /// The record object and the store generation it was worked out at.
    who: Option<(u64, Option<SharedK8s>)>,
}

impl Cache {
    /// The entry of `pid`, its cgroup read again when not known or too old; `None` when it
    /// cannot be read (the process is gone).
    fn entry(&mut self, pid: u32, now: Instant) -> Option<&mut PidEntry> {
        let fresh = self
            .pids
            .peek(&pid)
            .is_some_and(|e| now.saturating_duration_since(e.read_at) < CGROUP_TTL);
        if !fresh {
            let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
            self.pids.put(
                pid,
                PidEntry {
                    read_at: now,
                    cgroup: parse_proc_cgroup(&text).identity(),
                    who: None,
                },
            );
        }
        self.pids.get_mut(&pid)
    }

    /// The `k8s` object of `pid`'s records.
    fn who(
        &mut self,
        pid: u32,
        now: Instant,
        store: &wirelens_k8s::meta::Store,
    ) -> Option<SharedK8s> {
        let generation = store.generation();
        let e = self.entry(pid, now)?;
        if let Some((g, who)) = &e.who {
            if *g == generation {
                return who.clone();
            }
        }
        let who = store
            .identity(e.cgroup.container.as_ref(), e.cgroup.pod_uid.as_ref())
            .map(|i| Arc::new(Shared::new(K8sRecord::from(i))));
        e.who = Some((generation, who.clone()));
        who
    }

    /// The `peer_k8s` object of records whose other end is `ip`.
    fn peer(&mut self, ip: &str, store: &wirelens_k8s::meta::Store) -> Option<SharedPeer> {
        let ip = ip.parse::<IpAddr>().ok()?;
        let generation = store.generation();
        if let Some((g, peer)) = self.peers.get(&ip) {
            if *g == generation {
                return peer.clone();
            }
        }
        let peer = store
            .peer(&ip)
            .map(|p| Arc::new(Shared::new(PeerRecord(p))));
        self.peers.put(ip, (generation, peer.clone()));
        peer
    }
}

static K8S: OnceLock<K8s> = OnceLock::new();

/// The `k8s` object of a record (record-schema.md): who the observed process is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct K8sRecord {
    pub namespace: String,
    pub pod: String,
    pub pod_uid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The top workload's name (Deployment, CronJob, StatefulSet, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload_kind: Option<String>,
    /// `service.name` by the identity rule (README, "Kubernetes").
    pub service: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

impl K8sRecord {
    /// The `k8s.*` resource attributes of the observed pod (OpenTelemetry semantic
    /// conventions, "Kubernetes"), for the resource its spans are sent under.
    pub fn resource_attributes(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![
            ("k8s.namespace.name", self.namespace.clone()),
            ("k8s.pod.name", self.pod.clone()),
            ("k8s.pod.uid", self.pod_uid.clone()),
        ];
        if let Some(c) = &self.container {
            out.push(("k8s.container.name", c.clone()));
        }
        if let Some(n) = &self.node {
            out.push(("k8s.node.name", n.clone()));
        }
        let key = match self.workload_kind.as_deref() {
            Some("Deployment") => Some("k8s.deployment.name"),
            Some("ReplicaSet") => Some("k8s.replicaset.name"),
            Some("StatefulSet") => Some("k8s.statefulset.name"),
            Some("DaemonSet") => Some("k8s.daemonset.name"),
            Some("Job") => Some("k8s.job.name"),
            Some("CronJob") => Some("k8s.cronjob.name"),
            _ => None,
        };
        if let (Some(key), Some(w)) = (key, &self.workload) {
            out.push((key, w.clone()));
        }
        out
    }
}

impl From<Identity> for K8sRecord {
    fn from(id: Identity) -> K8sRecord {
        let (workload, workload_kind) = match id.workload {
            Some(w) => {
                let kind = match w.kind {
                    wirelens_k8s::WorkloadKind::Other(k) => k,
                    k => format!("{k:?}"),
                };
                (Some(w.name), Some(kind))
            }
            None => (None, None),
        };
        K8sRecord {
            namespace: id.namespace,
            pod: id.pod_name,
            pod_uid: id.pod_uid,
            container: id.container_name,
            workload,
            workload_kind,
            service: id.service_name,
            node: id.node_name,
        }
    }
}

/// Starts the metadata source, waits (at most the configured time) for the first list of
/// every kind, and makes it this process's source.
pub async fn start(settings: &MetaSettings) -> anyhow::Result<()> {
    let client = wirelens_k8s::meta::client(settings).await?;
    let source = MetaSource::spawn(client, settings);
    if source.wait_synced(settings.sync_timeout).await {
        tracing::info!(node = %settings.node_name, "kubernetes metadata synced");
    } else {
        tracing::warn!(
            node = %settings.node_name,
            waited_s = settings.sync_timeout.as_secs(),
            "kubernetes metadata not listed yet; capturing anyway, pods are named once known"
        );
    }
    let k = K8s {
        enricher: Enricher::new(source.meta()),
        _source: source,
    };
    if K8S.set(k).is_err() {
        anyhow::bail!("the kubernetes metadata source was started twice");
    }
    Ok(())
}

/// One kind's figures for the health metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KindRow {
    pub kind: &'static str,
    pub objects: u64,
    pub refused: u64,
    pub watch_errors: u64,
    pub watch_restarts: u64,
}

/// The source's figures; empty when it does not run.
pub fn health_rows() -> Vec<KindRow> {
    K8S.get().map_or_else(Vec::new, |k| {
        k.enricher
            .meta
            .health()
            .into_iter()
            .map(|h| KindRow {
                kind: h.kind.name(),
                objects: h.store.objects as u64,
                refused: h.store.rejected_full,
                watch_errors: h.watch_errors,
                watch_restarts: h.watch_restarts,
            })
            .collect()
    })
}

/// The Prometheus text of those figures (nothing when the source does not run).
pub fn render_health(rows: &[KindRow], out: &mut String) {
    use std::fmt::Write;
    if rows.is_empty() {
        return;
    }
    /// Name, type, help, value.
    type Metric = (
        &'static str,
        &'static str,
        &'static str,
        fn(&KindRow) -> u64,
    );
    let metrics: [Metric; 4] = [
        (
            "wirelens_k8s_objects",
            "gauge",
            "Kubernetes objects held, by kind (deleted ones in their grace period included).",
            |r| r.objects,
        ),
        (
            "wirelens_k8s_objects_refused_total",
            "counter",
            "Kubernetes objects refused because kubernetes.max_objects was reached.",
            |r| r.refused,
        ),
        (
            "wirelens_k8s_watch_errors_total",
            "counter",
            "Failed Kubernetes watch or list requests (each retried after a backoff).",
            |r| r.watch_errors,
        ),
        (
            "wirelens_k8s_watch_restarts_total",
            "counter",
            "Full lists after the first (410 Gone, or a watch that could not resume).",
            |r| r.watch_restarts,
        ),
    ];
    for (name, kind, help, get) in metrics {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for r in rows {
            let _ = writeln!(out, "{name}{{kind=\"{}\"}} {}", r.kind, get(r));
        }
    }
}

/// Bumped when pods change or a namespace's labels do: filters that use Kubernetes keys
/// decide again.
pub fn filter_generation() -> Option<u64> {
    K8S.get()
        .map(|k| k.enricher.meta.read().filter_generation())
}

/// Forget what the cgroup of `pid` said (it exec'd: it may be another program now).
pub fn forget_pid(pid: u32) {
    if let Some(k) = K8S.get() {
        k.enricher.forget_pid(pid);
    }
}

fn pod_of<'a>(store: &'a wirelens_k8s::meta::Store, id: &CgroupIdentity) -> Option<&'a PodMeta> {
    id.container
        .as_ref()
        .and_then(|c| store.pod_by_container(c))
        .or_else(|| id.pod_uid.as_ref().and_then(|u| store.pod_by_uid(u)))
}

fn fill(store: &wirelens_k8s::meta::Store, id: &CgroupIdentity, s: &mut Subject) {
    let Some(pod) = pod_of(store, id) else {
        return;
    };
    s.pod = Some(pod.name.clone());
    s.namespace = Some(pod.namespace.clone());
    s.labels = pod.labels.clone();
    s.namespace_labels = store
        .namespace_labels(&pod.namespace)
        .cloned()
        .unwrap_or_default();
    s.annotations = pod.annotations.clone();
    s.container = id
        .container
        .as_ref()
        .and_then(|c| pod.container(c))
        .map(|c| c.name.clone());
}

/// Fills the Kubernetes facts of a process (pod, namespace, labels, namespace labels,
/// annotations, container) for the filters.
pub fn fill_subject(pid: u32, s: &mut Subject) {
    let Some(k) = K8S.get() else { return };
    if let Some(id) = k.enricher.cgroup_of(pid) {
        fill(&k.enricher.meta.read(), &id, s);
    }
}

/// The same for a whole cgroup, from its path.
pub fn fill_subject_for_cgroup(path: &str, s: &mut Subject) {
    let Some(k) = K8S.get() else { return };
    fill(&k.enricher.meta.read(), &identity_of_path(path), s);
}

/// Adds the `k8s` object (who the observed process is) and `peer_k8s` (what the other end
/// is) to records, where known.
pub fn enrich(records: &mut [Record]) {
    if let Some(k) = K8S.get() {
        k.enricher.enrich(records);
    }
}

impl Enricher {
    pub fn new(meta: Arc<Meta>) -> Enricher {
        let size = |n| NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN);
        Enricher {
            meta,
            cache: Mutex::new(Cache {
                pids: lru::LruCache::sparse(size(CGROUP_CACHE)),
                peers: lru::LruCache::sparse(size(PEER_CACHE)),
            }),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes `id` as what the cgroup of `pid` says, as if `/proc/PID/cgroup` had just been
    /// read (for benchmarks and tests, whose processes are in no pod).
    pub fn remember_cgroup(&self, pid: u32, id: CgroupIdentity) {
        self.cache().pids.put(
            pid,
            PidEntry {
                read_at: Instant::now(),
                cgroup: id,
                who: None,
            },
        );
    }

    fn forget_pid(&self, pid: u32) {
        self.cache().pids.pop(&pid);
    }

    /// What the cgroup of `pid` says (cached).
    fn cgroup_of(&self, pid: u32) -> Option<CgroupIdentity> {
        Some(self.cache().entry(pid, Instant::now())?.cgroup.clone())
    }

    /// Adds the `k8s` and `peer_k8s` objects to records, where known.
    ///
    /// The store is read, and the cache held, for the whole batch; a pid not seen for
    /// [`CGROUP_TTL`] has its `/proc/PID/cgroup` read meanwhile.
    pub fn enrich(&self, records: &mut [Record]) {
        if records.is_empty() {
            return;
        }
        let now = Instant::now();
        let store = self.meta.read();
        let mut cache = self.cache();
        for r in records.iter_mut() {
            if let Some(p) = &r.process {
                r.k8s = cache.who(p.pid, now, &store);
            }
            let peer = match r.role {
                Role::Server => &r.client.ip,
                Role::Client => &r.server.ip,
                _ => continue,
            };
            r.peer_k8s = cache.peer(peer, &store);
        }
    }
}

/// A record object shared by every record of a process (or of a peer), with its JSON
/// written once: the writer copies it instead of serializing a dozen strings per record.
#[derive(Debug, PartialEq, Eq)]
pub struct Shared<T> {
    value: T,
    /// Empty when serializing failed; the writer then serializes `value` itself.
    json: Box<str>,
}

impl<T: Serialize> Shared<T> {
    pub fn new(value: T) -> Shared<T> {
        let json = serde_json::to_string(&value).unwrap_or_default().into();
        Shared { value, json }
    }

    /// The JSON of the value, when it could be written.
    pub fn json(&self) -> Option<&str> {
        Some(&*self.json).filter(|j| !j.is_empty())
    }
}

impl<T> std::ops::Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: Serialize> Serialize for Shared<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(s)
    }
}

/// The `peer_k8s` object of a record: namespace, pod, service, workload of the other end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct PeerRecord(pub Peer);

#[cfg(test)]
mod tests {
    use super::*;
    use wirelens_k8s::{ContainerId, ContainerKind, ContainerStatus, NoOwners, OwnerRef, Runtime};

    #[test]
    fn the_record_object_of_a_deployments_pod() {
        let id = "ab".repeat(32);
        let pod = PodMeta {
            namespace: "shop".into(),
            name: "web-5d8f7c9b6a-x1".into(),
            uid: "u1".into(),
            labels: [("pod-template-hash".to_string(), "5d8f7c9b6a".to_string())].into(),
            owner_references: vec![OwnerRef {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: "web-5d8f7c9b6a".into(),
                uid: "rs".into(),
                controller: true,
            }],
            node_name: Some("n1".into()),
            containers: vec![ContainerStatus::new(
                "app",
                ContainerKind::Regular,
                Some(&format!("containerd://{id}")),
            )],
            ..PodMeta::default()
        };
        let c = ContainerId::new(Runtime::Containerd, &id).unwrap();
        let rec = K8sRecord::from(Identity::of(&pod, Some(&c), &NoOwners));
        assert_eq!(
            serde_json::to_value(&rec).unwrap(),
            serde_json::json!({"namespace": "shop", "pod": "web-5d8f7c9b6a-x1", "pod_uid": "u1",
                               "container": "app", "workload": "web",
                               "workload_kind": "Deployment", "service": "web", "node": "n1"})
        );
    }

    /// A pod named `name` at `ip`, running container `id`, `app.kubernetes.io/name: service`.
    fn pod(name: &str, ip: &str, id: &str, service: &str) -> wirelens_k8s::meta::Object {
        wirelens_k8s::meta::Object::Pod(PodMeta {
            namespace: "shop".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            labels: [(
                wirelens_k8s::identity::NAME_LABEL.to_string(),
                service.to_string(),
            )]
            .into(),
            node_name: Some("n1".into()),
            pod_ips: vec![ip.parse().expect("literal")],
            containers: vec![ContainerStatus::new(
                "app",
                ContainerKind::Regular,
                Some(&format!("containerd://{id}")),
            )],
            ..PodMeta::default()
        })
    }

    /// What pid 7 served to 10.0.0.2.
    fn served() -> Record {
        let process = Some(crate::output::ProcessRecord {
            pid: 7,
            comm: "web".into(),
        });
        crate::output::served_get("10.0.0.2:40000", "10.0.0.1:80", Role::Server, process, None)
    }

    #[test]
    fn records_share_their_objects_until_the_store_changes() {
        let meta = Arc::new(Meta::new(&MetaSettings::for_node("n1")));
        let (a, b) = ("ab".repeat(32), "cd".repeat(32));
        let now = Instant::now();
        meta.write().apply(pod("a", "10.0.0.1", &a, "alpha"), now);
        meta.write().apply(pod("b", "10.0.0.2", &b, "beta"), now);
        let e = Enricher::new(meta.clone());
        e.remember_cgroup(
            7,
            CgroupIdentity {
                container: ContainerId::new(Runtime::Containerd, &a),
                ..CgroupIdentity::default()
            },
        );
        let mut rs = vec![served(), served()];
        e.enrich(&mut rs);
        let (who, peer) = (rs[0].k8s.clone(), rs[0].peer_k8s.clone());
        assert_eq!(who.as_ref().map(|k| k.service.as_str()), Some("alpha"));
        assert_eq!(peer.as_ref().and_then(|p| p.0.pod.as_deref()), Some("b"));
        assert_eq!(
            peer.as_ref().and_then(|p| p.0.workload.as_deref()),
            Some("beta")
        );
        // Worked out once: the second record holds the same objects.
        fn same<T>(x: &Option<Arc<T>>, y: &Option<Arc<T>>) -> bool {
            matches!((x, y), (Some(x), Some(y)) if Arc::ptr_eq(x, y))
        }
        assert!(same(&rs[1].k8s, &who) && same(&rs[1].peer_k8s, &peer));
        // The pod is relabeled and the peer's pod moves to another address: the next
        // records say so.
        meta.write()
            .apply(pod("a", "10.0.0.1", &a, "alpha-v2"), now);
        meta.write().apply(pod("b", "10.0.0.3", &b, "beta"), now);
        let mut rs = vec![served()];
        e.enrich(&mut rs);
        assert_eq!(
            rs[0].k8s.as_ref().map(|k| k.service.as_str()),
            Some("alpha-v2")
        );
        assert!(rs[0].peer_k8s.is_none());
        // Unchanged store, and the process exec'd into a cgroup of no pod.
        e.forget_pid(7);
        e.remember_cgroup(7, CgroupIdentity::default());
        let mut rs = vec![served()];
        e.enrich(&mut rs);
        assert!(rs[0].k8s.is_none(), "a process in no pod has no k8s object");
    }

    #[test]
    fn health_text() {
        let mut out = String::new();
        render_health(&[], &mut out);
        assert_eq!(out, "");
        let row = KindRow {
            kind: "pod",
            objects: 3,
            refused: 0,
            watch_errors: 2,
            watch_restarts: 1,
        };
        render_health(&[row], &mut out);
        assert!(
            out.contains("wirelens_k8s_objects{kind=\"pod\"} 3\n"),
            "{out}"
        );
        assert!(out.contains("wirelens_k8s_watch_errors_total{kind=\"pod\"} 2\n"));
        assert!(out.contains("wirelens_k8s_watch_restarts_total{kind=\"pod\"} 1\n"));
        assert!(out.contains("# TYPE wirelens_k8s_objects gauge\n"));
    }

    #[test]
    fn the_config_section() {
        let c = crate::config::Config::parse(
            "kubernetes:\n  enabled: true\n  node_name: n1\n  grace_period_s: 5\n",
        )
        .unwrap();
        let s = c.build().unwrap().kubernetes.expect("on");
        assert_eq!(s.node_name, "n1");
        assert_eq!(s.grace, Duration::from_secs(5));
        let (field, _) = crate::config::Config::parse("kubernetes:\n  node: n1\n").unwrap_err();
        assert_eq!(field, "kubernetes.node");
        let c = crate::config::Config::parse("kubernetes:\n  enabled: false\n").unwrap();
        assert_eq!(c.build().unwrap().kubernetes, None);
    }
}
