//! The watches that fill the [`Store`]: this node's pods (field selector `spec.nodeName`),
//! every ReplicaSet and Job (their controllers: Deployment, CronJob), Namespace, Service and
//! EndpointSlice, each with kube-runtime's watcher (list, then watch from the list's
//! resourceVersion; a 410 Gone lists again).
//!
//! A watch that fails is tried again after a backoff (doubling from `backoff_min` to
//! `backoff_max`), and meanwhile the store keeps serving what it last knew. After each full
//! list, objects that were not listed are deleted (after the grace period, as any deletion).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::{self, watcher, Event};
use kube::Api;

use super::config::MetaSettings;
use super::convert::Watched;
use super::store::{KindStats, ObjKind, Store};

/// Why the source could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("reading kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("finding the Kubernetes API (KUBECONFIG, ~/.kube/config, in-cluster): {0}")]
    Infer(#[source] kube::config::InferConfigError),
    #[error("building the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
}

/// Counters of one kind's watch.
#[derive(Debug, Default)]
struct WatchCounters {
    /// Errors from the API or the connection (each followed by a retry after backoff).
    errors: AtomicU64,
    /// Full lists after the first (410 Gone, or a watch that could not resume).
    relists: AtomicU64,
    synced: AtomicBool,
}

/// One kind's figures, for health and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KindHealth {
    pub kind: ObjKind,
    pub store: KindStats,
    pub watch_errors: u64,
    pub watch_restarts: u64,
    pub synced: bool,
}

/// The metadata, shared between the watch tasks and the agent's readers.
pub struct Meta {
    store: RwLock<Store>,
    watches: Vec<(ObjKind, WatchCounters)>,
}

impl Meta {
    pub fn new(settings: &MetaSettings) -> Meta {
        Meta {
            store: RwLock::new(Store::new(settings.grace, settings.max_objects)),
            watches: ObjKind::ALL
                .iter()
                .map(|k| (*k, WatchCounters::default()))
                .collect(),
        }
    }

    /// Reads the store. A writer that panicked left complete data (each change is one call).
    pub fn read(&self) -> RwLockReadGuard<'_, Store> {
        self.store.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, Store> {
        self.store.write().unwrap_or_else(|e| e.into_inner())
    }

    fn counters(&self, kind: ObjKind) -> &WatchCounters {
        // Every kind is in the list (built from ObjKind::ALL).
        &self
            .watches
            .iter()
            .find(|(k, _)| *k == kind)
            .unwrap_or(&self.watches[0])
            .1
    }

    /// True once every kind has been listed once.
    pub fn synced(&self) -> bool {
        self.watches.iter().all(|(_, c)| c.synced.load(Relaxed))
    }

    pub fn health(&self) -> Vec<KindHealth> {
        let store = self.read();
        self.watches
            .iter()
            .map(|(k, c)| KindHealth {
                kind: *k,
                store: store.stats(*k),
                watch_errors: c.errors.load(Relaxed),
                watch_restarts: c.relists.load(Relaxed),
                synced: c.synced.load(Relaxed),
            })
            .collect()
    }
}

/// The running source; dropping it stops the watches (the last state stays readable
/// through any [`Meta`] handle still held).
pub struct MetaSource {
    meta: Arc<Meta>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for MetaSource {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A client from the settings' kubeconfig, or the inferred configuration.
pub async fn client(settings: &MetaSettings) -> Result<kube::Client, MetaError> {
    let config = match &settings.kubeconfig {
        Some(path) => {
            let err = |source| MetaError::Kubeconfig {
                path: path.display().to_string(),
                source,
            };
            let kc = kube::config::Kubeconfig::read_from(path).map_err(err)?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(err)?
        }
        None => kube::Config::infer().await.map_err(MetaError::Infer)?,
    };
    kube::Client::try_from(config).map_err(MetaError::Client)
}

impl MetaSource {
    /// Starts every watch on the current tokio runtime.
    pub fn spawn(client: kube::Client, settings: &MetaSettings) -> MetaSource {
        let meta = Arc::new(Meta::new(settings));
        let node = format!("spec.nodeName={}", settings.node_name);
        let s = settings.clone();
        let mut tasks = vec![
            tokio::spawn(run::<Pod>(
                Api::all(client.clone()),
                watcher::Config::default().fields(&node),
                meta.clone(),
                s.clone(),
            )),
            tokio::spawn(run::<ReplicaSet>(
                Api::all(client.clone()),
                watcher::Config::default(),
                meta.clone(),
                s.clone(),
            )),
            tokio::spawn(run::<Job>(
                Api::all(client.clone()),
                watcher::Config::default(),
                meta.clone(),
                s.clone(),
            )),
            tokio::spawn(run::<Namespace>(
                Api::all(client.clone()),
                watcher::Config::default(),
                meta.clone(),
                s.clone(),
            )),
            tokio::spawn(run::<Service>(
                Api::all(client.clone()),
                watcher::Config::default(),
                meta.clone(),
                s.clone(),
            )),
            tokio::spawn(run::<EndpointSlice>(
                Api::all(client),
                watcher::Config::default(),
                meta.clone(),
                s,
            )),
        ];
        // Deletions end their grace period even when no event comes.
        let purge = meta.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                purge.write().purge(Instant::now());
            }
        }));
        MetaSource { meta, tasks }
    }

    pub fn meta(&self) -> Arc<Meta> {
        self.meta.clone()
    }

    /// Waits until every kind was listed once, at most `timeout`; true when synced.
    pub async fn wait_synced(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while !self.meta.synced() {
            if Instant::now() >= end {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }
}

async fn run<K: Watched>(api: Api<K>, cfg: watcher::Config, meta: Arc<Meta>, s: MetaSettings) {
    let counters = meta.counters(K::KIND);
    let mut stream = watcher(api, cfg).boxed();
    let mut delay = s.backoff_min;
    let mut listed: Option<HashSet<super::store::Key>> = None;
    let mut lists = 0u64;
    while let Some(item) = stream.next().await {
        let ev = match item {
            Ok(ev) => {
                delay = s.backoff_min;
                ev
            }
            Err(e) => {
                counters.errors.fetch_add(1, Relaxed);
                tracing::warn!(
                    kind = K::KIND.name(),
                    error = %e,
                    retry_in_ms = delay.as_millis() as u64,
                    "kubernetes watch failed; the last known state keeps serving"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(s.backoff_max);
                continue;
            }
        };
        let now = Instant::now();
        match ev {
            Event::Init => {
                lists += 1;
                if lists > 1 {
                    counters.relists.fetch_add(1, Relaxed);
                }
                listed = Some(HashSet::new());
            }
            Event::InitApply(o) => {
                let obj = o.to_object();
                if let Some(l) = listed.as_mut() {
                    l.insert(obj.key());
                }
                apply(&meta, obj, now);
            }
            Event::InitDone => {
                if let Some(l) = listed.take() {
                    meta.write().retain(K::KIND, &l, now);
                }
                if !counters.synced.swap(true, Relaxed) {
                    tracing::info!(kind = K::KIND.name(), "kubernetes objects listed");
                }
            }
            Event::Apply(o) => apply(&meta, o.to_object(), now),
            Event::Delete(o) => {
                let obj = o.to_object();
                meta.write().delete(K::KIND, &obj.key(), now);
            }
        }
    }
}

fn apply(meta: &Meta, obj: super::store::Object, now: Instant) {
    let kind = obj.kind();
    let mut store = meta.write();
    if !store.apply(obj, now) {
        // Counted every time, logged at 1, 2, 4, 8... refusals.
        let refused = store.stats(kind).rejected_full;
        if refused.is_power_of_two() {
            tracing::warn!(
                kind = kind.name(),
                refused,
                "kubernetes object refused: kubernetes.max_objects reached"
            );
        }
    }
}
