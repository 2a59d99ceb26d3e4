//! The Grafana dashboards in deploy/grafana: what `generate.py` writes is what is committed,
//! and every dashboard is one Grafana loads (unique panel ids and uids, a grid position, every
//! panel and target on the `datasource` variable, query variables of the `label_values` form,
//! no variable used that the dashboard does not define). Whether each query returns data is
//! tests/live_prometheus.rs's job.

mod common;
mod prometheus_support;

use std::collections::BTreeSet;

use prometheus_support::{dashboards, parse_label_values, root};
use serde_json::Value;

#[test]
fn committed_dashboards_are_what_the_generator_writes() {
    let out = tempfile::tempdir().expect("tempdir");
    let status = std::process::Command::new("python3")
        .arg(root().join("deploy/grafana/generate.py"))
        .env("WIRELENS_DASHBOARDS_OUT", out.path())
        .status()
        .expect("python3");
    assert!(status.success());
    let dir = root().join("deploy/grafana/dashboards");
    let names = |d: &std::path::Path| -> BTreeSet<String> {
        std::fs::read_dir(d)
            .expect("dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(names(out.path()), names(&dir), "dashboard files");
    for name in names(&dir) {
        let want = std::fs::read_to_string(out.path().join(&name)).expect("generated");
        let got = std::fs::read_to_string(dir.join(&name)).expect("committed");
        assert!(
            want == got,
            "{name} differs from what deploy/grafana/generate.py writes: run it and commit"
        );
    }
}

#[test]
fn dashboards_are_well_formed() {
    let dir = root().join("deploy/grafana/dashboards");
    let mut uids = BTreeSet::new();
    for d in dashboards() {
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(&d.file)).expect("read"))
                .expect("json");
        assert!(uids.insert(v["uid"].as_str().expect("uid").to_string()));
        assert!(v["schemaVersion"].as_u64().is_some());
        let mut ids = BTreeSet::new();
        for p in v["panels"].as_array().expect("panels") {
            assert!(
                ids.insert(p["id"].as_u64().expect("id")),
                "{}: id twice",
                d.file
            );
            for k in ["h", "w", "x", "y"] {
                assert!(p["gridPos"][k].as_u64().is_some(), "{}: gridPos", d.file);
            }
            if p["type"] == "row" {
                continue;
            }
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
            for t in p["targets"].as_array().expect("targets") {
                assert_eq!(t["datasource"]["uid"], "${datasource}", "{}", p["title"]);
            }
        }
        let defined: Vec<&str> = d.variables.iter().map(|v| v.name.as_str()).collect();
        for v in &d.variables {
            assert!(
                parse_label_values(&v.query).is_some(),
                "{}: {}",
                d.file,
                v.query
            );
        }
        for t in &d.targets {
            // Every `$name` is a defined variable, a Grafana interval, or label_replace's `$1`.
            for part in t.expr.split('$').skip(1) {
                let name: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    defined.contains(&name.as_str())
                        || ["__rate_interval", "__range", "__interval", "1"]
                            .contains(&name.as_str()),
                    "{} / {}: unknown variable ${name} in {}",
                    d.file,
                    t.panel,
                    t.expr
                );
            }
        }
    }
    assert!(uids.len() >= 6);
}
