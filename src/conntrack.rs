//! Per-connection byte streams, sides and parser state.
