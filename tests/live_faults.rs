//! Fault drills: the agent stopped with SIGTERM leaves no program attached; a server killed
//! mid-response gives the request a `reset` status. Root only (CI is root);
//! WIRELENS_SKIP_ROOT_TESTS=1 skips them.

mod common;

use std::process::{Command, Stdio};

use common::*;

/// The BPF programs and links a process holds, by id, read from its fds' fdinfo (a program
/// fd says `prog_id:`, a link fd `link_id:` and `prog_id:`). Only this agent's objects, even
/// when other agents run on the machine.
fn held_bpf_ids(pid: u32) -> (Vec<u32>, Vec<u32>) {
    let (mut progs, mut links) = (Vec::new(), Vec::new());
    let dir = format!("/proc/{pid}/fdinfo");
    for entry in std::fs::read_dir(&dir).expect("fdinfo").flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        for line in text.lines() {
            let mut kv = line.splitn(2, ':');
            let (Some(k), Some(v)) = (kv.next(), kv.next()) else {
                continue;
            };
            let Ok(id) = v.trim().parse::<u32>() else {
                continue;
            };
            match k.trim() {
                "prog_id" if !progs.contains(&id) => progs.push(id),
                "link_id" => links.push(id),
                _ => {}
            }
        }
    }
    (progs, links)
}

/// Whether bpftool still finds the program or link `id`.
fn bpf_object_exists(kind: &str, id: u32) -> bool {
    let out = Command::new("bpftool")
        .args([kind, "show", "id", &id.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("bpftool (Debian: bpftool)");
    out.success()
}

#[test]
fn root_sigterm_leaves_no_program_attached() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let agent = Agent::start(&["--pid".to_string(), "1".to_string()]);
    let (progs, links) = held_bpf_ids(agent.proc.pid());
    assert!(
        progs.len() >= 20 && links.len() >= 20,
        "the agent holds {} programs and {} links; expected its tracepoints",
        progs.len(),
        links.len()
    );
    assert!(
        progs.iter().all(|&id| bpf_object_exists("prog", id)),
        "bpftool does not see the agent's programs"
    );
    agent.proc.signal(libc::SIGTERM);
    let mut agent = agent;
    let status = agent.proc.child.wait().expect("wait");
    assert!(status.success(), "SIGTERM exit: {status}");
    // Links and programs go when the agent's fds close; the kernel may take a moment.
    let left = || {
        let p: Vec<u32> = progs
            .iter()
            .copied()
            .filter(|&id| bpf_object_exists("prog", id))
            .collect();
        let l: Vec<u32> = links
            .iter()
            .copied()
            .filter(|&id| bpf_object_exists("link", id))
            .collect();
        (p, l)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut now = left();
    while (!now.0.is_empty() || !now.1.is_empty()) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        now = left();
    }
    assert_eq!(
        now,
        (vec![], vec![]),
        "programs and links left after SIGTERM"
    );
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
