//! Live PostgreSQL tests: the agent, on this kernel, observes a throwaway PostgreSQL 15
//! cluster driven by known workloads, and its records must equal what the clients sent and
//! got and what the server counted (pg_stat_statements). Root only (CI is root);
//! WIRELENS_SKIP_ROOT_TESTS=1 skips them.
//!
//! PostgreSQL forks a backend per connection, so `--pid` must name the backend: the client
//! (fixtures/pgsql/pgclient.py --pause) connects first and reports its backend's pid (the
//! BackendKeyData pid), the agent starts with that pid, then the workload runs. pgbench opens
//! its connections after the agent started: there the agent runs without `--pid` and the
//! records are those of processes named `postgres` in the server role on the cluster's port.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};

use common::*;
use serde_json::Value;

const RESET: &str = "SELECT pg_stat_statements_reset()";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A throwaway cluster on 127.0.0.1: trust auth, pg_stat_statements, database `fx` with
/// table `kv` (50 rows) and pgbench's tables (scale 1). Stopped (immediate shutdown) on drop.
struct Pg(pg::Postgres);

impl std::ops::Deref for Pg {
    type Target = pg::Postgres;
    fn deref(&self) -> &pg::Postgres {
        &self.0
    }
}

impl Pg {
    fn start() -> Pg {
        let pg = Pg(pg::Postgres::start(
            &["shared_preload_libraries=pg_stat_statements"],
            50,
        ));
        pg.sql("fx", "CREATE EXTENSION pg_stat_statements");
        pg
    }

    fn pgbench_init(&self) {
        let out = Command::new(format!("{}/pgbench", pg::PG_BIN))
            .args(["-i", "-s", "1", "-q", "-h", "127.0.0.1", "-U", "postgres"])
            .args(["-p", &self.port.to_string(), "fx"])
            .output()
            .expect("pgbench -i");
        assert!(out.status.success(), "pgbench -i: {out:?}");
    }

    fn pgss_reset(&self) {
        self.sql("fx", RESET);
    }

    /// pg_stat_statements of `fx` since the reset (the reset itself left out, checked to be
    /// there once): (query, calls, rows).
    fn pgss(&self) -> Vec<(String, u64, u64)> {
        let text = self.sql(
            "fx",
            "SELECT coalesce(json_agg(json_build_object('q', query, 'c', calls, 'r', rows)), \
             '[]') FROM pg_stat_statements WHERE dbid = \
             (SELECT oid FROM pg_database WHERE datname = current_database())",
        );
        let rows: Vec<Value> = serde_json::from_str(text.trim()).expect("pgss json");
        let mut out = Vec::new();
        let mut resets = 0;
        for r in rows {
            let q = r["q"].as_str().unwrap_or("").to_string();
            let (c, n) = (r["c"].as_u64().unwrap_or(0), r["r"].as_u64().unwrap_or(0));
            if q == RESET {
                resets += c;
            } else {
                out.push((q, c, n));
            }
        }
        assert_eq!(
            resets, 1,
            "pg_stat_statements_reset() ran once since the reset"
        );
        out
    }
}

/// pgclient.py started with --pause: connected, waiting to run its workload.
struct PausedClient {
    child: Child,
    stdin: ChildStdin,
    backend_pid: u32,
}

impl PausedClient {
    fn start(pg: &Pg, workload: &str, extra: &[&str]) -> PausedClient {
        let script = root().join("fixtures/pgsql/pgclient.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .args(["--host", "127.0.0.1", "--port", &pg.port.to_string()])
            .args(["--user", "postgres", "--db", "fx", "--pause"])
            .args(extra)
            .arg(workload)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("pgclient.py");
        let stdin = child.stdin.take().expect("stdin");
        let mut err = BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        err.read_line(&mut line).expect("pgclient stderr");
        let backend_pid = line
            .strip_prefix("ready ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("pgclient.py did not start: {line:?}"));
        // Keep draining stderr so the client never blocks on it.
        std::thread::spawn(move || {
            let mut rest = String::new();
            while err.read_line(&mut rest).map(|n| n > 0).unwrap_or(false) {}
        });
        PausedClient {
            child,
            stdin,
            backend_pid,
        }
    }

    /// Runs the workload; returns what the client reported (pgclient.py's JSON).
    fn run(mut self) -> Value {
        self.stdin.write_all(b"go\n").expect("go");
        self.stdin.flush().ok();
        let out = self.child.wait_with_output().expect("pgclient.py");
        assert!(out.status.success(), "pgclient.py failed: {out:?}");
        serde_json::from_slice(&out.stdout).expect("pgclient.py JSON")
    }
}

fn pid_args(pids: &[u32]) -> Vec<String> {
    pids.iter()
        .flat_map(|p| ["--pid".to_string(), p.to_string()])
        .collect()
}

/// The server-side pgsql records of the cluster (its port), in order.
fn server_records(records: &[Value], port: u16) -> Vec<&Value> {
    records
        .iter()
        .filter(|r| {
            r["protocol"] == "pgsql"
                && r["role"] == "server"
                && r["server"]["port"].as_u64() == Some(u64::from(port))
        })
        .collect()
}

fn text<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn command(q: &str) -> String {
    q.trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("")
        .to_ascii_uppercase()
}

/// Records must be the client's exchanges, in order: statement (or, where the capture cut
/// it, a prefix of it with `truncated`), kind, error and SQLSTATE, message, rows, and a
/// latency within the client's own measure. `optional`: exchanges that may be missing (their
/// response's end was not captured).
/// Every exchange the client made has its record, in order, with its kind, status, error,
/// rows and a latency within the client's. `may_be_cut`: exchanges whose result may be
/// reported cut short instead (its end lost in the capture's gaps: `truncated`, rows unknown).
fn assert_exchanges(records: &[&Value], exchanges: &[Value], may_be_cut: &dyn Fn(&Value) -> bool) {
    let mut k = 0;
    for (i, e) in exchanges.iter().enumerate() {
        let q = e["query"].as_str().unwrap_or("");
        let Some(r) = records.get(k) else {
            panic!("exchange {i} ({q:?}) has no record");
        };
        let rq = text(r, &["request", "query"]);
        let truncated = r["truncated"] == true;
        let same = rq == q || (truncated && !rq.is_empty() && q.starts_with(rq));
        assert!(same, "record {k}: query {rq:?}, exchange {i} sent {q:?}");
        assert_eq!(r["request"]["kind"], e["kind"], "record {k} ({q:?}): kind");
        let code = e["error"].as_str();
        assert_eq!(
            r["response"]["error"].as_bool(),
            Some(code.is_some()),
            "record {k} ({q:?}): error"
        );
        assert_eq!(
            r["response"]["code"].as_str(),
            code,
            "record {k} ({q:?}): SQLSTATE"
        );
        assert_eq!(
            r["status"],
            if code.is_some() { "error" } else { "ok" },
            "record {k} ({q:?}): status"
        );
        if let Some(m) = e["message"].as_str() {
            assert_eq!(text(r, &["response", "message"]), m, "record {k}: message");
        }
        let cut = truncated && r["response"]["rows"].is_null() && may_be_cut(e);
        if !cut {
            assert_eq!(
                r["response"]["rows"].as_u64(),
                e["rows"].as_u64(),
                "record {k} ({q:?}): rows"
            );
        }
        let l = r["latency_ns"].as_u64().expect("latency");
        let c = e["client_elapsed_ns"].as_u64().expect("client time");
        assert!(
            l > 0 && l <= c,
            "record {k} ({q:?}): latency {l} ns outside (0, {c}] (the client's)"
        );
        k += 1;
    }
    assert_eq!(
        k,
        records.len(),
        "records beyond the exchanges: {:?}",
        &records[k..]
    );
}

/// Per command, the successful exchanges that completed with a tag must be
/// pg_stat_statements' calls, and their rows its rows.
fn assert_pgss(exchanges: &[Value], pgss: &[(String, u64, u64)]) {
    let mut got: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for e in exchanges {
        if e["error"].is_null() && !e["tag"].is_null() {
            let q = e["query"].as_str().filter(|q| !q.is_empty());
            let cmd = command(q.unwrap_or(e["tag"].as_str().unwrap_or("")));
            let g = got.entry(cmd).or_default();
            g.0 += 1;
            g.1 += e["rows"].as_u64().unwrap_or(0);
        }
    }
    let mut want: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (q, c, n) in pgss {
        let w = want.entry(command(q)).or_default();
        w.0 += c;
        w.1 += n;
    }
    assert_eq!(
        got, want,
        "per command (calls, rows): client vs pg_stat_statements"
    );
}

fn assert_backend(records: &[&Value], pid: u32) {
    for r in records {
        assert_eq!(r["process"]["pid"].as_u64(), Some(u64::from(pid)), "{r}");
        assert_eq!(r["process"]["comm"], "postgres", "{r}");
        assert_eq!(r["role"], "server", "{r}");
    }
}

#[test]
fn root_pgsql_one_backend_simple_extended_and_errors_exact() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let pg = Pg::start();
    pg.pgss_reset();
    let client = PausedClient::start(&pg, "queries", &["--repeat", "10"]);
    let pid = client.backend_pid;
    let agent = Agent::start(&pid_args(&[pid]));
    let doc = client.run();
    let (records, stderr) = agent.stop();
    let pgss = pg.pgss();
    let recs = server_records(&records, pg.port);
    assert_eq!(
        recs.len(),
        records.len(),
        "only the backend is observed: {stderr}"
    );
    assert_backend(&recs, pid);
    let exchanges = doc["exchanges"].as_array().expect("exchanges");
    assert_eq!(exchanges.len(), 10 * 4 + 3);
    assert_exchanges(&recs, exchanges, &|_| false);
    let codes: Vec<&str> = recs
        .iter()
        .filter_map(|r| r["response"]["code"].as_str())
        .collect();
    assert_eq!(codes, ["23505", "42P01", "42601"]);
    assert_pgss(exchanges, &pgss);
}

#[test]
fn root_pgsql_pipeline_pairs_in_order() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let pg = Pg::start();
    pg.pgss_reset();
    let client = PausedClient::start(&pg, "pipeline", &[]);
    let pid = client.backend_pid;
    let agent = Agent::start(&pid_args(&[pid]));
    let doc = client.run();
    let (records, _) = agent.stop();
    let pgss = pg.pgss();
    let recs = server_records(&records, pg.port);
    assert_backend(&recs, pid);
    let exchanges = doc["exchanges"].as_array().expect("exchanges");
    // Three Syncs before any response; the Execute after the error is skipped by the server.
    assert_eq!(exchanges.len(), 9);
    assert_eq!(doc["skipped"].as_array().map(Vec::len), Some(1));
    assert_exchanges(&recs, exchanges, &|_| false);
    assert_pgss(exchanges, &pgss);
}

#[test]
fn root_pgsql_misc_and_cancel() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let pg = Pg::start();
    for workload in ["misc", "cancel"] {
        pg.pgss_reset();
        let client = PausedClient::start(&pg, workload, &[]);
        let pid = client.backend_pid;
        let agent = Agent::start(&pid_args(&[pid]));
        let doc = client.run();
        let (records, _) = agent.stop();
        let pgss = pg.pgss();
        let recs = server_records(&records, pg.port);
        assert_backend(&recs, pid);
        let exchanges = doc["exchanges"].as_array().expect("exchanges");
        assert_exchanges(&recs, exchanges, &|_| false);
        if workload == "misc" {
            assert_pgss(exchanges, &pgss);
        } else {
            assert_eq!(text(recs[0], &["response", "code"]), "57014");
        }
    }
}

#[test]
fn root_pgsql_large_results_keep_pairing() {
    // The kernel copies 4096 bytes of each call: long statements are cut (truncated), the
    // 2000-row result loses boundaries in every 8 KiB write; every other exchange must still
    // pair exactly, the large one with its row count, or cut short when its end was not
    // captured (truncated, rows unknown), and none counted lost.
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let pg = Pg::start();
    let client = PausedClient::start(&pg, "long", &[]);
    let pid = client.backend_pid;
    let agent = Agent::start(&pid_args(&[pid]));
    let doc = client.run();
    let (records, stderr) = agent.stop();
    let recs = server_records(&records, pg.port);
    assert_backend(&recs, pid);
    let exchanges = doc["exchanges"].as_array().expect("exchanges");
    assert_exchanges(&recs, exchanges, &|e| e["rows"].as_u64() == Some(2000));
    let cut = recs.iter().filter(|r| r["truncated"] == true).count();
    let big = recs
        .iter()
        .find(|r| r["truncated"] == true && r["response"]["rows"].is_null());
    eprintln!(
        "{} records of {} exchanges, {cut} truncated; the 2000-row result {}",
        recs.len(),
        exchanges.len(),
        if big.is_some() {
            "cut short (end not captured)"
        } else {
            "with its row count"
        }
    );
    // One loss: the headers of Bind..Sync that follow the cut Parse of the long extended
    // batch (written at once). The large result's gaps held nothing but its own rest.
    assert_eq!(agent_counter(&stderr, "lost_in_gap"), Some(1), "{stderr}");
    assert_eq!(
        agent_counter(&stderr, "unmatched_responses"),
        Some(0),
        "{stderr}"
    );
    assert!(
        cut >= 2,
        "the two long statements are cut by the 4096-byte prefix"
    );
}

#[test]
fn root_pgsql_pgbench_every_backend() {
    // pgbench connects after the agent started: no --pid; the server's records are those of
    // the `postgres` processes on the cluster's port.
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let pg = Pg::start();
    pg.pgbench_init();
    const CLIENTS: u64 = 2;
    const TX: u64 = 10;
    for mode in ["simple", "extended", "prepared"] {
        pg.pgss_reset();
        let agent = Agent::start(&[]);
        let out = Command::new(format!("{}/pgbench", pg::PG_BIN))
            .args([
                "-n",
                "-M",
                mode,
                "-c",
                &CLIENTS.to_string(),
                "-t",
                &TX.to_string(),
            ])
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-p",
                &pg.port.to_string(),
                "fx",
            ])
            .output()
            .expect("pgbench");
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "pgbench: {out:?}");
        let n = CLIENTS * TX;
        assert!(
            report.contains(&format!("actually processed: {n}/{n}")),
            "{report}"
        );
        let (records, stderr) = agent.stop();
        let pgss = pg.pgss();
        let recs = server_records(&records, pg.port);
        for r in &recs {
            assert_eq!(r["process"]["comm"], "postgres", "{r}");
            assert_eq!(r["status"], "ok", "{r}");
            let q = text(r, &["request", "query"]);
            let want = if q.starts_with("select ") || mode == "simple" {
                "simple"
            } else {
                "extended"
            };
            assert_eq!(text(r, &["request", "kind"]), want, "{mode}: {r}");
        }
        // What pgbench ran: BEGIN, 3 UPDATE, SELECT, INSERT, END per transaction, plus its
        // setup queries (lower case, counted by pg_stat_statements).
        let setup: u64 = pgss
            .iter()
            .filter(|s| s.0.starts_with("select "))
            .map(|s| s.1)
            .sum();
        let mut want = BTreeMap::new();
        for (cmd, k) in [("BEGIN", n), ("UPDATE", 3 * n), ("SELECT", n + setup)] {
            want.insert(cmd.to_string(), k);
        }
        want.insert("INSERT".to_string(), n);
        want.insert("END".to_string(), n);
        let mut got: BTreeMap<String, u64> = BTreeMap::new();
        let mut rows: BTreeMap<String, u64> = BTreeMap::new();
        for r in &recs {
            let cmd = command(text(r, &["request", "query"]));
            *got.entry(cmd.clone()).or_default() += 1;
            *rows.entry(cmd).or_default() += r["response"]["rows"].as_u64().unwrap_or(0);
        }
        assert_eq!(got, want, "{mode}: records per command ({stderr})");
        eprintln!("{mode}: {} server records, per command {got:?}", recs.len());
        // pg_stat_statements agrees (it counts BEGIN/END of a prepared statement once).
        let mut calls: BTreeMap<String, u64> = BTreeMap::new();
        let mut pg_rows: BTreeMap<String, u64> = BTreeMap::new();
        for (q, c, r) in &pgss {
            *calls.entry(command(q)).or_default() += c;
            *pg_rows.entry(command(q)).or_default() += r;
        }
        for (cmd, k) in &got {
            if mode == "prepared" && (cmd == "BEGIN" || cmd == "END") {
                continue;
            }
            assert_eq!(
                calls.get(cmd),
                Some(k),
                "{mode}: {cmd} vs pg_stat_statements"
            );
        }
        assert_eq!(
            rows, pg_rows,
            "{mode}: rows per command vs pg_stat_statements"
        );
    }
}

/// The tiny-ring drill (common::drill) for PostgreSQL, the burst from psql.
#[test]
fn root_pgsql_pairing_survives_ring_buffer_losses() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let pg = Pg::start();
    // The backend forks from the postmaster after the agent started: it inherits the
    // decision.
    let agent = Agent::start(&drill::tiny_ring_args(pg.postmaster.pid()));
    let sql = drill::burst_sql();
    let mut psql = pg
        .psql("fx")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("psql");
    let stdin = psql.stdin.take().expect("psql stdin");
    let stdout = psql.stdout.take().expect("psql stdout");
    let errout = psql.stderr.take().expect("psql stderr");
    // Killed and reaped on drop if the test fails before psql is done.
    let mut guard = Proc {
        child: psql,
        name: "psql".into(),
    };
    let read_all = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let (printed, errors) = (read_all(Box::new(stdout)), read_all(Box::new(errout)));
    agent.proc.signal(libc::SIGSTOP);
    let writer = std::thread::spawn(move || {
        let mut stdin = stdin;
        stdin.write_all(sql.as_bytes()).expect("writing SQL");
    });
    std::thread::sleep(std::time::Duration::from_millis(60));
    agent.proc.signal(libc::SIGCONT);
    writer.join().expect("writer thread");
    let status = guard.child.wait().expect("psql");
    let (printed, errors) = (
        printed.join().expect("stdout reader"),
        errors.join().expect("stderr reader"),
    );
    assert!(status.success(), "psql: {status} {errors}");
    assert_eq!(
        printed.lines().count(),
        drill::burst_rows(),
        "rows psql printed"
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (records, stderr) = agent.stop();
    assert!(
        agent_counter(&stderr, "lost_ringbuf").unwrap_or(0) > 0,
        "a one-page ring lost nothing: {stderr}"
    );
    let burst: Vec<&Value> = server_records(&records, pg.port)
        .into_iter()
        .filter(|r| r["response"]["rows"].is_u64())
        .filter(|r| text(r, &["request", "query"]).starts_with("SELECT"))
        .collect();
    let note = format!("; lost_in_gap={:?}", agent_counter(&stderr, "lost_in_gap"));
    drill::assert_none_mispaired("PostgreSQL", &burst, &note);
}

#[test]
fn root_pgsql_a_result_longer_than_the_capture_is_reported_at_the_client() {
    // psql reads a 2.5 MB result 16 KiB at a time, the capture keeps 4 KiB of each read:
    // most message boundaries fall in gaps, and its end (CommandComplete, ReadyForQuery)
    // may too. The query is still reported once (with its row count, or cut short: rows
    // unknown), and the gaps, which held nothing but the rest of that one result, count no
    // loss.
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let pg = Pg::start();
    pg.sql(
        "fx",
        "CREATE TABLE wide AS SELECT g AS id, repeat('x', 100) AS v \
         FROM generate_series(1, 20000) g",
    );
    let mut psql = pg
        .psql("fx")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("psql");
    // Connected and idle (its first answer read) before the agent starts.
    let mut stdin = psql.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(psql.stdout.take().expect("stdout"));
    stdin.write_all(b"SELECT 'up';\n").expect("query to psql");
    let mut line = String::new();
    stdout.read_line(&mut line).expect("psql answers");
    assert_eq!(line, "up\n");
    let agent = Agent::start(&pid_args(&[psql.id()]));
    stdin
        .write_all(b"SELECT * FROM wide;\n")
        .expect("query to psql");
    drop(stdin);
    let mut rows_out = 0;
    line.clear();
    while stdout.read_line(&mut line).expect("psql output") > 0 {
        rows_out += 1;
        line.clear();
    }
    assert!(psql.wait().expect("psql ends").success());
    assert_eq!(rows_out, 20000);
    let (records, stderr) = agent.stop();
    let recs: Vec<&Value> = records
        .iter()
        .filter(|r| r["protocol"] == "pgsql" && r["role"] == "client")
        .collect();
    assert_eq!(recs.len(), 1, "{recs:?}\n{stderr}");
    let r = recs[0];
    assert_eq!(text(r, &["request", "query"]), "SELECT * FROM wide;");
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(r["truncated"], true, "{r}");
    let rows = r["response"]["rows"].as_u64();
    assert!(rows.is_none() || rows == Some(20000), "{r}");
    eprintln!("the 20000-row result at psql: rows {rows:?}");
    assert_eq!(agent_counter(&stderr, "lost_in_gap"), Some(0), "{stderr}");
    assert_eq!(
        agent_counter(&stderr, "unmatched_responses"),
        Some(0),
        "{stderr}"
    );
    assert_eq!(agent_counter(&stderr, "parse_errors"), Some(0), "{stderr}");
}
