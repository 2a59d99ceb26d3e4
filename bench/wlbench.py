"""Shared pieces of bench/overhead and bench/soak: building, real servers on loopback in a
cgroup of their own, the agent, and the load generators. Python 3 standard library only.

Every process started here is recorded and killed by its pid (then reaped) when the
harness exits, whatever the reason: normal end, an exception, SIGINT or SIGTERM.
"""

import atexit
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PG_BIN = "/usr/lib/postgresql/15/bin"
CLK_TCK = os.sysconf("SC_CLK_TCK")

_procs = []  # every Popen started, killed at exit
_cleanups = []  # callables run at exit after the processes are gone


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def die(msg):
    log(f"error: {msg}")
    sys.exit(1)


def _cleanup():
    for p in reversed(_procs):
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            log(f"pid {p.pid} did not exit after SIGKILL")
    _procs.clear()
    for f in reversed(_cleanups):
        try:
            f()
        except Exception as e:  # cleanup goes on with the next item
            log(f"cleanup: {e}")
    _cleanups.clear()


def _on_signal(signum, _frame):
    log(f"signal {signum}: stopping")
    sys.exit(128 + signum)


atexit.register(_cleanup)
signal.signal(signal.SIGINT, _on_signal)
signal.signal(signal.SIGTERM, _on_signal)


def on_exit(f):
    _cleanups.append(f)


def tempdir(prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o711)  # PostgreSQL runs as nobody below it
    on_exit(lambda: shutil.rmtree(d, ignore_errors=True))
    return d


def parse_cpus(text):
    """'0', '0,1', '0-1' -> set of ints; '' -> None (no pinning)."""
    if not text:
        return None
    out = set()
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-", 1)
            out.update(range(int(a), int(b) + 1))
        else:
            out.add(int(part))
    return out


def default_cpus():
    """(app CPUs, agent CPUs). On two or more CPUs the servers and their load generators share
    CPU 0 and the agent gets CPU 1: the probes run in the traced processes' context on CPU 0,
    so what they cost shows in the application's throughput, while the agent's user-space work
    does not compete with the scheduler noise of the load itself and its CPU time is read
    apart. On one CPU nothing is pinned."""
    n = os.cpu_count() or 1
    if n < 2:
        return None, None
    return {0}, {n - 1}


class Cgroup:
    """A cgroup v2 directory holding the servers and load generators, so the agent's filters
    can keep or drop exactly them (and nothing another process on this host does)."""

    def __init__(self, name):
        root = next(
            (r for r in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified")
             if os.path.exists(os.path.join(r, "cgroup.controllers"))),
            None,
        )
        if root is None:
            die("no cgroup v2 hierarchy at /sys/fs/cgroup or /sys/fs/cgroup/unified")
        self.root = root
        self.name = name
        self.path = os.path.join(root, name)
        os.makedirs(self.path, exist_ok=True)
        on_exit(self._remove)

    def _remove(self):
        # The servers' own children (nginx workers, PostgreSQL backends) outlive a master
        # killed by pid: end whatever is still in this cgroup, which holds only what the
        # harness started.
        try:
            with open(os.path.join(self.path, "cgroup.kill"), "w") as f:
                f.write("1")
        except OSError:
            pass
        for _ in range(100):
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.05)
        log(f"could not remove cgroup {self.path}")

    def regex(self, suffix=""):
        """The filter regex for this cgroup (for YAML single quotes: names are [a-z0-9-])."""
        return f"^/{self.name}{suffix}$"


def spawn(cmd, cpus=None, cgroup=None, stdout=None, stderr=None, cwd=None, env=None):
    """Starts cmd (a list), pinned to cpus, inside cgroup; recorded for cleanup."""

    def pre():
        if cgroup is not None:
            with open(os.path.join(cgroup.path, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
        if cpus:
            os.sched_setaffinity(0, cpus)

    p = subprocess.Popen(
        cmd,
        stdout=stdout if stdout is not None else subprocess.DEVNULL,
        stderr=stderr if stderr is not None else subprocess.DEVNULL,
        cwd=cwd,
        env=env,
        preexec_fn=pre,
    )
    _procs.append(p)
    return p


def stop(p, sig=signal.SIGTERM, timeout=20):
    """Signals one process this harness started and waits for it; SIGKILL after timeout."""
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p in _procs:
        _procs.remove(p)
    return p.returncode


def run(cmd, cpus=None, cgroup=None, timeout=None, cwd=None, check=True):
    """Runs cmd to completion (pinned, in the cgroup); returns (stdout, stderr)."""
    p = spawn(cmd, cpus, cgroup, subprocess.PIPE, subprocess.PIPE, cwd=cwd)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        _procs.remove(p)
        die(f"{cmd[0]} did not finish within {timeout} s")
    _procs.remove(p)
    if check and p.returncode != 0:
        die(f"{' '.join(cmd)} exited with {p.returncode}: {err.decode(errors='replace')[-2000:]}")
    return out.decode(errors="replace"), err.decode(errors="replace")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    die(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


# ---------------------------------------------------------------- install and build


def install_deps():
    """scripts/install-deps.sh --bench: the servers, load generators and tools (root)."""
    subprocess.run([os.path.join(REPO, "scripts", "install-deps.sh"), "--bench"], check=True)


def target_dir():
    return os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target")


def build(profile="release"):
    """Builds the agent and the load generator; returns their paths."""
    flag = ["--release"] if profile == "release" else []
    log(f"building wirelens and loadgen ({profile})")
    cargo = os.environ.get("CARGO", "cargo")
    subprocess.run(
        [cargo, "build", "-q", *flag, "-p", "wirelens", "--bin", "wirelens"],
        cwd=REPO, check=True,
    )
    subprocess.run(
        [cargo, "build", "-q", *flag, "-p", "wirelens-bench", "--bin", "loadgen"],
        cwd=REPO, check=True,
    )
    d = os.path.join(target_dir(), profile)
    return os.path.join(d, "wirelens"), os.path.join(d, "loadgen")


# ---------------------------------------------------------------- servers


class Nginx:
    """nginx, one worker, access log off, serving a 612-byte index.html on 127.0.0.1."""

    def __init__(self, work, cpus, cgroup):
        d = os.path.join(work, "nginx")
        os.makedirs(os.path.join(d, "www"))
        with open(os.path.join(d, "www", "index.html"), "w") as f:
            f.write("<!DOCTYPE html>\n<title>wirelens bench</title>\n" + "x" * 560 + "\n")
        self.port = free_port()
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write(
                f"daemon off;\nworker_processes 1;\nuser root;\npid {d}/nginx.pid;\n"
                f"error_log {d}/error.log;\nevents {{ worker_connections 4096; }}\n"
                f"http {{\n access_log off;\n client_body_temp_path {d}/body;\n"
                f" proxy_temp_path {d}/proxy;\n fastcgi_temp_path {d}/fcgi;\n"
                f" uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n"
                f" keepalive_requests 1000000;\n"
                f" server {{\n  listen 127.0.0.1:{self.port} backlog=4096;\n  root {d}/www;\n }}\n}}\n"
            )
        exe = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = spawn([exe, "-c", conf, "-e", f"{d}/error.log"], cpus, cgroup)
        wait_port(self.port)


class Redis:
    """redis-server without persistence on 127.0.0.1, key `wlbench` set."""

    def __init__(self, work, cpus, cgroup):
        d = os.path.join(work, "redis")
        os.makedirs(d)
        self.port = free_port()
        self.proc = spawn(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", d, "--protected-mode", "no", "--maxclients", "10000"],
            cpus, cgroup,
        )
        wait_port(self.port)
        run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), "SET", "wlbench", "hello"])


def as_nobody(cmd):
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", *cmd]


class Postgres:
    """PostgreSQL 15 as nobody (it refuses root) in a temp dir on 127.0.0.1, trust auth, no
    fsync, pgbench's tables at scale 1 in database `postgres`."""

    def __init__(self, work, cpus, cgroup):
        d = os.path.join(work, "pg")
        os.makedirs(d)
        os.chown(d, 65534, 65534)
        data = os.path.join(d, "data")
        run(as_nobody([f"{PG_BIN}/initdb", "-D", data, "-U", "postgres", "--auth=trust",
                       "-E", "UTF8", "--locale=C.UTF-8"]), cwd=d, timeout=120)
        self.port = free_port()
        logf = open(os.path.join(d, "postgres.log"), "w")
        self.proc = spawn(
            as_nobody([f"{PG_BIN}/postgres", "-D", data, "-k", d,
                       "-c", "listen_addresses=127.0.0.1", "-p", str(self.port),
                       "-c", "max_connections=200", "-c", "ssl=off", "-c", "fsync=off",
                       "-c", "synchronous_commit=off", "-c", "autovacuum=off"]),
            cpus, cgroup, stderr=logf, cwd=d,
        )
        logf.close()
        wait_port(self.port)
        for _ in range(100):  # the port opens before connections are accepted
            ready, _ = run([f"{PG_BIN}/pg_isready", "-h", "127.0.0.1", "-p", str(self.port)],
                           check=False)
            if "accepting" in ready:
                break
            time.sleep(0.1)
        run([f"{PG_BIN}/pgbench", "-q", "-i", "-s", "1", "-h", "127.0.0.1", "-p", str(self.port),
             "-U", "postgres", "postgres"], timeout=300)


# ---------------------------------------------------------------- the agent


def parse_metrics(text):
    """Prometheus text -> {name or name{labels}: float}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        try:
            out[key] = float(value)
        except ValueError:
            continue
    return out


def lost_by_stage(metrics):
    out = {}
    for k, v in metrics.items():
        m = re.fullmatch(r'wirelens_events_lost_total\{stage="([^"]+)"\}', k)
        if m:
            out[m.group(1)] = int(v)
    return out


class Agent:
    """`wirelens run` with a YAML config, records (`records`: jsonl, or none: metrics only)
    to /dev/null, metrics on a free port."""

    def __init__(self, binary, work, config_yaml, cpus, tag, records="jsonl"):
        self.dir = os.path.join(work, f"agent-{tag}")
        os.makedirs(self.dir, exist_ok=True)
        cfg = os.path.join(self.dir, "config.yaml")
        with open(cfg, "w") as f:
            f.write(config_yaml)
        self.metrics_port = free_port()
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        err = open(self.stderr_path, "w")
        self.proc = spawn(
            [binary, "run", "--config", cfg, "--format", records, "--output", "/dev/null",
             "--metrics-addr", f"127.0.0.1:{self.metrics_port}"],
            cpus, None, stderr=err,
        )
        err.close()
        self.pid = self.proc.pid
        end = time.time() + 60
        while True:
            text = self.stderr()
            if "wirelens: capturing" in text:
                break
            if self.proc.poll() is not None or time.time() > end:
                die(f"the agent did not start:\n{text[-3000:]}")
            time.sleep(0.05)
        wait_port(self.metrics_port)

    def stderr(self):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def cpu_ticks(self):
        """(user, system) clock ticks of every thread of the agent so far."""
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # Fields 14 and 15 of stat(5); fields[0] here is field 3 (state).
        return int(fields[11]), int(fields[12])

    def status_kb(self, key):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return 0

    def metrics(self):
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            return parse_metrics(r.read().decode(errors="replace"))

    def kernel_map_entries(self, name):
        """Entries in this agent's BPF map `name` (found through the agent's own fds, so
        another agent's maps are never counted), or None when bpftool cannot tell."""
        ids = set()
        d = f"/proc/{self.pid}/fdinfo"
        try:
            for fd in os.listdir(d):
                try:
                    with open(os.path.join(d, fd)) as f:
                        for line in f:
                            if line.startswith("map_id:"):
                                ids.add(line.split()[1])
                except OSError:
                    continue
        except OSError:
            return None
        for i in sorted(ids):
            try:
                show = subprocess.run(["bpftool", "map", "show", "id", i], capture_output=True,
                                      text=True, timeout=10).stdout
                if f" name {name} " not in show:
                    continue
                dump = subprocess.run(["bpftool", "-j", "map", "dump", "id", i],
                                      capture_output=True, text=True, timeout=60).stdout
                return len(json.loads(dump))
            except (OSError, ValueError, subprocess.TimeoutExpired):
                return None
        return None

    def settle(self, seconds=1.3):
        """Waits past the agent's one-second refresh of its health metrics."""
        time.sleep(seconds)

    def drain(self, timeout=60):
        """After a load: waits until the agent has caught up (its kernel event and exchange
        counters, and with OTLP export its exported and queued spans, stop moving across two
        of its one-second refreshes); returns the seconds
        until the counters first showed their final values (0 when the first read, 1.1 s
        after the load, already did; about one second of resolution) and the last metrics."""
        t = time.monotonic()
        prev, reached = None, 0.0
        while True:
            time.sleep(1.1)
            m = self.metrics()
            cur = (m.get("wirelens_kernel_events_total"), m.get("wirelens_exchanges_total"),
                   m.get('wirelens_otlp_spans_total{outcome="exported"}'),
                   m.get("wirelens_otlp_queued_spans"))
            if cur == prev or time.monotonic() - t > timeout:
                return round(max(0.0, reached - 1.1), 1), m
            prev, reached = cur, time.monotonic() - t

    def stop(self):
        """SIGINT, wait, and the exit summary's counters."""
        rc = stop(self.proc, signal.SIGINT, timeout=30)
        text = self.stderr()
        if rc != 0:
            die(f"the agent exited with {rc}:\n{text[-3000:]}")
        line = next((l for l in reversed(text.splitlines()) if "records=" in l), "")
        return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


def config_capture(cg):
    """Captures exactly the harness's cgroup (servers and load generators)."""
    return f"filters:\n  include:\n    cgroup: ['{cg.regex()}']\n"


def config_servers(cg):
    """Captures the servers in the harness's cgroup (nginx, redis-server, PostgreSQL's
    processes), not the load generators beside them: both keys of one selector must match."""
    return (f"filters:\n  include:\n    cgroup: ['{cg.regex()}']\n"
            f"    cmdline: ['(^|/)(nginx|redis-server|postgres)( |:|$)']\n")


def config_filtered(cg):
    """The harness's cgroup excluded (decided in the kernel); the include names an empty
    sibling cgroup so that nothing else on this host is captured either."""
    return (f"filters:\n  include:\n    cgroup: ['{cg.regex('-none')}']\n"
            f"  exclude:\n    cgroup: ['{cg.regex()}']\n")


# ---------------------------------------------------------------- load generators


_UNIT = {"us": 1.0, "ms": 1000.0, "s": 1e6}


def _us(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    return float(m.group(1)) * _UNIT[m.group(2)] if m else None


def wrk(port, seconds, conns, cpus, cg):
    out, _ = run(["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency",
                  f"http://127.0.0.1:{port}/index.html"], cpus, cg, timeout=seconds + 60)
    res = {"tool": "wrk"}
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    if not m:
        die(f"unexpected wrk output:\n{out}")
    res["requests"] = int(m.group(1))
    res["rps"] = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    for p in ("50", "90", "99"):
        m = re.search(rf"^\s+{p}%\s+(\S+)", out, re.M)
        res[f"p{p}_us"] = _us(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    err = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        err += sum(int(x) for x in m.groups())
    res["errors"] = err
    return res


def redis_benchmark(port, requests, conns, cpus, cg):
    t = time.monotonic()
    out, _ = run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", str(conns),
                  "-n", str(requests), "-t", "get", "--csv"], cpus, cg, timeout=600)
    elapsed = time.monotonic() - t
    rows = [l for l in out.splitlines() if l.startswith('"GET"')]
    if not rows:
        die(f"unexpected redis-benchmark output:\n{out}")
    f = [x.strip('"') for x in rows[0].split(",")]
    return {"tool": "redis-benchmark", "requests": requests, "rps": float(f[1]),
            "p50_us": float(f[4]) * 1000, "p90_us": None, "p99_us": float(f[6]) * 1000,
            "errors": 0, "elapsed_s": round(elapsed, 3)}


def pgbench(port, seconds, conns, rate, cpus, cg, work, connect_each=False, protocol="simple"):
    """pgbench -S (one SELECT per transaction) with per-transaction logs for percentiles;
    `protocol` is pgbench's -M: simple, extended or prepared."""
    d = tempfile.mkdtemp(dir=work, prefix="pgbench-")
    cmd = [f"{PG_BIN}/pgbench", "-n", "-S", "-M", protocol, "-c", str(conns), "-j", "1",
           "-T", str(seconds),
           "-l", "--log-prefix", os.path.join(d, "tx"), "-h", "127.0.0.1", "-p", str(port),
           "-U", "postgres"]
    if rate:
        cmd += ["-R", str(rate)]
    if connect_each:
        cmd.append("-C")
    out, err = run(cmd + ["postgres"], cpus, cg, timeout=seconds + 120, check=False)
    m = re.search(r"number of transactions actually processed: (\d+)", out)
    if not m:
        die(f"unexpected pgbench output:\n{out}\n{err}")
    lat = []
    for name in os.listdir(d):
        with open(os.path.join(d, name)) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    lat.append(int(parts[2]))
    shutil.rmtree(d, ignore_errors=True)
    lat.sort()
    failed = re.search(r"number of failed transactions: (\d+)", out)
    tps = re.search(r"tps = ([\d.]+)", out)
    return {"tool": "pgbench", "requests": int(m.group(1)),
            "rps": float(tps.group(1)) if tps else 0.0,
            "p50_us": percentile(lat, 0.5), "p90_us": percentile(lat, 0.9),
            "p99_us": percentile(lat, 0.99),
            "errors": int(failed.group(1)) if failed else 0}


def loadgen(binary, proto, port, rate, conns, seconds, cpus, cg, close=False):
    cmd = [binary, proto, str(port), str(rate), str(conns), str(seconds)]
    if close:
        cmd.append("--close")
    out, _ = run(cmd, cpus, cg, timeout=seconds + 60)
    res = json.loads(out)
    res["tool"] = "loadgen"
    return res


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    i = min(len(sorted_values), max(1, int(-(-len(sorted_values) * p // 1)))) - 1
    return float(sorted_values[i])
