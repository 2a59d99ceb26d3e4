//! The generated skeleton of `bpf/wirelens.bpf.c` and the plain-data impls for its event types.
#![allow(
    clippy::all,
    clippy::pedantic,
    missing_docs,
    non_camel_case_types,
    dead_code
)]

include!(concat!(env!("OUT_DIR"), "/wirelens.skel.rs"));

// SAFETY: generated from C structs made of fixed-width integers and arrays with explicit
// padding (bpf/wirelens.h), so every bit pattern is a valid value.
unsafe impl plain::Plain for types::wl_data_event {}
// SAFETY: as above.
unsafe impl plain::Plain for types::wl_close_event {}
// SAFETY: as above.
unsafe impl plain::Plain for types::wl_exec_event {}
// SAFETY: as above.
unsafe impl plain::Plain for types::wl_settings {}

/// Empty programs on the same tracepoints (`bpf/floor.bpf.c`), for the overhead benchmark.
pub mod floor {
    include!(concat!(env!("OUT_DIR"), "/floor.skel.rs"));
}
