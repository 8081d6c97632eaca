//! The crate's [`Error`]: one per layer wrapped, with a [`ErrorKind`] that decides how it is
//! reported (HTTP status, exit code, "please report this bug").
//!
//! Layers own their errors (`sql::ParseError`, `plan::PlanError`, `exec::ExecError`,
//! `format::FormatError`, `kafka::KafkaError`); this file only wraps and classifies them.

use crate::exec::ExecError;
use crate::format::FormatError;
use crate::kafka::KafkaError;
use crate::plan::PlanError;
use crate::sql::ParseError;

/// Who is at fault, which decides how an error is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The statement or input is wrong: the user can fix it (HTTP 400, exit code 1).
    User,
    /// Something outside Eddy failed, e.g. the broker (HTTP 503, exit code 2).
    External,
    /// An invariant of Eddy broke: a bug to report (HTTP 500, exit code 3).
    Internal,
}

/// Any error Eddy reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The SQL could not be parsed.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The statement could not be planned.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A query failed while running.
    #[error("query {query}: {source}")]
    Query {
        /// The failing query's id.
        query: String,
        /// What failed.
        #[source]
        source: ExecError,
    },
    /// A format problem outside a query.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// Kafka failed or refused.
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    /// The schema registry is misconfigured or failed.
    #[error("{0}")]
    Registry(String),
    /// A server property asks for something Eddy cannot do.
    #[error("{0}")]
    Config(String),
    /// Reading a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Who is at fault.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Parse(_) | Error::Plan(_) | Error::Format(_) => ErrorKind::User,
            Error::Query {
                source: ExecError::Internal(_),
                ..
            } => ErrorKind::Internal,
            Error::Query { .. } => ErrorKind::User,
            Error::Kafka(KafkaError::Topic(_) | KafkaError::RecordRefused { .. }) => {
                ErrorKind::User
            }
            Error::Kafka(_) | Error::Io { .. } | Error::Registry(_) => ErrorKind::External,
            Error::Config(_) => ErrorKind::User,
        }
    }
}
