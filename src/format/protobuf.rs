//! The PROTOBUF formats: ksqlDB's `.proto` schemas for columns, and messages ↔ JSON values.
//!
//! Schemas are `.proto` text, compiled at run time (protox) into descriptors, and messages
//! are handled dynamically (prost-reflect), so any registered schema can be read without
//! generated code. As with AVRO ([`super::avro`]), a message is read into the JSON value the
//! JSON format would hold and written from one. Proto3 has no nulls: a null is written as
//! the field's default (0, "", false, an empty list or map), as ksqlDB does; enums read as
//! their names; ksqlDB's logical types map to `confluent.type.Decimal`,
//! `google.protobuf.Timestamp`, `google.type.Date` and `google.type.TimeOfDay`. The
//! wrapper-type representation of nulls, schema references and nested lists are not
//! handled.

use std::collections::HashMap;

use arrow::datatypes::{DataType, Field, Fields, TimeUnit};
use prost::Message;
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor,
    ReflectMessage, Value,
};
use serde_json::{Value as Json, json};

/// `.proto` files Eddy's and ksqlDB's schemas import, besides Google's well-known types.
const LIBRARY: &[(&str, &str)] = &[
    (
        "confluent/type/decimal.proto",
        // Public: schemas that import only this file use `confluent.field_meta` options too.
        "syntax = \"proto3\"; package confluent.type; import public \"confluent/meta.proto\"; \
         message Decimal { bytes value = 1; uint32 precision = 2; int32 scale = 3; }",
    ),
    (
        "confluent/meta.proto",
        "syntax = \"proto3\"; package confluent; import \"google/protobuf/descriptor.proto\"; \
         message Meta { string doc = 1; map<string, string> params = 2; repeated string tags = 3; } \
         extend google.protobuf.FileOptions { Meta file_meta = 1088; } \
         extend google.protobuf.MessageOptions { Meta message_meta = 1088; } \
         extend google.protobuf.FieldOptions { Meta field_meta = 1088; } \
         extend google.protobuf.EnumOptions { Meta enum_meta = 1088; } \
         extend google.protobuf.EnumValueOptions { Meta enum_value_meta = 1088; }",
    ),
    (
        "google/type/date.proto",
        "syntax = \"proto3\"; package google.type; \
         message Date { int32 year = 1; int32 month = 2; int32 day = 3; }",
    ),
    (
        "google/type/timeofday.proto",
        "syntax = \"proto3\"; package google.type; \
         message TimeOfDay { int32 hours = 1; int32 minutes = 2; int32 seconds = 3; int32 nanos = 4; }",
    ),
];

struct Library {
    files: HashMap<String, String>,
}

impl protox::file::FileResolver for Library {
    fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
        match self.files.get(name) {
            Some(source) => protox::file::File::from_source(name, source),
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}

/// Compiles a schema and returns its first message (or the one named `full_name`). A
/// schema is `.proto` text, or a base64 `FileDescriptorProto` (what Confluent's serializers
/// for Python, Go and C# register).
pub fn compile(text: &str, full_name: Option<&str>) -> Result<MessageDescriptor, String> {
    let (pool, file) = pool_of(text)?;
    if let Some(name) = full_name {
        return pool
            .get_message_by_name(name)
            .ok_or_else(|| format!("no message {name} in the protobuf schema"));
    }
    pool.get_file_by_name(&file)
        .and_then(|f| f.messages().next())
        .ok_or_else(|| "the protobuf schema declares no message".into())
}

/// Compiles a schema (as [`compile`]) and returns its file.
pub fn compile_file(text: &str) -> Result<prost_reflect::FileDescriptor, String> {
    compile_with(text, &[])
}

/// Compiles a schema whose imports include `references` (name, `.proto` text: the schemas
/// its registry references give) and returns its file.
pub fn compile_with(
    text: &str,
    references: &[(String, String)],
) -> Result<prost_reflect::FileDescriptor, String> {
    let (pool, file) = pool_with(text, references)?;
    pool.get_file_by_name(&file)
        .ok_or_else(|| "the protobuf schema has no file".into())
}

/// The message `name` of `file`: a full name, or the simple name of one of its messages.
pub fn message_named(
    file: &prost_reflect::FileDescriptor,
    name: &str,
) -> Option<MessageDescriptor> {
    let pool = file.parent_pool();
    let package = file.package_name();
    pool.get_message_by_name(name)
        .or_else(|| pool.get_message_by_name(&format!("{package}.{name}")))
        .or_else(|| {
            pool.all_messages()
                .find(|m| m.parent_file() == *file && m.name() == name)
        })
}

/// The message at `path` in `file` (a frame's message indexes: the top-level message, then
/// nested ones); an empty path is the first message.
pub fn message_at(file: &prost_reflect::FileDescriptor, path: &[i64]) -> Option<MessageDescriptor> {
    let (first, rest) = path.split_first().unwrap_or((&0, &[]));
    let mut message = file.messages().nth(usize::try_from(*first).ok()?)?;
    for index in rest {
        let child = message
            .child_messages()
            .nth(usize::try_from(*index).ok()?)?;
        message = child;
    }
    Some(message)
}

/// The message indexes of `message` in its file (the inverse of [`message_at`]).
pub fn message_path(message: &MessageDescriptor) -> Vec<i64> {
    let mut path = Vec::new();
    let mut current = message.clone();
    loop {
        let siblings: Vec<MessageDescriptor> = match current.parent_message() {
            Some(parent) => parent.child_messages().collect(),
            None => current.parent_file().messages().collect(),
        };
        path.push(siblings.iter().position(|m| *m == current).unwrap_or(0) as i64);
        match current.parent_message() {
            Some(parent) => current = parent,
            None => break,
        }
    }
    path.reverse();
    path
}

/// The schema as a base64 `FileDescriptorProto` (the registry's `format=serialized`).
pub fn serialized(text: &str) -> Result<String, String> {
    use base64::Engine as _;
    let (pool, file) = pool_of(text)?;
    let file = pool
        .get_file_by_name(&file)
        .ok_or("the protobuf schema has no file")?;
    Ok(base64::engine::general_purpose::STANDARD
        .encode(file.file_descriptor_proto().encode_to_vec()))
}

/// The descriptors of a schema and what it imports, and the schema's file name.
fn pool_of(text: &str) -> Result<(DescriptorPool, String), String> {
    pool_with(text, &[])
}

fn pool_with(
    text: &str,
    references: &[(String, String)],
) -> Result<(DescriptorPool, String), String> {
    let mut files: HashMap<String, String> = LIBRARY
        .iter()
        .map(|(n, s)| (n.to_string(), s.to_string()))
        .chain(references.iter().cloned())
        .collect();
    let descriptor = descriptor_of(text);
    if descriptor.is_none() {
        files.insert("schema.proto".into(), text.to_string());
    }
    let mut resolver = protox::file::ChainFileResolver::new();
    resolver.add(Library { files });
    resolver.add(protox::file::GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    let invalid = |e: &dyn std::fmt::Display| format!("invalid protobuf schema: {e}");
    let Some(file) = descriptor else {
        compiler
            .open_file("schema.proto")
            .map_err(|e| invalid(&e))?;
        return Ok((compiler.descriptor_pool(), "schema.proto".into()));
    };
    for dependency in &file.dependency {
        compiler.open_file(dependency).map_err(|e| invalid(&e))?;
    }
    let mut pool = compiler.descriptor_pool();
    let name = file.name().to_string();
    pool.add_file_descriptor_proto(file)
        .map_err(|e| invalid(&e))?;
    Ok((pool, name))
}

/// The `FileDescriptorProto` a base64 schema holds, if it is one.
fn descriptor_of(text: &str) -> Option<prost_reflect::prost_types::FileDescriptorProto> {
    use base64::Engine as _;
    let text = text.trim();
    if text.is_empty() || text.contains(|c: char| c.is_whitespace() || c == ';') {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    prost_reflect::prost_types::FileDescriptorProto::decode(bytes.as_slice()).ok()
}

/// How a generated schema represents NULLs of primitive fields
/// (`KEY_/VALUE_PROTOBUF_NULLABLE_REPRESENTATION`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Nullable {
    /// Plain proto3 fields: a NULL is written as the type's default.
    #[default]
    Default,
    /// `optional` fields: a NULL is an unset field.
    Optional,
    /// Google's wrapper types (`google.protobuf.Int32Value`, ...): a NULL is an unset wrapper.
    Wrapper,
}

impl Nullable {
    /// The representation named `name` (`OPTIONAL`, `WRAPPER`).
    pub fn from_name(name: &str) -> Result<Self, String> {
        match name.trim().to_ascii_uppercase().as_str() {
            "OPTIONAL" => Ok(Self::Optional),
            "WRAPPER" => Ok(Self::Wrapper),
            other => Err(format!(
                "Invalid nullable representation: {other}. Valid values are: OPTIONAL, WRAPPER"
            )),
        }
    }
}

/// The wrapper type of a primitive field type.
fn wrapper_of(field_type: &str) -> Option<&'static str> {
    Some(match field_type {
        "bool" => "google.protobuf.BoolValue",
        "int32" => "google.protobuf.Int32Value",
        "int64" => "google.protobuf.Int64Value",
        "double" => "google.protobuf.DoubleValue",
        "string" => "google.protobuf.StringValue",
        "bytes" => "google.protobuf.BytesValue",
        _ => return None,
    })
}

/// The `.proto` text ksqlDB writes for these columns.
pub fn schema_text(columns: &[(String, DataType)]) -> String {
    schema_text_as(columns, Nullable::Default)
}

/// [`schema_text`] with NULLs represented as `nullable` asks.
pub fn schema_text_as(columns: &[(String, DataType)], nullable: Nullable) -> String {
    let mut counter = 1;
    let body = message(("ConnectDefault1", nullable), columns, &mut counter);
    let mut imports = String::new();
    for (needle, file) in [
        ("confluent.type.Decimal", "confluent/type/decimal.proto"),
        (
            "google.protobuf.Timestamp",
            "google/protobuf/timestamp.proto",
        ),
        ("google.type.Date", "google/type/date.proto"),
        ("google.type.TimeOfDay", "google/type/timeofday.proto"),
    ] {
        if body.contains(needle) {
            imports.push_str(&format!("import \"{file}\";\n"));
        }
    }
    if nullable == Nullable::Wrapper && body.contains("Value ") {
        imports.push_str("import \"google/protobuf/wrappers.proto\";\n");
    }
    if !imports.is_empty() {
        imports.push('\n');
    }
    // The layout ksqlDB prints (its pull queries' `protoSchema`, the schemas it registers).
    format!("syntax = \"proto3\";\n\n{imports}{body}")
}

fn message(
    (name, nullable): (&str, Nullable),
    columns: &[(String, DataType)],
    counter: &mut usize,
) -> String {
    let mut fields = String::new();
    let mut nested = Vec::new();
    for (i, (column, t)) in columns.iter().enumerate() {
        let declared = match t {
            DataType::List(item) => format!(
                "repeated {}",
                field_type(item.data_type(), counter, &mut nested, nullable)
            ),
            DataType::Map(entries, _) => match entries.data_type() {
                DataType::Struct(kv) => format!(
                    "map<{}, {}>",
                    field_type(kv[0].data_type(), counter, &mut nested, nullable),
                    field_type(kv[1].data_type(), counter, &mut nested, nullable)
                ),
                _ => "string".into(),
            },
            other => {
                let base = field_type(other, counter, &mut nested, nullable);
                match (nullable, wrapper_of(&base)) {
                    (Nullable::Wrapper, Some(wrapper)) => wrapper.to_string(),
                    (Nullable::Optional, Some(_)) => format!("optional {base}"),
                    _ => base,
                }
            }
        };
        fields.push_str(&format!("  {declared} {column} = {};\n", i + 1));
    }
    let mut out = format!("message {name} {{\n{fields}");
    for inner in nested {
        out.push('\n');
        for line in inner.lines() {
            match line {
                "" => out.push('\n'),
                line => out.push_str(&format!("  {line}\n")),
            }
        }
    }
    out.push_str("}\n");
    out
}

fn field_type(
    t: &DataType,
    counter: &mut usize,
    nested: &mut Vec<String>,
    nullable: Nullable,
) -> String {
    match t {
        DataType::Boolean => "bool".into(),
        DataType::Int32 => "int32".into(),
        DataType::Int64 => "int64".into(),
        DataType::Float64 => "double".into(),
        DataType::Binary => "bytes".into(),
        DataType::Decimal128(..) => "confluent.type.Decimal".into(),
        DataType::Timestamp(..) => "google.protobuf.Timestamp".into(),
        DataType::Date32 => "google.type.Date".into(),
        DataType::Time32(_) => "google.type.TimeOfDay".into(),
        DataType::Struct(fields) => {
            *counter += 1;
            let name = format!("ConnectDefault{counter}");
            let columns: Vec<(String, DataType)> = fields
                .iter()
                .map(|f| (f.name().clone(), f.data_type().clone()))
                .collect();
            let inner = message((&name, nullable), &columns, counter);
            nested.push(inner);
            name
        }
        _ => "string".into(),
    }
}

/// The columns a message describes (field names upper-cased, as ksqlDB does).
pub fn columns_of(message: &MessageDescriptor) -> Result<Vec<(String, DataType)>, String> {
    message
        .fields()
        .map(|f| Ok((f.name().to_ascii_uppercase(), field_data_type(&f)?)))
        .collect()
}

fn field_data_type(field: &FieldDescriptor) -> Result<DataType, String> {
    if field.is_map() {
        let Kind::Message(entry) = field.kind() else {
            return Err("malformed map field".into());
        };
        return Ok(crate::types::map_of(
            kind_data_type(&entry.map_entry_key_field().kind())?,
            kind_data_type(&entry.map_entry_value_field().kind())?,
        ));
    }
    let t = match kind_data_type(&field.kind())? {
        DataType::Decimal128(p, s) => decimal_meta(field).unwrap_or(DataType::Decimal128(p, s)),
        other => other,
    };
    Ok(if field.is_list() {
        DataType::List(std::sync::Arc::new(Field::new("item", t, true)))
    } else {
        t
    })
}

/// A decimal field's precision and scale, from its `(confluent.field_meta)` parameters.
fn decimal_meta(field: &FieldDescriptor) -> Option<DataType> {
    let extension = field
        .parent_pool()
        .get_extension_by_name("confluent.field_meta")?;
    let options = field.options();
    if !options.has_extension(&extension) {
        return None;
    }
    let meta = options.get_extension(&extension);
    let Value::Message(meta) = meta.as_ref() else {
        return None;
    };
    let params = meta.get_field_by_name("params")?;
    let Value::Map(params) = params.as_ref() else {
        return None;
    };
    let param = |name: &str| {
        params
            .get(&MapKey::String(name.into()))
            .and_then(|v| v.as_str()?.parse::<i64>().ok())
    };
    let precision = u8::try_from(param("precision")?).ok()?;
    let scale = i8::try_from(param("scale").unwrap_or(0)).ok()?;
    Some(DataType::Decimal128(precision, scale))
}

fn kind_data_type(kind: &Kind) -> Result<DataType, String> {
    Ok(match kind {
        Kind::Bool => DataType::Boolean,
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 | Kind::Uint32 | Kind::Fixed32 => {
            DataType::Int32
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint64 | Kind::Fixed64 => {
            DataType::Int64
        }
        Kind::Float | Kind::Double => DataType::Float64,
        Kind::String | Kind::Enum(_) => DataType::Utf8,
        Kind::Bytes => DataType::Binary,
        Kind::Message(m) if is_wrapper(m) => match m.get_field_by_name("value") {
            Some(value) => kind_data_type(&value.kind())?,
            None => DataType::Utf8,
        },
        Kind::Message(m) => match m.full_name() {
            "confluent.type.Decimal" => DataType::Decimal128(38, 2),
            "google.protobuf.Timestamp" => DataType::Timestamp(TimeUnit::Millisecond, None),
            "google.type.Date" => DataType::Date32,
            "google.type.TimeOfDay" => DataType::Time32(TimeUnit::Millisecond),
            _ => DataType::Struct(
                m.fields()
                    .map(|f| {
                        Ok(Field::new(
                            f.name().to_ascii_uppercase(),
                            field_data_type(&f)?,
                            true,
                        ))
                    })
                    .collect::<Result<Fields, String>>()?,
            ),
        },
    })
}

/// A message as the JSON value the JSON format would hold.
pub fn to_json(message: &DynamicMessage) -> Json {
    Json::Object(
        message
            .descriptor()
            .fields()
            .map(|f| {
                // A message field (a struct, a decimal, a timestamp) that is not set is NULL.
                if f.supports_presence() && !message.has_field(&f) {
                    return (f.name().to_string(), Json::Null);
                }
                let value = message.get_field(&f);
                (f.name().to_string(), value_json(&value, &f.kind()))
            })
            .collect(),
    )
}

fn value_json(value: &Value, kind: &Kind) -> Json {
    match value {
        Value::Bool(b) => json!(b),
        Value::I32(n) => json!(n),
        Value::I64(n) => json!(n),
        Value::U32(n) => json!(n),
        Value::U64(n) => json!(n),
        Value::F32(f) => json!(f),
        Value::F64(f) => json!(f),
        Value::String(s) => json!(s),
        Value::Bytes(b) => json!(super::avro::base64(b)),
        Value::EnumNumber(n) => match kind {
            Kind::Enum(e) => e.get_value(*n).map_or(json!(n), |v| json!(v.name())),
            _ => json!(n),
        },
        Value::List(items) => Json::Array(items.iter().map(|v| value_json(v, kind)).collect()),
        Value::Map(entries) => {
            let value_kind = match kind {
                Kind::Message(entry) => entry.map_entry_value_field().kind(),
                other => other.clone(),
            };
            let mut sorted: Vec<_> = entries.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(b.0));
            Json::Object(
                sorted
                    .into_iter()
                    .map(|(k, v)| (map_key_text(k), value_json(v, &value_kind)))
                    .collect(),
            )
        }
        Value::Message(m) => logical_json(m).unwrap_or_else(|| to_json(m)),
    }
}

fn map_key_text(key: &MapKey) -> String {
    match key {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
        MapKey::String(s) => s.clone(),
    }
}

fn int_field(m: &DynamicMessage, name: &str) -> i64 {
    match m.get_field_by_name(name).as_deref() {
        Some(Value::I32(n)) => i64::from(*n),
        Some(Value::I64(n)) => *n,
        Some(Value::U32(n)) => i64::from(*n),
        _ => 0,
    }
}

/// Whether `m` is one of Google's wrapper types (`google.protobuf.Int32Value`, ...): a
/// nullable primitive, its `value` field.
fn is_wrapper(m: &MessageDescriptor) -> bool {
    m.package_name() == "google.protobuf" && m.name().ends_with("Value") && m.fields().len() == 1
}

/// ksqlDB's logical types, read as the JSON format holds them.
fn logical_json(m: &DynamicMessage) -> Option<Json> {
    if is_wrapper(&m.descriptor()) {
        let field = m.descriptor().get_field_by_name("value")?;
        return Some(value_json(&m.get_field(&field), &field.kind()));
    }
    Some(match m.descriptor().full_name() {
        "confluent.type.Decimal" => {
            let Some(Value::Bytes(b)) = m.get_field_by_name("value").as_deref().cloned() else {
                return Some(Json::Null);
            };
            super::json::decimal_from_bytes(&b, int_field(m, "scale") as i8)
        }
        "google.protobuf.Timestamp" => {
            json!(int_field(m, "seconds") * 1000 + int_field(m, "nanos") / 1_000_000)
        }
        "google.type.Date" => json!(days_from_civil(
            int_field(m, "year"),
            int_field(m, "month"),
            int_field(m, "day")
        )),
        "google.type.TimeOfDay" => json!(
            ((int_field(m, "hours") * 60 + int_field(m, "minutes")) * 60 + int_field(m, "seconds"))
                * 1000
                + int_field(m, "nanos") / 1_000_000
        ),
        _ => return None,
    })
}

/// A JSON value as a message of `descriptor` (names matched case-insensitively; nulls and
/// missing fields left at their defaults).
pub fn from_json(value: &Json, descriptor: &MessageDescriptor) -> Result<DynamicMessage, String> {
    let mut message = DynamicMessage::new(descriptor.clone());
    let Some(object) = value.as_object() else {
        return Err(format!(
            "cannot write {value} as the protobuf message {}",
            descriptor.name()
        ));
    };
    for field in descriptor.fields() {
        let Some(v) = super::json::field(object, field.name()).filter(|v| !v.is_null()) else {
            continue;
        };
        let converted = if field.is_map() {
            map_value(v, &field)?
        } else if field.is_list() {
            let items = v.as_array().ok_or_else(|| format!("{v} is not a list"))?;
            Value::List(
                items
                    .iter()
                    .map(|i| {
                        if i.is_null() {
                            default_of(&field.kind())
                        } else {
                            scalar_value(i, &field.kind())
                        }
                    })
                    .collect::<Result<_, _>>()?,
            )
        } else {
            scalar_value(v, &field.kind())?
        };
        message.set_field(&field, converted);
    }
    Ok(message)
}

fn map_value(v: &Json, field: &FieldDescriptor) -> Result<Value, String> {
    let Kind::Message(entry) = field.kind() else {
        return Err("malformed map field".into());
    };
    let (key_kind, value_kind) = (
        entry.map_entry_key_field().kind(),
        entry.map_entry_value_field().kind(),
    );
    let object = v.as_object().ok_or_else(|| format!("{v} is not a map"))?;
    let mut out = HashMap::new();
    for (k, item) in object {
        let key = match scalar_value(&Json::String(k.clone()), &key_kind)? {
            Value::String(s) => MapKey::String(s),
            Value::I32(n) => MapKey::I32(n),
            Value::I64(n) => MapKey::I64(n),
            Value::Bool(b) => MapKey::Bool(b),
            other => return Err(format!("unsupported map key {other:?}")),
        };
        let value = if item.is_null() {
            default_of(&value_kind)?
        } else {
            scalar_value(item, &value_kind)?
        };
        out.insert(key, value);
    }
    Ok(Value::Map(out))
}

fn default_of(kind: &Kind) -> Result<Value, String> {
    Ok(match kind {
        Kind::Message(m) => Value::Message(DynamicMessage::new(m.clone())),
        other => scalar_value(&json!(0), other).or_else(|_| scalar_value(&json!(""), other))?,
    })
}

fn scalar_value(v: &Json, kind: &Kind) -> Result<Value, String> {
    let bad = || format!("cannot write {v} as protobuf {kind:?}");
    let int = || {
        v.as_i64()
            .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .ok_or_else(bad)
    };
    Ok(match kind {
        Kind::Bool => Value::Bool(
            v.as_bool()
                .or_else(|| v.as_str().map(|s| s == "true"))
                .ok_or_else(bad)?,
        ),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            Value::I32(i32::try_from(int()?).map_err(|_| bad())?)
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(int()?),
        Kind::Uint32 | Kind::Fixed32 => Value::U32(u32::try_from(int()?).map_err(|_| bad())?),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(u64::try_from(int()?).map_err(|_| bad())?),
        Kind::Float => Value::F32(v.as_f64().ok_or_else(bad)? as f32),
        Kind::Double => Value::F64(
            v.as_f64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .ok_or_else(bad)?,
        ),
        Kind::String => Value::String(match v {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        }),
        Kind::Bytes => Value::Bytes(
            v.as_str()
                .and_then(super::avro::unbase64)
                .ok_or_else(bad)?
                .into(),
        ),
        Kind::Enum(e) => match v {
            Json::String(name) => {
                Value::EnumNumber(e.get_value_by_name(name).ok_or_else(bad)?.number())
            }
            other => Value::EnumNumber(other.as_i64().ok_or_else(bad)? as i32),
        },
        Kind::Message(m) => {
            Value::Message(logical_message(v, m)?.map_or_else(|| from_json(v, m), Ok)?)
        }
    })
}

/// ksqlDB's logical types written from the JSON format's values.
fn logical_message(v: &Json, m: &MessageDescriptor) -> Result<Option<DynamicMessage>, String> {
    let mut out = DynamicMessage::new(m.clone());
    if is_wrapper(m)
        && let Some(field) = m.get_field_by_name("value")
    {
        out.set_field(&field, scalar_value(v, &field.kind())?);
        return Ok(Some(out));
    }
    let n = || v.as_i64().ok_or_else(|| format!("{v} is not a number"));
    match m.full_name() {
        "confluent.type.Decimal" => {
            let text = v.to_string();
            let scale = text.trim_matches('"').split('.').nth(1).map_or(0, str::len) as i8;
            let bytes = super::json::decimal_to_bytes(v, scale)
                .ok_or_else(|| format!("{v} is not a decimal"))?;
            out.set_field_by_name("value", Value::Bytes(bytes.into()));
            out.set_field_by_name("scale", Value::I32(i32::from(scale)));
        }
        "google.protobuf.Timestamp" => {
            let ms = n()?;
            out.set_field_by_name("seconds", Value::I64(ms.div_euclid(1000)));
            out.set_field_by_name(
                "nanos",
                Value::I32((ms.rem_euclid(1000) * 1_000_000) as i32),
            );
        }
        "google.type.Date" => {
            let (y, mo, d) = civil_from_days(n()?);
            out.set_field_by_name("year", Value::I32(y as i32));
            out.set_field_by_name("month", Value::I32(mo as i32));
            out.set_field_by_name("day", Value::I32(d as i32));
        }
        "google.type.TimeOfDay" => {
            let ms = n()?;
            out.set_field_by_name("hours", Value::I32((ms / 3_600_000) as i32));
            out.set_field_by_name("minutes", Value::I32((ms / 60_000 % 60) as i32));
            out.set_field_by_name("seconds", Value::I32((ms / 1000 % 60) as i32));
            out.set_field_by_name("nanos", Value::I32((ms % 1000 * 1_000_000) as i32));
        }
        _ => return Ok(None),
    }
    Ok(Some(out))
}

/// Encodes a message's bytes.
pub fn encode(message: &DynamicMessage) -> Vec<u8> {
    message.encode_to_vec()
}

/// Decodes a message of `descriptor`.
pub fn decode(descriptor: &MessageDescriptor, bytes: &[u8]) -> Result<DynamicMessage, String> {
    DynamicMessage::decode(descriptor.clone(), bytes).map_err(|e| e.to_string())
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_through_protobuf() {
        let columns = vec![
            ("ID".to_string(), DataType::Int64),
            ("NAME".to_string(), DataType::Utf8),
            ("DAY".to_string(), DataType::Date32),
        ];
        let descriptor = compile(&schema_text(&columns), None).unwrap();
        let message =
            from_json(&json!({"id": 7, "NAME": null, "DAY": 19000}), &descriptor).unwrap();
        let back = decode(&descriptor, &encode(&message)).unwrap();
        assert_eq!(to_json(&back), json!({"ID": 7, "NAME": "", "DAY": 19000}));
        assert_eq!(columns_of(&descriptor).unwrap(), columns);
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in [-1000, -1, 0, 1, 19000, 50000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
    }

    #[test]
    fn nulls_survive_optional_and_wrapper_fields() {
        let columns = vec![
            ("I".to_string(), DataType::Int32),
            ("S".to_string(), DataType::Utf8),
        ];
        for nullable in [Nullable::Optional, Nullable::Wrapper] {
            let text = schema_text_as(&columns, nullable);
            let descriptor = compile(&text, None).unwrap();
            for row in [json!({"I": null, "S": ""}), json!({"I": 0, "S": null})] {
                let bytes = encode(&from_json(&row, &descriptor).unwrap());
                assert_eq!(
                    to_json(&decode(&descriptor, &bytes).unwrap()),
                    row,
                    "{text}"
                );
            }
            let inferred = columns_of(&descriptor).unwrap();
            assert_eq!(inferred, columns, "{text}");
        }
        assert!(
            schema_text_as(&columns, Nullable::Wrapper)
                .contains("google.protobuf.Int32Value I = 1;")
        );
        assert!(schema_text_as(&columns, Nullable::Optional).contains("optional string S = 2;"));
    }
}
