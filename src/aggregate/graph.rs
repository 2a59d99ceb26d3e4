//! The service graph: one edge per (client service, server service, protocol), with its
//! calls, failed calls and a duration histogram (exported as `wirelens_service_graph_*`).
//!
//! # Counting each exchange once
//!
//! When both ends of a connection are processes this agent observes, each exchange is
//! recorded twice, once per side. An edge counts an exchange from the **server's record when
//! the server is observed**, and from the client's record only when it is not (a remote
//! server, or a local one outside the filters). So the duration of an edge is the server's
//! (time to answer) whenever the server is observed, and what the client waited otherwise.
//!
//! Whether the server is observed is known from its records ([`Peers`]): an endpoint where an
//! observed process answered. The two records of one exchange reach the aggregator a few
//! milliseconds apart, in either order, so an exchange is not attributed at once: it waits in
//! [`Pending`] for [`GRACE`] (one second, measured when records reach the aggregator, so a
//! pipeline running late delays both sides alike), and [`Pending::settle`] (every second in
//! the live pipeline) attributes what has waited that long. By then the other side's record,
//! if there is one, has been seen, which also lets a server's record name its client by
//! service. The exchanges of one connection seen from one side within [`MERGE`] of its entry's
//! opening wait as that one entry, found through an index by ports (keep-alive connections,
//! interleaved or not, cost an entry per connection per [`MERGE`], not one per exchange).
//! When more than
//! [`MAX_PENDING`] entries wait, the oldest is attributed early with what is known then (its
//! exchanges counted: `settled_early`).
//!
//! # Failed
//!
//! A call failed when its record's status is not `ok`, except an HTTP 4xx seen by the client:
//! the server judges its own answers (4xx is the caller's error), so an edge's failures do not
//! depend on which side was observed.

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use hashbrown::Equivalent;
use wirelens_protocols::{Response, Status};

use super::peer::{is_server_side, AddrRef, Peers};
use super::Histogram;
use crate::output::Record;
use crate::text::{same, same_bytes};

/// Entries waiting for attribution at most; more settle the oldest early.
pub const MAX_PENDING: usize = 65_536;

/// How long an exchange waits for the other side's record before it is attributed.
pub const GRACE: Duration = Duration::from_secs(1);

/// Exchanges of one connection and side join the entry that opened less than this ago.
pub const MERGE: Duration = Duration::from_millis(100);

/// An edge of the service graph.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct EdgeKey {
    /// The calling service (or address, when not observed).
    pub client: String,
    /// The called service (or `ip:port`, when not observed).
    pub server: String,
    /// `http`, `mysql`, `pgsql`, `redis`, `dns`, as records write it.
    pub protocol: &'static str,
}

/// The peer name of an overflow edge (its other end is the owner service).
pub const OVERFLOW: &str = "_overflow";

impl EdgeKey {
    /// Whether this is an overflow edge (one end named [`OVERFLOW`]).
    pub fn is_overflow(&self) -> bool {
        self.client == OVERFLOW || self.server == OVERFLOW
    }

    /// The same key, borrowed.
    pub fn as_ref(&self) -> EdgeKeyRef<'_> {
        EdgeKeyRef {
            client: &self.client,
            server: &self.server,
            protocol: self.protocol,
        }
    }
}

/// Hashed as its borrowed form, so that an [`EdgeKeyRef`] finds it in a table.
impl Hash for EdgeKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_ref().hash(state);
    }
}

/// An edge named by borrowed text: what the edge tables are searched with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EdgeKeyRef<'a> {
    pub client: &'a str,
    pub server: &'a str,
    pub protocol: &'static str,
}

impl Equivalent<EdgeKey> for EdgeKeyRef<'_> {
    fn equivalent(&self, key: &EdgeKey) -> bool {
        let EdgeKeyRef {
            client,
            server,
            protocol,
        } = key.as_ref();
        same(self.client, client) && same(self.server, server) && same(self.protocol, protocol)
    }
}

impl EdgeKeyRef<'_> {
    pub fn to_owned(self) -> EdgeKey {
        EdgeKey {
            client: self.client.to_string(),
            server: self.server.to_string(),
            protocol: self.protocol,
        }
    }
}

/// The counters and histogram of one edge, cumulative since it appeared.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Edge {
    /// Calls counted.
    pub requests: u64,
    /// Of those, the failed ones (see the module's rule).
    pub failed: u64,
    /// Durations of the calls that got an answer (timeouts and resets have none).
    pub latency: Histogram,
    pub(super) last_period: u64,
}

impl Edge {
    pub(super) fn add(&mut self, a: &Settled<'_>, period: u64) {
        self.requests += a.requests;
        self.failed += a.failed;
        self.latency.merge(a.latency);
        self.last_period = period;
    }
}

/// Whether a record counts as a failed call on its edge.
pub fn failed(r: &Record) -> bool {
    match (r.status, &r.response) {
        (Status::Ok, _) => false,
        (Status::Error, Some(Response::Http(s))) => s.status >= 500,
        _ => true,
    }
}

/// Bytes of [`Text`] kept inline: the text of any IP address (39 at most), most names.
const INLINE: usize = 46;

/// Text kept inline up to [`INLINE`] bytes, on the heap beyond: an entry costs no allocation
/// for the addresses and names it keeps until it settles.
#[derive(Clone, Debug)]
enum Text {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl Text {
    fn new(s: &str) -> Text {
        match u8::try_from(s.len()) {
            Ok(len) if s.len() <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..s.len()].copy_from_slice(s.as_bytes());
                Text::Inline { len, bytes }
            }
            _ => Text::Heap(s.into()),
        }
    }

    /// The bytes, for comparisons: no UTF-8 check (`as_str` checks).
    fn as_bytes(&self) -> &[u8] {
        match self {
            Text::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Text::Heap(s) => s.as_bytes(),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // A whole `str` was copied in: always UTF-8, the default is never taken.
            Text::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Text::Heap(s) => s,
        }
    }
}

/// Exchanges of one connection, seen from one side, waiting to be attributed.
#[derive(Clone, Debug)]
struct Waiting {
    /// The observed service whose records these are.
    service: Text,
    server_side: bool,
    client_ip: Text,
    client_port: u16,
    server_ip: Text,
    server_port: u16,
    protocol: &'static str,
    /// The far end's Kubernetes name, when the record had one ([`super::peer::k8s_name`]).
    peer_k8s: Option<Text>,
    requests: u64,
    failed: u64,
    latency: Histogram,
    /// When the entry opened, and when its last exchange joined.
    opened: Instant,
    updated: Instant,
}

impl Waiting {
    /// Whether `r`, recorded by `service`, is an exchange of this entry's connection and side.
    fn same(&self, r: &Record, service: &str) -> bool {
        self.server_side == is_server_side(r)
            && self.protocol == r.protocol
            && self.client_port == r.client.port
            && self.server_port == r.server.port
            && same_bytes(self.client_ip.as_bytes(), r.client.ip.as_bytes())
            && same_bytes(self.server_ip.as_bytes(), r.server.ip.as_bytes())
            && same_bytes(self.service.as_bytes(), service.as_bytes())
    }

    fn add(&mut self, r: &Record) {
        self.requests += 1;
        if failed(r) {
            self.failed += 1;
        }
        if let Some(ns) = r.latency_ns {
            self.latency.observe(ns);
        }
    }

    fn client(&self) -> AddrRef<'_> {
        AddrRef {
            ip: self.client_ip.as_str(),
            port: self.client_port,
        }
    }

    fn server(&self) -> AddrRef<'_> {
        AddrRef {
            ip: self.server_ip.as_str(),
            port: self.server_port,
        }
    }
}

/// Exchanges attributed to an edge, owned by the service whose records counted them (the
/// server's, or the client's when the server is not observed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attribution {
    pub owner: String,
    pub edge: EdgeKey,
    /// Calls, of which `failed` failed; `latency` has those that got an answer.
    pub requests: u64,
    pub failed: u64,
    pub latency: Histogram,
}

/// An [`Attribution`] borrowed from the entry that settled, as the aggregator counts it.
#[derive(Clone, Copy, Debug)]
pub struct Settled<'a> {
    pub owner: &'a str,
    pub edge: EdgeKeyRef<'a>,
    pub requests: u64,
    pub failed: u64,
    pub latency: &'a Histogram,
}

impl Settled<'_> {
    pub fn to_owned(&self) -> Attribution {
        Attribution {
            owner: self.owner.to_string(),
            edge: self.edge.to_owned(),
            requests: self.requests,
            failed: self.failed,
            latency: self.latency.clone(),
        }
    }
}

/// Counters of the service graph itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GraphStats {
    /// Client records not counted because the server's own record counts the exchange.
    pub deduplicated: u64,
    /// Exchanges attributed before their wait was over because too many were waiting.
    pub settled_early: u64,
}

/// Exchanges waiting for attribution, oldest first.
#[derive(Debug, Default)]
pub struct Pending {
    queue: VecDeque<Waiting>,
    /// Absolute position of `queue`'s front (positions count every entry ever queued).
    base: u64,
    /// (client port, server port, server side) -> position of the newest entry opened for
    /// it: where an exchange looks for its connection's entry. A stale or colliding position
    /// is checked against the entry itself, so it can only cost a merge, never a wrong one.
    open: hashbrown::HashMap<(u16, u16, bool), u64>,
    pub stats: GraphStats,
    /// Where a server named by its address is written while its entry is counted.
    name: String,
}

impl Pending {
    /// Queues the exchange of `r`, recorded by `service`, reaching the aggregator at `now`.
    /// When the queue is full, the oldest entry is attributed now and returned.
    pub fn push(
        &mut self,
        r: &Record,
        service: &str,
        peers: &Peers,
        now: Instant,
    ) -> Vec<Attribution> {
        let mut early = Vec::new();
        self.push_with(r, service, peers, now, |a| early.push(a.to_owned()));
        early
    }

    /// [`Pending::push`], handing the entry attributed early, if any, to `counted`.
    pub fn push_with(
        &mut self,
        r: &Record,
        service: &str,
        peers: &Peers,
        now: Instant,
        mut counted: impl FnMut(Settled<'_>),
    ) {
        // The entry of this connection and side opened less than MERGE ago (connections
        // interleave: looking at the last entry alone would open one per exchange, and the
        // queue would hold a second of traffic entry by entry).
        let slot = (r.client.port, r.server.port, is_server_side(r));
        let newest = self
            .open
            .get(&slot)
            .and_then(|&at| at.checked_sub(self.base))
            .and_then(|i| usize::try_from(i).ok());
        if let Some(w) = newest
            .and_then(|i| self.queue.get_mut(i))
            .filter(|w| now.saturating_duration_since(w.opened) < MERGE && w.same(r, service))
        {
            w.add(r);
            w.updated = now;
            return;
        }
        if self.queue.len() >= MAX_PENDING {
            if let Some(w) = self.queue.pop_front() {
                self.base += 1;
                self.stats.settled_early += w.requests;
                attribute(&mut self.stats, &mut self.name, &w, peers, &mut counted);
            }
        }
        let mut w = Waiting {
            service: Text::new(service),
            server_side: is_server_side(r),
            client_ip: Text::new(&r.client.ip),
            client_port: r.client.port,
            server_ip: Text::new(&r.server.ip),
            server_port: r.server.port,
            protocol: r.protocol,
            peer_k8s: super::peer::k8s_name_ref(r).map(Text::new),
            requests: 0,
            failed: 0,
            latency: Histogram::default(),
            opened: now,
            updated: now,
        };
        w.add(r);
        self.queue.push_back(w);
        self.open
            .insert(slot, self.base + self.queue.len() as u64 - 1);
        if self.open.len() > 2 * self.queue.len() + 1024 {
            let base = self.base;
            self.open.retain(|_, at| *at >= base);
        }
    }

    /// Attributes the entries whose last exchange has waited [`GRACE`] at `now`.
    pub fn settle(&mut self, peers: &Peers, now: Instant) -> Vec<Attribution> {
        let mut out = Vec::new();
        self.settle_with(peers, now, |a| out.push(a.to_owned()));
        out
    }

    /// [`Pending::settle`], handing each attribution to `counted`.
    pub fn settle_with(
        &mut self,
        peers: &Peers,
        now: Instant,
        mut counted: impl FnMut(Settled<'_>),
    ) {
        let ready = self
            .queue
            .iter()
            .take_while(|w| now.saturating_duration_since(w.updated) >= GRACE)
            .count();
        self.attribute_front(ready, peers, &mut counted);
    }

    /// Attributes every entry now (at exit).
    pub fn settle_all(&mut self, peers: &Peers) -> Vec<Attribution> {
        let mut out = Vec::new();
        self.settle_all_with(peers, |a| out.push(a.to_owned()));
        out
    }

    /// [`Pending::settle_all`], handing each attribution to `counted`.
    pub fn settle_all_with(&mut self, peers: &Peers, mut counted: impl FnMut(Settled<'_>)) {
        self.attribute_front(self.queue.len(), peers, &mut counted);
    }

    /// Attributes the `n` oldest entries, in order, and drops them (in place: an entry is
    /// large enough for moving it out to show).
    fn attribute_front(&mut self, n: usize, peers: &Peers, counted: &mut impl FnMut(Settled<'_>)) {
        let Pending {
            queue,
            stats,
            name,
            base,
            ..
        } = self;
        for w in queue.range(..n) {
            attribute(stats, name, w, peers, counted);
        }
        queue.drain(..n);
        *base += n as u64;
    }

    /// Exchanges waiting now.
    pub fn len(&self) -> usize {
        self.queue.iter().map(|w| w.requests as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// Hands the edge of `w` to `counted`, unless the server's own records count it (then
/// `stats` counts it deduplicated); `name` is where a server named by address is written.
fn attribute(
    stats: &mut GraphStats,
    name: &mut String,
    w: &Waiting,
    peers: &Peers,
    counted: &mut impl FnMut(Settled<'_>),
) {
    let (client, server) = (w.client(), w.server());
    let k8s = w.peer_k8s.as_ref().map(Text::as_str);
    let edge = if w.server_side {
        EdgeKeyRef {
            client: peers.client_name(client, server, k8s),
            server: w.service.as_str(),
            protocol: w.protocol,
        }
    } else if peers.server_at_ref(server, client).is_some() {
        // The server is observed: its own records count these exchanges.
        stats.deduplicated += w.requests;
        return;
    } else {
        let server = match k8s {
            Some(n) => n,
            None => {
                name.clear();
                server.write_host_port(name);
                name.as_str()
            }
        };
        EdgeKeyRef {
            client: w.service.as_str(),
            server,
            protocol: w.protocol,
        }
    };
    counted(Settled {
        owner: w.service.as_str(),
        edge,
        requests: w.requests,
        failed: w.failed,
        latency: &w.latency,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::ProcessRecord;
    use wirelens_protocols::http::{HttpRequest, HttpResponse};
    use wirelens_protocols::{Exchange, Outcome, Request, Role};

    fn rec(role: Role, comm: &str, client: &str, server: &str, status: u16) -> Record {
        let ex = Exchange {
            req_ts_ns: 1_000,
            resp_ts_ns: Some(1_000 + 2_000_000),
            request: Request::Http(HttpRequest {
                method: "GET".into(),
                path: "/".into(),
                host: None,
                route: Some("/".into()),
            }),
            response: Some(Response::Http(HttpResponse {
                status,
                body_bytes: 0,
            })),
            outcome: Outcome::Complete,
            truncated: false,
            trace: None,
        };
        let process = Some(ProcessRecord {
            pid: 1,
            comm: comm.into(),
        });
        Record::new(
            ex,
            role,
            client.parse().unwrap(),
            server.parse().unwrap(),
            process,
        )
    }

    const C: &str = "127.0.0.1:40000";
    const S: &str = "127.0.0.1:8080";

    /// Feeds records the way the aggregator does, all at `t`: learn, then queue.
    fn feed_at(
        p: &mut Pending,
        peers: &mut Peers,
        records: &[Record],
        t: Instant,
    ) -> Vec<Attribution> {
        let mut out = Vec::new();
        for r in records {
            let service = r.process.as_ref().unwrap().comm.clone();
            peers.learn(r, &service, 0);
            out.extend(p.push(r, &service, peers, t));
        }
        out
    }

    fn feed(p: &mut Pending, peers: &mut Peers, records: &[Record]) -> Vec<Attribution> {
        feed_at(p, peers, records, Instant::now())
    }

    fn later() -> Instant {
        Instant::now() + GRACE
    }

    fn edge(client: &str, server: &str) -> EdgeKey {
        EdgeKey {
            client: client.into(),
            server: server.into(),
            protocol: "http",
        }
    }

    /// Keep-alive connections observed from both ends, their exchanges interleaved: one
    /// waiting entry per connection and side, not one per exchange, and every exchange
    /// counted once on its edge; after they settle, the next exchanges open new entries.
    #[test]
    fn interleaved_connections_wait_as_one_entry_each() {
        for conns in [8, 100] {
            let (mut p, mut peers) = (Pending::default(), Peers::default());
            let t0 = Instant::now();
            let mut records = Vec::new();
            for i in 0..conns * 16 {
                let client = format!("127.0.0.1:{}", 40_000 + i % conns);
                records.push(rec(Role::Client, "app", &client, S, 200));
                records.push(rec(Role::Server, "web", &client, S, 200));
            }
            assert!(feed_at(&mut p, &mut peers, &records, t0).is_empty());
            assert_eq!(p.queue.len(), 2 * conns, "entries waiting");
            assert_eq!(p.len(), 32 * conns, "exchanges waiting");
            let got = p.settle(&peers, t0 + GRACE);
            let calls: u64 = got.iter().map(|a| a.requests).sum();
            assert_eq!(calls, 16 * conns as u64, "{got:?}");
            assert!(got.iter().all(|a| a.edge == edge("app", "web")), "{got:?}");
            assert!(p.is_empty());
            let t1 = t0 + GRACE;
            assert!(feed_at(&mut p, &mut peers, &records, t1).is_empty());
            assert_eq!(p.queue.len(), 2 * conns, "entries waiting again");
            let calls: u64 = p
                .settle(&peers, t1 + GRACE)
                .iter()
                .map(|a| a.requests)
                .sum();
            assert_eq!(calls, 16 * conns as u64);
        }
    }

    #[test]
    fn both_ends_observed_count_once_from_the_server_in_either_order() {
        for client_first in [false, true] {
            let (mut p, mut peers) = (Pending::default(), Peers::default());
            let server = rec(Role::Server, "web", C, S, 200);
            let client = rec(Role::Client, "app", C, S, 200);
            let recs = if client_first {
                [client, server]
            } else {
                [server, client]
            };
            let t0 = Instant::now();
            assert!(feed_at(&mut p, &mut peers, &recs, t0).is_empty());
            assert!(p.settle(&peers, t0).is_empty(), "waits");
            assert!(p.settle(&peers, t0 + GRACE / 2).is_empty(), "waits");
            let got = p.settle(&peers, t0 + GRACE);
            assert_eq!(got.len(), 1, "client_first={client_first}");
            assert_eq!(got[0].owner, "web");
            assert_eq!(got[0].edge, edge("app", "web"));
            assert_eq!((got[0].requests, got[0].failed), (1, 0));
            assert_eq!(got[0].latency.sum_ns(), 2_000_000);
            assert_eq!(p.stats.deduplicated, 1);
            assert!(p.is_empty());
        }
    }

    #[test]
    fn one_end_observed_counts_from_that_end_named_by_address() {
        let (mut p, mut peers) = (Pending::default(), Peers::default());
        // A client whose server is not observed; a server whose client is not.
        feed(
            &mut p,
            &mut peers,
            &[
                rec(Role::Client, "app", C, "10.9.9.9:5432", 200),
                rec(Role::Server, "web", "10.1.1.1:50000", S, 200),
            ],
        );
        let mut got: Vec<_> = p
            .settle(&peers, later())
            .into_iter()
            .map(|a| (a.owner, a.edge))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("app".to_string(), edge("app", "10.9.9.9:5432")),
                ("web".to_string(), edge("10.1.1.1", "web")),
            ]
        );
        assert_eq!(p.stats.deduplicated, 0);
    }

    #[test]
    fn failures_are_judged_as_the_server_judges() {
        let f = |role, status| failed(&rec(role, "x", C, S, status));
        assert!(!f(Role::Server, 404));
        assert!(!f(Role::Client, 404), "a client's 4xx is not a failed call");
        assert!(f(Role::Server, 500));
        assert!(f(Role::Client, 503));
    }

    #[test]
    fn a_connection_burst_waits_as_one_entry() {
        let (mut p, mut peers) = (Pending::default(), Peers::default());
        let ok = rec(Role::Server, "web", C, S, 200);
        let bad = rec(Role::Server, "web", C, S, 503);
        feed(&mut p, &mut peers, &[ok.clone(), bad, ok]);
        assert_eq!(p.queue.len(), 1);
        assert_eq!(p.len(), 3);
        let got = p.settle(&peers, later());
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].requests, got[0].failed), (3, 1));
        assert_eq!(got[0].latency.count(), 3);
    }

    #[test]
    fn a_steady_stream_on_one_connection_still_settles() {
        let (mut p, mut peers) = (Pending::default(), Peers::default());
        let r = rec(Role::Server, "web", C, S, 200);
        let t0 = Instant::now();
        // One exchange every 10 ms for 3 s: entries of at most MERGE each, the first ones
        // attributed while the stream goes on.
        let mut got = 0;
        for i in 0..300u32 {
            let t = t0 + Duration::from_millis(10 * u64::from(i));
            feed_at(&mut p, &mut peers, std::slice::from_ref(&r), t);
            got += p.settle(&peers, t).iter().map(|a| a.requests).sum::<u64>();
        }
        assert!(got >= 150, "{got} attributed during the stream");
        got += p.settle_all(&peers).iter().map(|a| a.requests).sum::<u64>();
        assert_eq!(got, 300);
    }

    #[test]
    fn long_names_are_kept_whole() {
        for len in [0, 1, INLINE - 1, INLINE, INLINE + 1, 300] {
            let s: String = "é".repeat(len / 2) + &"x".repeat(len % 2);
            assert_eq!(Text::new(&s).as_str(), s);
            assert_eq!(Text::new(&s).as_bytes(), s.as_bytes());
        }
        let (mut p, mut peers) = (Pending::default(), Peers::default());
        let long = "a-service-name-longer-than-what-an-entry-keeps-inline";
        let r = rec(Role::Client, long, C, "10.9.9.9:5432", 200);
        feed(&mut p, &mut peers, std::slice::from_ref(&r));
        let got = p.settle_all(&peers);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].owner, long);
        assert_eq!(got[0].edge, edge(long, "10.9.9.9:5432"));
    }

    #[test]
    fn a_full_queue_settles_early_and_counts_it() {
        let (mut p, mut peers) = (Pending::default(), Peers::default());
        let mut early = Vec::new();
        // Each exchange on a connection of its own: one entry each.
        for i in 0..=MAX_PENDING {
            let client = format!("127.0.0.1:{}", 1024 + i % 60_000);
            let host = format!("10.0.{}.1", i / 60_000);
            let client = client.replace("127.0.0.1", &host);
            let r = rec(Role::Server, "web", &client, S, 200);
            early.extend(feed(&mut p, &mut peers, std::slice::from_ref(&r)));
        }
        // One more than the queue holds: the oldest went to its edge early.
        assert_eq!(early.len(), 1);
        assert_eq!(early[0].edge.client, "10.0.0.1");
        assert_eq!(p.stats.settled_early, 1);
        assert_eq!(p.len(), MAX_PENDING);
    }
}
