//! The endurance harness, `bench/soak`, at a short duration (60 s of load instead of 600):
//! real nginx, redis-server and PostgreSQL under churning and long-lived connections, the
//! agent (this build) capturing them. Root only: it loads BPF programs and makes a cgroup.
mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The soak script, stopped with SIGTERM (it then stops its servers and agent) and reaped
/// when the test ends early.
struct Script(Child);

impl Drop for Script {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            // SAFETY: signalling a child this test started and has not reaped.
            unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(20) {
                if let Ok(Some(_)) = self.0.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

#[test]
fn root_soak_short_memory_and_connection_table_stay_bounded() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    // The agent this test binary was built with, and the load generator from the same
    // target dir: `cargo test --workspace --all-targets` has built both, so the script runs
    // them as they are and never calls cargo itself (a nested build while tests run is one
    // more thing that can fail for reasons that have nothing to do with the soak).
    let exe = Path::new(bin());
    let profile_dir = exe.parent().expect("target/<profile>");
    let loadgen = loadgen_next_to(profile_dir);
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("soak.json");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let child = Command::new(root.join("bench/soak"))
        .args(["--duration", "60", "--warmup", "15", "--interval", "2"])
        .args(["--no-install", "--json"])
        .arg(&json)
        .arg("--agent-bin")
        .arg(exe)
        .arg("--loadgen-bin")
        .arg(&loadgen)
        .spawn()
        .expect("starting bench/soak");
    let mut script = Script(child);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = script.0.try_wait().expect("waiting for bench/soak") {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "bench/soak did not finish within 600 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let text = std::fs::read_to_string(&json).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let verdict = &v["verdict"];
    assert!(
        status.success(),
        "bench/soak failed ({status}): {}",
        verdict["failures"]
    );
    let num = |k: &str| {
        verdict[k]
            .as_f64()
            .unwrap_or_else(|| panic!("{k} in {verdict}"))
    };
    // What the script judged, checked again from its figures.
    let requests = num("requests");
    assert!(requests > 10_000.0, "too little load: {verdict}");
    assert_eq!(num("client_errors"), 0.0, "{verdict}");
    assert!(num("exchanges") >= requests, "{verdict}");
    assert!(
        num("rss_after_warmup_peak_mb") <= num("rss_warmup_peak_mb") + num("rss_growth_bound_mb"),
        "{verdict}"
    );
    assert!(
        num("table_end") <= num("table_before") + 8.0,
        "connection table did not shrink back: {verdict}"
    );
    // The churn went through: a connection per request, thousands of them.
    for load in ["http-churn", "redis-churn"] {
        let connects = verdict["loads"][load]["connects"].as_u64().unwrap_or(0);
        assert!(
            connects >= 5_000,
            "{load}: {connects} connections: {verdict}"
        );
    }
    let samples = v["samples"].as_array().expect("samples");
    assert!(samples.len() >= 20, "{} samples", samples.len());
}
