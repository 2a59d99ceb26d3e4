//! Fault drills: the agent stopped with SIGTERM leaves no program attached; a server killed
//! mid-response gives the request a `reset` status; a ring buffer too small for a burst loses
//! events, counts each one, and captures what comes after. Root only (CI is root);
//! WIRELENS_SKIP_ROOT_TESTS=1 skips them.

mod common;

use std::process::{Command, Stdio};

use common::*;

/// The ids under `key` (`prog_id:`, `link_id:`, `map_id:`) in the fdinfo of the fds of
/// process `pid` whose target names `kind` (`bpf-prog`, `bpf_link`, `bpf-map`).
fn fd_bpf_ids(pid: u32, kind: &str, key: &str) -> Vec<u64> {
    let mut out = Vec::new();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return out;
    };
    for fd in fds.flatten() {
        let target = std::fs::read_link(fd.path()).unwrap_or_default();
        if !target.to_string_lossy().contains(kind) {
            continue;
        }
        let info = std::fs::read_to_string(format!(
            "/proc/{pid}/fdinfo/{}",
            fd.file_name().to_string_lossy()
        ))
        .unwrap_or_default();
        if let Some(id) = info
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
        {
            out.push(id);
        }
    }
    out
}

/// The ids of the BPF programs and links that process `pid` holds (from its fds' fdinfo), as
/// ("prog" | "link", id): exactly this agent's, whatever other agents run on the host.
fn held_bpf_objects(pid: u32) -> Vec<(&'static str, u64)> {
    let progs = fd_bpf_ids(pid, "bpf-prog", "prog_id:")
        .into_iter()
        .chain(fd_bpf_ids(pid, "bpf_link", "prog_id:"))
        .map(|id| ("prog", id));
    let links = fd_bpf_ids(pid, "bpf_link", "link_id:")
        .into_iter()
        .map(|id| ("link", id));
    let mut out: Vec<_> = progs.chain(links).collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Whether the kernel still has this program or link, by bpftool.
fn bpf_object_exists(kind: &str, id: u64) -> bool {
    Command::new("bpftool")
        .args([kind, "show", "id", &id.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("bpftool (Debian: bpftool)")
        .success()
}

/// Which of `held` the kernel still has, after waiting up to 10 s for them to go: links and
/// programs go when the agent's fds close, and the kernel may take a moment.
fn still_attached<'a>(held: &'a [(&'static str, u64)]) -> Vec<&'a (&'static str, u64)> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let left: Vec<_> = held
            .iter()
            .filter(|(k, id)| bpf_object_exists(k, *id))
            .collect();
        if left.is_empty() || std::time::Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn root_sigterm_leaves_no_program_attached() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let agent = Agent::start(&["--pid".to_string(), "1".to_string()]);
    let held = held_bpf_objects(agent.proc.pid());
    let links = held.iter().filter(|(k, _)| *k == "link").count();
    // One link per program of the object, each on its own tracepoint.
    let programs = include_str!("../bpf/wirelens.bpf.c")
        .lines()
        .filter(|l| l.starts_with("SEC(\"tracepoint/"))
        .count();
    assert!(programs >= 15, "{programs} programs counted in the source");
    assert_eq!(
        links, programs,
        "the agent holds {links} BPF links, not one per tracepoint: {held:?}"
    );
    assert!(held.iter().all(|(k, id)| bpf_object_exists(k, *id)));
    agent.proc.signal(libc::SIGTERM);
    let mut agent = agent;
    let status = agent.proc.child.wait().expect("wait");
    assert!(status.success(), "SIGTERM exit: {status}");
    let left = still_attached(&held);
    assert!(left.is_empty(), "left after SIGTERM: {left:?}");
}

/// Answers one request with a head promising 100 bytes, sends 7 and dies.
const DYING_SERVER: &str = r#"
import os, socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1)
c, _ = s.accept(); c.recv(65536)
c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
os._exit(1)
"#;

/// Sends one request, reads until the server goes away, then closes.
const CLIENT: &str = r#"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
sys.stdin.readline()
s.sendall(b"GET /dies-mid-response HTTP/1.1\r\nHost: x\r\n\r\n")
while s.recv(65536): pass
s.close()
"#;

#[test]
fn root_server_killed_mid_response_is_reported_reset() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let port = free_port();
    let _server = Proc {
        child: Command::new("python3")
            .args(["-c", DYING_SERVER, &port.to_string()])
            .spawn()
            .expect("python3"),
        name: "dying server".into(),
    };
    wait_for_port_once(port);
    let mut client = Proc {
        child: Command::new("python3")
            .args(["-c", CLIENT, &port.to_string()])
            .stdin(Stdio::piped())
            .spawn()
            .expect("python3"),
        name: "client".into(),
    };
    let agent = Agent::start(&["--pid".to_string(), client.pid().to_string()]);
    {
        use std::io::Write;
        let mut stdin = client.child.stdin.take().expect("stdin");
        stdin.write_all(b"go\n").expect("go");
    }
    let status = client.child.wait().expect("client");
    assert!(status.success());
    let (records, stderr) = agent.stop();
    assert_eq!(records.len(), 1, "{records:?}\n{stderr}");
    let r = &records[0];
    assert_eq!(r["request"]["path"], "/dies-mid-response");
    assert_eq!(r["role"], "client");
    assert_eq!(r["status"], "reset", "{r}");
    assert!(r["latency_ns"].is_null(), "{r}");
}

/// The dying server accepts one connection only: probing it with a connect would use it up,
/// so wait for the port by watching /proc/net/tcp instead.
fn wait_for_port_once(port: u16) {
    let hex = format!(":{port:04X} ");
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(10) {
        let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        // State 0A is LISTEN.
        if tcp
            .lines()
            .any(|l| l.contains(&hex) && l.split_whitespace().nth(3) == Some("0A"))
        {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("nothing listens on {port}");
}

/// Slots of the kernel's `counters` map (enum wl_counter in bpf/wirelens.h).
const CNT_RB_FULL_DATA: usize = 0;
const CNT_RB_FULL_CLOSE: usize = 1;
const CNT_DATA_EVENTS: usize = 3;
const CNT_RB_FULL_EXEC: usize = 6;
const CNT_CLOSE_EVENTS: usize = 7;

/// The kernel's counters of the agent with process id `pid`, summed over CPUs, read with
/// bpftool from the `counters` map that this agent holds open (found through its fds, so other
/// agents running on the host do not count).
fn kernel_counters(pid: u32) -> [u64; 8] {
    let ids = fd_bpf_ids(pid, "bpf-map", "map_id:");
    for id in ids {
        let show = Command::new("bpftool")
            .args(["-j", "map", "show", "id", &id.to_string()])
            .output()
            .expect("bpftool");
        let meta: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap_or_default();
        if meta["name"] != "counters" {
            continue;
        }
        let dump = Command::new("bpftool")
            .args(["-j", "map", "dump", "id", &id.to_string()])
            .output()
            .expect("bpftool");
        let entries: serde_json::Value =
            serde_json::from_slice(&dump.stdout).expect("bpftool map dump JSON");
        let mut out = [0u64; 8];
        for e in entries.as_array().expect("entries") {
            let f = &e["formatted"];
            let slot = f["key"].as_u64().expect("key") as usize;
            let sum: u64 = f["values"]
                .as_array()
                .expect("per-CPU values")
                .iter()
                .map(|v| v["value"].as_u64().expect("value"))
                .sum();
            if let Some(o) = out.get_mut(slot) {
                *o = sum;
            }
        }
        return out;
    }
    panic!("no `counters` map among the agent's fds");
}

/// One `name=value` of the agent's exit summary.
fn summary_field(stderr: &str, name: &str) -> u64 {
    let line = stderr
        .lines()
        .rfind(|l| l.starts_with("wirelens: records="))
        .unwrap_or_else(|| panic!("no exit summary in {stderr}"));
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {line}"))
}

/// `wirelens_events_lost_total{stage="ringbuf"}` as the agent serves it.
fn metric_ringbuf_lost(port: u16) -> Option<u64> {
    metric(port, "wirelens_events_lost_total{stage=\"ringbuf\"}")
}

/// The value of the series `series` (name and labels as the agent writes them) on the
/// agent's /metrics.
fn metric(port: u16, series: &str) -> Option<u64> {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5"])
        .arg(format!("http://127.0.0.1:{port}/metrics"))
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')
            .and_then(|v| v.trim().parse().ok())
    })
}

/// `curl` fetching `urls` (a curl URL glob) on one keep-alive connection; the status codes it
/// got, one per request.
fn curl_statuses(extra: &[&str], urls: &str) -> Vec<u16> {
    curl_statuses_of(extra, &[urls.to_string()])
}

/// `curl_statuses` for several URLs (or globs), fetched in order on one connection.
fn curl_statuses_of(extra: &[&str], urls: &[String]) -> Vec<u16> {
    // `-o` applies to one URL: one for each.
    let out = Command::new("curl")
        .args(["-s", "-w", "%{http_code}\n"])
        .args(extra)
        .args(urls.iter().flat_map(|u| ["-o", "/dev/null", u.as_str()]))
        .output()
        .expect("curl");
    assert!(out.status.success(), "curl failed: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.parse().expect("status code"))
        .collect()
}

/// A ring buffer of one page cannot hold a burst of 2,000 requests that starts while the agent
/// is paused: the kernel drops events, and every one is counted the same way in the kernel, in
/// the exit summary and on /metrics; the records of the connection that goes on after the
/// losses still pair each request with its own answer.
/// nginx's worker (the only process captured) reads each request with one recv and answers it
/// with one writev, so it makes exactly two data calls per request; recvs that find nothing
/// (EAGAIN) and the final EOF return <= 0 and are not events. So the data events the kernel
/// tried to send are 2 x requests, each either sent (and then received by the agent) or
/// counted as lost. After the burst, a slow run of requests fits the ring and is captured
/// completely.
#[test]
fn root_tiny_ring_buffer_counts_every_lost_event_and_recovers() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    const BURST: usize = 2000;
    const SLOW: usize = 20;
    let nginx = Nginx::start();
    let worker = nginx.workers()[0];
    let metrics_port = free_port();
    let agent = Agent::start(&[
        "--pid".into(),
        worker.to_string(),
        "--ring-buffer-bytes".into(),
        "4096".into(),
        "--capture-bytes".into(),
        "256".into(),
        "--metrics-addr".into(),
        format!("127.0.0.1:{metrics_port}"),
    ]);
    let base = format!("http://127.0.0.1:{}", nginx.port);

    // The agent is paused (as a loaded node may deschedule it) while the burst starts: the
    // ring fills after a few events and the kernel drops the rest until the agent runs again,
    // a number the test cannot choose but the counters must agree on.
    // Every third request asks for a file that is not there (404; nginx keeps the connection,
    // as it would not after a 500), the others /echo (201): an answer paired with the wrong
    // request after a loss shows as the other status.
    let kind = |i: usize| {
        if i.is_multiple_of(3) {
            "missing"
        } else {
            "echo"
        }
    };
    let urls: Vec<String> = (1..=BURST)
        .map(|i| format!("{base}/{}?burst={i}", kind(i)))
        .collect();
    // Paused when the burst starts and resumed while it still runs, so that the same
    // connection goes on after the losses.
    agent.proc.signal(libc::SIGSTOP);
    let client = std::thread::spawn(move || curl_statuses_of(&[], &urls));
    std::thread::sleep(std::time::Duration::from_millis(60));
    agent.proc.signal(libc::SIGCONT);
    let burst = client.join().expect("curl thread");
    assert_eq!(burst.len(), BURST);
    let want_status = |i: usize| if kind(i) == "missing" { 404 } else { 201 };
    assert!(
        (1..=BURST).all(|i| burst[i - 1] == want_status(i)),
        "{burst:?}"
    );
    // The pipeline recovers: 20 requests a second fit in the ring between two drains.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let slow = curl_statuses(&["--rate", "20/s"], &format!("{base}/echo?slow=[1-{SLOW}]"));
    assert_eq!(slow, vec![201; SLOW]);

    // Both connections are closed (curl exited); the reader reads the kernel's counters every
    // 500 ms and /metrics is refreshed every second.
    let k = {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let k = kernel_counters(agent.proc.pid());
            let lost = k[CNT_RB_FULL_DATA] + k[CNT_RB_FULL_CLOSE] + k[CNT_RB_FULL_EXEC];
            if metric_ringbuf_lost(metrics_port) == Some(lost) {
                break k;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "/metrics says {:?} ringbuf losses, the kernel {lost}",
                metric_ringbuf_lost(metrics_port)
            );
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
    };
    let lost_data = k[CNT_RB_FULL_DATA];
    let lost = lost_data + k[CNT_RB_FULL_CLOSE] + k[CNT_RB_FULL_EXEC];
    eprintln!(
        "data events sent {} lost {lost_data}; closes sent {} lost {}",
        k[CNT_DATA_EVENTS], k[CNT_CLOSE_EVENTS], k[CNT_RB_FULL_CLOSE]
    );
    assert!(lost_data > 0, "a one-page ring lost nothing: {k:?}");
    assert_eq!(
        k[CNT_DATA_EVENTS] + lost_data,
        2 * (BURST + SLOW) as u64,
        "data events sent + lost is not two per request: {k:?}"
    );
    assert_eq!(
        k[CNT_CLOSE_EVENTS] + k[CNT_RB_FULL_CLOSE],
        2,
        "two connections closed: {k:?}"
    );

    let (records, stderr) = agent.stop();
    assert_eq!(summary_field(&stderr, "lost_ringbuf"), lost, "{stderr}");
    assert_eq!(
        summary_field(&stderr, "kernel_events"),
        k[CNT_DATA_EVENTS],
        "{stderr}"
    );
    // Every event the kernel sent reached the pipeline.
    assert_eq!(
        summary_field(&stderr, "received_events"),
        k[CNT_DATA_EVENTS],
        "{stderr}"
    );
    assert_eq!(
        summary_field(&stderr, "received_closes"),
        k[CNT_CLOSE_EVENTS],
        "{stderr}"
    );

    let path = |r: &serde_json::Value| r["request"]["path"].as_str().unwrap_or("").to_string();
    let burst_records: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| path(r).contains("?burst="))
        .collect();
    assert!(
        burst_records.len() < BURST,
        "{} burst records",
        burst_records.len()
    );
    // The kernel reports the bytes of lost calls with the connection's next event, so a lost
    // answer is a gap in its place, never the next request's answer.
    let mispaired: Vec<String> = burst_records
        .iter()
        .filter_map(|r| {
            let status = r["response"]["status"].as_u64()?;
            let p = path(r);
            let want = if p.starts_with("/missing?") { 404 } else { 201 };
            (status != want).then(|| format!("{p} -> {status}"))
        })
        .collect();
    // Without the kernel's report nearly half of them pair with the answer before (20-21 of
    // ~50 measured); with it but with a loss forgotten only when it cost the framing a
    // boundary, a run of losses shifted every later answer (17 of 151 seen).
    eprintln!(
        "{} of {} burst records paired with another request's answer",
        mispaired.len(),
        burst_records.len()
    );
    assert!(
        mispaired.is_empty(),
        "{} of {} burst records paired with another request's answer: {:?}",
        mispaired.len(),
        burst_records.len(),
        &mispaired[..mispaired.len().min(10)]
    );
    assert!(
        burst_records.iter().any(|r| r["response"]["status"] == 404)
            && burst_records.iter().any(|r| r["response"]["status"] == 201),
        "the burst records should hold both answers"
    );
    let mut slow_paths: Vec<String> = records
        .iter()
        .filter(|r| path(r).starts_with("/echo?slow="))
        .map(|r| {
            assert_eq!(r["response"]["status"], 201, "{r}");
            assert_eq!(r["status"], "ok", "{r}");
            assert_eq!(r["role"], "server", "{r}");
            path(r)
        })
        .collect();
    slow_paths.sort();
    let mut want: Vec<String> = (1..=SLOW).map(|i| format!("/echo?slow={i}")).collect();
    want.sort();
    assert_eq!(slow_paths, want, "{stderr}");
}

/// Answers one request on each of 5 connections, says so, then exits on a line from stdin
/// without closing them: the kernel closes the sockets, no close() is ever called.
const EXITING_SERVER: &str = r#"
import os, socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16)
conns = []
for _ in range(5):
    c, _ = s.accept(); req = b""
    while not req.endswith(b"\r\n\r\n"): req += c.recv(65536)
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    conns.append(c)
sys.stdout.write("answered\n"); sys.stdout.flush()
sys.stdin.readline()
os._exit(0)
"#;

/// `wirelens_connections_tracked` as the agent serves it.
fn metric_tracked(port: u16) -> Option<u64> {
    metric(port, "wirelens_connections_tracked")
}

/// Polls `wirelens_connections_tracked` until it is `want`, for up to 10 s; the last value.
fn wait_tracked(port: u16, want: u64) -> Option<u64> {
    let start = std::time::Instant::now();
    loop {
        let now = metric_tracked(port);
        if now == Some(want) || start.elapsed() > std::time::Duration::from_secs(10) {
            return now;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn root_process_exit_ends_its_connections() {
    use std::io::{BufRead, Read, Write};
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let port = free_port();
    let mut server = Proc {
        child: Command::new("python3")
            .args(["-c", EXITING_SERVER, &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3"),
        name: "exiting server".into(),
    };
    wait_for_port_once(port);
    let metrics_port = free_port();
    let agent = Agent::start(&[
        "--pid".to_string(),
        server.pid().to_string(),
        "--metrics-addr".to_string(),
        format!("127.0.0.1:{metrics_port}"),
    ]);
    // Five connections, one answered request each; the test's ends stay open throughout.
    let mut clients = Vec::new();
    for i in 0..5 {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        // One write: the request in one piece.
        c.write_all(format!("GET /conn/{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .expect("request");
        let mut buf = [0u8; 64];
        let mut got = 0;
        while !buf[..got].ends_with(b"ok") {
            let n = c.read(&mut buf[got..]).expect("response");
            assert!(n > 0, "server closed early");
            got += n;
        }
        clients.push(c);
    }
    let mut line = String::new();
    std::io::BufReader::new(server.child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("server says answered");
    assert_eq!(line, "answered\n");
    assert_eq!(wait_tracked(metrics_port, 5), Some(5), "before the exit");
    server
        .child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"go\n")
        .expect("go");
    let status = server.child.wait().expect("server");
    assert!(status.success(), "{status}");
    // The process never called close(): its exit ends the five connections.
    assert_eq!(wait_tracked(metrics_port, 0), Some(0), "after the exit");
    let (records, stderr) = agent.stop();
    assert_eq!(records.len(), 5, "{records:?}\n{stderr}");
    assert!(
        records
            .iter()
            .all(|r| r["status"] == "ok" && r["role"] == "server"),
        "{records:#?}"
    );
    assert!(summary_field(&stderr, "received_closes") >= 5, "{stderr}");
    drop(clients);
}

/// One Redis reply read whole from `r`: its first line, and for a bulk string its value.
fn redis_reply(r: &mut impl std::io::BufRead) -> String {
    let mut line = String::new();
    r.read_line(&mut line).expect("reading a Redis reply");
    if let Some(len) = line.strip_prefix('$') {
        let n: i64 = len.trim().parse().expect("bulk length");
        if n >= 0 {
            let mut value = vec![0u8; n as usize + 2];
            r.read_exact(&mut value).expect("reading a bulk value");
            line.push_str(&String::from_utf8_lossy(&value));
        }
    }
    line
}

/// The tiny-ring drill for Redis: the agent is paused while one connection sends a burst of
/// GET (a string value: a success) and INCR of the same key (an error: not an integer), one
/// at a time, and resumed while the burst still runs. The kernel reports the lost calls with
/// the connection's next event; no record may pair a GET with an error or an INCR with a
/// success. With the reports not handed to the parser, 801 of 1,780 records did.
#[test]
fn root_tiny_ring_buffer_keeps_redis_pairing_across_losses() {
    use std::io::{BufReader, Write};
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    // About 20 us a round trip: the burst outlasts the pause.
    const BURST: usize = 20_000;
    let redis = Redis::start();
    let agent = Agent::start(&[
        "--pid".into(),
        redis.proc.pid().to_string(),
        "--ring-buffer-bytes".into(),
        "4096".into(),
        "--capture-bytes".into(),
        "256".into(),
    ]);
    let stream = std::net::TcpStream::connect(("127.0.0.1", redis.port)).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    writer
        .write_all(b"*3\r\n$3\r\nSET\r\n$2\r\nwl\r\n$10\r\nnotanumber\r\n")
        .expect("SET");
    assert_eq!(redis_reply(&mut reader), "+OK\r\n");
    let is_incr = |i: usize| i.is_multiple_of(3);
    agent.proc.signal(libc::SIGSTOP);
    let client = std::thread::spawn(move || {
        let mut replies = Vec::with_capacity(BURST);
        for i in 0..BURST {
            let cmd: &[u8] = if is_incr(i) {
                b"*2\r\n$4\r\nINCR\r\n$2\r\nwl\r\n"
            } else {
                b"*2\r\n$3\r\nGET\r\n$2\r\nwl\r\n"
            };
            writer.write_all(cmd).expect("sending a command");
            replies.push(redis_reply(&mut reader));
        }
        replies
    });
    std::thread::sleep(std::time::Duration::from_millis(60));
    agent.proc.signal(libc::SIGCONT);
    let replies = client.join().expect("client thread");
    for (i, r) in replies.iter().enumerate() {
        if is_incr(i) {
            assert!(r.starts_with("-ERR"), "INCR {i}: {r:?}");
        } else {
            assert_eq!(r, "$10\r\nnotanumber\r\n", "GET {i}");
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (records, stderr) = agent.stop();
    assert!(
        summary_field(&stderr, "lost_ringbuf") > 0,
        "a one-page ring lost nothing: {stderr}"
    );
    let burst: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["protocol"] == "redis" && r["response"].is_object())
        .filter(|r| r["request"]["command"] == "GET" || r["request"]["command"] == "INCR")
        .collect();
    let mispaired: Vec<String> = burst
        .iter()
        .filter(|r| (r["request"]["command"] == "INCR") != (r["response"]["error"] == true))
        .map(|r| {
            format!(
                "{} -> error {}",
                r["request"]["command"], r["response"]["error"]
            )
        })
        .collect();
    eprintln!(
        "{} of {} Redis records paired with another command's reply",
        mispaired.len(),
        burst.len()
    );
    assert!(
        burst.iter().any(|r| r["request"]["command"] == "GET")
            && burst.iter().any(|r| r["request"]["command"] == "INCR"),
        "the records should hold both commands: {}",
        burst.len()
    );
    assert!(
        mispaired.is_empty(),
        "{} of {} Redis records paired with another command's reply: {:?}",
        mispaired.len(),
        burst.len(),
        &mispaired[..mispaired.len().min(10)]
    );
}

/// The output cannot be written (`/dev/full`): the first records that reach it end the agent
/// with an error that says so, and it leaves no BPF program or link attached. The pipeline
/// runs on the capture thread, so the failure has to travel from there to the exit status.
#[test]
fn root_output_that_fails_ends_the_agent_with_its_error() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let server = PyServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let stderr = dir.path().join("stderr.log");
    let mut agent = Proc {
        child: Command::new(bin())
            .args(["run", "--format", "jsonl", "--output", "/dev/full", "--pid"])
            .arg(server.proc.pid().to_string())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("starting wirelens run"),
        name: "wirelens".into(),
    };
    let start = std::time::Instant::now();
    while !std::fs::read_to_string(&stderr)
        .unwrap_or_default()
        .contains("wirelens: capturing")
    {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "the agent did not start: {}",
            std::fs::read_to_string(&stderr).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let held = held_bpf_objects(agent.pid());
    assert!(!held.is_empty(), "the agent holds no BPF object");
    let mut client = Client::connect(server.port);
    assert_eq!(client.send(&[("GET", "/hello.txt")]), vec![200]);
    // Nothing else is done: the agent must end by itself, within its one-second rounds.
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = agent.child.try_wait().expect("waiting for the agent") {
            break s;
        }
        if start.elapsed() > std::time::Duration::from_secs(20) {
            panic!(
                "the agent still runs 20 s after its output failed: {}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&stderr).unwrap_or_default();
    assert_eq!(status.code(), Some(1), "exit status: {status}\n{text}");
    assert!(
        text.contains("output") && text.contains("No space left on device"),
        "the error should name the output and the reason: {text}"
    );
    let left = still_attached(&held);
    assert!(left.is_empty(), "left after the failure: {left:?}");
}
