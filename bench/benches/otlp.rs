//! What OTLP export costs the agent's CPU, per record and per period:
//!
//! - `span_of`: one record (HTTP server with a traceparent, PostgreSQL client with a statement
//!   to obfuscate, Redis, DNS, in turn) encoded as an OTLP `Span`;
//! - `offer`: the pipeline's side: the sampling decision and a record moved into the queue
//!   (the queue is drained by a task that drops what it gets, so the queue never fills; the
//!   records are cloned for it outside the measured time, as the pipeline has them);
//! - `export_body`: a batch of 512 records, each the HTTP server's of `span_of`, made into the
//!   body of its export call (grouped by resource, every span encoded): `plain`, 10 services
//!   of a host; `k8s`, the same from 10 Deployments of 4 pods each (every record with its
//!   pod's `k8s` object, each pod's resource apart);
//! - `snapshot_1000_series`: one period's metrics request built from an aggregator holding
//!   1,000 series of 10 services, and encoded to protobuf (the encoding is the transport's
//!   job, counted here to show the whole cost of a period).
//!
//! Run: `cargo bench -p wirelens-bench --bench otlp`.

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use prost::Message;
use wirelens::aggregate::{AggregationSettings, Aggregator};
use wirelens::export::otlp::{metrics, spans};
use wirelens::k8s::{K8sRecord, Shared};
use wirelens::output::{ProcessRecord, Record};
use wirelens_protocols::{dns, http, pgsql, redis};
use wirelens_protocols::{Exchange, Outcome, Request, Response, Role, TraceContext};

fn record(comm: &str, role: Role, request: Request, response: Response, port: u16) -> Record {
    let ex = Exchange {
        req_ts_ns: 1_700_000_000_000_000_000,
        resp_ts_ns: Some(1_700_000_000_002_000_000),
        request,
        response: Some(response),
        outcome: Outcome::Complete,
        truncated: false,
        trace: None,
    };
    let client: SocketAddr = format!("10.0.0.1:{port}").parse().unwrap();
    let server: SocketAddr = "10.0.0.2:8080".parse().unwrap();
    let process = Some(ProcessRecord {
        pid: 42,
        comm: comm.into(),
    });
    Record::new(ex, role, client, server, process)
}

fn records() -> Vec<Record> {
    let mut web = record(
        "web",
        Role::Server,
        Request::Http(http::HttpRequest {
            method: "GET".into(),
            path: "/users/42/orders?page=3".into(),
            host: Some("shop".into()),
            route: Some("/users/{id}/orders".into()),
        }),
        Response::Http(http::HttpResponse {
            status: 200,
            body_bytes: 512,
        }),
        40000,
    );
    web.trace = Some(TraceContext {
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        span_id: "00f067aa0ba902b7".into(),
    });
    let pg = record(
        "app",
        Role::Client,
        Request::Pgsql(pgsql::PgsqlRequest {
            query: "SELECT o.id, o.total FROM orders o WHERE o.user_id = 42 AND o.state IN \
                    ('new', 'paid') ORDER BY o.created DESC LIMIT 20"
                .into(),
            kind: "simple".into(),
            operation: Some("SELECT".into()),
            table: Some("orders".into()),
        }),
        Response::Pgsql(pgsql::PgsqlResponse {
            error: false,
            code: None,
            message: None,
            rows: Some(20),
        }),
        40001,
    );
    let rd = record(
        "app",
        Role::Client,
        Request::Redis(redis::RedisRequest {
            command: "GET".into(),
            args: 1,
        }),
        Response::Redis(redis::RedisResponse {
            error: false,
            message: None,
        }),
        40002,
    );
    let dn = record(
        "app",
        Role::Client,
        Request::Dns(dns::DnsRequest {
            name: "orders.shop.svc.cluster.local".into(),
            qtype: "A".into(),
            id: 7,
            class: None,
            opcode: None,
        }),
        Response::Dns(dns::DnsResponse {
            rcode: "NOERROR".into(),
            answers: 1,
            tc: false,
        }),
        40003,
    );
    vec![web, pg, rd, dn]
}

fn bench(c: &mut Criterion) {
    let recs = records();
    let scope = ("wirelens", "0.1.0");
    let resource = |s: &str, pod: &[(&'static str, String)]| {
        std::iter::once(("service.name".to_string(), s.to_string()))
            .chain(pod.iter().map(|(k, v)| (k.to_string(), v.clone())))
            .collect::<Vec<_>>()
    };
    let mut g = c.benchmark_group("otlp");
    g.throughput(Throughput::Elements(recs.len() as u64));
    g.bench_function("span_of", |b| {
        b.iter(|| {
            for r in &recs {
                let (trace, parent) = match spans::parent_of(r) {
                    Some((t, s)) => (t, Some(s)),
                    None => (spans::new_trace_id(), None),
                };
                let mut out = Vec::with_capacity(512);
                spans::encode_span(&mut out, r, trace, parent, spans::new_span_id());
                black_box(out);
            }
        })
    });

    let batch = |pods: bool| -> Vec<Record> {
        (0..512)
            .map(|i| {
                let mut r = recs[0].clone();
                let (svc, pod) = (i % 10, i / 10 % 4);
                if let Some(p) = r.process.as_mut() {
                    p.comm = format!("svc{svc}").into();
                }
                if pods {
                    r.k8s = Some(std::sync::Arc::new(Shared::new(K8sRecord {
                        namespace: "shop".into(),
                        pod: format!("svc{svc}-5d8f7c9b6a-x{pod}"),
                        pod_uid: format!("uid-{svc}-{pod}"),
                        container: Some("app".into()),
                        workload: Some(format!("svc{svc}")),
                        workload_kind: Some("Deployment".into()),
                        service: format!("svc{svc}"),
                        node: Some("node-1".into()),
                    })));
                }
                r
            })
            .collect()
    };
    // The records of one pod share its object, as the enricher makes them.
    let shared_pods = |mut rs: Vec<Record>| {
        let firsts: Vec<Record> = rs[..40].to_vec();
        for (i, r) in rs.iter_mut().enumerate() {
            r.k8s = firsts[i % 40].k8s.clone();
        }
        rs
    };
    for (name, rs) in [
        ("export_body/plain", batch(false)),
        ("export_body/k8s", shared_pods(batch(true))),
    ] {
        let items: Vec<spans::SpanItem> = rs
            .into_iter()
            .map(|r| (r, spans::new_trace_id(), None))
            .collect();
        let items: Vec<spans::SpanRef<'_>> = items.iter().map(|(r, t, p)| (r, *t, *p)).collect();
        // One ResourceSpans per resource: count the top-level fields of the request.
        let req = spans::request(&items, &resource, scope);
        let decoded =
            <opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest as prost::Message>::decode(
                req.as_slice(),
            )
            .unwrap();
        let groups = decoded.resource_spans.len();
        assert_eq!(groups, if name.ends_with("k8s") { 40 } else { 10 });
        g.throughput(Throughput::Elements(items.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| black_box(spans::request(black_box(&items), &resource, scope)))
        });
    }

    let rt = tokio::runtime::Runtime::new().unwrap();
    let _ctx = rt.enter();
    g.throughput(Throughput::Elements(recs.len() as u64));
    g.bench_function("offer", |b| {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Record>(4096);
        rt.spawn(async move { while rx.recv().await.is_some() {} });
        b.iter_batched(
            || recs.clone(),
            |rs| {
                for r in rs {
                    let trace = spans::parent_of(&r).map_or_else(spans::new_trace_id, |(t, _)| t);
                    if spans::sampled(trace, 1.0) {
                        let _ = tx.try_send(black_box(r));
                    }
                }
            },
            criterion::BatchSize::SmallInput,
        )
    });

    let mut agg = Aggregator::new(AggregationSettings::default());
    for svc in 0..10 {
        for i in 0..100 {
            let mut r = recs[0].clone();
            if let Some(p) = r.process.as_mut() {
                p.comm = format!("svc{svc}").into();
            }
            // One series per client address (routes would collapse into `{param}`).
            r.client.ip = format!("10.1.0.{i}").into();
            agg.observe(&r);
        }
    }
    assert_eq!(agg.stats().series, 1000);
    let mut starts = metrics::StartTimes::new(0);
    let res = |s: &str| vec![("service.name".to_string(), s.to_string())];
    g.throughput(Throughput::Elements(1000));
    g.bench_function("snapshot_1000_series", |b| {
        b.iter(|| {
            let (req, n) = metrics::snapshot(&agg, &mut starts, 1, &res);
            black_box((req.encode_to_vec(), n))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
