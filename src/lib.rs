//! The wirelens agent: capture (live eBPF or pcap replay), conntrack, parse, pair, output,
//! aggregate, export.

pub mod aggregate;
pub mod capture;
pub mod config;
pub mod conntrack;
pub mod event;
pub mod export;
pub mod filter_ctl;
pub mod floor;
pub mod k8s;
pub mod output;
pub mod preflight;
pub mod procfs;
pub mod replay;
pub mod replay_cmd;
pub mod run;
pub mod text;
