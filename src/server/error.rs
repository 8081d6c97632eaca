//! [`RestError`]: what the REST API answers when a request fails, in ksqlDB's error body.
//!
//! ksqlDB's bodies are `{"@type":"generic_error","error_code":N,"message":"..."}` and, for a
//! statement that failed, `{"@type":"statement_error",...,"statementText":"...",
//! "entities":[...]}` (the results of the statements before it); the HTTP status is
//! `error_code / 100`. Engine errors map by who is at fault: the user's statement (40001),
//! Kafka (50000), or Eddy itself (50000). This file only shapes errors; handlers decide
//! which one a request gets.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::{Error, ErrorKind};

/// ksqlDB's error codes used by Eddy.
pub mod code {
    /// The request itself is malformed.
    pub const BAD_REQUEST: i64 = 40000;
    /// A statement is invalid.
    pub const BAD_STATEMENT: i64 = 40001;
    /// A `SELECT` or `PRINT` sent to `/ksql`.
    pub const QUERY_ENDPOINT: i64 = 40002;
    /// As many push queries run as `ksql.max.push.queries` allows.
    pub const MAX_PUSH_QUERIES: i64 = 40003;
    /// Not found.
    pub const NOT_FOUND: i64 = 40400;
    /// A request that ran out of time.
    pub const REQUEST_TIMEOUT: i64 = 40800;
    /// Something failed on the server's side.
    pub const SERVER_ERROR: i64 = 50000;
    /// The server cannot answer now (a command not applied in time).
    pub const SERVICE_UNAVAILABLE: i64 = 50300;
}

/// A failed request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct RestError {
    /// ksqlDB's error code; the HTTP status is `code / 100`.
    pub code: i64,
    /// What went wrong.
    pub message: String,
    /// For statement errors: the statement, and the entities of those before it.
    pub statement: Option<(String, Vec<Value>)>,
}

impl RestError {
    /// A `generic_error`.
    pub fn generic(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            statement: None,
        }
    }

    /// A `statement_error` for `statement`, after `entities` succeeded.
    pub fn statement(
        code: i64,
        message: impl Into<String>,
        statement: &str,
        entities: Vec<Value>,
    ) -> Self {
        Self {
            code,
            message: message.into(),
            statement: Some((statement.to_string(), entities)),
        }
    }

    /// The error `error` raised by `statement`.
    pub fn from_engine(error: &Error, statement: &str, entities: Vec<Value>) -> Self {
        if let Error::Plan(crate::plan::PlanError::PushQueryLimit(_)) = error {
            return Self::generic(code::MAX_PUSH_QUERIES, error.to_string());
        }
        match error.kind() {
            ErrorKind::User => {
                Self::statement(code::BAD_STATEMENT, error.to_string(), statement, entities)
            }
            ErrorKind::External | ErrorKind::Internal => {
                Self::generic(code::SERVER_ERROR, error.to_string())
            }
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16((self.code / 100) as u16).unwrap_or(StatusCode::BAD_REQUEST)
    }

    /// ksqlDB's JSON body.
    pub fn body(&self) -> Value {
        match &self.statement {
            Some((text, entities)) => json!({
                "@type": "statement_error",
                "error_code": self.code,
                "message": self.message,
                "statementText": text,
                "entities": entities,
            }),
            None => json!({
                "@type": "generic_error",
                "error_code": self.code,
                "message": self.message,
            }),
        }
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        (
            self.status(),
            [("content-type", super::rest::KSQL_JSON)],
            self.body().to_string(),
        )
            .into_response()
    }
}
