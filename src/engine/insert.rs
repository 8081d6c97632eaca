//! `INSERT INTO source [(columns)] VALUES (values)`: one record, encoded in the source's
//! formats and produced to its topic.
//!
//! Values are literal expressions, cast to their column's type; `ROWTIME` may be given (else
//! the record gets the current time). Columns left out are NULL. ksqlDB's errors for unknown
//! and read-only sources are kept; `ROWPARTITION`/`ROWOFFSET` cannot be set.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion_common::{DFSchema, ScalarValue};
use datafusion_physical_expr::PhysicalExpr;

use super::Runtime;
use crate::catalog::schema::{ROWOFFSET, ROWPARTITION, ROWTIME};
use crate::catalog::{Catalog, ColumnKind, Source};
use crate::error::Error;
use crate::format::encode::SinkEncoder;
use crate::format::registry::SchemaRegistry;
use crate::plan::PlanError;
use crate::plan::expr::ExprPlanner;
use crate::sql::ast::{InsertValues, normalize};

/// The source an `INSERT VALUES` writes to, with ksqlDB's errors.
pub fn target(catalog: &Catalog, stmt: &InsertValues) -> Result<Arc<Source>, PlanError> {
    let name = normalize(&stmt.target);
    let Some(source) = catalog.get(&name) else {
        let hint = catalog
            .sources()
            .find(|s| s.name.eq_ignore_ascii_case(&name))
            .map(|s| match stmt.target.quote_style {
                Some(_) => format!(
                    "\nDid you mean {}? Hint: try removing double quotes from the source name.",
                    s.name
                ),
                None => format!(
                    "\nDid you mean \"{}\"? Hint: wrap the source name in double quotes to make it case-sensitive.",
                    s.name
                ),
            })
            .unwrap_or_default();
        return Err(PlanError::Invalid(format!(
            "Cannot insert values into an unknown stream/table: `{name}`{hint}"
        )));
    };
    if source.is_source {
        return Err(PlanError::Invalid(format!(
            "Cannot insert values into read-only {}: {name}",
            source.kind.to_string().to_lowercase()
        )));
    }
    Ok(Arc::clone(source))
}

/// Encodes the row and produces it to the source's topic.
pub async fn insert<R: Runtime>(
    runtime: &R,
    registry: &SchemaRegistry,
    source: &Source,
    stmt: &InsertValues,
) -> Result<(), Error> {
    produce_row(runtime, registry, source, &row(source, stmt)?).await
}

/// Encodes a row given as a JSON object (`/inserts-stream`; names case-insensitive, `ROWTIME`
/// optional) and produces it to the source's topic.
pub async fn insert_json<R: Runtime>(
    runtime: &R,
    registry: &SchemaRegistry,
    source: &Source,
    object: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), Error> {
    let value_of = |name: &str| -> Result<Option<ScalarValue>, Error> {
        let Some(value) = crate::format::json::field(object, name) else {
            return Ok(None);
        };
        let data_type = source
            .schema
            .column(name)
            .map_or(DataType::Int64, |c| c.data_type.clone());
        crate::format::json::to_scalar(value, &data_type)
            .map(Some)
            .map_err(|e| PlanError::Invalid(format!("{name}: {e}")).into())
    };
    produce_row(runtime, registry, source, &row_of(source, value_of)?).await
}

async fn produce_row<R: Runtime>(
    runtime: &R,
    registry: &SchemaRegistry,
    source: &Source,
    batch: &RecordBatch,
) -> Result<(), Error> {
    let partitions = runtime.topic_partitions(&source.topic).await?.unwrap_or(1);
    let keys: Vec<String> = source.schema.keys().map(|c| c.name.clone()).collect();
    let encoder = SinkEncoder::try_new(
        &source.topic,
        partitions,
        (source.key_format, source.value_format),
        batch.schema_ref(),
        (&keys, source.wrap_single_value),
        None,
        (registry, &source.schemas),
    )?;
    for record in encoder.encode(batch, &[false])? {
        runtime.produce(record).await?;
    }
    Ok(())
}

/// The columns the statement gives values for (every non-header column when it names none),
/// with ksqlDB's errors for pseudo and header columns.
fn insert_columns(source: &Source, stmt: &InsertValues) -> Result<Vec<String>, PlanError> {
    let is_header = |name: &String| source.schema.headers().any(|h| h.name == *name);
    let names: Vec<String> = if stmt.columns.is_empty() {
        source
            .schema
            .names()
            .into_iter()
            .filter(|n| !is_header(n))
            .collect()
    } else {
        stmt.columns.iter().map(normalize).collect()
    };
    if let Some(pseudo) = names
        .iter()
        .find(|n| [ROWPARTITION, ROWOFFSET].contains(&n.as_str()))
    {
        return Err(PlanError::Invalid(format!(
            "Inserting into column `{pseudo}` is not allowed."
        )));
    }
    let headers: Vec<&str> = names
        .iter()
        .filter(|n| is_header(n))
        .map(String::as_str)
        .collect();
    if !headers.is_empty() {
        return Err(PlanError::Invalid(format!(
            "Cannot insert into HEADER columns: {}",
            headers.join(", ")
        )));
    }
    Ok(names)
}

/// The statement's row: the source's columns, then `ROWTIME`.
fn row(source: &Source, stmt: &InsertValues) -> Result<RecordBatch, Error> {
    let names = insert_columns(source, stmt)?;
    if names.len() != stmt.values.len() {
        return Err(PlanError::Invalid(format!(
            "Expected a value for each column. Expected Columns: {names:?}. Got {} values",
            stmt.values.len()
        ))
        .into());
    }
    let empty = DFSchema::empty();
    let planner = ExprPlanner::new(&empty);
    let one_row = RecordBatch::try_new_with_options(
        Arc::new(Schema::empty()),
        Vec::new(),
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(1)),
    )
    .map_err(PlanError::from)?;
    let value_of = |name: &str| -> Result<Option<ScalarValue>, Error> {
        let Some(i) = names.iter().position(|n| n == name) else {
            return Ok(None);
        };
        if let sqlparser::ast::Expr::CompoundIdentifier(parts) = &stmt.values[i] {
            return Err(PlanError::Invalid(format!(
                "Failed to prepare statement: '{}' is not a valid stream/table name or alias.",
                normalize(&parts[0])
            ))
            .into());
        }
        let expr: Arc<dyn PhysicalExpr> = planner.plan(&stmt.values[i])?;
        let array = expr
            .evaluate(&one_row)
            .and_then(|v| v.into_array(1))
            .map_err(PlanError::from)?;
        Ok(Some(
            ScalarValue::try_from_array(&array, 0).map_err(PlanError::from)?,
        ))
    };
    row_of(source, value_of)
}

/// The source's columns (each from `value_of`, NULL when it has none), then `ROWTIME`
/// (the current time when not given).
fn row_of(
    source: &Source,
    value_of: impl Fn(&str) -> Result<Option<ScalarValue>, Error>,
) -> Result<RecordBatch, Error> {
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    // Headers are not written: a record produced here has none.
    for column in
        (source.schema.columns.iter()).filter(|c| !matches!(c.kind, ColumnKind::Header(_)))
    {
        let value = match value_of(&column.name)? {
            Some(v) if !v.is_null() => v.cast_to(&column.data_type).map_err(PlanError::from)?,
            _ => ScalarValue::try_from(&column.data_type).map_err(PlanError::from)?,
        };
        fields.push(Field::new(&column.name, column.data_type.clone(), true));
        columns.push(value.to_array().map_err(PlanError::from)?);
    }
    let rowtime = match value_of(ROWTIME)? {
        Some(v) => v
            .cast_to(&DataType::Int64)
            .ok()
            .and_then(|v| match v {
                ScalarValue::Int64(ts) => ts,
                _ => None,
            })
            .unwrap_or_else(crate::record::now_ms),
        None => crate::record::now_ms(),
    };
    fields.push(Field::new(ROWTIME, DataType::Int64, false));
    columns.push(Arc::new(Int64Array::from(vec![rowtime])));
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(PlanError::from)?)
}
