//! ksqlDB's SQL types as Arrow types.
//!
//! One mapping, used by the catalog (column types), the formats (decoding into Arrow) and the
//! planner (casts): `BOOLEAN`→`Boolean`, `INT`→`Int32`, `BIGINT`→`Int64`, `DOUBLE`→`Float64`,
//! `DECIMAL(p,s)`→`Decimal128(p,s)`, `STRING`→`Utf8`, `BYTES`→`Binary`, `TIMESTAMP`→
//! `Timestamp(ms)`, `DATE`→`Date32`, `TIME`→`Time32(ms)`, and the nested types. It does not
//! resolve custom types (`CREATE TYPE`): the catalog does that before calling [`to_arrow`].

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, TimeUnit};

use crate::sql::ast::{SqlType, normalize};

/// The Arrow type that holds values of `sql_type`, or `None` for an unresolved custom type.
pub fn to_arrow(sql_type: &SqlType) -> Option<DataType> {
    Some(match sql_type {
        SqlType::Boolean => DataType::Boolean,
        SqlType::Int => DataType::Int32,
        SqlType::Bigint => DataType::Int64,
        SqlType::Double => DataType::Float64,
        SqlType::Decimal(p, s) => DataType::Decimal128(*p, *s),
        SqlType::String => DataType::Utf8,
        SqlType::Bytes => DataType::Binary,
        SqlType::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, None),
        SqlType::Date => DataType::Date32,
        SqlType::Time => DataType::Time32(TimeUnit::Millisecond),
        SqlType::Array(element) => {
            DataType::List(Arc::new(Field::new("item", to_arrow(element)?, true)))
        }
        SqlType::Map(key, value) => map_of(to_arrow(key)?, to_arrow(value)?),
        SqlType::Struct(fields) => DataType::Struct(
            fields
                .iter()
                .map(|(name, t)| Some(Field::new(normalize(name), to_arrow(t)?, true)))
                .collect::<Option<Fields>>()?,
        ),
        SqlType::Custom(_) => return None,
    })
}

/// The Arrow type of `MAP<key, value>`.
pub fn map_of(key: DataType, value: DataType) -> DataType {
    let entries = Fields::from(vec![
        Field::new("key", key, false),
        Field::new("value", value, true),
    ]);
    DataType::Map(
        Arc::new(Field::new("entries", DataType::Struct(entries), false)),
        false,
    )
}

/// The SQL spelling of an Arrow type, as ksqlDB prints it in DESCRIBE and schemas.
pub fn sql_name(data_type: &DataType) -> String {
    match data_type {
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int32 => "INTEGER".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Decimal128(p, s) => format!("DECIMAL({p}, {s})"),
        DataType::Utf8 => "STRING".into(),
        DataType::Binary => "BYTES".into(),
        DataType::Timestamp(_, _) => "TIMESTAMP".into(),
        DataType::Date32 => "DATE".into(),
        DataType::Time32(_) => "TIME".into(),
        DataType::List(f) => format!("ARRAY<{}>", sql_name(f.data_type())),
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => format!(
                "MAP<{}, {}>",
                sql_name(kv[0].data_type()),
                sql_name(kv[1].data_type())
            ),
            other => format!("{other}"),
        },
        DataType::Struct(fields) => {
            let inner: Vec<String> = fields
                .iter()
                .map(|f| format!("`{}` {}", f.name(), sql_name(f.data_type())))
                .collect();
            format!("STRUCT<{}>", inner.join(", "))
        }
        other => format!("{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_arrow() {
        for t in [
            SqlType::Int,
            SqlType::Bigint,
            SqlType::Decimal(10, 2),
            SqlType::Array(Box::new(SqlType::String)),
            SqlType::Map(Box::new(SqlType::String), Box::new(SqlType::Double)),
        ] {
            assert_eq!(sql_name(&to_arrow(&t).unwrap()), t.to_string());
        }
    }
}
