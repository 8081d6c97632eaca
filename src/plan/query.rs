//! Planning a persistent query (`CREATE ... AS SELECT`): from AST to operators and a sink.
//!
//! The plan is ksqlDB's: source → `WHERE` → (aggregation, see [`super::aggregate`]) →
//! projection → sink. The sink's schema, key, formats, topic and window come from the query
//! and its `WITH` clause. Joins and `PARTITION BY` are not planned yet. The engine turns the
//! plan into a [`crate::exec::task::PipelineSpec`] once it knows the sink's partitions.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion_common::DFSchema;
use datafusion_expr::Expr;
use datafusion_physical_expr::PhysicalExpr;
use sqlparser::ast::{Expr as SqlExpr, SelectItem};

use super::aggregate::{Namer, contains_aggregate, non_aggregate_error, plan_aggregate};
use super::ddl;
use super::error::PlanError;
use super::expr::ExprPlanner;
use super::fold::{has_fold, plan_folds};
use super::from::{FromPlan, InputPlan, KeyColumn, plan_from};
use super::partition::plan_partition_by;
use super::rewrite::column_ref;
use super::table_functions::plan_table_functions;
use crate::catalog::schema::{ROWOFFSET, ROWPARTITION, ROWTIME, WINDOWEND, WINDOWSTART};
use crate::catalog::{Catalog, LogicalSchema, Source, WindowInfo};
use crate::exec::aggregate::EmitMode;
use crate::exec::task::{JoinStageSpec, OperatorSpec};
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
    /// A client's push or pull query: its rows go to the client, not to a topic, so the
    /// select list is the output as written (key columns optional, system columns allowed,
    /// `*` of a windowed source includes the window bounds).
    pub transient: bool,
    /// What the session's properties ask of the planner.
    pub settings: Settings,
}

/// What the session's properties (`SET`, a request's) ask of the planner.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `ksql.new.query.planner.enabled`: key columns come in the projection's order (else
    /// the source's), and a stream's query may leave its key out (the rows lose their key).
    pub new_planner: bool,
    /// `ksql.persistence.default.format.key/value`: formats for a statement that names none
    /// and whose source gives none.
    pub default_formats: ddl::DefaultFormats,
    /// `ksql.functions.collect_list/collect_set.limit`.
    pub collect_limits: crate::functions::collect::CollectLimits,
    /// `ksql.output.topic.name.prefix`: put before the sink's name when it names no topic.
    pub topic_prefix: String,
}

/// A planned persistent query.
#[derive(Debug)]
pub struct QueryPlan {
    /// The topics read and what their records go through before the joins.
    pub inputs: Vec<InputPlan>,
    /// The joins, left to right (empty for a single source).
    pub joins: Vec<JoinStageSpec>,
    /// A foreign-key join's steps over several partitions.
    pub foreign_key: Option<super::foreign_key::ForeignKeyPlan>,
    /// GROUP BY over the joins' results on another key ([`FromPlan::joined_repartition`]).
    pub joined_repartition: Option<super::from::RepartitionPlan>,
    /// A later join on another key of the earlier joins' result ([`FromPlan::rekeyed_join`]).
    pub rekeyed_join: Option<(usize, super::from::RepartitionPlan)>,
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
    super::aggregate::check_window_bounds(query)?;
    let mut from = plan_from(query, catalog, &sink.name)?;
    if sink.transient && from.source.window.is_some() && from.joins.is_empty() {
        let keys = from.source.schema.keys().count();
        from.star
            .splice(keys..keys, [WINDOWSTART, WINDOWEND].map(String::from));
    }
    if !from.query.group_by.is_empty() {
        super::repartition::plan_group_repartition(&mut from)?;
    }
    let (query, source, input) = (&from.query, &from.source, &from.input);
    let mut operators = Vec::new();
    if let Some(predicate) = &query.selection {
        let df = DFSchema::try_from(input.as_ref().clone())?;
        let filter = plan_where(predicate, &ExprPlanner::new(&df))?;
        operators.push((OperatorSpec::Filter(filter), Arc::clone(input)));
    }
    let aggregated = !query.group_by.is_empty() || query.projection.iter().any(item_has_aggregate);
    // A stream record with a null value flows through projections and PARTITION BY (as a
    // record with a null value), as in ksqlDB; WHERE, aggregations, joins and a client's
    // push query drop it, as does a sink whose timestamp comes from a value column.
    if !aggregated
        && !sink.transient
        && query.selection.is_none()
        && sink.properties.get("TIMESTAMP").is_none()
        && query.from.joins.is_empty()
        && from.source.kind == SourceKind::Stream
    {
        from.inputs[0].keep_null_values = true;
    }
    check_shape(
        query,
        source,
        (!sink.transient).then_some(sink.kind),
        aggregated,
    )?;
    let (projection, keys, after, window) =
        plan_body(query, &from, aggregated, &sink, &mut operators)?;
    let mode = ProjectionMode {
        aggregated,
        windowed: window.is_some(),
        transient: sink.transient,
        new_planner: sink.settings.new_planner,
        stream: sink.kind == SourceKind::Stream,
    };
    let (output_schema, key_names) =
        plan_output((&projection, &keys, after), mode, &sink, &mut operators)?;
    let sink_source = sink_source(&sink, source, &output_schema, &key_names, window)?;
    Ok(QueryPlan {
        inputs: from.inputs,
        joins: from.joins,
        foreign_key: from.foreign_key,
        joined_repartition: from.joined_repartition,
        rekeyed_join: from.rekeyed_join,
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
    Vec<KeyColumn>,
    SchemaRef,
    Option<WindowInfo>,
);

/// What comes between the filter and the projection: the aggregation, if any. Returns the
/// select items over its output, the key names, its output schema and its window.
fn plan_body(
    query: &Query,
    from: &FromPlan,
    aggregated: bool,
    request: &SinkRequest<'_>,
    operators: &mut Vec<(OperatorSpec, SchemaRef)>,
) -> Result<Body> {
    let (source, input) = (&from.source, &from.input);
    let sink = request.name.as_str();
    let folds = has_fold(query.projection.iter().filter_map(|item| match item {
        ProjectionItem::Item(SelectItem::UnnamedExpr(expr))
        | ProjectionItem::Item(SelectItem::ExprWithAlias { expr, .. }) => Some(expr),
        _ => None,
    }));
    if folds && (aggregated || !query.partition_by.is_empty() || source.kind == SourceKind::Table) {
        return Err(PlanError::Invalid(
            "FOLD runs over the rows of a stream: not with GROUP BY, PARTITION BY or a TABLE"
                .into(),
        ));
    }
    Ok(if aggregated {
        let emit = if query.emit == Some(Emit::Final) {
            EmitMode::Final
        } else {
            EmitMode::Changes
        };
        let planned = plan_aggregate(
            query,
            source,
            input,
            (emit, request.settings.collect_limits),
        )?;
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
        let keys = (planned.key_names.iter())
            .map(|k| KeyColumn::grouping(k, sink))
            .collect();
        (planned.projection, keys, output, window)
    } else if !query.partition_by.is_empty() {
        partition_body(query, from, sink, operators)?
    } else {
        let items = expand_items(&query.projection, &from.star, &from.star, input)?;
        let table = source.kind == SourceKind::Table;
        let (items, exploded) = plan_table_functions(items, (input, table), operators)?;
        let (items, exploded) = plan_folds(items, &exploded, &from.keys, operators)?;
        // A windowed source's rows keep their windows (its sink is windowed the same way).
        let window = from
            .joins
            .is_empty()
            .then_some(from.source.window)
            .flatten();
        (items, from.keys.clone(), exploded, window)
    })
}

/// The body of a query with PARTITION BY: its rows re-keyed.
fn partition_body(
    query: &Query,
    from: &FromPlan,
    sink: &str,
    operators: &mut Vec<(OperatorSpec, SchemaRef)>,
) -> Result<Body> {
    let source = &from.source;
    if source.kind == SourceKind::Table {
        return Err(PlanError::Invalid(
            "Cannot repartition a TABLE source.".into(),
        ));
    }
    let (items, keys, rekeyed) = plan_partition_by(
        &query.partition_by,
        &query.projection,
        (source, &from.star),
        &from.input,
        operators,
    )?;
    let keys = keys
        .iter()
        .zip(&query.partition_by)
        .map(|(k, e)| KeyColumn::partitioning(k, &source.name, e, sink))
        .collect();
    Ok((items, keys, rekeyed, None))
}

/// Whether a select item aggregates.
pub fn item_has_aggregate(item: &ProjectionItem) -> bool {
    match item {
        ProjectionItem::Item(
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. },
        )
        | ProjectionItem::StructAll(e) => contains_aggregate(e),
        _ => false,
    }
}

/// The WHERE predicate, which must be BOOLEAN.
fn plan_where(predicate: &SqlExpr, planner: &ExprPlanner<'_>) -> Result<Arc<dyn PhysicalExpr>> {
    // ksqlDB's WHERE errors quote the condition.
    let with_statement = |e: PlanError| match e.in_clause("WHERE") {
        PlanError::Invalid(m) if m.starts_with("Error in WHERE expression") => PlanError::Invalid(
            format!("{m}\nStatement: {}", super::text::ksql_text(predicate)),
        ),
        other => other,
    };
    let lowered = planner.lower(predicate).map_err(with_statement)?;
    let data_type = planner.data_type(&lowered)?;
    if !matches!(data_type, DataType::Boolean | DataType::Null) {
        return Err(PlanError::Invalid(format!(
            "Type error in WHERE expression: Should evaluate to boolean but is {} ({}) instead.",
            super::text::ksql_text(predicate),
            crate::types::sql_name(&data_type)
        )));
    }
    planner.physical(&lowered)
}

/// `alias.*` must name the source (joins check their own sides).
fn check_star_qualifiers(query: &Query) -> Result<()> {
    if !query.from.joins.is_empty() {
        return Ok(());
    }
    let base = &query.from.base;
    let known: Vec<String> = std::iter::once(&base.name)
        .chain(&base.alias)
        .map(normalize)
        .collect();
    for item in &query.projection {
        if let ProjectionItem::Item(SelectItem::QualifiedWildcard(kind, _)) = item {
            let alias = kind.to_string().trim_end_matches(".*").to_ascii_uppercase();
            if !known.contains(&alias) {
                return Err(PlanError::Invalid(format!(
                    "'{alias}' is not a valid stream/table name or alias."
                )));
            }
        }
    }
    Ok(())
}

/// ksqlDB's rules on which statement may hold which query.
fn check_shape(
    query: &Query,
    source: &Source,
    kind: Option<SourceKind>,
    aggregated: bool,
) -> Result<()> {
    check_star_qualifiers(query)?;
    if kind.is_some() && source.kind == SourceKind::Table && source.window.is_some() {
        return Err(PlanError::Invalid(
            "KSQL does not support persistent queries on windowed tables.".into(),
        ));
    }
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
    if aggregated && query.group_by.is_empty() && kind == Some(SourceKind::Table) {
        return Err(PlanError::Invalid(format!(
            "CREATE TABLE AS SELECT statement does not support aggregate function [{}] without a GROUP BY clause.",
            super::aggregate::aggregate_calls_text(&query.projection)
        )));
    }
    let produces = if aggregated || source.kind == SourceKind::Table {
        SourceKind::Table
    } else {
        SourceKind::Stream
    };
    if kind.is_some_and(|kind| produces != kind) {
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

/// Select items as `(name, expression)`, with `*` expanded to `star`; generated names skip
/// `taken` (the source's columns).
pub fn expand_items(
    projection: &[ProjectionItem],
    star: &[String],
    taken: &[String],
    input: &SchemaRef,
) -> Result<Vec<(String, SqlExpr)>> {
    let mut namer = Namer::avoiding(taken);
    let mut out = Vec::new();
    for item in projection {
        let item = match item {
            ProjectionItem::Item(item) => item,
            ProjectionItem::StructAll(e) => {
                out.extend(struct_fields(e, input)?);
                continue;
            }
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

/// `s->*`: one item per field of the struct `s`, named after the field.
fn struct_fields(e: &SqlExpr, input: &SchemaRef) -> Result<Vec<(String, SqlExpr)>> {
    let df = DFSchema::try_from(input.as_ref().clone())?;
    let planner = ExprPlanner::new(&df);
    let DataType::Struct(fields) = planner.data_type(&planner.lower(e)?)? else {
        return Err(PlanError::Invalid(format!(
            "{} is not a STRUCT: it has no fields for ->*",
            super::text::ksql_text(e)
        )));
    };
    Ok(fields
        .iter()
        .map(|f| {
            let field = sqlparser::ast::Ident::with_quote('`', f.name());
            let access = SqlExpr::BinaryOp {
                left: Box::new(e.clone()),
                op: sqlparser::ast::BinaryOperator::Arrow,
                right: Box::new(SqlExpr::Identifier(field)),
            };
            (f.name().clone(), access)
        })
        .collect())
}

type Projection = (Vec<(String, Arc<dyn PhysicalExpr>)>, SchemaRef, Vec<String>);

/// The output names of the keys, or ksqlDB's error for those the projection left out.
fn selected_keys(found: Vec<Option<String>>, keys: &[KeyColumn]) -> Result<Vec<String>> {
    let missing: Vec<&KeyColumn> = found
        .iter()
        .zip(keys)
        .filter(|(found, _)| found.is_none())
        .map(|(_, key)| key)
        .collect();
    if let Some(first) = missing.first() {
        let listed: Vec<&KeyColumn> = if first.lists_all {
            keys.iter().collect()
        } else {
            missing.clone()
        };
        return Err(PlanError::Invalid(first.missing_message(&listed)));
    }
    Ok(found.into_iter().flatten().collect())
}

/// Per key: the first of its columns (in their order) that the projection selects.
fn choose_keys<'k>(
    items: &[(String, SqlExpr)],
    keys: &'k [KeyColumn],
    planner: &ExprPlanner<'_>,
) -> Vec<Option<&'k String>> {
    let selected: Vec<String> = items
        .iter()
        .filter_map(|(_, item)| match planner.lower(item) {
            Ok(Expr::Column(c)) => Some(c.name),
            _ => None,
        })
        .collect();
    keys.iter()
        .map(|k| k.names.iter().find(|n| selected.contains(n)))
        .collect()
}

/// How a select list is planned.
#[derive(Debug, Clone, Copy)]
struct ProjectionMode {
    aggregated: bool,
    windowed: bool,
    /// A client's query: key columns are optional.
    transient: bool,
    /// See [`Settings::new_planner`].
    new_planner: bool,
    /// The sink is a stream.
    stream: bool,
}

/// The select list's operators (and, with a sink `TIMESTAMP` column, the filter dropping
/// rows whose timestamp cannot be read); the output schema and key names.
fn plan_output(
    (items, keys, input): (&[(String, SqlExpr)], &[KeyColumn], SchemaRef),
    mode: ProjectionMode,
    sink: &SinkRequest<'_>,
    operators: &mut Vec<(OperatorSpec, SchemaRef)>,
) -> Result<(SchemaRef, Vec<String>)> {
    let timestamp = sink.properties.get_str("TIMESTAMP").map(|column| Stamp {
        column: column.to_ascii_uppercase(),
        format: sink.properties.get_str("TIMESTAMP_FORMAT"),
    });
    if let Some(stamp) = &timestamp
        && !items.iter().any(|(n, _)| *n == stamp.column)
    {
        return Err(PlanError::Invalid(format!(
            "The TIMESTAMP column set in the WITH clause does not exist in the schema: '{}'",
            stamp.column
        )));
    }
    let (project, output_schema, key_names) =
        plan_projection(items, keys, &input, mode, timestamp.as_ref())?;
    operators.push((OperatorSpec::Project(project), input));
    if timestamp.is_some() && mode.stream {
        // A record whose timestamp column cannot be read is dropped (processing log).
        let df = DFSchema::try_from(output_schema.as_ref().clone())?;
        let valid =
            ExprPlanner::new(&df).plan(&SqlExpr::IsNotNull(Box::new(column_ref(ROWTIME))))?;
        operators.push((OperatorSpec::Filter(valid), Arc::clone(&output_schema)));
    }
    Ok((output_schema, key_names))
}

/// A sink's `TIMESTAMP` column and `TIMESTAMP_FORMAT`.
#[derive(Debug)]
struct Stamp {
    column: String,
    format: Option<String>,
}

/// Plans the select list over `input`; key columns must be selected (possibly renamed).
fn plan_projection(
    items: &[(String, SqlExpr)],
    keys: &[KeyColumn],
    input: &SchemaRef,
    mode: ProjectionMode,
    timestamp: Option<&Stamp>,
) -> Result<Projection> {
    let ProjectionMode {
        aggregated,
        windowed,
        transient,
        ..
    } = mode;
    let df = DFSchema::try_from(input.as_ref().clone())?;
    let planner = ExprPlanner::new(&df);
    let mut exprs = Vec::new();
    // Per key: the output name of the column that provided it.
    let mut out_keys: Vec<Option<String>> = vec![None; keys.len()];
    let chosen = choose_keys(items, keys, &planner);
    for (name, item) in items {
        check_typed(item)?;
        let mut lowered = planner.lower(item).map_err(|e| {
            if aggregated {
                non_aggregate_error(e, "SELECT")
            } else {
                e.in_clause("SELECT")
            }
        })?;
        if exprs.iter().any(|(n, _)| n == name) {
            return Err(PlanError::Invalid(format!(
                "Duplicate value columns found in schema: `{name}` {}",
                crate::types::sql_name(&planner.data_type(&lowered)?)
            )));
        }
        if let Expr::Column(c) = &lowered
            && let Some(i) = chosen.iter().position(|k| *k == Some(&c.name))
        {
            match &out_keys[i] {
                Some(first) => return Err(key_twice(aggregated, &c.name, first, name)),
                None => {
                    out_keys[i] = Some(name.clone());
                    if let Some(read) = &keys[i].read {
                        lowered = planner.lower(&column_ref(read))?;
                    }
                }
            }
        }
        exprs.push((name.clone(), planner.physical(&lowered)?));
    }
    let key_names = output_keys(out_keys, keys, &exprs, mode)?;
    if aggregated && !transient && exprs.len() == key_names.len() {
        return Err(PlanError::Invalid(
            "The projection contains no value columns.".into(),
        ));
    }
    if !transient {
        add_passthrough(&mut exprs, items, &planner, (windowed, timestamp))?;
    }
    let fields = exprs
        .iter()
        .map(|(n, e)| Ok(Field::new(n, e.data_type(input)?, true)))
        .collect::<Result<Vec<_>>>()?;
    Ok((exprs, Arc::new(Schema::new(fields)), key_names))
}

/// ksqlDB's error for key column `key` selected twice, as `first` and then `second`.
fn key_twice(grouped: bool, key: &str, first: &str, second: &str) -> PlanError {
    if grouped {
        return PlanError::Invalid(format!(
            "The projection contains a key column more than once: `{first}` and `{second}`."
        ));
    }
    let mut aliases = [first, second];
    aliases.sort();
    PlanError::Invalid(format!(
        "The projection contains a key column (`{key}`) more than once, aliased as: {} and {}.",
        aliases[0], aliases[1]
    ))
}

/// The output's key columns, from the output name each key got (`None`: not selected).
fn output_keys(
    out_keys: Vec<Option<String>>,
    keys: &[KeyColumn],
    exprs: &[(String, Arc<dyn PhysicalExpr>)],
    mode: ProjectionMode,
) -> Result<Vec<String>> {
    let keys_optional = mode.transient || (mode.new_planner && mode.stream && !mode.aggregated);
    let mut key_names = if keys_optional {
        out_keys.into_iter().flatten().collect()
    } else {
        selected_keys(out_keys, keys)?
    };
    if !mode.aggregated && (mode.transient || mode.new_planner) {
        // Carried keys come in the projection's order (else the source's); GROUP BY keys in
        // the GROUP BY's.
        key_names.sort_by_key(|k| exprs.iter().position(|(n, _)| n == k));
    }
    Ok(key_names)
}

/// A bare `NULL` has no type a sink could hold.
fn check_typed(item: &SqlExpr) -> Result<()> {
    if matches!(item, SqlExpr::Value(v) if v.value == sqlparser::ast::Value::Null) {
        return Err(PlanError::Invalid(
            "Can't infer a type of null. Please explicitly cast it to a required type, e.g. CAST(null AS VARCHAR).".into(),
        ));
    }
    Ok(())
}

/// Appends `ROWTIME` (and the window bounds) to the projection's columns; a sink's
/// `TIMESTAMP` column, when given, becomes the records' timestamp.
fn add_passthrough(
    exprs: &mut Vec<(String, Arc<dyn PhysicalExpr>)>,
    items: &[(String, SqlExpr)],
    planner: &ExprPlanner<'_>,
    (windowed, timestamp): (bool, Option<&Stamp>),
) -> Result<()> {
    let mut passthrough = vec![ROWTIME];
    if windowed {
        passthrough.extend([WINDOWSTART, WINDOWEND]);
    }
    if let Some((name, _)) = exprs.iter().find(|(n, _)| {
        [ROWTIME, WINDOWSTART, WINDOWEND, ROWPARTITION, ROWOFFSET].contains(&n.as_str())
    }) {
        // Selecting the pseudo column itself (a join side's: `L_ROWTIME`), rather than naming
        // another value after it.
        let selected = items.iter().any(|(n, item)| {
            n == name
                && super::expr::column_name(item)
                    .is_some_and(|c| c == *name || c.ends_with(&format!("_{name}")))
        });
        return Err(PlanError::Invalid(if selected {
            format!("Reserved column name in select: `{name}`. Please remove or alias the column.")
        } else {
            format!(
                "`{name}` is a reserved column name. You cannot use it as an alias for a column."
            )
        }));
    }
    // `WITH (TIMESTAMP='col')` on the sink: the column's value is the records' timestamp.
    let stamp = match timestamp {
        Some(stamp) => items
            .iter()
            .find(|(n, _)| *n == stamp.column)
            .map(|(_, item)| stamp_expr(item, stamp, planner))
            .transpose()?,
        None => None,
    };
    for name in passthrough {
        let expr = match &stamp {
            Some(stamp) if name == ROWTIME => planner.physical(stamp)?,
            _ => planner.plan(&column_ref(name))?,
        };
        exprs.push((name.to_string(), expr));
    }
    Ok(())
}

/// The records' timestamp from the sink's `TIMESTAMP` column `item`: a BIGINT or TIMESTAMP
/// as is, a string read with `TIMESTAMP_FORMAT`.
fn stamp_expr(item: &SqlExpr, stamp: &Stamp, planner: &ExprPlanner<'_>) -> Result<Expr> {
    let lowered = planner.lower(item)?;
    match (planner.data_type(&lowered)?, &stamp.format) {
        (DataType::Int64 | DataType::Timestamp(..), _) => {
            Ok(datafusion_expr::cast(lowered, DataType::Int64))
        }
        (DataType::Utf8, Some(format)) => {
            let parse = crate::functions::scalar("STRINGTOTIMESTAMP")
                .ok_or_else(|| PlanError::UnknownFunction("STRINGTOTIMESTAMP".into()))?;
            planner.call(&parse, vec![lowered, datafusion_expr::lit(format.clone())])
        }
        _ => Err(PlanError::Invalid(format!(
            "Timestamp column, `{}`, should be LONG(INT64), TIMESTAMP, or a String with a timestamp_format specified",
            stamp.column
        ))),
    }
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
        sink.settings.default_formats,
    )?;
    let schema = LogicalSchema::from_batch(output, keys);
    // Keys from a keyless source (NONE) take the value format when it can hold keys.
    let key_format = if key_format == crate::format::Format::None
        && !keys.is_empty()
        && sink.properties.get("KEY_FORMAT").is_none()
        && sink.properties.get("FORMAT").is_none()
    {
        match value_format {
            crate::format::Format::None => crate::format::Format::Kafka,
            value => value,
        }
    } else {
        key_format
    };
    if keys.is_empty()
        && sink.kind == SourceKind::Stream
        && sink.properties.get("KEY_FORMAT").is_some()
        && key_format != crate::format::Format::None
    {
        return Err(PlanError::Invalid(
            "Key format specified for stream without key columns.".into(),
        ));
    }
    Ok(Source {
        name: sink.name.clone(),
        kind: sink.kind,
        topic: sink
            .properties
            .get_str("KAFKA_TOPIC")
            .unwrap_or_else(|| format!("{}{}", sink.settings.topic_prefix, sink.name)),
        key_format,
        value_format,
        wrap_single_value: ddl::wrap_single_value(sink.properties, value_format, &schema)?,
        schema,
        timestamp_column: sink
            .properties
            .get_str("TIMESTAMP")
            .map(|t| t.to_ascii_uppercase()),
        timestamp_format: sink.properties.get_str("TIMESTAMP_FORMAT"),
        window,
        written_by: Some(sink.query_id.clone()),
        is_source: false,
        schemas: ddl::schema_choice(sink.properties, (key_format, value_format))?,
    })
}
