//! The service graph through the aggregator and the Prometheus text: each exchange counted
//! once when both ends are observed, peers named by service or address, failures as the
//! server judges them, the budget's overflow edges, expiry. Exact values throughout.

mod aggregate_support;

use aggregate_support::*;
use wirelens::aggregate::AggregationConfig;
use wirelens::export::Metrics;
use wirelens::output::{Endpoint, Record};
use wirelens_protocols::Role;

const MS: u64 = 1_000_000;

fn at(mut r: Record, client: (&str, u16), server: (&str, u16)) -> Record {
    r.client = Endpoint {
        ip: client.0.into(),
        port: client.1,
    };
    r.server = Endpoint {
        ip: server.0.into(),
        port: server.1,
    };
    r
}

/// An HTTP exchange recorded by `comm` on `role`'s side.
fn http(comm: &str, role: Role, client_port: u16, status: u16, lat: u64) -> Record {
    let r = record(
        Some(comm),
        role,
        http_req("GET", "/orders/7"),
        http_resp(status),
        Some(lat),
    );
    at(r, ("127.0.0.1", client_port), ("127.0.0.1", 8080))
}

fn scrape(metrics: &Metrics) -> Vec<Sample> {
    parse_exposition(&metrics.render_prometheus())
}

const REQ: &str = "wirelens_service_graph_requests_total";
const FAILED: &str = "wirelens_service_graph_requests_failed_total";
const DUR: &str = "wirelens_service_graph_request_duration_seconds";

#[test]
fn an_exchange_seen_from_both_ends_is_one_call_on_one_edge() {
    let metrics = Metrics::new(Default::default());
    {
        let mut agg = metrics.aggregator();
        // 10 exchanges app -> web on two connections, both ends observed, the records
        // interleaved the way the pipeline delivers them (either side first); 2 are 500s and
        // 1 a 404.
        for i in 0..10u16 {
            let port = 40000 + i % 2;
            let status = match i {
                3 | 7 => 500,
                5 => 404,
                _ => 200,
            };
            let server = http("web", Role::Server, port, status, (i as u64 + 1) * MS);
            let client = http(
                "app",
                Role::Client,
                port,
                status,
                (i as u64 + 1) * MS + 200_000,
            );
            if i % 3 == 0 {
                agg.observe(&client);
                agg.observe(&server);
            } else {
                agg.observe(&server);
                agg.observe(&client);
            }
        }
        // 4 more from a client this host does not observe.
        for _ in 0..4 {
            let r = http("web", Role::Server, 50000, 200, 3 * MS);
            agg.observe(&at(r, ("10.1.1.1", 50000), ("127.0.0.1", 8080)));
        }
        // 3 Redis calls from app to a server this host does not observe, one an error.
        for err in [None, Some("WRONGTYPE Operation"), None] {
            let r = redis_cmd("GET", err, MS);
            agg.observe(&at(r, ("127.0.0.1", 40100), ("10.2.2.2", 6379)));
        }
        // Nothing on the graph before the exchanges waited for the other side's record.
        agg.settle();
        assert_eq!(agg.edges().count(), 0);
        assert_eq!(agg.stats().edges_pending, 27);
        agg.settle_at(std::time::Instant::now() + wirelens::aggregate::graph::GRACE);
        assert_eq!(agg.stats().edges_pending, 0);
    }
    let s = scrape(&metrics);
    assert_eq!(value(&s, REQ, &e("app", "web", "http")), 10.0);
    assert_eq!(
        value(&s, FAILED, &e("app", "web", "http")),
        2.0,
        "404 is ok"
    );
    let app_web = e("app", "web", "http");
    assert_eq!(value(&s, &format!("{DUR}_count"), &app_web), 10.0);
    // The server's durations (1..=10 ms), not the client's.
    let total = value(&s, &format!("{DUR}_sum"), &app_web);
    assert!((total - 0.055).abs() < 1e-9, "{total}");
    let mut le = app_web.to_vec();
    le.push(("le", "0.005"));
    assert_eq!(value(&s, &format!("{DUR}_bucket"), &le), 5.0);
    assert_eq!(value(&s, REQ, &e("10.1.1.1", "web", "http")), 4.0);
    assert_eq!(value(&s, REQ, &e("app", "10.2.2.2:6379", "redis")), 3.0);
    assert_eq!(value(&s, FAILED, &e("app", "10.2.2.2:6379", "redis")), 1.0);
    assert_eq!(sum_of(&s, REQ), 17.0, "every exchange once");
    assert_eq!(
        value(&s, "wirelens_service_graph_deduplicated_total", &[]),
        10.0
    );
    assert_eq!(value(&s, "wirelens_service_graph_pending", &[]), 0.0);
    // The per-service series still count each side's own view.
    assert_eq!(
        sum(
            &s,
            "http_client_request_duration_seconds_count",
            &[("service_name", "app")]
        ),
        10.0
    );
}

fn e<'a>(c: &'a str, sv: &'a str, p: &'a str) -> [(&'static str, &'a str); 3] {
    [("client", c), ("server", sv), ("protocol", p)]
}

fn sum_of(s: &[Sample], name: &str) -> f64 {
    sum(s, name, &[])
}

#[test]
fn edges_share_the_service_budget_and_expire() {
    let c = AggregationConfig {
        series_per_service: 6,
        expiry_periods: 2,
        ..Default::default()
    };
    let metrics = Metrics::new(c.build().expect("valid"));
    {
        let mut agg = metrics.aggregator();
        // 5 clients this host does not observe: 5 series (one per client address) and, once
        // settled, the first edge fit the budget of 6; the 4 other clients go to web's
        // overflow edge.
        for i in 0..5u8 {
            let r = http("web", Role::Server, 50000, 200, MS);
            agg.observe(&at(
                r,
                (&format!("10.0.0.{}", i + 1), 50000),
                ("127.0.0.1", 8080),
            ));
        }
        agg.settle_all();
    }
    let s = scrape(&metrics);
    assert_eq!(sum_of(&s, REQ), 5.0);
    let overflow = [
        ("client", "_overflow"),
        ("server", "web"),
        ("otel_metric_overflow", "true"),
    ];
    assert_eq!(value(&s, REQ, &overflow), 4.0);
    assert_eq!(value(&s, REQ, &e("10.0.0.1", "web", "http")), 1.0);
    assert_eq!(
        value(
            &s,
            "wirelens_series_dropped_total",
            &[("service_name", "web")]
        ),
        4.0
    );
    let mut agg = metrics.aggregator();
    assert_eq!(agg.stats().edges, 2);
    assert_eq!(agg.stats().series, 7, "series and edges");
    // Updated in period 0: kept while periods 1 and 2 are open, gone when 2 closes.
    agg.tick();
    agg.tick();
    assert_eq!(agg.stats().edges, 2, "one idle period");
    agg.tick();
    assert_eq!(agg.stats().edges, 0, "two idle periods");
    assert_eq!(agg.stats().series, 0);
    assert_eq!(agg.stats().expired, 7);
}

/// `peer_k8s` of a record: the far end's address is a known pod or Service.
fn peer(r: Record, workload: Option<&str>, service: Option<&str>, pod: Option<&str>) -> Record {
    let mut r = r;
    r.peer_k8s = Some(std::sync::Arc::new(wirelens::k8s::Shared::new(
        wirelens::k8s::PeerRecord(wirelens_k8s::meta::Peer {
            namespace: "shop".into(),
            pod: pod.map(String::from),
            service: service.map(String::from),
            workload: workload.map(String::from),
        }),
    )));
    r
}

#[test]
fn unobserved_peers_known_to_kubernetes_are_named_by_it() {
    let metrics = Metrics::new(Default::default());
    {
        let mut agg = metrics.aggregator();
        // 3 calls to web from a pod of this node whose process is not observed: named by
        // the pod's service.name, not its address.
        for _ in 0..3 {
            let r = http("web", Role::Server, 41000, 200, MS);
            let r = at(r, ("10.244.1.7", 41000), ("127.0.0.1", 8080));
            agg.observe(&peer(r, Some("checkout"), None, Some("checkout-7d9-x")));
        }
        // 2 Redis calls from app to a Service's cluster IP: named by the Service.
        for _ in 0..2 {
            let r = at(
                redis_cmd("GET", None, MS),
                ("127.0.0.1", 40200),
                ("10.96.0.10", 6379),
            );
            agg.observe(&peer(r, None, Some("cache"), None));
        }
        // 1 call to a pod of another node known only by name.
        let r = at(
            redis_cmd("SET", None, MS),
            ("127.0.0.1", 40300),
            ("10.244.9.9", 6379),
        );
        agg.observe(&peer(r, None, None, Some("redis-0")));
        agg.settle_at(std::time::Instant::now() + wirelens::aggregate::graph::GRACE);
    }
    let s = scrape(&metrics);
    assert_eq!(value(&s, REQ, &e("checkout", "web", "http")), 3.0);
    assert_eq!(value(&s, REQ, &e("app", "cache", "redis")), 2.0);
    assert_eq!(value(&s, REQ, &e("app", "redis-0", "redis")), 1.0);
    assert_eq!(sum_of(&s, REQ), 6.0, "{s:?}");
}
