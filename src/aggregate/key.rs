//! What identifies a series: the metric it belongs to, the peer, the operation and the
//! outcome, each reduced from a [`Record`] to a small set of values.
//!
//! Names follow the OpenTelemetry semantic conventions (`http.request.method`, `http.route`,
//! `db.system.name`, `db.operation.name`, `db.collection.name`, `error.type`...). Only
//! operation names and table names ever leave a record: statement text, query names and
//! header values never do.

use wirelens_protocols::{Request, Response, Role, Status};

use crate::output::Record;

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

/// One series of one observed service.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
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
}

/// The service a record belongs to: the process name live, `replay` without a process.
pub fn service_of(r: &Record) -> &str {
    if let Some(k) = &r.k8s {
        return &k.service;
    }
    r.process.as_ref().map_or("replay", |p| p.comm.as_str())
}

/// The key of a record. `route` turns an HTTP record's route template into the route the
/// series is keyed by (user patterns, segment collapse).
pub fn key_of(r: &Record, route: impl FnOnce(Family, &str) -> String) -> SeriesKey {
    let client = r.role == Role::Client;
    let db = |system| {
        if client {
            Family::DbClient(system)
        } else {
            Family::DbServer(system)
        }
    };
    let (family, operation) = match &r.request {
        Request::Http(q) => {
            let family = if client {
                Family::HttpClient
            } else {
                Family::HttpServer
            };
            let templated;
            let raw = match &q.route {
                Some(t) => t.as_str(),
                None => {
                    templated = wirelens_protocols::http::route_template(&q.path);
                    templated.as_str()
                }
            };
            let status_code = match &r.response {
                Some(Response::Http(s)) => Some(s.status),
                _ => None,
            };
            let op = Operation::Http {
                method: http_method(&q.method),
                route: route(family, raw),
                status_code,
            };
            (family, op)
        }
        Request::Mysql(q) => (
            db(DbSystem::Mysql),
            Operation::Db {
                operation: q.operation.clone().unwrap_or_else(|| q.command.clone()),
                collection: q.table.clone().unwrap_or_default(),
            },
        ),
        Request::Pgsql(q) => (
            db(DbSystem::Postgresql),
            Operation::Db {
                operation: q.operation.clone().unwrap_or_default(),
                collection: q.table.clone().unwrap_or_default(),
            },
        ),
        Request::Redis(q) => (
            db(DbSystem::Redis),
            Operation::Db {
                operation: q.command.clone(),
                collection: String::new(),
            },
        ),
        Request::Dns(q) => (
            if client {
                Family::DnsClient
            } else {
                Family::DnsServer
            },
            Operation::Dns {
                qtype: q.qtype.clone(),
            },
        ),
    };
    let (peer_address, peer_port) = if client {
        (r.server.ip.clone(), Some(r.server.port))
    } else {
        (r.client.ip.clone(), None)
    };
    SeriesKey {
        family,
        peer_address,
        peer_port,
        operation,
        outcome: r.status,
        error_type: error_type(r),
    }
}

/// `http.request.method`: the method when it is one RFC 9110 or RFC 5789 defines, else
/// `_OTHER` (semantic conventions, "HTTP spans": methods are case-sensitive, unknown ones
/// must not become label values).
pub fn http_method(m: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    KNOWN.into_iter().find(|k| *k == m).unwrap_or("_OTHER")
}

/// `error.type` of a record whose status is not `ok`, empty otherwise: `timeout` or `reset`
/// without a response; the status code for HTTP; the error number (MySQL) or SQLSTATE
/// (PostgreSQL); the error prefix for Redis (`ERR`, `WRONGTYPE`...); the RCODE for DNS;
/// `_OTHER` when the response does not say.
pub fn error_type(r: &Record) -> String {
    match r.status {
        Status::Ok => return String::new(),
        Status::Timeout => return "timeout".into(),
        Status::Reset => return "reset".into(),
        Status::Error => {}
    }
    let other = || "_OTHER".to_string();
    match &r.response {
        Some(Response::Http(s)) => s.status.to_string(),
        Some(Response::Mysql(s)) => s.code.map_or_else(other, |c| c.to_string()),
        Some(Response::Pgsql(s)) => s.code.clone().unwrap_or_else(other),
        Some(Response::Redis(s)) => s
            .message
            .as_deref()
            .and_then(|m| m.split_whitespace().next())
            .filter(|w| w.len() <= 32 && w.bytes().all(|b| b.is_ascii_uppercase()))
            .map_or_else(other, str::to_string),
        Some(Response::Dns(s)) => s.rcode.clone(),
        None => other(),
    }
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
}
