//! Message flows of the PostgreSQL parser (PostgreSQL docs, section 55.2): startup, simple and
//! extended queries, pipelining, errors, COPY, asynchronous messages, SSL negotiation,
//! cancellation, timeouts and closes. Every script is also run byte by byte and in 7-byte
//! pieces, with the same result required.

mod pgsql_support;

use pgsql_support::*;
use wirelens_protocols::Outcome;

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[test]
fn startup_and_one_simple_query() {
    let r = Script::new()
        .client(1, &startup("postgres", "db"))
        .server(2, &startup_reply())
        .client(10, &query("SELECT * FROM t;"))
        .server(15, &[rows(3), ready(b'I')].concat())
        .client(20, &terminate())
        .close(21)
        .run();
    assert_eq!(lines(&r), s(&["simple SELECT * FROM t; -> 3"]));
    let e = &r.exchanges[0];
    assert_eq!((e.req_ts_ns, e.resp_ts_ns), (10, Some(15)));
    assert_eq!(e.outcome, Outcome::Complete);
    assert!(!e.truncated);
    assert_eq!(r.stats, Default::default());
}

#[test]
fn authentication_messages_are_skipped() {
    // MD5 then SASL exchanges: no records, nothing unmatched.
    let r = Script::new()
        .client(1, &startup("u", "db"))
        .server(2, &auth(5, b"salt"))
        .client(3, &password("md5abcdef"))
        .server(4, &auth(10, b"SCRAM-SHA-256\0\0"))
        .client(5, &password("n,,n=,r=nonce"))
        .server(6, &auth(11, b"r=nonce2,s=salt,i=4096"))
        .client(7, &password("c=biws,r=nonce2,p=proof"))
        .server(8, &auth(12, b"v=sig"))
        .server(9, &startup_reply())
        .client(10, &query("select 1"))
        .server(11, &[rows(1), ready(b'I')].concat())
        .run();
    assert_eq!(lines(&r), s(&["simple select 1 -> 1"]));
    assert_eq!(r.stats, Default::default());
}

#[test]
fn startup_error_is_not_a_record() {
    let r = Script::new()
        .client(1, &startup("nobody", "nodb"))
        .server(2, &error("3D000", "database \"nodb\" does not exist", None))
        .close(3)
        .run();
    assert!(r.exchanges.is_empty());
    assert_eq!(r.stats, Default::default());
}

#[test]
fn several_statements_in_one_query() {
    let text = "BEGIN; INSERT INTO t VALUES (1),(2); UPDATE t SET a = 1; COMMIT";
    let r = Script::new()
        .client(10, &query(text))
        .server(
            11,
            &[
                complete("BEGIN"),
                complete("INSERT 0 2"),
                notice("a notice in between"),
                complete("UPDATE 2"),
            ]
            .concat(),
        )
        .server(12, &[complete("COMMIT"), ready(b'I')].concat())
        .run();
    assert_eq!(
        lines(&r),
        s(&[
            "simple BEGIN; -> -",
            "simple INSERT INTO t VALUES (1),(2); -> 2",
            "simple UPDATE t SET a = 1; -> 2",
            "simple COMMIT -> -",
        ])
    );
    let ts: Vec<_> = r
        .exchanges
        .iter()
        .map(|e| (e.req_ts_ns, e.resp_ts_ns))
        .collect();
    assert_eq!(
        ts,
        [
            (10, Some(11)),
            (10, Some(11)),
            (10, Some(11)),
            (10, Some(12))
        ]
    );
}

#[test]
fn runtime_error_stops_the_remaining_statements() {
    let text = "SELECT 1; SELECT * FROM nope; SELECT 3;";
    let r = Script::new()
        .client(1, &query(text))
        .server(
            2,
            &[
                rows(1),
                error("42P01", "relation \"nope\" does not exist", Some(25)),
                ready(b'I'),
            ]
            .concat(),
        )
        .run();
    assert_eq!(
        lines(&r),
        s(&[
            "simple SELECT 1; -> 1",
            "simple SELECT * FROM nope; -> E 42P01"
        ])
    );
    let e = resp(&r.exchanges[1]).unwrap();
    assert_eq!(
        e.message.as_deref(),
        Some("relation \"nope\" does not exist")
    );
}

#[test]
fn syntax_error_is_reported_for_the_statement_it_points_into() {
    // A syntax error anywhere aborts the whole string before any statement runs.
    let text = "SELECT 1; SELEC 2; SELECT 3";
    let r = Script::new()
        .client(1, &query(text))
        .server(
            2,
            &[
                error("42601", "syntax error at or near \"SELEC\"", Some(11)),
                ready(b'I'),
            ]
            .concat(),
        )
        .run();
    assert_eq!(lines(&r), s(&["simple SELEC 2; -> E 42601"]));
}

#[test]
fn empty_query_string() {
    let r = Script::new()
        .client(1, &query(""))
        .server(2, &[empty_query(), ready(b'I')].concat())
        .client(3, &query("  ;  "))
        .server(4, &[empty_query(), ready(b'I')].concat())
        .run();
    assert_eq!(lines(&r), s(&["simple  -> -", "simple   ;   -> -"]));
}

#[test]
fn async_messages_are_never_responses() {
    let r = Script::new()
        .server(1, &notification("ch", "early"))
        .client(2, &query("LISTEN ch"))
        .server(
            3,
            &[
                param_status("TimeZone", "UTC"),
                notice("n"),
                complete("LISTEN"),
                notification("ch", "hello"),
                ready(b'I'),
            ]
            .concat(),
        )
        .server(
            4,
            &[notification("ch", "idle"), param_status("a", "b")].concat(),
        )
        .client(5, &query("SELECT 2"))
        .server(6, &[rows(1), ready(b'I')].concat())
        .run();
    assert_eq!(
        lines(&r),
        s(&["simple LISTEN ch -> -", "simple SELECT 2 -> 1"])
    );
    assert_eq!(r.stats, Default::default());
}

#[test]
fn extended_unnamed_and_named_statements() {
    let r = Script::new()
        .client(1, &extended("SELECT $1::int", &["7"]))
        .server(2, &extended_rows(1))
        // PQprepare: Parse + Sync; then PQexecPrepared twice.
        .client(3, &[parse("s1", "UPDATE t SET a = $1"), sync()].concat())
        .server(4, &[parse_complete(), ready(b'I')].concat())
        .client(
            5,
            &[
                bind("", "s1", &["1"]),
                describe(b'P', ""),
                execute("", 0),
                sync(),
            ]
            .concat(),
        )
        .server(
            6,
            &[
                bind_complete(),
                no_data(),
                complete("UPDATE 4"),
                ready(b'I'),
            ]
            .concat(),
        )
        .client(
            7,
            &[bind("", "s1", &["2"]), execute("", 0), sync()].concat(),
        )
        .server(
            8,
            &[bind_complete(), complete("UPDATE 5"), ready(b'T')].concat(),
        )
        // The unnamed statement is still the first one.
        .client(9, &[bind("", "", &["8"]), execute("", 0), sync()].concat())
        .server(
            10,
            &[
                bind_complete(),
                data_row(&[Some("8")]),
                complete("SELECT 1"),
                ready(b'I'),
            ]
            .concat(),
        )
        .run();
    assert_eq!(
        lines(&r),
        s(&[
            "extended SELECT $1::int -> 1",
            "extended UPDATE t SET a = $1 -> 4",
            "extended UPDATE t SET a = $1 -> 5",
            "extended SELECT $1::int -> 1",
        ])
    );
    assert_eq!(r.exchanges[1].req_ts_ns, 5);
    assert_eq!(r.stats, Default::default());
}

#[test]
fn describe_statement_and_close() {
    let r = Script::new()
        .client(
            1,
            &[parse("q", "SELECT a FROM t"), describe(b'S', "q"), sync()].concat(),
        )
        .server(
            2,
            &[
                parse_complete(),
                param_desc(0),
                row_desc(&["a"]),
                ready(b'I'),
            ]
            .concat(),
        )
        .client(
            3,
            &[
                bind("p", "q", &[]),
                execute("p", 0),
                close(b'S', "q"),
                close(b'P', "p"),
                sync(),
            ]
            .concat(),
        )
        .server(
            4,
            &[
                bind_complete(),
                data_row(&[Some("1")]),
                complete("SELECT 1"),
                close_complete(),
                close_complete(),
                ready(b'I'),
            ]
            .concat(),
        )
        // `q` is closed: a Bind of it fails (26000), reported with no text.
        .client(5, &[bind("", "q", &[]), execute("", 0), sync()].concat())
        .server(
            6,
            &[
                error("26000", "prepared statement \"q\" does not exist", None),
                ready(b'I'),
            ]
            .concat(),
        )
        .run();
    assert_eq!(
        lines(&r),
        s(&["extended SELECT a FROM t -> 1", "extended  -> E 26000"])
    );
    assert_eq!(r.stats, Default::default());
}

#[test]
fn portal_suspended_counts_the_rows_sent() {
    let r = Script::new()
        .client(
            1,
            &[
                parse("", "SELECT g FROM s"),
                bind("c", "", &[]),
                execute("c", 2),
                flush(),
            ]
            .concat(),
        )
        .server(
            2,
            &[
                parse_complete(),
                bind_complete(),
                data_row(&[Some("1")]),
                data_row(&[Some("2")]),
                suspended(),
            ]
            .concat(),
        )
        .client(3, &[execute("c", 2), sync()].concat())
        .server(
            4,
            &[data_row(&[Some("3")]), complete("SELECT 1"), ready(b'T')].concat(),
        )
        .run();
    assert_eq!(
        lines(&r),
        s(&[
            "extended SELECT g FROM s -> 2",
            "extended SELECT g FROM s -> 1"
        ])
    );
    assert_eq!(r.exchanges[1].req_ts_ns, 3);
}

#[test]
fn pipeline_with_an_error_in_the_middle() {
    // Three Syncs before any response; the second batch has three Executes and fails at its
    // second: its third Execute is skipped by the server and not reported.
    let batch2 = [
        parse("", "INSERT INTO t VALUES (1)"),
        bind("", "", &[]),
        execute("", 0),
        parse("", "INSERT INTO t VALUES (1)"),
        bind("", "", &[]),
        execute("", 0),
        parse("", "SELECT 99"),
        bind("", "", &[]),
        execute("", 0),
        sync(),
    ]
    .concat();
    let client = [extended("SELECT 1", &[]), batch2, extended("SELECT 2", &[])].concat();
    let server = [
        extended_rows(1),
        parse_complete(),
        bind_complete(),
        complete("INSERT 0 1"),
        parse_complete(),
        bind_complete(),
        error(
            "23505",
            "duplicate key value violates unique constraint \"t_pkey\"",
            None,
        ),
        ready(b'I'),
        extended_rows(1),
    ]
    .concat();
    let r = Script::new().client(1, &client).server(2, &server).run();
    assert_eq!(
        lines(&r),
        s(&[
            "extended SELECT 1 -> 1",
            "extended INSERT INTO t VALUES (1) -> 1",
            "extended INSERT INTO t VALUES (1) -> E 23505",
            "extended SELECT 2 -> 1",
        ])
    );
    assert_eq!(r.stats, Default::default());
}

#[test]
fn pipeline_error_before_the_client_sent_its_sync() {
    // The error arrives while the client is still sending the batch: what it sends up to
    // the Sync is discarded by the server.
    let r = Script::new()
        .client(
            1,
            &[
                parse("", "SELEC 1"),
                bind("", "", &[]),
                execute("", 0),
                flush(),
            ]
            .concat(),
        )
        .server(2, &error("42601", "syntax error", Some(1)))
        .client(
            3,
            &[
                parse("", "SELECT 5"),
                bind("", "", &[]),
                execute("", 0),
                sync(),
            ]
            .concat(),
        )
        .server(4, &ready(b'I'))
        .client(5, &extended("SELECT 6", &[]))
        .server(6, &extended_rows(1))
        .run();
    assert_eq!(
        lines(&r),
        s(&["extended SELEC 1 -> E 42601", "extended SELECT 6 -> 1"])
    );
    assert_eq!(r.stats, Default::default());
}

#[test]
fn rejected_parse_keeps_the_old_statement() {
    let r = Script::new()
        .client(1, &[parse("s", "SELECT 1"), sync()].concat())
        .server(2, &[parse_complete(), ready(b'I')].concat())
        .client(3, &[parse("s", "SELECT 2"), sync()].concat())
        .server(
            4,
            &[
                error("42P05", "prepared statement \"s\" already exists", None),
                ready(b'I'),
            ]
            .concat(),
        )
        .client(5, &[bind("", "s", &[]), execute("", 0), sync()].concat())
        .server(
            6,
            &[
                bind_complete(),
                data_row(&[Some("1")]),
                complete("SELECT 1"),
                ready(b'I'),
            ]
            .concat(),
        )
        .run();
    assert_eq!(
        lines(&r),
        s(&["extended SELECT 2 -> E 42P05", "extended SELECT 1 -> 1"])
    );
}

#[test]
fn copy_from_stdin_simple_and_extended() {
    let r = Script::new()
        .client(1, &query("COPY t FROM STDIN"))
        .server(2, &copy_in_response(2))
        .client(
            3,
            &[
                copy_data(b"1\ta\n"),
                copy_data(b"2\tb\n"),
                copy_data(b"3\tc\n"),
                copy_done(),
            ]
            .concat(),
        )
        .server(4, &[complete("COPY 3"), ready(b'I')].concat())
        // libpq in extended mode: P/B/D/E/S, the Sync ignored in copy-in, a Sync after
        // CopyDone.
        .client(5, &extended("COPY t FROM STDIN", &[]))
        .server(
            6,
            &[
                parse_complete(),
                bind_complete(),
                no_data(),
                copy_in_response(2),
            ]
            .concat(),
        )
        .client(7, &[copy_data(b"4\td\n"), copy_done(), sync()].concat())
        .server(8, &[complete("COPY 1"), ready(b'I')].concat())
        .client(9, &query("SELECT 1"))
        .server(10, &[rows(1), ready(b'I')].concat())
        // COPY aborted by the client.
        .client(11, &query("COPY t FROM STDIN"))
        .server(12, &copy_in_response(2))
        .client(13, &[copy_data(b"5\te\n"), copy_fail("stop")].concat())
        .server(
            14,
            &[
                error("57014", "COPY from stdin failed: stop", None),
                ready(b'I'),
            ]
            .concat(),
        )
        .run();
    assert_eq!(
        lines(&r),
        s(&[
            "simple COPY t FROM STDIN -> 3",
            "extended COPY t FROM STDIN -> 1",
            "simple SELECT 1 -> 1",
            "simple COPY t FROM STDIN -> E 57014",
        ])
    );
    assert_eq!(r.stats, Default::default());
}

#[test]
fn copy_to_stdout() {
    let r = Script::new()
        .client(1, &query("COPY t TO STDOUT"))
        .server(
            2,
            &[
                copy_out_response(1),
                typed_copy(b"1\n"),
                typed_copy(b"2\n"),
                [b'c', 0, 0, 0, 4].to_vec(),
                complete("COPY 2"),
                ready(b'I'),
            ]
            .concat(),
        )
        .run();
    assert_eq!(lines(&r), s(&["simple COPY t TO STDOUT -> 2"]));
}

fn typed_copy(d: &[u8]) -> Vec<u8> {
    copy_data(d)
}

#[test]
fn ssl_refused_then_clear() {
    let r = Script::new()
        .client(1, &ssl_request())
        .server(2, b"N")
        .client(3, &startup("u", "d"))
        .server(4, &startup_reply())
        .client(5, &query("SELECT 1"))
        .server(6, &[rows(1), ready(b'I')].concat())
        .run();
    assert_eq!(lines(&r), s(&["simple SELECT 1 -> 1"]));
    // GSSENCRequest refused, then SSLRequest refused, then clear.
    let r = Script::new()
        .client(1, &gssenc_request())
        .server(2, b"N")
        .client(3, &ssl_request())
        .server(4, b"N")
        .client(5, &[startup("u", "d")].concat())
        .server(6, &startup_reply())
        .client(7, &query("SELECT 1"))
        .server(8, &[rows(1), ready(b'I')].concat())
        .run();
    assert_eq!(lines(&r), s(&["simple SELECT 1 -> 1"]));
}

#[test]
fn ssl_accepted_stops_parsing() {
    let hello = [0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5];
    let r = Script::new()
        .client(1, &ssl_request())
        .server(2, b"S")
        .client(3, &hello)
        .server(4, &[0x16, 0x03, 0x03, 0x00, 0x02, 9, 9])
        .client(5, &query("SELECT 1"))
        .server(6, &[rows(1), ready(b'I')].concat())
        .run();
    assert!(r.exchanges.is_empty());
    assert_eq!(r.stats, Default::default());
    let mut p = wirelens_protocols::pgsql::PgsqlParser::new();
    let mut out = Vec::new();
    use wirelens_protocols::{Chunk, ConnParser, Side};
    for (side, d) in [
        (Side::Client, &ssl_request()[..]),
        (Side::Server, &b"S"[..]),
    ] {
        p.push(
            Chunk {
                side,
                ts_ns: 1,
                data: d,
                missing: 0,
            },
            &mut out,
        );
    }
    assert!(p.encrypted());
    // Direct TLS (no SSLRequest): the ClientHello where a startup message was expected.
    let r = Script::new()
        .client(1, &hello)
        .server(2, &[0x16, 0x03, 0x03, 0x00, 0x02, 9, 9])
        .run();
    assert!(r.exchanges.is_empty());
    assert_eq!(r.stats, Default::default());
}

#[test]
fn cancel_request_makes_no_record() {
    let r = Script::new()
        .client(1, &cancel_request(4242, 0x1234_5678))
        .close(2)
        .run();
    assert!(r.exchanges.is_empty());
    assert_eq!(r.stats, Default::default());
    // On the cancelled connection, the query ends with 57014.
    let r = Script::new()
        .client(1, &query("SELECT pg_sleep(10)"))
        .server(
            5,
            &[
                error("57014", "canceling statement due to user request", None),
                ready(b'I'),
            ]
            .concat(),
        )
        .run();
    assert_eq!(lines(&r), s(&["simple SELECT pg_sleep(10) -> E 57014"]));
}

#[test]
fn timeout_then_late_response_and_reset() {
    let r = Script::new()
        .client(100, &query("SELECT pg_sleep(60)"))
        .client(101, &extended("SELECT 2", &[]))
        .expire(200, 50)
        .expire(300, 50)
        .server(400, &[rows(1), ready(b'I')].concat())
        .server(401, &extended_rows(1))
        .client(500, &query("SELECT 3; SELECT 4"))
        .server(501, &rows(1))
        .close(502)
        .run();
    assert_eq!(
        lines(&r),
        s(&[
            "simple SELECT pg_sleep(60) -> timeout",
            "extended SELECT 2 -> timeout",
            "simple SELECT 3; -> 1",
            "simple SELECT 4 -> reset",
        ])
    );
    assert_eq!(r.exchanges[0].outcome, Outcome::Timeout);
    assert_eq!(r.exchanges[3].outcome, Outcome::Reset);
    assert_eq!(r.stats, Default::default());
}

#[test]
fn function_call_makes_no_record_but_keeps_the_order() {
    let mut f = vec![b'F'];
    let body = [0u8, 0, 0x03, 0xe8, 0, 0, 0, 0, 0, 0];
    f.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    f.extend_from_slice(&body);
    let mut v = vec![b'V'];
    v.extend_from_slice(&8u32.to_be_bytes());
    v.extend_from_slice(&(-1i32).to_be_bytes());
    let r = Script::new()
        .client(1, &[f, query("SELECT 1")].concat())
        .server(2, &[v, ready(b'I'), rows(1), ready(b'I')].concat())
        .run();
    assert_eq!(lines(&r), s(&["simple SELECT 1 -> 1"]));
    assert_eq!(r.stats, Default::default());
}

#[test]
fn unknown_message_types_are_skipped() {
    let mut unk = vec![b'x'];
    unk.extend_from_slice(&7u32.to_be_bytes());
    unk.extend_from_slice(b"abc");
    let r = Script::new()
        .client(1, &[query("SELECT 1")].concat())
        .server(
            2,
            &[
                row_desc(&["x"]),
                unk,
                data_row(&[None]),
                complete("SELECT 1"),
                ready(b'I'),
            ]
            .concat(),
        )
        .run();
    assert_eq!(lines(&r), s(&["simple SELECT 1 -> 1"]));
    assert_eq!(r.stats, Default::default());
}
