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

use std::collections::HashMap;

use wirelens_protocols::Role;

use crate::output::{Endpoint, Record};

/// Endpoints remembered per side at most; more are not remembered (their peers are named by
/// address) and are counted in [`Peers::refused`].
pub const MAX_ENDPOINTS: usize = 65_536;

/// A local endpoint of an observed process.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Addr {
    pub ip: String,
    pub port: u16,
}

impl From<&Endpoint> for Addr {
    fn from(e: &Endpoint) -> Addr {
        Addr {
            ip: e.ip.clone(),
            port: e.port,
        }
    }
}

impl Addr {
    /// `ip:port`, IPv6 in brackets (`[::1]:8080`).
    pub fn host_port(&self) -> String {
        if self.ip.contains(':') {
            format!("[{}]:{}", self.ip, self.port)
        } else {
            format!("{}:{}", self.ip, self.port)
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
        let addr = Addr::from(local);
        if let Some(k) = table.get_mut(&addr) {
            if k.service != service {
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
            addr,
            Known {
                service: service.to_string(),
                last_period: period,
            },
        );
    }

    /// The observed service answering on `server` (reached from `client`), if any.
    pub fn server_at(&self, server: &Addr, client: &Addr) -> Option<&str> {
        find(&self.servers, server, client)
    }

    /// The observed service connecting from `client` (to `server`), if any.
    pub fn client_at(&self, client: &Addr, server: &Addr) -> Option<&str> {
        find(&self.clients, client, server)
    }

    /// The name of the far end of `r`: the observed service behind its endpoint, else its
    /// address (`ip:port` for a server, `ip` for a client).
    pub fn peer_of(&self, r: &Record) -> String {
        let (client, server) = (Addr::from(&r.client), Addr::from(&r.server));
        let k8s = k8s_name(r);
        if is_server_side(r) {
            self.name_client(&client, &server, k8s.as_deref())
        } else {
            self.name_server(&server, &client, k8s.as_deref())
        }
    }

    /// A client's name: its observed service, else its Kubernetes name (`k8s`), else its
    /// address alone.
    pub fn name_client(&self, client: &Addr, server: &Addr, k8s: Option<&str>) -> String {
        match self.client_at(client, server).or(k8s) {
            Some(name) => name.to_string(),
            None => client.ip.clone(),
        }
    }

    /// A server's name: its observed service, else its Kubernetes name (`k8s`), else
    /// `ip:port`.
    pub fn name_server(&self, server: &Addr, client: &Addr, k8s: Option<&str>) -> String {
        match self.server_at(server, client).or(k8s) {
            Some(name) => name.to_string(),
            None => server.host_port(),
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
    let p = &r.peer_k8s.as_ref()?.0;
    p.workload
        .clone()
        .or_else(|| p.service.clone())
        .or_else(|| p.pod.clone())
        .filter(|n| !n.is_empty())
}

/// `at` in `table`, else, when `at` is on this host as seen from `other` (loopback, or the
/// same address), a wildcard-bound endpoint of the same port.
fn find<'a>(table: &'a HashMap<Addr, Known>, at: &Addr, other: &Addr) -> Option<&'a str> {
    if let Some(k) = table.get(at) {
        return Some(&k.service);
    }
    let local = at.ip == other.ip
        || at
            .ip
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !local {
        return None;
    }
    ["0.0.0.0", "::"].into_iter().find_map(|any| {
        table
            .get(&Addr {
                ip: any.to_string(),
                port: at.port,
            })
            .map(|k| k.service.as_str())
    })
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
