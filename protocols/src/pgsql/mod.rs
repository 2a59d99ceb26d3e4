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
