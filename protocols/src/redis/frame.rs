//! One direction of a Redis connection: frames its byte stream into top-level messages
//! (RESP2/RESP3 values, multibulk and inline commands) and hands each to the [`Stitcher`].
//!
//! The stream is read token by token (a header line, or a blob payload and its CRLF) with a
//! stack of the aggregates still open, so a message of any size costs no more memory than
//! its nesting: blob payloads are skipped, only the first bytes of the few values that
//! pairing looks at (the command name, the first elements of a reply, an error's text) are
//! kept, and only a line cut by a chunk boundary is copied ([`Framer::held`]).
//!
//! Uncaptured (`missing`) bytes advance a blob payload like captured ones, so a cut value
//! keeps the stream in sync and marks its message `truncated`. Where missing bytes hit a
//! line, whose length cannot be known, the message in progress ends there (what is known of
//! it is still reported, `truncated`), the loss is counted in `lost_in_gap`, and the framer
//! resynchronises on the next line that plausibly starts a message
//! ([`resp::plausible_start`]), for replies only while one is due
//! ([`Stitcher::reply_may_come`]). Invalid bytes do the same, counted in `parse_errors`.
//!
//! Every decision depends on the stream's bytes and on where its gaps are, never on where
//! chunks were cut.

use std::mem;

use super::message::Message;
use super::resp;
use super::stitch::Stitcher;
use crate::Exchange;

mod value;

/// Longest header or simple line kept whole (a longer simple string, error, double or big
/// number keeps its first `MAX_LINE` bytes; a longer header is invalid).
pub const MAX_LINE: usize = 4096;
/// Longest inline command (Redis's `PROTO_INLINE_MAX_SIZE`: longer ones are a protocol error).
pub const MAX_INLINE: usize = 64 * 1024;
/// Deepest nesting of aggregates accepted.
pub const MAX_DEPTH: usize = 64;
/// Bytes of an error's text kept (`-` line or `!` blob).
pub const MAX_TEXT: usize = 4096;

/// Which way the bytes go: commands (client to server) or replies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    Requests,
    Responses,
}

/// Where the payload of the blob being read goes.
#[derive(Clone, Copy, Debug)]
enum Cap {
    None,
    Elem(usize),
    Text,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At a line, or inside one whose first bytes are held.
    Line,
    /// Inside a simple line longer than [`MAX_LINE`]: its first bytes are held, the rest
    /// is skipped (`resync`: the line may start a message, see `Resync`).
    LongLine { resync: bool },
    /// Blob payload bytes still to come.
    Body { left: u64 },
    /// The CRLF after a blob payload; `seen` of its two bytes so far.
    Crlf { seen: u8 },
    /// Out of sync, at the start of a line: reading it to see whether it starts a message.
    Resync,
    /// Out of sync inside a line: skipping to its end.
    Skip,
}

/// An aggregate still open.
#[derive(Clone, Copy, Debug)]
struct Open {
    /// Values it holds (two per map or attribute entry).
    len: u64,
    done: u64,
    /// Ends with `.` rather than after `len` values.
    streamed: bool,
    /// An attribute: it describes the value that follows and is not one itself.
    attribute: bool,
}

/// Framing state of one direction.
pub(crate) struct Framer {
    dir: Dir,
    state: State,
    /// The start of a line that continues in a later chunk.
    held: Vec<u8>,
    /// Capture time of the first held byte.
    held_ts: u64,
    stack: Vec<Open>,
    msg: Message,
    /// A message has begun (its first line was read).
    started: bool,
    /// The message began on a line found while resynchronising: if it turns out invalid, it
    /// was not a message start, and nothing is counted.
    tentative: bool,
    /// Nothing of this direction seen yet.
    fresh: bool,
    /// Inside a streamed string (`$?`): `;len` chunks until `;0`.
    streamed_blob: bool,
    cap: Cap,
    /// Capture time of the last chunk.
    last_ts: u64,
}

impl Framer {
    pub(crate) fn new(dir: Dir) -> Framer {
        Framer {
            dir,
            state: State::Resync,
            held: Vec::new(),
            held_ts: 0,
            stack: Vec::new(),
            msg: Message::new(),
            started: false,
            tentative: false,
            fresh: true,
            streamed_blob: false,
            cap: Cap::None,
            last_ts: 0,
        }
    }

    /// Feed one chunk: `data` captured, then `missing` bytes not captured.
    pub(crate) fn push(
        &mut self,
        data: &[u8],
        ts: u64,
        missing: u64,
        st: &mut Stitcher,
        out: &mut Vec<Exchange>,
    ) {
        if !data.is_empty() || missing > 0 {
            self.last_ts = ts;
        }
        let mut i = 0;
        // Each pass consumes at least one byte, except a failed CRLF, which moves to `Skip`
        // (a state that consumes) without consuming.
        while i < data.len() {
            let rest = &data[i..];
            i += match self.state {
                State::Body { left } => {
                    let n = left.min(rest.len() as u64) as usize;
                    self.payload(&rest[..n]);
                    if n as u64 != left {
                        self.state = State::Body {
                            left: left - n as u64,
                        };
                        n
                    } else if rest.get(n..n + 2) == Some(b"\r\n") {
                        // The CRLF is here whole: read with the payload, without two more
                        // passes through `Crlf` (a blob is most of the tokens of a command).
                        self.blob_done(ts, st, out);
                        n + 2
                    } else {
                        self.state = State::Crlf { seen: 0 };
                        n
                    }
                }
                State::Crlf { seen } => {
                    if rest[0] != b"\r\n"[usize::from(seen)] {
                        self.invalid(false, ts, st, out);
                        0
                    } else {
                        if seen == 0 {
                            self.state = State::Crlf { seen: 1 };
                        } else {
                            self.blob_done(ts, st, out);
                        }
                        1
                    }
                }
                State::Skip => match find_nl(rest) {
                    Some(p) => {
                        self.state = State::Resync;
                        p + 1
                    }
                    None => rest.len(),
                },
                State::Line | State::LongLine { .. } | State::Resync => match find_nl(rest) {
                    Some(p) => {
                        self.line(&rest[..p], ts, st, out);
                        p + 1
                    }
                    None => {
                        self.hold(rest, ts, st, out);
                        rest.len()
                    }
                },
            };
        }
        if missing > 0 {
            self.gap(missing, ts, st, out);
        }
    }

    /// The connection closed: a reply still being read ends here, `truncated`. A partial
    /// command is dropped: the server never read it whole, so never ran it.
    pub(crate) fn close(&mut self, st: &mut Stitcher, out: &mut Vec<Exchange>) {
        let in_line = matches!(self.state, State::Line | State::LongLine { resync: false })
            && !self.held.is_empty();
        if self.dir == Dir::Responses && (self.started || in_line) {
            self.cut_held();
            self.partial(self.last_ts, st, out);
        }
        *self = Framer::new(self.dir);
    }

    /// How many bytes a line starting with `first` may have.
    fn limit(&self, first: Option<u8>) -> usize {
        if self.dir == Dir::Requests && self.stack.is_empty() && first != Some(b'*') {
            MAX_INLINE
        } else {
            MAX_LINE
        }
    }

    /// A reply line that may be longer than [`MAX_LINE`] (its first bytes are enough).
    fn long_ok(&self, first: u8) -> bool {
        self.dir == Dir::Responses && matches!(first, b'+' | b'-' | b',' | b'(')
    }

    /// Keep the start of a line that continues in the next chunk.
    fn hold(&mut self, bytes: &[u8], ts: u64, st: &mut Stitcher, out: &mut Vec<Exchange>) {
        if self.held.is_empty() {
            self.held_ts = ts;
        }
        if let State::LongLine { .. } = self.state {
            return;
        }
        let first = self.held.first().or(bytes.first()).copied();
        let limit = self.limit(first);
        if self.held.len() + bytes.len() <= limit {
            self.held.extend_from_slice(bytes);
        } else if first.is_some_and(|f| self.long_ok(f)) {
            let room = limit.saturating_sub(self.held.len());
            self.held.extend_from_slice(&bytes[..room.min(bytes.len())]);
            self.state = State::LongLine {
                resync: self.state == State::Resync,
            };
        } else if self.state == State::Resync {
            self.held.clear();
            self.state = State::Skip;
        } else {
            self.held.clear();
            self.invalid(false, ts, st, out);
        }
    }

    /// A line ends in this chunk: `tail` is its part here, before the `\n`.
    fn line(&mut self, tail: &[u8], ts: u64, st: &mut Stitcher, out: &mut Vec<Exchange>) {
        let resync = matches!(self.state, State::Resync | State::LongLine { resync: true });
        let mut long = matches!(self.state, State::LongLine { .. });
        if self.held.is_empty() && !long {
            let limit = self.limit(tail.first().copied());
            if tail.len() <= limit {
                return self.whole_line(tail, false, resync, ts, ts, st, out);
            }
            if self.long_ok(tail[0]) {
                return self.whole_line(&tail[..limit], true, resync, ts, ts, st, out);
            }
            if resync {
                return;
            }
            return self.invalid(true, ts, st, out);
        }
        let mut buf = mem::take(&mut self.held);
        if !long {
            let limit = self.limit(buf.first().copied());
            if buf.len() + tail.len() <= limit {
                buf.extend_from_slice(tail);
            } else if self.long_ok(buf[0]) {
                let room = limit.saturating_sub(buf.len());
                buf.extend_from_slice(&tail[..room.min(tail.len())]);
                long = true;
            } else if resync {
                buf.clear();
                self.held = buf;
                return;
            } else {
                buf.clear();
                self.held = buf;
                return self.invalid(true, ts, st, out);
            }
        }
        self.whole_line(&buf, long, resync, self.held_ts, ts, st, out);
        buf.clear();
        if self.held.capacity() == 0 {
            self.held = buf;
        }
    }

    /// A whole line (without its `\n`; `long`: only its first bytes) that began at `line_ts`;
    /// `resync`: out of sync, it may start a message.
    #[allow(clippy::too_many_arguments)]
    fn whole_line(
        &mut self,
        line: &[u8],
        long: bool,
        resync: bool,
        line_ts: u64,
        ts: u64,
        st: &mut Stitcher,
        out: &mut Vec<Exchange>,
    ) {
        let inline_ok = self.dir == Dir::Requests && self.stack.is_empty();
        if resync {
            let fresh = mem::replace(&mut self.fresh, false);
            let requests = self.dir == Dir::Requests;
            let content = if long {
                Some(line)
            } else {
                line.strip_suffix(b"\r")
            };
            let plausible = match content {
                Some(c) => resp::plausible_start(requests, c, fresh),
                None => requests && resp::plausible_start(true, line, fresh),
            };
            // After a loss, a reply line is only read as the start of a reply when some
            // reply is due: the rest of a reply cut by the capture (a large nested one is
            // mostly valid header lines) would otherwise make one unmatched reply per line.
            let due = requests || fresh || st.reply_may_come(line.first().copied());
            if !plausible || !due {
                self.state = State::Resync;
                return;
            }
            self.tentative = true;
        }
        self.state = State::Line;
        self.fresh = false;
        let content = match line.strip_suffix(b"\r") {
            Some(c) => c,
            None if long || (inline_ok && line.first() != Some(&b'*')) => line,
            None => return self.invalid(true, ts, st, out),
        };
        if !self.started {
            self.begin(line_ts);
        }
        match self.dir {
            Dir::Requests => self.request_line(content, ts, st, out),
            Dir::Responses => self.reply_line(content, ts, st, out),
        }
    }

    fn begin(&mut self, ts: u64) {
        let m = &mut self.msg;
        m.kind = 0;
        m.inline = false;
        m.count = 0;
        for e in &mut m.elems {
            e.reset(0);
        }
        m.text.clear();
        m.first_ts = ts;
        m.last_ts = ts;
        m.truncated = false;
        self.started = true;
    }

    /// Missing bytes follow the captured ones.
    fn gap(&mut self, mut missing: u64, ts: u64, st: &mut Stitcher, out: &mut Vec<Exchange>) {
        // At the very start of a stream, the first bytes start a message if they look like
        // one: the connection was seen from its start, or from the first recognised message.
        let fresh_start = mem::replace(&mut self.fresh, false)
            && self.state == State::Resync
            && (self.held.is_empty() || {
                let held = self.held.strip_suffix(b"\r").unwrap_or(&self.held);
                resp::plausible_start(self.dir == Dir::Requests, held, true)
            });
        if fresh_start {
            self.state = State::Line;
        }
        while missing > 0 {
            match self.state {
                State::Body { left } => {
                    let n = left.min(missing);
                    missing -= n;
                    self.msg.truncated = true;
                    if let Cap::Elem(i) = self.cap {
                        self.msg.elems[i].gap = true;
                    }
                    self.state = if n == left {
                        State::Crlf { seen: 0 }
                    } else {
                        State::Body { left: left - n }
                    };
                }
                State::Crlf { seen } => {
                    let need = 2 - u64::from(seen);
                    if missing >= need {
                        missing -= need;
                        self.blob_done(ts, st, out);
                    } else {
                        missing = 0;
                        self.state = State::Crlf { seen: 1 };
                    }
                }
                State::Line | State::LongLine { resync: false } => {
                    // A line of unknown length: the message in progress (or the next one) is
                    // cut here, and whatever followed it in the gap is lost. A reply cut while
                    // no other is due had nothing after it to lose: it is reported, truncated.
                    let alone = self.dir == Dir::Responses && self.started && st.one_reply_due();
                    if !alone {
                        st.stats.lost_in_gap += 1;
                    }
                    self.cut_held();
                    self.partial(ts, st, out);
                    self.lost(ts, st);
                    self.resync();
                    return;
                }
                State::Resync | State::Skip | State::LongLine { resync: true } => {
                    self.held.clear();
                    self.state = State::Resync;
                    return;
                }
            }
        }
    }

    /// Invalid bytes: the message in progress ends there; resynchronise at the next line
    /// (`line_read`: the invalid line was read to its end) or after the next line end.
    fn invalid(&mut self, line_read: bool, ts: u64, st: &mut Stitcher, out: &mut Vec<Exchange>) {
        if !self.tentative {
            st.stats.parse_errors += 1;
            self.partial(ts, st, out);
            self.lost(ts, st);
        }
        self.resync();
        if !line_read {
            self.state = State::Skip;
        }
    }

    /// Sync is lost: commands may have been missed (their replies must not pair with later
    /// commands), replies may have been missed.
    fn lost(&mut self, ts: u64, st: &mut Stitcher) {
        match self.dir {
            Dir::Requests => st.lost_requests(ts),
            Dir::Responses => st.lost_replies(),
        }
    }

    fn resync(&mut self) {
        self.stack.clear();
        self.held.clear();
        self.started = false;
        self.tentative = false;
        self.streamed_blob = false;
        self.cap = Cap::None;
        self.state = State::Resync;
    }
}

fn find_nl(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}
