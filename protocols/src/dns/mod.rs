//! DNS over UDP and TCP (RFC 1035). Parser: issue #3.

use serde::Serialize;

/// `request` of a DNS record (record-schema.md).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DnsRequest {
    /// Query name, no trailing dot, as sent.
    pub name: String,
    /// Type mnemonic (`A`, `AAAA`, ...; unknown as `TYPE65`).
    #[serde(rename = "type")]
    pub qtype: String,
    /// Transaction id.
    pub id: u16,
}

/// `response` of a DNS record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DnsResponse {
    /// `NOERROR`, `NXDOMAIN`, `SERVFAIL`, ...
    pub rcode: String,
    pub answers: u32,
}
