//! `ENTRIES(map, sorted)`: a map's entries as `ARRAY<STRUCT<K STRING, V type>>`, in key
//! order when `sorted` is true (else in the map's own order). A NULL map has no entries
//! (NULL).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, ListArray, StructArray};
use arrow::buffer::OffsetBuffer;
use arrow::compute::SortOptions;
use arrow::datatypes::{DataType, Field, Fields};
use datafusion_common::{Result, ScalarValue, exec_err};
use datafusion_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// The `ENTRIES` function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Entries {
    signature: Signature,
}

impl Entries {
    /// The function as DataFusion calls it.
    pub fn udf() -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::new_from_impl(Self {
            signature: Signature::any(2, Volatility::Immutable),
        }))
    }
}

/// `STRUCT<K key type, V value type>` of a map type's entries.
fn entry_fields(map: &DataType) -> Result<Fields> {
    let DataType::Map(entries, _) = map else {
        return exec_err!("ENTRIES takes a MAP, got {map}");
    };
    let DataType::Struct(kv) = entries.data_type() else {
        return exec_err!("malformed MAP type");
    };
    Ok(vec![
        Field::new("K", kv[0].data_type().clone(), true),
        Field::new("V", kv[1].data_type().clone(), true),
    ]
    .into())
}

impl ScalarUDFImpl for Entries {
    fn name(&self) -> &str {
        "entries"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        let fields = entry_fields(args.first().unwrap_or(&DataType::Null))?;
        Ok(DataType::List(Arc::new(Field::new(
            "item",
            DataType::Struct(fields),
            true,
        ))))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let returns = args.return_field.data_type().clone();
        let [map, sorted] = args.args.as_slice() else {
            return exec_err!("ENTRIES takes a MAP and whether to sort");
        };
        let (map, sorted) = (map.to_array(rows)?, sorted.to_array(rows)?);
        let fields = entry_fields(map.data_type())?;
        let DataType::List(item) = &returns else {
            return exec_err!("ENTRIES returns an ARRAY");
        };
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            if map.is_null(row) {
                out.push(ScalarValue::try_from(&returns)?);
                continue;
            }
            let entries = map.as_map().value(row);
            let (mut keys, mut values): (ArrayRef, ArrayRef) =
                (Arc::clone(entries.column(0)), Arc::clone(entries.column(1)));
            let sort = sorted
                .as_boolean_opt()
                .is_some_and(|s| s.is_valid(row) && s.value(row));
            if sort {
                let order =
                    arrow::compute::sort_to_indices(&keys, Some(SortOptions::default()), None)?;
                keys = arrow::compute::take(&keys, &order, None)?;
                values = arrow::compute::take(&values, &order, None)?;
            }
            let n = keys.len();
            let structs = StructArray::try_new(fields.clone(), vec![keys, values], None)?;
            out.push(ScalarValue::List(Arc::new(ListArray::new(
                Arc::clone(item),
                OffsetBuffer::from_lengths([n]),
                Arc::new(structs),
                None,
            ))));
        }
        Ok(ColumnarValue::Array(ScalarValue::iter_to_array(out)?))
    }
}
