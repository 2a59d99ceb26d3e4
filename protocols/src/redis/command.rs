//! The commands that change how a server answers on a connection, and the reply kinds of
//! publish/subscribe, as Redis documents them (<https://redis.io/docs/latest/commands/>:
//! MULTI, EXEC, DISCARD, WATCH, RESET, MONITOR, CLIENT REPLY, the (P|S)(UN)SUBSCRIBE
//! family; <https://redis.io/docs/latest/develop/interact/pubsub/> for the messages).

use super::message::{Elem, Message};

/// The six publish/subscribe commands; each is confirmed by a reply (a RESP2 array, a RESP3
/// push) whose first element is the command's name in lower case, one per channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PubSub {
    Subscribe,
    Psubscribe,
    Ssubscribe,
    Unsubscribe,
    Punsubscribe,
    Sunsubscribe,
}

impl PubSub {
    const ALL: [(PubSub, &'static [u8]); 6] = [
        (PubSub::Subscribe, b"subscribe"),
        (PubSub::Psubscribe, b"psubscribe"),
        (PubSub::Ssubscribe, b"ssubscribe"),
        (PubSub::Unsubscribe, b"unsubscribe"),
        (PubSub::Punsubscribe, b"punsubscribe"),
        (PubSub::Sunsubscribe, b"sunsubscribe"),
    ];

    /// The command of this name (any case).
    fn of_command(name: &[u8]) -> Option<PubSub> {
        PubSub::ALL
            .iter()
            .find(|(_, n)| name.eq_ignore_ascii_case(n))
            .map(|(k, _)| *k)
    }

    /// The confirmation whose first element is `e` (Redis writes it in lower case).
    pub(crate) fn of_reply(e: &Elem) -> Option<PubSub> {
        if !e.known() {
            return None;
        }
        PubSub::ALL
            .iter()
            .find(|(_, n)| e.bytes() == *n)
            .map(|(k, _)| *k)
    }

    /// Subscribing rather than unsubscribing: without channels it is an error (one reply).
    pub(crate) fn subscribes(self) -> bool {
        matches!(
            self,
            PubSub::Subscribe | PubSub::Psubscribe | PubSub::Ssubscribe
        )
    }

    /// Shard channels, counted apart from channels and patterns in confirmations.
    pub(crate) fn sharded(self) -> bool {
        matches!(self, PubSub::Ssubscribe | PubSub::Sunsubscribe)
    }
}

/// A published message delivered to a subscriber: `message`, `smessage` (3 elements) or
/// `pmessage` (4), never a reply to a command.
pub(crate) fn is_message(first: &Elem, count: u64) -> bool {
    first.known()
        && matches!(
            (first.bytes(), count),
            (b"message", 3) | (b"smessage", 3) | (b"pmessage", 4)
        )
}

/// `CLIENT REPLY ON|OFF|SKIP`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReplyArg {
    On,
    Off,
    Skip,
}

/// What a command does beyond getting one reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Special {
    None,
    Multi,
    Exec,
    Discard,
    Watch,
    Quit,
    Reset,
    Monitor,
    PubSub(PubSub),
    ClientReply(ReplyArg),
}

impl Special {
    /// The special meaning of a command (its name and first arguments, any case).
    pub(crate) fn of(m: &Message) -> Special {
        let name = m.elems[0].bytes();
        let is = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
        if is("MULTI") {
            Special::Multi
        } else if is("EXEC") {
            Special::Exec
        } else if is("DISCARD") {
            Special::Discard
        } else if is("WATCH") {
            Special::Watch
        } else if is("QUIT") {
            Special::Quit
        } else if is("RESET") {
            Special::Reset
        } else if is("MONITOR") {
            Special::Monitor
        } else if is("CLIENT") && m.count == 3 {
            let (sub, arg) = (&m.elems[1], &m.elems[2]);
            let arg_is = |s: &str| arg.known() && arg.bytes().eq_ignore_ascii_case(s.as_bytes());
            if !(sub.known() && sub.bytes().eq_ignore_ascii_case(b"REPLY")) {
                Special::None
            } else if arg_is("ON") {
                Special::ClientReply(ReplyArg::On)
            } else if arg_is("OFF") {
                Special::ClientReply(ReplyArg::Off)
            } else if arg_is("SKIP") {
                Special::ClientReply(ReplyArg::Skip)
            } else {
                Special::None
            }
        } else {
            PubSub::of_command(name).map_or(Special::None, Special::PubSub)
        }
    }

    /// Runs at once inside MULTI instead of being queued (Redis `processCommand`: EXEC,
    /// DISCARD, MULTI, WATCH, QUIT and RESET).
    pub(crate) fn runs_in_multi(self) -> bool {
        matches!(
            self,
            Special::Exec
                | Special::Discard
                | Special::Multi
                | Special::Watch
                | Special::Quit
                | Special::Reset
        )
    }
}

/// The record's `command`: the first word in upper case (record-schema.md).
pub(crate) fn command_name(name: &[u8]) -> String {
    match std::str::from_utf8(name) {
        Ok(s) => s.to_ascii_uppercase(),
        Err(_) => String::from_utf8_lossy(name).to_ascii_uppercase(),
    }
}
