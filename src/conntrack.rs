//! Conntrack: per-connection state between capture and output.
//!
//! For each connection it decides which endpoint is the client (from the source's hint, or
//! from which side sent the first request), which protocol it speaks, and owns that
//! protocol's parser. Bytes go in as [`SourceEvent`]s; finished exchanges come out as
//! [`Record`]s. The number of connections is bounded by an LRU; idle ones expire.

use std::net::SocketAddr;
use std::num::NonZeroUsize;

use lru::LruCache;
use serde::Serialize;
use wirelens_protocols::{
    infer, new_parser, Chunk, ConnParser, Exchange, MessageKind, ParseStats, Protocol, Role, Side,
};

use crate::event::{ClientHint, ConnKey, DataEvent, Observer, SourceEvent, Transport};
use crate::output::{Endpoint, ProcessRecord, Record};

/// Limits of the connection table.
#[derive(Clone, Debug)]
pub struct ConntrackConfig {
    /// Connections tracked at once; the least recently used goes first.
    pub max_conns: usize,
    /// A request with no response after this long is reported as `timeout`.
    pub request_timeout_ns: u64,
    /// A connection with no traffic for this long is forgotten.
    pub idle_timeout_ns: u64,
    /// Protocols to parse; others are counted and dropped.
    pub protocols: Vec<Protocol>,
    /// Ports the agent itself sends to (its OTLP exports). A connection of this host to one
    /// of them is checked once: when its other end is the agent's own socket, it is the
    /// agent's export seen at a collector on this host, and its events are counted in
    /// [`ConntrackStats::own_export_events`] and not parsed. Reported, each export would
    /// become a span to export, and so on, as long as the agent runs.
    pub own_ports: Vec<u16>,
}

impl Default for ConntrackConfig {
    fn default() -> Self {
        ConntrackConfig {
            max_conns: 65_536,
            request_timeout_ns: 30_000_000_000,
            idle_timeout_ns: 300_000_000_000,
            protocols: Protocol::ALL.to_vec(),
            own_ports: Vec::new(),
        }
    }
}

/// What conntrack saw and what it could not use; every drop has a counter.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ConntrackStats {
    pub data_events: u64,
    pub data_bytes: u64,
    /// Bytes the capture did not copy (prefix cut), skipped as gaps.
    pub missing_bytes: u64,
    /// Bytes of calls whose events the ring buffer lost, skipped as gaps (live only).
    pub lost_bytes: u64,
    pub conns_opened: u64,
    pub conns_closed: u64,
    /// Connections pushed out of the table by newer ones.
    pub conns_evicted: u64,
    pub conns_idle_expired: u64,
    /// Events dropped before the client side of their connection was known.
    pub undetermined_side_events: u64,
    /// Events of connections whose protocol is unknown or disabled.
    pub unknown_protocol_events: u64,
    pub exchanges: u64,
    /// Connections whose protocol switched to something unreadable (TLS, compression).
    pub conns_left_alone: u64,
    /// Events of the agent's own exports, seen at a collector on this host: not parsed
    /// ([`ConntrackConfig::own_ports`]).
    pub own_export_events: u64,
    pub parse: ParseStats,
}

/// A connection, or for a live UDP socket one of its peers: an unconnected socket talks to
/// many, and each is its own flow of requests and responses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FlowKey {
    conn: ConnKey,
    peer: Option<SocketAddr>,
}

impl FlowKey {
    fn of(d: &DataEvent) -> FlowKey {
        let peer = match (&d.observer, d.transport) {
            (Some(o), Transport::Udp) => Some(if d.src == o.local { d.dst } else { d.src }),
            _ => None,
        };
        FlowKey { conn: d.conn, peer }
    }
}

struct Conn {
    client: Option<SocketAddr>,
    protocol: Option<Protocol>,
    parser: Option<Box<dyn ConnParser>>,
    observer: Option<Observer>,
    last_ts_ns: u64,
    /// The two endpoints as first seen (src, dst).
    ends: (SocketAddr, SocketAddr),
    /// What every record of this connection shares, built with its first record.
    parts: Option<Parts>,
    /// One of the agent's own exports, at the collector's end: not parsed.
    own: bool,
}

/// The fields of a record that depend only on the connection (role, ends, process): built
/// once per connection instead of formatting addresses for every exchange.
struct Parts {
    role: Role,
    client: Endpoint,
    server: Endpoint,
    process: Option<ProcessRecord>,
}

impl Parts {
    fn record(&self, ex: Exchange) -> Record {
        Record::from_parts(
            ex,
            self.role,
            self.client.clone(),
            self.server.clone(),
            self.process.clone(),
        )
    }
}

pub struct Conntrack {
    cfg: ConntrackConfig,
    conns: LruCache<FlowKey, Conn>,
    stats: ConntrackStats,
    /// Parse counters of connections already gone.
    gone: ParseStats,
    scratch: Vec<Exchange>,
}

impl Conntrack {
    pub fn new(cfg: ConntrackConfig) -> Conntrack {
        let cap = NonZeroUsize::new(cfg.max_conns.max(1)).unwrap_or(NonZeroUsize::MIN);
        Conntrack {
            cfg,
            // Sparse: the table grows with the connections actually tracked. Allocated for
            // `max_conns` up front, it spread a few dozen connections over megabytes, and
            // nearly every lookup missed the cache.
            conns: LruCache::sparse(cap),
            stats: ConntrackStats::default(),
            gone: ParseStats::default(),
            scratch: Vec::new(),
        }
    }

    /// Connections tracked now.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Counters so far, parse counters of live and gone connections included.
    pub fn stats(&self) -> ConntrackStats {
        let mut s = self.stats.clone();
        s.parse = self.gone.clone();
        for (_, c) in self.conns.iter() {
            if let Some(p) = &c.parser {
                s.parse.add(p.stats());
                if p.left_alone() {
                    s.conns_left_alone += 1;
                }
            }
        }
        s
    }

    /// Handles one event; finished exchanges are appended to `out`.
    pub fn handle(&mut self, ev: &SourceEvent, out: &mut Vec<Record>) {
        match *ev {
            SourceEvent::Data(ref d) => self.data(d, out),
            SourceEvent::Close { conn, ts_ns, reset } => {
                let exact = FlowKey { conn, peer: None };
                let keys: Vec<FlowKey> = if self.conns.contains(&exact) {
                    vec![exact]
                } else {
                    // A UDP socket: every peer flow of it ends.
                    self.conns
                        .iter()
                        .map(|(k, _)| *k)
                        .filter(|k| k.conn == conn)
                        .collect()
                };
                for key in keys {
                    if let Some(c) = self.conns.pop(&key) {
                        self.stats.conns_closed += 1;
                        self.retire(c, out, |p, ex| p.close(ts_ns, reset, ex));
                    }
                }
            }
            SourceEvent::End { ts_ns } => self.finish(ts_ns, out),
        }
    }

    fn data(&mut self, d: &DataEvent, out: &mut Vec<Record>) {
        self.stats.data_events += 1;
        self.stats.data_bytes += d.data.len() as u64;
        self.stats.missing_bytes += d.missing;
        let key = FlowKey::of(d);
        // One lookup for a known connection (nearly every event); disjoint fields, so that
        // the entry stays borrowed while the counters and the scratch space are used.
        if let Some(c) = self.conns.get_mut(&key) {
            Self::on_conn(c, &self.cfg, &mut self.stats, &mut self.scratch, d, out);
            return;
        }
        let own = d
            .observer
            .as_ref()
            .is_some_and(|o| own_export(&self.cfg.own_ports, o.local, d));
        let conn = Conn {
            client: None,
            protocol: None,
            parser: None,
            observer: d.observer.clone(),
            last_ts_ns: d.ts_ns,
            ends: (d.src, d.dst),
            parts: None,
            own,
        };
        self.stats.conns_opened += 1;
        if let Some((_, old)) = self.conns.push(key, conn) {
            self.stats.conns_evicted += 1;
            self.retire(old, out, |p, ex| p.expire(u64::MAX, 0, ex));
        }
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        Self::on_conn(c, &self.cfg, &mut self.stats, &mut self.scratch, d, out);
    }

    /// The part of [`Conntrack::data`] past the connection's lookup.
    fn on_conn(
        c: &mut Conn,
        cfg: &ConntrackConfig,
        stats: &mut ConntrackStats,
        scratch: &mut Vec<Exchange>,
        d: &DataEvent,
        out: &mut Vec<Record>,
    ) {
        c.last_ts_ns = c.last_ts_ns.max(d.ts_ns);
        if c.own {
            stats.own_export_events += 1;
            return;
        }
        // Inference only matters until the side and the protocol are known.
        let inferred = if c.client.is_none() || c.protocol.is_none() {
            infer(&d.data, d.data.len() as u64 + d.missing, d.transport)
        } else {
            None
        };
        if c.client.is_none() {
            c.client = match (d.client, inferred) {
                (ClientHint::Client(a), _) => Some(a),
                (ClientHint::Unknown, Some(i)) if i.kind == MessageKind::Request => Some(d.src),
                (ClientHint::Unknown, Some(_)) => Some(d.dst),
                (ClientHint::Unknown, None) => None,
            };
        }
        let Some(client) = c.client else {
            stats.undetermined_side_events += 1;
            return;
        };
        if c.protocol.is_none() {
            c.protocol = d
                .protocol
                .or(inferred.map(|i| i.protocol))
                .filter(|p| cfg.protocols.contains(p));
            c.parser = c.protocol.and_then(|p| new_parser(p, d.transport));
        }
        let Some(parser) = c.parser.as_mut() else {
            stats.unknown_protocol_events += 1;
            return;
        };
        let side = if d.src == client {
            Side::Client
        } else {
            Side::Server
        };
        scratch.clear();
        // Calls whose events were lost come first, as gaps in their own direction: a parser
        // then bridges them where lengths are known, or counts the message as lost in a gap,
        // instead of joining the bytes around them (which would pair the wrong messages).
        if d.lost_before.any() && d.transport == Transport::Tcp {
            if let Some(o) = &d.observer {
                let (by_client, by_server) = if o.local == client {
                    (d.lost_before.sent, d.lost_before.received)
                } else {
                    (d.lost_before.received, d.lost_before.sent)
                };
                // The client's side first ([`ConnParser::lost`]).
                for (side, n) in [(Side::Client, by_client), (Side::Server, by_server)] {
                    if n > 0 {
                        stats.lost_bytes += n;
                        parser.lost(side, d.ts_ns, n, scratch);
                    }
                }
            }
        }
        parser.push(
            Chunk {
                side,
                ts_ns: d.ts_ns,
                data: &d.data,
                missing: d.missing,
            },
            scratch,
        );
        c.emit(client, scratch, &mut stats.exchanges, out);
    }

    /// Reports requests older than the request timeout and forgets idle connections.
    pub fn sweep(&mut self, now_ns: u64, out: &mut Vec<Record>) {
        let timeout = self.cfg.request_timeout_ns;
        let mut idle = Vec::new();
        for (key, c) in self.conns.iter_mut() {
            if let (Some(p), Some(client)) = (c.parser.as_mut(), c.client) {
                self.scratch.clear();
                p.expire(now_ns, timeout, &mut self.scratch);
                c.emit(client, &mut self.scratch, &mut self.stats.exchanges, out);
            }
            if now_ns.saturating_sub(c.last_ts_ns) > self.cfg.idle_timeout_ns {
                idle.push(*key);
            }
        }
        for key in idle {
            if let Some(c) = self.conns.pop(&key) {
                self.stats.conns_idle_expired += 1;
                self.retire(c, out, |p, ex| p.expire(u64::MAX, 0, ex));
            }
        }
    }

    /// The source ended: requests still waiting are reported as `timeout`, and every
    /// connection is forgotten.
    pub fn finish(&mut self, _ts_ns: u64, out: &mut Vec<Record>) {
        while let Some((_, c)) = self.conns.pop_lru() {
            self.retire(c, out, |p, ex| p.expire(u64::MAX, 0, ex));
        }
    }

    fn retire(
        &mut self,
        mut c: Conn,
        out: &mut Vec<Record>,
        f: impl FnOnce(&mut dyn ConnParser, &mut Vec<Exchange>),
    ) {
        let (Some(mut p), Some(client)) = (c.parser.take(), c.client) else {
            return;
        };
        self.scratch.clear();
        f(p.as_mut(), &mut self.scratch);
        self.gone.add(p.stats());
        if p.left_alone() {
            self.stats.conns_left_alone += 1;
        }
        c.emit(client, &mut self.scratch, &mut self.stats.exchanges, out);
    }
}

impl Conn {
    /// Turns the finished `exchanges` into records (counted in `count`).
    fn emit(
        &mut self,
        client: SocketAddr,
        exchanges: &mut Vec<Exchange>,
        count: &mut u64,
        out: &mut Vec<Record>,
    ) {
        if exchanges.is_empty() {
            return;
        }
        let parts = self
            .parts
            .get_or_insert_with(|| describe(&self.observer, self.ends, client));
        for ex in exchanges.drain(..) {
            *count += 1;
            out.push(parts.record(ex));
        }
    }
}

/// Whether the connection of `d`, observed at `local`, is one of the agent's own exports:
/// `local` is a port the agent sends to and the other end is a socket of this process.
///
/// A loopback address is every network namespace's own, so there both addresses must be
/// those of the agent's socket. Any other address is the agent's alone: a collector in
/// another namespace (a pod) sees the agent's own address, while the agent's socket is
/// connected to the address it dialled (a Service address, translated on the way), so the
/// other end's address alone decides.
fn own_export(own_ports: &[u16], local: SocketAddr, d: &DataEvent) -> bool {
    if d.transport != Transport::Tcp || !own_ports.contains(&local.port()) {
        return false;
    }
    let remote = if d.src == local { d.dst } else { d.src };
    let peer = remote.ip().to_canonical().is_loopback().then_some(local);
    crate::procfs::own_connection(remote, peer)
}

/// The observer's role, the client and server endpoints and the process of a connection.
fn describe(
    observer: &Option<Observer>,
    ends: (SocketAddr, SocketAddr),
    client: SocketAddr,
) -> Parts {
    let server = if ends.0 == client { ends.1 } else { ends.0 };
    let (role, process) = match observer {
        Some(o) => (
            if o.local == client {
                Role::Client
            } else {
                Role::Server
            },
            Some(ProcessRecord {
                pid: o.process.pid,
                comm: o.process.comm.as_str().into(),
            }),
        ),
        // Replay: both ends are seen, so the exchange is reported as the server saw it.
        None => (Role::Server, None),
    };
    Parts {
        role,
        client: client.into(),
        server: server.into(),
        process,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{LostBefore, ProcessInfo};
    use wirelens_protocols::{Request, Response};

    const SERVER: &str = "127.0.0.1:8080";
    const CLIENT: &str = "127.0.0.1:40000";

    /// An event of a live HTTP server connection, as the kernel reports it (server observed).
    fn ev(ts: u64, sent: bool, data: &[u8], lost: LostBefore) -> SourceEvent {
        let server: SocketAddr = SERVER.parse().unwrap();
        let client: SocketAddr = CLIENT.parse().unwrap();
        event_at(server, client, 5, ts, sent, data, lost)
    }

    /// [`ev`] on the connection `fd` from `client` to `server`.
    fn event_at(
        server: SocketAddr,
        client: SocketAddr,
        fd: i32,
        ts: u64,
        sent: bool,
        data: &[u8],
        lost: LostBefore,
    ) -> SourceEvent {
        let (src, dst) = if sent {
            (server, client)
        } else {
            (client, server)
        };
        SourceEvent::Data(DataEvent {
            conn: ConnKey {
                tgid: 7,
                fd,
                start_ns: 1,
            },
            ts_ns: ts,
            src,
            dst,
            client: ClientHint::Client(client),
            observer: Some(Observer {
                process: ProcessInfo {
                    pid: 7,
                    comm: "web".into(),
                },
                local: server,
            }),
            protocol: Some(Protocol::Http),
            transport: Transport::Tcp,
            data: data.to_vec(),
            missing: 0,
            lost_before: lost,
        })
    }

    fn request(path: &str) -> Vec<u8> {
        format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").into_bytes()
    }

    fn response(status: u16) -> Vec<u8> {
        format!("HTTP/1.1 {status} X\r\nContent-Length: 2\r\n\r\nok").into_bytes()
    }

    fn pairs(records: &[Record]) -> Vec<(String, Option<u16>)> {
        records
            .iter()
            .map(|r| {
                let path = match &r.request {
                    Request::Http(q) => q.path.clone(),
                    other => format!("{other:?}"),
                };
                let status = match &r.response {
                    Some(Response::Http(s)) => Some(s.status),
                    _ => None,
                };
                (path, status)
            })
            .collect()
    }

    /// An exchange at the server's end of `client` -> `server`, observed at the server, on
    /// connection `fd`.
    fn exchange_at(server: SocketAddr, client: SocketAddr, fd: i32) -> [SourceEvent; 2] {
        let none = LostBefore::default();
        [
            event_at(server, client, fd, 10, false, &request("/v1/traces"), none),
            event_at(server, client, fd, 11, true, &response(200), none),
        ]
    }

    /// A connection to an export port whose client end is a socket of this process is the
    /// agent's own export: counted, not reported. Another client of the same port, and this
    /// process's connection to a port that is not an export's, are reported.
    #[test]
    fn the_agents_own_exports_are_left_out() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let collector = listener.local_addr().unwrap();
        let own = std::net::TcpStream::connect(collector).unwrap();
        let _accepted = listener.accept().unwrap();
        let own_end = own.local_addr().unwrap();
        let stranger: SocketAddr = "127.0.0.1:1".parse().unwrap();
        // The agent's address at a collector on another loopback address of the same port:
        // loopback addresses are every network namespace's own, so there the agent's socket
        // must be connected to exactly that address, and this one is not.
        let elsewhere = SocketAddr::new("127.0.0.2".parse().unwrap(), collector.port());
        for (ports, want) in [
            (vec![collector.port()], vec!["stranger", "own"]),
            (
                vec![collector.port().wrapping_add(1)],
                vec!["own", "stranger", "own"],
            ),
        ] {
            let mut ct = Conntrack::new(ConntrackConfig {
                own_ports: ports,
                ..ConntrackConfig::default()
            });
            let mut out = Vec::new();
            for (server, client, fd) in [
                (collector, own_end, 5),
                (collector, stranger, 6),
                (elsewhere, own_end, 7),
            ] {
                for e in exchange_at(server, client, fd) {
                    ct.handle(&e, &mut out);
                }
            }
            let got: Vec<&str> = out
                .iter()
                .map(|r| {
                    if r.client.port == own_end.port() {
                        "own"
                    } else {
                        "stranger"
                    }
                })
                .collect();
            assert_eq!(got, want);
            let left_out = if want.len() == 2 { 2 } else { 0 };
            assert_eq!(ct.stats().own_export_events, left_out);
            assert_eq!(ct.stats().exchanges, want.len() as u64);
        }
    }

    /// /a's response event is lost; the kernel reports its bytes with the next event. Without
    /// that, first-in first-out pairing would give /a the answer of /b, /b that of /c, and so
    /// on for the rest of the connection.
    #[test]
    fn a_lost_response_does_not_shift_the_pairing() {
        for reported in [true, false] {
            let mut ct = Conntrack::new(ConntrackConfig::default());
            let mut out = Vec::new();
            let lost_a = LostBefore {
                sent: if reported {
                    response(201).len() as u64
                } else {
                    0
                },
                received: 0,
            };
            let none = LostBefore::default();
            for e in [
                ev(1, false, &request("/a"), none),
                // The response of /a (201) was lost here.
                ev(3, false, &request("/b"), lost_a),
                ev(4, true, &response(202), none),
                ev(5, false, &request("/c"), none),
                ev(6, true, &response(203), none),
            ] {
                ct.handle(&e, &mut out);
            }
            let got = pairs(&out);
            if reported {
                assert_eq!(
                    got,
                    vec![("/b".into(), Some(202)), ("/c".into(), Some(203))]
                );
                assert_eq!(ct.stats().lost_bytes, response(201).len() as u64);
                assert_eq!(ct.stats().parse.lost_in_gap, 1);
            } else {
                // What happens when nobody says: the shift this field exists to prevent.
                assert_eq!(got[0], ("/a".into(), Some(202)));
            }
        }
    }

    /// A lost request: its response finds nothing waiting and is counted, and the next
    /// exchange pairs right.
    #[test]
    fn a_lost_request_leaves_the_next_exchange_alone() {
        let mut ct = Conntrack::new(ConntrackConfig::default());
        let mut out = Vec::new();
        let none = LostBefore::default();
        let lost_b = LostBefore {
            sent: 0,
            received: request("/b").len() as u64,
        };
        for e in [
            ev(1, false, &request("/a"), none),
            ev(2, true, &response(201), none),
            // /b's request was lost here.
            ev(4, true, &response(202), lost_b),
            ev(5, false, &request("/c"), none),
            ev(6, true, &response(203), none),
        ] {
            ct.handle(&e, &mut out);
        }
        let got = pairs(&out);
        assert!(got.contains(&("/a".into(), Some(201))), "{got:?}");
        assert!(got.contains(&("/c".into(), Some(203))), "{got:?}");
        assert!(
            !got.iter().any(|(p, s)| p == "/c" && *s != Some(203)),
            "{got:?}"
        );
        assert_eq!(ct.stats().parse.lost_in_gap, 1);
    }

    /// A run of lost calls in both directions (as when the ring stays full for a while),
    /// ending before a request or before a response: whatever the run held, no later answer
    /// pairs with an earlier request.
    #[test]
    fn a_run_of_lost_calls_does_not_shift_the_pairing() {
        let none = LostBefore::default();
        let (ra, rb) = (response(201).len() as u64, response(202).len() as u64);
        let qb = request("/b").len() as u64;
        // The run ends before /c's request: it held /a's answer and all of /b.
        let before_request = vec![
            ev(1, false, &request("/a"), none),
            ev(
                5,
                false,
                &request("/c"),
                LostBefore {
                    sent: ra + rb,
                    received: qb,
                },
            ),
            ev(6, true, &response(203), none),
        ];
        // The run ends before /b's answer: it held /a's answer and /b's request.
        let before_response = vec![
            ev(1, false, &request("/a"), none),
            ev(
                4,
                true,
                &response(202),
                LostBefore {
                    sent: ra,
                    received: qb,
                },
            ),
            ev(5, false, &request("/c"), none),
            ev(6, true, &response(203), none),
        ];
        for events in [before_request, before_response] {
            let mut ct = Conntrack::new(ConntrackConfig::default());
            let mut out = Vec::new();
            for e in &events {
                ct.handle(e, &mut out);
            }
            let got = pairs(&out);
            assert!(
                got.iter().all(|(p, s)| match p.as_str() {
                    "/a" => *s == Some(201) || s.is_none(),
                    "/b" => *s == Some(202) || s.is_none(),
                    "/c" => *s == Some(203),
                    _ => false,
                }),
                "{got:?}"
            );
            assert!(got.contains(&("/c".into(), Some(203))), "{got:?}");
        }
    }
}
