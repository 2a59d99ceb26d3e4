//! DNS parse + pair throughput on traffic built here: bytes per second and exchanges per
//! second.
//!
//! - `udp`: one UDP flow (a resolver's socket), query then response datagrams: A, AAAA,
//!   CNAME chains, MX, NXDOMAIN with an SOA in the authority section, EDNS with a cookie.
//! - `udp_flow_per_query`: the same exchanges, a new parser per exchange (a stub resolver
//!   using a fresh source port per query, as dig and glibc do).
//! - `tcp_pipelined`: ten queries per client chunk, their responses in reverse order in one
//!   server chunk (RFC 7766 out-of-order answers).
//! - `tcp_large`: 4 KiB TXT responses delivered in 1448-byte chunks (a message across
//!   chunks is buffered).
//! - `tcp_resync_garbage`: the worst case of a lost boundary followed by 64 KiB of bytes
//!   that are no message start, scanned offset by offset.
//!
//! Run: `cargo bench -p wirelens-bench --bench dns`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wirelens_protocols::dns::DnsParser;
use wirelens_protocols::{Chunk, ConnParser, Side, Transport};

/// One connection or flow: the chunks in capture order.
struct Conn {
    transport: Transport,
    chunks: Vec<(Side, Vec<u8>)>,
    bytes: u64,
    exchanges: u64,
}

fn name(m: &mut Vec<u8>, n: &str) {
    for l in n.split('.') {
        m.push(l.len() as u8);
        m.extend_from_slice(l.as_bytes());
    }
    m.push(0);
}

/// EDNS OPT with a client cookie (RFC 7873), as dig and BIND send it.
fn opt(m: &mut Vec<u8>, cookie: bool) {
    m.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
    if cookie {
        m.extend_from_slice(&[0, 12, 0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]);
    } else {
        m.extend_from_slice(&[0, 0]);
    }
}

fn header(id: u16, flags: u16, an: u16, ns: u16, ar: u16) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    for v in [flags, 1, an, ns, ar] {
        m.extend_from_slice(&v.to_be_bytes());
    }
    m
}

/// Query and response of exchange `i`.
fn exchange(i: usize) -> (Vec<u8>, Vec<u8>) {
    let id = (i as u16).wrapping_mul(40503);
    let (qname, qtype) = match i % 5 {
        0 => (format!("api-{i}.svc.cluster.local"), 1u16),
        1 => (format!("cdn{i}.static.example.com"), 28),
        2 => (format!("www{i}.example.org"), 1),
        3 => ("example.com".to_string(), 15),
        _ => (format!("missing-{i}.example.net"), 1),
    };
    let mut q = header(id, 0x0120, 0, 0, 1);
    name(&mut q, &qname);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    opt(&mut q, true);

    let (an, ns, rcode) = match i % 5 {
        0 => (1, 0, 0),
        1 => (2, 0, 0),
        2 => (3, 0, 0),
        3 => (2, 0, 0),
        _ => (0, 1, 3),
    };
    let mut r = header(id, 0x8180 | rcode, an, ns, 1);
    name(&mut r, &qname);
    r.extend_from_slice(&qtype.to_be_bytes());
    r.extend_from_slice(&[0, 1]);
    for k in 0..an {
        r.extend_from_slice(&[0xc0, 12]);
        match (i % 5, k) {
            (2, 0) | (2, 1) => {
                // CNAME chain: www -> edge-k.cdn.example.net (compressed on "example").
                r.extend_from_slice(&[0, 5, 0, 1, 0, 0, 1, 44, 0, 9, 6]);
                r.extend_from_slice(b"edge-");
                r.push(b'0' + k as u8);
                r.extend_from_slice(&[0xc0, 12]);
            }
            (1, _) => {
                r.extend_from_slice(&[0, 28, 0, 1, 0, 0, 1, 44, 0, 16]);
                r.extend_from_slice(&[
                    0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, k as u8,
                ]);
            }
            (3, _) => {
                r.extend_from_slice(&[0, 15, 0, 1, 0, 0, 1, 44, 0, 9, 0, 10, 4]);
                r.extend_from_slice(b"mx");
                r.push(b'0' + k as u8);
                r.push(b'a');
                r.extend_from_slice(&[0xc0, 12]);
            }
            _ => {
                r.extend_from_slice(&[
                    0,
                    1,
                    0,
                    1,
                    0,
                    0,
                    1,
                    44,
                    0,
                    4,
                    10,
                    0,
                    (i >> 8) as u8,
                    i as u8,
                ]);
            }
        }
    }
    if ns > 0 {
        // SOA of the zone, names compressed.
        r.extend_from_slice(&[0xc0, 12, 0, 6, 0, 1, 0, 0, 3, 132, 0, 32]);
        r.extend_from_slice(&[2, b'n', b's', 0xc0, 12]);
        r.extend_from_slice(&[4, b'h', b'o', b's', b't', 0xc0, 12]);
        r.extend_from_slice(&[
            0, 0, 0, 1, 0, 0, 14, 16, 0, 0, 7, 8, 0, 9, 58, 128, 0, 0, 3, 132,
        ]);
    }
    opt(&mut r, false);
    (q, r)
}

fn framed(m: &[u8]) -> Vec<u8> {
    let mut t = (m.len() as u16).to_be_bytes().to_vec();
    t.extend_from_slice(m);
    t
}

fn udp(n: usize) -> Conn {
    let mut chunks = Vec::new();
    for i in 0..n {
        let (q, r) = exchange(i);
        chunks.push((Side::Client, q));
        chunks.push((Side::Server, r));
    }
    finish(Transport::Udp, chunks, n)
}

fn tcp_pipelined(n: usize, depth: usize) -> Conn {
    let mut chunks = Vec::new();
    for group in (0..n).collect::<Vec<_>>().chunks(depth) {
        let pairs: Vec<_> = group.iter().map(|i| exchange(*i)).collect();
        chunks.push((
            Side::Client,
            pairs.iter().flat_map(|p| framed(&p.0)).collect(),
        ));
        chunks.push((
            Side::Server,
            pairs.iter().rev().flat_map(|p| framed(&p.1)).collect(),
        ));
    }
    finish(Transport::Tcp, chunks, n)
}

fn tcp_large(n: usize) -> Conn {
    let mut chunks = Vec::new();
    for i in 0..n {
        let id = i as u16;
        let mut q = header(id, 0x0120, 0, 0, 1);
        name(&mut q, "big.example.com");
        q.extend_from_slice(&[0, 16, 0, 1]);
        opt(&mut q, true);
        let mut r = header(id, 0x8180, 16, 0, 1);
        name(&mut r, "big.example.com");
        r.extend_from_slice(&[0, 16, 0, 1]);
        for _ in 0..16 {
            r.extend_from_slice(&[0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 60, 0, 250, 249]);
            r.extend(std::iter::repeat_n(b't', 249));
        }
        opt(&mut r, false);
        chunks.push((Side::Client, framed(&q)));
        for piece in framed(&r).chunks(1448) {
            chunks.push((Side::Server, piece.to_vec()));
        }
    }
    finish(Transport::Tcp, chunks, n)
}

fn finish(transport: Transport, chunks: Vec<(Side, Vec<u8>)>, n: usize) -> Conn {
    let bytes = chunks.iter().map(|c| c.1.len() as u64).sum();
    Conn {
        transport,
        chunks,
        bytes,
        exchanges: n as u64,
    }
}

/// Parse and pair a whole connection (or, with `per_exchange`, each query/response pair
/// on a parser of its own); returns the number of exchanges.
fn run(conn: &Conn, per_exchange: bool) -> usize {
    let mut parser = DnsParser::new(conn.transport);
    let mut out = Vec::with_capacity(conn.exchanges as usize);
    for (i, (side, data)) in conn.chunks.iter().enumerate() {
        if per_exchange && *side == Side::Client {
            parser = DnsParser::new(conn.transport);
        }
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
    if !per_exchange {
        assert_eq!(parser.stats(), &Default::default());
    }
    out.len()
}

fn bench_dns(c: &mut Criterion) {
    let cases = [
        ("udp", udp(1000), false),
        ("udp_flow_per_query", udp(1000), true),
        ("tcp_pipelined", tcp_pipelined(1000, 10), false),
        ("tcp_large", tcp_large(200), false),
    ];
    let mut g = c.benchmark_group("dns_bytes");
    for (name, conn, per) in &cases {
        g.throughput(Throughput::Bytes(conn.bytes));
        g.bench_with_input(BenchmarkId::from_parameter(name), conn, |b, conn| {
            b.iter(|| run(black_box(conn), *per))
        });
    }
    g.finish();
    let mut g = c.benchmark_group("dns_pairs");
    for (name, conn, per) in &cases {
        g.throughput(Throughput::Elements(conn.exchanges));
        g.bench_with_input(BenchmarkId::from_parameter(name), conn, |b, conn| {
            b.iter(|| run(black_box(conn), *per))
        });
    }
    g.finish();

    // Worst case: the boundary is lost in a gap, then 64 KiB that never looks like a
    // response start (a plausible length, then a header with QR clear), one 1448-byte chunk
    // at a time.
    let garbage: Vec<u8> = (0..64 * 1024)
        .map(|i| if i % 2 == 0 { 0x00 } else { 0x40 })
        .collect();
    let mut g = c.benchmark_group("dns_worst");
    g.throughput(Throughput::Bytes(garbage.len() as u64));
    g.bench_function("tcp_resync_garbage", |b| {
        b.iter(|| {
            let mut parser = DnsParser::new(Transport::Tcp);
            let mut out = Vec::new();
            parser.push(
                Chunk {
                    side: Side::Server,
                    ts_ns: 0,
                    data: &[],
                    missing: 10,
                },
                &mut out,
            );
            for piece in black_box(&garbage).chunks(1448) {
                parser.push(
                    Chunk {
                        side: Side::Server,
                        ts_ns: 1,
                        data: piece,
                        missing: 0,
                    },
                    &mut out,
                );
            }
            assert!(out.is_empty());
        })
    });
    g.finish();
}

criterion_group!(benches, bench_dns);
criterion_main!(benches);
