//! The schema formats, AVRO, JSON_SR and PROTOBUF: records framed with a schema id (and
//! PROTOBUF_NOSR, the same messages without framing, their schema taken from the columns).
//!
//! Both are read into, and written from, the JSON value the JSON format would hold, so
//! columns are matched and coerced in one place ([`super::json`]). A sink registers the
//! schema of what it writes under its subject (`<topic>-value`, `<topic>-key`) and frames
//! every record with that schema's id ([`Writer`]); a reader looks the writer's schema up by
//! the id in the record. [`infer`] gives the columns of a subject's latest schema, for
//! `CREATE STREAM/TABLE` without columns. JSON_SR's schemas are JSON Schema documents with
//! Kafka Connect's type annotations, as ksqlDB writes them.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, TimeUnit};
use serde_json::{Value as Json, json};

use super::registry::{SchemaKind, SchemaRegistry, frame, unframe};
use super::{Format, avro, protobuf};

/// How a sink writes one of these formats: the registered schema's id (and parsed Avro).
#[derive(Debug, Clone)]
pub struct Writer {
    /// The registered schema's id; `None` for PROTOBUF_NOSR, which is not framed.
    id: Option<u32>,
    avro: Option<Arc<apache_avro::Schema>>,
    proto: Option<prost_reflect::MessageDescriptor>,
    /// The Protobuf message's indexes in its schema, written after the id.
    indexes: Vec<i64>,
}

impl Writer {
    /// A PROTOBUF_NOSR writer (and reader) for these columns.
    pub fn protobuf_nosr(
        columns: &[(String, DataType)],
        nullable: protobuf::Nullable,
    ) -> Result<Self, String> {
        Ok(Self {
            id: None,
            avro: None,
            proto: Some(protobuf::compile(
                &protobuf::schema_text_as(columns, nullable),
                None,
            )?),
            indexes: vec![0],
        })
    }
}

/// Registers the schema of `columns` (a record) or of one unwrapped `single` value under
/// `subject`, and returns the writer for it.
pub fn writer_for(
    format: Format,
    subject: &str,
    (columns, unwrapped, nullable): (&[(String, DataType)], bool, protobuf::Nullable),
    registry: &SchemaRegistry,
) -> Result<Writer, String> {
    match format {
        Format::Avro => {
            let schema = match (unwrapped, columns) {
                (true, [(_, t)]) => avro::type_schema(t, "KsqlDataSourceSchema"),
                _ => {
                    avro::check_names(columns)?;
                    avro::record_schema(columns)
                }
            };
            let id = registry
                .register(subject, SchemaKind::Avro, &schema.to_string())
                .map_err(|e| e.to_string())?;
            Ok(Writer {
                id: Some(id),
                avro: Some(registry.avro(id)?),
                proto: None,
                indexes: Vec::new(),
            })
        }
        Format::JsonSr => {
            let schema = match (unwrapped, columns) {
                (true, [(_, t)]) => json_schema(t),
                _ => object_schema(columns.iter().map(|(n, t)| (n.as_str(), t))),
            };
            let id = registry
                .register(subject, SchemaKind::Json, &schema.to_string())
                .map_err(|e| e.to_string())?;
            Ok(Writer {
                id: Some(id),
                avro: None,
                proto: None,
                indexes: Vec::new(),
            })
        }
        Format::Protobuf => {
            let text = protobuf::schema_text_as(columns, nullable);
            let id = registry
                .register(subject, SchemaKind::Protobuf, &text)
                .map_err(|e| e.to_string())?;
            Ok(Writer {
                id: Some(id),
                avro: None,
                proto: Some(registry.protobuf(id)?),
                indexes: vec![0],
            })
        }
        Format::ProtobufNoSr => Writer::protobuf_nosr(columns, nullable),
        other => Err(format!("{other} does not use a schema registry")),
    }
}

/// A writer for the registered schema `id`, or without one the latest schema of `subject`
/// (what a producer with auto-registration off would use), and in it the message
/// `full_name`.
pub fn registered_writer(
    format: Format,
    subject: &str,
    (id, full_name): (Option<u32>, Option<&str>),
    registry: &SchemaRegistry,
) -> Result<Writer, String> {
    let id = match id {
        Some(id) => id,
        None => {
            (registry.latest(subject))
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no schema registered for subject {subject}"))?
                .id
        }
    };
    writer_with(format, id, full_name, registry)
}

/// A writer for the registered schema `id` (a sink's `VALUE_SCHEMA_ID`), and in it the
/// Protobuf message `full_name` (default: the first).
pub fn writer_with(
    format: Format,
    id: u32,
    full_name: Option<&str>,
    registry: &SchemaRegistry,
) -> Result<Writer, String> {
    let proto = match format {
        Format::Protobuf => Some(message_of(id, full_name, registry)?),
        _ => None,
    };
    Ok(Writer {
        id: Some(id),
        avro: match format {
            Format::Avro => Some(registry.avro(id)?),
            _ => None,
        },
        indexes: proto
            .as_ref()
            .map(protobuf::message_path)
            .unwrap_or_default(),
        proto,
    })
}

/// The message `full_name` (default: the first) of the Protobuf schema `id`.
fn message_of(
    id: u32,
    full_name: Option<&str>,
    registry: &SchemaRegistry,
) -> Result<prost_reflect::MessageDescriptor, String> {
    let file = registry.protobuf_file(id)?;
    match full_name {
        Some(name) => protobuf::message_named(&file, name).ok_or_else(|| {
            format!("Schema for message {name} not found in the protobuf schema {id}")
        }),
        None => protobuf::message_at(&file, &[])
            .ok_or_else(|| "the protobuf schema declares no message".into()),
    }
}

/// Encodes a JSON value in the writer's format.
pub fn write(writer: &Writer, value: &Json) -> Result<Vec<u8>, String> {
    let (payload, indexes) = match (&writer.avro, &writer.proto) {
        (Some(schema), _) => {
            let datum = avro::from_json(value, schema)?;
            let bytes = apache_avro::to_avro_datum(schema, datum).map_err(|e| e.to_string())?;
            (bytes, false)
        }
        (_, Some(message)) => (
            protobuf::encode(&protobuf::from_json(value, message)?),
            true,
        ),
        _ => (value.to_string().into_bytes(), false),
    };
    Ok(match writer.id {
        Some(id) if indexes => frame(
            id,
            &[&message_indexes(&writer.indexes)[..], &payload].concat(),
        ),
        Some(id) => frame(id, &payload),
        None => payload,
    })
}

/// A Protobuf frame's message indexes: zig-zag varints, the count first; the first message
/// (`[0]`) is a single zero byte.
fn message_indexes(path: &[i64]) -> Vec<u8> {
    if path.iter().all(|i| *i == 0) && path.len() <= 1 {
        return vec![0];
    }
    let mut out = Vec::new();
    for n in std::iter::once(path.len() as i64).chain(path.iter().copied()) {
        let mut zigzag = ((n << 1) ^ (n >> 63)) as u64;
        loop {
            let byte = (zigzag & 0x7f) as u8;
            zigzag >>= 7;
            if zigzag == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
    }
    out
}

/// Decodes a framed record into JSON.
pub fn read(
    format: Format,
    bytes: &[u8],
    registry: &SchemaRegistry,
    nosr: Option<&Writer>,
) -> Result<Json, String> {
    if format == Format::ProtobufNoSr {
        let message = nosr
            .and_then(|w| w.proto.as_ref())
            .ok_or("PROTOBUF_NOSR needs the columns' schema")?;
        return Ok(protobuf::to_json(&protobuf::decode(message, bytes)?));
    }
    let (id, payload) = unframe(bytes)?;
    match format {
        Format::Protobuf => {
            let (path, payload) = read_message_indexes(payload)?;
            let file = registry.protobuf_file(id)?;
            let message = protobuf::message_at(&file, &path)
                .ok_or_else(|| format!("no message {path:?} in the protobuf schema {id}"))?;
            Ok(protobuf::to_json(&protobuf::decode(&message, payload)?))
        }
        Format::Avro => {
            let schema = registry.avro(id)?;
            let value = apache_avro::from_avro_datum(&schema, &mut &payload[..], None)
                .map_err(|e| e.to_string())?;
            Ok(avro::to_json(&value, &schema))
        }
        _ => serde_json::from_slice(payload).map_err(|e| e.to_string()),
    }
}

/// Reads the message indexes after a Protobuf frame's header (a zig-zag varint count, then
/// that many indexes; a lone zero byte means the first message).
fn read_message_indexes(payload: &[u8]) -> Result<(Vec<i64>, &[u8]), String> {
    let mut rest = payload;
    let mut varint = || -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, tail) = rest.split_first().ok_or("truncated protobuf frame")?;
            rest = tail;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("malformed protobuf frame".into())
    };
    let unzigzag = |n: u64| (n >> 1) as i64 ^ -((n & 1) as i64);
    let count = unzigzag(varint()?);
    let path = (0..count)
        .map(|_| varint().map(unzigzag))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((path, rest))
}

/// The columns of the latest schema of `subject` (or of schema `id`, and in it the message
/// `full_name`), if there is one.
pub fn infer(
    subject: &str,
    (id, full_name): (Option<u32>, Option<&str>),
    registry: &SchemaRegistry,
) -> Result<Option<Vec<(String, DataType)>>, String> {
    let found = match id {
        Some(id) => registry.by_id(id),
        None => registry.latest(subject),
    };
    let Some(latest) = found.map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    Ok(Some(match latest.kind {
        SchemaKind::Avro => avro::columns_of(registry.avro(latest.id)?.as_ref())?,
        SchemaKind::Protobuf => protobuf::columns_of(&message_of(latest.id, full_name, registry)?)?,
        SchemaKind::Json => {
            let schema: Json = serde_json::from_str(&latest.text).map_err(|e| e.to_string())?;
            match schema["properties"].as_object() {
                Some(properties) => properties
                    .iter()
                    .map(|(n, s)| Ok((n.to_ascii_uppercase(), json_type_of(s)?)))
                    .collect::<Result<_, String>>()?,
                None => vec![("ROWVAL".into(), json_type_of(&schema)?)],
            }
        }
    }))
}

fn object_schema<'a>(fields: impl Iterator<Item = (&'a str, &'a DataType)>) -> Json {
    let properties: serde_json::Map<String, Json> = fields
        .enumerate()
        .map(|(i, (name, t))| {
            let schema = json!({
                "connect.index": i,
                "oneOf": [{"type": "null"}, json_schema(t)],
            });
            (name.to_string(), schema)
        })
        .collect();
    json!({"type": "object", "properties": properties})
}

/// The JSON Schema of one value of `t`, with Kafka Connect's annotations.
fn json_schema(t: &DataType) -> Json {
    match t {
        DataType::Boolean => json!({"type": "boolean"}),
        DataType::Int32 => json!({"type": "integer", "connect.type": "int32"}),
        DataType::Int64 => json!({"type": "integer", "connect.type": "int64"}),
        DataType::Float64 => json!({"type": "number", "connect.type": "float64"}),
        DataType::Decimal128(p, s) => json!({
            "type": "number",
            "title": "org.apache.kafka.connect.data.Decimal",
            "connect.type": "bytes",
            "connect.parameters": {"connect.decimal.precision": p.to_string(), "scale": s.to_string()},
        }),
        DataType::Timestamp(..) => json!({
            "type": "integer", "title": "org.apache.kafka.connect.data.Timestamp", "connect.type": "int64"
        }),
        DataType::Date32 => json!({
            "type": "integer", "title": "org.apache.kafka.connect.data.Date", "connect.type": "int32"
        }),
        DataType::Time32(_) => json!({
            "type": "integer", "title": "org.apache.kafka.connect.data.Time", "connect.type": "int32"
        }),
        DataType::Binary => json!({"type": "string", "connect.type": "bytes"}),
        DataType::List(item) => json!({"type": "array", "items": {
            "oneOf": [{"type": "null"}, json_schema(item.data_type())]
        }}),
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) => json!({
                "type": "object",
                "connect.type": "map",
                "additionalProperties": {"oneOf": [{"type": "null"}, json_schema(kv[1].data_type())]},
            }),
            _ => json!({"type": "string"}),
        },
        DataType::Struct(fields) => {
            object_schema(fields.iter().map(|f| (f.name().as_str(), f.data_type())))
        }
        _ => json!({"type": "string"}),
    }
}

/// The SQL type a JSON Schema describes.
fn json_type_of(schema: &Json) -> Result<DataType, String> {
    if let Some(options) = schema["oneOf"].as_array().or(schema["anyOf"].as_array()) {
        return match options.iter().find(|o| o["type"] != "null") {
            Some(inner) => json_type_of(inner),
            None => Err("a JSON schema of only null".into()),
        };
    }
    let title = schema["title"].as_str().unwrap_or_default();
    Ok(match (schema["type"].as_str().unwrap_or_default(), title) {
        (_, "org.apache.kafka.connect.data.Timestamp") => {
            DataType::Timestamp(TimeUnit::Millisecond, None)
        }
        (_, "org.apache.kafka.connect.data.Date") => DataType::Date32,
        (_, "org.apache.kafka.connect.data.Time") => DataType::Time32(TimeUnit::Millisecond),
        (_, "org.apache.kafka.connect.data.Decimal") => {
            let p = &schema["connect.parameters"];
            let num = |v: &Json| v.as_str().and_then(|s| s.parse().ok()).or(v.as_u64());
            DataType::Decimal128(
                num(&p["connect.decimal.precision"]).unwrap_or(38) as u8,
                num(&p["scale"]).unwrap_or(0) as i8,
            )
        }
        ("boolean", _) => DataType::Boolean,
        ("integer", _) if schema["connect.type"] == "int32" => DataType::Int32,
        ("integer", _) => DataType::Int64,
        ("number", _) => DataType::Float64,
        ("string", _) if schema["connect.type"] == "bytes" => DataType::Binary,
        ("string", _) => DataType::Utf8,
        ("array", _) => DataType::List(Arc::new(Field::new(
            "item",
            json_type_of(&schema["items"])?,
            true,
        ))),
        ("object", _) if schema.get("properties").is_some() => DataType::Struct(
            schema["properties"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(n, s)| Ok(Field::new(n.to_ascii_uppercase(), json_type_of(s)?, true)))
                .collect::<Result<Fields, String>>()?,
        ),
        ("object", _) => crate::types::map_of(
            DataType::Utf8,
            json_type_of(&schema["additionalProperties"])?,
        ),
        (other, _) => return Err(format!("JSON schema type '{other}' is not supported")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinks_register_and_readers_decode() {
        let registry = SchemaRegistry::default();
        let columns = vec![
            ("A".to_string(), DataType::Int32),
            ("B".to_string(), DataType::Utf8),
        ];
        for format in [Format::Avro, Format::JsonSr, Format::Protobuf] {
            let subject = format!("{format}-value");
            let shape = (&columns[..], false, protobuf::Nullable::Default);
            let writer = writer_for(format, &subject, shape, &registry).unwrap();
            let bytes = write(&writer, &json!({"A": 1, "B": "x"})).unwrap();
            assert_eq!(
                read(format, &bytes, &registry, None).unwrap(),
                json!({"A": 1, "B": "x"})
            );
            assert_eq!(
                infer(&subject, (None, None), &registry).unwrap(),
                Some(columns.clone())
            );
        }
    }

    #[test]
    fn protobuf_frames_name_the_message_they_hold() {
        let registry = SchemaRegistry::default();
        let text = "syntax = \"proto3\"; message A { int32 X = 1; } message B { string Y = 1; message C { int64 Z = 1; } }";
        let id = registry
            .register("t-value", SchemaKind::Protobuf, text)
            .unwrap();
        for (name, value, indexes) in [
            ("B", json!({"Y": "y"}), vec![0u8, 0, 0, 0, id as u8, 2, 2]),
            ("B.C", json!({"Z": 7}), vec![0, 0, 0, 0, id as u8, 4, 2, 0]),
        ] {
            let writer = writer_with(Format::Protobuf, id, Some(name), &registry).unwrap();
            let bytes = write(&writer, &value).unwrap();
            assert_eq!(bytes[..indexes.len()], indexes[..], "{name}");
            assert_eq!(
                read(Format::Protobuf, &bytes, &registry, None).unwrap(),
                value
            );
        }
        let columns = infer("t-value", (Some(id), Some("B")), &registry).unwrap();
        assert_eq!(columns, Some(vec![("Y".to_string(), DataType::Utf8)]));
    }

    #[test]
    fn protobuf_references_are_imports() {
        use crate::format::registry::{Reference, Schema};
        let registry = SchemaRegistry::default();
        let mut main = Schema::new(
            SchemaKind::Protobuf,
            "syntax = \"proto3\"; import \"event.proto\"; message Logistics { Event event = 1; }",
        );
        main.references.push(Reference {
            name: "event.proto".into(),
            subject: "event.proto".into(),
            version: 1,
        });
        let id = registry.register_schema("input-value", &main).unwrap();
        let event = "syntax = \"proto3\"; message Event { int64 timestamp = 1; }";
        let event = Schema::new(SchemaKind::Protobuf, event);
        registry.register_schema("event.proto", &event).unwrap();
        let columns = infer("input-value", (Some(id), None), &registry)
            .unwrap()
            .unwrap();
        assert_eq!(columns.len(), 1);
        assert_eq!(columns[0].0, "EVENT");
    }
}
