//! One span per exchange (OpenTelemetry semantic conventions: "HTTP spans", "Database client
//! spans", "Redis", "DNS"), encoded as OTLP protobuf straight from the record ([`request`]):
//! a batch becomes one `ExportTraceServiceRequest` with a `ResourceSpans` per observed
//! service (and pod).
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

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
use wirelens_protocols::{Request, Response, Role};

use super::pb;
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

/// A new span id.
pub fn new_span_id() -> SpanId {
    RandomIdGenerator::default().new_span_id()
}

/// A record waiting to be exported, with its trace and parent span.
pub type SpanItem = (Record, TraceId, Option<SpanId>);

/// What the encoder takes: a record, where it lies (not moved), with its trace and parent.
pub type SpanRef<'a> = (&'a Record, TraceId, Option<SpanId>);

/// Where a span's attributes go.
trait Attrs {
    fn str(&mut self, key: &'static str, value: &str);
    fn int(&mut self, key: &'static str, value: i64);
}

/// `Span.attributes` (field 9), as protobuf.
struct SpanAttrs<'a>(&'a mut Vec<u8>);

impl Attrs for SpanAttrs<'_> {
    fn str(&mut self, key: &'static str, value: &str) {
        pb::kv_str(self.0, 9, key, value);
    }
    fn int(&mut self, key: &'static str, value: i64) {
        pb::kv_int(self.0, 9, key, value);
    }
}

/// `Span.SpanKind`.
const KIND_SERVER: u64 = 2;
const KIND_CLIENT: u64 = 3;
/// `Status.StatusCode.STATUS_CODE_ERROR`.
const STATUS_ERROR: u64 = 2;
/// `SpanFlags`: the W3C flags (sampled), and whether the parent is remote, known and said.
const FLAG_SAMPLED: u32 = 0x01;
const FLAG_HAS_IS_REMOTE: u32 = 0x100;
const FLAG_IS_REMOTE: u32 = 0x200;

/// Appends the fields of the `Span` of one record (trace `trace`, child of `parent` when
/// there is one, id `span_id`) to `out`.
pub fn encode_span(
    out: &mut Vec<u8>,
    r: &Record,
    trace: TraceId,
    parent: Option<SpanId>,
    span_id: SpanId,
) {
    pb::bytes(out, 1, &trace.to_bytes());
    pb::bytes(out, 2, &span_id.to_bytes());
    if let Some(p) = parent.filter(|p| *p != SpanId::INVALID) {
        pb::bytes(out, 4, &p.to_bytes());
    }
    let kind = if r.role == Role::Client {
        KIND_CLIENT
    } else {
        KIND_SERVER
    };
    pb::uint(out, 6, kind);
    let start = r.ts_ns;
    pb::fixed64(out, 7, start);
    pb::fixed64(out, 8, start.saturating_add(r.latency_ns.unwrap_or(0)));
    let mut a = SpanAttrs(out);
    let name = describe(r, &mut a);
    if let Some(t) = transport(r) {
        a.str("network.transport", t);
    }
    let err = error_type(r);
    if !err.is_empty() {
        a.str("error.type", &err);
    }
    name.write(out, 5);
    pb::message(out, 15, |st| {
        if !err.is_empty() {
            pb::bytes(st, 2, err.as_bytes());
            pb::uint(st, 3, STATUS_ERROR);
        }
    });
    let remote = if parent.is_some() { FLAG_IS_REMOTE } else { 0 };
    pb::fixed32(out, 16, FLAG_SAMPLED | FLAG_HAS_IS_REMOTE | remote);
}

/// The attributes of the resource of a service (and of its pod's `k8s.*` attributes).
pub type ResourceOf<'a> = dyn Fn(&str, &[(&'static str, String)]) -> Vec<(String, String)> + 'a;

/// The `ExportTraceServiceRequest` of a batch, encoded: one `ResourceSpans` per observed
/// service, and per pod when the service runs in pods, in order of service and pod; each with
/// the attributes `resource` gives for (service, the pod's `k8s.*` attributes), and one
/// `ScopeSpans` of `scope` (name, version) holding the spans.
///
/// Records of a pod share its `k8s` object (crate::k8s): they are grouped by that object, and
/// its attributes are written once per group, not per record.
pub fn request(items: &[SpanRef<'_>], resource: &ResourceOf<'_>, scope: (&str, &str)) -> Vec<u8> {
    type Group = (String, Vec<(&'static str, String)>, Vec<usize>);
    let mut hosts: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut pods: std::collections::HashMap<*const (), usize> = Default::default();
    let mut groups: Vec<Group> = Vec::new();
    for (i, (r, _, _)) in items.iter().enumerate() {
        let g = match &r.k8s {
            Some(k) => *pods
                .entry(std::sync::Arc::as_ptr(k).cast())
                .or_insert_with(|| {
                    groups.push((k.service.clone(), k.resource_attributes(), Vec::new()));
                    groups.len() - 1
                }),
            None => {
                let service = crate::aggregate::key::service_of(r);
                *hosts.entry(service).or_insert_with(|| {
                    groups.push((service.to_string(), Vec::new(), Vec::new()));
                    groups.len() - 1
                })
            }
        };
        groups[g].2.push(i);
    }
    groups.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    // Two objects of one pod (the metadata changed during the batch) are one resource.
    groups.dedup_by(|later, first| {
        let same = (&later.0, &later.1) == (&first.0, &first.1);
        if same {
            first.2.append(&mut later.2);
        }
        same
    });
    let mut out = Vec::with_capacity(items.len() * 320 + groups.len() * 256);
    // A group's ResourceSpans and ScopeSpans take up to a few hundred KiB: three bytes of
    // length.
    for (service, pod, members) in &groups {
        pb::message_sized(&mut out, 1, 3, |rs| {
            pb::message(rs, 1, |res| {
                for (k, v) in resource(service, pod) {
                    pb::kv_str(res, 1, &k, &v);
                }
            });
            pb::message_sized(rs, 2, 3, |ss| {
                pb::message(ss, 1, |sc| {
                    pb::bytes(sc, 1, scope.0.as_bytes());
                    pb::bytes(sc, 2, scope.1.as_bytes());
                });
                for &i in members {
                    let (r, trace, parent) = items[i];
                    // Most spans take 128 bytes to 16 KiB.
                    pb::message_sized(ss, 2, 2, |sp| {
                        encode_span(sp, r, trace, parent, new_span_id());
                    });
                }
            });
        });
    }
    out
}

/// `tcp` for the protocols that only run over TCP; none for DNS, whose record does not say
/// whether it came over UDP or TCP.
fn transport(r: &Record) -> Option<&'static str> {
    match r.request {
        Request::Dns(_) => None,
        _ => Some("tcp"),
    }
}

fn peer(r: &Record, a: &mut impl Attrs) {
    a.str("server.address", &r.server.ip);
    a.int("server.port", i64::from(r.server.port));
    a.str("client.address", &r.client.ip);
    a.int("client.port", i64::from(r.client.port));
}

/// A span name: one or two words (written with a space between), or one built for the span.
enum Name<'r> {
    One(&'r str),
    Two(&'r str, &'r str),
    Owned(String),
}

impl Name<'_> {
    /// The name as a `string` field, with no copy of it made first.
    fn write(&self, out: &mut Vec<u8>, field: u32) {
        match self {
            Name::One(s) => pb::bytes(out, field, s.as_bytes()),
            Name::Two(a, b) => pb::bytes_parts(out, field, &[a, " ", b]),
            Name::Owned(s) => pb::bytes(out, field, s.as_bytes()),
        }
    }

    #[cfg(test)]
    fn text(&self) -> String {
        match self {
            Name::One(s) => s.to_string(),
            Name::Two(a, b) => format!("{a} {b}"),
            Name::Owned(s) => s.clone(),
        }
    }
}

/// Writes the protocol's attributes; returns the span name.
fn describe<'r>(r: &'r Record, a: &mut impl Attrs) -> Name<'r> {
    peer(r, a);
    match &r.request {
        Request::Http(q) => {
            let method = http_method(&q.method);
            a.str("http.request.method", method);
            if method == "_OTHER" {
                a.str("http.request.method_original", &q.method);
            }
            let computed;
            let route = match &q.route {
                Some(r) => r.as_str(),
                None => {
                    computed = wirelens_protocols::http::route_template(&q.path);
                    computed.as_str()
                }
            };
            let path = q.path.split(['?', '#']).next().unwrap_or_default();
            a.str("url.path", path);
            // `http.route` is the server's; a client's template of the path is `url.template`.
            let route_key = if r.role == Role::Client {
                "url.template"
            } else {
                "http.route"
            };
            a.str(route_key, route);
            a.str("network.protocol.name", "http");
            if let Some(Response::Http(s)) = &r.response {
                a.int("http.response.status_code", i64::from(s.status));
            }
            let verb = if method == "_OTHER" { "HTTP" } else { method };
            match &q.route {
                Some(route) => Name::Two(verb, route),
                None => Name::Owned(format!("{verb} {route}")),
            }
        }
        Request::Mysql(q) => {
            let op = q.operation.as_deref().unwrap_or(&q.command);
            let statement = q.query.as_deref().map(wirelens_protocols::sql::obfuscate);
            db(a, "mysql", op, q.table.as_deref(), statement);
            if let Some(Response::Mysql(s)) = &r.response {
                if let Some(code) = s.code {
                    a.str("db.response.status_code", &code.to_string());
                }
            }
            db_name(op, q.table.as_deref(), "mysql")
        }
        Request::Pgsql(q) => {
            let op = q.operation.as_deref().unwrap_or_default();
            let statement = Some(wirelens_protocols::sql::obfuscate_as(
                &q.query,
                wirelens_protocols::sql::Dialect::Postgres,
            ));
            db(a, "postgresql", op, q.table.as_deref(), statement);
            if let Some(Response::Pgsql(s)) = &r.response {
                if let Some(code) = &s.code {
                    a.str("db.response.status_code", code);
                }
            }
            db_name(op, q.table.as_deref(), "postgresql")
        }
        Request::Redis(q) => {
            db(a, "redis", &q.command, None, None);
            db_name(&q.command, None, "redis")
        }
        Request::Dns(q) => {
            a.str("dns.question.name", &q.name);
            a.str("dns.question.type", &q.qtype);
            if let Some(Response::Dns(s)) = &r.response {
                a.str("dns.response_code", &s.rcode);
                a.int("dns.answers", i64::from(s.answers));
            }
            if q.qtype.is_empty() {
                Name::One("DNS")
            } else {
                Name::One(&q.qtype)
            }
        }
    }
}

fn db(
    a: &mut impl Attrs,
    system: &'static str,
    op: &str,
    table: Option<&str>,
    statement: Option<String>,
) {
    a.str("db.system.name", system);
    if !op.is_empty() {
        a.str("db.operation.name", op);
    }
    if let Some(t) = table.filter(|t| !t.is_empty()) {
        a.str("db.collection.name", t);
    }
    if let Some(s) = statement.filter(|s| !s.is_empty()) {
        a.str("db.query.text", &s);
    }
}

/// `{db.operation.name} {db.collection.name}`, the operation alone, or the system
/// (semantic conventions, "Database spans", name).
fn db_name<'r>(op: &'r str, table: Option<&'r str>, system: &'static str) -> Name<'r> {
    match (op.is_empty(), table.filter(|t| !t.is_empty())) {
        (false, Some(t)) => Name::Two(op, t),
        (false, None) => Name::One(op),
        (true, _) => Name::One(system),
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
        let process = Some(crate::output::ProcessRecord {
            pid: 7,
            comm: comm.into(),
        });
        let mut r =
            crate::output::served_get("10.0.0.2:40000", "10.0.0.1:80", Role::Server, process, None);
        r.k8s = pod.cloned();
        (r, new_trace_id(), None)
    }

    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::trace::v1::{span, status, Span, Status};
    use prost::Message;
    use std::collections::BTreeMap;

    const SCOPE: (&str, &str) = ("wirelens", "1.2.3");

    fn resource(service: &str, pod: &[(&'static str, String)]) -> Vec<(String, String)> {
        std::iter::once(("service.name".to_string(), service.to_string()))
            .chain(pod.iter().map(|(k, v)| (k.to_string(), v.clone())))
            .collect()
    }

    fn decode(body: &[u8]) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest::decode(body).expect("a trace request")
    }

    fn attrs(kvs: &[KeyValue]) -> BTreeMap<String, String> {
        kvs.iter()
            .map(|kv| {
                let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(any_value::Value::StringValue(s)) => s.clone(),
                    Some(any_value::Value::IntValue(i)) => i.to_string(),
                    other => format!("{other:?}"),
                };
                (kv.key.clone(), v)
            })
            .collect()
    }

    fn kv(key: &str, v: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..KeyValue::default()
        }
    }

    /// Every field of two spans, as a collector decodes them: a traced HTTP server answer,
    /// and a Redis call that failed.
    #[test]
    fn spans_decode_as_the_records_say() {
        use any_value::Value::{IntValue as I, StringValue as S};
        use wirelens_protocols::redis::{RedisRequest, RedisResponse};
        let mut web = served_by("nginx", None).0;
        web.trace = Some(wirelens_protocols::TraceContext {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            span_id: "00f067aa0ba902b7".into(),
        });
        let (trace, parent) = parent_of(&web).expect("traced");
        let ex = wirelens_protocols::Exchange {
            req_ts_ns: 5_000,
            resp_ts_ns: Some(7_500),
            request: Request::Redis(RedisRequest {
                command: "GET".into(),
                args: 1,
            }),
            response: Some(Response::Redis(RedisResponse {
                error: true,
                message: Some("WRONGTYPE Operation".into()),
            })),
            outcome: wirelens_protocols::Outcome::Complete,
            truncated: false,
            trace: None,
        };
        let a = "127.0.0.1:40001".parse().expect("literal");
        let b = "127.0.0.1:6379".parse().expect("literal");
        let process = Some(crate::output::ProcessRecord {
            pid: 9,
            comm: "app".into(),
        });
        let redis = Record::new(ex, Role::Client, a, b, process);
        let redis_trace = new_trace_id();
        let items = [(web, trace, Some(parent)), (redis, redis_trace, None)];
        let req = decode(&request(
            &items
                .iter()
                .map(|(r, t, p)| (r, *t, *p))
                .collect::<Vec<_>>(),
            &resource,
            SCOPE,
        ));
        assert_eq!(req.resource_spans.len(), 2);
        let mut got = Vec::new();
        for rs in &req.resource_spans {
            assert_eq!(rs.scope_spans.len(), 1);
            let scope = rs.scope_spans[0].scope.clone().unwrap_or_default();
            assert_eq!((scope.name.as_str(), scope.version.as_str()), SCOPE);
            for sp in &rs.scope_spans[0].spans {
                assert_eq!(sp.span_id.len(), 8, "a span id");
                assert_ne!(sp.span_id, [0; 8]);
                got.push(Span {
                    span_id: Vec::new(),
                    ..sp.clone()
                });
            }
        }
        let flags = |remote: bool| 0x101 | if remote { 0x200 } else { 0 };
        let want = [
            Span {
                name: "GET".into(),
                trace_id: redis_trace.to_bytes().to_vec(),
                kind: span::SpanKind::Client as i32,
                start_time_unix_nano: 5_000,
                end_time_unix_nano: 7_500,
                attributes: vec![
                    kv("server.address", S("127.0.0.1".into())),
                    kv("server.port", I(6379)),
                    kv("client.address", S("127.0.0.1".into())),
                    kv("client.port", I(40001)),
                    kv("db.system.name", S("redis".into())),
                    kv("db.operation.name", S("GET".into())),
                    kv("network.transport", S("tcp".into())),
                    kv("error.type", S("WRONGTYPE".into())),
                ],
                status: Some(Status {
                    message: "WRONGTYPE".into(),
                    code: status::StatusCode::Error as i32,
                }),
                flags: flags(false),
                ..Span::default()
            },
            Span {
                name: "GET /".into(),
                trace_id: trace.to_bytes().to_vec(),
                parent_span_id: parent.to_bytes().to_vec(),
                kind: span::SpanKind::Server as i32,
                start_time_unix_nano: 1,
                end_time_unix_nano: 2,
                attributes: vec![
                    kv("server.address", S("10.0.0.1".into())),
                    kv("server.port", I(80)),
                    kv("client.address", S("10.0.0.2".into())),
                    kv("client.port", I(40000)),
                    kv("http.request.method", S("GET".into())),
                    kv("url.path", S("/".into())),
                    kv("http.route", S("/".into())),
                    kv("network.protocol.name", S("http".into())),
                    kv("http.response.status_code", I(200)),
                    kv("network.transport", S("tcp".into())),
                ],
                status: Some(Status::default()),
                flags: flags(true),
                ..Span::default()
            },
        ];
        // Resources in order of service: "app" (the Redis client), then "nginx".
        assert_eq!(got, want);
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
        let items = [
            served_by("b", None),
            served_by("nginx", Some(&p1)),
            served_by("a", None),
            served_by("nginx", Some(&p2)),
            served_by("nginx", Some(&p1_again)),
            served_by("a", None),
            served_by("nginx", Some(&p1)),
        ];
        let refs: Vec<SpanRef<'_>> = items.iter().map(|(r, t, p)| (r, *t, *p)).collect();
        let got: Vec<(String, Option<String>, usize)> = decode(&request(&refs, &resource, SCOPE))
            .resource_spans
            .into_iter()
            .map(|rs| {
                let attrs = attrs(&rs.resource.unwrap_or_default().attributes);
                let spans = rs.scope_spans.iter().map(|ss| ss.spans.len()).sum();
                let service = attrs["service.name"].clone();
                (service, attrs.get("k8s.pod.name").cloned(), spans)
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
        assert_eq!(
            db_name("SELECT", Some("orders"), "mysql").text(),
            "SELECT orders"
        );
        assert_eq!(db_name("BEGIN", None, "mysql").text(), "BEGIN");
        assert_eq!(db_name("", None, "postgresql").text(), "postgresql");
        for name in [
            Name::Two("GET", "/users/{id}"),
            Name::One("A"),
            Name::One(""),
            Name::Owned("x".repeat(200)),
            Name::Two("SELECT", &"t".repeat(300)),
        ] {
            let (mut parts, mut whole) = (Vec::new(), Vec::new());
            name.write(&mut parts, 5);
            pb::bytes(&mut whole, 5, name.text().as_bytes());
            assert_eq!(parts, whole, "{}", name.text());
        }
    }
}
