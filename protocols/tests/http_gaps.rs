//! Capture gaps (`Chunk::missing`) and connection closes: bodies larger than the captured
//! prefix still pair, lost boundaries are counted and resynchronised, and the FIFO stays
//! aligned. Each case is also run re-cut at other chunk boundaries (the missing bytes stay
//! after the last piece of their push).

mod http_support;

use http_support::*;
use wirelens_protocols::{Outcome, Side};

const CLIENT: Side = Side::Client;
const SERVER: Side = Side::Server;

#[test]
fn body_larger_than_capture_still_pairs_and_next_message_parses() {
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n";
    let s = Script::new()
        .client(1, &get("/big", "h"))
        .push(SERVER, 2, &cat(&[head, &[b'x'; 100]]), 4900)
        .client(3, &get("/next", "h"))
        .server(4, &ok(200, "fine"));
    check(
        &s,
        &[
            truncated(done(1, req("GET", "/big", Some("h"), "/big"), 2, 200, 5000)),
            done(3, req("GET", "/next", Some("h"), "/next"), 4, 200, 4),
        ],
        clean(),
    );
}

#[test]
fn request_body_gap_keeps_the_request_stream_in_step() {
    let head = b"POST /up HTTP/1.1\r\nContent-Length: 1000\r\n\r\n";
    let s = Script::new()
        .push(CLIENT, 1, &cat(&[head, &[b'p'; 50]]), 950)
        .client(2, &get("/after", "h"))
        .server(3, &cat(&[&ok(201, ""), &ok(200, "")]));
    check(
        &s,
        &[
            truncated(done(1, req("POST", "/up", None, "/up"), 3, 201, 0)),
            done(2, req("GET", "/after", Some("h"), "/after"), 3, 200, 0),
        ],
        clean(),
    );
}

#[test]
fn response_end_is_the_chunk_whose_missing_bytes_cover_it() {
    let s = Script::new()
        .client(10, &get("/t", "h"))
        .push(
            SERVER,
            20,
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel",
            0,
        )
        .push(SERVER, 25, b"lo", 5);
    check(
        &s,
        &[truncated(done(
            10,
            req("GET", "/t", Some("h"), "/t"),
            25,
            200,
            10,
        ))],
        clean(),
    );
}

#[test]
fn gap_over_a_body_end_and_the_next_head_drops_the_answered_request() {
    let reqs = cat(&[&get("/1", "h"), &get("/2", "h"), &get("/3", "h")]);
    let resp2 = ok(201, "two");
    let s = Script::new()
        .client(1, &reqs)
        .push(
            SERVER,
            2,
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabcd",
            6 + 30,
        )
        .server(3, &cat(&[&resp2[30..], &ok(202, "three")]));
    // The response to /2 started in the gap: /2 is dropped (counted in lost_in_gap) so that
    // the response to /3 pairs with /3.
    check(
        &s,
        &[
            truncated(done(1, req("GET", "/1", Some("h"), "/{id}"), 2, 200, 10)),
            done(1, req("GET", "/3", Some("h"), "/{id}"), 3, 202, 5),
        ],
        stats(0, 0, 1, 0),
    );
}

#[test]
fn request_lost_in_a_gap_keeps_its_place_in_the_queue() {
    let s = Script::new()
        .push(CLIENT, 1, &get("/1", "h"), 30)
        .client(2, &get("/3", "h"))
        .server(3, &cat(&[&ok(200, "a"), &ok(200, "bb"), &ok(200, "ccc")]));
    check(
        &s,
        &[
            done(1, req("GET", "/1", Some("h"), "/{id}"), 3, 200, 1),
            done(2, req("GET", "/3", Some("h"), "/{id}"), 3, 200, 3),
        ],
        stats(0, 0, 1, 0),
    );
}

#[test]
fn response_lost_in_a_gap_is_not_paired_with_the_next_request() {
    let s = Script::new()
        .client(1, &get("/a", "h"))
        .push(SERVER, 2, b"", 80)
        .client(3, &get("/b", "h"))
        .server(4, &ok(200, "b"));
    check(
        &s,
        &[done(3, req("GET", "/b", Some("h"), "/b"), 4, 200, 1)],
        stats(0, 0, 1, 0),
    );
}

#[test]
fn request_head_cut_by_a_gap_is_salvaged() {
    let s = Script::new()
        .push(
            CLIENT,
            1,
            b"GET /very/long?x=1 HTTP/1.1\r\nHost: svc\r\nUser-Agent: abc",
            500,
        )
        .server(2, &ok(200, "r"))
        .client(3, &get("/next", "svc"))
        .server(4, &ok(200, ""));
    check(
        &s,
        &[
            truncated(done(
                1,
                req("GET", "/very/long?x=1", Some("svc"), "/very/long"),
                2,
                200,
                1,
            )),
            done(3, req("GET", "/next", Some("svc"), "/next"), 4, 200, 0),
        ],
        stats(0, 0, 1, 0),
    );
}

#[test]
fn request_line_cut_by_a_gap_keeps_the_captured_target() {
    let s = Script::new()
        .push(CLIENT, 1, b"GET /abc/12345", 100)
        .server(2, &ok(404, ""));
    check(
        &s,
        &[truncated(done(
            1,
            req("GET", "/abc/12345", None, "/abc/{id}"),
            2,
            404,
            0,
        ))],
        stats(0, 0, 1, 0),
    );
}

#[test]
fn response_head_cut_by_a_gap_is_salvaged() {
    let s = Script::new()
        .client(1, &get("/s", "h"))
        .push(
            SERVER,
            2,
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Le",
            200,
        )
        .client(3, &get("/t", "h"))
        .server(4, &ok(200, "k"));
    check(
        &s,
        &[
            truncated(done(1, req("GET", "/s", Some("h"), "/s"), 2, 503, 0)),
            done(3, req("GET", "/t", Some("h"), "/t"), 4, 200, 1),
        ],
        stats(0, 0, 1, 0),
    );
}

#[test]
fn gap_in_a_chunk_size_line_or_trailer_loses_the_boundary() {
    let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    let s = Script::new()
        .client(1, &get("/c", "h"))
        .push(SERVER, 2, &cat(&[chunked, b"5\r\nhello\r\n1"]), 50)
        .client(3, &get("/d", "h"))
        .push(
            SERVER,
            4,
            &cat(&[chunked, b"3\r\nabc\r\n0\r\nX-Trailer: 1"]),
            10,
        )
        .client(5, &get("/e", "h"))
        .server(6, &cat(&[b"r\r\n\r\n", &ok(200, "")]));
    check(
        &s,
        &[
            truncated(done(1, req("GET", "/c", Some("h"), "/c"), 2, 200, 5)),
            truncated(done(3, req("GET", "/d", Some("h"), "/d"), 4, 200, 3)),
            done(5, req("GET", "/e", Some("h"), "/e"), 6, 200, 0),
        ],
        // Each gap held nothing but the rest of the one response waited for.
        clean(),
    );
}

#[test]
fn gap_past_a_chunk_boundary_with_a_request_pipelined_counts_a_loss() {
    // Two requests in one write: the first answer's end is lost, and the gap may as well
    // hold the start of the second's. Here it does not: the second pairs right.
    let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    let s = Script::new()
        .client(1, &cat(&[&get("/c", "h"), &get("/d", "h")]))
        .push(SERVER, 2, &cat(&[chunked, b"5\r\nhello\r\n1"]), 50)
        .server(3, &ok(200, "d"));
    check(
        &s,
        &[
            truncated(done(1, req("GET", "/c", Some("h"), "/c"), 2, 200, 5)),
            done(1, req("GET", "/d", Some("h"), "/d"), 3, 200, 1),
        ],
        stats(0, 0, 1, 0),
    );
}

#[test]
fn gap_inside_chunk_data_is_absorbed() {
    let s = Script::new()
        .client(1, &get("/c", "h"))
        .push(
            SERVER,
            2,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc",
            13,
        )
        .server(3, b"\r\n0\r\n\r\n");
    check(
        &s,
        &[truncated(done(
            1,
            req("GET", "/c", Some("h"), "/c"),
            3,
            200,
            16,
        ))],
        clean(),
    );
}

/// A client sending a chunked body one chunk per call (size line, data and CRLF together, as
/// curl does), each call longer than the capture: every gap ends with the chunk's CRLF, whose
/// length is known too, so the next call's size line is read in place.
#[test]
fn gaps_ending_with_the_chunks_crlf_are_absorbed() {
    let head = b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
    let data = [b'x'; 100];
    let s = Script::new()
        .client(1, head)
        .push(CLIENT, 2, &cat(&[b"fff4\r\n", &data]), 0xfff4 - 100 + 2)
        .push(CLIENT, 3, &cat(&[b"86ac\r\n", &data]), 0x86ac - 100 + 2)
        .client(4, b"0\r\n\r\n")
        .server(5, &ok(201, "created"));
    check(
        &s,
        &[truncated(done(
            1,
            req("POST", "/up", Some("h"), "/up"),
            5,
            201,
            7,
        ))],
        clean(),
    );
}

#[test]
fn gap_in_a_body_read_to_close() {
    let s = Script::new()
        .client(1, &get("/x", "h"))
        .push(SERVER, 2, b"HTTP/1.0 200 OK\r\n\r\nabc", 97)
        .close(5);
    check(
        &s,
        &[truncated(done(
            1,
            req("GET", "/x", Some("h"), "/x"),
            2,
            200,
            100,
        ))],
        clean(),
    );
}

/// A server that dies (or aborts) in the middle of a body it announced: the request is
/// reported reset, without the partial response; the client side's close and an RST alike.
#[test]
fn close_inside_a_response_body_resets_its_request() {
    let s = Script::new()
        .client(1, &get("/x", "h"))
        .server(
            2,
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789",
        )
        .close(3);
    check(
        &s,
        &[unanswered(
            1,
            req("GET", "/x", Some("h"), "/x"),
            Outcome::Reset,
        )],
        clean(),
    );
    let s = Script::new()
        .client(1, &get("/y", "h"))
        .server(
            2,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nab",
        )
        .reset(3);
    check(
        &s,
        &[unanswered(
            1,
            req("GET", "/y", Some("h"), "/y"),
            Outcome::Reset,
        )],
        clean(),
    );
}

#[test]
fn close_inside_a_head() {
    let s = Script::new()
        .client(1, &get("/x", "h"))
        .server(2, b"HTTP/1.1 200 OK\r\nConte")
        .close(3);
    check(
        &s,
        &[truncated(done(
            1,
            req("GET", "/x", Some("h"), "/x"),
            2,
            200,
            0,
        ))],
        clean(),
    );
    let s = Script::new()
        .client(1, b"POST /p HTTP/1.1\r\nHost: q\r\n")
        .close(2);
    check(
        &s,
        &[truncated(unanswered(
            1,
            req("POST", "/p", Some("q"), "/p"),
            Outcome::Reset,
        ))],
        clean(),
    );
    // Too little to tell anything: a parse error. Empty lines are not.
    let s = Script::new().client(1, b"GE").close(2);
    check(&s, &[], stats(1, 0, 0, 0));
    let s = Script::new()
        .client(1, &get("/z", "h"))
        .client(2, b"\r\n")
        .close(3);
    check(
        &s,
        &[unanswered(
            1,
            req("GET", "/z", Some("h"), "/z"),
            Outcome::Reset,
        )],
        clean(),
    );
}

#[test]
fn head_larger_than_the_limit_is_a_parse_error() {
    let big = cat(&[
        b"GET /big HTTP/1.1\r\nX-Fill: ",
        &vec![b'a'; 17_000],
        b"\r\n\r\n",
        &get("/ok", "h"),
    ]);
    let s = Script::new().client(1, &big).server(
        2,
        &cat(&[
            b"HTTP/1.1 431 Too Large\r\nContent-Length: 0\r\n\r\n",
            &ok(200, ""),
        ]),
    );
    check(
        &s,
        &[
            done(1, req("GET", "/big", None, "/big"), 2, 431, 0),
            done(1, req("GET", "/ok", Some("h"), "/ok"), 2, 200, 0),
        ],
        stats(1, 0, 0, 0),
    );
}

#[test]
fn capture_prefix_of_every_call_on_a_long_keep_alive_connection() {
    // The kernel copies only the first 40 bytes of each write: every head is cut (each cut
    // counts in lost_in_gap), yet every exchange pairs and the connection never loses step.
    let cap = 40;
    let mut s = Script::new();
    let mut expected = Vec::new();
    for i in 0..20u64 {
        let path = format!("/items/{i}");
        let request = get(&path, "shop");
        let body = "z".repeat(10 * i as usize + 1);
        let response = ok(200, &body);
        let (req_cap, req_missing) = request.split_at(request.len().min(cap));
        s = s.push(CLIENT, 100 * i, req_cap, req_missing.len() as u64);
        let (resp_cap, resp_missing) = response.split_at(response.len().min(cap));
        s = s.push(SERVER, 100 * i + 50, resp_cap, resp_missing.len() as u64);
        let e = done(
            100 * i,
            req("GET", &path, Some("shop"), "/items/{id}"),
            100 * i + 50,
            200,
            0,
        );
        expected.push(truncated(e));
    }
    check(&s, &expected, stats(0, 0, 40, 0));
}

/// Losses of whole calls (`ConnParser::lost`) one after the other on a keep-alive
/// connection: each lost answer is reported with the next request, while the responses are
/// still resynchronising after the loss before. Every loss must forget the requests it may
/// have answered, or from the second loss on every answer pairs with the request before.
#[test]
fn losses_in_a_row_each_forget_the_requests_they_may_have_answered() {
    use wirelens_protocols::http::HttpParser;
    use wirelens_protocols::{Chunk, ConnParser, Exchange, Request, Response};
    let mut p = HttpParser::new();
    let mut out: Vec<Exchange> = Vec::new();
    let push = |p: &mut HttpParser, side: Side, ts: u64, data: &[u8], out: &mut Vec<Exchange>| {
        p.push(
            Chunk {
                side,
                ts_ns: ts,
                data,
                missing: 0,
            },
            out,
        )
    };
    let answer = ok(404, "gone").len() as u64;
    push(&mut p, CLIENT, 1, &get("/a", "h"), &mut out);
    for (i, path) in ["/b", "/c", "/d"].iter().enumerate() {
        let ts = 10 * (i as u64 + 1);
        // The answer to the request before was lost; the next request carries the report.
        p.lost(SERVER, ts, answer, &mut out);
        push(&mut p, CLIENT, ts + 1, &get(path, "h"), &mut out);
    }
    push(&mut p, SERVER, 50, &ok(201, "made"), &mut out);
    let paired: Vec<(String, u16)> = out
        .iter()
        .filter_map(|e| match (&e.request, &e.response) {
            (Request::Http(q), Some(Response::Http(r))) => Some((q.path.clone(), r.status)),
            _ => None,
        })
        .collect();
    assert_eq!(paired, vec![("/d".to_string(), 201)], "{out:?}");
    assert_eq!(p.stats().lost_in_gap, 3, "{:?}", p.stats());
}
