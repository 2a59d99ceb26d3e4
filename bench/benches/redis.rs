//! Redis parse + pair throughput on connections built here: bytes per second and command/reply
//! pairs per second.
//!
//! - `one_at_a_time`: a redis-benchmark-like mix (SET with a 3-byte value, GET, INCR, LPUSH,
//!   and a few HGETALL / MGET with array replies), one command per client chunk and one
//!   reply per server chunk, as a live capture sees a non-pipelined client;
//! - `pipelined`: the same mix, 16 commands per client chunk and 16 replies per server chunk
//!   (`redis-benchmark -P 16`);
//! - `big_values`: GET of 16 KiB values whose payload the capture cut (4096-byte prefix):
//!   the cost of skipping missing bytes;
//! - `command_strings`: the `command` string of each record of `one_at_a_time` built alone
//!   (upper-casing into a new `String`, then dropping it): the allocation each pair costs,
//!   to compare with the whole.
//!
//! Run: `cargo bench -p wirelens-bench --bench redis`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wirelens_protocols::redis::RedisParser;
use wirelens_protocols::{Chunk, ConnParser, Side};

/// One connection: the chunks in capture order (side, data, missing).
struct Conn {
    chunks: Vec<(Side, Vec<u8>, u64)>,
    bytes: u64,
    pairs: u64,
}

fn cmd(args: &[&[u8]]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        v.extend_from_slice(a);
        v.extend_from_slice(b"\r\n");
    }
    v
}

fn bulk(v: &[u8]) -> Vec<u8> {
    let mut r = format!("${}\r\n", v.len()).into_bytes();
    r.extend_from_slice(v);
    r.extend_from_slice(b"\r\n");
    r
}

/// Command and reply number `i` of the mix.
fn exchange(i: usize) -> (Vec<u8>, Vec<u8>) {
    let key = format!("key:{:012}", i % 100_000);
    let key = key.as_bytes();
    match i % 20 {
        0..=5 => (cmd(&[b"SET", key, b"xxx"]), b"+OK\r\n".to_vec()),
        6..=11 => (cmd(&[b"GET", key]), bulk(b"xxx")),
        12..=14 => (
            cmd(&[b"INCR", b"counter:rand_int"]),
            format!(":{i}\r\n").into_bytes(),
        ),
        15..=17 => (
            cmd(&[b"LPUSH", b"mylist", b"xxx"]),
            format!(":{}\r\n", i / 20).into_bytes(),
        ),
        18 => {
            let mut r = b"*10\r\n".to_vec();
            for f in 0..5 {
                r.extend(bulk(format!("field{f}").as_bytes()));
                r.extend(bulk(b"some value of the field"));
            }
            (cmd(&[b"HGETALL", b"user:1000"]), r)
        }
        _ => {
            let keys: Vec<Vec<u8>> = (0..8)
                .map(|k| format!("key:{k:012}").into_bytes())
                .collect();
            let mut args: Vec<&[u8]> = vec![b"MGET"];
            args.extend(keys.iter().map(Vec::as_slice));
            let mut r = b"*8\r\n".to_vec();
            for k in 0..8 {
                r.extend(if k % 3 == 0 {
                    b"$-1\r\n".to_vec()
                } else {
                    bulk(b"xxx")
                });
            }
            (cmd(&args), r)
        }
    }
}

fn build(n: usize, batch: usize) -> Conn {
    let mut chunks = Vec::new();
    let mut bytes = 0;
    let mut i = 0;
    while i < n {
        let (mut reqs, mut reps) = (Vec::new(), Vec::new());
        for _ in 0..batch.min(n - i) {
            let (q, r) = exchange(i);
            reqs.extend(q);
            reps.extend(r);
            i += 1;
        }
        bytes += (reqs.len() + reps.len()) as u64;
        chunks.push((Side::Client, reqs, 0));
        chunks.push((Side::Server, reps, 0));
    }
    Conn {
        chunks,
        bytes,
        pairs: n as u64,
    }
}

/// GETs of 16 KiB values, the server's write captured up to 4096 bytes.
fn big_values(n: usize) -> Conn {
    let mut chunks = Vec::new();
    let mut bytes = 0;
    let value = vec![b'v'; 16 * 1024];
    for i in 0..n {
        let q = cmd(&[b"GET", format!("big:{i}").as_bytes()]);
        let r = bulk(&value);
        bytes += (q.len() + r.len()) as u64;
        chunks.push((Side::Client, q, 0));
        let missing = (r.len() - 4096) as u64;
        chunks.push((Side::Server, r[..4096].to_vec(), missing));
    }
    Conn {
        chunks,
        bytes,
        pairs: n as u64,
    }
}

fn run(conn: &Conn) -> usize {
    let mut parser = RedisParser::new();
    let mut out = Vec::with_capacity(64);
    let mut pairs = 0;
    for (ts, (side, data, missing)) in conn.chunks.iter().enumerate() {
        parser.push(
            Chunk {
                side: *side,
                ts_ns: ts as u64,
                data,
                missing: *missing,
            },
            &mut out,
        );
        pairs += out.len();
        out.clear();
    }
    pairs
}

fn bench(c: &mut Criterion) {
    let cases = [
        ("one_at_a_time", build(10_000, 1)),
        ("pipelined", build(10_000, 16)),
        ("big_values", big_values(2_000)),
    ];
    for (name, conn) in &cases {
        assert_eq!(run(conn) as u64, conn.pairs, "{name}: every pair found");
        let mut g = c.benchmark_group("redis");
        g.throughput(Throughput::Bytes(conn.bytes));
        g.bench_with_input(BenchmarkId::new("bytes", name), conn, |b, conn| {
            b.iter(|| black_box(run(black_box(conn))))
        });
        g.throughput(Throughput::Elements(conn.pairs));
        g.bench_with_input(BenchmarkId::new("pairs", name), conn, |b, conn| {
            b.iter(|| black_box(run(black_box(conn))))
        });
        g.finish();
    }
}

/// What building the records' `command` strings costs alone (see the module doc).
fn command_strings(c: &mut Criterion) {
    let names: Vec<&'static [u8]> = (0..10_000)
        .map(|i| match i % 20 {
            0..=5 => &b"set"[..],
            6..=11 => b"get",
            12..=14 => b"incr",
            15..=17 => b"lpush",
            18 => b"hgetall",
            _ => b"mget",
        })
        .collect();
    let mut g = c.benchmark_group("redis");
    g.throughput(Throughput::Elements(names.len() as u64));
    g.bench_function("pairs/command_strings", |b| {
        b.iter(|| {
            let mut n = 0;
            for name in black_box(&names) {
                let s = String::from_utf8_lossy(name).to_ascii_uppercase();
                n += black_box(s).len();
            }
            n
        })
    });
    g.finish();
}

criterion_group!(benches, bench, command_strings);
criterion_main!(benches);
