//! Helpers of the live tests: the agent, real servers, and their cleanup.
//!
//! Every process a test starts is owned by a guard that kills it by pid and waits for it when
//! the guard drops, so a failing test leaves nothing running.
#![allow(dead_code)]

pub mod drill;
pub mod pg;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Live tests take this lock: one agent at a time keeps counts and timings clean.
pub static LIVE: Mutex<()> = Mutex::new(());

/// True when the root-only tests must run. They skip only when WIRELENS_SKIP_ROOT_TESTS=1 asks
/// for it; without root and without that variable they fail, saying why.
pub fn root_tests_enabled() -> bool {
    if std::env::var("WIRELENS_SKIP_ROOT_TESTS").as_deref() == Ok("1") {
        eprintln!("skipping: WIRELENS_SKIP_ROOT_TESTS=1");
        return false;
    }
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "live tests need root (CI runs as root); set WIRELENS_SKIP_ROOT_TESTS=1 to skip them"
    );
    true
}

/// The agent's counter `name` (`name=N`) as last printed in `stderr` (its exit line).
pub fn agent_counter(stderr: &str, name: &str) -> Option<u64> {
    let key = format!("{name}=");
    stderr
        .split_whitespace()
        .rev()
        .find_map(|w| w.strip_prefix(key.as_str()))
        .and_then(|v| v.parse().ok())
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_wirelens")
}

/// A child process killed (SIGKILL unless stopped before) and reaped on drop.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill() on a pid this guard owns and has not reaped yet.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A network namespace of one test (`ip netns add`), with its loopback up; deleted when
/// dropped (its veth ends go with it). Declare it before the guards of the processes in it,
/// so that they are stopped first.
pub struct NetNs {
    pub name: String,
    handle: std::fs::File,
}

impl NetNs {
    pub fn new(name: &str) -> NetNs {
        run_ok("ip", &["netns", "add", name]);
        let handle = std::fs::File::open(format!("/run/netns/{name}"));
        let ns = NetNs {
            name: name.into(),
            handle: match handle {
                Ok(h) => h,
                Err(e) => {
                    let _ = Command::new("ip").args(["netns", "del", name]).status();
                    panic!("opening network namespace {name}: {e}");
                }
            },
        };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NAME ARGS`, which must succeed.
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        run_ok("ip", &all);
    }

    /// `PROG ARGS` run to its end inside the namespace (`ip netns exec`), which must succeed.
    pub fn exec(&self, prog: &str, args: &[&str]) {
        let mut all = vec!["netns", "exec", self.name.as_str(), prog];
        all.extend_from_slice(args);
        run_ok("ip", &all);
    }

    /// Makes `cmd` start inside the namespace (its network only: mounts stay the host's).
    pub fn enter(&self, cmd: &mut Command) {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let fd = self.handle.as_raw_fd();
        // SAFETY: setns is async-signal-safe and allocates nothing; `fd` stays open until
        // spawn returns, since `self` outlives this borrow of `cmd` at the call sites.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }

    /// Runs `f` on a thread inside the namespace (a thread's network namespace is its own),
    /// so that the test's sockets there are the namespace's.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        use std::os::fd::AsRawFd;
        let fd = self.handle.as_raw_fd();
        std::thread::scope(|s| {
            s.spawn(move || {
                // SAFETY: `fd` is the namespace's handle, open for the scope's length.
                let rc = unsafe { libc::setns(fd, libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Two namespaces joined by a veth pair, `a` at `a_ip`/30 and `c` at `c_ip`/30, with every
/// other address of `a` routed to `c`.
pub fn veth_pair(a: &NetNs, a_ip: &str, c: &NetNs, c_ip: &str) {
    let (va, vc) = (format!("{}v", a.name), format!("{}v", c.name));
    run_ok(
        "ip",
        &["link", "add", &va, "type", "veth", "peer", "name", &vc],
    );
    run_ok("ip", &["link", "set", &va, "netns", &a.name]);
    run_ok("ip", &["link", "set", &vc, "netns", &c.name]);
    a.ip(&["addr", "add", &format!("{a_ip}/30"), "dev", &va]);
    c.ip(&["addr", "add", &format!("{c_ip}/30"), "dev", &vc]);
    a.ip(&["link", "set", &va, "up"]);
    c.ip(&["link", "set", &vc, "up"]);
    a.ip(&["route", "add", "default", "dev", &va]);
}

/// Runs `prog args` to its end; panics with its output when it fails.
pub fn run_ok(prog: &str, args: &[&str]) {
    let out = Command::new(prog)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {prog}: {e}"));
    assert!(
        out.status.success(),
        "{prog} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding a loopback port")
}

pub fn wait_for_port(port: u16) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on 127.0.0.1:{port} after 10 s");
}

/// The agent, started with `run --format jsonl --output FILE` plus `args`.
pub struct Agent {
    pub proc: Proc,
    pub out: PathBuf,
    pub stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Agent {
    pub fn start(args: &[String]) -> Agent {
        Agent::start_with_env(args, &[])
    }

    /// [`Agent::start`] with extra environment variables (e.g. `KUBECONFIG`, `NODE_NAME`).
    pub fn start_with_env(args: &[String], env: &[(&str, &str)]) -> Agent {
        Agent::launch(&[], args, env, None)
    }

    /// [`Agent::start`] in network namespace `ns`, as in a pod without the host's network.
    pub fn start_in(ns: &NetNs, args: &[String]) -> Agent {
        Agent::launch(&[], args, &[], Some(ns))
    }

    /// [`Agent::start`] through `wrapper`, a command that ends by exec'ing the agent's path
    /// and arguments, given after it (so the agent keeps the wrapper's pid).
    pub fn start_wrapped(wrapper: &[&str], args: &[String]) -> Agent {
        Agent::launch(wrapper, args, &[], None)
    }

    fn launch(
        wrapper: &[&str],
        args: &[String],
        env: &[(&str, &str)],
        ns: Option<&NetNs>,
    ) -> Agent {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("records.jsonl");
        let stderr = dir.path().join("stderr.log");
        let mut cmd = match wrapper.split_first() {
            Some((prog, rest)) => {
                let mut c = Command::new(prog);
                c.args(rest).arg(bin());
                c
            }
            None => Command::new(bin()),
        };
        cmd.arg("run")
            .args(["--format", "jsonl", "--output"])
            .arg(&out)
            .args(args)
            .env("WIRELENS_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        if let Some(ns) = ns {
            ns.enter(&mut cmd);
        }
        let child = cmd.spawn().expect("starting wirelens run");
        let proc = Proc {
            child,
            name: "wirelens".into(),
        };
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(&stderr).unwrap_or_default();
            if text.contains("wirelens: capturing") {
                break;
            }
            if start.elapsed() > Duration::from_secs(30) || text.contains("error") {
                panic!("agent did not start: {text}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Agent {
            proc,
            out,
            stderr,
            _dir: dir,
        }
    }

    /// SIGINT, wait for exit 0, and return the records and the agent's stderr.
    pub fn stop(mut self) -> (Vec<serde_json::Value>, String) {
        // Let the last events reach the ring buffer reader before detaching.
        std::thread::sleep(Duration::from_millis(300));
        self.proc.signal(libc::SIGINT);
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.proc.child.try_wait().expect("waiting for the agent") {
                break s;
            }
            if start.elapsed() > Duration::from_secs(20) {
                panic!("agent did not exit within 20 s of SIGINT");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        assert!(status.success(), "agent exited with {status}: {stderr}");
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        let records = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSONL {l}: {e}")))
            .collect();
        (records, stderr)
    }
}

/// nginx from Debian with its own configuration in a temp dir, on 127.0.0.1:`port`, one
/// worker. Serves `root`, answers `/echo` POSTs with 201 and `/fail` with 500.
pub struct Nginx {
    pub master: Proc,
    pub port: u16,
    pub root: PathBuf,
    _dir: tempfile::TempDir,
}

impl Nginx {
    pub fn start() -> Nginx {
        Nginx::start_with("")
    }

    /// With `directives` added to the `http` block (e.g. `sendfile on;`).
    pub fn start_with(directives: &str) -> Nginx {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("www");
        std::fs::create_dir_all(&root).expect("www");
        std::fs::write(root.join("index.html"), "<h1>wirelens</h1>\n").expect("index");
        std::fs::write(root.join("a.txt"), "a".repeat(100)).expect("a.txt");
        std::fs::write(root.join("big.bin"), vec![b'x'; 64 * 1024]).expect("big");
        let port = free_port();
        let conf = dir.path().join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "daemon off;\nworker_processes 1;\nuser root;\npid {d}/nginx.pid;\n\
                 error_log {d}/error.log;\nevents {{ worker_connections 256; }}\n\
                 http {{\n access_log off;\n client_body_temp_path {d}/body;\n\
                 proxy_temp_path {d}/proxy;\n fastcgi_temp_path {d}/fcgi;\n\
                 uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n\
                 keepalive_requests 10000;\n {directives}\n\
                 server {{\n  listen 127.0.0.1:{port};\n  root {r};\n\
                 location /echo {{ return 201 \"created\\n\"; }}\n\
                 location = /fail {{ return 500; }}\n }}\n}}\n",
                d = dir.path().display(),
                r = root.display(),
            ),
        )
        .expect("nginx.conf");
        let nginx = which("nginx").unwrap_or_else(|| PathBuf::from("/usr/sbin/nginx"));
        let child = Command::new(nginx)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting nginx");
        let master = Proc {
            child,
            name: "nginx".into(),
        };
        wait_for_port(port);
        Nginx {
            master,
            port,
            root,
            _dir: dir,
        }
    }

    /// The worker processes (children of the master): they do the socket I/O. Waits until
    /// the worker exists, so a `--pid` list built from it is never empty.
    pub fn workers(&self) -> Vec<u32> {
        let start = Instant::now();
        loop {
            let w = children(self.master.pid());
            if !w.is_empty() {
                return w;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "nginx started no worker within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // The master first: killed after a worker, it would start a new one, left orphaned.
        let workers = children(self.master.pid());
        self.master.signal(libc::SIGKILL);
        for w in workers {
            // SAFETY: signalling a child of a process this test started.
            unsafe { libc::kill(w as i32, libc::SIGKILL) };
        }
    }
}

/// Python's http.server (HTTP/1.1, keep-alive) serving a temp dir on 127.0.0.1:`port`.
pub struct PyServer {
    pub proc: Proc,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl PyServer {
    pub fn start() -> PyServer {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("hello.txt"), "hello from python\n").expect("file");
        let script = dir.path().join("server.py");
        std::fs::write(
            &script,
            "import http.server, sys\n\
             class H(http.server.SimpleHTTPRequestHandler):\n\
             \x20   protocol_version = 'HTTP/1.1'\n\
             \x20   def log_message(self, *a): pass\n\
             http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n",
        )
        .expect("server.py");
        let port = free_port();
        let child = Command::new("python3")
            .arg(&script)
            .arg(port.to_string())
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting python3");
        let proc = Proc {
            child,
            name: "python3".into(),
        };
        wait_for_port(port);
        PyServer {
            proc,
            port,
            _dir: dir,
        }
    }
}

pub fn which(name: &str) -> Option<PathBuf> {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return Some(p);
        }
    }
    None
}

/// Child pids of `pid`, from /proc.
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            // Field 4 (ppid) follows the ")" that ends the command name.
            if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
                let ppid = rest.split_whitespace().nth(1).and_then(|s| s.parse().ok());
                if ppid == Some(pid) {
                    out.push(p);
                }
            }
        }
    }
    out
}

/// An HTTP/1.1 client on one keep-alive connection that sends requests and reads responses
/// (Content-Length bodies), returning the status of each.
pub struct Client {
    stream: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        Client {
            stream: BufReader::new(s),
        }
    }

    /// Writes all `requests` in one write (pipelining when there are several), then reads
    /// as many responses; `head` marks which requests are HEAD (no body in the response).
    pub fn send(&mut self, requests: &[(&str, &str)]) -> Vec<u16> {
        let mut buf = String::new();
        for (method, path) in requests {
            buf.push_str(&format!(
                "{method} {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: wirelens-test\r\n\
                 Content-Length: 0\r\n\r\n"
            ));
        }
        self.stream
            .get_mut()
            .write_all(buf.as_bytes())
            .expect("write");
        requests
            .iter()
            .map(|(method, _)| self.read_response(*method == "HEAD"))
            .collect()
    }

    fn read_response(&mut self, head: bool) -> u16 {
        let mut line = String::new();
        self.stream.read_line(&mut line).expect("status line");
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            self.stream.read_line(&mut h).expect("header");
            if h == "\r\n" || h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().expect("content-length");
                }
            }
        }
        if !head {
            let mut body = vec![0; len];
            self.stream.read_exact(&mut body).expect("body");
        }
        status
    }
}

/// redis-server on 127.0.0.1 (a free port), no persistence, in a temp dir.
pub struct Redis {
    pub proc: Proc,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Redis {
    pub fn start() -> Redis {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let child = Command::new(which("redis-server").expect("redis-server installed"))
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting redis-server");
        let proc = Proc {
            child,
            name: "redis-server".into(),
        };
        wait_for_port(port);
        Redis {
            proc,
            port,
            _dir: dir,
        }
    }
}

/// dnsmasq on 127.0.0.1:`port` (UDP and TCP), authoritative for `test`: host.test (A 127.0.0.8,
/// AAAA fd00::8), mail.test (A), an MX for test, txt.test (TXT), alias.test (CNAME to
/// host.test), NXDOMAIN for other names of `test`. Not waited for: probing it would be DNS
/// traffic of its own.
pub fn dnsmasq(port: u16) -> Proc {
    let child = Command::new("dnsmasq")
        .args([
            "--no-daemon",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            &format!("--port={port}"),
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--local=/test/",
            "--host-record=host.test,127.0.0.8,fd00::8",
            "--host-record=mail.test,127.0.0.9",
            "--mx-host=test,mail.test,10",
            "--txt-record=txt.test,hello world",
            "--cname=alias.test,host.test",
            "--pid-file=",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting dnsmasq (Debian: dnsmasq-base)");
    Proc {
        child,
        name: "dnsmasq".into(),
    }
}

/// `loadgen` (package wirelens-bench) next to the agent binary; built by cargo only when this
/// test runs without the rest of the workspace, with cargo's output shown if that fails.
pub fn loadgen_next_to(profile_dir: &Path) -> PathBuf {
    let path = profile_dir.join("loadgen");
    if path.exists() {
        return path;
    }
    let release = profile_dir.file_name().and_then(|n| n.to_str()) == Some("release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-p", "wirelens-bench", "--bin", "loadgen"]);
    if release {
        cmd.arg("--release");
    }
    if let Some(target) = profile_dir.parent() {
        cmd.env("CARGO_TARGET_DIR", target);
    }
    let out = cmd.output().expect("running cargo build for loadgen");
    assert!(
        out.status.success() && path.exists(),
        "building loadgen failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    path
}
