//! Naming the far end of an exchange: the service graph's `client` and `server`.
//!
//! The agent sees one host. When the far end of an exchange is a process this agent also
//! observes, some record of that process has already shown the local endpoint it uses: a
//! server's record shows the address and port it answers on, a client's record the address
//! and (ephemeral) port it connects from. [`Peers`] remembers those endpoints, and
//! [`Peers::peer_of`] names the far end of a record by the service behind the endpoint when
//! it knows one, and by its address otherwise: `ip:port` for a server (the port says which
//! service of that host), the bare `ip` for a client (its port is ephemeral: keeping it would
//! make one peer per connection).
//!
//! Every name of a far end goes through [`Peers::name_client`] and [`Peers::name_server`]
//! (the service graph's and [`Peers::peer_of`]'s). With Kubernetes metadata, a far end that
//! no observed process stands behind but whose address is a known pod or Service (the
//! record's `peer_k8s`) is named by [`k8s_name`] before falling back to its address.
//!
//! A socket bound to the wildcard address and never connected (a UDP client or server using
//! sendto/recvfrom) shows `0.0.0.0` or `::` as its own address, while its peer sees the
//! concrete one. Such an endpoint also answers for the same port on a local address: the
//! peer's address is loopback, or the same as the other end's (a host talking to its own
//! address). A remote peer is never matched by the wildcard, so a remote client that happens
//! to use a port a local wildcard socket holds keeps its address.
//!
//! Limits: endpoints are matched as seen on this host, so a client connecting through an
//! address translation (a Kubernetes Service's virtual IP, a NAT) does not match the server's
//! own endpoint and names the translated address; two network namespaces using the same
//! address and port are one endpoint.

use std::hash::{Hash, Hasher};

use hashbrown::{Equivalent, HashMap};
use wirelens_protocols::Role;

use crate::output::{Endpoint, Record};

/// Endpoints remembered per side at most; more are not remembered (their peers are named by
/// address) and are counted in [`Peers::refused`].
pub const MAX_ENDPOINTS: usize = 65_536;

/// A local endpoint of an observed process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Addr {
    pub ip: String,
    pub port: u16,
}

impl From<&Endpoint> for Addr {
    fn from(e: &Endpoint) -> Addr {
        Addr {
            ip: e.ip.to_string(),
            port: e.port,
        }
    }
}

impl Addr {
    /// `ip:port`, IPv6 in brackets (`[::1]:8080`).
    pub fn host_port(&self) -> String {
        let mut out = String::new();
        self.as_ref().write_host_port(&mut out);
        out
    }

    /// The same endpoint, borrowed.
    pub fn as_ref(&self) -> AddrRef<'_> {
        AddrRef {
            ip: &self.ip,
            port: self.port,
        }
    }
}

/// Hashed as its borrowed form, so that an [`AddrRef`] finds it in a table without a copy of
/// the address text.
impl Hash for Addr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_ref().hash(state);
    }
}

/// An endpoint borrowed from a record or an [`Addr`]: what the tables are searched with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddrRef<'a> {
    pub ip: &'a str,
    pub port: u16,
}

impl<'a> From<&'a Endpoint> for AddrRef<'a> {
    fn from(e: &'a Endpoint) -> AddrRef<'a> {
        AddrRef {
            ip: &e.ip,
            port: e.port,
        }
    }
}

impl Equivalent<Addr> for AddrRef<'_> {
    fn equivalent(&self, key: &Addr) -> bool {
        let AddrRef { ip, port } = key.as_ref();
        self.port == port && crate::text::same(self.ip, ip)
    }
}

impl AddrRef<'_> {
    /// Appends `ip:port`, IPv6 in brackets (`[::1]:8080`).
    pub fn write_host_port(self, out: &mut String) {
        let bracket = self.ip.contains(':');
        if bracket {
            out.push('[');
        }
        out.push_str(self.ip);
        if bracket {
            out.push(']');
        }
        out.push(':');
        super::key::push_u16(out, self.port);
    }

    pub fn to_owned(self) -> Addr {
        Addr {
            ip: self.ip.to_string(),
            port: self.port,
        }
    }
}

#[derive(Clone, Debug)]
struct Known {
    service: String,
    last_period: u64,
}

/// The local endpoints of observed processes, by side.
#[derive(Debug)]
pub struct Peers {
    servers: HashMap<Addr, Known>,
    clients: HashMap<Addr, Known>,
    capacity: usize,
    refused: u64,
}

impl Default for Peers {
    fn default() -> Self {
        Peers::with_capacity(MAX_ENDPOINTS)
    }
}

/// Whether a record is the server's view: `server` and `unknown` (replay without a SYN) are,
/// as in the series ([`super::Family`]).
pub fn is_server_side(r: &Record) -> bool {
    r.role != Role::Client
}

impl Peers {
    /// Remembers at most `capacity` endpoints per side.
    pub fn with_capacity(capacity: usize) -> Peers {
        Peers {
            servers: HashMap::new(),
            clients: HashMap::new(),
            capacity,
            refused: 0,
        }
    }

    /// Remembers the local endpoint of the record's observed process as `service`'s.
    pub fn learn(&mut self, r: &Record, service: &str, period: u64) {
        let (table, local) = if is_server_side(r) {
            (&mut self.servers, &r.server)
        } else {
            (&mut self.clients, &r.client)
        };
        if local.port == 0 {
            // Not bound yet when the capture read it (an unconnected UDP socket before its
            // first send): names nothing.
            return;
        }
        let addr = AddrRef::from(local);
        if let Some(k) = table.get_mut(&addr) {
            if !crate::text::same(&k.service, service) {
                k.service = service.to_string();
            }
            k.last_period = period;
            return;
        }
        if table.len() >= self.capacity {
            self.refused += 1;
            return;
        }
        table.insert(
            addr.to_owned(),
            Known {
                service: service.to_string(),
                last_period: period,
            },
        );
    }

    /// The observed service answering on `server` (reached from `client`), if any.
    pub fn server_at(&self, server: &Addr, client: &Addr) -> Option<&str> {
        self.server_at_ref(server.as_ref(), client.as_ref())
    }

    /// The observed service connecting from `client` (to `server`), if any.
    pub fn client_at(&self, client: &Addr, server: &Addr) -> Option<&str> {
        self.client_at_ref(client.as_ref(), server.as_ref())
    }

    /// [`Peers::server_at`] with borrowed endpoints.
    pub fn server_at_ref(&self, server: AddrRef<'_>, client: AddrRef<'_>) -> Option<&str> {
        find(&self.servers, server, client)
    }

    /// [`Peers::client_at`] with borrowed endpoints.
    pub fn client_at_ref(&self, client: AddrRef<'_>, server: AddrRef<'_>) -> Option<&str> {
        find(&self.clients, client, server)
    }

    /// The name of the far end of `r`: the observed service behind its endpoint, else its
    /// address (`ip:port` for a server, `ip` for a client).
    pub fn peer_of(&self, r: &Record) -> String {
        let (client, server) = (AddrRef::from(&r.client), AddrRef::from(&r.server));
        let k8s = k8s_name_ref(r);
        let mut out = String::new();
        if is_server_side(r) {
            out.push_str(self.client_name(client, server, k8s));
        } else {
            self.write_server_name(server, client, k8s, &mut out);
        }
        out
    }

    /// A client's name: its observed service, else its Kubernetes name (`k8s`), else its
    /// address alone.
    pub fn name_client(&self, client: &Addr, server: &Addr, k8s: Option<&str>) -> String {
        self.client_name(client.as_ref(), server.as_ref(), k8s)
            .to_string()
    }

    /// A server's name: its observed service, else its Kubernetes name (`k8s`), else
    /// `ip:port`.
    pub fn name_server(&self, server: &Addr, client: &Addr, k8s: Option<&str>) -> String {
        let mut out = String::new();
        self.write_server_name(server.as_ref(), client.as_ref(), k8s, &mut out);
        out
    }

    /// [`Peers::name_client`], borrowed from the arguments or the table.
    pub fn client_name<'a>(
        &'a self,
        client: AddrRef<'a>,
        server: AddrRef<'_>,
        k8s: Option<&'a str>,
    ) -> &'a str {
        self.client_at_ref(client, server)
            .or(k8s)
            .unwrap_or(client.ip)
    }

    /// [`Peers::name_server`], appended to `out`.
    pub fn write_server_name(
        &self,
        server: AddrRef<'_>,
        client: AddrRef<'_>,
        k8s: Option<&str>,
        out: &mut String,
    ) {
        match self.server_at_ref(server, client).or(k8s) {
            Some(name) => out.push_str(name),
            None => server.write_host_port(out),
        }
    }

    /// Forgets endpoints not seen during the last `keep` periods up to `closed`, the way
    /// series expire: a process gone for that long no longer names its endpoint (a new one
    /// may reuse it).
    pub fn expire(&mut self, closed: u64, keep: u64) {
        let fresh = |k: &Known| closed.saturating_sub(k.last_period) < keep;
        self.servers.retain(|_, k| fresh(k));
        self.clients.retain(|_, k| fresh(k));
    }

    /// Endpoints not remembered because a table was full, cumulative.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Endpoints remembered now (servers, clients).
    pub fn len(&self) -> (usize, usize) {
        (self.servers.len(), self.clients.len())
    }
}

/// The far end of `r` by its Kubernetes identity (`peer_k8s`): the pod's `service.name` by
/// the identity rule when the address is a pod of this node, else the Service that owns the
/// address, else the pod's name.
pub fn k8s_name(r: &Record) -> Option<String> {
    k8s_name_ref(r).map(str::to_string)
}

/// [`k8s_name`], borrowed from the record.
pub fn k8s_name_ref(r: &Record) -> Option<&str> {
    let p = &r.peer_k8s.as_ref()?.0;
    p.workload
        .as_deref()
        .or(p.service.as_deref())
        .or(p.pod.as_deref())
        .filter(|n| !n.is_empty())
}

/// `at` in `table`, else, when `at` is on this host as seen from `other` (loopback, or the
/// same address), a wildcard-bound endpoint of the same port.
fn find<'a>(
    table: &'a HashMap<Addr, Known>,
    at: AddrRef<'_>,
    other: AddrRef<'_>,
) -> Option<&'a str> {
    if let Some(k) = table.get(&at) {
        return Some(&k.service);
    }
    // The wildcard entries first: a lookup costs less than parsing the address, and most
    // tables hold none.
    let wildcard = ["0.0.0.0", "::"].into_iter().find_map(|any| {
        table.get(&AddrRef {
            ip: any,
            port: at.port,
        })
    })?;
    let local = at.ip == other.ip
        || at
            .ip
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    local.then_some(wildcard.service.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::ProcessRecord;
    use wirelens_protocols::{Exchange, Outcome, Request};

    fn rec(role: Role, comm: &str, client: &str, server: &str) -> Record {
        let ex = Exchange {
            req_ts_ns: 1,
            resp_ts_ns: Some(2),
            request: Request::Redis(wirelens_protocols::redis::RedisRequest {
                command: "GET".into(),
                args: 1,
            }),
            response: None,
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

    #[test]
    fn peers_are_named_by_service_when_observed_else_by_address() {
        let mut p = Peers::default();
        let srv = rec(
            Role::Server,
            "redis-server",
            "127.0.0.1:40000",
            "127.0.0.1:6379",
        );
        let cli = rec(Role::Client, "app", "127.0.0.1:40000", "127.0.0.1:6379");
        // Nothing known yet: addresses, the client's without its ephemeral port.
        assert_eq!(p.peer_of(&srv), "127.0.0.1");
        assert_eq!(p.peer_of(&cli), "127.0.0.1:6379");
        p.learn(&srv, "redis-server", 0);
        p.learn(&cli, "app", 0);
        assert_eq!(p.peer_of(&srv), "app");
        assert_eq!(p.peer_of(&cli), "redis-server");
        // Another client port of the same host is not `app`.
        let other = rec(
            Role::Server,
            "redis-server",
            "127.0.0.1:40001",
            "127.0.0.1:6379",
        );
        assert_eq!(p.peer_of(&other), "127.0.0.1");
        let v6 = rec(Role::Client, "app", "[::1]:40000", "[::1]:8080");
        assert_eq!(p.peer_of(&v6), "[::1]:8080");
    }

    #[test]
    fn a_wildcard_bound_endpoint_answers_for_local_peers_only() {
        let mut p = Peers::default();
        // An unconnected UDP client: its own record shows the wildcard address.
        p.learn(
            &rec(Role::Client, "resolver", "0.0.0.0:40000", "127.0.0.1:53"),
            "resolver",
            0,
        );
        let local = rec(Role::Server, "dns", "127.0.0.1:40000", "127.0.0.1:53");
        assert_eq!(p.peer_of(&local), "resolver");
        let same_host = rec(Role::Server, "dns", "10.0.0.5:40000", "10.0.0.5:53");
        assert_eq!(p.peer_of(&same_host), "resolver");
        let remote = rec(Role::Server, "dns", "10.9.9.9:40000", "10.0.0.5:53");
        assert_eq!(
            p.peer_of(&remote),
            "10.9.9.9",
            "a remote client is not the wildcard"
        );
        // An endpoint read before it was bound is not remembered.
        p.learn(
            &rec(Role::Client, "early", "0.0.0.0:0", "127.0.0.1:53"),
            "early",
            0,
        );
        assert_eq!(p.len(), (0, 1));
    }

    #[test]
    fn borrowed_endpoints_find_and_name_the_owned_ones() {
        let v4 = Addr {
            ip: "10.0.0.2".into(),
            port: 8080,
        };
        let v6 = Addr {
            ip: "::1".into(),
            port: 0,
        };
        assert_eq!(v4.host_port(), "10.0.0.2:8080");
        assert_eq!(v6.host_port(), "[::1]:0");
        let table: HashMap<Addr, u8> = [(v4.clone(), 4), (v6.clone(), 6)].into_iter().collect();
        assert_eq!(table.get(&v4.as_ref()), Some(&4));
        assert_eq!(table.get(&v6.as_ref()), Some(&6));
        let other = AddrRef {
            ip: "10.0.0.2",
            port: 8081,
        };
        assert_eq!(table.get(&other), None);
    }

    #[test]
    fn endpoints_expire_and_the_tables_are_bounded() {
        let mut p = Peers::with_capacity(1);
        let a = rec(Role::Server, "a", "127.0.0.1:40000", "127.0.0.1:80");
        let b = rec(Role::Server, "b", "127.0.0.1:40000", "127.0.0.1:81");
        p.learn(&a, "a", 0);
        p.learn(&b, "b", 0);
        assert_eq!(p.refused(), 1);
        assert_eq!(
            p.server_at(&Addr::from(&b.server), &Addr::from(&b.client)),
            None
        );
        p.expire(1, 2);
        assert_eq!(p.len(), (1, 0), "seen one period ago, kept for two");
        p.expire(2, 2);
        assert_eq!(p.len(), (0, 0));
    }
}
