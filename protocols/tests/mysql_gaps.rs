//! MySQL parser: capture gaps, captures that start mid-connection, and bytes that are not
//! MySQL. Known lengths carry the stream over gaps; lost framing is counted and recovered at
//! the next command or response.

mod mysql_support;

use mysql_support::*;
use wirelens_protocols::{ConnParser, Outcome, ParseStats};

#[test]
fn a_query_longer_than_the_captured_prefix_is_truncated_not_lost() {
    let mut c = Conv::new();
    c.handshake(BASE_CAPS);
    let text = format!("insert into t values {}", "(1,'x'),".repeat(1000));
    let q = query(&text);
    // The kernel copied the first 4096 bytes of the write.
    c.push_missing(
        wirelens_protocols::Side::Client,
        &q[..4096],
        (q.len() - 4096) as u64,
    );
    c.server(&ok(1, 1000, 2));
    c.client(&query("select 1"))
        .server(&result_set(Mode::Eof, 1, 1, 1, 2).0);
    let ex = c.take();
    assert_eq!(ex.len(), 2);
    let (req, resp) = parts(&ex[0]);
    assert!(ex[0].truncated);
    assert_eq!(req.query.as_deref(), Some(&text[..4091]));
    assert_eq!(req.operation.as_deref(), Some("INSERT"));
    assert_eq!(resp.unwrap().rows, Some(1000));
    assert!(!ex[1].truncated);
    assert_eq!(*c.parser.stats(), ParseStats::default());
}

#[test]
fn a_query_read_in_several_calls_stays_a_prefix() {
    // mariadbd reads a 24 KB packet in 8 KB calls, each captured up to 4096 bytes: the
    // statement is what the first call captured, never bytes from after a gap appended to it.
    let mut c = Conv::new();
    c.handshake(BASE_CAPS);
    let text: String = std::iter::once("insert into t values ".to_string())
        .chain((0..2000).map(|i| format!("({i:07}),")))
        .collect();
    let q = query(&text);
    for read in q.chunks(8192) {
        let n = read.len().min(4096);
        c.push_missing(
            wirelens_protocols::Side::Client,
            &read[..n],
            (read.len() - n) as u64,
        );
    }
    c.server(&ok(1, 2000, 2));
    let ex = c.take();
    assert_eq!(ex.len(), 1);
    let (req, _) = parts(&ex[0]);
    assert!(ex[0].truncated);
    let got = req.query.as_deref().unwrap_or_default();
    assert!(!got.is_empty() && got.len() <= 4091, "{} bytes", got.len());
    assert!(
        text.starts_with(got),
        "not a prefix: ...{}",
        &got[got.len().saturating_sub(40)..]
    );
}

#[test]
fn a_row_longer_than_the_prefix_keeps_the_count() {
    let mut c = Conv::new();
    c.handshake(BASE_CAPS);
    c.client(&query("select blob from t"));
    let mut r = packet(1, &[1]);
    r.extend(column_def(2, "blob"));
    r.extend(eof(3, 2));
    let mut row = vec![0xfc, 0x70, 0x17];
    row.extend(vec![b'z'; 6000]);
    r.extend(packet(4, &row));
    r.extend(packet(5, b"\x01a"));
    r.extend(eof(6, 2));
    // Captured: everything up to 100 bytes into the long row; the rest in the next write.
    let row_start = r.len() - 15 - 6007;
    c.push_missing(
        wirelens_protocols::Side::Server,
        &r[..row_start + 100],
        6007 - 100,
    );
    c.server(&r[r.len() - 15..]);
    let ex = c.take();
    assert_eq!(ex.len(), 1);
    assert_eq!(parts(&ex[0]).1.unwrap().rows, Some(2));
    assert!(ex[0].truncated);
    assert_eq!(*c.parser.stats(), ParseStats::default());
}

#[test]
fn a_gap_over_response_headers_loses_the_count_not_the_pairing() {
    let mut c = Conv::new();
    c.handshake(BASE_CAPS);
    c.client(&query("select * from big"));
    let (rs, _) = result_set(Mode::Eof, 1, 2, 400, 2);
    c.push_missing(
        wirelens_protocols::Side::Server,
        &rs[..4096],
        (rs.len() - 4096) as u64,
    );
    let lost_ts = c.ts;
    c.client(&query("select 2"));
    c.server(&result_set(Mode::Eof, 1, 1, 1, 2).0);
    c.client(&command(0x0e, b"")).server(&ok(1, 0, 2));
    let ex = c.take();
    assert_eq!(
        summary(&ex),
        vec![
            s("COM_QUERY", Some("select * from big"), None, None),
            s("COM_QUERY", Some("select 2"), None, Some(1)),
            s("COM_PING", None, None, Some(0)),
        ]
    );
    assert!(ex[0].truncated);
    assert_eq!(ex[0].resp_ts_ns, Some(lost_ts));
    assert!(!ex[1].truncated);
    // The gap held nothing but the rest of the one response waited for, reported cut short:
    // no message was lost.
    assert_eq!(c.parser.stats().lost_in_gap, 0);
    assert_eq!(c.parser.stats().parse_errors, 0);
}

#[test]
fn a_lost_response_still_streaming_ends_with_the_next_one() {
    let mut c = Conv::new();
    c.handshake(BASE_CAPS);
    c.client(&query("select * from big"));
    let (rs, _) = result_set(Mode::Eof, 1, 2, 1000, 2);
    // Written in three parts, each cut after its first 1000 bytes.
    let third = rs.len() / 3;
    for k in 0..3 {
        let end = if k == 2 { rs.len() } else { (k + 1) * third };
        let part = &rs[k * third..end];
        c.push_missing(
            wirelens_protocols::Side::Server,
            &part[..1000],
            (part.len() - 1000) as u64,
        );
    }
    let last_ts = c.ts;
    // Nothing asked for more: at the end of the capture the response is reported cut.
    c.parser.expire(u64::MAX, 0, &mut c.out);
    let ex = c.take();
    assert_eq!(
        summary(&ex),
        vec![s("COM_QUERY", Some("select * from big"), None, None)]
    );
    assert!(ex[0].truncated);
    assert_eq!(ex[0].resp_ts_ns, Some(last_ts));
    // The next command and response pair again.
    c.client(&query("select 3"))
        .server(&result_set(Mode::Eof, 1, 1, 1, 2).0);
    assert_eq!(
        summary(&c.take()),
        vec![s("COM_QUERY", Some("select 3"), None, Some(1))]
    );
}

#[test]
fn mid_connection_capture_learns_the_eof_mode_from_the_bytes() {
    for mode in [Mode::Eof, Mode::Deprecate] {
        let mut c = Conv::new();
        // The capture starts after the handshake: a prepare before any result set, so the
        // parser cannot know yet whether EOF packets follow the definitions.
        c.client(&prepare("select a, b from t where c = ?"));
        c.server(&prepare_ok(mode, 5, 2, 1));
        c.client(&prepare("update t set a = ?"));
        c.server(&prepare_ok(mode, 6, 0, 1));
        c.client(&query("select * from t"))
            .server(&result_set(mode, 1, 2, 3, 2).0);
        c.client(&query("select * from empty"))
            .server(&result_set(mode, 1, 2, 0, 2).0);
        c.client(&execute(5, 0, &[1]))
            .server(&binary_result_set(mode, 2, 2, false));
        c.client(&prepare("select 1"))
            .server(&prepare_ok(mode, 7, 1, 0));
        c.client(&command(0x0e, b"")).server(&ok(1, 0, 2));
        let t5 = Some("select a, b from t where c = ?");
        assert_eq!(
            summary(&c.take()),
            vec![
                s("COM_STMT_PREPARE", t5, None, None),
                s("COM_STMT_PREPARE", Some("update t set a = ?"), None, None),
                s("COM_QUERY", Some("select * from t"), None, Some(3)),
                s("COM_QUERY", Some("select * from empty"), None, Some(0)),
                s("COM_STMT_EXECUTE", t5, None, Some(2)),
                s("COM_STMT_PREPARE", Some("select 1"), None, None),
                s("COM_PING", None, None, Some(0)),
            ],
            "{mode:?}"
        );
        assert_eq!(*c.parser.stats(), ParseStats::default(), "{mode:?}");
    }
}

#[test]
fn capture_starting_inside_a_response() {
    let mut c = Conv::new();
    let (rs, _) = result_set(Mode::Eof, 1, 1, 50, 2);
    // A TCP segment that starts in the middle of a packet, then whole packets.
    c.server(&rs[7..200]);
    c.server(&rs[200..]);
    // An answer to a command sent before the capture.
    c.server(&ok(1, 0, 2));
    c.client(&query("select 1"))
        .server(&result_set(Mode::Eof, 1, 1, 1, 2).0);
    assert_eq!(
        summary(&c.take()),
        vec![s("COM_QUERY", Some("select 1"), None, Some(1))]
    );
    let st = c.parser.stats();
    assert_eq!(st.unmatched_responses, 1);
    assert_eq!(st.parse_errors, 0);
}

#[test]
fn a_lost_command_holds_its_place() {
    let mut c = Conv::new();
    c.handshake(BASE_CAPS);
    // The client's write was lost from its very first byte.
    c.push_missing(wirelens_protocols::Side::Client, &[], 40);
    c.server(&result_set(Mode::Eof, 1, 1, 2, 2).0);
    c.client(&query("select 5"))
        .server(&result_set(Mode::Eof, 1, 1, 5, 2).0);
    // A lost command without a response (COM_STMT_CLOSE) must not take the next response.
    c.push_missing(wirelens_protocols::Side::Client, &[], 9);
    c.client(&query("select 6"))
        .server(&result_set(Mode::Eof, 1, 1, 6, 2).0);
    assert_eq!(
        summary(&c.take()),
        vec![
            s("COM_QUERY", Some("select 5"), None, Some(5)),
            s("COM_QUERY", Some("select 6"), None, Some(6)),
        ]
    );
    assert_eq!(c.parser.stats().lost_in_gap, 2);
}

#[test]
fn garbage_is_counted_and_the_next_command_resyncs() {
    let mut c = Conv::new();
    c.handshake(BASE_CAPS);
    c.client(b"\x05\x00\x00\x07hello");
    c.client(&query("select 1"))
        .server(&result_set(Mode::Eof, 1, 1, 1, 2).0);
    assert_eq!(
        summary(&c.take()),
        vec![s("COM_QUERY", Some("select 1"), None, Some(1))]
    );
    assert_eq!(c.parser.stats().parse_errors, 1);

    // A response nobody asked for with a sequence id that cannot start one.
    c.client(&query("select 2"));
    c.server(&packet(4, b"\x01"));
    c.server(&result_set(Mode::Eof, 1, 1, 2, 2).0);
    assert_eq!(
        summary(&c.take()),
        vec![s("COM_QUERY", Some("select 2"), None, Some(2))]
    );
    assert_eq!(c.parser.stats().parse_errors, 2);
}

#[test]
fn a_connection_that_is_not_mysql_yields_nothing() {
    let mut c = Conv::new();
    c.client(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    c.server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    c.close();
    assert!(c.take().is_empty());
}

#[test]
fn pending_is_bounded() {
    let mut c = Conv::new();
    c.handshake(BASE_CAPS);
    let mut many = Vec::new();
    for _ in 0..(wirelens_protocols::mysql::MAX_PENDING + 10) {
        many.extend(command(0x0e, b""));
    }
    c.client(&many);
    c.close();
    let ex = c.take();
    assert_eq!(ex.len(), wirelens_protocols::mysql::MAX_PENDING);
    assert!(ex.iter().all(|e| e.outcome == Outcome::Reset));
    assert_eq!(c.parser.stats().pending_overflow, 10);
}

#[test]
fn a_response_never_ends_before_its_request() {
    // Found by fuzzing: bytes held from before a command (too few to tell a packet start)
    // complete an empty packet that then answers the command.
    let mut c = Conv::new();
    c.server(b"\x00\x00\x00\x01");
    c.client(&query("select 1"));
    c.server(b"\x07\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00");
    c.close();
    for e in c.take() {
        if let Some(r) = e.resp_ts_ns {
            assert!(r >= e.req_ts_ns, "{e:?}");
        }
    }
}

/// Responses lost whole in a row (`ConnParser::lost`, as the agent reports calls the ring
/// buffer could not take), each reported before the next command: the answer that does come
/// pairs with the last command, never with one whose own answer was lost. Those make no
/// record (their status was not seen) and are counted.
#[test]
fn responses_lost_in_a_row_never_pair_later_answers_with_earlier_commands() {
    let mut c = Conv::new();
    c.handshake(BASE_CAPS);
    c.take();
    c.client(&query("select 1"));
    let answer = ok(1, 1, 2).len() as u64;
    c.ts += 10;
    let ts = c.ts;
    c.parser
        .lost(wirelens_protocols::Side::Server, ts, answer, &mut c.out);
    c.client(&query("select 2"));
    c.ts += 10;
    let ts = c.ts;
    c.parser
        .lost(wirelens_protocols::Side::Server, ts, answer, &mut c.out);
    c.client(&query("delete from t")).server(&ok(1, 7, 2));
    let ex = c.take();
    // The answer that came pairs with its own command; the others are not reported as ok.
    let seen: Vec<(Option<&str>, Option<u64>, bool)> = ex
        .iter()
        .map(|e| {
            let (q, r) = parts(e);
            (q.query.as_deref(), r.and_then(|r| r.rows), e.truncated)
        })
        .collect();
    assert_eq!(
        seen,
        vec![(Some("delete from t"), Some(7), false)],
        "{ex:?}"
    );
    // One per answer lost.
    assert_eq!(c.parser.stats().lost_in_gap, 2, "{:?}", c.parser.stats());
}

/// An answer whose first packet fell in a gap (here an error: the ring buffer lost the call
/// that carried it, the rest of a long message was captured) has no status to report: the
/// command makes no record rather than an `ok` nobody saw, the loss is counted, and the next
/// command pairs with its own answer.
#[test]
fn a_command_whose_answer_started_in_a_gap_is_counted_not_reported_ok() {
    let mut c = Conv::new();
    c.handshake(BASE_CAPS);
    c.take();
    c.client(&query("select * from missing"));
    let answer = err(
        1,
        1146,
        "42S02",
        &format!("Table '{}' doesn't exist", "x".repeat(300)),
    );
    // The first 100 bytes were lost, the rest of the error packet arrived.
    c.ts += 10;
    let ts = c.ts;
    c.parser
        .lost(wirelens_protocols::Side::Server, ts, 100, &mut c.out);
    c.server(&answer[100..]);
    c.client(&query("select 1"))
        .server(&result_set(Mode::Eof, 1, 1, 1, 2).0);
    let ex = c.take();
    assert_eq!(
        summary(&ex),
        vec![s("COM_QUERY", Some("select 1"), None, Some(1))],
        "{ex:?}"
    );
    assert_eq!(ex[0].outcome, Outcome::Complete);
    assert_eq!(c.parser.stats().lost_in_gap, 1, "{:?}", c.parser.stats());
}
