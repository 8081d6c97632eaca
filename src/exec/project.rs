//! [`ProjectOp`]: the `SELECT` list, computing each output column from the input row.
//!
//! Output columns are DataFusion `PhysicalExpr`s over the input batch, planned once per
//! query; tombstones pass through unchanged (their values are never written).

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion_physical_expr::PhysicalExpr;

use super::{Batch, ExecError, Operator};

/// Computes output columns from input rows.
#[derive(Debug)]
pub struct ProjectOp {
    exprs: Vec<Arc<dyn PhysicalExpr>>,
    schema: SchemaRef,
}

impl ProjectOp {
    /// A projection of `exprs` named `names` over batches of `input`.
    pub fn try_new(
        exprs: Vec<(String, Arc<dyn PhysicalExpr>)>,
        input: &Schema,
    ) -> Result<Self, ExecError> {
        let fields = exprs
            .iter()
            .map(|(name, e)| Ok(Field::new(name, e.data_type(input)?, e.nullable(input)?)))
            .collect::<Result<Vec<_>, ExecError>>()?;
        Ok(Self {
            exprs: exprs.into_iter().map(|(_, e)| e).collect(),
            schema: Arc::new(Schema::new(fields)),
        })
    }

    /// The schema of the batches this projection emits.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }
}

impl Operator for ProjectOp {
    fn name(&self) -> &'static str {
        "Project"
    }

    fn process(&mut self, batch: Batch, out: &mut Vec<Batch>) -> Result<(), ExecError> {
        let columns = super::evaluate_all(&self.exprs, &batch.data)?;
        let data = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
        out.push(Batch {
            data,
            tombstones: batch.tombstones,
        });
        Ok(())
    }
}
