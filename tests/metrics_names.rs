//! The names on /metrics follow the OpenTelemetry-to-Prometheus compatibility rules
//! (OpenTelemetry specification, "Prometheus and OpenMetrics Compatibility"): `.` of metric and
//! attribute names becomes `_`, the unit is a suffix (`s` -> `_seconds`; annotations in braces
//! add nothing), a monotonic sum is a counter ending in `_total`, a histogram has
//! `_bucket{le}`, `_sum` and `_count`; and the semantic conventions' metrics and attributes
//! keep their names. Checked on an exposition holding every family of series, both sides of
//! every protocol, errors, unanswered requests, overflow series and service graph edges.

mod aggregate_support;

use std::collections::{BTreeMap, BTreeSet};

use aggregate_support::*;
use wirelens::aggregate::AggregationConfig;
use wirelens::export::Metrics;
use wirelens_protocols::{dns, redis, Request, Response, Role};

const MS: u64 = 1_000_000;

/// An exposition with every kind of series this agent makes.
fn everything() -> String {
    let c = AggregationConfig {
        series_per_service: 6,
        ..Default::default()
    };
    let metrics = Metrics::new(c.build().expect("valid"));
    {
        let mut agg = metrics.aggregator();
        agg.observe(&http_server("web", "GET", "/users/1", 200, MS));
        agg.observe(&http_server("web", "POST", "/users", 500, MS));
        agg.observe(&http_server("web", "GET", "/slow", 0, 0));
        agg.observe(&record(
            Some("app"),
            Role::Client,
            http_req("GET", "/users/1"),
            http_resp(404),
            Some(MS),
        ));
        agg.observe(&mysql_query("SELECT 1", "SELECT", "t", Some(1146), MS));
        agg.observe(&pgsql_query("SELECT 1", "SELECT", "t", MS));
        agg.observe(&redis_cmd("GET", Some("ERR x"), MS));
        agg.observe(&dns_query("a.example", "A", "NXDOMAIN", MS));
        agg.observe(&record(
            Some("redis-server"),
            Role::Server,
            Request::Redis(redis::RedisRequest {
                command: "SET".into(),
                args: 2,
            }),
            Some(Response::Redis(redis::RedisResponse {
                error: false,
                message: None,
            })),
            Some(MS),
        ));
        agg.observe(&record(
            Some("dnsmasq"),
            Role::Server,
            Request::Dns(dns::DnsRequest {
                name: "a.example".into(),
                qtype: "AAAA".into(),
                id: 1,
                class: None,
                opcode: None,
            }),
            Some(Response::Dns(dns::DnsResponse {
                rcode: "NOERROR".into(),
                answers: 1,
                tc: false,
            })),
            Some(MS),
        ));
        // Past web's budget of 6: overflow series and edges.
        for i in 0..8 {
            agg.observe(&http_server("web", "GET", &format!("/p{i}/x"), 200, MS));
        }
        agg.settle_all();
    }
    metrics.render_prometheus()
}

fn is_label_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__")
}

#[test]
fn every_name_follows_the_otel_to_prometheus_rules() {
    let text = everything();
    let samples = parse_exposition(&text);
    let types: BTreeMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    for (name, kind) in &types {
        assert!(name.starts_with(|c: char| c.is_ascii_lowercase()), "{name}");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{name}: lower case snake case"
        );
        match *kind {
            "counter" => assert!(name.ends_with("_total"), "counter {name} without _total"),
            "histogram" => {
                assert!(
                    name.ends_with("_seconds"),
                    "histogram {name}: durations in seconds, unit suffix"
                );
                assert!(!name.contains("_total"), "{name}");
            }
            "gauge" => assert!(!name.ends_with("_total"), "gauge {name} ending in _total"),
            other => panic!("{name}: unexpected type {other}"),
        }
        assert!(!name.contains("__"), "{name}");
        // No unit spelled twice or in another form.
        for bad in ["_milliseconds", "_ms", "_nanoseconds", "_seconds_seconds"] {
            assert!(!name.contains(bad), "{name}");
        }
    }
    for s in &samples {
        for (k, v) in &s.labels {
            assert!(is_label_name(k), "{}: label {k}", s.name);
            assert!(!k.contains('.'), "{}: label {k}", s.name);
            if k == "le" {
                assert!(s.name.ends_with("_bucket"), "le on {}", s.name);
                assert!(v == "+Inf" || v.parse::<f64>().is_ok(), "le={v}");
            }
        }
        if s.name.ends_with("_bucket") {
            assert!(s.labels.contains_key("le"), "{} without le", s.name);
        }
    }
}

/// The semantic conventions' metric names, units and attribute names, converted.
#[test]
fn semantic_convention_names_are_kept() {
    let text = everything();
    let samples = parse_exposition(&text);
    // (OpenTelemetry name, unit) -> Prometheus name.
    let convert = |name: &str, unit: &str| {
        let suffix = match unit {
            "s" => "_seconds",
            _ => "",
        };
        format!("{}{suffix}", name.replace('.', "_"))
    };
    let expected: [(&str, &[&str]); 6] = [
        (
            "http.server.request.duration",
            &[
                "http.request.method",
                "http.route",
                "http.response.status_code",
                "url.scheme",
                "error.type",
            ],
        ),
        (
            "http.client.request.duration",
            &[
                "http.request.method",
                "server.address",
                "server.port",
                "url.template",
                "http.response.status_code",
                "error.type",
            ],
        ),
        (
            "db.client.operation.duration",
            &[
                "db.system.name",
                "db.operation.name",
                "db.collection.name",
                "server.address",
                "server.port",
                "error.type",
            ],
        ),
        (
            "dns.lookup.duration",
            &["server.address", "server.port", "error.type"],
        ),
        (
            "wirelens.db.server.operation.duration",
            &["db.system.name", "db.operation.name", "client.address"],
        ),
        (
            "wirelens.service_graph.request.duration",
            &["client", "server"],
        ),
    ];
    for (otel, attributes) in expected {
        let prom = convert(otel, "s");
        let mut labels = BTreeSet::new();
        for suffix in ["_bucket", "_sum", "_count"] {
            let name = format!("{prom}{suffix}");
            let of: Vec<_> = samples.iter().filter(|s| s.name == name).collect();
            assert!(!of.is_empty(), "no {name}");
            labels.extend(of.iter().flat_map(|s| s.labels.keys().cloned()));
        }
        for a in attributes {
            let l = a.replace('.', "_");
            assert!(
                labels.contains(&l),
                "{prom}: no label {l} (from {a}): {labels:?}"
            );
        }
    }
    assert!(text.contains("# TYPE http_server_request_duration_seconds histogram"));
    // Counters: the OpenTelemetry sum `wirelens.service_graph.requests` (unit `{request}`,
    // an annotation: no suffix) is `..._requests_total`.
    for counter in [
        "wirelens_service_graph_requests_total",
        "wirelens_service_graph_requests_failed_total",
        "wirelens_requests_unanswered_total",
        "wirelens_series_dropped_total",
        "wirelens_export_failures_total",
    ] {
        assert!(
            text.contains(&format!("# TYPE {counter} counter")),
            "{counter}"
        );
        assert!(
            samples.iter().any(|s| s.name == counter),
            "no {counter} sample"
        );
    }
    // The overflow series carry the specification's overflow attribute.
    assert!(samples.iter().any(|s| {
        s.name == "http_server_request_duration_seconds_count"
            && s.labels.get("otel_metric_overflow").map(String::as_str) == Some("true")
    }));
    assert!(samples.iter().any(|s| {
        s.name == "wirelens_service_graph_requests_total"
            && s.labels.get("otel_metric_overflow").map(String::as_str) == Some("true")
    }));
}
