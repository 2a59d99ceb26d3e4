//! The commands that change how a server answers on a connection, and the reply kinds of
//! publish/subscribe, as Redis documents them (<https://redis.io/docs/latest/commands/>:
//! MULTI, EXEC, DISCARD, WATCH, RESET, MONITOR, CLIENT REPLY, the (P|S)(UN)SUBSCRIBE
//! family; <https://redis.io/docs/latest/develop/interact/pubsub/> for the messages).

use std::borrow::Cow;
use std::sync::LazyLock;

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

/// The record's `command`: the first word in upper case (record-schema.md). A name of
/// [`COMMON`] is its static string, in whatever case it was sent.
pub(crate) fn command_name(name: &[u8]) -> Cow<'static, str> {
    // The word pads with zeros: the length tells `GET` from `GET\0`.
    if let Some(known) = packed(name).and_then(common) {
        if known.len() == name.len() {
            return Cow::Borrowed(known);
        }
    }
    Cow::Owned(match std::str::from_utf8(name) {
        Ok(s) => s.to_ascii_uppercase(),
        Err(_) => String::from_utf8_lossy(name).to_ascii_uppercase(),
    })
}

/// Commands that make up most of the traffic of common workloads (strings, hashes, lists,
/// sets, sorted sets, keys, scripting, connection), named without a new string per request.
/// Longer than 8 bytes they would not pack; none here is.
const COMMON: [&str; 48] = [
    "GET", "SET", "DEL", "EXISTS", "EXPIRE", "PEXPIRE", "TTL", "PTTL", "INCR", "DECR", "INCRBY",
    "DECRBY", "APPEND", "STRLEN", "MGET", "MSET", "SETEX", "SETNX", "GETDEL", "GETEX", "HGET",
    "HSET", "HMGET", "HMSET", "HDEL", "HGETALL", "HINCRBY", "HEXISTS", "HLEN", "LPUSH", "RPUSH",
    "LPOP", "RPOP", "LRANGE", "LLEN", "SADD", "SREM", "SCARD", "SPOP", "ZADD", "ZRANGE", "ZREM",
    "ZSCORE", "ZCARD", "PING", "EVALSHA", "PUBLISH", "SCAN",
];

/// Up to 8 bytes of a name, upper-cased, as one little-endian word; none for longer names.
fn packed(name: &[u8]) -> Option<u64> {
    if name.is_empty() || name.len() > 8 {
        return None;
    }
    let mut w = [0u8; 8];
    for (d, s) in w.iter_mut().zip(name) {
        *d = s.to_ascii_uppercase();
    }
    Some(u64::from_le_bytes(w))
}

/// The [`COMMON`] name whose packed word is `w`.
fn common(w: u64) -> Option<&'static str> {
    static SORTED: LazyLock<Vec<(u64, &'static str)>> = LazyLock::new(|| {
        let mut v: Vec<(u64, &'static str)> = COMMON
            .iter()
            .filter_map(|n| Some((packed(n.as_bytes())?, *n)))
            .collect();
        v.sort_unstable();
        v
    });
    SORTED
        .binary_search_by_key(&w, |(k, _)| *k)
        .ok()
        .map(|i| SORTED[i].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every common name is found, in any case, as its static string; the others are
    /// upper-cased into a string of their own, as before.
    #[test]
    fn command_names() {
        for n in COMMON {
            assert!(n.len() <= 8, "{n} does not pack");
            for sent in [n.to_string(), n.to_ascii_lowercase()] {
                let got = command_name(sent.as_bytes());
                assert!(matches!(got, Cow::Borrowed(s) if s == n), "{sent}: {got:?}");
            }
        }
        let mut words: Vec<u64> = COMMON.iter().filter_map(|n| packed(n.as_bytes())).collect();
        words.sort_unstable();
        words.dedup();
        assert_eq!(words.len(), COMMON.len(), "two names pack alike");
        for (sent, want) in [
            (&b"hGetAll"[..], "HGETALL"),
            (b"zrangebyscore", "ZRANGEBYSCORE"),
            (b"get2", "GET2"),
            (b"GE", "GE"),
            (b"", ""),
            (b"x\xffy", "X\u{fffd}Y"),
            (b"get\0", "GET\0"),
            (b"SET\0\0", "SET\0\0"),
        ] {
            assert_eq!(command_name(sent), want, "{sent:?}");
        }
        assert!(matches!(command_name(b"CLUSTER"), Cow::Owned(_)));
    }
}
