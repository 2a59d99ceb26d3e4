//! Helpers of the Redis parser tests: encoding commands, running chunk scripts through
//! `RedisParser` whole and cut into pieces, and summarising exchanges.
#![allow(dead_code)]

use wirelens_protocols::redis::RedisParser;
use wirelens_protocols::{
    Chunk, ConnParser, Exchange, Outcome, ParseStats, Request, Response, Side,
};

pub use Side::{Client as C, Server as S};

/// A command as a multibulk array of bulk strings (what client libraries send).
pub fn cmd(args: &[&str]) -> Vec<u8> {
    cmd_bytes(
        &args
            .iter()
            .map(|a| a.as_bytes().to_vec())
            .collect::<Vec<_>>(),
    )
}

pub fn cmd_bytes(args: &[Vec<u8>]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        v.extend_from_slice(a);
        v.extend_from_slice(b"\r\n");
    }
    v
}

/// A bulk string reply.
pub fn bulk(s: &str) -> Vec<u8> {
    format!("${}\r\n{}\r\n", s.len(), s).into_bytes()
}

/// One push of a script: side, data, missing bytes after it.
#[derive(Clone, Debug)]
pub struct Push {
    pub side: Side,
    pub data: Vec<u8>,
    pub missing: u64,
}

pub fn p(side: Side, data: impl AsRef<[u8]>) -> Push {
    Push {
        side,
        data: data.as_ref().to_vec(),
        missing: 0,
    }
}

pub fn gap(side: Side, data: impl AsRef<[u8]>, missing: u64) -> Push {
    Push {
        side,
        data: data.as_ref().to_vec(),
        missing,
    }
}

/// What a script produced.
#[derive(Debug, PartialEq)]
pub struct Run {
    pub out: Vec<Exchange>,
    pub stats: ParseStats,
    pub out_of_band: u64,
}

/// Runs the script (push `i` at ts `10 * (i + 1)`), each push cut into pieces of at most
/// `piece` bytes (missing bytes after the last piece); closes the connection at the end
/// when `close`.
pub fn run_pieces(script: &[Push], piece: usize, close: bool) -> Run {
    let mut parser = RedisParser::new();
    let mut out = Vec::new();
    for (i, s) in script.iter().enumerate() {
        let ts = 10 * (i as u64 + 1);
        let pieces: Vec<&[u8]> = if s.data.is_empty() {
            vec![&s.data[..]]
        } else {
            s.data.chunks(piece.max(1)).collect()
        };
        let last = pieces.len() - 1;
        for (k, data) in pieces.into_iter().enumerate() {
            let missing = if k == last { s.missing } else { 0 };
            parser.push(
                Chunk {
                    side: s.side,
                    ts_ns: ts,
                    data,
                    missing,
                },
                &mut out,
            );
        }
    }
    if close {
        parser.close(10 * (script.len() as u64 + 1), false, &mut out);
    }
    Run {
        out,
        stats: parser.stats().clone(),
        out_of_band: parser.out_of_band(),
    }
}

/// Runs the script whole, and checks that cutting every push into single bytes or pieces of
/// 2, 3 and 7 bytes gives the same result.
pub fn run(script: &[Push]) -> Run {
    run_with(script, false)
}

/// As [`run`], closing the connection at the end.
pub fn run_closed(script: &[Push]) -> Run {
    run_with(script, true)
}

fn run_with(script: &[Push], close: bool) -> Run {
    let whole = run_pieces(script, usize::MAX, close);
    for piece in [1, 2, 3, 7] {
        let cut = run_pieces(script, piece, close);
        assert_eq!(whole, cut, "cut into pieces of {piece} bytes");
    }
    whole
}

/// An exchange in short: command, args, response (`None`: no response; `Some(None)`: not
/// an error; `Some(Some(text))`: error text), outcome, truncated, request ts, response ts.
#[derive(Debug, PartialEq, Eq)]
pub struct Ex {
    pub command: String,
    pub args: u32,
    pub error: Option<Option<String>>,
    pub outcome: Outcome,
    pub truncated: bool,
    pub req_ts: u64,
    pub resp_ts: Option<u64>,
}

pub fn ex(e: &Exchange) -> Ex {
    let Request::Redis(r) = &e.request else {
        panic!("not a Redis request: {e:?}")
    };
    let error = e.response.as_ref().map(|resp| {
        let Response::Redis(resp) = resp else {
            panic!("not a Redis response: {e:?}")
        };
        assert_eq!(resp.error, resp.message.is_some(), "{resp:?}");
        resp.message.clone()
    });
    Ex {
        command: r.command.to_string(),
        args: r.args,
        error,
        outcome: e.outcome,
        truncated: e.truncated,
        req_ts: e.req_ts_ns,
        resp_ts: e.resp_ts_ns,
    }
}

/// Commands of the exchanges, in order.
pub fn commands(run: &Run) -> Vec<String> {
    run.out.iter().map(|e| ex(e).command).collect()
}

/// A complete, untruncated, non-error exchange.
pub fn ok(command: &str, args: u32, req_ts: u64, resp_ts: u64) -> Ex {
    Ex {
        command: command.into(),
        args,
        error: Some(None),
        outcome: Outcome::Complete,
        truncated: false,
        req_ts,
        resp_ts: Some(resp_ts),
    }
}

/// A complete exchange whose reply is an error with `text`.
pub fn err(command: &str, args: u32, text: &str, req_ts: u64, resp_ts: u64) -> Ex {
    Ex {
        error: Some(Some(text.into())),
        ..ok(command, args, req_ts, resp_ts)
    }
}

/// A command that got no reply, reported with `outcome`.
pub fn silent(command: &str, args: u32, req_ts: u64, outcome: Outcome) -> Ex {
    Ex {
        command: command.into(),
        args,
        error: None,
        outcome,
        truncated: false,
        req_ts,
        resp_ts: None,
    }
}

pub fn exs(run: &Run) -> Vec<Ex> {
    run.out.iter().map(ex).collect()
}
