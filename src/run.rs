//! `wirelens run`: the live pipeline. The capture thread reads the ring buffer and runs
//! conntrack/parse/pair, output and aggregation on each event as it reads it (a [`Pipeline`]
//! is its sink); tokio runs the signals, the period ticks, the metrics endpoint and the OTLP
//! exporters, which read the aggregate.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::capture::decode::clock_ns;
use crate::capture::{Capture, CaptureCounters, Sink};
use crate::config::RunSettings;
use crate::conntrack::{Conntrack, ConntrackStats};
use crate::event::SourceEvent;
use crate::export::http::MetricsServer;
use crate::export::otlp::Otlp;
use crate::export::{Health, Metrics, MetricsEndpoint};
use crate::filter_ctl;
use crate::output::{Record, RecordWriter};
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
    let otlp = match &settings.otlp {
        Some(s) => Some(Arc::new(Mutex::new(Otlp::start(s)?))),
        None => None,
    };
    let writer = RecordWriter::open(settings.format, settings.output.as_deref())
        .context("opening the output")?;
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
    let (ended_tx, mut ended) = tokio::sync::oneshot::channel();
    let pipeline = Pipeline {
        conntrack: Conntrack::new(settings.conntrack.clone()),
        records: Vec::new(),
        writer,
        metrics: metrics.clone(),
        otlp: otlp.clone(),
        last_sweep: Instant::now(),
        stats_every: settings.stats_interval_s,
        last_stats: Instant::now(),
        error: None,
        ended: Some(ended_tx),
    };
    let capture = Capture::start(
        settings.capture.clone(),
        pipeline,
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
    let counters = capture.counters.clone();
    let mut sighup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut health = tokio::time::interval(Duration::from_secs(1));
    let period = settings.aggregation.period;
    let mut period_end = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    // Tests and scripts wait for this line before they send traffic.
    eprintln!("wirelens: capturing (pid {})", std::process::id());

    let mut stopping = false;
    loop {
        tokio::select! {
            // The capture thread ended: asked to, or its output failed.
            _ = &mut ended => break,
            _ = health.tick() => {
                if let Some(o) = &otlp {
                    let h = lock(o).health();
                    metrics.set_otlp_health(h);
                }
            }
            _ = period_end.tick() => end_period(&metrics, otlp.as_deref()),
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
    let pipeline = capture.stop();
    drop(ctl_tx);
    let _ = exec_fwd.join();
    let _ = control.join();
    let Some(mut pipeline) = pipeline else {
        anyhow::bail!("the capture thread panicked");
    };
    if let Some(e) = pipeline.error.take() {
        return Err(e);
    }
    pipeline.write()?;
    // Every exchange on its service graph edge, for whatever reads the aggregate last.
    metrics.aggregator().settle_all();
    pipeline.writer.flush().context("flushing the output")?;
    let Pipeline {
        conntrack, writer, ..
    } = pipeline;
    if let Some(o) = otlp.and_then(|o| Arc::try_unwrap(o).ok()) {
        let mut o = o.into_inner().unwrap_or_else(PoisonError::into_inner);
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

/// The exporter, locked.
///
/// Lock order: the aggregator before the exporter. Only [`end_period`] holds both; the
/// capture thread ([`write_all`]) takes them one after the other. (It once held the exporter
/// while it aggregated: a period ending at that moment deadlocked the agent, its capture
/// and its `/metrics` alike.)
fn lock(o: &Mutex<Otlp>) -> std::sync::MutexGuard<'_, Otlp> {
    o.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The end of an aggregation period: the aggregator moves on, and its metrics as they stand
/// go to the OTLP exporter (a snapshot of the aggregator, so both are held).
fn end_period(metrics: &Metrics, otlp: Option<&Mutex<Otlp>>) {
    let mut agg = metrics.aggregator();
    agg.tick();
    if let Some(o) = otlp {
        lock(o).period(&agg);
    }
}

/// Records written per call of [`Pipeline::write`] at most, between two drains of the ring.
const WRITE_EVERY: usize = 512;

/// The pipeline of `wirelens run`, as the capture thread's sink: each event goes through
/// conntrack and the parsers as it is read; records are aggregated and written every
/// [`WRITE_EVERY`] records and whenever the ring buffer is drained; once a second, idle
/// connections are swept and the health metrics refreshed.
struct Pipeline {
    conntrack: Conntrack,
    records: Vec<Record>,
    writer: RecordWriter,
    metrics: Arc<Metrics>,
    otlp: Option<Arc<Mutex<Otlp>>>,
    last_sweep: Instant,
    stats_every: u64,
    last_stats: Instant,
    /// Why the pipeline stopped (writing failed); `run` returns it.
    error: Option<anyhow::Error>,
    /// Dropped (sent) when the capture thread ends, to wake `run`.
    ended: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Pipeline {
    fn write(&mut self) -> anyhow::Result<()> {
        write_all(
            &mut self.writer,
            &mut self.records,
            &self.metrics,
            self.otlp.as_deref(),
        )
    }

    fn keep(&mut self, r: anyhow::Result<()>) -> bool {
        match r {
            Ok(()) => true,
            Err(e) => {
                self.error.get_or_insert(e);
                false
            }
        }
    }
}

impl Sink for Pipeline {
    fn event(&mut self, ev: &SourceEvent) -> bool {
        self.conntrack.handle(ev, &mut self.records);
        if self.records.len() < WRITE_EVERY {
            return true;
        }
        let r = self.write();
        self.keep(r)
    }

    fn drained(&mut self, counters: &CaptureCounters) -> bool {
        if self.last_sweep.elapsed() >= Duration::from_secs(1) {
            self.last_sweep = Instant::now();
            self.conntrack
                .sweep(clock_ns(libc::CLOCK_REALTIME), &mut self.records);
            let r = self.write();
            if !self.keep(r) {
                return false;
            }
            self.metrics.aggregator().settle();
            let stats = self.conntrack.stats();
            self.metrics.set_health(Health::from_pipeline(
                counters,
                &stats,
                self.conntrack.len(),
            ));
            if self.stats_every > 0 && self.last_stats.elapsed().as_secs() >= self.stats_every {
                log_stats(counters, &stats, self.conntrack.len());
                self.last_stats = Instant::now();
            }
            return true;
        }
        let r = self.write();
        self.keep(r)
    }

    fn ended(&mut self) {
        if let Some(tx) = self.ended.take() {
            let _ = tx.send(());
        }
    }
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

/// Counts each record in the aggregate, then writes it and hands it to the OTLP export. The
/// aggregator is let go before the exporter is locked (see [`lock`]).
fn write_all(
    writer: &mut RecordWriter,
    records: &mut Vec<Record>,
    metrics: &Metrics,
    otlp: Option<&Mutex<Otlp>>,
) -> anyhow::Result<()> {
    crate::k8s::enrich(records);
    if !records.is_empty() {
        let mut agg = metrics.aggregator();
        let now = std::time::Instant::now();
        for r in records.iter() {
            agg.observe_at(r, now);
        }
    }
    let written = records
        .iter()
        .try_for_each(|r| writer.write(r).context("writing a record"));
    match otlp {
        Some(o) => lock(o).offer_vec(records),
        None => records.clear(),
    }
    written?;
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
         own_export_events={} received_events={} kernel_closes={} received_closes={}",
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
        s.own_export_events,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::AggregationSettings;
    use crate::export::otlp::config::OtlpConfig;
    use crate::output::{Format, ProcessRecord};
    use wirelens_protocols::{redis, Exchange, Outcome, Request, Response, Role};

    fn records(n: usize) -> Vec<Record> {
        (0..n)
            .map(|i| {
                let ex = Exchange {
                    req_ts_ns: 1_000_000_000,
                    resp_ts_ns: Some(1_000_100_000),
                    request: Request::Redis(redis::RedisRequest {
                        command: "GET".into(),
                        args: 1,
                    }),
                    response: Some(Response::Redis(redis::RedisResponse {
                        error: false,
                        message: None,
                    })),
                    outcome: Outcome::Complete,
                    truncated: false,
                    trace: None,
                };
                let client = std::net::SocketAddr::from(([127, 0, 0, 1], 40_000 + (i % 8) as u16));
                let server = std::net::SocketAddr::from(([127, 0, 0, 1], 6379));
                let process = Some(ProcessRecord {
                    pid: 42,
                    comm: "app".into(),
                });
                Record::new(ex, Role::Client, client, server, process)
            })
            .collect()
    }

    /// The capture thread writes records while the runtime ends periods, as fast as both
    /// can: neither may wait for the other forever. With the exporter held while the records
    /// were aggregated (the order before), this test deadlocked.
    #[test]
    fn writing_while_periods_end_does_not_deadlock() {
        const ROUNDS: usize = 3000;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let _ctx = rt.enter();
        // Nobody listens, and the workers' runtime is not driven: the queue fills and the
        // rest is counted as dropped, which costs the offers nothing.
        let settings = OtlpConfig {
            endpoint: Some("http://127.0.0.1:9".into()),
            queue_size: Some(64),
            ..OtlpConfig::default()
        }
        .build(&|_| None)
        .expect("valid")
        .expect("an endpoint");
        let otlp = Arc::new(Mutex::new(Otlp::start(&settings).expect("exporter")));
        let metrics = Arc::new(Metrics::new(AggregationSettings::default()));
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let writer = {
            let (m, o, tx) = (metrics.clone(), otlp.clone(), done_tx.clone());
            std::thread::spawn(move || {
                let mut w = RecordWriter::new(Format::None, Box::new(std::io::sink()));
                let mut recs = Vec::new();
                for _ in 0..ROUNDS {
                    recs.extend(records(32));
                    write_all(&mut w, &mut recs, &m, Some(&o)).expect("written");
                }
                let _ = tx.send("the writer");
            })
        };
        let periods = {
            let (m, o, tx) = (metrics.clone(), otlp.clone(), done_tx);
            std::thread::spawn(move || {
                for _ in 0..ROUNDS {
                    end_period(&m, Some(&o));
                }
                let _ = tx.send("the period tick");
            })
        };
        for _ in 0..2 {
            let who = done_rx
                .recv_timeout(Duration::from_secs(60))
                .expect("still running after 60 s: the writer and the period tick deadlocked");
            eprintln!("{who} is done");
        }
        writer.join().expect("writer");
        periods.join().expect("period tick");
        // Every record was aggregated; the records offered to the exporter are each queued
        // or counted as dropped.
        let h = lock(&otlp).health();
        let spans: std::collections::BTreeMap<_, _> = h.spans.into_iter().collect();
        assert_eq!(
            spans["dropped_queue_full"] + h.queued_spans,
            (ROUNDS * 32) as u64
        );
    }
}
