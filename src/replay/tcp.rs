//! TCP connections in a capture: which segments belong to which connection, who the client is,
//! and when a connection ends. Each direction's bytes are put in order by [`Stream`].
//!
//! Rules:
//! - A connection is keyed by its address pair (both directions). It starts with a SYN, or,
//!   when the capture began mid-connection, with the first segment that carries payload (or a
//!   SYN-ACK whose SYN was missed); a pure ACK, FIN or RST of an unknown connection is ignored.
//!   Each direction's stream starts after its SYN, else at its first segment with payload or
//!   FIN: earlier bytes that arrive later are treated as retransmissions.
//! - The client is the sender of a SYN without ACK (or the receiver of a SYN-ACK whose SYN was
//!   not captured); without either, `ClientHint::Unknown`.
//! - An ACK from one side lets the other side's stream give up on holes it covers.
//! - `Close { reset: false }` is emitted when both directions have delivered their FIN, or when
//!   one has and no packet at all came from the other side (a one-directional capture). A half-
//!   closed connection stays open: the other side may still send. `Close { reset: true }` is
//!   emitted at the first RST (whose payload, if any, is not stream data). Before a close, all
//!   held data is delivered, holes becoming gaps.
//! - After a close, segments on the same addresses are ignored for `TOMBSTONE_NS` of capture
//!   time, except a SYN, which starts a new connection (a new `ConnKey`). A SYN with a new ISN on
//!   an open connection also starts a new one (the end of the old one was not captured; it gets
//!   no `Close`).
//! - Connections idle for longer than the idle timeout are flushed and forgotten (no `Close`),
//!   and so are the open ones at the end of the file.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::event::{ClientHint, ConnKey, DataEvent, SourceEvent};

use super::ip::Segment;
use super::stream::{Limits, Runs, Stream};
use super::{Emit, FlowIds};

/// How long a closed connection's addresses keep ignoring stray segments (capture time).
const TOMBSTONE_NS: u64 = 60_000_000_000;

/// Both directions' addresses, smaller first: the key of a connection in either direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct FlowKey(SocketAddr, SocketAddr);

impl FlowKey {
    pub(crate) fn new(a: SocketAddr, b: SocketAddr) -> FlowKey {
        if a <= b {
            FlowKey(a, b)
        } else {
            FlowKey(b, a)
        }
    }
}

enum Entry {
    Open(Box<Conn>),
    Closed { at_ns: u64 },
}

struct Conn {
    key: ConnKey,
    /// `addrs[i]` sends stream `streams[i]`.
    addrs: [SocketAddr; 2],
    streams: [Stream; 2],
    client: ClientHint,
    /// The side that sent the SYN this connection started with, and its ISN.
    syn: Option<(usize, u32)>,
    last_ns: u64,
}

pub(crate) struct TcpTable {
    conns: HashMap<FlowKey, Entry>,
    limits: Limits,
}

impl TcpTable {
    pub(crate) fn new(limits: Limits) -> TcpTable {
        TcpTable {
            conns: HashMap::new(),
            limits,
        }
    }

    pub(crate) fn segment(
        &mut self,
        ts: u64,
        src: SocketAddr,
        dst: SocketAddr,
        seg: Segment<'_>,
        ids: &mut FlowIds,
        out: &mut Emit<'_>,
    ) {
        out.stats.tcp_segments += 1;
        out.stats.tcp_payload_bytes += seg.payload.len() as u64;
        let key = FlowKey::new(src, dst);
        let syn_only = seg.syn && !seg.ack_flag;
        match self.conns.get_mut(&key) {
            Some(Entry::Open(conn)) => {
                let side = conn.side(src);
                let same_syn = conn.syn == Some((side, seg.seq));
                if !syn_only || same_syn {
                    if conn.segment(ts, side, &seg, self.limits, out) {
                        self.conns.insert(key, Entry::Closed { at_ns: ts });
                    }
                    return;
                }
                // A new SYN: the old connection's end was not captured.
                conn.flush(ts, out);
            }
            Some(Entry::Closed { .. }) if !syn_only => {
                out.stats.tcp_ignored_segments += 1;
                return;
            }
            Some(Entry::Closed { .. }) => {}
            None if seg.rst || (!seg.syn && seg.payload.is_empty() && seg.cut == 0) => {
                out.stats.tcp_ignored_segments += 1;
                return;
            }
            None => {}
        }
        let client = match (seg.syn, seg.ack_flag) {
            (true, false) => ClientHint::Client(src),
            (true, true) => ClientHint::Client(dst),
            _ => ClientHint::Unknown,
        };
        out.stats.tcp_connections += 1;
        let mut conn = Box::new(Conn {
            key: ConnKey {
                tgid: 0,
                fd: ids.next(out.stats),
                start_ns: ts,
            },
            addrs: [src, dst],
            streams: [Stream::default(), Stream::default()],
            client,
            syn: syn_only.then_some((0, seg.seq)),
            last_ns: ts,
        });
        let closed = conn.segment(ts, 0, &seg, self.limits, out);
        let entry = if closed {
            Entry::Closed { at_ns: ts }
        } else {
            Entry::Open(conn)
        };
        self.conns.insert(key, entry);
    }

    /// Flushes and forgets connections with no packet since `cutoff`, and closed ones whose
    /// tombstone has expired.
    pub(crate) fn evict_idle(&mut self, cutoff: u64, now: u64, out: &mut Emit<'_>) {
        let mut idle: Vec<(ConnKey, FlowKey)> = Vec::new();
        self.conns.retain(|key, entry| match entry {
            Entry::Closed { at_ns } => at_ns.saturating_add(TOMBSTONE_NS) > now,
            Entry::Open(conn) => {
                if conn.last_ns < cutoff {
                    idle.push((conn.key, *key));
                }
                true
            }
        });
        idle.sort_unstable();
        for (_, key) in idle {
            if let Some(Entry::Open(mut conn)) = self.conns.remove(&key) {
                out.stats.idle_evictions += 1;
                conn.flush(now, out);
            }
        }
    }

    /// End of input: delivers what every open connection holds (holes become gaps), in the
    /// order the connections started. No `Close`: they did not close in the capture.
    pub(crate) fn flush_all(&mut self, ts: u64, out: &mut Emit<'_>) {
        let mut open: Vec<Box<Conn>> = self
            .conns
            .drain()
            .filter_map(|(_, e)| match e {
                Entry::Open(c) => Some(c),
                Entry::Closed { .. } => None,
            })
            .collect();
        open.sort_unstable_by_key(|c| c.key);
        for mut conn in open {
            conn.flush(ts, out);
        }
    }
}

impl Conn {
    fn side(&self, src: SocketAddr) -> usize {
        usize::from(src != self.addrs[0])
    }

    /// Handles one segment from `side`. Returns true when the connection closed.
    fn segment(
        &mut self,
        ts: u64,
        side: usize,
        seg: &Segment<'_>,
        limits: Limits,
        out: &mut Emit<'_>,
    ) -> bool {
        self.last_ns = ts;
        let peer = 1 - side;
        self.streams[side].seen = true;
        if seg.syn && self.streams[side].pristine() {
            self.streams[side].start_after_syn(seg.seq);
        }
        if seg.ack_flag {
            let mut runs = Runs::default();
            self.streams[peer].acked(seg.ack, &mut runs, out.stats);
            self.emit(ts, peer, runs, out);
        }
        if seg.rst {
            for s in self.client_first() {
                let mut runs = Runs::default();
                self.streams[s].flush(&mut runs, out.stats);
                self.emit(ts, s, runs, out);
            }
            out.event(SourceEvent::Close {
                conn: self.key,
                ts_ns: ts,
                reset: true,
            });
            return true;
        }
        let seq = if seg.syn {
            seg.seq.wrapping_add(1)
        } else {
            seg.seq
        };
        let mut runs = Runs::default();
        self.streams[side].segment(
            seq,
            seg.payload,
            seg.cut,
            seg.fin,
            limits,
            &mut runs,
            out.stats,
        );
        self.emit(ts, side, runs, out);

        let [a, b] = &self.streams;
        let done = |s: &Stream, other: &Stream| s.finished() && (other.finished() || !other.seen);
        if done(a, b) || done(b, a) {
            out.event(SourceEvent::Close {
                conn: self.key,
                ts_ns: ts,
                reset: false,
            });
            return true;
        }
        false
    }

    /// Delivers everything held in both directions, holes becoming gaps.
    fn flush(&mut self, ts: u64, out: &mut Emit<'_>) {
        for s in self.client_first() {
            let mut runs = Runs::default();
            self.streams[s].flush(&mut runs, out.stats);
            self.emit(ts, s, runs, out);
        }
    }

    /// The two sides, the client's first when it is known.
    fn client_first(&self) -> [usize; 2] {
        match self.client {
            ClientHint::Client(c) if c == self.addrs[1] => [1, 0],
            _ => [0, 1],
        }
    }

    fn emit(&self, ts: u64, side: usize, runs: Runs, out: &mut Emit<'_>) {
        for (data, missing) in runs.0 {
            out.event(SourceEvent::Data(DataEvent {
                conn: self.key,
                ts_ns: ts,
                src: self.addrs[side],
                dst: self.addrs[1 - side],
                client: self.client,
                observer: None,
                protocol: None,
                transport: crate::event::Transport::Tcp,
                data,
                missing,
                lost_before: Default::default(),
            }));
        }
    }
}
