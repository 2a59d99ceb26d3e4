//! PostgreSQL frontend/backend protocol v3. Parser: issue #3.

use serde::Serialize;

/// `request` of a PostgreSQL record (record-schema.md).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PgsqlRequest {
    pub query: String,
    /// `simple` or `extended`.
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
}

/// `response` of a PostgreSQL record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PgsqlResponse {
    pub error: bool,
    /// SQLSTATE, when error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
}

/// Placeholder until the parser lands (issue #3): accepts bytes, produces nothing.
#[derive(Default)]
pub struct PgsqlParser {
    stats: crate::ParseStats,
}

impl PgsqlParser {
    pub fn new() -> Self {
        Self::default()
    }
}

impl crate::ConnParser for PgsqlParser {
    fn push(&mut self, _chunk: crate::Chunk<'_>, _out: &mut Vec<crate::Exchange>) {}
    fn close(&mut self, _ts_ns: u64, _reset: bool, _out: &mut Vec<crate::Exchange>) {}
    fn expire(&mut self, _now_ns: u64, _timeout_ns: u64, _out: &mut Vec<crate::Exchange>) {}
    fn stats(&self) -> &crate::ParseStats {
        &self.stats
    }
}
