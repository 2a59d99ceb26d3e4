//! Export: what the aggregator holds and how the agent is doing, served to the outside.
//!
//! - [`prometheus`]: the text exposition of the series and the health counters;
//! - [`http`]: the agent's HTTP endpoint (`/metrics`, `/healthz`, `/readyz`);
//! - [`otlp`]: spans and metrics to an OpenTelemetry collector.
//!
//! The pipeline owns the writes: it feeds records to the aggregator, closes periods, and
//! publishes its counters into [`Health`] (at least once a second). Exporters only read,
//! under the same locks, so a scrape always sees whole records.

pub mod http;
pub mod otlp;
pub mod prometheus;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::aggregate::{AggregationSettings, Aggregator};
use crate::capture::CaptureCounters;
use crate::conntrack::ConntrackStats;

/// Where the agent serves its metrics, and whether the user chose the address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsEndpoint {
    pub addr: std::net::SocketAddr,
    /// Given by `--metrics-addr` or `metrics_addr`: failing to listen there stops the agent.
    /// The default address only warns when it is taken (another agent on this host).
    pub explicit: bool,
}

/// The agent's own counters, as last published by the pipeline.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Health {
    /// Data events the kernel sent.
    pub kernel_events: u64,
    /// What was lost, by stage (`wirelens_events_lost_total{stage}`).
    pub lost: Vec<(&'static str, u64)>,
    /// Exchanges reconstructed.
    pub exchanges: u64,
    /// Connections tracked in user space now.
    pub connections_tracked: u64,
    /// Events of the agent's own exports seen at a collector on this host, left out
    /// ([`crate::conntrack::ConntrackConfig::own_ports`]).
    pub own_export_events: u64,
}

impl Health {
    /// The live pipeline's counters. Stages: `ringbuf` (the kernel could not queue),
    /// `read_fault` (payload copy faulted), `conn_table_full` (kernel table full) and
    /// `inflight_full` (always 0: data calls keep no slot in flight since they are read at
    /// their exit alone), `decode` (undecodable ring buffer records), `undetermined_side` (bytes
    /// before the client side was known), `parse` (invalid bytes, per resync),
    /// `unmatched_response` (no request waiting), `gap` (message boundaries lost in an
    /// uncaptured gap), `pending_overflow` (too many requests waiting on one connection).
    pub fn from_pipeline(c: &CaptureCounters, s: &ConntrackStats, conns: usize) -> Health {
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        Health {
            kernel_events: get(&c.kernel_data_events),
            lost: vec![
                ("ringbuf", c.lost()),
                ("read_fault", get(&c.kernel_read_faults)),
                ("conn_table_full", get(&c.kernel_conn_table_full)),
                ("inflight_full", get(&c.kernel_inflight_full)),
                ("decode", get(&c.decode_errors)),
                ("undetermined_side", s.undetermined_side_events),
                ("parse", s.parse.parse_errors),
                ("unmatched_response", s.parse.unmatched_responses),
                ("gap", s.parse.lost_in_gap),
                ("pending_overflow", s.parse.pending_overflow),
            ],
            exchanges: s.exchanges,
            connections_tracked: conns as u64,
            own_export_events: s.own_export_events,
        }
    }
}

/// What the pipeline writes and the exporters read.
#[derive(Debug)]
pub struct Metrics {
    aggregator: Mutex<Aggregator>,
    health: Mutex<Health>,
    /// The OTLP exporter's counters, when it runs.
    otlp: Mutex<Option<otlp::OtlpHealth>>,
    ready: AtomicBool,
    /// Exports that failed, by exporter (`wirelens_export_failures_total{exporter}`).
    export_failures: Mutex<Vec<(&'static str, u64)>>,
}

impl Metrics {
    pub fn new(settings: AggregationSettings) -> Metrics {
        Metrics {
            aggregator: Mutex::new(Aggregator::new(settings)),
            health: Mutex::new(Health::default()),
            otlp: Mutex::new(None),
            ready: AtomicBool::new(false),
            export_failures: Mutex::new(vec![("prometheus", 0)]),
        }
    }

    /// Makes `exporter`'s failure counter exist (at 0) before its first failure.
    pub fn register_exporter(&self, exporter: &'static str) {
        let mut f = self
            .export_failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !f.iter().any(|(e, _)| *e == exporter) {
            f.push((exporter, 0));
        }
    }

    /// Counts one failed export of `exporter` (a scrape answer that could not be sent, a
    /// batch a collector refused...).
    pub fn count_export_failure(&self, exporter: &'static str) {
        let mut f = self
            .export_failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match f.iter_mut().find(|(e, _)| *e == exporter) {
            Some((_, n)) => *n += 1,
            None => f.push((exporter, 1)),
        }
    }

    /// Failed exports so far, by exporter.
    pub fn export_failures(&self) -> Vec<(&'static str, u64)> {
        self.export_failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The aggregator, locked. A panic elsewhere while it was held leaves counts that are
    /// still counts, so a poisoned lock is used as is.
    pub fn aggregator(&self) -> MutexGuard<'_, Aggregator> {
        self.aggregator
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub fn set_health(&self, h: Health) {
        *self.health.lock().unwrap_or_else(PoisonError::into_inner) = h;
    }

    pub fn set_otlp_health(&self, h: otlp::OtlpHealth) {
        *self.otlp.lock().unwrap_or_else(PoisonError::into_inner) = Some(h);
    }

    /// `/readyz` answers 200 once this is set (the capture is attached).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// The Prometheus text exposition of everything.
    pub fn render_prometheus(&self) -> String {
        let health = self
            .health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut failures = self.export_failures();
        let otlp = self
            .otlp
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(o) = &otlp {
            // The OTLP exporter's failed export calls, both signals, under the common name.
            let failed = o
                .exports
                .iter()
                .filter(|(_, result, _)| *result == "failed")
                .map(|(_, _, n)| n)
                .sum();
            failures.push(("otlp", failed));
        }
        let mut text = prometheus::render(&self.aggregator(), &health, &failures);
        if let Some(o) = &otlp {
            otlp::render_health(o, &mut text);
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_failures_are_counted_per_exporter_from_zero() {
        let m = Metrics::new(AggregationSettings::default());
        let line = |m: &Metrics, e: &str| {
            m.render_prometheus()
                .lines()
                .find(|l| {
                    l.starts_with(&format!(
                        "wirelens_export_failures_total{{exporter=\"{e}\"}}"
                    ))
                })
                .map(str::to_string)
        };
        assert_eq!(
            line(&m, "prometheus").as_deref(),
            Some("wirelens_export_failures_total{exporter=\"prometheus\"} 0")
        );
        m.register_exporter("otlp");
        m.register_exporter("otlp");
        assert_eq!(m.export_failures(), [("prometheus", 0), ("otlp", 0)]);
        m.count_export_failure("otlp");
        m.count_export_failure("otlp");
        m.count_export_failure("prometheus");
        assert_eq!(
            line(&m, "otlp").as_deref(),
            Some("wirelens_export_failures_total{exporter=\"otlp\"} 2")
        );
        assert_eq!(m.export_failures(), [("prometheus", 1), ("otlp", 2)]);
    }
}
