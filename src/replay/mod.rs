//! Replay of pcap and pcapng files into the same events as the live path.
//!
//! A capture file is read as a stream of records (`pcap`), each frame is peeled down to its
//! IP packet (`link`, `ip`), and TCP segments are reassembled per connection and direction
//! (`tcp`, `stream`) into ordered runs of bytes with explicit gaps, while each UDP datagram
//! becomes one event (`udp`). The output is [`SourceEvent`]s in capture order, so replay
//! feeds conntrack -> parse -> pair exactly as the live ring buffer does.
//!
//! What a consumer can rely on (details in `tcp.rs` and `stream.rs`):
//!
//! - `ConnKey { tgid: 0, fd: connection index, start_ns: first packet's time }`; TCP and UDP
//!   share the index counter. A new SYN on the same addresses is a new connection.
//! - Each TCP direction's bytes arrive once and in order. `missing` counts bytes that followed
//!   `data` in the stream but are not in the capture: a hole that will not be filled (the
//!   receiver acknowledged past it, the out-of-order buffer is full, the connection closed or
//!   was forgotten, or the file ended), or the tail of a packet cut by the snap length. When
//!   the bytes before a hole were already delivered, the gap comes as an event with empty
//!   `data` and `missing > 0`.
//! - `Close { reset: false }` once both directions delivered their FIN (or one did and the
//!   other side never sent a packet); `Close { reset: true }` at the first RST. Connections
//!   that did not close in the capture get no `Close`, only the final `End`.
//! - `client` is `Client(addr)` when the SYN (or SYN-ACK) was captured, else `Unknown`; always
//!   `Unknown` for UDP, where each datagram is one event.

mod ip;
mod link;
mod pcap;
mod stream;
mod tcp;
mod udp;

use std::fs::File;
use std::io::{self, Read};
use std::ops::AddAssign;
use std::path::{Path, PathBuf};

use crate::event::SourceEvent;

use self::ip::Transport;

/// How a replay behaves. `Default` gives the values documented on each field.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// Per direction of a TCP connection, the most out-of-order payload bytes held while
    /// waiting for a hole before them to fill. Beyond it the hole is declared lost and becomes
    /// a gap. Default 1 MiB.
    pub max_out_of_order_bytes: usize,
    /// Per direction, the most out-of-order segments held (bounds the bookkeeping of many tiny
    /// segments). Default 1024.
    pub max_out_of_order_segments: usize,
    /// A TCP connection or UDP flow with no packet for this long (capture time, ns) is
    /// forgotten: its pending data is flushed (holes become gaps) and no `Close` is emitted;
    /// a later packet on the same addresses starts a new connection. 0 keeps flows until the
    /// end of the file. Default 10 minutes.
    pub idle_timeout_ns: u64,
    /// The first connection index to hand out (`ConnKey::fd`). When several files are
    /// replayed into one pipeline, start each where the previous one's
    /// [`ReplayStats::flows`] ended so that connection keys stay distinct. Default 0.
    pub first_flow_index: u32,
    /// Show a progress bar on stderr when stderr is a terminal and the file is larger than
    /// [`PROGRESS_MIN_BYTES`]. Default true.
    pub progress: bool,
}

/// Files smaller than this never get a progress bar.
pub const PROGRESS_MIN_BYTES: u64 = 32 << 20;

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            max_out_of_order_bytes: 1 << 20,
            max_out_of_order_segments: 1024,
            idle_timeout_ns: 600_000_000_000,
            first_flow_index: 0,
            progress: true,
        }
    }
}

/// What a replay saw and what it could not use. Every packet record is either a TCP segment,
/// a UDP datagram, or counted in exactly one of the counters marked "Skipped".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Packet records read (except those of `unknown_interface`).
    pub packets: u64,
    /// Captured bytes of those records.
    pub bytes: u64,
    /// Records shorter on file than on the wire (snap length): their tail is a gap.
    pub truncated_packets: u64,
    /// Skipped: link type not supported.
    pub unsupported_link: u64,
    /// pcapng packets naming an interface that was not described (not in `packets`).
    pub unknown_interface: u64,
    /// Skipped: not IPv4 or IPv6 (ARP, LLDP, ...).
    pub non_ip: u64,
    /// Skipped: IP carrying neither TCP nor UDP (ICMP, ESP, ...).
    pub non_tcp_udp: u64,
    /// Skipped: IP fragments other than the first (not reassembled).
    pub ip_fragments: u64,
    /// Skipped: a link, IP, TCP or UDP header that is cut short or inconsistent.
    pub malformed: u64,
    /// TCP segments parsed.
    pub tcp_segments: u64,
    /// TCP payload bytes on file (including retransmissions).
    pub tcp_payload_bytes: u64,
    /// TCP connections started (SYN seen, or first payload of a connection seen mid-way).
    pub tcp_connections: u64,
    /// Payload bytes seen more than once (retransmissions, overlaps); delivered once.
    pub tcp_retransmitted_bytes: u64,
    /// Segments that arrived ahead of a hole and were held for in-order delivery.
    pub out_of_order_segments: u64,
    /// Holes in a TCP stream given up on (delivered as `missing`), and their bytes.
    pub tcp_gaps: u64,
    pub tcp_gap_bytes: u64,
    /// Holes given up on because the out-of-order buffer was full (a subset of `tcp_gaps`).
    pub tcp_buffer_overflows: u64,
    /// Segments ignored: no connection to attach to (pure ACK/FIN/RST of a connection whose
    /// start is not in the capture), after the connection closed, past its FIN, or with a
    /// sequence number more than 1 GiB away from the stream.
    pub tcp_ignored_segments: u64,
    /// UDP datagrams parsed (including empty ones, which produce no event).
    pub udp_datagrams: u64,
    /// UDP flows (address pairs) started.
    pub udp_flows: u64,
    /// TCP connections and UDP flows forgotten after `idle_timeout_ns`.
    pub idle_evictions: u64,
    /// Connection indices handed out (TCP and UDP share the counter).
    pub flows: u64,
    /// `DataEvent`s emitted.
    pub data_events: u64,
    /// `Close` events emitted.
    pub closes: u64,
}

impl AddAssign<&ReplayStats> for ReplayStats {
    fn add_assign(&mut self, o: &ReplayStats) {
        self.packets += o.packets;
        self.bytes += o.bytes;
        self.truncated_packets += o.truncated_packets;
        self.unsupported_link += o.unsupported_link;
        self.unknown_interface += o.unknown_interface;
        self.non_ip += o.non_ip;
        self.non_tcp_udp += o.non_tcp_udp;
        self.ip_fragments += o.ip_fragments;
        self.malformed += o.malformed;
        self.tcp_segments += o.tcp_segments;
        self.tcp_payload_bytes += o.tcp_payload_bytes;
        self.tcp_connections += o.tcp_connections;
        self.tcp_retransmitted_bytes += o.tcp_retransmitted_bytes;
        self.out_of_order_segments += o.out_of_order_segments;
        self.tcp_gaps += o.tcp_gaps;
        self.tcp_gap_bytes += o.tcp_gap_bytes;
        self.tcp_buffer_overflows += o.tcp_buffer_overflows;
        self.tcp_ignored_segments += o.tcp_ignored_segments;
        self.udp_datagrams += o.udp_datagrams;
        self.udp_flows += o.udp_flows;
        self.idle_evictions += o.idle_evictions;
        self.flows += o.flows;
        self.data_events += o.data_events;
        self.closes += o.closes;
    }
}

/// Why a file could not be replayed (to the end). Packets inside a readable file that cannot
/// be decoded are not errors: they are counted in [`ReplayStats`].
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{}: cannot open: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: read error at offset {offset}: {source}", path.display())]
    Read {
        path: PathBuf,
        offset: u64,
        #[source]
        source: io::Error,
    },
    #[error("{}: empty file (nothing at offset 0)", path.display())]
    Empty { path: PathBuf },
    #[error("{}: not a pcap or pcapng file: unknown magic {magic:02x?} at offset 0", path.display())]
    NotACapture { path: PathBuf, magic: Vec<u8> },
    /// The file ends in the middle of a header, record or block.
    #[error("{}: truncated {what} at offset {offset}", path.display())]
    Truncated {
        path: PathBuf,
        what: &'static str,
        offset: u64,
    },
    /// A header, record or block whose fields do not hold together.
    #[error("{}: corrupt {what} at offset {offset}", path.display())]
    Corrupt {
        path: PathBuf,
        what: &'static str,
        offset: u64,
    },
    /// A record or block claims to be larger than any real capture writes.
    #[error("{}: {what} at offset {offset} is larger than {max} bytes", path.display())]
    TooLarge {
        path: PathBuf,
        what: &'static str,
        offset: u64,
        max: usize,
    },
}

impl ReplayError {
    /// The byte offset in the file where reading went wrong, when there is one.
    pub fn offset(&self) -> Option<u64> {
        match self {
            ReplayError::Read { offset, .. }
            | ReplayError::Truncated { offset, .. }
            | ReplayError::Corrupt { offset, .. }
            | ReplayError::TooLarge { offset, .. } => Some(*offset),
            ReplayError::NotACapture { .. } | ReplayError::Empty { .. } => Some(0),
            ReplayError::Open { .. } => None,
        }
    }
}

/// Replays one pcap or pcapng file: calls `sink` with every event in capture order, then with
/// `SourceEvent::End` (carrying the latest packet timestamp, 0 if there was none).
///
/// On error the events already delivered stay delivered, and no `End` is sent.
pub fn read_file(
    path: &Path,
    opts: &ReplayOptions,
    sink: &mut dyn FnMut(SourceEvent),
) -> Result<ReplayStats, ReplayError> {
    let file = File::open(path).map_err(|source| ReplayError::Open {
        path: path.to_owned(),
        source,
    })?;
    let len = file.metadata().ok().map(|m| m.len());
    read_from(path, file, len, opts, sink)
}

/// [`read_file`] over any reader (stdin, a pipe). `name` is used in errors; `len`, when known,
/// sizes the progress bar.
pub fn read_from<R: Read>(
    name: &Path,
    reader: R,
    len: Option<u64>,
    opts: &ReplayOptions,
    sink: &mut dyn FnMut(SourceEvent),
) -> Result<ReplayStats, ReplayError> {
    let mut replay = Replay::new(opts);
    let unknown_interface = pcap::read_records(
        name,
        reader,
        len,
        opts.progress,
        &mut |pkt: pcap::Packet<'_>| replay.packet(pkt, sink),
    )?;
    replay.stats.unknown_interface += unknown_interface;
    replay.finish(sink);
    tracing::info!(
        file = %name.display(),
        packets = replay.stats.packets,
        data_events = replay.stats.data_events,
        tcp_gaps = replay.stats.tcp_gaps,
        malformed = replay.stats.malformed,
        "replay finished"
    );
    Ok(replay.stats)
}

/// The state of one replay: the flow tables and the counters.
struct Replay {
    stats: ReplayStats,
    flows: FlowIds,
    tcp: tcp::TcpTable,
    udp: udp::UdpTable,
    idle_timeout_ns: u64,
    next_sweep_ns: u64,
    last_ts_ns: u64,
}

/// Hands out connection indices (`ConnKey::fd`), shared by TCP and UDP.
pub(crate) struct FlowIds {
    next: u32,
}

impl FlowIds {
    pub(crate) fn next(&mut self, stats: &mut ReplayStats) -> i32 {
        let id = self.next;
        self.next = self.next.wrapping_add(1);
        stats.flows += 1;
        // ConnKey::fd is an i32; a capture with over 2^31 flows wraps (still unique together
        // with start_ns in practice).
        id as i32
    }
}

/// Capture time between two sweeps for idle flows.
const SWEEP_INTERVAL_NS: u64 = 10_000_000_000;

impl Replay {
    fn new(opts: &ReplayOptions) -> Replay {
        Replay {
            stats: ReplayStats::default(),
            flows: FlowIds {
                next: opts.first_flow_index,
            },
            tcp: tcp::TcpTable::new(stream::Limits {
                max_bytes: opts.max_out_of_order_bytes,
                max_segments: opts.max_out_of_order_segments,
            }),
            udp: udp::UdpTable::default(),
            idle_timeout_ns: opts.idle_timeout_ns,
            next_sweep_ns: 0,
            last_ts_ns: 0,
        }
    }

    fn packet(&mut self, pkt: pcap::Packet<'_>, sink: &mut dyn FnMut(SourceEvent)) {
        let st = &mut self.stats;
        st.packets += 1;
        st.bytes += pkt.data.len() as u64;
        if (pkt.data.len() as u64) < u64::from(pkt.orig_len) {
            st.truncated_packets += 1;
        }
        self.last_ts_ns = self.last_ts_ns.max(pkt.ts_ns);
        self.sweep(pkt.ts_ns, sink);

        let st = &mut self.stats;
        let ip_bytes = match link::ip_payload(pkt.link_type, pkt.data) {
            link::Link::Ip(b) => b,
            link::Link::NotIp => {
                st.non_ip += 1;
                return;
            }
            link::Link::Unsupported => {
                st.unsupported_link += 1;
                return;
            }
            link::Link::Malformed => {
                st.malformed += 1;
                return;
            }
        };
        let packet = match ip::parse(ip_bytes) {
            Ok(p) => p,
            Err(ip::Skip::NotIp) => {
                st.non_ip += 1;
                return;
            }
            Err(ip::Skip::Fragment) => {
                st.ip_fragments += 1;
                return;
            }
            Err(ip::Skip::OtherProtocol) => {
                st.non_tcp_udp += 1;
                return;
            }
            Err(ip::Skip::Malformed) => {
                tracing::debug!(packet = st.packets, "malformed IP/TCP/UDP header");
                st.malformed += 1;
                return;
            }
        };
        let mut out = Emit { sink, stats: st };
        match packet.transport {
            Transport::Tcp(seg) => self.tcp.segment(
                pkt.ts_ns,
                packet.src,
                packet.dst,
                seg,
                &mut self.flows,
                &mut out,
            ),
            Transport::Udp(dg) => self.udp.datagram(
                pkt.ts_ns,
                packet.src,
                packet.dst,
                dg,
                &mut self.flows,
                &mut out,
            ),
        }
    }

    /// Forgets flows idle for longer than the timeout, every `SWEEP_INTERVAL_NS` of capture.
    fn sweep(&mut self, now: u64, sink: &mut dyn FnMut(SourceEvent)) {
        if self.idle_timeout_ns == 0 || now < self.next_sweep_ns {
            return;
        }
        self.next_sweep_ns = now.saturating_add(SWEEP_INTERVAL_NS);
        let Some(cutoff) = now.checked_sub(self.idle_timeout_ns) else {
            return;
        };
        let mut out = Emit {
            sink,
            stats: &mut self.stats,
        };
        self.tcp.evict_idle(cutoff, now, &mut out);
        self.udp.evict_idle(cutoff, out.stats);
    }

    /// End of input: flush every connection's pending data, then `End`.
    fn finish(&mut self, sink: &mut dyn FnMut(SourceEvent)) {
        let mut out = Emit {
            sink,
            stats: &mut self.stats,
        };
        self.tcp.flush_all(self.last_ts_ns, &mut out);
        out.event(SourceEvent::End {
            ts_ns: self.last_ts_ns,
        });
    }
}

/// Where the flow tables send events, counting them on the way.
pub(crate) struct Emit<'a> {
    sink: &'a mut dyn FnMut(SourceEvent),
    pub(crate) stats: &'a mut ReplayStats,
}

impl Emit<'_> {
    pub(crate) fn event(&mut self, ev: SourceEvent) {
        match &ev {
            SourceEvent::Data(_) => self.stats.data_events += 1,
            SourceEvent::Close { .. } => self.stats.closes += 1,
            SourceEvent::End { .. } => {}
        }
        (self.sink)(ev);
    }
}
