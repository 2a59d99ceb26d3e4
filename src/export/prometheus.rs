//! Prometheus text exposition (format 0.0.4) of the aggregator's series and the agent's health.
//!
//! Metric and label names are the OpenTelemetry semantic conventions' names converted the way
//! the OpenTelemetry-to-Prometheus compatibility rules convert them: `.` becomes `_`, the unit
//! is appended (`_seconds`), counters end in `_total` (OpenTelemetry specification,
//! "Prometheus and OpenMetrics Compatibility"). So `http.server.request.duration` (unit `s`)
//! is `http_server_request_duration_seconds`, a histogram with `_bucket{le}`, `_sum` and
//! `_count`, and `http.route` is the label `http_route`.
//!
//! Nothing here carries statement text, query names or header values: only the operation,
//! the table, the route template and the other values of [`SeriesKey`].

use std::fmt::Write;

use crate::aggregate::histogram::LE;
use crate::aggregate::{Aggregator, EdgeRef, Family, Histogram, Operation, SeriesKey, SeriesRef};

use super::Health;

/// The content type of this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Name and help text of the histogram a family's series go to.
pub fn metric_of(family: Family) -> (&'static str, &'static str) {
    match family {
        Family::HttpServer => (
            "http_server_request_duration_seconds",
            "Duration of HTTP server requests, as seen by the observed server process.",
        ),
        Family::HttpClient => (
            "http_client_request_duration_seconds",
            "Duration of HTTP client requests, as seen by the observed client process.",
        ),
        Family::DbClient(_) => (
            "db_client_operation_duration_seconds",
            "Duration of database client operations (MySQL, PostgreSQL, Redis).",
        ),
        Family::DbServer(_) => (
            "wirelens_db_server_operation_duration_seconds",
            "Duration of database operations as seen by the observed database server.",
        ),
        Family::DnsClient => (
            "dns_lookup_duration_seconds",
            "Duration of DNS queries, as seen by the observed client process.",
        ),
        Family::DnsServer => (
            "wirelens_dns_server_request_duration_seconds",
            "Duration of DNS queries as seen by the observed DNS server.",
        ),
    }
}

/// `protocol` and `role` of a family, as records write them.
fn protocol_role(family: Family) -> (&'static str, &'static str) {
    let protocol = match family {
        Family::HttpServer | Family::HttpClient => "http",
        Family::DbClient(s) | Family::DbServer(s) => match s {
            crate::aggregate::DbSystem::Mysql => "mysql",
            crate::aggregate::DbSystem::Postgresql => "pgsql",
            crate::aggregate::DbSystem::Redis => "redis",
        },
        Family::DnsClient | Family::DnsServer => "dns",
    };
    let role = if family.is_client() {
        "client"
    } else {
        "server"
    };
    (protocol, role)
}

/// The label set of a series, `{...}` included, names in a fixed order.
pub fn labels(service: &str, key: &SeriesKey) -> String {
    let mut l = Labels::default();
    l.add("service_name", service);
    if let Operation::Overflow = key.operation {
        if let Family::DbClient(s) | Family::DbServer(s) = key.family {
            l.add("db_system_name", s.name());
        }
        l.add("operation", "_overflow");
        l.add("otel_metric_overflow", "true");
        return l.finish();
    }
    if key.family.is_client() {
        l.add("server_address", &key.peer_address);
        if let Some(p) = key.peer_port {
            l.add("server_port", &p.to_string());
        }
    } else {
        l.add("client_address", &key.peer_address);
    }
    match &key.operation {
        Operation::Http {
            method,
            route,
            status_code,
        } => {
            l.add("http_request_method", method);
            // Required on http.server.request.duration; TLS connections are left alone, so
            // what is observed is always plaintext HTTP.
            if !key.family.is_client() {
                l.add("url_scheme", "http");
            }
            // A client does not know the server's routes: the semantic conventions call the
            // template of the path it asked for `url.template`.
            let route_label = if key.family.is_client() {
                "url_template"
            } else {
                "http_route"
            };
            l.add(route_label, route);
            if let Some(code) = status_code {
                l.add("http_response_status_code", &code.to_string());
            }
        }
        Operation::Db {
            operation,
            collection,
        } => {
            if let Family::DbClient(s) | Family::DbServer(s) = key.family {
                l.add("db_system_name", s.name());
            }
            l.add("db_operation_name", operation);
            if !collection.is_empty() {
                l.add("db_collection_name", collection);
            }
        }
        Operation::Dns { qtype } => l.add("dns_question_type", qtype),
        Operation::Overflow => {}
    }
    if !key.error_type.is_empty() {
        l.add("error_type", &key.error_type);
    }
    l.finish()
}

#[derive(Default)]
struct Labels(String);

impl Labels {
    fn add(&mut self, name: &str, value: &str) {
        self.0.push(if self.0.is_empty() { '{' } else { ',' });
        self.0.push_str(name);
        self.0.push_str("=\"");
        escape_label_value(value, &mut self.0);
        self.0.push('"');
    }

    fn finish(mut self) -> String {
        if !self.0.is_empty() {
            self.0.push('}');
        }
        self.0
    }
}

/// Label values escape `\`, `"` and line feed (exposition format, "Text format details").
fn escape_label_value(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Renders every series and the health counters.
/// `export_failures`: failed exports by exporter (`wirelens_export_failures_total`).
pub fn render(
    agg: &Aggregator,
    health: &Health,
    export_failures: &[(&'static str, u64)],
) -> String {
    let mut out = String::with_capacity(64 * 1024);
    render_series(agg, &mut out);
    render_graph(agg, &mut out);
    render_health(agg, health, &mut out);
    let name = "wirelens_export_failures_total";
    header(
        &mut out,
        name,
        "counter",
        "Exports that failed, by exporter (prometheus: a scrape answer that could not be sent).",
    );
    for (exporter, n) in export_failures {
        let _ = writeln!(out, "{name}{{exporter=\"{exporter}\"}} {n}");
    }
    out
}

fn render_series(agg: &Aggregator, out: &mut String) {
    // Every sample of one metric must be in one group: sort by metric name, then labels.
    let mut rows: Vec<(&'static str, String, SeriesRef<'_>)> = agg
        .series()
        .map(|s| (metric_of(s.key.family).0, labels(s.service, s.key), s))
        .collect();
    rows.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let mut current = "";
    for (name, labels, s) in &rows {
        if s.series.latency.count() == 0 {
            continue;
        }
        if *name != current {
            header(out, name, "histogram", metric_of(s.key.family).1);
            current = name;
        }
        write_histogram(out, name, labels, &s.series.latency);
    }
    let unanswered = "wirelens_requests_unanswered_total";
    header(
        out,
        unanswered,
        "counter",
        "Requests that got no response (timeout, reset): counted here, not in the duration \
         histograms.",
    );
    for (_, labels, s) in &rows {
        if s.series.unanswered == 0 {
            continue;
        }
        let (protocol, role) = protocol_role(s.key.family);
        let _ = writeln!(
            out,
            "{unanswered}{{protocol=\"{protocol}\",role=\"{role}\",{} {}",
            &labels[1..],
            s.series.unanswered
        );
    }
}

/// `_bucket{le}` (cumulative, `le` last), `_sum` and `_count` of one histogram series.
fn write_histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    let open = if labels.is_empty() {
        "{".to_string()
    } else {
        format!("{},", &labels[..labels.len() - 1])
    };
    for (le, n) in LE.iter().zip(h.cumulative()) {
        let _ = writeln!(out, "{name}_bucket{open}le=\"{le}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_sum{labels} {}", h.sum_seconds());
    let _ = writeln!(out, "{name}_count{labels} {}", h.count());
}

/// Names of the service graph metrics: `wirelens.service_graph.requests` (counter),
/// `wirelens.service_graph.requests.failed` (counter) and
/// `wirelens.service_graph.request.duration` (histogram, s), converted.
pub const GRAPH_REQUESTS: &str = "wirelens_service_graph_requests_total";
pub const GRAPH_FAILED: &str = "wirelens_service_graph_requests_failed_total";
pub const GRAPH_DURATION: &str = "wirelens_service_graph_request_duration_seconds";

/// The label set of an edge: `client`, `server`, `protocol` (and `otel_metric_overflow` for
/// an overflow edge).
pub fn edge_labels(e: &EdgeRef<'_>) -> String {
    let mut l = Labels::default();
    l.add("client", &e.key.client);
    l.add("server", &e.key.server);
    l.add("protocol", e.key.protocol);
    if e.key.is_overflow() {
        l.add("otel_metric_overflow", "true");
    }
    l.finish()
}

fn render_graph(agg: &Aggregator, out: &mut String) {
    let mut rows: Vec<(String, EdgeRef<'_>)> = agg.edges().map(|e| (edge_labels(&e), e)).collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    header(
        out,
        GRAPH_REQUESTS,
        "counter",
        "Calls from a client service to a server service, each exchange counted once: from the \
         server's side when the server is observed, else from the client's.",
    );
    for (labels, e) in &rows {
        let _ = writeln!(out, "{GRAPH_REQUESTS}{labels} {}", e.edge.requests);
    }
    header(
        out,
        GRAPH_FAILED,
        "counter",
        "Of those calls, the failed ones (status not ok; HTTP 4xx is not a failure).",
    );
    for (labels, e) in &rows {
        let _ = writeln!(out, "{GRAPH_FAILED}{labels} {}", e.edge.failed);
    }
    header(
        out,
        GRAPH_DURATION,
        "histogram",
        "Duration of the calls of an edge that got an answer: the server's time when the \
         server is observed, else the client's.",
    );
    for (labels, e) in &rows {
        write_histogram(out, GRAPH_DURATION, labels, &e.edge.latency);
    }
}

fn render_health(agg: &Aggregator, health: &Health, out: &mut String) {
    let lost = "wirelens_events_lost_total";
    header(
        out,
        lost,
        "counter",
        "Events or messages the pipeline could not use, by stage.",
    );
    for (stage, n) in &health.lost {
        let _ = writeln!(out, "{lost}{{stage=\"{stage}\"}} {n}");
    }
    let simple = [
        (
            "wirelens_kernel_events_total",
            "counter",
            "Data events the kernel sent to user space.",
            health.kernel_events,
        ),
        (
            "wirelens_exchanges_total",
            "counter",
            "Request/response exchanges reconstructed.",
            health.exchanges,
        ),
        (
            "wirelens_connections_tracked",
            "gauge",
            "Connections tracked in user space now.",
            health.connections_tracked,
        ),
        (
            "wirelens_own_export_events_total",
            "counter",
            "Data events of the agent's own OTLP exports, seen at a collector on this host: left \
             out, so that exports do not become spans to export.",
            health.own_export_events,
        ),
    ];
    let st = agg.stats();
    let graph = [
        (
            "wirelens_service_graph_deduplicated_total",
            "counter",
            "Client-side records left out of the service graph because the observed server's \
             own record counts the exchange.",
            st.graph.deduplicated,
        ),
        (
            "wirelens_service_graph_settled_early_total",
            "counter",
            "Exchanges attributed to an edge before their wait was over (too many waiting): \
             they may be counted twice or name a peer by address.",
            st.graph.settled_early,
        ),
        (
            "wirelens_service_graph_pending",
            "gauge",
            "Exchanges waiting to be attributed to an edge.",
            st.edges_pending as u64,
        ),
        (
            "wirelens_peer_endpoints_refused_total",
            "counter",
            "Endpoints of observed processes not remembered because the peer table was full: \
             their peers are named by address.",
            st.peers_refused,
        ),
    ];
    let simple = simple.into_iter().chain(graph);
    for (name, kind, help, v) in simple {
        header(out, name, kind, help);
        let _ = writeln!(out, "{name} {v}");
    }
    // The metadata source's own figures, read as they are now (nothing when it is off).
    crate::k8s::render_health(&crate::k8s::health_rows(), out);
    let name = "wirelens_series";
    header(out, name, "gauge", "Series held by the aggregator now.");
    let _ = writeln!(out, "{name} {}", st.series);
    let name = "wirelens_series_expired_total";
    header(
        out,
        name,
        "counter",
        "Series forgotten after aggregation.expiry_periods periods without an update.",
    );
    let _ = writeln!(out, "{name} {}", st.expired);
    let name = "wirelens_series_dropped_total";
    header(
        out,
        name,
        "counter",
        "Measurements counted in the service's _overflow series because its series budget \
         (aggregation.series_per_service) was spent.",
    );
    // Every service present starts at 0, so the counter exists before the first drop.
    let mut dropped: std::collections::BTreeMap<&str, u64> =
        agg.services().map(|s| (s, 0)).collect();
    dropped.extend(agg.dropped_by_service());
    for (service, n) in dropped {
        let mut l = Labels::default();
        l.add("service_name", service);
        let _ = writeln!(out, "{name}{} {n}", l.finish());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut s = String::new();
        escape_label_value("a\"b\\c\nd", &mut s);
        assert_eq!(s, "a\\\"b\\\\c\\nd");
    }
}
