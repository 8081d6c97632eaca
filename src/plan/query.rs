//! Planning a persistent query (`CREATE ... AS SELECT`): from AST to operators and a sink.
//!
//! The plan is ksqlDB's: source → `WHERE` → (aggregation, see [`super::aggregate`]) →
//! projection → sink. The sink's schema, key, formats, topic and window come from the query
//! and its `WITH` clause. Joins and `PARTITION BY` are not planned yet. The engine turns the
//! plan into a [`crate::exec::task::PipelineSpec`] once it knows the sink's partitions.

use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion_common::DFSchema;
use datafusion_expr::Expr;
use datafusion_physical_expr::PhysicalExpr;
use sqlparser::ast::{Expr as SqlExpr, SelectItem};

use super::aggregate::{Namer, contains_aggregate, non_aggregate_error, plan_aggregate};
use super::ddl;
use super::error::PlanError;
use super::expr::ExprPlanner;
use super::partition::plan_partition_by;
use super::rewrite::column_ref;
use super::table_functions::plan_table_functions;
use crate::catalog::schema::{ROWOFFSET, ROWPARTITION, ROWTIME, WINDOWEND, WINDOWSTART};
use crate::catalog::{Catalog, Column, ColumnKind, LogicalSchema, Source, WindowInfo};
use crate::exec::aggregate::EmitMode;
use crate::exec::task::OperatorSpec;
use crate::exec::window::WindowSpec;
use crate::sql::ast::{Emit, ProjectionItem, Query, SourceKind, WithProperties, normalize};

type Result<T> = std::result::Result<T, PlanError>;

/// What a persistent query writes to.
#[derive(Debug)]
pub struct SinkRequest<'a> {
    /// The sink's name (normalized).
    pub name: String,
    /// Stream or table, as the statement says.
    pub kind: SourceKind,
    /// The statement's `WITH` clause.
    pub properties: &'a WithProperties,
    /// The query id that will write it.
    pub query_id: String,
}

/// A planned persistent query.
#[derive(Debug)]
pub struct QueryPlan {
    /// The source read.
    pub source: Arc<Source>,
    /// The catalog entry of the sink.
    pub sink: Source,
    /// Operators in order, each with its input schema.
    pub operators: Vec<(OperatorSpec, SchemaRef)>,
    /// The schema of the rows the sink receives.
    pub output_schema: SchemaRef,
    /// Names of the key columns in `output_schema`.
    pub key_names: Vec<String>,
    /// `PARTITIONS` of the sink's `WITH` clause, if given.
    pub partitions: Option<i32>,
}

/// Plans `query` writing to `sink`.
pub fn plan_query(query: &Query, catalog: &Catalog, sink: SinkRequest<'_>) -> Result<QueryPlan> {
    if !query.from.joins.is_empty() {
        return Err(PlanError::Unsupported("joins".into()));
    }
    let source_name = normalize(&query.from.base.name);
    let source = Arc::clone(
        catalog
            .get(&source_name)
            .ok_or(PlanError::UnknownSource(source_name))?,
    );
    let input = source.schema.batch_schema(false);
    let mut operators = Vec::new();
    if let Some(predicate) = &query.selection {
        let df = DFSchema::try_from(input.as_ref().clone())?;
        operators.push((
            OperatorSpec::Filter(ExprPlanner::new(&df).plan(predicate)?),
            Arc::clone(&input),
        ));
    }
    let aggregated = !query.group_by.is_empty() || query.projection.iter().any(item_has_aggregate);
    check_shape(query, &source, sink.kind, aggregated)?;
    let (projection, key_names, after, window) =
        plan_body(query, &source, &input, aggregated, &mut operators)?;
    let (project, output_schema, key_names) = plan_projection(
        &projection,
        &key_names,
        &after,
        (aggregated, window.is_some()),
        &sink.name,
    )?;
    operators.push((OperatorSpec::Project(project), after));
    let sink_source = sink_source(&sink, &source, &output_schema, &key_names, window)?;
    Ok(QueryPlan {
        source,
        sink: sink_source,
        operators,
        output_schema,
        key_names,
        partitions: ddl::partitions(sink.properties)?,
    })
}

/// Select items over the body's output, key names, the output schema, the window.
type Body = (
    Vec<(String, SqlExpr)>,
    Vec<String>,
    SchemaRef,
    Option<WindowInfo>,
);

/// What comes between the filter and the projection: the aggregation, if any. Returns the
/// select items over its output, the key names, its output schema and its window.
fn plan_body(
    query: &Query,
    source: &Source,
    input: &SchemaRef,
    aggregated: bool,
    operators: &mut Vec<(OperatorSpec, SchemaRef)>,
) -> Result<Body> {
    Ok(if aggregated {
        let emit = if query.emit == Some(Emit::Final) {
            EmitMode::Final
        } else {
            EmitMode::Changes
        };
        let planned = plan_aggregate(query, source, input, emit)?;
        let output = Arc::clone(&planned.spec.output_schema);
        let window = planned.spec.window.map(|w| match w {
            WindowSpec::Session { .. } => WindowInfo::Session,
            other => WindowInfo::Time {
                size_ms: other.size(),
            },
        });
        operators.push((
            OperatorSpec::Aggregate(Arc::clone(&planned.spec)),
            Arc::clone(input),
        ));
        (planned.projection, planned.key_names, output, window)
    } else if !query.partition_by.is_empty() {
        if source.kind == SourceKind::Table {
            return Err(PlanError::Invalid(
                "Cannot repartition a TABLE source.".into(),
            ));
        }
        let (items, keys, rekeyed) = plan_partition_by(
            &query.partition_by,
            &query.projection,
            source,
            input,
            operators,
        )?;
        (items, keys, rekeyed, None)
    } else {
        let keys: Vec<String> = source.schema.keys().map(|c| c.name.clone()).collect();
        let items = expand_items(&query.projection, &source.schema.names())?;
        let (items, exploded) = plan_table_functions(items, input, operators)?;
        (items, keys, exploded, None)
    })
}

fn item_has_aggregate(item: &ProjectionItem) -> bool {
    match item {
        ProjectionItem::Item(
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. },
        )
        | ProjectionItem::StructAll(e) => contains_aggregate(e),
        _ => false,
    }
}

/// ksqlDB's rules on which statement may hold which query.
fn check_shape(query: &Query, source: &Source, kind: SourceKind, aggregated: bool) -> Result<()> {
    if query.window.is_some() && query.group_by.is_empty() {
        return Err(PlanError::Invalid(
            "WINDOW clause requires a GROUP BY clause.".into(),
        ));
    }
    if query.having.is_some() && query.group_by.is_empty() {
        return Err(PlanError::Invalid(
            "HAVING clause requires a GROUP BY clause.".into(),
        ));
    }
    if query.emit == Some(Emit::Final) && query.window.is_none() {
        return Err(PlanError::Invalid(
            "EMIT FINAL is only supported for windowed aggregations.".into(),
        ));
    }
    if query.window.is_some() && source.kind == SourceKind::Table {
        return Err(PlanError::Invalid(
            "Windowed aggregations are only supported on streams.".into(),
        ));
    }
    let produces = if aggregated || source.kind == SourceKind::Table {
        SourceKind::Table
    } else {
        SourceKind::Stream
    };
    if produces != kind {
        let (is, use_) = match produces {
            SourceKind::Table => ("TABLE", "CREATE TABLE AS SELECT"),
            SourceKind::Stream => ("STREAM", "CREATE STREAM AS SELECT"),
        };
        return Err(PlanError::Invalid(format!(
            "Invalid result type. Your SELECT query produces a {is}. Please use {use_} statement instead."
        )));
    }
    Ok(())
}

/// Select items as `(name, expression)`, with `*` expanded to `star`.
pub fn expand_items(
    projection: &[ProjectionItem],
    star: &[String],
) -> Result<Vec<(String, SqlExpr)>> {
    let mut namer = Namer::default();
    let mut out = Vec::new();
    for item in projection {
        let ProjectionItem::Item(item) = item else {
            return Err(PlanError::Unsupported(format!("select item {item}")));
        };
        match item {
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                out.extend(star.iter().map(|c| (c.clone(), column_ref(c))));
            }
            SelectItem::UnnamedExpr(e) => out.push((namer.name(e, None), e.clone())),
            SelectItem::ExprWithAlias { expr, alias } => {
                out.push((namer.name(expr, Some(alias)), expr.clone()))
            }
            other => return Err(PlanError::Unsupported(format!("select item {other}"))),
        }
    }
    Ok(out)
}

type Projection = (Vec<(String, Arc<dyn PhysicalExpr>)>, SchemaRef, Vec<String>);

/// Plans the select list over `input`; key columns must be selected (possibly renamed).
fn plan_projection(
    items: &[(String, SqlExpr)],
    keys: &[String],
    input: &SchemaRef,
    (aggregated, windowed): (bool, bool),
    sink: &str,
) -> Result<Projection> {
    let df = DFSchema::try_from(input.as_ref().clone())?;
    let planner = ExprPlanner::new(&df);
    let mut exprs = Vec::new();
    let mut out_keys = vec![None; keys.len()];
    for (name, item) in items {
        if exprs.iter().any(|(n, _)| n == name) {
            return Err(PlanError::Invalid(format!(
                "Duplicate column names: {name}"
            )));
        }
        let lowered = planner.lower(item).map_err(|e| {
            if aggregated {
                non_aggregate_error(e, "SELECT")
            } else {
                e
            }
        })?;
        if let Expr::Column(c) = &lowered
            && let Some(i) = keys.iter().position(|k| *k == c.name)
        {
            {
                if out_keys[i].is_some() {
                    return Err(PlanError::Invalid(format!(
                        "The projection contains a key column more than once: {}",
                        c.name
                    )));
                }
                out_keys[i] = Some(name.clone());
            }
        }
        exprs.push((name.clone(), planner.physical(&lowered)?));
    }
    let key_names = out_keys
        .into_iter()
        .zip(keys)
        .map(|(found, key)| {
            found.ok_or_else(|| PlanError::Invalid(format!(
                "Key missing from projection (ie, SELECT). The query used to build `{sink}` must include the key column {key} in its projection (eg, SELECT {key}...)."
            )))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut passthrough = vec![ROWTIME];
    if windowed {
        passthrough.extend([WINDOWSTART, WINDOWEND]);
    }
    if let Some((name, _)) = exprs.iter().find(|(n, _)| {
        [ROWTIME, WINDOWSTART, WINDOWEND, ROWPARTITION, ROWOFFSET].contains(&n.as_str())
    }) {
        return Err(PlanError::Invalid(format!(
            "`{name}` is a reserved column name. You cannot use it as an alias for a column."
        )));
    }
    for name in passthrough {
        exprs.push((name.to_string(), planner.plan(&column_ref(name))?));
    }
    let fields = exprs
        .iter()
        .map(|(n, e)| Ok(Field::new(n, e.data_type(input)?, true)))
        .collect::<Result<Vec<_>>>()?;
    Ok((exprs, Arc::new(Schema::new(fields)), key_names))
}

fn sink_source(
    sink: &SinkRequest<'_>,
    source: &Source,
    output: &SchemaRef,
    keys: &[String],
    window: Option<WindowInfo>,
) -> Result<Source> {
    let (key_format, value_format) = ddl::formats(
        sink.properties,
        Some((source.key_format, source.value_format)),
    )?;
    let columns = output
        .fields()
        .iter()
        .filter(|f| ![ROWTIME, WINDOWSTART, WINDOWEND].contains(&f.name().as_str()))
        .map(|f| Column {
            name: f.name().clone(),
            data_type: f.data_type().clone(),
            kind: if keys.contains(f.name()) {
                ColumnKind::Key
            } else {
                ColumnKind::Value
            },
        })
        .collect();
    Ok(Source {
        name: sink.name.clone(),
        kind: sink.kind,
        topic: sink
            .properties
            .get_str("KAFKA_TOPIC")
            .unwrap_or_else(|| sink.name.clone()),
        key_format,
        value_format,
        schema: LogicalSchema::new(columns),
        timestamp_column: None,
        window,
        written_by: Some(sink.query_id.clone()),
        is_source: false,
    })
}
