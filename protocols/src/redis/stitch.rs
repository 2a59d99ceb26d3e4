//! Pairing of Redis commands and replies: first in, first out (the protocol spec,
//! "Pipelining": a server answers the commands of a connection in the order it read them),
//! with the exceptions a connection's state makes:
//!
//! - inside MULTI every command gets one reply (`+QUEUED` or an error); EXEC gets one array;
//! - `CLIENT REPLY OFF` silences every reply until `CLIENT REPLY ON` (which is answered),
//!   `CLIENT REPLY SKIP` the next command's; such commands are reported with no response;
//! - a (P|S)SUBSCRIBE or (P|S)UNSUBSCRIBE of N channels is confirmed N times: the command
//!   pairs with the first confirmation and the others are absorbed; without channels, an
//!   UNSUBSCRIBE is confirmed once per subscription, a number it does not tell;
//! - published messages (RESP3 pushes, RESP2 `message`/`pmessage`/`smessage` arrays to a
//!   subscribed connection), other pushes and MONITOR's feed answer no command.

use std::collections::VecDeque;

use super::command::{command_name, is_message, PubSub, Special};
use super::message::Message;
use super::session::{Expect, Session};
use super::{RedisRequest, RedisResponse};
use crate::{Exchange, Outcome, ParseStats, Request, Response};

/// Commands that may wait for a reply on one connection; more are dropped and counted in
/// [`ParseStats::pending_overflow`] (their replies are still recognised and skipped).
pub const MAX_PENDING: usize = 1024;

#[derive(Debug)]
struct Pending {
    /// Capture time of the command's first byte.
    ts: u64,
    /// `None`: one command whose name was not captured (its reply is absorbed).
    request: Option<RedisRequest>,
    truncated: bool,
    expect: Expect,
    monitor: bool,
    /// Commands that came after this one and were dropped (queue full): their replies are
    /// skipped after this one's.
    dropped_after: u64,
}

/// Confirmations still due to the command paired last.
#[derive(Clone, Copy, Debug)]
struct Tail {
    kind: PubSub,
    /// `None`: as many as there were subscriptions.
    left: Option<u64>,
}

enum Class {
    Reply,
    Confirm(PubSub, Option<i64>),
    Push,
}

enum Front {
    Command(Pending),
    /// The reply answers a lost or dropped command.
    Absorbed,
    Nothing,
}

/// Pairing state of one connection.
#[derive(Debug, Default)]
pub(crate) struct Stitcher {
    pending: VecDeque<Pending>,
    session: Session,
    tail: Option<Tail>,
    /// Replies still owed to dropped commands.
    skip: u64,
    /// Replies may have been lost since the last one read.
    replies_lost: bool,
    pub(crate) stats: ParseStats,
    /// Messages that answer no command (published messages, pushes, MONITOR's feed).
    pub(crate) out_of_band: u64,
}

impl Stitcher {
    /// A command was read (or read up to a loss, then `m.truncated`).
    pub(crate) fn request(&mut self, m: &Message, out: &mut Vec<Exchange>) {
        let name = &m.elems[0];
        let args = m.count.saturating_sub(1);
        if !name.known() {
            // Its name fell in a capture gap: it still holds its place in line.
            self.stats.lost_in_gap += 1;
            let expect = self.session.silenced(Expect::Reply);
            return self.enqueue(m.first_ts, None, m.truncated, expect, false, out);
        }
        let special = Special::of(m);
        if special == Special::Reset {
            self.tail = None;
        }
        let monitor = special == Special::Monitor && !self.session.queues(special);
        let expect = self.session.expect(special, args);
        let request = RedisRequest {
            command: command_name(name.bytes()),
            args: u32::try_from(args).unwrap_or(u32::MAX),
        };
        self.enqueue(m.first_ts, Some(request), m.truncated, expect, monitor, out);
    }

    fn enqueue(
        &mut self,
        ts: u64,
        request: Option<RedisRequest>,
        truncated: bool,
        expect: Expect,
        monitor: bool,
        out: &mut Vec<Exchange>,
    ) {
        if self.pending.len() >= MAX_PENDING {
            self.stats.pending_overflow += 1;
            if expect != Expect::NoReply {
                if let Some(last) = self.pending.back_mut() {
                    last.dropped_after += 1;
                }
            }
            return;
        }
        self.pending.push_back(Pending {
            ts,
            request,
            truncated,
            expect,
            monitor,
            dropped_after: 0,
        });
        self.drain_silent(out);
    }

    /// Commands may have been lost at `ts` (capture gap, invalid bytes).
    pub(crate) fn lost_requests(&mut self, ts: u64) {
        if self
            .pending
            .back()
            .is_some_and(|p| p.expect == Expect::Lost)
        {
            return;
        }
        if self.pending.len() >= MAX_PENDING {
            self.stats.pending_overflow += 1;
            return;
        }
        self.pending.push_back(Pending {
            ts,
            request: None,
            truncated: true,
            expect: Expect::Lost,
            monitor: false,
            dropped_after: 0,
        });
    }

    /// Replies may have been lost (capture gap, invalid bytes).
    pub(crate) fn lost_replies(&mut self) {
        self.replies_lost = true;
    }

    /// A reply (or a push) was read, or read up to a loss (`m.truncated`).
    pub(crate) fn response(&mut self, m: &Message, out: &mut Vec<Exchange>) {
        match self.classify(m) {
            Class::Push => self.out_of_band += 1,
            Class::Confirm(kind, count) => self.confirmation(kind, count, m, out),
            Class::Reply => {
                self.tail = None;
                match self.take_front(m.first_ts, out) {
                    Front::Command(p) => {
                        if p.monitor && m.kind == b'+' {
                            self.session.monitor = true;
                        }
                        emit(p, Some(m), out);
                    }
                    Front::Absorbed => {}
                    Front::Nothing => self.stats.unmatched_responses += 1,
                }
                self.drain_silent(out);
            }
        }
    }

    fn classify(&self, m: &Message) -> Class {
        let first = &m.elems[0];
        let third = &m.elems[2];
        let count = (third.kind == b':').then_some(third.int);
        match m.kind {
            b'>' => match PubSub::of_reply(first) {
                Some(kind) => Class::Confirm(kind, count),
                None => Class::Push,
            },
            b'*' => {
                if let Some(kind) = PubSub::of_reply(first) {
                    if m.count == 3 && count.is_some() && self.expects(kind) {
                        return Class::Confirm(kind, count);
                    }
                }
                if is_message(first, m.count) && (self.session.subscribed() || !self.waiting()) {
                    return Class::Push;
                }
                Class::Reply
            }
            b'+' if self.session.monitor && !self.waiting() => Class::Push,
            _ => Class::Reply,
        }
    }

    /// Whether a message starting with `first` may come now: a reply some command waits
    /// for, a confirmation still due, a push, or what a subscribed or monitoring connection
    /// receives unasked.
    pub(crate) fn reply_may_come(&self, first: Option<u8>) -> bool {
        first == Some(b'>')
            || self.skip > 0
            || self.tail.is_some()
            || self.session.subscribed()
            || self.session.monitor
            || self.waiting()
    }

    /// Exactly one reply is due (the one being read) and nothing else may come unasked.
    pub(crate) fn one_reply_due(&self) -> bool {
        self.skip == 0
            && self.tail.is_none()
            && !self.session.subscribed()
            && !self.session.monitor
            && self.pending.len() == 1
            && self.pending[0].expect == Expect::Reply
    }

    /// Some command waits for a reply.
    fn waiting(&self) -> bool {
        self.pending
            .iter()
            .any(|p| matches!(p.expect, Expect::Reply | Expect::Confirm { .. }))
    }

    /// A confirmation of `kind` is due: more of the last paired command's, or the first of
    /// the next waiting command's.
    fn expects(&self, kind: PubSub) -> bool {
        if self
            .tail
            .is_some_and(|t| t.kind == kind && t.left != Some(0))
        {
            return true;
        }
        self.next_waiting_confirms(kind)
    }

    fn next_waiting_confirms(&self, kind: PubSub) -> bool {
        self.pending
            .iter()
            .find(|p| p.expect != Expect::Lost)
            .is_some_and(|p| p.expect == Expect::Confirm { kind, n: p.n() })
    }

    fn confirmation(
        &mut self,
        kind: PubSub,
        count: Option<i64>,
        m: &Message,
        out: &mut Vec<Exchange>,
    ) {
        if let Some(c) = count {
            self.session.confirmed(kind, c);
        }
        if let Some(t) = self.tail.filter(|t| t.kind == kind) {
            match t.left {
                Some(n) if n > 0 => {
                    self.tail = Some(Tail {
                        kind,
                        left: Some(n - 1),
                    });
                    return;
                }
                None if !self.next_waiting_confirms(kind) => return,
                _ => {}
            }
        }
        self.tail = None;
        match self.take_front(m.first_ts, out) {
            Front::Command(p) => match p.expect {
                Expect::Confirm { kind: k, n } if k == kind => {
                    self.tail = Some(Tail {
                        kind,
                        left: n.checked_sub(1),
                    });
                    emit(p, Some(m), out);
                }
                _ if p.request.is_none() => {}
                _ => {
                    // A confirmation nothing asked for: the command keeps waiting.
                    self.skip = self.skip.saturating_sub(p.dropped_after);
                    self.pending.push_front(p);
                    self.stats.unmatched_responses += 1;
                }
            },
            Front::Absorbed => {}
            Front::Nothing => self.stats.unmatched_responses += 1,
        }
        self.drain_silent(out);
    }

    /// The command a reply read first at `ts` answers.
    fn take_front(&mut self, ts: u64, out: &mut Vec<Exchange>) -> Front {
        if std::mem::take(&mut self.replies_lost) {
            self.drop_answered(ts, out);
        }
        loop {
            if self.skip > 0 {
                self.skip -= 1;
                return Front::Absorbed;
            }
            let Some(front) = self.pending.front() else {
                return Front::Nothing;
            };
            if front.expect == Expect::Lost {
                // Replies before the next known command was read answer lost ones.
                match self.pending.get(1) {
                    Some(next) if ts >= next.ts => {
                        if let Some(p) = self.pending.pop_front() {
                            self.skip += p.dropped_after;
                        }
                        continue;
                    }
                    _ => return Front::Absorbed,
                }
            }
            return match self.pending.pop_front() {
                Some(p) => {
                    self.skip += p.dropped_after;
                    Front::Command(p)
                }
                None => Front::Nothing,
            };
        }
    }

    /// After replies were lost: a server answers the commands it read in one go before it
    /// reads more (Redis writes the replies of one read before the next read), so commands
    /// read before the newest batch read at or before `ts` were answered by lost replies.
    /// They are reported `truncated`, with no response.
    fn drop_answered(&mut self, ts: u64, out: &mut Vec<Exchange>) {
        let Some(newest) = self
            .pending
            .iter()
            .filter(|p| p.expect != Expect::NoReply && p.ts <= ts)
            .map(|p| p.ts)
            .max()
        else {
            return;
        };
        while self.pending.front().is_some_and(|p| p.ts < newest) {
            if let Some(mut p) = self.pending.pop_front() {
                if p.expect != Expect::NoReply {
                    p.truncated = true;
                }
                emit(p, None, out);
            }
        }
        self.skip = 0;
    }

    /// Commands first in line that expect no reply are reported now.
    fn drain_silent(&mut self, out: &mut Vec<Exchange>) {
        while self
            .pending
            .front()
            .is_some_and(|p| p.expect == Expect::NoReply)
        {
            if let Some(p) = self.pending.pop_front() {
                self.skip += p.dropped_after;
                emit(p, None, out);
            }
        }
    }

    /// Commands waiting longer than `timeout_ns` at `now_ns` end with a timeout (the queue is
    /// in arrival order: they are at its front).
    pub(crate) fn expire(&mut self, now_ns: u64, timeout_ns: u64, out: &mut Vec<Exchange>) {
        while self
            .pending
            .front()
            .is_some_and(|p| now_ns.saturating_sub(p.ts) > timeout_ns)
        {
            if let Some(p) = self.pending.pop_front() {
                unanswered(p, Outcome::Timeout, out);
            }
            self.drain_silent(out);
        }
        if self.pending.is_empty() {
            self.skip = 0;
        }
    }

    /// The connection closed: commands still waiting are reset.
    pub(crate) fn close(&mut self, out: &mut Vec<Exchange>) {
        for p in self.pending.drain(..) {
            unanswered(p, Outcome::Reset, out);
        }
        let stats = std::mem::take(&mut self.stats);
        let out_of_band = self.out_of_band;
        *self = Stitcher {
            stats,
            out_of_band,
            ..Stitcher::default()
        };
    }
}

impl Pending {
    fn n(&self) -> u64 {
        match self.expect {
            Expect::Confirm { n, .. } => n,
            _ => 0,
        }
    }
}

/// Report a command with its reply; with `None`, a command that expected none, or whose
/// reply was lost (then `truncated`). Lost commands are not reported.
fn emit(p: Pending, reply: Option<&Message>, out: &mut Vec<Exchange>) {
    let Some(request) = p.request else {
        return;
    };
    let response = reply.map(|m| {
        let error = matches!(m.kind, b'-' | b'!');
        RedisResponse {
            error,
            message: error.then(|| String::from_utf8_lossy(&m.text).into_owned()),
        }
    });
    out.push(Exchange {
        req_ts_ns: p.ts,
        resp_ts_ns: reply.map(|m| m.last_ts),
        request: Request::Redis(request),
        response: response.map(Response::Redis),
        outcome: Outcome::Complete,
        truncated: p.truncated || reply.is_some_and(|m| m.truncated),
        trace: None,
    });
}

/// A command that got no reply before `outcome`; one that expected none is complete.
fn unanswered(p: Pending, outcome: Outcome, out: &mut Vec<Exchange>) {
    if p.expect == Expect::NoReply {
        return emit(p, None, out);
    }
    let Some(request) = p.request else {
        return;
    };
    out.push(Exchange {
        req_ts_ns: p.ts,
        resp_ts_ns: None,
        request: Request::Redis(request),
        response: None,
        outcome,
        truncated: p.truncated,
        trace: None,
    });
}
