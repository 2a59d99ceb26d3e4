//! Issue #6, "Cardinality test": 100,000 distinct URL paths produce a bounded number of
//! series, and the overflow series counts the rest exactly. Default settings throughout
//! (50 values per segment, 1000 series per service).

mod aggregate_support;

use aggregate_support::*;
use wirelens::aggregate::{AggregationSettings, Aggregator, Operation};
use wirelens::export::{Health, Metrics};

const N: usize = 100_000;
const MS: u64 = 1_000_000;

fn routes(agg: &Aggregator) -> Vec<(String, u64)> {
    let mut v: Vec<_> = agg
        .series()
        .map(|s| match &s.key.operation {
            Operation::Http { route, .. } => (route.clone(), s.series.requests),
            Operation::Overflow => ("_overflow".to_string(), s.series.requests),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    v.sort();
    v
}

/// One free-text segment (user names, slugs: not ids, so not `{id}`): the first 50 values keep
/// their own series, the 51st collapses the segment, and everything after is one series.
#[test]
fn free_text_segments_collapse_to_51_series() {
    let mut agg = Aggregator::new(AggregationSettings::default());
    for i in 0..N {
        agg.observe(&http_server(
            "web",
            "GET",
            &format!("/users/name-{i}"),
            200,
            MS,
        ));
    }
    let r = routes(&agg);
    assert_eq!(r.len(), 51, "bound: 50 values + {{param}}");
    for (i, (route, n)) in r.iter().filter(|(r, _)| r != "/users/{param}").enumerate() {
        assert!(route.starts_with("/users/name-"), "{route}");
        assert_eq!(*n, 1, "{route} ({i})");
    }
    let param = r.iter().find(|(r, _)| r == "/users/{param}").unwrap();
    assert_eq!(param.1, (N - 50) as u64);
    assert_eq!(agg.stats().dropped, 0);
    assert_eq!(agg.stats().collapsed_segments, 1);
}

/// Paths that no segment rule tames soon enough (1600 prefixes, each with more than 50 last
/// segments): the budget holds the first 1000 series, the overflow series counts the other
/// 99,000 requests exactly, and the Prometheus exposition says the same.
#[test]
fn the_budget_bounds_series_and_overflow_counts_the_rest() {
    let metrics = Metrics::new(AggregationSettings::default());
    {
        let mut agg = metrics.aggregator();
        for i in 0..N {
            let path = format!("/s{}/t{}/u-{i}", i % 40, (i / 40) % 40);
            let lat = if i % 2 == 0 { MS } else { 30 * MS };
            agg.observe(&http_server("web", "GET", &path, 200, lat));
        }
        // Every path is new until the budget is spent at i = 999; later ones (the `{param}`
        // routes included) can only overflow.
        let r = routes(&agg);
        assert_eq!(r.len(), 1001, "bound: the budget plus one overflow series");
        let over = r.iter().find(|(r, _)| r == "_overflow").unwrap();
        assert_eq!(over.1, (N - 1000) as u64);
        assert!(r
            .iter()
            .filter(|(r, _)| r != "_overflow")
            .all(|(_, n)| *n == 1));
        let total: u64 = r.iter().map(|(_, n)| n).sum();
        assert_eq!(total, N as u64);
        let st = agg.stats();
        assert_eq!(st.series, 1001);
        assert_eq!(st.dropped, (N - 1000) as u64);
        // The route tree filled up (MAX_ROUTE_NODES) long before a prefix reached 51 values:
        // from then on new segments were `{param}` without a collapse.
        assert_eq!(st.collapsed_segments, 0);
    }
    metrics.set_health(Health::default());
    let samples = parse_exposition(&metrics.render_prometheus());
    let h = "http_server_request_duration_seconds";
    let over = [("service_name", "web"), ("operation", "_overflow")];
    assert_eq!(value(&samples, &format!("{h}_count"), &over), 99_000.0);
    let mut le = over.to_vec();
    le.push(("le", "0.005"));
    assert_eq!(value(&samples, &format!("{h}_bucket"), &le), 49_500.0);
    let sum_s = value(&samples, &format!("{h}_sum"), &over);
    assert!(
        (sum_s - (49_500.0 * 0.001 + 49_500.0 * 0.03)).abs() < 1e-6,
        "{sum_s}"
    );
    assert_eq!(sum(&samples, &format!("{h}_count"), &[]), N as f64);
    assert_eq!(
        samples
            .iter()
            .filter(|s| s.name == format!("{h}_count"))
            .count(),
        1001
    );
    assert_eq!(
        value(
            &samples,
            "wirelens_series_dropped_total",
            &[("service_name", "web")]
        ),
        99_000.0
    );
    assert_eq!(value(&samples, "wirelens_series", &[]), 1001.0);
}
