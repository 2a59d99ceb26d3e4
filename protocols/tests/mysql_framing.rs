//! MySQL parser: complete conversations, built byte by byte after the protocol documentation,
//! pair into the exchanges a client would count.

mod mysql_support;

use mysql_support::*;
use wirelens_protocols::mysql::Skip;
use wirelens_protocols::{ConnParser, Outcome, Side};

#[test]
fn text_protocol_ok_result_set_error_init_db_ping() {
    for mode in [Mode::Eof, Mode::Deprecate] {
        let caps = BASE_CAPS
            | if mode == Mode::Deprecate {
                DEPRECATE_EOF
            } else {
                0
            };
        let mut c = Conv::new();
        c.handshake(caps);
        c.client(&query("create table t (id int)"))
            .server(&ok(1, 0, 2));
        c.client(&query("insert into t values (1),(2),(3)"))
            .server(&ok(1, 3, 2));
        c.client(&query("select * from t"))
            .server(&result_set(mode, 1, 2, 3, 2).0);
        c.client(&query("selec oops")).server(&err(
            1,
            1064,
            "42000",
            "You have an error in your SQL syntax",
        ));
        c.client(&command(0x02, b"w")).server(&ok(1, 0, 2));
        c.client(&command(0x0e, b"")).server(&ok(1, 0, 2));
        c.client(&command(0x01, b"")).close();
        let ex = c.take();
        assert_eq!(
            summary(&ex),
            vec![
                s("COM_QUERY", Some("create table t (id int)"), None, Some(0)),
                s(
                    "COM_QUERY",
                    Some("insert into t values (1),(2),(3)"),
                    None,
                    Some(3)
                ),
                s("COM_QUERY", Some("select * from t"), None, Some(3)),
                s("COM_QUERY", Some("selec oops"), Some(1064), None),
                s("COM_INIT_DB", None, None, Some(0)),
                s("COM_PING", None, None, Some(0)),
            ],
            "{mode:?}"
        );
        let (req, resp) = parts(&ex[3]);
        assert_eq!(req.operation.as_deref(), Some("SELEC"));
        let resp = resp.unwrap();
        assert!(resp.error);
        assert_eq!(
            resp.message.as_deref(),
            Some("You have an error in your SQL syntax")
        );
        assert_eq!(parts(&ex[4]).0.schema.as_deref(), Some("w"));
        assert_eq!(parts(&ex[2]).0.operation.as_deref(), Some("SELECT"));
        for e in &ex {
            assert!(!e.truncated);
            assert!(e.latency_ns().unwrap() > 0);
        }
        assert_eq!(*c.parser.stats(), Default::default());
    }
}

#[test]
fn timestamps_are_first_request_byte_and_last_response_byte() {
    let mut c = Conv::new();
    c.handshake(BASE_CAPS);
    let q = query("select 1");
    c.client(&q[..3]); // ts 1040
    c.client(&q[3..]); // ts 1050
    let (rs, _) = result_set(Mode::Eof, 1, 1, 1, 2);
    c.server(&rs[..10]); // ts 1060
    c.server(&rs[10..rs.len() - 2]); // 1070
    c.server(&rs[rs.len() - 2..]); // 1080
    let ex = c.take();
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0].req_ts_ns, 1040);
    assert_eq!(ex[0].resp_ts_ns, Some(1080));
}

#[test]
fn prepared_statements_binary_protocol() {
    for mode in [Mode::Eof, Mode::Deprecate] {
        let caps = BASE_CAPS
            | if mode == Mode::Deprecate {
                DEPRECATE_EOF
            } else {
                0
            };
        let mut c = Conv::new();
        c.handshake(caps);
        let text = "select id, v from t where id > ?";
        c.client(&prepare(text)).server(&prepare_ok(mode, 7, 2, 1));
        c.client(&execute(7, 0, &[0]))
            .server(&binary_result_set(mode, 2, 3, false));
        // MariaDB's cached metadata: no definitions the second time.
        c.client(&execute(7, 0, &[1]))
            .server(&binary_result_set(mode, 2, 2, true));
        c.client(&prepare("insert into t values (?, ?)"))
            .server(&prepare_ok(mode, 8, 0, 2));
        c.client(&execute(8, 0, &[5, 6])).server(&ok(1, 1, 2));
        c.client(&execute(8, 0, &[5, 6])).server(&err(
            1,
            1062,
            "23000",
            "Duplicate entry '5' for key 'PRIMARY'",
        ));
        c.client(&stmt_close(8));
        c.client(&command(0x1a, &7u32.to_le_bytes()))
            .server(&ok(1, 0, 2));
        // A statement prepared before the capture: no text.
        c.client(&execute(99, 0, &[])).server(&ok(1, 0, 2));
        // Closed: its text is forgotten.
        c.client(&execute(8, 0, &[1, 2])).server(&err(
            1,
            1243,
            "HY000",
            "Unknown prepared statement handler",
        ));
        let ex = c.take();
        let ins = Some("insert into t values (?, ?)");
        assert_eq!(
            summary(&ex),
            vec![
                s("COM_STMT_PREPARE", Some(text), None, None),
                s("COM_STMT_EXECUTE", Some(text), None, Some(3)),
                s("COM_STMT_EXECUTE", Some(text), None, Some(2)),
                s("COM_STMT_PREPARE", ins, None, None),
                s("COM_STMT_EXECUTE", ins, None, Some(1)),
                s("COM_STMT_EXECUTE", ins, Some(1062), None),
                s("COM_STMT_RESET", Some(text), None, Some(0)),
                s("COM_STMT_EXECUTE", None, None, Some(0)),
                s("COM_STMT_EXECUTE", None, Some(1243), None),
            ],
            "{mode:?}"
        );
        assert_eq!(parts(&ex[4]).0.operation.as_deref(), Some("INSERT"));
        assert_eq!(*c.parser.stats(), Default::default(), "{mode:?}");
    }
}

#[test]
fn direct_execute_is_pipelined_and_uses_the_last_prepare() {
    let mut c = Conv::new();
    c.handshake(BASE_CAPS);
    let mut both = prepare("select ?");
    both.extend(execute(u32::MAX, 0, &[]));
    c.client(&both);
    let mut resp = prepare_ok(Mode::Eof, 3, 1, 1);
    resp.extend(binary_result_set(Mode::Eof, 1, 1, false));
    c.server(&resp);
    assert_eq!(
        summary(&c.take()),
        vec![
            s("COM_STMT_PREPARE", Some("select ?"), None, None),
            s("COM_STMT_EXECUTE", Some("select ?"), None, Some(1)),
        ]
    );
}

#[test]
fn multi_results_end_at_the_last_result() {
    for mode in [Mode::Eof, Mode::Deprecate] {
        let mut c = Conv::new();
        c.handshake(
            BASE_CAPS
                | if mode == Mode::Deprecate {
                    DEPRECATE_EOF
                } else {
                    0
                },
        );
        c.client(&query(
            "insert into t values (9); select * from t; select 1",
        ));
        let mut r = ok(1, 1, 2 | MORE_RESULTS);
        let (a, next) = result_set(mode, 2, 2, 4, 2 | MORE_RESULTS);
        r.extend(a);
        let (b, _) = result_set(mode, next, 1, 1, 2);
        r.extend(b);
        c.server(&r);
        // CALL: a result set, then the final OK.
        c.client(&query("call p()"));
        let (a, next) = result_set(mode, 1, 1, 2, 2 | MORE_RESULTS);
        let mut r = a;
        r.extend(ok(next, 0, 2));
        c.server(&r);
        // An error after a first result ends it.
        c.client(&query("select 1; selec"));
        let (a, next) = result_set(mode, 1, 1, 1, 2 | MORE_RESULTS);
        let mut r = a;
        r.extend(err(next, 1064, "42000", "syntax"));
        c.server(&r);
        c.client(&command(0x0e, b"")).server(&ok(1, 0, 2));
        let ex = c.take();
        assert_eq!(
            summary(&ex),
            vec![
                s(
                    "COM_QUERY",
                    Some("insert into t values (9); select * from t; select 1"),
                    None,
                    Some(6)
                ),
                s("COM_QUERY", Some("call p()"), None, Some(2)),
                s("COM_QUERY", Some("select 1; selec"), Some(1064), Some(1)),
                s("COM_PING", None, None, Some(0)),
            ],
            "{mode:?}"
        );
    }
}

#[test]
fn local_infile_upload() {
    let mut c = Conv::new();
    c.handshake(BASE_CAPS);
    c.client(&query("load data local infile '/tmp/x' into table t"));
    c.server(&packet(1, b"\xfb/tmp/x"));
    // The file, in packets whose sequence ids run on (and would wrap past 0).
    let mut up = Vec::new();
    for i in 0..300u32 {
        up.extend(packet(
            (2 + i) as u8,
            b"\x03\x00\x00\x00 looks like a command",
        ));
    }
    up.extend(packet(46, b""));
    c.client(&up);
    c.server(&ok(47, 300, 2));
    c.client(&query("select 1"))
        .server(&result_set(Mode::Eof, 1, 1, 1, 2).0);
    assert_eq!(
        summary(&c.take()),
        vec![
            s(
                "COM_QUERY",
                Some("load data local infile '/tmp/x' into table t"),
                None,
                Some(300)
            ),
            s("COM_QUERY", Some("select 1"), None, Some(1)),
        ]
    );
    assert_eq!(*c.parser.stats(), Default::default());
}

#[test]
fn other_commands_statistics_field_list_change_user_set_option() {
    let mut c = Conv::new();
    c.handshake(BASE_CAPS);
    c.client(&command(0x09, b""))
        .server(&packet(1, b"Uptime: 10  Threads: 1  Questions: 5"));
    let mut fl = column_def(1, "id");
    fl.extend(column_def(2, "v"));
    fl.extend(eof(3, 2));
    c.client(&command(0x04, b"t\0")).server(&fl);
    c.client(&command(0x11, b"bob\0\x14aaaaaaaaaaaaaaaaaaaa"));
    c.server(&packet(
        1,
        b"\xfemysql_native_password\0abcdefghijklmnopqrst\0",
    ));
    c.client(&packet(2, &[9; 20]));
    c.server(&ok(3, 0, 2));
    c.client(&command(0x1b, b"\x00\x00")).server(&eof(1, 2));
    c.client(&command(0x0e, b"")).server(&ok(1, 0, 2));
    let ex = c.take();
    assert_eq!(
        summary(&ex),
        vec![
            s("COM_STATISTICS", None, None, None),
            s("COM_FIELD_LIST", None, None, None),
            s("COM_CHANGE_USER", None, None, None),
            s("COM_SET_OPTION", None, None, None),
            s("COM_PING", None, None, Some(0)),
        ]
    );
    assert_eq!(parts(&ex[1]).0.table.as_deref(), Some("t"));
}

#[test]
fn statement_of_sixteen_mib_and_more_spans_packets() {
    let mut c = Conv::new();
    c.handshake(BASE_CAPS);
    let mut body = b"\x03insert into t values ('".to_vec();
    body.resize(0xff_ffff + 100, b'x');
    let bytes = big_packet(0, &body);
    for piece in bytes.chunks(1 << 20) {
        c.client(piece);
    }
    c.server(&ok(1, 1, 2));
    let ex = c.take();
    assert_eq!(ex.len(), 1);
    let (req, resp) = parts(&ex[0]);
    assert_eq!(
        req.query.as_ref().unwrap().len(),
        wirelens_protocols::mysql::MAX_QUERY
    );
    assert!(req
        .query
        .as_ref()
        .unwrap()
        .starts_with("insert into t values ('xxx"));
    assert_eq!(resp.unwrap().rows, Some(1));
    // Cut by the parser's own limit: the text is not all there.
    assert!(ex[0].truncated);
}

#[test]
fn a_big_result_set_wraps_sequence_ids() {
    let mut c = Conv::new();
    c.handshake(BASE_CAPS);
    c.client(&query("select * from big"));
    let (rs, _) = result_set(Mode::Eof, 1, 1, 700, 2);
    c.server(&rs);
    c.client(&query("select 1"))
        .server(&result_set(Mode::Eof, 1, 1, 1, 2).0);
    assert_eq!(
        summary(&c.take()),
        vec![
            s("COM_QUERY", Some("select * from big"), None, Some(700)),
            s("COM_QUERY", Some("select 1"), None, Some(1)),
        ]
    );
}

#[test]
fn any_split_gives_the_same_exchanges() {
    let mut conv: Vec<(Side, Vec<u8>)> = vec![
        (Side::Server, greeting(BASE_CAPS)),
        (Side::Client, handshake_response(BASE_CAPS)),
        (Side::Server, ok(2, 0, 2)),
        (Side::Client, query("select * from t")),
        (Side::Server, result_set(Mode::Eof, 1, 3, 4, 2).0),
        (Side::Client, prepare("select ? from t")),
        (Side::Server, prepare_ok(Mode::Eof, 1, 1, 1)),
        (Side::Client, execute(1, 0, &[3])),
        (Side::Server, binary_result_set(Mode::Eof, 1, 2, true)),
        (Side::Client, query("drop table nope")),
        (
            Side::Server,
            err(1, 1051, "42S02", "Unknown table 'w.nope'"),
        ),
    ];
    conv.push((Side::Client, command(0x01, b"")));
    let whole = {
        let mut c = Conv::new();
        for (side, b) in &conv {
            c.push(*side, b);
        }
        summary(&c.take())
    };
    assert_eq!(whole.len(), 4);
    for size in [1, 2, 3, 5, 7, 64] {
        let mut c = Conv::new();
        for (side, b) in &conv {
            for piece in b.chunks(size) {
                c.push(*side, piece);
            }
        }
        assert_eq!(summary(&c.take()), whole, "pieces of {size}");
        assert_eq!(*c.parser.stats(), Default::default());
    }
}

#[test]
fn tls_and_compression_are_left_alone() {
    let mut c = Conv::new();
    c.server(&greeting(BASE_CAPS | SSL));
    c.client(&ssl_request(BASE_CAPS));
    c.client(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03");
    c.client(&query("select 1"));
    c.server(&ok(1, 0, 2));
    assert!(c.take().is_empty());
    assert_eq!(c.parser.skipped(), Some(Skip::Tls));

    let mut c = Conv::new();
    c.handshake(BASE_CAPS | COMPRESS);
    c.client(b"\x0d\x00\x00\x00\x00\x00\x00\x09\x00\x00\x00\x03select 1");
    c.server(b"\x07\x00\x00\x01\x00\x00\x00\x07\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00");
    assert!(c.take().is_empty());
    assert_eq!(c.parser.skipped(), Some(Skip::Compressed));
    assert_eq!(*c.parser.stats(), Default::default());

    // Compression offered by the server but not taken by the client: parsed.
    let mut c = Conv::new();
    c.server(&greeting(BASE_CAPS | COMPRESS));
    c.client(&handshake_response(BASE_CAPS));
    c.server(&ok(2, 0, 2));
    c.client(&command(0x0e, b"")).server(&ok(1, 0, 2));
    assert_eq!(c.take().len(), 1);
    assert_eq!(c.parser.skipped(), None);
}

#[test]
fn auth_switch_and_more_data_are_skipped() {
    let mut c = Conv::new();
    c.server(&greeting(BASE_CAPS | PLUGIN_AUTH));
    c.client(&handshake_response(BASE_CAPS | PLUGIN_AUTH));
    c.server(&packet(
        2,
        b"\xfecaching_sha2_password\0abcdefghijklmnopqrst\0",
    ));
    c.client(&packet(3, &[1; 32]));
    c.server(&packet(4, b"\x01\x04"));
    c.client(&packet(5, b"secret\0"));
    c.server(&ok(6, 0, 2));
    c.client(&query("select 1"))
        .server(&result_set(Mode::Eof, 1, 1, 1, 2).0);
    assert_eq!(
        summary(&c.take()),
        vec![s("COM_QUERY", Some("select 1"), None, Some(1))]
    );
    assert_eq!(*c.parser.stats(), Default::default());
}

#[test]
fn close_and_expire() {
    let mut c = Conv::new();
    c.handshake(BASE_CAPS);
    c.client(&query("select sleep(100)"));
    let req_ts = c.ts;
    c.parser.expire(req_ts + 5, 10, &mut c.out);
    assert!(c.out.is_empty());
    c.parser.expire(req_ts + 11, 10, &mut c.out);
    let ex = c.take();
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0].outcome, Outcome::Timeout);
    assert_eq!(ex[0].resp_ts_ns, None);

    c.client(&query("select 2"));
    c.close();
    let ex = c.take();
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0].outcome, Outcome::Reset);
    assert!(ex[0].response.is_none());

    // A response cut by the close ends there.
    let mut c = Conv::new();
    c.handshake(BASE_CAPS);
    c.client(&query("select * from t"));
    let (rs, _) = result_set(Mode::Eof, 1, 1, 10, 2);
    c.server(&rs[..rs.len() / 2]);
    c.close();
    let ex = c.take();
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0].outcome, Outcome::Complete);
    assert!(ex[0].truncated);
}

#[test]
fn commands_without_response_make_no_record() {
    let mut c = Conv::new();
    c.handshake(BASE_CAPS);
    c.client(&prepare("select ?"))
        .server(&prepare_ok(Mode::Eof, 1, 1, 1));
    c.client(&command(0x18, b"\x01\x00\x00\x00\x00\x00long data"));
    c.client(&stmt_close(1));
    c.client(&command(0x0e, b"")).server(&ok(1, 0, 2));
    c.client(&command(0x01, b""));
    c.close();
    assert_eq!(
        summary(&c.take()),
        vec![
            s("COM_STMT_PREPARE", Some("select ?"), None, None),
            s("COM_PING", None, None, Some(0)),
        ]
    );
}

#[test]
fn cursor_execute_and_fetch() {
    let mut c = Conv::new();
    c.handshake(BASE_CAPS);
    c.client(&prepare("select v from t"))
        .server(&prepare_ok(Mode::Eof, 4, 1, 0));
    c.client(&execute(4, 1, &[]));
    let mut r = packet(1, &[1]);
    r.extend(column_def(2, "v"));
    r.extend(eof(3, 2 | CURSOR_EXISTS));
    c.server(&r);
    let mut f = 4u32.to_le_bytes().to_vec();
    f.extend_from_slice(&2u32.to_le_bytes());
    c.client(&command(0x1c, &f));
    let mut rows = packet(1, b"\x00\x00\x01a");
    rows.extend(packet(2, b"\x00\x00\x01b"));
    rows.extend(eof(3, 2 | CURSOR_EXISTS));
    c.server(&rows);
    let t = Some("select v from t");
    assert_eq!(
        summary(&c.take()),
        vec![
            s("COM_STMT_PREPARE", t, None, None),
            s("COM_STMT_EXECUTE", t, None, Some(0)),
            s("COM_STMT_FETCH", t, None, Some(2)),
        ]
    );
}

#[test]
fn progress_reports_are_not_errors() {
    let mut c = Conv::new();
    c.handshake(BASE_CAPS);
    c.client(&query("alter table t add column z int"));
    let mut r = packet(1, b"\xff\xff\xff\x01\x01\x02\x00\x10\x00\x00\x05stage");
    r.extend(ok(2, 0, 2));
    c.server(&r);
    assert_eq!(
        summary(&c.take()),
        vec![s(
            "COM_QUERY",
            Some("alter table t add column z int"),
            None,
            Some(0)
        )]
    );
}
