//! Properties of the Redis parser over generated input:
//! - any bytes, cut anywhere, with gaps, on both sides: no panic, every push returns
//!   promptly, and the result does not depend on where the chunks were cut;
//! - any valid conversation (multibulk and inline commands, pipelined batches, replies of
//!   every RESP2/RESP3 type with attributes and out-of-band pushes between them), cut
//!   anywhere: every command pairs with its own reply, in order.

mod redis_support;

use std::time::{Duration, Instant};

use proptest::prelude::*;
use redis_support::*;
use wirelens_protocols::redis::RedisParser;
use wirelens_protocols::{Chunk, ConnParser, ParseStats, Side};

/// Fragments that steer random input into the parser's deeper states.
const WORDS: &[&[u8]] = &[
    b"*1\r\n",
    b"*3\r\n",
    b"*-1\r\n",
    b"*?\r\n",
    b".\r\n",
    b"$3\r\nGET\r\n",
    b"$5\r\n",
    b"$-1\r\n",
    b"$?\r\n;2\r\nab\r\n;0\r\n",
    b"+OK\r\n",
    b"-ERR x\r\n",
    b":1\r\n",
    b"%1\r\n",
    b"|1\r\n",
    b">3\r\n$9\r\nsubscribe\r\n",
    b"$7\r\nmessage\r\n",
    b"~2\r\n",
    b"_\r\n",
    b"#t\r\n",
    b",1.5\r\n",
    b"(12\r\n",
    b"!3\r\nERR\r\n",
    b"=5\r\ntxt:a\r\n",
    b"PING\r\n",
    b"CLIENT REPLY OFF\r\n",
    b"client reply skip\r\n",
    b"CLIENT REPLY ON\r\n",
    b"MULTI\r\n",
    b"SUBSCRIBE a b\r\n",
    b"UNSUBSCRIBE\r\n",
    b"MONITOR\r\n",
    b"\r\n",
    b"\n",
    b"\"",
    b" ",
];

fn fragment() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..24),
        prop::sample::select(WORDS).prop_map(<[u8]>::to_vec),
    ]
}

/// Pushes: (client side?, data, missing bytes after it).
fn pushes() -> impl Strategy<Value = Vec<(bool, Vec<u8>, u64)>> {
    prop::collection::vec(
        (
            any::<bool>(),
            prop::collection::vec(fragment(), 0..10).prop_map(|f| f.concat()),
            prop_oneof![4 => Just(0u64), 1 => 0u64..40, 1 => Just(1u64 << 40)],
        ),
        0..16,
    )
}

fn script(pushes: &[(bool, Vec<u8>, u64)]) -> Vec<Push> {
    pushes
        .iter()
        .map(|(client, data, missing)| gap(if *client { C } else { S }, data, *missing))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_nor_depend_on_cuts(p in pushes(), piece in 1usize..9) {
        let s = script(&p);
        let start = Instant::now();
        let whole = run_pieces(&s, usize::MAX, true);
        let cut = run_pieces(&s, piece, true);
        prop_assert!(start.elapsed() < Duration::from_secs(5));
        prop_assert_eq!(&whole, &cut);
    }
}

// ---------------------------------------------------------------------------------------
// Valid conversations

/// A reply value of any type (no top-level push: those are added apart).
fn value(depth: u32) -> BoxedStrategy<Vec<u8>> {
    let text = "[a-zA-Z0-9 ._:-]{0,12}";
    let leaf = prop_oneof![
        text.prop_map(|s| format!("+{s}\r\n").into_bytes()),
        any::<i64>().prop_map(|n| format!(":{n}\r\n").into_bytes()),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(|b| {
            let mut v = format!("${}\r\n", b.len()).into_bytes();
            v.extend(b);
            v.extend(b"\r\n");
            v
        }),
        Just(b"$-1\r\n".to_vec()),
        Just(b"*-1\r\n".to_vec()),
        Just(b"_\r\n".to_vec()),
        any::<bool>().prop_map(|b| if b {
            b"#t\r\n".to_vec()
        } else {
            b"#f\r\n".to_vec()
        }),
        (-1e300f64..1e300).prop_map(|d| format!(",{d:e}\r\n").into_bytes()),
        "[0-9]{1,40}".prop_map(|n| format!("(-{n}\r\n").into_bytes()),
        text.prop_map(|s| format!("={}\r\ntxt:{s}\r\n", s.len() + 4).into_bytes()),
        prop::collection::vec(text.prop_map(String::into_bytes), 1..4).prop_map(|chunks| {
            let mut v = b"$?\r\n".to_vec();
            for c in chunks.iter().filter(|c| !c.is_empty()) {
                v.extend(format!(";{}\r\n", c.len()).into_bytes());
                v.extend(c);
                v.extend(b"\r\n");
            }
            v.extend(b";0\r\n");
            v
        }),
    ];
    if depth == 0 {
        return leaf.boxed();
    }
    let inner = value(depth - 1);
    prop_oneof![
        3 => leaf,
        1 => (prop::sample::select(&b"*~"[..]), prop::collection::vec(inner.clone(), 0..4))
            .prop_map(|(k, items)| {
                let mut v = format!("{}{}\r\n", k as char, items.len()).into_bytes();
                v.extend(items.concat());
                v
            }),
        1 => prop::collection::vec((inner.clone(), inner.clone()), 0..3).prop_map(|pairs| {
            let mut v = format!("%{}\r\n", pairs.len()).into_bytes();
            for (k, x) in pairs {
                v.extend(k);
                v.extend(x);
            }
            v
        }),
        1 => prop::collection::vec(inner.clone(), 0..3).prop_map(|items| {
            let mut v = b"*?\r\n".to_vec();
            v.extend(items.concat());
            v.extend(b".\r\n");
            v
        }),
        // An attribute, then the value it describes.
        1 => (inner.clone(), inner.clone(), inner).prop_map(|(k, x, real)| {
            let mut v = b"|1\r\n".to_vec();
            v.extend(k);
            v.extend(x);
            v.extend(real);
            v
        }),
    ]
    .boxed()
}

/// A reply, and the error text it carries, if any.
fn reply() -> impl Strategy<Value = (Vec<u8>, Option<String>)> {
    prop_oneof![
        4 => value(3).prop_map(|v| (v, None)),
        1 => "[A-Z]{2,10} [a-z '0-9]{0,30}".prop_map(|t| (format!("-{t}\r\n").into_bytes(), Some(t))),
        1 => prop::collection::vec(any::<u8>(), 0..30).prop_map(|b| {
            let mut v = format!("!{}\r\n", b.len()).into_bytes();
            v.extend(&b);
            v.extend(b"\r\n");
            (v, Some(String::from_utf8_lossy(&b).into_owned()))
        }),
    ]
}

/// A command: name, arguments, and whether it is sent inline.
fn command() -> impl Strategy<Value = (String, Vec<Vec<u8>>, bool)> {
    (
        prop::sample::select(vec![
            "GET",
            "set",
            "HGetAll",
            "EVAL",
            "ping",
            "XADD",
            "frobnicate",
        ]),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..20), 0..5),
        any::<bool>(),
    )
        .prop_map(|(name, args, inline)| {
            // Inline only for plain words, and a known command (an unknown word at the start
            // of a stream is not taken for a command).
            let plain = name != "frobnicate"
                && args
                    .iter()
                    .all(|a| !a.is_empty() && a.iter().all(u8::is_ascii_alphanumeric));
            (name.to_string(), args, inline && plain)
        })
}

/// A push that answers nothing (RESP3 out-of-band data).
fn push() -> impl Strategy<Value = Vec<u8>> {
    value(2).prop_map(|v| {
        let mut p = b">2\r\n$10\r\ninvalidate\r\n".to_vec();
        p.extend(v);
        p
    })
}

#[derive(Debug, Clone)]
struct Turn {
    command: (String, Vec<Vec<u8>>, bool),
    reply: (Vec<u8>, Option<String>),
    push_before: Option<Vec<u8>>,
}

fn turns() -> impl Strategy<Value = Vec<Vec<Turn>>> {
    let turn = (command(), reply(), prop::option::weighted(0.2, push())).prop_map(
        |(command, reply, push_before)| Turn {
            command,
            reply,
            push_before,
        },
    );
    // Batches of pipelined commands.
    prop::collection::vec(prop::collection::vec(turn, 1..6), 1..6)
}

fn encode(c: &(String, Vec<Vec<u8>>, bool)) -> Vec<u8> {
    let (name, args, inline) = c;
    if *inline {
        let mut line = name.clone();
        for a in args {
            line.push(' ');
            line.push_str(&String::from_utf8_lossy(a));
        }
        line.push_str("\r\n");
        return line.into_bytes();
    }
    let mut all = vec![name.as_bytes().to_vec()];
    all.extend(args.iter().cloned());
    cmd_bytes(&all)
}

/// Cuts `data` at the given points (taken modulo its length).
fn cut(data: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    at.push(0);
    at.push(data.len());
    at.sort_unstable();
    at.dedup();
    at.windows(2).map(|w| data[w[0]..w[1]].to_vec()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn valid_conversations_pair_exactly(
        batches in turns(),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut parser = RedisParser::new();
        let mut out = Vec::new();
        let mut ts = 0;
        let mut want = Vec::new();
        let mut pushes = 0;
        for batch in &batches {
            let client: Vec<u8> = batch.iter().flat_map(|t| encode(&t.command)).collect();
            let mut server = Vec::new();
            for t in batch {
                if let Some(p) = &t.push_before {
                    server.extend(p);
                    pushes += 1;
                }
                server.extend(&t.reply.0);
                let (name, args, _) = &t.command;
                want.push((name.to_ascii_uppercase(), args.len() as u32, t.reply.1.clone()));
            }
            for (side, data) in [(Side::Client, client), (Side::Server, server)] {
                for piece in cut(&data, &cuts) {
                    ts += 1;
                    parser.push(Chunk { side, ts_ns: ts, data: &piece, missing: 0 }, &mut out);
                }
            }
        }
        let got: Vec<(String, u32, Option<String>)> = out
            .iter()
            .map(|e| {
                let x = ex(e);
                (x.command, x.args, x.error.expect("a response").clone())
            })
            .collect();
        prop_assert_eq!(got, want);
        prop_assert_eq!(parser.stats(), &ParseStats::default());
        prop_assert_eq!(parser.out_of_band(), pushes);
    }
}
