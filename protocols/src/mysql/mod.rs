//! MySQL / MariaDB client/server protocol, text and binary (prepared statements).
//!
//! - [`packet`]: packet framing, 16 MiB continuation, capture gaps ("MySQL Packets");
//! - [`wire`]: payload layouts: OK, ERR, EOF, handshake, COM_STMT_PREPARE_OK, length-encoded
//!   integers ("Generic Response Packets", "Connection Phase Packets");
//! - [`session`]: connection phases, capability flags, resynchronisation, pairing
//!   ("Connection Lifecycle", "Command Phase");
//! - [`command`]: what each command packet asks and which response it expects;
//! - [`response`]: reading one response: OK, ERR, result sets, prepare responses;
//! - [`stitch`]: pairing commands with responses (FIFO), prepared statements by id, records.

use serde::Serialize;

use crate::{Chunk, ConnParser, Exchange, ParseStats, Side};

mod command;
mod packet;
mod response;
mod session;
mod stitch;
mod wire;

pub use session::{Skip, MAX_QUERY};
pub use stitch::{MAX_PENDING, MAX_STATEMENTS, MAX_STATEMENT_BYTES};

use packet::Framer;
use session::{Session, MAX_SERVER_KEEP};

/// `request` of a MySQL record (record-schema.md).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MysqlRequest {
    /// `COM_QUERY`, `COM_STMT_PREPARE`, `COM_STMT_EXECUTE`, ...; an unknown command byte as
    /// `COM_UNKNOWN_0xNN`.
    pub command: String,
    /// Statement text as captured: COM_QUERY's, COM_STMT_PREPARE's, and for the commands that
    /// name a prepared statement (COM_STMT_EXECUTE, COM_STMT_FETCH, COM_STMT_RESET), the text
    /// it was prepared with, when that was seen. At most [`MAX_QUERY`] bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// From [`crate::sql::describe`] of `query`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// From [`crate::sql::describe`] of `query`; for COM_FIELD_LIST, the table named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// COM_INIT_DB: the schema made default (an addition to record-schema.md's fields).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
}

/// `response` of a MySQL record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MysqlResponse {
    /// The server answered with an ERR packet.
    pub error: bool,
    /// The ERR packet's error number (e.g. 1064, 1146).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    /// The ERR packet's message (without the SQL state).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Rows returned (rows of the result sets) or affected (OK packets), summed over every
    /// result of a multi-result response; absent when unknown (a capture gap inside the
    /// response, COM_STMT_PREPARE, errors before any result).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
}

/// The MySQL client/server protocol on one connection (MySQL source documentation, "Client/
/// Server Protocol"; MariaDB knowledge base, "Client/Server Protocol").
///
/// - The handshake and authentication are skipped, keeping the capability flags both ends
///   agreed on. A connection that switches to TLS, negotiates compression or becomes a
///   replication stream is left alone ([`MysqlParser::skipped`]).
/// - Commands pair first in, first out with responses; COM_QUIT, COM_STMT_CLOSE and
///   COM_STMT_SEND_LONG_DATA get none and make no record. COM_STMT_PREPARE responses give
///   statement ids; COM_STMT_EXECUTE is reported with the prepared text.
/// - Result sets are read with or without EOF packets (CLIENT_DEPRECATE_EOF) from the bytes
///   themselves, so a capture that starts mid-connection reads them too.
/// - Uncaptured bytes inside a packet are skipped by its length and mark the exchange
///   `truncated`. A gap over a packet header loses the framing (`lost_in_gap`, unless it
///   fell inside the one response waited for: it then held nothing but that response's rest):
///   the direction resynchronises at the next chunk that starts like a command or a response;
///   a response whose end was lost ends when the next one starts, with `rows` unknown. A command whose
///   answer started in a gap makes no record (its status was not seen); `lost_in_gap` counts
///   it.
/// - At most [`MAX_PENDING`] commands wait, [`MAX_STATEMENTS`] statements are remembered, and
///   [`MAX_QUERY`] bytes of a statement are kept.
pub struct MysqlParser {
    client: Framer,
    server: Framer,
    session: Session,
}

impl MysqlParser {
    pub fn new() -> Self {
        MysqlParser {
            client: Framer::new(MAX_QUERY + 1),
            server: Framer::new(MAX_SERVER_KEEP),
            session: Session::new(),
        }
    }

    /// Why the connection is no longer parsed (TLS, compression, replication), if it is not.
    pub fn skipped(&self) -> Option<Skip> {
        self.session.skipped()
    }
}

impl Default for MysqlParser {
    fn default() -> Self {
        Self::new()
    }
}

impl ConnParser for MysqlParser {
    fn left_alone(&self) -> bool {
        self.skipped().is_some()
    }

    fn push(&mut self, chunk: Chunk<'_>, out: &mut Vec<Exchange>) {
        let session = &mut self.session;
        match chunk.side {
            Side::Client => self
                .client
                .push(chunk.data, chunk.ts_ns, chunk.missing, &mut |ev| {
                    session.client(ev)
                }),
            Side::Server => self
                .server
                .push(chunk.data, chunk.ts_ns, chunk.missing, &mut |ev| {
                    session.server(ev, out)
                }),
        }
        if self.session.off() {
            self.client.stop();
            self.server.stop();
        }
    }

    /// A loss of whole calls is a gap; on the server's side it also ends every command
    /// waiting ([`Session::answers_lost`]), however the framing took the gap (a second loss
    /// while it still resynchronises after the first changes nothing there).
    fn lost(&mut self, side: Side, ts_ns: u64, bytes: u64, out: &mut Vec<Exchange>) {
        self.push(Chunk::gap(side, ts_ns, bytes), out);
        if side == Side::Server {
            self.session.answers_lost();
        }
    }

    fn close(&mut self, _ts_ns: u64, _reset: bool, out: &mut Vec<Exchange>) {
        self.session.close(out);
        self.client.resync();
        self.server.resync();
    }

    fn expire(&mut self, now_ns: u64, timeout_ns: u64, out: &mut Vec<Exchange>) {
        if self.session.expire(now_ns, timeout_ns, out) && self.server.mid_packet() {
            self.server.resync();
        }
    }

    fn stats(&self) -> &ParseStats {
        &self.session.stats
    }
}
