//! The DNS parser through its public entry points (`new_parser`, `ConnParser`): UDP and TCP
//! exchanges, pairing by id and question, EDNS, capture gaps, malformed names, bounds.

mod dns_support;

use dns_support::*;
use wirelens_protocols::dns::MAX_PENDING;
use wirelens_protocols::{
    new_parser, Chunk, Exchange, Outcome, Protocol, Request, Response, Side, Transport,
};

fn dns(
    e: &Exchange,
) -> (
    &wirelens_protocols::dns::DnsRequest,
    Option<&wirelens_protocols::dns::DnsResponse>,
) {
    let Request::Dns(q) = &e.request else {
        panic!("not DNS: {e:?}")
    };
    let r = e.response.as_ref().map(|r| match r {
        Response::Dns(r) => r,
        _ => panic!("not DNS: {e:?}"),
    });
    (q, r)
}

#[test]
fn new_parser_serves_both_transports() {
    for t in [Transport::Udp, Transport::Tcp] {
        let mut p = new_parser(Protocol::Dns, t).expect("a DNS parser");
        let q = Q::new(9, "a.test", 1);
        let (qw, rw) = match t {
            Transport::Udp => (q.wire(), q.response(0, 1, false)),
            Transport::Tcp => (framed(&q.wire()), framed(&q.response(0, 1, false))),
        };
        let mut out = Vec::new();
        p.push(
            Chunk {
                side: Side::Client,
                ts_ns: 1,
                data: &qw,
                missing: 0,
            },
            &mut out,
        );
        p.push(
            Chunk {
                side: Side::Server,
                ts_ns: 3,
                data: &rw,
                missing: 0,
            },
            &mut out,
        );
        assert_eq!(out, vec![done(&q, 1, 3, 0, 1, false)], "{t:?}");
    }
}

#[test]
fn udp_flow_with_several_queries_answered_out_of_order() {
    let qs: Vec<Q> = (0..4)
        .map(|i| Q::new(100 + i, &format!("h{i}.test"), 28))
        .collect();
    let mut s = Script::new(Transport::Udp);
    for (i, q) in qs.iter().enumerate() {
        s = s.client(i as u64, &q.wire());
    }
    for (k, i) in [2usize, 0, 3, 1].into_iter().enumerate() {
        s = s.server(
            10 + k as u64,
            &qs[i].response(if i == 3 { 3 } else { 0 }, i as u16, false),
        );
    }
    let r = s.run();
    let want = vec![
        done(&qs[2], 2, 10, 0, 2, false),
        done(&qs[0], 0, 11, 0, 0, false),
        done(&qs[3], 3, 12, 3, 3, false),
        done(&qs[1], 1, 13, 0, 1, false),
    ];
    assert_eq!(
        r,
        Run {
            exchanges: want,
            stats: clean()
        }
    );
}

#[test]
fn same_id_different_question_is_not_a_pair() {
    let a = Q::new(7, "a.test", 1);
    let b = Q::new(7, "b.test", 1);
    let a_aaaa = Q::new(7, "a.test", 28);
    let r = Script::new(Transport::Tcp)
        .client(0, &framed(&a.wire()))
        // Same id, other name; same id and name, other type.
        .server(1, &framed(&b.response(0, 1, false)))
        .server(2, &framed(&a_aaaa.response(0, 1, false)))
        .server(3, &framed(&a.response(0, 1, false)))
        .run();
    assert_eq!(r.exchanges, vec![done(&a, 0, 3, 0, 1, false)]);
    assert_eq!(r.stats.unmatched_responses, 2);
}

#[test]
fn pipelined_tcp_with_the_same_id_pairs_by_question() {
    // RFC 7766 section 7: responses in any order; only the question tells these apart.
    let qs = [
        Q::new(5, "x.test", 1),
        Q::new(5, "x.test", 28),
        Q::new(5, "y.test", 1),
    ];
    let requests: Vec<u8> = qs.iter().flat_map(|q| framed(&q.wire())).collect();
    let responses: Vec<u8> = [2, 0, 1]
        .iter()
        .flat_map(|&i| framed(&qs[i].response(0, 1, false)))
        .collect();
    let s = Script::new(Transport::Tcp)
        .client(0, &requests)
        .server(9, &responses)
        .close(10);
    let want = Run {
        exchanges: vec![
            done(&qs[2], 0, 9, 0, 1, false),
            done(&qs[0], 0, 9, 0, 1, false),
            done(&qs[1], 0, 9, 0, 1, false),
        ],
        stats: clean(),
    };
    assert_eq!(s.run(), want);
    assert_eq!(s.bytewise().run(), want);
}

#[test]
fn name_case_does_not_matter_for_pairing_but_is_kept() {
    let q = Q::new(1, "WwW.ExAmple.TEST", 1);
    let answer = Q::new(1, "www.example.test", 1);
    let r = Script::new(Transport::Udp)
        .client(0, &q.wire())
        .server(1, &answer.response(0, 1, false))
        .run();
    assert_eq!(r.exchanges, vec![done(&q, 0, 1, 0, 1, false)]);
    assert_eq!(dns(&r.exchanges[0]).0.name, "WwW.ExAmple.TEST");
}

#[test]
fn escaped_names_root_and_unknown_codes() {
    let mut q = Q::new(2, "", 65280);
    q.labels = vec![
        b"a b".to_vec(),
        b"c.d".to_vec(),
        vec![0xff, b'\\'],
        b"test".to_vec(),
    ];
    q.qclass = 4242;
    q.opcode = 4;
    let mut p = new_parser(Protocol::Dns, Transport::Udp).unwrap();
    let mut out = Vec::new();
    p.push(
        Chunk {
            side: Side::Client,
            ts_ns: 0,
            data: &q.wire(),
            missing: 0,
        },
        &mut out,
    );
    p.push(
        Chunk {
            side: Side::Server,
            ts_ns: 1,
            data: &q.response(12, 0, false),
            missing: 0,
        },
        &mut out,
    );
    let (rq, rs) = dns(&out[0]);
    assert_eq!(rq.name, r"a\032b.c\.d.\255\\.test");
    assert_eq!(rq.qtype, "TYPE65280");
    assert_eq!(rq.class.as_deref(), Some("CLASS4242"));
    assert_eq!(rq.opcode.as_deref(), Some("NOTIFY"));
    assert_eq!(rs.unwrap().rcode, "RCODE12");

    let root = Q::new(3, ".", 2);
    let r = Script::new(Transport::Udp)
        .client(0, &root.wire())
        .server(1, &root.response(5, 0, false))
        .run();
    assert_eq!(dns(&r.exchanges[0]).0.name, ".");
    assert_eq!(dns(&r.exchanges[0]).1.unwrap().rcode, "REFUSED");
}

#[test]
fn extended_rcode_needs_the_opt_record() {
    let q = Q::new(4, "e.test", 1);
    let r = Script::new(Transport::Udp)
        .client(0, &q.wire())
        .server(1, &q.response(16, 0, false))
        .client(2, &Q::new(5, "e.test", 1).wire())
        .server(3, &Q::new(5, "e.test", 1).response(23, 0, false))
        .run();
    assert_eq!(dns(&r.exchanges[0]).1.unwrap().rcode, "BADVERS");
    assert_eq!(dns(&r.exchanges[1]).1.unwrap().rcode, "BADCOOKIE");
    // Without EDNS the header's 4 bits are all: 16 reads as 0.
    let mut plain = Q::new(6, "e.test", 1);
    plain.edns = false;
    let r = Script::new(Transport::Udp)
        .client(0, &plain.wire())
        .server(1, &plain.response(16, 0, false))
        .run();
    assert_eq!(dns(&r.exchanges[0]).1.unwrap().rcode, "NOERROR");
}

#[test]
fn udp_tc_answer_completes_the_exchange() {
    let q = Q::new(8, "big.test", 16);
    let r = Script::new(Transport::Udp)
        .client(0, &q.wire())
        .server(5, &q.response(0, 0, true))
        .run();
    assert_eq!(
        r,
        Run {
            exchanges: vec![done(&q, 0, 5, 0, 0, true)],
            stats: clean()
        }
    );
}

#[test]
fn udp_datagram_cut_by_the_capture() {
    let q = Q::new(10, "cut.test", 1);
    let resp = q.response(3, 4, false);
    // Cut inside the answers: rcode and ANCOUNT from the header; the OPT was not captured,
    // so an extended rcode could not be read (the exchange is marked truncated).
    let r = Script::new(Transport::Udp)
        .client(0, &q.wire())
        .push(Side::Server, 1, &resp[..40], (resp.len() - 40) as u64)
        .run();
    let mut want = done(&q, 0, 1, 3, 4, false);
    want.truncated = true;
    assert_eq!(
        r,
        Run {
            exchanges: vec![want],
            stats: clean()
        }
    );
    // Cut inside the header: not a response anyone can pair.
    let r = Script::new(Transport::Udp)
        .client(0, &q.wire())
        .push(Side::Server, 1, &resp[..8], (resp.len() - 8) as u64)
        .run();
    assert!(r.exchanges.is_empty());
    assert_eq!(r.stats.lost_in_gap, 1);
    // A query cut inside its question: what it asked is unknown.
    let w = q.wire();
    let r = Script::new(Transport::Udp)
        .push(Side::Client, 0, &w[..15], (w.len() - 15) as u64)
        .run();
    assert_eq!(r.stats.lost_in_gap, 1);
}

#[test]
fn tcp_gap_inside_a_response_keeps_the_stream_in_sync() {
    let big = Q::new(11, "big.test", 16);
    let next = Q::new(12, "next.test", 1);
    let resp = framed(&big.response(0, 200, false));
    assert!(resp.len() > 3000);
    let r = Script::new(Transport::Tcp)
        .client(0, &[framed(&big.wire()), framed(&next.wire())].concat())
        // The kernel copied 4096 bytes of a call... here 100: the rest is missing.
        .push(Side::Server, 1, &resp[..100], (resp.len() - 100) as u64)
        .server(2, &framed(&next.response(0, 1, false)))
        .run();
    let mut cut = done(&big, 0, 1, 0, 200, false);
    cut.truncated = true;
    assert_eq!(
        r,
        Run {
            exchanges: vec![cut, done(&next, 0, 2, 0, 1, false)],
            stats: clean()
        }
    );
}

#[test]
fn tcp_gap_over_a_length_prefix_resynchronises() {
    let qs: Vec<Q> = (0..3)
        .map(|i| Q::new(20 + i, &format!("r{i}.test"), 1))
        .collect();
    let reqs: Vec<u8> = qs.iter().flat_map(|q| framed(&q.wire())).collect();
    let r0 = framed(&qs[0].response(0, 1, false));
    let r1 = framed(&qs[1].response(0, 1, false));
    let r2 = framed(&qs[2].response(3, 0, false));
    // r0 whole; the gap swallows r1 and the first 10 bytes of a message that is never
    // seen; then captured garbage; then r2.
    let r = Script::new(Transport::Tcp)
        .client(0, &reqs)
        .push(Side::Server, 1, &r0, (r1.len() + 10) as u64)
        .server(2, &[&b"\x99\x98garbage"[..], &r2].concat())
        .close(3)
        .run();
    assert_eq!(r.exchanges.len(), 3);
    assert_eq!(r.exchanges[0], done(&qs[0], 0, 1, 0, 1, false));
    assert_eq!(r.exchanges[1], done(&qs[2], 0, 2, 3, 0, false));
    assert_eq!(r.exchanges[2], unanswered(&qs[1], 0, Outcome::Reset));
    assert_eq!(r.stats.lost_in_gap, 1);
    assert_eq!(r.stats.parse_errors, 0);
}

#[test]
fn compression_loop_in_a_question_is_a_parse_error() {
    let mut m = vec![0, 1, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&[1, b'a', 0xc0, 12, 0, 1, 0, 1]);
    let mut fwd = vec![0, 2, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    fwd.extend_from_slice(&[0xc0, 14, 0, 0, 1, 0, 1]);
    let r = Script::new(Transport::Udp)
        .client(0, &m)
        .client(1, &fwd)
        .run();
    assert!(r.exchanges.is_empty());
    assert_eq!(r.stats.parse_errors, 2);
}

#[test]
fn malformed_records_still_report_the_exchange() {
    let q = Q::new(30, "m.test", 1);
    let mut resp = q.response(0, 1, false);
    // ANCOUNT says 5 records; only 1 + the OPT are there.
    resp[7] = 5;
    let r = Script::new(Transport::Udp)
        .client(0, &q.wire())
        .server(1, &resp)
        .run();
    assert_eq!(r.exchanges, vec![done(&q, 0, 1, 0, 5, false)]);
    assert_eq!(r.stats.parse_errors, 1);
}

#[test]
fn wrong_direction_and_garbage_are_counted() {
    let q = Q::new(31, "w.test", 1);
    let r = Script::new(Transport::Udp)
        .server(0, &q.wire())
        .client(1, &q.response(0, 1, false))
        .client(2, b"\x00\x01")
        .run();
    assert!(r.exchanges.is_empty());
    assert_eq!(r.stats.parse_errors, 3);
    assert_eq!(r.stats.unmatched_responses, 0);
}

#[test]
fn expire_and_close() {
    let qs: Vec<Q> = (0..3)
        .map(|i| Q::new(40 + i, &format!("t{i}.test"), 1))
        .collect();
    let r = Script::new(Transport::Tcp)
        .client(0, &framed(&qs[0].wire()))
        .client(50, &framed(&qs[1].wire()))
        .client(90, &framed(&qs[2].wire()))
        .expire(100, 40)
        .server(101, &framed(&qs[2].response(0, 1, false)))
        .close(102)
        .run();
    assert_eq!(
        r.exchanges,
        vec![
            unanswered(&qs[0], 0, Outcome::Timeout),
            unanswered(&qs[1], 50, Outcome::Timeout),
            done(&qs[2], 90, 101, 0, 1, false),
        ]
    );
    let r = Script::new(Transport::Tcp)
        .client(0, &framed(&qs[0].wire()))
        .close(5)
        .run();
    assert_eq!(r.exchanges, vec![unanswered(&qs[0], 0, Outcome::Reset)]);
}

#[test]
fn pending_queries_are_bounded() {
    let mut p = new_parser(Protocol::Dns, Transport::Udp).unwrap();
    let mut out = Vec::new();
    for i in 0..MAX_PENDING + 10 {
        let q = Q::new(i as u16, &format!("n{i}.test"), 1);
        p.push(
            Chunk {
                side: Side::Client,
                ts_ns: i as u64,
                data: &q.wire(),
                missing: 0,
            },
            &mut out,
        );
    }
    assert_eq!(p.stats().pending_overflow, 10);
    p.expire(u64::MAX, 0, &mut out);
    assert_eq!(out.len(), MAX_PENDING);
}

#[test]
fn largest_tcp_message_in_small_chunks() {
    let q = Q::new(50, "huge.test", 16);
    // ~65 KB: close to the 65535 limit of the length prefix.
    let mut resp = q.response(0, 3900, false);
    assert!(
        resp.len() > 60_000 && resp.len() <= 65_535,
        "{}",
        resp.len()
    );
    resp = framed(&resp);
    let s = Script::new(Transport::Tcp)
        .client(0, &framed(&q.wire()))
        .server(1, &resp);
    let want = Run {
        exchanges: vec![done(&q, 0, 1, 0, 3900, false)],
        stats: clean(),
    };
    assert_eq!(s.run(), want);
    assert_eq!(
        s.recut(|_, len| (1..len).step_by(997).collect()).run(),
        want
    );
}
