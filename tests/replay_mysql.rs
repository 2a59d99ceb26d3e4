//! Golden replay tests for the recorded MySQL fixtures (fixtures/mysql/, see its README.md).
//!
//! Each case's pcap goes through `wirelens replay --format jsonl`, and its output must
//! (a) agree with what the clients really sent and got, as fixtures/mysql/record.sh wrote it
//!     down in cases.json (checked there against the server's general query log): the exact
//!     number of exchanges, and per exchange, in order, the command, statement text, schema,
//!     error code, rows, truncation, server, and a latency within the client's own measure;
//! (b) equal the blessed output fixtures/mysql/<case>.jsonl, byte for byte.
//!
//! `BLESS=1 cargo test --test replay_mysql` rewrites the .jsonl files instead of (b), only
//! for outputs that pass (a); review the diff before committing.

#[path = "golden/mod.rs"]
mod golden;

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

const FIXTURES: &str = "fixtures/mysql";
/// pcap timestamps are in microseconds, the client's clock in nanoseconds: two roundings.
const CLOCK_SLACK_NS: u64 = 2_000;

#[derive(Deserialize)]
struct Manifest {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    pcap: String,
    expected: String,
    server: Addr,
    exchanges: Vec<Exchange>,
    /// Why nothing in the connection is readable (TLS, compression).
    skipped: Option<String>,
    /// What the client sent inside such a connection.
    #[serde(default)]
    sent: Vec<Exchange>,
}

#[derive(Deserialize)]
struct Addr {
    ip: String,
    port: u64,
}

#[derive(Deserialize, Clone)]
struct Exchange {
    command: String,
    query: Option<String>,
    schema: Option<String>,
    operation: Option<String>,
    rows: Option<u64>,
    error_code: Option<u64>,
    request_cut: bool,
    response_cut: bool,
    client_elapsed_ns: Option<u64>,
}

fn manifest() -> Manifest {
    golden::manifest(FIXTURES)
}

fn case(name: &str) -> Case {
    manifest()
        .cases
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("case {name} is not in {FIXTURES}/cases.json"))
}

macro_rules! golden_cases {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                golden(stringify!($name));
            }
        )*
        const TESTED_CASES: &[&str] = &[$(stringify!($name)),*];
    };
}

golden_cases!(
    cli_script,
    dbi_prepared,
    mid_connection,
    truncated,
    compressed,
    tls
);

#[test]
fn every_recorded_case_has_a_test() {
    let recorded: Vec<String> = manifest().cases.into_iter().map(|c| c.name).collect();
    assert_eq!(
        recorded, TESTED_CASES,
        "the cases in {FIXTURES}/cases.json and the tests here differ"
    );
}

fn golden(name: &str) {
    let case = case(name);
    let pcap = format!("{FIXTURES}/{}", case.pcap);
    let (run, records) = golden::replay_ok(&pcap);
    let problems = check(&case, &records, &run.stderr);
    assert!(
        problems.is_empty(),
        "{pcap}: the replay disagrees with {FIXTURES}/cases.json:\n  {}\n\noutput:\n{}\nstderr:\n{}",
        problems.join("\n  "),
        run.stdout,
        run.stderr
    );
    golden::compare_or_bless(&format!("{FIXTURES}/{}", case.expected), &run.stdout);
}

/// The counter `name=N` of replay's summary line.
fn counter(stderr: &str, name: &str) -> Option<u64> {
    let key = format!("{name}=");
    stderr
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key.as_str()))
        .and_then(|v| v.parse().ok())
}

/// Every disagreement between the records and the manifest, as readable lines.
fn check(case: &Case, records: &[Value], stderr: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let count = |list: Vec<String>| {
        let mut m = BTreeMap::new();
        for c in list {
            *m.entry(c).or_insert(0u64) += 1;
        }
        m
    };
    let got = count(
        records
            .iter()
            .map(|r| r["request"]["command"].as_str().unwrap_or("?").to_string())
            .collect(),
    );
    let want = count(case.exchanges.iter().map(|e| e.command.clone()).collect());
    if got != want {
        problems.push(format!(
            "records per command {got:?}, the client sent {want:?}"
        ));
    }
    if records.len() != case.exchanges.len() {
        problems.push(format!(
            "{} records, the client made {} exchanges",
            records.len(),
            case.exchanges.len()
        ));
    }
    if counter(stderr, "parse_errors") != Some(0) {
        problems.push("replay counted parse errors".into());
    }
    if counter(stderr, "unmatched_responses") != Some(0) {
        problems.push("replay counted unmatched responses".into());
    }
    let cut = case
        .exchanges
        .iter()
        .any(|e| e.request_cut || e.response_cut);
    if !cut && counter(stderr, "lost_in_gap") != Some(0) {
        problems.push("replay lost framing in a capture without gaps".into());
    }
    if case.skipped.is_some() && case.sent.is_empty() {
        problems.push("a skipped case must list what was sent inside it".into());
    }
    let mut prev_ts = 0;
    for (i, (rec, ex)) in records.iter().zip(&case.exchanges).enumerate() {
        let mut bad = |what: &str, want: String, got: &Value| {
            problems.push(format!(
                "record {} ({} {:?}): {what} is {got}, expected {want}",
                i + 1,
                ex.command,
                ex.query.as_deref().unwrap_or("")
            ))
        };
        let field = |p: &str| rec.pointer(p).cloned().unwrap_or(Value::Null);
        if field("/protocol") != "mysql" {
            bad("protocol", "mysql".into(), &field("/protocol"));
        }
        if field("/request/command") != ex.command.as_str() {
            bad("command", ex.command.clone(), &field("/request/command"));
        }
        let query = field("/request/query");
        match (&ex.query, ex.request_cut) {
            (Some(q), false) if query != q.as_str() => bad("query", format!("{q:?}"), &query),
            (Some(q), true) => {
                let prefix = query.as_str().unwrap_or("");
                if prefix.is_empty() || prefix.len() >= q.len() || !q.starts_with(prefix) {
                    bad("query", format!("a strict prefix of {q:?}"), &query);
                }
            }
            (None, _) if !query.is_null() => bad("query", "absent".into(), &query),
            _ => {}
        }
        if let Some(s) = &ex.schema {
            if field("/request/schema") != s.as_str() {
                bad("schema", s.clone(), &field("/request/schema"));
            }
        }
        if let Some(op) = &ex.operation {
            // The first keyword is what any statement classifier must agree on for DML.
            if ["SELECT", "INSERT", "UPDATE", "DELETE"].contains(&op.as_str())
                && field("/request/operation") != op.as_str()
            {
                bad("operation", op.clone(), &field("/request/operation"));
            }
        }
        let error = ex.error_code.is_some();
        if field("/response/error") != error {
            bad(
                "response.error",
                error.to_string(),
                &field("/response/error"),
            );
        }
        let code = field("/response/code");
        match ex.error_code {
            Some(c) if code != c => bad("response.code", c.to_string(), &code),
            None if !code.is_null() => bad("response.code", "absent".into(), &code),
            _ => {}
        }
        let status = if error { "error" } else { "ok" };
        if field("/status") != status {
            bad("status", status.into(), &field("/status"));
        }
        let rows = field("/response/rows");
        let want_rows = if ex.response_cut { None } else { ex.rows };
        if rows.as_u64() != want_rows {
            bad("response.rows", format!("{want_rows:?}"), &rows);
        }
        let truncated = ex.request_cut || ex.response_cut;
        if field("/truncated") != truncated {
            bad("truncated", truncated.to_string(), &field("/truncated"));
        }
        if field("/server/ip") != case.server.ip.as_str() {
            bad("server.ip", case.server.ip.clone(), &field("/server/ip"));
        }
        if field("/server/port") != case.server.port {
            bad(
                "server.port",
                case.server.port.to_string(),
                &field("/server/port"),
            );
        }
        let ts = field("/ts_ns").as_u64().unwrap_or(0);
        if ts < prev_ts {
            bad(
                "ts_ns",
                format!(">= {prev_ts} (in order)"),
                &field("/ts_ns"),
            );
        }
        prev_ts = ts;
        let latency = field("/latency_ns");
        match (latency.as_u64(), ex.client_elapsed_ns) {
            (None, _) => bad("latency_ns", "a number".into(), &latency),
            (Some(l), Some(e)) if !ex.response_cut && l > e + CLOCK_SLACK_NS => {
                bad("latency_ns", format!("<= the client's {e} ns"), &latency)
            }
            _ => {}
        }
    }
    problems
}
