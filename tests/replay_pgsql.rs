//! Golden replay tests for the recorded PostgreSQL fixtures (fixtures/pgsql/, see its
//! README.md).
//!
//! Each case's pcap goes through `wirelens replay --format jsonl`, and its output must
//! (a) agree with what the clients sent and got and what the server counted, as the recorder
//!     wrote it down in fixtures/pgsql/cases.json: per exchange, in order, the statement text
//!     and kind, the error and its SQLSTATE, the rows; the Executes the server skipped after
//!     an error absent; for pgbench, the statements per command and their rows equal to
//!     pg_stat_statements'; no record for encrypted connections;
//! (b) equal the blessed output fixtures/pgsql/<case>.jsonl, byte for byte.
//!
//! `BLESS=1 cargo test --test replay_pgsql` rewrites the .jsonl files instead of (b), and only
//! for outputs that pass (a); review the diff before committing.

mod golden;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

const FIXTURES: &str = "fixtures/pgsql";
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
    #[serde(default)]
    exchanges: Vec<Exchange>,
    #[serde(default)]
    skipped: Vec<Skipped>,
    #[serde(default)]
    pg_stat_statements: Vec<Pgss>,
    /// pgbench: statements per command it ran (pg_stat_statements-checked at record time).
    #[serde(default)]
    commands: BTreeMap<String, u64>,
    mode: Option<String>,
    encrypted_connections: Option<u64>,
}

#[derive(Deserialize)]
struct Addr {
    ip: String,
    port: u64,
}

#[derive(Deserialize, Debug)]
struct Exchange {
    kind: String,
    query: String,
    tag: Option<String>,
    rows: Option<u64>,
    error: Option<String>,
    message: Option<String>,
    client_elapsed_ns: Option<u64>,
    /// `false`: the end of the response is not in the capture (cut by the snaplen).
    end_captured: Option<bool>,
}

#[derive(Deserialize)]
struct Skipped {
    query: String,
}

#[derive(Deserialize)]
struct Pgss {
    query: String,
    calls: u64,
    rows: u64,
}

fn manifest() -> Manifest {
    golden::manifest(FIXTURES)
}

macro_rules! golden_cases {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run(stringify!($name));
            }
        )*
        const TESTED_CASES: &[&str] = &[$(stringify!($name)),*];
    };
}

golden_cases!(
    psql_script,
    pgbench_simple,
    pgbench_extended,
    pgbench_prepared,
    pipeline,
    misc,
    cancel,
    mid_connection,
    truncated,
    encrypted,
);

#[test]
fn every_recorded_case_has_a_test() {
    let recorded: Vec<String> = manifest().cases.into_iter().map(|c| c.name).collect();
    assert_eq!(
        recorded, TESTED_CASES,
        "the cases in {FIXTURES}/cases.json and the tests here differ"
    );
}

fn run(name: &str) {
    let case = manifest()
        .cases
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("case {name} is not in {FIXTURES}/cases.json"));
    let pcap = format!("{FIXTURES}/{}", case.pcap);
    let (replay, records) = golden::replay_ok(&pcap);
    let span = pcap_span_ns(&golden::root().join(&pcap));
    let problems = check(&case, &records, span);
    assert!(
        problems.is_empty(),
        "{pcap}: the replay disagrees with {FIXTURES}/cases.json:\n  {}\n\noutput:\n{}\nstderr:\n{}",
        problems.join("\n  "),
        replay.stdout,
        replay.stderr
    );
    golden::compare_or_bless(&format!("{FIXTURES}/{}", case.expected), &replay.stdout);
}

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

fn text<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    s(v, path).and_then(Value::as_str).unwrap_or("")
}

/// The command of a statement: its first word, upper case.
fn command(q: &str) -> String {
    q.trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("")
        .to_ascii_uppercase()
}

fn check(case: &Case, records: &[Value], span: u64) -> Vec<String> {
    let mut p = Vec::new();
    // Common to every record.
    for (i, r) in records.iter().enumerate() {
        if text(r, &["protocol"]) != "pgsql" {
            p.push(format!("record {i}: protocol {}", r["protocol"]));
        }
        if text(r, &["server", "ip"]) != case.server.ip
            || s(r, &["server", "port"]).and_then(Value::as_u64) != Some(case.server.port)
        {
            p.push(format!("record {i}: server {}", r["server"]));
        }
        match r["latency_ns"].as_u64() {
            Some(l) if l <= span => {}
            other => p.push(format!("record {i}: latency {other:?} outside 0..={span}")),
        }
        let status = text(r, &["status"]);
        let error = s(r, &["response", "error"]).and_then(Value::as_bool);
        let want_status = if error == Some(true) { "error" } else { "ok" };
        if status != want_status {
            p.push(format!(
                "record {i}: status {status}, response {}",
                r["response"]
            ));
        }
    }
    if let Some(n) = case.encrypted_connections {
        assert!(n > 0);
        if !records.is_empty() {
            p.push(format!(
                "{} records from encrypted connections",
                records.len()
            ));
        }
        return p;
    }
    if case.mode.is_some() {
        check_pgbench(case, records, &mut p);
        return p;
    }
    // The exchanges the client reported, in order. One whose response end was not captured
    // is reported cut short: truncated, its row count unknown.
    let want: Vec<&Exchange> = case.exchanges.iter().collect();
    if records.len() != want.len() {
        p.push(format!(
            "{} records, the client reported {} exchanges",
            records.len(),
            want.len()
        ));
    }
    for (i, (r, e)) in records.iter().zip(&want).enumerate() {
        let q = text(r, &["request", "query"]);
        let truncated = r["truncated"].as_bool() == Some(true);
        if q != e.query {
            // Only a capture cut may shorten the text, and then the record says so.
            if !(truncated && !q.is_empty() && e.query.starts_with(q)) {
                p.push(format!("record {i}: query {q:?}, sent {:?}", e.query));
            }
        } else if truncated && e.end_captured.is_none() {
            p.push(format!("record {i}: truncated, but nothing was cut"));
        }
        if text(r, &["request", "kind"]) != e.kind {
            p.push(format!(
                "record {i}: kind {}, sent {}",
                r["request"]["kind"], e.kind
            ));
        }
        let error = s(r, &["response", "error"]).and_then(Value::as_bool);
        if error != Some(e.error.is_some()) {
            p.push(format!(
                "record {i}: error {error:?}, the server said {:?}",
                e.error
            ));
        }
        let code = s(r, &["response", "code"]).and_then(Value::as_str);
        if code != e.error.as_deref() {
            p.push(format!(
                "record {i}: code {code:?}, the server said {:?}",
                e.error
            ));
        }
        if let Some(m) = &e.message {
            if text(r, &["response", "message"]) != m {
                p.push(format!(
                    "record {i}: message {}, the server said {m:?}",
                    r["response"]
                ));
            }
        }
        let rows = s(r, &["response", "rows"]).and_then(Value::as_u64);
        if e.end_captured == Some(false) {
            if !truncated || rows.is_some() {
                p.push(format!(
                    "record {i}: its end was not captured: not cut short (truncated \
                     {truncated}, rows {rows:?})"
                ));
            }
        } else if rows != e.rows {
            p.push(format!(
                "record {i}: rows {rows:?}, the server said {:?} ({:?})",
                e.rows, e.tag
            ));
        }
        if let (Some(l), Some(c)) = (r["latency_ns"].as_u64(), e.client_elapsed_ns) {
            if l > c + CLOCK_SLACK_NS {
                p.push(format!("record {i}: latency {l} ns > the client's {c} ns"));
            }
        }
    }
    // The Executes the server skipped after an error are not reported: the records are
    // exactly the exchanges above; check the skipped texts were sent (so the case means it).
    for sk in &case.skipped {
        if !case.exchanges.iter().any(|e| e.query == sk.query) {
            p.push(format!("skipped {:?} was never run otherwise", sk.query));
        }
    }
    if case.name == "psql_script" {
        check_pgss(case, records, &mut p);
    }
    p
}

/// Per command, the successful records must be the calls pg_stat_statements counted and
/// their rows its rows (the reset, run before the capture, left out).
fn check_pgss(case: &Case, records: &[Value], p: &mut Vec<String>) {
    let mut want: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for s in &case.pg_stat_statements {
        if s.query == "SELECT pg_stat_statements_reset()" {
            continue;
        }
        let w = want.entry(command(&s.query)).or_default();
        w.0 += s.calls;
        w.1 += s.rows;
    }
    let got = per_command(records);
    if got != want {
        p.push(format!(
            "per command (records, rows): {got:?}; pg_stat_statements: {want:?}"
        ));
    }
}

fn per_command(records: &[Value]) -> BTreeMap<String, (u64, u64)> {
    let mut got: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for r in records {
        if s(r, &["response", "error"]).and_then(Value::as_bool) != Some(false) {
            continue;
        }
        let g = got
            .entry(command(text(r, &["request", "query"])))
            .or_default();
        g.0 += 1;
        g.1 += s(r, &["response", "rows"])
            .and_then(Value::as_u64)
            .unwrap_or(0);
    }
    got
}

fn check_pgbench(case: &Case, records: &[Value], p: &mut Vec<String>) {
    let mode = case.mode.as_deref().unwrap_or("");
    let got = per_command(records);
    let counts: BTreeMap<String, u64> = got.iter().map(|(k, v)| (k.clone(), v.0)).collect();
    if counts != case.commands {
        p.push(format!(
            "records per command {counts:?}, pgbench ran {:?}",
            case.commands
        ));
    }
    // Rows, as pg_stat_statements counted them (BEGIN and END have none).
    let mut rows: BTreeMap<String, u64> = BTreeMap::new();
    for s in &case.pg_stat_statements {
        if s.query != "SELECT pg_stat_statements_reset()" {
            *rows.entry(command(&s.query)).or_default() += s.rows;
        }
    }
    let got_rows: BTreeMap<String, u64> = got.iter().map(|(k, v)| (k.clone(), v.1)).collect();
    if got_rows != rows {
        p.push(format!(
            "rows per command {got_rows:?}, pg_stat_statements {rows:?}"
        ));
    }
    for (i, r) in records.iter().enumerate() {
        let q = text(r, &["request", "query"]);
        let kind = text(r, &["request", "kind"]);
        // pgbench's own setup queries (lower case) are simple Queries in every mode.
        let want = if q.starts_with("select ") || mode == "simple" {
            "simple"
        } else {
            "extended"
        };
        if kind != want {
            p.push(format!("record {i}: kind {kind}, expected {want} ({q:?})"));
        }
        if q.is_empty() {
            p.push(format!("record {i}: no statement text"));
        }
        if s(r, &["response", "error"]).and_then(Value::as_bool) != Some(false) {
            p.push(format!("record {i}: not a success: {}", r["response"]));
        }
    }
}

/// Time from the first to the last packet of a classic pcap file, in ns.
fn pcap_span_ns(path: &Path) -> u64 {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (le, nano) = match b.get(..4) {
        Some([0xd4, 0xc3, 0xb2, 0xa1]) => (true, false),
        Some([0x4d, 0x3c, 0xb2, 0xa1]) => (true, true),
        Some([0xa1, 0xb2, 0xc3, 0xd4]) => (false, false),
        Some([0xa1, 0xb2, 0x3c, 0x4d]) => (false, true),
        _ => panic!("{}: not a classic pcap", path.display()),
    };
    let u32_at = |o: usize| {
        let w = [b[o], b[o + 1], b[o + 2], b[o + 3]];
        u64::from(if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        })
    };
    let (mut off, mut first, mut last) = (24usize, None, 0u64);
    while off + 16 <= b.len() {
        let ts = u32_at(off) * 1_000_000_000 + u32_at(off + 4) * if nano { 1 } else { 1000 };
        first.get_or_insert(ts);
        last = ts;
        off += 16 + u32_at(off + 8) as usize;
    }
    last - first.unwrap_or(last)
}
