//! MySQL client/server protocol (text and binary). Parser: issue #3.

use serde::Serialize;

/// `request` of a MySQL record (record-schema.md).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MysqlRequest {
    /// `COM_QUERY`, `COM_STMT_PREPARE`, `COM_STMT_EXECUTE`, ...
    pub command: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
}

/// `response` of a MySQL record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MysqlResponse {
    pub error: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
}

/// Placeholder until the parser lands (issue #3): accepts bytes, produces nothing.
#[derive(Default)]
pub struct MysqlParser {
    stats: crate::ParseStats,
}

impl MysqlParser {
    pub fn new() -> Self {
        Self::default()
    }
}

impl crate::ConnParser for MysqlParser {
    fn push(&mut self, _chunk: crate::Chunk<'_>, _out: &mut Vec<crate::Exchange>) {}
    fn close(&mut self, _ts_ns: u64, _reset: bool, _out: &mut Vec<crate::Exchange>) {}
    fn expire(&mut self, _now_ns: u64, _timeout_ns: u64, _out: &mut Vec<crate::Exchange>) {}
    fn stats(&self) -> &crate::ParseStats {
        &self.stats
    }
}
