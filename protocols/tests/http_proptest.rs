//! Properties of the HTTP/1 parser over generated input:
//! - any bytes, cut anywhere, with gaps, on both sides: no panic, every push returns promptly,
//!   and the result does not depend on where the chunks were cut;
//! - any valid sequence of exchanges (keep-alive, pipelining, chunked and Content-Length
//!   bodies, HEAD, 204/304, 100-continue), cut anywhere: every request pairs with its response.

mod http_support;

use std::time::{Duration, Instant};

use http_support::*;
use proptest::prelude::*;
use proptest::sample::Index;
use wirelens_protocols::http::{route_template, HttpParser};
use wirelens_protocols::{Chunk, ConnParser, Side};

/// Fragments that steer random input into the parser's deeper states.
const WORDS: &[&[u8]] = &[
    b"GET ",
    b"HEAD ",
    b"POST /x",
    b" HTTP/1.1\r\n",
    b" HTTP/1.0\n",
    b"HTTP/1.1 200 OK\r\n",
    b"HTTP/1.1 101 S\r\n",
    b"HTTP/1.1 100 C\r\n",
    b"HTTP/1.1 204",
    b"\r\n",
    b"\r\n\r\n",
    b"\n",
    b"Content-Length: 5\r\n",
    b"Content-Length: x\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"5\r\nhello\r\n",
    b"0\r\n\r\n",
    b"ff\r\n",
    b"Host: h\r\n",
    b"CONNECT a:1",
    b"/",
    b" ",
    b"\x00",
];

fn fragment() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..40),
        prop::sample::select(WORDS).prop_map(<[u8]>::to_vec),
    ]
}

fn push_data() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(fragment(), 0..12).prop_map(|f| f.concat())
}

/// Pushes: (client side?, data, missing bytes after it).
fn pushes() -> impl Strategy<Value = Vec<(bool, Vec<u8>, u64)>> {
    prop::collection::vec(
        (
            any::<bool>(),
            push_data(),
            prop_oneof![4 => Just(0u64), 1 => 0u64..64],
        ),
        0..16,
    )
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}

fn script_of(pushes: &[(bool, Vec<u8>, u64)], close: bool) -> Script {
    let mut s = Script::new();
    for (i, (client, data, missing)) in pushes.iter().enumerate() {
        let side = if *client { Side::Client } else { Side::Server };
        s = s.push(side, i as u64, data, *missing);
    }
    if close {
        s = s.close(1000);
    }
    s
}

fn cuts_from(pool: &[Vec<Index>]) -> impl FnMut(usize, usize) -> Vec<usize> + '_ {
    move |i, len| {
        if pool.is_empty() || len == 0 {
            return vec![];
        }
        pool[i % pool.len()]
            .iter()
            .map(|ix| ix.index(len))
            .collect()
    }
}

proptest! {
    // 512 cases unless PROPTEST_CASES says otherwise.
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_and_push_returns_promptly(p in pushes(), close in any::<bool>()) {
        let mut parser = HttpParser::new();
        let mut out = Vec::new();
        for (i, (client, data, missing)) in p.iter().enumerate() {
            let side = if *client { Side::Client } else { Side::Server };
            let t = Instant::now();
            parser.push(Chunk { side, ts_ns: i as u64, data, missing: *missing }, &mut out);
            prop_assert!(t.elapsed() < Duration::from_secs(1), "push {} took {:?}", i, t.elapsed());
        }
        if close {
            parser.close(1000, false, &mut out);
        }
        // Every exchange holds a request that was sent: never more than the client pushes
        // could hold (a request-line takes at least 14 bytes).
        let client_bytes: usize = p.iter().filter(|x| x.0).map(|x| x.1.len()).sum();
        let client_gaps = p.iter().filter(|x| x.0 && x.2 > 0).count();
        prop_assert!(out.len() <= client_bytes / 14 + client_gaps + 1);
    }

    #[test]
    fn result_does_not_depend_on_chunk_boundaries(
        p in pushes(),
        close in any::<bool>(),
        pool in prop::collection::vec(prop::collection::vec(any::<Index>(), 0..6), 1..8),
    ) {
        let s = script_of(&p, close);
        let whole = s.run();
        prop_assert_eq!(&s.recut(cuts_from(&pool)).run(), &whole);
        prop_assert_eq!(&s.bytewise().run(), &whole);
    }

    #[test]
    fn valid_exchanges_always_pair(
        exchanges in prop::collection::vec(exchange(), 1..10),
        depths in prop::collection::vec(1usize..4, 10),
        pool in prop::collection::vec(prop::collection::vec(any::<Index>(), 0..6), 1..8),
    ) {
        let mut s = Script::new();
        let mut expected = Vec::new();
        let mut i = 0;
        let mut batch = 0u64;
        while i < exchanges.len() {
            // A pipeline of `depth` requests, then their responses.
            let group = &exchanges[i..(i + depths[batch as usize % depths.len()]).min(exchanges.len())];
            let (req_ts, resp_ts) = (100 * batch, 100 * batch + 50);
            let requests: Vec<u8> = group.iter().flat_map(|e| e.request()).collect();
            let responses: Vec<u8> = group.iter().flat_map(|e| e.response()).collect();
            s = s.client(req_ts, &requests).server(resp_ts, &responses);
            for e in group {
                let host = e.host.then_some("h.example");
                let request = req(e.method, &e.path, host, &route_template(&e.path));
                expected.push(done(req_ts, request, resp_ts, e.status, e.expected_body()));
            }
            i += group.len();
            batch += 1;
        }
        let want = Run { exchanges: expected, stats: clean() };
        prop_assert_eq!(&s.run(), &want);
        prop_assert_eq!(&s.recut(cuts_from(&pool)).run(), &want);
    }
}

#[derive(Clone, Debug)]
enum Body {
    Empty,
    Length(usize),
    Chunked(Vec<usize>, bool),
}

impl Body {
    fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Length(n) => *n as u64,
            Body::Chunked(sizes, _) => sizes.iter().sum::<usize>() as u64,
        }
    }

    fn head_and_bytes(&self) -> (String, Vec<u8>) {
        match self {
            Body::Empty => (String::new(), vec![]),
            Body::Length(n) => (format!("Content-Length: {n}\r\n"), vec![b'b'; *n]),
            Body::Chunked(sizes, trailer) => {
                let mut body = Vec::new();
                for n in sizes {
                    body.extend(format!("{n:x};e=1\r\n").bytes());
                    body.extend(std::iter::repeat_n(b'c', *n));
                    body.extend(b"\r\n");
                }
                body.extend(b"0\r\n");
                if *trailer {
                    body.extend(b"X-Checksum: 1\r\n");
                }
                body.extend(b"\r\n");
                ("Transfer-Encoding: chunked\r\n".into(), body)
            }
        }
    }
}

#[derive(Clone, Debug)]
struct Ex {
    method: &'static str,
    path: String,
    host: bool,
    req_body: Body,
    expect_continue: bool,
    status: u16,
    resp_body: Body,
}

impl Ex {
    fn bodiless(&self) -> bool {
        self.method == "HEAD" || self.status == 204 || self.status == 304
    }

    fn expected_body(&self) -> u64 {
        if self.bodiless() {
            0
        } else {
            self.resp_body.len()
        }
    }

    fn request(&self) -> Vec<u8> {
        let (framing, body) = self.req_body.head_and_bytes();
        let host = if self.host { "Host: h.example\r\n" } else { "" };
        let expect = if self.expect_continue {
            "Expect: 100-continue\r\n"
        } else {
            ""
        };
        let head = format!(
            "{} {} HTTP/1.1\r\n{host}User-Agent: t\r\n{framing}{expect}\r\n",
            self.method, self.path
        );
        [head.into_bytes(), body].concat()
    }

    fn response(&self) -> Vec<u8> {
        let interim = if self.expect_continue {
            "HTTP/1.1 100 Continue\r\n\r\n"
        } else {
            ""
        };
        let (framing, body) = self.resp_body.head_and_bytes();
        let head = format!(
            "{interim}HTTP/1.1 {} R\r\nServer: s\r\n{framing}\r\n",
            self.status
        );
        // Responses to HEAD and 204/304 keep their framing fields but carry no body.
        let body = if self.bodiless() { vec![] } else { body };
        [head.into_bytes(), body].concat()
    }
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        Just(Body::Empty),
        (0usize..300).prop_map(Body::Length),
        (prop::collection::vec(1usize..40, 0..4), any::<bool>())
            .prop_map(|(s, t)| Body::Chunked(s, t)),
    ]
}

fn exchange() -> impl Strategy<Value = Ex> {
    let segment = prop::sample::select(vec!["users", "42", "a1b2c3d4e5", "items", "v1", ""]);
    let path = (prop::collection::vec(segment, 1..4), any::<bool>())
        .prop_map(|(segs, q)| format!("/{}{}", segs.join("/"), if q { "?q=1&r=2" } else { "" }));
    let method = prop::sample::select(vec![
        "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH",
    ]);
    let status = prop::sample::select(vec![200u16, 201, 204, 301, 304, 404, 500, 503]);
    (
        method,
        path,
        any::<bool>(),
        body(),
        any::<bool>(),
        status,
        body(),
    )
        .prop_map(
            |(method, path, host, req_body, expect_continue, status, resp_body)| {
                // Bodies of requests that take none would be sent anyway; keep them realistic.
                let req_body = if matches!(method, "GET" | "HEAD" | "DELETE" | "OPTIONS") {
                    Body::Empty
                } else {
                    req_body
                };
                // A response without framing runs to the close: only as the last one (below).
                let resp_body = match resp_body {
                    Body::Empty => Body::Length(0),
                    b => b,
                };
                Ex {
                    method,
                    path,
                    host,
                    req_body,
                    expect_continue,
                    status,
                    resp_body,
                }
            },
        )
}
