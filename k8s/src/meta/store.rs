//! What the agent knows of the cluster: this node's pods, the owners of their controllers,
//! namespaces, Services and EndpointSlices, with indexes by container id, pod UID and IP.
//!
//! Bounded: each kind holds at most `max_objects` objects; one more is refused and counted.
//! A deleted object keeps serving for the grace period (records of its last requests are
//! still being paired), then it is purged.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::identity::{Identity, Lookup, OwnerRef, Owners, PodMeta};
use crate::ids::{ContainerId, PodUid};

/// The kinds the store holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjKind {
    Pod,
    ReplicaSet,
    Job,
    Namespace,
    Service,
    EndpointSlice,
}

impl ObjKind {
    pub const ALL: [ObjKind; 6] = [
        ObjKind::Pod,
        ObjKind::ReplicaSet,
        ObjKind::Job,
        ObjKind::Namespace,
        ObjKind::Service,
        ObjKind::EndpointSlice,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ObjKind::Pod => "pod",
            ObjKind::ReplicaSet => "replicaset",
            ObjKind::Job => "job",
            ObjKind::Namespace => "namespace",
            ObjKind::Service => "service",
            ObjKind::EndpointSlice => "endpointslice",
        }
    }
}

/// One object, reduced to what wirelens uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Object {
    Pod(PodMeta),
    /// A ReplicaSet or a Job, with its own controller.
    Owned {
        kind: ObjKind,
        namespace: String,
        name: String,
        controller: Option<OwnerRef>,
    },
    Namespace {
        name: String,
        labels: BTreeMap<String, String>,
    },
    Service {
        namespace: String,
        name: String,
        cluster_ips: Vec<IpAddr>,
    },
    EndpointSlice {
        namespace: String,
        name: String,
        /// `kubernetes.io/service-name` label.
        service: Option<String>,
        /// Each address with the pod it belongs to (`targetRef` of kind Pod).
        endpoints: Vec<(IpAddr, Option<String>)>,
    },
}

/// (namespace, name); the namespace is empty for a Namespace.
pub type Key = (String, String);

impl Object {
    pub fn kind(&self) -> ObjKind {
        match self {
            Object::Pod(_) => ObjKind::Pod,
            Object::Owned { kind, .. } => *kind,
            Object::Namespace { .. } => ObjKind::Namespace,
            Object::Service { .. } => ObjKind::Service,
            Object::EndpointSlice { .. } => ObjKind::EndpointSlice,
        }
    }

    pub fn key(&self) -> Key {
        match self {
            Object::Pod(p) => (p.namespace.clone(), p.name.clone()),
            Object::Owned {
                namespace, name, ..
            }
            | Object::Service {
                namespace, name, ..
            }
            | Object::EndpointSlice {
                namespace, name, ..
            } => (namespace.clone(), name.clone()),
            Object::Namespace { name, .. } => (String::new(), name.clone()),
        }
    }
}

/// What a peer address is in the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Peer {
    pub namespace: String,
    /// The pod with this IP, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The Service with this cluster IP, or whose EndpointSlice holds this address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// `service.name` of the pod by the identity rule, for a pod of this node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
}

/// Counters per kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KindStats {
    /// Objects held, deleted ones in their grace period included.
    pub objects: usize,
    /// Of those, deleted and waiting for the grace period to end.
    pub deleting: usize,
    pub applied: u64,
    pub deleted: u64,
    pub purged: u64,
    /// Objects refused because the kind was full.
    pub rejected_full: u64,
}

struct Entry {
    obj: Object,
    deleted_at: Option<Instant>,
}

#[derive(Default)]
struct Table {
    entries: HashMap<Key, Entry>,
    stats: KindStats,
}

/// The store. Not thread-safe by itself: the source wraps it in a lock.
pub struct Store {
    grace: Duration,
    max_objects: usize,
    tables: HashMap<ObjKind, Table>,
    /// Deletions in order, for purging after the grace period.
    deletions: VecDeque<(Instant, ObjKind, Key)>,
    pod_by_uid: HashMap<String, Key>,
    pod_by_container: HashMap<ContainerId, Key>,
    pod_by_ip: HashMap<IpAddr, Key>,
    service_by_ip: HashMap<IpAddr, Key>,
    endpoint_by_ip: HashMap<IpAddr, Key>,
    /// Bumped whenever a pod is added, changed or purged, or a namespace's labels change:
    /// filters decide again.
    filter_generation: u64,
    /// Bumped whenever any object is added, changed or purged: identities and peers may
    /// answer differently.
    generation: u64,
}

impl Store {
    pub fn new(grace: Duration, max_objects: usize) -> Store {
        Store {
            grace,
            max_objects: max_objects.max(1),
            tables: ObjKind::ALL
                .iter()
                .map(|k| (*k, Table::default()))
                .collect(),
            deletions: VecDeque::new(),
            pod_by_uid: HashMap::new(),
            pod_by_container: HashMap::new(),
            pod_by_ip: HashMap::new(),
            service_by_ip: HashMap::new(),
            endpoint_by_ip: HashMap::new(),
            filter_generation: 0,
            generation: 0,
        }
    }

    fn table(&mut self, kind: ObjKind) -> &mut Table {
        self.tables.entry(kind).or_default()
    }

    /// Adds or replaces an object (undoing a pending deletion). False when refused because
    /// its kind is full.
    pub fn apply(&mut self, obj: Object, now: Instant) -> bool {
        self.purge(now);
        let kind = obj.kind();
        let key = obj.key();
        let max = self.max_objects;
        let table = self.table(kind);
        if !table.entries.contains_key(&key) && table.entries.len() >= max {
            table.stats.rejected_full += 1;
            return false;
        }
        table.stats.applied += 1;
        let old = table.entries.insert(
            key.clone(),
            Entry {
                obj: obj.clone(),
                deleted_at: None,
            },
        );
        let relabelled = match (&obj, old.as_ref().map(|o| &o.obj)) {
            (Object::Namespace { labels, .. }, Some(Object::Namespace { labels: was, .. })) => {
                labels != was
            }
            (Object::Namespace { .. }, _) => true,
            _ => false,
        };
        if let Some(old) = old {
            self.unindex(&old.obj, &key);
        }
        self.index(&obj, &key);
        if kind == ObjKind::Pod || relabelled {
            self.filter_generation += 1;
        }
        self.generation += 1;
        true
    }

    /// Marks an object deleted: it keeps serving until the grace period ends.
    pub fn delete(&mut self, kind: ObjKind, key: &Key, now: Instant) {
        self.purge(now);
        let table = self.table(kind);
        if let Some(e) = table.entries.get_mut(key) {
            if e.deleted_at.is_none() {
                e.deleted_at = Some(now);
                table.stats.deleted += 1;
                self.deletions.push_back((now, kind, key.clone()));
            }
        }
    }

    /// After a full list of `kind`: everything not in `listed` was deleted meanwhile.
    pub fn retain(&mut self, kind: ObjKind, listed: &HashSet<Key>, now: Instant) {
        let gone: Vec<Key> = self
            .table(kind)
            .entries
            .iter()
            .filter(|(k, e)| e.deleted_at.is_none() && !listed.contains(*k))
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            self.delete(kind, &key, now);
        }
    }

    /// Removes the objects whose grace period has ended.
    pub fn purge(&mut self, now: Instant) {
        while let Some((at, kind, key)) = self.deletions.front().cloned() {
            if now.saturating_duration_since(at) < self.grace {
                break;
            }
            self.deletions.pop_front();
            let table = self.table(kind);
            // Only if still deleted at that moment: it may have come back since.
            if table
                .entries
                .get(&key)
                .is_some_and(|e| e.deleted_at == Some(at))
            {
                if let Some(e) = table.entries.remove(&key) {
                    table.stats.purged += 1;
                    self.unindex(&e.obj, &key);
                    if kind == ObjKind::Pod || kind == ObjKind::Namespace {
                        self.filter_generation += 1;
                    }
                    self.generation += 1;
                }
            }
        }
    }

    fn index(&mut self, obj: &Object, key: &Key) {
        match obj {
            Object::Pod(p) => {
                self.pod_by_uid.insert(p.uid.clone(), key.clone());
                if let Some(m) = p.annotations.get(crate::identity::MIRROR_ANNOTATION) {
                    self.pod_by_uid.insert(m.clone(), key.clone());
                }
                for c in &p.containers {
                    if let Some(id) = &c.container_id {
                        self.pod_by_container.insert(id.clone(), key.clone());
                    }
                }
                if !p.host_network {
                    for ip in &p.pod_ips {
                        self.pod_by_ip.insert(*ip, key.clone());
                    }
                }
            }
            Object::Service { cluster_ips, .. } => {
                for ip in cluster_ips {
                    self.service_by_ip.insert(*ip, key.clone());
                }
            }
            Object::EndpointSlice { endpoints, .. } => {
                for (ip, _) in endpoints {
                    self.endpoint_by_ip.insert(*ip, key.clone());
                }
            }
            Object::Owned { .. } | Object::Namespace { .. } => {}
        }
    }

    fn unindex(&mut self, obj: &Object, key: &Key) {
        fn unlink<K: Hash + Eq>(map: &mut HashMap<K, Key>, k: &K, key: &Key) {
            if map.get(k) == Some(key) {
                map.remove(k);
            }
        }
        match obj {
            Object::Pod(p) => {
                unlink(&mut self.pod_by_uid, &p.uid, key);
                if let Some(m) = p.annotations.get(crate::identity::MIRROR_ANNOTATION) {
                    unlink(&mut self.pod_by_uid, m, key);
                }
                for c in &p.containers {
                    if let Some(id) = &c.container_id {
                        unlink(&mut self.pod_by_container, id, key);
                    }
                }
                for ip in &p.pod_ips {
                    unlink(&mut self.pod_by_ip, ip, key);
                }
            }
            Object::Service { cluster_ips, .. } => {
                for ip in cluster_ips {
                    unlink(&mut self.service_by_ip, ip, key);
                }
            }
            Object::EndpointSlice { endpoints, .. } => {
                for (ip, _) in endpoints {
                    unlink(&mut self.endpoint_by_ip, ip, key);
                }
            }
            Object::Owned { .. } | Object::Namespace { .. } => {}
        }
    }

    fn get(&self, kind: ObjKind, key: &Key) -> Option<&Object> {
        self.tables.get(&kind)?.entries.get(key).map(|e| &e.obj)
    }

    fn pod(&self, key: &Key) -> Option<&PodMeta> {
        match self.get(ObjKind::Pod, key)? {
            Object::Pod(p) => Some(p),
            _ => None,
        }
    }

    /// The pod running the container with this id.
    pub fn pod_by_container(&self, id: &ContainerId) -> Option<&PodMeta> {
        self.pod(self.pod_by_container.get(id)?)
    }

    /// The pod whose cgroup carries this UID (its own, or a static pod's manifest hash).
    pub fn pod_by_uid(&self, uid: &PodUid) -> Option<&PodMeta> {
        self.pod(self.pod_by_uid.get(uid.as_str())?)
    }

    /// The identity of a process from what its cgroup says: the container's pod first, the
    /// pod UID when the container is not (yet) in the pod's status.
    pub fn identity(
        &self,
        container: Option<&ContainerId>,
        pod_uid: Option<&PodUid>,
    ) -> Option<Identity> {
        let pod = container
            .and_then(|c| self.pod_by_container(c))
            .or_else(|| pod_uid.and_then(|u| self.pod_by_uid(u)))?;
        Some(Identity::of(pod, container, self))
    }

    /// What the address `ip` is: a pod of this node, a Service's cluster IP, or an address
    /// in an EndpointSlice.
    pub fn peer(&self, ip: &IpAddr) -> Option<Peer> {
        if let Some((ns, name)) = self.service_by_ip.get(ip) {
            return Some(Peer {
                namespace: ns.clone(),
                service: Some(name.clone()),
                ..Peer::default()
            });
        }
        let via_slice = self.endpoint_by_ip.get(ip).and_then(|k| {
            match self.get(ObjKind::EndpointSlice, k)? {
                Object::EndpointSlice {
                    namespace,
                    service,
                    endpoints,
                    ..
                } => Some(Peer {
                    namespace: namespace.clone(),
                    pod: endpoints
                        .iter()
                        .find(|(a, _)| a == ip)
                        .and_then(|(_, p)| p.clone()),
                    service: service.clone(),
                    workload: None,
                }),
                _ => None,
            }
        });
        if let Some(pod) = self.pod_by_ip.get(ip).and_then(|k| self.pod(k)) {
            let id = Identity::of(pod, None, self);
            return Some(Peer {
                namespace: pod.namespace.clone(),
                pod: Some(pod.name.clone()),
                service: via_slice.and_then(|p| p.service),
                workload: Some(id.service_name),
            });
        }
        via_slice
    }

    /// Labels of a namespace, when known.
    pub fn namespace_labels(&self, name: &str) -> Option<&BTreeMap<String, String>> {
        match self.get(ObjKind::Namespace, &(String::new(), name.to_string()))? {
            Object::Namespace { labels, .. } => Some(labels),
            _ => None,
        }
    }

    /// Bumped whenever the set of pods or a pod's metadata changes, or a namespace comes,
    /// goes or is labelled anew: what filters on Kubernetes keys decide may change.
    pub fn filter_generation(&self) -> u64 {
        self.filter_generation
    }

    /// Bumped whenever any object is added, changed or purged, so whatever was worked out
    /// from the store ([`Store::identity`], [`Store::peer`]) can be kept until it moves.
    /// (A deletion changes no answer until its grace period ends and it is purged.)
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn stats(&self, kind: ObjKind) -> KindStats {
        let Some(t) = self.tables.get(&kind) else {
            return KindStats::default();
        };
        KindStats {
            objects: t.entries.len(),
            deleting: t
                .entries
                .values()
                .filter(|e| e.deleted_at.is_some())
                .count(),
            ..t.stats
        }
    }
}

impl Owners for Store {
    fn controller_of(&self, namespace: &str, kind: &str, name: &str) -> Lookup {
        let kind = match kind {
            "ReplicaSet" => ObjKind::ReplicaSet,
            "Job" => ObjKind::Job,
            _ => return Lookup::Unknown,
        };
        match self.get(kind, &(namespace.to_string(), name.to_string())) {
            Some(Object::Owned {
                controller: Some(o),
                ..
            }) => Lookup::Owner(o.clone()),
            Some(Object::Owned {
                controller: None, ..
            }) => Lookup::NoOwner,
            _ => Lookup::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, uid: &str, ip: &str) -> Object {
        Object::Pod(PodMeta {
            namespace: "ns".into(),
            name: name.into(),
            uid: uid.into(),
            pod_ips: vec![ip.parse().unwrap()],
            ..PodMeta::default()
        })
    }

    #[test]
    fn bounded_per_kind_and_counted() {
        let t = Instant::now();
        let mut s = Store::new(Duration::from_secs(60), 2);
        assert!(s.apply(pod("a", "1", "10.0.0.1"), t));
        assert!(s.apply(pod("b", "2", "10.0.0.2"), t));
        assert!(!s.apply(pod("c", "3", "10.0.0.3"), t), "third refused");
        assert!(
            s.apply(pod("a", "1", "10.0.0.9"), t),
            "an update of a held one is fine"
        );
        let st = s.stats(ObjKind::Pod);
        assert_eq!((st.objects, st.rejected_full, st.applied), (2, 1, 3));
        // Other kinds have their own budget.
        assert!(s.apply(
            Object::Namespace {
                name: "ns".into(),
                labels: BTreeMap::new()
            },
            t
        ));
    }

    #[test]
    fn an_address_reused_during_the_grace_period_names_the_new_pod() {
        let t = Instant::now();
        let grace = Duration::from_secs(5);
        let mut s = Store::new(grace, 10);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        s.apply(pod("old", "1", "10.0.0.1"), t);
        s.delete(ObjKind::Pod, &("ns".into(), "old".into()), t);
        assert_eq!(s.peer(&ip).and_then(|p| p.pod).as_deref(), Some("old"));
        s.apply(pod("new", "2", "10.0.0.1"), t + Duration::from_secs(1));
        assert_eq!(s.peer(&ip).and_then(|p| p.pod).as_deref(), Some("new"));
        s.purge(t + grace);
        assert_eq!(s.peer(&ip).and_then(|p| p.pod).as_deref(), Some("new"));
        assert_eq!(s.stats(ObjKind::Pod).purged, 1);
        // Deleted and added back within the grace period: not purged.
        s.delete(ObjKind::Pod, &("ns".into(), "new".into()), t + grace);
        s.apply(pod("new", "2", "10.0.0.1"), t + grace);
        s.purge(t + grace * 3);
        assert_eq!(s.stats(ObjKind::Pod).objects, 1);
    }

    /// Filters decide again when a pod changes or a namespace's labels do; not when a
    /// namespace is sent again unchanged (a watch's resync) nor for other kinds.
    #[test]
    fn the_filter_generation_follows_pods_and_namespace_labels() {
        let t = Instant::now();
        let grace = Duration::from_secs(5);
        let mut s = Store::new(grace, 10);
        let ns = |team: &str| Object::Namespace {
            name: "shop".into(),
            labels: [("team".to_string(), team.to_string())].into(),
        };
        let g0 = s.filter_generation();
        s.apply(ns("web"), t);
        let g1 = s.filter_generation();
        assert!(g1 > g0, "a namespace added");
        s.apply(ns("web"), t);
        assert_eq!(s.filter_generation(), g1, "the same labels again");
        assert_eq!(
            s.namespace_labels("shop").and_then(|l| l.get("team")),
            Some(&"web".to_string())
        );
        s.apply(ns("ops"), t);
        let g2 = s.filter_generation();
        assert!(g2 > g1, "relabelled");
        s.apply(
            Object::Service {
                namespace: "shop".into(),
                name: "web".into(),
                cluster_ips: vec![],
            },
            t,
        );
        assert_eq!(s.filter_generation(), g2, "a Service names no process");
        s.apply(pod("a", "1", "10.0.0.1"), t);
        let g3 = s.filter_generation();
        assert!(g3 > g2, "a pod added");
        s.delete(ObjKind::Namespace, &(String::new(), "shop".into()), t);
        assert_eq!(
            s.filter_generation(),
            g3,
            "a deleted namespace still serves"
        );
        s.purge(t + grace);
        assert!(s.filter_generation() > g3, "purged");
        assert_eq!(s.namespace_labels("shop"), None);
    }

    #[test]
    fn the_generation_moves_when_an_answer_can() {
        let t = Instant::now();
        let grace = Duration::from_secs(5);
        let mut s = Store::new(grace, 1);
        let g0 = s.generation();
        s.apply(pod("a", "1", "10.0.0.1"), t);
        let g1 = s.generation();
        assert!(g1 > g0, "a pod added");
        assert!(!s.apply(pod("b", "2", "10.0.0.2"), t));
        assert_eq!(s.generation(), g1, "a refused object changes nothing");
        s.apply(
            Object::Service {
                namespace: "ns".into(),
                name: "web".into(),
                cluster_ips: vec!["10.96.0.1".parse().unwrap()],
            },
            t,
        );
        let g2 = s.generation();
        assert!(g2 > g1, "a Service added (peers may change)");
        s.delete(ObjKind::Pod, &("ns".into(), "a".into()), t);
        assert_eq!(s.generation(), g2, "a deleted pod still serves");
        s.purge(t + grace);
        assert!(s.generation() > g2, "purged");
    }
}
