//! OTLP export: one span per exchange and the aggregated metrics, to an OpenTelemetry
//! collector over gRPC or HTTP/protobuf (README, "OpenTelemetry export").
//!
//! - [`config`]: the `otlp:` section and the `OTEL_*` variables;
//! - [`spans`]: a batch of records as one OTLP trace request, encoded straight from them
//!   ([`pb`]), sent by [`traces`];
//! - [`metrics`]: the aggregator's series as OTLP histograms, sent once per period.
//!
//! **One resource per observed service.** The agent is not the service: each span and each
//! data point belongs to the resource of the service it observed (`service.name` from
//! `service_of`, `host.name`, the configured resource attributes). Spans: each batch is one
//! request holding one `ResourceSpans` per service (and pod). Metrics: one request per period
//! holds one `ResourceMetrics` per service (see [`metrics`] for why not the SDK's meters).
//!
//! **Bounded memory.** The pipeline never waits for a collector: spans go through a queue of
//! `otlp.queue_size` records (each batch of records the pipeline writes is one message, sent
//! with `try_send`; what finds no room is dropped and counted), one worker task exports them
//! in batches of at most `otlp.batch_size`, one export call each (a batch not yet full waits
//! up to `otlp.batch_delay_ms` for more spans; the queue's closing sends it at once); a batch
//! whose export failed, or the spans a collector refused, are dropped and counted. Metrics go through a queue of one pending
//! request: a period whose request finds it full is dropped and counted, and the next one
//! carries the cumulative values anyway. When the collector returns, the next export
//! succeeds: nothing needs restarting.

pub mod config;
pub mod metrics;
mod pb;
pub mod spans;
pub mod traces;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use tokio::sync::mpsc;

pub use config::{OtlpConfig, OtlpSettings, Protocol};

use crate::aggregate::Aggregator;
use crate::output::Record;

/// The exporter's counters (`wirelens_otlp_*` on `/metrics`).
#[derive(Debug, Default)]
pub struct OtlpCounters {
    pub spans_exported: AtomicU64,
    /// The queue was full.
    pub spans_dropped_queue_full: AtomicU64,
    /// Their export call failed.
    pub spans_dropped_export_failed: AtomicU64,
    /// Not kept by `otlp.sampling_ratio` (not a loss: a choice).
    pub spans_sampled_out: AtomicU64,
    /// Taken from the queue by the worker, not exported nor dropped yet.
    pub spans_in_flight: AtomicU64,
    /// In the queue, not taken by the worker yet.
    pub spans_queued: AtomicU64,
    pub span_exports_ok: AtomicU64,
    pub span_exports_failed: AtomicU64,
    pub metric_exports_ok: AtomicU64,
    pub metric_exports_failed: AtomicU64,
    /// A period's request found the previous one still waiting.
    pub metric_requests_dropped: AtomicU64,
    pub metric_points_exported: AtomicU64,
}

/// A copy of the counters for [`crate::export::Health`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OtlpHealth {
    pub spans: Vec<(&'static str, u64)>,
    pub exports: Vec<(&'static str, &'static str, u64)>,
    pub metric_requests_dropped: u64,
    pub metric_points_exported: u64,
    pub queued_spans: u64,
}

/// The Prometheus text of the exporter's counters.
pub fn render_health(h: &OtlpHealth, out: &mut String) {
    let name = "wirelens_otlp_spans_total";
    let _ = writeln!(
        out,
        "# HELP {name} Spans by fate: exported, dropped_queue_full, dropped_export_failed, \
         sampled_out.\n# TYPE {name} counter"
    );
    for (outcome, n) in &h.spans {
        let _ = writeln!(out, "{name}{{outcome=\"{outcome}\"}} {n}");
    }
    let name = "wirelens_otlp_exports_total";
    let _ = writeln!(
        out,
        "# HELP {name} OTLP export calls by signal and result.\n# TYPE {name} counter"
    );
    for (signal, result, n) in &h.exports {
        let _ = writeln!(out, "{name}{{signal=\"{signal}\",result=\"{result}\"}} {n}");
    }
    let simple = [
        (
            "wirelens_otlp_metric_requests_dropped_total",
            "counter",
            "Periods whose metrics were not sent because the previous request was still waiting.",
            h.metric_requests_dropped,
        ),
        (
            "wirelens_otlp_metric_points_exported_total",
            "counter",
            "Histogram data points the collector accepted.",
            h.metric_points_exported,
        ),
        (
            "wirelens_otlp_queued_spans",
            "gauge",
            "Spans waiting for export now, the batch being sent included.",
            h.queued_spans,
        ),
    ];
    for (name, kind, help, v) in simple {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
        );
    }
}

/// The running exporter, owned by the pipeline.
pub struct Otlp {
    /// The records of one call of [`Otlp::offer_vec`] per message, bounded by
    /// `queue_size` spans (`OtlpCounters::spans_queued`).
    spans: Option<mpsc::Sender<SpanBatch>>,
    metrics: Option<mpsc::Sender<(ExportMetricsServiceRequest, usize)>>,
    counters: Arc<OtlpCounters>,
    starts: metrics::StartTimes,
    resources: Arc<Resources>,
    sampling_ratio: f64,
    queue_size: usize,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// What every service's resource carries besides its name.
#[derive(Debug)]
struct Resources {
    host: String,
    extra: Vec<(String, String)>,
}

impl Resources {
    /// `service.name`, `host.name`, `telemetry.sdk.name`, then the configured attributes
    /// (which may replace the last two, never the first), each key once.
    fn attributes(&self, service: &str) -> Vec<(String, String)> {
        let mut a: BTreeMap<String, String> = BTreeMap::new();
        a.insert("host.name".into(), self.host.clone());
        a.insert("telemetry.sdk.name".into(), "wirelens".into());
        a.extend(self.extra.iter().cloned());
        a.insert("service.name".into(), service.to_string());
        a.into_iter().collect()
    }

    /// The resource of a service's spans: [`Resources::attributes`] plus the observed pod's
    /// `k8s.*` attributes when it runs in one (these replace configured ones of the same key).
    fn with_pod(&self, service: &str, pod: &[(&'static str, String)]) -> Vec<(String, String)> {
        let mut a: BTreeMap<String, String> = self.attributes(service).into_iter().collect();
        a.extend(pod.iter().map(|(k, v)| (k.to_string(), v.clone())));
        a.into_iter().collect()
    }
}

/// The host the observed services run on: `NODE_NAME` when set (the DaemonSet sets it from
/// `spec.nodeName`: the agent's pod has its own UTS namespace, whose name is the pod's), else
/// the kernel's host name.
fn hostname() -> String {
    if let Some(node) = std::env::var("NODE_NAME")
        .ok()
        .filter(|n| !n.trim().is_empty())
    {
        return node.trim().to_string();
    }
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// gRPC metadata from header pairs.
pub(crate) fn metadata(
    headers: &[(String, String)],
) -> anyhow::Result<tonic::metadata::MetadataMap> {
    let mut md = tonic::metadata::MetadataMap::new();
    for (k, v) in headers {
        let key = tonic::metadata::MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
            .with_context(|| format!("header `{k}`"))?;
        let value = v.parse().with_context(|| format!("header `{k}`"))?;
        md.insert(key, value);
    }
    Ok(md)
}

/// A gRPC channel to the signal's endpoint, connected on first use.
pub(crate) fn grpc_channel(t: &config::SignalTarget) -> anyhow::Result<tonic::transport::Channel> {
    Ok(tonic::transport::Channel::from_shared(t.url.clone())?
        .connect_timeout(t.timeout)
        .timeout(t.timeout)
        .connect_lazy())
}

/// The HTTP client of a signal, with its time limit.
pub(crate) fn http_client(t: &config::SignalTarget) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().timeout(t.timeout).build()?)
}

/// The signal's URL (OTLP/HTTP), parsed once for every export to come.
pub(crate) fn http_url(t: &config::SignalTarget) -> anyhow::Result<reqwest::Url> {
    reqwest::Url::parse(&t.url).with_context(|| format!("OTLP URL `{}`", t.url))
}

/// The configured headers for reqwest (OTLP/HTTP).
pub(crate) fn http_headers(
    headers: &[(String, String)],
) -> anyhow::Result<reqwest::header::HeaderMap> {
    let mut map = reqwest::header::HeaderMap::new();
    for (k, v) in headers {
        map.insert(
            reqwest::header::HeaderName::try_from(k.as_str())?,
            reqwest::header::HeaderValue::try_from(v.as_str())?,
        );
    }
    Ok(map)
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl Otlp {
    /// Builds the exporters and starts their tasks (on the current tokio runtime). Nothing
    /// connects yet: a collector that is not up is only a failed export later.
    pub fn start(s: &OtlpSettings) -> anyhow::Result<Otlp> {
        let counters = Arc::new(OtlpCounters::default());
        let resources = Arc::new(Resources {
            host: hostname(),
            extra: s.resource_attributes.clone(),
        });
        let mut tasks = Vec::new();
        let spans = match &s.traces {
            Some(t) => {
                let client = traces::TracesClient::new(t)
                    .with_context(|| format!("building the OTLP span client for {}", t.url))?;
                let (tx, rx) = mpsc::channel(s.queue_size);
                tasks.push(tokio::spawn(span_worker(
                    client,
                    rx,
                    s.batch_size,
                    s.batch_delay,
                    resources.clone(),
                    counters.clone(),
                )));
                tracing::info!(url = %t.url, protocol = t.protocol.name(), "exporting spans over OTLP");
                Some(tx)
            }
            None => None,
        };
        let metrics = match &s.metrics {
            Some(t) => {
                let client = metrics::MetricsClient::new(t)
                    .with_context(|| format!("building the OTLP metrics client for {}", t.url))?;
                let (tx, rx) = mpsc::channel(1);
                tasks.push(tokio::spawn(metric_worker(client, rx, counters.clone())));
                tracing::info!(url = %t.url, protocol = t.protocol.name(), "exporting metrics over OTLP");
                Some(tx)
            }
            None => None,
        };
        Ok(Otlp {
            spans,
            metrics,
            counters,
            starts: metrics::StartTimes::new(now_ns()),
            resources,
            sampling_ratio: s.sampling_ratio,
            queue_size: s.queue_size,
            tasks,
        })
    }

    /// Queues the span of a record, unless sampled out or the queue is full (counted). The
    /// record moves into the queue: the pipeline offers it last, when written and counted.
    pub fn offer(&self, r: Record) {
        self.offer_all(std::iter::once(r));
    }

    /// [`Otlp::offer`] for many records, queued as one message: the worker is woken once per
    /// call, not per record. When the queue has room for only some of them, the first ones
    /// are queued and the rest dropped and counted.
    pub fn offer_all(&self, records: impl IntoIterator<Item = Record>) {
        let mut v: Vec<Record> = records.into_iter().collect();
        self.offer_vec(&mut v);
    }

    /// [`Otlp::offer_all`] for the records in `records`, which is left empty (a new vector
    /// with room for as many): the vector itself is queued, so the records are not moved one
    /// by one. When the sampling ratio leaves some out, the kept ones are queued in a vector
    /// of their own and `records` keeps its room.
    pub fn offer_vec(&self, records: &mut Vec<Record>) {
        let Some(tx) = &self.spans else {
            records.clear();
            return;
        };
        if records.is_empty() {
            return;
        }
        let c = &self.counters;
        let mut ids: Vec<Option<(TraceId, Option<SpanId>)>> = Vec::with_capacity(records.len());
        let mut sampled_out = 0;
        for r in records.iter() {
            let parent = spans::parent_of(r);
            let trace = parent.map_or_else(spans::new_trace_id, |(t, _)| t);
            if spans::sampled(trace, self.sampling_ratio) {
                ids.push(Some((trace, parent.map(|(_, s)| s))));
            } else {
                ids.push(None);
                sampled_out += 1;
            }
        }
        let mut batch = if sampled_out > 0 {
            c.spans_sampled_out.fetch_add(sampled_out, Relaxed);
            // Only the kept records go, in a vector of their size: a batch waits in the queue
            // up to the batch delay, which with a low ratio is most of the time, and the
            // pipeline's whole vector would wait with it. The pipeline keeps that vector,
            // emptied, for its next batch.
            let mut kept = Vec::with_capacity(records.len() - sampled_out as usize);
            let mut keep = ids.iter();
            kept.extend(
                records
                    .drain(..)
                    .filter(|_| keep.next().is_some_and(Option::is_some)),
            );
            SpanBatch {
                records: kept,
                ids: Vec::new(),
            }
        } else {
            // The pipeline's next vector is sized by this batch, not by the largest one it
            // ever held: a burst does not make every later batch allocate as much.
            SpanBatch {
                records: std::mem::replace(records, Vec::with_capacity(records.len())),
                ids: Vec::new(),
            }
        };
        batch.ids = ids.into_iter().flatten().collect();
        // One producer (the pipeline): reading then adding does not let the queue overfill.
        let room = (self.queue_size as u64).saturating_sub(c.spans_queued.load(Relaxed));
        if batch.len() as u64 > room {
            let over = batch.len() as u64 - room;
            batch.records.truncate(room as usize);
            batch.ids.truncate(room as usize);
            c.spans_dropped_queue_full.fetch_add(over, Relaxed);
        }
        if batch.len() == 0 {
            return;
        }
        let n = batch.len() as u64;
        c.spans_queued.fetch_add(n, Relaxed);
        if tx.try_send(batch).is_err() {
            c.spans_queued.fetch_sub(n, Relaxed);
            c.spans_dropped_queue_full.fetch_add(n, Relaxed);
        }
    }

    /// Queues the metrics of the period that just ended. Call right after each
    /// `Aggregator::tick`: a series the tick expired is then missing from this snapshot, so
    /// that if it comes back its start time is new (see [`metrics`]).
    pub fn period(&mut self, agg: &Aggregator) {
        let Some(tx) = &self.metrics else { return };
        let res = self.resources.clone();
        let (req, points) =
            metrics::snapshot(agg, &mut self.starts, now_ns(), &|s| res.attributes(s));
        if req.resource_metrics.is_empty() {
            return;
        }
        if tx.try_send((req, points)).is_err() {
            self.counters.metric_requests_dropped.fetch_add(1, Relaxed);
        }
    }

    pub fn health(&self) -> OtlpHealth {
        let c = &self.counters;
        let g = |a: &AtomicU64| a.load(Relaxed);
        OtlpHealth {
            spans: vec![
                ("exported", g(&c.spans_exported)),
                ("dropped_queue_full", g(&c.spans_dropped_queue_full)),
                ("dropped_export_failed", g(&c.spans_dropped_export_failed)),
                ("sampled_out", g(&c.spans_sampled_out)),
            ],
            exports: vec![
                ("traces", "ok", g(&c.span_exports_ok)),
                ("traces", "failed", g(&c.span_exports_failed)),
                ("metrics", "ok", g(&c.metric_exports_ok)),
                ("metrics", "failed", g(&c.metric_exports_failed)),
            ],
            metric_requests_dropped: g(&c.metric_requests_dropped),
            metric_points_exported: g(&c.metric_points_exported),
            queued_spans: g(&c.spans_queued) + g(&c.spans_in_flight),
        }
    }

    /// The metrics of the last, unfinished period, for [`Otlp::shutdown`].
    pub fn last_period(
        &mut self,
        agg: &Aggregator,
    ) -> Option<(ExportMetricsServiceRequest, usize)> {
        self.metrics.as_ref()?;
        let res = self.resources.clone();
        let (req, points) =
            metrics::snapshot(agg, &mut self.starts, now_ns(), &|s| res.attributes(s));
        (!req.resource_metrics.is_empty()).then_some((req, points))
    }

    /// Sends `last` (the last period's metrics), lets the workers empty their queues for at
    /// most `grace`, then stops them.
    pub async fn shutdown(
        mut self,
        last: Option<(ExportMetricsServiceRequest, usize)>,
        grace: Duration,
    ) {
        if let (Some(last), Some(tx)) = (last, &self.metrics) {
            // Wait for room: the previous request may still be on its way.
            if tokio::time::timeout(grace, tx.send(last)).await.is_err() {
                self.counters.metric_requests_dropped.fetch_add(1, Relaxed);
            }
        }
        self.spans = None;
        self.metrics = None;
        let deadline = tokio::time::Instant::now() + grace;
        for t in self.tasks.drain(..) {
            let abort = t.abort_handle();
            if tokio::time::timeout_at(deadline, t).await.is_err() {
                abort.abort();
            }
        }
    }
}

/// The records of one [`Otlp::offer_vec`] call, as the pipeline wrote them, with the trace
/// and parent span of each (`ids[i]` is `records[i]`'s).
struct SpanBatch {
    records: Vec<Record>,
    ids: Vec<(TraceId, Option<SpanId>)>,
}

impl SpanBatch {
    fn len(&self) -> usize {
        self.records.len()
    }
}

/// Logs a failure once per outage, and the recovery.
#[derive(Default)]
struct Outage(AtomicBool);

impl Outage {
    fn failed(&self, signal: &str, why: &str) {
        if !self.0.swap(true, Relaxed) {
            tracing::warn!(
                signal,
                error = why,
                "OTLP export failed; dropping and counting until the collector answers"
            );
        }
    }
    fn ok(&self, signal: &str) {
        if self.0.swap(false, Relaxed) {
            tracing::info!(signal, "OTLP export works again");
        }
    }
}

async fn span_worker(
    mut client: traces::TracesClient,
    mut rx: mpsc::Receiver<SpanBatch>,
    batch_size: usize,
    delay: Duration,
    resources: Arc<Resources>,
    c: Arc<OtlpCounters>,
) {
    let scope = ("wirelens", env!("CARGO_PKG_VERSION"));
    let outage = Outage::default();
    let batch_size = batch_size.max(1);
    // Messages taken from the queue, the first one from `skip` on (what is before was sent).
    let mut msgs: Vec<SpanBatch> = Vec::new();
    let mut skip = 0;
    // The queue is closed (the agent is stopping): nothing is worth waiting for.
    let mut closed = false;
    // When the spans held (not yet in a batch sent) began to wait.
    let mut since = tokio::time::Instant::now();
    loop {
        if msgs.is_empty() {
            if closed || rx.recv_many(&mut msgs, 64).await == 0 {
                break;
            }
            since = tokio::time::Instant::now();
        }
        // Top up to a full batch with what is already queued, then with what comes until
        // the delay is over.
        let mut have: usize = msgs.iter().map(SpanBatch::len).sum::<usize>() - skip;
        while have < batch_size {
            match rx.try_recv() {
                Ok(m) => {
                    have += m.len();
                    msgs.push(m);
                }
                Err(mpsc::error::TryRecvError::Empty) => {
                    if closed || delay.is_zero() {
                        break;
                    }
                    tokio::select! {
                        m = rx.recv() => match m {
                            Some(m) => {
                                have += m.len();
                                msgs.push(m);
                            }
                            None => closed = true,
                        },
                        _ = tokio::time::sleep_until(since + delay) => break,
                    }
                }
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        // The batch: up to `batch_size` spans from the messages, in order, not moved.
        let mut items: Vec<spans::SpanRef<'_>> = Vec::with_capacity(have.min(batch_size));
        let (mut whole, mut rest) = (0, skip);
        for m in &msgs {
            let take = (m.len() - rest).min(batch_size - items.len());
            let span = rest..rest + take;
            items.extend(
                m.records[span.clone()]
                    .iter()
                    .zip(&m.ids[span])
                    .map(|(r, (t, p))| (r, *t, *p)),
            );
            if rest + take < m.len() {
                rest += take;
                break;
            }
            whole += 1;
            rest = 0;
        }
        let n = items.len() as u64;
        c.spans_queued.fetch_sub(n, Relaxed);
        c.spans_in_flight.fetch_add(n, Relaxed);
        let body = spans::request(&items, &|s, pod| resources.with_pod(s, pod), scope);
        drop(items);
        msgs.drain(..whole);
        skip = rest;
        // What is left of the messages waits for the next batch from now.
        since = tokio::time::Instant::now();
        match client.export(body).await {
            Ok(refused) => {
                let refused = refused.min(n);
                c.span_exports_ok.fetch_add(1, Relaxed);
                c.spans_exported.fetch_add(n - refused, Relaxed);
                c.spans_dropped_export_failed.fetch_add(refused, Relaxed);
                outage.ok("traces");
            }
            Err(e) => {
                c.span_exports_failed.fetch_add(1, Relaxed);
                c.spans_dropped_export_failed.fetch_add(n, Relaxed);
                outage.failed("traces", &e);
            }
        }
        c.spans_in_flight.fetch_sub(n, Relaxed);
    }
}

async fn metric_worker(
    mut client: metrics::MetricsClient,
    mut rx: mpsc::Receiver<(ExportMetricsServiceRequest, usize)>,
    c: Arc<OtlpCounters>,
) {
    let outage = Outage::default();
    while let Some((req, points)) = rx.recv().await {
        match client.export(req).await {
            Ok(()) => {
                c.metric_exports_ok.fetch_add(1, Relaxed);
                c.metric_points_exported.fetch_add(points as u64, Relaxed);
                outage.ok("metrics");
            }
            Err(e) => {
                c.metric_exports_failed.fetch_add(1, Relaxed);
                outage.failed("metrics", &e);
            }
        }
    }
}
