//! HTTP/1.x (RFC 9112): message framing with httparse for heads, FIFO pairing.
//!
//! - `parse`: heads, header fields, body framing (RFC 9112 sections 2-6);
//! - `body`: the chunked coding (RFC 9112 section 7.1);
//! - `resync`: finding the next message start after garbage or a capture gap;
//! - `held`: bytes kept across chunks, with their capture times;
//! - `stream`: one direction's framing state machine, over captured and missing bytes;
//! - `stitch`: request/response pairing (RFC 9112 section 9.3.2);
//! - `trace`: the W3C `traceparent` header;
//! - `route`: low-cardinality route templates ([`route_template`]).

use std::borrow::Cow;

use serde::Serialize;

use crate::{Chunk, ConnParser, Exchange, ParseStats, Side};

mod body;
mod held;
mod parse;
mod resync;
mod route;
mod stitch;
mod stream;
mod trace;

pub use route::route_template;
pub use stitch::MAX_PENDING;
pub use stream::MAX_HEAD;
pub use trace::parse_traceparent;

use resync::Dir;
use stitch::Stitcher;
use stream::Stream;

/// `request` of an HTTP record (record-schema.md).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HttpRequest {
    /// The method as sent; one RFC 9110 or RFC 5789 defines is borrowed, not allocated
    /// ([`method_text`]).
    pub method: Cow<'static, str>,
    /// The request-target exactly as sent, query string included (RFC 9112 section 3.2).
    /// When a capture gap cut the request-line, the captured prefix (the exchange is then
    /// `truncated`).
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Low-cardinality template of the path, e.g. `/users/{id}` ([`route_template`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
}

/// The methods RFC 9110 (section 9) and RFC 5789 define: most requests use one of them, and
/// their records then borrow the text instead of allocating it.
pub const STANDARD_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// `method` as a record holds it: borrowed when it is one of [`STANDARD_METHODS`] (the
/// comparison is case-sensitive, as methods are), owned otherwise.
pub fn method_text(method: &str) -> Cow<'static, str> {
    match STANDARD_METHODS.iter().find(|m| **m == method) {
        Some(m) => Cow::Borrowed(m),
        None => Cow::Owned(method.to_owned()),
    }
}

/// `response` of an HTTP record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HttpResponse {
    /// Status code (RFC 9110 section 15).
    pub status: u16,
    /// From Content-Length or the decoded chunk sizes (RFC 9112 sections 6.3 and 7.1.3); 0
    /// for responses without content (HEAD, 204, 304, RFC 9110 section 6.4.1).
    pub body_bytes: u64,
}

/// HTTP/1.0 and HTTP/1.1 on one connection (RFC 9112): frames both directions and pairs
/// responses with requests first in, first out (RFC 9112 section 9.3.2).
///
/// - Bodies are delimited per RFC 9112 section 6.3: Content-Length, chunked (trailers
///   skipped), none for HEAD/1xx/204/304, to the close of the connection otherwise.
/// - Interim 1xx responses are skipped (RFC 9110 section 15.2); 101 Switching Protocols and a
///   2xx answer to CONNECT end HTTP parsing on the connection.
/// - Uncaptured bytes (`Chunk::missing`) inside a body (chunk data and the CRLF after it
///   included) are skipped like captured ones and mark the exchange `truncated`. Where they
///   hit a head, a chunk-size line or trailers, the
///   message boundary is lost: counted in `lost_in_gap` (not for a response's chunk-size line
///   while no other request waits: the gap held only its rest), and the direction resynchronises at
///   the next request-line or status-line. A head cut that way still yields what it tells
///   (method and target, status) as a truncated exchange.
/// - Invalid bytes count one `parse_errors` per resynchronisation.
/// - At most [`MAX_PENDING`] requests wait on one connection; heads over [`MAX_HEAD`] bytes
///   are invalid.
pub struct HttpParser {
    requests: Stream,
    responses: Stream,
    stitch: Stitcher,
}

impl HttpParser {
    /// A parser for a new connection, expecting a request-line from the client and a
    /// status-line from the server first (RFC 9112 sections 3 and 4).
    pub fn new() -> Self {
        HttpParser {
            requests: Stream::new(Dir::Requests),
            responses: Stream::new(Dir::Responses),
            stitch: Stitcher::default(),
        }
    }
}

impl Default for HttpParser {
    fn default() -> Self {
        Self::new()
    }
}

impl ConnParser for HttpParser {
    fn push(&mut self, chunk: Chunk<'_>, out: &mut Vec<Exchange>) {
        let stream = match chunk.side {
            Side::Client => &mut self.requests,
            Side::Server => &mut self.responses,
        };
        stream.push(
            chunk.data,
            chunk.ts_ns,
            chunk.missing,
            &mut self.stitch,
            out,
        );
        if self.stitch.upgraded() {
            self.requests.stop();
            self.responses.stop();
        }
    }

    /// A response read to close ends complete (the close is its end, RFC 9112 section 6.3
    /// item 8), whether `reset` or not; a response cut inside a Content-Length or chunked
    /// body ends `truncated`; then every request still waiting is reset.
    fn close(&mut self, _ts_ns: u64, _reset: bool, out: &mut Vec<Exchange>) {
        self.requests.finish(&mut self.stitch, out);
        self.responses.finish(&mut self.stitch, out);
        self.stitch.close(out);
    }

    fn expire(&mut self, now_ns: u64, timeout_ns: u64, out: &mut Vec<Exchange>) {
        self.stitch.expire(now_ns, timeout_ns, out);
    }

    /// A loss of whole calls is a gap; when one swallowed a response's start, how many
    /// responses it held is unknown, so every request still waiting is forgotten (each
    /// counted in `lost_in_gap`) rather than paired with a later answer. Losses of both
    /// directions at one point should be given requests first, so that a request the loss
    /// swallowed (a placeholder in the queue) goes too.
    ///
    /// Whether a start was swallowed is decided by where the gap fell, not by what it cost
    /// the framing: a loss that comes while the responses are still resynchronising after an
    /// earlier one swallows answers just the same.
    fn lost(&mut self, side: Side, ts_ns: u64, bytes: u64, out: &mut Vec<Exchange>) {
        let before = self.responses.gaps_past_boundary();
        self.push(Chunk::gap(side, ts_ns, bytes), out);
        if side == Side::Server && self.responses.gaps_past_boundary() > before {
            self.stitch.forget_waiting();
        }
    }

    fn stats(&self) -> &ParseStats {
        &self.stitch.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_methods_are_borrowed_and_others_kept_as_sent() {
        for m in STANDARD_METHODS {
            assert!(matches!(method_text(m), Cow::Borrowed(b) if b == m), "{m}");
        }
        // Methods are case-sensitive (RFC 9110 section 9.1): `get` is not GET.
        for m in ["get", "PROPFIND", "M-SEARCH", ""] {
            assert!(matches!(method_text(m), Cow::Owned(ref o) if o == m), "{m}");
        }
    }
}
