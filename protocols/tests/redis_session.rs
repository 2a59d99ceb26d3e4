//! Connection state that changes pairing: publish/subscribe (RESP2 and RESP3), CLIENT REPLY
//! OFF/ON/SKIP, RESET. Replies below are what Redis 7.0 sends (recorded by hand with a raw
//! socket against `redis-server`).

mod redis_support;

use redis_support::*;
use wirelens_protocols::{Outcome, ParseStats};

fn sub2(kind: &str, ch: &str, n: i64) -> String {
    format!(
        "*3\r\n${}\r\n{kind}\r\n${}\r\n{ch}\r\n:{n}\r\n",
        kind.len(),
        ch.len()
    )
}

fn sub3(kind: &str, ch: &str, n: i64) -> String {
    format!(
        ">3\r\n${}\r\n{kind}\r\n${}\r\n{ch}\r\n:{n}\r\n",
        kind.len(),
        ch.len()
    )
}

fn msg2(ch: &str, data: &str) -> String {
    format!(
        "*3\r\n$7\r\nmessage\r\n${}\r\n{ch}\r\n${}\r\n{data}\r\n",
        ch.len(),
        data.len()
    )
}

#[test]
fn resp2_subscriber() {
    let r = run(&[
        p(C, cmd(&["SUBSCRIBE", "news", "sport"])),
        p(
            S,
            sub2("subscribe", "news", 1) + &sub2("subscribe", "sport", 2),
        ),
        p(S, msg2("news", "hello")),
        p(
            S,
            msg2("sport", "goal")
                + "*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$2\r\nhi\r\n",
        ),
        p(C, cmd(&["PSUBSCRIBE", "n*"])),
        p(S, sub2("psubscribe", "n*", 3)),
        // PING in RESP2 subscribed mode answers an array.
        p(C, cmd(&["PING"])),
        p(S, "*2\r\n$4\r\npong\r\n$0\r\n\r\n"),
        p(C, cmd(&["GET", "x"])),
        p(
            S,
            "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n",
        ),
        // UNSUBSCRIBE without channels: one confirmation per channel.
        p(C, cmd(&["UNSUBSCRIBE"])),
        p(
            S,
            sub2("unsubscribe", "sport", 2) + &sub2("unsubscribe", "news", 1),
        ),
        p(C, cmd(&["PUNSUBSCRIBE"])),
        p(S, sub2("punsubscribe", "n*", 0)),
        // No longer subscribed: an array that starts with "message" is a reply.
        p(C, cmd(&["LRANGE", "l", "0", "-1"])),
        p(S, msg2("a", "b")),
    ]);
    assert_eq!(
        exs(&r),
        [
            ok("SUBSCRIBE", 2, 10, 20),
            ok("PSUBSCRIBE", 1, 50, 60),
            ok("PING", 0, 70, 80),
            err(
                "GET",
                1,
                "ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
                90,
                100
            ),
            ok("UNSUBSCRIBE", 0, 110, 120),
            ok("PUNSUBSCRIBE", 0, 130, 140),
            ok("LRANGE", 3, 150, 160),
        ]
    );
    assert_eq!(r.out_of_band, 3);
    assert_eq!(r.stats, ParseStats::default());
}

#[test]
fn resp3_subscriber() {
    let r = run(&[
        p(C, cmd(&["HELLO", "3"])),
        p(S, "%1\r\n$5\r\nproto\r\n:3\r\n"),
        p(C, cmd(&["SUBSCRIBE", "a", "b"])),
        p(S, sub3("subscribe", "a", 1) + &sub3("subscribe", "b", 2)),
        p(S, ">3\r\n$7\r\nmessage\r\n$1\r\na\r\n$3\r\nhey\r\n"),
        p(C, cmd(&["PING"])),
        p(S, "+PONG\r\n"),
        p(C, cmd(&["SSUBSCRIBE", "s1"])),
        p(S, sub3("ssubscribe", "s1", 1)),
        p(C, cmd(&["UNSUBSCRIBE"])),
        p(
            S,
            sub3("unsubscribe", "b", 1) + &sub3("unsubscribe", "a", 0),
        ),
        // Not subscribed to anything: one confirmation with a null channel.
        p(C, cmd(&["UNSUBSCRIBE"])),
        p(S, ">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n"),
        p(C, cmd(&["SUBSCRIBE"])),
        p(
            S,
            "-ERR wrong number of arguments for 'subscribe' command\r\n",
        ),
    ]);
    assert_eq!(
        exs(&r),
        [
            ok("HELLO", 1, 10, 20),
            ok("SUBSCRIBE", 2, 30, 40),
            ok("PING", 0, 60, 70),
            ok("SSUBSCRIBE", 1, 80, 90),
            ok("UNSUBSCRIBE", 0, 100, 110),
            ok("UNSUBSCRIBE", 0, 120, 130),
            err(
                "SUBSCRIBE",
                0,
                "ERR wrong number of arguments for 'subscribe' command",
                140,
                150
            ),
        ]
    );
    assert_eq!(r.out_of_band, 1);
    assert_eq!(r.stats, ParseStats::default());
}

#[test]
fn pipelined_subscriptions_pair_with_their_first_confirmation() {
    let r = run(&[
        p(
            C,
            [
                cmd(&["SUBSCRIBE", "a", "b"]),
                cmd(&["SUBSCRIBE", "c"]),
                cmd(&["PSUBSCRIBE", "x*", "y*"]),
                cmd(&["PING"]),
            ]
            .concat(),
        ),
        p(
            S,
            sub2("subscribe", "a", 1) + &sub2("subscribe", "b", 2) + &msg2("a", "early"),
        ),
        p(
            S,
            sub2("subscribe", "c", 3)
                + &sub2("psubscribe", "x*", 4)
                + &sub2("psubscribe", "y*", 5)
                + "*2\r\n$4\r\npong\r\n$0\r\n\r\n",
        ),
    ]);
    assert_eq!(
        exs(&r),
        [
            ok("SUBSCRIBE", 2, 10, 20),
            ok("SUBSCRIBE", 1, 10, 30),
            ok("PSUBSCRIBE", 2, 10, 30),
            ok("PING", 0, 10, 30),
        ]
    );
    assert_eq!(r.out_of_band, 1);
    assert_eq!(r.stats, ParseStats::default());
}

#[test]
fn messages_without_a_subscription_seen() {
    // A capture that starts after SUBSCRIBE: messages come while nothing waits.
    let r = run(&[
        p(S, msg2("news", "1") + &msg2("news", "2")),
        p(C, cmd(&["PING"])),
        p(S, "*2\r\n$4\r\npong\r\n$0\r\n\r\n"),
    ]);
    assert_eq!(exs(&r), [ok("PING", 0, 20, 30)]);
    assert_eq!(r.out_of_band, 2);
    assert_eq!(r.stats, ParseStats::default());
}

#[test]
fn client_reply_off_skip_on() {
    let r = run(&[
        p(C, cmd(&["CLIENT", "REPLY", "OFF"])),
        p(C, cmd(&["SET", "a", "1"])),
        p(C, cmd(&["NOPE"])),
        p(C, cmd(&["CLIENT", "REPLY", "ON"])),
        p(S, "+OK\r\n"),
        p(C, cmd(&["GET", "a"])),
        p(S, "$1\r\n1\r\n"),
        p(C, cmd(&["client", "reply", "skip"])),
        p(C, cmd(&["INCR", "a"])),
        p(C, cmd(&["INCR", "a"])),
        p(S, ":3\r\n"),
        // A bad argument is an error reply, and changes nothing.
        p(C, cmd(&["CLIENT", "REPLY", "MAYBE"])),
        p(S, "-ERR syntax error\r\n"),
    ]);
    let done = Outcome::Complete;
    assert_eq!(
        exs(&r),
        [
            silent("CLIENT", 2, 10, done),
            silent("SET", 2, 20, done),
            silent("NOPE", 0, 30, done),
            ok("CLIENT", 2, 40, 50),
            ok("GET", 1, 60, 70),
            silent("CLIENT", 2, 80, done),
            silent("INCR", 1, 90, done),
            ok("INCR", 1, 100, 110),
            err("CLIENT", 2, "ERR syntax error", 120, 130),
        ]
    );
    assert_eq!(r.stats, ParseStats::default());
}

#[test]
fn silent_commands_keep_their_place_in_line() {
    // Pipelined: the silent commands are reported once the command before them is answered.
    let r = run(&[
        p(
            C,
            [
                cmd(&["GET", "a"]),
                cmd(&["CLIENT", "REPLY", "SKIP"]),
                cmd(&["SET", "b", "2"]),
                cmd(&["GET", "b"]),
            ]
            .concat(),
        ),
        p(S, "$-1\r\n"),
        p(S, "$1\r\n2\r\n"),
    ]);
    let done = Outcome::Complete;
    assert_eq!(
        exs(&r),
        [
            ok("GET", 1, 10, 20),
            silent("CLIENT", 2, 10, done),
            silent("SET", 2, 10, done),
            ok("GET", 1, 10, 30),
        ]
    );
    // At close, silent commands behind a waiting one are complete, the waiting one reset.
    let r = run_closed(&[p(
        C,
        [
            cmd(&["GET", "a"]),
            cmd(&["CLIENT", "REPLY", "OFF"]),
            cmd(&["SET", "b", "2"]),
        ]
        .concat(),
    )]);
    assert_eq!(
        exs(&r),
        [
            silent("GET", 1, 10, Outcome::Reset),
            silent("CLIENT", 2, 10, done),
            silent("SET", 2, 10, done),
        ]
    );
}

#[test]
fn reset_restores_replies_and_leaves_multi() {
    let r = run(&[
        p(C, cmd(&["MULTI"])),
        p(S, "+OK\r\n"),
        p(C, cmd(&["CLIENT", "REPLY", "OFF"])),
        p(S, "+QUEUED\r\n"),
        p(C, cmd(&["RESET"])),
        p(S, "+RESET\r\n"),
        p(C, cmd(&["CLIENT", "REPLY", "OFF"])),
        p(C, cmd(&["RESET"])),
        p(S, "+RESET\r\n"),
        p(C, cmd(&["PING"])),
        p(S, "+PONG\r\n"),
    ]);
    assert_eq!(
        exs(&r),
        [
            ok("MULTI", 0, 10, 20),
            ok("CLIENT", 2, 30, 40),
            ok("RESET", 0, 50, 60),
            silent("CLIENT", 2, 70, Outcome::Complete),
            ok("RESET", 0, 80, 90),
            ok("PING", 0, 100, 110),
        ]
    );
}
