//! Operators: the steps of a running query, over Arrow record batches.
//!
//! Every operator implements [`Operator`]: it takes a [`Batch`] and pushes zero or more
//! batches to its output. Operators own their state and never touch Kafka, files or
//! clocks, so the same operators run under the Kafka runtime ([`crate::kafka`]) and the
//! in-memory driver ([`crate::testing`]). [`task::Task`] chains them between a decoder and
//! an encoder for one input partition.
//!
//! Layout: [`filter`], [`project`], [`join`] (two-input joins), [`aggregate`] (grouped and windowed aggregation with
//! HAVING and emit modes; [`emit_final`] decides when EMIT FINAL releases a window), [`regroup`] (a table's changes re-keyed with retractions), [`unnest`] (EXPLODE), [`fold`] (per-key FOLD), [`window`] (window assignment), [`row_errors`] (expressions failing on some rows), [`task`], [`error`].

pub mod aggregate;
pub mod emit_final;
pub mod error;
pub mod filter;
pub mod fold;
pub mod join;
pub mod output;
pub mod processing_log;
pub mod project;
pub mod regroup;
pub mod row_errors;
pub mod task;
pub mod unnest;
pub mod window;

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, RecordBatch};
use datafusion_physical_expr::PhysicalExpr;

pub use error::ExecError;

/// Evaluates each of `exprs` over `batch`, as arrays of its length; a row on which an
/// expression fails gets NULL there ([`row_errors`]).
pub fn evaluate_all(
    exprs: &[Arc<dyn PhysicalExpr>],
    batch: &RecordBatch,
) -> Result<Vec<ArrayRef>, ExecError> {
    exprs
        .iter()
        .map(|e| row_errors::evaluate(e, batch))
        .collect()
}

/// Rows flowing between operators.
///
/// For streams every row is an insert. For tables (`tombstones` is `Some`) every row is an
/// upsert of its key, or a delete where the mask is true.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The rows.
    pub data: RecordBatch,
    /// Table changelog semantics: `true` marks a row whose key is deleted.
    pub tombstones: Option<BooleanArray>,
}

impl Batch {
    /// A batch of stream rows.
    pub fn stream(data: RecordBatch) -> Self {
        Self {
            data,
            tombstones: None,
        }
    }

    /// Whether row `i` deletes its key.
    pub fn is_tombstone(&self, i: usize) -> bool {
        self.tombstones.as_ref().is_some_and(|t| t.value(i))
    }

    /// The tombstone flags as a plain vector (all false for streams).
    pub fn tombstone_flags(&self) -> Vec<bool> {
        match &self.tombstones {
            Some(t) => t.iter().map(|v| v.unwrap_or(false)).collect(),
            None => vec![false; self.data.num_rows()],
        }
    }
}

impl From<crate::format::decode::Decoded> for Batch {
    /// The decoded rows as a batch, tombstones flagged.
    fn from(decoded: crate::format::decode::Decoded) -> Self {
        let tombstones =
            (!decoded.tombstones.is_empty()).then(|| BooleanArray::from(decoded.tombstones));
        Self {
            data: decoded.batch,
            tombstones,
        }
    }
}

/// One changelog entry of an operator's state: a key and its new value (`None`: deleted).
pub type StateEntry = (Vec<u8>, Option<Vec<u8>>);

/// A [`StateEntry`] borrowed.
pub type EntryRef<'a> = (&'a [u8], Option<&'a [u8]>);

/// One step of a running continuous query.
///
/// The task calls [`Operator::process`] for each input batch, in order. Operators keep
/// whatever state they need (aggregates, windows) and emit results into `out`.
pub trait Operator: Send + Sync {
    /// Short name used in `EXPLAIN`, metrics and error context.
    fn name(&self) -> &'static str;

    /// Transforms one batch, pushing zero or more batches to `out`.
    fn process(&mut self, batch: Batch, out: &mut Vec<Batch>) -> Result<(), ExecError>;

    /// The changes to this operator's state since the last checkpoint, as changelog entries;
    /// `None` when its state cannot be checkpointed (the query then replays its input on
    /// restart). Stateless operators have nothing to write.
    fn checkpoint(&mut self) -> Result<Option<Vec<StateEntry>>, ExecError> {
        Ok(Some(Vec::new()))
    }

    /// Applies one changelog entry written by [`Operator::checkpoint`] (restore).
    fn restore(&mut self, _key: &[u8], _value: Option<&[u8]>) -> Result<(), ExecError> {
        Ok(())
    }
}
