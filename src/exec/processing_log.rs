//! [`ProcessingLog`]: where records that could not be processed are reported.
//!
//! ksqlDB writes such records to its processing log and keeps the query running; Eddy logs
//! each one (target `processing_log`, with topic, partition, offset and the reason) and
//! counts them per query. It also counts the records the query read and when it read the
//! last one, the statistics `DESCRIBE EXTENDED` shows. Writing the log to a Kafka topic is
//! not implemented yet.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::record::Record;

/// Counts and logs records a query could not process.
#[derive(Debug, Clone)]
pub struct ProcessingLog {
    query_id: Arc<str>,
    errors: Arc<AtomicU64>,
    processed: Arc<AtomicU64>,
    last_ms: Arc<AtomicI64>,
}

impl ProcessingLog {
    /// A log for query `query_id`.
    pub fn new(query_id: &str) -> Self {
        Self {
            query_id: query_id.into(),
            errors: Arc::default(),
            processed: Arc::default(),
            last_ms: Arc::default(),
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

    /// Reports a result record for `topic` that the broker refused (and that the query
    /// skipped: `ksql.fail.on.production.error=false`).
    pub fn result_refused(&self, topic: &str, error: &dyn std::fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            target: "processing_log",
            query = %self.query_id,
            topic = %topic,
            "skipped a result record the broker refused: {error}"
        );
    }

    /// Reports an expression that failed on a record (its value became NULL).
    pub fn expression_failed(&self, error: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            target: "processing_log",
            query = %self.query_id,
            "an expression failed on a record, giving NULL: {error}"
        );
    }

    /// Counts `n` records read (skipped ones included).
    pub fn record_processed(&self, n: usize) {
        self.processed.fetch_add(n as u64, Ordering::Relaxed);
        self.last_ms
            .store(crate::record::now_ms(), Ordering::Relaxed);
    }

    /// How many records were read so far.
    pub fn processed_count(&self) -> u64 {
        self.processed.load(Ordering::Relaxed)
    }

    /// When the last record was read (epoch ms; 0 if none).
    pub fn last_processed_ms(&self) -> i64 {
        self.last_ms.load(Ordering::Relaxed)
    }

    /// How many records were skipped so far.
    pub fn error_count(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
}
