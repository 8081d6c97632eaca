//! Errors raised while a query runs: evaluating expressions, updating aggregates, encoding.
//!
//! A malformed input record is not an [`ExecError`]: it goes to the processing log and the
//! query continues. These errors mean a batch could not be processed at all.

/// A failure while processing a batch.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// Arrow failed (a kernel or batch construction).
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    /// DataFusion failed (evaluating an expression or an accumulator).
    #[error(transparent)]
    DataFusion(#[from] datafusion_common::DataFusionError),
    /// Results could not be encoded for the sink.
    #[error(transparent)]
    Format(#[from] crate::format::FormatError),
    /// An invariant of the engine was broken: a bug.
    #[error("internal error: {0}")]
    Internal(String),
}
