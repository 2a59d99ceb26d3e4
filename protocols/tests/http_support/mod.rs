//! Shared helpers of the HTTP parser tests: scripts of pushes, closes and expiries, run whole
//! and re-cut at other chunk boundaries, with the exchanges and counters compared exactly.

#![allow(dead_code)]

use wirelens_protocols::http::{HttpParser, HttpRequest, HttpResponse};
use wirelens_protocols::{
    Chunk, ConnParser, Exchange, Outcome, ParseStats, Request, Response, Side, TraceContext,
};

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
        reset: bool,
    },
    Expire {
        now: u64,
        timeout: u64,
    },
}

/// A connection's events, in order.
#[derive(Clone, Debug, Default)]
pub struct Script(pub Vec<Ev>);

/// What a run produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    pub exchanges: Vec<Exchange>,
    pub stats: ParseStats,
}

impl Script {
    pub fn new() -> Script {
        Script::default()
    }
    pub fn client(self, ts: u64, data: &[u8]) -> Script {
        self.push(Side::Client, ts, data, 0)
    }
    pub fn server(self, ts: u64, data: &[u8]) -> Script {
        self.push(Side::Server, ts, data, 0)
    }
    pub fn push(mut self, side: Side, ts: u64, data: &[u8], missing: u64) -> Script {
        self.0.push(Ev::Push {
            side,
            ts,
            data: data.to_vec(),
            missing,
        });
        self
    }
    pub fn close(mut self, ts: u64) -> Script {
        self.0.push(Ev::Close { ts, reset: false });
        self
    }
    pub fn reset(mut self, ts: u64) -> Script {
        self.0.push(Ev::Close { ts, reset: true });
        self
    }
    pub fn expire(mut self, now: u64, timeout: u64) -> Script {
        self.0.push(Ev::Expire { now, timeout });
        self
    }

    /// Run on a fresh parser.
    pub fn run(&self) -> Run {
        let mut p = HttpParser::new();
        let mut exchanges = Vec::new();
        for ev in &self.0 {
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
                    &mut exchanges,
                ),
                Ev::Close { ts, reset } => p.close(*ts, *reset, &mut exchanges),
                Ev::Expire { now, timeout } => p.expire(*now, *timeout, &mut exchanges),
            }
        }
        Run {
            exchanges,
            stats: p.stats().clone(),
        }
    }

    /// The same stream with every push cut where `cuts` says (offsets inside its data; the
    /// pieces keep the push's time, the missing bytes follow the last piece).
    pub fn recut(&self, mut cuts: impl FnMut(usize, usize) -> Vec<usize>) -> Script {
        let mut out = Vec::new();
        for (i, ev) in self.0.iter().enumerate() {
            let Ev::Push {
                side,
                ts,
                data,
                missing,
            } = ev
            else {
                out.push(ev.clone());
                continue;
            };
            let mut at = cuts(i, data.len());
            at.retain(|c| *c > 0 && *c < data.len());
            at.sort_unstable();
            at.dedup();
            let mut start = 0;
            for c in at.into_iter().chain([data.len()]) {
                let last = c == data.len();
                out.push(Ev::Push {
                    side: *side,
                    ts: *ts,
                    data: data[start..c].to_vec(),
                    missing: if last { *missing } else { 0 },
                });
                start = c;
            }
        }
        Script(out)
    }

    /// Pushes in pieces of one byte.
    pub fn bytewise(&self) -> Script {
        self.recut(|_, len| (1..len).collect())
    }

    /// Every push cut at pseudo-random points (deterministic per seed).
    pub fn random_cuts(&self, seed: u64) -> Script {
        let mut rng = Lcg(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        self.recut(|_, len| {
            let n = if len < 2 { 0 } else { rng.below(6) as usize };
            (0..n)
                .map(|_| 1 + rng.below(len as u64 - 1) as usize)
                .collect()
        })
    }

    /// Total bytes of data in pushes (bounds the exhaustive splits).
    pub fn data_len(&self) -> usize {
        self.0
            .iter()
            .map(|e| match e {
                Ev::Push { data, .. } => data.len(),
                _ => 0,
            })
            .sum()
    }
}

/// Run `script` whole, byte by byte, cut once at every position of every push (when the
/// script is small), and at random points; every run must give `expected` and `stats`.
pub fn check(script: &Script, expected: &[Exchange], stats: ParseStats) {
    let want = Run {
        exchanges: expected.to_vec(),
        stats,
    };
    assert_eq!(script.run(), want, "whole chunks");
    assert_eq!(script.bytewise().run(), want, "one-byte chunks");
    if script.data_len() <= 4096 {
        for (i, ev) in script.0.iter().enumerate() {
            let Ev::Push { data, .. } = ev else { continue };
            for k in 1..data.len() {
                let cut = script.recut(|j, _| if j == i { vec![k] } else { vec![] });
                assert_eq!(cut.run(), want, "push {i} cut at {k}");
            }
        }
    }
    for seed in 0..40 {
        assert_eq!(
            script.random_cuts(seed).run(),
            want,
            "random cuts, seed {seed}"
        );
    }
}

/// A small deterministic generator for cut points and test bytes.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// An HTTP request record as the parser should build it; `route` given explicitly.
pub fn req(method: &str, path: &str, host: Option<&str>, route: &str) -> HttpRequest {
    HttpRequest {
        method: wirelens_protocols::http::method_text(method),
        path: path.into(),
        host: host.map(Into::into),
        route: Some(route.into()),
    }
}

/// A completed exchange.
pub fn done(
    req_ts: u64,
    request: HttpRequest,
    resp_ts: u64,
    status: u16,
    body_bytes: u64,
) -> Exchange {
    Exchange {
        req_ts_ns: req_ts,
        resp_ts_ns: Some(resp_ts),
        request: Request::Http(request),
        response: Some(Response::Http(HttpResponse { status, body_bytes })),
        outcome: Outcome::Complete,
        truncated: false,
        trace: None,
    }
}

/// A request that got no response.
pub fn unanswered(req_ts: u64, request: HttpRequest, outcome: Outcome) -> Exchange {
    Exchange {
        req_ts_ns: req_ts,
        resp_ts_ns: None,
        request: Request::Http(request),
        response: None,
        outcome,
        truncated: false,
        trace: None,
    }
}

pub fn truncated(mut e: Exchange) -> Exchange {
    e.truncated = true;
    e
}

pub fn traced(mut e: Exchange, trace_id: &str, span_id: &str) -> Exchange {
    e.trace = Some(TraceContext {
        trace_id: trace_id.into(),
        span_id: span_id.into(),
    });
    e
}

pub fn stats(
    parse_errors: u64,
    unmatched_responses: u64,
    lost_in_gap: u64,
    pending_overflow: u64,
) -> ParseStats {
    ParseStats {
        parse_errors,
        unmatched_responses,
        lost_in_gap,
        pending_overflow,
    }
}

pub fn clean() -> ParseStats {
    ParseStats::default()
}

/// `GET path` with a Host header.
pub fn get(path: &str, host: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n\r\n").into_bytes()
}

/// A response with a Content-Length body.
pub fn ok(status: u16, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

pub fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}
