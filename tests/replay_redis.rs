//! Golden replay tests for the recorded Redis fixtures (fixtures/redis/, see its README.md).
//!
//! Each case's pcap goes through `wirelens replay --format jsonl`, and its output must
//! (a) agree with what the clients sent and got and what the server counted, as
//!     fixtures/redis/cases.json (written by record.sh) says: the exact number of records per
//!     command, equal to the server's INFO commandstats delta; per connection, the commands
//!     in order; where the client reported each exchange, its arguments, error text,
//!     missing reply (CLIENT REPLY OFF/SKIP), truncation and a latency within the client's
//!     own measure; pipelined commands paired in order; no published message taken for a
//!     reply;
//! (b) equal the blessed output fixtures/redis/<case>.jsonl, byte for byte.
//!
//! `BLESS=1 cargo test --test replay_redis` rewrites the .jsonl files instead of (b), and
//! only for outputs that pass (a); review the diff before committing.

#[path = "golden/mod.rs"]
mod golden;

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

const FIXTURES: &str = "fixtures/redis";
/// pcap timestamps are in microseconds, the client's clock in nanoseconds.
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
    server: Endpoint,
    commands: BTreeMap<String, u64>,
    server_counts: BTreeMap<String, u64>,
    #[serde(default)]
    not_executed: BTreeMap<String, u64>,
    #[serde(default)]
    exchanges: Option<Vec<Exchange>>,
    #[serde(default)]
    sequence: Option<Vec<Step>>,
    #[serde(default)]
    errors: Option<Vec<String>>,
    #[serde(default)]
    connections: Option<Vec<Vec<String>>>,
    #[serde(default)]
    pipelined: Option<usize>,
}

#[derive(Deserialize)]
struct Endpoint {
    ip: String,
    port: u64,
}

#[derive(Deserialize)]
struct Exchange {
    command: String,
    args: u64,
    response: bool,
    error: Option<String>,
    truncated: bool,
    client_elapsed_ns: Option<u64>,
}

#[derive(Deserialize)]
struct Step {
    command: String,
    args: u64,
}

fn manifest() -> Manifest {
    let path = golden::root().join(FIXTURES).join("cases.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn command(r: &Value) -> &str {
    r["request"]["command"].as_str().expect("request.command")
}

fn args(r: &Value) -> u64 {
    r["request"]["args"].as_u64().expect("request.args")
}

fn error_text(r: &Value) -> Option<&str> {
    if r["response"]["error"] == true {
        Some(
            r["response"]["message"]
                .as_str()
                .expect("an error's message"),
        )
    } else {
        None
    }
}

/// Checks (a) for one case; returns a description of the first disagreement.
fn check_semantics(case: &Case, records: &[Value]) -> Result<(), String> {
    let ctx = |i: usize, r: &Value| format!("{}: record {} ({r})", case.name, i + 1);
    // Every record: a Redis exchange with this server, answered or knowingly not.
    for (i, r) in records.iter().enumerate() {
        let at = ctx(i, r);
        let ok = r["protocol"] == "redis"
            && r["role"] == "server"
            && r["server"]["ip"] == case.server.ip.as_str()
            && r["server"]["port"] == case.server.port
            && r["process"].is_null();
        if !ok {
            return Err(format!("{at}: not a Redis record of the fixture's server"));
        }
        let error = r["response"]["error"] == true;
        let want_status = if error { "error" } else { "ok" };
        if r["status"] != want_status {
            return Err(format!("{at}: status should be {want_status}"));
        }
        match (r["response"].is_null(), r["latency_ns"].as_u64()) {
            (true, None) | (false, Some(1..)) => {}
            _ => return Err(format!("{at}: latency and response disagree")),
        }
    }
    // Records per command: what the client sent, and what the server counted running.
    let mut got: BTreeMap<String, u64> = BTreeMap::new();
    for r in records {
        *got.entry(command(r).to_string()).or_default() += 1;
    }
    if got != case.commands {
        return Err(format!(
            "{}: records per command {got:?}, sent {:?}",
            case.name, case.commands
        ));
    }
    for (name, n) in &case.server_counts {
        let ran =
            got.get(name).copied().unwrap_or(0) - case.not_executed.get(name).copied().unwrap_or(0);
        if ran != *n {
            return Err(format!(
                "{}: {ran} {name} records ran, INFO commandstats counted {n}",
                case.name
            ));
        }
    }
    // Per connection (client port), the commands in order.
    if let Some(want) = &case.connections {
        let mut by_port: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        for r in records {
            let port = r["client"]["port"].as_u64().expect("client.port");
            by_port
                .entry(port)
                .or_default()
                .push(command(r).to_string());
        }
        let mut got: Vec<Vec<String>> = by_port.into_values().collect();
        let mut want = want.clone();
        got.sort();
        want.sort();
        if got != want {
            return Err(format!(
                "{}: commands per connection {got:?}, sent {want:?}",
                case.name
            ));
        }
    }
    if let Some(seq) = &case.sequence {
        let got: Vec<(&str, u64)> = records.iter().map(|r| (command(r), args(r))).collect();
        let want: Vec<(&str, u64)> = seq.iter().map(|s| (s.command.as_str(), s.args)).collect();
        if got != want {
            return Err(format!("{}: commands {got:?}, sent {want:?}", case.name));
        }
    }
    if let Some(errors) = &case.errors {
        let got: Vec<&str> = records.iter().filter_map(error_text).collect();
        if got != *errors {
            return Err(format!(
                "{}: errors {got:?}, redis-cli printed {errors:?}",
                case.name
            ));
        }
    }
    if let Some(exchanges) = &case.exchanges {
        if records.len() != exchanges.len() {
            return Err(format!(
                "{}: {} records, {} exchanges",
                case.name,
                records.len(),
                exchanges.len()
            ));
        }
        for (i, (r, e)) in records.iter().zip(exchanges).enumerate() {
            let at = ctx(i, r);
            if command(r) != e.command || args(r) != e.args {
                return Err(format!("{at}: expected {} with {} args", e.command, e.args));
            }
            if r["response"].is_null() == e.response {
                return Err(format!(
                    "{at}: the client {} a reply",
                    if e.response { "got" } else { "got no" }
                ));
            }
            if error_text(r) != e.error.as_deref() {
                return Err(format!("{at}: the client got error {:?}", e.error));
            }
            if r["truncated"] != e.truncated {
                return Err(format!("{at}: truncated should be {}", e.truncated));
            }
            if let (Some(l), Some(c)) = (r["latency_ns"].as_u64(), e.client_elapsed_ns) {
                if l > c + CLOCK_SLACK_NS {
                    return Err(format!(
                        "{at}: latency {l} ns above the client's own {c} ns"
                    ));
                }
            }
        }
    } else if let Some(r) = records.iter().find(|r| r["truncated"] == true) {
        return Err(format!(
            "{}: nothing was cut, but {r} is truncated",
            case.name
        ));
    }
    // Pipelined commands (one segment, one capture time) pair in order: replies to later
    // commands end no earlier.
    if let Some(n) = case.pipelined {
        let mut groups: BTreeMap<(u64, u64), Vec<u64>> = BTreeMap::new();
        for r in records {
            let key = (
                r["client"]["port"].as_u64().unwrap_or(0),
                r["ts_ns"].as_u64().unwrap_or(0),
            );
            groups
                .entry(key)
                .or_default()
                .push(r["latency_ns"].as_u64().unwrap_or(0));
        }
        let largest = groups.values().map(Vec::len).max().unwrap_or(0);
        if largest != n {
            return Err(format!(
                "{}: at most {largest} records from one write, {n} pipelined",
                case.name
            ));
        }
        if let Some(g) = groups.values().find(|g| g.windows(2).any(|w| w[1] < w[0])) {
            return Err(format!(
                "{}: pipelined replies out of order (latencies {g:?})",
                case.name
            ));
        }
    }
    Ok(())
}

/// A `name=N` counter of replay's summary line.
fn stat(stderr: &str, name: &str) -> Option<u64> {
    let at = stderr.rfind(&format!(" {name}="))? + name.len() + 2;
    let digits: String = stderr[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[test]
fn redis_fixtures_replay_as_recorded() {
    let manifest = manifest();
    assert!(
        manifest.cases.len() >= 9,
        "cases.json lists {} cases",
        manifest.cases.len()
    );
    let mut failures = Vec::new();
    for case in &manifest.cases {
        let pcap = format!("{FIXTURES}/{}", case.pcap);
        let (replay, records) = golden::replay_ok(&pcap);
        for counter in ["parse_errors", "unmatched_responses", "lost_in_gap"] {
            assert_eq!(
                stat(&replay.stderr, counter),
                Some(0),
                "{}: {counter} in: {}",
                case.name,
                replay.stderr
            );
        }
        if let Err(e) = check_semantics(case, &records) {
            failures.push(e);
            continue;
        }
        golden::compare_or_bless(&format!("{FIXTURES}/{}", case.expected), &replay.stdout);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn manifest_agrees_with_the_server_counters() {
    // The recorder's own premise: what the clients sent is what the server ran.
    for case in manifest().cases {
        for (name, n) in &case.server_counts {
            let sent = case.commands.get(name).copied().unwrap_or(0);
            let skipped = case.not_executed.get(name).copied().unwrap_or(0);
            assert_eq!(sent - skipped, *n, "{}: {name}", case.name);
        }
    }
}
