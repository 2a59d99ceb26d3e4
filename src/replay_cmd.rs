//! `wirelens replay`: pcap files through the same conntrack -> parse -> pair -> output stages.

use std::path::{Path, PathBuf};

use crate::output::Format;

pub fn replay(files: &[PathBuf], format: Format, output: Option<&Path>) -> anyhow::Result<()> {
    let _ = (files, format, output);
    anyhow::bail!("replay is not wired yet")
}
