//! `wirelens run`: the live pipeline. capture (thread) -> conntrack/parse/pair (task) -> output
//! and aggregate; the metrics endpoint (task) reads the aggregate.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc;

use crate::capture::decode::clock_ns;
use crate::capture::{Capture, CaptureCounters};
use crate::config::RunSettings;
use crate::conntrack::{Conntrack, ConntrackStats};
use crate::export::http::MetricsServer;
use crate::export::otlp::Otlp;
use crate::export::{Health, Metrics, MetricsEndpoint};
use crate::filter_ctl;
use crate::output::RecordWriter;
use crate::preflight;

/// Runs until SIGINT or SIGTERM, then detaches, flushes what is paired and returns.
/// SIGHUP, or a change of the file `watch`, reloads the filters through `load`.
pub async fn run(
    settings: RunSettings,
    load: filter_ctl::Loader,
    watch: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    preflight::require_privileges()?;
    let metrics = Arc::new(Metrics::new(settings.aggregation.clone()));
    serve_metrics(&settings.metrics, &metrics).await?;
    let mut otlp = match &settings.otlp {
        Some(s) => Some(Otlp::start(s)?),
        None => None,
    };
    let mut writer = RecordWriter::open(settings.format, settings.output.as_deref())
        .context("opening the output")?;
    let (tx, mut rx) = mpsc::channel(crate::capture::CHANNEL_BATCHES);
    let (ctl_tx, ctl_rx) = std::sync::mpsc::channel::<filter_ctl::Msg>();
    let (exec_tx, exec_rx) = std::sync::mpsc::channel::<crate::capture::ExecEvent>();
    if let Some(k) = &settings.kubernetes {
        // Before the capture, so the first filter decisions already know the pods.
        crate::k8s::start(k)
            .await
            .context("starting Kubernetes metadata (kubernetes.enabled: false turns it off)")?;
    }
    let policy = settings.policy.clone();
    let init_policy = policy.clone();
    let capture = Capture::start(
        settings.capture.clone(),
        tx,
        exec_tx,
        Box::new(move |maps| {
            let done = filter_ctl::apply(maps, &init_policy)?;
            tracing::info!(
                mode = filter_ctl::mode_name(&init_policy.mode),
                kept = done.kept,
                dropped = done.dropped,
                cgroups = done.cgroups,
                protocols = ?init_policy.protocols,
                "filters applied"
            );
            Ok(())
        }),
    )?;
    metrics.set_ready(true);
    let maps = capture.control.try_clone()?;
    let control = std::thread::Builder::new()
        .name("wl-filters".into())
        .spawn(move || filter_ctl::run(maps, policy, ctl_rx, watch, load))?;
    // Exec events reach the control thread through the same channel as reloads.
    let exec_fwd = {
        let ctl_tx = ctl_tx.clone();
        std::thread::Builder::new()
            .name("wl-exec".into())
            .spawn(move || {
                while let Ok(ev) = exec_rx.recv() {
                    if ctl_tx.send(filter_ctl::Msg::Exec(ev)).is_err() {
                        break;
                    }
                }
            })?
    };
    let mut sighup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let counters = capture.counters.clone();
    let mut conntrack = Conntrack::new(settings.conntrack.clone());
    let mut records = Vec::new();

    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut sweep = tokio::time::interval(Duration::from_secs(1));
    let period = settings.aggregation.period;
    let mut period_end = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let stats_every = settings.stats_interval_s;
    let mut last_stats = std::time::Instant::now();
    // Tests and scripts wait for this line before they send traffic.
    eprintln!("wirelens: capturing (pid {})", std::process::id());

    let mut stopping = false;
    loop {
        tokio::select! {
            batch = rx.recv() => {
                let Some(batch) = batch else { break };
                for ev in batch.events() {
                    conntrack.handle(ev, &mut records);
                }
                capture.recycle(batch);
                write_all(&mut writer, &mut records, &metrics, otlp.as_ref())?;
            }
            _ = sweep.tick() => {
                conntrack.sweep(clock_ns(libc::CLOCK_REALTIME), &mut records);
                write_all(&mut writer, &mut records, &metrics, otlp.as_ref())?;
                metrics.aggregator().settle();
                let stats = conntrack.stats();
                metrics.set_health(Health::from_pipeline(&counters, &stats, conntrack.len()));
                if let Some(o) = &otlp {
                    metrics.set_otlp_health(o.health());
                }
                if stats_every > 0 && last_stats.elapsed().as_secs() >= stats_every {
                    log_stats(&counters, &stats, conntrack.len());
                    last_stats = std::time::Instant::now();
                }
            }
            _ = period_end.tick() => {
                let mut agg = metrics.aggregator();
                agg.tick();
                if let Some(o) = &mut otlp {
                    o.period(&agg);
                }
            }
            _ = sighup.recv() => { let _ = ctl_tx.send(filter_ctl::Msg::Reload); }
            _ = sigint.recv(), if !stopping => {
                stopping = true;
                metrics.set_ready(false);
                capture.request_stop();
            }
            _ = sigterm.recv(), if !stopping => {
                stopping = true;
                metrics.set_ready(false);
                capture.request_stop();
            }
        }
    }
    capture.stop();
    drop(ctl_tx);
    let _ = exec_fwd.join();
    let _ = control.join();
    write_all(&mut writer, &mut records, &metrics, otlp.as_ref())?;
    // Every exchange on its service graph edge, for whatever reads the aggregate last.
    metrics.aggregator().settle_all();
    writer.flush().context("flushing the output")?;
    if let Some(mut o) = otlp.take() {
        // The last spans and the metrics so far, for at most a few seconds.
        let last = o.last_period(&metrics.aggregator());
        o.shutdown(last, Duration::from_secs(5)).await;
    }
    let stats = conntrack.stats();
    metrics.set_health(Health::from_pipeline(&counters, &stats, conntrack.len()));
    log_stats(&counters, &stats, conntrack.len());
    eprintln!("wirelens: {}", summary(&counters, &stats, writer.written));
    Ok(())
}

/// Starts the metrics endpoint. An address the user chose must work; the default one may be
/// taken by another agent on this host, which only costs this one its endpoint.
async fn serve_metrics(ep: &MetricsEndpoint, metrics: &Arc<Metrics>) -> anyhow::Result<()> {
    match MetricsServer::bind(ep.addr).await {
        Ok(server) => {
            let addr = server.local_addr().unwrap_or(ep.addr);
            server.spawn(metrics.clone());
            tracing::info!(%addr, "serving /metrics, /healthz, /readyz");
            Ok(())
        }
        Err(e) if !ep.explicit => {
            tracing::warn!(
                addr = %ep.addr,
                reason = %e.kind(),
                "metrics endpoint not started: the default address is not available \
                 (another agent?); choose one with --metrics-addr"
            );
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("listening on metrics address {}", ep.addr)),
    }
}

/// Counts each record in the aggregate, then writes it.
fn write_all(
    writer: &mut RecordWriter,
    records: &mut Vec<crate::output::Record>,
    metrics: &Metrics,
    otlp: Option<&Otlp>,
) -> anyhow::Result<()> {
    crate::k8s::enrich(records);
    if let Some(o) = otlp {
        for r in records.iter() {
            o.offer(r);
        }
    }
    if !records.is_empty() {
        let mut agg = metrics.aggregator();
        let now = std::time::Instant::now();
        for r in records.iter() {
            agg.observe_at(r, now);
        }
    }
    for r in records.drain(..) {
        writer.write(&r).context("writing a record")?;
    }
    writer.flush().context("flushing the output")?;
    Ok(())
}

/// One line with every counter, for the log and the exit summary.
pub fn summary(c: &CaptureCounters, s: &ConntrackStats, written: u64) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    format!(
        "records={written} kernel_events={} lost_ringbuf={} read_faults={} conn_table_full={} \
         inflight_full={} decode_errors={} conns={} parse_errors={} unmatched_responses={} \
         lost_in_gap={} undetermined_side={} unknown_protocol={} conns_left_alone={} \
         received_events={} kernel_closes={} received_closes={}",
        c.kernel_data_events.load(Relaxed),
        c.lost(),
        c.kernel_read_faults.load(Relaxed),
        c.kernel_conn_table_full.load(Relaxed),
        c.kernel_inflight_full.load(Relaxed),
        c.decode_errors.load(Relaxed),
        s.conns_opened,
        s.parse.parse_errors,
        s.parse.unmatched_responses,
        s.parse.lost_in_gap,
        s.undetermined_side_events,
        s.unknown_protocol_events,
        s.conns_left_alone,
        c.data_events_received.load(Relaxed),
        c.kernel_close_events.load(Relaxed),
        c.close_events_received.load(Relaxed),
    )
}

fn log_stats(c: &CaptureCounters, s: &ConntrackStats, conns: usize) {
    use std::sync::atomic::Ordering::Relaxed;
    tracing::info!(
        kernel_events = c.kernel_data_events.load(Relaxed),
        lost_ringbuf = c.lost(),
        read_faults = c.kernel_read_faults.load(Relaxed),
        decode_errors = c.decode_errors.load(Relaxed),
        conns_tracked = conns,
        exchanges = s.exchanges,
        parse_errors = s.parse.parse_errors,
        unmatched_responses = s.parse.unmatched_responses,
        "counters"
    );
}
