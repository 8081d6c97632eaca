//! [`ProcessingLog`]: where records that could not be processed are reported.
//!
//! ksqlDB writes such records to its processing log and keeps the query running; Eddy logs
//! each one (target `processing_log`, with topic, partition, offset and the reason) and
//! counts them per query. Writing the log to a Kafka topic is not implemented yet.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::record::Record;

/// Counts and logs records a query could not process.
#[derive(Debug, Clone)]
pub struct ProcessingLog {
    query_id: Arc<str>,
    errors: Arc<AtomicU64>,
}

impl ProcessingLog {
    /// A log for query `query_id`.
    pub fn new(query_id: &str) -> Self {
        Self {
            query_id: query_id.into(),
            errors: Arc::default(),
        }
    }

    /// Reports `record`, which failed with `error`.
    pub fn record_failed(&self, record: &Record, error: &dyn std::fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            target: "processing_log",
            query = %self.query_id,
            topic = %record.topic,
            partition = record.partition.unwrap_or(-1),
            offset = record.offset,
            "skipped a record: {error}"
        );
    }

    /// How many records were skipped so far.
    pub fn error_count(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
}
