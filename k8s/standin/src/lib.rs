//! A stand-in for the Kubernetes API, for wirelens tests. **Not an API server**: it keeps
//! objects in memory and answers the two requests an informer makes, the way the real API
//! answers them over HTTP (Kubernetes API concepts, "Efficient detection of changes"):
//!
//! - list: `GET /api/v1/pods?fieldSelector=..&labelSelector=..` -> a `PodList` whose
//!   `metadata.resourceVersion` is the version the list was taken at;
//! - watch: `GET ..?watch=true&resourceVersion=RV&allowWatchBookmarks=true` -> a chunked
//!   stream of newline-delimited WatchEvents (`ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK`)
//!   for every change after `RV`; when `RV` is older than the kept history, one `ERROR` event
//!   carrying a `Status` with code 410 (Gone, reason `Expired`), as the API does after
//!   compaction.
//!
//! A test adds, updates and deletes objects ([`StandIn::apply`], [`StandIn::delete`]),
//! forgets history ([`StandIn::expire_history`], forcing 410 on the next watch), drops
//! every watch connection ([`StandIn::drop_watches`]) and takes the whole server down and
//! back up on the same port ([`StandIn::down`], [`StandIn::up`]). Objects are JSON in the
//! API's own shape (the [`objects`] module builds real-shaped ones); the server fills
//! `metadata.resourceVersion`, `uid` and `creationTimestamp`.
//!
//! Not served: create/update/patch verbs, single-object GETs, `in`/`notin` label
//! selectors (refused with 400), pagination (`limit` is ignored: one page), HTTP/2, TLS.

mod http;
pub mod objects;
mod selector;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{json, Value};
use tokio::sync::{broadcast, watch};

/// The kinds the stand-in serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Pod,
    Namespace,
    Service,
    ReplicaSet,
    Deployment,
    StatefulSet,
    DaemonSet,
    Job,
    CronJob,
    EndpointSlice,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::Pod,
        Kind::Namespace,
        Kind::Service,
        Kind::ReplicaSet,
        Kind::Deployment,
        Kind::StatefulSet,
        Kind::DaemonSet,
        Kind::Job,
        Kind::CronJob,
        Kind::EndpointSlice,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Pod => "Pod",
            Kind::Namespace => "Namespace",
            Kind::Service => "Service",
            Kind::ReplicaSet => "ReplicaSet",
            Kind::Deployment => "Deployment",
            Kind::StatefulSet => "StatefulSet",
            Kind::DaemonSet => "DaemonSet",
            Kind::Job => "Job",
            Kind::CronJob => "CronJob",
            Kind::EndpointSlice => "EndpointSlice",
        }
    }

    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Pod | Kind::Namespace | Kind::Service => "v1",
            Kind::ReplicaSet | Kind::Deployment | Kind::StatefulSet | Kind::DaemonSet => "apps/v1",
            Kind::Job | Kind::CronJob => "batch/v1",
            Kind::EndpointSlice => "discovery.k8s.io/v1",
        }
    }

    pub fn plural(self) -> &'static str {
        match self {
            Kind::Pod => "pods",
            Kind::Namespace => "namespaces",
            Kind::Service => "services",
            Kind::ReplicaSet => "replicasets",
            Kind::Deployment => "deployments",
            Kind::StatefulSet => "statefulsets",
            Kind::DaemonSet => "daemonsets",
            Kind::Job => "jobs",
            Kind::CronJob => "cronjobs",
            Kind::EndpointSlice => "endpointslices",
        }
    }

    pub fn namespaced(self) -> bool {
        self != Kind::Namespace
    }

    pub fn from_name(kind: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == kind)
    }
}

/// One change, as the watch sends it.
#[derive(Clone, Debug)]
struct Change {
    rv: u64,
    kind: Kind,
    typ: &'static str,
    object: Value,
}

type Key = (Kind, String, String);

struct State {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    history: Vec<Change>,
    /// A watch from a version below this gets 410 Gone.
    oldest: u64,
    tx: broadcast::Sender<Arc<Change>>,
    uids: u64,
    requests: Vec<String>,
}

pub(crate) struct Shared {
    state: Mutex<State>,
    /// Bumped to close every open watch.
    epoch: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A test thread that panicked while holding the lock leaves consistent data: every
        // mutation is complete before the guard drops.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The stand-in server. Dropping it stops it.
pub struct StandIn {
    rt: tokio::runtime::Runtime,
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Errors of the test-facing API.
#[derive(Debug)]
pub enum StandInError {
    /// The object has no `kind` the stand-in serves, or no `metadata.name`.
    BadObject(String),
    Io(std::io::Error),
}

impl std::fmt::Display for StandInError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StandInError::BadObject(m) => write!(f, "bad object: {m}"),
            StandInError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StandInError {}

impl StandIn {
    /// Starts on a free loopback port.
    pub fn start() -> Result<StandIn, StandInError> {
        StandIn::start_on("127.0.0.1:0".parse().expect("literal address"))
    }

    pub fn start_on(addr: SocketAddr) -> Result<StandIn, StandInError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("k8s-standin")
            .enable_all()
            .build()
            .map_err(StandInError::Io)?;
        let (tx, _) = broadcast::channel(4096);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                rv: 100,
                objects: BTreeMap::new(),
                history: Vec::new(),
                oldest: 0,
                tx,
                uids: 0,
                requests: Vec::new(),
            }),
            epoch: watch::channel(0).0,
        });
        let listener = rt.block_on(http::bind(addr)).map_err(StandInError::Io)?;
        let addr = listener.local_addr().map_err(StandInError::Io)?;
        let server = rt.spawn(http::serve(listener, shared.clone()));
        Ok(StandIn {
            rt,
            shared,
            addr,
            server: Mutex::new(Some(server)),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig that points a client at this stand-in (plain HTTP, no credentials).
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: standin\n  cluster:\n    \
             server: {}\ncontexts:\n- name: standin\n  context:\n    cluster: standin\n    \
             user: standin\ncurrent-context: standin\nusers:\n- name: standin\n  user: {{}}\n",
            self.url()
        )
    }

    /// Adds an object, or replaces the one with the same kind, namespace and name (then
    /// watchers see MODIFIED). Returns the object as stored, with its resourceVersion.
    pub fn apply(&self, mut obj: Value) -> Result<Value, StandInError> {
        let kind = obj
            .get("kind")
            .and_then(Value::as_str)
            .and_then(Kind::from_name)
            .ok_or_else(|| StandInError::BadObject(format!("unknown kind in {obj}")))?;
        obj["apiVersion"] = json!(kind.api_version());
        let name = obj["metadata"]["name"]
            .as_str()
            .ok_or_else(|| StandInError::BadObject("no metadata.name".into()))?
            .to_string();
        let ns = if kind.namespaced() {
            let ns = obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_string();
            obj["metadata"]["namespace"] = json!(ns);
            ns
        } else {
            String::new()
        };
        let mut st = self.shared.lock();
        st.rv += 1;
        let rv = st.rv;
        let key = (kind, ns, name);
        let typ = match st.objects.get(&key) {
            Some(old) => {
                obj["metadata"]["uid"] = old["metadata"]["uid"].clone();
                obj["metadata"]["creationTimestamp"] = old["metadata"]["creationTimestamp"].clone();
                "MODIFIED"
            }
            None => {
                if obj["metadata"]["uid"].as_str().is_none() {
                    st.uids += 1;
                    obj["metadata"]["uid"] =
                        json!(format!("00000000-0000-4000-8000-{:012x}", st.uids));
                }
                obj["metadata"]["creationTimestamp"] = json!("2026-11-22T00:00:00Z");
                "ADDED"
            }
        };
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        st.objects.insert(key, obj.clone());
        record(&mut st, kind, typ, obj.clone());
        Ok(obj)
    }

    /// Deletes an object; watchers see DELETED with its last state. False when absent.
    pub fn delete(&self, kind: Kind, namespace: &str, name: &str) -> bool {
        let mut st = self.shared.lock();
        let ns = if kind.namespaced() { namespace } else { "" };
        let Some(mut obj) = st.objects.remove(&(kind, ns.into(), name.into())) else {
            return false;
        };
        st.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(st.rv.to_string());
        record(&mut st, kind, "DELETED", obj);
        true
    }

    /// Forgets every change so far: a watch from any version before now gets 410 Gone, and
    /// the client must list again.
    pub fn expire_history(&self) {
        let mut st = self.shared.lock();
        st.history.clear();
        st.oldest = st.rv + 1;
        // Bump so that the current version itself is also too old.
        st.rv += 1;
    }

    /// Closes every open watch connection (clients reconnect from their last version).
    pub fn drop_watches(&self) {
        self.shared.epoch.send_modify(|e| *e += 1);
    }

    /// Stops listening and closes every connection. Objects and history are kept.
    pub fn down(&self) {
        if let Some(h) = self.server_slot().take() {
            h.abort();
            let _ = self.rt.block_on(h);
        }
        self.drop_watches();
    }

    /// Listens again on the same port.
    pub fn up(&self) -> Result<(), StandInError> {
        let mut slot = self.server_slot();
        if slot.is_some() {
            return Ok(());
        }
        let listener = self
            .rt
            .block_on(http::bind(self.addr))
            .map_err(StandInError::Io)?;
        *slot = Some(self.rt.spawn(http::serve(listener, self.shared.clone())));
        Ok(())
    }

    /// Request lines served so far (`GET /api/v1/pods?...`), oldest first.
    pub fn requests(&self) -> Vec<String> {
        self.shared.lock().requests.clone()
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().rv
    }

    fn server_slot(&self) -> MutexGuard<'_, Option<tokio::task::JoinHandle<()>>> {
        self.server.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.down();
    }
}

fn record(st: &mut State, kind: Kind, typ: &'static str, object: Value) {
    let change = Change {
        rv: st.rv,
        kind,
        typ,
        object,
    };
    // Nobody listening is fine.
    let _ = st.tx.send(Arc::new(change.clone()));
    st.history.push(change);
}
