//! ksqlDB's `CAST` where Arrow's cast differs: an integer narrowed to INT wraps as Java's
//! `(int)` does (also inside arrays, maps and structs, which Arrow would refuse), and an
//! array, map or struct cast to STRING reads as Java prints it (`[1, 2]`, `{k=v}`,
//! `Struct{F0=1,f1=3}`, NULL struct fields left out).
//!
//! [`needed`] says when the planner must use [`KsqlCast`] instead of Arrow's cast; every
//! other cast stays Arrow's. Which casts are allowed at all is the planner's concern.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, ListArray, MapArray, StringBuilder, StructArray};
use arrow::datatypes::{DataType, Int32Type, Int64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion_common::{Result, exec_err};
use datafusion_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// Whether casting `from` to `to` needs ksqlDB's rules rather than Arrow's.
pub fn needed(from: &DataType, to: &DataType) -> bool {
    match (from, to) {
        (DataType::Int64, DataType::Int32) => true,
        (DataType::List(_) | DataType::Map(..) | DataType::Struct(_), DataType::Utf8) => true,
        (DataType::List(a), DataType::List(b)) => needed(a.data_type(), b.data_type()),
        (DataType::Map(a, _), DataType::Map(b, _)) => needed(a.data_type(), b.data_type()),
        (DataType::Struct(a), DataType::Struct(b)) => a
            .iter()
            .zip(b.iter())
            .any(|(x, y)| needed(x.data_type(), y.data_type())),
        _ => false,
    }
}

/// `CAST(x AS to)` with ksqlDB's rules.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct KsqlCast {
    to: DataType,
    signature: Signature,
}

impl KsqlCast {
    /// The cast to `to`, as a DataFusion function of one argument.
    pub fn udf(to: DataType) -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::new_from_impl(Self {
            to,
            signature: Signature::any(1, Volatility::Immutable),
        }))
    }
}

impl ScalarUDFImpl for KsqlCast {
    fn name(&self) -> &str {
        "ksql_cast"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(self.to.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let Some(arg) = args.args.into_iter().next() else {
            return exec_err!("CAST takes one argument");
        };
        let array = arg.into_array(rows)?;
        Ok(ColumnarValue::Array(cast(&array, &self.to)?))
    }
}

/// Casts `array` to `to` with ksqlDB's rules, recursing into nested types.
pub fn cast(array: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    if !needed(array.data_type(), to) {
        return Ok(arrow::compute::cast(array, to)?);
    }
    Ok(match (array.data_type(), to) {
        (DataType::Int64, DataType::Int32) => Arc::new(
            array
                .as_primitive::<Int64Type>()
                .unary::<_, Int32Type>(|v| v as i32),
        ),
        (_, DataType::Utf8) => java_strings(array)?,
        (DataType::List(_), DataType::List(field)) => {
            let list = array.as_list::<i32>();
            Arc::new(ListArray::try_new(
                Arc::clone(field),
                list.offsets().clone(),
                cast(list.values(), field.data_type())?,
                list.nulls().cloned(),
            )?)
        }
        (DataType::Map(_, _), DataType::Map(field, sorted)) => {
            let map = array.as_map();
            let entries: ArrayRef = Arc::new(map.entries().clone());
            let entries = cast(&entries, field.data_type())?;
            Arc::new(MapArray::try_new(
                Arc::clone(field),
                map.offsets().clone(),
                entries.as_struct().clone(),
                map.nulls().cloned(),
                *sorted,
            )?)
        }
        (DataType::Struct(_), DataType::Struct(fields)) => {
            let source = array.as_struct();
            let columns = fields
                .iter()
                .zip(source.columns())
                .map(|(f, c)| cast(c, f.data_type()))
                .collect::<Result<Vec<_>>>()?;
            Arc::new(StructArray::try_new(
                fields.clone(),
                columns,
                source.nulls().cloned(),
            )?)
        }
        _ => return exec_err!("cannot cast {} to {to}", array.data_type()),
    })
}

/// Each value of `array` as Java prints it.
fn java_strings(array: &ArrayRef) -> Result<ArrayRef> {
    let mut out = StringBuilder::new();
    for row in 0..array.len() {
        if array.is_null(row) {
            out.append_null();
        } else {
            let mut text = String::new();
            java_string(array.as_ref(), row, &mut text)?;
            out.append_value(text);
        }
    }
    Ok(Arc::new(out.finish()))
}

fn java_string(array: &dyn Array, row: usize, out: &mut String) -> Result<()> {
    if array.is_null(row) {
        out.push_str("null");
        return Ok(());
    }
    match array.data_type() {
        DataType::List(_) => {
            let values = array.as_list::<i32>().value(row);
            out.push('[');
            for i in 0..values.len() {
                if i > 0 {
                    out.push_str(", ");
                }
                java_string(values.as_ref(), i, out)?;
            }
            out.push(']');
        }
        DataType::Map(..) => {
            let entries = array.as_map().value(row);
            out.push('{');
            for i in 0..entries.len() {
                if i > 0 {
                    out.push_str(", ");
                }
                java_string(entries.column(0).as_ref(), i, out)?;
                out.push('=');
                java_string(entries.column(1).as_ref(), i, out)?;
            }
            out.push('}');
        }
        DataType::Struct(fields) => {
            let columns = array.as_struct().columns();
            out.push_str("Struct{");
            let mut first = true;
            for (field, column) in fields.iter().zip(columns) {
                if column.is_null(row) {
                    continue;
                }
                if !first {
                    out.push(',');
                }
                first = false;
                out.push_str(field.name());
                out.push('=');
                java_string(column.as_ref(), row, out)?;
            }
            out.push('}');
        }
        _ => {
            let formatter = ArrayFormatter::try_new(array, &FormatOptions::default())?;
            out.push_str(&formatter.value(row).to_string());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, Int64Array, StringArray};
    use arrow::datatypes::Field;

    #[test]
    fn narrowing_wraps_inside_arrays() {
        let values: ArrayRef = Arc::new(Int64Array::from(vec![1, 2_147_483_648]));
        let field = Arc::new(Field::new("item", DataType::Int64, true));
        let list: ArrayRef = Arc::new(
            ListArray::try_new(
                field,
                arrow::buffer::OffsetBuffer::from_lengths([2]),
                values,
                None,
            )
            .unwrap(),
        );
        let to = DataType::List(Arc::new(Field::new("item", DataType::Int32, true)));
        let cast = cast(&list, &to).unwrap();
        let cast = cast.as_list::<i32>().value(0);
        let ints = cast.as_any().downcast_ref::<Int32Array>().unwrap();
        assert_eq!(ints.values(), &[1, -2_147_483_648]);
    }

    #[test]
    fn structs_print_as_java_does() {
        let s: ArrayRef = Arc::new(StructArray::from(vec![
            (
                Arc::new(Field::new("F0", DataType::Int32, true)),
                Arc::new(Int32Array::from(vec![Some(1)])) as ArrayRef,
            ),
            (
                Arc::new(Field::new("f1", DataType::Utf8, true)),
                Arc::new(StringArray::from(vec![None::<&str>])) as ArrayRef,
            ),
        ]));
        let text = cast(&s, &DataType::Utf8).unwrap();
        assert_eq!(text.as_string::<i32>().value(0), "Struct{F0=1}");
    }
}
