//! Records as the pipeline makes them (through `Record::new`, so status and latency follow the
//! real rules), and a checker of the Prometheus text format, for the aggregation tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;

use wirelens::output::{ProcessRecord, Record};
use wirelens_protocols::{dns, http, mysql, pgsql, redis};
use wirelens_protocols::{Exchange, Outcome, Request, Response, Role};

pub const CLIENT: &str = "10.0.0.1:40000";
pub const SERVER: &str = "10.0.0.2:8080";

/// A record of `comm` (None: replay) in `role`; `response` None with `latency_ns` None is a
/// timeout.
pub fn record(
    comm: Option<&str>,
    role: Role,
    request: Request,
    response: Option<Response>,
    latency_ns: Option<u64>,
) -> Record {
    let outcome = if response.is_some() {
        Outcome::Complete
    } else {
        Outcome::Timeout
    };
    let ex = Exchange {
        req_ts_ns: 1_000_000_000,
        resp_ts_ns: latency_ns.map(|l| 1_000_000_000 + l),
        request,
        response,
        outcome,
        truncated: false,
        trace: None,
    };
    let client: SocketAddr = CLIENT.parse().unwrap();
    let server: SocketAddr = SERVER.parse().unwrap();
    let process = comm.map(|c| ProcessRecord {
        pid: 42,
        comm: c.into(),
    });
    Record::new(ex, role, client, server, process)
}

pub fn http_req(method: &str, path: &str) -> Request {
    Request::Http(http::HttpRequest {
        method: http::method_text(method),
        path: path.into(),
        host: Some("example".into()),
        route: Some(http::route_template(path)),
    })
}

pub fn http_resp(status: u16) -> Option<Response> {
    Some(Response::Http(http::HttpResponse {
        status,
        body_bytes: 10,
    }))
}

/// An HTTP exchange seen by server `comm`: `status` 0 is a timeout.
pub fn http_server(comm: &str, method: &str, path: &str, status: u16, latency_ns: u64) -> Record {
    if status == 0 {
        return record(Some(comm), Role::Server, http_req(method, path), None, None);
    }
    record(
        Some(comm),
        Role::Server,
        http_req(method, path),
        http_resp(status),
        Some(latency_ns),
    )
}

pub fn mysql_query(query: &str, op: &str, table: &str, error: Option<u16>, lat: u64) -> Record {
    record(
        Some("app"),
        Role::Client,
        Request::Mysql(mysql::MysqlRequest {
            command: "COM_QUERY".into(),
            query: Some(query.into()),
            operation: Some(op.into()),
            table: Some(table.into()),
            schema: None,
        }),
        Some(Response::Mysql(mysql::MysqlResponse {
            error: error.is_some(),
            code: error,
            message: error.map(|_| format!("secret error text for {query}")),
            rows: Some(1),
        })),
        Some(lat),
    )
}

pub fn pgsql_query(query: &str, op: &str, table: &str, lat: u64) -> Record {
    record(
        Some("app"),
        Role::Client,
        Request::Pgsql(pgsql::PgsqlRequest {
            query: query.into(),
            kind: "simple".into(),
            operation: Some(op.into()),
            table: Some(table.into()),
        }),
        Some(Response::Pgsql(pgsql::PgsqlResponse {
            error: false,
            code: None,
            message: None,
            rows: Some(1),
        })),
        Some(lat),
    )
}

pub fn redis_cmd(command: &str, error: Option<&str>, lat: u64) -> Record {
    record(
        Some("app"),
        Role::Client,
        Request::Redis(redis::RedisRequest {
            command: command.to_string().into(),
            args: 1,
        }),
        Some(Response::Redis(redis::RedisResponse {
            error: error.is_some(),
            message: error.map(str::to_string),
        })),
        Some(lat),
    )
}

pub fn dns_query(name: &str, qtype: &str, rcode: &str, lat: u64) -> Record {
    record(
        Some("app"),
        Role::Client,
        Request::Dns(dns::DnsRequest {
            name: name.into(),
            qtype: qtype.into(),
            id: 7,
            class: None,
            opcode: None,
        }),
        Some(Response::Dns(dns::DnsResponse {
            rcode: rcode.into(),
            answers: 0,
            tc: false,
        })),
        Some(lat),
    )
}

/// One sample line: metric name, labels, value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses a Prometheus text exposition (format 0.0.4), panicking with the line on anything
/// else than `# HELP`, `# TYPE` or `name{labels} value`. Also checks that `# TYPE` comes
/// before a metric's samples, that each metric's samples are one group, that no two samples
/// are the same series, and that every histogram's buckets grow and end in `_count`.
pub fn parse_exposition(text: &str) -> Vec<Sample> {
    assert!(text.ends_with('\n'), "exposition must end with a line feed");
    let mut samples = Vec::new();
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut done: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, _help) = rest.split_once(' ').unwrap_or_else(|| panic!("{line}"));
            assert!(is_name(name), "bad metric name in {line:?}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or_else(|| panic!("{line}"));
            assert!(is_name(name), "bad metric name in {line:?}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "bad type in {line:?}"
            );
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "second TYPE for {name}"
            );
            continue;
        }
        let s = parse_sample(line);
        let family = family_of(&s.name, &types)
            .unwrap_or_else(|| panic!("sample before its # TYPE: {line:?}"));
        if family != current {
            assert!(!done.contains(&family), "{family} is not one group");
            done.push(std::mem::replace(&mut current, family.clone()));
        }
        samples.push(s);
    }
    let mut seen = std::collections::HashSet::new();
    for s in &samples {
        assert!(
            seen.insert(format!("{}{:?}", s.name, s.labels)),
            "duplicate series {} {:?}",
            s.name,
            s.labels
        );
    }
    for (name, kind) in &types {
        if kind == "histogram" {
            check_histogram(name, &samples);
        }
    }
    samples
}

fn family_of(sample: &str, types: &BTreeMap<String, String>) -> Option<String> {
    if types.contains_key(sample) {
        return Some(sample.to_string());
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = sample.strip_suffix(suffix) {
            if types.get(base).map(String::as_str) == Some("histogram") {
                return Some(base.to_string());
            }
        }
    }
    None
}

fn check_histogram(name: &str, samples: &[Sample]) {
    let bucket = format!("{name}_bucket");
    let count = format!("{name}_count");
    // Buckets of each series, in order, keyed by their labels without `le`.
    let mut buckets: std::collections::HashMap<String, Vec<(String, f64)>> = Default::default();
    for b in samples.iter().filter(|s| s.name == bucket) {
        let mut l = b.labels.clone();
        let le = l.remove("le").expect("le");
        buckets
            .entry(format!("{l:?}"))
            .or_default()
            .push((le, b.value));
    }
    for c in samples.iter().filter(|s| s.name == count) {
        let bs = buckets
            .get(&format!("{:?}", c.labels))
            .unwrap_or_else(|| panic!("{name} {:?}: no buckets", c.labels));
        assert_eq!(bs.len(), 15, "{name} {:?}: 14 bounds and +Inf", c.labels);
        assert!(
            bs.windows(2).all(|w| w[0].1 <= w[1].1),
            "{name} {:?}: buckets shrink",
            c.labels
        );
        assert_eq!(
            bs[14],
            ("+Inf".to_string(), c.value),
            "{name} +Inf != _count"
        );
    }
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_sample(line: &str) -> Sample {
    let bad = || -> ! { panic!("not `name{{labels}} value`: {line:?}") };
    let name_end = line.find(['{', ' ']).unwrap_or_else(|| bad());
    let name = &line[..name_end];
    if !is_name(name) {
        bad();
    }
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(mut l) = rest.strip_prefix('{') {
        loop {
            let eq = l.find("=\"").unwrap_or_else(|| bad());
            let lname = &l[..eq];
            if !is_name(lname) || lname.starts_with("__") {
                bad();
            }
            let mut value = String::new();
            let mut chars = l[eq + 2..].char_indices();
            let end = loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c @ ('\\' | '"'))) => value.push(c),
                        _ => bad(),
                    },
                    Some((i, '"')) => break eq + 2 + i + 1,
                    Some((_, c)) => value.push(c),
                    None => bad(),
                }
            };
            assert!(
                labels.insert(lname.to_string(), value).is_none(),
                "label {lname} twice: {line:?}"
            );
            l = &l[end..];
            if let Some(r) = l.strip_prefix(',') {
                l = r;
            } else if let Some(r) = l.strip_prefix('}') {
                rest = r;
                break;
            } else {
                bad();
            }
        }
    }
    let value = rest.strip_prefix(' ').unwrap_or_else(|| bad());
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().unwrap_or_else(|_| bad()),
    };
    Sample {
        name: name.to_string(),
        labels,
        value,
    }
}

/// The value of the one sample named `name` whose labels include all of `labels`; panics when
/// there is not exactly one.
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
    found[0].value
}

/// The sum of the samples named `name` whose labels include all of `labels`.
pub fn sum(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}
