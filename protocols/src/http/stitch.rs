//! Pairing of HTTP/1 requests and responses: first in, first out (RFC 9112 section 9.3.2:
//! a server answers pipelined requests in the order it received them).
//!
//! The stitcher owns the queue of requests still waiting for a response. The response framer
//! asks it for the method of the request at the head of the queue, because framing depends on
//! it (a response to HEAD has no body, a 2xx to CONNECT opens a tunnel).

use std::collections::VecDeque;

use super::parse::{owned_lossy, MethodKind, RequestHead};
use super::route::route_template;
use super::trace::parse_traceparent;
use super::{method_text, HttpRequest, HttpResponse};
use crate::{Exchange, Outcome, ParseStats, Request, Response, TraceContext};

/// Requests that may wait for a response on one connection; more are dropped and counted in
/// [`ParseStats::pending_overflow`].
pub const MAX_PENDING: usize = 1024;

/// A request waiting for its response.
#[derive(Debug)]
struct Pending {
    seq: u64,
    ts_ns: u64,
    method: MethodKind,
    /// `None`: a request whose start was lost in a capture gap. It holds its place in the
    /// queue so that its response does not pair with the next request.
    request: Option<HttpRequest>,
    trace: Option<TraceContext>,
    truncated: bool,
}

/// The response being read, with the request it answers (`None`: unmatched).
#[derive(Debug)]
struct Answering {
    request: Option<Pending>,
    status: u16,
}

/// Pairing state of one connection.
#[derive(Debug, Default)]
pub(crate) struct Stitcher {
    pending: VecDeque<Pending>,
    answering: Option<Answering>,
    next_seq: u64,
    /// The request whose body is being read.
    reading: Option<u64>,
    upgraded: bool,
    pub(crate) stats: ParseStats,
}

impl Stitcher {
    /// A request head was read; its first byte was seen at `ts_ns`.
    pub(crate) fn request(&mut self, head: &RequestHead<'_>, ts_ns: u64) {
        if self.pending.len() >= MAX_PENDING {
            // Counted as `enqueue` would, without building a request only to drop it.
            self.reading = None;
            self.stats.pending_overflow += 1;
            return;
        }
        let request = HttpRequest {
            method: method_text(head.method),
            path: head.target.to_owned(),
            host: head.host.map(owned_lossy),
            route: Some(route_template(head.target)),
        };
        let trace = head.traceparent.and_then(parse_traceparent);
        self.enqueue(MethodKind::of(head.method), Some(request), trace, ts_ns);
    }

    /// A request started in a capture gap (counted in `lost_in_gap` by the caller): keep its
    /// place in the queue.
    pub(crate) fn lost_request(&mut self, ts_ns: u64) {
        self.enqueue(MethodKind::Other, None, None, ts_ns);
    }

    fn enqueue(
        &mut self,
        method: MethodKind,
        request: Option<HttpRequest>,
        trace: Option<TraceContext>,
        ts_ns: u64,
    ) {
        self.reading = None;
        if self.pending.len() >= MAX_PENDING {
            self.stats.pending_overflow += 1;
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.reading = Some(seq);
        self.pending.push_back(Pending {
            seq,
            ts_ns,
            method,
            request,
            trace,
            truncated: false,
        });
    }

    /// The request being read ended (`truncated`: some of it was not captured).
    pub(crate) fn request_end(&mut self, truncated: bool) {
        let Some(seq) = self.reading.take() else {
            return;
        };
        if !truncated {
            return;
        }
        // Usually still waiting; it may already be answered (a server may answer early).
        let answered = self.answering.as_mut().and_then(|a| a.request.as_mut());
        if let Some(p) = self
            .pending
            .iter_mut()
            .rev()
            .chain(answered)
            .find(|p| p.seq == seq)
        {
            p.truncated = true;
        }
    }

    /// Method of the request the next response answers.
    pub(crate) fn front_method(&self) -> Option<MethodKind> {
        self.pending.front().map(|p| p.method)
    }

    /// An interim (1xx) response: the request keeps waiting for its final response.
    pub(crate) fn interim(&mut self) {
        if self.pending.is_empty() {
            self.stats.unmatched_responses += 1;
        }
    }

    /// No request waits for a response (besides the one being answered).
    pub(crate) fn nothing_waiting(&self) -> bool {
        self.pending.is_empty()
    }

    /// A response started in a capture gap (counted in `lost_in_gap` by the caller): it
    /// answered the oldest waiting request, which is dropped so the next response pairs right.
    pub(crate) fn lost_response(&mut self) {
        self.pending.pop_front();
    }

    /// Responses were lost with the calls that carried them, how many is unknown: every
    /// request still waiting may have been answered there. They are forgotten, each counted
    /// in `lost_in_gap`, so that later answers pair with later requests.
    pub(crate) fn forget_waiting(&mut self) {
        self.stats.lost_in_gap += self.pending.len() as u64;
        self.pending.clear();
    }

    /// A final response head was read: it answers the oldest waiting request.
    pub(crate) fn response_begin(&mut self, status: u16) {
        let request = self.pending.pop_front();
        if request.is_none() {
            self.stats.unmatched_responses += 1;
        }
        debug_assert!(self.answering.is_none(), "response begun twice");
        self.answering = Some(Answering { request, status });
    }

    /// The response ended with its last byte seen at `ts_ns`.
    pub(crate) fn response_end(
        &mut self,
        ts_ns: u64,
        body_bytes: u64,
        truncated: bool,
        out: &mut Vec<Exchange>,
    ) {
        let Some(Answering {
            request: Some(req),
            status,
        }) = self.answering.take()
        else {
            return;
        };
        let Some(request) = req.request else {
            return;
        };
        out.push(Exchange {
            req_ts_ns: req.ts_ns,
            resp_ts_ns: Some(ts_ns),
            request: Request::Http(request),
            response: Some(Response::Http(HttpResponse { status, body_bytes })),
            outcome: Outcome::Complete,
            truncated: req.truncated || truncated,
            trace: req.trace,
        });
    }

    /// The connection closed in the middle of a response body (the server died or aborted):
    /// the request it answered is reported as reset, without the partial response.
    pub(crate) fn response_aborted(&mut self, out: &mut Vec<Exchange>) {
        if let Some(Answering {
            request: Some(req), ..
        }) = self.answering.take()
        {
            out.extend(unanswered(req, Outcome::Reset));
        }
    }

    /// The connection switched protocols (101) or became a tunnel (CONNECT).
    pub(crate) fn upgrade(&mut self) {
        self.upgraded = true;
    }

    pub(crate) fn upgraded(&self) -> bool {
        self.upgraded
    }

    /// Requests waiting longer than `timeout_ns` at `now_ns` are answered by a timeout. The
    /// queue is in arrival order, so the expired ones are at its front.
    pub(crate) fn expire(&mut self, now_ns: u64, timeout_ns: u64, out: &mut Vec<Exchange>) {
        while let Some(p) = self.pending.front() {
            if now_ns.saturating_sub(p.ts_ns) <= timeout_ns {
                break;
            }
            if let Some(e) = self
                .pending
                .pop_front()
                .and_then(|p| unanswered(p, Outcome::Timeout))
            {
                out.push(e);
            }
        }
    }

    /// The connection closed: every request still waiting is reset.
    pub(crate) fn close(&mut self, out: &mut Vec<Exchange>) {
        out.extend(
            self.pending
                .drain(..)
                .filter_map(|p| unanswered(p, Outcome::Reset)),
        );
        self.answering = None;
        self.reading = None;
        self.upgraded = false;
    }
}

/// The exchange of a request that got no response (none for a lost request).
fn unanswered(p: Pending, outcome: Outcome) -> Option<Exchange> {
    Some(Exchange {
        req_ts_ns: p.ts_ns,
        resp_ts_ns: None,
        request: Request::Http(p.request?),
        response: None,
        outcome,
        truncated: p.truncated,
        trace: p.trace,
    })
}
