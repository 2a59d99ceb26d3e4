//! Protocol parsers and request/response pairing for wirelens.
//!
//! This crate is pure: no I/O, no async, no kernel. The live path (eBPF events) and the replay
//! path (pcap files) both reduce traffic to the same thing, an ordered byte stream per
//! connection and direction with explicit gaps where the capture cut, and push it into a
//! [`ConnParser`]. The parser frames messages, pairs requests with responses and hands out
//! [`Exchange`]s.
//!
//! The shape of every exchange is fixed by `shared/record-schema.md`: the request and response
//! structs of each protocol module serialize to exactly the fields listed there.

pub mod dns;
pub mod exchange;
pub mod http;
pub mod infer;
pub mod mysql;
pub mod pgsql;
pub mod redis;
pub mod sql;

pub use exchange::{Exchange, Outcome, ParseStats, Request, Response, Role, Status, TraceContext};
pub use infer::{infer, Confidence, Inference, MessageKind, Protocol};

/// Which end of a connection sent a run of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// Bytes sent by the client (the side that opened the connection or sent the request).
    Client,
    /// Bytes sent by the server (the side that answered).
    Server,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }
}

/// One contiguous run of bytes in one direction of a connection.
///
/// `data` is what was captured; `missing` is how many bytes of the stream followed `data`
/// but were not captured (the kernel copies only a prefix of each call, and replay may miss
/// segments). The next chunk in the same direction starts right after those missing bytes.
#[derive(Clone, Copy, Debug)]
pub struct Chunk<'a> {
    pub side: Side,
    /// Time the bytes were seen, ns (any epoch; the caller keeps it consistent).
    pub ts_ns: u64,
    pub data: &'a [u8],
    pub missing: u64,
}

impl Chunk<'static> {
    /// `missing` bytes of `side`, none of them captured.
    pub fn gap(side: Side, ts_ns: u64, missing: u64) -> Self {
        Chunk {
            side,
            ts_ns,
            data: &[],
            missing,
        }
    }
}

/// Per-connection parse and pairing state of one protocol.
///
/// Implementations frame messages in both directions, pair them, and append finished
/// exchanges to `out`. They never panic on any input and never loop without consuming bytes;
/// invalid bytes are counted in [`ParseStats::parse_errors`] and the parser resynchronises at
/// the next plausible message boundary.
pub trait ConnParser: Send {
    /// Feed the next chunk of one direction.
    fn push(&mut self, chunk: Chunk<'_>, out: &mut Vec<Exchange>);
    /// The connection closed (`reset`: it was aborted). Requests still waiting for a response
    /// are emitted with [`Outcome::Reset`]; a response still being read to close ends there.
    fn close(&mut self, ts_ns: u64, reset: bool, out: &mut Vec<Exchange>);
    /// Requests that have waited longer than `timeout_ns` at `now_ns` are emitted with
    /// [`Outcome::Timeout`].
    fn expire(&mut self, now_ns: u64, timeout_ns: u64, out: &mut Vec<Exchange>);
    /// Whole calls carrying `bytes` of `side` were lost before the next chunk (their events
    /// never reached the parser: the kernel could not queue them). Unlike a chunk's
    /// `missing` tail, the loss may hold any number of whole messages. By default it is a
    /// gap like any other.
    fn lost(&mut self, side: Side, ts_ns: u64, bytes: u64, out: &mut Vec<Exchange>) {
        self.push(Chunk::gap(side, ts_ns, bytes), out);
    }
    /// Counters of what could not be turned into exchanges.
    fn stats(&self) -> &ParseStats;
    /// True once the connection switched to something the parser cannot read (TLS,
    /// compression, a replication stream) and is left alone.
    fn left_alone(&self) -> bool {
        false
    }
}

/// How the bytes of a connection travel: a stream, or datagrams (each chunk one datagram).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Tcp,
    Udp,
}

/// A new parser for a protocol over a transport, or `None` when there is none for that pair.
pub fn new_parser(protocol: Protocol, transport: Transport) -> Option<Box<dyn ConnParser>> {
    match (protocol, transport) {
        (Protocol::Http, Transport::Tcp) => Some(Box::new(http::HttpParser::new())),
        (Protocol::Mysql, Transport::Tcp) => Some(Box::new(mysql::MysqlParser::new())),
        (Protocol::Pgsql, Transport::Tcp) => Some(Box::new(pgsql::PgsqlParser::new())),
        (Protocol::Redis, Transport::Tcp) => Some(Box::new(redis::RedisParser::new())),
        (Protocol::Dns, t) => Some(Box::new(dns::DnsParser::new(t))),
        _ => None,
    }
}
