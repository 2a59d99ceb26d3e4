//! Shared helpers of the DNS parser tests: building queries and responses on the wire, and
//! running scripts of pushes through a `DnsParser`, whole or re-cut at other chunk
//! boundaries, with the exchanges and counters compared exactly.

#![allow(dead_code)]

use wirelens_protocols::dns::{DnsParser, DnsRequest, DnsResponse};
use wirelens_protocols::{
    Chunk, ConnParser, Exchange, Outcome, ParseStats, Request, Response, Side, Transport,
};

/// A query to build.
#[derive(Clone, Debug)]
pub struct Q {
    pub id: u16,
    /// Labels, raw bytes (escaping is the parser's business).
    pub labels: Vec<Vec<u8>>,
    pub qtype: u16,
    pub qclass: u16,
    pub opcode: u8,
    pub edns: bool,
}

impl Q {
    pub fn new(id: u16, name: &str, qtype: u16) -> Q {
        Q {
            id,
            labels: name
                .split('.')
                .filter(|l| !l.is_empty())
                .map(|l| l.as_bytes().to_vec())
                .collect(),
            qtype,
            qclass: 1,
            opcode: 0,
            edns: true,
        }
    }

    /// The name as the parser writes it (labels of printable, unescaped bytes only).
    pub fn text(&self) -> String {
        if self.labels.is_empty() {
            return ".".into();
        }
        self.labels
            .iter()
            .map(|l| String::from_utf8(l.clone()).unwrap())
            .collect::<Vec<_>>()
            .join(".")
    }

    fn header(&self, flags: u16, an: u16, ar: u16) -> Vec<u8> {
        let mut m = self.id.to_be_bytes().to_vec();
        m.extend_from_slice(&(flags | u16::from(self.opcode) << 11).to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        m.extend_from_slice(&an.to_be_bytes());
        m.extend_from_slice(&[0, 0]);
        m.extend_from_slice(&ar.to_be_bytes());
        m
    }

    fn question(&self, m: &mut Vec<u8>) {
        for l in &self.labels {
            m.push(l.len() as u8);
            m.extend_from_slice(l);
        }
        m.push(0);
        m.extend_from_slice(&self.qtype.to_be_bytes());
        m.extend_from_slice(&self.qclass.to_be_bytes());
    }

    /// The query on the wire: RD set, one question, an OPT record when `edns`.
    pub fn wire(&self) -> Vec<u8> {
        let mut m = self.header(0x0100, 0, u16::from(self.edns));
        self.question(&mut m);
        if self.edns {
            opt(&mut m, 0);
        }
        m
    }

    /// A response: `rcode` (12 bits; the upper 8 need `edns`), `answers` records (CNAMEs
    /// and A records whose names are compressed against the question), TC when `tc`.
    pub fn response(&self, rcode: u16, answers: u16, tc: bool) -> Vec<u8> {
        let flags = 0x8180 | (rcode & 0xf) | if tc { 0x0200 } else { 0 };
        let mut m = self.header(flags, answers, u16::from(self.edns));
        self.question(&mut m);
        for i in 0..answers {
            // Owner: the question name (pointer to offset 12).
            m.extend_from_slice(&[0xc0, 12]);
            if i % 2 == 0 {
                // A CNAME whose target is "c<i>" + pointer to the question name.
                m.extend_from_slice(&[
                    0,
                    5,
                    0,
                    1,
                    0,
                    0,
                    0,
                    30,
                    0,
                    5,
                    2,
                    b'c',
                    b'0' + (i % 10) as u8,
                ]);
                m.extend_from_slice(&[0xc0, 12]);
            } else {
                m.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 0, 0, i as u8]);
            }
        }
        if self.edns {
            opt(&mut m, (rcode >> 4) as u8);
        }
        m
    }

    pub fn request(&self) -> DnsRequest {
        DnsRequest {
            name: self.text(),
            qtype: type_name(self.qtype),
            id: self.id,
            class: (self.qclass != 1).then(|| format!("CLASS{}", self.qclass)),
            opcode: (self.opcode != 0).then(|| match self.opcode {
                2 => "STATUS".to_owned(),
                4 => "NOTIFY".to_owned(),
                5 => "UPDATE".to_owned(),
                o => format!("OPCODE{o}"),
            }),
        }
    }
}

/// An OPT pseudo-record (RFC 6891 section 6.1.2) with extended rcode `ext`.
fn opt(m: &mut Vec<u8>, ext: u8) {
    m.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, ext, 0, 0, 0, 0, 0]);
}

/// The type mnemonics the generators use.
pub fn type_name(t: u16) -> String {
    match t {
        1 => "A".into(),
        5 => "CNAME".into(),
        15 => "MX".into(),
        16 => "TXT".into(),
        28 => "AAAA".into(),
        33 => "SRV".into(),
        65 => "HTTPS".into(),
        255 => "ANY".into(),
        t => format!("TYPE{t}"),
    }
}

pub fn rcode_name(r: u16) -> String {
    match r {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        16 => "BADVERS".into(),
        23 => "BADCOOKIE".into(),
        r => format!("RCODE{r}"),
    }
}

/// A message behind its two-octet TCP length (RFC 1035 section 4.2.2).
pub fn framed(m: &[u8]) -> Vec<u8> {
    let mut t = (m.len() as u16).to_be_bytes().to_vec();
    t.extend_from_slice(m);
    t
}

/// One thing that happens to a connection.
#[derive(Clone, Debug)]
pub enum Ev {
    Push {
        side: Side,
        ts: u64,
        data: Vec<u8>,
        missing: u64,
    },
    Close {
        ts: u64,
    },
    Expire {
        now: u64,
        timeout: u64,
    },
}

/// What a run produced.
#[derive(Debug, PartialEq)]
pub struct Run {
    pub exchanges: Vec<Exchange>,
    pub stats: ParseStats,
}

/// A connection's events, in order.
#[derive(Clone, Debug)]
pub struct Script {
    pub transport: Transport,
    pub events: Vec<Ev>,
}

impl Script {
    pub fn new(transport: Transport) -> Script {
        Script {
            transport,
            events: Vec::new(),
        }
    }

    pub fn push(mut self, side: Side, ts: u64, data: &[u8], missing: u64) -> Script {
        self.events.push(Ev::Push {
            side,
            ts,
            data: data.to_vec(),
            missing,
        });
        self
    }

    pub fn client(self, ts: u64, data: &[u8]) -> Script {
        self.push(Side::Client, ts, data, 0)
    }

    pub fn server(self, ts: u64, data: &[u8]) -> Script {
        self.push(Side::Server, ts, data, 0)
    }

    pub fn close(mut self, ts: u64) -> Script {
        self.events.push(Ev::Close { ts });
        self
    }

    pub fn expire(mut self, now: u64, timeout: u64) -> Script {
        self.events.push(Ev::Expire { now, timeout });
        self
    }

    pub fn run(&self) -> Run {
        let mut p = DnsParser::new(self.transport);
        let mut out = Vec::new();
        for ev in &self.events {
            match ev {
                Ev::Push {
                    side,
                    ts,
                    data,
                    missing,
                } => p.push(
                    Chunk {
                        side: *side,
                        ts_ns: *ts,
                        data,
                        missing: *missing,
                    },
                    &mut out,
                ),
                Ev::Close { ts } => p.close(*ts, false, &mut out),
                Ev::Expire { now, timeout } => p.expire(*now, *timeout, &mut out),
            }
        }
        Run {
            exchanges: out,
            stats: p.stats().clone(),
        }
    }

    /// The same script with each push cut at the offsets `cuts(i, len)` gives for push `i`
    /// (the pieces keep the push's time; the gap goes after the last piece).
    pub fn recut(&self, mut cuts: impl FnMut(usize, usize) -> Vec<usize>) -> Script {
        let mut s = Script::new(self.transport);
        for (i, ev) in self.events.iter().enumerate() {
            match ev {
                Ev::Push {
                    side,
                    ts,
                    data,
                    missing,
                } => {
                    let mut at: Vec<usize> = cuts(i, data.len());
                    at.push(0);
                    at.push(data.len());
                    at.sort_unstable();
                    at.dedup();
                    let pieces: Vec<&[u8]> = at.windows(2).map(|w| &data[w[0]..w[1]]).collect();
                    if pieces.is_empty() {
                        s = s.push(*side, *ts, &[], *missing);
                    }
                    let last = pieces.len().saturating_sub(1);
                    for (k, piece) in pieces.into_iter().enumerate() {
                        s = s.push(*side, *ts, piece, if k == last { *missing } else { 0 });
                    }
                }
                other => s.events.push(other.clone()),
            }
        }
        s
    }

    /// Every push cut into single bytes.
    pub fn bytewise(&self) -> Script {
        self.recut(|_, len| (1..len).collect())
    }
}

/// A completed exchange as the parser should report it.
pub fn done(q: &Q, req_ts: u64, resp_ts: u64, rcode: u16, answers: u16, tc: bool) -> Exchange {
    Exchange {
        req_ts_ns: req_ts,
        resp_ts_ns: Some(resp_ts),
        request: Request::Dns(q.request()),
        response: Some(Response::Dns(DnsResponse {
            rcode: rcode_name(rcode),
            answers: u32::from(answers),
            tc,
        })),
        outcome: Outcome::Complete,
        truncated: false,
        trace: None,
    }
}

/// An exchange that got no response.
pub fn unanswered(q: &Q, req_ts: u64, outcome: Outcome) -> Exchange {
    Exchange {
        req_ts_ns: req_ts,
        resp_ts_ns: None,
        request: Request::Dns(q.request()),
        response: None,
        outcome,
        truncated: false,
        trace: None,
    }
}

pub fn clean() -> ParseStats {
    ParseStats::default()
}
