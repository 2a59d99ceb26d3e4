//! Fuzz target of the HTTP/1 parser (`HttpParser`, every `ConnParser` entry point).
//!
//! The input is a chunk script (`common/script.rs`).
//! Beyond "no panic, no hang", it checks that pushing the same chunks one byte at a time gives
//! the same exchanges and counters: the parser must not depend on where chunks were cut.
//!
//! Run: `cargo +nightly fuzz run http_parser` in `protocols/fuzz`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wirelens_protocols::http::HttpParser;

#[path = "common/script.rs"]
mod script;

fuzz_target!(|input: &[u8]| {
    let pushes = script::script(input, 1);
    let whole = script::run(HttpParser::new(), &pushes, usize::MAX);
    let bytewise = script::run(HttpParser::new(), &pushes, 1);
    assert_eq!(whole, bytewise);
});
