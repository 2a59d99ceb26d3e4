//! The workload of `bench/syscall-overhead.sh`: N writes of 100 bytes to a TCP socket on
//! loopback and then to /dev/null, timed.
//!
//! `writeloop N DIR`: starts the other end of the socket as a separate process (so that it is
//! not part of this process when the agent captures by pid), writes its own pid to `DIR/pid`,
//! waits until `DIR/go` exists (so the agent can be told to capture exactly this pid), runs,
//! and prints `socket_ns=.. devnull_ns=..` (mean ns per write call).
//!
//! `writeloop drain`: the other end: prints its port, accepts one connection, reads to EOF.

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
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
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
    let n: usize = args
        .get(1)
        .and_then(|s| s.parse().ok())
        .expect("usage: writeloop N DIR");
    let dir = std::path::PathBuf::from(args.get(2).expect("usage: writeloop N DIR"));
    let exe = std::env::current_exe().expect("current_exe");
    let mut drain = std::process::Command::new(exe)
        .arg("drain")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("starting the drain");
    let mut port = String::new();
    std::io::BufReader::new(drain.stdout.take().expect("drain stdout"))
        .read_line(&mut port)
        .expect("drain port");
    let port: u16 = port.trim().parse().expect("drain port number");
    std::fs::write(dir.join("pid"), std::process::id().to_string()).expect("pid file");
    while !dir.join("go").exists() {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }

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
    drop(s);
    let _ = drain.wait();
    println!("socket_ns={socket_ns:.1} devnull_ns={devnull_ns:.1}");
}
