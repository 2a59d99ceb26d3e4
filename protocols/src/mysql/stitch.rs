//! Pairing state of a MySQL connection: the commands waiting for a response, the prepared
//! statements by id, and the records they turn into.
//!
//! In the classic protocol every command but COM_QUIT, COM_STMT_CLOSE and
//! COM_STMT_SEND_LONG_DATA gets exactly one response, whose sequence ids restart at 1
//! ("Command Phase"); a client sends the next command after reading the response, except
//! MariaDB's direct execution (COM_STMT_PREPARE and COM_STMT_EXECUTE with statement id
//! 0xFFFFFFFF in one write). Commands therefore wait in a FIFO queue.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use super::response::{Answer, Expect};
use super::{MysqlRequest, MysqlResponse};
use crate::{Exchange, Outcome, ParseStats, Request, Response};

/// Commands that may wait for a response on one connection; more are dropped and counted in
/// [`ParseStats::pending_overflow`].
pub const MAX_PENDING: usize = 256;
/// Prepared statements remembered per connection; the oldest is forgotten first.
pub const MAX_STATEMENTS: usize = 1024;
/// Bytes of statement text remembered per connection.
pub const MAX_STATEMENT_BYTES: usize = 1 << 20;

/// A statement's text and what [`crate::sql::describe`] made of it, shared by every execution.
#[derive(Debug)]
pub(crate) struct Statement {
    pub text: String,
    pub operation: Option<String>,
    pub table: Option<String>,
    /// The text is a prefix (not all of it was captured or kept).
    pub truncated: bool,
}

impl Statement {
    pub(crate) fn new(text: String, truncated: bool) -> Statement {
        let (operation, table) = crate::sql::describe(&text);
        Statement {
            text,
            operation,
            table,
            truncated,
        }
    }
}

/// A command waiting for its response.
#[derive(Debug)]
pub(crate) struct Pending {
    /// Capture time of its first byte.
    pub ts: u64,
    pub cmd: u8,
    pub expect: Expect,
    /// `None`: a command lost in a capture gap, holding its place in the queue.
    pub request: Option<MysqlRequest>,
    pub truncated: bool,
    /// COM_STMT_EXECUTE asked for a cursor.
    pub cursor: bool,
    /// COM_STMT_PREPARE: the statement, remembered under the id of its COM_STMT_PREPARE_OK.
    pub statement: Option<Arc<Statement>>,
}

/// Prepared statements by id, bounded in number and bytes (oldest forgotten first).
#[derive(Debug, Default)]
pub(crate) struct Statements {
    by_id: HashMap<u32, (u64, Arc<Statement>)>,
    order: BTreeMap<u64, u32>,
    next: u64,
    bytes: usize,
}

impl Statements {
    /// Remembers `st` under `id`; returns how many older statements were forgotten for room.
    pub(crate) fn insert(&mut self, id: u32, st: Arc<Statement>) -> u64 {
        self.remove(id);
        let mut evicted = 0;
        while !self.order.is_empty()
            && (self.by_id.len() >= MAX_STATEMENTS
                || self.bytes + st.text.len() > MAX_STATEMENT_BYTES)
        {
            if let Some((_, old)) = self.order.pop_first() {
                if let Some((_, s)) = self.by_id.remove(&old) {
                    self.bytes -= s.text.len();
                }
                evicted += 1;
            }
        }
        self.bytes += st.text.len();
        self.order.insert(self.next, id);
        self.by_id.insert(id, (self.next, st));
        self.next += 1;
        evicted
    }

    pub(crate) fn get(&self, id: u32) -> Option<&Arc<Statement>> {
        self.by_id.get(&id).map(|(_, s)| s)
    }

    pub(crate) fn remove(&mut self, id: u32) {
        if let Some((n, s)) = self.by_id.remove(&id) {
            self.order.remove(&n);
            self.bytes -= s.text.len();
        }
    }

    pub(crate) fn clear(&mut self) {
        self.by_id.clear();
        self.order.clear();
        self.bytes = 0;
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }
}

/// The request of a command that names a prepared statement (`None`: prepared before the
/// capture began).
pub(crate) fn statement_request(cmd: String, st: Option<&Arc<Statement>>) -> MysqlRequest {
    MysqlRequest {
        command: cmd,
        query: st.map(|s| s.text.clone()),
        operation: st.and_then(|s| s.operation.clone()),
        table: st.and_then(|s| s.table.clone()),
        schema: None,
    }
}

/// Appends the record of a finished response (none for a command lost in a gap).
pub(crate) fn emit(ans: Answer, out: &mut Vec<Exchange>) {
    let rows = ans.rows();
    let Answer {
        req,
        error,
        truncated,
        last_ts,
        ..
    } = ans;
    let Some(request) = req.request else {
        return;
    };
    let (code, message) = match error {
        Some((code, message)) => (code, Some(message)),
        None => (None, None),
    };
    out.push(Exchange {
        req_ts_ns: req.ts,
        // A response whose first bytes were held from before the request (bytes that were
        // not a response start after all) still ends after the request began.
        resp_ts_ns: Some(last_ts.max(req.ts)),
        request: Request::Mysql(request),
        response: Some(Response::Mysql(MysqlResponse {
            error: message.is_some(),
            code,
            message,
            rows,
        })),
        outcome: Outcome::Complete,
        truncated: req.truncated || truncated,
        trace: None,
    });
}

/// Appends the record of a command that got no response.
pub(crate) fn unanswered(p: Pending, outcome: Outcome, out: &mut Vec<Exchange>) {
    let Some(request) = p.request else {
        return;
    };
    out.push(Exchange {
        req_ts_ns: p.ts,
        resp_ts_ns: None,
        request: Request::Mysql(request),
        response: None,
        outcome,
        truncated: p.truncated,
        trace: None,
    });
}

/// Queues `p`, or counts it dropped when the queue is full.
pub(crate) fn enqueue(pending: &mut VecDeque<Pending>, p: Pending, stats: &mut ParseStats) {
    if pending.len() >= MAX_PENDING {
        stats.pending_overflow += 1;
        return;
    }
    pending.push_back(p);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_bounded_oldest_first() {
        let mut s = Statements::default();
        for id in 0..(MAX_STATEMENTS as u32 + 5) {
            s.insert(id, Arc::new(Statement::new(format!("select {id}"), false)));
        }
        assert_eq!(s.len(), MAX_STATEMENTS);
        assert!(s.get(0).is_none() && s.get(4).is_none() && s.get(5).is_some());
        s.remove(5);
        assert!(s.get(5).is_none());
        let big = "x".repeat(MAX_STATEMENT_BYTES - 10);
        let evicted = s.insert(9999, Arc::new(Statement::new(big, false)));
        assert!(evicted > 0);
        assert!(s.get(9999).is_some());
        assert!(s.bytes <= MAX_STATEMENT_BYTES);
    }
}
