//! Invalid bytes: counted once per resynchronisation, skipped up to the next plausible message
//! start, never a panic; messages around them still pair. Each case is also run re-cut at
//! other chunk boundaries and must give the same exchanges and counters.

mod http_support;

use http_support::*;
use wirelens_protocols::Side;

#[test]
fn garbage_before_a_request() {
    let s = Script::new()
        .client(
            1,
            b"\x00\x01\x02garbage\r\nGET / HTTP/1.1\r\nHost: g\r\n\r\n",
        )
        .server(2, &ok(200, ""));
    check(
        &s,
        &[done(1, req("GET", "/", Some("g"), "/"), 2, 200, 0)],
        stats(1, 0, 0, 0),
    );
}

#[test]
fn garbage_between_responses() {
    let s = Script::new()
        .client(1, &cat(&[&get("/a", "h"), &get("/b", "h")]))
        .server(2, &cat(&[&ok(200, "a"), b"xyz\r\n", &ok(200, "b")]));
    check(
        &s,
        &[
            done(1, req("GET", "/a", Some("h"), "/a"), 2, 200, 1),
            done(1, req("GET", "/b", Some("h"), "/b"), 2, 200, 1),
        ],
        stats(1, 0, 0, 0),
    );
}

#[test]
fn joining_a_connection_in_the_middle_of_bodies() {
    let s = Script::new()
        .client(1, b"ody of a post\r\nGET /x HTTP/1.1\r\n\r\n")
        .server(2, &cat(&[b"tail of a body", &ok(200, "")]));
    check(
        &s,
        &[done(1, req("GET", "/x", None, "/x"), 2, 200, 0)],
        stats(2, 0, 0, 0),
    );
}

#[test]
fn invalid_chunk_size_ends_the_response_and_resynchronises() {
    let s = Script::new()
        .client(1, &cat(&[&get("/a", "h"), &get("/b", "h")]))
        .server(
            2,
            &cat(&[
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabczz\r\n",
                &ok(200, "b"),
            ]),
        );
    check(
        &s,
        &[
            done(1, req("GET", "/a", Some("h"), "/a"), 2, 200, 3),
            done(1, req("GET", "/b", Some("h"), "/b"), 2, 200, 1),
        ],
        stats(1, 0, 0, 0),
    );
}

#[test]
fn invalid_content_length_pairs_without_a_body() {
    // RFC 9112 section 6.3 item 5: an invalid Content-Length leaves the framing unknown.
    let s = Script::new()
        .client(1, &cat(&[&get("/a", "h"), &get("/b", "h")]))
        .server(
            2,
            &cat(&[
                b"HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\nbodybodybody",
                &ok(200, "b"),
            ]),
        );
    check(
        &s,
        &[
            done(1, req("GET", "/a", Some("h"), "/a"), 2, 200, 0),
            done(1, req("GET", "/b", Some("h"), "/b"), 2, 200, 1),
        ],
        stats(1, 0, 0, 0),
    );
    // Differing values and a non-chunked request coding are invalid; equal values are one.
    let s = Script::new()
        .client(
            1,
            &cat(&[
                b"POST /p HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\nhello!",
                b"POST /q HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b",
                b"POST /r HTTP/1.1\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nok",
            ]),
        )
        .server(2, &cat(&[&ok(400, ""), &ok(400, ""), &ok(200, "")]));
    check(
        &s,
        &[
            done(1, req("POST", "/p", None, "/p"), 2, 400, 0),
            done(1, req("POST", "/q", None, "/q"), 2, 400, 0),
            done(1, req("POST", "/r", None, "/r"), 2, 200, 0),
        ],
        stats(2, 0, 0, 0),
    );
}

#[test]
fn malformed_request_head_is_paired_and_skipped() {
    // A header name with a space is invalid (RFC 9112 section 5.1); the request-line still
    // tells which request the server answered (with 400).
    let s = Script::new()
        .client(
            1,
            &cat(&[
                b"GET /x HTTP/1.1\r\nHost: a\r\nBad Header: v\r\nHost: b\r\n\r\n",
                &get("/y", "h"),
            ]),
        )
        .server(2, &cat(&[&ok(400, ""), &ok(200, "")]));
    check(
        &s,
        &[
            done(1, req("GET", "/x", Some("a"), "/x"), 2, 400, 0),
            done(1, req("GET", "/y", Some("h"), "/y"), 2, 200, 0),
        ],
        stats(1, 0, 0, 0),
    );
}

#[test]
fn malformed_response_head_is_paired_and_skipped() {
    let s = Script::new()
        .client(1, &cat(&[&get("/x", "h"), &get("/y", "h")]))
        .server(
            2,
            &cat(&[b"HTTP/1.1 502 Bad\r\nX\x01: v\r\n\r\n", &ok(200, "")]),
        );
    check(
        &s,
        &[
            done(1, req("GET", "/x", Some("h"), "/x"), 2, 502, 0),
            done(1, req("GET", "/y", Some("h"), "/y"), 2, 200, 0),
        ],
        stats(1, 0, 0, 0),
    );
}

#[test]
fn http2_preface_is_not_http1() {
    let s = Script::new()
        .client(
            1,
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00",
        )
        .server(
            2,
            b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64",
        )
        .close(3);
    check(&s, &[], stats(2, 0, 0, 0));
}

#[test]
fn random_bytes_on_both_sides() {
    let mut rng = Lcg(7);
    let mut s = Script::new();
    for i in 0..12 {
        let side = if i % 2 == 0 {
            Side::Client
        } else {
            Side::Server
        };
        let n = 1 + rng.below(700) as usize;
        s = s.push(side, i, &rng.bytes(n), 0);
    }
    let s = s.close(99);
    // One resynchronisation per direction: no anchor occurs in these bytes.
    check(&s, &[], stats(2, 0, 0, 0));
}

#[test]
fn anchors_inside_garbage_do_not_cost_one_error_per_byte() {
    // The request-line is plausible, the head is not: one error, the line is skipped past
    // its anchor, and the text before the next anchor is not taken for a method.
    let s = Script::new()
        .client(
            1,
            b"GET /a HTTP/1.1\r\n\x7f\r\nlower /b HTTP/1.1\r\nGET /c HTTP/1.1\r\n\r\n",
        )
        .server(2, &cat(&[&ok(400, ""), &ok(200, "")]));
    check(
        &s,
        &[
            done(1, req("GET", "/a", None, "/a"), 2, 400, 0),
            done(1, req("GET", "/c", None, "/c"), 2, 200, 0),
        ],
        stats(1, 0, 0, 0),
    );
}

#[test]
fn request_start_found_by_resynchronisation_keeps_its_chunk_time() {
    // The request-line starts in chunk 1 after garbage and completes in chunk 2: its time is
    // chunk 1's.
    let s = Script::new()
        .client(1, b"xx\r\nGET /a HT")
        .client(2, b"TP/1.1\r\n\r\n")
        .server(3, &ok(200, ""));
    check(
        &s,
        &[done(1, req("GET", "/a", None, "/a"), 3, 200, 0)],
        stats(1, 0, 0, 0),
    );
    let s = Script::new()
        .client(1, &get("/b", "h"))
        .server(2, b"\x00\x01HTTP/1")
        .server(3, b".1 200 OK\r\nContent-Length: 2\r\n")
        .server(4, b"\r\nok");
    check(
        &s,
        &[done(1, req("GET", "/b", Some("h"), "/b"), 4, 200, 2)],
        stats(1, 0, 0, 0),
    );
}
