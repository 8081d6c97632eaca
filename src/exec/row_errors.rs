//! Expressions that fail on some rows (an integer divided by zero, a function refusing its
//! input): as in ksqlDB, the expression is NULL for those rows, the failure goes to the
//! query's processing log, and the query keeps running.
//!
//! [`evaluate`] tries the whole batch first; only when that fails does it go row by row to
//! find the failing rows. Failures are noted on the current thread and collected with
//! [`take`] by the task that ran the operators ([`super::task::Task`]), which reports them;
//! a task processes its batches on one thread, start to end. This file does not decide
//! what a NULL means for the operator (a filter drops the row, a projection writes NULL).

use std::cell::RefCell;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, new_null_array};
use datafusion_physical_expr::PhysicalExpr;

use super::ExecError;

thread_local! {
    static FAILED: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// `expr` over `batch`; rows on which it fails are NULL (and noted for [`take`]).
pub fn evaluate(expr: &Arc<dyn PhysicalExpr>, batch: &RecordBatch) -> Result<ArrayRef, ExecError> {
    let rows = batch.num_rows();
    let whole = expr.evaluate(batch).and_then(|v| v.into_array(rows));
    let error = match whole {
        Ok(array) => return Ok(array),
        Err(e) => e,
    };
    if rows <= 1 {
        note(&error.to_string());
        return Ok(new_null_array(&expr.data_type(&batch.schema())?, rows));
    }
    let mut pieces = Vec::with_capacity(rows);
    for row in 0..rows {
        pieces.push(evaluate(expr, &batch.slice(row, 1))?);
    }
    let refs: Vec<&dyn arrow::array::Array> = pieces.iter().map(|a| a.as_ref()).collect();
    Ok(arrow::compute::concat(&refs)?)
}

fn note(failure: &str) {
    FAILED.with(|f| f.borrow_mut().push(failure.to_string()));
}

/// The failures noted on this thread since the last call.
pub fn take() -> Vec<String> {
    FAILED.with(|f| std::mem::take(&mut *f.borrow_mut()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Int32Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion_expr::Operator;
    use datafusion_physical_expr::expressions::{BinaryExpr, col};

    #[test]
    fn a_row_dividing_by_zero_is_null_and_noted() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int32, true),
            Field::new("b", DataType::Int32, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int32Array::from(vec![4, 1, 9])),
                Arc::new(Int32Array::from(vec![2, 0, 3])),
            ],
        )
        .unwrap();
        let divide: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
            col("a", &schema).unwrap(),
            Operator::Divide,
            col("b", &schema).unwrap(),
        ));
        take();
        let out = evaluate(&divide, &batch).unwrap();
        let out = out.as_any().downcast_ref::<Int32Array>().unwrap();
        assert_eq!(out.iter().collect::<Vec<_>>(), vec![Some(2), None, Some(3)]);
        let failures = take();
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(failures[0].contains("Divide by zero"), "{failures:?}");
    }
}
