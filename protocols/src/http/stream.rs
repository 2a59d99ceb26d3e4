//! One direction of an HTTP/1 connection: frames its byte stream into messages (RFC 9112
//! section 6) and reports them to the [`Stitcher`].
//!
//! Bytes are parsed where they lie in the pushed chunk; only a head (or a resynchronisation
//! window) that continues in a later chunk is copied into [`Held`]. Body bytes are skipped,
//! never copied. Uncaptured (`missing`) bytes advance the framing like captured ones
//! ([`recover`] handles them, invalid heads and the close).
//!
//! Every decision depends only on the stream's bytes, never on where chunks were cut: the
//! same stream pushed whole or byte by byte gives the same exchanges and counters.

use std::mem;

use super::body::{Chunked, Feed};
use super::held::{Held, Times};
use super::parse::{self, Framing, Parsed};
use super::resync::Dir;
use super::stitch::Stitcher;
use crate::Exchange;

mod recover;

/// Largest message head accepted (RFC 9112 section 2.3 leaves the limit to the recipient;
/// common servers use 8-16 KiB). A larger head is a parse error.
pub const MAX_HEAD: usize = 16 * 1024;
/// Bytes appended to a resynchronisation window at a time.
const RESYNC_APPEND: usize = 8 * 1024;

#[derive(Debug)]
enum State {
    /// Expecting (or accumulating) a message head.
    Head,
    /// Content-Length body, bytes left.
    Body(u64),
    Chunked(Chunked),
    /// Response body delimited by the close of the connection.
    UntilClose,
    /// Skipping bytes up to the next plausible message start.
    Resync,
    /// The connection left HTTP/1 (101, CONNECT tunnel): bytes are ignored.
    Done,
}

/// What one step did with the bytes it was shown.
enum Step {
    /// Consumed this many bytes (zero only together with a change of state).
    Consumed(usize),
    /// Consumed this many; the rest must be kept and shown again with more bytes. `scanned`:
    /// how much of the rest this state has already searched.
    NeedMore { consumed: usize, scanned: usize },
}

/// Framing state of one direction.
pub(crate) struct Stream {
    dir: Dir,
    state: State,
    held: Held,
    /// Bytes of the held ones that the current state has searched already.
    scanned: usize,
    /// Body bytes of the current message (declared or decoded).
    body_bytes: u64,
    /// Some of the current message was not captured.
    truncated: bool,
    /// Time of the last chunk that carried bytes.
    last_ts: u64,
    /// Gaps that reached where a message could start (past a known body end, in a head or
    /// while resynchronising): how many messages they held is unknown.
    gaps_past_boundary: u64,
}

impl Stream {
    pub(crate) fn new(dir: Dir) -> Stream {
        Stream {
            dir,
            state: State::Head,
            held: Held::default(),
            scanned: 0,
            body_bytes: 0,
            truncated: false,
            last_ts: 0,
            gaps_past_boundary: 0,
        }
    }

    /// See the field: compared before and after a loss to know whether messages may have
    /// been lost whole.
    pub(crate) fn gaps_past_boundary(&self) -> u64 {
        self.gaps_past_boundary
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
        let mut input = data;
        // Each pass consumes bytes, appends input to the held ones, or changes state before a
        // pass that consumes (see `Step`), so the passes are bounded by the bytes involved.
        let mut budget = 8 * (data.len() + self.held.unread().len()) + 64;
        while budget > 0 {
            budget -= 1;
            if !self.held.is_empty() {
                // Held bytes come first; a step never touches `held` itself.
                let held = mem::take(&mut self.held);
                let step = self.step(held.unread(), &held.times(ts), st, out);
                debug_assert!(self.held.is_empty());
                self.held = held;
                match step {
                    Step::Consumed(n) => {
                        self.held.consume(n);
                        self.scanned = 0;
                    }
                    Step::NeedMore { consumed, scanned } => {
                        self.held.consume(consumed);
                        self.scanned = scanned;
                        if input.is_empty() {
                            break;
                        }
                        let room = match self.state {
                            State::Head => (MAX_HEAD + 1).saturating_sub(self.held.unread().len()),
                            _ => RESYNC_APPEND,
                        };
                        let k = room.clamp(1, input.len());
                        self.held.append(&input[..k], ts);
                        input = &input[k..];
                    }
                }
            } else {
                self.held.clear();
                self.scanned = 0;
                if input.is_empty() {
                    break;
                }
                match self.step(input, &Times::fixed(ts), st, out) {
                    Step::Consumed(n) => input = &input[n..],
                    Step::NeedMore { consumed, scanned } => {
                        self.held.append(&input[consumed..], ts);
                        self.scanned = scanned;
                        input = &[];
                    }
                }
            }
        }
        if budget == 0 {
            // Unreachable by the argument above; never spin if it is wrong.
            debug_assert!(false, "http stream made no progress");
            st.stats.parse_errors += 1;
            self.enter_resync();
        }
        if missing > 0 {
            self.gap(missing, ts, st, out);
        }
    }

    /// One state-machine step over `view` (the unconsumed bytes, non-empty).
    fn step(
        &mut self,
        view: &[u8],
        times: &Times,
        st: &mut Stitcher,
        out: &mut Vec<Exchange>,
    ) -> Step {
        match &mut self.state {
            State::Head => self.step_head(view, times, st, out),
            State::Resync => match self.dir.find_start(view, self.scanned) {
                Some(start) => {
                    self.state = State::Head;
                    Step::Consumed(start.at)
                }
                None => {
                    let (keep, scanned) = self.dir.keep(view);
                    Step::NeedMore {
                        consumed: view.len() - keep,
                        scanned,
                    }
                }
            },
            State::Body(left) => {
                let n = (*left).min(view.len() as u64);
                *left -= n;
                let n = n as usize;
                if *left == 0 {
                    self.end_message(times.at(n.saturating_sub(1)), st, out);
                }
                Step::Consumed(n)
            }
            State::Chunked(c) => match c.feed(view) {
                Feed::More => {
                    self.body_bytes = c.total();
                    Step::Consumed(view.len())
                }
                Feed::Done(n) => {
                    self.body_bytes = c.total();
                    self.end_message(times.at(n - 1), st, out);
                    Step::Consumed(n)
                }
                Feed::Invalid(n) => {
                    self.body_bytes = c.total();
                    st.stats.parse_errors += 1;
                    self.end_message(times.at(n.saturating_sub(1)), st, out);
                    self.state = State::Resync;
                    Step::Consumed(n)
                }
            },
            State::UntilClose => {
                self.body_bytes += view.len() as u64;
                Step::Consumed(view.len())
            }
            State::Done => Step::Consumed(view.len()),
        }
    }

    fn step_head(
        &mut self,
        view: &[u8],
        times: &Times,
        st: &mut Stitcher,
        out: &mut Vec<Exchange>,
    ) -> Step {
        // Parsed again on every chunk that extends it, so that an invalid head is noticed in
        // the chunk that makes it invalid, however the stream was cut (a head fed byte by
        // byte costs quadratic time, bounded by MAX_HEAD).
        let window = &view[..view.len().min(MAX_HEAD)];
        let parsed = match self.dir {
            Dir::Requests => match parse::parse_request(window) {
                Parsed::Complete(head, len) => {
                    self.on_request(&head, times.at(0), st);
                    return Step::Consumed(len);
                }
                Parsed::Partial => Parsed::Partial,
                Parsed::Invalid => Parsed::Invalid,
            },
            Dir::Responses => parse::parse_response(window),
        };
        match parsed {
            Parsed::Complete(head, len) => {
                self.on_response(&head, times.at(len - 1), st, out);
                Step::Consumed(len)
            }
            Parsed::Partial if view.len() <= MAX_HEAD => Step::NeedMore {
                consumed: 0,
                scanned: view.len(),
            },
            _ => self.invalid_head(view, times, st, out),
        }
    }

    fn on_request(&mut self, head: &parse::RequestHead<'_>, ts: u64, st: &mut Stitcher) {
        st.request(head, ts);
        match head.framing {
            Framing::Length(n) => self.begin_body(State::Body(n), n),
            Framing::Chunked => self.begin_body(State::Chunked(Chunked::new()), 0),
            Framing::Invalid => {
                st.stats.parse_errors += 1;
                st.request_end(false);
                self.state = State::Resync;
            }
            _ => st.request_end(false),
        }
    }

    fn on_response(
        &mut self,
        head: &parse::ResponseHead,
        end_ts: u64,
        st: &mut Stitcher,
        out: &mut Vec<Exchange>,
    ) {
        match head.framing(st.front_method()) {
            Framing::Interim => st.interim(),
            Framing::Tunnel => {
                st.response_begin(head.status);
                st.response_end(end_ts, 0, false, out);
                st.upgrade();
                self.state = State::Done;
            }
            Framing::Empty => {
                st.response_begin(head.status);
                st.response_end(end_ts, 0, false, out);
            }
            Framing::Length(n) => {
                st.response_begin(head.status);
                self.begin_body(State::Body(n), n);
            }
            Framing::Chunked => {
                st.response_begin(head.status);
                self.begin_body(State::Chunked(Chunked::new()), 0);
            }
            Framing::UntilClose => {
                st.response_begin(head.status);
                self.begin_body(State::UntilClose, 0);
            }
            Framing::Invalid => {
                // The status is known, the body's extent is not.
                st.stats.parse_errors += 1;
                st.response_begin(head.status);
                st.response_end(end_ts, 0, false, out);
                self.state = State::Resync;
            }
        }
    }

    fn begin_body(&mut self, state: State, body_bytes: u64) {
        self.state = state;
        self.body_bytes = body_bytes;
        self.truncated = false;
    }

    /// The current message ended with its last byte seen at `ts`.
    fn end_message(&mut self, ts: u64, st: &mut Stitcher, out: &mut Vec<Exchange>) {
        match self.dir {
            Dir::Requests => st.request_end(self.truncated),
            Dir::Responses => st.response_end(ts, self.body_bytes, self.truncated, out),
        }
        self.state = State::Head;
        self.body_bytes = 0;
        self.truncated = false;
    }

    /// Stop parsing: the connection left HTTP/1.
    pub(crate) fn stop(&mut self) {
        self.held.clear();
        self.state = State::Done;
    }

    /// Skip to the next message start (unless the connection left HTTP/1).
    fn enter_resync(&mut self) {
        self.held.clear();
        self.scanned = 0;
        if !matches!(self.state, State::Done) {
            self.state = State::Resync;
        }
    }
}
