//! PostgreSQL frontend/backend protocol 3.0 (PostgreSQL docs, chapter 55): message framing
//! and pairing by message flow.
//!
//! - [`parse`]: message headers, the bodies the pairing reads, plausibility checks
//!   (section 55.7 "Message Formats");
//! - [`split`]: the statements of a simple Query (section 55.2.2.1);
//! - [`stream`]: one direction's framing over captured and missing bytes, resynchronisation;
//! - [`names`]: prepared statements and portals (section 55.2.3);
//! - [`stitch`]: pairing (section 55.2 "Message Flow").

use serde::Serialize;

use crate::{Chunk, ConnParser, Exchange, ParseStats, Side};

mod names;
mod parse;
mod split;
mod stitch;
mod stream;

pub use names::{MAX_PORTALS, MAX_STATEMENTS, MAX_STATEMENT_BYTES};
pub use stitch::MAX_PENDING;
pub use stream::MAX_QUERY;

use parse::Dir;
use stitch::Stitcher;
use stream::Stream;

/// `request` of a PostgreSQL record (record-schema.md).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PgsqlRequest {
    pub query: String,
    /// `simple` or `extended`.
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
}

/// `response` of a PostgreSQL record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PgsqlResponse {
    pub error: bool,
    /// SQLSTATE, when error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
}

/// PostgreSQL protocol 3.0 on one connection (PostgreSQL docs, chapter 55 "Frontend/Backend
/// Protocol"): frames both directions and pairs responses with requests by message flow.
///
/// What becomes a record (one per request/response exchange):
/// - **Simple query** (`Q`, section 55.2.2): one record per statement of the query string,
///   `kind` `simple`, each paired with its own CommandComplete, EmptyQueryResponse or
///   ErrorResponse; they share the Query's request time, and each ends at its own result.
///   A query string holding one statement is reported exactly as sent; several are split as
///   the server splits them (quotes, comments, dollar quotes, `BEGIN ATOMIC` bodies).
///   After an error the server runs none of the remaining statements: they are not reported.
///   An error whose cursor position (field `P`) points into a later statement (a syntax
///   error aborts the whole string before anything runs) is reported for that statement.
///   When the captured text holds fewer statements than the server answered (text cut by
///   the capture), the extra results are reported with an empty `query` and the `operation`
///   of their command tag. `rows` comes from the CommandComplete tag (`INSERT 0 5` -> 5,
///   `SELECT 3` -> 3; none for `BEGIN`, `CREATE TABLE`).
/// - **Extended query** (section 55.2.3): one record per Execute, `kind` `extended`, whose
///   `query` is the text of the Parse behind the portal (named statements are remembered per
///   connection; the unnamed one is the last unnamed Parse; empty when the Parse came before
///   the capture). It ends at CommandComplete, EmptyQueryResponse, PortalSuspended (`rows`:
///   the DataRows sent) or ErrorResponse. Its request time is that of the first message of
///   its group (the Parse/Bind/Describe sent after the previous Execute or Sync). An
///   ErrorResponse to a Parse, Bind, Describe or Close is a record too (with the statement's
///   text). Pipelining (several Executes per Sync, several Syncs before any response) pairs
///   in order. After an error the server skips every message up to the Sync: the Executes
///   it skipped get no response and are **not reported** (the server never ran them).
/// - No record for the startup, authentication (cleartext, MD5, SASL messages are skipped),
///   ParameterStatus, BackendKeyData, NoticeResponse, NotificationResponse (asynchronous,
///   never taken for a response), FunctionCall, CancelRequest (a connection of its own that
///   the server closes without an answer), nor successful Parse/Bind/Describe/Close.
/// - COPY (section 55.2.6): CopyData/CopyDone/CopyFail are skipped in both directions; the
///   COPY statement pairs with its CommandComplete (`COPY 10` -> 10 rows) or error.
/// - SSLRequest / GSSENCRequest answered `N`: the connection goes on in clear. Answered `S`
///   or `G` (or a TLS handshake where a startup message was expected): the rest is
///   encrypted; the parser stops ([`PgsqlParser::encrypted`]).
/// - Capture gaps: a message whose length is known absorbs missing bytes and is marked
///   `truncated`; a gap over a header loses the boundary (`lost_in_gap`, unless one request
///   cycle waits and its result began: the gap then held nothing but that result's rest),
///   and the direction resynchronises at the next plausible boundary. Frontend messages lost
///   that way absorb the server's answers up to its next ReadyForQuery. When the server's
///   side loses bytes and its next chunk opens a response to a request sent after the gap,
///   the requests before it are taken as answered in the gap: not reported, except those
///   whose result began (a RowDescription, rows, COPY data were read), which are reported
///   cut short: complete, `truncated`, rows unknown, their duration up to the last message
///   read. The same at a close after such a gap.
/// - A capture that starts mid-connection starts at the first plausible message boundary;
///   responses to requests sent before it count in `unmatched_responses`.
/// - Bounds: [`MAX_PENDING`] queued messages, [`MAX_QUERY`] bytes of statement text per
///   message, [`MAX_STATEMENTS`] named statements.
pub struct PgsqlParser {
    frontend: Stream,
    backend: Stream,
    stitch: Stitcher,
}

impl PgsqlParser {
    /// The parser of one connection, from its first byte on or from wherever the capture
    /// joined it (section 55.2: the startup phase is recognised when it is there).
    pub fn new() -> Self {
        PgsqlParser {
            frontend: Stream::new(Dir::Frontend),
            backend: Stream::new(Dir::Backend),
            stitch: Stitcher::default(),
        }
    }

    /// The connection switched to TLS or GSSAPI encryption (SSLRequest or GSSENCRequest
    /// answered `S` / `G`, section 55.2.10): nothing after that is parsed.
    pub fn encrypted(&self) -> bool {
        self.stitch.encrypted
    }
}

impl Default for PgsqlParser {
    fn default() -> Self {
        Self::new()
    }
}

impl ConnParser for PgsqlParser {
    fn left_alone(&self) -> bool {
        self.encrypted()
    }

    fn push(&mut self, chunk: Chunk<'_>, out: &mut Vec<Exchange>) {
        let stream = match chunk.side {
            Side::Client => &mut self.frontend,
            Side::Server => &mut self.backend,
        };
        stream.push(
            chunk.data,
            chunk.ts_ns,
            chunk.missing,
            &mut self.stitch,
            out,
        );
        out.append(&mut self.stitch.cut);
        if self.stitch.encrypted {
            self.frontend.stop();
            self.backend.stop();
        }
    }

    /// Requests still waiting (the statement a simple Query was running, Executes) are
    /// reported as reset.
    fn close(&mut self, _ts_ns: u64, _reset: bool, out: &mut Vec<Exchange>) {
        self.stitch.close(out);
    }

    /// Requests waiting longer than `timeout_ns` are reported as timed out; they stay queued
    /// so that a late response still pairs in order (and is not reported again).
    fn expire(&mut self, now_ns: u64, timeout_ns: u64, out: &mut Vec<Exchange>) {
        self.stitch.expire(now_ns, timeout_ns, out);
    }

    fn stats(&self) -> &ParseStats {
        &self.stitch.stats
    }
}
