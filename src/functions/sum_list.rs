//! `SUM_LIST(array)`: ksqlDB's aggregate summing every element of every array it sees.
//!
//! The result has the arrays' element type (INT arrays sum to an INT); NULL arrays and NULL
//! elements add nothing, and a group that saw none sums to 0. It retracts (for tables) by
//! subtracting, and merges partial sums, so it is checkpointed like SUM.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion_common::{Result, ScalarValue, exec_err};
use datafusion_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility};

/// The `SUM_LIST` aggregate.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SumList {
    signature: Signature,
}

impl SumList {
    /// The aggregate as DataFusion calls it.
    pub fn udaf() -> Arc<AggregateUDF> {
        Arc::new(AggregateUDF::new_from_impl(Self {
            signature: Signature::any(1, Volatility::Immutable),
        }))
    }
}

impl AggregateUDFImpl for SumList {
    fn name(&self) -> &str {
        "sum_list"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types.first() {
            Some(DataType::List(item)) => Ok(item.data_type().clone()),
            other => exec_err!("SUM_LIST takes an array, got {other:?}"),
        }
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let types = super::input_types(&args);
        Ok(vec![Arc::new(Field::new(
            format!("{}_sum", args.name),
            self.return_type(&types)?,
            true,
        ))])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let zero = ScalarValue::new_zero(args.return_field.data_type())?;
        Ok(Box::new(Sum { sum: zero }))
    }
}

#[derive(Debug)]
struct Sum {
    sum: ScalarValue,
}

impl Sum {
    /// Adds (or, `retract`ing, subtracts) every non-null element of every array of `lists`.
    fn apply(&mut self, lists: &ArrayRef, retract: bool) -> Result<()> {
        for row in 0..lists.len() {
            if lists.is_null(row) {
                continue;
            }
            let elements = lists.as_list::<i32>().value(row);
            for i in 0..elements.len() {
                let value = ScalarValue::try_from_array(&elements, i)?;
                if !value.is_null() {
                    self.sum = if retract {
                        self.sum.sub(&value)?
                    } else {
                        self.sum.add(&value)?
                    };
                }
            }
        }
        Ok(())
    }
}

impl Accumulator for Sum {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.apply(&values[0], false)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.apply(&values[0], true)
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        for row in 0..states[0].len() {
            let value = ScalarValue::try_from_array(&states[0], row)?;
            if !value.is_null() {
                self.sum = self.sum.add(&value)?;
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.sum.clone()])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(self.sum.clone())
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.sum.size()
    }
}
