//! `wirelens replay`: pcap files through the same conntrack -> parse -> pair -> output stages
//! as the live path, in capture order.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::conntrack::{Conntrack, ConntrackConfig, ConntrackStats};
use crate::output::{Format, Record, RecordWriter};
use crate::replay::{self, ReplayOptions, ReplayStats};

/// How often (capture time) requests are checked for timeouts while replaying.
const SWEEP_EVERY_NS: u64 = 1_000_000_000;

/// Replays `files` in order into one pipeline and writes the records. Fails on the first
/// file that cannot be read, naming it and the offset.
pub fn replay(files: &[PathBuf], format: Format, output: Option<&Path>) -> anyhow::Result<()> {
    let mut writer = RecordWriter::open(format, output).context("opening the output")?;
    let (stats, replayed) = replay_into(files, ConntrackConfig::default(), &mut |r| {
        writer.write(&r).context("writing a record")
    })?;
    writer.flush().context("flushing the output")?;
    eprintln!(
        "wirelens: replayed {} file(s): packets={} records={} tcp_gaps={} tcp_gap_bytes={} \
         parse_errors={} unmatched_responses={} lost_in_gap={} undetermined_side={} \
         unknown_protocol={} conns_left_alone={}",
        files.len(),
        replayed.packets,
        writer.written,
        replayed.tcp_gaps,
        replayed.tcp_gap_bytes,
        stats.parse.parse_errors,
        stats.parse.unmatched_responses,
        stats.parse.lost_in_gap,
        stats.undetermined_side_events,
        stats.unknown_protocol_events,
        stats.conns_left_alone,
    );
    Ok(())
}

/// The replay pipeline without the writer: every record goes to `emit`.
pub fn replay_into(
    files: &[PathBuf],
    cfg: ConntrackConfig,
    emit: &mut dyn FnMut(Record) -> anyhow::Result<()>,
) -> anyhow::Result<(ConntrackStats, ReplayStats)> {
    let mut conntrack = Conntrack::new(cfg);
    let mut total = ReplayStats::default();
    let mut records = Vec::new();
    let mut failed: Option<anyhow::Error> = None;
    let mut last_sweep = 0u64;
    for file in files {
        let opts = ReplayOptions {
            first_flow_index: total.flows as u32,
            ..ReplayOptions::default()
        };
        let stats = replay::read_file(file, &opts, &mut |ev| {
            if failed.is_some() {
                return;
            }
            let ts = match &ev {
                crate::event::SourceEvent::Data(d) => d.ts_ns,
                _ => 0,
            };
            conntrack.handle(&ev, &mut records);
            if ts > last_sweep.saturating_add(SWEEP_EVERY_NS) {
                conntrack.sweep(ts, &mut records);
                last_sweep = ts;
            }
            for r in records.drain(..) {
                if let Err(e) = emit(r) {
                    failed = Some(e);
                    return;
                }
            }
        })?;
        if let Some(e) = failed.take() {
            return Err(e);
        }
        total += &stats;
    }
    conntrack.finish(0, &mut records);
    for r in records.drain(..) {
        emit(r)?;
    }
    Ok((conntrack.stats(), total))
}
