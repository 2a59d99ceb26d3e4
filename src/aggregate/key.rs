//! What identifies a series: the metric it belongs to, the peer, the operation and the
//! outcome, each reduced from a [`Record`] to a small set of values.
//!
//! Names follow the OpenTelemetry semantic conventions (`http.request.method`, `http.route`,
//! `db.system.name`, `db.operation.name`, `db.collection.name`, `error.type`...). Only
//! operation names and table names ever leave a record: statement text, query names and
//! header values never do.

use std::borrow::Cow;
use std::hash::{Hash, Hasher};

use hashbrown::Equivalent;
use wirelens_protocols::http::HttpRequest;
use wirelens_protocols::{Request, Response, Role, Status};

use crate::output::Record;
use crate::text::same;

/// The metric a series belongs to: protocol and the side the observed process is on.
/// A record whose role is `unknown` (replay without a SYN) counts as the server's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// `http.server.request.duration`
    HttpServer,
    /// `http.client.request.duration`
    HttpClient,
    /// `db.client.operation.duration`
    DbClient(DbSystem),
    /// The same measured at the database server (no semantic convention: wirelens' own).
    DbServer(DbSystem),
    /// `dns.lookup.duration`
    DnsClient,
    /// DNS answered by the observed process (wirelens' own).
    DnsServer,
}

impl Family {
    /// Whether the observed process is the client (then the peer is the server).
    pub fn is_client(self) -> bool {
        matches!(
            self,
            Family::HttpClient | Family::DbClient(_) | Family::DnsClient
        )
    }
}

/// `db.system.name` (semantic conventions, "Database").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DbSystem {
    Mysql,
    Postgresql,
    Redis,
}

impl DbSystem {
    pub fn name(self) -> &'static str {
        match self {
            DbSystem::Mysql => "mysql",
            DbSystem::Postgresql => "postgresql",
            DbSystem::Redis => "redis",
        }
    }
}

/// What was asked, reduced to the values a metric may carry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `http.request.method` (or `_OTHER`), `http.route`, `http.response.status_code` (none
    /// without a response).
    Http {
        method: &'static str,
        route: String,
        status_code: Option<u16>,
    },
    /// `db.operation.name` (SQL operation, the MySQL command when the statement named none,
    /// the Redis command) and `db.collection.name` (the first table; empty when none).
    Db {
        operation: String,
        collection: String,
    },
    /// The query type (`A`, `AAAA`, ...; empty for a query without a question).
    Dns { qtype: String },
    /// Everything a service's series budget refused (`operation="_overflow"`).
    Overflow,
}

impl Operation {
    /// The same operation, borrowed.
    pub fn as_ref(&self) -> OperationRef<'_> {
        match self {
            Operation::Http {
                method,
                route,
                status_code,
            } => OperationRef::Http {
                method,
                route,
                status_code: *status_code,
            },
            Operation::Db {
                operation,
                collection,
            } => OperationRef::Db {
                operation,
                collection,
            },
            Operation::Dns { qtype } => OperationRef::Dns { qtype },
            Operation::Overflow => OperationRef::Overflow,
        }
    }
}

/// An [`Operation`] borrowed from a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OperationRef<'a> {
    Http {
        method: &'static str,
        route: &'a str,
        status_code: Option<u16>,
    },
    Db {
        operation: &'a str,
        collection: &'a str,
    },
    Dns {
        qtype: &'a str,
    },
    Overflow,
}

impl OperationRef<'_> {
    pub fn to_owned(self) -> Operation {
        match self {
            OperationRef::Http {
                method,
                route,
                status_code,
            } => Operation::Http {
                method,
                route: route.to_string(),
                status_code,
            },
            OperationRef::Db {
                operation,
                collection,
            } => Operation::Db {
                operation: operation.to_string(),
                collection: collection.to_string(),
            },
            OperationRef::Dns { qtype } => Operation::Dns {
                qtype: qtype.to_string(),
            },
            OperationRef::Overflow => Operation::Overflow,
        }
    }
}

/// One series of one observed service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeriesKey {
    pub family: Family,
    /// The other end: the server's address for a client, the client's for a server.
    pub peer_address: String,
    /// The server's port for a client; none for a server (a client's port is ephemeral:
    /// keeping it would make one series per connection).
    pub peer_port: Option<u16>,
    pub operation: Operation,
    /// `ok`, `error`, `timeout`, `reset`: the record's status.
    pub outcome: Status,
    /// `error.type`: empty unless the outcome is not `ok` (see [`error_type`]).
    pub error_type: String,
}

impl SeriesKey {
    /// The key of the overflow series that takes what `family`'s budget refused.
    pub fn overflow(family: Family) -> SeriesKey {
        SeriesKey {
            family,
            peer_address: String::new(),
            peer_port: None,
            operation: Operation::Overflow,
            outcome: Status::Ok,
            error_type: String::new(),
        }
    }

    /// The same key, borrowed.
    pub fn as_ref(&self) -> SeriesKeyRef<'_> {
        SeriesKeyRef {
            family: self.family,
            peer_address: &self.peer_address,
            peer_port: self.peer_port,
            operation: self.operation.as_ref(),
            outcome: self.outcome,
            error_type: &self.error_type,
        }
    }
}

/// Hashed as its borrowed form, so that a [`SeriesKeyRef`] finds it in a table without a copy
/// of its text.
impl Hash for SeriesKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_ref().hash(state);
    }
}

/// A [`SeriesKey`] borrowed from a record (and the route and error type worked out for it):
/// what a service's series are searched with; only a new series takes a copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SeriesKeyRef<'a> {
    pub family: Family,
    pub peer_address: &'a str,
    pub peer_port: Option<u16>,
    pub operation: OperationRef<'a>,
    pub outcome: Status,
    pub error_type: &'a str,
}

/// The derived `==`, with the texts compared by [`same`] (destructured whole, so that a new
/// field cannot be left out).
impl Equivalent<SeriesKey> for SeriesKeyRef<'_> {
    fn equivalent(&self, key: &SeriesKey) -> bool {
        let SeriesKeyRef {
            family,
            peer_address,
            peer_port,
            operation,
            outcome,
            error_type,
        } = key.as_ref();
        let same_operation = match (self.operation, operation) {
            (
                OperationRef::Http {
                    method,
                    route,
                    status_code,
                },
                OperationRef::Http {
                    method: m,
                    route: r,
                    status_code: s,
                },
            ) => status_code == s && same(method, m) && same(route, r),
            (
                OperationRef::Db {
                    operation,
                    collection,
                },
                OperationRef::Db {
                    operation: o,
                    collection: c,
                },
            ) => same(operation, o) && same(collection, c),
            (OperationRef::Dns { qtype }, OperationRef::Dns { qtype: q }) => same(qtype, q),
            (OperationRef::Overflow, OperationRef::Overflow) => true,
            _ => false,
        };
        same_operation
            && self.family == family
            && self.peer_port == peer_port
            && self.outcome == outcome
            && same(self.peer_address, peer_address)
            && same(self.error_type, error_type)
    }
}

impl SeriesKeyRef<'_> {
    pub fn to_owned(self) -> SeriesKey {
        SeriesKey {
            family: self.family,
            peer_address: self.peer_address.to_string(),
            peer_port: self.peer_port,
            operation: self.operation.to_owned(),
            outcome: self.outcome,
            error_type: self.error_type.to_string(),
        }
    }
}

/// The service a record belongs to: the process name live, `replay` without a process.
pub fn service_of(r: &Record) -> &str {
    if let Some(k) = &r.k8s {
        return &k.service;
    }
    r.process.as_ref().map_or("replay", |p| &*p.comm)
}

/// The metric of a record: its protocol, and its side (`unknown` counts as the server's).
pub fn family_of(r: &Record) -> Family {
    let client = r.role == Role::Client;
    let db = |system| {
        if client {
            Family::DbClient(system)
        } else {
            Family::DbServer(system)
        }
    };
    match &r.request {
        Request::Http(_) if client => Family::HttpClient,
        Request::Http(_) => Family::HttpServer,
        Request::Mysql(_) => db(DbSystem::Mysql),
        Request::Pgsql(_) => db(DbSystem::Postgresql),
        Request::Redis(_) => db(DbSystem::Redis),
        Request::Dns(_) if client => Family::DnsClient,
        Request::Dns(_) => Family::DnsServer,
    }
}

/// The route template of an HTTP request: the one the parser made, else one made from its
/// path.
pub fn raw_route(q: &HttpRequest) -> Cow<'_, str> {
    match &q.route {
        Some(t) => Cow::Borrowed(t),
        None => Cow::Owned(wirelens_protocols::http::route_template(&q.path)),
    }
}

/// The key of a record. `route` turns an HTTP record's route template into the route the
/// series is keyed by (user patterns, segment collapse).
pub fn key_of(r: &Record, route: impl FnOnce(Family, &str) -> String) -> SeriesKey {
    let route = match &r.request {
        Request::Http(q) => route(family_of(r), &raw_route(q)),
        _ => String::new(),
    };
    key_ref(r, &route, &error_type(r)).to_owned()
}

/// The key of a record, borrowed from it, from `route` (an HTTP record's route as the series
/// is keyed by, see [`key_of`]; not read for other protocols) and from `error_type` (as
/// [`write_error_type`] wrote it).
pub fn key_ref<'a>(r: &'a Record, route: &'a str, error_type: &'a str) -> SeriesKeyRef<'a> {
    let operation = match &r.request {
        Request::Http(q) => OperationRef::Http {
            method: http_method(&q.method),
            route,
            status_code: match &r.response {
                Some(Response::Http(s)) => Some(s.status),
                _ => None,
            },
        },
        Request::Mysql(q) => OperationRef::Db {
            operation: q.operation.as_deref().unwrap_or(&q.command),
            collection: q.table.as_deref().unwrap_or_default(),
        },
        Request::Pgsql(q) => OperationRef::Db {
            operation: q.operation.as_deref().unwrap_or_default(),
            collection: q.table.as_deref().unwrap_or_default(),
        },
        Request::Redis(q) => OperationRef::Db {
            operation: &q.command,
            collection: "",
        },
        Request::Dns(q) => OperationRef::Dns { qtype: &q.qtype },
    };
    let (peer_address, peer_port) = if r.role == Role::Client {
        (&*r.server.ip, Some(r.server.port))
    } else {
        (&*r.client.ip, None)
    };
    SeriesKeyRef {
        family: family_of(r),
        peer_address,
        peer_port,
        operation,
        outcome: r.status,
        error_type,
    }
}

/// `http.request.method`: the method when it is one RFC 9110 or RFC 5789 defines, else
/// `_OTHER` (semantic conventions, "HTTP spans": methods are case-sensitive, unknown ones
/// must not become label values).
pub fn http_method(m: &str) -> &'static str {
    wirelens_protocols::http::STANDARD_METHODS
        .into_iter()
        .find(|k| *k == m)
        .unwrap_or("_OTHER")
}

/// `error.type` of a record whose status is not `ok`, empty otherwise: `timeout` or `reset`
/// without a response; the status code for HTTP; the error number (MySQL) or SQLSTATE
/// (PostgreSQL); the error prefix for Redis (`ERR`, `WRONGTYPE`...); the RCODE for DNS;
/// `_OTHER` when the response does not say.
pub fn error_type(r: &Record) -> String {
    let mut out = String::new();
    write_error_type(r, &mut out);
    out
}

/// [`error_type`], written over `out` (the aggregator reuses one buffer).
pub fn write_error_type(r: &Record, out: &mut String) {
    out.clear();
    const OTHER: &str = "_OTHER";
    match r.status {
        Status::Ok => return,
        Status::Timeout => return out.push_str("timeout"),
        Status::Reset => return out.push_str("reset"),
        Status::Error => {}
    }
    match &r.response {
        Some(Response::Http(s)) => push_u16(out, s.status),
        Some(Response::Mysql(s)) => match s.code {
            Some(c) => push_u16(out, c),
            None => out.push_str(OTHER),
        },
        Some(Response::Pgsql(s)) => out.push_str(s.code.as_deref().unwrap_or(OTHER)),
        Some(Response::Redis(s)) => out.push_str(
            s.message
                .as_deref()
                .and_then(|m| m.split_whitespace().next())
                .filter(|w| w.len() <= 32 && w.bytes().all(|b| b.is_ascii_uppercase()))
                .unwrap_or(OTHER),
        ),
        Some(Response::Dns(s)) => out.push_str(&s.rcode),
        None => out.push_str(OTHER),
    }
}

/// Appends `n` in decimal, as `n.to_string()` writes it, without the formatting machinery.
pub(super) fn push_u16(out: &mut String, n: u16) {
    let mut digits = [0u8; 5];
    let mut at = digits.len();
    let mut rest = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend(digits[at..].iter().map(|&d| char::from(d)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_rfcs_are_other() {
        assert_eq!(http_method("GET"), "GET");
        assert_eq!(http_method("PATCH"), "PATCH");
        assert_eq!(http_method("get"), "_OTHER");
        assert_eq!(http_method("PROPFIND"), "_OTHER");
    }

    #[test]
    fn a_borrowed_key_finds_its_owned_key() {
        let base = SeriesKey {
            family: Family::HttpClient,
            peer_address: "10.0.0.2".into(),
            peer_port: Some(8080),
            operation: Operation::Http {
                method: "GET",
                route: "/users/{id}".into(),
                status_code: Some(503),
            },
            outcome: Status::Error,
            error_type: "503".into(),
        };
        let keys = [
            base.clone(),
            SeriesKey {
                family: Family::DbServer(DbSystem::Mysql),
                peer_address: "10.0.0.1".into(),
                peer_port: None,
                operation: Operation::Db {
                    operation: "SELECT".into(),
                    collection: "users".into(),
                },
                outcome: Status::Ok,
                error_type: String::new(),
            },
            SeriesKey {
                operation: Operation::Dns { qtype: "A".into() },
                ..base.clone()
            },
            SeriesKey::overflow(Family::HttpServer),
        ];
        let table: hashbrown::HashMap<SeriesKey, usize> = keys.iter().cloned().zip(0..).collect();
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(k.as_ref().to_owned(), *k);
            assert_eq!(table.get(&k.as_ref()), Some(&i), "{k:?}");
        }
        let other = SeriesKey {
            peer_port: Some(8081),
            ..base
        };
        assert_eq!(table.get(&other.as_ref()), None);
    }

    #[test]
    fn numbers_are_written_as_to_string_writes_them() {
        for n in [0, 7, 10, 99, 404, 500, 1045, 9999, 10_000, u16::MAX] {
            let mut out = String::from("x");
            push_u16(&mut out, n);
            assert_eq!(out, format!("x{n}"));
        }
    }
}
