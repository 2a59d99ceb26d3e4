//! The wirelens agent: capture (live eBPF or pcap replay), conntrack, parse, pair, output.

pub mod capture;
pub mod conntrack;
pub mod event;
pub mod output;
pub mod replay;
