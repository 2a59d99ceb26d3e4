//! Packet framing of one direction ("MySQL Packets"): a 3-byte little-endian payload length,
//! a sequence id, the payload. A payload of 16 MiB - 1 bytes continues in the next packet
//! ("Sending More Than 16Mb"); the framer joins such packets into one logical packet.
//!
//! Payload bytes are handed out where they lie in the pushed chunk when a packet is whole
//! inside it; otherwise up to `keep` bytes are copied. Uncaptured (`missing`) bytes inside a
//! payload are skipped like captured ones and mark the packet `gap`. When a gap swallows a
//! packet header, the framing is lost: the framer reports it and waits for a chunk whose
//! start its owner accepts as a packet boundary (chunks start at the boundaries of the
//! writes and reads that carried them, where messages usually start).

use super::wire::MAX_PACKET;

/// One logical packet.
#[derive(Debug)]
pub(crate) struct Packet<'a> {
    /// Sequence id of its first physical packet.
    pub seq: u8,
    /// Sequence id of its last physical packet.
    pub last_seq: u8,
    /// The captured start of the payload, at most the framer's `keep` bytes.
    pub payload: &'a [u8],
    /// The payload's true length.
    pub len: u64,
    /// Some bytes of it were not captured.
    pub gap: bool,
    /// Capture time of its first byte, and of its last byte.
    pub first_ts: u64,
    pub last_ts: u64,
}

impl Packet<'_> {
    pub fn first(&self) -> Option<u8> {
        self.payload.first().copied()
    }

    /// Less than the whole payload is in `payload` (not captured, or over the keep limit).
    pub fn cut(&self) -> bool {
        (self.payload.len() as u64) < self.len
    }
}

/// What the framer tells its owner.
pub(crate) enum Event<'a, 'p> {
    Packet(&'a Packet<'p>),
    /// A gap swallowed a packet header at `ts`: the framing is lost.
    Lost {
        ts: u64,
    },
    /// The framing is lost: may this chunk's first byte start a packet? `total` counts the
    /// chunk's captured and missing bytes.
    Start {
        data: &'a [u8],
        total: u64,
        ts: u64,
    },
}

/// The owner's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    /// Give up this chunk (an invalid packet, or a chunk start refused): wait for the next
    /// chunk start.
    Resync,
    /// Stop framing for good (the connection switched to TLS or compression).
    Stop,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for a chunk start accepted as a packet boundary (also the initial state).
    Wait,
    Header,
    Payload,
    Off,
}

/// Framing state of one direction.
pub(crate) struct Framer {
    state: State,
    keep: usize,
    hdr: [u8; 4],
    hdr_len: usize,
    /// Payload bytes left in the current physical packet.
    left: u32,
    /// The current physical packet is MAX_PACKET long: another one continues it.
    more: bool,
    /// A logical packet is under way (its first header was read).
    open: bool,
    seq: u8,
    last_seq: u8,
    len: u64,
    buf: Vec<u8>,
    first_ts: u64,
    gap: bool,
    /// Bytes of a chunk start too short to tell (see [`Framer::probe`]), and their time.
    probe: Vec<u8>,
    probe_ts: u64,
}

/// Bytes needed to tell whether a chunk starts a packet: the header and the first payload
/// byte.
const PROBE: usize = 5;

impl Framer {
    /// A framer that keeps at most `keep` payload bytes of a packet.
    pub(crate) fn new(keep: usize) -> Framer {
        Framer {
            state: State::Wait,
            keep,
            hdr: [0; 4],
            hdr_len: 0,
            left: 0,
            more: false,
            open: false,
            seq: 0,
            last_seq: 0,
            len: 0,
            buf: Vec::new(),
            first_ts: 0,
            gap: false,
            probe: Vec::new(),
            probe_ts: 0,
        }
    }

    pub(crate) fn stop(&mut self) {
        self.reset(State::Off);
    }

    /// Forget the packet under way and wait for an accepted chunk start.
    pub(crate) fn resync(&mut self) {
        if self.state != State::Off {
            self.reset(State::Wait);
        }
    }

    /// A packet is partly read.
    pub(crate) fn mid_packet(&self) -> bool {
        self.open || self.hdr_len > 0
    }

    fn reset(&mut self, state: State) {
        self.state = state;
        self.hdr_len = 0;
        self.open = false;
        self.more = false;
        self.left = 0;
        self.probe.clear();
        self.buf.clear();
        if self.buf.capacity() > self.keep.max(4096) {
            self.buf.shrink_to(self.keep.max(4096));
        }
    }

    /// Feed one chunk: `data` captured, then `missing` bytes not captured.
    pub(crate) fn push<F>(&mut self, data: &[u8], ts: u64, missing: u64, f: &mut F)
    where
        F: FnMut(Event<'_, '_>) -> Flow,
    {
        match self.state {
            State::Off => {}
            State::Wait => self.probe(data, ts, missing, f),
            State::Header | State::Payload => self.feed(data, ts, missing, f),
        }
    }

    /// The framing is lost (or not found yet): ask the owner whether the chunk starts a
    /// packet. A chunk too short to tell (fewer than [`PROBE`] bytes) is kept and told with
    /// the next one, unless a gap follows it.
    fn probe<F>(&mut self, data: &[u8], ts: u64, missing: u64, f: &mut F)
    where
        F: FnMut(Event<'_, '_>) -> Flow,
    {
        let held = std::mem::take(&mut self.probe);
        if held.is_empty() {
            self.probe_ts = ts;
        }
        if held.len() + data.len() < PROBE {
            if missing == 0 {
                self.probe = held;
                self.probe.extend_from_slice(data);
            }
            return;
        }
        let total = (held.len() + data.len()) as u64 + missing;
        let flow = if held.is_empty() {
            f(Event::Start { data, total, ts })
        } else {
            let mut view = held.clone();
            view.extend_from_slice(&data[..data.len().min(64)]);
            f(Event::Start {
                data: &view,
                total,
                ts: self.probe_ts,
            })
        };
        match flow {
            Flow::Continue => {
                self.state = State::Header;
                if !held.is_empty() {
                    let probe_ts = self.probe_ts;
                    self.feed(&held, probe_ts, 0, f);
                }
                if self.state != State::Wait && self.state != State::Off {
                    self.feed(data, ts, missing, f);
                }
            }
            Flow::Resync => {}
            Flow::Stop => self.stop(),
        }
    }

    fn feed<F>(&mut self, data: &[u8], ts: u64, missing: u64, f: &mut F)
    where
        F: FnMut(Event<'_, '_>) -> Flow,
    {
        let mut i = 0;
        // Every pass consumes at least one byte or leaves the loop.
        while i < data.len() {
            let flow = match self.state {
                State::Header => self.header(data, &mut i, ts, f),
                State::Payload => {
                    let n = (self.left as usize).min(data.len() - i);
                    // Bytes after a gap are not contiguous with those kept: the kept
                    // payload stays a strict prefix of the real one.
                    let room = if self.gap {
                        0
                    } else {
                        self.keep.saturating_sub(self.buf.len()).min(n)
                    };
                    self.buf.extend_from_slice(&data[i..i + room]);
                    self.left -= n as u32;
                    i += n;
                    if self.left == 0 {
                        self.physical_end(ts, f)
                    } else {
                        Flow::Continue
                    }
                }
                State::Wait | State::Off => return,
            };
            if self.apply(flow) {
                return;
            }
        }
        if missing > 0 {
            self.gap(missing, ts, f);
        }
    }

    /// Applies the owner's answer; true when the chunk must not be read further.
    fn apply(&mut self, flow: Flow) -> bool {
        match flow {
            Flow::Continue => false,
            Flow::Resync => {
                self.resync();
                true
            }
            Flow::Stop => {
                self.stop();
                true
            }
        }
    }

    fn header<F>(&mut self, data: &[u8], i: &mut usize, ts: u64, f: &mut F) -> Flow
    where
        F: FnMut(Event<'_, '_>) -> Flow,
    {
        if self.hdr_len == 0 && !self.open {
            self.first_ts = ts;
        }
        if self.hdr_len == 0 && data.len() - *i >= 4 {
            let h = &data[*i..*i + 4];
            let len = u32::from_le_bytes([h[0], h[1], h[2], 0]);
            let seq = h[3];
            let body = &data[*i + 4..];
            // The common case: a whole packet inside the chunk, handed out in place.
            if !self.open && len < MAX_PACKET && body.len() >= len as usize {
                *i += 4 + len as usize;
                let p = Packet {
                    seq,
                    last_seq: seq,
                    payload: &body[..(len as usize).min(self.keep)],
                    len: u64::from(len),
                    gap: false,
                    first_ts: ts,
                    last_ts: ts,
                };
                return f(Event::Packet(&p));
            }
            self.hdr.copy_from_slice(h);
            self.hdr_len = 4;
            *i += 4;
        } else {
            let n = (4 - self.hdr_len).min(data.len() - *i);
            self.hdr[self.hdr_len..self.hdr_len + n].copy_from_slice(&data[*i..*i + n]);
            self.hdr_len += n;
            *i += n;
            if self.hdr_len < 4 {
                return Flow::Continue;
            }
        }
        self.hdr_len = 0;
        let len = u32::from_le_bytes([self.hdr[0], self.hdr[1], self.hdr[2], 0]);
        if !self.open {
            self.open = true;
            self.seq = self.hdr[3];
            self.len = 0;
            self.gap = false;
            self.buf.clear();
        }
        self.last_seq = self.hdr[3];
        self.len += u64::from(len);
        self.left = len;
        self.more = len == MAX_PACKET;
        self.state = State::Payload;
        if len == 0 {
            return self.physical_end(ts, f);
        }
        Flow::Continue
    }

    /// The current physical packet's payload ended with a byte seen at `ts`.
    fn physical_end<F>(&mut self, ts: u64, f: &mut F) -> Flow
    where
        F: FnMut(Event<'_, '_>) -> Flow,
    {
        self.state = State::Header;
        if self.more {
            return Flow::Continue;
        }
        self.deliver(ts, f)
    }

    fn deliver<F>(&mut self, ts: u64, f: &mut F) -> Flow
    where
        F: FnMut(Event<'_, '_>) -> Flow,
    {
        self.open = false;
        let p = Packet {
            seq: self.seq,
            last_seq: self.last_seq,
            payload: &self.buf,
            len: self.len,
            gap: self.gap,
            first_ts: self.first_ts,
            last_ts: ts,
        };
        let flow = f(Event::Packet(&p));
        self.buf.clear();
        flow
    }

    fn gap<F>(&mut self, mut missing: u64, ts: u64, f: &mut F)
    where
        F: FnMut(Event<'_, '_>) -> Flow,
    {
        if self.state == State::Payload {
            let n = u64::from(self.left).min(missing);
            self.left -= n as u32;
            missing -= n;
            self.gap = true;
            if self.left == 0 {
                let flow = self.physical_end(ts, f);
                if self.apply(flow) {
                    return;
                }
            }
        }
        if missing == 0 || !matches!(self.state, State::Header | State::Payload) {
            return;
        }
        // The gap swallowed a header: a continuation header (the packet so far is delivered
        // cut short, its true length unknown) or the next packet's.
        if self.open {
            self.gap = true;
            let flow = self.deliver(ts, f);
            if self.apply(flow) {
                return;
            }
        }
        let flow = f(Event::Lost { ts });
        self.reset(State::Wait);
        self.apply(flow);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
        let n = payload.len() as u32;
        let mut v = n.to_le_bytes()[..3].to_vec();
        v.push(seq);
        v.extend_from_slice(payload);
        v
    }

    /// (seq, payload, len, gap, first_ts, last_ts) of each packet, and the lost timestamps.
    type Seen = (Vec<(u8, Vec<u8>, u64, bool, u64, u64)>, Vec<u64>);

    fn run(chunks: &[(&[u8], u64, u64)], keep: usize) -> Seen {
        let mut fr = Framer::new(keep);
        let mut seen = (Vec::new(), Vec::new());
        for (data, ts, missing) in chunks {
            fr.push(data, *ts, *missing, &mut |ev| {
                match ev {
                    Event::Packet(p) => seen.0.push((
                        p.seq,
                        p.payload.to_vec(),
                        p.len,
                        p.gap,
                        p.first_ts,
                        p.last_ts,
                    )),
                    Event::Lost { ts } => seen.1.push(ts),
                    Event::Start { .. } => {}
                }
                Flow::Continue
            });
        }
        seen
    }

    #[test]
    fn whole_split_and_joined_packets() {
        let mut s = packet(0, b"\x03select 1");
        s.extend(packet(1, b""));
        let (p, lost) = run(&[(&s[..6], 1, 0), (&s[6..], 2, 0)], 100);
        assert!(lost.is_empty());
        assert_eq!(p[0], (0, b"\x03select 1".to_vec(), 9, false, 1, 2));
        assert_eq!(p[1], (1, vec![], 0, false, 2, 2));
    }

    #[test]
    fn sixteen_mib_payload_continues() {
        let big = vec![7u8; MAX_PACKET as usize];
        let mut s = packet(0, &big);
        s.extend(packet(1, b"xy"));
        let (p, _) = run(&[(&s, 5, 0)], 4);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].0, 0);
        assert_eq!(p[0].2, u64::from(MAX_PACKET) + 2);
        assert_eq!(p[0].1, vec![7; 4]);
    }

    #[test]
    fn missing_bytes_inside_a_payload_keep_sync() {
        let s = packet(0, &[b'a'; 100]);
        let next = packet(0, b"\x0e");
        let (p, lost) = run(&[(&s[..20], 1, 84), (&next, 2, 0)], 1000);
        assert!(lost.is_empty());
        assert_eq!(p[0].2, 100);
        assert!(p[0].3);
        assert_eq!(p[0].1.len(), 16);
        assert_eq!(p[1].1, b"\x0e");
    }

    /// A large packet read in several calls, the first captured only in part: what follows
    /// the gap is not appended to the kept prefix (it would read as if contiguous).
    #[test]
    fn bytes_after_a_gap_are_not_kept() {
        let body: Vec<u8> = (0..200u32).map(|i| (i % 251) as u8).collect();
        let s = packet(0, &body);
        // Read 1: header + 40 bytes, 20 of them captured; read 2: 60 bytes, all captured;
        // read 3: the rest.
        let (p, lost) = run(
            &[(&s[..24], 1, 20), (&s[44..104], 2, 0), (&s[104..], 3, 0)],
            1000,
        );
        assert!(lost.is_empty());
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].2, 200);
        assert!(p[0].3, "the packet is marked gap");
        assert_eq!(p[0].1, body[..20].to_vec(), "a strict prefix");
    }

    #[test]
    fn a_gap_over_a_header_is_lost() {
        let s = packet(0, &[b'a'; 10]);
        let (p, lost) = run(&[(&s[..5], 1, 20)], 1000);
        assert_eq!(p.len(), 1);
        assert_eq!(lost, vec![1]);
    }
}
