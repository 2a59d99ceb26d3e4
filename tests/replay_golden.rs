//! Golden replay tests for the recorded HTTP fixtures (fixtures/http/, see its README.md).
//!
//! Each case's pcap goes through `wirelens replay --format jsonl`, and its output must
//! (a) agree with what the clients really sent and got, as the recorder wrote it down in
//!     fixtures/http/cases.json: the exact number of exchanges, and per exchange, in order,
//!     the method, path, status, server, truncation and a latency within the client's own
//!     measure of the exchange (record-schema.md gives the field names);
//! (b) equal the blessed output fixtures/http/<case>.jsonl, byte for byte.
//!
//! `BLESS=1 cargo test --test replay_golden` rewrites the .jsonl files instead of (b), and
//! only for outputs that pass (a); review the diff before committing.
//!
//! Broken input (a pcap cut in the middle of a record, random bytes, an empty file) must
//! make `replay` fail with a message naming the file and an offset, without a panic.

use std::fmt::Write as _;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const FIXTURES: &str = "fixtures/http";
const REPLAY_TIMEOUT: Duration = Duration::from_secs(60);
/// pcap timestamps and curl's timings are both in microseconds: two roundings.
const CLOCK_SLACK_NS: u64 = 2_000;

// ---------------------------------------------------------------------------------------
// The manifest (fixtures/http/cases.json, written by record.sh)

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

#[derive(Deserialize)]
struct Exchange {
    method: String,
    path: String,
    status: u64,
    server: Addr,
    truncated: bool,
    client_elapsed_ns: u64,
    response_body_bytes: Option<u64>,
}

#[derive(Deserialize)]
struct Addr {
    ip: String,
    port: u64,
}

fn manifest() -> Manifest {
    let path = Path::new(ROOT).join(FIXTURES).join("cases.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

fn case(name: &str) -> Case {
    manifest()
        .cases
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("case {name} is not in {FIXTURES}/cases.json"))
}

// ---------------------------------------------------------------------------------------
// One test per case

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
    keep_alive,
    pipelined,
    chunked_post,
    not_found,
    head,
    expect_100_continue,
    truncated_body,
    mid_connection,
    ipv6,
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
    let run = replay(&pcap);
    assert!(
        run.code == Some(0),
        "wirelens replay --format jsonl {pcap} exited with {:?}\nstderr:\n{}",
        run.code,
        run.stderr
    );
    let stdout = run.stdout;
    let span = pcap_span_ns(&std::fs::read(Path::new(ROOT).join(&pcap)).unwrap());

    // (a) what the clients saw
    let problems = check_semantics(&case, &stdout, span);
    assert!(
        problems.is_empty(),
        "{pcap}: the replay disagrees with {FIXTURES}/cases.json:\n  {}\n\noutput:\n{stdout}\nstderr:\n{}",
        problems.join("\n  "),
        run.stderr
    );

    // (b) the blessed output
    let expected_path = Path::new(ROOT).join(FIXTURES).join(&case.expected);
    if std::env::var_os("BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&expected_path, &stdout)
            .unwrap_or_else(|e| panic!("writing {}: {e}", expected_path.display()));
        eprintln!("blessed {}", expected_path.display());
        return;
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|e| {
        panic!(
            "reading {}: {e}\nIf the replay output below is right, bless it:\n  \
             BLESS=1 cargo test --test replay_golden {name}\n----\n{stdout}",
            expected_path.display()
        )
    });
    if expected != stdout {
        panic!(
            "{FIXTURES}/{} differs from the replay output (- expected, + actual):\n{}\n\
             If the change is intended: BLESS=1 cargo test --test replay_golden {name}, \
             and review the diff.",
            case.expected,
            diff(&expected, &stdout)
        );
    }
}

/// Every disagreement between the records and the manifest, as readable lines.
fn check_semantics(case: &Case, stdout: &str, (first_ns, last_ns): (u64, u64)) -> Vec<String> {
    let mut problems = Vec::new();
    let mut records = Vec::new();
    for (i, line) in stdout.lines().enumerate() {
        match serde_json::from_str::<Value>(line) {
            Ok(v) if v.is_object() => records.push(v),
            _ => problems.push(format!(
                "output line {} is not a JSON object: {line}",
                i + 1
            )),
        }
    }
    if records.len() != case.exchanges.len() {
        problems.push(format!(
            "{} records, but the clients made {} exchanges: {}",
            records.len(),
            case.exchanges.len(),
            case.exchanges
                .iter()
                .map(|e| format!("{} {} -> {}", e.method, e.path, e.status))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut prev_ts = 0;
    for (i, (rec, ex)) in records.iter().zip(&case.exchanges).enumerate() {
        let mut bad = |what: &str, want: &dyn std::fmt::Display, got: &Value| {
            problems.push(format!(
                "record {} ({} {}): {what} is {got}, expected {want}",
                i + 1,
                ex.method,
                ex.path
            ))
        };
        let s = |p: &str| rec.pointer(p).and_then(Value::as_str);
        let u = |p: &str| rec.pointer(p).and_then(Value::as_u64);
        let field = |p: &str| rec.pointer(p).cloned().unwrap_or(Value::Null);

        if s("/protocol") != Some("http") {
            bad("protocol", &"\"http\"", &field("/protocol"));
        }
        if s("/request/method") != Some(ex.method.as_str()) {
            bad("request.method", &ex.method, &field("/request/method"));
        }
        if s("/request/path") != Some(ex.path.as_str()) {
            bad("request.path", &ex.path, &field("/request/path"));
        }
        if u("/response/status") != Some(ex.status) {
            bad("response.status", &ex.status, &field("/response/status"));
        }
        if let Some(n) = ex.response_body_bytes {
            if u("/response/body_bytes") != Some(n) {
                bad("response.body_bytes", &n, &field("/response/body_bytes"));
            }
        }
        if rec.get("truncated").and_then(Value::as_bool) != Some(ex.truncated) {
            bad("truncated", &ex.truncated, &field("/truncated"));
        }
        if s("/server/ip") != Some(ex.server.ip.as_str())
            || u("/server/port") != Some(ex.server.port)
        {
            bad(
                "server",
                &format!("{}:{}", ex.server.ip, ex.server.port),
                &field("/server"),
            );
        }
        if s("/client/ip") != Some(ex.server.ip.as_str()) {
            bad(
                "client.ip (loopback, as the server's)",
                &ex.server.ip,
                &field("/client/ip"),
            );
        }
        if !field("/process").is_null() {
            bad("process", &"null (replay)", &field("/process"));
        }
        let status_ok = match (ex.status, s("/role")) {
            (200..=399, _) => s("/status") == Some("ok"),
            (400..=499, Some("server")) => s("/status") == Some("ok"),
            (400..=499, Some("client")) => s("/status") == Some("error"),
            (400..=499, _) => matches!(s("/status"), Some("ok" | "error")),
            _ => s("/status") == Some("error"),
        };
        if !status_ok {
            bad(
                "status",
                &format!("the one for HTTP {} (record-schema.md)", ex.status),
                &field("/status"),
            );
        }
        // Latency: positive, within what the client measured around the same exchange,
        // and inside the capture.
        let latency = u("/latency_ns").unwrap_or(0);
        if latency == 0 || latency > ex.client_elapsed_ns + CLOCK_SLACK_NS {
            bad(
                "latency_ns",
                &format!("in 1..={} ns (client's measure)", ex.client_elapsed_ns),
                &field("/latency_ns"),
            );
        }
        let ts = u("/ts_ns").unwrap_or(0);
        if ts < first_ns.max(prev_ts) || ts > last_ns {
            bad(
                "ts_ns",
                &format!(
                    "in the capture's span [{first_ns}, {last_ns}] and not before the previous record's"
                ),
                &field("/ts_ns"),
            );
        } else if ts.saturating_add(latency) > last_ns {
            bad(
                "ts_ns + latency_ns",
                &format!("at most the capture's last packet time {last_ns}"),
                &Value::from(ts.saturating_add(latency)),
            );
        }
        prev_ts = ts;
    }
    problems
}

// ---------------------------------------------------------------------------------------
// Broken input

#[test]
fn pcap_cut_mid_record_is_an_error_naming_file_and_offset() {
    let original = std::fs::read(Path::new(ROOT).join(FIXTURES).join("keep_alive.pcap")).unwrap();
    let records = pcap_records(&original);
    // The first record with a TCP payload (the first GET), cut in the middle of its data.
    let rec = records
        .iter()
        .find(|r| r.caplen > 100)
        .expect("keep_alive.pcap has a data packet");
    let cut_at = rec.offset + 16 + rec.caplen / 2;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keep_alive-cut.pcap");
    std::fs::write(&path, &original[..cut_at]).unwrap();
    expect_input_error(&path, rec.offset..=cut_at);
}

#[test]
fn random_bytes_are_an_error_naming_file_and_offset() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let known_magics: [[u8; 4]; 5] = [
        [0xd4, 0xc3, 0xb2, 0xa1],
        [0xa1, 0xb2, 0xc3, 0xd4],
        [0x4d, 0x3c, 0xb2, 0xa1],
        [0xa1, 0xb2, 0x3c, 0x4d],
        [0x0a, 0x0d, 0x0d, 0x0a],
    ];
    assert!(!known_magics.contains(&[bytes[0], bytes[1], bytes[2], bytes[3]]));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("random.pcap");
    std::fs::write(&path, &bytes).unwrap();
    expect_input_error(&path, 0..=bytes.len());
}

#[test]
fn empty_file_is_an_error_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.pcap");
    std::fs::write(&path, b"").unwrap();
    expect_input_error(&path, 0..=0);
}

/// `replay FILE` must fail cleanly: a non-zero exit that is not a panic (101), and a message
/// naming the file and a byte offset within `offsets`.
fn expect_input_error(path: &Path, offsets: std::ops::RangeInclusive<usize>) {
    let run = replay(path.to_str().unwrap());
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(
        !run.stderr.contains("panicked"),
        "replay of {name} panicked:\n{}",
        run.stderr
    );
    assert!(
        matches!(run.code, Some(c) if c != 0 && c != 101),
        "replay of {name} exited with {:?}, expected a non-zero exit that is not a panic\nstderr:\n{}",
        run.code,
        run.stderr
    );
    assert!(
        run.stderr.contains(name),
        "the error message does not name the file {name}:\n{}",
        run.stderr
    );
    // The numbers in the message, the file's path taken out (a temp dir may hold digits).
    let message = run.stderr.replace(path.to_str().unwrap(), "FILE");
    let numbers: Vec<usize> = message
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|t| t.parse().ok())
        .collect();
    assert!(
        message.to_ascii_lowercase().contains("offset")
            && numbers.iter().any(|n| offsets.contains(n)),
        "the error message for {name} gives no offset in {offsets:?}:\n{}",
        run.stderr
    );
}

// ---------------------------------------------------------------------------------------
// Running the binary

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// `wirelens replay --format jsonl FILE`, from the crate root, killed after REPLAY_TIMEOUT.
fn replay(file: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wirelens"))
        .args(["replay", "--format", "jsonl", file])
        .current_dir(ROOT)
        .env_remove("WIRELENS_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the wirelens binary");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + REPLAY_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for wirelens") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("wirelens replay {file} still running after {REPLAY_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        code: status.code(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

// ---------------------------------------------------------------------------------------
// Classic pcap record headers (the fixtures are written by tcpdump -w), for the capture's
// time span and for cutting a file inside a record. Not the reader under test.

struct PcapRecord {
    offset: usize,
    ts_ns: u64,
    caplen: usize,
}

fn pcap_records(data: &[u8]) -> Vec<PcapRecord> {
    let magic = &data[..4];
    let (le, nano) = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] => (true, false),
        [0x4d, 0x3c, 0xb2, 0xa1] => (true, true),
        [0xa1, 0xb2, 0xc3, 0xd4] => (false, false),
        [0xa1, 0xb2, 0x3c, 0x4d] => (false, true),
        _ => panic!("fixture is not a classic pcap file"),
    };
    let u32_at = |o: usize| {
        let b: [u8; 4] = data[o..o + 4].try_into().unwrap();
        u64::from(if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    let mut records = Vec::new();
    let mut off = 24;
    while off + 16 <= data.len() {
        let frac = u32_at(off + 4);
        let ts_ns = u32_at(off) * 1_000_000_000 + if nano { frac } else { frac * 1_000 };
        let caplen = u32_at(off + 8) as usize;
        records.push(PcapRecord {
            offset: off,
            ts_ns,
            caplen,
        });
        off += 16 + caplen;
    }
    assert_eq!(off, data.len(), "fixture pcap ends inside a record");
    records
}

/// Time of the first and the last packet of a pcap, ns.
fn pcap_span_ns(data: &[u8]) -> (u64, u64) {
    let records = pcap_records(data);
    (records[0].ts_ns, records[records.len() - 1].ts_ns)
}

// ---------------------------------------------------------------------------------------
// A readable diff of two JSONL texts: lines aligned by longest common subsequence, and
// for a changed line, the fields that changed.

fn diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    // lcs[i][j]: length of the LCS of a[i..] and b[j..]
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = String::new();
    let (mut removed, mut added): (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
    let flush = |out: &mut String, removed: &mut Vec<&str>, added: &mut Vec<&str>| {
        for (k, line) in removed.iter().enumerate() {
            let _ = writeln!(out, "- {line}");
            if let Some(new) = added.get(k) {
                let _ = writeln!(out, "+ {new}");
                for change in json_changes(line, new) {
                    let _ = writeln!(out, "      {change}");
                }
            }
        }
        for line in added.iter().skip(removed.len()) {
            let _ = writeln!(out, "+ {line}");
        }
        removed.clear();
        added.clear();
    };
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            flush(&mut out, &mut removed, &mut added);
            let _ = writeln!(out, "  {}", a[i]);
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            added.push(b[j]);
            j += 1;
        } else {
            removed.push(a[i]);
            i += 1;
        }
    }
    flush(&mut out, &mut removed, &mut added);
    if expected.ends_with('\n') != actual.ends_with('\n') {
        out.push_str("(the two differ in the final newline)\n");
    }
    out
}

/// `path: old -> new` for every leaf that differs between two JSON lines.
fn json_changes(old: &str, new: &str) -> Vec<String> {
    fn walk(path: String, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<String>) {
        match (a, b) {
            (Some(Value::Object(x)), Some(Value::Object(y))) => {
                let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
                keys.sort();
                keys.dedup();
                for k in keys {
                    walk(format!("{path}.{k}"), x.get(k), y.get(k), out);
                }
            }
            (a, b) if a != b => {
                let show = |v: Option<&Value>| v.map_or("(absent)".to_string(), Value::to_string);
                out.push(format!("{path}: {} -> {}", show(a), show(b)));
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let (Ok(a), Ok(b)) = (
        serde_json::from_str::<Value>(old),
        serde_json::from_str(new),
    ) {
        walk(String::new(), Some(&a), Some(&b), &mut out);
    }
    out
}

#[test]
fn diff_shows_changed_fields() {
    let d = diff(
        "{\"a\":1,\"b\":{\"c\":2}}\n{\"same\":true}\n",
        "{\"a\":1,\"b\":{\"c\":3}}\n{\"same\":true}\n{\"new\":1}\n",
    );
    assert!(d.contains(".b.c: 2 -> 3"), "{d}");
    assert!(d.contains("  {\"same\":true}"), "{d}");
    assert!(d.contains("+ {\"new\":1}"), "{d}");
}
