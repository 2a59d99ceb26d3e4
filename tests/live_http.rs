//! Live HTTP tests: the agent, on this kernel, observes real nginx and Python servers driven
//! with a known workload. Root only (CI is root); WIRELENS_SKIP_ROOT_TESTS=1 skips them.

mod common;

use std::process::Command;
use std::time::Instant;

use common::*;
use serde_json::Value;

fn http_records(records: &[Value], role: &str) -> Vec<(String, String, u64)> {
    records
        .iter()
        .filter(|r| r["protocol"] == "http" && r["role"] == role)
        .map(|r| {
            (
                r["request"]["method"].as_str().unwrap_or("").to_string(),
                r["request"]["path"].as_str().unwrap_or("").to_string(),
                r["response"]["status"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

fn pid_args(pids: &[u32]) -> Vec<String> {
    pids.iter()
        .flat_map(|p| ["--pid".to_string(), p.to_string()])
        .collect()
}

fn assert_latencies(records: &[Value], wall_ns: u128) {
    for r in records {
        let l = r["latency_ns"].as_u64().expect("latency_ns") as u128;
        assert!(
            l > 0 && l < wall_ns,
            "latency {l} ns outside (0, {wall_ns})"
        );
    }
}

#[test]
fn root_live_nginx_keepalive_and_pipelined_exact() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let nginx = Nginx::start();
    let agent = Agent::start(&pid_args(&nginx.workers()));
    let t0 = Instant::now();

    // Keep-alive: one request at a time on one connection.
    let mut c = Client::connect(nginx.port);
    let mut expected = Vec::new();
    for (m, p) in [
        ("GET", "/index.html"),
        ("GET", "/a.txt?x=1&y=2"),
        ("GET", "/missing"),
        ("HEAD", "/a.txt"),
        ("POST", "/echo"),
    ] {
        let st = c.send(&[(m, p)]);
        expected.push((m.to_string(), p.to_string(), st[0] as u64));
    }
    // Pipelined: five requests in one write, then five responses.
    let batch = [
        ("GET", "/index.html?p=1"),
        ("GET", "/nope-1"),
        ("GET", "/a.txt?p=3"),
        ("GET", "/index.html?p=4"),
        ("GET", "/nope-5"),
    ];
    let mut p = Client::connect(nginx.port);
    let st = p.send(&batch);
    for ((m, path), s) in batch.iter().zip(st) {
        expected.push((m.to_string(), path.to_string(), s as u64));
    }
    // curl, a real client, on its own connection.
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://127.0.0.1:{}/big.bin", nginx.port))
        .output()
        .expect("curl");
    let code: u64 = String::from_utf8_lossy(&out.stdout)
        .parse()
        .expect("curl code");
    expected.push(("GET".into(), "/big.bin".into(), code));
    let wall = t0.elapsed().as_nanos();
    drop(c);
    drop(p);

    let (records, stderr) = agent.stop();
    let got = http_records(&records, "server");
    assert_eq!(got, expected, "agent stderr: {stderr}");
    assert_eq!(
        records.len(),
        expected.len(),
        "only nginx's server side: {records:?}"
    );
    assert_latencies(&records, wall);
    assert!(records.iter().all(|r| r["process"]["comm"] == "nginx"));
    assert_eq!(expected[2].2, 404);
    assert_eq!(expected[4].2, 201);
    // The 64 KiB body is larger than the 4 KiB capture prefix: still paired, marked truncated.
    let big = records.last().expect("big record");
    assert_eq!(big["response"]["body_bytes"], 65536);
    assert_eq!(big["truncated"], true);
}

#[test]
fn root_live_python_server_and_pid_filter() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let py = PyServer::start();
    let nginx = Nginx::start();
    // Only the Python server is selected: nginx's traffic must yield nothing.
    let agent = Agent::start(&pid_args(&[py.proc.pid()]));
    let t0 = Instant::now();
    let mut expected = Vec::new();
    for path in ["/hello.txt", "/nothing-here", "/hello.txt?again=1"] {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg(format!("http://127.0.0.1:{}{path}", py.port))
            .output()
            .expect("curl");
        let code: u64 = String::from_utf8_lossy(&out.stdout).parse().expect("code");
        expected.push(("GET".to_string(), path.to_string(), code));
    }
    let mut n = Client::connect(nginx.port);
    assert_eq!(
        n.send(&[("GET", "/index.html"), ("GET", "/a.txt")]),
        [200, 200]
    );
    let wall = t0.elapsed().as_nanos();
    let (records, stderr) = agent.stop();
    assert_eq!(http_records(&records, "server"), expected, "{stderr}");
    assert_eq!(records.len(), 3, "nginx is outside --pid: {records:?}");
    assert_eq!(expected[1].2, 404);
    assert_latencies(&records, wall);
    for r in &records {
        assert_eq!(r["process"]["pid"], py.proc.pid());
        assert_eq!(r["status"], "ok", "404 is ok from the server's side");
    }
}

#[test]
fn root_live_connection_opened_before_agent() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let nginx = Nginx::start();
    let mut c = Client::connect(nginx.port);
    assert_eq!(c.send(&[("GET", "/index.html")]), [200]);
    // The connection exists before the agent attaches.
    let agent = Agent::start(&pid_args(&nginx.workers()));
    let st = c.send(&[("GET", "/a.txt?after=1")]);
    let st2 = c.send(&[("GET", "/missing-after")]);
    drop(c);
    let (records, stderr) = agent.stop();
    assert_eq!(
        http_records(&records, "server"),
        vec![
            ("GET".into(), "/a.txt?after=1".into(), st[0] as u64),
            ("GET".into(), "/missing-after".into(), st2[0] as u64),
        ],
        "{stderr}"
    );
    let r = &records[0];
    assert_eq!(r["server"]["port"], nginx.port);
    assert_eq!(r["server"]["ip"], "127.0.0.1");
    assert_eq!(r["client"]["ip"], "127.0.0.1");
}

/// Runs `cmd`, which waits for a line on its stdin before it starts, with the agent watching
/// it and the processes `also` (it is started first, held until the agent runs, so that its
/// pid can be given); its pid, the agent's records and stderr.
fn watch_held(mut cmd: Command, also: &[u32]) -> (u32, Vec<Value>, String) {
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("the held command");
    let pid = child.id();
    let mut agent_args = pid_args(also);
    agent_args.extend(pid_args(&[pid]));
    let agent = Agent::start(&agent_args);
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"go\n").expect("go");
    }
    assert!(child.wait().expect("the held command").success());
    let (records, stderr) = agent.stop();
    (pid, records, stderr)
}

/// Runs `curl -s -o /dev/null ARGS` with the agent watching it and nginx's workers; the
/// agent's records and stderr. `args` is shell text.
fn watch_curl(nginx: &Nginx, args: &str) -> (Vec<Value>, String) {
    let dir = tempfile::tempdir().expect("tmp");
    let script = dir.path().join("go.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nread x\nexec curl -s -o /dev/null {args}\n"),
    )
    .expect("script");
    let mut sh = Command::new("sh");
    sh.arg(&script);
    let (_, records, stderr) = watch_held(sh, &nginx.workers());
    (records, stderr)
}

/// Runs a Python program (it reads a line from stdin first) with the agent watching it.
fn watch_python(script: &str) -> (u32, Vec<Value>, String) {
    let mut py = Command::new("python3");
    py.args(["-c", script]);
    watch_held(py, &[])
}

/// The records' (path, status, body_bytes).
fn paths_statuses_sizes(records: &[Value]) -> Vec<(String, u64, u64)> {
    records
        .iter()
        .map(|r| {
            (
                r["request"]["path"].as_str().unwrap_or("").to_string(),
                r["response"]["status"].as_u64().unwrap_or(0),
                r["response"]["body_bytes"].as_u64().unwrap_or(u64::MAX),
            )
        })
        .collect()
}

/// No message lost in a gap, no parse error, no unmatched response (the exit line's counters).
fn assert_nothing_lost(stderr: &str) {
    for counter in ["lost_in_gap", "parse_errors", "unmatched_responses"] {
        assert_eq!(
            agent_counter(stderr, counter),
            Some(0),
            "{counter}: {stderr}"
        );
    }
}

#[test]
fn root_live_client_role_seen_from_curl() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let nginx = Nginx::start();
    // Watch curl (the client) and nginx together: each exchange appears once per side.
    let (records, stderr) = watch_curl(
        &nginx,
        &format!(
            "http://127.0.0.1:{}/missing http://127.0.0.1:{}/index.html",
            nginx.port, nginx.port
        ),
    );
    let client = http_records(&records, "client");
    let server = http_records(&records, "server");
    let want = vec![
        ("GET".to_string(), "/missing".to_string(), 404),
        ("GET".to_string(), "/index.html".to_string(), 200),
    ];
    assert_eq!(client, want, "{stderr}");
    assert_eq!(server, want, "{stderr}");
    // 404 is an error only from the client's side (OpenTelemetry's rule).
    for r in &records {
        let expect = if r["role"] == "client" && r["response"]["status"] == 404 {
            "error"
        } else {
            "ok"
        };
        assert_eq!(r["status"], expect, "{r}");
    }
}

/// curl uploads a chunked body one chunk per call (size line, 64 KiB of data and CRLF),
/// each call longer than the capture: every gap ends with a chunk's CRLF, so the next size
/// line is read in place and nothing is counted lost. (No `Expect: 100-continue`: nginx
/// answers this location at once, and curl would then send no body at all. It may still
/// answer before the body is read: the record is not checked for `truncated`, which then
/// depends on timing.)
#[test]
fn root_live_chunked_upload_longer_than_the_capture_loses_nothing() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let nginx = Nginx::start();
    let dir = tempfile::tempdir().expect("tmp");
    let body = dir.path().join("body");
    std::fs::write(&body, vec![b'u'; 150_000]).expect("body");
    let (records, stderr) = watch_curl(
        &nginx,
        &format!(
            "-X POST -H 'Transfer-Encoding: chunked' -H 'Expect:' --data-binary @{} http://127.0.0.1:{}/echo",
            body.display(),
            nginx.port
        ),
    );
    let want = vec![("POST".to_string(), "/echo".to_string(), 201)];
    assert_eq!(http_records(&records, "client"), want, "{stderr}");
    assert_eq!(http_records(&records, "server"), want, "{stderr}");
    assert_nothing_lost(&stderr);
}

/// A thread with a name of its own (thread pools name theirs: `http-nio-8080-exec-1`,
/// `tokio-runtime-w`) is reported under its process's name, as `ps` shows it: the records'
/// `process.comm` and the metrics' service.
#[test]
fn root_live_a_named_thread_reports_under_its_process_name() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let nginx = Nginx::start();
    let script = format!(
        "import ctypes, socket, sys, threading\n\
         sys.stdin.readline()\n\
         def get():\n\
         \x20   ctypes.CDLL(None).prctl(15, b'pool-worker-7', 0, 0, 0)\n\
         \x20   s = socket.create_connection(('127.0.0.1', {}))\n\
         \x20   s.sendall(b'GET /index.html HTTP/1.1\\r\\nHost: t\\r\\nConnection: close\\r\\n\\r\\n')\n\
         \x20   while s.recv(65536): pass\n\
         t = threading.Thread(target=get)\n\
         t.start()\n\
         t.join()\n",
        nginx.port
    );
    let (pid, records, stderr) = watch_python(&script);
    let client: Vec<&Value> = records.iter().filter(|r| r["role"] == "client").collect();
    assert_eq!(client.len(), 1, "{records:?}\n{stderr}");
    assert_eq!(client[0]["process"]["pid"], pid, "{}", client[0]);
    assert_eq!(client[0]["process"]["comm"], "python3", "{}", client[0]);
    assert_eq!(client[0]["response"]["status"], 200, "{}", client[0]);
}

/// nginx with `sendfile on` (Debian's default configuration): a static file's body goes from
/// the page cache to the socket by sendfile, never through user memory, after its head was
/// written. The agent counts those bytes and skips them in place: keep-alive and pipelined
/// requests pair exactly, with each file's size as its body.
#[test]
fn root_live_nginx_sendfile_bodies_keep_the_pairing() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let nginx = Nginx::start_with("sendfile on;");
    let agent = Agent::start(&pid_args(&nginx.workers()));
    let mut c = Client::connect(nginx.port);
    let asked = [
        ("GET", "/a.txt"),
        ("GET", "/big.bin"),
        ("GET", "/missing"),
        ("GET", "/index.html"),
    ];
    let mut statuses = Vec::new();
    for r in asked {
        statuses.extend(c.send(&[r]));
    }
    // Pipelined: the same four in one write.
    let mut p = Client::connect(nginx.port);
    statuses.extend(p.send(&asked));
    drop(c);
    drop(p);
    let (records, stderr) = agent.stop();
    let got = paths_statuses_sizes(&records);
    let sizes = [100, 65536, 0, 18];
    let want: Vec<(String, u64, u64)> = asked
        .iter()
        .chain(asked.iter())
        .zip(statuses.iter())
        .zip(sizes.iter().chain(sizes.iter()))
        .map(|(((_, path), st), size)| (path.to_string(), u64::from(*st), *size))
        .collect();
    // The 404 page's size is nginx's own: take it from the record, checked to be non-zero.
    let mut got_cmp = got.clone();
    for g in got_cmp.iter_mut().filter(|g| g.1 == 404) {
        assert!(g.2 > 0, "{got:?}");
        g.2 = 0;
    }
    assert_eq!(got_cmp, want, "{stderr}");
    assert_eq!(&statuses[..4], [200, 200, 404, 200]);
    assert_nothing_lost(&stderr);
}

/// A receive with MSG_PEEK (nginx peeks at a client connection to tell whether it broke; DNS
/// servers peek at a datagram's size) leaves the bytes for the read that follows: they are
/// reported once, by that read. Here a client peeks at each response's first bytes before
/// reading it, with recvfrom and with recvmsg, on one keep-alive connection.
#[test]
fn root_live_peeked_bytes_are_reported_once() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let nginx = Nginx::start();
    let script = format!(
        "import socket, sys\n\
         sys.stdin.readline()\n\
         s = socket.create_connection(('127.0.0.1', {}))\n\
         for i in range(4):\n\
         \x20   s.sendall(b'GET /a.txt HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n')\n\
         \x20   if i % 2:\n\
         \x20       s.recvmsg(5, 0, socket.MSG_PEEK)\n\
         \x20   else:\n\
         \x20       s.recv(5, socket.MSG_PEEK)\n\
         \x20   got = b''\n\
         \x20   while not got.endswith(b'a' * 100):\n\
         \x20       got += s.recv(65536)\n\
         s.close()\n",
        nginx.port
    );
    let (_, records, stderr) = watch_python(&script);
    let got = paths_statuses_sizes(&records);
    assert_eq!(got, vec![("/a.txt".to_string(), 200, 100); 4], "{stderr}");
    assert_nothing_lost(&stderr);
}

/// A call that blocks on one CPU and returns on another is still captured. The exit looks
/// up the thread's in-flight arguments unless its CPU's record says that the thread's last
/// data call there left none and that the thread has not been switched out since. Here the
/// client makes a call with nothing to capture on CPU 1, moves to CPU 0, sends a request and
/// blocks in recv; a helper thread moves it back to CPU 1 while it waits, so the recv
/// returns where CPU 1's record still names the client with nothing in flight (the agent
/// and the server run on CPU 0, so no other data call lands on CPU 1 in between). Only the
/// context switch count tells the two calls apart: without it, the answer is lost and the
/// client's record ends reset.
#[test]
fn root_live_a_call_that_returns_on_another_cpu_is_captured() {
    if !root_tests_enabled() {
        return;
    }
    assert!(
        std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2,
        "this test needs two CPUs"
    );
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let port = free_port();
    // The server answers the first connection that sends something (not the port probe),
    // 300 ms late.
    let server = format!(
        "import socket, time\n\
         l = socket.socket()\n\
         l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         l.bind(('127.0.0.1', {port}))\n\
         l.listen(1)\n\
         while True:\n\
         \x20   c, _ = l.accept()\n\
         \x20   if c.recv(4096):\n\
         \x20       break\n\
         \x20   c.close()\n\
         time.sleep(0.3)\n\
         c.sendall(b'HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok')\n\
         c.close()\n"
    );
    let client = format!(
        "import os, socket, threading, time\n\
         me = threading.get_native_id()\n\
         os.sched_setaffinity(0, {{1}})\n\
         with open('/dev/null', 'wb', buffering=0) as f:\n\
         \x20   f.write(b'x' * 100)\n\
         os.sched_setaffinity(0, {{0}})\n\
         s = socket.create_connection(('127.0.0.1', {port}))\n\
         def move():\n\
         \x20   time.sleep(0.1)\n\
         \x20   os.sched_setaffinity(me, {{1}})\n\
         threading.Thread(target=move).start()\n\
         s.sendall(b'GET /moved HTTP/1.1\\r\\nHost: test\\r\\n\\r\\n')\n\
         line = s.recv(4096).split(b'\\r\\n')[0].decode()\n\
         cpu = open('/proc/thread-self/stat').read().rsplit(')', 1)[1].split()[36]\n\
         print(line + ' on CPU ' + cpu)\n"
    );
    // This thread (which reads the client's output) stays on CPU 0 as well.
    // SAFETY: a zeroed cpu_set_t with CPU 0 set, for the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
    let agent = Agent::start(&[]);
    let pinned = Command::new("taskset")
        .args(["-a", "-p", "1", &agent.proc.pid().to_string()])
        .output()
        .expect("taskset");
    assert!(pinned.status.success(), "taskset: {pinned:?}");
    let _server = Proc {
        child: Command::new("taskset")
            .args(["-c", "0", "python3", "-c", &server])
            .spawn()
            .expect("server"),
        name: "server".into(),
    };
    wait_for_port(port);
    let out = Command::new("python3")
        .args(["-c", &client])
        .output()
        .expect("client");
    assert!(out.status.success(), "client: {out:?}");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        printed.trim(),
        "HTTP/1.1 200 OK on CPU 1",
        "the client's recv returned there"
    );
    let (records, stderr) = agent.stop();
    let seen: Vec<(String, String, u64)> = http_records(&records, "client")
        .into_iter()
        .filter(|r| r.1 == "/moved")
        .collect();
    assert_eq!(
        seen,
        vec![("GET".to_string(), "/moved".to_string(), 200)],
        "{stderr}"
    );
}
