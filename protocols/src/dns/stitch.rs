//! Pairing of DNS queries and responses by transaction id and question (RFC 1035 section
//! 7.3, RFC 5452 section 9.1: a resolver accepts a response only when its ID and question
//! match a query it sent; RFC 7766 section 7: over TCP, responses may come in any order).
//!
//! Queries wait in arrival order (for timeouts) with an index by id (for responses). A
//! response pairs with the oldest waiting query that has its id and the same question:
//! name compared without case (RFC 4343 section 3), type and class. A response whose id
//! matches but whose question differs is not a pair: it counts as unmatched.
//!
//! A response without a question to compare (QDCOUNT 0, as some servers answer FORMERR or
//! NOTIMP, or its question cut by the capture) pairs with the oldest query of its id, a
//! question-less one first.

use std::collections::{BTreeMap, HashMap};

use super::codes::{class, class_name, opcode, opcode_name, rcode_name, type_name};
use super::names::same_name;
use super::parse::{Message, QuestionState};
use super::{DnsRequest, DnsResponse};
use crate::{Exchange, Outcome, ParseStats, Request, Response};

/// Queries that may wait for a response on one connection or UDP flow; more are dropped
/// and counted in [`ParseStats::pending_overflow`].
pub const MAX_PENDING: usize = 4096;

/// A query waiting for its response.
#[derive(Debug)]
struct Pending {
    ts_ns: u64,
    id: u16,
    /// QTYPE and QCLASS; `None`: the query had no question (QDCOUNT 0). The name is the
    /// request's.
    question: Option<(u16, u16)>,
    request: DnsRequest,
    truncated: bool,
}

/// Pairing state of one connection (TCP) or flow (UDP).
#[derive(Debug, Default)]
pub(crate) struct Stitcher {
    /// Waiting queries by arrival number.
    pending: BTreeMap<u64, Pending>,
    /// Arrival numbers of the waiting queries, by transaction id, oldest first.
    by_id: HashMap<u16, Vec<u64>>,
    next_seq: u64,
}

impl Stitcher {
    /// A query was read; its first byte was seen at `ts_ns`. `m.question` must not be
    /// [`QuestionState::Cut`] (the caller counts those as lost).
    pub(crate) fn query(
        &mut self,
        m: Message,
        ts_ns: u64,
        truncated: bool,
        stats: &mut ParseStats,
    ) {
        if self.pending.len() >= MAX_PENDING {
            stats.pending_overflow += 1;
            return;
        }
        let op = m.header.opcode();
        let question = match m.question {
            QuestionState::Known(q) => Some(q),
            QuestionState::Absent | QuestionState::Cut => None,
        };
        let codes = question.as_ref().map(|q| (q.qtype, q.qclass));
        let request = DnsRequest {
            qtype: codes.map_or_else(String::new, |(t, _)| type_name(t).into_owned()),
            class: codes
                .filter(|(_, c)| *c != class::IN)
                .map(|(_, c)| class_name(c).into_owned()),
            name: question.map_or_else(String::new, |q| q.name),
            id: m.header.id,
            opcode: (op != opcode::QUERY).then(|| opcode_name(op).into_owned()),
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_id.entry(m.header.id).or_default().push(seq);
        self.pending.insert(
            seq,
            Pending {
                ts_ns,
                id: m.header.id,
                question: codes,
                request,
                truncated,
            },
        );
    }

    /// A response was read; its last byte was seen at `ts_ns`.
    pub(crate) fn response(
        &mut self,
        m: Message,
        ts_ns: u64,
        truncated: bool,
        stats: &mut ParseStats,
        out: &mut Vec<Exchange>,
    ) {
        let Some(seq) = self.find(m.header.id, &m.question) else {
            stats.unmatched_responses += 1;
            return;
        };
        let Some(p) = self.take(seq) else {
            return;
        };
        out.push(Exchange {
            req_ts_ns: p.ts_ns,
            resp_ts_ns: Some(ts_ns),
            request: Request::Dns(p.request),
            response: Some(Response::Dns(DnsResponse {
                rcode: rcode_name(m.rcode()).into_owned(),
                answers: u32::from(m.header.ancount),
                tc: m.header.tc(),
            })),
            outcome: Outcome::Complete,
            truncated: p.truncated || truncated,
            trace: None,
        });
    }

    /// The waiting query a response with `id` and `question` answers.
    fn find(&self, id: u16, question: &QuestionState) -> Option<u64> {
        let seqs = self.by_id.get(&id)?;
        let waiting = || seqs.iter().filter_map(|s| Some((*s, self.pending.get(s)?)));
        match question {
            QuestionState::Known(q) => waiting()
                .find(|(_, p)| {
                    p.question == Some((q.qtype, q.qclass)) && same_name(&p.request.name, &q.name)
                })
                .map(|(s, _)| s),
            QuestionState::Absent | QuestionState::Cut => waiting()
                .find(|(_, p)| p.question.is_none())
                .or_else(|| waiting().next())
                .map(|(s, _)| s),
        }
    }

    fn take(&mut self, seq: u64) -> Option<Pending> {
        let p = self.pending.remove(&seq)?;
        if let Some(seqs) = self.by_id.get_mut(&p.id) {
            seqs.retain(|s| *s != seq);
            if seqs.is_empty() {
                self.by_id.remove(&p.id);
            }
        }
        Some(p)
    }

    /// Queries waiting longer than `timeout_ns` at `now_ns` are answered by a timeout, in
    /// arrival order.
    pub(crate) fn expire(&mut self, now_ns: u64, timeout_ns: u64, out: &mut Vec<Exchange>) {
        let expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| now_ns.saturating_sub(p.ts_ns) > timeout_ns)
            .map(|(s, _)| *s)
            .collect();
        for seq in expired {
            if let Some(p) = self.take(seq) {
                out.push(unanswered(p, Outcome::Timeout));
            }
        }
    }

    /// The connection closed: every query still waiting is reset, in arrival order.
    pub(crate) fn close(&mut self, out: &mut Vec<Exchange>) {
        self.by_id.clear();
        out.extend(
            std::mem::take(&mut self.pending)
                .into_values()
                .map(|p| unanswered(p, Outcome::Reset)),
        );
    }

    /// Queries waiting now.
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.pending.len()
    }
}

fn unanswered(p: Pending, outcome: Outcome) -> Exchange {
    Exchange {
        req_ts_ns: p.ts_ns,
        resp_ts_ns: None,
        request: Request::Dns(p.request),
        response: None,
        outcome,
        truncated: p.truncated,
        trace: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::parse::parse_message;
    use crate::dns::parse::tests::{query, response};

    fn msg(b: &[u8]) -> Message {
        parse_message(b, false).unwrap()
    }

    fn names(out: &[Exchange]) -> Vec<(String, Option<String>)> {
        out.iter()
            .map(|e| {
                let Request::Dns(q) = &e.request else {
                    panic!()
                };
                let r = e.response.as_ref().map(|r| match r {
                    Response::Dns(r) => r.rcode.clone(),
                    _ => panic!(),
                });
                (q.name.clone(), r)
            })
            .collect()
    }

    #[test]
    fn out_of_order_by_id_and_question() {
        let mut s = Stitcher::default();
        let mut st = ParseStats::default();
        let mut out = Vec::new();
        let (a, b, c) = (
            query(1, "a.test", 1, false),
            query(2, "b.test", 1, false),
            query(1, "c.test", 28, false),
        );
        for (i, q) in [&a, &b, &c].into_iter().enumerate() {
            s.query(msg(q), i as u64, false, &mut st);
        }
        s.response(
            msg(&response(&c, 0, 1, false)),
            10,
            false,
            &mut st,
            &mut out,
        );
        s.response(
            msg(&response(&b, 3, 0, false)),
            11,
            false,
            &mut st,
            &mut out,
        );
        // Same id as a and c, but a question nobody asked.
        let other = query(1, "d.test", 1, false);
        s.response(
            msg(&response(&other, 0, 1, false)),
            12,
            false,
            &mut st,
            &mut out,
        );
        assert_eq!(st.unmatched_responses, 1);
        s.response(
            msg(&response(&a, 0, 1, false)),
            13,
            false,
            &mut st,
            &mut out,
        );
        assert_eq!(
            names(&out),
            vec![
                ("c.test".into(), Some("NOERROR".into())),
                ("b.test".into(), Some("NXDOMAIN".into())),
                ("a.test".into(), Some("NOERROR".into())),
            ]
        );
        assert_eq!(out[0].req_ts_ns, 2);
        assert_eq!(out[0].latency_ns(), Some(8));
        assert_eq!(s.waiting(), 0);
        assert!(s.by_id.is_empty());
    }

    #[test]
    fn case_insensitive_question_and_questionless_responses() {
        let mut s = Stitcher::default();
        let mut st = ParseStats::default();
        let mut out = Vec::new();
        s.query(msg(&query(5, "MiXeD.Test", 1, false)), 0, false, &mut st);
        s.response(
            msg(&response(&query(5, "mixed.test", 1, false), 0, 1, false)),
            1,
            false,
            &mut st,
            &mut out,
        );
        assert_eq!(out.len(), 1);
        // Type differs: not a pair.
        s.query(msg(&query(6, "x.test", 1, false)), 2, false, &mut st);
        s.response(
            msg(&response(&query(6, "x.test", 28, false), 0, 1, false)),
            3,
            false,
            &mut st,
            &mut out,
        );
        assert_eq!((out.len(), st.unmatched_responses), (1, 1));
        // FORMERR without a question pairs by id.
        let r = [0, 6, 0x81, 0x81, 0, 0, 0, 0, 0, 0, 0, 0];
        s.response(msg(&r), 4, false, &mut st, &mut out);
        assert_eq!(names(&out)[1], ("x.test".into(), Some("FORMERR".into())));
        s.response(msg(&r), 5, false, &mut st, &mut out);
        assert_eq!(st.unmatched_responses, 2);
    }

    #[test]
    fn expire_close_and_overflow() {
        let mut s = Stitcher::default();
        let mut st = ParseStats::default();
        let mut out = Vec::new();
        for i in 0..MAX_PENDING as u64 + 3 {
            s.query(msg(&query(i as u16, "a.test", 1, false)), i, false, &mut st);
        }
        assert_eq!(st.pending_overflow, 3);
        s.expire(100, 90, &mut out);
        assert_eq!(out.len(), 10);
        assert!(out.iter().all(|e| e.outcome == Outcome::Timeout));
        assert_eq!(out[9].req_ts_ns, 9);
        out.clear();
        s.close(&mut out);
        assert_eq!(out.len(), MAX_PENDING - 10);
        assert!(out.iter().all(|e| e.outcome == Outcome::Reset));
        assert_eq!(out[0].req_ts_ns, 10);
        assert_eq!(s.waiting(), 0);
    }
}
