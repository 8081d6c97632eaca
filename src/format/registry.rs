//! [`SchemaRegistry`]: schemas by id and by subject, as Confluent's Schema Registry keeps them.
//!
//! Formats that carry a schema id in every record (AVRO, JSON_SR) look writer schemas up
//! here; sinks register the schema they write under `<topic>-value` / `<topic>-key`, and
//! `CREATE STREAM/TABLE` without columns reads its columns from the subject's latest
//! schema. This registry lives in the Eddy process (ids count from 1, registering the same
//! schema under a subject again returns its id); an HTTP client for an external Schema
//! Registry is not written yet, so records in these formats are only readable by the Eddy
//! that wrote them (and by the test driver, which shares the registry).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

/// The kind of a registered schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaKind {
    /// An Avro schema (JSON text).
    Avro,
    /// A JSON Schema document.
    Json,
    /// `.proto` text.
    Protobuf,
}

/// One registered schema.
#[derive(Debug, Clone)]
pub struct Registered {
    /// Its global id.
    pub id: u32,
    /// Avro or JSON Schema.
    pub kind: SchemaKind,
    /// Its text.
    pub text: String,
}

#[derive(Debug, Default)]
struct Inner {
    by_id: Vec<Registered>,
    subjects: BTreeMap<String, Vec<u32>>,
    avro: HashMap<u32, Arc<apache_avro::Schema>>,
    protobuf: HashMap<u32, prost_reflect::MessageDescriptor>,
}

/// Schemas by id and by subject.
#[derive(Debug, Default)]
pub struct SchemaRegistry {
    inner: Mutex<Inner>,
}

impl SchemaRegistry {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers `text` under `subject`; returns its id (the existing one if the subject
    /// already has this exact schema).
    pub fn register(&self, subject: &str, kind: SchemaKind, text: &str) -> u32 {
        let mut inner = self.lock();
        let versions = inner.subjects.get(subject).cloned().unwrap_or_default();
        if let Some(id) = versions
            .iter()
            .find(|id| inner.by_id[**id as usize - 1].text == text)
        {
            return *id;
        }
        let id = inner.by_id.len() as u32 + 1;
        inner.by_id.push(Registered {
            id,
            kind,
            text: text.to_string(),
        });
        inner
            .subjects
            .entry(subject.to_string())
            .or_default()
            .push(id);
        id
    }

    /// The latest schema of `subject`.
    pub fn latest(&self, subject: &str) -> Option<Registered> {
        let inner = self.lock();
        let id = *inner.subjects.get(subject)?.last()?;
        inner.by_id.get(id as usize - 1).cloned()
    }

    /// The schema with `id`.
    pub fn by_id(&self, id: u32) -> Option<Registered> {
        let inner = self.lock();
        inner.by_id.get((id as usize).checked_sub(1)?).cloned()
    }

    /// The Avro schema with `id`, parsed once.
    pub fn avro(&self, id: u32) -> Result<Arc<apache_avro::Schema>, String> {
        if let Some(schema) = self.lock().avro.get(&id) {
            return Ok(Arc::clone(schema));
        }
        let registered = self
            .by_id(id)
            .ok_or_else(|| format!("no schema with id {id} in the schema registry"))?;
        let schema =
            Arc::new(apache_avro::Schema::parse_str(&registered.text).map_err(|e| e.to_string())?);
        self.lock().avro.insert(id, Arc::clone(&schema));
        Ok(schema)
    }
}

impl SchemaRegistry {
    /// The (first) message of the Protobuf schema with `id`, compiled once.
    pub fn protobuf(&self, id: u32) -> Result<prost_reflect::MessageDescriptor, String> {
        if let Some(message) = self.lock().protobuf.get(&id) {
            return Ok(message.clone());
        }
        let registered = self
            .by_id(id)
            .ok_or_else(|| format!("no schema with id {id} in the schema registry"))?;
        let message = super::protobuf::compile(&registered.text, None)?;
        self.lock().protobuf.insert(id, message.clone());
        Ok(message)
    }
}

/// Confluent's wire format: a zero byte, the schema id (4 bytes, big-endian), the payload.
pub fn frame(id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 5);
    out.push(0);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The schema id and payload of a framed record.
pub fn unframe(bytes: &[u8]) -> Result<(u32, &[u8]), String> {
    match bytes {
        [0, a, b, c, d, payload @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), payload)),
        _ => Err("Unknown magic byte!".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registering_twice_keeps_the_id() {
        let registry = SchemaRegistry::default();
        let a = registry.register("t-value", SchemaKind::Avro, "\"int\"");
        let b = registry.register("t-value", SchemaKind::Avro, "\"long\"");
        assert_eq!((a, b), (1, 2));
        assert_eq!(registry.register("t-value", SchemaKind::Avro, "\"int\""), 1);
        assert_eq!(registry.latest("t-value").map(|r| r.id), Some(2));
        assert_eq!(unframe(&frame(7, b"xy")), Ok((7, &b"xy"[..])));
        assert!(unframe(b"{}").is_err());
    }
}
