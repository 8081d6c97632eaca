//! [`FoldOp`]: Eddy's stateful per-key fold, `FOLD(initial, s => next) OVER (PARTITION BY k)`.
//!
//! Each key has a state, `initial` until the key's first row. For every input row, in
//! order, the step expression computes the key's next state from the row's columns and the
//! current state (the lambda's parameter); the row goes out with that new state appended as
//! a column, and the state is kept for the key's next row. So a decision can depend on every
//! earlier decision of its key — what a stock reservation, a running session total or a
//! "first decision wins" rule need, and what ksqlDB's aggregates cannot say with one output
//! row per input row.
//!
//! State changes are checkpointed like aggregations' (key: the PARTITION BY values as Arrow
//! row bytes; value: the state as JSON). It does not plan the step (see
//! [`crate::plan::fold`]) and does not re-key: rows of one key must reach one task, which the
//! planner ensures by requiring the PARTITION BY to be the rows' key.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::row::{RowConverter, SortField};
use datafusion_common::ScalarValue;
use datafusion_physical_expr::PhysicalExpr;

use super::{Batch, ExecError, Operator, StateEntry, evaluate_all};

/// A planned `FOLD`.
#[derive(Debug)]
pub struct FoldSpec {
    /// The `PARTITION BY` expressions, over the input.
    pub partition_by: Vec<Arc<dyn PhysicalExpr>>,
    /// The state of a key before its first row.
    pub initial: ScalarValue,
    /// The next state, over the input's columns followed by the state column.
    pub step: Arc<dyn PhysicalExpr>,
    /// The lambda's parameter: the state column's name in the step's input.
    pub param: String,
    /// The output column holding each row's new state.
    pub name: String,
}

impl FoldSpec {
    /// The input's columns followed by a state column named `name`.
    pub fn with_state(input: &Schema, name: &str, state: DataType) -> SchemaRef {
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new(name, state, true));
        Arc::new(Schema::new(fields))
    }
}

/// Folds rows into per-key state, appending the new state to each row.
pub struct FoldOp {
    spec: Arc<FoldSpec>,
    /// What the step reads.
    step_schema: SchemaRef,
    /// What goes out.
    schema: SchemaRef,
    converter: RowConverter,
    states: HashMap<Box<[u8]>, ScalarValue>,
    changed: HashSet<Box<[u8]>>,
}

impl std::fmt::Debug for FoldOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FoldOp")
            .field("name", &self.spec.name)
            .field("keys", &self.states.len())
            .finish()
    }
}

impl FoldOp {
    /// A fold over batches of `input`.
    pub fn try_new(spec: Arc<FoldSpec>, input: &Schema) -> Result<Self, ExecError> {
        let fields = spec
            .partition_by
            .iter()
            .map(|e| Ok(SortField::new(e.data_type(input)?)))
            .collect::<Result<Vec<_>, ExecError>>()?;
        Ok(Self {
            step_schema: FoldSpec::with_state(input, &spec.param, spec.initial.data_type()),
            schema: FoldSpec::with_state(input, &spec.name, spec.initial.data_type()),
            converter: RowConverter::new(fields)?,
            spec,
            states: HashMap::new(),
            changed: HashSet::new(),
        })
    }

    /// The schema of the output rows: the input's columns and the state.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn state_type(&self) -> DataType {
        self.spec.initial.data_type()
    }

    /// The next state of row `row`'s key.
    fn step(
        &mut self,
        data: &RecordBatch,
        row: usize,
        key: &[u8],
    ) -> Result<ScalarValue, ExecError> {
        let state = self
            .states
            .get(key)
            .cloned()
            .unwrap_or_else(|| self.spec.initial.clone());
        let mut columns: Vec<ArrayRef> = data.slice(row, 1).columns().to_vec();
        columns.push(state.to_array()?);
        let one = RecordBatch::try_new(Arc::clone(&self.step_schema), columns)?;
        let next = self.spec.step.evaluate(&one)?.into_array(1)?;
        let next = arrow::compute::cast(&next, &self.state_type())?;
        Ok(ScalarValue::try_from_array(&next, 0)?)
    }
}

impl Operator for FoldOp {
    fn name(&self) -> &'static str {
        "Fold"
    }

    fn process(&mut self, batch: Batch, out: &mut Vec<Batch>) -> Result<(), ExecError> {
        let data = &batch.data;
        let rows = data.num_rows();
        let keys = evaluate_all(&self.spec.partition_by, data)?;
        let keys = self.converter.convert_columns(&keys)?;
        let mut states = Vec::with_capacity(rows);
        for row in 0..rows {
            let key: Box<[u8]> = keys.row(row).as_ref().into();
            let next = self.step(data, row, &key)?;
            self.states.insert(key.clone(), next.clone());
            self.changed.insert(key);
            states.push(next);
        }
        let state_column = if states.is_empty() {
            arrow::array::new_empty_array(&self.state_type())
        } else {
            ScalarValue::iter_to_array(states)?
        };
        let mut columns = data.columns().to_vec();
        columns.push(state_column);
        out.push(Batch {
            data: RecordBatch::try_new(Arc::clone(&self.schema), columns)?,
            tombstones: batch.tombstones,
        });
        Ok(())
    }

    fn checkpoint(&mut self) -> Result<Option<Vec<StateEntry>>, ExecError> {
        Ok(Some(
            self.changed
                .drain()
                .map(|key| {
                    let value = self.states.get(&key).map(|state| {
                        crate::format::json::from_scalar(state)
                            .to_string()
                            .into_bytes()
                    });
                    (key.into_vec(), value)
                })
                .collect(),
        ))
    }

    fn restore(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), ExecError> {
        let key: Box<[u8]> = key.into();
        match value {
            None => {
                self.states.remove(&key);
            }
            Some(bytes) => {
                let json: serde_json::Value = serde_json::from_slice(bytes)
                    .map_err(|e| ExecError::Internal(format!("fold changelog entry: {e}")))?;
                let state = crate::format::json::to_scalar(&json, &self.state_type())
                    .map_err(|e| ExecError::Internal(format!("fold changelog entry: {e}")))?;
                self.states.insert(key, state);
            }
        }
        Ok(())
    }
}
