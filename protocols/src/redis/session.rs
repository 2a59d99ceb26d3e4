//! What the server has been told about a connection, and so what each command expects in
//! reply (Redis commands reference: MULTI, EXEC, DISCARD, RESET, CLIENT REPLY, MONITOR and
//! the (P|S)(UN)SUBSCRIBE family, <https://redis.io/docs/latest/commands/>).

use super::command::{PubSub, ReplyArg, Special};

/// What a waiting command expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expect {
    /// One reply.
    Reply,
    /// None (`CLIENT REPLY OFF|SKIP`): reported as soon as it is first in line.
    NoReply,
    /// Confirmations of a publish/subscribe command, one per channel; `n` channels, 0 when
    /// the count is unknown (an UNSUBSCRIBE without channels).
    Confirm { kind: PubSub, n: u64 },
    /// Commands lost in a capture gap or in invalid bytes, how many is unknown: it absorbs
    /// the replies that came before the next known command was read (a reply never
    /// precedes its command).
    Lost,
}

/// `CLIENT REPLY` state (Redis `CLIENT_REPLY_OFF`, `CLIENT_REPLY_SKIP_NEXT`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum ReplyMode {
    #[default]
    On,
    Off,
    SkipNext,
}

/// The connection's state as its commands set it.
#[derive(Debug, Default)]
pub(crate) struct Session {
    multi: bool,
    reply: ReplyMode,
    /// Subscriptions to channels and patterns, and to shard channels, as the last
    /// confirmations counted them.
    channels: i64,
    shards: i64,
    /// MONITOR was answered: the server now streams the commands it runs.
    pub(crate) monitor: bool,
}

impl Session {
    /// What a command with `args` arguments expects, given the state before it; the state
    /// after it. Inside MULTI a command is queued and answered once (`+QUEUED` or an
    /// error), except those Redis runs at once (`Special::runs_in_multi`). `CLIENT REPLY
    /// ON` and RESET are answered whatever the reply mode: Redis turns replies back on
    /// before answering them.
    pub(crate) fn expect(&mut self, special: Special, args: u64) -> Expect {
        let now = !self.queues(special);
        let mut expect = match special {
            // A SUBSCRIBE without channels is an arity error: one reply.
            Special::PubSub(kind) if now && !(kind.subscribes() && args == 0) => {
                Expect::Confirm { kind, n: args }
            }
            _ => Expect::Reply,
        };
        match special {
            Special::ClientReply(arg) if now => {
                (expect, self.reply) = match (arg, self.reply) {
                    (ReplyArg::On, _) => (Expect::Reply, ReplyMode::On),
                    (ReplyArg::Off, _) | (ReplyArg::Skip, ReplyMode::Off) => {
                        (Expect::NoReply, ReplyMode::Off)
                    }
                    (ReplyArg::Skip, _) => (Expect::NoReply, ReplyMode::SkipNext),
                };
            }
            Special::Reset => *self = Session::default(),
            _ => expect = self.silenced(expect),
        }
        match special {
            Special::Multi => self.multi = true,
            Special::Exec | Special::Discard => self.multi = false,
            _ => {}
        }
        expect
    }

    /// Inside MULTI, the command is queued rather than run.
    pub(crate) fn queues(&self, special: Special) -> bool {
        self.multi && !special.runs_in_multi()
    }

    /// The expectation of a command under `CLIENT REPLY OFF|SKIP`.
    pub(crate) fn silenced(&mut self, expect: Expect) -> Expect {
        match self.reply {
            ReplyMode::On => expect,
            ReplyMode::Off => Expect::NoReply,
            ReplyMode::SkipNext => {
                self.reply = ReplyMode::On;
                Expect::NoReply
            }
        }
    }

    /// A confirmation of `kind` counted `count` subscriptions left.
    pub(crate) fn confirmed(&mut self, kind: PubSub, count: i64) {
        if kind.sharded() {
            self.shards = count;
        } else {
            self.channels = count;
        }
    }

    /// In RESP2 subscribed mode (published messages arrive as arrays).
    pub(crate) fn subscribed(&self) -> bool {
        self.channels > 0 || self.shards > 0
    }
}
