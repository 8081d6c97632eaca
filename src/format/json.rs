//! JSON values ↔ Arrow scalars, with ksqlDB's coercions.
//!
//! Reading follows ksqlDB's JSON deserializer: numbers and numeric strings are accepted for
//! numeric columns, any JSON for a STRING column (non-strings keep their JSON text), and
//! object fields match column names exactly first, then case-insensitively. Writing produces
//! the JSON ksqlDB writes (explicit nulls, doubles with a decimal point). Row assembly is in
//! [`super::decode`] and [`super::encode`].

use std::sync::Arc;

use arrow::array::Array;
use arrow::datatypes::{DataType, Field};
use datafusion_common::ScalarValue;
use serde_json::{Map, Number, Value};

/// Converts one JSON value to a scalar of `data_type`, or says why it cannot.
pub fn to_scalar(value: &Value, data_type: &DataType) -> Result<ScalarValue, String> {
    if value.is_null() {
        return ScalarValue::try_from(data_type).map_err(|e| e.to_string());
    }
    let mismatch = || {
        format!(
            "Can't convert type. sourceType: {}, requiredType: {}",
            kind(value),
            crate::types::sql_name(data_type)
        )
    };
    Ok(match data_type {
        DataType::Boolean => ScalarValue::Boolean(Some(match value {
            Value::Bool(b) => *b,
            Value::String(s) if s.eq_ignore_ascii_case("true") => true,
            Value::String(s) if s.eq_ignore_ascii_case("false") => false,
            _ => return Err(mismatch()),
        })),
        DataType::Int32 => {
            let n = to_i64(value).ok_or_else(mismatch)?;
            ScalarValue::Int32(Some(i32::try_from(n).map_err(|_| mismatch())?))
        }
        DataType::Int64 | DataType::Timestamp(_, _) => {
            let n = to_i64(value).ok_or_else(mismatch)?;
            match data_type {
                DataType::Int64 => ScalarValue::Int64(Some(n)),
                _ => ScalarValue::TimestampMillisecond(Some(n), None),
            }
        }
        DataType::Float64 => ScalarValue::Float64(Some(to_f64(value).ok_or_else(mismatch)?)),
        DataType::Decimal128(p, s) => decimal(value, *p, *s).ok_or_else(mismatch)?,
        DataType::Utf8 => ScalarValue::Utf8(Some(match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })),
        DataType::List(_) | DataType::Struct(_) | DataType::Map(..) => {
            nested_scalar(value, data_type).ok_or_else(mismatch)??
        }
        // DATE as days and TIME as milliseconds since midnight, BYTES as base64 text.
        DataType::Date32 => ScalarValue::Date32(Some(
            i32::try_from(to_i64(value).ok_or_else(mismatch)?).map_err(|_| mismatch())?,
        )),
        DataType::Time32(_) => ScalarValue::Time32Millisecond(Some(
            i32::try_from(to_i64(value).ok_or_else(mismatch)?).map_err(|_| mismatch())?,
        )),
        DataType::Binary => ScalarValue::Binary(Some(
            value
                .as_str()
                .and_then(super::avro::unbase64)
                .ok_or_else(mismatch)?,
        )),
        other => {
            return Err(format!(
                "JSON values of type {} are not supported yet",
                crate::types::sql_name(other)
            ));
        }
    })
}

/// ARRAY, STRUCT and MAP values; `None` when the JSON has the wrong shape.
fn nested_scalar(value: &Value, data_type: &DataType) -> Option<Result<ScalarValue, String>> {
    Some(match (data_type, value) {
        (DataType::List(field), Value::Array(items)) => items
            .iter()
            .map(|v| to_scalar(v, field.data_type()))
            .collect::<Result<Vec<_>, _>>()
            .map(|scalars| {
                ScalarValue::List(ScalarValue::new_list_nullable(&scalars, field.data_type()))
            }),
        (DataType::Struct(fields), Value::Object(object)) => struct_scalar(object, fields),
        (DataType::Map(entries, sorted), Value::Object(object)) => {
            map_scalar(object, entries, *sorted)
        }
        _ => return None,
    })
}

/// A STRUCT from a JSON object: fields matched like columns, missing ones NULL.
fn struct_scalar(
    object: &Map<String, Value>,
    fields: &arrow::datatypes::Fields,
) -> Result<ScalarValue, String> {
    let arrays = fields
        .iter()
        .map(|f| {
            to_scalar(
                field(object, f.name()).unwrap_or(&Value::Null),
                f.data_type(),
            )?
            .to_array()
            .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let array = arrow::array::StructArray::try_new(fields.clone(), arrays, None)
        .map_err(|e| e.to_string())?;
    Ok(ScalarValue::Struct(Arc::new(array)))
}

/// A MAP from a JSON object (keys coerced from their text to the key type).
fn map_scalar(
    object: &Map<String, Value>,
    entries: &arrow::datatypes::FieldRef,
    sorted: bool,
) -> Result<ScalarValue, String> {
    let DataType::Struct(kv) = entries.data_type() else {
        return Err("malformed MAP type".into());
    };
    let (key_type, value_type) = (kv[0].data_type(), kv[1].data_type());
    let keys = object
        .keys()
        .map(|k| to_scalar(&Value::String(k.clone()), key_type))
        .collect::<Result<Vec<_>, _>>()?;
    let values = object
        .values()
        .map(|v| to_scalar(v, value_type))
        .collect::<Result<Vec<_>, _>>()?;
    let array =
        |scalars: Vec<ScalarValue>, t: &DataType| -> Result<arrow::array::ArrayRef, String> {
            if scalars.is_empty() {
                Ok(arrow::array::new_empty_array(t))
            } else {
                ScalarValue::iter_to_array(scalars).map_err(|e| e.to_string())
            }
        };
    let struct_array = arrow::array::StructArray::try_new(
        kv.clone(),
        vec![array(keys, key_type)?, array(values, value_type)?],
        None,
    )
    .map_err(|e| e.to_string())?;
    let offsets = arrow::buffer::OffsetBuffer::new(vec![0i32, struct_array.len() as i32].into());
    let map =
        arrow::array::MapArray::try_new(Arc::clone(entries), offsets, struct_array, None, sorted)
            .map_err(|e| e.to_string())?;
    Ok(ScalarValue::Map(Arc::new(map)))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "NULL",
        Value::Bool(_) => "BOOLEAN",
        Value::Number(n) if n.is_f64() => "DOUBLE",
        Value::Number(_) => "BIGINT",
        Value::String(_) => "STRING",
        Value::Array(_) => "ARRAY",
        Value::Object(_) => "STRUCT",
    }
}

fn to_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn to_f64(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn decimal(value: &Value, precision: u8, scale: i8) -> Option<ScalarValue> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => return None,
    };
    let parsed = arrow::compute::kernels::cast::cast(
        &(Arc::new(arrow::array::StringArray::from(vec![text])) as arrow::array::ArrayRef),
        &DataType::Decimal128(precision, scale),
    )
    .ok()?;
    let scalar = ScalarValue::try_from_array(&parsed, 0).ok()?;
    (!scalar.is_null()).then_some(scalar)
}

/// The text of a decimal with `unscaled` digits and `scale`.
pub fn decimal_text(unscaled: i128, scale: i8) -> String {
    ScalarValue::Decimal128(Some(unscaled), 38, scale).to_string()
}

/// The JSON number of a decimal given as big-endian two's-complement unscaled bytes (how
/// Avro and Protobuf hold decimals).
pub fn decimal_from_bytes(bytes: &[u8], scale: i8) -> Value {
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let unscaled = bytes
        .iter()
        .fold(if negative { -1i128 } else { 0 }, |acc, b| {
            (acc << 8) | i128::from(*b)
        });
    let text = decimal_text(unscaled, scale);
    text.parse()
        .map(Value::Number)
        .unwrap_or(Value::String(text))
}

/// The shortest big-endian two's-complement bytes of a JSON decimal's unscaled digits.
pub fn decimal_to_bytes(value: &Value, scale: i8) -> Option<Vec<u8>> {
    let bytes = unscaled(value, scale)?.to_be_bytes();
    let skip = bytes
        .windows(2)
        .take_while(|w| (w[0] == 0 && w[1] & 0x80 == 0) || (w[0] == 0xFF && w[1] & 0x80 != 0))
        .count();
    Some(bytes[skip..].to_vec())
}

/// The unscaled digits of a JSON number (or numeric string) at `scale`.
pub fn unscaled(value: &Value, scale: i8) -> Option<i128> {
    match decimal(value, 38, scale)? {
        ScalarValue::Decimal128(Some(n), _, _) => Some(n),
        _ => None,
    }
}

/// Converts a scalar to the JSON ksqlDB writes for it.
pub fn from_scalar(value: &ScalarValue) -> Value {
    match value {
        v if v.is_null() => Value::Null,
        ScalarValue::Boolean(Some(b)) => Value::Bool(*b),
        ScalarValue::Int8(Some(n)) => Value::from(*n),
        ScalarValue::Int16(Some(n)) => Value::from(*n),
        ScalarValue::Int32(Some(n)) => Value::from(*n),
        ScalarValue::Int64(Some(n)) => Value::from(*n),
        ScalarValue::UInt32(Some(n)) => Value::from(*n),
        ScalarValue::UInt64(Some(n)) => Value::from(*n),
        ScalarValue::TimestampMillisecond(Some(n), _) => Value::from(*n),
        ScalarValue::Date32(Some(n)) | ScalarValue::Time32Millisecond(Some(n)) => Value::from(*n),
        ScalarValue::Binary(Some(b)) => Value::String(super::avro::base64(b)),
        ScalarValue::Float32(Some(f)) => {
            Number::from_f64(f64::from(*f)).map_or(Value::Null, Value::Number)
        }
        // JSON has no NaN or infinities: ksqlDB writes them as strings.
        ScalarValue::Float64(Some(f)) => Number::from_f64(*f).map_or_else(
            || {
                Value::String(match *f {
                    f if f.is_nan() => "NaN".into(),
                    f if f > 0.0 => "Infinity".into(),
                    _ => "-Infinity".into(),
                })
            },
            Value::Number,
        ),
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Value::String(s.clone()),
        ScalarValue::Decimal128(Some(_), _, _) => {
            let text = value.to_string();
            text.parse::<f64>()
                .ok()
                .and_then(Number::from_f64)
                .map_or(Value::String(text), Value::Number)
        }
        ScalarValue::List(_) | ScalarValue::Map(_) | ScalarValue::Struct(_) => nested_json(value),
        other => Value::String(other.to_string()),
    }
}

/// The JSON of an ARRAY, MAP or STRUCT value.
fn nested_json(value: &ScalarValue) -> Value {
    match value {
        ScalarValue::List(list) => {
            let items = (0..list.value_length(0).max(0) as usize)
                .filter_map(|i| ScalarValue::try_from_array(&list.value(0), i).ok())
                .map(|v| from_scalar(&v))
                .collect();
            Value::Array(items)
        }
        ScalarValue::Map(map) => {
            let entries = map.value(0);
            let (keys, values) = (entries.column(0), entries.column(1));
            Value::Object(
                (0..entries.len())
                    .map(|i| {
                        let key = ScalarValue::try_from_array(keys, i)
                            .map_or(Value::Null, |k| from_scalar(&k));
                        let key = match key {
                            Value::String(s) => s,
                            other => other.to_string(),
                        };
                        let value = ScalarValue::try_from_array(values, i)
                            .map_or(Value::Null, |v| from_scalar(&v));
                        (key, value)
                    })
                    .collect(),
            )
        }
        ScalarValue::Struct(array) => Value::Object(
            array
                .fields()
                .iter()
                .zip(array.columns())
                .map(|(f, column)| {
                    let v = ScalarValue::try_from_array(column, 0)
                        .map_or(Value::Null, |v| from_scalar(&v));
                    (f.name().clone(), v)
                })
                .collect(),
        ),
        other => Value::String(other.to_string()),
    }
}

/// Finds the field of `object` for column `name`: exact match first, then case-insensitive.
pub fn field<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.get(name).or_else(|| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// A JSON object from column names and scalars.
pub fn object(fields: &[Arc<Field>], values: &[ScalarValue]) -> Value {
    Value::Object(
        fields
            .iter()
            .zip(values)
            .map(|(f, v)| (f.name().clone(), from_scalar(v)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_coerce_like_ksqldb() {
        assert_eq!(
            to_scalar(&json!("12"), &DataType::Int32).unwrap(),
            ScalarValue::Int32(Some(12))
        );
        assert_eq!(
            to_scalar(&json!(3), &DataType::Float64).unwrap(),
            ScalarValue::Float64(Some(3.0))
        );
        assert_eq!(
            to_scalar(&json!(7), &DataType::Utf8).unwrap(),
            ScalarValue::Utf8(Some("7".into()))
        );
        assert!(to_scalar(&json!("x"), &DataType::Int64).is_err());
    }

    #[test]
    fn doubles_keep_a_decimal_point() {
        assert_eq!(
            from_scalar(&ScalarValue::Float64(Some(101.0))).to_string(),
            "101.0"
        );
    }
}
