//! The aggregate stage: records folded into series and service graph edges per second, and
//! the cost of a Prometheus scrape.
//!
//! - `observe/one_end`: HTTP records of a server whose clients are not observed (one record
//!   per exchange), 50 routes, 20 client addresses; every 10,000 records the service graph
//!   attributes everything waiting (the live pipeline does it one second after each);
//! - `observe/both_ends`: the same exchanges recorded by the server and by an observed client
//!   (two records per exchange, the client's left to the server's on the graph);
//! - `graph_only`: the service graph's share of `one_end`: learning the endpoint, queueing the
//!   exchange and settling it (no series, no edge counters), through the borrowed attributions
//!   the aggregator counts (`Pending::push_with`, `Pending::settle_all_with`);
//! - `render`: the Prometheus text of an aggregate holding ~1,000 series and 20 edges.
//!
//! Run: `cargo bench -p wirelens-bench --bench aggregate`.

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wirelens::aggregate::graph::Pending;
use wirelens::aggregate::{AggregationSettings, Aggregator, Peers};
use wirelens::export::Metrics;
use wirelens::output::{ProcessRecord, Record};
use wirelens_protocols::http::{route_template, HttpRequest, HttpResponse};
use wirelens_protocols::{Exchange, Outcome, Request, Response, Role};

const N: usize = 10_000;

fn record(role: Role, comm: &str, i: usize) -> Record {
    let path = format!("/api/v1/items{}/{}", i % 50, i);
    let ex = Exchange {
        req_ts_ns: 1_000_000_000,
        resp_ts_ns: Some(1_000_000_000 + 1_000 * (i as u64 % 5_000)),
        request: Request::Http(HttpRequest {
            method: "GET".into(),
            route: Some(route_template(&path)),
            path,
            host: Some("svc".into()),
        }),
        response: Some(Response::Http(HttpResponse {
            status: if i.is_multiple_of(97) { 500 } else { 200 },
            body_bytes: 100,
        })),
        outcome: Outcome::Complete,
        truncated: false,
        trace: None,
    };
    let client: SocketAddr = format!("127.0.0.{}:{}", 1 + i % 20, 40_000 + i % 20)
        .parse()
        .unwrap();
    let server: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let process = Some(ProcessRecord {
        pid: 1,
        comm: comm.into(),
    });
    Record::new(ex, role, client, server, process)
}

fn bench(c: &mut Criterion) {
    let servers: Vec<Record> = (0..N).map(|i| record(Role::Server, "web", i)).collect();
    let both: Vec<Record> = (0..N)
        .flat_map(|i| {
            [
                record(Role::Server, "web", i),
                record(Role::Client, "app", i),
            ]
        })
        .collect();
    let mut g = c.benchmark_group("observe");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("one_end", |b| {
        let mut agg = Aggregator::new(AggregationSettings::default());
        b.iter(|| {
            for r in &servers {
                agg.observe(black_box(r));
            }
            agg.settle_all();
        })
    });
    g.bench_function("both_ends", |b| {
        let mut agg = Aggregator::new(AggregationSettings::default());
        b.iter(|| {
            for r in &both {
                agg.observe(black_box(r));
            }
            agg.settle_all();
        })
    });
    g.bench_function("graph_only", |b| {
        let mut peers = Peers::default();
        let mut pending = Pending::default();
        b.iter(|| {
            let mut requests = 0;
            for r in &servers {
                peers.learn(black_box(r), "web", 0);
                let now = std::time::Instant::now();
                pending.push_with(r, "web", &peers, now, |a| requests += a.requests);
            }
            pending.settle_all_with(&peers, |a| requests += black_box(a).requests);
            black_box(requests)
        })
    });
    g.finish();

    let metrics = Metrics::new(AggregationSettings::default());
    {
        let mut agg = metrics.aggregator();
        for i in 0..N {
            agg.observe(&record(Role::Server, "web", i));
        }
        agg.settle_all();
    }
    let text = metrics.render_prometheus();
    let mut g = c.benchmark_group("render");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("prometheus", |b| {
        b.iter(|| black_box(metrics.render_prometheus()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
