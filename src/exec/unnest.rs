//! [`UnnestOp`]: ksqlDB's table function `EXPLODE`, one output row per array element.
//!
//! Each input row becomes as many rows as its longest exploded array (several `EXPLODE`s in
//! one query zip together; a shorter array gives NULL), with the row's other columns
//! repeated; a NULL or empty array yields no row. The element columns are appended to the
//! input's columns; the projection that follows reads them.

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion_physical_expr::PhysicalExpr;

use super::{Batch, ExecError, Operator};

/// Explodes array expressions into rows.
#[derive(Debug)]
pub struct UnnestOp {
    arrays: Vec<Arc<dyn PhysicalExpr>>,
    schema: SchemaRef,
}

impl UnnestOp {
    /// Explodes `arrays` (named `names`) over batches of `input`; each must be an ARRAY.
    pub fn try_new(
        arrays: Vec<(String, Arc<dyn PhysicalExpr>)>,
        input: &Schema,
    ) -> Result<Self, ExecError> {
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        for (name, e) in &arrays {
            match e.data_type(input)? {
                DataType::List(element) => {
                    fields.push(Field::new(name, element.data_type().clone(), true))
                }
                other => {
                    return Err(ExecError::Internal(format!(
                        "EXPLODE needs an ARRAY, got {other}"
                    )));
                }
            }
        }
        Ok(Self {
            arrays: arrays.into_iter().map(|(_, e)| e).collect(),
            schema: Arc::new(Schema::new(fields)),
        })
    }

    /// The schema of the exploded rows.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }
}

impl Operator for UnnestOp {
    fn name(&self) -> &'static str {
        "Unnest"
    }

    fn process(&mut self, batch: Batch, out: &mut Vec<Batch>) -> Result<(), ExecError> {
        let data = &batch.data;
        let lists = super::evaluate_all(&self.arrays, data)?;
        let lists: Vec<_> = lists.iter().map(|l| l.as_list::<i32>()).collect();
        let (mut rows, mut elements) = (Vec::new(), vec![Vec::new(); lists.len()]);
        for row in 0..data.num_rows() {
            let len = |l: &arrow::array::ListArray| {
                if l.is_valid(row) {
                    l.value_length(row) as u32
                } else {
                    0
                }
            };
            let longest = lists.iter().map(|l| len(l)).max().unwrap_or(0);
            for i in 0..longest {
                rows.push(row as u32);
                for (list, indices) in lists.iter().zip(elements.iter_mut()) {
                    let start = list.value_offsets()[row] as u32;
                    indices.push((i < len(list)).then_some(start + i));
                }
            }
        }
        let rows = UInt32Array::from(rows);
        let mut columns = data
            .columns()
            .iter()
            .map(|c| take(c.as_ref(), &rows, None))
            .collect::<Result<Vec<_>, _>>()?;
        for (list, indices) in lists.iter().zip(elements) {
            columns.push(take(
                list.values().as_ref(),
                &UInt32Array::from(indices),
                None,
            )?);
        }
        let tombstones = batch
            .tombstones
            .map(|t| take(&t, &rows, None).map(|a| a.as_boolean().clone()))
            .transpose()?;
        out.push(Batch {
            data: RecordBatch::try_new(Arc::clone(&self.schema), columns)?,
            tombstones,
        });
        Ok(())
    }
}
