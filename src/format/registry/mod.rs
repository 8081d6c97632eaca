//! [`SchemaRegistry`]: schemas by id and by subject, as Confluent's Schema Registry keeps them.
//!
//! Formats that carry a schema id in every record (AVRO, JSON_SR, PROTOBUF) look writer
//! schemas up here; sinks register the schema they write under `<topic>-value` /
//! `<topic>-key` (TopicNameStrategy), and `CREATE STREAM/TABLE` without columns reads its
//! columns from the subject's latest schema. Where the schemas live is a [`Backend`]:
//! [`Local`] (in the process: `eddy test`, the in-memory driver), [`client::Client`] (an
//! external registry's REST API, `ksql.schema.registry.url`), or the embedded registry of
//! `eddy server` ([`crate::kafka::schemas`], a Kafka topic). [`SchemaRegistry`] caches what
//! never changes (a schema by id, the id a subject gave a schema) in front of it.

pub mod client;
pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

pub use store::{Change, Compatibility, Store};

/// The kind of a registered schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SchemaKind {
    /// An Avro schema (JSON text).
    #[default]
    Avro,
    /// A JSON Schema document.
    Json,
    /// `.proto` text.
    Protobuf,
}

impl SchemaKind {
    /// Its name in the registry's API (`schemaType`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Avro => "AVRO",
            Self::Json => "JSON",
            Self::Protobuf => "PROTOBUF",
        }
    }
}

/// A schema another one imports (Protobuf imports, Avro named types).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Reference {
    /// The name it is imported by.
    pub name: String,
    /// The subject it is registered under.
    pub subject: String,
    /// Its version there.
    pub version: u32,
}

/// A schema: its kind, text and references.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Schema {
    /// Avro, JSON Schema or Protobuf.
    #[serde(rename = "schemaType", default)]
    pub kind: SchemaKind,
    /// Its text.
    #[serde(rename = "schema")]
    pub text: String,
    /// What it imports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Reference>,
}

impl Schema {
    /// A schema without references.
    pub fn new(kind: SchemaKind, text: &str) -> Self {
        Self {
            kind,
            text: text.to_string(),
            references: Vec::new(),
        }
    }

    /// Checks that the text is a schema of its kind.
    pub fn validate(&self) -> Result<(), RegistryError> {
        let invalid = |e: String| RegistryError::InvalidSchema(e);
        match self.kind {
            SchemaKind::Avro => apache_avro::Schema::parse_str(&self.text)
                .map(drop)
                .map_err(|e| invalid(e.to_string())),
            SchemaKind::Json => serde_json::from_str::<serde_json::Value>(&self.text)
                .map(drop)
                .map_err(|e| invalid(e.to_string())),
            SchemaKind::Protobuf if self.references.is_empty() => {
                super::protobuf::compile(&self.text, None)
                    .map(drop)
                    .map_err(invalid)
            }
            SchemaKind::Protobuf => Ok(()),
        }
    }
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
    /// The schemas it imports.
    pub references: Vec<Reference>,
}

/// What a registry refused or could not do, with the Confluent API's error codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// No such subject.
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    /// No such version.
    #[error("Version {0} not found.")]
    VersionNotFound(String),
    /// No schema with this id, or the subject has no such schema.
    #[error("Schema {0} not found")]
    SchemaNotFound(String),
    /// A hard delete of a subject not soft-deleted first.
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    /// A hard delete of a version not soft-deleted first.
    #[error("Subject '{0}' Version {1} was not deleted first before being permanently deleted")]
    VersionNotSoftDeleted(String, u32),
    /// A soft delete of a subject already soft-deleted.
    #[error("Subject '{0}' was soft deleted.Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    /// Not a version number.
    #[error(
        "The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""
    )]
    InvalidVersion(String),
    /// A subject without a level of its own.
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    NoSubjectCompatibility(String),
    /// The new schema breaks the subject's compatibility level.
    #[error(
        "Schema being registered is incompatible with an earlier schema for subject \"{subject}\" ({level}): {details}"
    )]
    Incompatible {
        /// The subject.
        subject: String,
        /// Its level.
        level: &'static str,
        /// What does not match.
        details: String,
    },
    /// The text is not a schema.
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    /// Not a compatibility level.
    #[error("Invalid compatibility level: {0}")]
    InvalidCompatibility(String),
    /// The registry (or its log) could not be reached.
    #[error("Schema Registry unavailable: {0}")]
    Unavailable(String),
    /// An external registry's own error.
    #[error("{message}; error code: {code}")]
    Remote {
        /// Confluent's error code (40401, 409, ...).
        code: u32,
        /// Its message.
        message: String,
    },
}

impl RegistryError {
    /// The HTTP status Confluent's registry answers it with.
    pub fn status(&self) -> u16 {
        match self.code() {
            code if code < 1000 => code as u16,
            code => (code / 100) as u16,
        }
    }

    /// Confluent's error code for it.
    pub fn code(&self) -> u32 {
        match self {
            Self::SubjectNotFound(_) => 40401,
            Self::VersionNotFound(_) => 40402,
            Self::SchemaNotFound(_) => 40403,
            Self::SubjectSoftDeleted(_) => 40404,
            Self::SubjectNotSoftDeleted(_) => 40405,
            Self::VersionNotSoftDeleted(..) => 40407,
            Self::NoSubjectCompatibility(_) => 40408,
            Self::InvalidVersion(_) => 42202,
            Self::Incompatible { .. } => 409,
            Self::InvalidSchema(_) => 42201,
            Self::InvalidCompatibility(_) => 42203,
            Self::Unavailable(_) => 50001,
            Self::Remote { code, .. } => *code,
        }
    }
}

/// Where schemas live.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Registers `schema` under `subject` (the existing id if it is there already).
    fn register(&self, subject: &str, schema: &Schema) -> Result<u32, RegistryError>;
    /// The schema with `id`.
    fn schema(&self, id: u32) -> Result<Option<Schema>, RegistryError>;
    /// The id of `subject`'s latest schema, and the schema.
    fn latest(&self, subject: &str) -> Result<Option<(u32, Schema)>, RegistryError>;
    /// Version `version` of `subject` (a reference's schema): its id and the schema.
    fn version(&self, subject: &str, version: u32) -> Result<Option<(u32, Schema)>, RegistryError>;
    /// Registers `schema` under `subject` with the id `id` (Confluent's IMPORT mode: what a
    /// test case's topics ask of the registry).
    fn import(&self, subject: &str, schema: &Schema, id: u32) -> Result<u32, RegistryError> {
        let _ = (subject, schema);
        Err(RegistryError::Unavailable(format!(
            "this registry does not import schemas with a given id ({id})"
        )))
    }
}

/// Schemas in the process: what `eddy test` and the in-memory driver use.
#[derive(Debug)]
pub struct Local(Mutex<Store>);

impl Default for Local {
    fn default() -> Self {
        Self(Mutex::new(Store::new(Compatibility::None)))
    }
}

impl Local {
    fn lock(&self) -> MutexGuard<'_, Store> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Backend for Local {
    fn register(&self, subject: &str, schema: &Schema) -> Result<u32, RegistryError> {
        let mut store = self.lock();
        if let Some((_, id)) = store.lookup(subject, schema) {
            return Ok(id);
        }
        match store.propose(subject, schema)? {
            change @ Change::Schema { id, .. } => {
                store.apply(&change);
                Ok(id)
            }
            _ => Err(RegistryError::Unavailable("not a registration".into())),
        }
    }

    fn schema(&self, id: u32) -> Result<Option<Schema>, RegistryError> {
        Ok(self.lock().schema(id).cloned())
    }

    fn latest(&self, subject: &str) -> Result<Option<(u32, Schema)>, RegistryError> {
        let store = self.lock();
        Ok(store
            .latest(subject)
            .and_then(|(_, id)| Some((id, store.schema(id)?.clone()))))
    }

    fn version(&self, subject: &str, version: u32) -> Result<Option<(u32, Schema)>, RegistryError> {
        let store = self.lock();
        Ok(store.version(subject, version))
    }

    fn import(&self, subject: &str, schema: &Schema, id: u32) -> Result<u32, RegistryError> {
        let mut store = self.lock();
        let Change::Schema { version, .. } = store.propose(subject, schema)? else {
            return Err(RegistryError::Unavailable("not a registration".into()));
        };
        if store.import(subject, version, id, schema) {
            Ok(id)
        } else {
            Err(RegistryError::Unavailable(format!(
                "id {id} is another schema's"
            )))
        }
    }
}

#[derive(Debug, Default)]
struct Cache {
    by_id: HashMap<u32, Registered>,
    ids: HashMap<(String, Schema), u32>,
    avro: HashMap<u32, Arc<apache_avro::Schema>>,
    protobuf: HashMap<u32, prost_reflect::FileDescriptor>,
}

/// Schemas by id and by subject: a backend, and a cache of what never changes.
#[derive(Debug)]
pub struct SchemaRegistry {
    backend: Arc<dyn Backend>,
    cache: Mutex<Cache>,
}

impl Default for SchemaRegistry {
    fn default() -> Self {
        Self::new(Arc::new(Local::default()))
    }
}

impl SchemaRegistry {
    /// A registry over `backend`.
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Self {
            backend,
            cache: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers `schema` under `subject` with the id `id` (see [`Backend::import`]).
    pub fn import(&self, subject: &str, schema: &Schema, id: u32) -> Result<u32, RegistryError> {
        self.backend.import(subject, schema, id)
    }

    /// Registers `schema` (with its references) under `subject`; returns its id (the
    /// existing one if the subject already has this exact schema).
    pub fn register_schema(&self, subject: &str, schema: &Schema) -> Result<u32, RegistryError> {
        let key = (subject.to_string(), schema.clone());
        if let Some(id) = self.lock().ids.get(&key) {
            return Ok(*id);
        }
        let id = self.backend.register(subject, schema)?;
        self.lock().ids.insert(key, id);
        Ok(id)
    }

    /// Registers `text` under `subject` (see [`Self::register_schema`]).
    pub fn register(
        &self,
        subject: &str,
        kind: SchemaKind,
        text: &str,
    ) -> Result<u32, RegistryError> {
        self.register_schema(subject, &Schema::new(kind, text))
    }

    /// The latest schema of `subject`.
    pub fn latest(&self, subject: &str) -> Result<Option<Registered>, RegistryError> {
        Ok(self
            .backend
            .latest(subject)?
            .map(|(id, schema)| self.remember(id, schema)))
    }

    /// Caches schema `id` (it never changes).
    fn remember(&self, id: u32, schema: Schema) -> Registered {
        let registered = Registered {
            id,
            kind: schema.kind,
            text: schema.text,
            references: schema.references,
        };
        self.lock().by_id.insert(id, registered.clone());
        registered
    }

    /// The schema with `id`.
    pub fn by_id(&self, id: u32) -> Result<Option<Registered>, RegistryError> {
        if let Some(found) = self.lock().by_id.get(&id) {
            return Ok(Some(found.clone()));
        }
        Ok(self
            .backend
            .schema(id)?
            .map(|schema| self.remember(id, schema)))
    }

    fn text(&self, id: u32) -> Result<Registered, String> {
        self.by_id(id).map_err(|e| e.to_string())?.ok_or_else(|| {
            format!("Schema {id} not found in the schema registry (error code 40403)")
        })
    }

    /// The Avro schema with `id`, parsed once.
    pub fn avro(&self, id: u32) -> Result<Arc<apache_avro::Schema>, String> {
        if let Some(schema) = self.lock().avro.get(&id) {
            return Ok(Arc::clone(schema));
        }
        let registered = self.text(id)?;
        let schema =
            Arc::new(apache_avro::Schema::parse_str(&registered.text).map_err(|e| e.to_string())?);
        self.lock().avro.insert(id, Arc::clone(&schema));
        Ok(schema)
    }

    /// The (first) message of the Protobuf schema with `id`, compiled once.
    pub fn protobuf(&self, id: u32) -> Result<prost_reflect::MessageDescriptor, String> {
        self.protobuf_file(id)?
            .messages()
            .next()
            .ok_or_else(|| "the protobuf schema declares no message".into())
    }

    /// The Protobuf schema with `id`, compiled once.
    pub fn protobuf_file(&self, id: u32) -> Result<prost_reflect::FileDescriptor, String> {
        if let Some(file) = self.lock().protobuf.get(&id) {
            return Ok(file.clone());
        }
        let registered = self.text(id)?;
        let mut imports = Vec::new();
        for reference in &registered.references {
            let (_, schema) = (self.backend.version(&reference.subject, reference.version))
                .map_err(|e| e.to_string())?
                .ok_or_else(|| {
                    format!(
                        "the reference {} ({} version {}) is not in the schema registry",
                        reference.name, reference.subject, reference.version
                    )
                })?;
            imports.push((reference.name.clone(), schema.text));
        }
        let file = super::protobuf::compile_with(&registered.text, &imports)?;
        self.lock().protobuf.insert(id, file.clone());
        Ok(file)
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
        assert_eq!((a, b), (Ok(1), Ok(2)));
        assert_eq!(
            registry.register("t-value", SchemaKind::Avro, "\"int\""),
            Ok(1)
        );
        assert_eq!(registry.latest("t-value").unwrap().map(|r| r.id), Some(2));
        assert_eq!(unframe(&frame(7, b"xy")), Ok((7, &b"xy"[..])));
        assert!(unframe(b"{}").is_err());
    }
}
