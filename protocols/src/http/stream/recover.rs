//! Where a direction's framing breaks: invalid heads, capture gaps and the close. Each keeps
//! what can still be told (a request-line, a status) and keeps the FIFO aligned, then
//! resynchronises.

use std::mem;

use super::{State, Step, Stream};
use crate::http::held::Times;
use crate::http::parse::{self, Parsed};
use crate::http::resync::Dir;
use crate::http::stitch::Stitcher;
use crate::Exchange;

use super::MAX_HEAD;

impl Stream {
    /// The head at the start of `view` is invalid or too large. Decided on its first line only,
    /// so that any cut of the stream decides alike: skip the line, or up to a message start
    /// found inside it; a line that is itself a plausible start still yields what it tells
    /// and is skipped past its anchor.
    pub(super) fn invalid_head(
        &mut self,
        view: &[u8],
        times: &Times,
        st: &mut Stitcher,
        out: &mut Vec<Exchange>,
    ) -> Step {
        let window = &view[..view.len().min(MAX_HEAD + 1)];
        let line = match window.iter().position(|b| *b == b'\n') {
            Some(lf) => &window[..=lf],
            // Wait for the line end (or the size limit) before deciding.
            None if view.len() <= MAX_HEAD => {
                return Step::NeedMore {
                    consumed: 0,
                    scanned: view.len(),
                }
            }
            None => window,
        };
        st.stats.parse_errors += 1;
        self.state = State::Resync;
        match self.dir.find_start(line, 0) {
            Some(s) if s.at == 0 => {
                // Field lines count only when the error lies after the start line: bytes after
                // the error may not have arrived yet in another cut of the stream.
                let fields = match self.dir {
                    Dir::Requests => !matches!(parse::parse_request(line), Parsed::Invalid),
                    Dir::Responses => true,
                };
                let end_ts = times.at(line.len() - 1);
                let cut = Cut {
                    fields,
                    end_ts,
                    truncated: false,
                };
                self.salvage(window, times, cut, st, out);
                Step::Consumed(s.anchor_end)
            }
            Some(s) => Step::Consumed(s.at),
            None => Step::Consumed(line.len()),
        }
    }

    /// Pair what an incomplete head still tells: method and target of a request, status of a
    /// response (whose body is then unknown). Returns false when it tells nothing.
    fn salvage(
        &mut self,
        view: &[u8],
        times: &Times,
        cut: Cut,
        st: &mut Stitcher,
        out: &mut Vec<Exchange>,
    ) -> bool {
        match self.dir {
            Dir::Requests => match parse::salvage_request(view, cut.fields) {
                Some(head) => {
                    st.request(&head, times.at(0));
                    st.request_end(cut.truncated);
                    true
                }
                None => false,
            },
            Dir::Responses => match parse::salvage_status(view) {
                Some(status @ 100..=199) if status != 101 => {
                    st.interim();
                    true
                }
                Some(status) => {
                    st.response_begin(status);
                    st.response_end(cut.end_ts, 0, cut.truncated, out);
                    if status == 101 {
                        st.upgrade();
                        self.state = State::Done;
                    }
                    true
                }
                None => false,
            },
        }
    }

    /// `missing` stream bytes were not captured.
    pub(super) fn gap(
        &mut self,
        mut missing: u64,
        ts: u64,
        st: &mut Stitcher,
        out: &mut Vec<Exchange>,
    ) {
        if let State::Body(left) = &mut self.state {
            let n = (*left).min(missing);
            *left -= n;
            missing -= n;
            self.truncated = true;
            if *left == 0 {
                self.end_message(ts, st, out);
            }
            if missing == 0 {
                return;
            }
        }
        match &mut self.state {
            State::Body(_) | State::Done => {}
            State::Resync => {
                self.gaps_past_boundary += 1;
                self.enter_resync();
            }
            State::UntilClose => {
                self.body_bytes += missing;
                self.truncated = true;
            }
            State::Chunked(c) => {
                self.truncated = true;
                if c.gap(missing) > 0 {
                    // The next chunk-size line or the trailers are gone: the end is unknown.
                    // In a response while no other request waits, the gap can hold nothing
                    // but this response's rest: it is reported, truncated, and nothing was
                    // lost. (A request may have had the next one pipelined in the gap.)
                    self.gaps_past_boundary += 1;
                    self.body_bytes = c.total();
                    if !(self.dir == Dir::Responses && st.nothing_waiting()) {
                        st.stats.lost_in_gap += 1;
                    }
                    self.end_message(ts, st, out);
                    self.enter_resync();
                }
            }
            State::Head => {
                // A head (or the start of one) fell in the gap: its end is unknown. A message
                // that left nothing to salvage still holds its place in the FIFO.
                self.gaps_past_boundary += 1;
                if let Some(salvaged) = self.cut_head(ts, st, out) {
                    st.stats.lost_in_gap += 1;
                    match (salvaged, self.dir) {
                        (true, _) => {}
                        (false, Dir::Requests) => st.lost_request(ts),
                        (false, Dir::Responses) => st.lost_response(),
                    }
                }
                self.enter_resync();
            }
        }
    }

    /// The held head was cut by a gap or the close: pair what it still tells. `None` when the
    /// bytes were invalid (counted as a parse error) rather than a message cut short, else
    /// whether anything was salvaged.
    fn cut_head(
        &mut self,
        end_ts: u64,
        st: &mut Stitcher,
        out: &mut Vec<Exchange>,
    ) -> Option<bool> {
        let held = mem::take(&mut self.held);
        let view = held.unread();
        let invalid = match self.dir {
            Dir::Requests => matches!(parse::parse_request(view), Parsed::Invalid),
            Dir::Responses => matches!(parse::parse_response(view), Parsed::Invalid),
        };
        let cut = Cut {
            fields: true,
            end_ts,
            truncated: true,
        };
        let salvaged = !invalid && self.salvage(view, &held.times(end_ts), cut, st, out);
        self.held = held;
        if invalid {
            st.stats.parse_errors += 1;
            return None;
        }
        Some(salvaged)
    }

    /// The connection closed: end a body read to close; a response whose announced body
    /// never came whole was aborted (its request is reported reset); cut anything else
    /// short; and start over.
    pub(crate) fn finish(&mut self, st: &mut Stitcher, out: &mut Vec<Exchange>) {
        let ts = self.last_ts;
        match &self.state {
            State::UntilClose => self.end_message(ts, st, out),
            State::Body(_) | State::Chunked(_) if self.dir == Dir::Responses => {
                st.response_aborted(out);
            }
            State::Body(_) | State::Chunked(_) => {
                if let State::Chunked(c) = &self.state {
                    self.body_bytes = c.total();
                }
                self.truncated = true;
                self.end_message(ts, st, out);
            }
            State::Head => {
                let unread = self.held.unread();
                if unread.iter().any(|b| *b != b'\r' && *b != b'\n')
                    && self.cut_head(ts, st, out) == Some(false)
                {
                    // Too little of a head to tell anything.
                    st.stats.parse_errors += 1;
                }
            }
            State::Resync | State::Done => {}
        }
        *self = Stream::new(self.dir);
    }
}

/// How a salvaged message was cut.
struct Cut {
    /// Read Host and traceparent from the field lines.
    fields: bool,
    /// Time of the response's last byte seen.
    end_ts: u64,
    truncated: bool,
}
