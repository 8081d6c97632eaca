//! Whether a source's formats can carry its columns, with ksqlDB's messages.
//!
//! KAFKA holds one primitive column (not BOOLEAN or DECIMAL, which Kafka's serdes lack);
//! DELIMITED only primitives; NONE no column; keys may not
//! contain maps (their serialization is not stable). Checked when a source is declared, before
//! anything touches Kafka, as ksqlDB does.

use arrow::datatypes::DataType;

use super::{Format, FormatError};
use crate::catalog::{Column, ColumnKind, Source};
use crate::types::sql_name;

/// Checks both formats of `source`.
pub fn validate(source: &Source) -> Result<(), FormatError> {
    let keys: Vec<&Column> = source.schema.keys().collect();
    if let Some(map_key) = keys.iter().find(|c| contains_map(&c.data_type)) {
        return Err(FormatError::Unsupported(format!(
            "Map keys, including types that contain maps, are not supported as they may lead to unexpected behavior due to inconsistent serialization. Key column name: `{}`. Column type: {}. See https://github.com/confluentinc/ksql/issues/6621 for more.",
            map_key.name,
            sql_name(&map_key.data_type)
        )));
    }
    for (format, columns) in [
        (source.key_format, keys.clone()),
        (
            source.value_format,
            source.schema.values().collect::<Vec<_>>(),
        ),
    ] {
        if let Some(message) = map_keys_message(format)
            && columns.iter().any(|c| non_string_map_key(&c.data_type))
        {
            return Err(FormatError::Unsupported(message.into()));
        }
    }
    check(source.key_format, &keys, "Key")?;
    check(
        source.value_format,
        &source.schema.values().collect::<Vec<_>>(),
        "Value",
    )
}

fn check(format: Format, columns: &[&Column], what: &str) -> Result<(), FormatError> {
    let described: Vec<String> = columns
        .iter()
        .map(|c| {
            let key = if c.kind == ColumnKind::Key {
                " KEY"
            } else {
                ""
            };
            format!("`{}` {}{key}", c.name, sql_name(&c.data_type))
        })
        .collect();
    let listed = format!("[{}]", described.join(", "));
    let Some(reason) = reason(format, columns, &listed) else {
        return Ok(());
    };
    Err(FormatError::Unsupported(format!(
        "{what} format does not support schema.\nformat: {format}\nschema: Persistence{{columns={listed}, features=[]}}\nreason: {reason}"
    )))
}

/// Why `format` cannot carry `columns` (`listed` as ksqlDB prints them), if it cannot.
fn reason(format: Format, columns: &[&Column], listed: &str) -> Option<String> {
    match format {
        Format::None if !columns.is_empty() => Some(format!(
            "The 'NONE' format can only be used when no columns are defined. Got: {listed}"
        )),
        Format::Kafka if columns.len() > 1 => Some(format!(
            "The 'KAFKA' format only supports a single field. Got: {listed}"
        )),
        Format::Kafka | Format::Delimited { .. } => {
            let supported = |t: &DataType| {
                primitive(t)
                    && !(format == Format::Kafka
                        && matches!(t, DataType::Boolean | DataType::Decimal128(..)))
            };
            columns.iter().find(|c| !supported(&c.data_type)).map(|c| {
                format!(
                    "The '{format}' format does not support type '{}', column: `{}`",
                    type_family(&c.data_type),
                    c.name
                )
            })
        }
        _ => None,
    }
}

fn primitive(t: &DataType) -> bool {
    !matches!(
        t,
        DataType::List(_) | DataType::Map(..) | DataType::Struct(_)
    )
}

fn type_family(t: &DataType) -> &'static str {
    match t {
        DataType::List(_) => "ARRAY",
        DataType::Map(..) => "MAP",
        DataType::Boolean => "BOOLEAN",
        DataType::Decimal128(..) => "DECIMAL",
        _ => "STRUCT",
    }
}

fn contains_map(t: &DataType) -> bool {
    match t {
        DataType::Map(..) => true,
        DataType::List(f) => contains_map(f.data_type()),
        DataType::Struct(fields) => fields.iter().any(|f| contains_map(f.data_type())),
        _ => false,
    }
}

/// The formats whose maps are objects (or Avro maps) keyed by strings, and their messages.
fn map_keys_message(format: Format) -> Option<&'static str> {
    match format {
        Format::Json | Format::JsonSr => Some("JSON only supports MAP types with STRING keys"),
        Format::Avro => Some("Avro only supports MAPs with STRING keys"),
        Format::Protobuf | Format::ProtobufNoSr => {
            Some("PROTOBUF format only supports MAP types with STRING keys")
        }
        _ => None,
    }
}

fn non_string_map_key(t: &DataType) -> bool {
    match t {
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) => {
                kv[0].data_type() != &DataType::Utf8 || non_string_map_key(kv[1].data_type())
            }
            _ => false,
        },
        DataType::List(f) => non_string_map_key(f.data_type()),
        DataType::Struct(fields) => fields.iter().any(|f| non_string_map_key(f.data_type())),
        _ => false,
    }
}
