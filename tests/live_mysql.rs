//! Live MySQL tests: the agent, on this kernel, observes a throwaway MariaDB server (Debian
//! mariadbd, its own data directory, 127.0.0.1 only, TLS off) while real clients drive it:
//! Perl DBI with DBD::MariaDB (fixtures/mysql/dbi_client.pl: binary prepared statements and
//! text queries) and the mariadb command-line client (USE: COM_INIT_DB). Root only (CI is
//! root); WIRELENS_SKIP_ROOT_TESTS=1 skips them.
//!
//! What the clients sent and got comes from their own reports, turned into exchanges by
//! fixtures/mysql/manifest.py (the same rules as the replay fixtures): the records must match
//! them exchange by exchange, and the server's own counters (SHOW GLOBAL STATUS, read before
//! the agent starts and after it stops, on connections it does not see) must agree.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;

/// A MariaDB server in a temp dir on 127.0.0.1:`port`, killed and removed on drop.
struct Mariadb {
    proc: Proc,
    port: u16,
    dir: tempfile::TempDir,
}

impl Mariadb {
    fn start() -> Mariadb {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let out = Command::new("mariadb-install-db")
            .args(["--no-defaults", "--user=root", "--skip-test-db"])
            .arg(format!("--datadir={}", data.display()))
            .arg("--auth-root-authentication-method=normal")
            .output()
            .expect("running mariadb-install-db");
        assert!(
            out.status.success(),
            "mariadb-install-db: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let p = |name: &str| dir.path().join(name).display().to_string();
        let child = Command::new(which("mariadbd").unwrap_or_else(|| "/usr/sbin/mariadbd".into()))
            .args(["--no-defaults", "--user=root", "--bind-address=127.0.0.1"])
            .args([
                "--skip-ssl",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=16M",
            ])
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", p("sock")))
            .arg(format!("--pid-file={}", p("mariadbd.pid")))
            .arg(format!("--log-error={}", p("error.log")))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting mariadbd");
        let proc = Proc {
            child,
            name: "mariadbd".into(),
        };
        wait_for_port(port);
        Mariadb { proc, port, dir }
    }

    /// The mariadb client, TLS off, `args` then SQL on stdin; returns (stdout, stderr).
    fn cli(&self, args: &[&str], sql: &str) -> (String, String) {
        Mariadb::cli_at(self.port, args, sql)
    }

    /// [`Mariadb::cli`] against the server on `port` (from another thread).
    fn cli_at(port: u16, args: &[&str], sql: &str) -> (String, String) {
        use std::io::Write;
        let mut child = Command::new("mariadb")
            .args([
                "--no-defaults",
                "-h",
                "127.0.0.1",
                "--protocol=TCP",
                "--skip-ssl",
            ])
            .args(["-u", "root", "--batch", "-P", &port.to_string()])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running mariadb");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(sql.as_bytes())
            .expect("writing SQL");
        let out = child.wait_with_output().expect("mariadb");
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `SHOW GLOBAL STATUS LIKE 'Com\_%'`, in one statement (itself counted in Com_show_status).
    fn counters(&self) -> BTreeMap<String, u64> {
        let (out, err) = self.cli(&["-N"], "SHOW GLOBAL STATUS LIKE 'Com\\_%'");
        assert!(err.is_empty(), "reading counters: {err}");
        out.lines()
            .filter_map(|l| {
                let (k, v) = l.split_once('\t')?;
                Some((k.to_string(), v.trim().parse().ok()?))
            })
            .collect()
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/mysql")
}

/// Runs fixtures/mysql/dbi_client.pl WORKLOAD and returns the exchanges it made.
fn dbi(db: &Mariadb, workload: &str, database: &str) -> Vec<Value> {
    let log = db.dir.path().join(format!("{workload}.log"));
    let out = Command::new("perl")
        .arg(fixtures().join("dbi_client.pl"))
        .args([workload, &db.port.to_string(), database])
        .output()
        .expect("running dbi_client.pl");
    assert!(
        out.status.success(),
        "dbi_client.pl {workload}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&log, &out.stdout).expect("client log");
    manifest(&["dbi", &log.display().to_string()])
}

/// Runs a script with the mariadb client (-vvv --force) and returns the exchanges it made.
fn cli_script(db: &Mariadb, name: &str, sql: &str) -> Vec<Value> {
    let (out, err) = db.cli(&["-vvv", "--force"], sql);
    let dir = db.dir.path();
    let (script, o, e) = (
        dir.join(format!("{name}.sql")),
        dir.join(format!("{name}.out")),
        dir.join(format!("{name}.err")),
    );
    std::fs::write(&script, sql).expect("script");
    std::fs::write(&o, out).expect("stdout");
    std::fs::write(&e, err).expect("stderr");
    let arg = |p: &PathBuf| p.display().to_string();
    manifest(&["cli", &arg(&script), &arg(&o), &arg(&e)])
}

fn manifest(args: &[&str]) -> Vec<Value> {
    let out = Command::new("python3")
        .arg(fixtures().join("manifest.py"))
        .args(args)
        .output()
        .expect("running manifest.py");
    assert!(
        out.status.success(),
        "manifest.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("manifest.py output")
}

/// The MySQL records of connections to `port`, per client port, in order.
fn connections(records: &[Value], port: u16) -> BTreeMap<u64, Vec<Value>> {
    let mut by_client: BTreeMap<u64, Vec<Value>> = BTreeMap::new();
    for r in records {
        if r["protocol"] == "mysql" && r["server"]["port"] == port {
            let client = r["client"]["port"].as_u64().unwrap_or(0);
            by_client.entry(client).or_default().push(r.clone());
        }
    }
    by_client
}

/// The connection whose first record is `first_query`.
fn connection<'a>(conns: &'a BTreeMap<u64, Vec<Value>>, first_query: &str) -> &'a [Value] {
    conns
        .values()
        .find(|rs| rs[0]["request"]["query"] == first_query)
        .unwrap_or_else(|| panic!("no connection starts with {first_query:?}: {conns:#?}"))
}

/// Every disagreement between the records of one connection and what its client did.
fn compare(records: &[Value], want: &[Value], server_pid: u32) -> Vec<String> {
    let mut problems = Vec::new();
    if records.len() != want.len() {
        problems.push(format!(
            "{} records, the client made {} exchanges",
            records.len(),
            want.len()
        ));
    }
    for (i, (r, w)) in records.iter().zip(want).enumerate() {
        let mut bad = |what: &str, want: &Value, got: &Value| {
            problems.push(format!(
                "record {} ({} {}): {what} is {got}, expected {want}",
                i + 1,
                w["command"],
                w["query"]
            ))
        };
        let request_cut = w["request_cut"] == true;
        let response_cut = w["response_cut"] == true;
        if r["request"]["command"] != w["command"] {
            bad("command", &w["command"], &r["request"]["command"]);
        }
        let q = &r["request"]["query"];
        if request_cut {
            let (got, full) = (q.as_str().unwrap_or(""), w["query"].as_str().unwrap_or(""));
            if got.is_empty() || got.len() >= full.len() || !full.starts_with(got) {
                bad("query", &Value::from("a strict prefix"), q);
            }
        } else if *q != w["query"] {
            bad("query", &w["query"], q);
        }
        if !w["schema"].is_null() && r["request"]["schema"] != w["schema"] {
            bad("schema", &w["schema"], &r["request"]["schema"]);
        }
        let error = !w["error_code"].is_null();
        if r["response"]["error"] != error {
            bad("error", &Value::from(error), &r["response"]["error"]);
        }
        if error && r["response"]["code"] != w["error_code"] {
            bad("code", &w["error_code"], &r["response"]["code"]);
        }
        let status = if error { "error" } else { "ok" };
        if r["status"] != status {
            bad("status", &Value::from(status), &r["status"]);
        }
        let rows = if response_cut {
            Value::Null
        } else {
            w["rows"].clone()
        };
        let got_rows = r["response"].get("rows").cloned().unwrap_or(Value::Null);
        if got_rows != rows {
            bad("rows", &rows, &got_rows);
        }
        let truncated = request_cut || response_cut;
        if r["truncated"] != truncated {
            bad("truncated", &Value::from(truncated), &r["truncated"]);
        }
        if r["role"] != "server" || r["process"]["pid"] != server_pid {
            bad("role/process", &Value::from(server_pid), &r["process"]);
        }
        // The server answers within the time the client waited for it.
        let latency = r["latency_ns"].as_u64().unwrap_or(0);
        let bound = w["client_elapsed_ns"].as_u64().unwrap_or(u64::MAX);
        if latency == 0 || (!response_cut && latency > bound) {
            bad(
                "latency_ns",
                &Value::from(format!("in (0, {bound}]")),
                &r["latency_ns"],
            );
        }
    }
    problems
}

fn per_command(list: &[&Value], key: &str) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for v in list {
        let c = if key.is_empty() {
            &v["command"]
        } else {
            &v[key]["command"]
        };
        *m.entry(c.as_str().unwrap_or("?").to_string()).or_insert(0) += 1;
    }
    m
}

fn delta(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>, k: &str) -> u64 {
    after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0)
}

const CLI_SCRIPT: &str = "USE live;\nSELECT COUNT(*) FROM live_items;\n\
    SELECT id FROM live_items WHERE id > 17 ORDER BY id;\nSELECT * FROM live_nowhere;\n\
    UPDATE live_items SET name = 'x' WHERE id = 1;\n";

#[test]
fn root_live_mariadb_prepared_and_text_exact() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let db = Mariadb::start();
    let (_, err) = db.cli(&[], "CREATE DATABASE live");
    assert!(err.is_empty(), "{err}");
    let before = db.counters();

    let agent = Agent::start(&["--pid".to_string(), db.proc.pid().to_string()]);
    let dbi_want = dbi(&db, "live", "live");
    let cli_want = cli_script(&db, "live_cli", CLI_SCRIPT);
    let (records, stderr) = agent.stop();

    let after = db.counters();
    let conns = connections(&records, db.port);
    assert_eq!(
        conns.len(),
        2,
        "records of {} connections, the clients opened 2: {conns:#?}",
        conns.len()
    );
    let dbi_got = connection(&conns, "SET NAMES 'utf8mb4'");
    let cli_got = connection(&conns, "SELECT DATABASE()");
    let mut problems = compare(dbi_got, &dbi_want, db.proc.pid());
    problems.extend(compare(cli_got, &cli_want, db.proc.pid()));
    assert!(
        problems.is_empty(),
        "the records disagree with the clients:\n  {}\nagent stderr:\n{stderr}",
        problems.join("\n  ")
    );

    // Per command, what the clients sent.
    let want: Vec<&Value> = dbi_want.iter().chain(&cli_want).collect();
    let got: Vec<&Value> = dbi_got.iter().chain(cli_got).collect();
    let (want_n, got_n) = (per_command(&want, ""), per_command(&got, "request"));
    assert_eq!(got_n, want_n);
    for c in [
        "COM_QUERY",
        "COM_STMT_PREPARE",
        "COM_STMT_EXECUTE",
        "COM_INIT_DB",
        "COM_PING",
    ] {
        assert!(
            want_n.get(c).copied().unwrap_or(0) > 0,
            "the workload sends no {c}"
        );
    }
    let n = |c: &str| got_n.get(c).copied().unwrap_or(0);

    // The server's own counters, less the one read after the agent stopped.
    let d = |k: &str| delta(&before, &after, k);
    assert_eq!(
        d("Com_stmt_prepare"),
        n("COM_STMT_PREPARE"),
        "Com_stmt_prepare"
    );
    assert_eq!(
        d("Com_stmt_execute"),
        n("COM_STMT_EXECUTE"),
        "Com_stmt_execute"
    );
    assert_eq!(d("Com_stmt_reset"), n("COM_STMT_RESET"), "Com_stmt_reset");
    assert_eq!(d("Com_change_db"), n("COM_INIT_DB"), "Com_change_db");
    assert_eq!(d("Com_admin_commands"), n("COM_PING"), "Com_admin_commands");
    // Every statement the server parsed, text or prepared, counts once in its Com_<kind>;
    // one that does not parse (1064) counts nowhere.
    let kinds = [
        "Com_select",
        "Com_insert",
        "Com_update",
        "Com_delete",
        "Com_create_table",
        "Com_set_option",
        "Com_show_status",
    ];
    let statements: u64 = kinds.iter().map(|k| d(k)).sum::<u64>() - 1;
    let unparsed = got.iter().filter(|r| r["response"]["code"] == 1064).count() as u64;
    assert_eq!(
        statements,
        n("COM_QUERY") + n("COM_STMT_EXECUTE") - unparsed,
        "statements counted by the server ({kinds:?})"
    );
    assert_eq!(agent_counter(&stderr, "parse_errors"), Some(0), "{stderr}");
    assert_eq!(
        agent_counter(&stderr, "unmatched_responses"),
        Some(0),
        "{stderr}"
    );
}

#[test]
fn root_live_mariadb_beyond_the_capture_prefix() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let db = Mariadb::start();
    let (_, err) = db.cli(&[], "CREATE DATABASE live");
    assert!(err.is_empty(), "{err}");

    // The default prefix: 4096 bytes of each read and write.
    let agent = Agent::start(&["--pid".to_string(), db.proc.pid().to_string()]);
    let want = dbi(&db, "live_large", "live");
    let (records, stderr) = agent.stop();

    let conns = connections(&records, db.port);
    assert_eq!(conns.len(), 1, "{conns:#?}");
    let got = connection(&conns, "SET NAMES 'utf8mb4'");
    let problems = compare(got, &want, db.proc.pid());
    assert!(
        problems.is_empty(),
        "the records disagree with the client:\n  {}\nagent stderr:\n{stderr}",
        problems.join("\n  ")
    );
    assert!(want.iter().any(|w| w["request_cut"] == true));
    assert!(want.iter().any(|w| w["response_cut"] == true));
    assert_eq!(agent_counter(&stderr, "parse_errors"), Some(0), "{stderr}");
    // The gaps in a response the client waited for alone held nothing but its rest.
    assert_eq!(agent_counter(&stderr, "lost_in_gap"), Some(0), "{stderr}");
    assert_eq!(
        agent_counter(&stderr, "unmatched_responses"),
        Some(0),
        "{stderr}"
    );
}

/// A connection first seen mid-way on the server side: mariadbd reads each packet in two
/// calls, the 4-byte header (`09 00 00 00`) and then the payload (`03 73 65 6c 65 63 74 20
/// 31`, "\x03select 1"); the kernel keeps the lone header and infers MySQL from the command
/// that follows it.
#[test]
fn root_live_mariadb_connection_opened_before_the_agent() {
    if !root_tests_enabled() {
        return;
    }
    use std::io::{BufRead, BufReader, Write};
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let db = Mariadb::start();
    let (_, err) = db.cli(
        &[],
        "CREATE DATABASE mid; CREATE TABLE mid.items (id INT PRIMARY KEY, name VARCHAR(40) \
         NOT NULL, qty INT NOT NULL); INSERT INTO mid.items VALUES (1,'apple',5),(2,'pear',7),\
         (3,'plum',0),(4,'fig',12)",
    );
    assert!(err.is_empty(), "{err}");

    // The client connects (handshake, SET statements) and waits; then the agent starts, so
    // the kernel first sees this connection in the middle of it, at a command.
    let mut client = Command::new("perl")
        .arg(fixtures().join("dbi_client.pl"))
        .args(["mid_connection", &db.port.to_string(), "mid"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("running dbi_client.pl");
    let mut stdout = BufReader::new(client.stdout.take().expect("stdout"));
    let mut log = String::new();
    loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).expect("client output") > 0,
            "client exited: {log}"
        );
        log.push_str(&line);
        if line.contains("\"ready\"") {
            break;
        }
    }
    let agent = Agent::start(&["--pid".to_string(), db.proc.pid().to_string()]);
    client
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"go\n")
        .expect("go");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).expect("client output");
    assert!(
        client.wait().expect("client").success(),
        "dbi_client.pl failed"
    );
    let (records, stderr) = agent.stop();
    log.push_str(&rest);
    let path = db.dir.path().join("mid.log");
    std::fs::write(&path, log).expect("log");
    let want = manifest(&["dbi", &path.display().to_string()]);

    let conns = connections(&records, db.port);
    assert_eq!(conns.len(), 1, "{conns:#?}\n{stderr}");
    let got: Vec<Value> = conns.into_values().next().unwrap_or_default();
    let problems = compare(&got, &want, db.proc.pid());
    assert!(
        problems.is_empty(),
        "the records disagree with the client:\n  {}\nagent stderr:\n{stderr}",
        problems.join("\n  ")
    );
    assert_eq!(agent_counter(&stderr, "parse_errors"), Some(0), "{stderr}");
}

/// The tiny-ring drill (common::drill) for MariaDB, the burst from the mariadb client. (With
/// the kernel's loss reports not handed to the parser, 1 of 295 records was mispaired: the
/// packets' sequence ids resynchronise most of it.)
#[test]
fn root_live_mariadb_pairing_survives_ring_buffer_losses() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let db = Mariadb::start();
    let agent = Agent::start(&drill::tiny_ring_args(db.proc.pid()));
    let sql = drill::burst_sql();
    agent.proc.signal(libc::SIGSTOP);
    let client = {
        let port = db.port;
        std::thread::spawn(move || Mariadb::cli_at(port, &["-N"], &sql))
    };
    std::thread::sleep(std::time::Duration::from_millis(60));
    agent.proc.signal(libc::SIGCONT);
    let (out, err) = client.join().expect("client thread");
    assert!(err.is_empty(), "{err}");
    assert_eq!(
        out.lines().count(),
        drill::burst_rows(),
        "rows the client read"
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (records, stderr) = agent.stop();
    assert!(
        agent_counter(&stderr, "lost_ringbuf").unwrap_or(0) > 0,
        "a one-page ring lost nothing: {stderr}"
    );
    let burst: Vec<&Value> = records
        .iter()
        .filter(|r| r["protocol"] == "mysql" && r["response"]["rows"].is_u64())
        .filter(|r| drill::query(r).starts_with("SELECT"))
        .collect();
    drill::assert_none_mispaired("MariaDB", &burst, "");
}
