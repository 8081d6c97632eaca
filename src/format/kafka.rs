//! The KAFKA format: Kafka's own primitive serializers, as ksqlDB uses them for keys.
//!
//! INT is 4 big-endian bytes, BIGINT 8, DOUBLE an 8-byte IEEE 754 value, STRING UTF-8 bytes;
//! only single, primitive columns can use it. This file converts one column's bytes; the
//! decoder and encoder decide which column.

use arrow::datatypes::DataType;
use datafusion_common::ScalarValue;

/// Decodes bytes written by Kafka's serializer for `data_type`.
pub fn to_scalar(bytes: &[u8], data_type: &DataType) -> Result<ScalarValue, String> {
    let size_error = |n: usize| {
        format!(
            "Size of data received by {} is not {n}",
            crate::types::sql_name(data_type)
        )
    };
    Ok(match data_type {
        DataType::Int32 => ScalarValue::Int32(Some(i32::from_be_bytes(
            bytes.try_into().map_err(|_| size_error(4))?,
        ))),
        DataType::Int64 => ScalarValue::Int64(Some(i64::from_be_bytes(
            bytes.try_into().map_err(|_| size_error(8))?,
        ))),
        DataType::Float64 => ScalarValue::Float64(Some(f64::from_be_bytes(
            bytes.try_into().map_err(|_| size_error(8))?,
        ))),
        DataType::Utf8 => ScalarValue::Utf8(Some(
            String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string())?,
        )),
        DataType::Binary => ScalarValue::Binary(Some(bytes.to_vec())),
        other => {
            return Err(format!(
                "The KAFKA format does not support {}",
                crate::types::sql_name(other)
            ));
        }
    })
}

/// Encodes a scalar as Kafka's serializer would; `None` for a null.
pub fn from_scalar(value: &ScalarValue) -> Option<Vec<u8>> {
    match value {
        ScalarValue::Int32(Some(n)) => Some(n.to_be_bytes().to_vec()),
        ScalarValue::Int64(Some(n)) => Some(n.to_be_bytes().to_vec()),
        ScalarValue::Float64(Some(f)) => Some(f.to_be_bytes().to_vec()),
        ScalarValue::Utf8(Some(s)) => Some(s.as_bytes().to_vec()),
        ScalarValue::Binary(Some(b)) => Some(b.clone()),
        v if v.is_null() => None,
        other => Some(other.to_string().into_bytes()),
    }
}

/// Whether a column of `data_type` can use the KAFKA format.
pub fn supports(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int32 | DataType::Int64 | DataType::Float64 | DataType::Utf8 | DataType::Binary
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_primitives() {
        for (v, t) in [
            (ScalarValue::Int32(Some(-7)), DataType::Int32),
            (ScalarValue::Int64(Some(1 << 40)), DataType::Int64),
            (ScalarValue::Float64(Some(2.5)), DataType::Float64),
            (ScalarValue::Utf8(Some("card".into())), DataType::Utf8),
        ] {
            let bytes = from_scalar(&v).unwrap();
            assert_eq!(to_scalar(&bytes, &t).unwrap(), v);
        }
    }
}
