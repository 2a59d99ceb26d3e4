//! PostgreSQL parse + pair throughput on connections built here: bytes per second and
//! exchanges (records) per second.
//!
//! - `simple`: simple Queries of ORM-like statements (150-400 bytes) answered by 1-20 rows.
//! - `multi`: simple Queries of three statements each (one record per statement).
//! - `extended`: libpq's PQexecParams: Parse/Bind/Describe/Execute/Sync per statement.
//! - `prepared`: named statements prepared once, then Bind/Execute/Sync (pgbench -M prepared).
//! - `pipelined`: ten Executes per Sync, ten Syncs per client chunk before any response.
//! - `cut_results`: 150-row results written in 8 KiB calls of which the kernel captured 4 KiB
//!   (every call loses a DataRow boundary and the stream resynchronises).
//!
//! Run: `cargo bench -p wirelens-bench --bench pgsql`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wirelens_protocols::pgsql::PgsqlParser;
use wirelens_protocols::{Chunk, ConnParser, Side};

/// One connection: the chunks in capture order (data, uncaptured bytes after it).
struct Conn {
    chunks: Vec<(Side, Vec<u8>, u64)>,
    bytes: u64,
    exchanges: u64,
}

fn msg(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![ty];
    v.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn cstr(v: &mut Vec<u8>, s: &str) {
    v.extend_from_slice(s.as_bytes());
    v.push(0);
}

fn query(text: &str) -> Vec<u8> {
    let mut b = Vec::new();
    cstr(&mut b, text);
    msg(b'Q', &b)
}

fn parse(name: &str, text: &str) -> Vec<u8> {
    let mut b = Vec::new();
    cstr(&mut b, name);
    cstr(&mut b, text);
    b.extend_from_slice(&[0, 0]);
    msg(b'P', &b)
}

fn bind(stmt: &str, params: &[String]) -> Vec<u8> {
    let mut b = vec![0];
    cstr(&mut b, stmt);
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&(params.len() as u16).to_be_bytes());
    for p in params {
        b.extend_from_slice(&(p.len() as u32).to_be_bytes());
        b.extend_from_slice(p.as_bytes());
    }
    b.extend_from_slice(&[0, 0]);
    msg(b'B', &b)
}

fn execute() -> Vec<u8> {
    msg(b'E', &[0, 0, 0, 0, 0])
}

fn describe() -> Vec<u8> {
    msg(b'D', b"P\0")
}

fn sync() -> Vec<u8> {
    msg(b'S', &[])
}

fn row_desc(cols: &[&str]) -> Vec<u8> {
    let mut b = (cols.len() as u16).to_be_bytes().to_vec();
    for c in cols {
        cstr(&mut b, c);
        b.extend_from_slice(&[0; 18]);
    }
    msg(b'T', &b)
}

fn data_row(vals: &[String]) -> Vec<u8> {
    let mut b = (vals.len() as u16).to_be_bytes().to_vec();
    for v in vals {
        b.extend_from_slice(&(v.len() as u32).to_be_bytes());
        b.extend_from_slice(v.as_bytes());
    }
    msg(b'D', &b)
}

fn complete(tag: &str) -> Vec<u8> {
    let mut b = Vec::new();
    cstr(&mut b, tag);
    msg(b'C', &b)
}

fn ready() -> Vec<u8> {
    msg(b'Z', b"I")
}

/// Statement `i` (text with literals, text with parameters, its parameters, its result).
fn statement(i: usize) -> (String, String, Vec<String>, Vec<u8>) {
    let id = 1000 + i * 7;
    match i % 4 {
        0 => {
            let n = 1 + i % 20;
            let mut r = row_desc(&["id", "email", "name", "created_at", "status"]);
            for k in 0..n {
                r.extend(data_row(&[
                    (id + k).to_string(),
                    format!("user{}@example.com", id + k),
                    format!("User Number {}", id + k),
                    "2025-11-21 10:00:00.123456+00".to_string(),
                    "active".to_string(),
                ]));
            }
            r.extend(complete(&format!("SELECT {n}")));
            (
                format!(
                    "SELECT u.id, u.email, u.name, u.created_at, u.status FROM users u \
                     JOIN accounts a ON a.user_id = u.id WHERE a.org_id = {id} AND \
                     u.status = 'active' ORDER BY u.created_at DESC LIMIT 20"
                ),
                "SELECT u.id, u.email, u.name, u.created_at, u.status FROM users u \
                 JOIN accounts a ON a.user_id = u.id WHERE a.org_id = $1 AND \
                 u.status = $2 ORDER BY u.created_at DESC LIMIT 20"
                    .to_string(),
                vec![id.to_string(), "active".to_string()],
                r,
            )
        }
        1 => (
            format!(
                "INSERT INTO orders (user_id, sku, quantity, price_cents, note) VALUES \
                 ({id}, 'SKU-{i:06}', 3, 1999, 'gift wrap, deliver after 5pm')"
            ),
            "INSERT INTO orders (user_id, sku, quantity, price_cents, note) VALUES \
             ($1, $2, $3, $4, $5)"
                .to_string(),
            vec![
                id.to_string(),
                format!("SKU-{i:06}"),
                "3".into(),
                "1999".into(),
                "gift wrap".into(),
            ],
            complete("INSERT 0 1"),
        ),
        2 => (
            format!(
                "UPDATE accounts SET balance = balance - 1999, updated_at = now() WHERE id = {id}"
            ),
            "UPDATE accounts SET balance = balance - $1, updated_at = now() WHERE id = $2"
                .to_string(),
            vec!["1999".into(), id.to_string()],
            complete("UPDATE 1"),
        ),
        _ => (
            format!("DELETE FROM sessions WHERE user_id = {id} AND expires_at < now()"),
            "DELETE FROM sessions WHERE user_id = $1 AND expires_at < now()".to_string(),
            vec![id.to_string()],
            complete("DELETE 2"),
        ),
    }
}

fn conn_of(chunks: Vec<(Side, Vec<u8>, u64)>, exchanges: usize) -> Conn {
    let bytes = chunks.iter().map(|c| c.1.len() as u64 + c.2).sum();
    Conn {
        chunks,
        bytes,
        exchanges: exchanges as u64,
    }
}

fn simple(n: usize) -> Conn {
    let mut chunks = Vec::new();
    for i in 0..n {
        let (text, _, _, result) = statement(i);
        chunks.push((Side::Client, query(&text), 0));
        chunks.push((Side::Server, [result, ready()].concat(), 0));
    }
    conn_of(chunks, n)
}

fn multi(n: usize) -> Conn {
    let mut chunks = Vec::new();
    for i in 0..n {
        let (a, _, _, ra) = statement(3 * i);
        let (b, _, _, rb) = statement(3 * i + 1);
        let (c, _, _, rc) = statement(3 * i + 2);
        chunks.push((Side::Client, query(&format!("{a}; {b}; {c};")), 0));
        chunks.push((Side::Server, [ra, rb, rc, ready()].concat(), 0));
    }
    conn_of(chunks, 3 * n)
}

fn extended(n: usize) -> Conn {
    let mut chunks = Vec::new();
    for i in 0..n {
        let (_, text, params, result) = statement(i);
        let c = [
            parse("", &text),
            bind("", &params),
            describe(),
            execute(),
            sync(),
        ]
        .concat();
        chunks.push((Side::Client, c, 0));
        let s = [msg(b'1', &[]), msg(b'2', &[]), result, ready()].concat();
        chunks.push((Side::Server, s, 0));
    }
    conn_of(chunks, n)
}

fn prepared(n: usize) -> Conn {
    let mut chunks = Vec::new();
    let mut prep = Vec::new();
    for k in 0..4 {
        prep.extend(parse(&format!("P0_{k}"), &statement(k).1));
    }
    prep.extend(sync());
    chunks.push((Side::Client, prep, 0));
    chunks.push((
        Side::Server,
        [[b'1', 0, 0, 0, 4].repeat(4), ready()].concat(),
        0,
    ));
    for i in 0..n {
        let (_, _, params, result) = statement(i);
        let c = [bind(&format!("P0_{}", i % 4), &params), execute(), sync()].concat();
        chunks.push((Side::Client, c, 0));
        chunks.push((Side::Server, [msg(b'2', &[]), result, ready()].concat(), 0));
    }
    conn_of(chunks, n)
}

fn pipelined(n: usize) -> Conn {
    let mut chunks = Vec::new();
    for batch in (0..n).collect::<Vec<_>>().chunks(100) {
        let (mut c, mut s) = (Vec::new(), Vec::new());
        for sync_group in batch.chunks(10) {
            for &i in sync_group {
                let (_, text, params, result) = statement(i);
                c.extend([parse("", &text), bind("", &params), execute()].concat());
                s.extend([msg(b'1', &[]), msg(b'2', &[]), result].concat());
            }
            c.extend(sync());
            s.extend(ready());
        }
        chunks.push((Side::Client, c, 0));
        chunks.push((Side::Server, s, 0));
    }
    conn_of(chunks, n)
}

fn cut_results(n: usize) -> Conn {
    let mut chunks = Vec::new();
    for i in 0..n {
        chunks.push((
            Side::Client,
            query(&format!("SELECT * FROM events WHERE batch = {i}")),
            0,
        ));
        let mut r = row_desc(&["id", "payload"]);
        // 11666 bytes: the end is in the captured half of the second call.
        for k in 0..150 {
            r.extend(data_row(&[k.to_string(), "p".repeat(60)]));
        }
        r.extend(complete("SELECT 150"));
        r.extend(ready());
        for w in r.chunks(8192) {
            let keep = w.len().min(4096);
            chunks.push((Side::Server, w[..keep].to_vec(), (w.len() - keep) as u64));
        }
    }
    conn_of(chunks, n)
}

/// Parse and pair a whole connection; returns the number of exchanges.
fn run(conn: &Conn) -> usize {
    let mut parser = PgsqlParser::new();
    let mut out = Vec::with_capacity(conn.exchanges as usize);
    for (i, (side, data, missing)) in conn.chunks.iter().enumerate() {
        parser.push(
            Chunk {
                side: *side,
                ts_ns: i as u64,
                data,
                missing: *missing,
            },
            &mut out,
        );
    }
    parser.close(u64::MAX, false, &mut out);
    out.len()
}

fn bench_pgsql(c: &mut Criterion) {
    let cases = [
        ("simple", simple(1000)),
        ("multi", multi(400)),
        ("extended", extended(1000)),
        ("prepared", prepared(1000)),
        ("pipelined", pipelined(1000)),
        ("cut_results", cut_results(50)),
    ];
    for (name, conn) in &cases {
        let got = run(conn) as u64;
        assert_eq!(got, conn.exchanges, "{name}");
    }
    let mut g = c.benchmark_group("pgsql_bytes");
    for (name, conn) in &cases {
        g.throughput(Throughput::Bytes(conn.bytes));
        g.bench_with_input(BenchmarkId::from_parameter(name), conn, |b, conn| {
            b.iter(|| run(black_box(conn)))
        });
    }
    g.finish();
    let mut g = c.benchmark_group("pgsql_pairs");
    for (name, conn) in &cases {
        g.throughput(Throughput::Elements(run(conn) as u64));
        g.bench_with_input(BenchmarkId::from_parameter(name), conn, |b, conn| {
            b.iter(|| run(black_box(conn)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_pgsql);
criterion_main!(benches);
