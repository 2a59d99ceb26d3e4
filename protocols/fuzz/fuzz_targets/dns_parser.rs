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
use wirelens_protocols::Transport;

#[path = "common/script.rs"]
mod script;

fuzz_target!(|input: &[u8]| {
    let Some((&mode, input)) = input.split_first() else {
        return;
    };
    let pushes = script::script(input, 7);
    for p in &pushes {
        let _ = parse_message(p.data, p.missing > 0);
        let mut name = String::new();
        let _ = names::read_name(p.data, 12.min(p.data.len()), &mut name);
        let _ = names::skip_name(p.data, 0);
    }
    if mode & 1 == 0 {
        script::run(DnsParser::new(Transport::Udp), &pushes, usize::MAX);
    } else {
        let whole = script::run(DnsParser::new(Transport::Tcp), &pushes, usize::MAX);
        let bytewise = script::run(DnsParser::new(Transport::Tcp), &pushes, 1);
        assert_eq!(whole, bytewise);
    }
});
