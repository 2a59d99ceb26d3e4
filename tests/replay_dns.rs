//! Golden replay tests for the recorded DNS fixtures (fixtures/dns/, see its README.md).
//!
//! Each case's pcap goes through `wirelens replay --format jsonl`, and its output must
//! (a) agree with what the clients (dig, raw_client.py) really sent and got, as the recorder
//!     wrote it down in fixtures/dns/cases.json: exactly one record per query, in the order
//!     the answers came (queries never answered last, as `timeout`), and per record the
//!     name (as sent, case and escapes kept), type, class, opcode, transaction id, server,
//!     rcode, answer count, TC flag, status, truncation, and a latency within the client's
//!     own measure; and the replay's counters show no parse error, unmatched response or
//!     message lost in a gap;
//! (b) equal the blessed output fixtures/dns/<case>.jsonl, byte for byte.
//!
//! `BLESS=1 cargo test --test replay_dns` rewrites the .jsonl files instead of (b), and only
//! for outputs that pass (a); review the diff before committing.

#[path = "golden/mod.rs"]
mod golden;

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

const FIXTURES: &str = "fixtures/dns";
/// pcap timestamps are in microseconds, raw_client.py's clock in nanoseconds.
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
    exchanges: Vec<Exchange>,
}

#[derive(Deserialize, Debug)]
struct Exchange {
    client: String,
    transport: String,
    server: Addr,
    id: u64,
    name: String,
    #[serde(rename = "type")]
    qtype: String,
    class: Option<String>,
    opcode: Option<String>,
    /// null: the client did not print the answer (dig retrying over TCP after TC).
    rcode: Option<String>,
    answers: Option<u64>,
    tc: Option<bool>,
    /// "ok", "error", "timeout", or null as for `rcode`.
    status: Option<String>,
    truncated: bool,
    /// dig's "Query time" (whole milliseconds).
    query_time_ms: Option<u64>,
    /// raw_client.py: from its send() of the query to the answer read.
    elapsed_ns: Option<u64>,
}

#[derive(Deserialize, Debug)]
struct Addr {
    ip: String,
    port: u64,
}

fn case(name: &str) -> Case {
    let m: Manifest = golden::manifest(FIXTURES);
    m.cases
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("case {name} is not in {FIXTURES}/cases.json"))
}

macro_rules! golden_cases {
    ($($(#[$attr:meta])* $name:ident),* $(,)?) => {
        $(
            #[test]
            $(#[$attr])*
            fn $name() {
                golden_case(stringify!($name));
            }
        )*
        const TESTED_CASES: &[&str] = &[$(stringify!($name)),*];
    };
}

golden_cases!(
    udp_queries,
    udp_noedns,
    udp_errors,
    udp_truncated,
    tcp_keepopen,
    tcp_pipelined,
    ipv6,
    snaplen_cut,
    needs_inference,
);

#[test]
fn every_recorded_case_has_a_test() {
    let m: Manifest = golden::manifest(FIXTURES);
    let recorded: Vec<String> = m.cases.into_iter().map(|c| c.name).collect();
    assert_eq!(
        recorded, TESTED_CASES,
        "the cases in {FIXTURES}/cases.json and the tests here differ"
    );
}

fn golden_case(name: &str) {
    let case = case(name);
    let pcap = format!("{FIXTURES}/{}", case.pcap);
    let (run, records) = golden::replay_ok(&pcap);
    let span = pcap_span_ns(&golden::root().join(&pcap));
    let problems = check_semantics(&case, &records, span, &run.stderr);
    assert!(
        problems.is_empty(),
        "{pcap}: the replay disagrees with {FIXTURES}/cases.json:\n  {}\n\noutput:\n{}\nstderr:\n{}",
        problems.join("\n  "),
        run.stdout,
        run.stderr
    );
    golden::compare_or_bless(&format!("{FIXTURES}/{}", case.expected), &run.stdout);
}

/// The order records come out in: answers as they came, then the queries that got none
/// (reported when the replay ends).
fn expected_order(case: &Case) -> Vec<&Exchange> {
    let (done, waiting): (Vec<&Exchange>, Vec<&Exchange>) = case
        .exchanges
        .iter()
        .partition(|e| e.status.as_deref() != Some("timeout"));
    done.into_iter().chain(waiting).collect()
}

/// Every disagreement between the records and the manifest, as readable lines.
fn check_semantics(
    case: &Case,
    records: &[Value],
    (first_ns, last_ns): (u64, u64),
    stderr: &str,
) -> Vec<String> {
    let mut problems = Vec::new();
    let want = expected_order(case);
    if records.len() != want.len() {
        problems.push(format!(
            "{} records, but the clients sent {} queries: {}",
            records.len(),
            want.len(),
            want.iter()
                .map(|e| format!("{} {} id {}", e.name, e.qtype, e.id))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for (i, (rec, ex)) in records.iter().zip(&want).enumerate() {
        let mut bad = |what: &str, want: &dyn std::fmt::Debug, got: &Value| {
            problems.push(format!(
                "record {} ({} {} id {} over {} by {}): {what} is {got}, expected {want:?}",
                i + 1,
                ex.name,
                ex.qtype,
                ex.id,
                ex.transport,
                ex.client
            ))
        };
        let field = |p: &str| rec.pointer(p).cloned().unwrap_or(Value::Null);
        let text = |p: &str| rec.pointer(p).and_then(Value::as_str).map(str::to_owned);
        let num = |p: &str| rec.pointer(p).and_then(Value::as_u64);

        if text("/protocol").as_deref() != Some("dns") {
            bad("protocol", &"dns", &field("/protocol"));
        }
        if text("/request/name").as_deref() != Some(ex.name.as_str()) {
            bad("request.name", &ex.name, &field("/request/name"));
        }
        if text("/request/type").as_deref() != Some(ex.qtype.as_str()) {
            bad("request.type", &ex.qtype, &field("/request/type"));
        }
        if num("/request/id") != Some(ex.id) {
            bad("request.id", &ex.id, &field("/request/id"));
        }
        if text("/request/class") != ex.class {
            bad("request.class", &ex.class, &field("/request/class"));
        }
        if text("/request/opcode") != ex.opcode {
            bad("request.opcode", &ex.opcode, &field("/request/opcode"));
        }
        if text("/server/ip").as_deref() != Some(ex.server.ip.as_str())
            || num("/server/port") != Some(ex.server.port)
        {
            bad("server", &ex.server, &field("/server"));
        }
        if !matches!(text("/client/ip").as_deref(), Some("127.0.0.1" | "::1")) {
            bad("client.ip", &"loopback", &field("/client/ip"));
        }
        if rec.get("truncated").and_then(Value::as_bool) != Some(ex.truncated) {
            bad("truncated", &ex.truncated, &field("/truncated"));
        }
        let ts = num("/ts_ns").unwrap_or(0);
        if ts < first_ns || ts > last_ns {
            bad(
                "ts_ns",
                &format!("within the capture [{first_ns}, {last_ns}]"),
                &field("/ts_ns"),
            );
        }

        match ex.status.as_deref() {
            Some("timeout") => {
                if text("/status").as_deref() != Some("timeout") {
                    bad("status", &"timeout", &field("/status"));
                }
                if !field("/response").is_null() || !field("/latency_ns").is_null() {
                    bad("response", &"null (no answer)", &field("/response"));
                }
                continue;
            }
            Some(status) => {
                if text("/status").as_deref() != Some(status) {
                    bad("status", &status, &field("/status"));
                }
            }
            // Answered with TC; dig did not print the answer.
            None => {
                if !matches!(text("/status").as_deref(), Some("ok" | "error")) {
                    bad("status", &"ok or error (answered)", &field("/status"));
                }
            }
        }
        if let Some(rcode) = &ex.rcode {
            if text("/response/rcode").as_deref() != Some(rcode.as_str()) {
                bad("response.rcode", rcode, &field("/response/rcode"));
            }
        }
        if let Some(answers) = ex.answers {
            if num("/response/answers") != Some(answers) {
                bad("response.answers", &answers, &field("/response/answers"));
            }
        }
        if let Some(tc) = ex.tc {
            if rec.pointer("/response/tc").and_then(Value::as_bool) != Some(tc) {
                bad("response.tc", &tc, &field("/response/tc"));
            }
        }
        // The capture sees the exchange from inside the client's own measure of it.
        let bound = match (ex.query_time_ms, ex.elapsed_ns) {
            (Some(ms), _) => Some((ms + 1) * 1_000_000),
            (None, Some(ns)) => Some(ns + CLOCK_SLACK_NS),
            (None, None) => None,
        };
        match num("/latency_ns") {
            Some(l) if bound.is_none_or(|b| l <= b) => {}
            _ => bad(
                "latency_ns",
                &format!("an integer <= {bound:?}"),
                &field("/latency_ns"),
            ),
        }
    }
    for counter in ["parse_errors", "unmatched_responses", "lost_in_gap"] {
        if !stderr.contains(&format!(" {counter}=0")) {
            problems.push(format!("stderr does not report {counter}=0"));
        }
    }
    problems
}

/// Times of the first and last packet of a classic pcap file (µs or ns resolution), in ns.
fn pcap_span_ns(path: &Path) -> (u64, u64) {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(b.len() >= 24, "{}: not a pcap file", path.display());
    let (le, nano) = match &b[..4] {
        [0xd4, 0xc3, 0xb2, 0xa1] => (true, false),
        [0x4d, 0x3c, 0xb2, 0xa1] => (true, true),
        [0xa1, 0xb2, 0xc3, 0xd4] => (false, false),
        [0xa1, 0xb2, 0x3c, 0x4d] => (false, true),
        m => panic!(
            "{}: not a classic pcap file (magic {m:02x?})",
            path.display()
        ),
    };
    let u32_at = |o: usize| {
        let w = [b[o], b[o + 1], b[o + 2], b[o + 3]];
        u64::from(if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        })
    };
    let (mut first, mut last, mut off) = (u64::MAX, 0, 24);
    while off + 16 <= b.len() {
        let ts = u32_at(off) * 1_000_000_000 + u32_at(off + 4) * if nano { 1 } else { 1_000 };
        first = first.min(ts);
        last = last.max(ts);
        off += 16 + u32_at(off + 8) as usize;
    }
    (first, last)
}
