//! The catalog: the streams and tables Eddy knows, with their topics, formats and schemas.
//!
//! A [`Source`] is what `CREATE STREAM/TABLE` declares or a `CREATE ... AS SELECT` derives:
//! a name, a Kafka topic, key and value formats and a [`LogicalSchema`]. The [`Catalog`] is
//! the in-memory metastore the engine updates statement by statement; it does not run
//! queries or talk to Kafka.

pub mod reserved;
pub mod schema;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use schema::{Column, ColumnKind, LogicalSchema};

use crate::format::Format;
use crate::sql::ast::SourceKind;

/// A stream or table in the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// The name, as ksqlDB normalizes it (unquoted names upper-cased).
    pub name: String,
    /// Stream or table.
    pub kind: SourceKind,
    /// The Kafka topic holding the records.
    pub topic: String,
    /// How keys are encoded.
    pub key_format: Format,
    /// How values are encoded.
    pub value_format: Format,
    /// Key and value columns.
    pub schema: LogicalSchema,
    /// The value column that holds event time, instead of the record timestamp.
    pub timestamp_column: Option<String>,
    /// `TIMESTAMP_FORMAT`: the timestamp column is text in this Java pattern.
    pub timestamp_format: Option<String>,
    /// The window of a windowed source (the output of a windowed aggregation).
    pub window: Option<WindowInfo>,
    /// The query that writes this source, for `CREATE ... AS SELECT` sinks.
    pub written_by: Option<String>,
    /// `CREATE SOURCE STREAM/TABLE`: read-only.
    pub is_source: bool,
    /// `WRAP_SINGLE_VALUE`: a single value column is written as an object (or record)
    /// holding it (`true`, the default) or as the bare value.
    pub wrap_single_value: bool,
    /// Registered schemas the statement names for keys and values.
    pub schemas: SchemaChoice,
}

/// The registered schemas a statement names (`KEY_SCHEMA_ID`, `VALUE_SCHEMA_ID`) and the
/// message or record in them (`KEY_SCHEMA_FULL_NAME`, `VALUE_SCHEMA_FULL_NAME`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaChoice {
    /// The keys' schema id.
    pub key_id: Option<u32>,
    /// The values' schema id.
    pub value_id: Option<u32>,
    /// The keys' message or record name.
    pub key_full_name: Option<String>,
    /// The values' message or record name.
    pub value_full_name: Option<String>,
    /// How generated Protobuf key schemas represent NULLs.
    pub key_nullable: crate::format::protobuf::Nullable,
    /// How generated Protobuf value schemas represent NULLs.
    pub value_nullable: crate::format::protobuf::Nullable,
}

impl SchemaChoice {
    /// How generated Protobuf schemas of keys (`key`) or values represent NULLs.
    pub fn nullable(&self, key: bool) -> crate::format::protobuf::Nullable {
        if key {
            self.key_nullable
        } else {
            self.value_nullable
        }
    }

    /// The id and full name for keys (`key`) or values.
    pub fn part(&self, key: bool) -> (Option<u32>, Option<&str>) {
        if key {
            (self.key_id, self.key_full_name.as_deref())
        } else {
            (self.value_id, self.value_full_name.as_deref())
        }
    }
}

impl Source {
    /// A stream named like its topic, with default properties (no timestamp column, window
    /// or writer; single values wrapped).
    pub fn stream(
        topic: &str,
        (key_format, value_format): (Format, Format),
        schema: LogicalSchema,
    ) -> Self {
        Self {
            name: topic.to_string(),
            kind: SourceKind::Stream,
            topic: topic.to_string(),
            key_format,
            value_format,
            schema,
            timestamp_column: None,
            timestamp_format: None,
            window: None,
            written_by: None,
            is_source: false,
            wrap_single_value: true,
            schemas: SchemaChoice::default(),
        }
    }
}

/// The window type of a windowed source's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowInfo {
    /// Tumbling or hopping windows of a fixed size (ms): keys carry the window start.
    Time {
        /// Window size in milliseconds.
        size_ms: i64,
    },
    /// Session windows: keys carry the window end and start.
    Session,
}

/// Sources by name.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    sources: BTreeMap<String, Arc<Source>>,
}

impl Catalog {
    /// The source called `name` (already normalized).
    pub fn get(&self, name: &str) -> Option<&Arc<Source>> {
        self.sources.get(name)
    }

    /// Adds or replaces a source.
    pub fn insert(&mut self, source: Source) -> Arc<Source> {
        let source = Arc::new(source);
        self.sources
            .insert(source.name.clone(), Arc::clone(&source));
        source
    }

    /// Removes a source, returning it.
    pub fn remove(&mut self, name: &str) -> Option<Arc<Source>> {
        self.sources.remove(name)
    }

    /// All sources, by name.
    pub fn sources(&self) -> impl Iterator<Item = &Arc<Source>> {
        self.sources.values()
    }
}
