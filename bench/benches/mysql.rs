//! MySQL parse + pair throughput on connections built here, as a MariaDB server and client
//! would write them: bytes per second and exchanges per second.
//!
//! - `text`: COM_QUERY: SELECTs returning 20 rows of 4 columns, INSERT/UPDATE OKs, errors;
//!   one chunk per command and per response (what the kernel sees per write).
//! - `prepared`: COM_STMT_EXECUTE of 10 prepared statements, binary result sets of 10 rows
//!   with MariaDB's cached metadata (no column definitions after the first execution).
//! - `segmented`: `text` cut into 1448-byte pieces (TCP segments in a replay).
//!
//! Run: `cargo bench -p wirelens-bench --bench mysql`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wirelens_protocols::mysql::MysqlParser;
use wirelens_protocols::{Chunk, ConnParser, Side};

struct Conn {
    chunks: Vec<(Side, Vec<u8>)>,
    bytes: u64,
    exchanges: u64,
}

fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_le_bytes()[..3].to_vec();
    v.push(seq);
    v.extend_from_slice(payload);
    v
}

fn lenenc_str(s: &[u8]) -> Vec<u8> {
    let mut v = vec![s.len() as u8];
    v.extend_from_slice(s);
    v
}

fn ok(seq: u8, affected: u8) -> Vec<u8> {
    packet(seq, &[0, affected, 0, 2, 0, 0, 0])
}

fn eof(seq: u8) -> Vec<u8> {
    packet(seq, &[0xfe, 0, 0, 2, 0])
}

fn column_def(seq: u8, name: &str) -> Vec<u8> {
    let mut p = Vec::new();
    for s in [
        &b"def"[..],
        b"shop",
        b"orders",
        b"orders",
        name.as_bytes(),
        name.as_bytes(),
    ] {
        p.extend(lenenc_str(s));
    }
    p.extend_from_slice(&[0x0c, 0x21, 0, 0x50, 0, 0, 0, 0xfd, 0, 0, 0, 0, 0]);
    packet(seq, &p)
}

fn handshake() -> Vec<(Side, Vec<u8>)> {
    let caps: u32 = 0x0008_f7de;
    let mut g = vec![0x0a];
    g.extend_from_slice(b"5.5.5-10.11.6-MariaDB\0\x2a\0\0\0abcdefgh\0");
    g.extend_from_slice(&(caps as u16).to_le_bytes());
    g.extend_from_slice(&[45, 2, 0]);
    g.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
    g.extend_from_slice(&[21; 11]);
    g.extend_from_slice(b"ijklmnopqrst\0mysql_native_password\0");
    let mut r = caps.to_le_bytes().to_vec();
    r.extend_from_slice(&[0, 0, 0, 1, 45]);
    r.extend_from_slice(&[0; 23]);
    r.extend_from_slice(b"app\0\x14aaaaaaaaaaaaaaaaaaaamysql_native_password\0");
    vec![
        (Side::Server, packet(0, &g)),
        (Side::Client, packet(1, &r)),
        (Side::Server, ok(2, 0)),
    ]
}

fn text_exchange(i: usize) -> (Vec<u8>, Vec<u8>) {
    let (q, resp) = match i % 4 {
        0 | 1 => {
            let q = format!(
                "SELECT id, customer, total, created_at FROM orders WHERE customer_id = {i} \
                 ORDER BY created_at DESC LIMIT 20"
            );
            let mut r = packet(1, &[4]);
            for (k, c) in ["id", "customer", "total", "created_at"].iter().enumerate() {
                r.extend(column_def(2 + k as u8, c));
            }
            r.extend(eof(6));
            for row in 0..20u8 {
                let mut p = Vec::new();
                for v in [
                    format!("{}", i * 20 + row as usize),
                    "customer-name".into(),
                    "123.45".into(),
                    "2025-11-21 10:00:00".into(),
                ] {
                    p.extend(lenenc_str(v.as_bytes()));
                }
                r.extend(packet(7 + row, &p));
            }
            r.extend(eof(27));
            (q, r)
        }
        2 => (
            format!("INSERT INTO orders (customer_id, total) VALUES ({i}, 99.95)"),
            ok(1, 1),
        ),
        _ => {
            let mut e = vec![0xff, 0x7a, 0x04, b'#'];
            e.extend_from_slice(b"42S02Table 'shop.order' doesn't exist");
            (
                format!("UPDATE order SET total = 0 WHERE id = {i}"),
                packet(1, &e),
            )
        }
    };
    let mut c = vec![3];
    c.extend_from_slice(q.as_bytes());
    (packet(0, &c), resp)
}

fn text(n: usize) -> Conn {
    let mut chunks = handshake();
    for i in 0..n {
        let (q, r) = text_exchange(i);
        chunks.push((Side::Client, q));
        chunks.push((Side::Server, r));
    }
    finish(chunks, n as u64)
}

fn prepared(n: usize) -> Conn {
    let mut chunks = handshake();
    for s in 0..10u32 {
        let mut c = vec![0x16];
        c.extend_from_slice(
            format!("SELECT id, name, qty FROM items WHERE category = ? AND id > {s}").as_bytes(),
        );
        chunks.push((Side::Client, packet(0, &c)));
        let mut r = vec![0, 0, 0, 0, 0, 3, 0, 1, 0, 0, 0, 0];
        r[1..5].copy_from_slice(&(s + 1).to_le_bytes());
        let mut resp = packet(1, &r);
        resp.extend(column_def(2, "?"));
        resp.extend(eof(3));
        for (k, name) in ["id", "name", "qty"].iter().enumerate() {
            resp.extend(column_def(4 + k as u8, name));
        }
        resp.extend(eof(7));
        chunks.push((Side::Server, resp));
    }
    for i in 0..n {
        let mut c = vec![0x17];
        c.extend_from_slice(&((i % 10) as u32 + 1).to_le_bytes());
        c.extend_from_slice(&[0, 1, 0, 0, 0, 0, 1, 0xfe, 0, 5]);
        c.extend_from_slice(b"books");
        chunks.push((Side::Client, packet(0, &c)));
        let mut r = packet(1, &[3, 0]);
        r.extend(eof(2));
        for row in 0..10u8 {
            let mut p = vec![0, 0];
            p.extend_from_slice(&(row as u32).to_le_bytes());
            p.extend(lenenc_str(b"a book title"));
            p.extend_from_slice(&7u32.to_le_bytes());
            r.extend(packet(3 + row, &p));
        }
        r.extend(eof(13));
        chunks.push((Side::Server, r));
    }
    finish(chunks, n as u64 + 10)
}

fn segmented(n: usize) -> Conn {
    let conn = text(n);
    let mut chunks = Vec::new();
    for (side, data) in conn.chunks {
        for piece in data.chunks(1448) {
            chunks.push((side, piece.to_vec()));
        }
    }
    finish(chunks, conn.exchanges)
}

fn finish(chunks: Vec<(Side, Vec<u8>)>, exchanges: u64) -> Conn {
    let bytes = chunks.iter().map(|c| c.1.len() as u64).sum();
    Conn {
        chunks,
        bytes,
        exchanges,
    }
}

/// Parse and pair a whole connection; returns the number of exchanges.
fn run(conn: &Conn) -> usize {
    let mut parser = MysqlParser::new();
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

fn bench_mysql(c: &mut Criterion) {
    let cases = [
        ("text", text(1000)),
        ("prepared", prepared(1000)),
        ("segmented", segmented(1000)),
    ];
    let mut g = c.benchmark_group("mysql_bytes");
    for (name, conn) in &cases {
        g.throughput(Throughput::Bytes(conn.bytes));
        g.bench_with_input(BenchmarkId::from_parameter(name), conn, |b, conn| {
            b.iter(|| run(black_box(conn)))
        });
    }
    g.finish();
    let mut g = c.benchmark_group("mysql_pairs");
    for (name, conn) in &cases {
        g.throughput(Throughput::Elements(conn.exchanges));
        g.bench_with_input(BenchmarkId::from_parameter(name), conn, |b, conn| {
            b.iter(|| run(black_box(conn)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_mysql);
criterion_main!(benches);
