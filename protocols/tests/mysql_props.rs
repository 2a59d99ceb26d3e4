//! Properties of the MySQL parser over generated input:
//! - any bytes (random, or pieces of real packets), cut anywhere, with gaps, on both sides: no
//!   panic, every push returns promptly, close and expire too;
//! - any valid conversation (text queries, result sets with or without EOF packets, errors,
//!   prepared statements, multi-results, commands without response), cut anywhere: every
//!   command a client would count pairs with its response, in order.

mod mysql_support;

use std::time::{Duration, Instant};

use mysql_support::*;
use proptest::prelude::*;
use wirelens_protocols::mysql::MysqlParser;
use wirelens_protocols::{Chunk, ConnParser, Side};

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(384)
}

/// Pieces that steer random input into the parser's deeper states.
fn words() -> Vec<Vec<u8>> {
    vec![
        greeting(BASE_CAPS),
        greeting(BASE_CAPS | DEPRECATE_EOF),
        handshake_response(BASE_CAPS),
        ssl_request(BASE_CAPS),
        ok(2, 0, 2),
        ok(1, 3, 2 | MORE_RESULTS),
        eof(2, 2),
        ok_eof(3, 2),
        err(1, 1064, "42000", "syntax"),
        query("select 1"),
        prepare("select ?"),
        execute(1, 0, &[1]),
        execute(u32::MAX, 1, &[]),
        stmt_close(1),
        command(0x0e, b""),
        command(0x11, b"u\0"),
        packet(1, &[2]),
        packet(1, &[2, 0]),
        packet(1, b"\xfb/f"),
        packet(1, b"\x00\x01\x00\x00\x00\x01\x00\x01\x00\x00\x00\x00"),
        column_def(2, "c"),
        packet(3, b"\x01a\x01b"),
        b"\xff\xff\xff\x00".to_vec(),
        b"\x00\x00\x00\x00".to_vec(),
        vec![0xfe],
    ]
}

fn fragment() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..40),
        prop::sample::select(words()),
    ]
}

/// Pushes: (client side?, data, missing bytes after it).
fn pushes() -> impl Strategy<Value = Vec<(bool, Vec<u8>, u64)>> {
    prop::collection::vec(
        (
            any::<bool>(),
            prop::collection::vec(fragment(), 0..10).prop_map(|f| f.concat()),
            prop_oneof![4 => Just(0u64), 1 => 0u64..64, 1 => Just(1u64 << 24)],
        ),
        0..16,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn any_bytes_never_panic_or_spin(pushes in pushes(), cut in 1usize..9, close in any::<bool>()) {
        let mut p = MysqlParser::new();
        let mut out = Vec::new();
        let start = Instant::now();
        let mut ts = 0u64;
        for (client, data, missing) in &pushes {
            let side = if *client { Side::Client } else { Side::Server };
            let pieces: Vec<&[u8]> = data.chunks(cut).collect();
            let n = pieces.len();
            for (k, piece) in pieces.into_iter().enumerate() {
                ts += 1;
                p.push(Chunk {
                    side,
                    ts_ns: ts,
                    data: piece,
                    missing: if k + 1 == n { *missing } else { 0 },
                }, &mut out);
            }
            if data.is_empty() {
                ts += 1;
                p.push(Chunk { side, ts_ns: ts, data: &[], missing: *missing }, &mut out);
            }
        }
        p.expire(ts + 1, ts / 2, &mut out);
        if close {
            p.close(ts + 2, false, &mut out);
        }
        p.expire(u64::MAX, 0, &mut out);
        prop_assert!(start.elapsed() < Duration::from_secs(5));
        // Every exchange has a request time and, if answered, a later or equal response time.
        for e in &out {
            if let Some(r) = e.resp_ts_ns {
                prop_assert!(r >= e.req_ts_ns, "{e:?}");
            }
        }
    }
}

/// One step of a valid conversation.
#[derive(Clone, Debug)]
enum Op {
    Ok(u64),
    Select { cols: usize, rows: usize },
    Error(u16),
    Prepare { cols: u16, params: u16 },
    Execute { rows: usize, cached: bool },
    Close,
    Ping,
    InitDb,
    Multi { affected: u64, rows: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u64..1000).prop_map(Op::Ok),
        (1usize..4, 0usize..300).prop_map(|(cols, rows)| Op::Select { cols, rows }),
        prop::sample::select(vec![1064u16, 1146, 1062]).prop_map(Op::Error),
        (0u16..3, 0u16..3).prop_map(|(cols, params)| Op::Prepare { cols, params }),
        (0usize..5, any::<bool>()).prop_map(|(rows, cached)| Op::Execute { rows, cached }),
        Just(Op::Close),
        Just(Op::Ping),
        Just(Op::InitDb),
        (0u64..5, 0usize..5).prop_map(|(affected, rows)| Op::Multi { affected, rows }),
    ]
}

/// The messages of a conversation and the exchanges a client would count.
fn conversation(ops: &[Op], mode: Mode, handshake: bool) -> (Vec<(Side, Vec<u8>)>, Vec<Summary>) {
    let mut msgs = Vec::new();
    let mut want = Vec::new();
    if handshake {
        let caps = BASE_CAPS
            | if mode == Mode::Deprecate {
                DEPRECATE_EOF
            } else {
                0
            };
        msgs.push((Side::Server, greeting(caps)));
        msgs.push((Side::Client, handshake_response(caps)));
        msgs.push((Side::Server, ok(2, 0, 2)));
    }
    let mut next_id = 1u32;
    // The statement that executes use: (id, text, columns).
    let mut prepared: Option<(u32, String, u16)> = None;
    for (n, op) in ops.iter().enumerate() {
        match op {
            Op::Ok(a) => {
                let q = format!("update t set v = {n}");
                msgs.push((Side::Client, query(&q)));
                msgs.push((Side::Server, ok(1, *a, 2)));
                want.push(s("COM_QUERY", Some(&q), None, Some(*a)));
            }
            Op::Select { cols, rows } => {
                let q = format!("select * from t{n}");
                msgs.push((Side::Client, query(&q)));
                msgs.push((Side::Server, result_set(mode, 1, *cols, *rows, 2).0));
                want.push(s("COM_QUERY", Some(&q), None, Some(*rows as u64)));
            }
            Op::Error(code) => {
                let q = format!("bad {n}");
                msgs.push((Side::Client, query(&q)));
                msgs.push((Side::Server, err(1, *code, "42000", "no")));
                want.push(s("COM_QUERY", Some(&q), Some(*code), None));
            }
            Op::Prepare { cols, params } => {
                let q = format!("select {n}, ? from t");
                msgs.push((Side::Client, prepare(&q)));
                msgs.push((Side::Server, prepare_ok(mode, next_id, *cols, *params)));
                want.push(s("COM_STMT_PREPARE", Some(&q), None, None));
                prepared = Some((next_id, q, *cols));
                next_id += 1;
            }
            Op::Execute { rows, cached } => {
                let (id, text, cols) = prepared.clone().unwrap_or((999, String::new(), 0));
                msgs.push((Side::Client, execute(id, 0, &[n as i64])));
                let q = (!text.is_empty()).then_some(text.as_str());
                if cols == 0 {
                    msgs.push((Side::Server, ok(1, *rows as u64, 2)));
                } else {
                    msgs.push((
                        Side::Server,
                        binary_result_set(mode, cols as usize, *rows, *cached),
                    ));
                }
                want.push(s("COM_STMT_EXECUTE", q, None, Some(*rows as u64)));
            }
            Op::Close => {
                if let Some((id, _, _)) = prepared.take() {
                    msgs.push((Side::Client, stmt_close(id)));
                }
            }
            Op::Ping => {
                msgs.push((Side::Client, command(0x0e, b"")));
                msgs.push((Side::Server, ok(1, 0, 2)));
                want.push(s("COM_PING", None, None, Some(0)));
            }
            Op::InitDb => {
                msgs.push((Side::Client, command(0x02, b"w")));
                msgs.push((Side::Server, ok(1, 0, 2)));
                want.push(s("COM_INIT_DB", None, None, Some(0)));
            }
            Op::Multi { affected, rows } => {
                let q = format!("insert into t values ({n}); select * from t");
                msgs.push((Side::Client, query(&q)));
                let mut r = ok(1, *affected, 2 | MORE_RESULTS);
                r.extend(result_set(mode, 2, 1, *rows, 2).0);
                msgs.push((Side::Server, r));
                want.push(s(
                    "COM_QUERY",
                    Some(&q),
                    None,
                    Some(affected + *rows as u64),
                ));
            }
        }
    }
    msgs.push((Side::Client, command(0x01, b"")));
    (msgs, want)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn valid_conversations_pair_exactly(
        ops in prop::collection::vec(op(), 0..12),
        deprecate in any::<bool>(),
        handshake in any::<bool>(),
        cuts in prop::collection::vec(1usize..200, 1..8),
    ) {
        let mode = if deprecate { Mode::Deprecate } else { Mode::Eof };
        let (msgs, want) = conversation(&ops, mode, handshake);
        let mut c = Conv::new();
        for (i, (side, bytes)) in msgs.iter().enumerate() {
            // Without the handshake the first command opens the capture whole, as a write
            // does; everything else is cut anywhere.
            if !handshake && i == 0 {
                c.push(*side, bytes);
                continue;
            }
            let mut rest = &bytes[..];
            let mut k = i;
            while !rest.is_empty() {
                let n = cuts[k % cuts.len()].min(rest.len());
                c.push(*side, &rest[..n]);
                rest = &rest[n..];
                k += 1;
            }
        }
        c.close();
        prop_assert_eq!(summary(&c.take()), want);
        prop_assert_eq!(c.parser.stats().clone(), Default::default());
    }
}
