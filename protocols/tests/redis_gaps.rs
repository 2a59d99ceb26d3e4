//! Capture gaps (`Chunk::missing`) and invalid bytes: values of known length stay in sync,
//! losses of unknown length are counted, and pairing recovers.

mod redis_support;

use redis_support::*;
use wirelens_protocols::{Outcome, ParseStats};

/// `data` as a tcpdump capture with a small snaplen cuts it: `keep` captured bytes of every
/// `segment`-byte packet, the rest missing.
fn snapped(side: Side, data: &[u8], segment: usize, keep: usize) -> Vec<Push> {
    data.chunks(segment)
        .map(|s| {
            let k = keep.min(s.len());
            gap(side, &s[..k], (s.len() - k) as u64)
        })
        .collect()
}

use wirelens_protocols::Side;

#[test]
fn big_bulk_reply_cut_by_the_snaplen_stays_in_sync() {
    let value = "v".repeat(65536);
    let mut script = vec![p(C, cmd(&["GET", "big"]))];
    script.extend(snapped(S, &bulk(&value), 32768, 190));
    script.push(p(C, cmd(&["GET", "small"])));
    script.push(p(S, bulk("tiny")));
    let r = run(&script);
    assert_eq!(
        exs(&r),
        [
            Ex {
                truncated: true,
                ..ok("GET", 1, 10, 40)
            },
            ok("GET", 1, 50, 60),
        ]
    );
    assert_eq!(r.stats, ParseStats::default());
}

#[test]
fn big_argument_cut_keeps_the_command() {
    let value = "x".repeat(70000);
    let set = cmd(&["SET", "big", &value]);
    let mut script = snapped(C, &set, 65483, 190);
    script.push(p(S, "+OK\r\n"));
    script.push(p(C, cmd(&["STRLEN", "big"])));
    script.push(p(S, ":70000\r\n"));
    let r = run(&script);
    assert_eq!(
        exs(&r),
        [
            Ex {
                truncated: true,
                ..ok("SET", 2, 10, 30)
            },
            ok("STRLEN", 1, 40, 50),
        ]
    );
    assert_eq!(r.stats, ParseStats::default());
}

#[test]
fn pipelined_commands_lost_in_a_gap_absorb_their_replies() {
    // 16 GETs in one write; the capture holds the first 4 and a part of the 5th.
    let batch: Vec<u8> = (0..16)
        .flat_map(|i| cmd(&["GET", &format!("key:{i:04}")]))
        .collect();
    let each = batch.len() / 16;
    let keep = 4 * each + 10;
    let replies: Vec<u8> = (0..16).flat_map(|i| bulk(&format!("v{i:02}"))).collect();
    let r = run(&[
        gap(C, &batch[..keep], (batch.len() - keep) as u64),
        p(S, &replies),
        p(C, cmd(&["GET", "after"])),
        p(S, "$-1\r\n"),
    ]);
    let mut want: Vec<Ex> = (0..4).map(|_| ok("GET", 1, 10, 20)).collect();
    want.push(ok("GET", 1, 30, 40));
    assert_eq!(exs(&r), want);
    assert_eq!(
        r.stats,
        ParseStats {
            lost_in_gap: 1,
            ..ParseStats::default()
        }
    );
}

#[test]
fn command_name_in_a_gap() {
    // The name's bytes are missing but its length is known: the command holds its place.
    let get = cmd(&["GET", "k"]);
    let r = run(&[
        gap(C, &get[..9], (get.len() - 9) as u64),
        p(S, "$1\r\nv\r\n"),
        p(C, cmd(&["PING"])),
        p(S, "+PONG\r\n"),
    ]);
    assert_eq!(exs(&r), [ok("PING", 0, 30, 40)]);
    assert_eq!(r.stats.lost_in_gap, 1);
    assert_eq!(r.stats.unmatched_responses, 0);
}

#[test]
fn gap_inside_a_command_header_line() {
    // `*3 $3 SET $3 key $` then a gap: the command is known, its end is not.
    let set = cmd(&["SET", "key", "value"]);
    let r = run(&[
        gap(C, &set[..19], (set.len() - 19) as u64),
        p(S, "+OK\r\n"),
        p(C, cmd(&["GET", "key"])),
        p(S, bulk("value")),
    ]);
    assert_eq!(
        exs(&r),
        [
            Ex {
                truncated: true,
                ..ok("SET", 2, 10, 20)
            },
            ok("GET", 1, 30, 40),
        ]
    );
    assert_eq!(r.stats.lost_in_gap, 1);
}

#[test]
fn replies_lost_in_a_gap() {
    let r = run(&[
        p(C, cmd(&["GET", "a"])),
        // The whole reply is missing.
        gap(S, "", 12),
        p(C, cmd(&["GET", "b"])),
        p(S, bulk("b")),
        // Pipelined: the second reply's header is cut.
        p(
            C,
            [cmd(&["LRANGE", "l", "0", "-1"]), cmd(&["GET", "c"])].concat(),
        ),
        gap(S, "*3\r\n:1\r\n:", 20),
        p(C, cmd(&["GET", "d"])),
        p(S, bulk("d")),
    ]);
    let lost = |c: &str, args, ts| Ex {
        truncated: true,
        ..silent(c, args, ts, Outcome::Complete)
    };
    assert_eq!(
        exs(&r),
        [
            lost("GET", 1, 10),
            ok("GET", 1, 30, 40),
            Ex {
                truncated: true,
                ..ok("LRANGE", 3, 50, 60)
            },
            lost("GET", 1, 50),
            ok("GET", 1, 70, 80),
        ]
    );
    assert_eq!(r.stats.lost_in_gap, 2);
}

#[test]
fn error_cut_by_a_gap_keeps_its_first_words() {
    let r = run(&[
        p(C, cmd(&["LPUSH", "s", "x"])),
        gap(S, "-WRONGTYPE Operation against", 40),
        p(C, cmd(&["PING"])),
        p(S, "+PONG\r\n"),
    ]);
    assert_eq!(
        exs(&r),
        [
            Ex {
                truncated: true,
                ..err("LPUSH", 2, "WRONGTYPE Operation against", 10, 20)
            },
            ok("PING", 0, 30, 40),
        ]
    );
}

#[test]
fn garbage_then_resync() {
    let r = run(&[
        p(C, cmd(&["GET", "a"])),
        p(S, "$1\r\na\r\n"),
        p(C, cmd(&["GET", "b"])),
        // Not RESP: counted once, skipped to the next plausible reply.
        p(S, "\x00\x01garbage\r\nmore garbage\r\n"),
        p(S, "$1\r\nb\r\n"),
        p(C, b"\xff\xfe junk \r\n"),
    ]);
    assert_eq!(exs(&r)[0], ok("GET", 1, 10, 20));
    assert_eq!(r.stats.parse_errors, 1);
    // The invalid reply started nothing known; GET b pairs with the next good one.
    assert_eq!(exs(&r)[1], ok("GET", 1, 30, 50));
    // A binary "inline command" is what Redis would take for one.
    assert_eq!(r.out.len(), 2);
}

#[test]
fn mid_stream_start() {
    // The capture starts inside a big value on both sides.
    let r = run(&[
        p(C, "xxxxxxxxxxxx\r\n"),
        p(C, cmd(&["GET", "a"])),
        p(S, "yyyy\r\n$1\r\na\r\n"),
    ]);
    // "xxxx..." is no command, "yyyy" no reply: both are skipped.
    assert_eq!(exs(&r), [ok("GET", 1, 20, 30)]);
    assert_eq!(r.stats, ParseStats::default());
}

/// Replies lost whole (`ConnParser::lost`, as the agent reports calls the ring buffer could
/// not take) in a row, each reported before the next command: no later reply may pair with
/// a command whose own reply was lost.
#[test]
fn replies_lost_in_a_row_never_pair_later_replies_with_earlier_commands() {
    use wirelens_protocols::redis::RedisParser;
    use wirelens_protocols::{Chunk, ConnParser, Exchange};
    let mut parser = RedisParser::new();
    let mut out: Vec<Exchange> = Vec::new();
    let mut push = |parser: &mut RedisParser, side: Side, ts: u64, data: &[u8]| {
        parser.push(
            Chunk {
                side,
                ts_ns: ts,
                data,
                missing: 0,
            },
            &mut out,
        )
    };
    push(&mut parser, C, 10, &cmd(&["GET", "a"]));
    parser.lost(S, 30, bulk("va").len() as u64, &mut Vec::new());
    push(&mut parser, C, 30, &cmd(&["INCR", "n"]));
    parser.lost(S, 50, ":1\r\n".len() as u64, &mut Vec::new());
    push(&mut parser, C, 50, &cmd(&["SET", "k", "v"]));
    push(&mut parser, S, 60, b"+OK\r\n");
    let paired: Vec<(String, u64)> = out
        .iter()
        .map(ex)
        .filter(|e| e.resp_ts.is_some())
        .map(|e| (e.command, e.req_ts))
        .collect();
    assert_eq!(paired, vec![("SET".to_string(), 50)], "{out:?}");
}

/// A reply like `COMMAND DOCS`'s (redis-cli sends it at start): hundreds of kilobytes of
/// small nested values, which no length prefix lets a gap skip.
fn nested_reply(entries: usize) -> Vec<u8> {
    let mut r = format!("*{entries}\r\n").into_bytes();
    for i in 0..entries {
        r.extend_from_slice(b"*6\r\n$7\r\nsummary\r\n");
        r.extend(bulk(&format!("command number {i}")));
        r.extend_from_slice(b"$5\r\nsince\r\n$5\r\n1.0.0\r\n$5\r\ngroup\r\n:42\r\n");
    }
    r
}

#[test]
fn the_rest_of_a_reply_cut_by_the_capture_is_not_read_as_replies() {
    // A client reading the reply 16 KiB at a time, the capture keeping 4 KiB of each read:
    // every read's first bytes fall inside the reply, where nearly every line is a valid
    // header. With no other command waiting, none of them is a reply (no unmatched reply),
    // and the gaps held nothing but the rest of this reply (no message lost): the reply is
    // reported, truncated. (With another command waiting, `replies_lost_in_a_gap` counts.)
    let reply = nested_reply(4000);
    let mut script = vec![p(C, cmd(&["COMMAND", "DOCS"]))];
    script.extend(snapped(S, &reply, 16384, 4096));
    let after = script.len() as u64;
    script.push(p(C, cmd(&["PING"])));
    script.push(p(S, "+PONG\r\n"));
    let r = run(&script);
    assert_eq!(
        exs(&r),
        [
            Ex {
                truncated: true,
                ..ok("COMMAND", 1, 10, 20)
            },
            ok("PING", 0, 10 * (after + 1), 10 * (after + 2)),
        ]
    );
    assert_eq!(r.stats, ParseStats::default());
}
