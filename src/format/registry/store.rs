//! [`Store`]: a Schema Registry's state (subjects, versions, schemas by id, compatibility
//! levels) as a state machine over [`Change`]s.
//!
//! The in-process registry applies its changes at once; the embedded registry of
//! `eddy server` appends them to a Kafka topic and every server applies the topic in order
//! ([`crate::kafka::schemas`]). A writer [`Store::propose`]s a registration (the next
//! version of the subject, the schema's id or the next free one) and [`Store::apply`]
//! decides it against everything before it in the log: two servers proposing at once both
//! write, the first in the log wins, the other sees it lost and proposes again. So ids never
//! need a leader, and every server that reads the log agrees on them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{RegistryError, Schema, SchemaKind};

/// A compatibility level, as Confluent's registry names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    /// No checks.
    None,
    /// A new schema reads data written with the latest one.
    Backward,
    /// ... with every earlier one.
    BackwardTransitive,
    /// The latest schema reads data written with the new one.
    Forward,
    /// Every earlier schema reads data written with the new one.
    ForwardTransitive,
    /// Backward and forward with the latest.
    Full,
    /// Backward and forward with every earlier one.
    FullTransitive,
}

impl Compatibility {
    /// The level named `name` (`BACKWARD`, ...).
    pub fn from_name(name: &str) -> Result<Self, RegistryError> {
        serde_json::from_value(serde_json::Value::String(name.to_ascii_uppercase()))
            .map_err(|_| RegistryError::InvalidCompatibility(name.to_string()))
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Backward => "BACKWARD",
            Self::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Self::Forward => "FORWARD",
            Self::ForwardTransitive => "FORWARD_TRANSITIVE",
            Self::Full => "FULL",
            Self::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    fn transitive(self) -> bool {
        matches!(
            self,
            Self::BackwardTransitive | Self::ForwardTransitive | Self::FullTransitive
        )
    }
}

/// One change to a registry's state: what its log holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "keytype", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Change {
    /// Version `version` of `subject` is the schema `id`.
    Schema {
        /// The subject.
        subject: String,
        /// Its new version.
        version: u32,
        /// The schema's global id.
        id: u32,
        /// The schema.
        #[serde(flatten)]
        schema: Schema,
    },
    /// A version is deleted (soft: still readable by id; permanent: gone from the subject).
    DeleteVersion {
        /// The subject.
        subject: String,
        /// The version.
        version: u32,
        /// A hard delete (after a soft one).
        permanent: bool,
    },
    /// Every version of a subject is deleted.
    DeleteSubject {
        /// The subject.
        subject: String,
        /// A hard delete (after a soft one).
        permanent: bool,
    },
    /// The compatibility level of a subject (or, without one, the default); `None` removes
    /// a subject's own level.
    Config {
        /// The subject, or none for the registry's default.
        subject: Option<String>,
        /// The level.
        level: Option<Compatibility>,
    },
}

/// One version of a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    /// The schema's id.
    pub id: u32,
    /// Soft-deleted.
    pub deleted: bool,
}

#[derive(Debug, Default, Clone)]
struct Subject {
    versions: BTreeMap<u32, Version>,
    compatibility: Option<Compatibility>,
}

/// A registry's state.
#[derive(Debug, Clone)]
pub struct Store {
    schemas: BTreeMap<u32, Schema>,
    subjects: BTreeMap<String, Subject>,
    compatibility: Compatibility,
}

impl Store {
    /// An empty registry whose default compatibility level is `compatibility`.
    pub fn new(compatibility: Compatibility) -> Self {
        Self {
            schemas: BTreeMap::new(),
            subjects: BTreeMap::new(),
            compatibility,
        }
    }

    /// Applies `change` if it is consistent with the state; returns whether it was.
    pub fn apply(&mut self, change: &Change) -> bool {
        match change {
            Change::Schema {
                subject,
                version,
                id,
                schema,
            } => self.apply_schema(subject, *version, *id, schema),
            Change::DeleteVersion {
                subject,
                version,
                permanent,
            } => {
                let Some(s) = self.subjects.get_mut(subject) else {
                    return false;
                };
                match (s.versions.get_mut(version), permanent) {
                    (Some(v), false) => v.deleted = true,
                    (Some(v), true) if v.deleted => {
                        s.versions.remove(version);
                    }
                    _ => return false,
                }
                true
            }
            Change::DeleteSubject { subject, permanent } => {
                let Some(s) = self.subjects.get_mut(subject) else {
                    return false;
                };
                if *permanent {
                    s.versions.retain(|_, v| !v.deleted);
                } else {
                    s.versions.values_mut().for_each(|v| v.deleted = true);
                }
                true
            }
            Change::Config { subject, level } => {
                match (subject, level) {
                    (None, Some(level)) => self.compatibility = *level,
                    (None, None) => {}
                    (Some(s), level) => {
                        self.subjects.entry(s.clone()).or_default().compatibility = *level
                    }
                }
                true
            }
        }
    }

    fn apply_schema(&mut self, subject: &str, version: u32, id: u32, schema: &Schema) -> bool {
        if self.id_of(schema).is_some_and(|known| known != id) {
            return false;
        }
        self.import(subject, version, id, schema)
    }

    /// Version `version` of `subject` is `schema` with the id `id`, even if the schema has
    /// another id already (Confluent's IMPORT mode); false if `id` is another schema's.
    pub fn import(&mut self, subject: &str, version: u32, id: u32, schema: &Schema) -> bool {
        if self.schemas.get(&id).is_some_and(|s| s != schema) {
            return false;
        }
        let entry = self.subjects.entry(subject.to_string()).or_default();
        if entry.versions.contains_key(&version) {
            return false;
        }
        entry
            .versions
            .insert(version, Version { id, deleted: false });
        self.schemas.insert(id, schema.clone());
        true
    }

    /// The id this schema has (under any subject).
    fn id_of(&self, schema: &Schema) -> Option<u32> {
        self.schemas
            .iter()
            .find(|(_, s)| *s == schema)
            .map(|(id, _)| *id)
    }

    /// The live version of `subject` that is `schema`, and its id.
    pub fn lookup(&self, subject: &str, schema: &Schema) -> Option<(u32, u32)> {
        let id = self.id_of(schema)?;
        let s = self.subjects.get(subject)?;
        s.versions
            .iter()
            .find(|(_, v)| v.id == id && !v.deleted)
            .map(|(version, v)| (*version, v.id))
    }

    /// The registration of `schema` under `subject` (checked against the subject's
    /// compatibility level), to be applied or appended to the log.
    pub fn propose(&self, subject: &str, schema: &Schema) -> Result<Change, RegistryError> {
        schema.validate()?;
        let live: Vec<&Schema> = self
            .live(subject)
            .map(|(_, id)| &self.schemas[&id])
            .collect();
        self.check(subject, schema, &live)?;
        let version = self
            .subjects
            .get(subject)
            .and_then(|s| s.versions.keys().next_back())
            .map_or(1, |v| v + 1);
        let id = self
            .id_of(schema)
            .unwrap_or_else(|| self.schemas.keys().next_back().map_or(1, |id| id + 1));
        Ok(Change::Schema {
            subject: subject.to_string(),
            version,
            id,
            schema: schema.clone(),
        })
    }

    /// Whether `schema` may follow `earlier` (oldest first) under `subject`'s level.
    pub fn check(
        &self,
        subject: &str,
        schema: &Schema,
        earlier: &[&Schema],
    ) -> Result<(), RegistryError> {
        let level = self.compatibility_of(subject);
        let against: &[&Schema] = match (level, earlier) {
            (Compatibility::None, _) | (_, []) => return Ok(()),
            (l, all) if l.transitive() => all,
            (_, [.., latest]) => std::slice::from_ref(latest),
        };
        for old in against {
            let backward = matches!(
                level,
                Compatibility::Backward
                    | Compatibility::BackwardTransitive
                    | Compatibility::Full
                    | Compatibility::FullTransitive
            );
            let forward = !matches!(
                level,
                Compatibility::Backward | Compatibility::BackwardTransitive
            );
            let mut problems = Vec::new();
            if backward && let Err(e) = schema.can_read(old) {
                problems.push(e);
            }
            if forward && let Err(e) = old.can_read(schema) {
                problems.push(e);
            }
            if !problems.is_empty() {
                return Err(RegistryError::Incompatible {
                    subject: subject.to_string(),
                    level: level.name(),
                    details: problems.join("; "),
                });
            }
        }
        Ok(())
    }

    /// The live versions of `subject` and their ids, oldest first.
    pub fn live(&self, subject: &str) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.subjects
            .get(subject)
            .into_iter()
            .flat_map(|s| s.versions.iter())
            .filter(|(_, v)| !v.deleted)
            .map(|(version, v)| (*version, v.id))
    }

    /// Every version of `subject` (deleted ones too if `deleted`).
    pub fn versions(&self, subject: &str, deleted: bool) -> Option<Vec<(u32, Version)>> {
        let s = self.subjects.get(subject)?;
        let versions: Vec<_> = s
            .versions
            .iter()
            .filter(|(_, v)| deleted || !v.deleted)
            .map(|(n, v)| (*n, *v))
            .collect();
        (!versions.is_empty()).then_some(versions)
    }

    /// The subjects with a live version (or any version if `deleted`).
    pub fn subjects(&self, deleted: bool) -> Vec<String> {
        self.subjects
            .iter()
            .filter(|(_, s)| s.versions.values().any(|v| deleted || !v.deleted))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The schema with `id`.
    pub fn schema(&self, id: u32) -> Option<&Schema> {
        self.schemas.get(&id)
    }

    /// The subjects and versions that are schema `id`.
    pub fn usages(&self, id: u32) -> Vec<(String, u32)> {
        self.subjects
            .iter()
            .flat_map(|(name, s)| {
                (s.versions.iter())
                    .filter(move |(_, v)| v.id == id && !v.deleted)
                    .map(move |(version, _)| (name.clone(), *version))
            })
            .collect()
    }

    /// The compatibility level that applies to `subject`.
    pub fn compatibility_of(&self, subject: &str) -> Compatibility {
        self.subject_compatibility(subject)
            .unwrap_or(self.compatibility)
    }

    /// The level set on `subject` itself.
    pub fn subject_compatibility(&self, subject: &str) -> Option<Compatibility> {
        self.subjects.get(subject).and_then(|s| s.compatibility)
    }

    /// The registry's default level.
    pub fn default_compatibility(&self) -> Compatibility {
        self.compatibility
    }

    /// Version `version` of `subject` (deleted or not): its id and schema.
    pub fn version(&self, subject: &str, version: u32) -> Option<(u32, Schema)> {
        let v = self.subjects.get(subject)?.versions.get(&version)?;
        Some((v.id, self.schemas.get(&v.id)?.clone()))
    }

    /// The latest live version of `subject`: its number and id.
    pub fn latest(&self, subject: &str) -> Option<(u32, u32)> {
        self.live(subject).last()
    }
}

impl Schema {
    /// Whether a reader with this schema reads data written with `writer`.
    fn can_read(&self, writer: &Schema) -> Result<(), String> {
        if self.kind != SchemaKind::Avro || writer.kind != SchemaKind::Avro {
            // JSON Schema and Protobuf evolution rules are not checked (yet).
            return Ok(());
        }
        let parse = |s: &Schema| apache_avro::Schema::parse_str(&s.text).map_err(|e| e.to_string());
        apache_avro::schema_compatibility::SchemaCompatibility::can_read(
            &parse(writer)?,
            &parse(self)?,
        )
        .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn avro(text: &str) -> Schema {
        Schema::new(SchemaKind::Avro, text)
    }

    fn register(store: &mut Store, subject: &str, schema: &Schema) -> Result<u32, RegistryError> {
        if let Some((_, id)) = store.lookup(subject, schema) {
            return Ok(id);
        }
        let change = store.propose(subject, schema)?;
        assert!(store.apply(&change));
        Ok(match change {
            Change::Schema { id, .. } => id,
            _ => unreachable!(),
        })
    }

    #[test]
    fn ids_are_global_and_versions_per_subject() {
        let mut store = Store::new(Compatibility::Backward);
        let int = avro(r#""int""#);
        assert_eq!(register(&mut store, "a-value", &int).unwrap(), 1);
        assert_eq!(register(&mut store, "b-value", &int).unwrap(), 1);
        let long = avro(r#""long""#);
        assert_eq!(register(&mut store, "a-value", &long).unwrap(), 2);
        assert_eq!(store.latest("a-value"), Some((2, 2)));
        assert_eq!(store.usages(1).len(), 2);
        // A string reader cannot read longs: BACKWARD refuses it.
        let string = avro(r#""string""#);
        let err = register(&mut store, "a-value", &string).unwrap_err();
        assert!(err.to_string().contains("incompatible"), "{err}");
        assert!(store.apply(&Change::Config {
            subject: Some("a-value".into()),
            level: Some(Compatibility::None),
        }));
        assert_eq!(register(&mut store, "a-value", &string).unwrap(), 3);
        assert_eq!(store.latest("a-value"), Some((3, 3)));
    }

    #[test]
    fn the_first_of_two_racing_registrations_wins() {
        let mut store = Store::new(Compatibility::None);
        let (x, y) = (avro(r#""int""#), avro(r#""string""#));
        // Two writers saw the same state and proposed the same version and id.
        let first = store.propose("s", &x).unwrap();
        let second = store.propose("s", &y).unwrap();
        assert!(store.apply(&first));
        assert!(!store.apply(&second));
        // The loser proposes again and gets the next version and id.
        let again = store.propose("s", &y).unwrap();
        assert!(store.apply(&again));
        assert_eq!(store.latest("s"), Some((2, 2)));
    }

    #[test]
    fn deletes_are_soft_then_permanent() {
        let mut store = Store::new(Compatibility::None);
        register(&mut store, "s", &avro(r#""int""#)).unwrap();
        let hard = Change::DeleteSubject {
            subject: "s".into(),
            permanent: true,
        };
        assert!(store.apply(&hard));
        assert_eq!(store.subjects(false), vec!["s".to_string()]);
        assert!(store.apply(&Change::DeleteSubject {
            subject: "s".into(),
            permanent: false,
        }));
        assert!(store.subjects(false).is_empty());
        assert_eq!(store.subjects(true), vec!["s".to_string()]);
        assert!(store.schema(1).is_some());
        assert!(store.apply(&hard));
        assert!(store.subjects(true).is_empty());
    }
}
