//! Live capture from the kernel: load the BPF programs, fill the control maps, attach to the
//! syscall tracepoints, and read the ring buffer into [`SourceEvent`] batches.
//!
//! A dedicated thread owns the BPF object (its skeleton borrows it) and the ring buffer; the
//! rest of the pipeline runs on tokio and receives batches through a bounded channel. When the
//! pipeline falls behind, the channel fills, the reader waits, the ring buffer fills, and the
//! kernel counts what it could not queue: loss is slow-down first and counted, never silent.

pub mod control;
pub mod decode;
pub mod skel;
pub mod sys;

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapFlags, RingBufferBuilder};
use tokio::sync::mpsc;

use crate::event::SourceEvent;
use decode::Clock;
use skel::types::wl_counter;
use skel::WirelensSkelBuilder;

/// Largest `capture_bytes` the kernel side supports (`WL_MAX_CAPTURE` in bpf/limits.h).
pub const MAX_CAPTURE_BYTES: u32 = 8192;

/// Default size of the ring buffer (`WL_RINGBUF_SIZE` in bpf/limits.h).
pub const DEFAULT_RING_BUFFER_BYTES: u64 = 16 * 1024 * 1024;
/// Largest ring buffer the agent asks for.
pub const MAX_RING_BUFFER_BYTES: u64 = 1 << 30;

/// Bytes one data event with `capture_bytes` of payload takes in the ring buffer: the kernel's
/// 8-byte record header, the event header and the payload, rounded up to 8 bytes.
pub fn record_bytes(capture_bytes: u32) -> u64 {
    let n = 8
        + std::mem::size_of::<skel::types::wl_data_event>() as u64
        + u64::from(capture_bytes.min(MAX_CAPTURE_BYTES));
    n.div_ceil(8) * 8
}

/// What the live source needs to start.
#[derive(Clone, Debug)]
pub struct CaptureConfig {
    /// Payload prefix copied per syscall (clamped to [`MAX_CAPTURE_BYTES`]).
    pub capture_bytes: u32,
    /// Size of the ring buffer, bytes (a power of two, a multiple of the page size).
    pub ring_buffer_bytes: u32,
    /// Ring buffer bytes queued before the kernel wakes the reader.
    pub wakeup_bytes: u64,
    /// How often the reader drains the ring buffer when it was not woken.
    pub drain_interval: Duration,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            capture_bytes: 4096,
            ring_buffer_bytes: DEFAULT_RING_BUFFER_BYTES as u32,
            wakeup_bytes: 256 * 1024,
            drain_interval: Duration::from_millis(20),
        }
    }
}

/// Why the live source could not start.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{0}")]
    Environment(String),
    #[error("opening the BPF object: {0}")]
    Open(#[source] libbpf_rs::Error),
    #[error("loading the BPF programs (is this root, or CAP_BPF+CAP_PERFMON? run `wirelens check`): {0}")]
    Load(#[source] libbpf_rs::Error),
    #[error("attaching {program}: {source} (run `wirelens check`)")]
    Attach {
        program: String,
        #[source]
        source: libbpf_rs::Error,
    },
    #[error("setting up {what}: {source}")]
    Map {
        what: &'static str,
        #[source]
        source: libbpf_rs::Error,
    },
    #[error("the capture thread ended before it was ready")]
    ThreadGone,
}

/// Counters of the live source: the kernel's (summed over CPUs) and the reader's own.
#[derive(Debug, Default)]
pub struct CaptureCounters {
    pub kernel_data_events: AtomicU64,
    pub kernel_ringbuf_full_data: AtomicU64,
    pub kernel_ringbuf_full_close: AtomicU64,
    pub kernel_read_faults: AtomicU64,
    pub kernel_conn_table_full: AtomicU64,
    pub kernel_inflight_full: AtomicU64,
    pub kernel_ringbuf_full_exec: AtomicU64,
    /// Close events the kernel sent.
    pub kernel_close_events: AtomicU64,
    /// Records read from the ring buffer.
    pub records_read: AtomicU64,
    /// Data events read and decoded: equal to `kernel_data_events` once the ring is drained.
    pub data_events_received: AtomicU64,
    /// Close events read and decoded: equal to `kernel_close_events` once the ring is drained.
    pub close_events_received: AtomicU64,
    /// Records that could not be decoded.
    pub decode_errors: AtomicU64,
}

impl CaptureCounters {
    /// Events the kernel could not queue.
    pub fn lost(&self) -> u64 {
        self.kernel_ringbuf_full_data.load(Ordering::Relaxed)
            + self.kernel_ringbuf_full_close.load(Ordering::Relaxed)
            + self.kernel_ringbuf_full_exec.load(Ordering::Relaxed)
    }
}

/// A running live source. Dropping it without [`Capture::stop`] leaves the thread to end
/// when the pipeline's channel closes.
pub struct Capture {
    stop: Arc<AtomicBool>,
    recycle: std::sync::mpsc::SyncSender<Batch>,
    thread: Option<JoinHandle<()>>,
    pub counters: Arc<CaptureCounters>,
    /// The control maps, to decide processes and change settings while running.
    pub control: control::ControlMaps,
}

/// Fills the control maps once the programs are loaded, before they are attached.
pub type InitMaps = Box<dyn FnOnce(&control::ControlMaps) -> Result<(), CaptureError> + Send>;

/// A process called execve (only sent while exec re-decision is on).
#[derive(Clone, Copy, Debug)]
pub struct ExecEvent {
    pub tgid: u32,
    /// Unix time, ns.
    pub ts_ns: u64,
}

impl Capture {
    /// Loads and attaches the programs and starts reading. Returns once every program is
    /// attached, or with the first error.
    ///
    /// `init` runs once the programs are loaded and before they are attached: it fills the
    /// control maps, so the first captured call already obeys them. Exec events go to
    /// `exec_tx`.
    pub fn start(
        cfg: CaptureConfig,
        tx: mpsc::Sender<Batch>,
        exec_tx: std::sync::mpsc::Sender<ExecEvent>,
        init: InitMaps,
    ) -> Result<Capture, CaptureError> {
        sys::ensure_tracefs().map_err(CaptureError::Environment)?;
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(CaptureCounters::default());
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let (recycle, spare) = std::sync::mpsc::sync_channel(SPARE_BATCHES);
        let thread = {
            let stop = stop.clone();
            let counters = counters.clone();
            std::thread::Builder::new()
                .name("wl-capture".into())
                .spawn(move || {
                    let io = ReaderIo { tx, spare, exec_tx };
                    if let Err(e) = run_thread(cfg, io, init, &stop, &counters, &ready_tx) {
                        let _ = ready_tx.send(Err(e));
                    }
                })
                .map_err(|e| CaptureError::Environment(format!("spawning the reader: {e}")))?
        };
        match ready_rx.recv() {
            Ok(Ok(control)) => Ok(Capture {
                stop,
                recycle,
                thread: Some(thread),
                counters,
                control,
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err(CaptureError::ThreadGone),
        }
    }

    /// Hands a batch the pipeline is done with back to the reader, which reuses its events'
    /// buffers. When the reader already has enough spare batches, this one is dropped.
    pub fn recycle(&self, batch: Batch) {
        let _ = self.recycle.try_send(batch);
    }

    /// Asks the reader to detach every program, drain what is left in the ring buffer and
    /// end; its sender closes when it has. Does not block.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Stops (see [`Capture::request_stop`]) and waits for the reader. The receiving end must
    /// keep draining the channel meanwhile, or be dropped.
    pub fn stop(mut self) {
        self.request_stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

type Ready = std::sync::mpsc::SyncSender<Result<control::ControlMaps, CaptureError>>;

/// The reader thread's channels: batches out, spare batches back, exec events out.
struct ReaderIo {
    tx: mpsc::Sender<Batch>,
    spare: std::sync::mpsc::Receiver<Batch>,
    exec_tx: std::sync::mpsc::Sender<ExecEvent>,
}

fn run_thread(
    cfg: CaptureConfig,
    io: ReaderIo,
    init: InitMaps,
    stop: &AtomicBool,
    counters: &CaptureCounters,
    ready: &Ready,
) -> Result<(), CaptureError> {
    let ReaderIo { tx, spare, exec_tx } = io;
    let mut object = MaybeUninit::uninit();
    let mut open = WirelensSkelBuilder::default()
        .open(&mut object)
        .map_err(CaptureError::Open)?;
    {
        let ro = open
            .maps
            .rodata_data
            .as_deref_mut()
            .ok_or_else(|| CaptureError::Environment("BPF object has no .rodata".into()))?;
        ro.capture_bytes = cfg.capture_bytes.min(MAX_CAPTURE_BYTES);
        ro.self_tgid = std::process::id();
        ro.wakeup_bytes = cfg.wakeup_bytes;
    }
    open.maps
        .events
        .set_max_entries(cfg.ring_buffer_bytes)
        .map_err(|source| CaptureError::Map {
            what: "the ring buffer size",
            source,
        })?;
    let skel = open.load().map_err(CaptureError::Load)?;
    let control = control::ControlMaps::new(&skel.maps)?;
    init(&control)?;
    let mut links: Vec<Link> = Vec::new();
    for prog in skel.object().progs_mut() {
        let program = prog.name().to_string_lossy().into_owned();
        let link = prog
            .attach()
            .map_err(|source| CaptureError::Attach { program, source })?;
        links.push(link);
    }

    let clock = Clock::now();
    let batcher = std::cell::RefCell::new(Batcher::new(tx, spare));
    let mut builder = RingBufferBuilder::new();
    builder
        .add(&skel.maps.events, |bytes: &[u8]| {
            counters.records_read.fetch_add(1, Ordering::Relaxed);
            let mut b = batcher.borrow_mut();
            match decode::decode_into(bytes, clock, b.slot()) {
                Ok(decode::Kind::Data) => {
                    counters
                        .data_events_received
                        .fetch_add(1, Ordering::Relaxed);
                    b.commit();
                }
                Ok(decode::Kind::Close) => {
                    counters
                        .close_events_received
                        .fetch_add(1, Ordering::Relaxed);
                    b.commit();
                }
                Ok(decode::Kind::Exec(ev)) => {
                    let _ = exec_tx.send(ev);
                }
                Err(e) => {
                    counters.decode_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "undecodable ring buffer record");
                }
            }
            0
        })
        .map_err(|source| CaptureError::Map {
            what: "the ring buffer",
            source,
        })?;
    let rb = builder.build().map_err(|source| CaptureError::Map {
        what: "the ring buffer",
        source,
    })?;
    let _ = ready.send(control.try_clone());
    tracing::info!(
        programs = links.len(),
        capture_bytes = cfg.capture_bytes,
        ring_buffer_bytes = cfg.ring_buffer_bytes,
        "capture attached"
    );

    let mut last_counters = Instant::now();
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        if stopping {
            // Detach first so nothing new arrives, then drain what is queued.
            links.clear();
        }
        let _ = rb.poll(cfg.drain_interval);
        let _ = rb.consume();
        let closed = {
            let mut b = batcher.borrow_mut();
            b.flush();
            b.closed
        };
        if stopping || last_counters.elapsed() >= Duration::from_millis(500) {
            read_counters(&skel.maps.counters, counters);
            last_counters = Instant::now();
        }
        if stopping || closed {
            break;
        }
    }
    Ok(())
}

/// Events per batch sent to the pipeline: bounds what one batch, and so each spare one, holds.
const BATCH_EVENTS: usize = 512;
/// Batches queued between the reader and the pipeline (the channel [`Capture::start`] is
/// given should hold this many). The ring buffer is the deep buffer; a shallow channel keeps
/// the batches in flight few enough to be all reused.
pub const CHANNEL_BATCHES: usize = 16;
/// Processed batches kept for reuse: as many as can be in flight, so that a reader catching up
/// with a backlog still finds each batch it needs. What they retain is bounded by
/// `SPARE_BATCHES * BATCH_EVENTS` payload buffers of at most `capture_bytes` each.
const SPARE_BATCHES: usize = CHANNEL_BATCHES;

/// Events from the reader to the pipeline, in a buffer that goes back to the reader
/// ([`Capture::recycle`]) to be refilled.
#[derive(Debug)]
pub struct Batch {
    events: Vec<SourceEvent>,
    /// Slots of `events` that hold this batch's events; the rest are kept for their buffers.
    len: usize,
}

impl Batch {
    /// The events, in ring-buffer order.
    pub fn events(&self) -> &[SourceEvent] {
        self.events.get(..self.len).unwrap_or_default()
    }
}

/// The reader's side of the batches: fills one in place, slot by slot, sends it when full or
/// when the ring is drained, and takes the next from the batches the pipeline gave back, so
/// that the events' payload buffers are reused instead of allocated per event.
struct Batcher {
    events: Vec<SourceEvent>,
    /// Slots of `events` filled so far; the rest are old events kept for their buffers.
    len: usize,
    tx: mpsc::Sender<Batch>,
    spare: std::sync::mpsc::Receiver<Batch>,
    /// The pipeline is gone.
    closed: bool,
}

impl Batcher {
    fn new(tx: mpsc::Sender<Batch>, spare: std::sync::mpsc::Receiver<Batch>) -> Batcher {
        Batcher {
            events: Vec::with_capacity(BATCH_EVENTS),
            len: 0,
            tx,
            spare,
            closed: false,
        }
    }

    /// The next free slot (an old event to overwrite, or a placeholder).
    fn slot(&mut self) -> &mut SourceEvent {
        if self.len == self.events.len() {
            self.events.push(SourceEvent::End { ts_ns: 0 });
        }
        &mut self.events[self.len]
    }

    /// Keeps what [`Batcher::slot`] returned; sends the batch once full.
    fn commit(&mut self) {
        self.len += 1;
        if self.len >= BATCH_EVENTS {
            self.flush();
        }
    }

    /// Sends the filled slots, if any, and starts the next batch.
    fn flush(&mut self) {
        if self.len == 0 {
            return;
        }
        let next = self
            .spare
            .try_recv()
            .map(|b| b.events)
            .unwrap_or_else(|_| Vec::with_capacity(BATCH_EVENTS));
        // The slots past `len` keep their buffers: a drain usually ends with a partly filled
        // batch, and its unused slots serve when it comes back.
        let full = Batch {
            events: std::mem::replace(&mut self.events, next),
            len: self.len,
        };
        self.len = 0;
        // Waiting here is the back-pressure: the ring fills and the kernel counts the loss.
        if !self.closed && self.tx.blocking_send(full).is_err() {
            self.closed = true;
        }
    }
}

fn read_counters(map: &dyn MapCore, out: &CaptureCounters) {
    let slots = [
        (
            wl_counter::WL_CNT_DATA_EVENTS,
            &out.kernel_data_events as &AtomicU64,
        ),
        (
            wl_counter::WL_CNT_RB_FULL_DATA,
            &out.kernel_ringbuf_full_data,
        ),
        (
            wl_counter::WL_CNT_RB_FULL_CLOSE,
            &out.kernel_ringbuf_full_close,
        ),
        (wl_counter::WL_CNT_READ_FAULT, &out.kernel_read_faults),
        (
            wl_counter::WL_CNT_CONN_TABLE_FULL,
            &out.kernel_conn_table_full,
        ),
        (wl_counter::WL_CNT_INFLIGHT_FULL, &out.kernel_inflight_full),
        (
            wl_counter::WL_CNT_RB_FULL_EXEC,
            &out.kernel_ringbuf_full_exec,
        ),
        (wl_counter::WL_CNT_CLOSE_EVENTS, &out.kernel_close_events),
    ];
    for (slot, dst) in slots {
        let key = slot.0.to_ne_bytes();
        if let Ok(Some(per_cpu)) = map.lookup_percpu(&key, MapFlags::ANY) {
            let sum: u64 = per_cpu
                .iter()
                .filter_map(|v| v.get(..8).and_then(|b| b.try_into().ok()))
                .map(u64::from_ne_bytes)
                .sum();
            dst.store(sum, Ordering::Relaxed);
        }
    }
}
