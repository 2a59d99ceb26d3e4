//! The connection's phases and what each packet means in them ("Connection Lifecycle"):
//! the handshake and authentication are skipped, keeping only the capability flags both ends
//! agreed on; commands are queued and paired with the responses that follow.
//!
//! A connection that switches to TLS (CLIENT_SSL in the client's SSLRequest), negotiates
//! compression (CLIENT_COMPRESS, CLIENT_ZSTD_COMPRESSION_ALGORITHM) or turns into a
//! replication stream is left alone from there ([`Skip`]). A capture that starts after the
//! handshake is taken to be in the command phase.

use std::collections::VecDeque;
use std::sync::Arc;

use super::command::{self, Command, Known};
use super::packet::{Event, Flow, Packet};
use super::response::{Answer, Ctx, EofMode, Expect, Fed};
use super::stitch::{self, Pending, Statement, Statements};
use super::wire::{self, cap, MAX_PACKET};
use crate::{Exchange, Outcome, ParseStats};

/// Why a connection is no longer parsed (MySQL source documentation, "Connection Phase",
/// "Compression").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// The client asked for TLS ("Protocol::SSLRequest", CLIENT_SSL): what follows is TLS.
    Tls,
    /// Both ends announced CLIENT_COMPRESS or CLIENT_ZSTD_COMPRESSION_ALGORITHM: after the
    /// authentication's OK, packets are compressed.
    Compressed,
    /// COM_BINLOG_DUMP, COM_BINLOG_DUMP_GTID, COM_CLONE or COM_MULTI: what follows is not
    /// command/response traffic this parser reads.
    Replication,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Nothing seen yet.
    Start,
    /// The server's greeting was seen; the client's HandshakeResponse or SSLRequest is next.
    Greeted,
    /// Authentication: packets until the server's OK or ERR.
    Auth,
    Command,
    Off,
}

/// Bytes of a client packet kept (the statement text of COM_QUERY and COM_STMT_PREPARE).
pub const MAX_QUERY: usize = 64 * 1024;
/// Bytes of a server packet kept (enough for an ERR message, at most 512 bytes).
pub(crate) const MAX_SERVER_KEEP: usize = 1024;

pub(crate) struct Session {
    phase: Phase,
    server_caps: Option<u32>,
    client_caps: Option<u32>,
    ctx: Ctx,
    pending: VecDeque<Pending>,
    answering: Option<Answer>,
    /// An EOF with this sequence id may end the response just emitted (see [`Fed`]).
    absorb: Option<u8>,
    /// Sequence id of the last server packet read, to tell a response's first packet (1)
    /// from a wrap-around of a long one (255, 0, 1).
    prev_server_seq: Option<u8>,
    statements: Statements,
    /// The latest COM_STMT_PREPARE's statement, for statement id 0xFFFFFFFF.
    last_prepare: Option<Arc<Statement>>,
    skipped: Option<Skip>,
    pub(crate) stats: ParseStats,
}

impl Session {
    pub(crate) fn new() -> Session {
        Session {
            phase: Phase::Start,
            server_caps: None,
            client_caps: None,
            ctx: Ctx {
                eof: EofMode::Unknown,
                infile: false,
            },
            pending: VecDeque::new(),
            answering: None,
            absorb: None,
            prev_server_seq: None,
            statements: Statements::default(),
            last_prepare: None,
            skipped: None,
            stats: ParseStats::default(),
        }
    }

    pub(crate) fn skipped(&self) -> Option<Skip> {
        self.skipped
    }

    fn skip(&mut self, why: Skip) -> Flow {
        self.skipped = Some(why);
        self.phase = Phase::Off;
        self.pending.clear();
        self.answering = None;
        Flow::Stop
    }

    // --- client --------------------------------------------------------------------------

    pub(crate) fn client(&mut self, ev: Event<'_, '_>) -> Flow {
        match ev {
            Event::Packet(p) => self.client_packet(p),
            Event::Lost { ts } => {
                self.stats.lost_in_gap += 1;
                match self.phase {
                    Phase::Command if !self.ctx.infile => {
                        // A command may have started in the gap: hold its place.
                        let lost = Pending {
                            ts,
                            cmd: 0,
                            expect: Expect::Generic,
                            request: None,
                            truncated: true,
                            cursor: false,
                            statement: None,
                        };
                        stitch::enqueue(&mut self.pending, lost, &mut self.stats);
                    }
                    Phase::Greeted => self.phase = Phase::Auth,
                    _ => {}
                }
                Flow::Continue
            }
            Event::Start { data, total, .. } => self.client_start(data, total),
        }
    }

    /// May a client chunk starting with `data` start a packet, the framing being lost?
    fn client_start(&mut self, data: &[u8], total: u64) -> Flow {
        let Some((len, seq, first)) = header(data) else {
            return Flow::Resync;
        };
        let command = seq == 0 && wire::is_command(first) && 4 + len <= total;
        let ok = match self.phase {
            Phase::Start => {
                // A HandshakeResponse41 without the greeting: at least 32 bytes, 4.1 flag.
                let response = seq == 1
                    && len >= 32
                    && data
                        .get(4..6)
                        .is_some_and(|c| u16::from_le_bytes([c[0], c[1]]) & 0x0200 != 0);
                command || response
            }
            Phase::Greeted => seq == 1,
            Phase::Auth => seq != 0 || command,
            Phase::Command => !self.ctx.infile && command,
            Phase::Off => false,
        };
        if ok {
            Flow::Continue
        } else {
            Flow::Resync
        }
    }

    fn client_packet(&mut self, p: &Packet<'_>) -> Flow {
        let first = p.first();
        match self.phase {
            Phase::Off => Flow::Stop,
            Phase::Start if p.seq == 1 => self.handshake_response(p),
            Phase::Start => {
                self.phase = Phase::Command;
                self.command_packet(p)
            }
            Phase::Greeted if p.seq == 1 => self.handshake_response(p),
            Phase::Greeted => Flow::Continue,
            Phase::Auth if p.seq == 0 && first.is_some_and(wire::is_command) => {
                // The server's OK was not seen.
                self.phase = Phase::Command;
                self.command_packet(p)
            }
            Phase::Auth => Flow::Continue,
            Phase::Command => self.command_packet(p),
        }
    }

    fn handshake_response(&mut self, p: &Packet<'_>) -> Flow {
        let Some(caps) = wire::client_capabilities(p.payload) else {
            self.stats.parse_errors += 1;
            self.phase = Phase::Auth;
            return Flow::Continue;
        };
        self.client_caps = Some(caps);
        if caps & cap::SSL != 0 {
            return self.skip(Skip::Tls);
        }
        self.ctx.eof = if caps & cap::DEPRECATE_EOF == 0 {
            EofMode::Eof
        } else {
            match self.server_caps {
                Some(s) if s & cap::DEPRECATE_EOF != 0 => EofMode::Deprecate,
                Some(_) => EofMode::Eof,
                None => EofMode::Unknown,
            }
        };
        self.phase = Phase::Auth;
        Flow::Continue
    }

    /// Capabilities both ends announced (the client's alone when the greeting was not seen).
    fn agreed(&self) -> u32 {
        self.client_caps.unwrap_or(0) & self.server_caps.unwrap_or(u32::MAX)
    }

    fn command_packet(&mut self, p: &Packet<'_>) -> Flow {
        if self.ctx.infile {
            // LOCAL INFILE contents; an empty packet ends the file.
            if p.len == 0 {
                self.ctx.infile = false;
            }
            return Flow::Continue;
        }
        if p.seq != 0 {
            if self.answering.as_ref().is_some_and(Answer::auth) {
                return Flow::Continue;
            }
            self.stats.parse_errors += 1;
            return Flow::Resync;
        }
        let Some(cmd) = p.first() else {
            self.stats.parse_errors += 1;
            return Flow::Continue;
        };
        let known = Known {
            statements: &self.statements,
            last_prepare: self.last_prepare.as_ref(),
            caps: self.agreed(),
        };
        match command::classify(p, cmd, &known) {
            Command::Silent { close } => {
                if let Some(id) = close {
                    self.statements.remove(id);
                }
                Flow::Continue
            }
            Command::Detach => self.skip(Skip::Replication),
            Command::Request { pending, reset } => {
                if reset {
                    self.statements.clear();
                    self.last_prepare = None;
                }
                if let Some(st) = &pending.statement {
                    self.last_prepare = Some(Arc::clone(st));
                }
                // A placeholder for a command lost in a gap that got no response by now was
                // a command without one (or its response was lost too): it must not take the
                // next response.
                self.pending.retain(|q| q.request.is_some());
                stitch::enqueue(&mut self.pending, pending, &mut self.stats);
                Flow::Continue
            }
        }
    }

    // --- server --------------------------------------------------------------------------

    pub(crate) fn server(&mut self, ev: Event<'_, '_>, out: &mut Vec<Exchange>) -> Flow {
        match ev {
            Event::Packet(p) => self.server_packet(p, out),
            Event::Lost { ts } => {
                // A gap inside the one response waited for held nothing but its rest (the
                // response is reported, cut short): no message was lost.
                let only_this = self.phase == Phase::Command
                    && self.answering.is_some()
                    && self.pending.is_empty();
                if !only_this {
                    self.stats.lost_in_gap += 1;
                }
                self.absorb = None;
                self.prev_server_seq = None;
                match self.phase {
                    // A gap inside a response being read: it ends when the next one starts,
                    // cut short. A gap where no response was being read swallowed the start
                    // of the oldest command's answer, and with it the status: that command
                    // is forgotten (counted above, as HTTP does), so the next answer pairs
                    // with the next command.
                    Phase::Command => match &mut self.answering {
                        Some(a) => a.lose(ts),
                        None => {
                            self.pending.pop_front();
                        }
                    },
                    // The end of the authentication was lost: assume the command phase.
                    Phase::Greeted | Phase::Auth => self.phase = Phase::Command,
                    Phase::Start | Phase::Off => {}
                }
                Flow::Continue
            }
            Event::Start { data, total, ts } => self.server_start(data, total, ts, out),
        }
    }

    /// May a server chunk starting with `data` start a packet, the framing being lost? Only
    /// the start of a response is taken; when one was being read (its end lost), a new
    /// command must be waiting, and that response ends before this chunk.
    fn server_start(&mut self, data: &[u8], total: u64, ts: u64, out: &mut Vec<Exchange>) -> Flow {
        let Some((len, seq, first)) = header(data) else {
            return self.refuse(ts);
        };
        let fits = 4 + len <= total;
        let ok = match self.phase {
            Phase::Start => {
                // The greeting opens the connection however the chunk was cut.
                (seq == 0 && (first == 0x0a && len >= 20 || first == 0xff))
                    || (seq == 1 && fits && response_start(first, len))
            }
            Phase::Greeted | Phase::Auth => seq != 0 && fits,
            Phase::Command => {
                let infile = self.answering.as_ref().is_some_and(Answer::infile);
                let waiting = !self.pending.is_empty();
                if infile {
                    matches!(first, 0x00 | 0xff)
                } else {
                    // A response must start with sequence id 1. With a command waiting that
                    // is enough; otherwise the first packet must fit the chunk, as the start
                    // of a write does.
                    seq == 1
                        && response_start(first, len)
                        && if self.answering.is_some() {
                            waiting
                        } else {
                            waiting || fits
                        }
                }
            }
            Phase::Off => false,
        };
        if !ok {
            return self.refuse(ts);
        }
        if self.phase == Phase::Command && self.answering.as_ref().is_some_and(|a| !a.infile()) {
            if let Some(a) = self.answering.take() {
                stitch::emit(a, out);
            }
        }
        self.prev_server_seq = None;
        Flow::Continue
    }

    /// A server chunk not taken as a packet start belongs to the response being read.
    fn refuse(&mut self, ts: u64) -> Flow {
        if let Some(a) = &mut self.answering {
            a.last_ts = a.last_ts.max(ts);
        }
        Flow::Resync
    }

    fn server_packet(&mut self, p: &Packet<'_>, out: &mut Vec<Exchange>) -> Flow {
        let first = p.first();
        match self.phase {
            Phase::Off => Flow::Stop,
            Phase::Start if p.seq == 0 && first == Some(0x0a) => {
                match wire::greeting(p.payload) {
                    Some(g) => self.server_caps = Some(g.capabilities),
                    None => self.stats.parse_errors += 1,
                }
                self.phase = Phase::Greeted;
                Flow::Continue
            }
            // Refused before the handshake ("Too many connections", host blocked).
            Phase::Start if p.seq == 0 && first == Some(0xff) => Flow::Continue,
            Phase::Start => {
                self.phase = Phase::Command;
                self.response_packet(p, out)
            }
            Phase::Greeted => Flow::Continue,
            Phase::Auth => match first {
                Some(0x00) => {
                    if self.agreed() & (cap::COMPRESS | cap::ZSTD) != 0 {
                        return self.skip(Skip::Compressed);
                    }
                    self.phase = Phase::Command;
                    Flow::Continue
                }
                Some(0xff) => {
                    self.phase = Phase::Command;
                    Flow::Continue
                }
                // Auth switch request (0xFE), more data (0x01).
                _ => Flow::Continue,
            },
            Phase::Command => self.response_packet(p, out),
        }
    }

    fn response_packet(&mut self, p: &Packet<'_>, out: &mut Vec<Exchange>) -> Flow {
        if let Some(seq) = self.absorb.take() {
            if p.seq == seq && wire::is_eof(p.first(), p.len) {
                self.ctx.eof = EofMode::Eof;
                self.prev_server_seq = Some(p.last_seq);
                return Flow::Continue;
            }
        }
        let prev = self.prev_server_seq.replace(p.last_seq);
        if self.answering.is_none() {
            if self.pending.is_empty() {
                // The start of a response nothing asked for (a capture that began after the
                // command); 1 after 0 is a long response's sequence wrapping around.
                if p.seq == 1 && prev != Some(0) {
                    self.stats.unmatched_responses += 1;
                }
                return Flow::Continue;
            }
            if p.seq != 1 {
                self.stats.parse_errors += 1;
                return Flow::Resync;
            }
            let front = self.pending.pop_front();
            self.answering = front.map(|f| Answer::new(f, p.first_ts));
        }
        let Some(ans) = self.answering.as_mut() else {
            return Flow::Continue;
        };
        let fed = ans.feed(p, &mut self.ctx);
        if let Some(id) = ans.prepared.take() {
            if let Some(st) = &ans.req.statement {
                self.stats.pending_overflow += self.statements.insert(id, Arc::clone(st));
            }
        }
        match fed {
            Fed::More => Flow::Continue,
            Fed::Done | Fed::DoneUnlessEof => {
                if fed == Fed::DoneUnlessEof {
                    self.absorb = Some(p.last_seq.wrapping_add(1));
                }
                if let Some(a) = self.answering.take() {
                    stitch::emit(a, out);
                }
                Flow::Continue
            }
            Fed::Invalid => {
                self.stats.parse_errors += 1;
                ans.lose(p.last_ts);
                self.ctx.infile = false;
                Flow::Resync
            }
        }
    }

    // --- end of the connection -----------------------------------------------------------

    /// Whole calls of the server were lost (the capture could not queue them), reported
    /// before the connection's next call. The classic protocol answers one command before
    /// the next is read, so every command still waiting was answered inside the loss: with
    /// what, and when, is unknown. Each is forgotten and counted in `lost_in_gap`, as HTTP
    /// does with the requests a loss answered: a record would claim a status nobody saw and
    /// a duration that ends at the next call, not at the answer. Left waiting, the next
    /// answer would pair with the oldest of them. The answer being read, if any, goes on:
    /// the framing finds its end as before.
    pub(crate) fn answers_lost(&mut self) {
        if self.phase != Phase::Command || self.ctx.infile {
            return;
        }
        self.stats.lost_in_gap += self.pending.len() as u64;
        self.pending.clear();
    }

    /// The connection closed: a response being read ends there, cut short; commands still
    /// waiting are reset.
    pub(crate) fn close(&mut self, out: &mut Vec<Exchange>) {
        if let Some(mut a) = self.answering.take() {
            a.truncated = true;
            stitch::emit(a, out);
        }
        for p in self.pending.drain(..) {
            stitch::unanswered(p, Outcome::Reset, out);
        }
        self.ctx.infile = false;
        self.absorb = None;
    }

    /// A response with no packet for `timeout_ns` ends, cut short; then commands waiting
    /// longer than that time out. Returns true when a response was ended (the server's
    /// framing must then resynchronise).
    pub(crate) fn expire(&mut self, now_ns: u64, timeout_ns: u64, out: &mut Vec<Exchange>) -> bool {
        let mut ended = false;
        if let Some(a) = &self.answering {
            if now_ns.saturating_sub(a.last_ts) <= timeout_ns {
                return false;
            }
            if let Some(mut a) = self.answering.take() {
                a.truncated = true;
                if a.infile() {
                    self.ctx.infile = false;
                }
                stitch::emit(a, out);
                ended = true;
            }
        }
        while let Some(p) = self.pending.front() {
            if now_ns.saturating_sub(p.ts) <= timeout_ns {
                break;
            }
            if let Some(p) = self.pending.pop_front() {
                stitch::unanswered(p, Outcome::Timeout, out);
            }
        }
        ended
    }

    /// The connection is no longer parsed.
    pub(crate) fn off(&self) -> bool {
        self.phase == Phase::Off
    }
}

/// Payload length, sequence id and first payload byte of a packet at the start of `data`.
fn header(data: &[u8]) -> Option<(u64, u8, u8)> {
    let h = data.get(..5)?;
    Some((
        u64::from(u32::from_le_bytes([h[0], h[1], h[2], 0])),
        h[3],
        h[4],
    ))
}

/// Whether a packet can open a response: OK, ERR, EOF, LOCAL INFILE, or a column count.
fn response_start(first: u8, len: u64) -> bool {
    match first {
        0x00 => len >= 7,
        0xff => len >= 3,
        0xfe => len < u64::from(MAX_PACKET),
        0xfb => true,
        // A column count (length-encoded, maybe with a metadata flag): a few bytes.
        _ => len <= 10,
    }
}
