//! DNS over UDP and TCP (RFC 1035, EDNS of RFC 6891, TCP of RFC 7766): message parsing and
//! pairing of queries with responses.
//!
//! - [`parse`]: header, question, the walk to the EDNS OPT record (RFC 1035 section 4.1,
//!   RFC 6891 section 6.1);
//! - [`names`]: names with compression pointers, as text (RFC 1035 section 4.1.4, RFC 4343);
//! - [`codes`]: type, class, rcode and opcode mnemonics (IANA DNS parameters);
//! - `stream`: DNS-over-TCP framing with gaps (RFC 1035 section 4.2.2);
//! - `stitch`: pairing by transaction id and question (RFC 5452 section 9.1, RFC 7766
//!   section 7).

use serde::Serialize;

use crate::{Chunk, ConnParser, Exchange, ParseStats, Side, Transport};

pub mod codes;
pub mod names;
pub mod parse;
mod stitch;
mod stream;

pub use parse::{parse_message, DnsError, Message};
pub use stitch::MAX_PENDING;

use parse::{QuestionState, Records};
use stitch::Stitcher;
use stream::{Sink, Stream};

/// `request` of a DNS record (record-schema.md).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DnsRequest {
    /// Query name (QNAME, RFC 1035 section 4.1.2), no trailing dot, as sent (case kept);
    /// the root is `.`; bytes outside `!`..=`~` as `\DDD`, and `.` `\` `"` `(` `)` `;` `@`
    /// `$` inside a label escaped with a backslash (RFC 4343 section 2.1). Empty for a
    /// query without a question (QDCOUNT 0, e.g. an RFC 7873 cookie-only query).
    pub name: String,
    /// QTYPE mnemonic (`A`, `AAAA`, `HTTPS`...; one without a mnemonic as `TYPE<n>`, RFC 3597
    /// section 5); empty without a question.
    #[serde(rename = "type")]
    pub qtype: String,
    /// Transaction id (RFC 1035 section 4.1.1).
    pub id: u16,
    /// QCLASS mnemonic (`CH`, `HS`, `ANY`, `CLASS<n>`), only when it is not `IN`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// OPCODE mnemonic (`STATUS`, `NOTIFY`, `UPDATE`, `OPCODE<n>`...), only when it is not
    /// `QUERY` (RFC 1035 section 4.1.1, RFC 1996, RFC 2136).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opcode: Option<String>,
}

/// `response` of a DNS record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DnsResponse {
    /// RCODE mnemonic (`NOERROR`, `NXDOMAIN`, `SERVFAIL`, `REFUSED`...; `RCODE<n>` for one
    /// without a mnemonic), extended by the EDNS OPT record when the response has one (RFC
    /// 6891 section 6.1.3: `BADVERS`, `BADCOOKIE`).
    pub rcode: String,
    /// ANCOUNT: answer records in the response as sent (RFC 1035 section 4.1.1), even when
    /// the capture did not keep them all.
    pub answers: u32,
    /// The TC flag: the server truncated the response to fit the transport (RFC 1035 section
    /// 4.1.1, RFC 2181 section 9); the client usually asks again over TCP, which is another
    /// exchange. Unlike the record's `truncated`, this is what the server sent, not what the
    /// capture kept.
    pub tc: bool,
}

/// DNS on one TCP connection or UDP flow.
///
/// - UDP (RFC 1035 section 4.2.1): each chunk is one datagram, one message. A datagram
///   with `missing > 0` was cut by the capture: what it holds is parsed (the header gives
///   id, RCODE and ANCOUNT; the question and OPT record when captured) and the exchange is
///   `truncated`.
/// - TCP (RFC 1035 section 4.2.2, RFC 7766 section 8): each direction is a stream of
///   messages behind a two-octet length, several per connection, pipelined or not.
///   Missing bytes inside a message are skipped by its length; a gap over a length prefix
///   counts in `lost_in_gap` and the direction resynchronises at the next plausible
///   message start.
/// - Pairing (RFC 5452 section 9.1, RFC 7766 section 7): a response pairs with the oldest
///   waiting query with its transaction id and the same question (name without case, type,
///   class), in any order; one whose question differs counts in `unmatched_responses`. A
///   response without a question (QDCOUNT 0, or cut) pairs by id alone. At most
///   [`MAX_PENDING`] queries wait per connection or flow (`pending_overflow` beyond).
/// - Queries come from the client side (QR 0), responses from the server side (QR 1); a
///   message of the wrong kind for its side, or one that does not parse, counts in
///   `parse_errors`; a query whose question the capture cut, in `lost_in_gap`. A response
///   whose records run past its end is still reported, and counted in `parse_errors`.
/// - `close` resets the queries still waiting; `expire` times them out.
pub struct DnsParser {
    transport: Transport,
    requests: Stream,
    responses: Stream,
    stitch: Stitcher,
    stats: ParseStats,
}

impl DnsParser {
    pub fn new(transport: Transport) -> Self {
        DnsParser {
            transport,
            requests: Stream::new(false),
            responses: Stream::new(true),
            stitch: Stitcher::default(),
            stats: ParseStats::default(),
        }
    }
}

/// Where one direction's messages go: parsed, then paired.
struct Messages<'a> {
    side: Side,
    stitch: &'a mut Stitcher,
    stats: &'a mut ParseStats,
    out: &'a mut Vec<Exchange>,
}

impl Sink for Messages<'_> {
    fn message(&mut self, msg: &[u8], cut: bool, first_ts: u64, last_ts: u64) {
        let m = match parse_message(msg, cut) {
            Ok(m) => m,
            Err(DnsError::Incomplete { .. }) => {
                self.stats.lost_in_gap += 1;
                return;
            }
            Err(DnsError::Invalid { .. }) => {
                self.stats.parse_errors += 1;
                return;
            }
        };
        let response = m.header.is_response();
        if response != (self.side == Side::Server) {
            self.stats.parse_errors += 1;
            return;
        }
        if m.records == Records::Malformed {
            self.stats.parse_errors += 1;
        }
        if response {
            self.stitch.response(m, last_ts, cut, self.stats, self.out);
        } else if m.question == QuestionState::Cut {
            self.stats.lost_in_gap += 1;
        } else {
            self.stitch.query(m, first_ts, cut, self.stats);
        }
    }

    fn lost(&mut self) {
        self.stats.lost_in_gap += 1;
    }

    fn invalid(&mut self) {
        self.stats.parse_errors += 1;
    }
}

impl ConnParser for DnsParser {
    fn push(&mut self, chunk: Chunk<'_>, out: &mut Vec<Exchange>) {
        let mut sink = Messages {
            side: chunk.side,
            stitch: &mut self.stitch,
            stats: &mut self.stats,
            out,
        };
        match self.transport {
            Transport::Udp => {
                if !chunk.data.is_empty() {
                    sink.message(chunk.data, chunk.missing > 0, chunk.ts_ns, chunk.ts_ns);
                } else if chunk.missing > 0 {
                    sink.lost();
                }
            }
            Transport::Tcp => {
                let stream = match chunk.side {
                    Side::Client => &mut self.requests,
                    Side::Server => &mut self.responses,
                };
                stream.push(chunk.data, chunk.ts_ns, chunk.missing, &mut sink);
            }
        }
    }

    /// Queries still waiting are reset (RFC 7766 section 6.2.4: a connection closed with
    /// queries outstanding leaves them unanswered). A message cut by the close is dropped.
    fn close(&mut self, _ts_ns: u64, _reset: bool, out: &mut Vec<Exchange>) {
        self.stitch.close(out);
        self.requests = Stream::new(false);
        self.responses = Stream::new(true);
    }

    fn expire(&mut self, now_ns: u64, timeout_ns: u64, out: &mut Vec<Exchange>) {
        self.stitch.expire(now_ns, timeout_ns, out);
    }

    fn stats(&self) -> &ParseStats {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::parse::tests::{query, response};
    use super::*;
    use crate::{Outcome, Request, Response};

    fn push(p: &mut DnsParser, side: Side, ts: u64, data: &[u8], missing: u64) -> Vec<Exchange> {
        let mut out = Vec::new();
        p.push(
            Chunk {
                side,
                ts_ns: ts,
                data,
                missing,
            },
            &mut out,
        );
        out
    }

    fn framed(m: &[u8]) -> Vec<u8> {
        let mut t = (m.len() as u16).to_be_bytes().to_vec();
        t.extend_from_slice(m);
        t
    }

    fn dns(e: &Exchange) -> (&DnsRequest, Option<&DnsResponse>) {
        let Request::Dns(q) = &e.request else {
            panic!("not DNS")
        };
        let r = e.response.as_ref().map(|r| match r {
            Response::Dns(r) => r,
            _ => panic!("not DNS"),
        });
        (q, r)
    }

    #[test]
    fn udp_exchange_with_tc_and_cut_datagram() {
        let mut p = DnsParser::new(Transport::Udp);
        let q = query(0xbeef, "big.test", 16, true);
        assert!(push(&mut p, Side::Client, 100, &q, 0).is_empty());
        let mut r = response(&q, 0, 0, true);
        r[2] |= 0x02;
        let out = push(&mut p, Side::Server, 150, &r, 0);
        assert_eq!(out.len(), 1);
        let (rq, rs) = dns(&out[0]);
        assert_eq!(
            (rq.name.as_str(), rq.qtype.as_str(), rq.id),
            ("big.test", "TXT", 0xbeef)
        );
        let rs = rs.unwrap();
        assert_eq!((rs.rcode.as_str(), rs.answers, rs.tc), ("NOERROR", 0, true));
        assert_eq!(out[0].latency_ns(), Some(50));
        assert!(!out[0].truncated);

        // A response cut after 20 bytes: header and part of the question.
        let q = query(7, "host.test", 1, true);
        push(&mut p, Side::Client, 200, &q, 0);
        let r = response(&q, 3, 2, true);
        let out = push(&mut p, Side::Server, 210, &r[..20], (r.len() - 20) as u64);
        assert_eq!(out.len(), 1);
        assert!(out[0].truncated);
        assert_eq!(dns(&out[0]).1.unwrap().rcode, "NXDOMAIN");
        assert_eq!(dns(&out[0]).1.unwrap().answers, 2);
        assert_eq!(p.stats(), &ParseStats::default());
    }

    #[test]
    fn udp_wrong_side_garbage_and_timeout() {
        let mut p = DnsParser::new(Transport::Udp);
        let q = query(1, "a.test", 1, false);
        push(&mut p, Side::Server, 0, &q, 0);
        push(&mut p, Side::Client, 0, b"garbage", 0);
        push(&mut p, Side::Client, 0, &[], 40);
        assert_eq!(p.stats().parse_errors, 2);
        assert_eq!(p.stats().lost_in_gap, 1);
        push(&mut p, Side::Client, 10, &q, 0);
        let mut out = Vec::new();
        p.expire(20, 30, &mut out);
        assert!(out.is_empty());
        p.expire(41, 30, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].outcome, Outcome::Timeout);
        assert!(out[0].response.is_none());
    }

    #[test]
    fn tcp_pipelined_out_of_order_and_reset() {
        let mut p = DnsParser::new(Transport::Tcp);
        let qs: Vec<Vec<u8>> = (0..3)
            .map(|i| query(10 + i, &format!("n{i}.test"), 1, true))
            .collect();
        let stream: Vec<u8> = qs.iter().flat_map(|q| framed(q)).collect();
        // Requests split at an arbitrary point.
        push(&mut p, Side::Client, 1, &stream[..7], 0);
        push(&mut p, Side::Client, 2, &stream[7..], 0);
        // Responses 2, 0 in one chunk; 1 never comes.
        let rs = [
            framed(&response(&qs[2], 0, 1, true)),
            framed(&response(&qs[0], 3, 0, true)),
        ]
        .concat();
        let out = push(&mut p, Side::Server, 5, &rs, 0);
        assert_eq!(out.len(), 2);
        assert_eq!(dns(&out[0]).0.name, "n2.test");
        assert_eq!(out[0].req_ts_ns, 2);
        assert_eq!(dns(&out[1]).0.name, "n0.test");
        assert_eq!(out[1].req_ts_ns, 1);
        assert_eq!(dns(&out[1]).1.unwrap().rcode, "NXDOMAIN");
        let mut out = Vec::new();
        p.close(9, false, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(dns(&out[0]).0.name, "n1.test");
        assert_eq!(out[0].outcome, Outcome::Reset);
    }

    #[test]
    fn serialized_fields() {
        let mut p = DnsParser::new(Transport::Udp);
        let mut q = query(3, "version.bind", 16, false);
        let n = q.len();
        q[n - 1] = 3; // class CH
        q[2] |= 2 << 3; // opcode STATUS
        push(&mut p, Side::Client, 0, &q, 0);
        let mut r = response(&q, 0, 1, false);
        r[2] |= 2 << 3;
        let out = push(&mut p, Side::Server, 1, &r, 0);
        let (rq, rs) = dns(&out[0]);
        assert_eq!(rq.class.as_deref(), Some("CH"));
        assert_eq!(rq.opcode.as_deref(), Some("STATUS"));
        assert_eq!(rq.qtype, "TXT");
        assert!(!rs.unwrap().tc);
    }
}
