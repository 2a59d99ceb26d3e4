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

/// Placeholder until the parser lands (issue #3): accepts bytes, produces nothing.
pub struct DnsParser {
    stats: crate::ParseStats,
    _transport: crate::Transport,
}

impl DnsParser {
    pub fn new(transport: crate::Transport) -> Self {
        DnsParser {
            stats: crate::ParseStats::default(),
            _transport: transport,
        }
    }
}

impl crate::ConnParser for DnsParser {
    fn push(&mut self, _chunk: crate::Chunk<'_>, _out: &mut Vec<crate::Exchange>) {}
    fn close(&mut self, _ts_ns: u64, _reset: bool, _out: &mut Vec<crate::Exchange>) {}
    fn expire(&mut self, _now_ns: u64, _timeout_ns: u64, _out: &mut Vec<crate::Exchange>) {}
    fn stats(&self) -> &crate::ParseStats {
        &self.stats
    }
}
