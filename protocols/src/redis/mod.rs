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
