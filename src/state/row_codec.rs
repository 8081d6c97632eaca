//! [`RowCodec`]: rows of `ScalarValue`s as bytes and back, for changelog entries.
//!
//! Operators that keep rows as `ScalarValue`s (joins) write them to their changelog in
//! Arrow's row format (`arrow::row`), which represents every type Eddy uses (lists, maps,
//! structs, decimals) exactly and compactly. The bytes depend on the Arrow version: a
//! changelog written by a build with another Arrow version is read back by rebuilding the
//! state from the input (see `docs/design.md`).

use arrow::array::ArrayRef;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::row::{RowConverter, SortField};
use datafusion_common::ScalarValue;

use crate::exec::ExecError;

/// Encodes and decodes rows of fixed column types.
#[derive(Debug)]
pub struct RowCodec {
    types: Vec<DataType>,
    converter: RowConverter,
}

impl RowCodec {
    /// A codec of rows with these column types.
    pub fn try_new(types: Vec<DataType>) -> Result<Self, ExecError> {
        let converter = RowConverter::new(types.iter().cloned().map(SortField::new).collect())?;
        Ok(Self { types, converter })
    }

    /// A codec of rows with the fields of `schema`.
    pub fn of_schema(schema: &SchemaRef) -> Result<Self, ExecError> {
        Self::try_new(
            schema
                .fields()
                .iter()
                .map(|f| f.data_type().clone())
                .collect(),
        )
    }

    /// One row's bytes.
    pub fn encode(&self, values: &[ScalarValue]) -> Result<Vec<u8>, ExecError> {
        if values.len() != self.types.len() {
            return Err(ExecError::Internal(format!(
                "a row of {} values for a codec of {} columns",
                values.len(),
                self.types.len()
            )));
        }
        let columns = values
            .iter()
            .zip(&self.types)
            .map(|(v, t)| {
                let array = v.to_array_of_size(1)?;
                Ok(if array.data_type() == t {
                    array
                } else {
                    arrow::compute::cast(&array, t)?
                })
            })
            .collect::<Result<Vec<ArrayRef>, ExecError>>()?;
        let rows = self.converter.convert_columns(&columns)?;
        Ok(rows.row(0).as_ref().to_vec())
    }

    /// Many rows [`RowCodec::encode`] wrote, converted at once (much cheaper than one by one).
    pub fn decode_many(&self, rows: &[&[u8]]) -> Result<Vec<Vec<ScalarValue>>, ExecError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let parser = self.converter.parser();
        let columns = self
            .converter
            .convert_rows(rows.iter().map(|bytes| parser.parse(bytes)))?;
        (0..rows.len())
            .map(|i| {
                columns
                    .iter()
                    .map(|c| Ok(ScalarValue::try_from_array(c, i)?))
                    .collect()
            })
            .collect()
    }

    /// The row [`RowCodec::encode`] wrote.
    pub fn decode(&self, bytes: &[u8]) -> Result<Vec<ScalarValue>, ExecError> {
        let parser = self.converter.parser();
        let columns = self.converter.convert_rows([parser.parse(bytes)])?;
        columns
            .iter()
            .map(|c| Ok(ScalarValue::try_from_array(c, 0)?))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::datatypes::Field;

    use super::*;

    #[test]
    fn rows_of_nested_types_come_back_as_they_were() {
        let list = DataType::List(Arc::new(Field::new("item", DataType::Int32, true)));
        let codec =
            RowCodec::try_new(vec![DataType::Utf8, DataType::Float64, list.clone()]).unwrap();
        let items = ScalarValue::List(ScalarValue::new_list_nullable(
            &[ScalarValue::Int32(Some(1)), ScalarValue::Int32(None)],
            &DataType::Int32,
        ));
        let row = vec![
            ScalarValue::Utf8(Some("k".into())),
            ScalarValue::Float64(Some(0.1 + 0.2)),
            items,
        ];
        let bytes = codec.encode(&row).unwrap();
        assert_eq!(codec.decode(&bytes).unwrap(), row);
        let nulls = vec![
            ScalarValue::Utf8(None),
            ScalarValue::Float64(None),
            ScalarValue::try_from(&list).unwrap(),
        ];
        assert_eq!(codec.decode(&codec.encode(&nulls).unwrap()).unwrap(), nulls);
        let many = [bytes.as_slice(), codec.encode(&nulls).unwrap().as_slice()].map(<[u8]>::to_vec);
        let slices: Vec<&[u8]> = many.iter().map(Vec::as_slice).collect();
        assert_eq!(codec.decode_many(&slices).unwrap(), vec![row, nulls]);
    }
}
