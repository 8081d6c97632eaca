//! [`LogicalSchema`]: a source's key and value columns, and the Arrow schema its batches have.
//!
//! Batches flowing through a query carry, in order: the key columns, the value columns, the
//! header columns, then the pseudo columns `ROWTIME`, `ROWPARTITION` and `ROWOFFSET` (and for
//! windowed sources `WINDOWSTART`/`WINDOWEND` after the key). This file defines that layout once; it does not
//! decode records ([`crate::format`] does).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// Event time of a record, in epoch milliseconds.
pub const ROWTIME: &str = "ROWTIME";
/// The partition a record was read from.
pub const ROWPARTITION: &str = "ROWPARTITION";
/// The offset a record was read from.
pub const ROWOFFSET: &str = "ROWOFFSET";
/// Start of a record's window (windowed sources).
pub const WINDOWSTART: &str = "WINDOWSTART";
/// End of a record's window (windowed sources).
pub const WINDOWEND: &str = "WINDOWEND";

/// Where a column's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnKind {
    /// The record key.
    Key,
    /// The record value.
    Value,
    /// The record's headers: all of them (`HEADERS`), or the last one with a key
    /// (`HEADER('k')`).
    Header(Option<String>),
}

/// The type of a `HEADERS` column: `ARRAY<STRUCT<KEY STRING, VALUE BYTES>>`.
pub fn headers_type() -> DataType {
    let entry = DataType::Struct(
        vec![
            Field::new("KEY", DataType::Utf8, true),
            Field::new("VALUE", DataType::Binary, true),
        ]
        .into(),
    );
    DataType::List(Arc::new(Field::new("item", entry, true)))
}

/// One column of a source.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Normalized name.
    pub name: String,
    /// Arrow type of its values.
    pub data_type: DataType,
    /// Key or value.
    pub kind: ColumnKind,
}

/// The columns of a source: key columns first, then value columns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LogicalSchema {
    /// All columns, keys first.
    pub columns: Vec<Column>,
}

impl LogicalSchema {
    /// Builds a schema, putting key columns first.
    pub fn new(columns: Vec<Column>) -> Self {
        let (mut keys, values): (Vec<_>, Vec<_>) =
            columns.into_iter().partition(|c| c.kind == ColumnKind::Key);
        keys.extend(values);
        Self { columns: keys }
    }

    /// The columns of batches with `schema` (pseudo columns and window bounds left out),
    /// those named in `keys` being key columns.
    /// Key columns come in the order of `keys` (a GROUP BY's order, not the projection's).
    pub fn from_batch(schema: &Schema, keys: &[String]) -> Self {
        let column = |f: &Field, kind| Column {
            name: f.name().clone(),
            data_type: f.data_type().clone(),
            kind,
        };
        let mut columns: Vec<Column> = keys
            .iter()
            .filter_map(|k| schema.field_with_name(k).ok())
            .map(|f| column(f, ColumnKind::Key))
            .collect();
        columns.extend(
            schema
                .fields()
                .iter()
                .filter(|f| ![ROWTIME, WINDOWSTART, WINDOWEND].contains(&f.name().as_str()))
                .filter(|f| !keys.contains(f.name()))
                .map(|f| column(f, ColumnKind::Value)),
        );
        Self { columns }
    }

    /// The key columns.
    pub fn keys(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| c.kind == ColumnKind::Key)
    }

    /// The value columns.
    pub fn values(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| c.kind == ColumnKind::Value)
    }

    /// The header columns.
    pub fn headers(&self) -> impl Iterator<Item = &Column> {
        self.columns
            .iter()
            .filter(|c| matches!(c.kind, ColumnKind::Header(_)))
    }

    /// The key or value columns as `(name, type)`.
    pub fn typed(&self, kind: ColumnKind) -> Vec<(String, DataType)> {
        self.columns
            .iter()
            .filter(|c| c.kind == kind)
            .map(|c| (c.name.clone(), c.data_type.clone()))
            .collect()
    }

    /// Every column's name, keys first (what `SELECT *` reads).
    pub fn names(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.name.clone()).collect()
    }

    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The Arrow schema of batches read from this source: keys, `WINDOWSTART`/`WINDOWEND` when
    /// `windowed`, values, then `ROWTIME`, `ROWPARTITION`, `ROWOFFSET`.
    pub fn batch_schema(&self, windowed: bool) -> SchemaRef {
        let mut fields: Vec<Field> = self
            .keys()
            .map(|c| Field::new(&c.name, c.data_type.clone(), true))
            .collect();
        if windowed {
            fields.push(Field::new(WINDOWSTART, DataType::Int64, false));
            fields.push(Field::new(WINDOWEND, DataType::Int64, false));
        }
        fields.extend(
            self.values()
                .chain(self.headers())
                .map(|c| Field::new(&c.name, c.data_type.clone(), true)),
        );
        fields.push(Field::new(ROWTIME, DataType::Int64, false));
        fields.push(Field::new(ROWPARTITION, DataType::Int32, false));
        fields.push(Field::new(ROWOFFSET, DataType::Int64, false));
        Arc::new(Schema::new(fields))
    }

    /// `ID BIGINT KEY, NAME STRING`: the schema as ksqlDB prints it.
    pub fn to_sql(&self) -> String {
        self.columns
            .iter()
            .map(|c| {
                let kind = match &c.kind {
                    ColumnKind::Key => " KEY".to_string(),
                    ColumnKind::Value => String::new(),
                    ColumnKind::Header(None) => " HEADERS".to_string(),
                    ColumnKind::Header(Some(k)) => format!(" HEADER('{k}')"),
                };
                format!(
                    "`{}` {}{kind}",
                    c.name,
                    crate::types::sql_name(&c.data_type)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}
