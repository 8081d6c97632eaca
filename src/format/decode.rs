//! [`SourceDecoder`]: a batch of records → one Arrow `RecordBatch` in the source's layout.
//!
//! A record whose key or value does not match the schema is left out of the batch and
//! returned as a failure with its index, so the caller can write it to the processing log
//! and carry on (ksqlDB's `ksql.fail.on.deserialization.error=false`). A stream record with a
//! null value is skipped, as ksqlDB does; a table record with a null value is a tombstone.
//! Windowed keys are not decoded yet.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, Int32Array, Int64Array, ListArray, RecordBatch, StringArray,
    StructArray, new_empty_array,
};
use arrow::datatypes::{DataType, SchemaRef};
use datafusion_common::ScalarValue;
use serde_json::Value;

use super::framed::Writer;
use super::registry::SchemaRegistry;
use super::timestamp::JavaPattern;
use super::{Format, FormatError, delimited, framed, json, kafka};
use crate::catalog::{ColumnKind, Source, WindowInfo};
use crate::record::Record;
use crate::sql::ast::SourceKind;

/// Records decoded into a batch, plus what could not be decoded.
#[derive(Debug)]
pub struct Decoded {
    /// The decoded rows, in record order, in the source's batch layout.
    pub batch: RecordBatch,
    /// For tables: which rows are tombstones (value columns all null). Empty for streams.
    pub tombstones: Vec<bool>,
    /// Records left out: their index in the input and why.
    pub failures: Vec<(usize, FormatError)>,
}

/// Decodes records of one source.
#[derive(Debug, Clone)]
pub struct SourceDecoder {
    schema: SchemaRef,
    kind: SourceKind,
    key_format: Format,
    value_format: Format,
    keys: Vec<(String, DataType)>,
    values: Vec<(String, DataType)>,
    /// Header columns: all headers (`None`) or the last one with a key.
    headers: Vec<Option<String>>,
    /// Index into a decoded row of the column that overrides ROWTIME.
    timestamp: Option<usize>,
    /// `TIMESTAMP_FORMAT`: the column is text in this pattern.
    timestamp_format: Option<JavaPattern>,
    /// Writer schemas of AVRO, JSON_SR and PROTOBUF records.
    registry: Arc<SchemaRegistry>,
    /// PROTOBUF_NOSR keys and values: the schema of the declared columns.
    nosr: (Option<Writer>, Option<Writer>),
    /// Streams: pass records with a null value on (flagged like tombstones) instead of
    /// skipping them, as ksqlDB's projections and PARTITION BY do.
    null_values: bool,
    /// `WRAP_SINGLE_VALUE=false`: the value is the single value column itself.
    unwrapped: bool,
    /// Windowed sources: keys end in the window's bytes, read into `WINDOWSTART`/`WINDOWEND`.
    window: Option<WindowInfo>,
}

impl SourceDecoder {
    /// A decoder for `source`; fails if its formats cannot carry its columns.
    pub fn try_new(source: &Source, registry: &Arc<SchemaRegistry>) -> Result<Self, FormatError> {
        let keys = source.schema.typed(ColumnKind::Key);
        let values = source.schema.typed(ColumnKind::Value);
        super::validate::validate(source)?;
        // The event-time column's place in a decoded row: keys, window bounds, values.
        let bounds = if source.window.is_some() { 2 } else { 0 };
        let timestamp = source.timestamp_column.as_ref().and_then(|name| {
            keys.iter().position(|(n, _)| n == name).or_else(|| {
                values
                    .iter()
                    .position(|(n, _)| n == name)
                    .map(|i| keys.len() + bounds + i)
            })
        });
        let timestamp_format = match &source.timestamp_format {
            Some(pattern) => Some(JavaPattern::new(pattern).map_err(FormatError::Unsupported)?),
            None => None,
        };
        let nosr = (
            nosr(source.key_format, &keys, source.schemas.key_nullable)?,
            nosr(source.value_format, &values, source.schemas.value_nullable)?,
        );
        Ok(Self {
            schema: source.schema.batch_schema(source.window.is_some()),
            kind: source.kind,
            key_format: source.key_format,
            value_format: source.value_format,
            keys,
            values,
            headers: source
                .schema
                .headers()
                .map(|c| match &c.kind {
                    ColumnKind::Header(key) => key.clone(),
                    _ => None,
                })
                .collect(),
            timestamp,
            timestamp_format,
            registry: Arc::clone(registry),
            nosr,
            null_values: false,
            unwrapped: !source.wrap_single_value,
            window: source.window,
        })
    }

    /// Keeps stream records with a null value (see `null_values`).
    pub fn keeping_null_values(mut self, keep: bool) -> Self {
        self.null_values = keep;
        self
    }

    /// The schema of the batches this decoder produces.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Decodes `records`; never fails as a whole.
    pub fn decode(&self, records: &[Record]) -> Decoded {
        let bounds = if self.window.is_some() { 2 } else { 0 };
        let width = self.keys.len() + bounds + self.values.len() + self.headers.len();
        let mut columns: Vec<Vec<ScalarValue>> = vec![Vec::with_capacity(records.len()); width];
        let (mut rowtime, mut partition, mut offset) = (Vec::new(), Vec::new(), Vec::new());
        let mut tombstones = Vec::new();
        let mut failures = Vec::new();
        for (i, record) in records.iter().enumerate() {
            let row = match self.decode_row(record) {
                Ok(Some(mut row)) => {
                    row.0.extend(
                        self.headers
                            .iter()
                            .map(|h| header_value(record, h.as_deref())),
                    );
                    row
                }
                Ok(None) => continue,
                Err(e) => {
                    failures.push((i, e));
                    continue;
                }
            };
            let ts = match self.timestamp {
                None => Ok(record.timestamp),
                Some(idx) => self.event_time(&row.0[idx]),
            };
            let ts = match ts {
                // Kafka Streams drops records whose timestamp is negative.
                Ok(ts) if ts >= 0 => ts,
                Ok(ts) => {
                    failures.push((i, FormatError::Value(format!("invalid timestamp {ts}"))));
                    continue;
                }
                Err(e) => {
                    failures.push((i, e));
                    continue;
                }
            };
            for (column, value) in columns.iter_mut().zip(row.0) {
                column.push(value);
            }
            if self.kind == SourceKind::Table || self.null_values {
                tombstones.push(row.1);
            }
            rowtime.push(ts);
            partition.push(record.partition.unwrap_or(0));
            offset.push(record.offset);
        }
        let batch = self.assemble(columns, rowtime, partition, offset);
        Decoded {
            batch,
            tombstones,
            failures,
        }
    }

    /// The event time held by the `TIMESTAMP` column's value.
    fn event_time(&self, value: &ScalarValue) -> Result<i64, FormatError> {
        let invalid = |why: String| FormatError::Value(format!("invalid timestamp column: {why}"));
        match (&self.timestamp_format, value) {
            (Some(pattern), ScalarValue::Utf8(Some(text))) => pattern.parse(text).map_err(invalid),
            (
                None,
                ScalarValue::Int64(Some(ts)) | ScalarValue::TimestampMillisecond(Some(ts), _),
            ) => Ok(*ts),
            (_, other) => Err(invalid(format!("{other}"))),
        }
    }

    /// One record's key and value columns, and whether it is a tombstone; `None` to skip it.
    fn decode_row(&self, record: &Record) -> Result<Option<(Vec<ScalarValue>, bool)>, FormatError> {
        if record.key.is_none() && self.kind == SourceKind::Table && !self.keys.is_empty() {
            return Err(FormatError::Key("a table's record needs a key".into()));
        }
        let (key, bounds) = self.split_window(record.key.as_deref())?;
        let mut row = self.decode_key(key)?;
        row.extend(bounds.into_iter().map(|b| ScalarValue::Int64(Some(b))));
        match record.value.as_deref() {
            None if self.kind == SourceKind::Stream && !self.null_values => Ok(None),
            None => {
                for (_, t) in &self.values {
                    row.push(null_of(t)?);
                }
                Ok(Some((row, true)))
            }
            Some(bytes) => {
                row.extend(self.decode_value(bytes)?);
                Ok(Some((row, false)))
            }
        }
    }

    /// A windowed key's inner key and its window's start and end (`[]` when not windowed):
    /// Kafka Streams' `<key><8-byte start>` (the end is start + size), or for sessions
    /// `<key><8-byte end><8-byte start>`.
    fn split_window<'a>(
        &self,
        bytes: Option<&'a [u8]>,
    ) -> Result<(Option<&'a [u8]>, Vec<i64>), FormatError> {
        let Some(window) = self.window else {
            return Ok((bytes, Vec::new()));
        };
        let bytes = bytes.ok_or_else(|| FormatError::Key("a windowed key is missing".into()))?;
        let suffix = match window {
            WindowInfo::Time { .. } => 8,
            WindowInfo::Session => 16,
        };
        let split = bytes.len().checked_sub(suffix).ok_or_else(|| {
            FormatError::Key(format!("a windowed key needs {suffix} window bytes"))
        })?;
        let (key, tail) = bytes.split_at(split);
        let long = |b: &[u8]| i64::from_be_bytes(b.try_into().unwrap_or([0; 8]));
        let bounds = match window {
            WindowInfo::Time { size_ms } => {
                let start = long(tail);
                vec![start, start.saturating_add(size_ms)]
            }
            WindowInfo::Session => vec![long(&tail[8..]), long(&tail[..8])],
        };
        Ok((Some(key), bounds))
    }

    fn decode_key(&self, bytes: Option<&[u8]>) -> Result<Vec<ScalarValue>, FormatError> {
        let Some(bytes) = bytes else {
            return self.keys.iter().map(|(_, t)| null_of(t)).collect();
        };
        match (self.key_format, self.keys.as_slice()) {
            (_, []) | (Format::None, _) => Ok(Vec::new()),
            (Format::Kafka, [(_, t)]) => {
                Ok(vec![kafka::to_scalar(bytes, t).map_err(FormatError::Key)?])
            }
            (Format::Delimited { delimiter }, _) => {
                let types: Vec<DataType> = self.keys.iter().map(|(_, t)| t.clone()).collect();
                delimited::to_scalars(&text(bytes).map_err(FormatError::Key)?, delimiter, &types)
                    .map_err(FormatError::Key)
            }
            (format, [(_, t)]) if !format.is_protobuf() => {
                let value = self
                    .json_of(format, bytes, None)
                    .map_err(FormatError::Key)?;
                Ok(vec![json::to_scalar(&value, t).map_err(FormatError::Key)?])
            }
            (format, columns) => match self
                .json_of(format, bytes, self.nosr.0.as_ref())
                .map_err(FormatError::Key)?
            {
                Value::Object(object) => columns
                    .iter()
                    .map(|(name, t)| {
                        json::to_scalar(json::field(&object, name).unwrap_or(&Value::Null), t)
                            .map_err(FormatError::Key)
                    })
                    .collect(),
                other => Err(FormatError::Key(format!(
                    "expected a JSON object for a multi-column key, got {other}"
                ))),
            },
        }
    }

    fn decode_value(&self, bytes: &[u8]) -> Result<Vec<ScalarValue>, FormatError> {
        match self.value_format {
            Format::Kafka => match self.values.as_slice() {
                [(_, t)] => Ok(vec![
                    kafka::to_scalar(bytes, t).map_err(FormatError::Value)?,
                ]),
                _ => Err(FormatError::Value("KAFKA values hold one column".into())),
            },
            Format::Json
            | Format::Avro
            | Format::JsonSr
            | Format::Protobuf
            | Format::ProtobufNoSr => {
                let value = self
                    .json_of(self.value_format, bytes, self.nosr.1.as_ref())
                    .map_err(FormatError::Value)?;
                self.json_columns(&value)
            }
            Format::Delimited { delimiter } => {
                let types: Vec<DataType> = self.values.iter().map(|(_, t)| t.clone()).collect();
                delimited::to_scalars(&text(bytes).map_err(FormatError::Value)?, delimiter, &types)
                    .map_err(FormatError::Value)
            }
            Format::None => Ok(Vec::new()),
        }
    }

    /// The JSON a JSON, AVRO, JSON_SR or PROTOBUF record holds.
    fn json_of(
        &self,
        format: Format,
        bytes: &[u8],
        nosr: Option<&Writer>,
    ) -> Result<Value, String> {
        if format.is_framed() {
            framed::read(format, bytes, &self.registry, nosr)
        } else {
            serde_json::from_slice(bytes).map_err(|e| e.to_string())
        }
    }

    fn json_columns(&self, value: &Value) -> Result<Vec<ScalarValue>, FormatError> {
        if self.unwrapped
            && let [(_, t)] = self.values.as_slice()
        {
            return Ok(vec![json::to_scalar(value, t).map_err(FormatError::Value)?]);
        }
        match value {
            Value::Object(object) => self
                .values
                .iter()
                .map(|(name, t)| {
                    let v = json::field(object, name).unwrap_or(&Value::Null);
                    json::to_scalar(v, t).map_err(|e| FormatError::Value(format!("{name}: {e}")))
                })
                .collect(),
            // An unwrapped single value: `134` rather than `{"COL": 134}`.
            other if self.values.len() == 1 => Ok(vec![
                json::to_scalar(other, &self.values[0].1).map_err(FormatError::Value)?,
            ]),
            _ => Err(FormatError::Value(format!(
                "expected a JSON object, got {value}"
            ))),
        }
    }

    fn assemble(
        &self,
        columns: Vec<Vec<ScalarValue>>,
        rowtime: Vec<i64>,
        partition: Vec<i32>,
        offset: Vec<i64>,
    ) -> RecordBatch {
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len() + 3);
        for (field, column) in self.schema.fields().iter().zip(columns) {
            let array = if column.is_empty() {
                new_empty_array(field.data_type())
            } else {
                // Every scalar was produced for this field's type, so this cannot fail.
                ScalarValue::iter_to_array(column)
                    .unwrap_or_else(|_| new_empty_array(field.data_type()))
            };
            arrays.push(array);
        }
        arrays.push(Arc::new(Int64Array::from(rowtime)));
        arrays.push(Arc::new(Int32Array::from(partition)));
        arrays.push(Arc::new(Int64Array::from(offset)));
        RecordBatch::try_new(Arc::clone(&self.schema), arrays)
            .unwrap_or_else(|_| RecordBatch::new_empty(Arc::clone(&self.schema)))
    }
}

/// A header column's value: every header (`key` `None`), or the last value under `key`.
fn header_value(record: &Record, key: Option<&str>) -> ScalarValue {
    match key {
        Some(key) => ScalarValue::Binary(
            record
                .headers
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .and_then(|(_, v)| v.clone()),
        ),
        None => all_headers(&record.headers),
    }
}

/// Headers as an `ARRAY<STRUCT<KEY STRING, VALUE BYTES>>` value.
fn all_headers(headers: &[crate::record::Header]) -> ScalarValue {
    let DataType::List(item) = crate::catalog::schema::headers_type() else {
        return ScalarValue::Null;
    };
    let DataType::Struct(fields) = item.data_type() else {
        return ScalarValue::Null;
    };
    let keys = StringArray::from_iter(headers.iter().map(|(k, _)| Some(k.as_str())));
    let values = BinaryArray::from_iter(headers.iter().map(|(_, v)| v.as_deref()));
    let entries = StructArray::new(
        fields.clone(),
        vec![Arc::new(keys) as ArrayRef, Arc::new(values)],
        None,
    );
    let offsets = arrow::buffer::OffsetBuffer::from_lengths([headers.len()]);
    ScalarValue::List(Arc::new(ListArray::new(
        Arc::clone(&item),
        offsets,
        Arc::new(entries),
        None,
    )))
}

/// Record bytes as UTF-8 text.
fn text(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string())
}

/// The schema PROTOBUF_NOSR records of these columns have.
fn nosr(
    format: Format,
    columns: &[(String, DataType)],
    nullable: super::protobuf::Nullable,
) -> Result<Option<Writer>, FormatError> {
    if format != Format::ProtobufNoSr {
        return Ok(None);
    }
    Writer::protobuf_nosr(columns, nullable)
        .map(Some)
        .map_err(FormatError::Unsupported)
}

fn null_of(t: &DataType) -> Result<ScalarValue, FormatError> {
    ScalarValue::try_from(t).map_err(|e| FormatError::Unsupported(e.to_string()))
}
