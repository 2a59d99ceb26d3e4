//! Support of tests/live_prometheus.rs: the servers of the known workload, its driver, a real
//! Prometheus, and the Grafana dashboards' queries made concrete.
//!
//! Every process is owned by a [`Proc`] (killed by pid and reaped on drop), so a failing test
//! leaves nothing running.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{free_port, which, Proc};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// tests/prometheus_support/driver.py, started and waiting for its first phase.
pub struct Driver {
    pub proc: Proc,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Driver {
    pub fn start(nginx: u16, redis: u16, pg: u16, dns: u16) -> Driver {
        let script = root().join("tests/prometheus_support/driver.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .args([nginx, redis, pg, dns].map(|p| p.to_string()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("driver.py");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut err = BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        err.read_line(&mut line).expect("driver stderr");
        assert_eq!(line.trim(), "ready", "driver.py did not start");
        std::thread::spawn(move || {
            let mut rest = String::new();
            while err.read_line(&mut rest).map(|n| n > 0).unwrap_or(false) {}
            if !rest.is_empty() {
                eprintln!("driver.py: {rest}");
            }
        });
        Driver {
            proc: Proc {
                child,
                name: "driver.py".into(),
            },
            stdin,
            stdout,
        }
    }

    /// Runs one phase of the workload; what the driver sent and got.
    pub fn phase(&mut self) -> Value {
        self.stdin.write_all(b"go\n").expect("go");
        self.stdin.flush().expect("flush");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("driver output");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("driver said {line:?}: {e}"))
    }
}

/// A real Prometheus (the Debian package) scraping `target` every second, its API on
/// 127.0.0.1:`port`, its storage in a temp dir.
pub struct Prometheus {
    pub proc: Proc,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    pub fn start(target: &str) -> Prometheus {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("prometheus.yml");
        std::fs::write(
            &conf,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: wirelens\n    static_configs:\n\
                 \x20     - targets: [\"{target}\"]\n"
            ),
        )
        .expect("prometheus.yml");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
        let child = Command::new(which("prometheus").expect("prometheus installed (Debian)"))
            .arg(format!("--config.file={}", conf.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting prometheus");
        let p = Prometheus {
            proc: Proc {
                child,
                name: "prometheus".into(),
            },
            port,
            _dir: dir,
        };
        let start = Instant::now();
        while !p.get("/-/ready").contains("Ready") {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "prometheus not ready: {}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        p
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    fn get(&self, path: &str) -> String {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10"])
            .arg(format!("http://127.0.0.1:{}{path}", self.port))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// GET `path` with form `params` (url-encoded by curl); the `data` of a success answer.
    fn api(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let mut c = Command::new("curl");
        c.args(["-sS", "--max-time", "20", "-G"]);
        for (k, v) in params {
            c.arg("--data-urlencode").arg(format!("{k}={v}"));
        }
        let out = c
            .arg(format!("http://127.0.0.1:{}{path}", self.port))
            .output()
            .expect("curl");
        let body = String::from_utf8_lossy(&out.stdout);
        let v: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("prometheus {path} {params:?}: {e}: {body}"));
        assert_eq!(v["status"], "success", "prometheus {path} {params:?}: {v}");
        v["data"].clone()
    }

    /// An instant query at `time` (Unix seconds): the result vector.
    pub fn query(&self, expr: &str, time: f64) -> Vec<Value> {
        let t = format!("{time:.3}");
        let data = self.api("/api/v1/query", &[("query", expr), ("time", &t)]);
        match data["result"].as_array() {
            Some(r) => r.clone(),
            None => vec![data["result"].clone()],
        }
    }

    /// The values of `label` on the series matching `selector`.
    pub fn label_values(&self, selector: &str, label: &str) -> Vec<String> {
        let data = self.api(
            &format!("/api/v1/label/{label}/values"),
            &[("match[]", selector)],
        );
        data.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// One query target of one panel of one dashboard.
#[derive(Clone, Debug)]
pub struct Target {
    pub dashboard: String,
    pub panel: String,
    pub ref_id: String,
    pub expr: String,
}

/// A query variable of a dashboard: its name and its `label_values(SELECTOR, LABEL)` query.
#[derive(Clone, Debug)]
pub struct Variable {
    pub name: String,
    pub query: String,
}

pub struct Dashboard {
    pub file: String,
    pub title: String,
    pub variables: Vec<Variable>,
    pub targets: Vec<Target>,
}

/// Every dashboard in deploy/grafana/dashboards, with every target of every panel (rows'
/// nested panels included).
pub fn dashboards() -> Vec<Dashboard> {
    let dir = root().join("deploy/grafana/dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("deploy/grafana/dashboards")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files.iter().map(|f| load(f)).collect()
}

fn load(path: &Path) -> Dashboard {
    let file = path.file_name().unwrap().to_string_lossy().into_owned();
    let text = std::fs::read_to_string(path).expect("dashboard");
    let d: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    let title = d["title"].as_str().unwrap_or("").to_string();
    let mut variables = Vec::new();
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] != "query" {
            continue;
        }
        let query = v["query"]["query"]
            .as_str()
            .or(v["query"].as_str())
            .unwrap_or_else(|| panic!("{file}: variable without a query: {v}"));
        variables.push(Variable {
            name: v["name"].as_str().unwrap_or("").to_string(),
            query: query.to_string(),
        });
    }
    let mut targets = Vec::new();
    let mut panels: Vec<&Value> = d["panels"].as_array().into_iter().flatten().collect();
    while let Some(p) = panels.pop() {
        panels.extend(p["panels"].as_array().into_iter().flatten());
        for t in p["targets"].as_array().into_iter().flatten() {
            targets.push(Target {
                dashboard: file.clone(),
                panel: p["title"].as_str().unwrap_or("").to_string(),
                ref_id: t["refId"].as_str().unwrap_or("").to_string(),
                expr: t["expr"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{file}: target without expr: {t}"))
                    .to_string(),
            });
        }
    }
    targets.reverse();
    Dashboard {
        file,
        title,
        variables,
        targets,
    }
}

/// `label_values(SELECTOR, LABEL)` split in its two arguments.
pub fn parse_label_values(q: &str) -> Option<(String, String)> {
    let inner = q.trim().strip_prefix("label_values(")?.strip_suffix(')')?;
    let (sel, label) = inner.rsplit_once(',')?;
    Some((sel.trim().to_string(), label.trim().to_string()))
}

/// The value Grafana substitutes for a multi-value variable with several values selected
/// ("All" without a custom all value): `(v1|v2|...)`, each value regex-escaped the way its
/// Prometheus data source does (a backslash doubled for the PromQL string).
pub fn grafana_multi_value(values: &[String]) -> String {
    let esc: Vec<String> = values
        .iter()
        .map(|v| {
            let mut s = String::new();
            for c in v.chars() {
                match c {
                    '\\' => s.push_str("\\\\\\\\"),
                    '$' | '^' | '*' | '{' | '}' | '[' | ']' | '\'' | '+' | '?' | '.' | '('
                    | ')' | '|' => {
                        s.push_str("\\\\");
                        s.push(c);
                    }
                    c => s.push(c),
                }
            }
            s
        })
        .collect();
    format!("({})", esc.join("|"))
}

/// Replaces `$name` and `${name}` of each variable (longest names first) and Grafana's
/// interval variables with fixed durations.
pub fn substitute(expr: &str, vars: &[(String, String)]) -> String {
    let mut out = expr
        .replace("$__rate_interval", "1m")
        .replace("${__rate_interval}", "1m")
        .replace("$__range", "2m")
        .replace("${__range}", "2m")
        .replace("$__interval", "15s")
        .replace("${__interval}", "15s");
    let mut vars: Vec<&(String, String)> = vars.iter().collect();
    vars.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
    for (name, value) in vars {
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    out
}
