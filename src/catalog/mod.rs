//! The catalog: the streams and tables Eddy knows, with their topics, formats and schemas.
//!
//! A [`Source`] is what `CREATE STREAM/TABLE` declares or a `CREATE ... AS SELECT` derives:
//! a name, a Kafka topic, key and value formats and a [`LogicalSchema`]. The [`Catalog`] is
//! the in-memory metastore the engine updates statement by statement; it does not run
//! queries or talk to Kafka.

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
