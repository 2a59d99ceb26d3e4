//! Live filter tests: real processes kept or dropped by cmdline, cgroup, network namespace
//! and port, a process that execs after the agent started, and a reload while traffic flows.
//! Root only (CI is root); WIRELENS_SKIP_ROOT_TESTS=1 skips them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// `python3 -m http.server PORT` started through `sh -c PREFIX exec ...`, so a test can
/// place it in a cgroup or a network namespace first. Its cmdline holds the port.
fn http_server(port: u16, prefix: &str, wrapper: &[&str]) -> Proc {
    let dir = std::env::temp_dir();
    let script = format!(
        "{prefix} exec python3 -m http.server {port} --bind 127.0.0.1 --directory {} >/dev/null 2>&1",
        dir.display()
    );
    let mut cmd = Command::new(wrapper.first().copied().unwrap_or("sh"));
    if wrapper.len() > 1 {
        cmd.args(&wrapper[1..]).arg("sh");
    }
    let child = cmd
        .args(["-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting python3 -m http.server");
    Proc {
        child,
        name: format!("http.server {port}"),
    }
}

/// The same server speaking HTTP/1.1, serving `dir`: a connection stays open between
/// requests (for files that exist: an error response closes it), served by one thread of the
/// server for its whole life.
fn keepalive_http_server(port: u16, dir: &Path) -> Proc {
    let child = Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .args(["--protocol", "HTTP/1.1", "--directory"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting python3 -m http.server");
    Proc {
        child,
        name: format!("http.server {port}"),
    }
}

fn get(port: u16, path: &str) -> u16 {
    Client::connect(port).send(&[("GET", path)])[0]
}

/// Each record's server port and request path.
fn served(records: &[Value]) -> Vec<(u64, String)> {
    records
        .iter()
        .map(|r| {
            (
                r["server"]["port"].as_u64().unwrap_or(0),
                r["request"]["path"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Waits (10 s at most) for `what` to be in the agent's log `n` times.
fn wait_log(agent: &Agent, what: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = std::fs::read_to_string(&agent.stderr).unwrap_or_default();
        if log.matches(what).count() >= n {
            return;
        }
        assert!(Instant::now() < deadline, "no `{what}` in the log:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A config keeping only the `http.server` on `port`.
fn keep_server(port: u16) -> String {
    format!("filters:\n  include:\n    cmdline: [\"http.server {port} \"]\n")
}

fn ports_of(records: &[Value]) -> Vec<u64> {
    records
        .iter()
        .map(|r| r["server"]["port"].as_u64().unwrap_or(0))
        .collect()
}

fn counter(stderr: &str, name: &str) -> u64 {
    stderr
        .split_whitespace()
        .filter_map(|w| w.strip_prefix(name)?.strip_prefix('='))
        .filter_map(|v| v.parse().ok())
        .next_back()
        .unwrap_or_else(|| panic!("no {name} in {stderr}"))
}

fn config_file(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("wirelens.yaml");
    std::fs::write(&p, body).expect("config");
    p
}

#[test]
fn root_filters_by_cmdline_only_kept_traffic_leaves_the_kernel() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let (a, b) = (free_port(), free_port());
    let _sa = http_server(a, "", &[]);
    let _sb = http_server(b, "", &[]);
    wait_for_port(a);
    wait_for_port(b);
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config_file(
        dir.path(),
        &format!("filters:\n  include:\n    cmdline: [\"http.server {a} \"]\n"),
    );
    let agent = Agent::start(&["--config".into(), cfg.display().to_string()]);
    for i in 0..3 {
        assert_eq!(get(a, &format!("/?kept={i}")), 200);
        assert_eq!(get(b, &format!("/?dropped={i}")), 200);
    }
    let (records, stderr) = agent.stop();
    assert_eq!(ports_of(&records), vec![a as u64; 3], "{stderr}");
    // Three connections reached user space, each a request and a response (read, writes):
    // the excluded server's three connections never left the kernel.
    assert_eq!(counter(&stderr, "conns"), 3, "{stderr}");
}

#[test]
fn root_filters_by_port_exclude() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let (a, b) = (free_port(), free_port());
    let sa = http_server(a, "", &[]);
    let sb = http_server(b, "", &[]);
    wait_for_port(a);
    wait_for_port(b);
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config_file(
        dir.path(),
        &format!(
            "pids: [{}, {}]\nfilters:\n  ports: {{exclude: [{b}]}}\n",
            sa.pid(),
            sb.pid()
        ),
    );
    let agent = Agent::start(&["--config".into(), cfg.display().to_string()]);
    assert_eq!(get(a, "/one"), 404);
    assert_eq!(get(b, "/two"), 404);
    let (records, stderr) = agent.stop();
    assert_eq!(ports_of(&records), vec![a as u64], "{stderr}");
}

/// A cgroup v2 directory made for a test, removed (after its processes) on drop.
struct Cgroup(PathBuf);

impl Cgroup {
    fn new(name: &str) -> Cgroup {
        let root = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.join("cgroup.controllers").exists())
            .expect("a cgroup v2 hierarchy");
        let dir = root.join(name);
        let _ = std::fs::create_dir(&dir);
        Cgroup(dir)
    }
}

impl Cgroup {
    /// `python3 -m http.server PORT` started inside this cgroup.
    fn http_server(&self, port: u16) -> Proc {
        http_server(
            port,
            &format!("echo $$ > {}/cgroup.procs;", self.0.display()),
            &[],
        )
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // The processes are killed by their guards first (declared later, dropped earlier).
        for _ in 0..50 {
            if std::fs::remove_dir(&self.0).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn root_filters_by_cgroup_decides_whole_cgroups_in_the_kernel() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let keep = Cgroup::new(&format!("wl-test-keep-{}", std::process::id()));
    let drop_ = Cgroup::new(&format!("wl-test-drop-{}", std::process::id()));
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config_file(
        dir.path(),
        &format!(
            "filters:\n  include:\n    cgroup: [\"^/{}$\"]\n  undecided: drop\n",
            keep.0.file_name().and_then(|n| n.to_str()).unwrap_or("")
        ),
    );
    // The agent starts first: the servers appear later, in their cgroups, and are decided
    // by the kernel from the cgroup entry the agent wrote.
    let agent = Agent::start(&["--config".into(), cfg.display().to_string()]);
    let (a, b) = (free_port(), free_port());
    let _sa = keep.http_server(a);
    let _sb = drop_.http_server(b);
    wait_for_port(a);
    wait_for_port(b);
    assert_eq!(get(a, "/in-kept-cgroup"), 404);
    assert_eq!(get(b, "/in-dropped-cgroup"), 404);
    let (records, stderr) = agent.stop();
    assert_eq!(ports_of(&records), vec![a as u64], "{stderr}");
    assert_eq!(counter(&stderr, "conns"), 1, "{stderr}");
}

/// The agent in a cgroup namespace of its own, as in a container on cgroup v2, with the
/// host's cgroup tree mounted (as the DaemonSet mounts it): `/proc/PID/cgroup` shows other
/// processes' cgroups from the agent's namespace root (`/../keep`), but the `cgroup` key is
/// written, and matched, as the host's tree names them. One server runs before the agent
/// (decided from /proc at start), one starts after it (decided at its exec), in each cgroup.
#[test]
fn root_filters_by_cgroup_from_a_cgroup_namespace_of_its_own() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let top = format!("wl-test-cgns-{}", std::process::id());
    // Removed last: declared first.
    let _parent = Cgroup::new(&top);
    let own = Cgroup::new(&format!("{top}/agent"));
    let keep = Cgroup::new(&format!("{top}/keep"));
    let drop_ = Cgroup::new(&format!("{top}/drop"));
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config_file(
        dir.path(),
        &format!("filters:\n  include:\n    cgroup: [\"^/{top}/keep$\"]\n  undecided: drop\n"),
    );
    let (a1, b1, a2, b2) = (free_port(), free_port(), free_port(), free_port());
    let _sa1 = keep.http_server(a1);
    let _sb1 = drop_.http_server(b1);
    wait_for_port(a1);
    wait_for_port(b1);
    // Into its cgroup, then a cgroup namespace rooted there, then the agent (same pid).
    let enter = format!(
        "echo $$ > {}/cgroup.procs && exec unshare --cgroup \"$0\" \"$@\"",
        own.0.display()
    );
    let agent = Agent::start_wrapped(
        &["sh", "-c", &enter],
        &["--config".into(), cfg.display().to_string()],
    );
    let seen = std::fs::read_to_string(format!("/proc/{}/cgroup", agent.proc.pid()))
        .expect("agent's cgroup");
    let v2 = seen.lines().find(|l| l.starts_with("0::"));
    assert_eq!(
        v2,
        Some(format!("0::/{top}/agent").as_str()),
        "seen from the host"
    );
    let _sa2 = keep.http_server(a2);
    let _sb2 = drop_.http_server(b2);
    wait_for_port(a2);
    wait_for_port(b2);
    for port in [a1, b1, a2, b2] {
        assert_eq!(get(port, "/through-a-cgroup-namespace"), 404);
    }
    let (records, stderr) = agent.stop();
    let mut ports = ports_of(&records);
    ports.sort_unstable();
    let mut want = vec![u64::from(a1), u64::from(a2)];
    want.sort_unstable();
    assert_eq!(ports, want, "{stderr}");
    assert!(
        stderr.contains(&format!("root=/{top}/agent")),
        "the namespace root was found: {stderr}"
    );
}

#[test]
fn root_filters_by_network_namespace() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let ns = NetNs::new(&format!("wltest{}", std::process::id()));
    let (a, b) = (free_port(), free_port());
    // Server and client of `a` inside the namespace; `b` in the host's namespace.
    let _sa = http_server(a, "", &["ip", "netns", "exec", &ns.name]);
    let _sb = http_server(b, "", &[]);
    wait_for_port(b);
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config_file(
        dir.path(),
        &format!(
            "filters:\n  include:\n    netns: [/var/run/netns/{}]\n",
            ns.name
        ),
    );
    let agent = Agent::start(&["--config".into(), cfg.display().to_string()]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let code = loop {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns.name,
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .arg(format!("http://127.0.0.1:{a}/inside-netns"))
            .output()
            .expect("curl in netns");
        let code = String::from_utf8_lossy(&out.stdout).to_string();
        if code != "000" || Instant::now() > deadline {
            break code;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(code, "404");
    assert_eq!(get(b, "/host-netns"), 404);
    let (records, stderr) = agent.stop();
    // curl also runs in the namespace, so both sides of `a` are kept; nothing of `b`.
    let paths: Vec<&str> = records
        .iter()
        .map(|r| r["request"]["path"].as_str().unwrap_or(""))
        .collect();
    assert!(!paths.is_empty(), "{stderr}");
    assert!(
        paths.iter().all(|p| *p == "/inside-netns"),
        "{paths:?} {stderr}"
    );
    assert!(ports_of(&records).iter().all(|p| *p == a as u64));
    let roles: Vec<&str> = records
        .iter()
        .map(|r| r["role"].as_str().unwrap_or(""))
        .collect();
    assert!(roles.contains(&"server"), "{roles:?}");
}

#[test]
fn root_filters_decide_a_process_that_execs_after_the_agent_started() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let (a, b) = (free_port(), free_port());
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config_file(
        dir.path(),
        &format!("filters:\n  include:\n    cmdline: [\"http.server {a} \"]\n"),
    );
    let agent = Agent::start(&["--config".into(), cfg.display().to_string()]);
    let _sa = http_server(a, "", &[]);
    let _sb = http_server(b, "", &[]);
    wait_for_port(a);
    wait_for_port(b);
    assert_eq!(get(a, "/late-kept"), 404);
    assert_eq!(get(b, "/late-dropped"), 404);
    let (records, stderr) = agent.stop();
    assert_eq!(ports_of(&records), vec![a as u64], "{stderr}");
}

#[test]
fn root_filters_reload_switches_over_and_refuses_a_broken_config() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let (a, b) = (free_port(), free_port());
    let _sa = http_server(a, "", &[]);
    let _sb = http_server(b, "", &[]);
    wait_for_port(a);
    wait_for_port(b);
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config_file(dir.path(), &keep_server(a));
    let agent = Agent::start(&["--config".into(), cfg.display().to_string()]);
    assert_eq!(get(a, "/phase1"), 404);
    assert_eq!(get(b, "/phase1"), 404);
    // Switch to b by rewriting the file (noticed by the watcher), with two keys a reload
    // does not apply changed too: the log names them.
    std::thread::sleep(Duration::from_millis(1100)); // a new mtime second on coarse clocks
    let later = "capture_bytes: 512\naggregation:\n  period_s: 30\n";
    std::fs::write(&cfg, keep_server(b) + later).expect("rewrite");
    wait_log(&agent, "configuration reloaded", 1);
    let log = std::fs::read_to_string(&agent.stderr).unwrap_or_default();
    assert!(
        log.contains("keys=capture_bytes, aggregation")
            && log.contains("take effect at the next start"),
        "{log}"
    );
    assert_eq!(get(a, "/phase2"), 404);
    assert_eq!(get(b, "/phase2"), 404);
    // A broken file is refused (SIGHUP also reloads); b stays kept.
    std::fs::write(&cfg, "filters:\n  include:\n    cmdline: [\"(unclosed\"]\n").expect("w");
    agent.proc.signal(libc::SIGHUP);
    wait_log(&agent, "configuration refused", 1);
    assert_eq!(get(a, "/phase3"), 404);
    assert_eq!(get(b, "/phase3"), 404);
    let log = std::fs::read_to_string(&agent.stderr).unwrap_or_default();
    assert!(log.contains("filters.include.cmdline[0]"), "{log}");
    let (records, stderr) = agent.stop();
    assert_eq!(
        served(&records),
        vec![
            (a as u64, "/phase1".to_string()),
            (b as u64, "/phase2".to_string()),
            (b as u64, "/phase3".to_string()),
        ],
        "{stderr}"
    );
}

/// A reload reaches threads that were already deciding: each thread keeps its verdict in the
/// kernel between calls (task-local storage), and a change of the filters must void it. Two
/// connections stay open across the reload, each served by the same server thread before
/// and after.
#[test]
fn root_filters_reload_reaches_connections_already_open() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let (a, b) = (free_port(), free_port());
    let dir = tempfile::tempdir().expect("tmp");
    for name in ["before", "switch", "after"] {
        std::fs::write(dir.path().join(name), "ok\n").expect("file");
    }
    let _sa = keepalive_http_server(a, dir.path());
    let _sb = keepalive_http_server(b, dir.path());
    wait_for_port(a);
    wait_for_port(b);
    let cfg = config_file(dir.path(), &keep_server(a));
    let agent = Agent::start(&["--config".into(), cfg.display().to_string()]);
    let (mut ca, mut cb) = (Client::connect(a), Client::connect(b));
    for _ in 0..3 {
        assert_eq!(ca.send(&[("GET", "/before")]), vec![200]);
        assert_eq!(cb.send(&[("GET", "/before")]), vec![200]);
    }
    std::thread::sleep(Duration::from_millis(1100)); // a new mtime second on coarse clocks
    std::fs::write(&cfg, keep_server(b)).expect("rewrite");
    wait_log(&agent, "configuration reloaded", 1);
    // Each server thread was already waiting in a read when the filters changed: that call
    // entered under the old decision, which it keeps (decisions apply to the calls that
    // start after them). Its request is not compared.
    assert_eq!(ca.send(&[("GET", "/switch")]), vec![200]);
    assert_eq!(cb.send(&[("GET", "/switch")]), vec![200]);
    for _ in 0..3 {
        assert_eq!(ca.send(&[("GET", "/after")]), vec![200]);
        assert_eq!(cb.send(&[("GET", "/after")]), vec![200]);
    }
    drop((ca, cb));
    let (records, stderr) = agent.stop();
    let mut seen = served(&records);
    seen.retain(|(_, path)| path != "/switch");
    seen.sort();
    let mut want = vec![(a as u64, "/before".to_string()); 3];
    want.extend(vec![(b as u64, "/after".to_string()); 3]);
    want.sort();
    assert_eq!(seen, want, "{stderr}");
}

/// The request lines the kernel sent, by the local port of the socket they were read on.
struct RequestsSeen(std::sync::Arc<std::sync::Mutex<Vec<(u16, String)>>>);

impl wirelens::capture::Sink for RequestsSeen {
    fn event(&mut self, ev: &wirelens::event::SourceEvent) -> bool {
        if let wirelens::event::SourceEvent::Data(d) = ev {
            let line = String::from_utf8_lossy(&d.data);
            let line = line.lines().next().unwrap_or("").to_string();
            if let (Some(o), true) = (&d.observer, line.starts_with("GET ")) {
                let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
                seen.push((o.local.port(), line));
            }
        }
        true
    }

    fn drained(&mut self, _: &wirelens::capture::CaptureCounters) -> bool {
        true
    }
}

/// The kernel's own cgroup decisions, with no decision for the processes' tgids (the agent
/// decides every process it knows of by tgid too, so its runs do not show this): while the
/// cgroup map holds decisions the programs look a thread's cgroup up, and while it is empty
/// they do not even read it. Driven through the control maps directly.
#[test]
fn root_filters_cgroup_decisions_alone_decide_in_the_kernel() {
    use std::os::unix::fs::MetadataExt;
    use wirelens::capture::{control::Settings, Capture, CaptureConfig};
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let one = Cgroup::new(&format!("wl-test-one-{}", std::process::id()));
    let two = Cgroup::new(&format!("wl-test-two-{}", std::process::id()));
    let (a, b) = (free_port(), free_port());
    let _sa = one.http_server(a);
    let _sb = two.http_server(b);
    wait_for_port(a);
    wait_for_port(b);
    let id = |c: &Cgroup| std::fs::metadata(&c.0).expect("cgroup").ino();
    let (id_one, id_two) = (id(&one), id(&two));
    let settings = Settings {
        proto_mask: u32::MAX,
        filter: true,
        undecided_drop: true,
        ..Default::default()
    };
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (exec_tx, _exec_rx) = std::sync::mpsc::channel();
    let capture = Capture::start(
        CaptureConfig::default(),
        RequestsSeen(seen.clone()),
        exec_tx,
        Box::new(move |maps| {
            maps.set_cgroups(&[(id_one, true), (id_two, false)])?;
            maps.write_settings(&settings)
        }),
    )
    .expect("loading the capture");
    // Each request is a connection of its own, read by a fresh server thread.
    assert_eq!(get(a, "/kept-by-cgroup"), 404);
    assert_eq!(get(b, "/dropped-by-cgroup"), 404);
    capture
        .control
        .set_cgroups(&[])
        .expect("no cgroup decisions");
    assert_eq!(get(a, "/undecided"), 404);
    assert_eq!(get(b, "/undecided"), 404);
    capture
        .control
        .set_cgroups(&[(id_two, true)])
        .expect("keep the other cgroup");
    assert_eq!(get(a, "/undecided-again"), 404);
    assert_eq!(get(b, "/kept-after-all"), 404);
    capture.stop().expect("the reader ended");
    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    seen.sort();
    let mut want = vec![
        (a, "GET /kept-by-cgroup HTTP/1.1".to_string()),
        (b, "GET /kept-after-all HTTP/1.1".to_string()),
    ];
    want.sort();
    assert_eq!(seen, want);
}
