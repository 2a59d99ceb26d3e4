//! Fuzz target of the SQL helpers (`sql::describe`, `sql::obfuscate`).
//!
//! The input bytes are decoded lossily (as the MySQL and PostgreSQL parsers do with captured
//! statement text). Beyond "no panic, no hang", it checks that `obfuscate` is idempotent and
//! that its output describes without panicking.
//!
//! Run: `cargo +nightly fuzz run sql` in `protocols/fuzz`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wirelens_protocols::sql::{describe, obfuscate};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = describe(&text);
    let once = obfuscate(&text);
    let twice = obfuscate(&once);
    assert_eq!(twice, once, "obfuscate is not idempotent on {text:?}");
    let _ = describe(&once);
});
