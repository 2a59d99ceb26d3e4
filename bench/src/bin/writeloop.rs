//! The workload of `bench/syscall-overhead.sh`: N writes of 100 bytes to a TCP socket on
//! loopback and then to /dev/null, timed. It prints its pid, waits for a line on stdin (so the
//! agent can be told to capture exactly this pid), runs, and prints `socket_ns=.. devnull_ns=..`
//! (mean ns per write call).
//!
//! `writeloop drain PORT` is the other end: accepts one connection and reads until EOF.

use std::io::{BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

/// A 100-byte HTTP request head, so the observer infers HTTP and captures every write.
fn payload() -> Vec<u8> {
    let mut p = b"GET /bench HTTP/1.1\r\nHost: bench\r\nX-Pad: ".to_vec();
    while p.len() < 96 {
        p.push(b'x');
    }
    p.extend_from_slice(b"\r\n\r\n");
    p
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("drain") {
        let port = args.get(2).cloned().unwrap_or_else(|| "0".into());
        let l = TcpListener::bind(format!("127.0.0.1:{port}")).expect("bind");
        println!("{}", l.local_addr().expect("addr").port());
        std::io::stdout().flush().ok();
        let (mut s, _) = l.accept().expect("accept");
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
        }
        return;
    }
    let port: u16 = args
        .get(1)
        .and_then(|s| s.parse().ok())
        .expect("usage: writeloop PORT [N]");
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    println!("{}", std::process::id());
    std::io::stdout().flush().ok();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).ok();

    let p = payload();
    assert_eq!(p.len(), 100);
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_nodelay(true).ok();
    let t = Instant::now();
    for _ in 0..n {
        s.write_all(&p).expect("write");
    }
    let socket_ns = t.elapsed().as_nanos() as f64 / n as f64;
    let mut null = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .expect("/dev/null");
    let t = Instant::now();
    for _ in 0..n {
        null.write_all(&p).expect("write");
    }
    let devnull_ns = t.elapsed().as_nanos() as f64 / n as f64;
    println!("socket_ns={socket_ns:.1} devnull_ns={devnull_ns:.1}");
}
