//! RESP2/RESP3 framing and FIFO pairing of the Redis parser: every reply type, inline
//! commands, pipelining, errors. Every script also runs cut into 1, 2, 3 and 7-byte pieces,
//! which must give the same exchanges (`redis_support::run`).

mod redis_support;

use redis_support::*;
use wirelens_protocols::redis::{MAX_DEPTH, MAX_LINE};
use wirelens_protocols::{Outcome, ParseStats};

#[test]
fn get_set_one_at_a_time() {
    let r = run(&[
        p(C, cmd(&["SET", "key:1", "hello"])),
        p(S, "+OK\r\n"),
        p(C, cmd(&["GET", "key:1"])),
        p(S, bulk("hello")),
        p(C, cmd(&["get", "missing"])),
        p(S, "$-1\r\n"),
    ]);
    assert_eq!(
        exs(&r),
        [
            ok("SET", 2, 10, 20),
            ok("GET", 1, 30, 40),
            ok("GET", 1, 50, 60)
        ]
    );
    assert_eq!(r.stats, ParseStats::default());
}

#[test]
fn pipelined_commands_pair_in_order() {
    let mut reqs = Vec::new();
    for i in 0..16 {
        reqs.extend(cmd(&["INCR", &format!("counter:{i}")]));
    }
    reqs.extend(cmd(&["LPUSH", "list", "a", "b", "c"]));
    reqs.extend(cmd(&["GET", "list"]));
    let mut reps = Vec::new();
    for i in 0..16 {
        reps.extend(format!(":{}\r\n", i + 1).into_bytes());
    }
    reps.extend(b":3\r\n");
    reps.extend(b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
    // Replies split oddly across two chunks.
    let (a, b) = reps.split_at(23);
    let r = run(&[p(C, &reqs), p(S, a), p(S, b)]);
    let mut want: Vec<Ex> = (0..16)
        .map(|i| ok("INCR", 1, 10, if i < 5 { 20 } else { 30 }))
        .collect();
    // ":1\r\n" .. ":5\r\n" are 20 bytes, ":6\r" ends at 23: the 6th reply ends in chunk 2.
    want.push(ok("LPUSH", 4, 10, 30));
    want.push(err(
        "GET",
        1,
        "WRONGTYPE Operation against a key holding the wrong kind of value",
        10,
        30,
    ));
    assert_eq!(exs(&r), want);
}

#[test]
fn errors_carry_the_servers_text() {
    let r = run(&[
        p(C, cmd(&["FOO", "bar"])),
        p(
            S,
            "-ERR unknown command 'FOO', with args beginning with: 'bar' \r\n",
        ),
        p(C, cmd(&["GET"])),
        p(S, "-ERR wrong number of arguments for 'get' command\r\n"),
        p(C, cmd(&["FCALL", "f", "0"])),
        p(S, "!21\r\nSYNTAX invalid syntax\r\n"),
    ]);
    assert_eq!(
        exs(&r),
        [
            err(
                "FOO",
                1,
                "ERR unknown command 'FOO', with args beginning with: 'bar' ",
                10,
                20
            ),
            err(
                "GET",
                0,
                "ERR wrong number of arguments for 'get' command",
                30,
                40
            ),
            err("FCALL", 2, "SYNTAX invalid syntax", 50, 60),
        ]
    );
}

#[test]
fn every_reply_type_is_framed() {
    let replies: &[&[u8]] = &[
        b"+OK\r\n",
        b":-12345\r\n",
        b"$0\r\n\r\n",
        b"$-1\r\n",
        b"*-1\r\n",
        b"*0\r\n",
        b"*3\r\n:1\r\n$1\r\na\r\n*2\r\n+x\r\n*-1\r\n",
        b"_\r\n",
        b"#t\r\n",
        b"#f\r\n",
        b",3.141\r\n",
        b",-inf\r\n",
        b"(3492890328409238509324850943850943825024385\r\n",
        b"=15\r\ntxt:Some string\r\n",
        b"%2\r\n+first\r\n:1\r\n+second\r\n%1\r\n$1\r\nk\r\n~2\r\n:1\r\n:2\r\n",
        b"~3\r\n+a\r\n+b\r\n_\r\n",
        // An attribute precedes the reply it describes.
        b"|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n*2\r\n:2039123\r\n:9543892\r\n",
        // An attribute inside an array describes an element.
        b"*2\r\n|1\r\n+ttl\r\n:3600\r\n$1\r\nv\r\n:7\r\n",
        // Streamed string and streamed aggregates (RESP3.md).
        b"$?\r\n;4\r\nHell\r\n;5\r\no wor\r\n;1\r\nd\r\n;0\r\n",
        b"*?\r\n:1\r\n:2\r\n.\r\n",
        b"%?\r\n+a\r\n:1\r\n+b\r\n*?\r\n.\r\n.\r\n",
        // Binary bulk with CR and LF inside.
        b"$6\r\na\r\nb\nc\r\n",
    ];
    let mut script = Vec::new();
    for (i, reply) in replies.iter().enumerate() {
        script.push(p(C, cmd(&["DEBUG", "PROTOCOL", &i.to_string()])));
        script.push(p(S, reply));
    }
    let r = run(&script);
    let want: Vec<Ex> = (0..replies.len() as u64)
        .map(|i| ok("DEBUG", 2, 10 + 20 * i, 20 + 20 * i))
        .collect();
    assert_eq!(exs(&r), want);
    assert_eq!(r.stats, ParseStats::default());
    assert_eq!(r.out_of_band, 0);
}

#[test]
fn pushes_are_not_replies() {
    // DEBUG PROTOCOL push (Redis 7): a push, then the real reply.
    let r = run(&[
        p(C, cmd(&["HELLO", "3"])),
        p(S, "%1\r\n$6\r\nserver\r\n$5\r\nredis\r\n"),
        p(C, cmd(&["DEBUG", "PROTOCOL", "push"])),
        p(
            S,
            ">2\r\n$16\r\nserver-cpu-usage\r\n:42\r\n$40\r\nSome real reply following the push reply\r\n",
        ),
        // Client-side caching invalidation, between replies.
        p(S, ">2\r\n$10\r\ninvalidate\r\n*1\r\n$3\r\nfoo\r\n"),
        p(C, cmd(&["GET", "foo"])),
        p(S, "_\r\n"),
    ]);
    assert_eq!(
        exs(&r),
        [
            ok("HELLO", 1, 10, 20),
            ok("DEBUG", 2, 30, 40),
            ok("GET", 1, 60, 70)
        ]
    );
    assert_eq!(r.out_of_band, 2);
    assert_eq!(r.stats, ParseStats::default());
}

#[test]
fn inline_commands() {
    let r = run(&[
        p(C, "PING\r\n"),
        p(S, "+PONG\r\n"),
        p(C, "set greeting \"hello world\" EX 10\n"),
        p(S, "+OK\r\n"),
        // Blank lines and empty multibulks are skipped by Redis without a reply.
        p(C, "\r\n   \r\n*0\r\n*-1\r\nclient reply skip\r\n"),
        p(C, "get 'it''s'\r\n"),
        p(S, "-ERR Protocol error: unbalanced quotes in request\r\n"),
    ]);
    // `get 'it''s'` has unbalanced quotes: Redis refuses it (and closes); it is invalid here.
    assert_eq!(
        exs(&r),
        [
            ok("PING", 0, 10, 20),
            ok("SET", 4, 30, 40),
            silent("CLIENT", 2, 50, Outcome::Complete),
        ]
    );
    assert_eq!(r.stats.parse_errors, 1);
}

#[test]
fn multi_exec() {
    let r = run(&[
        p(C, cmd(&["MULTI"])),
        p(S, "+OK\r\n"),
        p(C, cmd(&["SET", "a", "1"])),
        p(S, "+QUEUED\r\n"),
        p(C, cmd(&["INCR", "a"])),
        p(S, "+QUEUED\r\n"),
        p(C, cmd(&["NOPE"])),
        p(
            S,
            "-ERR unknown command 'NOPE', with args beginning with: \r\n",
        ),
        p(C, cmd(&["EXEC"])),
        p(
            S,
            "-EXECABORT Transaction discarded because of previous errors.\r\n",
        ),
        // A transaction that runs: SUBSCRIBE inside MULTI is queued like any command.
        p(
            C,
            [
                cmd(&["MULTI"]),
                cmd(&["INCR", "a"]),
                cmd(&["SUBSCRIBE", "q"]),
                cmd(&["EXEC"]),
            ]
            .concat(),
        ),
        p(
            S,
            "+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:2\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nq\r\n:1\r\n",
        ),
        p(C, cmd(&["MULTI"])),
        p(S, "+OK\r\n"),
        p(C, cmd(&["DISCARD"])),
        p(S, "+OK\r\n"),
    ]);
    assert_eq!(
        exs(&r),
        [
            ok("MULTI", 0, 10, 20),
            ok("SET", 2, 30, 40),
            ok("INCR", 1, 50, 60),
            err(
                "NOPE",
                0,
                "ERR unknown command 'NOPE', with args beginning with: ",
                70,
                80
            ),
            err(
                "EXEC",
                0,
                "EXECABORT Transaction discarded because of previous errors.",
                90,
                100
            ),
            ok("MULTI", 0, 110, 120),
            ok("INCR", 1, 110, 120),
            ok("SUBSCRIBE", 1, 110, 120),
            ok("EXEC", 0, 110, 120),
            ok("MULTI", 0, 130, 140),
            ok("DISCARD", 0, 150, 160),
        ]
    );
}

#[test]
fn nested_and_long_lines() {
    // Nesting up to MAX_DEPTH is fine; one more level is invalid.
    let deep = |n: usize| {
        let mut v = "*1\r\n".repeat(n).into_bytes();
        v.extend(b":1\r\n");
        v
    };
    let r = run(&[
        p(C, cmd(&["EVAL", "x", "0"])),
        p(S, deep(MAX_DEPTH)),
        p(C, cmd(&["EVAL", "y", "0"])),
        p(S, deep(MAX_DEPTH + 1)),
    ]);
    // The reply too deep is reported as far as it was read; the rest of its bytes are
    // skipped (no command waits for another reply), not framed as a reply nothing asked for.
    assert_eq!(
        exs(&r),
        [
            ok("EVAL", 2, 10, 20),
            Ex {
                truncated: true,
                ..ok("EVAL", 2, 30, 40)
            }
        ]
    );
    assert_eq!(r.stats.parse_errors, 1);
    assert_eq!(r.stats.unmatched_responses, 0);

    // A simple string or error longer than MAX_LINE keeps its first MAX_LINE bytes.
    let long = "x".repeat(3 * MAX_LINE);
    let r = run(&[
        p(C, cmd(&["ECHO", "a"])),
        p(S, format!("+{long}\r\n")),
        p(C, cmd(&["ECHO", "b"])),
        p(S, format!("-ERR {long}\r\n")),
        p(C, cmd(&["PING"])),
        p(S, "+PONG\r\n"),
    ]);
    let e = exs(&r);
    assert_eq!(e[0], ok("ECHO", 1, 10, 20));
    let text = e[1].error.clone().flatten().expect("error text");
    assert_eq!(text.len(), MAX_LINE - 1);
    assert!(text.starts_with("ERR xxx"));
    assert_eq!(e[2], ok("PING", 0, 50, 60));
    assert_eq!(r.stats, ParseStats::default());

    // A header line that long is invalid (at the start of a stream, where it could be the
    // middle of something, it is not even a message).
    let r = run(&[
        p(C, cmd(&["GET", "k"])),
        p(S, format!("${}\r\n", "9".repeat(2 * MAX_LINE))),
        p(C, cmd(&["GET", "k"])),
        p(S, "$1\r\nv\r\n"),
        p(C, cmd(&["GET", "k"])),
        p(S, format!("${}\r\n", "9".repeat(2 * MAX_LINE))),
    ]);
    assert_eq!(exs(&r), [ok("GET", 1, 10, 40)]);
    assert_eq!(r.stats.parse_errors, 1);
    assert_eq!(r.stats.lost_in_gap, 0);
}

#[test]
fn unmatched_replies_are_counted() {
    let r = run(&[
        p(S, "+OK\r\n:1\r\n"),
        p(C, cmd(&["PING"])),
        p(S, "+PONG\r\n"),
    ]);
    assert_eq!(exs(&r), [ok("PING", 0, 20, 30)]);
    assert_eq!(r.stats.unmatched_responses, 2);
}

#[test]
fn close_and_expire() {
    let mut script = vec![
        p(C, cmd(&["BLPOP", "q", "0"])),
        p(C, cmd(&["GET", "k"])),
        // A reply cut by the close.
        p(S, "$10\r\nabc"),
    ];
    let r = run_closed(&script);
    assert_eq!(
        exs(&r),
        [
            Ex {
                truncated: true,
                ..ok("BLPOP", 2, 10, 30)
            },
            silent("GET", 1, 20, Outcome::Reset)
        ]
    );
    script.pop();
    let mut parser = wirelens_protocols::redis::RedisParser::new();
    let mut out = Vec::new();
    use wirelens_protocols::{Chunk, ConnParser};
    for (i, s) in script.iter().enumerate() {
        parser.push(
            Chunk {
                side: s.side,
                ts_ns: 10 * (i as u64 + 1),
                data: &s.data,
                missing: 0,
            },
            &mut out,
        );
    }
    parser.expire(25, 10, &mut out);
    assert_eq!(
        out.iter().map(ex).collect::<Vec<_>>(),
        [silent("BLPOP", 2, 10, Outcome::Timeout)]
    );
    parser.expire(100, 1000, &mut out);
    assert_eq!(out.len(), 1);
    parser.close(200, true, &mut out);
    assert_eq!(ex(&out[1]), silent("GET", 1, 20, Outcome::Reset));
}

#[test]
fn monitor_feed_answers_nothing() {
    let r = run(&[
        p(C, cmd(&["MONITOR"])),
        p(S, "+OK\r\n"),
        p(
            S,
            "+1700000000.000001 [0 127.0.0.1:50000] \"get\" \"x\"\r\n+1700000000.000002 [0 127.0.0.1:50000] \"ping\"\r\n",
        ),
        p(C, cmd(&["QUIT"])),
        p(S, "+OK\r\n"),
    ]);
    assert_eq!(exs(&r), [ok("MONITOR", 0, 10, 20), ok("QUIT", 0, 40, 50)]);
    assert_eq!(r.out_of_band, 2);
}

#[test]
fn command_names_are_upper_cased_and_bounded() {
    let long = "k".repeat(100);
    let r = run(&[
        p(C, cmd(&["hGetAll", "h"])),
        p(S, "*0\r\n"),
        p(C, cmd(&[&long])),
        p(S, "-ERR unknown command\r\n"),
        p(C, cmd_bytes(&[b"g\xffet".to_vec(), b"k".to_vec()])),
        p(S, "-ERR unknown command\r\n"),
    ]);
    assert_eq!(
        commands(&r),
        [
            "HGETALL".to_string(),
            "K".repeat(64),
            "G\u{fffd}ET".to_string()
        ]
    );
}
