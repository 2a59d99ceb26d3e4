//! Live metrics: the agent observes a real nginx with a known workload and serves it on
//! `--metrics-addr`; a scrape before the agent stops has exactly that workload's counts.
//! Root only (CI is root); WIRELENS_SKIP_ROOT_TESTS=1 skips it.

mod aggregate_support;
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use aggregate_support::{parse_exposition, sum, value, Sample};
use common::*;

/// GET `path` on 127.0.0.1:`port` with a raw TCP connection: (status, body).
fn get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the agent");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").expect("write");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let (head, body) = text.split_once("\r\n\r\n").expect("response head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, body.to_string())
}

const COUNT: &str = "http_server_request_duration_seconds_count";

fn counts(samples: &[Sample]) -> (f64, f64) {
    (
        sum(samples, COUNT, &[("http_response_status_code", "200")]),
        sum(samples, COUNT, &[("http_response_status_code", "404")]),
    )
}

#[test]
fn root_live_metrics_count_a_known_nginx_workload() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let nginx = Nginx::start();
    // The master listens before it forks its worker: without a worker pid the agent would
    // watch every process, this test's scrapes included.
    let start = Instant::now();
    let mut workers = nginx.workers();
    while workers.is_empty() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
        workers = nginx.workers();
    }
    assert!(!workers.is_empty(), "nginx started no worker");
    let port = free_port();
    let mut args = vec!["--metrics-addr".to_string(), format!("127.0.0.1:{port}")];
    for w in workers {
        args.extend(["--pid".to_string(), w.to_string()]);
    }
    let agent = Agent::start(&args);
    assert_eq!(get(port, "/healthz").0, 200);
    assert_eq!(get(port, "/readyz").0, 200, "the capture is attached");

    let t0 = Instant::now();
    let mut c = Client::connect(nginx.port);
    for _ in 0..7 {
        assert_eq!(c.send(&[("GET", "/index.html")]), [200]);
    }
    for _ in 0..3 {
        assert_eq!(c.send(&[("GET", "/missing")]), [404]);
    }
    let wall_s = t0.elapsed().as_secs_f64();
    drop(c);

    // Records reach the aggregate within a ring buffer drain; wait for them, then make sure
    // nothing more comes.
    let start = Instant::now();
    let mut samples = parse_exposition(&get(port, "/metrics").1);
    while counts(&samples) != (7.0, 3.0) && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
        samples = parse_exposition(&get(port, "/metrics").1);
    }
    std::thread::sleep(Duration::from_millis(500));
    let (status, body) = get(port, "/metrics");
    assert_eq!(status, 200);
    let samples = parse_exposition(&body);
    assert_eq!(counts(&samples), (7.0, 3.0), "{body}");

    let ok = [
        ("service_name", "nginx"),
        ("client_address", "127.0.0.1"),
        ("http_request_method", "GET"),
        ("http_route", "/index.html"),
        ("http_response_status_code", "200"),
    ];
    assert_eq!(value(&samples, COUNT, &ok), 7.0);
    let nf = [
        ("http_route", "/missing"),
        ("http_response_status_code", "404"),
    ];
    assert_eq!(value(&samples, COUNT, &nf), 3.0);
    // Loopback requests to nginx take far less than the test's own wall time.
    let total_s = sum(&samples, "http_server_request_duration_seconds_sum", &[]);
    assert!(
        total_s > 0.0 && total_s < wall_s,
        "{total_s} s of {wall_s} s"
    );
    assert!(!body.contains("error_type"), "nothing failed: {body}");
    // The agent's own health is there, with the stages the issue names.
    for stage in ["ringbuf", "decode", "parse", "unmatched_response", "gap"] {
        value(&samples, "wirelens_events_lost_total", &[("stage", stage)]);
    }
    assert!(body.contains("# TYPE wirelens_connections_tracked gauge"));
    assert!(body.contains("# TYPE wirelens_series_dropped_total counter"));

    let (records, stderr) = agent.stop();
    let http: Vec<_> = records.iter().filter(|r| r["protocol"] == "http").collect();
    assert_eq!(http.len(), 10, "records agree with the metrics: {stderr}");
}

/// A `--metrics-addr` the agent cannot listen on stops it at start, naming the address.
#[test]
fn root_live_metrics_addr_taken_is_refused() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().unwrap();
    let out = std::process::Command::new(bin())
        .args(["run", "--output", "/dev/null", "--metrics-addr"])
        .arg(addr.to_string())
        .output()
        .expect("run wirelens");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("listening on metrics address {addr}")),
        "{stderr}"
    );
}
