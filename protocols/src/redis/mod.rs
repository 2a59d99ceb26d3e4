//! Redis serialization protocol (RESP2, RESP3, inline). Parser: issue #3.

use serde::Serialize;

/// `request` of a Redis record (record-schema.md).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RedisRequest {
    /// Upper-case first word: `GET`, `SET`, `HGETALL`, ...
    pub command: String,
    /// Number of arguments after the command.
    pub args: u32,
}

/// `response` of a Redis record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RedisResponse {
    pub error: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Placeholder until the parser lands (issue #3): accepts bytes, produces nothing.
#[derive(Default)]
pub struct RedisParser {
    stats: crate::ParseStats,
}

impl RedisParser {
    pub fn new() -> Self {
        Self::default()
    }
}

impl crate::ConnParser for RedisParser {
    fn push(&mut self, _chunk: crate::Chunk<'_>, _out: &mut Vec<crate::Exchange>) {}
    fn close(&mut self, _ts_ns: u64, _reset: bool, _out: &mut Vec<crate::Exchange>) {}
    fn expire(&mut self, _now_ns: u64, _timeout_ns: u64, _out: &mut Vec<crate::Exchange>) {}
    fn stats(&self) -> &crate::ParseStats {
        &self.stats
    }
}
