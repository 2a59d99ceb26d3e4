//! The OTLP exporter without the kernel: records as the pipeline makes them go through
//! `Otlp` (queue, worker, opentelemetry-otlp's span exporter, the metrics client) to the test
//! receiver over gRPC and HTTP/protobuf; the metrics snapshot is checked against the
//! aggregator it comes from; a receiver that is down costs counted drops, never a stall.

mod aggregate_support;
mod otlp;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aggregate_support::*;
use otlp::{attrs, Receiver, Wire};
use wirelens::aggregate::{AggregationSettings, Aggregator};
use wirelens::export::otlp::config::OtlpConfig;
use wirelens::export::otlp::metrics::{snapshot, StartTimes};
use wirelens::export::otlp::{Otlp, OtlpHealth};
use wirelens_protocols::{Role, TraceContext};

const MS: u64 = 1_000_000;

fn settings(r: &Receiver, queue: usize) -> wirelens::export::otlp::OtlpSettings {
    OtlpConfig {
        endpoint: Some(r.endpoint()),
        protocol: Some(r.wire.protocol().into()),
        timeout_ms: Some(500),
        queue_size: Some(queue),
        resource_attributes: Some(BTreeMap::from([("k8s.cluster.name".into(), "c1".into())])),
        ..OtlpConfig::default()
    }
    .build(&|_| None)
    .expect("valid")
    .expect("an endpoint")
}

fn records() -> Vec<wirelens::output::Record> {
    let mut traced = http_server("nginx", "GET", "/users/42", 200, 3 * MS);
    traced.trace = Some(TraceContext {
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        span_id: "00f067aa0ba902b7".into(),
    });
    vec![
        traced,
        http_server("nginx", "POST", "/users", 503, 2 * MS),
        mysql_query(
            "SELECT name FROM users WHERE id = 42 AND pw = 'hunter2'",
            "SELECT",
            "users",
            None,
            MS,
        ),
        redis_cmd("HGETALL", Some("WRONGTYPE Operation"), MS),
        dns_query("db.internal", "AAAA", "NXDOMAIN", MS),
    ]
}

fn exports_spans(wire: Wire) {
    let receiver = Receiver::start(wire);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut agg = Aggregator::new(AggregationSettings::default());
    rt.block_on(async {
        let mut o = Otlp::start(&settings(&receiver, 64)).expect("exporter");
        for r in records() {
            agg.observe(&r);
            o.offer(r);
        }
        o.period(&agg);
        let last = o.last_period(&agg);
        o.shutdown(last, Duration::from_secs(10)).await;
    });
    let spans = receiver.spans();
    let mut got: Vec<(String, String, i32)> = spans
        .iter()
        .map(|(res, s)| (res["service.name"].clone(), s.name.clone(), s.kind))
        .collect();
    got.sort();
    let (server, client) = (2, 3);
    assert_eq!(
        got,
        [
            ("app".to_string(), "AAAA".to_string(), client),
            ("app".into(), "HGETALL".into(), client),
            ("app".into(), "SELECT users".into(), client),
            ("nginx".into(), "GET /users/{id}".into(), server),
            ("nginx".into(), "POST /users".into(), server),
        ]
    );
    for (res, s) in &spans {
        assert_eq!(res["k8s.cluster.name"], "c1");
        assert!(res.contains_key("host.name"));
        let a = attrs(&s.attributes);
        assert_eq!(s.start_time_unix_nano, 1_000_000_000);
        assert!(s.end_time_unix_nano > s.start_time_unix_nano);
        match s.name.as_str() {
            "GET /users/{id}" => {
                assert_eq!(a["url.path"], "/users/42");
                assert_eq!(a["http.route"], "/users/{id}");
                assert_eq!(a["http.response.status_code"], "200");
                assert_eq!(
                    s.parent_span_id,
                    [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
                );
                assert_eq!(s.trace_id[..4], [0x4b, 0xf9, 0x2f, 0x35]);
                assert_eq!(s.end_time_unix_nano - s.start_time_unix_nano, 3 * MS);
            }
            "POST /users" => {
                assert_eq!(a["error.type"], "503");
                assert!(s.parent_span_id.is_empty());
            }
            "SELECT users" => {
                assert_eq!(
                    a["db.query.text"],
                    "SELECT name FROM users WHERE id = ? AND pw = ?"
                );
                assert_eq!(a["db.system.name"], "mysql");
                assert_eq!(a["db.collection.name"], "users");
            }
            "HGETALL" => assert_eq!(a["error.type"], "WRONGTYPE"),
            _ => {
                assert_eq!(a["dns.question.name"], "db.internal");
                assert_eq!(a["error.type"], "NXDOMAIN");
            }
        }
    }
    // Two metric requests (the period, then the last one), each with both services.
    assert_eq!(receiver.metric_requests(), 2);
    let srv = receiver.last_points("http.server.request.duration");
    assert_eq!(srv.len(), 2);
    assert!(srv.iter().all(|(r, _)| r["service.name"] == "nginx"));
    let db = receiver.last_points("db.client.operation.duration");
    let systems: Vec<_> = db
        .iter()
        .map(|(_, p)| attrs(&p.attributes)["db.system.name"].clone())
        .collect();
    assert_eq!(systems.len(), 2);
    assert!(systems.contains(&"mysql".into()) && systems.contains(&"redis".into()));
}

#[test]
fn spans_and_metrics_over_grpc() {
    exports_spans(Wire::Grpc);
}

#[test]
fn spans_and_metrics_over_http_protobuf() {
    exports_spans(Wire::Http);
}

/// The aggregator's series become points with the conventions' names and attributes, the
/// same counts and buckets; a series that expired and came back starts again.
#[test]
fn snapshot_follows_the_aggregator() {
    let mut agg = Aggregator::new(AggregationSettings {
        expiry_periods: 1,
        ..AggregationSettings::default()
    });
    for _ in 0..3 {
        agg.observe(&http_server("web", "GET", "/a/1", 200, 7 * MS));
    }
    agg.observe(&http_server("web", "GET", "/a/2", 500, 30 * MS));
    // A database seen from its own side: no OTLP metric for it.
    agg.observe(&record(
        Some("redis-server"),
        Role::Server,
        redis_cmd("GET", None, MS).request,
        redis_cmd("GET", None, MS).response,
        Some(MS),
    ));
    agg.observe(&dns_query("a.b", "A", "NOERROR", 2 * MS));
    let mut starts = StartTimes::new(100);
    let res = |s: &str| vec![("service.name".to_string(), s.to_string())];
    let (req, points) = snapshot(&agg, &mut starts, 200, &res);
    assert_eq!(points, 3);
    let names: Vec<_> = req
        .resource_metrics
        .iter()
        .map(|rm| {
            let svc = attrs(&rm.resource.as_ref().unwrap().attributes)["service.name"].clone();
            let metrics: Vec<_> = rm.scope_metrics[0]
                .metrics
                .iter()
                .map(|m| m.name.clone())
                .collect();
            (svc, metrics)
        })
        .collect();
    assert_eq!(
        names,
        [
            ("app".to_string(), vec!["dns.lookup.duration".to_string()]),
            ("web".into(), vec!["http.server.request.duration".into()]),
        ]
    );
    let web = &req.resource_metrics[1].scope_metrics[0].metrics[0];
    let Some(opentelemetry_proto::tonic::metrics::v1::metric::Data::Histogram(h)) = &web.data
    else {
        panic!("not a histogram")
    };
    let mut by_status: Vec<_> = h
        .data_points
        .iter()
        .map(|p| {
            let a = attrs(&p.attributes);
            (
                a["http.response.status_code"].clone(),
                a.get("error.type").cloned(),
                a["http.route"].clone(),
                p.count,
                p.bucket_counts.clone(),
                p.start_time_unix_nano,
            )
        })
        .collect();
    by_status.sort();
    let mut b200 = vec![0u64; 15];
    b200[1] = 3; // 7 ms: (5 ms, 10 ms]
    let mut b500 = vec![0u64; 15];
    b500[3] = 1; // 30 ms: (25 ms, 50 ms]
    assert_eq!(
        by_status,
        [
            ("200".to_string(), None, "/a/{id}".to_string(), 3, b200, 100),
            (
                "500".into(),
                Some("500".into()),
                "/a/{id}".into(),
                1,
                b500,
                100
            ),
        ]
    );
    assert!((h.data_points[0].explicit_bounds[0] - 0.005).abs() < 1e-12);

    // Next period: the same series keep their start; one that expired and came back is new.
    agg.tick();
    agg.observe(&http_server("web", "GET", "/a/3", 200, 7 * MS));
    agg.tick();
    let (req, _) = snapshot(&agg, &mut starts, 300, &res);
    assert_eq!(req.resource_metrics.len(), 1, "the others expired");
    let Some(opentelemetry_proto::tonic::metrics::v1::metric::Data::Histogram(h)) =
        &req.resource_metrics[0].scope_metrics[0].metrics[0].data
    else {
        panic!("not a histogram")
    };
    assert_eq!(h.data_points.len(), 1);
    assert_eq!(h.data_points[0].count, 4);
    assert_eq!(h.data_points[0].start_time_unix_nano, 100);
    // As the pipeline does: each period closes (tick), then its snapshot is taken. The
    // series expires; it comes back with more requests than it had: still a new start.
    agg.tick();
    let (req, points) = snapshot(&agg, &mut starts, 400, &res);
    assert_eq!((req.resource_metrics.len(), points), (0, 0), "expired");
    for _ in 0..5 {
        agg.observe(&http_server("web", "GET", "/a/4", 200, 7 * MS));
    }
    agg.tick();
    let (req, _) = snapshot(&agg, &mut starts, 500, &res);
    let Some(opentelemetry_proto::tonic::metrics::v1::metric::Data::Histogram(h)) =
        &req.resource_metrics[0].scope_metrics[0].metrics[0].data
    else {
        panic!("not a histogram")
    };
    assert_eq!(h.data_points[0].count, 5, "restarted from zero");
    assert_eq!(h.data_points[0].start_time_unix_nano, 400);
}

/// Nobody listens: offering never blocks, the queue holds at most its size, everything else
/// is counted as dropped, and the export failures are counted per signal. Then the collector
/// comes back and the next spans and metrics reach it.
fn collector_down_then_back(wire: Wire) {
    let mut receiver = Receiver::start(wire);
    receiver.stop();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let _ctx = rt.enter();
    let mut agg = Aggregator::new(AggregationSettings::default());
    let mut o = Otlp::start(&settings(&receiver, 8)).expect("exporter");
    let start = Instant::now();
    for i in 0..1000 {
        let r = http_server("web", "GET", &format!("/x/{i}"), 200, MS);
        agg.observe(&r);
        o.offer(r);
    }
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "offer never waits"
    );
    o.period(&agg);
    let failed = |h: &OtlpHealth, s: &str| {
        h.exports
            .iter()
            .find(|(sig, res, _)| *sig == s && *res == "failed")
            .map_or(0, |e| e.2)
    };
    // The worker tries: each batch fails, after its retries.
    let deadline = Instant::now() + Duration::from_secs(20);
    while failed(&o.health(), "traces") == 0 || failed(&o.health(), "metrics") == 0 {
        assert!(Instant::now() < deadline, "{:?}", o.health());
        std::thread::sleep(Duration::from_millis(100));
    }
    let h = o.health();
    let spans: BTreeMap<_, _> = h.spans.iter().cloned().collect();
    assert_eq!(spans["exported"], 0);
    // Offered faster than even failing exports drain them: the queue filled.
    assert!(spans["dropped_queue_full"] > 0, "{h:?}");
    assert_eq!(
        spans["dropped_queue_full"] + spans["dropped_export_failed"] + h.queued_spans,
        1000,
        "{h:?}"
    );
    assert!(h.queued_spans <= 8 + 8, "the queue and one batch: {h:?}");
    assert_eq!(receiver.spans().len(), 0);

    // Back: whatever was still queued may go through, and the next spans do.
    receiver.start_again();
    let deadline = Instant::now() + Duration::from_secs(20);
    while o.health().queued_spans > 0 {
        assert!(Instant::now() < deadline, "{:?}", o.health());
        std::thread::sleep(Duration::from_millis(100));
    }
    for _ in 0..5 {
        o.offer(http_server("web", "GET", "/back", 200, MS));
    }
    agg.observe(&http_server("web", "GET", "/back", 200, MS));
    o.period(&agg);
    receiver.wait(Duration::from_secs(20), "spans after the return", |r| {
        r.spans()
            .iter()
            .filter(|(_, s)| s.name == "GET /back")
            .count()
            == 5
    });
    receiver.wait(Duration::from_secs(20), "metrics after the return", |r| {
        r.last_points("http.server.request.duration")
            .iter()
            .map(|(_, p)| p.count)
            .sum::<u64>()
            == 1001
    });
    // The worker counts a batch once its export call returned.
    let deadline = Instant::now() + Duration::from_secs(10);
    while o.health().queued_spans > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let h = o.health();
    let spans: BTreeMap<_, _> = h.spans.iter().cloned().collect();
    assert_eq!(spans["exported"] as usize, receiver.spans().len());
    assert_eq!(
        spans["exported"] + spans["dropped_queue_full"] + spans["dropped_export_failed"],
        1005,
        "{h:?}"
    );
    rt.block_on(o.shutdown(None, Duration::from_secs(2)));
}

#[test]
fn collector_down_then_back_grpc() {
    collector_down_then_back(Wire::Grpc);
}

#[test]
fn collector_down_then_back_http() {
    collector_down_then_back(Wire::Http);
}

/// The pipeline offers a whole batch of records at once: as many as the queue has room for are
/// queued, the rest dropped and counted, and every one of them is accounted for in the end.
#[test]
fn a_batch_larger_than_the_queue_is_cut_and_counted() {
    let mut receiver = Receiver::start(Wire::Http);
    receiver.stop();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let _ctx = rt.enter();
    let o = Otlp::start(&settings(&receiver, 8)).expect("exporter");
    o.offer_all((0..20).map(|i| http_server("web", "GET", &format!("/a/{i}"), 200, MS)));
    let h = o.health();
    let spans: BTreeMap<_, _> = h.spans.iter().cloned().collect();
    assert_eq!(spans["dropped_queue_full"], 12, "{h:?}");
    assert_eq!(h.queued_spans, 8, "queued or in flight: {h:?}");
    receiver.start_again();
    o.offer_all((0..3).map(|i| http_server("web", "GET", &format!("/b/{i}"), 200, MS)));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let h = o.health();
        let spans: BTreeMap<_, _> = h.spans.iter().cloned().collect();
        let settled =
            spans["exported"] + spans["dropped_queue_full"] + spans["dropped_export_failed"];
        if h.queued_spans == 0 && settled == 23 {
            // The first 8 were queued before the collector came back: sent or failed. The
            // last 3 went to a collector that answers (or, with no room, were counted).
            let sent = receiver.spans().len() as u64;
            assert_eq!(sent, spans["exported"], "{h:?}");
            assert!(
                spans["exported"] >= 3 || spans["dropped_queue_full"] > 12,
                "{h:?}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{h:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sampling inside one batch: the records kept from a call that mixes sampled and unsampled
/// traces each go out with their own trace id (the kept records and their ids stay paired
/// when the others are taken out of the batch).
#[test]
fn sampling_within_one_batch_keeps_each_record_with_its_trace() {
    let receiver = Receiver::start(Wire::Grpc);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let _ctx = rt.enter();
    let mut s = settings(&receiver, 1000);
    s.sampling_ratio = 0.5;
    s.metrics = None;
    let o = Otlp::start(&s).expect("exporter");
    let traced = |i: usize| {
        // Every third record is of a trace the ratio keeps; its path says which it is.
        let (low, path) = if i.is_multiple_of(3) {
            // Not 0: an all-zero trace id is not a valid one.
            (format!("00000000000000{:02x}", i + 1), format!("/kept/{i}"))
        } else {
            ("fffffffffffffffe".to_string(), format!("/dropped/{i}"))
        };
        let mut r = http_server("web", "GET", &path, 200, MS);
        r.trace = Some(TraceContext {
            trace_id: format!("0000000000000000{low}"),
            span_id: "00f067aa0ba902b7".into(),
        });
        r
    };
    let mut batch: Vec<_> = (0..90).map(traced).collect();
    let buffer = batch.as_ptr();
    o.offer_vec(&mut batch);
    // The 30 kept records were queued in a vector of their own: the caller (the pipeline)
    // keeps its vector, emptied, with its room, and the queue does not hold the room of the
    // 60 others while the batch waits to fill.
    assert!(batch.is_empty());
    assert_eq!((batch.as_ptr(), batch.capacity() >= 90), (buffer, true));
    let deadline = Instant::now() + Duration::from_secs(10);
    let spans = loop {
        let spans: BTreeMap<_, _> = o.health().spans.iter().cloned().collect();
        if spans["exported"] == 30 || Instant::now() > deadline {
            break spans;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!((spans["exported"], spans["sampled_out"]), (30, 60));
    let mut got: Vec<(String, u8)> = receiver
        .spans()
        .iter()
        .map(|(_, sp)| (attrs(&sp.attributes)["url.path"].clone(), sp.trace_id[15]))
        .collect();
    got.sort();
    let mut want: Vec<(String, u8)> = (0..90)
        .step_by(3)
        .map(|i| (format!("/kept/{i}"), i as u8 + 1))
        .collect();
    want.sort();
    assert_eq!(got, want);
    rt.block_on(o.shutdown(None, Duration::from_secs(2)));
}

/// The sampling decision is the trace id's: with a ratio of 0.5, a trace id whose lower 63 bits
/// are small is kept and a large one is not, for every record of that trace; 0.0 keeps none.
#[test]
fn sampling_ratio_decides_by_trace_id() {
    let receiver = Receiver::start(Wire::Grpc);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let _ctx = rt.enter();
    let mut s = settings(&receiver, 1000);
    s.sampling_ratio = 0.5;
    s.metrics = None;
    let o = Otlp::start(&s).expect("exporter");
    let traced = |trace_id: &str| {
        let mut r = http_server("web", "GET", "/t", 200, MS);
        r.trace = Some(TraceContext {
            trace_id: trace_id.into(),
            span_id: "00f067aa0ba902b7".into(),
        });
        r
    };
    for _ in 0..30 {
        o.offer(traced("0000000000000000000000000000000a"));
        o.offer(traced("0000000000000000fffffffffffffffe"));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let spans = loop {
        let spans: BTreeMap<_, _> = o.health().spans.iter().cloned().collect();
        if spans["exported"] == 30 || Instant::now() > deadline {
            break spans;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!((spans["exported"], spans["sampled_out"]), (30, 30));
    assert_eq!(receiver.spans().len(), 30);
    assert!(receiver.spans().iter().all(|(_, s)| s.trace_id[15] == 0x0a));
    rt.block_on(o.shutdown(None, Duration::from_secs(2)));
}

fn delayed(r: &Receiver, batch_size: usize, delay_ms: u64) -> wirelens::export::otlp::OtlpSettings {
    OtlpConfig {
        endpoint: Some(r.endpoint()),
        protocol: Some(r.wire.protocol().into()),
        batch_size: Some(batch_size),
        batch_delay_ms: Some(delay_ms),
        metrics: Some(false),
        ..OtlpConfig::default()
    }
    .build(&|_| None)
    .expect("valid")
    .expect("an endpoint")
}

/// `otlp.batch_delay_ms`: spans offered a little at a time go out together once the delay
/// is over, not one export call per offer; a full batch goes at once; the queue's closing
/// sends what is held without waiting for the delay.
#[test]
fn part_full_batches_wait_for_the_delay_and_full_ones_do_not() {
    let receiver = Receiver::start(Wire::Http);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let _ctx = rt.enter();

    // Three offers of one span, 100 ms apart, with a delay of 1.5 s: one export of three.
    let delay = Duration::from_millis(1500);
    let o = Otlp::start(&delayed(&receiver, 512, delay.as_millis() as u64)).expect("exporter");
    let first = Instant::now();
    for i in 0..3 {
        o.offer(http_server("web", "GET", &format!("/slow/{i}"), 200, MS));
        std::thread::sleep(Duration::from_millis(100));
    }
    receiver.wait(Duration::from_secs(20), "the delayed batch", |r| {
        r.spans().len() >= 3
    });
    assert!(
        first.elapsed() >= delay,
        "sent after {:?}, before the delay",
        first.elapsed()
    );
    assert_eq!(receiver.trace_requests(), 1);
    assert_eq!(receiver.spans().len(), 3);
    rt.block_on(o.shutdown(None, Duration::from_secs(5)));

    // A delay longer than the test's waits: full batches go at once, and so does what is
    // left when the queue closes.
    let o = Otlp::start(&delayed(&receiver, 4, 60_000)).expect("exporter");
    o.offer_all((0..9).map(|i| http_server("web", "GET", &format!("/full/{i}"), 200, MS)));
    receiver.wait(Duration::from_secs(20), "two full batches", |r| {
        r.spans().len() >= 3 + 8
    });
    assert_eq!(receiver.trace_requests(), 1 + 2);
    let closing = Instant::now();
    rt.block_on(o.shutdown(None, Duration::from_secs(30)));
    assert!(
        closing.elapsed() < Duration::from_secs(30),
        "the last span waited for the delay"
    );
    assert_eq!(receiver.spans().len(), 3 + 9);
    assert_eq!(receiver.trace_requests(), 1 + 2 + 1);
}
