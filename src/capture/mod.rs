//! Live capture from the kernel: load the BPF programs, fill the control maps, attach to the
//! syscall tracepoints, and hand each ring-buffer record, decoded, to a [`Sink`].
//!
//! A dedicated thread owns the BPF object (its skeleton borrows it), the ring buffer and the
//! sink: the pipeline (conntrack, parsers, pairing, aggregation, records) runs on that thread,
//! inside the ring buffer's callback. An event's payload goes from the ring buffer into one
//! reused buffer and on to the parsers on the same core, instead of being copied into batches
//! that another thread then reads. When the pipeline falls behind, the ring buffer fills and
//! the kernel counts what it could not queue: loss is slow-down first and counted, never
//! silent.

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

use crate::event::SourceEvent;
use decode::Clock;
use skel::types::{wl_counter, wl_event_type};
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
            drain_interval: Duration::from_millis(100),
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

/// What the reader thread hands the events to. It runs on the reader thread: whatever it
/// does per event, the ring buffer waits for.
pub trait Sink: Send + 'static {
    /// One event, in ring-buffer order. Returns false when the sink cannot go on (its output
    /// failed): the reader then detaches and ends.
    fn event(&mut self, ev: &SourceEvent) -> bool;
    /// The reader emptied the ring buffer, or waited `drain_interval` for it: the place for
    /// work by time (flushing, sweeping). `counters` are the source's, as of now. Returns false
    /// like [`Sink::event`].
    fn drained(&mut self, counters: &CaptureCounters) -> bool;
    /// The reader is ending (after its last `drained`): called once, before the thread
    /// returns the sink to [`Capture::stop`].
    fn ended(&mut self) {}
}

/// A running live source. Dropping it without [`Capture::stop`] asks the thread to end.
pub struct Capture<S: Sink> {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Option<S>>>,
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

impl<S: Sink> Capture<S> {
    /// Loads and attaches the programs and starts reading into `sink`. Returns once every
    /// program is attached, or with the first error.
    ///
    /// `init` runs once the programs are loaded and before they are attached: it fills the
    /// control maps, so the first captured call already obeys them. Exec events go to
    /// `exec_tx`.
    pub fn start(
        cfg: CaptureConfig,
        sink: S,
        exec_tx: std::sync::mpsc::Sender<ExecEvent>,
        init: InitMaps,
    ) -> Result<Capture<S>, CaptureError> {
        sys::ensure_tracefs().map_err(CaptureError::Environment)?;
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(CaptureCounters::default());
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let thread = {
            let stop = stop.clone();
            let counters = counters.clone();
            std::thread::Builder::new()
                .name("wl-capture".into())
                .spawn(move || {
                    match run_thread(cfg, sink, exec_tx, init, &stop, &counters, &ready_tx) {
                        Ok(sink) => Some(sink),
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            None
                        }
                    }
                })
                .map_err(|e| CaptureError::Environment(format!("spawning the reader: {e}")))?
        };
        match ready_rx.recv() {
            Ok(Ok(control)) => Ok(Capture {
                stop,
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

    /// Asks the reader to detach every program, drain what is left in the ring buffer into
    /// the sink and end (the sink's [`Sink::ended`] says when it has). Does not block.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Stops (see [`Capture::request_stop`]), waits for the reader and returns the sink, or
    /// `None` when the reader panicked.
    pub fn stop(mut self) -> Option<S> {
        self.request_stop();
        self.thread.take().and_then(|t| t.join().ok().flatten())
    }
}

impl<S: Sink> Drop for Capture<S> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

type Ready = std::sync::mpsc::SyncSender<Result<control::ControlMaps, CaptureError>>;

fn run_thread<S: Sink>(
    cfg: CaptureConfig,
    sink: S,
    exec_tx: std::sync::mpsc::Sender<ExecEvent>,
    init: InitMaps,
    stop: &AtomicBool,
    counters: &CaptureCounters,
    ready: &Ready,
) -> Result<S, CaptureError> {
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
    let reader = std::cell::RefCell::new(Reader::new(sink));
    let mut builder = RingBufferBuilder::new();
    builder
        .add(&skel.maps.events, |bytes: &[u8]| {
            counters.records_read.fetch_add(1, Ordering::Relaxed);
            let mut r = reader.borrow_mut();
            let r = &mut *r;
            if r.failed {
                // The sink gave up (its output failed): the capture is ending.
                return 0;
            }
            let slot = if bytes.first().copied() == Some(wl_event_type::WL_EV_CLOSE.0 as u8) {
                &mut r.close
            } else {
                &mut r.data
            };
            let go_on = match decode::decode_into(bytes, clock, slot) {
                Ok(decode::Kind::Data) => {
                    counters
                        .data_events_received
                        .fetch_add(1, Ordering::Relaxed);
                    r.sink.event(slot)
                }
                Ok(decode::Kind::Close) => {
                    counters
                        .close_events_received
                        .fetch_add(1, Ordering::Relaxed);
                    r.sink.event(slot)
                }
                Ok(decode::Kind::Exec(ev)) => {
                    let _ = exec_tx.send(ev);
                    true
                }
                Err(e) => {
                    counters.decode_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "undecodable ring buffer record");
                    true
                }
            };
            if !go_on {
                r.failed = true;
            }
            r.in_round += 1;
            if r.in_round >= ROUND_RECORDS {
                // A negative return ends this round of consuming after this record (which
                // is consumed), so that a ring the kernel keeps filling still lets the loop
                // below come round to the sink's timed work and the kernel's counters.
                r.in_round = 0;
                return -1;
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
        let stopping = stop.load(Ordering::SeqCst) || reader.borrow().failed;
        if stopping {
            // Detach first so nothing new arrives, then drain what is queued.
            links.clear();
        }
        reader.borrow_mut().in_round = 0;
        // Wakes up when the kernel asks (`wakeup_bytes` queued) or after `drain_interval`.
        let _ = rb.poll(cfg.drain_interval);
        // What is queued below the wake-up mark is consumed here; when stopping, everything,
        // round after round (a negative count is a round's end).
        loop {
            reader.borrow_mut().in_round = 0;
            if rb.consume_raw() >= 0 || !stopping {
                break;
            }
        }
        if stopping || last_counters.elapsed() >= Duration::from_millis(500) {
            read_counters(&skel.maps.counters, counters);
            last_counters = Instant::now();
        }
        {
            let mut r = reader.borrow_mut();
            if !r.sink.drained(counters) {
                r.failed = true;
            }
        }
        if stopping {
            break;
        }
    }
    drop(rb);
    let mut sink = reader.into_inner().sink;
    sink.ended();
    Ok(sink)
}

/// The reader thread's state inside the ring buffer's callback: the sink, and one event slot
/// per kind whose buffers every record reuses.
struct Reader<S> {
    sink: S,
    data: SourceEvent,
    close: SourceEvent,
    /// The sink asked to stop.
    failed: bool,
    /// Records handed over since the loop last came round.
    in_round: u32,
}

/// Records consumed between two turns of the reader's loop at most.
const ROUND_RECORDS: u32 = 4096;

impl<S> Reader<S> {
    fn new(sink: S) -> Reader<S> {
        Reader {
            sink,
            data: SourceEvent::End { ts_ns: 0 },
            close: SourceEvent::End { ts_ns: 0 },
            failed: false,
            in_round: 0,
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
