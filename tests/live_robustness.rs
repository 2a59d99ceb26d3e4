//! Bad input and missing privileges, live: random bytes on a connection are counted and the
//! connection resynchronises; without privileges the agent names what is missing; `check`
//! loads and attaches everything. Root only (CI is root); WIRELENS_SKIP_ROOT_TESTS=1 skips.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// A raw HTTP server in Python that answers every `GET` head it finds and skips anything
/// else, so garbage between requests does not stop it.
const LENIENT_SERVER: &str = r#"
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
while True:
    c, _ = s.accept(); buf = b""
    while True:
        d = c.recv(65536)
        if not d: break
        buf += d
        while True:
            i = buf.find(b"GET ")
            if i < 0: buf = buf[-3:]; break
            j = buf.find(b"\r\n\r\n", i)
            if j < 0: buf = buf[i:]; break
            buf = buf[j + 4:]
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    c.close()
"#;

fn read_response(r: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    loop {
        let mut h = String::new();
        r.read_line(&mut h).expect("header");
        if h == "\r\n" {
            break;
        }
    }
    let mut body = [0u8; 2];
    r.read_exact(&mut body).expect("body");
    line
}

#[test]
fn root_random_bytes_on_a_connection_are_counted_and_resynchronised() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let port = free_port();
    let server = Proc {
        child: Command::new("python3")
            .args(["-c", LENIENT_SERVER, &port.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .expect("python3"),
        name: "python3".into(),
    };
    wait_for_port(port);
    let agent = Agent::start(&["--pid".to_string(), server.pid().to_string()]);
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut w = s;
    w.write_all(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    assert!(read_response(&mut r).starts_with("HTTP/1.1 200"));
    // 512 bytes of deterministic noise: no "GET " in it, no CRLF CRLF.
    let mut x: u32 = 0x1234_5678;
    let noise: Vec<u8> = (0..512)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x % 200) as u8 + 1
        })
        .map(|b| if b == b'G' || b == b'\r' { b'z' } else { b })
        .collect();
    w.write_all(&noise).expect("noise");
    std::thread::sleep(Duration::from_millis(200));
    w.write_all(b"GET /second HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    assert!(read_response(&mut r).starts_with("HTTP/1.1 200"));
    drop(w);
    drop(r);
    let (records, stderr) = agent.stop();
    let paths: Vec<&str> = records
        .iter()
        .map(|r| r["request"]["path"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(paths, ["/first", "/second"], "{stderr}");
    let parse_errors: u64 = stderr
        .split_whitespace()
        .find_map(|w| w.strip_prefix("parse_errors="))
        .and_then(|v| v.parse().ok())
        .expect("parse_errors counter in the summary");
    assert!(parse_errors >= 1, "noise not counted: {stderr}");
    drop(server);
}

fn as_nobody(args: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
            bin(),
        ])
        .args(args)
        .output()
        .expect("setpriv")
}

#[test]
fn root_without_privileges_run_and_check_name_what_is_missing() {
    if !root_tests_enabled() {
        return;
    }
    let out = as_nobody(&["run"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_ne!(out.status.code(), Some(101), "panicked: {err}");
    assert!(
        err.contains("CAP_BPF") && err.contains("CAP_PERFMON"),
        "message must name the missing capabilities: {err}"
    );
    let out = as_nobody(&["check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("FAIL") && l.contains("privileges") && l.contains("CAP_BPF")),
        "{text}"
    );
}

#[test]
fn root_check_loads_and_attaches_everything() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let out = Command::new(bin()).arg("check").output().expect("check");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for what in [
        "BTF",
        "privileges",
        "tracefs",
        "syscall tracepoints",
        "load and attach",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("ok") && l.contains(what)),
            "{what} missing from:\n{text}"
        );
    }
    // Every tracepoint a program attaches to (the list is checked against the programs'
    // source by a unit test of `preflight`).
    let present = format!("{} present", wirelens::preflight::TRACEPOINTS.len());
    assert!(text.contains(&present), "{text}");
    // The verifier's limit is a million processed instructions per program, and a new kernel
    // can need more of them for the same code (kernel 6.18 once pushed one program past it).
    // Failing at half the limit leaves room to notice before a program stops loading.
    let line = text
        .lines()
        .find(|l| l.starts_with("ok") && l.contains("verifier headroom"))
        .unwrap_or_else(|| panic!("no verifier headroom line in:\n{text}"));
    let processed: u32 = line
        .split(": ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no instruction count in {line:?}"));
    assert!(processed > 0, "{line}");
    assert!(
        processed < wirelens::preflight::VERIFIER_LIMIT / 2,
        "a program is past half the verifier's limit: {line}"
    );
}
