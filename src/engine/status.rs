//! [`QueryStatus`]: what a persistent query is doing, as `SHOW QUERIES` and `DESCRIBE
//! EXTENDED` report it.
//!
//! The runtime that runs the query (and its repartition stages, which share its status)
//! sets it: `RUNNING` while it runs, `ERROR` from a failure until it has run again for a
//! while after its restart, with the last [`MAX_ERRORS`] failures kept as ksqlDB's
//! `queryErrors` (`ksql.query.error.max.queue.size`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

/// How many failures a query keeps.
pub const MAX_ERRORS: usize = 10;

/// ksqlDB's query states that Eddy's queries go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueryState {
    /// Processing its input.
    #[default]
    Running,
    /// Failed; restarting with backoff.
    Error,
}

impl QueryState {
    /// The name ksqlDB gives it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Error => "ERROR",
        }
    }
}

/// One failure of a query, as ksqlDB's `QueryError`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    /// When it failed (ms since the epoch).
    pub timestamp: i64,
    /// Why.
    pub message: String,
    /// `USER` (its input or its statement: a record the broker refuses) or `SYSTEM`.
    pub kind: &'static str,
}

#[derive(Debug, Default)]
struct Inner {
    state: QueryState,
    errors: VecDeque<QueryError>,
}

/// A query's state and recent failures, shared by the engine and the runtime.
#[derive(Debug, Clone, Default)]
pub struct QueryStatus(Arc<Mutex<Inner>>);

impl QueryStatus {
    /// The state now.
    pub fn state(&self) -> QueryState {
        self.lock().state
    }

    /// The recent failures, oldest first.
    pub fn errors(&self) -> Vec<QueryError> {
        self.lock().errors.iter().cloned().collect()
    }

    /// The query runs (again).
    pub fn running(&self) {
        self.lock().state = QueryState::Running;
    }

    /// The query failed with `message` (`user`: because of its input or statement).
    pub fn failed(&self, message: &str, user: bool) {
        let mut inner = self.lock();
        inner.state = QueryState::Error;
        if inner.errors.len() == MAX_ERRORS {
            inner.errors.pop_front();
        }
        inner.errors.push_back(QueryError {
            timestamp: crate::record::now_ms(),
            message: message.to_string(),
            kind: if user { "USER" } else { "SYSTEM" },
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_set_error_and_keep_the_last_ten() {
        let status = QueryStatus::default();
        assert_eq!(status.state(), QueryState::Running);
        for i in 0..12 {
            status.failed(&format!("failure {i}"), i % 2 == 0);
        }
        assert_eq!(status.state().name(), "ERROR");
        let errors = status.errors();
        assert_eq!(errors.len(), MAX_ERRORS);
        assert_eq!(errors[0].message, "failure 2");
        assert_eq!(errors[9].kind, "SYSTEM");
        status.running();
        assert_eq!(status.state().name(), "RUNNING");
        assert_eq!(status.errors().len(), MAX_ERRORS, "errors are history");
    }
}
