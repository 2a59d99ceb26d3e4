//! What a command packet asks ("Text Protocol", "Prepared Statements", "Replication
//! Protocol"): the request a record reports, the shape of the response to expect, and what it
//! does to the connection's prepared statements.

use std::sync::Arc;

use super::packet::Packet;
use super::response::Expect;
use super::stitch::{self, Pending, Statement, Statements};
use super::wire::{self, cap};
use super::MysqlRequest;

/// A command packet, classified.
pub(crate) enum Command {
    /// No response follows: COM_QUIT, COM_STMT_SEND_LONG_DATA, and COM_STMT_CLOSE (which
    /// forgets the statement it names).
    Silent { close: Option<u32> },
    /// COM_BINLOG_DUMP, COM_BINLOG_DUMP_GTID, COM_CLONE, COM_MULTI: the connection leaves
    /// the command/response protocol.
    Detach,
    /// A command waiting for its response. `reset`: the prepared statements are gone
    /// (COM_CHANGE_USER, COM_RESET_CONNECTION).
    Request { pending: Pending, reset: bool },
}

/// The prepared statements a command may name.
pub(crate) struct Known<'a> {
    pub statements: &'a Statements,
    /// The latest COM_STMT_PREPARE's statement: statement id 0xFFFFFFFF (MariaDB's direct
    /// execution) names it.
    pub last_prepare: Option<&'a Arc<Statement>>,
    /// Capability flags both ends agreed on.
    pub caps: u32,
}

/// Classifies the command packet `p` (sequence id 0, payload non-empty).
pub(crate) fn classify(p: &Packet<'_>, cmd: u8, known: &Known<'_>) -> Command {
    let name = wire::command_name(cmd).into_owned();
    let body = p.payload.get(1..).unwrap_or_default();
    let mut truncated = p.gap || p.cut();
    let mut statement = None;
    let mut cursor = false;
    let mut reset = false;
    let (expect, request) = match cmd {
        0x01 | 0x18 => return Command::Silent { close: None },
        0x19 => {
            return Command::Silent {
                close: wire::statement_id(p.payload),
            }
        }
        0x12 | 0x1e | 0x20 | 0xfe => return Command::Detach,
        0x03 => {
            let at = if known.caps & cap::QUERY_ATTRIBUTES != 0 {
                wire::query_text_offset(body)
            } else {
                Some(0)
            };
            let query = at.map(|at| String::from_utf8_lossy(&body[at..]).into_owned());
            let (operation, table) = match &query {
                Some(q) => crate::sql::describe(q),
                None => (None, None),
            };
            let request = MysqlRequest {
                command: name,
                query,
                operation,
                table,
                schema: None,
            };
            (Expect::Generic, request)
        }
        0x16 => {
            let text = String::from_utf8_lossy(body).into_owned();
            let st = Arc::new(Statement::new(text, truncated));
            let request = stitch::statement_request(name, Some(&st));
            statement = Some(st);
            (Expect::Prepare, request)
        }
        // COM_STMT_EXECUTE, COM_STMT_RESET, COM_STMT_FETCH, COM_STMT_BULK_EXECUTE.
        0x17 | 0x1a | 0x1c | 0xfa => {
            let st = match wire::statement_id(p.payload) {
                Some(u32::MAX) => known.last_prepare,
                Some(id) => known.statements.get(id),
                None => None,
            };
            // The text reported is a prefix when the PREPARE was cut.
            truncated |= st.is_some_and(|s| s.truncated);
            if cmd == 0x17 {
                cursor = wire::execute_header(p.payload).is_some_and(|(_, f)| f & 0x07 != 0);
            }
            let expect = if cmd == 0x1c {
                Expect::Fetch
            } else {
                Expect::Generic
            };
            (expect, stitch::statement_request(name, st))
        }
        0x02 => {
            let mut request = stitch::statement_request(name, None);
            request.schema = Some(String::from_utf8_lossy(body).into_owned());
            (Expect::Generic, request)
        }
        0x04 => {
            let table = body.split(|b| *b == 0).next().unwrap_or_default();
            let mut request = stitch::statement_request(name, None);
            request.table = Some(String::from_utf8_lossy(table).into_owned());
            (Expect::FieldList, request)
        }
        0x09 => (Expect::Text, stitch::statement_request(name, None)),
        0x11 => {
            reset = true;
            (Expect::Auth, stitch::statement_request(name, None))
        }
        0x1f => {
            reset = true;
            (Expect::Generic, stitch::statement_request(name, None))
        }
        _ => (Expect::Generic, stitch::statement_request(name, None)),
    };
    Command::Request {
        pending: Pending {
            ts: p.first_ts,
            cmd,
            expect,
            request: Some(request),
            truncated,
            cursor,
            statement,
        },
        reset,
    }
}
