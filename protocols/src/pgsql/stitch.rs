//! Pairing of PostgreSQL requests and responses by message flow (PostgreSQL docs, section
//! 55.2 "Message Flow").
//!
//! Every frontend message the server answers becomes an item of a queue, in order; backend
//! messages answer the items at its front. The server answers strictly in order and never
//! skips a message, except:
//!
//! - after an ErrorResponse in the extended protocol it discards every frontend message up to
//!   the next Sync (section 55.2.3): those items are removed unanswered and not reported
//!   (the server never ran them; `pg_stat_statements` does not count them either);
//! - Sync and Flush received during COPY FROM STDIN are ignored (section 55.2.6);
//! - NoticeResponse, ParameterStatus and NotificationResponse may come at any time
//!   (section 55.2.7) and answer nothing.
//!
//! Records: one per statement of a simple Query (each with its own CommandComplete,
//! EmptyQueryResponse or ErrorResponse, all sharing the Query's request time), one per
//! Execute, and one per ErrorResponse that answers a Parse, Bind, Describe or Close (with the
//! statement's text). Successful Parse, Bind, Describe and Close, the startup, authentication
//! and FunctionCall make none.
//!
//! Only a simple Query, a Sync, the startup, a FunctionCall and a message lost in a capture
//! gap are ended by ReadyForQuery ("cycle ends").

use std::collections::VecDeque;
use std::mem;
use std::ops::Range;
use std::sync::Arc;

use super::names::{Names, Stmt, StmtRef};
use super::parse::{self, Backend, ErrorFields, Frontend};
use super::split;
use super::{PgsqlRequest, PgsqlResponse};
use crate::{Exchange, Outcome, ParseStats, Request, Response};

/// Frontend messages the server will answer (Query, Parse, Bind, Describe, Execute, Close,
/// Sync: section 55.2) that may wait on one connection, pipelining included (section
/// 55.2.4); more are dropped and counted in [`ParseStats::pending_overflow`].
pub const MAX_PENDING: usize = 4096;

/// Backend messages that may open the response to a request: a chunk of the server that
/// starts with one of them right after a capture gap is taken as a new response (see
/// [`Stitcher::backend_resynced`]).
const RESPONSE_START: &[u8] = b"123TCEIGHWntVZ";

/// When, and how cut, a message was seen.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Meta {
    /// Capture time of the chunk that held the message's first byte.
    pub first_ts: u64,
    /// Capture time of the chunk that held (or missed) its last byte.
    pub last_ts: u64,
    /// Some of the message was not captured (or not kept).
    pub truncated: bool,
}

/// A simple Query and its statements.
#[derive(Debug)]
struct Simple {
    text: String,
    spans: Vec<Range<usize>>,
    /// The statement the next result answers.
    next: usize,
    /// An error ended the query: no more statements run.
    done: bool,
}

#[derive(Debug)]
enum What {
    Startup,
    Simple(Box<Simple>),
    Parse {
        name: Box<[u8]>,
        stmt: StmtRef,
        /// What the name stood for before (restored when the server rejects or skips it).
        prev: Option<StmtRef>,
    },
    Bind {
        stmt: Option<StmtRef>,
    },
    Describe {
        stmt: Option<StmtRef>,
    },
    Execute {
        stmt: Option<StmtRef>,
    },
    Close {
        stmt: Option<StmtRef>,
        /// A closed statement, restored when the server skips the Close.
        restore: Option<(Box<[u8]>, StmtRef)>,
    },
    Sync,
    Function,
    /// Frontend messages lost in a capture gap: they absorb what the server answers up to
    /// the next ReadyForQuery. `guess`: the statement the last Parse or Bind before the gap
    /// named, reported for results that arrive meanwhile (marked truncated).
    Lost {
        guess: Option<StmtRef>,
    },
}

impl What {
    fn cycle_end(&self) -> bool {
        matches!(
            self,
            What::Startup | What::Simple(_) | What::Sync | What::Function | What::Lost { .. }
        )
    }
}

#[derive(Debug)]
struct Item {
    ts: u64,
    /// Its place among every item queued on the connection (what was queued after a loss
    /// was reported, whatever the timestamps say).
    seq: u64,
    what: What,
    req_truncated: bool,
    resp_truncated: bool,
    /// Already reported (as a timeout): its response is consumed without a second record.
    reported: bool,
    /// A server-side capture gap came while it waited: its response may have been lost, so it
    /// is not reported as reset or timed out.
    unsure: bool,
    /// DataRows of the current statement or Execute.
    rows: u64,
    /// Capture time of the last message of its current result read (RowDescription, rows,
    /// COPY data): its response began, and when its end is lost in a gap it is still
    /// reported, cut short (see [`Stitcher::cut_short`]).
    resp_seen: Option<u64>,
}

/// The result that ends a statement or an Execute.
enum Outcome3<'a> {
    Complete(&'a [u8]),
    Empty,
    Suspended,
    Error(&'a ErrorFields<'a>),
}

/// Pairing state of one connection.
#[derive(Debug, Default)]
pub(crate) struct Stitcher {
    queue: VecDeque<Item>,
    names: Names,
    /// Time of the first message of the extended-query group being sent (up to an Execute or
    /// a Sync).
    group_ts: Option<u64>,
    /// The statement named by the last Parse or Bind of the current group.
    last_stmt: Option<StmtRef>,
    /// The server is discarding frontend messages up to the next Sync.
    skipping: bool,
    /// COPY FROM STDIN is running: Sync and Flush are ignored, gaps hit only copy data.
    copy_in: bool,
    /// An SSLRequest or GSSENCRequest waits for its one-byte answer.
    pub(crate) ssl_pending: bool,
    /// The connection went TLS or GSSAPI-encrypted: nothing more is parsed.
    pub(crate) encrypted: bool,
    /// The server stream lost bytes in a gap and has not resynchronised yet: the `seq` the
    /// next item queued would get then (items from there on were sent after the loss was
    /// reported).
    backend_lost_at: Option<u64>,
    /// The `seq` of the next item queued.
    next_seq: u64,
    pub(crate) stats: ParseStats,
    /// Records of results whose end was lost, made where no output was at hand; the next
    /// call that has one (or the parser's `push`) moves them there.
    pub(crate) cut: Vec<Exchange>,
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Stitcher {
    // ---- frontend ------------------------------------------------------------------------

    /// A frontend message was read.
    pub(crate) fn frontend(&mut self, msg: Frontend<'_>, m: Meta) {
        if self.skipping
            && matches!(
                msg,
                Frontend::Query(_)
                    | Frontend::Parse { .. }
                    | Frontend::Bind { .. }
                    | Frontend::Describe { .. }
                    | Frontend::Execute { .. }
                    | Frontend::Close { .. }
                    | Frontend::FunctionCall
            )
        {
            // Discarded by the server (section 55.2.3); it never answers them.
            return;
        }
        match msg {
            Frontend::Startup => {
                self.enqueue(m.first_ts, What::Startup, false);
            }
            Frontend::SslRequest | Frontend::GssEncRequest => self.ssl_pending = true,
            Frontend::Query(text) => {
                self.group_ts = None;
                self.last_stmt = None;
                let text = lossy(text);
                // No semicolon but a final one: one statement, no need to lex.
                let single = match text.find(';') {
                    None => true,
                    Some(k) => text[k + 1..].trim_start().is_empty(),
                };
                let mut spans = if single {
                    Vec::new()
                } else {
                    split::statements(text.as_bytes())
                };
                if spans.len() <= 1 {
                    // One statement (or none: EmptyQueryResponse): the text exactly as sent.
                    spans.clear();
                    spans.push(0..text.len());
                }
                let s = Simple {
                    text,
                    spans,
                    next: 0,
                    done: false,
                };
                self.enqueue(m.first_ts, What::Simple(Box::new(s)), m.truncated);
            }
            Frontend::Parse { name, query } => {
                let ts = *self.group_ts.get_or_insert(m.first_ts);
                let stmt = Arc::new(Stmt {
                    text: lossy(query),
                    truncated: m.truncated,
                });
                let prev = self.names.set_statement(name, Some(stmt.clone()));
                self.last_stmt = Some(stmt.clone());
                let what = What::Parse {
                    name: name.into(),
                    stmt,
                    prev,
                };
                self.enqueue(ts, what, m.truncated);
            }
            Frontend::Bind { portal, statement } => {
                let ts = *self.group_ts.get_or_insert(m.first_ts);
                let stmt = self.names.statement(statement);
                self.names.set_portal(portal, stmt.clone());
                self.last_stmt = stmt.clone();
                self.enqueue(ts, What::Bind { stmt }, m.truncated);
            }
            Frontend::Describe { what, name } => {
                let ts = *self.group_ts.get_or_insert(m.first_ts);
                let stmt = if what == b'S' {
                    self.names.statement(name)
                } else {
                    self.names.portal(name)
                };
                self.enqueue(ts, What::Describe { stmt }, m.truncated);
            }
            Frontend::Execute { portal } => {
                let ts = self.group_ts.take().unwrap_or(m.first_ts);
                let stmt = self.names.portal(portal);
                let truncated = m.truncated || stmt.as_ref().is_some_and(|s| s.truncated);
                self.last_stmt = None;
                self.enqueue(ts, What::Execute { stmt }, truncated);
            }
            Frontend::Close { what, name } => {
                let ts = *self.group_ts.get_or_insert(m.first_ts);
                let (stmt, restore) = if what == b'S' {
                    let old = self.names.set_statement(name, None);
                    (old.clone(), old.map(|o| (Box::<[u8]>::from(name), o)))
                } else {
                    let old = self.names.portal(name);
                    self.names.set_portal(name, None);
                    (old, None)
                };
                self.enqueue(ts, What::Close { stmt, restore }, m.truncated);
            }
            Frontend::Sync | Frontend::Flush if self.copy_in => {}
            Frontend::Sync => {
                self.skipping = false;
                self.group_ts = None;
                self.last_stmt = None;
                self.enqueue(m.first_ts, What::Sync, false);
            }
            Frontend::FunctionCall => {
                self.enqueue(m.first_ts, What::Function, m.truncated);
            }
            Frontend::CopyDone | Frontend::CopyFail => self.copy_in = false,
            Frontend::CancelRequest
            | Frontend::Flush
            | Frontend::CopyData
            | Frontend::Terminate
            | Frontend::Auth
            | Frontend::Other(_) => {}
        }
    }

    fn enqueue(&mut self, ts: u64, what: What, req_truncated: bool) {
        if self.queue.len() >= MAX_PENDING {
            self.stats.pending_overflow += 1;
            return;
        }
        self.queue.push_back(Item {
            ts,
            seq: self.next_seq,
            what,
            req_truncated,
            resp_truncated: false,
            reported: false,
            unsure: false,
            rows: 0,
            resp_seen: None,
        });
        self.next_seq += 1;
    }

    /// Frontend bytes of unknown extent were lost in a capture gap at `ts` (counted by the
    /// caller in `lost_in_gap`).
    pub(crate) fn frontend_lost(&mut self, ts: u64) {
        if self.copy_in {
            // Copy data (or the CopyDone that ends it): nothing the server answers by itself.
            return;
        }
        let ts = self.group_ts.take().unwrap_or(ts);
        let guess = self.last_stmt.take();
        self.skipping = false;
        self.enqueue(ts, What::Lost { guess }, true);
    }

    // ---- backend -------------------------------------------------------------------------

    /// Backend bytes were lost in a capture gap at `ts`: every request sent by then may have
    /// had (the rest of) its response in the gap.
    pub(crate) fn backend_lost(&mut self, ts: u64) {
        self.backend_lost_at = Some(self.next_seq);
        if let Some(front) = self.queue.front_mut() {
            front.resp_truncated = true;
        }
        for it in self.queue.iter_mut().filter(|it| it.ts <= ts) {
            it.unsure = true;
        }
    }

    /// The server stream found a message boundary again, at a message of type `ty`;
    /// `fresh_write`: at the first byte of a chunk that followed the gap.
    ///
    /// A server writes each response from its first byte on (it flushes at every
    /// ReadyForQuery), and a client that does not pipeline sends its next request only after
    /// the previous ReadyForQuery. So when the chunk after a gap starts with a message that
    /// opens a response, that response answers the newest request the server had read:
    /// - requests queued after the loss was reported (the report travels with the
    ///   connection's next call, and a request read by that very call shares its time): the
    ///   response answers the first of them, and the requests before it were answered inside
    ///   the gap;
    /// - none: the response answers the last cycle queued (a simple Query, an extended-query
    ///   group up to its Sync, or frontend bytes lost too), and every cycle before it was
    ///   answered inside the gap.
    ///
    /// The requests answered inside the gap are dropped (not reported).
    pub(crate) fn backend_resynced(&mut self, fresh_write: bool, ty: u8) {
        let Some(lost_at) = self.backend_lost_at.take() else {
            return;
        };
        if !fresh_write || !RESPONSE_START.contains(&ty) {
            return;
        }
        let first_after = self.queue.iter().position(|it| it.seq >= lost_at);
        let k = first_after.unwrap_or_else(|| {
            // The start of the last cycle: after the last cycle end but the newest item.
            let n = self.queue.len();
            self.queue
                .iter()
                .take(n.saturating_sub(1))
                .rposition(|it| it.what.cycle_end())
                .map_or(0, |i| i + 1)
        });
        self.drop_front(k);
    }

    /// A backend message was read.
    pub(crate) fn backend(&mut self, msg: Backend<'_>, m: Meta, out: &mut Vec<Exchange>) {
        out.append(&mut self.cut);
        self.backend_message(msg, m, out);
        out.append(&mut self.cut);
    }

    fn backend_message(&mut self, msg: Backend<'_>, m: Meta, out: &mut Vec<Exchange>) {
        use Backend as B;
        match msg {
            B::Authentication
            | B::ParameterStatus
            | B::KeyData
            | B::NoticeResponse
            | B::NotificationResponse
            | B::NegotiateProtocolVersion
            | B::Other(_) => {}
            B::ReadyForQuery => self.ready(),
            B::ParseComplete => self.step(m, |w| matches!(w, What::Parse { .. })),
            B::BindComplete => self.step(m, |w| matches!(w, What::Bind { .. })),
            B::CloseComplete => self.step(m, |w| matches!(w, What::Close { .. })),
            B::NoData => self.step(m, |w| matches!(w, What::Describe { .. })),
            B::ParameterDescription => {
                self.note(m, |w| matches!(w, What::Describe { .. }));
            }
            B::RowDescription => {
                let k = self.note(m, |w| {
                    matches!(
                        w,
                        What::Describe { .. } | What::Simple(_) | What::Execute { .. }
                    )
                });
                if k.is_some_and(|k| matches!(self.queue[k].what, What::Describe { .. })) {
                    self.step(m, |w| matches!(w, What::Describe { .. }));
                }
            }
            B::DataRow => {
                if let Some(k) = self.note(m, result_target) {
                    self.queue[k].rows += 1;
                }
            }
            B::CopyInResponse | B::CopyBothResponse => {
                if let Some(k) = self.note(m, result_target) {
                    self.copy_in = true;
                    if matches!(self.queue[k].what, What::Execute { .. }) {
                        // Syncs sent with the COPY are ignored by the server in copy-in mode.
                        while self
                            .queue
                            .get(k + 1)
                            .is_some_and(|it| matches!(it.what, What::Sync))
                        {
                            self.queue.remove(k + 1);
                        }
                    }
                }
            }
            B::CopyOutResponse | B::CopyData | B::CopyDone => {
                self.note(m, result_target);
            }
            B::FunctionCallResponse => {
                self.note(m, |w| matches!(w, What::Function));
            }
            B::CommandComplete(tag) => self.result(Outcome3::Complete(tag), m, out),
            B::EmptyQueryResponse => self.result(Outcome3::Empty, m, out),
            B::PortalSuspended => self.result(Outcome3::Suspended, m, out),
            B::ErrorResponse(f) => self.error(&f, m, out),
        }
    }

    /// The index of the first item, within the current cycle, that `accept`s a message
    /// (a lost item accepts everything).
    fn find(&self, accept: impl Fn(&What) -> bool) -> Option<usize> {
        for (k, it) in self.queue.iter().enumerate() {
            if accept(&it.what) || matches!(it.what, What::Lost { .. }) {
                return Some(k);
            }
            if it.what.cycle_end() {
                return None;
            }
        }
        None
    }

    /// Removes the first `k` items unanswered (their responses were lost or skipped); those
    /// whose result had begun are reported, cut short.
    fn drop_front(&mut self, k: usize) {
        let removed: Vec<Item> = self.queue.drain(..k.min(self.queue.len())).collect();
        for it in &removed {
            self.cut_short(it);
        }
        self.undo(removed);
    }

    /// The record of an item whose result began (its first messages were read) and whose end
    /// was lost in a gap: complete, `truncated`, its duration up to the last message read,
    /// the row count unknown. (An error after some rows, in the gap, would go unseen: the
    /// rows seen say the statement ran.)
    fn cut_short(&mut self, it: &Item) {
        let Some(last) = it.resp_seen.filter(|_| !it.reported) else {
            return;
        };
        let cut = PgsqlResponse {
            error: false,
            code: None,
            message: None,
            rows: None,
        };
        if let Some(mut e) = unanswered(it, Outcome::Complete) {
            e.resp_ts_ns = Some(last);
            e.response = Some(Response::Pgsql(cut));
            e.truncated = true;
            self.cut.push(e);
        }
    }

    /// Whether a gap in the server's stream can hold nothing but the rest of the result being
    /// read: one request cycle waits, and its result began.
    pub(crate) fn gap_in_the_only_result(&self) -> bool {
        let last = self.queue.len().checked_sub(1);
        last.is_some()
            && self.queue.iter().position(|it| it.what.cycle_end()) == last
            && self.queue.iter().any(|it| it.resp_seen.is_some())
    }

    /// Items the server never ran: undo what they did to the names, last first.
    fn undo(&mut self, removed: Vec<Item>) {
        for it in removed.into_iter().rev() {
            match it.what {
                What::Parse { name, prev, .. } => {
                    self.names.set_statement(&name, prev);
                }
                What::Close {
                    restore: Some((name, stmt)),
                    ..
                } => {
                    self.names.set_statement(&name, Some(stmt));
                }
                _ => {}
            }
        }
    }

    /// A message that belongs to an item's response without ending it.
    fn note(&mut self, m: Meta, accept: impl Fn(&What) -> bool) -> Option<usize> {
        let k = self.find(accept)?;
        let it = &mut self.queue[k];
        if m.truncated {
            it.resp_truncated = true;
        }
        if result_target(&it.what) {
            it.resp_seen = Some(m.last_ts);
        }
        Some(k)
    }

    /// A message that completes one step (ParseComplete, BindComplete, CloseComplete,
    /// NoData, a Describe's RowDescription).
    fn step(&mut self, m: Meta, accept: impl Fn(&What) -> bool) {
        let Some(k) = self.find(&accept) else {
            self.stats.unmatched_responses += 1;
            return;
        };
        self.drop_front(k);
        if accept(&self.queue[0].what) {
            self.queue.pop_front();
        } else if m.truncated {
            self.queue[0].resp_truncated = true;
        }
    }

    /// ReadyForQuery: the cycle at the front ends.
    fn ready(&mut self) {
        self.copy_in = false;
        let Some(c) = self.queue.iter().position(|it| it.what.cycle_end()) else {
            // No cycle waiting (the startup's, before the capture began).
            return;
        };
        self.drop_front(c);
        self.queue.pop_front();
    }

    /// CommandComplete, EmptyQueryResponse or PortalSuspended.
    fn result(&mut self, r: Outcome3<'_>, m: Meta, out: &mut Vec<Exchange>) {
        let Some(k) = self.find(result_target) else {
            self.stats.unmatched_responses += 1;
            return;
        };
        self.drop_front(k);
        self.copy_in = false;
        self.answer(r, m, out);
    }

    /// ErrorResponse: it answers the front item, whatever it is.
    fn error(&mut self, f: &ErrorFields<'_>, m: Meta, out: &mut Vec<Exchange>) {
        self.copy_in = false;
        let Some(front) = self.queue.front() else {
            self.stats.unmatched_responses += 1;
            return;
        };
        match front.what {
            What::Startup => {
                // The connection attempt failed (no statement); the server closes.
                self.queue.pop_front();
            }
            What::Sync => {
                // The implicit transaction failed to commit at Sync: no request of its own.
                self.stats.unmatched_responses += 1;
            }
            What::Function => {}
            _ => self.answer(Outcome3::Error(f), m, out),
        }
    }

    /// The front item (a Simple, an extended item, or a Lost one) gets its result.
    fn answer(&mut self, r: Outcome3<'_>, m: Meta, out: &mut Vec<Exchange>) {
        let Some(it) = self.queue.front_mut() else {
            return;
        };
        let resp = response(&r, it.rows);
        let resp_truncated = it.resp_truncated || m.truncated;
        match &mut it.what {
            What::Simple(s) => {
                let idx = match &r {
                    Outcome3::Error(f) => {
                        s.done = true;
                        f.position
                            .and_then(|p| statement_at(&s.text, &s.spans, p))
                            .filter(|&k| k >= s.next)
                            .unwrap_or(s.next)
                    }
                    _ => s.next,
                };
                if s.done && !matches!(r, Outcome3::Error(_)) {
                    // A result after the error that ended the query: not possible in sync.
                    self.stats.unmatched_responses += 1;
                    return;
                }
                let (query, operation) = match s.spans.get(idx) {
                    Some(span) => (s.text[span.clone()].to_owned(), None),
                    // More results than statements found in the captured text (cut text):
                    // the statement was not captured; its command comes from the tag.
                    None => (String::new(), tag_command(&r)),
                };
                let reported = it.reported && idx == s.next;
                s.next = idx + 1;
                let e = exchange(
                    it.ts,
                    Some(m.last_ts),
                    query,
                    "simple",
                    operation,
                    Some(resp),
                    Outcome::Complete,
                    it.req_truncated || resp_truncated,
                );
                it.reported = false;
                it.rows = 0;
                it.resp_seen = None;
                it.resp_truncated = false;
                if !reported {
                    out.push(e);
                }
            }
            What::Lost { guess } => {
                if let Some(stmt) = guess.clone() {
                    out.push(exchange(
                        it.ts,
                        Some(m.last_ts),
                        stmt.text.clone(),
                        "extended",
                        None,
                        Some(resp),
                        Outcome::Complete,
                        true,
                    ));
                }
                it.rows = 0;
            }
            What::Parse { .. }
            | What::Bind { .. }
            | What::Describe { .. }
            | What::Execute { .. }
            | What::Close { .. } => {
                let Some(it) = self.queue.pop_front() else {
                    return;
                };
                let stmt = match &it.what {
                    What::Parse { stmt, .. } => Some(stmt.clone()),
                    What::Bind { stmt }
                    | What::Describe { stmt }
                    | What::Execute { stmt }
                    | What::Close { stmt, .. } => stmt.clone(),
                    _ => None,
                };
                let query = stmt.as_ref().map(|s| s.text.clone()).unwrap_or_default();
                let truncated = it.req_truncated || resp_truncated;
                if !it.reported {
                    out.push(exchange(
                        it.ts,
                        Some(m.last_ts),
                        query,
                        "extended",
                        None,
                        Some(resp),
                        Outcome::Complete,
                        truncated,
                    ));
                }
                if matches!(r, Outcome3::Error(_)) {
                    // The server skips everything up to the Sync (section 55.2.3); a
                    // rejected Parse or Close left the names as they were.
                    self.undo(vec![it]);
                    self.skip_to_sync();
                }
            }
            What::Startup | What::Sync | What::Function => {}
        }
    }

    /// After an error in the extended protocol: the items up to the next Sync were never run.
    fn skip_to_sync(&mut self) {
        let k = self
            .queue
            .iter()
            .position(|it| matches!(it.what, What::Sync | What::Lost { .. } | What::Startup));
        match k {
            Some(k) => self.drop_front(k),
            None => {
                self.drop_front(self.queue.len());
                self.skipping = true;
            }
        }
    }

    // ---- end of waiting ------------------------------------------------------------------

    /// Requests waiting longer than `timeout_ns` are reported as timed out (once; their
    /// items stay queued so that a late response still pairs in order).
    pub(crate) fn expire(&mut self, now_ns: u64, timeout_ns: u64, out: &mut Vec<Exchange>) {
        for it in self.queue.iter_mut() {
            if now_ns.saturating_sub(it.ts) <= timeout_ns || it.reported || it.unsure {
                continue;
            }
            if let Some(e) = unanswered(it, Outcome::Timeout) {
                it.reported = true;
                out.push(e);
            }
        }
    }

    /// The connection closed: requests still waiting are reported as reset.
    pub(crate) fn close(&mut self, out: &mut Vec<Exchange>) {
        out.append(&mut self.cut);
        for it in mem::take(&mut self.queue) {
            if it.unsure && it.resp_seen.is_some() {
                // Its result began and its end went into a gap: reported cut short.
                self.cut_short(&it);
                out.append(&mut self.cut);
                continue;
            }
            if it.reported || it.unsure {
                continue;
            }
            out.extend(unanswered(&it, Outcome::Reset));
        }
        self.skipping = false;
        self.copy_in = false;
        self.group_ts = None;
        self.last_stmt = None;
        self.backend_lost_at = None;
    }
}

/// Items a result (CommandComplete, EmptyQueryResponse, PortalSuspended, DataRow, COPY
/// responses) may answer.
fn result_target(w: &What) -> bool {
    matches!(w, What::Simple(_) | What::Execute { .. })
}

/// The record of an item that got no response: the statement running in a simple Query, or
/// an Execute.
fn unanswered(it: &Item, outcome: Outcome) -> Option<Exchange> {
    let (query, kind) = match &it.what {
        What::Simple(s) if !s.done => (
            s.text.get(s.spans.get(s.next)?.clone())?.to_owned(),
            "simple",
        ),
        What::Execute { stmt } => (
            stmt.as_ref().map(|s| s.text.clone()).unwrap_or_default(),
            "extended",
        ),
        _ => return None,
    };
    Some(exchange(
        it.ts,
        None,
        query,
        kind,
        None,
        None,
        outcome,
        it.req_truncated || it.resp_truncated,
    ))
}

fn response(r: &Outcome3<'_>, rows: u64) -> PgsqlResponse {
    match r {
        Outcome3::Complete(tag) => PgsqlResponse {
            error: false,
            code: None,
            message: None,
            rows: parse::tag_rows(tag),
        },
        Outcome3::Empty => PgsqlResponse {
            error: false,
            code: None,
            message: None,
            rows: None,
        },
        Outcome3::Suspended => PgsqlResponse {
            error: false,
            code: None,
            message: None,
            rows: Some(rows),
        },
        Outcome3::Error(f) => PgsqlResponse {
            error: true,
            code: f.code.map(lossy),
            message: f.message.map(lossy),
            rows: None,
        },
    }
}

fn tag_command(r: &Outcome3<'_>) -> Option<String> {
    match r {
        Outcome3::Complete(tag) => parse::tag_command(tag),
        _ => None,
    }
}

/// The statement holding character `pos` (1-based, ErrorResponse field `P`) of `text`.
fn statement_at(text: &str, spans: &[Range<usize>], pos: u32) -> Option<usize> {
    let at = text
        .char_indices()
        .nth(usize::try_from(pos).ok()?.checked_sub(1)?)?
        .0;
    // Between two statements (blanks, comments) counts as the next one.
    spans.iter().position(|s| at < s.end)
}

#[allow(clippy::too_many_arguments)]
fn exchange(
    req_ts: u64,
    resp_ts: Option<u64>,
    query: String,
    kind: &str,
    operation: Option<String>,
    response: Option<PgsqlResponse>,
    outcome: Outcome,
    truncated: bool,
) -> Exchange {
    let (op, table) = crate::sql::describe_as(&query, crate::sql::Dialect::Postgres);
    Exchange {
        req_ts_ns: req_ts,
        resp_ts_ns: resp_ts,
        request: Request::Pgsql(PgsqlRequest {
            query,
            kind: kind.to_owned(),
            operation: op.or(operation),
            table,
        }),
        response: response.map(Response::Pgsql),
        outcome,
        truncated,
        trace: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_position_picks_the_statement() {
        let text = "SELECT 1; SELEC 2; SELECT 3";
        let spans = split::statements(text.as_bytes());
        assert_eq!(statement_at(text, &spans, 1), Some(0));
        assert_eq!(statement_at(text, &spans, 11), Some(1));
        assert_eq!(statement_at(text, &spans, 27), Some(2));
        assert_eq!(statement_at(text, &spans, 28), None);
        assert_eq!(statement_at(text, &spans, 0), None);
        // Multi-byte characters: positions count characters.
        let text = "SELECT 'é'; SELEC 2";
        let spans = split::statements(text.as_bytes());
        assert_eq!(statement_at(text, &spans, 13), Some(1));
    }
}
