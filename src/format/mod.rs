//! Formats: record bytes ↔ Arrow, as ksqlDB encodes keys and values.
//!
//! [`Format`] names the encodings of `KEY_FORMAT`/`VALUE_FORMAT`; [`decode::SourceDecoder`]
//! turns a batch of [`crate::record::Record`]s into one Arrow `RecordBatch` (a record that does
//! not decode is reported, not fatal); [`encode::SinkEncoder`] turns result rows back into
//! records, including windowed keys. Per-format value conversions live in [`json`],
//! [`delimited`] and [`kafka`]; the schema-registry formats AVRO ([`avro`]), JSON_SR and
//! PROTOBUF ([`protobuf`]) are read and written through JSON by [`framed`], with schemas in
//! a [`registry`] (PROTOBUF_NOSR takes its schema from the columns).

pub mod avro;
pub mod decode;
pub mod delimited;
pub mod encode;
pub mod error;
pub mod framed;
pub mod json;
pub mod kafka;
pub mod protobuf;
pub mod registry;
pub mod timestamp;
pub mod validate;

pub use error::FormatError;

use std::fmt;

/// A key or value serialization format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Kafka's primitive serializers: big-endian INT/BIGINT/DOUBLE, UTF-8 STRING.
    Kafka,
    /// JSON text.
    Json,
    /// Separated fields on one line (CSV).
    Delimited {
        /// The field separator.
        delimiter: char,
    },
    /// No data (keys only).
    None,
    /// Avro datums framed with a schema-registry id.
    Avro,
    /// JSON framed with a schema-registry id (JSON Schema).
    JsonSr,
    /// Protobuf messages framed with a schema-registry id.
    Protobuf,
    /// Protobuf messages without a schema registry (the schema comes from the columns).
    ProtobufNoSr,
}

impl Format {
    /// Whether records carry a schema-registry id (AVRO, JSON_SR, PROTOBUF).
    pub fn uses_registry(self) -> bool {
        matches!(self, Format::Avro | Format::JsonSr | Format::Protobuf)
    }

    /// PROTOBUF or PROTOBUF_NOSR (keys are always messages, never bare values).
    pub fn is_protobuf(self) -> bool {
        matches!(self, Format::Protobuf | Format::ProtobufNoSr)
    }

    /// Whether records are read and written through [`framed`] (the schema formats).
    pub fn is_framed(self) -> bool {
        self.uses_registry() || self == Format::ProtobufNoSr
    }

    /// Parses a format name as written in a `WITH` clause (case-insensitive).
    pub fn from_name(name: &str) -> Result<Self, FormatError> {
        match name.to_ascii_uppercase().as_str() {
            "KAFKA" => Ok(Format::Kafka),
            "JSON" => Ok(Format::Json),
            "DELIMITED" => Ok(Format::Delimited { delimiter: ',' }),
            "NONE" => Ok(Format::None),
            "AVRO" => Ok(Format::Avro),
            "JSON_SR" => Ok(Format::JsonSr),
            "PROTOBUF" => Ok(Format::Protobuf),
            "PROTOBUF_NOSR" => Ok(Format::ProtobufNoSr),
            _ => Err(FormatError::UnknownFormat(name.to_string())),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Kafka => "KAFKA",
            Format::Json => "JSON",
            Format::Delimited { .. } => "DELIMITED",
            Format::None => "NONE",
            Format::Avro => "AVRO",
            Format::JsonSr => "JSON_SR",
            Format::Protobuf => "PROTOBUF",
            Format::ProtobufNoSr => "PROTOBUF_NOSR",
        })
    }
}
