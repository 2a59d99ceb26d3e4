//! The metrics endpoint on 127.0.0.1:0, scraped with a raw TCP GET: the text parses, the values
//! are those of the records fed in, and /healthz and /readyz answer as documented.

mod aggregate_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use aggregate_support::*;
use wirelens::aggregate::AggregationSettings;
use wirelens::export::http::MetricsServer;
use wirelens::export::{Health, Metrics};

const MS: u64 = 1_000_000;

/// Sends `request` as is, reads to the close: (status, headers, body).
fn raw(addr: SocketAddr, request: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read");
    let text = String::from_utf8(buf).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.parse().ok())
        .expect("content-length");
    if !request.starts_with("HEAD") {
        assert_eq!(len, body.len(), "Content-Length");
    }
    (status, head.to_string(), body.to_string())
}

fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    raw(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: test\r\n\r\n"),
    )
}

#[test]
fn scrape_matches_the_records_fed_in() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let metrics = Arc::new(Metrics::new(AggregationSettings::default()));
    let server = rt
        .block_on(MetricsServer::bind("127.0.0.1:0".parse().unwrap()))
        .expect("bind");
    let addr = server.local_addr().unwrap();
    {
        let _ctx = rt.enter();
        server.spawn(metrics.clone());
    }

    // Before the capture is attached: alive, not ready.
    assert_eq!(get(addr, "/healthz").0, 200);
    assert_eq!(get(addr, "/readyz").0, 503);
    metrics.set_ready(true);
    assert_eq!(get(addr, "/readyz").0, 200);
    assert_eq!(get(addr, "/nope").0, 404);
    assert_eq!(raw(addr, "POST /metrics HTTP/1.1\r\n\r\n").0, 405);
    let (st, head, body) = raw(addr, "HEAD /metrics HTTP/1.1\r\n\r\n");
    assert_eq!((st, body.as_str()), (200, ""));
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );

    {
        let mut agg = metrics.aggregator();
        for _ in 0..7 {
            agg.observe(&http_server("nginx", "GET", "/users/17", 200, 2 * MS));
        }
        for _ in 0..3 {
            agg.observe(&http_server("nginx", "GET", "/users/18", 404, 20 * MS));
        }
        agg.observe(&http_server("nginx", "POST", "/users", 500, 300 * MS));
        agg.observe(&http_server("nginx", "GET", "/slow", 0, 0));
        agg.observe(&mysql_query(
            "SELECT * FROM users WHERE name = 'bob'",
            "SELECT",
            "users",
            None,
            4 * MS,
        ));
        agg.observe(&mysql_query(
            "DELETE FROM users WHERE id = 99",
            "DELETE",
            "users",
            Some(1142),
            60 * MS,
        ));
        agg.observe(&pgsql_query(
            "INSERT INTO t VALUES ('x')",
            "INSERT",
            "t",
            8 * MS,
        ));
        agg.observe(&redis_cmd("GET", None, MS));
        agg.observe(&redis_cmd(
            "HSET",
            Some("WRONGTYPE Operation against a key"),
            MS,
        ));
        agg.observe(&dns_query("secret.example", "A", "NXDOMAIN", 12 * MS));
    }
    metrics.set_health(Health {
        kernel_events: 1234,
        lost: vec![
            ("ringbuf", 5),
            ("parse", 4),
            ("unmatched_response", 3),
            ("gap", 2),
        ],
        exchanges: 17,
        connections_tracked: 6,
        own_export_events: 9,
    });

    let (status, head, body) = get(addr, "/metrics");
    assert_eq!(status, 200);
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    let s = parse_exposition(&body);

    let h = "http_server_request_duration_seconds";
    let ok = [
        ("service_name", "nginx"),
        ("client_address", "10.0.0.1"),
        ("http_request_method", "GET"),
        ("http_route", "/users/{id}"),
        ("http_response_status_code", "200"),
    ];
    assert_eq!(value(&s, &format!("{h}_count"), &ok), 7.0);
    assert!((value(&s, &format!("{h}_sum"), &ok) - 0.014).abs() < 1e-9);
    let le = |base: &[(&'static str, &'static str)], le: &'static str| {
        let mut v = base.to_vec();
        v.push(("le", le));
        v
    };
    assert_eq!(value(&s, &format!("{h}_bucket"), &le(&ok, "0.005")), 7.0);
    let nf = [
        ("http_route", "/users/{id}"),
        ("http_response_status_code", "404"),
    ];
    assert_eq!(value(&s, &format!("{h}_count"), &nf), 3.0);
    assert_eq!(value(&s, &format!("{h}_bucket"), &le(&nf, "0.01")), 0.0);
    assert_eq!(value(&s, &format!("{h}_bucket"), &le(&nf, "0.025")), 3.0);
    let err = [
        ("http_request_method", "POST"),
        ("http_route", "/users"),
        ("http_response_status_code", "500"),
        ("error_type", "500"),
    ];
    assert_eq!(value(&s, &format!("{h}_count"), &err), 1.0);
    assert_eq!(value(&s, &format!("{h}_bucket"), &le(&err, "0.25")), 0.0);
    assert_eq!(value(&s, &format!("{h}_bucket"), &le(&err, "0.5")), 1.0);
    // 4xx is not an error for a server: no error_type on the 404 series.
    assert!(s
        .iter()
        .filter(|x| x
            .labels
            .get("http_response_status_code")
            .map(String::as_str)
            == Some("404"))
        .all(|x| !x.labels.contains_key("error_type")));
    assert_eq!(
        value(
            &s,
            "wirelens_requests_unanswered_total",
            &[
                ("protocol", "http"),
                ("role", "server"),
                ("http_route", "/slow"),
                ("error_type", "timeout")
            ]
        ),
        1.0
    );

    let db = "db_client_operation_duration_seconds_count";
    let sel = [
        ("service_name", "app"),
        ("server_address", "10.0.0.2"),
        ("server_port", "8080"),
        ("db_system_name", "mysql"),
        ("db_operation_name", "SELECT"),
        ("db_collection_name", "users"),
    ];
    assert_eq!(value(&s, db, &sel), 1.0);
    assert_eq!(
        value(
            &s,
            db,
            &[("db_operation_name", "DELETE"), ("error_type", "1142")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            db,
            &[
                ("db_system_name", "postgresql"),
                ("db_operation_name", "INSERT"),
                ("db_collection_name", "t")
            ]
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            db,
            &[("db_system_name", "redis"), ("db_operation_name", "GET")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            db,
            &[
                ("db_system_name", "redis"),
                ("db_operation_name", "HSET"),
                ("error_type", "WRONGTYPE")
            ]
        ),
        1.0
    );
    assert_eq!(sum(&s, db, &[]), 5.0);
    assert_eq!(
        value(
            &s,
            "dns_lookup_duration_seconds_count",
            &[("dns_question_type", "A"), ("error_type", "NXDOMAIN")]
        ),
        1.0
    );

    // Health.
    let lost = "wirelens_events_lost_total";
    assert_eq!(value(&s, lost, &[("stage", "ringbuf")]), 5.0);
    assert_eq!(value(&s, lost, &[("stage", "parse")]), 4.0);
    assert_eq!(value(&s, lost, &[("stage", "unmatched_response")]), 3.0);
    assert_eq!(value(&s, lost, &[("stage", "gap")]), 2.0);
    assert_eq!(value(&s, "wirelens_kernel_events_total", &[]), 1234.0);
    assert_eq!(value(&s, "wirelens_connections_tracked", &[]), 6.0);
    assert_eq!(value(&s, "wirelens_own_export_events_total", &[]), 9.0);
    assert_eq!(value(&s, "wirelens_series", &[]), 10.0);
    assert!(body.contains("# TYPE wirelens_series_dropped_total counter"));

    // Statement text, query names and error messages never reach the metrics.
    for secret in [
        "bob",
        "WHERE",
        "VALUES",
        "secret",
        "Operation against",
        "id = 99",
    ] {
        assert!(!body.contains(secret), "{secret} in /metrics");
    }
}

/// Label values are escaped, so a hostile path cannot break the format.
#[test]
fn hostile_paths_stay_one_label_value() {
    let metrics = Metrics::new(AggregationSettings::default());
    metrics.aggregator().observe(&http_server(
        "web",
        "GET",
        "/a\"b\\c\n} 1\nfake_metric 2",
        200,
        MS,
    ));
    let s = parse_exposition(&metrics.render_prometheus());
    assert!(s.iter().all(|x| x.name != "fake_metric"));
    assert_eq!(
        value(
            &s,
            "http_server_request_duration_seconds_count",
            &[("http_route", "/a\"b\\c\n} 1\nfake_metric 2")]
        ),
        1.0
    );
}
