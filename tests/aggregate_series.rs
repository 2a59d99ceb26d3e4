//! The aggregator: bucketing, periods and expiry, the series budget and its overflow series,
//! keys of each protocol, route patterns. Exact values throughout.

mod aggregate_support;

use aggregate_support::*;
use wirelens::aggregate::{
    AggregationConfig, Aggregator, DbSystem, Family, Operation, Series, SeriesKey,
};
use wirelens_protocols::{Role, Status};

const MS: u64 = 1_000_000;

fn aggregator(edit: impl FnOnce(&mut AggregationConfig)) -> Aggregator {
    let mut c = AggregationConfig::default();
    edit(&mut c);
    Aggregator::new(c.build().expect("valid settings"))
}

/// The one series whose HTTP route and status match.
fn http_series<'a>(agg: &'a Aggregator, route: &str, status: u16) -> &'a Series {
    let found: Vec<_> = agg
        .series()
        .filter(|s| {
            matches!(&s.key.operation, Operation::Http { route: r, status_code, .. }
                if r == route && *status_code == Some(status))
        })
        .collect();
    assert_eq!(found.len(), 1, "{route} {status}");
    found[0].series
}

fn overflow(agg: &Aggregator, service: &str) -> Option<Series> {
    agg.series()
        .find(|s| s.service == service && s.key.operation == Operation::Overflow)
        .map(|s| s.series.clone())
}

#[test]
fn latencies_land_in_the_otel_default_buckets() {
    let mut agg = aggregator(|_| {});
    // One per bucket boundary (exactly on it), one just above the first, one past 10 s.
    let lats = [
        0,
        5 * MS,
        5 * MS + 1,
        10 * MS,
        25 * MS,
        50 * MS,
        75 * MS,
        100 * MS,
        250 * MS,
        500 * MS,
        750 * MS,
        1000 * MS,
        2500 * MS,
        5000 * MS,
        7500 * MS,
        10_000 * MS,
        10_000 * MS + 1,
    ];
    for l in lats {
        agg.observe(&http_server("web", "GET", "/", 200, l));
    }
    let s = http_series(&agg, "/", 200);
    assert_eq!(s.requests, 17);
    assert_eq!(s.errors, 0);
    assert_eq!(s.unanswered, 0);
    assert_eq!(s.latency.count(), 17);
    assert_eq!(
        s.latency.sum_ns(),
        lats.iter().map(|&l| u128::from(l)).sum::<u128>()
    );
    // 0 and 5 ms in the first bucket; 5 ms + 1 ns in the second with 10 ms; then one each.
    assert_eq!(
        s.latency.buckets(),
        &[2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    );
    assert_eq!(
        s.latency.cumulative(),
        [2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]
    );
}

#[test]
fn errors_and_unanswered_requests_are_counted_apart() {
    let mut agg = aggregator(|_| {});
    for _ in 0..4 {
        agg.observe(&http_server("web", "GET", "/a", 500, MS));
    }
    agg.observe(&http_server("web", "GET", "/a", 404, MS));
    agg.observe(&http_server("web", "GET", "/a", 0, 0));
    let e = http_series(&agg, "/a", 500);
    assert_eq!((e.requests, e.errors, e.latency.count()), (4, 4, 4));
    // 404 is not an error for a server (OpenTelemetry).
    let nf = http_series(&agg, "/a", 404);
    assert_eq!((nf.requests, nf.errors), (1, 0));
    let timeout: Vec<_> = agg
        .series()
        .filter(|s| s.key.outcome == Status::Timeout)
        .collect();
    assert_eq!(timeout.len(), 1);
    assert_eq!(timeout[0].key.error_type, "timeout");
    let t = timeout[0].series;
    assert_eq!(
        (t.requests, t.errors, t.unanswered, t.latency.count()),
        (1, 1, 1, 0)
    );
    // The 500s carry error.type = the status code.
    let key500 = agg
        .series()
        .find(|s| s.series.requests == 4)
        .unwrap()
        .key
        .clone();
    assert_eq!(key500.error_type, "500");
    assert_eq!(key500.outcome, Status::Error);
    // A client sees its 404 as an error.
    let client404 = record(
        Some("curl"),
        Role::Client,
        http_req("GET", "/x"),
        http_resp(404),
        Some(MS),
    );
    agg.observe(&client404);
    let c = agg.series().find(|s| s.service == "curl").unwrap();
    assert_eq!(c.key.family, Family::HttpClient);
    assert_eq!(c.key.error_type, "404");
    assert_eq!(
        (c.key.peer_address.as_str(), c.key.peer_port),
        ("10.0.0.2", Some(8080))
    );
    assert_eq!(c.series.errors, 1);
}

#[test]
fn keys_of_each_protocol() {
    let mut agg = aggregator(|_| {});
    agg.observe(&mysql_query(
        "SELECT * FROM users WHERE name = 'bob'",
        "SELECT",
        "users",
        None,
        MS,
    ));
    agg.observe(&mysql_query(
        "SELEC oops",
        "SELECT",
        "users",
        Some(1064),
        MS,
    ));
    agg.observe(&pgsql_query(
        "UPDATE orders SET x = 1",
        "UPDATE",
        "orders",
        MS,
    ));
    agg.observe(&redis_cmd("GET", None, MS));
    agg.observe(&redis_cmd(
        "LPUSH",
        Some("WRONGTYPE Operation against a key"),
        MS,
    ));
    agg.observe(&dns_query("example.com", "AAAA", "NXDOMAIN", MS));
    agg.observe(&http_server("nginx", "PROPFIND", "/users/42", 200, MS));
    let mut keys: Vec<(String, SeriesKey)> = agg
        .series()
        .map(|s| (s.service.to_string(), s.key.clone()))
        .collect();
    keys.sort_by_key(|(s, k)| (s.clone(), format!("{k:?}")));
    let find = |f: &dyn Fn(&SeriesKey) -> bool| {
        keys.iter()
            .filter(|(_, k)| f(k))
            .map(|(_, k)| k.clone())
            .collect::<Vec<_>>()
    };
    let db = |op: &str, coll: &str| Operation::Db {
        operation: op.into(),
        collection: coll.into(),
    };
    let mysql = find(&|k| k.family == Family::DbClient(DbSystem::Mysql));
    assert_eq!(mysql.len(), 2);
    assert!(mysql.iter().all(|k| k.operation == db("SELECT", "users")));
    assert!(mysql.iter().any(|k| k.error_type == "1064"));
    let pg = find(&|k| k.family == Family::DbClient(DbSystem::Postgresql));
    assert_eq!(pg.len(), 1);
    assert_eq!(pg[0].operation, db("UPDATE", "orders"));
    let redis = find(&|k| k.family == Family::DbClient(DbSystem::Redis));
    assert_eq!(redis.len(), 2);
    let lpush = redis
        .iter()
        .find(|k| k.operation == db("LPUSH", ""))
        .unwrap();
    assert_eq!(lpush.error_type, "WRONGTYPE");
    let dns = find(&|k| k.family == Family::DnsClient);
    assert_eq!(dns.len(), 1);
    assert_eq!(
        dns[0].operation,
        Operation::Dns {
            qtype: "AAAA".into()
        }
    );
    assert_eq!(dns[0].error_type, "NXDOMAIN");
    let http = find(&|k| k.family == Family::HttpServer);
    assert_eq!(
        http[0].operation,
        Operation::Http {
            method: "_OTHER",
            route: "/users/{id}".into(),
            status_code: Some(200)
        }
    );
    // A server's peer is the client's address, without its ephemeral port.
    assert_eq!(
        (http[0].peer_address.as_str(), http[0].peer_port),
        ("10.0.0.1", None)
    );
    // Nothing of a statement, a query name or an error text is in any key.
    let all = format!("{keys:?}");
    for secret in [
        "bob",
        "WHERE",
        "SET x",
        "oops",
        "example.com",
        "Operation against",
    ] {
        assert!(!all.contains(secret), "{secret} in {all}");
    }
}

#[test]
fn replay_records_belong_to_the_replay_service() {
    let mut agg = aggregator(|_| {});
    agg.observe(&record(
        None,
        Role::Unknown,
        http_req("GET", "/"),
        http_resp(200),
        Some(MS),
    ));
    let s = agg.series().next().unwrap();
    assert_eq!(s.service, "replay");
    assert_eq!(s.key.family, Family::HttpServer);
}

#[test]
fn the_budget_sends_new_series_to_overflow_and_counts_exactly() {
    let mut agg = aggregator(|c| c.series_per_service = 3);
    // Routes a, b, c take the budget; d and e overflow; a keeps counting in its own series.
    let plan = [("a", 5), ("b", 1), ("c", 2), ("d", 7), ("e", 4), ("a", 3)];
    for (route, n) in plan {
        for _ in 0..n {
            agg.observe(&http_server("web", "GET", &format!("/{route}"), 200, MS));
        }
    }
    assert_eq!(http_series(&agg, "/a", 200).requests, 8);
    assert_eq!(http_series(&agg, "/b", 200).requests, 1);
    assert_eq!(http_series(&agg, "/c", 200).requests, 2);
    let o = overflow(&agg, "web").expect("overflow series");
    assert_eq!((o.requests, o.latency.count(), o.errors), (11, 11, 0));
    let st = agg.stats();
    assert_eq!(st.series, 4);
    assert_eq!(st.dropped, 11);
    assert_eq!(
        agg.dropped_by_service().collect::<Vec<_>>(),
        vec![("web", 11)]
    );
    // Another service has a budget of its own.
    agg.observe(&http_server("api", "GET", "/d", 200, MS));
    assert!(overflow(&agg, "api").is_none());
    // A failed request over budget still counts as an error in the overflow series, and a
    // second metric of the same service gets its own overflow series.
    agg.observe(&http_server("web", "GET", "/f", 503, MS));
    assert_eq!(overflow(&agg, "web").unwrap().errors, 1);
    for i in 0..2 {
        agg.observe(&record(
            Some("web"),
            Role::Client,
            http_req("GET", &format!("/out{i}")),
            http_resp(200),
            Some(MS),
        ));
    }
    let over: Vec<_> = agg
        .series()
        .filter(|s| s.service == "web" && s.key.operation == Operation::Overflow)
        .map(|s| (s.key.family, s.series.requests))
        .collect();
    assert_eq!(over.len(), 2, "{over:?}");
    assert!(over.contains(&(Family::HttpServer, 12)));
    assert!(over.contains(&(Family::HttpClient, 2)));
    assert_eq!(agg.stats().dropped, 14);
}

#[test]
fn periods_expire_idle_series_and_keep_the_rest_cumulative() {
    let mut agg = aggregator(|c| c.expiry_periods = 2);
    agg.observe(&http_server("web", "GET", "/old", 200, MS));
    agg.observe(&http_server("web", "GET", "/live", 200, MS));
    assert_eq!(agg.period(), 0);
    agg.tick(); // closes period 0, where both were updated
    agg.observe(&http_server("web", "GET", "/live", 200, MS));
    agg.tick(); // closes period 1: /old idle for 1 period
    assert_eq!(agg.stats().series, 2);
    agg.observe(&http_server("web", "GET", "/live", 200, MS));
    agg.tick(); // closes period 2: /old idle for 2 periods: gone
    assert_eq!(agg.period(), 3);
    assert_eq!(agg.stats().series, 1);
    assert_eq!(agg.stats().expired, 1);
    // Cumulative across periods.
    assert_eq!(http_series(&agg, "/live", 200).requests, 3);
    assert_eq!(http_series(&agg, "/live", 200).last_period(), 2);
    // Back after expiry: a new series, from zero.
    agg.observe(&http_server("web", "GET", "/old", 200, MS));
    assert_eq!(http_series(&agg, "/old", 200).requests, 1);
    agg.tick();
    agg.tick();
    agg.tick();
    assert_eq!(agg.stats().series, 0);
    assert_eq!(agg.stats().expired, 3);
}

#[test]
fn expiry_frees_budget_and_the_overflow_series_expires_too() {
    let mut agg = aggregator(|c| {
        c.series_per_service = 2;
        c.expiry_periods = 1;
    });
    for r in ["/a", "/b", "/c"] {
        agg.observe(&http_server("web", "GET", r, 200, MS));
    }
    assert_eq!(overflow(&agg, "web").unwrap().requests, 1);
    agg.tick(); // closes the period they were updated in: kept
    assert_eq!(agg.stats().series, 3);
    agg.tick(); // a whole period without an update
    assert_eq!(agg.stats().series, 0);
    for r in ["/c", "/d"] {
        agg.observe(&http_server("web", "GET", r, 200, MS));
    }
    assert_eq!(http_series(&agg, "/c", 200).requests, 1);
    assert_eq!(http_series(&agg, "/d", 200).requests, 1);
    assert!(overflow(&agg, "web").is_none());
    // The dropped counter never goes down.
    assert_eq!(agg.stats().dropped, 1);
}

#[test]
fn user_routes_come_first_then_segments_collapse() {
    let mut agg = aggregator(|c| {
        c.routes = vec!["/users/{id}/orders".into(), "/files/{name}".into()];
        c.segment_values = 2;
    });
    for p in [
        "/users/7/orders",
        "/users/alice/orders?page=2",
        "/files/a.txt",
        "/files/b.txt",
        "/files/c.txt",
        "/docs/a",
        "/docs/b",
        "/docs/c",
        "/docs/a",
    ] {
        agg.observe(&http_server("web", "GET", p, 200, MS));
    }
    assert_eq!(http_series(&agg, "/users/{id}/orders", 200).requests, 2);
    assert_eq!(http_series(&agg, "/files/{name}", 200).requests, 3);
    assert_eq!(http_series(&agg, "/docs/a", 200).requests, 1);
    assert_eq!(http_series(&agg, "/docs/b", 200).requests, 1);
    // The third distinct value collapses the segment: c and the second a are {param}.
    assert_eq!(http_series(&agg, "/docs/{param}", 200).requests, 2);
    assert_eq!(agg.stats().collapsed_segments, 1);
}
