//! One direction of a DNS-over-TCP connection: frames the byte stream into messages, each
//! preceded by its two-octet length (RFC 1035 section 4.2.2, RFC 7766 section 8).
//!
//! Whole messages inside a pushed chunk are handed out where they lie; only a message that
//! continues in a later chunk is copied (at most 2 + 65535 bytes). Uncaptured (`missing`)
//! bytes inside a message of known length are skipped like captured ones and mark it cut:
//! its captured prefix is still parsed. When a gap swallows a length prefix, or a length is
//! implausible (shorter than a header, or the QR bit says the wrong direction), the
//! boundary is lost: the stream skips to the next offset where [`plausible_start`] sees a
//! message start.
//!
//! Every decision depends only on the stream's bytes and gaps, never on where chunks were
//! cut: the same stream pushed whole or byte by byte gives the same messages.

use super::parse::{plausible_start, Start, HEADER_LEN, START_WINDOW};

/// Bytes appended to the buffer at a time (bounds it to one message plus this).
const PIECE: usize = 16 * 1024;

/// Where framed messages and framing trouble go.
pub(crate) trait Sink {
    /// A message of the stream (its captured prefix when `cut`): first byte (of its length
    /// prefix) seen at `first_ts`, last byte at `last_ts`.
    fn message(&mut self, msg: &[u8], cut: bool, first_ts: u64, last_ts: u64);
    /// A message boundary was lost in a capture gap.
    fn lost(&mut self);
    /// A length prefix was implausible: the stream resynchronises.
    fn invalid(&mut self);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At a message boundary, or inside a message whose bytes so far are in `buf`.
    Frame,
    /// A gap cut the message in `buf`: `left` more bytes of it to skip.
    Skip { left: usize },
    /// Looking for the next message start; `buf` holds bytes not yet ruled out.
    Resync,
}

/// Framing state of one direction.
pub(crate) struct Stream {
    /// The direction carries responses (QR = 1).
    response: bool,
    state: State,
    /// In `Frame`: the captured bytes of the message being read, length prefix included; in
    /// `Skip`: its captured prefix; in `Resync`: the undecided bytes (< [`START_WINDOW`]).
    buf: Vec<u8>,
    /// Capture times of `buf`: (offset where a run of bytes from one chunk starts, its time),
    /// the first at offset 0. Bounded: in `Resync` by the window; in `Frame` only the first
    /// run is kept once the message is accepted (at least 5 bytes buffered, see
    /// [`Stream::implausible`]), since a message found later starts in the current chunk.
    runs: Vec<(usize, u64)>,
}

impl Stream {
    pub(crate) fn new(response: bool) -> Stream {
        Stream {
            response,
            state: State::Frame,
            buf: Vec::new(),
            runs: Vec::new(),
        }
    }

    /// Feeds one chunk: `data` captured at `ts`, then `missing` bytes not captured.
    pub(crate) fn push(&mut self, mut data: &[u8], ts: u64, missing: u64, sink: &mut impl Sink) {
        // Each pass consumes bytes of `data`, or changes state from Resync to Frame without
        // consuming, after which the next pass consumes: bounded by 2 * data.len() passes.
        while !data.is_empty() {
            let (before, state) = (data.len(), self.state);
            match (state, self.buf.is_empty()) {
                (State::Skip { left }, _) => {
                    let n = left.min(data.len());
                    data = &data[n..];
                    if n == left {
                        self.emit_cut(ts, sink);
                    } else {
                        self.state = State::Skip { left: left - n };
                    }
                }
                (State::Frame, true) => data = self.whole_messages(data, ts, sink),
                (State::Resync, true) => data = self.scan(data, ts),
                _ => {}
            }
            if data.len() == before && self.state == state {
                let k = data.len().min(PIECE);
                if self.runs.last().is_none_or(|r| r.1 != ts) {
                    self.runs.push((self.buf.len(), ts));
                }
                self.buf.extend_from_slice(&data[..k]);
                data = &data[k..];
                self.process(ts, sink);
            }
        }
        if missing > 0 {
            self.gap(missing, ts, sink);
        }
    }

    /// Whether `b` (a length prefix and what follows) is a frame to refuse: shorter than a
    /// header, or the QR bit of the wrong direction.
    fn implausible(&self, b: &[u8]) -> bool {
        let len = usize::from(u16::from_be_bytes([b[0], b[1]]));
        len < HEADER_LEN || b.get(4).is_some_and(|f| (f & 0x80 != 0) != self.response)
    }

    /// At a boundary with nothing buffered: hands out the whole messages at the start of
    /// `data` in place and returns the rest.
    fn whole_messages<'a>(&mut self, mut d: &'a [u8], ts: u64, sink: &mut impl Sink) -> &'a [u8] {
        while d.len() >= 2 {
            if self.implausible(d) {
                sink.invalid();
                self.state = State::Resync;
                return &d[1..];
            }
            let len = usize::from(u16::from_be_bytes([d[0], d[1]]));
            if d.len() < 2 + len {
                break;
            }
            sink.message(&d[2..2 + len], false, ts, ts);
            d = &d[2 + len..];
        }
        d
    }

    /// Resynchronising with nothing buffered: skips to the first plausible message start in
    /// `data` (then framing resumes there) or keeps the undecided tail.
    fn scan<'a>(&mut self, data: &'a [u8], ts: u64) -> &'a [u8] {
        for o in 0..data.len() {
            match plausible_start(&data[o..], self.response) {
                Start::Yes => {
                    self.state = State::Frame;
                    return &data[o..];
                }
                Start::No => {}
                Start::NeedMore => {
                    self.buf.extend_from_slice(&data[o..]);
                    self.runs = vec![(0, ts)];
                    return &[];
                }
            }
        }
        &[]
    }

    /// Time of the chunk that held `buf[pos]`.
    fn ts_at(&self, pos: usize) -> u64 {
        let i = self.runs.partition_point(|r| r.0 <= pos);
        self.runs.get(i.saturating_sub(1)).map_or(0, |r| r.1)
    }

    /// Runs the framing over `buf` (whose last bytes came with the chunk at `ts`) and keeps
    /// only what is still undecided.
    fn process(&mut self, ts: u64, sink: &mut impl Sink) {
        let mut pos = 0;
        loop {
            let avail = &self.buf[pos..];
            match self.state {
                State::Frame => {
                    if avail.len() < 2 {
                        break;
                    }
                    if self.implausible(avail) {
                        sink.invalid();
                        pos += 1;
                        self.state = State::Resync;
                        continue;
                    }
                    let len = usize::from(u16::from_be_bytes([avail[0], avail[1]]));
                    if avail.len() < 2 + len {
                        break;
                    }
                    sink.message(&avail[2..2 + len], false, self.ts_at(pos), ts);
                    pos += 2 + len;
                }
                State::Resync => match plausible_start(avail, self.response) {
                    Start::Yes => self.state = State::Frame,
                    Start::No => pos += 1,
                    Start::NeedMore => break,
                },
                State::Skip { .. } => break,
            }
        }
        self.consume(pos);
        if self.state == State::Frame && self.buf.len() >= 5 {
            self.runs.truncate(1);
        }
        debug_assert!(self.state != State::Resync || self.buf.len() < START_WINDOW);
    }

    /// Drops the first `n` bytes of `buf` and their capture times.
    fn consume(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        if n >= self.buf.len() {
            self.buf.clear();
            self.runs.clear();
            return;
        }
        let first = self.runs.partition_point(|r| r.0 <= n).saturating_sub(1);
        self.runs.drain(..first);
        for r in &mut self.runs {
            r.0 = r.0.saturating_sub(n);
        }
        self.buf.drain(..n);
    }

    /// `missing` bytes were not captured.
    fn gap(&mut self, missing: u64, ts: u64, sink: &mut impl Sink) {
        let missing = usize::try_from(missing).unwrap_or(usize::MAX);
        match self.state {
            State::Skip { left } if missing < left => {
                self.state = State::Skip {
                    left: left - missing,
                };
            }
            State::Skip { left } => {
                self.emit_cut(ts, sink);
                self.lost_after(missing - left, sink);
            }
            State::Frame if self.buf.len() >= 2 => {
                let len = usize::from(u16::from_be_bytes([self.buf[0], self.buf[1]]));
                // `process` hands out whole messages, so the buffered one is not whole.
                let left = (2 + len).saturating_sub(self.buf.len());
                if missing < left {
                    self.state = State::Skip {
                        left: left - missing,
                    };
                } else {
                    self.emit_cut(ts, sink);
                    self.lost_after(missing - left, sink);
                }
            }
            State::Frame => {
                self.consume(self.buf.len());
                self.lost_after(missing, sink);
            }
            State::Resync => self.consume(self.buf.len()),
        }
    }

    /// After a message ended in a gap, `rest` more bytes of the gap swallowed the next
    /// boundary when not zero.
    fn lost_after(&mut self, rest: usize, sink: &mut impl Sink) {
        if rest > 0 {
            sink.lost();
            self.state = State::Resync;
        }
    }

    /// The message in `buf`, cut by a gap, ended at a chunk seen at `ts`.
    fn emit_cut(&mut self, ts: u64, sink: &mut impl Sink) {
        if self.buf.len() >= 2 {
            sink.message(&self.buf[2..], true, self.ts_at(0), ts);
        }
        self.consume(self.buf.len());
        self.state = State::Frame;
    }

    /// Bytes held now (for the bound checks of the tests).
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::parse::tests::{query, response};

    #[derive(Default, Debug, PartialEq)]
    struct Log {
        msgs: Vec<(Vec<u8>, bool, u64, u64)>,
        lost: u32,
        invalid: u32,
    }

    impl Sink for Log {
        fn message(&mut self, msg: &[u8], cut: bool, first_ts: u64, last_ts: u64) {
            self.msgs.push((msg.to_vec(), cut, first_ts, last_ts));
        }
        fn lost(&mut self) {
            self.lost += 1;
        }
        fn invalid(&mut self) {
            self.invalid += 1;
        }
    }

    fn framed(m: &[u8]) -> Vec<u8> {
        let mut t = (m.len() as u16).to_be_bytes().to_vec();
        t.extend_from_slice(m);
        t
    }

    fn run(pushes: &[(&[u8], u64)], response: bool) -> Log {
        let mut s = Stream::new(response);
        let mut log = Log::default();
        for (i, (d, m)) in pushes.iter().enumerate() {
            s.push(d, i as u64, *m, &mut log);
        }
        log
    }

    #[test]
    fn pipelined_and_split() {
        let (a, b) = (query(1, "a.test", 1, true), query(2, "b.test", 28, false));
        let stream = [framed(&a), framed(&b)].concat();
        let whole = run(&[(&stream, 0)], false);
        assert_eq!(whole.msgs.len(), 2);
        assert_eq!(whole.msgs[0].0, a);
        assert_eq!(whole.msgs[1].0, b);
        // Byte by byte: same messages, first/last times from the chunks that held them.
        let mut s = Stream::new(false);
        let mut log = Log::default();
        for (i, byte) in stream.iter().enumerate() {
            s.push(std::slice::from_ref(byte), i as u64, 0, &mut log);
        }
        assert_eq!(log.msgs.len(), 2);
        assert_eq!((log.msgs[0].2, log.msgs[0].3), (0, a.len() as u64 + 1));
        assert_eq!(log.msgs[1].2, a.len() as u64 + 2);
        assert_eq!(s.held(), 0);
    }

    #[test]
    fn gap_inside_a_message_keeps_sync() {
        let q = query(1, "a.test", 1, true);
        let r = response(&q, 0, 3, true);
        let next = response(&query(2, "b.test", 1, false), 3, 0, false);
        let fr = framed(&r);
        let tail = framed(&next);
        // 20 bytes captured, the rest of the first response missing, then the next whole.
        let log = run(&[(&fr[..20], (fr.len() - 20) as u64), (&tail, 0)], true);
        assert_eq!(log.msgs.len(), 2);
        assert_eq!(log.msgs[0].0, r[..18].to_vec());
        assert!(log.msgs[0].1);
        assert_eq!(log.msgs[1].0, next);
        assert_eq!((log.lost, log.invalid), (0, 0));
        // The gap ends inside the message: the captured rest is skipped.
        let log = run(
            &[(&fr[..20], 5), (&[&fr[25..], &tail[..]].concat(), 0)],
            true,
        );
        assert_eq!(log.msgs.len(), 2);
        assert!(log.msgs[0].1);
        assert_eq!(log.msgs[0].3, 1);
        assert_eq!(log.msgs[1].0, next);
    }

    #[test]
    fn lost_boundary_resyncs() {
        let q = query(1, "a.test", 1, true);
        let r = framed(&response(&q, 0, 3, true));
        let next = framed(&response(&query(2, "b.test", 1, false), 3, 0, false));
        // The gap covers the end of r and the first 3 bytes of another message.
        let stream = [&r[..30], &next[..]].concat();
        let log = run(
            &[
                (&stream[..30], (r.len() - 30 + 3) as u64),
                (&[0xde, 0xad, 0xbe], 0),
                (&next, 0),
            ],
            true,
        );
        assert_eq!(log.lost, 1);
        assert_eq!(log.msgs.len(), 2);
        assert!(log.msgs[0].1);
        assert_eq!(log.msgs[1].0, next[2..].to_vec());
        // Implausible length: invalid, then resync finds the next message.
        let log = run(&[(&[&[0u8, 3, 1, 2, 3][..], &next[..]].concat(), 0)], true);
        assert_eq!(log.invalid, 1);
        assert_eq!(log.msgs.len(), 1);
        // Wrong direction.
        let log = run(&[(&next, 0)], false);
        assert_eq!(log.invalid, 1);
        assert!(log.msgs.is_empty());
    }

    #[test]
    fn resync_window_is_bounded() {
        let mut s = Stream::new(true);
        let mut log = Log::default();
        s.push(&[0, 3], 0, 0, &mut log);
        for i in 0..10_000u64 {
            s.push(&[0, 200, 0x81], i, 0, &mut log);
            assert!(s.held() < START_WINDOW + 3);
        }
        assert!(log.msgs.is_empty());
    }
}
