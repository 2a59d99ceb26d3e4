//! Aggregation: records folded into series per observed service, with latency histograms,
//! bounded in cardinality (ARCHITECTURE.md, the `aggregate` stage).
//!
//! A series is keyed by service, peer, protocol and side ([`Family`]), operation and outcome
//! ([`SeriesKey`]). Its counters and histogram are cumulative from the moment it appears
//! (Prometheus semantics); exporters read them at any time ([`Aggregator::series`]).
//!
//! Time is counted in periods (`aggregation.period_s`): [`Aggregator::tick`] closes one.
//! A series not updated for `expiry_periods` periods is forgotten (if it comes back, it starts
//! again from zero, which Prometheus reads as a counter reset).
//!
//! Cardinality is bounded three ways: HTTP routes are templated ([`route`]); each service may
//! hold `series_per_service` series, and a measurement that would need one more goes to the
//! service's overflow series of that metric instead ([`Operation::Overflow`]) and is counted
//! in [`AggregatorStats::dropped`]; stale series expire.
//!
//! The service graph ([`graph`]) is folded here too: each exchange counted once on the edge
//! from the client's service to the server's ([`peer`] names them), its edges charged to the
//! budget of the service whose record counted it, and expiring like series.

pub mod graph;
pub mod histogram;
pub mod key;
pub mod peer;
pub mod route;

use std::time::Instant;

use hashbrown::HashMap;
use serde::Deserialize;
use wirelens_protocols::{Request, Status};

pub use graph::{Edge, EdgeKey, EdgeKeyRef, GraphStats};
pub use histogram::Histogram;
pub use key::{DbSystem, Family, Operation, OperationRef, SeriesKey, SeriesKeyRef};
pub use peer::Peers;
pub use route::{RoutePatterns, RouteTree};

use crate::output::Record;

/// The `aggregation:` section of the configuration file.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AggregationConfig {
    /// Length of a period, seconds (at least 1): the unit of expiry (and, later, of export).
    pub period_s: u64,
    /// A series not updated for this many periods is dropped (at least 1).
    pub expiry_periods: u64,
    /// Series one observed service may hold at once; more go to its `_overflow` series.
    pub series_per_service: usize,
    /// Distinct values one path segment may take after the same prefix before it becomes
    /// `{param}` (at least 1).
    pub segment_values: usize,
    /// Route patterns tried first, in order, e.g. `/users/{id}/orders`: `{name}` matches any
    /// one segment; the first match is the route, as written here.
    pub routes: Vec<String>,
}

impl Default for AggregationConfig {
    fn default() -> Self {
        AggregationConfig {
            period_s: 15,
            expiry_periods: 20,
            series_per_service: 1000,
            segment_values: 50,
            routes: Vec::new(),
        }
    }
}

/// A bad `aggregation` value: the key's path under `aggregation` and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidAggregation {
    pub field: String,
    pub message: String,
}

impl AggregationConfig {
    /// Checks every value and compiles the route patterns.
    pub fn build(&self) -> Result<AggregationSettings, InvalidAggregation> {
        let at_least_one = |field: &str, v: u64| {
            if v == 0 {
                Err(InvalidAggregation {
                    field: format!("aggregation.{field}"),
                    message: "must be at least 1".into(),
                })
            } else {
                Ok(())
            }
        };
        at_least_one("period_s", self.period_s)?;
        at_least_one("expiry_periods", self.expiry_periods)?;
        at_least_one("series_per_service", self.series_per_service as u64)?;
        at_least_one("segment_values", self.segment_values as u64)?;
        let routes =
            RoutePatterns::compile(&self.routes).map_err(|(i, message)| InvalidAggregation {
                field: format!("aggregation.routes[{i}]"),
                message,
            })?;
        Ok(AggregationSettings {
            period: std::time::Duration::from_secs(self.period_s),
            expiry_periods: self.expiry_periods,
            series_per_service: self.series_per_service,
            segment_values: self.segment_values,
            routes,
        })
    }
}

/// Checked aggregation settings ([`AggregationConfig::build`]).
#[derive(Clone, Debug, PartialEq)]
pub struct AggregationSettings {
    pub period: std::time::Duration,
    pub expiry_periods: u64,
    pub series_per_service: usize,
    pub segment_values: usize,
    pub routes: RoutePatterns,
}

impl Default for AggregationSettings {
    fn default() -> Self {
        let c = AggregationConfig::default();
        AggregationSettings {
            period: std::time::Duration::from_secs(c.period_s),
            expiry_periods: c.expiry_periods,
            series_per_service: c.series_per_service,
            segment_values: c.segment_values,
            routes: RoutePatterns::default(),
        }
    }
}

/// The counters and histogram of one series, cumulative since it appeared.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Series {
    /// Requests (exchanges) counted.
    pub requests: u64,
    /// Of those, the ones whose status is not `ok`.
    pub errors: u64,
    /// Of those, the ones without a latency (timeout, reset): not in the histogram.
    pub unanswered: u64,
    /// Latencies of the requests that had one.
    pub latency: Histogram,
    /// The period it was last updated in.
    last_period: u64,
}

impl Series {
    fn add(&mut self, r: &Record, period: u64) {
        self.requests += 1;
        if r.status != Status::Ok {
            self.errors += 1;
        }
        match r.latency_ns {
            Some(ns) => self.latency.observe(ns),
            None => self.unanswered += 1,
        }
        self.last_period = period;
    }

    /// The period this series was last updated in.
    pub fn last_period(&self) -> u64 {
        self.last_period
    }
}

/// Counters of the aggregator itself (exported as `wirelens_series*`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AggregatorStats {
    /// Series held now, overflow series included.
    pub series: usize,
    /// Measurements that went to an overflow series because their own series was refused
    /// by the service's budget.
    pub dropped: u64,
    /// Series forgotten after `expiry_periods` idle periods.
    pub expired: u64,
    /// Route tree nodes that collapsed to `{param}`.
    pub collapsed_segments: u64,
    /// Service graph edges held now, overflow edges included (also in `series`).
    pub edges: usize,
    /// Exchanges waiting for their edge ([`graph::Pending`]).
    pub edges_pending: usize,
    /// The service graph's own counters.
    pub graph: GraphStats,
    /// Endpoints of observed processes not remembered because the peer table was full.
    pub peers_refused: u64,
}

/// One observed service: its series and the service graph edges its records count (at most
/// the budget together, plus one overflow series per metric that overflowed) and its route
/// trees.
#[derive(Debug, Default)]
struct Service {
    series: HashMap<SeriesKey, Series>,
    /// How many of `series` are overflow series.
    overflow: usize,
    edges: HashMap<EdgeKey, Edge>,
    /// How many of `edges` are overflow edges.
    edge_overflow: usize,
    routes: HashMap<Family, RouteTree>,
}

impl Service {
    fn own_series(&self) -> usize {
        self.series.len() - self.overflow + self.edges.len() - self.edge_overflow
    }
}

/// Counts exchanges on their edge in the owner service's table, or on its overflow edge when
/// the service's budget (`budget` series and edges) is spent; `dropped` counts those.
fn count_edge(
    services: &mut HashMap<String, Service>,
    dropped: &mut HashMap<String, u64>,
    budget: usize,
    period: u64,
    a: graph::Settled<'_>,
) {
    let service = services.entry_ref(&crate::text::Key(a.owner)).or_default();
    if let Some(e) = service.edges.get_mut(&a.edge) {
        e.add(&a, period);
        return;
    }
    if service.own_series() < budget {
        service
            .edges
            .entry(a.edge.to_owned())
            .or_default()
            .add(&a, period);
        return;
    }
    *dropped.entry_ref(a.owner).or_default() += 1;
    let key = if a.edge.server == a.owner {
        EdgeKeyRef {
            client: graph::OVERFLOW,
            server: a.owner,
            protocol: a.edge.protocol,
        }
    } else {
        EdgeKeyRef {
            client: a.owner,
            server: graph::OVERFLOW,
            protocol: a.edge.protocol,
        }
    };
    if let Some(e) = service.edges.get_mut(&key) {
        e.add(&a, period);
        return;
    }
    service.edge_overflow += 1;
    service
        .edges
        .entry(key.to_owned())
        .or_default()
        .add(&a, period);
}

/// An edge as exporters see it.
#[derive(Clone, Copy, Debug)]
pub struct EdgeRef<'a> {
    /// The service whose records count it.
    pub owner: &'a str,
    pub key: &'a EdgeKey,
    pub edge: &'a Edge,
}

/// A series as exporters see it.
#[derive(Clone, Copy, Debug)]
pub struct SeriesRef<'a> {
    pub service: &'a str,
    pub key: &'a SeriesKey,
    pub series: &'a Series,
}

/// Folds records into series. Owned by the pipeline; exporters read it under a lock.
#[derive(Debug)]
pub struct Aggregator {
    settings: AggregationSettings,
    services: HashMap<String, Service>,
    period: u64,
    expired: u64,
    /// Measurements sent to an overflow series, by service; kept when the service expires so
    /// that the counter never goes down.
    dropped: HashMap<String, u64>,
    peers: Peers,
    pending: graph::Pending,
    /// Where the route and the error type of a record are written while it is counted (one
    /// buffer each, reused: no allocation per record).
    route: String,
    error_type: String,
}

impl Aggregator {
    pub fn new(settings: AggregationSettings) -> Aggregator {
        Aggregator {
            settings,
            services: HashMap::new(),
            period: 0,
            expired: 0,
            dropped: HashMap::new(),
            peers: Peers::default(),
            pending: graph::Pending::default(),
            route: String::new(),
            error_type: String::new(),
        }
    }

    pub fn settings(&self) -> &AggregationSettings {
        &self.settings
    }

    /// Counts one record in its series (or its service's overflow series), and queues its
    /// exchange for the service graph ([`Aggregator::settle`]).
    pub fn observe(&mut self, r: &Record) {
        self.observe_at(r, Instant::now());
    }

    /// [`Aggregator::observe`] with the time the record reached the aggregator given (one
    /// reading of the clock serves a whole batch of records).
    pub fn observe_at(&mut self, r: &Record, now: Instant) {
        let name = key::service_of(r);
        self.peers.learn(r, name, self.period);
        let Aggregator {
            settings,
            services,
            period,
            dropped,
            peers,
            pending,
            route,
            error_type,
            ..
        } = self;
        let (period, budget) = (*period, settings.series_per_service);
        pending.push_with(r, name, peers, now, |a| {
            count_edge(services, dropped, budget, period, a)
        });
        let service = services.entry_ref(&crate::text::Key(name)).or_default();
        let mut http_route = "";
        if let Request::Http(q) = &r.request {
            let raw = key::raw_route(q);
            http_route = match settings.routes.matching(&raw) {
                Some(p) => p,
                None => {
                    service
                        .routes
                        .entry(key::family_of(r))
                        .or_insert_with(|| RouteTree::new(settings.segment_values))
                        .template_into(&raw, route);
                    route.as_str()
                }
            };
        }
        key::write_error_type(r, error_type);
        let k = key::key_ref(r, http_route, error_type);
        if let Some(s) = service.series.get_mut(&k) {
            s.add(r, period);
            return;
        }
        if service.own_series() < budget {
            service
                .series
                .entry(k.to_owned())
                .or_default()
                .add(r, period);
            return;
        }
        *dropped.entry_ref(name).or_default() += 1;
        let k = SeriesKey::overflow(k.family);
        if let Some(s) = service.series.get_mut(&k) {
            s.add(r, period);
            return;
        }
        service.overflow += 1;
        service.series.entry(k).or_default().add(r, period);
    }

    /// Attributes to their edges the exchanges that have waited [`graph::GRACE`] for the
    /// other side's record ([`graph`]); the live pipeline calls it every second.
    pub fn settle(&mut self) {
        self.settle_at(Instant::now());
    }

    /// [`Aggregator::settle`] as if it were `now` (tests).
    pub fn settle_at(&mut self, now: Instant) {
        let (period, budget) = (self.period, self.settings.series_per_service);
        let (services, dropped) = (&mut self.services, &mut self.dropped);
        self.pending.settle_with(&self.peers, now, |a| {
            count_edge(services, dropped, budget, period, a)
        });
    }

    /// Settles every exchange waiting (at exit, or in tests).
    pub fn settle_all(&mut self) {
        let (period, budget) = (self.period, self.settings.series_per_service);
        let (services, dropped) = (&mut self.services, &mut self.dropped);
        self.pending.settle_all_with(&self.peers, |a| {
            count_edge(services, dropped, budget, period, a)
        });
    }

    /// Closes the current period: series and edges (and services) not updated during the
    /// last `expiry_periods` periods, the one closing included, are forgotten.
    pub fn tick(&mut self) {
        let (closed, keep) = (self.period, self.settings.expiry_periods);
        self.period += 1;
        // Periods without an update, the closing one included: 0 if it was updated in it.
        let fresh = |last: u64| closed - last < keep;
        let mut expired = 0;
        self.services.retain(|_, svc| {
            let before = svc.series.len() + svc.edges.len();
            svc.series.retain(|_, s| fresh(s.last_period));
            svc.edges.retain(|_, e| fresh(e.last_period));
            expired += (before - svc.series.len() - svc.edges.len()) as u64;
            svc.overflow = svc
                .series
                .keys()
                .filter(|k| k.operation == Operation::Overflow)
                .count();
            svc.edge_overflow = svc.edges.keys().filter(|k| k.is_overflow()).count();
            !svc.series.is_empty() || !svc.edges.is_empty()
        });
        self.expired += expired;
        self.peers.expire(closed, keep);
    }

    /// Periods closed so far.
    pub fn period(&self) -> u64 {
        self.period
    }

    /// Every series held now, overflow series included, in no particular order.
    pub fn series(&self) -> impl Iterator<Item = SeriesRef<'_>> + '_ {
        self.services.iter().flat_map(|(name, svc)| {
            svc.series.iter().map(move |(key, series)| SeriesRef {
                service: name,
                key,
                series,
            })
        })
    }

    /// Every service graph edge held now, overflow edges included, in no particular order.
    pub fn edges(&self) -> impl Iterator<Item = EdgeRef<'_>> + '_ {
        self.services.iter().flat_map(|(name, svc)| {
            svc.edges.iter().map(move |(key, edge)| EdgeRef {
                owner: name,
                key,
                edge,
            })
        })
    }

    /// The services holding series or edges now.
    pub fn services(&self) -> impl Iterator<Item = &str> + '_ {
        self.services.keys().map(String::as_str)
    }

    /// The local endpoints of observed processes, as learnt from their records.
    pub fn peers(&self) -> &Peers {
        &self.peers
    }

    /// Measurements each service's budget sent to an overflow series, cumulative.
    pub fn dropped_by_service(&self) -> impl Iterator<Item = (&str, u64)> + '_ {
        self.dropped.iter().map(|(n, d)| (n.as_str(), *d))
    }

    pub fn stats(&self) -> AggregatorStats {
        let mut st = AggregatorStats {
            expired: self.expired,
            dropped: self.dropped.values().sum(),
            edges_pending: self.pending.len(),
            graph: self.pending.stats,
            peers_refused: self.peers.refused(),
            ..AggregatorStats::default()
        };
        for svc in self.services.values() {
            st.series += svc.series.len() + svc.edges.len();
            st.edges += svc.edges.len();
            st.collapsed_segments += svc.routes.values().map(|t| t.collapsed).sum::<u64>();
        }
        st
    }
}
