//! Capture gaps, garbage and captures that start mid-connection, for the PostgreSQL parser:
//! what the kernel's per-call prefix (4096 bytes by default) and lost segments do to a stream.

mod pgsql_support;

use pgsql_support::*;
use wirelens_protocols::Side;

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

const PREFIX: usize = 4096;
/// The backend's output buffer: it writes (and the kernel sees) at most this much per call.
const WRITE: usize = 8192;

/// `bytes` written in calls of at most `write` bytes, each captured up to `PREFIX`.
fn writes(mut sc: Script, side: Side, ts: u64, bytes: &[u8], write: usize) -> Script {
    for w in bytes.chunks(write) {
        let n = w.len().min(PREFIX);
        sc = sc.push(side, ts, &w[..n], (w.len() - n) as u64);
    }
    sc
}

/// A result of `n` rows of about 60 bytes each.
fn wide_rows(n: usize) -> Vec<u8> {
    let mut v = row_desc(&["id", "filler"]);
    for i in 0..n {
        v.extend(data_row(&[Some(&i.to_string()), Some(&"x".repeat(50))]));
    }
    v.extend(complete(&format!("SELECT {n}")));
    v.extend(ready(b'I'));
    v
}

#[test]
fn long_query_text_cut_by_the_prefix() {
    let text = format!("SELECT '{}'", "a".repeat(10_000));
    let sc = writes(Script::new(), Side::Client, 1, &query(&text), usize::MAX)
        .server(2, &[rows(1), ready(b'I')].concat());
    let r = sc.run();
    assert_eq!(r.exchanges.len(), 1);
    let e = &r.exchanges[0];
    assert!(e.truncated);
    let q = &req(e).query;
    assert_eq!(q.len(), PREFIX - 5);
    assert!(text.starts_with(q.as_str()));
    assert_eq!(resp(e).unwrap().rows, Some(1));
    assert_eq!(r.stats, Default::default());
}

#[test]
fn large_result_cut_in_every_write_keeps_pairing() {
    // For each size, the last write holds the CommandComplete and ReadyForQuery either in its
    // captured prefix or in the uncaptured rest; either way the next queries pair right.
    let mut branches = [0; 2];
    for n in [300, 330, 400, 460, 500, 1000] {
        let big = wide_rows(n);
        let mut sc = Script::new().client(1, &query("SELECT * FROM big"));
        sc = writes(sc, Side::Server, 2, &big, WRITE);
        sc = sc
            .client(3, &query("SELECT 1"))
            .server(4, &[rows(1), ready(b'I')].concat())
            .client(5, &extended("UPDATE t SET a = 1", &[]))
            .server(6, &extended_tag("UPDATE 7"));
        let r = sc.run();
        let tail = big.len() % WRITE;
        let lines = lines(&r);
        let end_seen = tail != 0 && tail <= PREFIX;
        branches[usize::from(end_seen)] += 1;
        // The first result's end captured: its row count is known. Not captured: it is
        // reported cut short (row count unknown) once the next result starts, and the next
        // queries pair right either way.
        let first = if end_seen {
            format!("simple SELECT * FROM big -> {n} (truncated)")
        } else {
            "simple SELECT * FROM big -> - (truncated)".to_string()
        };
        assert_eq!(
            lines,
            [
                first,
                "simple SELECT 1 -> 1".to_string(),
                "extended UPDATE t SET a = 1 -> 7".to_string(),
            ],
            "n = {n}"
        );
        // Its first write's rows, at least, were read; its end is at the last one read.
        let e = &r.exchanges[0];
        assert!(e.resp_ts_ns == Some(2), "n = {n}: {e:?}");
        // The gaps held nothing but the rest of that one result: nothing was lost.
        assert_eq!(r.stats, Default::default(), "n = {n}");
    }
    assert!(branches[0] > 0 && branches[1] > 0, "{branches:?}");
}

#[test]
fn extended_batch_cut_after_a_long_parse() {
    // libpq writes P/B/D/E/S at once; the prefix ends inside the Parse's text, so the
    // headers of Bind..Sync are lost. The result still pairs, with the Parse's text.
    let text = format!("SELECT '{}' AS filler", "b".repeat(6000));
    let batch = extended(&text, &[]);
    let sc = writes(Script::new(), Side::Client, 1, &batch, usize::MAX)
        .server(
            2,
            &[
                parse_complete(),
                bind_complete(),
                row_desc(&["filler"]),
                data_row(&[Some("b")]),
                complete("SELECT 1"),
                ready(b'I'),
            ]
            .concat(),
        )
        .client(3, &extended("SELECT 2", &[]))
        .server(4, &extended_rows(1));
    let r = sc.run();
    assert_eq!(r.exchanges.len(), 2);
    let q = &req(&r.exchanges[0]).query;
    assert!(text.starts_with(q.as_str()) && q.len() > 4000);
    assert!(r.exchanges[0].truncated);
    assert_eq!(resp(&r.exchanges[0]).unwrap().rows, Some(1));
    assert_eq!(line(&r.exchanges[1]), "extended SELECT 2 -> 1");
    assert_eq!(r.stats.lost_in_gap, 1);
    assert_eq!(r.stats.unmatched_responses, 0);
}

#[test]
fn copy_data_cut_by_the_prefix() {
    let mut data = Vec::new();
    for i in 0..2000 {
        data.extend(copy_data(format!("{i}\trow number {i}\n").as_bytes()));
    }
    data.extend(copy_done());
    let mut sc = Script::new()
        .client(1, &query("COPY t FROM STDIN"))
        .server(2, &copy_in_response(2));
    sc = writes(sc, Side::Client, 3, &data, WRITE);
    let sc = sc
        .server(4, &[complete("COPY 2000"), ready(b'I')].concat())
        .client(5, &query("SELECT count(*) FROM t"))
        .server(6, &[rows(1), ready(b'I')].concat());
    let r = sc.run();
    assert_eq!(
        lines(&r),
        s(&[
            "simple COPY t FROM STDIN -> 2000",
            "simple SELECT count(*) FROM t -> 1"
        ])
    );
    assert!(r.stats.lost_in_gap > 0);
    assert_eq!(r.stats.unmatched_responses, 0);
}

#[test]
fn capture_starts_inside_a_response() {
    // The parser's first server bytes are the tail of a DataRow, then the end of that result.
    let before = wide_rows(3);
    let r = Script::new()
        .server(1, &before[40..])
        .client(2, &query("SELECT 2"))
        .server(3, &[rows(1), ready(b'I')].concat())
        .run();
    assert_eq!(lines(&r), s(&["simple SELECT 2 -> 1"]));
    assert_eq!(r.stats.lost_in_gap, 1);
    assert_eq!(r.stats.unmatched_responses, 1);
}

#[test]
fn capture_starts_after_the_prepare() {
    // pgbench -M prepared: the statements were parsed before the capture; their Executes are
    // reported with an empty query. A Parse seen later names its statement again.
    let r = Script::new()
        .client(
            1,
            &[
                bind("", "P0_1", &["5"]),
                describe(b'P', ""),
                execute("", 0),
                sync(),
            ]
            .concat(),
        )
        .server(
            2,
            &[
                bind_complete(),
                no_data(),
                complete("UPDATE 1"),
                ready(b'T'),
            ]
            .concat(),
        )
        .client(3, &[parse("P0_2", "SELECT 2"), sync()].concat())
        .server(4, &[parse_complete(), ready(b'T')].concat())
        .client(5, &[bind("", "P0_2", &[]), execute("", 0), sync()].concat())
        .server(
            6,
            &[
                bind_complete(),
                data_row(&[Some("2")]),
                complete("SELECT 1"),
                ready(b'T'),
            ]
            .concat(),
        )
        .run();
    assert_eq!(lines(&r), s(&["extended  -> 1", "extended SELECT 2 -> 1"]));
    assert_eq!(r.stats, Default::default());
}

#[test]
fn garbage_between_messages_resynchronises() {
    let r = Script::new()
        .client(1, &query("SELECT 1"))
        .server(
            2,
            &[rows(1), b"\xff\xfe garbage \x00\x01".to_vec(), ready(b'I')].concat(),
        )
        .client(3, &[b"\x99\x98junk".to_vec(), query("SELECT 2")].concat())
        .server(4, &[rows(1), ready(b'I')].concat())
        .run();
    assert_eq!(
        lines(&r),
        s(&["simple SELECT 1 -> 1", "simple SELECT 2 -> 1"])
    );
    assert_eq!(r.stats.parse_errors, 2);
}

#[test]
fn server_gap_inside_a_data_row_is_absorbed() {
    // A gap inside one message: the length carries over it; nothing is lost.
    let body = wide_rows(10);
    let cut = 200;
    let r = Script::new()
        .client(1, &query("SELECT * FROM w"))
        .push(Side::Server, 2, &body[..cut], 10)
        .server(3, &body[cut + 10..])
        .run();
    assert_eq!(lines(&r), s(&["simple SELECT * FROM w -> 10 (truncated)"]));
    assert_eq!(r.stats, Default::default());
}

#[test]
fn lost_request_header_does_not_shift_the_next_pairs() {
    // Two simple queries, the second Q's header lost in a gap (a segment missing in replay):
    // its response is absorbed, the third pairs right.
    let q2 = query("SELECT 2");
    let r = Script::new()
        .client(1, &query("SELECT 1"))
        .server(2, &[rows(1), ready(b'I')].concat())
        .push(Side::Client, 3, &[], q2.len() as u64)
        .server(4, &[rows(1), ready(b'I')].concat())
        .client(5, &query("SELECT 3"))
        .server(6, &[rows(1), ready(b'I')].concat())
        .run();
    assert_eq!(
        lines(&r),
        s(&["simple SELECT 1 -> 1", "simple SELECT 3 -> 1"])
    );
    assert_eq!(r.stats.lost_in_gap, 1);
    assert_eq!(r.stats.unmatched_responses, 0);
}

#[test]
fn lost_response_end_is_resolved_by_the_next_request() {
    // The server's ReadyForQuery of the first query is lost; the client's next query comes
    // after it and the server's next chunk opens a response: the first is done.
    let first = [rows(1), ready(b'I')].concat();
    let r = Script::new()
        .client(1, &query("SELECT 1"))
        .push(Side::Server, 2, &first[..first.len() - 6], 6)
        .client(3, &query("SELECT 2"))
        .server(4, &[rows(1), ready(b'I')].concat())
        .close(5)
        .run();
    assert_eq!(
        lines(&r),
        s(&["simple SELECT 1 -> 1", "simple SELECT 2 -> 1"])
    );
}

#[test]
fn long_query_text_read_in_several_calls_stays_a_prefix() {
    // The server reads the 30 KB Query in 8 KB calls, each captured up to the prefix: the
    // text is what the first call captured, never bytes from after a gap appended to it.
    let text: String = (0..3000).map(|i| format!("{:09},", i)).collect();
    let sql = format!("SELECT '{text}'");
    let sc = writes(Script::new(), Side::Client, 1, &query(&sql), WRITE)
        .server(2, &[rows(1), ready(b'I')].concat());
    let r = sc.run();
    assert_eq!(r.exchanges.len(), 1);
    let e = &r.exchanges[0];
    assert!(e.truncated);
    let q = &req(e).query;
    assert!(!q.is_empty() && q.len() <= PREFIX - 5, "{} bytes", q.len());
    assert!(
        sql.starts_with(q.as_str()),
        "not a prefix: ...{}",
        &q[q.len().saturating_sub(40)..]
    );
    assert_eq!(resp(e).unwrap().rows, Some(1));
}

/// Answers lost whole in a row (`ConnParser::lost`, as the agent reports calls the ring
/// buffer could not take), each reported before the next query: the answer that comes pairs
/// with its own query, never with one whose answer was lost.
#[test]
fn answers_lost_in_a_row_never_pair_later_answers_with_earlier_queries() {
    use wirelens_protocols::pgsql::PgsqlParser;
    use wirelens_protocols::{Chunk, ConnParser, Exchange, Request, Response};
    let mut p = PgsqlParser::new();
    let mut out: Vec<Exchange> = Vec::new();
    let push = |p: &mut PgsqlParser, side: Side, ts: u64, data: &[u8], out: &mut Vec<Exchange>| {
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
    push(&mut p, Side::Client, 1, &startup("u", "d"), &mut out);
    push(&mut p, Side::Server, 2, &startup_reply(), &mut out);
    let mut answer = rows(1);
    answer.extend(ready(b'I'));
    push(&mut p, Side::Client, 10, &query("SELECT 1"), &mut out);
    p.lost(Side::Server, 20, answer.len() as u64, &mut out);
    push(&mut p, Side::Client, 20, &query("SELECT 2"), &mut out);
    p.lost(Side::Server, 30, answer.len() as u64, &mut out);
    push(&mut p, Side::Client, 30, &query("DELETE FROM t"), &mut out);
    let mut deleted = complete("DELETE 7");
    deleted.extend(ready(b'I'));
    push(&mut p, Side::Server, 40, &deleted, &mut out);
    let answered: Vec<(String, Option<u64>)> = out
        .iter()
        .filter_map(|e| match (&e.request, &e.response) {
            (Request::Pgsql(q), Some(Response::Pgsql(r))) => Some((q.query.clone(), r.rows)),
            _ => None,
        })
        .collect();
    assert!(
        answered
            .iter()
            .all(|(q, rows)| q != "DELETE FROM t" || *rows == Some(7)),
        "{out:?}"
    );
    assert!(
        answered.iter().any(|(q, _)| q == "DELETE FROM t"),
        "{out:?}"
    );
    assert!(
        answered
            .iter()
            .all(|(q, rows)| *rows != Some(7) || q == "DELETE FROM t"),
        "{out:?}"
    );
}

/// A connection past its startup, fed the way the agent feeds it.
struct Conn {
    p: wirelens_protocols::pgsql::PgsqlParser,
    out: Vec<wirelens_protocols::Exchange>,
}

impl Conn {
    fn started() -> Conn {
        let mut c = Conn {
            p: wirelens_protocols::pgsql::PgsqlParser::new(),
            out: Vec::new(),
        };
        c.push(Side::Client, 1, &startup("u", "d"));
        c.push(Side::Server, 2, &startup_reply());
        c
    }

    fn push(&mut self, side: Side, ts: u64, data: &[u8]) {
        use wirelens_protocols::{Chunk, ConnParser};
        let chunk = Chunk {
            side,
            ts_ns: ts,
            data,
            missing: 0,
        };
        self.p.push(chunk, &mut self.out);
    }

    /// What the agent hands the parser when the ring buffer lost calls of both directions:
    /// the losses, requests first, then the data of the call that carried their report, all
    /// at that call's time.
    fn losses_then(&mut self, ts: u64, lost: (u64, u64), carrier: (Side, &[u8])) {
        use wirelens_protocols::ConnParser;
        if lost.0 > 0 {
            self.p.lost(Side::Client, ts, lost.0, &mut self.out);
        }
        self.p.lost(Side::Server, ts, lost.1, &mut self.out);
        self.push(carrier.0, ts, carrier.1);
    }

    /// (query, rows) of every record with a response.
    fn answered(&self) -> Vec<(String, Option<u64>)> {
        use wirelens_protocols::{Request, Response};
        self.out
            .iter()
            .filter_map(|e| match (&e.request, &e.response) {
                (Request::Pgsql(q), Some(Response::Pgsql(r))) => Some((q.query.clone(), r.rows)),
                _ => None,
            })
            .collect()
    }
}

/// `n` rows, then ReadyForQuery.
fn answer(n: usize) -> Vec<u8> {
    let mut a = rows(n);
    a.extend(ready(b'I'));
    a
}

/// A burst of queries while the ring buffer is full: the loss of both directions is reported
/// with the read of the next query that got through, at that read's time. The answer that
/// follows is that query's, not the one of the last query captured before the loss (found
/// live: with the loss and the query at the same time, every later answer paired with the
/// query before its own).
#[test]
fn a_loss_reported_with_a_query_gives_the_next_answer_to_that_query() {
    let mut c = Conn::started();
    // Captured: a query whose answer is lost; then queries and answers lost whole.
    c.push(Side::Client, 10, &query("SELECT 2 ROWS"));
    let lost_client = 3 * query("SELECT 1 ROW").len() as u64;
    let lost_server = (answer(2).len() + 3 * answer(1).len()) as u64;
    let q = query("SELECT 1 ROW");
    c.losses_then(50, (lost_client, lost_server), (Side::Client, &q));
    c.push(Side::Server, 51, &answer(1));
    c.push(Side::Client, 60, &query("SELECT 2 ROWS"));
    c.push(Side::Server, 61, &answer(2));
    assert_eq!(
        c.answered(),
        vec![
            ("SELECT 1 ROW".to_string(), Some(1)),
            ("SELECT 2 ROWS".to_string(), Some(2)),
        ],
        "{:?}",
        c.out
    );
}

/// The same loss reported with the server's write of an answer: that answer is the one of
/// the newest request, lost with the other calls; the query captured before the loss gets
/// neither it nor any later answer.
#[test]
fn a_loss_reported_with_an_answer_gives_it_to_the_newest_request() {
    let mut c = Conn::started();
    c.push(Side::Client, 10, &query("SELECT 2 ROWS"));
    let lost_client = 2 * query("SELECT 1 ROW").len() as u64;
    let lost_server = (answer(2).len() + answer(1).len()) as u64;
    let a = answer(1);
    c.losses_then(50, (lost_client, lost_server), (Side::Server, &a));
    c.push(Side::Client, 60, &query("SELECT 2 ROWS"));
    c.push(Side::Server, 61, &answer(2));
    let got = c.answered();
    assert!(
        got.iter()
            .all(|(q, rows)| (q == "SELECT 2 ROWS") == (*rows == Some(2)) || rows.is_none()),
        "{:?}",
        c.out
    );
    assert_eq!(
        got.last(),
        Some(&("SELECT 2 ROWS".to_string(), Some(2))),
        "{:?}",
        c.out
    );
    assert!(
        !got.iter()
            .any(|(q, r)| q == "SELECT 2 ROWS" && *r == Some(1)),
        "{:?}",
        c.out
    );
}

/// The client's end of a large result: psql reads it 16 KiB at a time (or less), the capture
/// keeps the first 4 KiB of each read, and a read starts anywhere in a message (a length's
/// last byte may read as a type: 'N' is 78, 'v' 118). For every row width, the result is
/// reported once (its row count when its end was captured, else cut short), with no loss,
/// no parse error and no unmatched response.
#[test]
fn a_result_read_in_cuts_anywhere_is_reported_once() {
    for width in [0usize, 1, 5, 13, 20, 33, 47, 60, 64, 71, 88, 100, 300, 1000] {
        for read in [16320usize, 16284, 8192, 5000] {
            let n = 1200;
            let mut big = row_desc(&["id", "v"]);
            for i in 1..=n {
                big.extend(data_row(&[Some(&i.to_string()), Some(&"x".repeat(width))]));
            }
            big.extend(complete(&format!("SELECT {n}")));
            big.extend(ready(b'I'));
            let sc = Script::new().client(1, &query("SELECT * FROM wide"));
            let sc = writes(sc, Side::Server, 2, &big, read).close(3);
            let r = sc.run();
            let at = format!("width {width}, reads of {read}");
            let want = if big.len().is_multiple_of(read) || big.len() % read > PREFIX {
                "simple SELECT * FROM wide -> - (truncated)".to_string()
            } else {
                format!("simple SELECT * FROM wide -> {n} (truncated)")
            };
            assert_eq!(lines(&r), [want], "{at}");
            assert_eq!(r.stats, Default::default(), "{at}");
        }
    }
}
