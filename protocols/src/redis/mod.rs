//! Redis serialization protocol: RESP2, RESP3 and inline commands
//! (<https://redis.io/docs/latest/develop/reference/protocol-spec/>), FIFO pairing.
//!
//! - [`resp`]: header lines of every RESP2/RESP3 type, inline command splitting;
//! - [`frame`]: one direction's framing state machine, over captured and missing bytes,
//!   keeping what pairing needs of each message in a [`message`];
//! - [`command`] and [`names`]: the commands that change how a connection is answered, and
//!   the names of the known ones;
//! - [`session`]: what each command expects in reply, given the connection's state;
//! - [`stitch`]: command/reply pairing (pipelining, MULTI, CLIENT REPLY, publish/subscribe).

use serde::Serialize;

use crate::{Chunk, ConnParser, Exchange, ParseStats, Side};

mod command;
mod frame;
mod message;
mod names;
mod resp;
mod session;
mod stitch;

pub use frame::{MAX_DEPTH, MAX_INLINE, MAX_LINE, MAX_TEXT};
pub use stitch::MAX_PENDING;

use frame::{Dir, Framer};
use stitch::Stitcher;

/// `request` of a Redis record (record-schema.md).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RedisRequest {
    /// Upper-case first word: `GET`, `SET`, `HGETALL`, ... (of a two-word command such as
    /// `CLIENT REPLY`, the first word). At most 64 bytes of it are kept. The commonest
    /// names are static strings: no allocation per request for them.
    pub command: std::borrow::Cow<'static, str>,
    /// Number of arguments after the command.
    pub args: u32,
}

/// `response` of a Redis record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RedisResponse {
    /// The reply is a simple error (`-`) or a RESP3 bulk error (`!`) (protocol spec,
    /// "Simple errors", "Bulk errors").
    pub error: bool,
    /// The error's text as sent, code included (`ERR unknown command ...`, `WRONGTYPE ...`),
    /// at most [`MAX_TEXT`] bytes of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// RESP2 and RESP3 on one connection, commands as multibulk arrays or inline lines: frames
/// both directions and pairs replies with commands first in, first out (protocol spec,
/// "Request-Response model" and "Pipelining").
///
/// - Every RESP2/RESP3 type is framed: simple strings, errors, integers, bulk strings (null
///   ones too), arrays (null ones too), RESP3 nulls, booleans, doubles, big numbers, bulk
///   errors, verbatim strings, maps, sets, attributes (which precede the reply they
///   describe and are not one) and pushes, including RESP3's streamed strings and
///   aggregates.
/// - Replies answer commands in order. Exceptions, in [`stitch`]: under `CLIENT REPLY OFF`
///   and after `CLIENT REPLY SKIP` commands get no reply and are reported complete with
///   `response: None` as soon as they are first in line; a (P|S)(UN)SUBSCRIBE of N channels
///   pairs with its first confirmation, the other N-1 are absorbed; published messages,
///   other pushes and MONITOR's feed answer no command and are counted in
///   [`RedisParser::out_of_band`]. Inside MULTI each command pairs with its `+QUEUED` (or
///   error) and EXEC with its array.
/// - Uncaptured bytes (`Chunk::missing`) inside a blob are skipped like captured ones and
///   mark the exchange `truncated`. Where they hit a line, the message is cut there
///   (reported `truncated` when its command name or reply type was read), the loss counts
///   in `lost_in_gap` (unless it is a reply cut while no other reply was due: the gap held
///   nothing but its rest), and the direction resynchronises on the next plausible message
///   start; replies only while some reply is due (a cut reply's rest, which a large nested
///   reply makes mostly valid header lines, is skipped rather than read as unmatched
///   replies). Lost commands hold their place so that later replies still pair right;
///   replies lost in a gap leave their commands reported `truncated` without a response.
/// - Invalid bytes count one `parse_errors` per resynchronisation.
/// - At most [`MAX_PENDING`] commands wait on one connection; nesting deeper than
///   [`MAX_DEPTH`], header lines longer than [`MAX_LINE`] and inline commands longer than
///   [`MAX_INLINE`] are invalid.
pub struct RedisParser {
    requests: Framer,
    responses: Framer,
    stitch: Stitcher,
}

impl RedisParser {
    pub fn new() -> Self {
        RedisParser {
            requests: Framer::new(Dir::Requests),
            responses: Framer::new(Dir::Responses),
            stitch: Stitcher::default(),
        }
    }

    /// Server messages that answer no command: published messages delivered to a
    /// subscriber, RESP3 pushes other than subscription confirmations, MONITOR's feed.
    pub fn out_of_band(&self) -> u64 {
        self.stitch.out_of_band
    }
}

impl Default for RedisParser {
    fn default() -> Self {
        Self::new()
    }
}

impl ConnParser for RedisParser {
    fn push(&mut self, chunk: Chunk<'_>, out: &mut Vec<Exchange>) {
        let framer = match chunk.side {
            Side::Client => &mut self.requests,
            Side::Server => &mut self.responses,
        };
        framer.push(
            chunk.data,
            chunk.ts_ns,
            chunk.missing,
            &mut self.stitch,
            out,
        );
    }

    /// A reply still being read ends there, `truncated`; then every command still waiting is
    /// reset (those that expected no reply are complete).
    fn close(&mut self, _ts_ns: u64, _reset: bool, out: &mut Vec<Exchange>) {
        self.requests.close(&mut self.stitch, out);
        self.responses.close(&mut self.stitch, out);
        self.stitch.close(out);
    }

    fn expire(&mut self, now_ns: u64, timeout_ns: u64, out: &mut Vec<Exchange>) {
        self.stitch.expire(now_ns, timeout_ns, out);
    }

    fn stats(&self) -> &ParseStats {
        &self.stitch.stats
    }
}
