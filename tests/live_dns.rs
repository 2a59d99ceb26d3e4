//! Live DNS: the agent observes a real dnsmasq answering dig over UDP (unconnected socket,
//! peers from recvmsg/sendmsg) and over TCP (several queries on one connection). Root only
//! (CI is root); WIRELENS_SKIP_ROOT_TESTS=1 skips it.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// dig's answer status and answer count for each query it made.
fn dig(port: u16, extra: &[&str], queries: &[(&str, &str)]) -> Vec<(String, usize)> {
    let mut cmd = Command::new("dig");
    cmd.args(["@127.0.0.1", "-p", &port.to_string(), "+tries=1", "+time=3"]);
    cmd.args(extra);
    for (name, qtype) in queries {
        cmd.args([*name, *qtype]);
    }
    let out = cmd.output().expect("dig (Debian: dnsutils)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut res = Vec::new();
    for block in text.split("->>HEADER<<-").skip(1) {
        let status = block
            .split("status: ")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .unwrap_or("?")
            .to_string();
        let answers = block
            .split("ANSWER: ")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(usize::MAX);
        res.push((status, answers));
    }
    assert_eq!(res.len(), queries.len(), "dig output:\n{text}");
    res
}

fn wait_udp(port: u16) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        let out = Command::new("dig")
            .args([
                "@127.0.0.1",
                "-p",
                &port.to_string(),
                "+tries=1",
                "+time=1",
                "host.test",
            ])
            .output();
        if out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("status: NOERROR")) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("dnsmasq does not answer on {port}");
}

fn summary(records: &[Value]) -> Vec<(String, String, String, u64)> {
    records
        .iter()
        .map(|r| {
            (
                r["request"]["name"].as_str().unwrap_or("").to_string(),
                r["request"]["type"].as_str().unwrap_or("").to_string(),
                r["response"]["rcode"].as_str().unwrap_or("").to_string(),
                r["response"]["answers"].as_u64().unwrap_or(u64::MAX),
            )
        })
        .collect()
}

#[test]
fn root_live_dns_udp_and_tcp_against_dnsmasq() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let port = free_port();
    let server = dnsmasq(port);
    wait_udp(port);
    let agent = Agent::start(&["--pid".to_string(), server.pid().to_string()]);
    let udp = [
        ("host.test", "A"),
        ("host.test", "AAAA"),
        ("test", "MX"),
        ("txt.test", "TXT"),
        ("alias.test", "A"),
        ("nope.test", "A"),
    ];
    let mut got = Vec::new();
    for q in udp {
        got.extend(dig(port, &[], &[q]));
    }
    let tcp = [
        ("host.test", "A"),
        ("mail.test", "A"),
        ("missing.test", "AAAA"),
    ];
    got.extend(dig(port, &["+tcp", "+keepopen"], &tcp));
    let (records, stderr) = agent.stop();
    let expected: Vec<(String, String, String, u64)> = udp
        .iter()
        .chain(tcp.iter())
        .zip(&got)
        .map(|((n, t), (status, answers))| {
            (
                n.to_string(),
                t.to_string(),
                status.clone(),
                *answers as u64,
            )
        })
        .collect();
    assert_eq!(expected[5].2, "NXDOMAIN");
    let mut seen = summary(&records);
    // UDP queries are answered in order; the TCP ones too, on one connection.
    assert_eq!(seen.len(), expected.len(), "{records:?}\n{stderr}");
    seen.sort();
    let mut want = expected.clone();
    want.sort();
    assert_eq!(seen, want, "{stderr}");
    for r in &records {
        assert_eq!(r["protocol"], "dns");
        assert_eq!(r["role"], "server");
        assert_eq!(r["server"]["port"], port);
        assert_eq!(r["process"]["comm"], "dnsmasq");
        let l = r["latency_ns"].as_u64().expect("latency");
        assert!(l > 0 && l < 5_000_000_000, "{r}");
        let expect = if r["response"]["rcode"] == "NOERROR" {
            "ok"
        } else {
            "error"
        };
        assert_eq!(r["status"], expect);
    }
}
