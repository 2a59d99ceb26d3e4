//! The overhead harness, `bench/overhead`, in its quickest form, as the DaemonSet runs the
//! agent (`--records none --otlp`): nginx at a fixed rate, no agent then the agent (this
//! build) capturing both ends, its spans exported over OTLP/HTTP to the harness's stand-in
//! collector. Root only: it loads BPF programs and makes a cgroup.
mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

#[test]
fn root_overhead_harness_with_otlp_exports_a_span_per_exchange() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let exe = Path::new(bin());
    let loadgen = loadgen_next_to(exe.parent().expect("target/<profile>"));
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("overhead.json");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // The script stops its servers, agent and collector by pid when it ends, however it ends.
    let out = Command::new(root.join("bench/overhead"))
        .args(["--quick", "--no-install", "--only", "http-rate"])
        .args(["--modes", "captured", "--records", "none", "--otlp"])
        .arg("--agent")
        .arg(exe)
        .arg("--loadgen")
        .arg(&loadgen)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("running bench/overhead");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bench/overhead failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the JSON file"))
            .expect("JSON");
    assert_eq!(v["otlp"], true);
    let run = &v["workloads"][0]["runs"]["captured"];
    let num = |k: &str| run[k].as_f64().unwrap_or_else(|| panic!("{k} in {run}"));
    let requests = num("requests");
    assert!(requests >= 1_000.0, "{run}");
    assert_eq!(num("errors"), 0.0, "{run}");
    // Both ends of every request, each exchange one span, nothing dropped or lost.
    assert_eq!(num("exchanges"), 2.0 * requests, "{run}");
    assert_eq!(num("spans_exported"), num("exchanges"), "{run}");
    assert_eq!(num("spans_queued_at_end"), 0.0, "{run}");
    assert_eq!(num("spans_dropped_queue_full"), 0.0, "{run}");
    assert_eq!(num("spans_dropped_export_failed"), 0.0, "{run}");
    assert_eq!(num("otlp_exports_failed"), 0.0, "{run}");
    assert_eq!(num("lost_total"), 0.0, "{run}");
    // The table says the same on stdout.
    assert!(
        stdout.contains("otlp in http-rate captured: spans exported"),
        "{stdout}"
    );
}
