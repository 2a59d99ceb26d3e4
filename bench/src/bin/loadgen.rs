//! A fixed-rate load generator for `bench/overhead` and `bench/soak`: the rate-limited mode
//! that wrk and redis-benchmark lack (pgbench has `-R`).
//!
//! `loadgen PROTO PORT RATE CONNS SECONDS [--close]`
//!
//! - PROTO `http`: `GET /index.html HTTP/1.1` to 127.0.0.1:PORT, reads the response (status
//!   line, headers, Content-Length body); a status other than 2xx counts as an error.
//! - PROTO `redis`: `GET wlbench` in RESP; an error reply (`-...`) counts as an error.
//! - RATE requests per second in total, spread over CONNS connections, each on its own
//!   thread with a fixed schedule (request i of a connection is due at start + i / (RATE /
//!   CONNS)). Latency is measured from the time a request was due, not from when it was sent,
//!   so a stall is not hidden by the requests it delayed (as wrk2 does).
//! - `--close`: a new connection per request (connection churn: the server and the client
//!   reuse fd numbers), sending `Connection: close` in HTTP and closing after the reply in
//!   Redis.
//!
//! Prints one JSON object: requests (answered, counted exactly), errors, connects, late
//! (requests sent more than one interval after they were due), elapsed_s, rps, and p50 / p90
//! / p99 / max latency in microseconds.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq)]
enum Proto {
    Http,
    Redis,
}

#[derive(Default)]
struct Tally {
    lat_ns: Vec<u64>,
    errors: u64,
    connects: u64,
    late: u64,
}

fn usage() -> ! {
    eprintln!("usage: loadgen http|redis PORT RATE CONNS SECONDS [--close]");
    std::process::exit(2);
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize) -> T {
    args.get(i)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| usage())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let proto = match args.get(1).map(String::as_str) {
        Some("http") => Proto::Http,
        Some("redis") => Proto::Redis,
        _ => usage(),
    };
    let port: u16 = arg(&args, 2);
    let rate: f64 = arg(&args, 3);
    let conns: usize = arg(&args, 4);
    let seconds: f64 = arg(&args, 5);
    let close = args.iter().skip(6).any(|a| a == "--close");
    if rate <= 0.0 || conns == 0 || seconds <= 0.0 {
        usage();
    }
    // Sleeps end within a microsecond instead of the default 50 us slack, so the schedule
    // (and the latency measured from it) is not blurred by the timer.
    // SAFETY: prctl(PR_SET_TIMERSLACK) takes a plain integer and affects this thread only;
    // the workers set it again for themselves.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000u64) };

    let interval = Duration::from_secs_f64(conns as f64 / rate);
    let start = Instant::now() + Duration::from_millis(20);
    let end = start + Duration::from_secs_f64(seconds);
    let workers: Vec<_> = (0..conns)
        .map(|k| {
            // Connections start staggered over one interval, so requests are evenly spaced.
            let first = start + interval.mul_f64(k as f64 / conns as f64);
            std::thread::spawn(move || worker(proto, port, first, interval, end, close))
        })
        .collect();
    let mut all = Tally::default();
    for w in workers {
        match w.join() {
            Ok(t) => {
                all.lat_ns.extend(t.lat_ns);
                all.errors += t.errors;
                all.connects += t.connects;
                all.late += t.late;
            }
            Err(_) => all.errors += 1,
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.lat_ns.sort_unstable();
    let pct = |p: f64| -> f64 {
        if all.lat_ns.is_empty() {
            return 0.0;
        }
        let i = ((all.lat_ns.len() as f64 * p).ceil() as usize).clamp(1, all.lat_ns.len()) - 1;
        all.lat_ns[i] as f64 / 1000.0
    };
    let n = all.lat_ns.len();
    println!(
        "{{\"requests\": {n}, \"errors\": {}, \"connects\": {}, \"late\": {}, \
         \"elapsed_s\": {elapsed:.3}, \"rps\": {:.1}, \"p50_us\": {:.1}, \"p90_us\": {:.1}, \
         \"p99_us\": {:.1}, \"max_us\": {:.1}}}",
        all.errors,
        all.connects,
        all.late,
        n as f64 / elapsed.max(1e-9),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(1.0),
    );
}

fn worker(
    proto: Proto,
    port: u16,
    first: Instant,
    interval: Duration,
    end: Instant,
    close: bool,
) -> Tally {
    // SAFETY: as in main, for this thread.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000u64) };
    let mut t = Tally::default();
    let request: &[u8] = match (proto, close) {
        (Proto::Http, false) => b"GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n",
        (Proto::Http, true) => {
            b"GET /index.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        }
        (Proto::Redis, _) => b"*2\r\n$3\r\nGET\r\n$7\r\nwlbench\r\n",
    };
    let mut conn: Option<BufReader<TcpStream>> = None;
    let mut i: u32 = 0;
    loop {
        let due = first + interval * i;
        i = i.saturating_add(1);
        if due >= end {
            break;
        }
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        } else if now - due > interval {
            t.late += 1;
        }
        if conn.is_none() {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => {
                    s.set_nodelay(true).ok();
                    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
                    t.connects += 1;
                    conn = Some(BufReader::new(s));
                }
                Err(_) => {
                    t.errors += 1;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let ok = c.get_mut().write_all(request).is_ok()
            && match proto {
                Proto::Http => read_http(c),
                Proto::Redis => read_resp(c),
            }
            .unwrap_or(false);
        if ok {
            t.lat_ns.push(due.elapsed().as_nanos() as u64);
        } else {
            t.errors += 1;
            conn = None;
        }
        if close {
            conn = None;
        }
    }
    t
}

/// Reads one HTTP/1.1 response with a Content-Length body; Ok(true) for a 2xx status.
fn read_http(c: &mut BufReader<TcpStream>) -> std::io::Result<bool> {
    let mut line = String::new();
    if c.read_line(&mut line)? == 0 {
        return Ok(false);
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if c.read_line(&mut h)? == 0 {
            return Ok(false);
        }
        if h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; len.min(1 << 20)];
    c.read_exact(&mut body)?;
    Ok((200..300).contains(&status))
}

/// Reads one RESP2 reply to GET (simple string, error, integer or bulk string); Ok(true)
/// unless it is an error reply.
fn read_resp(c: &mut BufReader<TcpStream>) -> std::io::Result<bool> {
    let mut line = Vec::new();
    if c.read_until(b'\n', &mut line)? == 0 {
        return Ok(false);
    }
    match line.first() {
        Some(b'$') => {
            let len: i64 = std::str::from_utf8(&line[1..])
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(-1);
            if len >= 0 {
                let mut body = vec![0; (len as usize).min(1 << 20) + 2];
                c.read_exact(&mut body)?;
            }
            Ok(true)
        }
        Some(b'-') => Ok(false),
        Some(_) => Ok(true),
        None => Ok(false),
    }
}
