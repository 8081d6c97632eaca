//! The combinations behind ksqlDB's `CUBE_EXPLODE(array)`: every way of keeping or nulling
//! each element, as an array of arrays that the table-function planner then explodes.
//!
//! Combinations come in binary counting order with the first element as the highest bit
//! (`[null, null]`, `[null, b]`, `[a, null]`, `[a, b]`); an element that is already NULL
//! would repeat combinations, which are listed once. A NULL array has no combinations.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, ListArray, new_null_array};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field};
use datafusion_common::{Result, ScalarValue, exec_err};
use datafusion_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// `cube_combinations(array)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CubeCombinations {
    signature: Signature,
}

impl CubeCombinations {
    /// The function as DataFusion calls it.
    pub fn udf() -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::new_from_impl(Self {
            signature: Signature::any(1, Volatility::Immutable),
        }))
    }
}

impl ScalarUDFImpl for CubeCombinations {
    fn name(&self) -> &str {
        "cube_combinations"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args.first() {
            Some(list @ DataType::List(_)) => Ok(DataType::List(Arc::new(Field::new(
                "item",
                list.clone(),
                true,
            )))),
            other => exec_err!("CUBE_EXPLODE takes an ARRAY, got {other:?}"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let returns = args.return_field.data_type().clone();
        let Some(arg) = args.args.into_iter().next() else {
            return exec_err!("CUBE_EXPLODE takes one argument");
        };
        let lists = arg.into_array(rows)?;
        let DataType::List(element) = lists.data_type().clone() else {
            return exec_err!("CUBE_EXPLODE takes an ARRAY");
        };
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            if lists.is_null(row) {
                out.push(ScalarValue::try_from(&returns)?);
                continue;
            }
            let items = lists.as_list::<i32>().value(row);
            let combos = combinations(&items, &element)?;
            out.push(ScalarValue::List(Arc::new(ListArray::new(
                Arc::new(Field::new("item", lists.data_type().clone(), true)),
                OffsetBuffer::from_lengths([combos.len()]),
                concat(&combos, lists.data_type())?,
                None,
            ))));
        }
        Ok(ColumnarValue::Array(ScalarValue::iter_to_array(out)?))
    }
}

/// Every combination of `items` as a one-row list array, in order, without repeats.
fn combinations(items: &ArrayRef, element: &Arc<Field>) -> Result<Vec<ArrayRef>> {
    let n = items.len();
    let nulls = new_null_array(element.data_type(), 1);
    let mut seen: Vec<Vec<bool>> = Vec::new();
    let mut out = Vec::new();
    for mask in 0..(1u64 << n.min(20)) {
        // Bit n-1-i keeps element i; an element already NULL counts as nulled.
        let kept: Vec<bool> = (0..n)
            .map(|i| mask >> (n - 1 - i) & 1 == 1 && !items.is_null(i))
            .collect();
        if seen.contains(&kept) {
            continue;
        }
        let parts: Vec<ArrayRef> = (0..n)
            .map(|i| {
                if kept[i] {
                    items.slice(i, 1)
                } else {
                    Arc::clone(&nulls)
                }
            })
            .collect();
        let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
        let values = if refs.is_empty() {
            new_null_array(element.data_type(), 0)
        } else {
            arrow::compute::concat(&refs)?
        };
        out.push(Arc::new(ListArray::new(
            Arc::clone(element),
            OffsetBuffer::from_lengths([n]),
            values,
            None,
        )) as ArrayRef);
        seen.push(kept);
    }
    Ok(out)
}

fn concat(arrays: &[ArrayRef], data_type: &DataType) -> Result<ArrayRef> {
    if arrays.is_empty() {
        return Ok(new_null_array(data_type, 0));
    }
    let refs: Vec<&dyn Array> = arrays.iter().map(|a| a.as_ref()).collect();
    Ok(arrow::compute::concat(&refs)?)
}
