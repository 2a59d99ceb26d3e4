//! HTTP/1 framing and pairing on fully captured streams: every case is also run byte by byte,
//! cut at every position and at random points, and must give the same exchanges and counters.

mod http_support;

use http_support::*;
use wirelens_protocols::Outcome;

#[test]
fn content_length_keep_alive() {
    let s = Script::new()
        .client(10, &get("/a", "svc"))
        .server(20, &ok(200, "hello"))
        .client(
            30,
            b"POST /users/42 HTTP/1.1\r\nHost: svc\r\nContent-Length: 3\r\n\r\nabc",
        )
        .server(40, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
    check(
        &s,
        &[
            done(10, req("GET", "/a", Some("svc"), "/a"), 20, 200, 5),
            done(
                30,
                req("POST", "/users/42", Some("svc"), "/users/{id}"),
                40,
                201,
                0,
            ),
        ],
        clean(),
    );
}

#[test]
fn chunked_bodies_with_extensions_and_trailers() {
    let resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
        5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nChecksum: abc\r\nX-T: 1\r\n\r\n";
    let post = b"POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\
        a\r\n0123456789\r\n0\r\n\r\n";
    let s = Script::new()
        .client(1, &get("/c", "h"))
        .server(2, resp)
        .client(3, post)
        .server(4, &ok(204, ""))
        .client(5, &get("/d", "h"))
        .server(6, &ok(200, "xy"));
    check(
        &s,
        &[
            done(1, req("GET", "/c", Some("h"), "/c"), 2, 200, 11),
            done(3, req("POST", "/upload", Some("h"), "/upload"), 4, 204, 0),
            done(5, req("GET", "/d", Some("h"), "/d"), 6, 200, 2),
        ],
        clean(),
    );
}

#[test]
fn pipelined_requests_pair_in_order_and_head_has_no_body() {
    let reqs = cat(&[
        &get("/1", "p"),
        b"HEAD /2 HTTP/1.1\r\nHost: p\r\n\r\n",
        b"DELETE /items/77 HTTP/1.1\r\nHost: p\r\nContent-Length: 2\r\n\r\n{}",
    ]);
    // The HEAD response announces 1000 bytes but carries none (RFC 9110 section 9.3.2).
    let resps = cat(&[
        &ok(200, "abc"),
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
        &ok(404, ""),
    ]);
    let s = Script::new().client(100, &reqs).server(200, &resps);
    check(
        &s,
        &[
            done(100, req("GET", "/1", Some("p"), "/{id}"), 200, 200, 3),
            done(100, req("HEAD", "/2", Some("p"), "/{id}"), 200, 200, 0),
            done(
                100,
                req("DELETE", "/items/77", Some("p"), "/items/{id}"),
                200,
                404,
                0,
            ),
        ],
        clean(),
    );
}

#[test]
fn no_body_for_204_and_304_even_with_content_length() {
    let s = Script::new()
        .client(1, &get("/a", "h"))
        .client(2, &get("/b", "h"))
        .client(3, &get("/c", "h"))
        .server(4, b"HTTP/1.1 204 No Content\r\nContent-Length: 12\r\n\r\n")
        .server(
            5,
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\nETag: \"x\"\r\n\r\n",
        )
        .server(6, &ok(200, "fresh"));
    check(
        &s,
        &[
            done(1, req("GET", "/a", Some("h"), "/a"), 4, 204, 0),
            done(2, req("GET", "/b", Some("h"), "/b"), 5, 304, 0),
            done(3, req("GET", "/c", Some("h"), "/c"), 6, 200, 5),
        ],
        clean(),
    );
}

#[test]
fn expect_100_continue_skips_the_interim_response() {
    let s = Script::new()
        .client(
            1,
            b"PUT /f HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
        )
        .server(2, b"HTTP/1.1 100 Continue\r\n\r\n")
        .client(3, b"data")
        .server(
            4,
            b"HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n",
        )
        .server(5, &ok(200, "ok"))
        .client(6, &get("/next", "h"))
        .server(7, &ok(200, ""));
    check(
        &s,
        &[
            done(1, req("PUT", "/f", Some("h"), "/f"), 5, 200, 2),
            done(6, req("GET", "/next", Some("h"), "/next"), 7, 200, 0),
        ],
        clean(),
    );
}

#[test]
fn switching_protocols_ends_http_parsing() {
    let s = Script::new()
        .client(
            1,
            b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        )
        .server(
            2,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello",
        )
        .client(3, b"\x81\x85\x01\x02\x03\x04iagmn")
        .server(4, b"\x88\x00 not http at all\r\n\r\n")
        .close(5);
    check(
        &s,
        &[done(1, req("GET", "/ws", Some("h"), "/ws"), 2, 101, 0)],
        clean(),
    );
}

#[test]
fn connect_tunnel_ends_http_parsing() {
    let s = Script::new()
        .client(
            1,
            b"CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal:5432\r\n\r\n",
        )
        .server(2, b"HTTP/1.1 200 Connection Established\r\n\r\n")
        .client(3, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        .server(4, b"\x16\x03\x03\x00\x7a\x02");
    check(
        &s,
        &[done(
            1,
            req(
                "CONNECT",
                "db.internal:5432",
                Some("db.internal:5432"),
                "db.internal:5432",
            ),
            2,
            200,
            0,
        )],
        clean(),
    );
}

#[test]
fn body_until_close() {
    let s = Script::new()
        .client(1, b"GET /stream HTTP/1.0\r\n\r\n")
        .server(
            2,
            b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello ",
        )
        .server(3, b"world")
        .close(9);
    check(
        &s,
        &[done(1, req("GET", "/stream", None, "/stream"), 3, 200, 11)],
        clean(),
    );
    // A reset ends it the same way: the close delimits the body.
    let s = Script::new()
        .client(1, b"GET / HTTP/1.1\r\n\r\n")
        .server(
            2,
            b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b",
        )
        .reset(3);
    check(
        &s,
        &[done(1, req("GET", "/", None, "/"), 2, 500, 2)],
        clean(),
    );
}

#[test]
fn response_without_request_is_unmatched() {
    let s = Script::new()
        .server(1, &ok(200, "stray"))
        .client(2, &get("/", "h"))
        .server(3, &ok(200, "x"));
    check(
        &s,
        &[done(2, req("GET", "/", Some("h"), "/"), 3, 200, 1)],
        stats(0, 1, 0, 0),
    );
}

#[test]
fn server_bytes_before_client_bytes_are_unmatched() {
    let s = Script::new()
        .server(5, &ok(200, ""))
        .client(5, &get("/late", "h"))
        .close(6);
    check(
        &s,
        &[unanswered(
            5,
            req("GET", "/late", Some("h"), "/late"),
            Outcome::Reset,
        )],
        stats(0, 1, 0, 0),
    );
}

#[test]
fn close_resets_waiting_requests_in_order() {
    let s = Script::new()
        .client(1, &get("/1", "h"))
        .client(2, &get("/2", "h"))
        .client(3, &get("/3", "h"))
        .server(4, &ok(200, ""))
        .reset(5);
    check(
        &s,
        &[
            done(1, req("GET", "/1", Some("h"), "/{id}"), 4, 200, 0),
            unanswered(2, req("GET", "/2", Some("h"), "/{id}"), Outcome::Reset),
            unanswered(3, req("GET", "/3", Some("h"), "/{id}"), Outcome::Reset),
        ],
        clean(),
    );
}

#[test]
fn expire_times_out_only_old_requests() {
    let s = Script::new()
        .client(100, &get("/old", "h"))
        .client(150, &get("/new", "h"))
        .expire(200, 60)
        .expire(210, 60)
        .server(220, &ok(200, "late"));
    // `/old` waited 100 > 60 at 200; `/new` waited 50 then 60 (not longer than 60); the late
    // response pairs with `/new`, the oldest still waiting.
    check(
        &s,
        &[
            unanswered(100, req("GET", "/old", Some("h"), "/old"), Outcome::Timeout),
            done(150, req("GET", "/new", Some("h"), "/new"), 220, 200, 4),
        ],
        clean(),
    );
}

#[test]
fn timestamps_come_from_first_and_last_byte_chunks() {
    // Request head spread over three chunks, response over three: req_ts is the chunk of the
    // first request byte, resp_ts the chunk of the last response byte.
    let s = Script::new()
        .client(10, b"GET /t HT")
        .client(11, b"TP/1.1\r\nHost: a\r\n")
        .client(12, b"\r\n")
        .server(20, b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n")
        .server(21, b"\r\nabc")
        .server(22, b"def")
        .client(30, b"GET /u HTTP/1.1\r\n\r\nGET /v HT")
        .client(31, b"TP/1.1\r\n\r\n")
        .server(40, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n")
        .server(41, b"z");
    let expected = [
        done(10, req("GET", "/t", Some("a"), "/t"), 22, 200, 6),
        done(30, req("GET", "/u", None, "/u"), 40, 200, 0),
        done(30, req("GET", "/v", None, "/v"), 41, 200, 1),
    ];
    assert_eq!(s.run().exchanges, expected);
    check(&s, &expected, clean());
}

#[test]
fn host_route_and_traceparent_are_read() {
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r1 = format!(
        "GET /orders/123e4567-e89b-12d3-a456-426614174000/items/9?full=1 HTTP/1.1\r\n\
         host:  shop.example:8080 \r\ntraceparent: {tp}\r\n\r\n"
    );
    // Two traceparent fields are invalid (W3C Trace Context 3.2); so is an all-zero id.
    let r2 = format!("GET /a HTTP/1.1\r\ntraceparent: {tp}\r\nTraceparent: {tp}\r\n\r\n");
    let r3 = "GET /b HTTP/1.1\r\ntraceparent: 00-00000000000000000000000000000000-00f067aa0ba902b7-01\r\n\r\n";
    let r4 = "GET /c HTTP/1.1\r\nTRACEPARENT: 00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01\r\n\r\n";
    let s = Script::new()
        .client(1, r1.as_bytes())
        .server(2, &ok(200, ""))
        .client(3, r2.as_bytes())
        .server(4, &ok(200, ""))
        .client(5, r3.as_bytes())
        .server(6, &ok(200, ""))
        .client(7, r4.as_bytes())
        .server(8, &ok(200, ""));
    let path = "/orders/123e4567-e89b-12d3-a456-426614174000/items/9?full=1";
    check(
        &s,
        &[
            traced(
                done(
                    1,
                    req(
                        "GET",
                        path,
                        Some("shop.example:8080"),
                        "/orders/{id}/items/{id}",
                    ),
                    2,
                    200,
                    0,
                ),
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "00f067aa0ba902b7",
            ),
            done(3, req("GET", "/a", None, "/a"), 4, 200, 0),
            done(5, req("GET", "/b", None, "/b"), 6, 200, 0),
            done(7, req("GET", "/c", None, "/c"), 8, 200, 0),
        ],
        clean(),
    );
}

#[test]
fn pending_queue_is_bounded() {
    let n = wirelens_protocols::http::MAX_PENDING + 6;
    let reqs: Vec<u8> = (0..n)
        .flat_map(|i| format!("GET /{i} HTTP/1.1\r\n\r\n").into_bytes())
        .collect();
    let run = Script::new()
        .client(1, &reqs)
        .server(2, &ok(200, ""))
        .close(3)
        .run();
    assert_eq!(run.stats, stats(0, 0, 0, 6));
    assert_eq!(run.exchanges.len(), wirelens_protocols::http::MAX_PENDING);
    assert_eq!(
        run.exchanges[0],
        done(1, req("GET", "/0", None, "/{id}"), 2, 200, 0)
    );
    assert_eq!(
        run.exchanges.last(),
        Some(&unanswered(
            1,
            req("GET", "/1023", None, "/{id}"),
            Outcome::Reset
        ))
    );
}

#[test]
fn leading_empty_lines_and_bare_lf_are_accepted() {
    // RFC 9112 section 2.2: a recipient may accept bare LF and ignore empty lines first.
    let s = Script::new()
        .client(1, b"\r\nGET /lf HTTP/1.1\nHost: x\n\n")
        .server(2, b"HTTP/1.1 200 OK\nContent-Length: 1\n\n!");
    check(
        &s,
        &[done(1, req("GET", "/lf", Some("x"), "/lf"), 2, 200, 1)],
        clean(),
    );
}
