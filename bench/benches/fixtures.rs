//! Conntrack + parse + pair throughput on the recorded fixtures (`fixtures/*/*.pcap`): the
//! pcaps are read once into memory through the replay source, then the same events are fed
//! to a fresh `Conntrack` per iteration, exactly as `wirelens replay` does after reading.
//! Reports payload bytes/s and exchanges/s per protocol folder.
//!
//! Run: `cargo bench -p wirelens-bench --bench fixtures`.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wirelens::conntrack::{Conntrack, ConntrackConfig};
use wirelens::event::SourceEvent;
use wirelens::replay::{read_file, ReplayOptions};

fn load(dir: &Path) -> (Vec<SourceEvent>, u64) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"));
    files.sort();
    let mut events = Vec::new();
    let mut flows = 0u32;
    for f in &files {
        let opts = ReplayOptions {
            first_flow_index: flows,
            progress: false,
            ..ReplayOptions::default()
        };
        if let Ok(stats) = read_file(f, &opts, &mut |ev| events.push(ev)) {
            flows += stats.flows as u32;
        }
    }
    let bytes = events
        .iter()
        .map(|e| match e {
            SourceEvent::Data(d) => d.data.len() as u64 + d.missing,
            _ => 0,
        })
        .sum();
    (events, bytes)
}

fn run(events: &[SourceEvent]) -> usize {
    let mut ct = Conntrack::new(ConntrackConfig::default());
    let mut out = Vec::new();
    for ev in events {
        ct.handle(ev, &mut out);
    }
    ct.finish(0, &mut out);
    out.len()
}

fn bench_fixtures(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    let mut group = c.benchmark_group("fixtures");
    for dir in dirs {
        let (events, bytes) = load(&dir);
        if events.is_empty() {
            continue;
        }
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let exchanges = run(&events) as u64;
        group.throughput(Throughput::Bytes(bytes));
        group.bench_function(format!("{name} bytes"), |b| {
            b.iter(|| run(black_box(&events)))
        });
        group.throughput(Throughput::Elements(exchanges.max(1)));
        group.bench_function(format!("{name} exchanges"), |b| {
            b.iter(|| run(black_box(&events)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_fixtures);
criterion_main!(benches);
