//! Live OTLP export: the agent observes a known workload (HTTP between two processes, Redis,
//! PostgreSQL, DNS against real servers) and sends spans and metrics to the test's own OTLP
//! receiver (tests/otlp, built from the official protobuf definitions), over gRPC and over
//! HTTP/protobuf. Then the collector goes away mid-run and comes back. Root only (CI is
//! root); WIRELENS_SKIP_ROOT_TESTS=1 skips them.
//!
//! The observed processes are copies of python3 named `wlotlp-web` (an HTTP server) and
//! `wlotlp-app` (a client of everything), kept by an `exe` filter with `undecided: drop`, so
//! other engineers' tests running at the same time are not observed by this agent. Each copy
//! is its own observed service: the export must carry exactly these two resources.

mod common;
mod otlp;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use otlp::{attrs, Attrs, Receiver, Wire};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

const WEB_PY: &str = r#"
import http.server, sys
class H(http.server.SimpleHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
"#;

/// Reads commands on stdin, one per line, runs them, answers `done JSON` on stdout.
const APP_PY: &str = r#"
import http.client, json, socket, struct, sys
web, redis, dns, pg, fixtures = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
sys.path.insert(0, fixtures)
import pgclient

def http_get(paths, headers=None):
    c = http.client.HTTPConnection('127.0.0.1', web, timeout=10)
    out = []
    for p in paths:
        c.request('GET', p, headers=headers or {})
        r = c.getresponse(); r.read(); out.append(r.status)
    c.close()
    return out

def redis_cmds(cmds):
    s = socket.create_connection(('127.0.0.1', redis)); f = s.makefile('rb')
    out = []
    for args in cmds:
        b = b'*%d\r\n' % len(args)
        for a in args:
            a = a.encode(); b += b'$%d\r\n%s\r\n' % (len(a), a)
        s.sendall(b)
        line = f.readline()
        if line[:1] == b'$' and int(line[1:]) >= 0:
            f.read(int(line[1:]) + 2)
        out.append(line[:1].decode())
    s.close()
    return out

def dns_query(name, qtype, qid):
    q = struct.pack('!HHHHHH', qid, 0x0100, 1, 0, 0, 0)
    for label in name.split('.'):
        q += bytes([len(label)]) + label.encode()
    q += b'\0' + struct.pack('!HH', {'A': 1, 'AAAA': 28}[qtype], 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)
    s.connect(('127.0.0.1', dns)); s.send(q); r = s.recv(4096); s.close()
    return r[3] & 0x0f

pgconn = None
for line in sys.stdin:
    cmd = line.split()
    if not cmd: continue
    res = {}
    if cmd[0] == 'pgconnect':
        pgconn = pgclient.Conn('127.0.0.1', pg, 'postgres', 'fx')
    elif cmd[0] == 'full':
        res['http'] = http_get(['/hello.txt'] * 5 + ['/nope'] * 2)
        res['http_traced'] = http_get(['/hello.txt?token=secret'], {'traceparent': sys.argv[6]})
        res['redis'] = redis_cmds([['SET', 'k', 'v'], ['GET', 'k'], ['GET', 'missing'], ['INCR', 'k']])
        res['dns'] = [dns_query('host.test', 'A', 1), dns_query('host.test', 'A', 2),
                      dns_query('host.test', 'AAAA', 3), dns_query('nx.test', 'A', 4)]
        pg_out = []
        for q in ["SELECT v FROM kv WHERE k = 7", "SELECT v FROM kv WHERE k = 'eight'",
                  "INSERT INTO kv VALUES (100, 'secret')", "SELECT * FROM missing_table"]:
            for e in pgclient.simple(pgconn, q):
                pg_out.append(e['error'])
        res['pg'] = pg_out
    elif cmd[0] == 'http':
        res['http'] = http_get([cmd[2]] * int(cmd[1]))
    elif cmd[0] == 'quit':
        break
    print('done ' + json.dumps(res), flush=True)
"#;

/// A copy of python3 under `name` (its own executable path and comm), running `script`.
fn python_copy(dir: &Path, name: &str, script: &str, args: &[String]) -> (Proc, PathBuf) {
    python_copy_in(None, dir, name, script, args)
}

/// [`python_copy`], started in network namespace `ns` when one is given.
fn python_copy_in(
    ns: Option<&NetNs>,
    dir: &Path,
    name: &str,
    script: &str,
    args: &[String],
) -> (Proc, PathBuf) {
    let exe = dir.join(name);
    std::fs::copy(which("python3").expect("python3"), &exe).expect("copy python3");
    let py = dir.join(format!("{name}.py"));
    std::fs::write(&py, script).expect("script");
    let mut cmd = Command::new(&exe);
    cmd.arg(&py)
        .args(args)
        .env("PYTHONHOME", "/usr")
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(ns) = ns {
        ns.enter(&mut cmd);
    }
    let child = cmd.spawn().expect("starting a python3 copy");
    (
        Proc {
            child,
            name: name.into(),
        },
        exe,
    )
}

struct App {
    _proc: Proc,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl App {
    fn run(&mut self, cmd: &str) -> serde_json::Value {
        writeln!(self.stdin, "{cmd}").expect("to the app");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("from the app");
        let json = line
            .strip_prefix("done ")
            .unwrap_or_else(|| panic!("app said {line:?} to {cmd}"));
        serde_json::from_str(json).expect("app JSON")
    }
}

/// The servers, the two observed processes and the agent's config directory.
struct World {
    _web: Proc,
    web_port: u16,
    app: App,
    dir: tempfile::TempDir,
    _redis: Option<Redis>,
    _dns: Option<Proc>,
    _pg: Option<pg::Postgres>,
}

impl World {
    fn start(with_backends: bool) -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("hello.txt"), "hello\n").expect("hello.txt");
        std::fs::write(dir.path().join("back.txt"), "back\n").expect("back.txt");
        let web_port = free_port();
        let (web, _) = python_copy(dir.path(), "wlotlp-web", WEB_PY, &[web_port.to_string()]);
        wait_for_port(web_port);
        let (redis_p, redis_port, dns_p, dns_port, pg, pg_port) = if with_backends {
            let r = Redis::start();
            let rport = r.port;
            let dport = free_port();
            let d = dnsmasq(dport);
            let pg = pg::Postgres::start(&[], 50);
            let pport = pg.port;
            (Some(r), rport, Some(d), dport, Some(pg), pport)
        } else {
            (None, 0, None, 0, None, 0)
        };
        let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/pgsql");
        let args = [
            web_port.to_string(),
            redis_port.to_string(),
            dns_port.to_string(),
            pg_port.to_string(),
            fixtures.display().to_string(),
            format!("00-{TRACE_ID}-{PARENT_ID}-01"),
        ];
        let (mut proc, _) = python_copy(dir.path(), "wlotlp-app", APP_PY, &args);
        let stdin = proc.child.stdin.take().expect("stdin");
        let stdout = BufReader::new(proc.child.stdout.take().expect("stdout"));
        let mut app = App {
            _proc: proc,
            stdin,
            stdout,
        };
        if with_backends {
            // Connected (startup done) before the agent starts: only the queries are seen.
            app.run("pgconnect");
            wait_dns(dns_port);
        }
        World {
            _web: web,
            web_port,
            app,
            dir,
            _redis: redis_p,
            _dns: dns_p,
            _pg: pg,
        }
    }

    /// The agent with this world's filters and `otlp` section.
    fn agent(&self, otlp_yaml: &str, metrics_port: u16) -> Agent {
        let cfg = self.dir.path().join("wirelens.yaml");
        std::fs::write(
            &cfg,
            format!(
                "filters:\n  include:\n    exe: [\"/wlotlp-(app|web)$\"]\n  undecided: drop\n\
                 aggregation:\n  period_s: 1\n{otlp_yaml}"
            ),
        )
        .expect("config");
        Agent::start(&[
            "--config".into(),
            cfg.display().to_string(),
            "--metrics-addr".into(),
            format!("127.0.0.1:{metrics_port}"),
        ])
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = writeln!(self.app.stdin, "quit");
    }
}

fn wait_dns(port: u16) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        let out = Command::new("dig")
            .args(["@127.0.0.1", "-p", &port.to_string(), "+tries=1", "+time=1"])
            .args(["host.test", "A", "+short"])
            .output();
        if out.is_ok_and(|o| o.status.success() && !o.stdout.is_empty()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("dnsmasq does not answer on {port}");
}

fn kind(k: i32) -> &'static str {
    match SpanKind::try_from(k) {
        Ok(SpanKind::Server) => "server",
        Ok(SpanKind::Client) => "client",
        _ => "other",
    }
}

/// (service, kind, name) -> count, and per span its attributes.
type Summary = BTreeMap<(String, &'static str, String), usize>;

fn summary(spans: &[(Attrs, opentelemetry_proto::tonic::trace::v1::Span)]) -> Summary {
    let mut out = Summary::new();
    for (res, s) in spans {
        let svc = res.get("service.name").cloned().unwrap_or_default();
        *out.entry((svc, kind(s.kind), s.name.clone())).or_default() += 1;
    }
    out
}

fn key(svc: &str, k: &'static str, name: &str) -> (String, &'static str, String) {
    (svc.to_string(), k, name.to_string())
}

fn point_count(r: &Receiver, metric: &str, service: &str, want: &[(&str, &str)]) -> u64 {
    r.last_points(metric)
        .iter()
        .filter(|(res, p)| {
            res.get("service.name").map(String::as_str) == Some(service) && {
                let a = attrs(&p.attributes);
                want.iter()
                    .all(|(k, v)| a.get(*k).map(String::as_str) == Some(*v))
            }
        })
        .map(|(_, p)| p.count)
        .sum()
}

fn expected_spans() -> Summary {
    let mut e = Summary::new();
    e.insert(key("wlotlp-web", "server", "GET /hello.txt"), 6);
    e.insert(key("wlotlp-web", "server", "GET /nope"), 2);
    e.insert(key("wlotlp-app", "client", "GET /hello.txt"), 6);
    e.insert(key("wlotlp-app", "client", "GET /nope"), 2);
    e.insert(key("wlotlp-app", "client", "SET"), 1);
    e.insert(key("wlotlp-app", "client", "GET"), 2);
    e.insert(key("wlotlp-app", "client", "INCR"), 1);
    e.insert(key("wlotlp-app", "client", "A"), 3);
    e.insert(key("wlotlp-app", "client", "AAAA"), 1);
    e.insert(key("wlotlp-app", "client", "SELECT kv"), 2);
    e.insert(key("wlotlp-app", "client", "INSERT kv"), 1);
    e.insert(key("wlotlp-app", "client", "SELECT missing_table"), 1);
    e
}

fn workload_is_exported(wire: Wire) {
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let mut world = World::start(true);
    let receiver = Receiver::start(wire);
    let otlp_yaml = format!(
        "otlp:\n  endpoint: {}\n  protocol: {}\n  headers: {{x-wirelens-test: live}}\n  \
         resource_attributes: {{deployment.environment: test}}\n",
        receiver.endpoint(),
        wire.protocol()
    );
    let agent = world.agent(&otlp_yaml, free_port());
    let t0 = Instant::now();
    let done = world.app.run("full");
    let wall_ns = t0.elapsed().as_nanos() as u64;
    // What the servers answered: the spans must say the same.
    assert_eq!(
        done["http"],
        serde_json::json!([200, 200, 200, 200, 200, 404, 404])
    );
    assert_eq!(done["http_traced"], serde_json::json!([200]));
    assert_eq!(done["redis"], serde_json::json!(["+", "$", "$", "-"]));
    assert_eq!(done["dns"], serde_json::json!([0, 0, 0, 3]));
    assert_eq!(
        done["pg"],
        serde_json::json!([null, "22P02", null, "42P01"]),
        "SELECT 'eight' into an int column fails too"
    );
    let expected = {
        // 'eight' makes the second SELECT an error: still `SELECT kv`.
        expected_spans()
    };
    let total: usize = expected.values().sum();
    receiver.wait(Duration::from_secs(20), "every span", |r| {
        r.spans().len() >= total
    });
    // Nothing more comes.
    std::thread::sleep(Duration::from_millis(1500));
    let spans = receiver.spans();
    assert_eq!(summary(&spans), expected, "{wire:?}");

    // One resource per observed service, with host.name and the configured attributes.
    let services: BTreeMap<String, Attrs> = spans
        .iter()
        .map(|(r, _)| (r["service.name"].clone(), r.clone()))
        .collect();
    assert_eq!(
        services.keys().collect::<Vec<_>>(),
        ["wlotlp-app", "wlotlp-web"]
    );
    for res in services.values() {
        assert!(!res["host.name"].is_empty(), "{res:?}");
        assert_eq!(res["deployment.environment"], "test");
    }
    for h in receiver.store.headers.lock().unwrap().iter() {
        assert_eq!(
            h.get("x-wirelens-test").map(String::as_str),
            Some("live"),
            "{h:?}"
        );
    }

    for (res, s) in &spans {
        let a = attrs(&s.attributes);
        let svc = res["service.name"].as_str();
        assert!(
            s.end_time_unix_nano >= s.start_time_unix_nano
                && s.end_time_unix_nano - s.start_time_unix_nano < wall_ns,
            "{} lasted longer than the workload",
            s.name
        );
        assert_eq!(s.trace_id.len(), 16);
        assert_eq!(s.span_id.len(), 8);
        let status = s.status.as_ref().map_or(0, |st| st.code);
        let error = a.get("error.type").cloned();
        if s.name.starts_with("GET /") {
            assert_eq!(a["http.request.method"], "GET");
            assert_eq!(a["url.path"], s.name.trim_start_matches("GET "));
            let route_key = if svc == "wlotlp-app" {
                "url.template"
            } else {
                "http.route"
            };
            assert_eq!(a[route_key], s.name.trim_start_matches("GET "));
            assert!(!a.values().any(|v| v.contains("secret")), "{a:?}");
            let code = &a["http.response.status_code"];
            assert_eq!(code, if s.name == "GET /nope" { "404" } else { "200" });
            assert_eq!(a["server.port"], world.web_port.to_string());
            // 404 is an error for the client only.
            if svc == "wlotlp-app" && code == "404" {
                assert_eq!(status, StatusCode::Error as i32);
                assert_eq!(error.as_deref(), Some("404"));
            } else {
                assert_eq!(status, StatusCode::Unset as i32, "{a:?}");
                assert_eq!(error, None);
            }
        }
        match a.get("db.system.name").map(String::as_str) {
            Some("redis") => {
                assert_eq!(a["db.operation.name"], s.name);
                assert_eq!(error.as_deref(), (s.name == "INCR").then_some("ERR"));
            }
            Some("postgresql") => {
                let q = &a["db.query.text"];
                assert!(!q.contains("secret") && !q.contains("eight"), "{q}");
                assert!(
                    [
                        "SELECT v FROM kv WHERE k = ?",
                        "INSERT INTO kv VALUES (?, ?)",
                        "SELECT * FROM missing_table"
                    ]
                    .contains(&q.as_str()),
                    "{q}"
                );
            }
            _ => {}
        }
        if s.name == "A" || s.name == "AAAA" {
            let nx = a["dns.question.name"] == "nx.test";
            assert_eq!(error.as_deref(), nx.then_some("NXDOMAIN"), "{a:?}");
        }
    }
    // The request with a traceparent: its client and server spans are in that trace,
    // children of the header's span.
    let traced: Vec<_> = spans
        .iter()
        .filter(|(_, s)| hex(&s.trace_id) == TRACE_ID)
        .collect();
    assert_eq!(
        traced.len(),
        2,
        "client and server span of the traced request"
    );
    for (_, s) in &traced {
        assert_eq!(hex(&s.parent_span_id), PARENT_ID);
        assert_eq!(s.name, "GET /hello.txt");
    }
    let others = spans.iter().filter(|(_, s)| hex(&s.trace_id) != TRACE_ID);
    assert!(others.clone().all(|(_, s)| s.parent_span_id.is_empty()));

    // Metrics: the aggregated histograms, per service, with the conventions' attributes.
    let web = "wlotlp-web";
    let app = "wlotlp-app";
    let http_ok = [("http.request.method", "GET"), ("http.route", "/hello.txt")];
    let m_ok = |r: &Receiver| {
        point_count(r, "http.server.request.duration", web, &http_ok) == 6
            && point_count(r, "db.client.operation.duration", app, &[]) == 8
            && point_count(r, "dns.lookup.duration", app, &[]) == 4
            && point_count(r, "http.client.request.duration", app, &[]) == 8
    };
    receiver.wait(Duration::from_secs(10), "the workload's metrics", m_ok);
    let srv = "http.server.request.duration";
    let cli = "http.client.request.duration";
    let db = "db.client.operation.duration";
    let nope = [
        ("http.route", "/nope"),
        ("http.response.status_code", "404"),
    ];
    assert_eq!(point_count(&receiver, srv, web, &nope), 2);
    let nope_client = [
        ("url.template", "/nope"),
        ("http.response.status_code", "404"),
    ];
    assert_eq!(point_count(&receiver, cli, app, &nope_client), 2);
    assert_eq!(
        point_count(&receiver, cli, app, &[("error.type", "404")]),
        2
    );
    assert_eq!(
        point_count(
            &receiver,
            cli,
            app,
            &[("server.port", &world.web_port.to_string())]
        ),
        8
    );
    let redis = |op: &str| {
        point_count(
            &receiver,
            db,
            app,
            &[("db.system.name", "redis"), ("db.operation.name", op)],
        )
    };
    assert_eq!((redis("SET"), redis("GET"), redis("INCR")), (1, 2, 1));
    let pg = |op: &str, table: &str| {
        point_count(
            &receiver,
            db,
            app,
            &[
                ("db.system.name", "postgresql"),
                ("db.operation.name", op),
                ("db.collection.name", table),
            ],
        )
    };
    assert_eq!(
        (
            pg("SELECT", "kv"),
            pg("INSERT", "kv"),
            pg("SELECT", "missing_table")
        ),
        (2, 1, 1)
    );
    assert_eq!(
        point_count(&receiver, db, app, &[("error.type", "42P01")]),
        1
    );
    let dns = |t: &str| {
        point_count(
            &receiver,
            "dns.lookup.duration",
            app,
            &[("dns.question.type", t)],
        )
    };
    assert_eq!((dns("A"), dns("AAAA")), (3, 1));
    assert_eq!(
        point_count(
            &receiver,
            "dns.lookup.duration",
            app,
            &[("error.type", "NXDOMAIN")]
        ),
        1
    );
    // Only the conventions' names, in seconds, and no server-side metric for the app.
    for (res, p) in receiver.last_points(srv) {
        assert_eq!(res["service.name"], web);
        assert_eq!(p.explicit_bounds.len() + 1, p.bucket_counts.len());
        assert_eq!(p.bucket_counts.iter().sum::<u64>(), p.count);
        assert!(p.sum.unwrap_or(0.0) < wall_ns as f64 / 1e9);
        assert!(p.start_time_unix_nano > 0 && p.start_time_unix_nano <= p.time_unix_nano);
    }

    let (records, stderr) = agent.stop();
    assert_eq!(records.len(), total, "the records agree: {stderr}");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn root_otlp_grpc_workload_spans_metrics_and_resources() {
    if !root_tests_enabled() {
        return;
    }
    workload_is_exported(Wire::Grpc);
}

#[test]
fn root_otlp_http_workload_spans_metrics_and_resources() {
    if !root_tests_enabled() {
        return;
    }
    workload_is_exported(Wire::Http);
}

/// GET `path` on the agent's metrics endpoint: the body.
fn scrape(port: u16) -> String {
    try_scrape(port).expect("scraping the agent")
}

/// [`scrape`], the error returned: a read that timed out after 10 s is `WouldBlock`.
fn try_scrape(port: u16) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    Ok(text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default())
}

/// What each thread of `pid` is doing (name, state, kernel wait channel), and the end of the
/// agent's log: printed when the metrics endpoint did not answer.
fn threads_and_log(pid: u32, agent: &Agent) -> String {
    let mut out = String::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            let p = t.path();
            let read = |f: &str| std::fs::read_to_string(p.join(f)).unwrap_or_default();
            let stat = read("stat");
            let state = stat
                .rsplit_once(") ")
                .and_then(|(_, r)| r.split_whitespace().next())
                .unwrap_or("?")
                .to_string();
            out += &format!(
                "  {} {} {state} {}\n",
                t.file_name().to_string_lossy(),
                read("comm").trim(),
                read("wchan")
            );
        }
    }
    let log = std::fs::read_to_string(&agent.stderr).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(20).collect();
    out += "agent log, last lines:\n";
    for l in tail.iter().rev() {
        out += &format!("  {l}\n");
    }
    out
}

fn sample(body: &str, name_and_labels: &str) -> u64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name_and_labels} not in:\n{body}"))
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

#[test]
fn root_otlp_collector_down_then_back() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let mut world = World::start(false);
    let mut receiver = Receiver::start(Wire::Grpc);
    let mport = free_port();
    let otlp_yaml = format!(
        "otlp:\n  endpoint: {}\n  protocol: grpc\n  timeout_ms: 500\n  queue_size: 64\n  \
         batch_size: 16\n",
        receiver.endpoint()
    );
    let agent = world.agent(&otlp_yaml, mport);
    let pid = agent.proc.pid();

    // Up: 10 requests, 20 spans (client and server).
    assert_eq!(world.app.run("http 10 /hello.txt")["http"][9], 200);
    receiver.wait(Duration::from_secs(15), "the first 20 spans", |r| {
        r.spans().len() >= 20
    });
    let rss_before = rss_kib(pid);

    // Down: 1000 requests, 2000 spans, against a queue of 64.
    receiver.stop();
    let received_before = receiver.spans().len();
    let metric_requests_before = receiver.metric_requests();
    for _ in 0..10 {
        assert_eq!(world.app.run("http 100 /hello.txt")["http"][99], 200);
    }
    let start = Instant::now();
    // Once in CI (2026-12-07) a scrape here got no answer. The likely cause, found later: the
    // capture thread and the period tick took the aggregator and the exporter in opposite
    // orders and could deadlock (`run::tests::writing_while_periods_end_does_not_deadlock`).
    // A stall prints what the agent's threads were doing.
    let body = loop {
        let body = match try_scrape(mport) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let why = threads_and_log(pid, &agent);
                panic!("the metrics endpoint did not answer in 10 s:\n{why}");
            }
            Err(e) => panic!("scraping the agent: {e}"),
        };
        let failed = |s: &str| {
            sample(
                &body,
                &format!("wirelens_otlp_exports_total{{signal=\"{s}\",result=\"failed\"}}"),
            )
        };
        if failed("traces") > 0 && failed("metrics") > 0 {
            break body;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no export failure counted:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let dropped_full = sample(
        &body,
        "wirelens_otlp_spans_total{outcome=\"dropped_queue_full\"}",
    );
    assert!(dropped_full > 0, "{body}");
    // The queue, plus the batch being sent.
    let queued = sample(&body, "wirelens_otlp_queued_spans");
    assert!(queued <= 64 + 16, "{queued}");
    let rss_down = rss_kib(pid);
    assert!(
        rss_down < rss_before + 64 * 1024,
        "RSS grew from {rss_before} KiB to {rss_down} KiB while the collector was down"
    );
    assert_eq!(receiver.spans().len(), received_before);

    // Back: the next spans and metrics arrive; the agent never stopped.
    receiver.start_again();
    // Let the queue filled while down drain (or fail) first.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(world.app.run("http 10 /back.txt")["http"][9], 200);
    receiver.wait(
        Duration::from_secs(30),
        "spans after the collector came back",
        |r| {
            r.spans()
                .iter()
                .filter(|(_, s)| s.name == "GET /back.txt")
                .count()
                == 20
        },
    );
    let back = |r: &Receiver| {
        r.last_points("http.server.request.duration")
            .iter()
            .filter(|(_, p)| {
                attrs(&p.attributes).get("http.route").map(String::as_str) == Some("/back.txt")
            })
            .map(|(_, p)| p.count)
            .sum::<u64>()
    };
    receiver.wait(
        Duration::from_secs(10),
        "metrics after the collector came back",
        |r| r.metric_requests() > metric_requests_before && back(r) == 10,
    );
    // The cumulative count of /hello.txt kept everything the agent saw while down.
    assert_eq!(
        point_count(
            &receiver,
            "http.server.request.duration",
            "wlotlp-web",
            &[("http.route", "/hello.txt")]
        ),
        1010
    );

    // Every span is accounted for: exported (and received) or counted as dropped.
    std::thread::sleep(Duration::from_secs(2));
    let body = scrape(mport);
    let exported = sample(&body, "wirelens_otlp_spans_total{outcome=\"exported\"}");
    let full = sample(
        &body,
        "wirelens_otlp_spans_total{outcome=\"dropped_queue_full\"}",
    );
    let failed = sample(
        &body,
        "wirelens_otlp_spans_total{outcome=\"dropped_export_failed\"}",
    );
    eprintln!(
        "collector down: RSS {rss_before} KiB before, {rss_down} KiB while down; spans \
         exported {exported}, dropped (queue full) {full}, dropped (export failed) {failed}"
    );
    assert_eq!(exported + full + failed, 2 * 1020, "{body}");
    assert_eq!(exported as usize, receiver.spans().len(), "{body}");
    let (records, _) = agent.stop();
    assert_eq!(records.len(), 2 * 1020);
}
/// One HTTP/1.1 request with no body (`head`: method and path) on `s`, answered on `reader`:
/// the status and the body.
fn ask_on(s: &mut TcpStream, reader: &mut BufReader<TcpStream>, head: &str) -> (u16, String) {
    write!(s, "{head} HTTP/1.1\r\nHost: c\r\nContent-Length: 0\r\n\r\n").expect("write");
    let mut status = String::new();
    reader.read_line(&mut status).expect("status line");
    let mut len = 0;
    loop {
        let mut l = String::new();
        reader.read_line(&mut l).expect("header");
        if l.trim().is_empty() {
            break;
        }
        if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().expect("length");
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).expect("body");
    let code = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok());
    (code.expect("status"), String::from_utf8_lossy(&body).into())
}

/// The test's own requests to the collector (bench/otlp-sink) at `collector`, on one
/// connection: a POST to an export path (200) and a GET it answers 404; then, once the agent
/// (`/metrics` on `mport`) has counted 6 events of its own exports, `GET /counts`, which must
/// show the agent's exports arrived. Returns the test's end of the connection and the agent's
/// count.
fn own_exports_seen(collector: impl std::net::ToSocketAddrs, mport: u16) -> (SocketAddr, u64) {
    let mut s = TcpStream::connect(collector).expect("connecting to the collector");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let test_end = s.local_addr().expect("address");
    let mut reader = BufReader::new(s.try_clone().expect("clone"));
    assert_eq!(ask_on(&mut s, &mut reader, "POST /v1/metrics").0, 200);
    assert_eq!(ask_on(&mut s, &mut reader, "GET /nope").0, 404);
    // The agent exports its metrics every period, and the spans of the requests above.
    let start = Instant::now();
    let own = loop {
        let own = sample(&scrape(mport), "wirelens_own_export_events_total");
        if own >= 6 {
            break own;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "only {own} events of the agent's own exports were seen in 20 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let (code, counts) = ask_on(&mut s, &mut reader, "GET /counts");
    assert_eq!(code, 200);
    // One POST was the test's.
    assert!(
        sink_exports(&counts) >= 4,
        "the collector received {counts}"
    );
    (test_end, own)
}

/// Export requests (traces and metrics) counted by bench/otlp-sink's `GET /counts` answer.
fn sink_exports(counts: &str) -> u64 {
    let counts: serde_json::Value = serde_json::from_str(counts).expect("counts JSON");
    counts["traces"]["requests"].as_u64().unwrap_or(0)
        + counts["metrics"]["requests"].as_u64().unwrap_or(0)
}

/// The agent's own exports at a collector in a pod, as a DaemonSet whose configuration does
/// not exclude the collector's namespace sees them: the agent in one network namespace (its
/// pod's), the collector in another, reached through a Service address that a DNAT rule
/// translates to the collector's (as kube-proxy does). The collector sees the agent's own
/// address, while the agent's socket is connected to the Service address. They are left out;
/// the test's own requests, from the agent's namespace (the same address, another port) and
/// through the same Service address, are reported.
#[test]
fn root_otlp_own_exports_at_a_collector_behind_a_service_are_not_reported() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    const POD_IP: &str = "10.254.77.1";
    const COLLECTOR_IP: &str = "10.254.77.2";
    const SERVICE_IP: &str = "10.254.78.10";
    const PORT: u16 = 4318;
    let tag = std::process::id() % 100_000;
    let pod = NetNs::new(&format!("wlo{tag}a"));
    let col = NetNs::new(&format!("wlo{tag}c"));
    veth_pair(&pod, POD_IP, &col, COLLECTOR_IP);
    pod.exec(
        "nft",
        &[&format!(
            "add table ip wlsvc; \
             add chain ip wlsvc out {{ type nat hook output priority -100; }}; \
             add rule ip wlsvc out ip daddr {SERVICE_IP} tcp dport {PORT} \
             dnat to {COLLECTOR_IP}:{PORT}"
        )],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut collector, _) = python_copy_in(
        Some(&col),
        dir.path(),
        "wlpod-col",
        include_str!("../bench/otlp-sink"),
        &[PORT.to_string(), "0.0.0.0".into()],
    );
    let service = SocketAddr::new(SERVICE_IP.parse().expect("ip"), PORT);
    pod.run(|| {
        let start = Instant::now();
        while TcpStream::connect_timeout(&service, Duration::from_secs(1)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the collector is not reachable at {service}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let cfg = dir.path().join("wirelens.yaml");
    std::fs::write(
        &cfg,
        format!(
            "filters:\n  include:\n    exe: [\"/wlpod-col$\"]\n  undecided: drop\n\
             aggregation:\n  period_s: 1\n\
             otlp:\n  endpoint: http://{service}\n  protocol: http/protobuf\n  \
             batch_delay_ms: 200\n"
        ),
    )
    .expect("config");
    let mport = free_port();
    let agent = Agent::start_in(
        &pod,
        &[
            "--config".into(),
            cfg.display().to_string(),
            "--metrics-addr".into(),
            format!("127.0.0.1:{mport}"),
        ],
    );

    // The test's requests, from the agent's namespace through the Service address.
    let (test_end, own) = pod.run(|| own_exports_seen(service, mport));
    assert_eq!(test_end.ip().to_string(), POD_IP);
    let (records, stderr) = agent.stop();
    collector.signal(libc::SIGTERM);
    let _ = collector.child.wait();

    let at_collector: Vec<(String, String, u64, String, u64)> = records
        .iter()
        .filter(|r| r["server"]["port"] == PORT)
        .map(|r| {
            (
                r["server"]["ip"].as_str().unwrap_or("").to_string(),
                r["client"]["ip"].as_str().unwrap_or("").to_string(),
                r["client"]["port"].as_u64().unwrap_or(0),
                r["request"]["path"].as_str().unwrap_or("").to_string(),
                r["response"]["status"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let ours = |path: &str, status| {
        (
            COLLECTOR_IP.to_string(),
            POD_IP.to_string(),
            u64::from(test_end.port()),
            path.to_string(),
            status,
        )
    };
    assert_eq!(
        at_collector,
        [
            ours("/v1/metrics", 200),
            ours("/nope", 404),
            ours("/counts", 200)
        ],
        "the records at the collector are the test's requests alone ({own} own events)"
    );
    let own_at_exit = agent_counter(&stderr, "own_export_events").expect("exit counters");
    assert!(own_at_exit >= own, "{own_at_exit} < {own}");
}

/// A collector on this host sees the agent's exports as HTTP requests to it. The agent leaves
/// those out (counted in `wirelens_own_export_events_total`): reported, every export would
/// become a span to export, as long as the agent runs, on an idle host too. Requests from
/// anyone else to the same collector are reported.
///
/// The collector is the harness's stand-in (bench/otlp-sink) in a python3 copy named
/// `wlself-col`, the only process the agent keeps.
#[test]
fn root_otlp_own_exports_at_a_local_collector_are_not_reported() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let (mut collector, _) = python_copy(
        dir.path(),
        "wlself-col",
        include_str!("../bench/otlp-sink"),
        &[port.to_string()],
    );
    wait_for_port(port);
    let cfg = dir.path().join("wirelens.yaml");
    std::fs::write(
        &cfg,
        format!(
            "filters:\n  include:\n    exe: [\"/wlself-col$\"]\n  undecided: drop\n\
             aggregation:\n  period_s: 1\n\
             otlp:\n  endpoint: http://127.0.0.1:{port}\n  protocol: http/protobuf\n  \
             batch_delay_ms: 200\n"
        ),
    )
    .expect("config");
    let mport = free_port();
    let agent = Agent::start(&[
        "--config".into(),
        cfg.display().to_string(),
        "--metrics-addr".into(),
        format!("127.0.0.1:{mport}"),
    ]);

    // The test's own requests to the collector, on one connection: these are reported.
    let (test_end, own) = own_exports_seen(("127.0.0.1", port), mport);
    let test_end = test_end.port();
    let (records, stderr) = agent.stop();
    collector.signal(libc::SIGTERM);
    let _ = collector.child.wait();

    let at_collector: Vec<(u64, String, u64)> = records
        .iter()
        .filter(|r| r["server"]["port"] == port)
        .map(|r| {
            (
                r["client"]["port"].as_u64().unwrap_or(0),
                r["request"]["path"].as_str().unwrap_or("").to_string(),
                r["response"]["status"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let test_end = u64::from(test_end);
    assert_eq!(
        at_collector,
        [
            (test_end, "/v1/metrics".to_string(), 200),
            (test_end, "/nope".to_string(), 404),
            (test_end, "/counts".to_string(), 200),
        ],
        "the records at the collector are the test's requests alone ({own} own events)"
    );
    let own_at_exit = agent_counter(&stderr, "own_export_events").expect("exit counters");
    assert!(own_at_exit >= own, "{own_at_exit} < {own}");
}
