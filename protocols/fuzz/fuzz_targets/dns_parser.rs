//! Fuzz target of the DNS parser: `DnsParser` over UDP and TCP (every `ConnParser` entry
//! point), and `parse_message` / `read_name` on each chunk.
//!
//! The first input byte picks the transport (bit 0: TCP). The rest is a script of chunks: a
//! control byte (bit 0: side; bit 7: the chunk has a gap of `(ctl >> 1) & 0x3f` missing
//! bytes after it, times 7 so that gaps reach past whole messages; bit 6: expire queries
//! older than that value after it), a length byte, then that many data bytes; the connection
//! closes at the end. Beyond "no panic, no hang", over TCP it checks that pushing the same
//! chunks one byte at a time gives the same exchanges and counters: the parser must not
//! depend on where chunks were cut.
//!
//! Run: `cargo +nightly fuzz run dns_parser` in `protocols/fuzz`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wirelens_protocols::dns::{names, parse_message, DnsParser};
use wirelens_protocols::{Chunk, ConnParser, Exchange, ParseStats, Side, Transport};

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
            side: if ctl & 1 == 0 {
                Side::Client
            } else {
                Side::Server
            },
            data: &rest[..n],
            missing: if ctl & 0x80 != 0 { arg * 7 } else { 0 },
            expire: (ctl & 0x40 != 0).then_some(arg),
        });
        input = &rest[n..];
    }
    pushes
}

/// Run the script, each push cut into pieces of at most `piece` bytes.
fn run(t: Transport, pushes: &[Push<'_>], piece: usize) -> (Vec<Exchange>, ParseStats) {
    let mut parser = DnsParser::new(t);
    let mut out = Vec::new();
    for (ts, p) in pushes.iter().enumerate() {
        let ts = ts as u64;
        let pieces: Vec<&[u8]> = if p.data.is_empty() {
            vec![p.data]
        } else {
            p.data.chunks(piece).collect()
        };
        let last = pieces.len() - 1;
        for (i, data) in pieces.into_iter().enumerate() {
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
    parser.close(pushes.len() as u64, false, &mut out);
    (out, parser.stats().clone())
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, input)) = input.split_first() else {
        return;
    };
    let pushes = script(input);
    for p in &pushes {
        let _ = parse_message(p.data, p.missing > 0);
        let mut name = String::new();
        let _ = names::read_name(p.data, 12.min(p.data.len()), &mut name);
        let _ = names::skip_name(p.data, 0);
    }
    if mode & 1 == 0 {
        run(Transport::Udp, &pushes, usize::MAX);
    } else {
        let whole = run(Transport::Tcp, &pushes, usize::MAX);
        let bytewise = run(Transport::Tcp, &pushes, 1);
        assert_eq!(whole, bytewise);
    }
});
