//! HTTP/1.x (RFC 9112): message framing with httparse for heads, FIFO pairing.

use serde::Serialize;

/// `request` of an HTTP record (record-schema.md).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HttpRequest {
    pub method: String,
    /// The request-target exactly as sent, query string included.
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Low-cardinality template of the path, e.g. `/users/{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
}

/// `response` of an HTTP record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HttpResponse {
    pub status: u16,
    /// From Content-Length or the decoded chunk sizes.
    pub body_bytes: u64,
}

/// Placeholder until the parser lands (issue #2): accepts bytes, produces nothing.
pub struct HttpParser {
    stats: crate::ParseStats,
}

impl HttpParser {
    pub fn new() -> Self {
        HttpParser {
            stats: crate::ParseStats::default(),
        }
    }
}

impl Default for HttpParser {
    fn default() -> Self {
        Self::new()
    }
}

impl crate::ConnParser for HttpParser {
    fn push(&mut self, _chunk: crate::Chunk<'_>, _out: &mut Vec<crate::Exchange>) {}
    fn close(&mut self, _ts_ns: u64, _reset: bool, _out: &mut Vec<crate::Exchange>) {}
    fn expire(&mut self, _now_ns: u64, _timeout_ns: u64, _out: &mut Vec<crate::Exchange>) {}
    fn stats(&self) -> &crate::ParseStats {
        &self.stats
    }
}
