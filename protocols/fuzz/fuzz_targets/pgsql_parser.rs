//! Fuzz target of the PostgreSQL parser (`PgsqlParser`, every `ConnParser` entry point).
//!
//! The input is a chunk script (`common/script.rs`).
//! Beyond "no panic, no hang", it checks that pushing the same chunks one byte at a time gives
//! the same exchanges and counters: the parser must not depend on where chunks were cut.
//!
//! Run: `cargo +nightly fuzz run pgsql_parser` in `protocols/fuzz`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wirelens_protocols::pgsql::PgsqlParser;

#[path = "common/script.rs"]
mod script;

fuzz_target!(|input: &[u8]| {
    let pushes = script::script(input, 1);
    let whole = script::run(PgsqlParser::new(), &pushes, usize::MAX);
    let bytewise = script::run(PgsqlParser::new(), &pushes, 1);
    assert_eq!(whole, bytewise);
});
