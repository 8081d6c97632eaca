//! [`FilterOp`]: `WHERE`, keeping the rows whose predicate is true.
//!
//! On a stream, other rows are dropped. On a table, a row that no longer matches becomes a
//! tombstone for its key, as ksqlDB does for a `WHERE` over a table source. NULL counts as
//! false. The predicate is a DataFusion `PhysicalExpr` planned once per query.

use std::sync::Arc;

use arrow::array::{Array, BooleanArray};
use arrow::compute::{and, filter_record_batch, is_not_null, not, or};
use arrow::datatypes::{DataType, Schema};
use datafusion_physical_expr::PhysicalExpr;

use super::{Batch, ExecError, Operator};

/// Keeps the rows matching a predicate.
#[derive(Debug)]
pub struct FilterOp {
    predicate: Arc<dyn PhysicalExpr>,
}

impl FilterOp {
    /// A filter over batches of `input`; fails unless `predicate` is BOOLEAN.
    pub fn try_new(predicate: Arc<dyn PhysicalExpr>, input: &Schema) -> Result<Self, ExecError> {
        match predicate.data_type(input)? {
            DataType::Boolean => Ok(Self { predicate }),
            other => Err(ExecError::Internal(format!(
                "WHERE must be BOOLEAN, got {other}"
            ))),
        }
    }
}

/// Evaluates a boolean predicate over a batch, with NULL as false.
pub fn evaluate_mask(
    predicate: &Arc<dyn PhysicalExpr>,
    batch: &arrow::array::RecordBatch,
) -> Result<BooleanArray, ExecError> {
    let value = super::row_errors::evaluate(predicate, batch)?;
    let mask = value
        .as_any()
        .downcast_ref::<BooleanArray>()
        .ok_or_else(|| ExecError::Internal("predicate is not BOOLEAN".into()))?;
    Ok(and(mask, &is_not_null(mask)?)?)
}

impl Operator for FilterOp {
    fn name(&self) -> &'static str {
        "Filter"
    }

    fn process(&mut self, batch: Batch, out: &mut Vec<Batch>) -> Result<(), ExecError> {
        let mask = evaluate_mask(&self.predicate, &batch.data)?;
        match batch.tombstones {
            None => {
                let kept = filter_record_batch(&batch.data, &mask)?;
                if kept.num_rows() > 0 {
                    out.push(Batch::stream(kept));
                }
            }
            Some(tombstones) => {
                let tombstones = or(&tombstones, &not(&mask)?)?;
                out.push(Batch {
                    data: batch.data,
                    tombstones: Some(tombstones),
                });
            }
        }
        Ok(())
    }
}
