//! [`SinkEncoder`]: result rows → records for the sink topic, in ksqlDB's encoding.
//!
//! Keys use the sink's key format, followed for windowed results by the window bytes of
//! Kafka Streams' windowed serdes (`<key><8-byte big-endian start>`, or for sessions
//! `<key><8-byte end><8-byte start>`). Values are JSON objects of the value columns (or the
//! bare value for the KAFKA format). Each record's partition is chosen from the inner key with
//! Java's partitioner. Tombstones become records with a null value.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, FieldRef, Int64Type};
use datafusion_common::ScalarValue;

use super::framed::{self, Writer};
use super::registry::SchemaRegistry;
use super::{Format, FormatError, delimited, json, kafka};
use crate::catalog::schema::{ROWTIME, WINDOWEND, WINDOWSTART};
use crate::catalog::{SchemaChoice, WindowInfo};
use crate::kafka::partitioner::partition_for;
use crate::record::Record;

/// For the schema formats: registers the schema of the `indexes` columns under `subject`,
/// or writes with the registered schema the statement names (`chosen`: its id and message).
fn registry_writer(
    (format, subject): (Format, &str),
    batch_schema: &arrow::datatypes::Schema,
    indexes: &[usize],
    unwrapped: bool,
    (registry, schemas, key): (&SchemaRegistry, &SchemaChoice, bool),
) -> Result<Option<Writer>, FormatError> {
    let chosen = schemas.part(key);
    if !format.is_framed() {
        return Ok(None);
    }
    if let (Some(id), full_name) = chosen
        && format != Format::ProtobufNoSr
    {
        return framed::writer_with(format, id, full_name, registry)
            .map(Some)
            .map_err(FormatError::Unsupported);
    }
    let columns: Vec<(String, DataType)> = indexes
        .iter()
        .map(|i| {
            let f = batch_schema.field(*i);
            (f.name().clone(), f.data_type().clone())
        })
        .collect();
    let shape = (&columns[..], unwrapped, schemas.nullable(key));
    framed::writer_for(format, subject, shape, registry)
        .map(Some)
        .map_err(FormatError::Unsupported)
}

/// The bytes of the single key `value` in `format`, where they need no registered schema
/// (KAFKA, JSON, DELIMITED): what a sink writes, so its partition can be computed (a pull
/// query's key lookup); `None` for other formats and a null key.
pub fn plain_key_bytes(format: Format, value: &ScalarValue) -> Option<Vec<u8>> {
    if value.is_null() {
        return None;
    }
    match format {
        Format::Kafka => kafka::from_scalar(value),
        Format::Json => Some(json::from_scalar(value).to_string().into_bytes()),
        Format::Delimited { delimiter } => {
            Some(delimited::from_scalars(std::slice::from_ref(value), delimiter).into_bytes())
        }
        _ => None,
    }
}

/// Encodes result batches for one sink.
#[derive(Debug, Clone)]
pub struct SinkEncoder {
    topic: String,
    partitions: i32,
    key_format: Format,
    value_format: Format,
    keys: Vec<usize>,
    values: Vec<usize>,
    /// The key columns as the encoder was made for (their names name a record's fields).
    key_fields: Vec<FieldRef>,
    value_fields: Vec<FieldRef>,
    rowtime: usize,
    window: Option<(WindowInfo, usize, usize)>,
    /// The registered schemas of AVRO or JSON_SR keys and values.
    key_writer: Option<Writer>,
    value_writer: Option<Writer>,
    /// `WRAP_SINGLE_VALUE=false`: the single value column is written bare.
    unwrap: bool,
    /// An INT column naming each record's partition, instead of its key's hash.
    partition_column: Option<usize>,
    /// Another topic's encoder whose key bytes choose the partition (the subscriptions of a
    /// foreign-key join meet a right table whose keys carry a registered schema's id).
    partition_like: Option<Box<SinkEncoder>>,
}

impl SinkEncoder {
    /// An encoder for batches shaped like `batch_schema`, where `key_names` are the key columns
    /// and every other column except `ROWTIME`, `WINDOWSTART` and `WINDOWEND` is a value column.
    pub fn try_new(
        topic: &str,
        partitions: i32,
        (key_format, value_format): (Format, Format),
        batch_schema: &arrow::datatypes::Schema,
        (key_names, wrap_single_value): (&[String], bool),
        window: Option<WindowInfo>,
        (registry, schemas): (&SchemaRegistry, &SchemaChoice),
    ) -> Result<Self, FormatError> {
        let index = |name: &str| {
            batch_schema
                .index_of(name)
                .map_err(|_| FormatError::Unsupported(format!("sink has no column {name}")))
        };
        let keys = key_names
            .iter()
            .map(|k| index(k))
            .collect::<Result<Vec<_>, _>>()?;
        let rowtime = index(ROWTIME)?;
        let window = match window {
            Some(w) => Some((w, index(WINDOWSTART)?, index(WINDOWEND)?)),
            None => None,
        };
        let values: Vec<usize> = (0..batch_schema.fields().len())
            .filter(|i| !keys.contains(i) && *i != rowtime)
            .filter(|i| !matches!(window, Some((_, s, e)) if *i == s || *i == e))
            .collect();
        let fields_at = |indexes: &[usize]| -> Vec<FieldRef> {
            (indexes.iter())
                .map(|i| std::sync::Arc::clone(&batch_schema.fields()[*i]))
                .collect()
        };
        let (key_fields, value_fields) = (fields_at(&keys), fields_at(&values));
        let writer = |format: Format, suffix: &str, indexes: &[usize], unwrapped: bool| {
            registry_writer(
                (format, &format!("{topic}-{suffix}")),
                batch_schema,
                indexes,
                unwrapped,
                (registry, schemas, suffix == "key"),
            )
        };
        let key_writer = writer(key_format, "key", &keys, keys.len() == 1)?;
        let unwrap = !wrap_single_value && values.len() == 1;
        let value_writer = writer(value_format, "value", &values, unwrap)?;
        Ok(Self {
            topic: topic.to_string(),
            partitions,
            key_format,
            value_format,
            keys,
            values,
            key_fields,
            value_fields,
            rowtime,
            window,
            key_writer,
            value_writer,
            unwrap,
            partition_column: None,
            partition_like: None,
        })
    }

    /// Writes each record to the partition its INT column `column` names (a foreign-key
    /// join's responses go back to their left row's partition, whatever its key format).
    pub fn partitioned_by(mut self, column: usize) -> Self {
        self.partition_column = Some(column);
        self
    }

    /// Places each record where `other` (an encoder of the same batches for another topic)
    /// would place it: the partition of the key bytes it writes.
    pub fn partitioned_like(mut self, other: SinkEncoder) -> Self {
        self.partition_like = Some(Box::new(other));
        self
    }

    /// One record per row; `tombstones[i]` (when given) makes row `i` a delete. A row whose
    /// timestamp is negative (a sink `TIMESTAMP` column's value) cannot be a Kafka record: it
    /// is left out, as ksqlDB's producer does.
    pub fn encode(
        &self,
        batch: &RecordBatch,
        tombstones: &[bool],
    ) -> Result<Vec<Record>, FormatError> {
        let rowtime = batch.column(self.rowtime).as_primitive::<Int64Type>();
        (0..batch.num_rows())
            .filter(|row| {
                let ok = rowtime.value(*row) >= 0;
                if !ok {
                    tracing::warn!(
                        target: "processing_log",
                        topic = %self.topic,
                        "skipped a result with the invalid timestamp {}",
                        rowtime.value(*row)
                    );
                }
                ok
            })
            .map(|row| {
                let key = self.encode_key(batch, row)?;
                let partition = match (self.partition_column, &self.partition_like) {
                    (Some(c), _) => batch
                        .column(c)
                        .as_primitive_opt::<arrow::datatypes::Int32Type>()
                        .filter(|p| p.is_valid(row))
                        .map(|p| p.value(row)),
                    (None, Some(other)) => other
                        .encode_key(batch, row)?
                        .map(|k| partition_for(&k, self.partitions)),
                    (None, None) => key.as_deref().map(|k| partition_for(k, self.partitions)),
                };
                let key = key.map(|k| self.append_window(k, batch, row));
                let value = if tombstones.get(row).copied().unwrap_or(false) {
                    None
                } else {
                    self.encode_value(batch, row)?
                };
                Ok(Record {
                    topic: self.topic.clone(),
                    partition,
                    offset: 0,
                    key,
                    value,
                    timestamp: rowtime.value(row),
                    headers: Vec::new(),
                })
            })
            .collect()
    }

    fn scalar(batch: &RecordBatch, column: usize, row: usize) -> Result<ScalarValue, FormatError> {
        ScalarValue::try_from_array(batch.column(column), row)
            .map_err(|e| FormatError::Unsupported(e.to_string()))
    }

    fn encode_key(&self, batch: &RecordBatch, row: usize) -> Result<Option<Vec<u8>>, FormatError> {
        let scalars = self
            .keys
            .iter()
            .map(|c| Self::scalar(batch, *c, row))
            .collect::<Result<Vec<_>, _>>()?;
        // A single NULL key, or a DELIMITED key of NULLs, is a null key (a JSON object of
        // NULLs is still an object).
        // Protobuf has no NULLs: a key of only NULLs is a null key.
        let delimited = matches!(self.key_format, Format::Delimited { .. });
        let protobuf = self.key_format.is_protobuf();
        if (scalars.len() == 1 || delimited || protobuf) && scalars.iter().all(ScalarValue::is_null)
        {
            return Ok(None);
        }
        Ok(match (self.key_format, scalars.as_slice()) {
            (_, []) | (Format::None, _) => None,
            (Format::Kafka, [v]) => plain_key_bytes(Format::Kafka, v),
            (Format::Delimited { delimiter }, values) => {
                Some(delimited::from_scalars(values, delimiter).into_bytes())
            }
            (_, [v]) if v.is_null() => None,
            (format, [v]) if !format.is_protobuf() => {
                Some(self.json_bytes(self.key_writer.as_ref(), &json::from_scalar(v))?)
            }
            (_, many) => Some(self.json_bytes(
                self.key_writer.as_ref(),
                &json::object(&self.key_fields, many),
            )?),
        })
    }

    /// JSON as the bytes of the sink's format (framed for AVRO and JSON_SR).
    fn json_bytes(
        &self,
        writer: Option<&Writer>,
        value: &serde_json::Value,
    ) -> Result<Vec<u8>, FormatError> {
        match writer {
            Some(writer) => framed::write(writer, value).map_err(FormatError::Unsupported),
            None => Ok(value.to_string().into_bytes()),
        }
    }

    fn append_window(&self, mut key: Vec<u8>, batch: &RecordBatch, row: usize) -> Vec<u8> {
        let Some((kind, start, end)) = self.window else {
            return key;
        };
        let start = batch.column(start).as_primitive::<Int64Type>().value(row);
        let end = batch.column(end).as_primitive::<Int64Type>().value(row);
        match kind {
            WindowInfo::Time { .. } => key.extend_from_slice(&start.to_be_bytes()),
            WindowInfo::Session => {
                key.extend_from_slice(&end.to_be_bytes());
                key.extend_from_slice(&start.to_be_bytes());
            }
        }
        key
    }

    /// A row's value bytes; none for a NULL unwrapped single value, which a serializer
    /// writes as a null value, as Kafka's serializers do.
    fn encode_value(
        &self,
        batch: &RecordBatch,
        row: usize,
    ) -> Result<Option<Vec<u8>>, FormatError> {
        let scalars = self
            .values
            .iter()
            .map(|c| Self::scalar(batch, *c, row))
            .collect::<Result<Vec<_>, _>>()?;
        let plain = matches!(self.value_format, Format::Kafka | Format::Delimited { .. });
        if self.unwrap && !plain && scalars.iter().all(ScalarValue::is_null) {
            return Ok(None);
        }
        self.value_bytes(&scalars).map(Some)
    }

    fn value_bytes(&self, scalars: &[ScalarValue]) -> Result<Vec<u8>, FormatError> {
        match (self.value_format, scalars) {
            (Format::Kafka, [v]) => Ok(kafka::from_scalar(v).unwrap_or_default()),
            (Format::Kafka, _) => Err(FormatError::Unsupported(
                "The KAFKA format only supports a single field".into(),
            )),
            (Format::Delimited { delimiter }, values) => {
                Ok(delimited::from_scalars(values, delimiter).into_bytes())
            }
            (_, [v]) if self.unwrap => {
                self.json_bytes(self.value_writer.as_ref(), &json::from_scalar(v))
            }
            _ => self.json_bytes(
                self.value_writer.as_ref(),
                &json::object(&self.value_fields, scalars),
            ),
        }
    }
}
