//! `CREATE STREAM/TABLE` → a catalog [`Source`], with ksqlDB's rules for keys and formats.
//!
//! Resolves the `WITH` clause (`KAFKA_TOPIC`, `KEY_FORMAT`, `VALUE_FORMAT`/`FORMAT`,
//! `TIMESTAMP`, `PARTITIONS`, `WINDOW_TYPE`/`WINDOW_SIZE`), checks the key columns (streams use `KEY`, tables need a
//! `PRIMARY KEY`) and that the formats can carry the columns. Creating the topic is the
//! engine's job; this file only says which partition count was asked for.

use arrow::datatypes::DataType;

use crate::catalog::{Column, ColumnKind, LogicalSchema, Source, WindowInfo};
use crate::format::Format;
use crate::sql::ast::{ColumnConstraint, CreateSource, SourceKind, WithProperties, normalize};

use super::error::PlanError;

type Result<T> = std::result::Result<T, PlanError>;

/// A planned `CREATE STREAM/TABLE`: the source, and the partitions asked for its topic.
#[derive(Debug)]
pub struct PlannedSource {
    /// The catalog entry.
    pub source: Source,
    /// `PARTITIONS`, when given: create the topic with this many partitions if it is missing.
    pub partitions: Option<i32>,
}

/// ksqlDB's rules on leaving columns to the schema registry: only formats with a registry
/// can infer them, and a `*_SCHEMA_ID` replaces the declared columns it covers.
fn check_inference(stmt: &CreateSource, key: Format, value: Format) -> Result<()> {
    let declared = |key_part: bool| {
        stmt.columns.iter().any(|c| {
            let is_key = matches!(
                c.constraint,
                Some(ColumnConstraint::Key | ColumnConstraint::PrimaryKey)
            );
            is_key == key_part
        })
    };
    for (part, format, is_key) in [("KEY", key, true), ("VALUE", value, false)] {
        if stmt.properties.get(&format!("{part}_SCHEMA_ID")).is_none() {
            continue;
        }
        if !format.uses_registry() {
            return Err(PlanError::Invalid(format!(
                "{part}_FORMAT should support schema inference when {part}_SCHEMA_ID is provided. Current format is {format}."
            )));
        }
        if declared(is_key) {
            return Err(PlanError::Invalid(format!(
                "Table elements and {part}_SCHEMA_ID cannot both exist for create statement."
            )));
        }
    }
    if stmt.columns.is_empty() && !value.uses_registry() {
        return Err(PlanError::Invalid("No columns supplied.".into()));
    }
    Ok(())
}

/// Plans `CREATE [SOURCE] STREAM/TABLE name (columns) WITH (...)`.
pub fn plan_create_source(stmt: &CreateSource, defaults: DefaultFormats) -> Result<PlannedSource> {
    let name = normalize(&stmt.name);
    let props = &stmt.properties;
    let topic = props.get_str("KAFKA_TOPIC").ok_or_else(|| {
        PlanError::Invalid(
            "Missing required property \"KAFKA_TOPIC\" which has no default value.".into(),
        )
    })?;
    let (key_format, value_format) = formats(props, None, defaults)?;
    check_inference(stmt, key_format, value_format)?;
    let schema = LogicalSchema::new(columns(stmt)?);
    // Schema formats may take the key from the registry: the engine checks after inferring.
    if !key_format.uses_registry() {
        check_keys(stmt.kind, &schema)?;
    }
    let timestamp_column = props.get_str("TIMESTAMP").map(|t| t.to_ascii_uppercase());
    if let Some(ts) = &timestamp_column
        && schema.column(ts).is_none()
    {
        return Err(PlanError::Invalid(format!(
            "The TIMESTAMP column set in the WITH clause does not exist in the schema: '{ts}'"
        )));
    }
    let wrap_single_value = wrap_single_value(props, value_format, &schema)?;
    let window = window(props)?;
    Ok(PlannedSource {
        source: Source {
            name,
            kind: stmt.kind,
            topic,
            key_format,
            value_format,
            schema,
            timestamp_column,
            timestamp_format: props.get_str("TIMESTAMP_FORMAT"),
            window,
            written_by: None,
            is_source: stmt.is_source,
            wrap_single_value,
            schemas: schema_choice(props, (key_format, value_format))?,
        },
        partitions: partitions(props)?,
    })
}

/// `WINDOW_TYPE` and `WINDOW_SIZE`: the topic holds windowed keys (the output of a windowed
/// aggregation elsewhere).
fn window(props: &WithProperties) -> Result<Option<WindowInfo>> {
    let Some(kind) = props.get_str("WINDOW_TYPE") else {
        return Ok(None);
    };
    let size = props.get_str("WINDOW_SIZE");
    match kind.to_ascii_uppercase().as_str() {
        "SESSION" if size.is_some() => Err(PlanError::Invalid(
            "'WINDOW_SIZE' should not be set for SESSION windows.".into(),
        )),
        "SESSION" => Ok(Some(WindowInfo::Session)),
        "TUMBLING" | "HOPPING" => {
            let size = size.ok_or_else(|| {
                PlanError::Invalid(format!(
                    "{} windows require 'WINDOW_SIZE' to be provided in the WITH clause. For example: 'WINDOW_SIZE'='10 SECONDS'",
                    kind.to_ascii_uppercase()
                ))
            })?;
            Ok(Some(WindowInfo::Time {
                size_ms: duration_ms(&size)?,
            }))
        }
        other => Err(PlanError::Invalid(format!(
            "Invalid value for 'WINDOW_TYPE': {other}. Valid values are TUMBLING, HOPPING and SESSION."
        ))),
    }
}

/// `'10 SECONDS'`, `'1 minute'`: a duration in milliseconds.
fn duration_ms(text: &str) -> Result<i64> {
    let invalid = || {
        PlanError::Invalid(format!(
            "Invalid duration: '{text}'. Use e.g. '10 SECONDS'."
        ))
    };
    let mut words = text.split_whitespace();
    let amount: i64 = words
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(invalid)?;
    let unit = words.next().ok_or_else(invalid)?.to_ascii_uppercase();
    let unit_ms = match unit.trim_end_matches('S') {
        "MILLISECOND" => 1,
        "SECOND" => 1_000,
        "MINUTE" => 60_000,
        "HOUR" => 3_600_000,
        "DAY" => 86_400_000,
        _ => return Err(invalid()),
    };
    Ok(amount * unit_ms)
}

fn columns(stmt: &CreateSource) -> Result<Vec<Column>> {
    let mut seen = std::collections::HashSet::new();
    stmt.columns
        .iter()
        .map(|c| {
            let name = normalize(&c.name);
            if !seen.insert(name.clone()) {
                return Err(PlanError::Invalid(format!("Duplicate column names: {name}")));
            }
            let data_type = crate::types::to_arrow(&c.data_type)
                .ok_or_else(|| PlanError::Unsupported(format!("type {}", c.data_type)))?;
            let kind = match &c.constraint {
                None => ColumnKind::Value,
                Some(ColumnConstraint::Key) if stmt.kind == SourceKind::Table => {
                    return Err(PlanError::Invalid(format!(
                        "{}Column `{name}` is a 'KEY' column: please use 'PRIMARY KEY' for tables.\nTables have PRIMARY KEYs, which are unique and NON NULL.\nStreams have KEYs, which have no uniqueness or NULL constraints.",
                        super::text::position(&c.name)
                    )));
                }
                Some(ColumnConstraint::PrimaryKey) if stmt.kind == SourceKind::Stream => {
                    return Err(PlanError::Invalid(format!(
                        "Column `{name}` is a 'PRIMARY KEY' column: please use 'KEY' for streams.\nTables have PRIMARY KEYs, which are unique and NON NULL.\nStreams have KEYs, which have no uniqueness or NULL constraints."
                    )));
                }
                Some(ColumnConstraint::Key | ColumnConstraint::PrimaryKey) => ColumnKind::Key,
                Some(ColumnConstraint::Headers) => {
                    header_kind(&data_type, crate::catalog::schema::headers_type(), "HEADERS")?;
                    ColumnKind::Header(None)
                }
                Some(ColumnConstraint::Header(key)) => {
                    header_kind(&data_type, DataType::Binary, &format!("HEADER('{key}')"))?;
                    ColumnKind::Header(Some(key.clone()))
                }
            };
            Ok(Column { name, data_type, kind })
        })
        .collect()
}

/// A header column must have the type its kind gives it.
fn header_kind(declared: &DataType, wanted: DataType, what: &str) -> Result<()> {
    let same = match (declared, &wanted) {
        // Field names and nullability aside (`key` is `KEY` once normalized).
        (DataType::List(a), DataType::List(b)) => {
            crate::types::sql_name(a.data_type()) == crate::types::sql_name(b.data_type())
        }
        (a, b) => a == b,
    };
    if same {
        return Ok(());
    }
    Err(PlanError::Invalid(format!(
        "Invalid type for {what} column: expected {}, got {}",
        crate::types::sql_name(&wanted),
        crate::types::sql_name(declared)
    )))
}

/// The registered schemas a `WITH` clause names, checked against the formats: a full name
/// is for AVRO and PROTOBUF, and not blank.
pub fn schema_choice(
    props: &WithProperties,
    (key_format, value_format): (Format, Format),
) -> Result<crate::catalog::SchemaChoice> {
    let id = |name: &str| -> Result<Option<u32>> {
        props
            .get_str(name)
            .map(|v| {
                v.trim().parse().map_err(|_| {
                    PlanError::Invalid(format!("Invalid value for {name}: {v} (a schema id)"))
                })
            })
            .transpose()
    };
    let full_name = |names: &[&str], format: Format| -> Result<Option<String>> {
        let Some(name) = names.iter().find_map(|n| props.get_str(n)) else {
            return Ok(None);
        };
        if !matches!(
            format,
            Format::Avro | Format::Protobuf | Format::ProtobufNoSr
        ) {
            return Err(PlanError::Invalid(format!(
                "{format} does not support the following configs: [fullSchemaName]"
            )));
        }
        if name.trim().is_empty() {
            return Err(PlanError::Invalid(
                "fullSchemaName cannot be empty. Format configuration: {fullSchemaName=}".into(),
            ));
        }
        Ok(Some(name.trim().to_string()))
    };
    let nullable = |name: &str| -> Result<crate::format::protobuf::Nullable> {
        props
            .get_str(name)
            .map(|v| crate::format::protobuf::Nullable::from_name(&v).map_err(PlanError::Invalid))
            .transpose()
            .map(Option::unwrap_or_default)
    };
    Ok(crate::catalog::SchemaChoice {
        key_nullable: nullable("KEY_PROTOBUF_NULLABLE_REPRESENTATION")?,
        value_nullable: nullable("VALUE_PROTOBUF_NULLABLE_REPRESENTATION")?,
        key_id: id("KEY_SCHEMA_ID")?,
        value_id: id("VALUE_SCHEMA_ID")?,
        key_full_name: full_name(&["KEY_SCHEMA_FULL_NAME"], key_format)?,
        value_full_name: full_name(
            &["VALUE_SCHEMA_FULL_NAME", "VALUE_AVRO_SCHEMA_FULL_NAME"],
            value_format,
        )?,
    })
}

/// `WRAP_SINGLE_VALUE` of a `WITH` clause (default `true`), checked against the value
/// format and columns as ksqlDB does.
pub fn wrap_single_value(
    props: &WithProperties,
    value_format: Format,
    schema: &LogicalSchema,
) -> Result<bool> {
    let Some(text) = props.get_str("WRAP_SINGLE_VALUE") else {
        return Ok(true);
    };
    let wrap = !text.eq_ignore_ascii_case("false");
    if wrap && matches!(value_format, Format::Delimited { .. } | Format::Kafka) {
        return Err(PlanError::Invalid(format!(
            "Format '{value_format}' does not support 'WRAP_SINGLE_VALUE' set to 'true'."
        )));
    }
    if !wrap && value_format.is_protobuf() {
        return Err(PlanError::Invalid(format!(
            "Format '{value_format}' does not support 'WRAP_SINGLE_VALUE' set to 'false'."
        )));
    }
    if schema.values().count() > 1 {
        return Err(PlanError::Invalid(
            "'WRAP_SINGLE_VALUE' is only valid for single-field value schemas".into(),
        ));
    }
    Ok(wrap)
}

/// A table needs a primary key.
pub fn check_keys(kind: SourceKind, schema: &LogicalSchema) -> Result<()> {
    if kind == SourceKind::Table && schema.keys().next().is_none() {
        return Err(PlanError::Invalid(
            "Tables require a PRIMARY KEY. Please define the PRIMARY KEY.".into(),
        ));
    }
    Ok(())
}

/// The key and value formats from `WITH`, falling back to `inherited` (a query's source)
/// and then to ksqlDB's defaults (KAFKA keys; values must be given).
pub fn formats(
    props: &WithProperties,
    inherited: Option<(Format, Format)>,
    defaults: DefaultFormats,
) -> Result<(Format, Format)> {
    let format = props.get_str("FORMAT");
    for part in ["KEY_FORMAT", "VALUE_FORMAT"] {
        if format.is_some() && props.get(part).is_some() {
            return Err(PlanError::Invalid(format!(
                "Cannot supply both '{part}' and 'FORMAT' properties, as 'FORMAT' sets both key and value formats. Either use just 'FORMAT', or use 'KEY_FORMAT' and 'VALUE_FORMAT'."
            )));
        }
    }
    let pick = |name: &str, inherited: Option<Format>| -> Result<Option<Format>> {
        match props.get_str(name).or_else(|| format.clone()) {
            Some(f) => Ok(Some(Format::from_name(&f)?)),
            None => Ok(inherited),
        }
    };
    let key = pick("KEY_FORMAT", inherited.map(|i| i.0))?
        .or(defaults.key)
        .unwrap_or(Format::Kafka);
    let value = pick("VALUE_FORMAT", inherited.map(|i| i.1))?
        .or(defaults.value)
        .ok_or_else(|| {
            PlanError::Invalid(
                "Statement is missing the 'VALUE_FORMAT' property from the WITH clause. Either provide one or set a default via the 'ksql.persistence.default.format.value' config.".into(),
            )
        })?;
    let key = with_delimiter(props, "KEY_DELIMITER", key)?;
    let value = with_delimiter(props, "VALUE_DELIMITER", value)?;
    Ok((key, value))
}

/// Formats for statements that name none: `ksql.persistence.default.format.key` (else KAFKA)
/// and `ksql.persistence.default.format.value` (else the statement must name one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DefaultFormats {
    /// The key format when none is given or inherited.
    pub key: Option<Format>,
    /// The value format when none is given or inherited.
    pub value: Option<Format>,
}

/// A DELIMITED format with the delimiter `property` names, if set.
fn with_delimiter(props: &WithProperties, property: &str, format: Format) -> Result<Format> {
    match (format, props.get_str(property)) {
        (Format::Delimited { .. }, Some(name)) => Ok(Format::Delimited {
            delimiter: crate::format::delimited::delimiter(&name).map_err(PlanError::Invalid)?,
        }),
        (_, Some(_)) => Err(PlanError::Invalid(format!(
            "{property} is only supported with DELIMITED"
        ))),
        (format, None) => Ok(format),
    }
}

/// `PARTITIONS`, if given.
pub fn partitions(props: &WithProperties) -> Result<Option<i32>> {
    props
        .get_str("PARTITIONS")
        .map(|p| {
            p.parse()
                .map_err(|_| PlanError::Invalid(format!("Invalid number of partitions: {p}")))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{Statement, parse};

    fn plan(sql: &str) -> Result<PlannedSource> {
        match parse(sql).unwrap().remove(0) {
            Statement::CreateSource(c) => plan_create_source(&c, DefaultFormats::default()),
            _ => panic!("not a CREATE"),
        }
    }

    #[test]
    fn stream_with_key() {
        let p = plan("CREATE STREAM a (k VARCHAR KEY, v DOUBLE) WITH (KAFKA_TOPIC='t', VALUE_FORMAT='json', PARTITIONS=2);").unwrap();
        assert_eq!(p.source.name, "A");
        assert_eq!(p.source.schema.to_sql(), "`K` STRING KEY, `V` DOUBLE");
        assert_eq!(
            (p.source.key_format, p.source.value_format),
            (Format::Kafka, Format::Json)
        );
        assert_eq!(p.partitions, Some(2));
    }

    #[test]
    fn table_needs_primary_key() {
        let e = plan("CREATE TABLE a (v INT) WITH (KAFKA_TOPIC='t', VALUE_FORMAT='JSON');")
            .unwrap_err();
        assert!(e.to_string().contains("Tables require a PRIMARY KEY"));
    }
}
