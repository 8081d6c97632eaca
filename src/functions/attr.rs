//! `ATTR(x)`: ksqlDB's aggregate giving the group's value when every row has the same one
//! (NULL counting as a value), and NULL when they differ.
//!
//! It counts each distinct value, so a table's update retracts its old value exactly; the
//! state (values and their counts, as two lists) merges and is checkpointed like any other.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion_common::{Result, ScalarValue, exec_err};
use datafusion_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility};

/// The `ATTR` aggregate.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Attr {
    signature: Signature,
}

impl Attr {
    /// The aggregate as DataFusion calls it.
    pub fn udaf() -> Arc<AggregateUDF> {
        Arc::new(AggregateUDF::new_from_impl(Self {
            signature: Signature::any(1, Volatility::Immutable),
        }))
    }
}

fn list_of(t: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", t, true)))
}

impl AggregateUDFImpl for Attr {
    fn name(&self) -> &str {
        "attr"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types.first() {
            Some(t) => Ok(t.clone()),
            None => exec_err!("ATTR takes one column"),
        }
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let item = self.return_type(&super::input_types(&args))?;
        Ok(vec![
            Arc::new(Field::new(
                format!("{}_values", args.name),
                list_of(item),
                true,
            )),
            Arc::new(Field::new(
                format!("{}_counts", args.name),
                list_of(DataType::Int64),
                true,
            )),
        ])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(Counts {
            item: args.return_field.data_type().clone(),
            counts: Vec::new(),
        }))
    }
}

#[derive(Debug)]
struct Counts {
    item: DataType,
    /// Each distinct value and how many rows hold it.
    counts: Vec<(ScalarValue, i64)>,
}

impl Counts {
    fn add(&mut self, value: ScalarValue, n: i64) {
        match self.counts.iter_mut().find(|(v, _)| *v == value) {
            Some((_, count)) => *count += n,
            None => self.counts.push((value, n)),
        }
        self.counts.retain(|(_, count)| *count > 0);
    }

    fn apply(&mut self, values: &ArrayRef, n: i64) -> Result<()> {
        for row in 0..values.len() {
            self.add(ScalarValue::try_from_array(values, row)?, n);
        }
        Ok(())
    }
}

impl Accumulator for Counts {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.apply(&values[0], 1)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.apply(&values[0], -1)
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        for row in 0..states[0].len() {
            if states[0].is_null(row) {
                continue;
            }
            let values = states[0].as_list::<i32>().value(row);
            let counts = states[1].as_list::<i32>().value(row);
            for i in 0..values.len() {
                if let ScalarValue::Int64(Some(n)) = ScalarValue::try_from_array(&counts, i)? {
                    self.add(ScalarValue::try_from_array(&values, i)?, n);
                }
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let values: Vec<ScalarValue> = self.counts.iter().map(|(v, _)| v.clone()).collect();
        let counts: Vec<ScalarValue> = self
            .counts
            .iter()
            .map(|(_, n)| ScalarValue::Int64(Some(*n)))
            .collect();
        Ok(vec![
            ScalarValue::List(ScalarValue::new_list_nullable(&values, &self.item)),
            ScalarValue::List(ScalarValue::new_list_nullable(&counts, &DataType::Int64)),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        match self.counts.as_slice() {
            [(value, _)] => Ok(value.clone()),
            _ => ScalarValue::try_from(&self.item),
        }
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.counts.iter().map(|(v, _)| v.size() + 8).sum::<usize>()
    }
}
