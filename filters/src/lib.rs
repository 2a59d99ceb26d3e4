//! Include/exclude filters for wirelens: which processes the observer keeps.
//!
//! A pure library: the configuration model (YAML, documented in the README), its compilation
//! into regular expressions once, and the decision for one process from the facts the agent
//! gathered about it. The agent writes decisions into the kernel's control maps, so dropped
//! traffic never leaves the kernel.
//!
//! Semantics: within one list a process matches when any entry matches; across the keys of
//! one selector all keys given must match (cmdline AND labels ...); each entry of `labels`,
//! `annotations` and `env` is a key of its own (the process must have that key, with a value
//! the regex matches). An empty `include` keeps everything; `exclude` wins over `include`.

mod config;
mod select;

pub use config::{FilterConfig, NsRef, PortFilter, SelectorConfig, Undecided};
pub use select::{Decision, Filters, Selector, Subject};

/// A configuration that could not be compiled; `field` is its path, e.g.
/// `filters.include.cmdline[1]`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FilterError {
    #[error("{field}: invalid regular expression: {message}")]
    Regex { field: String, message: String },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}
