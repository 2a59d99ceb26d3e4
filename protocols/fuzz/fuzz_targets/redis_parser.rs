//! Fuzz target of the Redis parser (`RedisParser`, every `ConnParser` entry point).
//!
//! The input is a script of chunks: a control byte (bit 0: side; bit 7: the chunk has a gap
//! of `(ctl >> 1) & 0x3f` missing bytes after it, or 2^40 when that value is 63; bit 6:
//! expire commands older than the gap value after it), a length byte, then that many data
//! bytes; the connection closes at the end. Beyond "no panic, no hang", it checks that
//! pushing the same chunks one byte at a time gives the same exchanges and counters: the
//! parser must not depend on where chunks were cut.
//!
//! Run: `cargo +nightly fuzz run redis_parser` in `protocols/fuzz`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wirelens_protocols::redis::RedisParser;
use wirelens_protocols::{Chunk, ConnParser, Exchange, ParseStats, Side};

struct Push<'a> {
    side: Side,
    data: &'a [u8],
    missing: u64,
    expire: Option<u64>,
}

fn script(mut input: &[u8]) -> Vec<Push<'_>> {
    let mut pushes = Vec::new();
    while let [ctl, len, rest @ ..] = input {
        let n = usize::from(*len).min(rest.len());
        let arg = u64::from((ctl >> 1) & 0x3f);
        pushes.push(Push {
            side: if ctl & 1 == 0 { Side::Client } else { Side::Server },
            data: &rest[..n],
            missing: match (ctl & 0x80 != 0, arg) {
                (false, _) => 0,
                (true, 63) => 1 << 40,
                (true, a) => a,
            },
            expire: (ctl & 0x40 != 0).then_some(arg),
        });
        input = &rest[n..];
    }
    pushes
}

/// Run the script, each push cut into pieces of at most `piece` bytes.
fn run(pushes: &[Push<'_>], piece: usize) -> (Vec<Exchange>, ParseStats, u64) {
    let mut parser = RedisParser::new();
    let mut out = Vec::new();
    for (ts, p) in pushes.iter().enumerate() {
        let ts = ts as u64;
        let pieces: Vec<&[u8]> = if p.data.is_empty() { vec![p.data] } else { p.data.chunks(piece).collect() };
        let last = pieces.len() - 1;
        for (i, data) in pieces.into_iter().enumerate() {
            let missing = if i == last { p.missing } else { 0 };
            parser.push(Chunk { side: p.side, ts_ns: ts, data, missing }, &mut out);
        }
        if let Some(timeout) = p.expire {
            parser.expire(ts, timeout, &mut out);
        }
    }
    parser.close(pushes.len() as u64, false, &mut out);
    (out, parser.stats().clone(), parser.out_of_band())
}

fuzz_target!(|input: &[u8]| {
    let pushes = script(input);
    let whole = run(&pushes, usize::MAX);
    let bytewise = run(&pushes, 1);
    assert_eq!(whole, bytewise);
});
