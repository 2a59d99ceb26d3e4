//! One direction of a PostgreSQL connection: frames its byte stream into messages (PostgreSQL
//! docs, section 55.7 "Message Formats") and hands them to the [`Stitcher`].
//!
//! Every message declares its length, so bytes the capture did not copy (`missing`) are
//! skipped inside a message like captured ones (the message is then `truncated`). Only when
//! a gap covers a header is the boundary lost: counted in `lost_in_gap`, and the direction
//! resynchronises at the next plausible boundary: a known type byte, a sane length, and a
//! body whose structure matches its type (a message with little structure, such as
//! BindComplete or CopyData, needs the messages after it to confirm). A chunk that starts
//! right after a gap is tried first at its first byte, where a write, and so usually a
//! message, begins.
//!
//! Bodies are read where they lie in the pushed chunk; only the bodies the pairing reads
//! (statement text, names, command tags, errors) are copied when they span chunks, and only
//! up to a bound. The decisions depend only on the bytes, not on where chunks were cut.

use std::mem;

use super::parse::{self, Dir, Plausible, Untyped};
use super::stitch::{Meta, Stitcher};
use crate::Exchange;

/// Statement text kept of a Query or Parse (section 55.7, "Query", "Parse"); longer text is
/// cut there and the record marked `truncated`.
pub const MAX_QUERY: usize = 32 * 1024;
/// Bytes kept of the other bodies the pairing reads (names, tags, error fields).
const MAX_SMALL: usize = 4096;
/// Bytes held across chunks while looking for a boundary.
const MAX_WINDOW: usize = 16 * 1024;
/// Complete messages a boundary candidate is checked through.
const CHAIN_HOPS: usize = 4;
/// Longest message a resynchronisation accepts as a boundary (larger ones are rare; a false
/// boundary with a huge length would skip real messages).
const RESYNC_MAX_LEN: u32 = 1 << 20;

fn keep_limit(dir: Dir, ty: u8) -> usize {
    match (dir, ty) {
        (Dir::Frontend, b'Q' | b'P') => MAX_QUERY,
        (Dir::Frontend, b'B' | b'D' | b'C' | b'E') => MAX_SMALL,
        (Dir::Backend, b'C' | b'E' | b'Z') => MAX_SMALL,
        _ => 0,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Frontend before StartupMessage: an untyped startup-phase message, or (capture began
    /// later) a typed one.
    Start,
    /// At (or inside) a typed message header.
    Header,
    /// Inside a message body.
    Body,
    /// Looking for the next plausible message boundary.
    Resync,
    /// Encrypted, cancelled or otherwise not PostgreSQL messages any more: ignored.
    Off,
}

/// The message being read.
#[derive(Debug, Default)]
struct Msg {
    ty: u8,
    untyped: Option<Untyped>,
    len: u64,
    left: u64,
    keep: usize,
    body: Vec<u8>,
    truncated: bool,
    first_ts: u64,
}

/// What one header step did.
enum Hdr {
    Consumed(usize),
    /// The header is not valid; `here` of its bytes came from the current input.
    Invalid {
        here: usize,
    },
}

/// Result of looking for a boundary.
enum Scan {
    Found(usize),
    /// Undecided from here on: keep these bytes and look again with more.
    Hold(usize),
    None,
}

/// How a boundary candidate fares.
enum Chain {
    Yes,
    No,
    Open { hops: usize, header: bool },
}

/// Framing state of one direction.
pub(crate) struct Stream {
    dir: Dir,
    state: State,
    hdr: [u8; 8],
    hdr_len: usize,
    hdr_ts: u64,
    /// Capture time of each header byte.
    hdr_times: [u64; 8],
    msg: Msg,
    /// Resynchronisation bytes held across chunks (contiguous with the next chunk).
    window: Vec<u8>,
    /// `(offset in window, ts)` where the bytes of each chunk held begin.
    window_marks: Vec<(usize, u64)>,
    /// The held window begins with the first byte of the chunk after a gap.
    window_at_start: bool,
    /// Nothing framed yet: bytes that are no message start belong to one that began before
    /// the capture.
    fresh: bool,
    /// Resynchronising after a capture gap (rather than after invalid bytes).
    after_gap: bool,
}

impl Stream {
    pub(crate) fn new(dir: Dir) -> Stream {
        Stream {
            dir,
            state: match dir {
                Dir::Frontend => State::Start,
                Dir::Backend => State::Header,
            },
            hdr: [0; 8],
            hdr_len: 0,
            hdr_ts: 0,
            hdr_times: [0; 8],
            msg: Msg::default(),
            window: Vec::new(),
            window_marks: Vec::new(),
            window_at_start: false,
            fresh: true,
            after_gap: false,
        }
    }

    /// Stops parsing (the connection is encrypted now).
    pub(crate) fn stop(&mut self) {
        self.state = State::Off;
        self.window = Vec::new();
        self.window_marks = Vec::new();
        self.msg.body = Vec::new();
    }

    /// Feeds one chunk: `data` captured at `ts`, then `missing` bytes not captured.
    pub(crate) fn push(
        &mut self,
        data: &[u8],
        ts: u64,
        missing: u64,
        st: &mut Stitcher,
        out: &mut Vec<Exchange>,
    ) {
        self.feed(data, ts, missing > 0, true, st, out);
        if !data.is_empty() {
            // Only the chunk right after a gap starts where a write did (a held window
            // remembers it for the bytes it keeps).
            self.after_gap = false;
        }
        if missing > 0 {
            self.gap(missing, ts, st, out);
        }
    }

    /// Frames `data` (seen at `ts`); `gap_follows`: uncaptured bytes come right after it;
    /// `chunk_start`: `data` starts a chunk.
    fn feed(
        &mut self,
        data: &[u8],
        ts: u64,
        gap_follows: bool,
        chunk_start: bool,
        st: &mut Stitcher,
        out: &mut Vec<Exchange>,
    ) {
        let mut i = 0;
        // Each pass consumes input, shortens the held window, or moves to a state whose next
        // pass does; the budget only guards that argument.
        let mut budget = 4 * (data.len() + self.window.len()) + 16;
        while budget > 0 {
            budget -= 1;
            match self.state {
                State::Off => return,
                State::Resync if !self.window.is_empty() => {
                    let held = self.window.len();
                    let mut marks = mem::take(&mut self.window_marks);
                    let at_start = self.window_at_start;
                    let mut comb = mem::take(&mut self.window);
                    comb.extend_from_slice(&data[i..]);
                    if i < data.len() && marks.last().is_none_or(|m| m.1 != ts) {
                        marks.push((held, ts));
                    }
                    match self.scan(&comb, gap_follows, at_start) {
                        Scan::Found(j) if j >= held => {
                            self.found(comb[j], at_start && j == 0, st);
                            i += j - held;
                        }
                        Scan::Found(j) => {
                            self.found(comb[j], at_start && j == 0, st);
                            // Held bytes, seen earlier, each run at its chunk's time; then
                            // this input goes on.
                            for (k, &(at, t)) in marks.iter().enumerate() {
                                let end = marks.get(k + 1).map_or(held, |m| m.0).min(held);
                                let from = at.max(j);
                                if from < end {
                                    self.feed(&comb[from..end], t, false, false, st, out);
                                }
                            }
                        }
                        Scan::Hold(j) => {
                            self.window_at_start = at_start && j == 0;
                            if j > 0 {
                                let first = marks.partition_point(|m| m.0 <= j).saturating_sub(1);
                                marks = marks[first..]
                                    .iter()
                                    .map(|&(at, t)| (at.saturating_sub(j), t))
                                    .collect();
                                comb.drain(..j);
                            }
                            self.window_marks = marks;
                            self.window = comb;
                            return;
                        }
                        Scan::None => return,
                    }
                }
                // (An empty body completes without input.)
                State::Body if self.msg.left == 0 => {
                    self.body(&[], ts, st, out);
                }
                _ if i >= data.len() => return,
                State::Resync => {
                    let view = &data[i..];
                    let at_start = chunk_start && i == 0 && self.after_gap;
                    match self.scan(view, gap_follows, at_start) {
                        Scan::Found(j) => {
                            self.found(view[j], at_start && j == 0, st);
                            i += j;
                        }
                        Scan::Hold(j) => {
                            self.window = view[j..].to_vec();
                            self.window_marks = vec![(0, ts)];
                            self.window_at_start = at_start && j == 0;
                            return;
                        }
                        Scan::None => return,
                    }
                }
                State::Start | State::Header => match self.header(&data[i..], ts, st) {
                    Hdr::Consumed(n) => i += n,
                    Hdr::Invalid { here } => {
                        if self.fresh {
                            // The capture began inside a message.
                            st.stats.lost_in_gap += 1;
                        } else {
                            st.stats.parse_errors += 1;
                        }
                        self.fresh = false;
                        // Look again from the header's second byte.
                        // (`i` is still where this input's header bytes begin.)
                        let earlier = self.hdr_len - here;
                        if earlier >= 1 {
                            self.window = self.hdr[1..earlier].to_vec();
                            self.window_marks.clear();
                            for k in 1..earlier {
                                let t = self.hdr_times[k];
                                if self.window_marks.last().is_none_or(|m| m.1 != t) {
                                    self.window_marks.push((k - 1, t));
                                }
                            }
                        } else {
                            i += 1;
                        }
                        self.hdr_len = 0;
                        self.after_gap = false;
                        self.window_at_start = false;
                        self.state = State::Resync;
                    }
                },
                State::Body => i += self.body(&data[i..], ts, st, out),
            }
        }
        debug_assert!(false, "pgsql stream made no progress");
        st.stats.parse_errors += 1;
        self.enter_resync();
    }

    /// A boundary was found at a message of type `ty`.
    fn found(&mut self, ty: u8, fresh_write: bool, st: &mut Stitcher) {
        self.state = State::Header;
        self.hdr_len = 0;
        self.fresh = false;
        if self.dir == Dir::Backend {
            st.backend_resynced(fresh_write, ty);
        }
        self.after_gap = false;
        self.window_at_start = false;
    }

    fn enter_resync(&mut self) {
        if self.state != State::Off {
            self.state = State::Resync;
        }
        self.hdr_len = 0;
        self.window.clear();
        self.window_marks.clear();
    }

    /// Reads header bytes (and the one-byte answers to SSLRequest / GSSENCRequest).
    fn header(&mut self, data: &[u8], ts: u64, st: &mut Stitcher) -> Hdr {
        if self.hdr_len == 0 {
            if self.dir == Dir::Backend && st.ssl_pending {
                // Section 55.2.10/55.2.11: a single byte, `S`/`G` (encryption follows) or `N`.
                st.ssl_pending = false;
                match data[0] {
                    b'S' | b'G' => {
                        st.encrypted = true;
                        self.state = State::Off;
                        return Hdr::Consumed(1);
                    }
                    b'N' => {
                        self.fresh = false;
                        return Hdr::Consumed(1);
                    }
                    // An ErrorResponse (a server that does not know the request).
                    _ => {}
                }
            }
            if self.state == State::Start && data[0] == 0x16 {
                // A TLS handshake record: TLS without an SSLRequest we saw.
                st.encrypted = true;
                self.state = State::Off;
                return Hdr::Consumed(1);
            }
            self.hdr_ts = ts;
        }
        let mut n = 0;
        let untyped = |h: &[u8; 8], s: State| s == State::Start && h[0] == 0;
        while n < data.len() {
            let need = if self.hdr_len > 0 && untyped(&self.hdr, self.state) {
                8
            } else {
                5
            };
            if self.hdr_len >= need {
                break;
            }
            self.hdr[self.hdr_len] = data[n];
            self.hdr_times[self.hdr_len] = ts;
            self.hdr_len += 1;
            n += 1;
        }
        let is_untyped = untyped(&self.hdr, self.state);
        if self.hdr_len < if is_untyped { 8 } else { 5 } {
            return Hdr::Consumed(n);
        }
        let h = self.hdr;
        let (ty, untyped, len) = if is_untyped {
            let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
            let code = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
            match parse::untyped_header(len, code) {
                Some(u) => (0, Some(u), u64::from(len - 8)),
                None => return Hdr::Invalid { here: n },
            }
        } else {
            let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]);
            if !parse::header_ok(self.dir, h[0], len, self.fresh) {
                return Hdr::Invalid { here: n };
            }
            (h[0], None, u64::from(len - 4))
        };
        self.fresh = false;
        self.hdr_len = 0;
        let keep = keep_limit(self.dir, ty).min(usize::try_from(len).unwrap_or(usize::MAX));
        self.msg.ty = ty;
        self.msg.untyped = untyped;
        self.msg.len = len;
        self.msg.left = len;
        self.msg.keep = keep;
        self.msg.body.clear();
        self.msg.truncated = keep > 0 && len > keep as u64;
        self.msg.first_ts = self.hdr_ts;
        self.state = State::Body;
        Hdr::Consumed(n)
    }

    /// Reads body bytes; returns how many were consumed (all of `data`, or the message's
    /// rest). An empty body completes at once.
    fn body(&mut self, data: &[u8], ts: u64, st: &mut Stitcher, out: &mut Vec<Exchange>) -> usize {
        let left = self.msg.left;
        if left == self.msg.len && data.len() as u64 >= left {
            // The whole body is here: read it in place.
            let n = left as usize;
            self.msg.left = 0;
            self.complete(&data[..n.min(self.msg.keep)], ts, st, out);
            return n;
        }
        let n = left.min(data.len() as u64) as usize;
        let room = self.msg.keep.saturating_sub(self.msg.body.len());
        self.msg.body.extend_from_slice(&data[..n.min(room)]);
        self.msg.left -= n as u64;
        if self.msg.left == 0 {
            let body = mem::take(&mut self.msg.body);
            self.complete(&body, ts, st, out);
            self.msg.body = body;
        }
        n
    }

    /// The message ended (its last byte seen, or missed, at `ts`).
    fn complete(&mut self, body: &[u8], ts: u64, st: &mut Stitcher, out: &mut Vec<Exchange>) {
        let m = Meta {
            first_ts: self.msg.first_ts,
            last_ts: ts,
            truncated: self.msg.truncated,
        };
        self.state = State::Header;
        match self.dir {
            Dir::Frontend => {
                let msg = match self.msg.untyped {
                    Some(Untyped::Startup) => parse::Frontend::Startup,
                    Some(Untyped::Ssl) => {
                        self.state = State::Start;
                        parse::Frontend::SslRequest
                    }
                    Some(Untyped::GssEnc) => {
                        self.state = State::Start;
                        parse::Frontend::GssEncRequest
                    }
                    Some(Untyped::Cancel) => {
                        // Section 55.2.9: the server answers nothing and closes.
                        self.state = State::Off;
                        parse::Frontend::CancelRequest
                    }
                    None => parse::frontend(self.msg.ty, body),
                };
                st.frontend(msg, m);
            }
            Dir::Backend => st.backend(parse::backend(self.msg.ty, body), m, out),
        }
    }

    /// `missing` bytes after the last pushed ones were not captured.
    fn gap(&mut self, mut missing: u64, ts: u64, st: &mut Stitcher, out: &mut Vec<Exchange>) {
        match self.state {
            State::Off => return,
            State::Resync => {
                self.window.clear();
                self.window_marks.clear();
                self.after_gap = true;
                // Counted once, at the boundary lost; but answers may be lost here too: the
                // requests queued before this gap may have been answered inside it.
                if self.dir == Dir::Backend {
                    st.backend_lost(ts);
                }
                return;
            }
            State::Body => {
                let n = missing.min(self.msg.left);
                self.msg.left -= n;
                missing -= n;
                self.msg.truncated = true;
                // What follows the gap is not contiguous with what is kept: the kept body
                // stays a strict prefix of the real one.
                self.msg.keep = self.msg.body.len();
                if self.msg.left == 0 {
                    let body = mem::take(&mut self.msg.body);
                    self.complete(&body, ts, st, out);
                    self.msg.body = body;
                }
                if missing == 0 || matches!(self.state, State::Off) {
                    return;
                }
            }
            State::Start | State::Header => {}
        }
        // A header (of unknown messages) is in the gap: messages were lost, unless the gap
        // can hold nothing but the rest of the one result being read.
        if !(self.dir == Dir::Backend && st.gap_in_the_only_result()) {
            st.stats.lost_in_gap += 1;
        }
        match self.dir {
            Dir::Frontend => st.frontend_lost(ts),
            Dir::Backend => st.backend_lost(ts),
        }
        self.fresh = false;
        self.enter_resync();
        self.after_gap = true;
    }

    /// The first plausible boundary in `view`.
    ///
    /// A candidate is judged on at most [`MAX_WINDOW`] bytes from it: when fewer are there and
    /// more may come (`!gap_follows`), an open judgement waits for them (`Hold`). So the same
    /// bytes give the same boundary however the chunks were cut.
    fn scan(&self, view: &[u8], gap_follows: bool, chunk_start: bool) -> Scan {
        for j in 0..view.len() {
            let avail = &view[j..];
            let seen = &avail[..avail.len().min(MAX_WINDOW)];
            match chain(self.dir, seen) {
                Chain::Yes => return Scan::Found(j),
                Chain::No => {}
                Chain::Open { hops, header } => {
                    if !gap_follows && avail.len() < MAX_WINDOW {
                        return Scan::Hold(j);
                    }
                    // Consistent up to where the bytes end: at least one whole message, or
                    // a write that starts here and runs into the gap.
                    if hops > 0 || (j == 0 && chunk_start && header) {
                        return Scan::Found(j);
                    }
                }
            }
        }
        Scan::None
    }
}

/// Whether `b` starts with a plausible message boundary: weakly structured messages (short
/// fixed ones, copy data) followed by one whose structure was verified, or [`CHAIN_HOPS`]
/// weak ones (`Yes`); or consistent ones up to where `b` ends (`Open`: `hops` complete
/// ones, then a sane partial one or none; `header`: the first one's header is complete).
/// The judgement of a candidate does not change with bytes after the messages it looked at.
fn chain(dir: Dir, b: &[u8]) -> Chain {
    let mut pos = 0usize;
    let mut hops = 0usize;
    loop {
        let rest = &b[pos..];
        if rest.len() < 5 {
            let sane = rest.first().is_none_or(|&t| parse::known_type(dir, t))
                && rest.get(1).is_none_or(|&l| l == 0);
            return if sane {
                Chain::Open {
                    hops,
                    header: hops > 0,
                }
            } else {
                Chain::No
            };
        }
        let ty = rest[0];
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]);
        if len > RESYNC_MAX_LEN || !parse::header_ok(dir, ty, len, true) {
            return Chain::No;
        }
        let body_len = (len - 4) as usize;
        match parse::body_plausible(dir, ty, &rest[5..], body_len) {
            Plausible::Invalid => return Chain::No,
            Plausible::Partial => return Chain::Open { hops, header: true },
            Plausible::Verified => return Chain::Yes,
            Plausible::Weak => {}
        }
        hops += 1;
        pos += 5 + body_len;
        if hops >= CHAIN_HOPS {
            return Chain::Yes;
        }
    }
}
