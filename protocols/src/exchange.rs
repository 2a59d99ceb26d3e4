//! The protocol-level result of pairing: one request with its response (or its fate).

use serde::Serialize;

use crate::{dns, http, mysql, pgsql, redis};

/// Which side of the connection the observed process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Client,
    Server,
    Unknown,
}

/// How an exchange ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Outcome {
    /// A response was paired with the request.
    Complete,
    /// No response came within the timeout.
    Timeout,
    /// The connection closed before the response came.
    Reset,
}

/// The record's `status` field (record-schema.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Error,
    Timeout,
    Reset,
}

/// A W3C trace context read from a request (`traceparent`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TraceContext {
    pub trace_id: String,
    pub span_id: String,
}

/// The request half, one variant per protocol; serializes to the record's `request` object.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Request {
    Http(http::HttpRequest),
    Mysql(mysql::MysqlRequest),
    Pgsql(pgsql::PgsqlRequest),
    Redis(redis::RedisRequest),
    Dns(dns::DnsRequest),
}

/// The response half; serializes to the record's `response` object.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Response {
    Http(http::HttpResponse),
    Mysql(mysql::MysqlResponse),
    Pgsql(pgsql::PgsqlResponse),
    Redis(redis::RedisResponse),
    Dns(dns::DnsResponse),
}

/// One request and what became of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Exchange {
    /// Time of the first byte of the request.
    pub req_ts_ns: u64,
    /// Time of the last byte of the response; `None` without a response.
    pub resp_ts_ns: Option<u64>,
    pub request: Request,
    pub response: Option<Response>,
    pub outcome: Outcome,
    /// The captured prefix ended before the request or the response did.
    pub truncated: bool,
    pub trace: Option<TraceContext>,
}

impl Exchange {
    /// Latency from the first request byte to the last response byte.
    pub fn latency_ns(&self) -> Option<u64> {
        self.resp_ts_ns.map(|r| r.saturating_sub(self.req_ts_ns))
    }

    /// The protocol name as written in records.
    pub fn protocol(&self) -> crate::Protocol {
        match self.request {
            Request::Http(_) => crate::Protocol::Http,
            Request::Mysql(_) => crate::Protocol::Mysql,
            Request::Pgsql(_) => crate::Protocol::Pgsql,
            Request::Redis(_) => crate::Protocol::Redis,
            Request::Dns(_) => crate::Protocol::Dns,
        }
    }

    /// The record's `status`, as OpenTelemetry judges it: HTTP >= 500 is an error; 4xx is an
    /// error only seen from the client.
    pub fn status(&self, role: Role) -> Status {
        match self.outcome {
            Outcome::Timeout => return Status::Timeout,
            Outcome::Reset => return Status::Reset,
            Outcome::Complete => {}
        }
        let error = match &self.response {
            None => false,
            Some(Response::Http(r)) => r.status >= 500 || (role == Role::Client && r.status >= 400),
            Some(Response::Mysql(r)) => r.error,
            Some(Response::Pgsql(r)) => r.error,
            Some(Response::Redis(r)) => r.error,
            Some(Response::Dns(r)) => r.rcode != "NOERROR",
        };
        if error {
            Status::Error
        } else {
            Status::Ok
        }
    }
}

/// What a parser could not turn into exchanges, counted, never silently dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ParseStats {
    /// Bytes that were not a valid message where one was expected (each resync counts once).
    pub parse_errors: u64,
    /// Responses with no request waiting for them.
    pub unmatched_responses: u64,
    /// Message boundaries lost in a capture gap (the message is skipped to the next boundary,
    /// or salvaged from what was captured and marked truncated).
    pub lost_in_gap: u64,
    /// Requests dropped because too many were waiting on one connection.
    pub pending_overflow: u64,
}

impl ParseStats {
    pub fn add(&mut self, other: &ParseStats) {
        self.parse_errors += other.parse_errors;
        self.unmatched_responses += other.unmatched_responses;
        self.lost_in_gap += other.lost_in_gap;
        self.pending_overflow += other.pending_overflow;
    }
}
