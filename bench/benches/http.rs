//! HTTP/1 parse + pair throughput on keep-alive connections built here (recorded fixtures
//! will replace them): bytes per second and exchanges per second.
//!
//! - `heads`: realistic browser/API heads, no bodies (GET, 204/304 and empty 200s): the cost
//!   of head parsing and pairing alone.
//! - `mixed`: the same heads with Content-Length and chunked bodies of 0.1-8 KiB.
//! - `pipelined`: ten requests per client chunk, ten responses per server chunk.
//! - `head_byte_by_byte`: the worst case of one 16 KiB head fed one byte per chunk.
//! - `exchange/keepalive_get`: the load generator's workload (`bench/src/bin/loadgen.rs`
//!   against nginx): small GET requests and ~850-byte responses on one keep-alive
//!   connection, each message in one chunk; the cost per exchange of parsing and pairing
//!   both sides.
//!
//! Run: `cargo bench -p wirelens-bench --bench http`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wirelens_protocols::http::HttpParser;
use wirelens_protocols::{Chunk, ConnParser, Side};

/// One connection: the chunks in capture order.
struct Conn {
    chunks: Vec<(Side, Vec<u8>)>,
    bytes: u64,
    exchanges: u64,
}

const BROWSER: &str = "Host: www.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\n\
Cookie: session=7f3e2a9c1b8d4e6f; theme=dark; _ga=GA1.2.1234567890.1700000000\r\n\
Connection: keep-alive\r\n";

const API: &str = "Host: orders.internal:8080\r\nUser-Agent: okhttp/4.12.0\r\n\
Accept: application/json\r\nContent-Type: application/json\r\n\
traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\
Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.abc\r\n";

const SERVER: &str = "Server: nginx/1.27.0\r\nDate: Tue, 21 Nov 2025 10:00:00 GMT\r\n\
Content-Type: application/json; charset=utf-8\r\nCache-Control: no-cache\r\n\
X-Request-Id: 9b2f6c1e-3d4a-4b5c-8e7f-0a1b2c3d4e5f\r\nConnection: keep-alive\r\n";

/// Request and response of exchange `i`; `bodies` adds request and response bodies.
fn exchange(i: usize, bodies: bool) -> (Vec<u8>, Vec<u8>) {
    let body_len = if bodies {
        [120, 900, 2400, 8000][i % 4]
    } else {
        0
    };
    let request = match i % 5 {
        0 => format!("GET /static/app.{i:x}.js HTTP/1.1\r\n{BROWSER}\r\n"),
        1 => format!("GET /api/v1/users/{i}/orders?page=2&limit=50 HTTP/1.1\r\n{API}\r\n"),
        2 if bodies => {
            let json = format!(
                "{{\"item\":{i},\"qty\":3,\"note\":\"{}\"}}",
                "x".repeat(150)
            );
            format!(
                "POST /api/v1/orders HTTP/1.1\r\n{API}Content-Length: {}\r\n\r\n{json}",
                json.len()
            )
        }
        2 => format!("DELETE /api/v1/orders/{i} HTTP/1.1\r\n{API}\r\n"),
        3 => "HEAD /health HTTP/1.1\r\nHost: lb\r\nUser-Agent: kube-probe/1.30\r\n\r\n".to_string(),
        _ => format!("GET /img/{i}.png HTTP/1.1\r\n{BROWSER}If-None-Match: \"abc{i}\"\r\n\r\n"),
    };
    let response = match (i % 5, bodies) {
        (3, _) => format!("HTTP/1.1 200 OK\r\n{SERVER}Content-Length: 1234\r\n\r\n").into_bytes(),
        (4, _) => {
            format!("HTTP/1.1 304 Not Modified\r\n{SERVER}ETag: \"abc{i}\"\r\n\r\n").into_bytes()
        }
        (2, false) => format!("HTTP/1.1 204 No Content\r\n{SERVER}\r\n").into_bytes(),
        (1, true) => {
            // Chunked in 1 KiB chunks.
            let mut r = format!("HTTP/1.1 200 OK\r\n{SERVER}Transfer-Encoding: chunked\r\n\r\n")
                .into_bytes();
            let mut left = body_len;
            while left > 0 {
                let n = left.min(1024);
                r.extend(format!("{n:x}\r\n").bytes());
                r.extend(std::iter::repeat_n(b'{', n));
                r.extend(b"\r\n");
                left -= n;
            }
            r.extend(b"0\r\n\r\n");
            r
        }
        _ => {
            let mut r = format!("HTTP/1.1 200 OK\r\n{SERVER}Content-Length: {body_len}\r\n\r\n")
                .into_bytes();
            r.extend(std::iter::repeat_n(b'[', body_len));
            r
        }
    };
    (request.into_bytes(), response)
}

/// `n` exchanges, `depth` requests per client chunk (then their responses in one chunk).
fn connection(n: usize, depth: usize, bodies: bool) -> Conn {
    let mut chunks: Vec<(Side, Vec<u8>)> = Vec::new();
    for group in (0..n).collect::<Vec<_>>().chunks(depth) {
        let pairs: Vec<_> = group.iter().map(|i| exchange(*i, bodies)).collect();
        chunks.push((
            Side::Client,
            pairs.iter().flat_map(|p| p.0.clone()).collect(),
        ));
        chunks.push((
            Side::Server,
            pairs.iter().flat_map(|p| p.1.clone()).collect(),
        ));
    }
    let bytes = chunks.iter().map(|c| c.1.len() as u64).sum();
    Conn {
        chunks,
        bytes,
        exchanges: n as u64,
    }
}

/// The load generator's request and nginx's answer to it (default `index.html`, 615 bytes),
/// ~850 bytes in all.
const LOADGEN_GET: &[u8] = b"GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n";
const NGINX_HEAD: &str = "HTTP/1.1 200 OK\r\nServer: nginx/1.27.0\r\n\
Date: Tue, 21 Nov 2025 10:00:00 GMT\r\nContent-Type: text/html\r\nContent-Length: 615\r\n\
Last-Modified: Tue, 16 Apr 2024 14:29:59 GMT\r\nConnection: keep-alive\r\n\
ETag: \"661e8b67-267\"\r\nAccept-Ranges: bytes\r\n\r\n";

/// `n` load-generator exchanges on one keep-alive connection: one chunk per message.
fn keepalive_get(n: usize) -> Conn {
    let mut response = NGINX_HEAD.as_bytes().to_vec();
    response.extend(std::iter::repeat_n(b'<', 615));
    let mut chunks = Vec::with_capacity(2 * n);
    for _ in 0..n {
        chunks.push((Side::Client, LOADGEN_GET.to_vec()));
        chunks.push((Side::Server, response.clone()));
    }
    let bytes = chunks.iter().map(|c| c.1.len() as u64).sum();
    Conn {
        chunks,
        bytes,
        exchanges: n as u64,
    }
}

/// Parse and pair a whole connection; returns the number of exchanges.
fn run(conn: &Conn) -> usize {
    let mut parser = HttpParser::new();
    let mut out = Vec::with_capacity(conn.exchanges as usize);
    for (i, (side, data)) in conn.chunks.iter().enumerate() {
        parser.push(
            Chunk {
                side: *side,
                ts_ns: i as u64,
                data,
                missing: 0,
            },
            &mut out,
        );
    }
    parser.close(u64::MAX, false, &mut out);
    assert_eq!(out.len() as u64, conn.exchanges);
    assert_eq!(parser.stats(), &Default::default());
    out.len()
}

fn bench_http(c: &mut Criterion) {
    let cases = [
        ("heads", connection(1000, 1, false)),
        ("mixed", connection(1000, 1, true)),
        ("pipelined", connection(1000, 10, false)),
    ];
    let mut g = c.benchmark_group("http_bytes");
    for (name, conn) in &cases {
        g.throughput(Throughput::Bytes(conn.bytes));
        g.bench_with_input(BenchmarkId::from_parameter(name), conn, |b, conn| {
            b.iter(|| run(black_box(conn)))
        });
    }
    g.finish();
    let mut g = c.benchmark_group("http_pairs");
    for (name, conn) in &cases {
        g.throughput(Throughput::Elements(conn.exchanges));
        g.bench_with_input(BenchmarkId::from_parameter(name), conn, |b, conn| {
            b.iter(|| run(black_box(conn)))
        });
    }
    g.finish();

    let conn = keepalive_get(1000);
    let mut g = c.benchmark_group("exchange");
    g.throughput(Throughput::Elements(conn.exchanges));
    g.bench_with_input("keepalive_get", &conn, |b, conn| {
        b.iter(|| run(black_box(conn)))
    });
    g.finish();

    // Worst case: a 16 KiB head, one byte per chunk (each chunk re-parses the head so far).
    let mut head = b"GET / HTTP/1.1\r\nX-Fill: ".to_vec();
    head.resize(16 * 1024 - 4, b'a');
    head.extend(b"\r\n\r\n");
    let mut g = c.benchmark_group("http_worst");
    g.throughput(Throughput::Bytes(head.len() as u64));
    g.bench_function("head_byte_by_byte", |b| {
        b.iter(|| {
            let mut parser = HttpParser::new();
            let mut out = Vec::new();
            for byte in black_box(&head).chunks(1) {
                parser.push(
                    Chunk {
                        side: Side::Client,
                        ts_ns: 0,
                        data: byte,
                        missing: 0,
                    },
                    &mut out,
                );
            }
            parser.close(1, false, &mut out);
            assert_eq!(out.len(), 1);
        })
    });
    g.finish();
}

criterion_group!(benches, bench_http);
criterion_main!(benches);
