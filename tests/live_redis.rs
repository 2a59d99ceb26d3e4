//! Live Redis tests: the agent, on this kernel, observes a real redis-server (selected with
//! `--pid`) driven by redis-benchmark, redis-cli and a raw socket, and must report exactly
//! what the clients sent and what the server counted (INFO commandstats, read on
//! connections of their own before the agent starts and after it stops, so those reads are
//! not captured). Root only (CI is root); WIRELENS_SKIP_ROOT_TESTS=1 skips them.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

impl Redis {
    /// redis-cli with `args` (one connection); its stdout.
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(which("redis-cli").expect("redis-cli installed"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    }

    /// INFO commandstats: `calls + rejected_calls` per command, subcommands (`config|get`)
    /// under their first word, upper case.
    fn commandstats(&self) -> BTreeMap<String, u64> {
        let mut stats = BTreeMap::new();
        for line in self.cli(&["INFO", "commandstats"]).lines() {
            let Some(rest) = line.strip_prefix("cmdstat_") else {
                continue;
            };
            let (name, fields) = rest.split_once(':').expect("cmdstat line");
            let field = |k: &str| -> u64 {
                fields
                    .split(',')
                    .find_map(|f| f.strip_prefix(&format!("{k}=")))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            let name = name.split('|').next().unwrap_or(name).to_ascii_uppercase();
            *stats.entry(name).or_default() += field("calls") + field("rejected_calls");
        }
        stats
    }

    fn benchmark(&self, args: &[&str]) {
        let out = Command::new(which("redis-benchmark").expect("redis-benchmark installed"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
            .args(args)
            .output()
            .expect("redis-benchmark");
        assert!(out.status.success(), "redis-benchmark {args:?}: {out:?}");
    }
}

/// A raw RESP2 connection: writes commands (pipelined when several) and reads replies.
struct Conn {
    r: BufReader<TcpStream>,
}

impl Conn {
    fn open(port: u16) -> Conn {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        Conn {
            r: BufReader::new(s),
        }
    }

    fn port(&self) -> u16 {
        self.r.get_ref().local_addr().expect("local addr").port()
    }

    /// Writes all `commands` in one write.
    fn send(&mut self, commands: &[&[&str]]) {
        let mut buf = Vec::new();
        for c in commands {
            buf.extend(format!("*{}\r\n", c.len()).into_bytes());
            for a in *c {
                buf.extend(format!("${}\r\n{a}\r\n", a.len()).into_bytes());
            }
        }
        self.r.get_mut().write_all(&buf).expect("write");
    }

    /// One reply, as text: `+OK`, `-ERR ...`, `:1`, `$v`, `*[...]`.
    fn reply(&mut self) -> String {
        let mut line = String::new();
        self.r.read_line(&mut line).expect("reply line");
        let line = line.trim_end().to_string();
        let (kind, rest) = line.split_at(1);
        match kind {
            "$" if rest != "-1" => {
                let n: usize = rest.parse().expect("bulk length");
                let mut v = vec![0; n + 2];
                self.r.read_exact(&mut v).expect("bulk");
                format!("${}", String::from_utf8_lossy(&v[..n]))
            }
            "*" if rest != "-1" => {
                let n: usize = rest.parse().expect("array length");
                let items: Vec<String> = (0..n).map(|_| self.reply()).collect();
                format!("*[{}]", items.join(","))
            }
            _ => line,
        }
    }
}

fn redis_records(records: &[Value], port: u16) -> Vec<&Value> {
    records
        .iter()
        .filter(|r| r["protocol"] == "redis" && r["server"]["port"] == port)
        .collect()
}

fn per_command(records: &[&Value]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for r in records {
        let c = r["request"]["command"].as_str().unwrap_or("?").to_string();
        *out.entry(c).or_default() += 1;
    }
    out
}

/// Server counters gained over the test; the first INFO read counts itself in the second.
fn delta(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    let mut d: BTreeMap<String, u64> = after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect();
    if let Some(info) = d.get_mut("INFO") {
        *info -= 1;
    }
    d.retain(|_, v| *v > 0);
    d
}

fn of_port<'a>(records: &[&'a Value], port: u16) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| r["client"]["port"] == port)
        .copied()
        .collect()
}

fn command_of(r: &Value) -> &str {
    r["request"]["command"].as_str().unwrap_or("?")
}

#[test]
fn root_live_redis_benchmark_cli_and_pipeline_exact() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let redis = Redis::start();
    let before = redis.commandstats();
    let agent = Agent::start(&["--pid".to_string(), redis.proc.pid().to_string()]);
    let t0 = Instant::now();

    // redis-benchmark, one command at a time, then 16 per write (320 = 20 whole pipelines;
    // each run first sends CONFIG GET save and CONFIG GET appendonly).
    redis.benchmark(&["-c", "1", "-n", "200", "-t", "set,get,incr,lpush"]);
    redis.benchmark(&[
        "-c",
        "1",
        "-n",
        "320",
        "-P",
        "16",
        "-t",
        "set,get,incr,lpush",
    ]);
    // redis-cli, each command on its own connection, two answered by errors.
    assert_eq!(redis.cli(&["SET", "cli:k", "v"]), "OK");
    let wrongtype = redis.cli(&["LPUSH", "cli:k", "x"]);
    let unknown = redis.cli(&["FOO", "bar"]);
    assert!(wrongtype.starts_with("WRONGTYPE"), "{wrongtype}");
    assert!(unknown.starts_with("ERR unknown command"), "{unknown}");
    // Five commands in one write: replies pair in order, the error on the third.
    let mut pipe = Conn::open(redis.port);
    let pipeline: [&[&str]; 5] = [
        &["SET", "p", "1"],
        &["INCR", "p"],
        &["LPUSH", "p", "x"],
        &["GET", "p"],
        &["ECHO", "done"],
    ];
    pipe.send(&pipeline);
    let replies: Vec<String> = (0..pipeline.len()).map(|_| pipe.reply()).collect();
    assert_eq!(replies[..2], ["+OK", ":2"]);
    assert!(replies[2].starts_with("-WRONGTYPE"), "{replies:?}");
    assert_eq!(replies[3..], ["$2", "$done"]);
    let pipe_port = pipe.port();
    drop(pipe);
    let wall = t0.elapsed().as_nanos() as u64;

    let (records, stderr) = agent.stop();
    let after = redis.commandstats();
    let records = redis_records(&records, redis.port);
    let sent: BTreeMap<String, u64> = [
        ("CONFIG", 4),
        ("SET", 200 + 320 + 1 + 1),
        ("GET", 200 + 320 + 1),
        ("INCR", 200 + 320 + 1),
        ("LPUSH", 200 + 320 + 1 + 1),
        ("FOO", 1),
        ("ECHO", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let got = per_command(&records);
    assert_eq!(
        got, sent,
        "records per command vs sent; agent stderr: {stderr}"
    );
    // What the server ran: every command but the one it does not know.
    let ran = delta(&before, &after);
    let mut known = sent.clone();
    known.remove("FOO");
    assert_eq!(ran, known, "INFO commandstats delta");

    for r in &records {
        assert_eq!(r["role"], "server", "{r}");
        assert_eq!(r["process"]["pid"], redis.proc.pid(), "{r}");
        let l = r["latency_ns"].as_u64().expect("every command answered");
        assert!(l > 0 && l < wall, "latency {l} outside (0, {wall}): {r}");
        assert_eq!(r["truncated"], false, "{r}");
    }
    // Errors carry the server's text, exactly as redis-cli printed it.
    let errors: Vec<(&str, &str)> = records
        .iter()
        .filter(|r| r["response"]["error"] == true)
        .map(|r| {
            (
                command_of(r),
                r["response"]["message"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors.contains(&("LPUSH", wrongtype.as_str())),
        "{errors:?}"
    );
    assert!(
        errors.contains(&("FOO", unknown.as_str()))
            || errors.contains(&("FOO", format!("{unknown} ").as_str())),
        "{errors:?}"
    );
    for r in records.iter().filter(|r| r["response"]["error"] == true) {
        assert_eq!(r["status"], "error", "{r}");
    }
    // The pipeline: one read on the server, replies paired in order.
    let p = of_port(&records, pipe_port);
    let cmds: Vec<&str> = p.iter().map(|r| command_of(r)).collect();
    assert_eq!(cmds, ["SET", "INCR", "LPUSH", "GET", "ECHO"]);
    assert!(
        p.iter().all(|r| r["ts_ns"] == p[0]["ts_ns"]),
        "one read: {p:?}"
    );
    assert_eq!(p[2]["response"]["error"], true);
    assert_eq!(
        p.iter().filter(|r| r["response"]["error"] == true).count(),
        1
    );
    let lat: Vec<u64> = p
        .iter()
        .map(|r| r["latency_ns"].as_u64().unwrap_or(0))
        .collect();
    assert!(lat.windows(2).all(|w| w[0] <= w[1]), "in order: {lat:?}");
    // redis-benchmark -P 16: 16 commands from one read, in the order sent.
    let mut by_read: BTreeMap<(u64, u64), usize> = BTreeMap::new();
    for r in &records {
        let key = (
            r["client"]["port"].as_u64().unwrap_or(0),
            r["ts_ns"].as_u64().unwrap_or(0),
        );
        *by_read.entry(key).or_default() += 1;
    }
    let pipelined = by_read.values().filter(|n| **n == 16).count();
    assert!(
        pipelined >= 4 * 20 - 8,
        "{pipelined} reads of 16 commands, expected ~80"
    );
}

#[test]
fn root_live_redis_pubsub_and_client_reply() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let redis = Redis::start();
    let before = redis.commandstats();
    let agent = Agent::start(&["--pid".to_string(), redis.proc.pid().to_string()]);

    // A RESP2 subscriber to two channels, and a publisher.
    let mut sub = Conn::open(redis.port);
    sub.send(&[&["SUBSCRIBE", "news", "sport"]]);
    assert!(sub.reply().contains("subscribe,$news"));
    assert!(sub.reply().contains("subscribe,$sport"));
    let mut publisher = Conn::open(redis.port);
    for (ch, msg) in [("news", "a"), ("sport", "b"), ("news", "c")] {
        publisher.send(&[&["PUBLISH", ch, msg]]);
        assert_eq!(publisher.reply(), ":1");
        assert!(sub.reply().starts_with("*[$message"));
    }
    sub.send(&[&["PING"]]);
    assert_eq!(sub.reply(), "*[$pong,$]");
    sub.send(&[&["UNSUBSCRIBE"]]);
    sub.reply();
    sub.reply();
    // CLIENT REPLY OFF: two commands answered by nothing, then ON, SKIP.
    publisher.send(&[
        &["CLIENT", "REPLY", "OFF"],
        &["SET", "quiet", "1"],
        &["INCR", "quiet"],
        &["CLIENT", "REPLY", "ON"],
    ]);
    assert_eq!(publisher.reply(), "+OK");
    publisher.send(&[
        &["CLIENT", "REPLY", "SKIP"],
        &["INCR", "quiet"],
        &["GET", "quiet"],
    ]);
    assert_eq!(publisher.reply(), "$3");
    let (sub_port, pub_port) = (sub.port(), publisher.port());
    drop(sub);
    drop(publisher);

    let (records, stderr) = agent.stop();
    let after = redis.commandstats();
    let records = redis_records(&records, redis.port);
    let s: Vec<&str> = of_port(&records, sub_port)
        .iter()
        .map(|r| command_of(r))
        .collect();
    assert_eq!(s, ["SUBSCRIBE", "PING", "UNSUBSCRIBE"], "{stderr}");
    let p = of_port(&records, pub_port);
    let summary: Vec<(&str, bool)> = p
        .iter()
        .map(|r| (command_of(r), r["response"].is_null()))
        .collect();
    assert_eq!(
        summary,
        [
            ("PUBLISH", false),
            ("PUBLISH", false),
            ("PUBLISH", false),
            ("CLIENT", true),
            ("SET", true),
            ("INCR", true),
            ("CLIENT", false),
            ("CLIENT", true),
            ("INCR", true),
            ("GET", false),
        ],
        "{stderr}"
    );
    for r in p.iter().filter(|r| r["response"].is_null()) {
        assert_eq!(r["status"], "ok", "answered by nothing on request: {r}");
        assert!(r["latency_ns"].is_null(), "{r}");
    }
    // Published messages are not replies; every command ran once.
    assert_eq!(records.len(), 13);
    assert_eq!(
        per_command(&records),
        delta(&before, &after),
        "INFO commandstats delta"
    );
}

#[test]
fn root_live_redis_cli_reading_stdin_costs_no_unmatched_replies() {
    // redis-cli reading commands from stdin first asks `COMMAND DOCS` (over 100 kB of
    // small nested values): the server writes it in calls longer than the capture, so the
    // reply is cut by gaps where no length is known. The rest of it must not be read as
    // replies nothing asked for, and the commands after it must pair as sent.
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let redis = Redis::start();
    let agent = Agent::start(&["--pid".to_string(), redis.proc.pid().to_string()]);
    let mut cli = Command::new(which("redis-cli").expect("redis-cli installed"))
        .args(["-h", "127.0.0.1", "-p", &redis.port.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("redis-cli");
    cli.stdin
        .take()
        .expect("stdin")
        .write_all(b"MULTI\nSET stdin:x 1\nINCR stdin:x\nEXEC\n")
        .expect("commands to redis-cli");
    let out = cli.wait_with_output().expect("redis-cli ends");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["OK", "QUEUED", "QUEUED", "OK", "2"]
    );
    let (records, stderr) = agent.stop();
    let records = redis_records(&records, redis.port);
    let cmds: Vec<&str> = records.iter().map(|r| command_of(r)).collect();
    assert_eq!(
        cmds,
        ["COMMAND", "MULTI", "SET", "INCR", "EXEC"],
        "{stderr}"
    );
    assert_eq!(records[0]["truncated"], true, "{}", records[0]);
    assert!(records[1..]
        .iter()
        .all(|r| r["truncated"] == false && r["status"] == "ok"));
    assert_eq!(
        agent_counter(&stderr, "unmatched_responses"),
        Some(0),
        "{stderr}"
    );
    // The gaps held only the rest of that one reply: no message was lost in them.
    assert_eq!(agent_counter(&stderr, "lost_in_gap"), Some(0), "{stderr}");
    assert_eq!(agent_counter(&stderr, "parse_errors"), Some(0), "{stderr}");
}
