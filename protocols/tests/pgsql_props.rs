//! Properties of the PostgreSQL parser over generated input:
//! - any bytes (steered towards message headers and bodies), cut anywhere, with gaps, on both
//!   sides: no panic, every push returns promptly, and the result does not depend on where
//!   the chunks were cut;
//! - any valid conversation (simple queries with several statements and errors, extended
//!   queries with named statements, pipelines of several Syncs with errors skipping to the
//!   Sync, COPY, notices), cut anywhere: every statement pairs with its own result, in order.

mod pgsql_support;

use std::time::{Duration, Instant};

use pgsql_support::*;
use proptest::prelude::*;
use wirelens_protocols::Side;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// Fragments that steer random input into the parser's deeper states.
fn fragments() -> Vec<Vec<u8>> {
    vec![
        query("SELECT 1; SELECT 2"),
        parse("s", "SELECT $1"),
        bind("", "s", &["1"]),
        execute("", 0),
        sync(),
        startup("u", "d"),
        ssl_request(),
        b"N".to_vec(),
        b"S".to_vec(),
        rows(2),
        complete("INSERT 0 5"),
        error("42P01", "nope", Some(3)),
        ready(b'I'),
        ready(b'E'),
        parse_complete(),
        bind_complete(),
        copy_in_response(1),
        copy_data(b"x\n"),
        copy_done(),
        notice("n"),
        empty_query(),
        suspended(),
        vec![b'D', 0, 0, 0],
        vec![b'Q', 0, 0, 1],
        vec![0, 0, 0, 8],
        vec![0x16, 3, 1],
        vec![0],
    ]
}

fn fragment() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..24),
        prop::sample::select(fragments()),
    ]
}

fn push_data() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(fragment(), 0..10).prop_map(|f| f.concat())
}

/// Pushes: (client side?, data, missing bytes after it).
fn pushes() -> impl Strategy<Value = Vec<(bool, Vec<u8>, u64)>> {
    prop::collection::vec(
        (
            any::<bool>(),
            push_data(),
            prop_oneof![4 => Just(0u64), 1 => 0u64..64, 1 => 0u64..100_000],
        ),
        0..16,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn any_bytes_cut_anywhere(pushes in pushes(), expire in any::<bool>()) {
        let mut sc = Script::new();
        for (i, (client, data, missing)) in pushes.iter().enumerate() {
            let side = if *client { Side::Client } else { Side::Server };
            sc = sc.push(side, i as u64 * 10, data, *missing);
            if expire && i % 3 == 2 {
                sc = sc.expire(i as u64 * 10, 15);
            }
        }
        let sc = sc.close(1_000);
        let start = Instant::now();
        let whole = sc.run_cut(usize::MAX);
        for piece in [1, 3, 64] {
            prop_assert_eq!(&whole, &sc.run_cut(piece), "cut into {}-byte pieces", piece);
        }
        prop_assert!(start.elapsed() < Duration::from_secs(5));
    }
}

/// One step of a valid conversation: what the client sends, what the server answers, and
/// the record lines it must produce (see `pgsql_support::line`).
#[derive(Clone, Debug)]
enum Step {
    Simple {
        stmts: Vec<(String, Option<&'static str>)>,
    },
    Extended {
        text: String,
        fail: bool,
    },
    Pipeline {
        batches: Vec<Vec<(String, bool)>>,
    },
    Prepared {
        name: String,
        text: String,
        runs: usize,
    },
    Copy {
        rows: usize,
    },
}

fn stmt_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("SELECT 1".to_string()),
        Just("INSERT INTO t VALUES (1)".to_string()),
        Just("UPDATE t SET a = 'x;y' WHERE b = $$;$$".to_string()),
        Just("DELETE FROM t".to_string()),
        (0u32..1000).prop_map(|n| format!("SELECT {n} AS \"c;{n}\"")),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        prop::collection::vec(
            (
                stmt_text(),
                prop_oneof![3 => Just(None), 1 => Just(Some("42P01"))]
            ),
            1..4
        )
        .prop_map(|stmts| Step::Simple { stmts }),
        (stmt_text(), prop::bool::weighted(0.2))
            .prop_map(|(text, fail)| Step::Extended { text, fail }),
        prop::collection::vec(
            prop::collection::vec((stmt_text(), prop::bool::weighted(0.2)), 1..4),
            1..4
        )
        .prop_map(|batches| Step::Pipeline { batches }),
        (0u32..5, stmt_text(), 1usize..4).prop_map(|(n, text, runs)| Step::Prepared {
            name: format!("p{n}"),
            text,
            runs
        }),
        (0usize..5).prop_map(|rows| Step::Copy { rows }),
    ]
}

fn result_for(text: &str) -> (Vec<u8>, String) {
    let cmd = text.split_whitespace().next().unwrap_or("");
    match cmd {
        "SELECT" => (rows(1), "1".into()),
        "INSERT" => (complete("INSERT 0 1"), "1".into()),
        "UPDATE" => (complete("UPDATE 3"), "3".into()),
        _ => (complete("DELETE 2"), "2".into()),
    }
}

/// The bytes of a step and the lines its records must have.
fn render(step: &Step) -> (Vec<u8>, Vec<u8>, Vec<String>) {
    let (mut c, mut s, mut want) = (Vec::new(), Vec::new(), Vec::new());
    match step {
        Step::Simple { stmts } => {
            let texts: Vec<String> = stmts.iter().map(|(t, _)| format!("{t};")).collect();
            c.extend(query(&texts.join(" ")));
            for (i, (t, err)) in stmts.iter().enumerate() {
                let shown = if stmts.len() == 1 {
                    format!("{t};")
                } else {
                    texts[i].clone()
                };
                if let Some(code) = err {
                    s.extend(error(code, "boom", None));
                    want.push(format!("simple {shown} -> E {code}"));
                    break;
                }
                let (r, n) = result_for(t);
                s.extend(r);
                want.push(format!("simple {shown} -> {n}"));
            }
            s.extend(ready(b'I'));
        }
        Step::Extended { text, fail } => {
            c.extend(extended(text, &[]));
            if *fail {
                s.extend([parse_complete(), bind_complete()].concat());
                s.extend(error("22012", "division by zero", None));
                s.extend(ready(b'I'));
                want.push(format!("extended {text} -> E 22012"));
            } else {
                let (r, n) = result_for(text);
                s.extend([parse_complete(), bind_complete(), no_data()].concat());
                // The Describe gets NoData; a SELECT's RowDescription comes with the rows.
                s.extend(r);
                s.extend(ready(b'I'));
                want.push(format!("extended {text} -> {n}"));
            }
        }
        Step::Pipeline { batches } => {
            for b in batches {
                let mut failed = false;
                for (text, fail) in b {
                    c.extend([parse("", text), bind("", "", &[]), execute("", 0)].concat());
                    if failed {
                        continue;
                    }
                    s.extend([parse_complete(), bind_complete()].concat());
                    if *fail {
                        s.extend(error("23505", "dup", None));
                        want.push(format!("extended {text} -> E 23505"));
                        failed = true;
                    } else {
                        let (r, n) = result_for(text);
                        s.extend(r);
                        want.push(format!("extended {text} -> {n}"));
                    }
                }
                c.extend(sync());
                s.extend(ready(if failed { b'E' } else { b'T' }));
            }
        }
        Step::Prepared { name, text, runs } => {
            c.extend([close(b'S', name), parse(name, text), sync()].concat());
            s.extend([close_complete(), parse_complete(), ready(b'I')].concat());
            for _ in 0..*runs {
                c.extend([bind("", name, &["1"]), execute("", 0), sync()].concat());
                let (r, n) = result_for(text);
                s.extend(bind_complete());
                s.extend(r);
                s.extend(ready(b'I'));
                want.push(format!("extended {text} -> {n}"));
            }
        }
        Step::Copy { rows } => {
            c.extend(query("COPY t FROM STDIN"));
            for i in 0..*rows {
                c.extend(copy_data(format!("{i}\n").as_bytes()));
            }
            c.extend(copy_done());
            s.extend(copy_in_response(1));
            s.extend(complete(&format!("COPY {rows}")));
            s.extend(ready(b'I'));
            want.push(format!("simple COPY t FROM STDIN -> {rows}"));
        }
    }
    (c, s, want)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn valid_conversations_pair_exactly(
        steps in prop::collection::vec(step(), 1..8),
        piece in 1usize..40,
        pipelined in any::<bool>(),
    ) {
        let mut sc = Script::new()
            .client(0, &startup("u", "d"))
            .server(1, &startup_reply());
        let mut want = Vec::new();
        let mut ts = 10;
        if pipelined {
            // Everything sent before any response (pipelining across steps).
            let (mut c, mut s) = (Vec::new(), Vec::new());
            for st in &steps {
                let (cc, ss, w) = render(st);
                c.extend(cc);
                s.extend(ss);
                want.extend(w);
            }
            sc = sc.client(ts, &c).server(ts + 1, &s);
        } else {
            for st in &steps {
                let (c, s, w) = render(st);
                sc = sc.client(ts, &c).server(ts + 1, &s);
                want.extend(w);
                ts += 2;
            }
        }
        let whole = sc.run_cut(usize::MAX);
        prop_assert_eq!(lines(&whole), want);
        prop_assert_eq!(&whole.stats, &Default::default());
        prop_assert_eq!(&whole, &sc.run_cut(piece));
    }
}
