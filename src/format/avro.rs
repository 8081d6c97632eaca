//! The AVRO format: ksqlDB's Avro schemas for columns, and Avro datums ↔ JSON values.
//!
//! Records are framed with a schema id ([`super::registry`]). Eddy reads an Avro datum by
//! turning it into the JSON value ksqlDB's JSON format would hold (records as objects,
//! unions unwrapped, decimals as numbers, dates as days, times and timestamps as
//! milliseconds), so column matching and coercion are the JSON format's
//! ([`super::json`]); it writes by the reverse, guided by the schema. Schemas follow
//! ksqlDB's `AvroSchemas`: a record `io.confluent.ksql.avro_schemas.KsqlDataSourceSchema`
//! whose fields are optional (`["null", T]`, default null). Maps with non-string keys and
//! Avro's fixed, enum-to-enum and duration types are not handled.

use apache_avro::Schema;
use apache_avro::types::Value as Avro;
use arrow::datatypes::{DataType, Field, Fields, TimeUnit};
use serde_json::{Value as Json, json};

/// Checks that every column and struct field name is an Avro name (a letter or `_`, then
/// letters, digits or `_`), with the message Avro's parser gives ksqlDB.
pub fn check_names(columns: &[(String, DataType)]) -> Result<(), String> {
    fn check(name: &str, t: &DataType) -> Result<(), String> {
        let mut chars = name.chars();
        if !chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        {
            return Err(format!(
                "Schema is not compatible with Avro: Illegal initial character: {name}"
            ));
        }
        if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "Schema is not compatible with Avro: Illegal character in: {name}"
            ));
        }
        match t {
            DataType::Struct(fields) => fields
                .iter()
                .try_for_each(|f| check(f.name(), f.data_type())),
            DataType::List(item) => nested(item.data_type()),
            DataType::Map(entries, _) => nested(entries.data_type()),
            _ => Ok(()),
        }
    }
    fn nested(t: &DataType) -> Result<(), String> {
        match t {
            DataType::Struct(fields) => fields
                .iter()
                .try_for_each(|f| check(f.name(), f.data_type())),
            DataType::List(item) => nested(item.data_type()),
            _ => Ok(()),
        }
    }
    columns.iter().try_for_each(|(n, t)| check(n, t))
}

/// The Avro schema ksqlDB writes for these value columns.
pub fn record_schema(columns: &[(String, DataType)]) -> Json {
    let mut record = record(
        "KsqlDataSourceSchema",
        columns.iter().map(|(n, t)| (n.as_str(), t)),
    );
    record["namespace"] = json!("io.confluent.ksql.avro_schemas");
    record
}

fn record<'a>(name: &str, fields: impl Iterator<Item = (&'a str, &'a DataType)>) -> Json {
    let fields: Vec<Json> = fields
        .map(|(field, t)| {
            json!({
                "name": field,
                "type": optional(t, &format!("{name}_{field}")),
                "default": null,
            })
        })
        .collect();
    json!({"type": "record", "name": name, "fields": fields})
}

fn optional(t: &DataType, name: &str) -> Json {
    json!(["null", type_schema(t, name)])
}

/// The Avro schema of one (non-null) value of `t`; `name` names nested records.
pub fn type_schema(t: &DataType, name: &str) -> Json {
    match t {
        DataType::Boolean => json!("boolean"),
        DataType::Int32 => json!("int"),
        DataType::Int64 => json!("long"),
        DataType::Float64 => json!("double"),
        DataType::Utf8 => json!("string"),
        DataType::Binary => json!("bytes"),
        DataType::Decimal128(p, s) => {
            json!({"type": "bytes", "logicalType": "decimal", "precision": p, "scale": s})
        }
        DataType::Timestamp(..) => json!({"type": "long", "logicalType": "timestamp-millis"}),
        DataType::Date32 => json!({"type": "int", "logicalType": "date"}),
        DataType::Time32(_) => json!({"type": "int", "logicalType": "time-millis"}),
        DataType::List(item) => json!({"type": "array", "items": optional(item.data_type(), name)}),
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) => {
                json!({"type": "map", "values": optional(kv[1].data_type(), name)})
            }
            _ => json!("string"),
        },
        DataType::Struct(fields) => record(
            name,
            fields.iter().map(|f| (f.name().as_str(), f.data_type())),
        ),
        _ => json!("string"),
    }
}

/// The columns an Avro record schema describes (field names upper-cased, as ksqlDB does).
pub fn columns_of(schema: &Schema) -> Result<Vec<(String, DataType)>, String> {
    match schema {
        Schema::Record(r) => r
            .fields
            .iter()
            .map(|f| Ok((f.name.to_ascii_uppercase(), data_type_of(&f.schema)?)))
            .collect(),
        other => Ok(vec![("ROWVAL".into(), data_type_of(other)?)]),
    }
}

/// The SQL type of values of `schema`.
pub fn data_type_of(schema: &Schema) -> Result<DataType, String> {
    Ok(match schema {
        Schema::Boolean => DataType::Boolean,
        Schema::Int => DataType::Int32,
        Schema::Long => DataType::Int64,
        Schema::Float | Schema::Double => DataType::Float64,
        Schema::String | Schema::Enum(_) | Schema::Uuid => DataType::Utf8,
        Schema::Bytes | Schema::Fixed(_) => DataType::Binary,
        Schema::Decimal(d) => DataType::Decimal128(d.precision as u8, d.scale as i8),
        Schema::Date => DataType::Date32,
        Schema::TimeMillis | Schema::TimeMicros => DataType::Time32(TimeUnit::Millisecond),
        Schema::TimestampMillis | Schema::TimestampMicros | Schema::LocalTimestampMillis => {
            DataType::Timestamp(TimeUnit::Millisecond, None)
        }
        Schema::Array(a) => DataType::List(std::sync::Arc::new(Field::new(
            "item",
            data_type_of(&a.items)?,
            true,
        ))),
        Schema::Map(m) => crate::types::map_of(DataType::Utf8, data_type_of(&m.types)?),
        Schema::Record(r) => DataType::Struct(
            r.fields
                .iter()
                .map(|f| {
                    Ok(Field::new(
                        f.name.to_ascii_uppercase(),
                        data_type_of(&f.schema)?,
                        true,
                    ))
                })
                .collect::<Result<Fields, String>>()?,
        ),
        Schema::Union(u) => match u.variants().iter().find(|v| **v != Schema::Null) {
            Some(inner) => data_type_of(inner)?,
            None => return Err("an Avro union of only null".into()),
        },
        other => return Err(format!("Avro type {other:?} is not supported")),
    })
}

/// An Avro datum as the JSON value the JSON format would hold.
pub fn to_json(value: &Avro, schema: &Schema) -> Json {
    match (value, schema) {
        (Avro::Union(i, inner), Schema::Union(u)) => match u.variants().get(*i as usize) {
            Some(s) => to_json(inner, s),
            None => Json::Null,
        },
        (Avro::Union(_, inner), s) => to_json(inner, s),
        (Avro::Record(fields), Schema::Record(r)) => Json::Object(
            fields
                .iter()
                .map(|(name, v)| {
                    let s = r.lookup.get(name).map(|i| &r.fields[*i].schema);
                    (name.clone(), s.map_or(Json::Null, |s| to_json(v, s)))
                })
                .collect(),
        ),
        (Avro::Array(items), Schema::Array(a)) => {
            Json::Array(items.iter().map(|v| to_json(v, &a.items)).collect())
        }
        (Avro::Map(entries), Schema::Map(m)) => sorted_object(entries, |v| to_json(v, &m.types)),
        (Avro::Decimal(d), Schema::Decimal(s)) => decimal_json(d, s.scale),
        (v, _) => plain_json(v),
    }
}

/// An Avro map (unordered) as a JSON object in key order, so equal maps read the same.
fn sorted_object(
    entries: &std::collections::HashMap<String, Avro>,
    convert: impl Fn(&Avro) -> Json,
) -> Json {
    let mut sorted: Vec<_> = entries.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    Json::Object(
        sorted
            .into_iter()
            .map(|(k, v)| (k.clone(), convert(v)))
            .collect(),
    )
}

fn plain_json(value: &Avro) -> Json {
    match value {
        Avro::Null => Json::Null,
        Avro::Boolean(b) => json!(b),
        Avro::Int(n) | Avro::Date(n) | Avro::TimeMillis(n) => json!(n),
        Avro::Long(n) | Avro::TimestampMillis(n) | Avro::LocalTimestampMillis(n) => json!(n),
        Avro::TimeMicros(n) => json!(n / 1000),
        Avro::TimestampMicros(n) => json!(n / 1000),
        Avro::Float(f) => json!(f),
        Avro::Double(f) => json!(f),
        Avro::String(s) | Avro::Enum(_, s) => json!(s),
        Avro::Bytes(b) | Avro::Fixed(_, b) => json!(base64(b)),
        Avro::Uuid(u) => json!(u.to_string()),
        Avro::Array(items) => Json::Array(items.iter().map(plain_json).collect()),
        Avro::Map(m) => sorted_object(m, plain_json),
        Avro::Record(fields) => Json::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), plain_json(v)))
                .collect(),
        ),
        Avro::Union(_, inner) => plain_json(inner),
        _ => Json::Null,
    }
}

fn decimal_json(d: &apache_avro::Decimal, scale: usize) -> Json {
    let bytes: Vec<u8> = Vec::try_from(d).unwrap_or_default();
    crate::format::json::decimal_from_bytes(&bytes, scale as i8)
}

/// The first branch of a union that takes the value.
fn union_from_json(value: &Json, union: &apache_avro::schema::UnionSchema) -> Result<Avro, String> {
    let branches = union.variants();
    if value.is_null() {
        let i = branches.iter().position(|v| *v == Schema::Null);
        return i
            .map(|i| Avro::Union(i as u32, Box::new(Avro::Null)))
            .ok_or_else(|| "null for a union without null".to_string());
    }
    let mut last = format!("cannot write {value} as Avro");
    for (i, variant) in branches.iter().enumerate() {
        if *variant == Schema::Null {
            continue;
        }
        match from_json(value, variant) {
            Ok(v) => return Ok(Avro::Union(i as u32, Box::new(v))),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The big-endian two's-complement bytes Avro's decimals hold.
fn decimal_from_json(value: &Json, scale: usize) -> Option<Avro> {
    let bytes = crate::format::json::decimal_to_bytes(value, scale as i8)?;
    Some(Avro::Decimal(apache_avro::Decimal::from(bytes)))
}

/// A JSON value as an Avro datum of `schema` (field names matched case-insensitively).
pub fn from_json(value: &Json, schema: &Schema) -> Result<Avro, String> {
    let mismatch = || format!("cannot write {value} as Avro {schema:?}");
    Ok(match schema {
        Schema::Union(u) => return union_from_json(value, u),
        Schema::Null if value.is_null() => Avro::Null,
        Schema::Boolean => Avro::Boolean(value.as_bool().ok_or_else(mismatch)?),
        Schema::Int => Avro::Int(int32(value).ok_or_else(mismatch)?),
        Schema::Long => Avro::Long(int(value).ok_or_else(mismatch)?),
        Schema::Float => Avro::Float(value.as_f64().ok_or_else(mismatch)? as f32),
        Schema::Double => Avro::Double(value.as_f64().ok_or_else(mismatch)?),
        Schema::String | Schema::Enum(_) => Avro::String(match value {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        }),
        Schema::Bytes => {
            Avro::Bytes(unbase64(value.as_str().ok_or_else(mismatch)?).ok_or_else(mismatch)?)
        }
        Schema::Date => Avro::Date(int32(value).ok_or_else(mismatch)?),
        Schema::TimeMillis => Avro::TimeMillis(int32(value).ok_or_else(mismatch)?),
        Schema::TimestampMillis => Avro::TimestampMillis(int(value).ok_or_else(mismatch)?),
        Schema::Decimal(d) => decimal_from_json(value, d.scale).ok_or_else(mismatch)?,
        Schema::Array(a) => Avro::Array(
            value
                .as_array()
                .ok_or_else(mismatch)?
                .iter()
                .map(|v| from_json(v, &a.items))
                .collect::<Result<_, _>>()?,
        ),
        Schema::Map(m) => Avro::Map(
            value
                .as_object()
                .ok_or_else(mismatch)?
                .iter()
                .map(|(k, v)| Ok((k.clone(), from_json(v, &m.types)?)))
                .collect::<Result<_, String>>()?,
        ),
        Schema::Record(r) => {
            let object = value.as_object().ok_or_else(mismatch)?;
            Avro::Record(
                r.fields
                    .iter()
                    .map(|f| {
                        let given = crate::format::json::field(object, &f.name);
                        let mut v = given.unwrap_or(&Json::Null);
                        // A field the row does not have, or a NULL where the schema has no
                        // null, takes the field's default.
                        if let Some(default) = &f.default
                            && v.is_null()
                            && (given.is_none() || from_json(v, &f.schema).is_err())
                        {
                            v = default;
                        }
                        Ok((f.name.clone(), from_json(v, &f.schema)?))
                    })
                    .collect::<Result<_, String>>()?,
            )
        }
        _ => return Err(mismatch()),
    })
}

fn int32(value: &Json) -> Option<i32> {
    int(value).and_then(|n| i32::try_from(n).ok())
}

fn int(value: &Json) -> Option<i64> {
    value
        .as_i64()
        .or_else(|| {
            value
                .as_f64()
                .filter(|f| f.fract() == 0.0)
                .map(|f| f as i64)
        })
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, as ksqlDB writes BYTES in JSON.
pub fn base64(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 (padding optional).
pub fn unbase64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for bytes in [&b""[..], b"a", b"ab", b"abc", b"\x00\xff\x10\x80"] {
            assert_eq!(unbase64(&base64(bytes)).as_deref(), Some(bytes));
        }
        assert_eq!(base64(b"hello"), "aGVsbG8=");
    }

    #[test]
    fn rows_round_trip_through_avro() {
        let columns = vec![
            ("ID".to_string(), DataType::Int64),
            ("PRICE".to_string(), DataType::Decimal128(5, 2)),
            (
                "TAGS".to_string(),
                DataType::List(std::sync::Arc::new(Field::new(
                    "item",
                    DataType::Utf8,
                    true,
                ))),
            ),
        ];
        let schema = Schema::parse(&record_schema(&columns)).unwrap();
        let row = json!({"id": 7, "PRICE": 12.34, "TAGS": ["a", null]});
        let datum = from_json(&row, &schema).unwrap();
        let bytes = apache_avro::to_avro_datum(&schema, datum).unwrap();
        let back = apache_avro::from_avro_datum(&schema, &mut &bytes[..], None).unwrap();
        assert_eq!(
            to_json(&back, &schema),
            json!({"ID": 7, "PRICE": 12.34, "TAGS": ["a", null]})
        );
        assert_eq!(columns_of(&schema).unwrap(), columns);
    }
}
