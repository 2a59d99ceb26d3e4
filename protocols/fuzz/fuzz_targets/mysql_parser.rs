//! Fuzz target of the MySQL parser (`MysqlParser`, every `ConnParser` entry point).
//!
//! The input is a script of chunks: a control byte (bit 0: side; bit 7: the chunk has a gap
//! of `(ctl >> 1) & 0x3f` missing bytes after it, times 4096 when bit 1 of the length byte is
//! set; bit 6: expire requests older than the gap value after it), a length byte, then that
//! many data bytes; the connection closes at the end. Each script runs whole and cut into
//! pieces of 1 and 7 bytes. Beyond "no panic, no hang", every record must be well formed: a
//! response never ends before its request began, and a record without a response is a timeout
//! or a reset. (Unlike HTTP, the outputs of different cuts may differ on invalid input: after
//! lost framing the parser resynchronises at chunk starts, as real writes begin messages.)
//!
//! Run: `cargo +nightly fuzz run mysql_parser` in `protocols/fuzz`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wirelens_protocols::mysql::MysqlParser;
use wirelens_protocols::{Chunk, ConnParser, Exchange, Outcome, Side};

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
        let scale = if len & 2 != 0 { 4096 } else { 1 };
        pushes.push(Push {
            side: if ctl & 1 == 0 {
                Side::Client
            } else {
                Side::Server
            },
            data: &rest[..n],
            missing: if ctl & 0x80 != 0 { arg * scale } else { 0 },
            expire: (ctl & 0x40 != 0).then_some(arg),
        });
        input = &rest[n..];
    }
    pushes
}

/// Run the script, each push cut into pieces of at most `piece` bytes.
fn run(pushes: &[Push<'_>], piece: usize) -> Vec<Exchange> {
    let mut parser = MysqlParser::new();
    let mut out = Vec::new();
    let mut ts = 0u64;
    for p in pushes {
        let pieces: Vec<&[u8]> = if p.data.is_empty() {
            vec![p.data]
        } else {
            p.data.chunks(piece).collect()
        };
        let last = pieces.len() - 1;
        for (i, data) in pieces.into_iter().enumerate() {
            ts += 1;
            let missing = if i == last { p.missing } else { 0 };
            parser.push(
                Chunk {
                    side: p.side,
                    ts_ns: ts,
                    data,
                    missing,
                },
                &mut out,
            );
        }
        if let Some(timeout) = p.expire {
            parser.expire(ts, timeout, &mut out);
        }
    }
    parser.close(ts + 1, false, &mut out);
    parser.expire(u64::MAX, 0, &mut out);
    out
}

fuzz_target!(|input: &[u8]| {
    let pushes = script(input);
    for piece in [usize::MAX, 7, 1] {
        for e in run(&pushes, piece) {
            match e.resp_ts_ns {
                Some(r) => {
                    assert!(r >= e.req_ts_ns, "{e:?}");
                    assert_eq!(e.outcome, Outcome::Complete);
                    assert!(e.response.is_some());
                }
                None => {
                    assert_ne!(e.outcome, Outcome::Complete);
                    assert!(e.response.is_none());
                }
            }
        }
    }
});
