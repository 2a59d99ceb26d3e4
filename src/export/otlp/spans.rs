//! One span per exchange (OpenTelemetry semantic conventions: "HTTP spans", "Database client
//! spans", "Redis", "DNS"), built as the SDK's [`SpanData`] so that opentelemetry-otlp's
//! exporter sends it.
//!
//! - Kind: SERVER when the observed process answered, CLIENT when it asked (a record whose role
//!   is unknown, only in replay, is taken as the server's, as the aggregator does).
//! - Time: the kernel timestamps: start `ts_ns`, end `ts_ns + latency_ns` (start again for an
//!   exchange that got no response).
//! - Parent: the W3C `traceparent` read from the request, when there was one (same trace id,
//!   the header's span id as remote parent), else a new trace. Client and server spans are
//!   both children of the header's span: the agent cannot know whether the application
//!   exported a span of its own with that id.
//! - Privacy: statements only obfuscated (`db.query.text`), no header values, no query string
//!   (`url.path` is the path alone), no Redis arguments, no DNS answers.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SpanData, SpanEvents, SpanLinks};
use wirelens_protocols::{Request, Response, Role};

use crate::aggregate::key::{error_type, http_method};
use crate::output::Record;

/// The trace and parent span of a record: the `traceparent` it carried, or none.
pub fn parent_of(r: &Record) -> Option<(TraceId, SpanId)> {
    let t = r.trace.as_ref()?;
    let trace = TraceId::from_hex(&t.trace_id).ok()?;
    let span = SpanId::from_hex(&t.span_id).ok()?;
    (trace != TraceId::INVALID && span != SpanId::INVALID).then_some((trace, span))
}

/// Whether a trace is kept at `ratio`: the lower 63 bits of the trace id against the ratio,
/// as the specification's TraceIdRatioBased sampler does, so that every agent seeing the same
/// trace decides alike.
pub fn sampled(trace: TraceId, ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    if ratio <= 0.0 {
        return false;
    }
    let bytes = trace.to_bytes();
    let mut low = [0u8; 8];
    low.copy_from_slice(&bytes[8..16]);
    let x = u64::from_be_bytes(low) >> 1;
    (x as f64) < ratio * (1u64 << 63) as f64
}

/// A new trace id for a record without a parent.
pub fn new_trace_id() -> TraceId {
    RandomIdGenerator::default().new_trace_id()
}

fn time(ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns)
}

/// A record waiting to be exported, with its trace and parent span.
pub type SpanItem = (Record, TraceId, Option<SpanId>);

/// One resource's share of a batch: the service, the pod's `k8s.*` attributes, the spans.
pub type ResourceGroup = (String, Vec<(&'static str, String)>, Vec<SpanData>);

/// The spans of a batch, grouped by resource: one per observed service, and per pod when the
/// service runs in pods. Each group: the service, the pod's `k8s.*` resource attributes
/// (empty outside pods), the spans; in that order of service and attributes.
///
/// Records of a pod share its `k8s` object (crate::k8s): they are grouped by that object, and
/// its attributes are written once per group, not per record.
pub fn by_resource(
    items: impl Iterator<Item = SpanItem>,
    scope: &InstrumentationScope,
) -> Vec<ResourceGroup> {
    let mut hosts: std::collections::BTreeMap<String, Vec<SpanData>> = Default::default();
    let mut pods: std::collections::HashMap<*const (), (crate::k8s::SharedK8s, Vec<SpanData>)> =
        Default::default();
    for (r, trace, parent) in items {
        let span = span_of(&r, trace, parent, scope);
        match &r.k8s {
            Some(k) => {
                pods.entry(std::sync::Arc::as_ptr(k).cast())
                    .or_insert_with(|| (k.clone(), Vec::new()))
                    .1
                    .push(span);
            }
            None => {
                let service = crate::aggregate::key::service_of(&r);
                match hosts.get_mut(service) {
                    Some(spans) => spans.push(span),
                    None => {
                        hosts.insert(service.to_string(), vec![span]);
                    }
                }
            }
        }
    }
    let mut out: Vec<_> = hosts
        .into_iter()
        .map(|(service, spans)| (service, Vec::new(), spans))
        .chain(
            pods.into_values()
                .map(|(k, spans)| (k.service.clone(), k.resource_attributes(), spans)),
        )
        .collect();
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    // Two objects of one pod (the metadata changed during the batch) are one resource.
    out.dedup_by(|later, first| {
        let same = (&later.0, &later.1) == (&first.0, &first.1);
        if same {
            first.2.append(&mut later.2);
        }
        same
    });
    out
}

/// The span of one record, in trace `trace`, child of `parent` when there is one.
pub fn span_of(
    r: &Record,
    trace: TraceId,
    parent: Option<SpanId>,
    scope: &InstrumentationScope,
) -> SpanData {
    let kind = if r.role == Role::Client {
        SpanKind::Client
    } else {
        SpanKind::Server
    };
    let (name, mut attributes) = describe(r);
    if let Some(t) = transport(r) {
        attributes.push(KeyValue::new("network.transport", t));
    }
    let err = error_type(r);
    let status = if err.is_empty() {
        Status::Unset
    } else {
        attributes.push(KeyValue::new("error.type", err.clone()));
        Status::Error {
            description: Cow::Owned(err),
        }
    };
    let start = r.ts_ns;
    let end = start.saturating_add(r.latency_ns.unwrap_or(0));
    let span_id = RandomIdGenerator::default().new_span_id();
    SpanData {
        span_context: SpanContext::new(
            trace,
            span_id,
            TraceFlags::SAMPLED,
            false,
            TraceState::NONE,
        ),
        parent_span_id: parent.unwrap_or(SpanId::INVALID),
        parent_span_is_remote: parent.is_some(),
        span_kind: kind,
        name: Cow::Owned(name),
        start_time: time(start),
        end_time: time(end),
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status,
        instrumentation_scope: scope.clone(),
    }
}

/// `tcp` for the protocols that only run over TCP; none for DNS, whose record does not say
/// whether it came over UDP or TCP.
fn transport(r: &Record) -> Option<&'static str> {
    match r.request {
        Request::Dns(_) => None,
        _ => Some("tcp"),
    }
}

fn peer(r: &Record, out: &mut Vec<KeyValue>) {
    out.push(KeyValue::new("server.address", r.server.ip.clone()));
    out.push(KeyValue::new("server.port", i64::from(r.server.port)));
    out.push(KeyValue::new("client.address", r.client.ip.clone()));
    out.push(KeyValue::new("client.port", i64::from(r.client.port)));
}

/// The span name and the protocol's attributes.
fn describe(r: &Record) -> (String, Vec<KeyValue>) {
    let mut a = Vec::with_capacity(12);
    peer(r, &mut a);
    let name = match &r.request {
        Request::Http(q) => {
            let method = http_method(&q.method);
            a.push(KeyValue::new("http.request.method", method));
            if method == "_OTHER" {
                a.push(KeyValue::new(
                    "http.request.method_original",
                    q.method.clone(),
                ));
            }
            let route = q
                .route
                .clone()
                .unwrap_or_else(|| wirelens_protocols::http::route_template(&q.path));
            let path = q.path.split(['?', '#']).next().unwrap_or_default();
            a.push(KeyValue::new("url.path", path.to_string()));
            // `http.route` is the server's; a client's template of the path is `url.template`.
            let route_key = if r.role == Role::Client {
                "url.template"
            } else {
                "http.route"
            };
            a.push(KeyValue::new(route_key, route.clone()));
            a.push(KeyValue::new("network.protocol.name", "http"));
            if let Some(Response::Http(s)) = &r.response {
                a.push(KeyValue::new(
                    "http.response.status_code",
                    i64::from(s.status),
                ));
            }
            let verb = if method == "_OTHER" { "HTTP" } else { method };
            format!("{verb} {route}")
        }
        Request::Mysql(q) => {
            let op = q.operation.clone().unwrap_or_else(|| q.command.clone());
            let statement = q.query.as_deref().map(wirelens_protocols::sql::obfuscate);
            db(&mut a, "mysql", &op, q.table.as_deref(), statement);
            if let Some(Response::Mysql(s)) = &r.response {
                if let Some(code) = s.code {
                    a.push(KeyValue::new("db.response.status_code", code.to_string()));
                }
            }
            db_name(&op, q.table.as_deref(), "mysql")
        }
        Request::Pgsql(q) => {
            let op = q.operation.clone().unwrap_or_default();
            let statement = Some(wirelens_protocols::sql::obfuscate_as(
                &q.query,
                wirelens_protocols::sql::Dialect::Postgres,
            ));
            db(&mut a, "postgresql", &op, q.table.as_deref(), statement);
            if let Some(Response::Pgsql(s)) = &r.response {
                if let Some(code) = &s.code {
                    a.push(KeyValue::new("db.response.status_code", code.clone()));
                }
            }
            db_name(&op, q.table.as_deref(), "postgresql")
        }
        Request::Redis(q) => {
            db(&mut a, "redis", &q.command, None, None);
            db_name(&q.command, None, "redis")
        }
        Request::Dns(q) => {
            a.push(KeyValue::new("dns.question.name", q.name.clone()));
            a.push(KeyValue::new("dns.question.type", q.qtype.clone()));
            if let Some(Response::Dns(s)) = &r.response {
                a.push(KeyValue::new("dns.response_code", s.rcode.clone()));
                a.push(KeyValue::new("dns.answers", i64::from(s.answers)));
            }
            if q.qtype.is_empty() {
                "DNS".to_string()
            } else {
                q.qtype.clone()
            }
        }
    };
    (name, a)
}

fn db(
    a: &mut Vec<KeyValue>,
    system: &'static str,
    op: &str,
    table: Option<&str>,
    statement: Option<String>,
) {
    a.push(KeyValue::new("db.system.name", system));
    if !op.is_empty() {
        a.push(KeyValue::new("db.operation.name", op.to_string()));
    }
    if let Some(t) = table.filter(|t| !t.is_empty()) {
        a.push(KeyValue::new("db.collection.name", t.to_string()));
    }
    if let Some(s) = statement.filter(|s| !s.is_empty()) {
        a.push(KeyValue::new("db.query.text", s));
    }
}

/// `{db.operation.name} {db.collection.name}`, the operation alone, or the system
/// (semantic conventions, "Database spans", name).
fn db_name(op: &str, table: Option<&str>, system: &str) -> String {
    match (op.is_empty(), table.filter(|t| !t.is_empty())) {
        (false, Some(t)) => format!("{op} {t}"),
        (false, None) => op.to_string(),
        (true, _) => system.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_sampling_is_by_trace_id() {
        let low = TraceId::from_hex("0000000000000000000000000000000a").unwrap();
        let high = TraceId::from_hex("0000000000000000fffffffffffffffe").unwrap();
        assert!(sampled(low, 0.5) && !sampled(high, 0.5));
        assert!(sampled(high, 1.0) && !sampled(low, 0.0));
    }

    fn served_by(comm: &str, pod: Option<&crate::k8s::SharedK8s>) -> SpanItem {
        use wirelens_protocols::http::{HttpRequest, HttpResponse};
        use wirelens_protocols::{Exchange, Outcome};
        let ex = Exchange {
            req_ts_ns: 1,
            resp_ts_ns: Some(2),
            request: Request::Http(HttpRequest {
                method: "GET".into(),
                route: None,
                path: "/".into(),
                host: None,
            }),
            response: Some(Response::Http(HttpResponse {
                status: 200,
                body_bytes: 0,
            })),
            outcome: Outcome::Complete,
            truncated: false,
            trace: None,
        };
        let process = Some(crate::output::ProcessRecord {
            pid: 7,
            comm: comm.into(),
        });
        let a = "10.0.0.2:40000".parse().expect("literal");
        let b = "10.0.0.1:80".parse().expect("literal");
        let mut r = Record::new(ex, Role::Server, a, b, process);
        r.k8s = pod.cloned();
        (r, new_trace_id(), None)
    }

    #[test]
    fn spans_are_grouped_by_service_and_pod() {
        use crate::k8s::{K8sRecord, Shared};
        use std::sync::Arc;
        let pod = |name: &str| {
            Arc::new(Shared::new(K8sRecord {
                namespace: "shop".into(),
                pod: name.into(),
                pod_uid: format!("uid-{name}"),
                container: None,
                workload: None,
                workload_kind: None,
                service: "web".into(),
                node: None,
            }))
        };
        // p1 twice over: the same pod's object made again after a metadata change.
        let (p1, p1_again, p2) = (pod("web-1"), pod("web-1"), pod("web-2"));
        let items = vec![
            served_by("b", None),
            served_by("nginx", Some(&p1)),
            served_by("a", None),
            served_by("nginx", Some(&p2)),
            served_by("nginx", Some(&p1_again)),
            served_by("a", None),
            served_by("nginx", Some(&p1)),
        ];
        let scope = InstrumentationScope::builder("t").build();
        let got: Vec<(String, Option<String>, usize)> = by_resource(items.into_iter(), &scope)
            .into_iter()
            .map(|(service, attrs, spans)| {
                let pod = attrs
                    .iter()
                    .find(|(k, _)| *k == "k8s.pod.name")
                    .map(|(_, v)| v.clone());
                (service, pod, spans.len())
            })
            .collect();
        let want = [
            ("a", None, 2),
            ("b", None, 1),
            ("web", Some("web-1"), 3),
            ("web", Some("web-2"), 1),
        ]
        .map(|(s, p, n)| (s.to_string(), p.map(String::from), n));
        assert_eq!(got, want);
    }

    #[test]
    fn names() {
        assert_eq!(db_name("SELECT", Some("orders"), "mysql"), "SELECT orders");
        assert_eq!(db_name("BEGIN", None, "mysql"), "BEGIN");
        assert_eq!(db_name("", None, "postgresql"), "postgresql");
    }
}
