//! A real Prometheus scrapes the agent while a known workload runs (nginx with 200s, 404s and
//! a 500; Redis with an error; PostgreSQL with a failing statement; DNS through dnsmasq with
//! an NXDOMAIN; a request never answered), then EVERY expression of EVERY panel of EVERY
//! Grafana dashboard in deploy/grafana/dashboards, with the dashboard's variables set to all
//! the values their own queries return, must return data through Prometheus's HTTP API; and
//! the counts Prometheus holds must be exactly what the clients sent, the service graph
//! counting each exchange once although both of its ends are observed, and naming a client
//! it does not observe (this test) by its address.
//! Root only (CI is root); WIRELENS_SKIP_ROOT_TESTS=1 skips it.

mod common;
mod prometheus_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use prometheus_support::*;
use serde_json::Value;

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The agent's own /metrics, as text.
fn scrape(port: u16) -> String {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .arg(format!("http://127.0.0.1:{port}/metrics"))
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The sum of the samples of `name` whose label set contains every one of `labels` (in the
/// exposition's `k="v"` form).
fn sum_in(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
                && labels.iter().all(|x| l.contains(x))
        })
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

fn wait_for(what: &str, port: u16, ok: impl Fn(&str) -> bool) {
    let start = Instant::now();
    loop {
        let text = scrape(port);
        if ok(&text) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what} not reached within 20 s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One number from an instant query whose result is a single sample (0 when empty).
fn scalar(prom: &Prometheus, expr: &str, t: f64) -> f64 {
    let r = prom.query(expr, t);
    assert!(r.len() <= 1, "{expr}: more than one sample: {r:?}");
    r.first()
        .and_then(|s| s["value"][1].as_str())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// The samples of an instant query keyed by the value of `label`.
fn by_label(prom: &Prometheus, expr: &str, label: &str, t: f64) -> BTreeMap<String, f64> {
    prom.query(expr, t)
        .iter()
        .map(|s| {
            (
                s["metric"][label].as_str().unwrap_or("").to_string(),
                s["value"][1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN),
            )
        })
        .collect()
}

fn has_finite_value(samples: &[Value]) -> bool {
    samples.iter().any(|s| {
        s["value"][1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .is_some_and(f64::is_finite)
    })
}

#[test]
fn root_prometheus_evaluates_every_dashboard_query_on_a_known_workload() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let nginx = Nginx::start();
    let redis_server = Redis::start();
    let (redis, redis_port) = (&redis_server.proc, redis_server.port);
    let pg = pg::Postgres::start(&[], 10);
    let dns_port = free_port();
    let dnsmasq = dnsmasq(dns_port);
    wait_for_port(dns_port);
    let mut driver = Driver::start(nginx.port, redis_port, pg.port, dns_port);

    // Exactly these processes (and what they fork: postgres backends, the driver's psql), so neither Prometheus nor this test nor other engineers' servers are counted.
    let metrics_port = free_port();
    let mut args = vec![
        "--metrics-addr".to_string(),
        format!("127.0.0.1:{metrics_port}"),
    ];
    let mut pids = nginx.workers();
    pids.extend([
        redis.pid(),
        pg.postmaster.pid(),
        dnsmasq.pid(),
        driver.proc.pid(),
    ]);
    for p in pids {
        args.extend(["--pid".to_string(), p.to_string()]);
    }
    let agent = Agent::start(&args);
    let prom = Prometheus::start(&format!("127.0.0.1:{metrics_port}"));
    let start = Instant::now();
    while scalar(&prom, "up{job=\"wirelens\"}", now()) != 1.0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "prometheus does not scrape the agent: {}",
            prom.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // Two phases a few scrapes apart, so that every counter grows between two scrapes and
    // every rate() of the dashboards has something to show.
    let nginx_count = "http_server_request_duration_seconds_count";
    let graph = "wirelens_service_graph_requests_total";
    let mut sent = Vec::new();
    for phase in 1..=2u32 {
        sent.push(driver.phase());
        // And from this test, a client the agent does not observe: 2 more per phase.
        let mut own = Client::connect(nginx.port);
        assert_eq!(own.send(&[("GET", "/index.html")]), [200]);
        assert_eq!(own.send(&[("GET", "/fail")]), [500]);
        drop(own);
        let n = 11.0 * phase as f64;
        // The request never answered is the phase's last exchange: once its edge is there,
        // every exchange of the phase is.
        wait_for("the phase's HTTP requests and edges", metrics_port, |t| {
            sum_in(t, nginx_count, &["service_name=\"nginx\""]) == n
                && sum_in(t, graph, &["server=\"nginx\""]) == n
                && sum_in(t, graph, &["client=\"python3\"", "server=\"python3\""]) == phase as f64
        });
        // Prometheus scrapes what the agent holds now, twice.
        std::thread::sleep(Duration::from_millis(2500));
    }
    let t = now();
    // Prometheus keeps what it scraped: the queries below are all at `t`.
    let (records, stderr) = agent.stop();
    let total = |path: &[&str]| -> f64 {
        sent.iter()
            .map(|p| path.iter().fold(p, |v, k| &v[*k]).as_f64().unwrap_or(0.0))
            .sum()
    };

    // Every expression of every panel returns data.
    let mut empty = Vec::new();
    let mut evaluated = 0;
    let dashboards = dashboards();
    assert!(dashboards.len() >= 6, "dashboards: {}", dashboards.len());
    for d in &dashboards {
        let mut vars: Vec<(String, String)> = Vec::new();
        for v in &d.variables {
            let q = substitute(&v.query, &vars);
            let (selector, label) = parse_label_values(&q).unwrap_or_else(|| {
                panic!("{}: variable {}: not label_values(): {q}", d.file, v.name)
            });
            let values = prom.label_values(&selector, &label);
            if values.is_empty() {
                empty.push(format!(
                    "{} ({}): variable ${}: {q}",
                    d.file, d.title, v.name
                ));
                continue;
            }
            vars.push((v.name.clone(), grafana_multi_value(&values)));
        }
        for target in &d.targets {
            let expr = substitute(&target.expr, &vars);
            if expr.replace("\"$1\"", "").contains('$') {
                empty.push(format!(
                    "{} / panel \"{}\" / {}: not evaluated, a variable is unset: {expr}",
                    d.file, target.panel, target.ref_id
                ));
                continue;
            }
            evaluated += 1;
            if !has_finite_value(&prom.query(&expr, t)) {
                empty.push(format!(
                    "{} / panel \"{}\" / {}: {expr}",
                    d.file, target.panel, target.ref_id
                ));
            }
        }
    }
    if !empty.is_empty() {
        let text = scrape(metrics_port);
        let mut seen: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('{').map(|(n, _)| n))
            .filter(|n| !n.ends_with("_bucket"))
            .collect();
        seen.sort();
        seen.dedup();
        let services: std::collections::BTreeSet<&str> = text
            .split("service_name=\"")
            .skip(1)
            .filter_map(|r| r.split('"').next())
            .collect();
        panic!(
            "{} of {evaluated} dashboard queries returned no data:\n{}\n\
             the agent serves {seen:?} for services {services:?}",
            empty.len(),
            empty.join("\n")
        );
    }
    assert!(evaluated >= 60, "only {evaluated} queries");

    // Exact values: what the driver sent and got.
    let codes = by_label(
        &prom,
        "sum by (http_response_status_code) \
         (http_server_request_duration_seconds_count{service_name=\"nginx\"})",
        "http_response_status_code",
        t,
    );
    let want: BTreeMap<String, f64> = ["200", "404", "500"]
        .iter()
        .map(|c| (c.to_string(), total(&["http", c])))
        .collect();
    assert_eq!(
        want,
        BTreeMap::from([
            ("200".into(), 12.0),
            ("404".into(), 4.0),
            ("500".into(), 2.0)
        ])
    );
    let with_own: BTreeMap<String, f64> = want
        .iter()
        .map(|(c, n)| (c.clone(), n + if c == "404" { 0.0 } else { 2.0 }))
        .collect();
    assert_eq!(
        codes, with_own,
        "nginx's requests by status, as the clients got them"
    );
    let client_codes = by_label(
        &prom,
        &format!(
            "sum by (http_response_status_code) (http_client_request_duration_seconds_count\
             {{service_name=\"python3\",server_port=\"{}\"}})",
            nginx.port
        ),
        "http_response_status_code",
        t,
    );
    assert_eq!(client_codes, want, "the same seen by the client");
    let edge = |c: &str, s: &str, m: &str| {
        scalar(
            &prom,
            &format!("sum({m}{{client=\"{c}\",server=\"{s}\"}})"),
            t,
        )
    };
    let failed = "wirelens_service_graph_requests_failed_total";
    // Both ends observed, each exchange once, from nginx's side; 404 is not a failure.
    let edges: Vec<String> = prom
        .query(graph, t)
        .iter()
        .map(|s| format!("{} {}", s["metric"], s["value"][1]))
        .collect();
    assert_eq!(edge("python3", "nginx", graph), 18.0, "{edges:#?}");
    assert_eq!(edge("python3", "nginx", failed), 2.0);
    // This test's own requests: counted by nginx alone, the client named by its address.
    assert_eq!(edge("127.0.0.1", "nginx", graph), 4.0);
    assert_eq!(edge("127.0.0.1", "nginx", failed), 2.0);
    assert_eq!(
        scalar(
            &prom,
            "sum(wirelens_service_graph_request_duration_seconds_count\
             {client=\"python3\",server=\"nginx\"})",
            t
        ),
        18.0
    );
    let redis_cmds = total(&["redis", "commands"]);
    let redis_errs = total(&["redis", "errors"]);
    assert_eq!((redis_cmds, redis_errs), (10.0, 2.0));
    assert_eq!(edge("python3", "redis-server", graph), redis_cmds);
    assert_eq!(edge("python3", "redis-server", failed), redis_errs);
    assert_eq!(
        scalar(
            &prom,
            "sum(db_client_operation_duration_seconds_count\
             {service_name=\"python3\",db_system_name=\"redis\"})",
            t
        ),
        redis_cmds
    );
    assert_eq!(
        scalar(
            &prom,
            "sum(db_client_operation_duration_seconds_count\
             {service_name=\"python3\",db_system_name=\"redis\",error_type=\"ERR\"})",
            t
        ),
        redis_errs
    );
    assert_eq!(
        scalar(
            &prom,
            "sum(wirelens_db_server_operation_duration_seconds_count\
             {service_name=\"redis-server\"})",
            t
        ),
        redis_cmds
    );
    // DNS: the 8 queries by type, the 2 NXDOMAIN; one edge python3 -> dnsmasq.
    assert_eq!(total(&["dns", "NXDOMAIN"]), 2.0);
    assert_eq!(total(&["dns", "NOERROR"]), 6.0);
    let types = by_label(
        &prom,
        "sum by (dns_question_type) (dns_lookup_duration_seconds_count{service_name=\"python3\"})",
        "dns_question_type",
        t,
    );
    assert_eq!(
        types,
        BTreeMap::from([("A".into(), 4.0), ("AAAA".into(), 2.0), ("MX".into(), 2.0)])
    );
    assert_eq!(
        scalar(
            &prom,
            "sum(dns_lookup_duration_seconds_count{service_name=\"python3\",error_type=\"NXDOMAIN\"})",
            t
        ),
        2.0
    );
    assert_eq!(
        edge("python3", "dnsmasq", graph),
        8.0,
        "{:?}",
        records
            .iter()
            .filter(|r| r["protocol"] == "dns")
            .map(|r| format!(
                "{} {} {} {}",
                r["role"], r["client"], r["server"], r["process"]
            ))
            .collect::<Vec<_>>()
    );
    assert_eq!(edge("python3", "dnsmasq", failed), 2.0);
    // PostgreSQL: the failing statement, twice, seen by psql and by the backend.
    assert_eq!(total(&["pgsql", "failed"]), 2.0);
    for (metric, service) in [
        ("db_client_operation_duration_seconds_count", "psql"),
        (
            "wirelens_db_server_operation_duration_seconds_count",
            "postgres",
        ),
    ] {
        assert_eq!(
            scalar(
                &prom,
                &format!(
                    "sum({metric}{{service_name=\"{service}\",db_system_name=\"postgresql\",\
                     error_type=\"42P01\"}})"
                ),
                t
            ),
            2.0,
            "{metric}"
        );
    }
    assert_eq!(edge("psql", "postgres", failed), 2.0);
    // The request never answered: once per side in the unanswered counter, once on the edge.
    assert_eq!(total(&["hang"]), 2.0);
    let unanswered = by_label(
        &prom,
        "sum by (role) (wirelens_requests_unanswered_total{service_name=\"python3\",protocol=\"http\"})",
        "role",
        t,
    );
    assert_eq!(
        unanswered,
        BTreeMap::from([("client".into(), 2.0), ("server".into(), 2.0)])
    );
    assert_eq!(edge("python3", "python3", graph), 2.0);
    assert_eq!(edge("python3", "python3", failed), 2.0);
    // Nothing named by address where both ends are observed here.
    let by_address = prom.query(
        &format!("{graph}{{server=~\"127\\\\.0\\\\.0\\\\.1:.*\"}}"),
        t,
    );
    assert!(
        by_address.is_empty(),
        "edges to observed servers named by address: {by_address:?}"
    );
    assert!(
        scalar(&prom, "sum(wirelens_service_graph_deduplicated_total)", t) >= 18.0 + 10.0 + 8.0
    );
    assert!(!records.is_empty(), "{stderr}");
}
