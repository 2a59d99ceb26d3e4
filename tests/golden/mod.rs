//! Golden-file helpers shared by the replay tests of every protocol: run `wirelens replay`
//! on recorded pcaps, and compare its JSONL with the expected file beside the pcap, or
//! rewrite that file when `BLESS=1` (then review the diff before committing).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// The manifest `fixtures/<protocol>/cases.json` that a recording script wrote, parsed into
/// the test's own manifest type; panics naming the file when it cannot be read or parsed.
pub fn manifest<T: serde::de::DeserializeOwned>(fixtures: &str) -> T {
    let path = root().join(fixtures).join("cases.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// The repository root (where `fixtures/` lives).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What one `wirelens replay --format jsonl` run printed.
pub struct Replay {
    pub stdout: String,
    pub stderr: String,
    pub code: Option<i32>,
}

impl Replay {
    /// Every line parsed as JSON; panics naming the line that is not.
    pub fn records(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
            .collect()
    }
}

/// Runs `wirelens replay --format jsonl` on `pcaps` (paths relative to the repository root).
pub fn replay(pcaps: &[&str]) -> Replay {
    let out = Command::new(env!("CARGO_BIN_EXE_wirelens"))
        .current_dir(root())
        .args(["replay", "--format", "jsonl"])
        .args(pcaps)
        .output()
        .expect("running wirelens replay");
    Replay {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code(),
    }
}

/// Compares `actual` with the file at `expected` (relative to the root); with `BLESS=1`,
/// writes `actual` there instead.
pub fn compare_or_bless(expected: &str, actual: &str) {
    let path = root().join(expected);
    if std::env::var("BLESS").as_deref() == Ok("1") {
        std::fs::write(&path, actual).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        eprintln!("blessed {}", path.display());
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (record it, then run with BLESS=1 and review)",
            path.display()
        )
    });
    if want != actual {
        panic!(
            "{} differs from the replay output (BLESS=1 rewrites it):\n{}",
            expected,
            line_diff(&want, actual)
        );
    }
}

/// The lines that differ, numbered, `-` expected and `+` actual.
pub fn line_diff(want: &str, got: &str) -> String {
    let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    let mut out = String::new();
    for i in 0..w.len().max(g.len()) {
        let (a, b) = (w.get(i), g.get(i));
        if a != b {
            if let Some(a) = a {
                out.push_str(&format!("{:>4} - {a}\n", i + 1));
            }
            if let Some(b) = b {
                out.push_str(&format!("{:>4} + {b}\n", i + 1));
            }
        }
    }
    out
}

/// Asserts that replaying `pcap` succeeded and returns its records.
pub fn replay_ok(pcap: &str) -> (Replay, Vec<serde_json::Value>) {
    let r = replay(&[pcap]);
    assert_eq!(r.code, Some(0), "replay of {pcap} failed: {}", r.stderr);
    let recs = r.records();
    (r, recs)
}
