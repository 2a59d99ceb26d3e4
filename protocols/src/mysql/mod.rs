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
