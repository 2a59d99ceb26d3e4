#!/usr/bin/env python3
"""The known workload of tests/live_prometheus.rs, as one process the agent observes.

Started before the agent (so its pid can be given with --pid), it prints `ready` on stderr and
runs one phase of the workload for each line read on stdin, printing on stdout one JSON line
with what it sent and what it got. The clients it starts (psql) are its children: the agent
captures them too, as services of their own.

Each phase:
- HTTP to nginx on one keep-alive connection: GET /index.html x6 (200), /missing x2 (404),
  /fail x1 (500);
- Redis on one raw RESP connection: SET, GET, INCR, LPUSH, and INCR on a string (ERR);
- PostgreSQL with psql, one connection per statement: a SELECT and an UPDATE of `kv`, and a
  SELECT of a missing table (SQLSTATE 42P01);
- DNS over UDP from one connected socket: host.test A and AAAA, test MX, nosuch.test A
  (NXDOMAIN);
- an HTTP request to a server of this process that never answers: the client gives up and
  closes (an unanswered request on both sides).

Usage: driver.py NGINX_PORT REDIS_PORT PG_PORT DNS_PORT
"""

import http.client
import json
import socket
import subprocess
import sys
import threading
import time

NGINX, REDIS, PG, DNS = (int(a) for a in sys.argv[1:5])
HTTP_PLAN = [("/index.html", 200)] * 6 + [("/missing", 404)] * 2 + [("/fail", 500)]


def http_phase(out):
    conn = http.client.HTTPConnection("127.0.0.1", NGINX, timeout=10)
    for path, _ in HTTP_PLAN:
        conn.request("GET", path)
        r = conn.getresponse()
        r.read()
        out.setdefault("http", {}).setdefault(str(r.status), 0)
        out["http"][str(r.status)] += 1
    conn.close()


def resp(cmd):
    b = b"*%d\r\n" % len(cmd)
    for a in cmd:
        a = a.encode()
        b += b"$%d\r\n%s\r\n" % (len(a), a)
    return b


def redis_phase(out):
    s = socket.create_connection(("127.0.0.1", REDIS), timeout=10)
    f = s.makefile("rb")
    cmds = [["SET", "k", "v"], ["GET", "k"], ["INCR", "n"], ["LPUSH", "l", "a"], ["INCR", "k"]]
    errors = 0
    for c in cmds:
        s.sendall(resp(c))
        line = f.readline()
        if line.startswith(b"$") and line[1:3] != b"-1":
            f.read(int(line[1:]) + 2)
        if line.startswith(b"-"):
            errors += 1
    s.close()
    out["redis"] = {"commands": len(cmds), "errors": errors}


def psql(sql):
    return subprocess.run(
        ["psql", "-X", "-q", "-t", "-A", "-h", "127.0.0.1", "-p", str(PG), "-U", "postgres",
         "-d", "fx", "-c", sql],
        capture_output=True, text=True, timeout=30,
    ).returncode


def pg_phase(out):
    codes = [psql("SELECT v FROM kv WHERE k = 1"), psql("UPDATE kv SET v = 'w' WHERE k = 2"),
             psql("SELECT * FROM missing_table")]
    out["pgsql"] = {"ok": codes.count(0), "failed": len(codes) - codes.count(0)}


QTYPES = {"A": 1, "AAAA": 28, "MX": 15}
RCODES = {0: "NOERROR", 2: "SERVFAIL", 3: "NXDOMAIN", 5: "REFUSED"}


def dns_query(sock, qid, name, qtype):
    q = qid.to_bytes(2, "big") + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\x00" + QTYPES[qtype].to_bytes(2, "big") + b"\x00\x01"
    sock.send(q)
    while True:
        a = sock.recv(4096)
        if a[:2] == q[:2]:
            return RCODES.get(a[3] & 0x0F, str(a[3] & 0x0F))


def dns_phase(out):
    # One connected UDP socket, as glibc's stub resolver does.
    queries = [("host.test", "A"), ("host.test", "AAAA"), ("test", "MX"), ("nosuch.test", "A")]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    s.connect(("127.0.0.1", DNS))
    statuses = [dns_query(s, 0x1000 + i, n, t) for i, (n, t) in enumerate(queries)]
    s.close()
    out["dns"] = {st: statuses.count(st) for st in set(statuses)}


def hang_phase(out, listener):
    accepted = []

    def serve():
        c, _ = listener.accept()
        c.recv(4096)  # the request, never answered
        accepted.append(c)

    t = threading.Thread(target=serve)
    t.start()
    s = socket.create_connection(listener.getsockname(), timeout=10)
    s.sendall(b"GET /hang HTTP/1.1\r\nHost: driver\r\n\r\n")
    t.join()
    time.sleep(0.3)
    s.close()
    for c in accepted:
        c.close()
    out["hang"] = 1


def main():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    print("ready", file=sys.stderr, flush=True)
    for _ in sys.stdin:
        out = {}
        http_phase(out)
        redis_phase(out)
        pg_phase(out)
        dns_phase(out)
        hang_phase(out, listener)
        print(json.dumps(out), flush=True)


main()
