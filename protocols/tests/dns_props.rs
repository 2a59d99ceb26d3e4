//! Properties of the DNS parser over generated input:
//! - any bytes, cut anywhere, with gaps, on both sides, over UDP and TCP: no panic, every
//!   push returns promptly, and over TCP the result does not depend on where the chunks were
//!   cut;
//! - any valid sequence of queries and responses (random names, types, ids, rcodes with
//!   EDNS, answer counts, TC), responses in any order, cut anywhere: every query pairs with
//!   its response, and nothing is counted as an error.

mod dns_support;

use std::time::{Duration, Instant};

use dns_support::*;
use proptest::prelude::*;
use proptest::sample::Index;
use wirelens_protocols::dns::DnsParser;
use wirelens_protocols::{Chunk, ConnParser, Side, Transport};

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}

/// Fragments that steer random input into the parser's deeper states: valid messages,
/// headers, compression pointers, length prefixes.
fn words() -> Vec<Vec<u8>> {
    let q = Q::new(0x1234, "a.test", 1);
    let r = q.response(3, 2, false);
    vec![
        q.wire(),
        r.clone(),
        framed(&q.wire()),
        framed(&r),
        framed(&Q::new(0x1234, "b.test", 28).response(0, 1, true)),
        vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 1],
        vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0],
        vec![0xc0, 0x0c],
        vec![0xc0, 0x00],
        vec![0x3f],
        vec![0, 0x29, 0x04, 0xd0, 1, 0, 0, 0, 0, 0],
        vec![0, 17],
        vec![0xff, 0xff],
        vec![0],
    ]
}

fn fragment() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..40),
        prop::sample::select(words()),
    ]
}

/// Pushes: (client side?, data, missing bytes after it).
fn pushes() -> impl Strategy<Value = Vec<(bool, Vec<u8>, u64)>> {
    prop::collection::vec(
        (
            any::<bool>(),
            prop::collection::vec(fragment(), 0..8).prop_map(|f| f.concat()),
            prop_oneof![4 => Just(0u64), 1 => 0u64..400],
        ),
        0..16,
    )
}

fn script_of(t: Transport, pushes: &[(bool, Vec<u8>, u64)], close: bool) -> Script {
    let mut s = Script::new(t);
    for (i, (client, data, missing)) in pushes.iter().enumerate() {
        let side = if *client { Side::Client } else { Side::Server };
        s = s.push(side, i as u64, data, *missing);
        if i % 5 == 4 {
            s = s.expire(i as u64, 3);
        }
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

/// A generated exchange: a query and how it is answered.
#[derive(Clone, Debug)]
struct Gen {
    q: Q,
    rcode: u16,
    answers: u16,
    tc: bool,
}

fn label() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop::sample::select(b"abcdefghijklmnopqrstuvwxyzABCXYZ0123456789-_".to_vec()),
        1..20,
    )
}

fn gen() -> impl Strategy<Value = Gen> {
    (
        any::<u16>(),
        prop::collection::vec(label(), 0..5),
        prop::sample::select(vec![1u16, 5, 15, 16, 28, 33, 65, 255, 4242]),
        any::<bool>(),
        prop::sample::select(vec![0u16, 0, 0, 1, 2, 3, 3, 4, 5, 16, 23, 4095]),
        0u16..20,
        any::<bool>(),
    )
        .prop_map(|(id, labels, qtype, edns, rcode, answers, tc)| {
            let mut q = Q::new(id, "", qtype);
            q.labels = labels;
            q.edns = edns || rcode > 15;
            Gen {
                q,
                rcode,
                answers,
                tc,
            }
        })
}

/// Generated exchanges whose (id, name without case, type) are distinct, so that the
/// expected pairing is unambiguous.
fn gens() -> impl Strategy<Value = Vec<Gen>> {
    prop::collection::vec(gen(), 1..12).prop_map(|mut v| {
        let mut seen = std::collections::HashSet::new();
        v.retain(|g| seen.insert((g.q.id, g.q.text().to_ascii_lowercase(), g.q.qtype)));
        v
    })
}

proptest! {
    // 512 cases unless PROPTEST_CASES says otherwise.
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_and_push_returns_promptly(
        p in pushes(),
        close in any::<bool>(),
        tcp in any::<bool>(),
    ) {
        let t = if tcp { Transport::Tcp } else { Transport::Udp };
        let mut parser = DnsParser::new(t);
        let mut out = Vec::new();
        for (i, (client, data, missing)) in p.iter().enumerate() {
            let side = if *client { Side::Client } else { Side::Server };
            let start = Instant::now();
            parser.push(Chunk { side, ts_ns: i as u64, data, missing: *missing }, &mut out);
            prop_assert!(start.elapsed() < Duration::from_secs(1), "push {} took {:?}", i, start.elapsed());
        }
        if close {
            parser.close(1000, false, &mut out);
        }
        // Every exchange holds a query that was sent, captured or not, of at least a DNS
        // header (12 bytes): a query whose header arrived and whose question was cut short is
        // still reported, truncated.
        let client_bytes: usize = p
            .iter()
            .filter(|x| x.0)
            .map(|x| x.1.len().saturating_add(usize::try_from(x.2).unwrap_or(usize::MAX)))
            .fold(0, usize::saturating_add);
        prop_assert!(out.len() <= client_bytes / 12);
    }

    #[test]
    fn tcp_result_does_not_depend_on_chunk_boundaries(
        p in pushes(),
        close in any::<bool>(),
        pool in prop::collection::vec(prop::collection::vec(any::<Index>(), 0..6), 1..8),
    ) {
        let s = script_of(Transport::Tcp, &p, close);
        let whole = s.run();
        prop_assert_eq!(&s.recut(cuts_from(&pool)).run(), &whole);
        prop_assert_eq!(&s.bytewise().run(), &whole);
    }

    #[test]
    fn valid_tcp_exchanges_always_pair(
        gs in gens(),
        order in any::<u64>(),
        depth in 1usize..5,
        pool in prop::collection::vec(prop::collection::vec(any::<Index>(), 0..6), 1..8),
    ) {
        // Pipelines of `depth` queries; each pipeline's responses in a shuffled order.
        let mut s = Script::new(Transport::Tcp);
        let mut want = Vec::new();
        for (b, group) in gs.chunks(depth).enumerate() {
            let (req_ts, resp_ts) = (100 * b as u64, 100 * b as u64 + 50);
            let reqs: Vec<u8> = group.iter().flat_map(|g| framed(&g.q.wire())).collect();
            let mut idx: Vec<usize> = (0..group.len()).collect();
            shuffle(&mut idx, order.wrapping_add(b as u64));
            let resps: Vec<u8> = idx
                .iter()
                .flat_map(|&i| framed(&group[i].q.response(group[i].rcode, group[i].answers, group[i].tc)))
                .collect();
            s = s.client(req_ts, &reqs).server(resp_ts, &resps);
            for &i in &idx {
                let g = &group[i];
                want.push(done(&g.q, req_ts, resp_ts, g.rcode, g.answers, g.tc));
            }
        }
        let want = Run { exchanges: want, stats: clean() };
        prop_assert_eq!(&s.run(), &want);
        prop_assert_eq!(&s.recut(cuts_from(&pool)).run(), &want);
    }

    #[test]
    fn valid_udp_exchanges_always_pair(
        gs in gens(),
        order in any::<u64>(),
    ) {
        // Every query first, then the responses in a shuffled order, one datagram each.
        let mut s = Script::new(Transport::Udp);
        for (i, g) in gs.iter().enumerate() {
            s = s.client(i as u64, &g.q.wire());
        }
        let mut idx: Vec<usize> = (0..gs.len()).collect();
        shuffle(&mut idx, order);
        let mut want = Vec::new();
        for (k, &i) in idx.iter().enumerate() {
            let g = &gs[i];
            let ts = 1000 + k as u64;
            s = s.server(ts, &g.q.response(g.rcode, g.answers, g.tc));
            want.push(done(&g.q, i as u64, ts, g.rcode, g.answers, g.tc));
        }
        prop_assert_eq!(s.run(), Run { exchanges: want, stats: clean() });
    }
}

/// A deterministic Fisher-Yates shuffle driven by `seed` (xorshift).
fn shuffle(v: &mut [usize], seed: u64) {
    let mut x = seed | 1;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
}
