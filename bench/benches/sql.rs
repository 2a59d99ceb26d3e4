//! `sql::describe` + `sql::obfuscate` throughput on a mix of MySQL and PostgreSQL statements
//! (pgbench, sysbench, ORM-style selects with joins and IN lists, multi-row inserts, DDL,
//! comments): bytes per second and statements per second.
//!
//! - `describe`, `obfuscate`: each helper alone over the whole mix.
//! - `both`: what a parser does for an exported statement, both helpers on each. The texts
//!   without literals repeat in the mix, as an application's prepared statements do: after the
//!   first, those are answered from the per-thread cache (`sql/memo.rs`).
//! - `both_new_texts`: the same with every text new to the cache (the cache's cost alone).
//! - `insert_1000_rows`: one 40 KB multi-row `INSERT` (the `VALUES` row skipping).
//!
//! Run: `cargo bench -p wirelens-bench --bench sql`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wirelens_protocols::sql::{describe, obfuscate};

/// The statement mix: one of each, repeated with varying literals.
fn statements() -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..50u32 {
        out.extend([
            "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;".to_string(),
            "SELECT abalance FROM pgbench_accounts WHERE aid = $1;".to_string(),
            "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP);".to_string(),
            "BEGIN;".to_string(),
            "END;".to_string(),
            format!("SELECT c FROM sbtest{} WHERE id={}", i % 8 + 1, 5000 + i * 17),
            format!("SELECT c FROM sbtest1 WHERE id BETWEEN {} AND {} ORDER BY c", i * 100, i * 100 + 99),
            format!("UPDATE sbtest1 SET c='{:011}-{:011}-{:011}' WHERE id={}", i * 7, i * 13, i * 31, i),
            format!("INSERT INTO sbtest1 (id, k, c, pad) VALUES ({i}, {}, '{:011}-{:011}', '{:011}')", i * 3, i, i + 1, i + 2),
            format!(
                "SELECT u.id, u.email, o.total FROM `shop`.`users` u JOIN orders o ON o.user_id = u.id \
                 WHERE u.status = 'active' AND o.created_at > '2024-01-{:02}' AND u.id IN ({}) \
                 ORDER BY o.total DESC LIMIT 50",
                i % 28 + 1,
                (0..20).map(|k| (i * 20 + k).to_string()).collect::<Vec<_>>().join(", ")
            ),
            format!(
                "/* app=checkout trace=4bf92f3577b34da6 */ WITH recent AS (SELECT * FROM events \
                 WHERE ts > now() - interval '{} minutes') SELECT count(*) FROM recent WHERE kind = $1",
                i + 1
            ),
            format!(
                "INSERT INTO audit_log (actor, action, payload, at) VALUES {}",
                (0..5)
                    .map(|k| format!("('user{k}', 'login', E'{{\"ip\":\"10.0.0.{i}\"}}', NOW())"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "CREATE TABLE IF NOT EXISTS public.sessions (id uuid PRIMARY KEY, data jsonb, expires timestamptz)".to_string(),
            format!("DELETE FROM sessions WHERE expires < to_timestamp({})", 1_700_000_000 + i),
            "SELECT t.typname, t.oid FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = 'pg_catalog' AND t.typname IN ('int4', 'text', 'bool')".to_string(),
            "/*!40101 SET NAMES utf8mb4 */".to_string(),
        ]);
    }
    out
}

fn bench(c: &mut Criterion) {
    let mix = statements();
    let bytes: u64 = mix.iter().map(|s| s.len() as u64).sum();
    let count = mix.len() as u64;
    // The same mix, each text made distinct by a comment. Its extra bytes are not counted in
    // the byte throughput: the figures compare with the mix's own.
    let fresh: Vec<String> = mix
        .iter()
        .enumerate()
        .map(|(i, s)| format!("/* {i} */ {s}"))
        .collect();

    for (unit, throughput) in [
        ("bytes", Throughput::Bytes(bytes)),
        ("statements", Throughput::Elements(count)),
    ] {
        let mut g = c.benchmark_group(format!("sql_mix_{unit}"));
        g.throughput(throughput);
        g.bench_function("describe", |b| {
            b.iter(|| {
                for s in &mix {
                    black_box(describe(black_box(s)));
                }
            })
        });
        g.bench_function("obfuscate", |b| {
            b.iter(|| {
                for s in &mix {
                    black_box(obfuscate(black_box(s)));
                }
            })
        });
        g.bench_function("both", |b| {
            b.iter(|| {
                for s in &mix {
                    black_box(describe(black_box(s)));
                    black_box(obfuscate(black_box(s)));
                }
            })
        });
        // Every text new to the cache: a distinct comment in front of each (800 texts cycling
        // through its 256 entries), so the statements without literals are looked up, missed
        // and kept again each time: what the cache costs when it never helps.
        g.bench_function("both_new_texts", |b| {
            b.iter(|| {
                for s in &fresh {
                    black_box(describe(black_box(s)));
                    black_box(obfuscate(black_box(s)));
                }
            })
        });
        g.finish();
    }

    let big = format!(
        "INSERT INTO t (a, b, c, d) VALUES {}",
        (0..1000)
            .map(|i| format!("({i}, 'name {i}', {}.5, NULL)", i * 3))
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut g = c.benchmark_group("sql_insert_1000_rows");
    g.throughput(Throughput::Bytes(big.len() as u64));
    g.bench_function("both", |b| {
        b.iter(|| {
            black_box(describe(black_box(&big)));
            black_box(obfuscate(black_box(&big)));
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
