//! Planning `GROUP BY`: key columns, aggregate calls, windows and `HAVING`.
//!
//! ksqlDB's shape: the aggregation outputs `[group keys.., WINDOWSTART, WINDOWEND,
//! KSQL_AGG_VARIABLE_0.., ROWTIME]`; SELECT and HAVING are rewritten so that aggregate calls
//! and GROUP BY expressions become references to those columns, then planned over that
//! schema. Key columns are named after their column, their alias in the SELECT, or
//! `KSQL_COL_n`. The projection itself is planned by [`super::query`].

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion_common::{Column, DFSchema};
use datafusion_expr::Expr;
use datafusion_expr::type_coercion::functions::fields_with_udf;
use datafusion_physical_expr::aggregate::AggregateExprBuilder;
use sqlparser::ast::{Expr as SqlExpr, SelectItem};

use super::error::PlanError;
use super::expr::{ExprPlanner, function_args};
use super::rewrite::{column_ref, rewrite};
use super::text::ksql_text;
use crate::catalog::Source;
use crate::catalog::schema::{ROWTIME, WINDOWEND, WINDOWSTART};
use crate::exec::aggregate::{AggregateSpec, EmitMode};
use crate::exec::window::{DEFAULT_GRACE_MS, WindowSpec};
use crate::functions::WhenNull;
use crate::sql::ast::{ProjectionItem, Query, SourceKind, WindowExpr};

type Result<T> = std::result::Result<T, PlanError>;

/// The planned aggregation and what the projection over it needs.
#[derive(Debug)]
pub struct PlannedAggregate {
    /// The operator's specification.
    pub spec: Arc<AggregateSpec>,
    /// Names of the key columns in the aggregation's output.
    pub key_names: Vec<String>,
    /// The SELECT items rewritten over the aggregation's output, with their output names.
    pub projection: Vec<(String, SqlExpr)>,
}

/// Names select items the way ksqlDB does; generated names count up from `KSQL_COL_0`.
#[derive(Debug)]
pub struct Namer {
    generated: usize,
    /// Names a generated name must not take (the source's columns).
    taken: Vec<String>,
    /// Names given so far: a struct field's name already given (or a source column's) gets
    /// `_1`, `_2`, ...
    given: Vec<String>,
}

impl Namer {
    /// A namer whose generated names (`KSQL_COL_n`) skip `taken`, as ksqlDB's do.
    pub fn avoiding(taken: &[String]) -> Self {
        Self {
            generated: 0,
            taken: taken.to_vec(),
            given: Vec::new(),
        }
    }

    /// The output name of a select item's expression (`alias` when given).
    pub fn name(&mut self, expr: &SqlExpr, alias: Option<&sqlparser::ast::Ident>) -> String {
        let name = self.name_of(expr, alias);
        self.given.push(name.clone());
        name
    }

    fn name_of(&mut self, expr: &SqlExpr, alias: Option<&sqlparser::ast::Ident>) -> String {
        if let Some(alias) = alias {
            return crate::sql::ast::normalize(alias);
        }
        match expr {
            SqlExpr::Identifier(id) => crate::sql::ast::normalize(id),
            SqlExpr::BinaryOp {
                op: sqlparser::ast::BinaryOperator::Arrow,
                right,
                ..
            } => match right.as_ref() {
                SqlExpr::Identifier(field) => {
                    let field = crate::sql::ast::normalize(field);
                    let mut name = field.clone();
                    let mut n = 0;
                    while self.given.contains(&name) || self.taken.contains(&name) {
                        n += 1;
                        name = format!("{field}_{n}");
                    }
                    name
                }
                other => self.name_of(other, None),
            },
            SqlExpr::CompoundIdentifier(parts) if !parts.is_empty() => {
                crate::sql::ast::normalize(&parts[parts.len() - 1])
            }
            _ => loop {
                let name = format!("KSQL_COL_{}", self.generated);
                self.generated += 1;
                if !self.taken.contains(&name) {
                    break name;
                }
            },
        }
    }
}

/// Plans the aggregation of `query` over batches of `input`.
pub fn plan_aggregate(
    query: &Query,
    source: &Source,
    input: &SchemaRef,
    (emit, limits): (EmitMode, crate::functions::collect::CollectLimits),
) -> Result<PlannedAggregate> {
    let df_input = DFSchema::try_from(input.as_ref().clone())?;
    let planner = ExprPlanner::new(&df_input);
    let group_exprs = group_by(&query.group_by, &planner)?;
    let items = select_items(&query.projection)?;
    if query.window.is_none() {
        check_no_window_bounds(&items)?;
    }
    let key_names = key_names(&items, &group_exprs, &planner);

    let (projection, having, calls) = rewrite_over_aggregation(
        &items,
        query.having.as_ref(),
        &group_exprs,
        &key_names,
        &planner,
    );
    let (window, retention) = (query.window.as_ref())
        .map(|w| window_spec(w, emit))
        .transpose()?
        .unzip();
    check_intermediate_types(&calls, source)?;
    let aggregates = aggregate_calls(&calls, limits, &planner, input)?;

    let output_schema = output_schema(
        &group_exprs,
        &key_names,
        window.is_some(),
        &aggregates,
        &planner,
    )?;
    check_grouped(
        &items,
        &projection,
        &output_schema,
        calls.is_empty() && having.is_none(),
    )?;
    let having = having
        .map(|h| plan_having(&h, &output_schema, &calls))
        .transpose()?;
    let group_physical = group_exprs
        .iter()
        .map(|g| planner.physical(g))
        .collect::<Result<Vec<_>>>()?;
    let source_keys = table_keys(source, &aggregates, &planner)?;
    let spec = AggregateSpec {
        group_exprs: group_physical,
        aggregates,
        window,
        having,
        emit,
        output_schema,
        input_rowtime: input.index_of(ROWTIME)?,
        source_keys,
        retention: retention.unwrap_or(0),
        when_null: calls.iter().map(when_null).collect(),
    };
    Ok(PlannedAggregate {
        spec: Arc::new(spec),
        key_names,
        projection,
    })
}

/// What a NULL result of the aggregate `call` is reported as.
fn when_null(call: &SqlExpr) -> WhenNull {
    aggregate_function(call).map_or(WhenNull::Null, |f| f.when_null)
}

/// SELECT items (named) and HAVING rewritten over the aggregation's output: aggregate calls
/// become `KSQL_AGG_VARIABLE_n` and GROUP BY expressions their key column. Also returns the
/// distinct aggregate calls, in order of first use.
fn rewrite_over_aggregation(
    items: &[(SqlExpr, Option<sqlparser::ast::Ident>)],
    having: Option<&SqlExpr>,
    group_exprs: &[Expr],
    key_names: &[String],
    planner: &ExprPlanner<'_>,
) -> (Vec<(String, SqlExpr)>, Option<SqlExpr>, Vec<SqlExpr>) {
    let mut calls: Vec<SqlExpr> = Vec::new();
    let mut rewrite_item = |e: &SqlExpr| {
        rewrite(e, &mut |node| {
            if let SqlExpr::Function(f) = node
                && crate::functions::is_aggregate(&f.name.to_string())
            {
                let index = calls.iter().position(|c| c == node).unwrap_or_else(|| {
                    calls.push(node.clone());
                    calls.len() - 1
                });
                return Some(column_ref(&format!("KSQL_AGG_VARIABLE_{index}")));
            }
            let lowered = planner.lower(node).ok()?;
            group_exprs
                .iter()
                .position(|g| *g == lowered)
                .map(|i| column_ref(&key_names[i]))
        })
    };
    let mut namer = Namer::avoiding(&planner.column_names());
    let projection = items
        .iter()
        .map(|(e, alias)| (namer.name(e, alias.as_ref()), rewrite_item(e)))
        .collect();
    let having = having.map(&mut rewrite_item);
    (projection, having, calls)
}

/// `[keys.., WINDOWSTART, WINDOWEND (if windowed), aggregates.., ROWTIME]`
fn output_schema(
    group_exprs: &[Expr],
    key_names: &[String],
    windowed: bool,
    aggregates: &[Arc<datafusion_physical_expr::aggregate::AggregateFunctionExpr>],
    planner: &ExprPlanner<'_>,
) -> Result<SchemaRef> {
    let mut fields: Vec<Field> = group_exprs
        .iter()
        .zip(key_names)
        .map(|(g, name)| Ok(Field::new(name, planner.data_type(g)?, true)))
        .collect::<Result<_>>()?;
    if windowed {
        fields.push(Field::new(WINDOWSTART, DataType::Int64, false));
        fields.push(Field::new(WINDOWEND, DataType::Int64, false));
    }
    for a in aggregates {
        fields.push(Field::new(a.name(), result_type(a, planner)?, true));
    }
    fields.push(Field::new(ROWTIME, DataType::Int64, false));
    Ok(Arc::new(Schema::new(fields)))
}

/// An aggregate's result type as ksqlDB types it: SUM keeps its input's INT type, where
/// DataFusion widens to BIGINT.
fn result_type(
    a: &datafusion_physical_expr::aggregate::AggregateFunctionExpr,
    planner: &ExprPlanner<'_>,
) -> Result<DataType> {
    let computed = a.field().data_type().clone();
    if a.fun().name().eq_ignore_ascii_case("sum")
        && let [arg] = a.expressions().as_slice()
    {
        // The argument may have been widened for DataFusion's SUM: look through the cast.
        let arg = match arg.downcast_ref::<datafusion_physical_expr::expressions::CastExpr>() {
            Some(cast) => cast.expr(),
            None => arg,
        };
        if arg.data_type(planner.arrow_schema())? == DataType::Int32 {
            return Ok(DataType::Int32);
        }
    }
    Ok(computed)
}

/// The GROUP BY expressions, lowered; aggregates are not allowed there.
fn group_by(exprs: &[SqlExpr], planner: &ExprPlanner<'_>) -> Result<Vec<Expr>> {
    for g in exprs {
        let mut aggregate = None;
        rewrite(g, &mut |node| {
            if let SqlExpr::Function(f) = node
                && aggregate.is_none()
                && crate::functions::is_aggregate(&f.name.to_string())
            {
                aggregate = Some(f.name.to_string().to_ascii_uppercase());
            }
            None
        });
        if let Some(name) = aggregate {
            return Err(PlanError::Invalid(format!(
                "GROUP BY does not support aggregate functions: {name} is an aggregate function."
            )));
        }
    }
    let mut lowered: Vec<Expr> = Vec::new();
    for g in exprs {
        let expr = planner.lower(g)?;
        if lowered.contains(&expr) {
            return Err(PlanError::Invalid(format!(
                "Duplicate GROUP BY expression: {}",
                ksql_text(g)
            )));
        }
        lowered.push(expr);
    }
    Ok(lowered)
}

/// For a table source, its key columns, once every aggregate is known to retract (ksqlDB
/// rejects MIN, MAX, EARLIEST_BY_OFFSET and LATEST_BY_OFFSET on tables).
fn table_keys(
    source: &Source,
    aggregates: &[Arc<datafusion_physical_expr::aggregate::AggregateFunctionExpr>],
    planner: &ExprPlanner<'_>,
) -> Result<Option<Vec<Arc<dyn datafusion_physical_expr::PhysicalExpr>>>> {
    if source.kind != SourceKind::Table {
        return Ok(None);
    }
    let rejected: Vec<String> = aggregates
        .iter()
        .filter(|a| {
            let name = a.fun().name().to_ascii_uppercase();
            ["MIN", "MAX", "FIRST_VALUE", "LAST_VALUE"].contains(&name.as_str())
                || !a
                    .create_sliding_accumulator()
                    .is_ok_and(|acc| acc.supports_retract_batch())
        })
        .map(|a| match a.fun().name().to_ascii_uppercase().as_str() {
            "FIRST_VALUE" => "EARLIEST_BY_OFFSET".to_string(),
            "LAST_VALUE" => "LATEST_BY_OFFSET".to_string(),
            other => other.to_string(),
        })
        .collect();
    if !rejected.is_empty() {
        let names = match rejected.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
            None => String::new(),
        };
        return Err(PlanError::Invalid(format!(
            "The aggregation functions {names} cannot be applied to a table source, only to a stream source."
        )));
    }
    source
        .schema
        .keys()
        .map(|k| planner.plan(&column_ref(&k.name)))
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// The ksqlDB aggregate an aggregate call names.
fn aggregate_function(call: &SqlExpr) -> Option<crate::functions::Aggregate> {
    match call {
        SqlExpr::Function(f) => crate::functions::aggregate(&f.name.to_string()),
        _ => None,
    }
}

/// HAVING (already rewritten) over the aggregation's output.
/// HAVING over the aggregation's output; its errors name the aggregate calls as written
/// (`SUM(VALUE)`, not the column holding it).
fn plan_having(
    having: &SqlExpr,
    output: &SchemaRef,
    calls: &[SqlExpr],
) -> Result<Arc<dyn datafusion_physical_expr::PhysicalExpr>> {
    let df_output = DFSchema::try_from(output.as_ref().clone())?;
    ExprPlanner::new(&df_output).plan(having).map_err(|e| {
        let e = match e {
            PlanError::Invalid(message) => {
                // Highest index first: KSQL_AGG_VARIABLE_1 is a prefix of ..._10.
                let message = calls
                    .iter()
                    .enumerate()
                    .rev()
                    .fold(message, |m, (i, call)| {
                        m.replace(&format!("KSQL_AGG_VARIABLE_{i}"), &ksql_text(call))
                    });
                PlanError::Invalid(message)
            }
            other => other,
        };
        non_aggregate_error(e, "HAVING").in_clause("HAVING")
    })
}

/// `(expression, alias)` per select item; `*` is not allowed in an aggregation.
pub fn select_items(
    projection: &[ProjectionItem],
) -> Result<Vec<(SqlExpr, Option<sqlparser::ast::Ident>)>> {
    projection
        .iter()
        .map(|item| match item {
            ProjectionItem::Item(SelectItem::UnnamedExpr(e)) => Ok((e.clone(), None)),
            ProjectionItem::Item(SelectItem::ExprWithAlias { expr, alias }) => {
                Ok((expr.clone(), Some(alias.clone())))
            }
            other => Err(PlanError::Unsupported(format!("{other} in an aggregation"))),
        })
        .collect()
}

/// A key column is named after its column, else after the select item that computes it,
/// else `KSQL_COL_n` (numbered after the select items' generated names).
fn key_names(
    items: &[(SqlExpr, Option<sqlparser::ast::Ident>)],
    group_exprs: &[Expr],
    planner: &ExprPlanner<'_>,
) -> Vec<String> {
    let mut namer = Namer::avoiding(&planner.column_names());
    let item_names: Vec<(String, Option<Expr>)> = items
        .iter()
        .map(|(e, alias)| (namer.name(e, alias.as_ref()), planner.lower(e).ok()))
        .collect();
    group_exprs
        .iter()
        .map(|g| {
            if let Some((name, _)) = item_names
                .iter()
                .find(|(_, lowered)| lowered.as_ref() == Some(g))
            {
                return name.clone();
            }
            match g {
                Expr::Column(Column { name, .. }) => name.clone(),
                _ => namer.name(&SqlExpr::Value(sqlparser::ast::Value::Null.into()), None),
            }
        })
        .collect()
}

/// ksqlDB keeps aggregation state in the source's value format: DELIMITED cannot hold the
/// structured state (a struct, an array or a map) of these aggregates.
fn check_intermediate_types(calls: &[SqlExpr], source: &Source) -> Result<()> {
    const STRUCTURED: [&str; 11] = [
        "AVG",
        "STDDEV_SAMP",
        "STDDEV_SAMPLE",
        "CORRELATION",
        "TOPK",
        "TOPKDISTINCT",
        "COLLECT_LIST",
        "COLLECT_SET",
        "HISTOGRAM",
        "EARLIEST_BY_OFFSET",
        "LATEST_BY_OFFSET",
    ];
    let structured = calls.iter().any(|c| {
        matches!(c, SqlExpr::Function(f)
            if STRUCTURED.contains(&f.name.to_string().to_ascii_uppercase().as_str()))
    });
    if structured && matches!(source.value_format, crate::format::Format::Delimited { .. }) {
        return Err(PlanError::Invalid(
            "One of the functions used in the statement has an intermediate type that the value format can not handle. Please remove the function or change the format.".into(),
        ));
    }
    Ok(())
}

/// Without a window there are no window bounds to select.
fn check_no_window_bounds(items: &[(SqlExpr, Option<sqlparser::ast::Ident>)]) -> Result<()> {
    match items.iter().find_map(|(e, alias)| {
        super::expr::column_name(e)
            .filter(|c| alias.is_none() && (c == WINDOWSTART || c == WINDOWEND))
    }) {
        Some(bound) => Err(PlanError::Invalid(format!(
            "Reserved column name in select: `{bound}`. Please remove or alias the column."
        ))),
        None => Ok(()),
    }
}

/// Each aggregate call planned, named `KSQL_AGG_VARIABLE_n`.
fn aggregate_calls(
    calls: &[SqlExpr],
    limits: crate::functions::collect::CollectLimits,
    planner: &ExprPlanner<'_>,
    input: &SchemaRef,
) -> Result<Vec<Arc<datafusion_physical_expr::aggregate::AggregateFunctionExpr>>> {
    calls
        .iter()
        .enumerate()
        .map(|(i, call)| {
            let name = format!("KSQL_AGG_VARIABLE_{i}");
            aggregate_call(call, (&name, limits), planner, input)
        })
        .collect()
}

fn aggregate_call(
    call: &SqlExpr,
    (name, limits): (&str, crate::functions::collect::CollectLimits),
    planner: &ExprPlanner<'_>,
    input: &SchemaRef,
) -> Result<Arc<datafusion_physical_expr::aggregate::AggregateFunctionExpr>> {
    let SqlExpr::Function(f) = call else {
        return Err(PlanError::Invalid(format!("not an aggregate call: {call}")));
    };
    if function_args(f)?.iter().any(contains_aggregate) {
        return Err(PlanError::Invalid(format!(
            "Aggregate functions can not be nested: {}",
            ksql_text(call)
        )));
    }
    let function_name = f.name.to_string();
    let function = crate::functions::aggregate(&function_name)
        .ok_or_else(|| PlanError::UnknownFunction(function_name.clone()))?;
    let mut call_args = function_args(f)?;
    let mut function = function;
    by_offset_options(&function_name, &mut call_args, &mut function);
    {
        use crate::functions::collect::{Collect, Kind};
        match function_name.to_ascii_uppercase().as_str() {
            "COLLECT_LIST" => function.udaf = Collect::limited(Kind::List, limits.list),
            "COLLECT_SET" => function.udaf = Collect::limited(Kind::Set, limits.set),
            _ => {}
        }
    }
    let mut args = call_args
        .iter()
        .map(|a| planner.lower(a))
        .collect::<Result<Vec<_>>>()?;
    if args.is_empty() && function_name.eq_ignore_ascii_case("COUNT") {
        // COUNT(*) counts rows: ksqlDB rewrites it to COUNT(ROWTIME), which is never null.
        args.push(Expr::Column(Column::new_unqualified(ROWTIME)));
    }
    let df_input = DFSchema::try_from(input.as_ref().clone())?;
    let fields = args
        .iter()
        .map(|a| Ok(datafusion_expr::ExprSchemable::to_field(a, &df_input)?.1))
        .collect::<Result<Vec<_>>>()?;
    let coerced = fields_with_udf(&fields, function.udaf.as_ref())?;
    let physical = args
        .into_iter()
        .zip(fields.iter().zip(&coerced))
        .map(|(a, (from, to))| {
            let a = if from.data_type() == to.data_type() {
                a
            } else {
                datafusion_expr::cast(a, to.data_type().clone())
            };
            planner.physical(&a)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut builder = AggregateExprBuilder::new(Arc::clone(&function.udaf), physical)
        .schema(Arc::clone(input))
        .alias(name);
    if function.distinct {
        builder = builder.distinct();
    }
    if function.ignore_nulls {
        builder = builder.ignore_nulls();
    }
    Ok(Arc::new(builder.build()?))
}

/// EARLIEST_BY_OFFSET(x, [n,] ignoreNulls) and LATEST_BY_OFFSET(x, [n,] ignoreNulls): the
/// flag becomes an option of the call; with `n`, the n-value form.
fn by_offset_options(
    name: &str,
    args: &mut Vec<SqlExpr>,
    function: &mut crate::functions::Aggregate,
) {
    let upper = name.to_ascii_uppercase();
    if !matches!(upper.as_str(), "EARLIEST_BY_OFFSET" | "LATEST_BY_OFFSET") {
        return;
    }
    if let Some(SqlExpr::Value(v)) = args.last()
        && let sqlparser::ast::Value::Boolean(ignore) = v.value
        && args.len() > 1
    {
        function.ignore_nulls = ignore;
        args.pop();
    }
    if args.len() == 2 {
        use crate::functions::collect::{Collect, Kind};
        let kind = if upper.starts_with("EARLIEST") {
            Kind::Earliest
        } else {
            Kind::Latest
        };
        function.udaf = Collect::udaf(kind);
    }
}

/// The window of a `WINDOW` clause, with ksqlDB's default grace period: 24 hours, but none
/// with EMIT FINAL (whose results would otherwise wait a day); and its retention.
fn window_spec(window: &WindowExpr, emit: EmitMode) -> Result<(WindowSpec, i64)> {
    let spec = time_window(window, emit)?;
    Ok((spec, retention(&spec, window)))
}

fn time_window(window: &WindowExpr, emit: EmitMode) -> Result<WindowSpec> {
    let default = match emit {
        EmitMode::Final => 0,
        EmitMode::Changes => DEFAULT_GRACE_MS,
    };
    let grace = |g: &Option<crate::sql::ast::Duration>| g.map_or(default, |d| d.millis());
    match window {
        WindowExpr::Tumbling { size, grace: g, .. } => Ok(WindowSpec::Tumbling {
            size: positive(size.millis())?,
            grace: grace(g),
        }),
        WindowExpr::Hopping {
            size,
            advance,
            grace: g,
            ..
        } => {
            let (size, advance) = (positive(size.millis())?, positive(advance.millis())?);
            if advance > size {
                return Err(PlanError::Invalid(
                    "Window advance must be less than or equal to the window size".into(),
                ));
            }
            Ok(WindowSpec::Hopping {
                size,
                advance,
                grace: grace(g),
            })
        }
        WindowExpr::Session { gap, grace: g, .. } => Ok(WindowSpec::Session {
            gap: positive(gap.millis())?,
            grace: grace(g),
        }),
    }
}

/// How long a window's state is kept: RETENTION, else (as Kafka Streams) size plus grace.
fn retention(spec: &WindowSpec, window: &WindowExpr) -> i64 {
    let given = match window {
        WindowExpr::Tumbling { retention, .. }
        | WindowExpr::Hopping { retention, .. }
        | WindowExpr::Session { retention, .. } => retention,
    };
    given.map_or(spec.size().saturating_add(spec.grace()), |d| d.millis())
}

fn positive(ms: i64) -> Result<i64> {
    if ms > 0 {
        Ok(ms)
    } else {
        Err(PlanError::Invalid("Window size must be positive".into()))
    }
}

/// The aggregate calls of a select list as ksqlDB lists them in messages (`COUNT(*)` is
/// `COUNT(ROWTIME)`), comma-separated.
pub fn aggregate_calls_text(projection: &[ProjectionItem]) -> String {
    let mut calls = Vec::new();
    for item in projection {
        let (ProjectionItem::Item(
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. },
        )
        | ProjectionItem::StructAll(e)) = item
        else {
            continue;
        };
        rewrite(e, &mut |node| match node {
            SqlExpr::Function(f) if crate::functions::is_aggregate(&f.name.to_string()) => {
                let text = ksql_text(node);
                calls.push(match text.strip_suffix("()") {
                    Some("COUNT") => "COUNT(ROWTIME)".to_string(),
                    _ => text,
                });
                Some(node.clone())
            }
            _ => None,
        });
    }
    calls.join(", ")
}

/// Whether `expr` calls an aggregate function anywhere.
pub fn contains_aggregate(expr: &SqlExpr) -> bool {
    let mut found = false;
    rewrite(expr, &mut |node| {
        if let SqlExpr::Function(f) = node {
            found |= crate::functions::is_aggregate(&f.name.to_string());
        }
        None
    });
    found
}

/// ksqlDB's rules for `WINDOWSTART`/`WINDOWEND` in a windowed aggregation over an
/// unwindowed source: they exist only as results, so only the select list may name them, and
/// not inside an aggregate's arguments.
pub fn check_window_bounds(query: &Query) -> Result<()> {
    if query.window.is_none() {
        return Ok(());
    }
    let bound = |e: &SqlExpr| {
        super::rewrite::column_names(e)
            .into_iter()
            .find(|n| n == WINDOWSTART || n == WINDOWEND)
    };
    if let Some(name) = query.selection.as_ref().and_then(bound) {
        return Err(PlanError::Invalid(format!(
            "Error in WHERE expression: Unknown column {name}."
        )));
    }
    let mut misplaced = query.group_by.iter().chain(&query.having).find_map(bound);
    for item in &query.projection {
        if let ProjectionItem::Item(
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. },
        ) = item
        {
            rewrite(e, &mut |node| {
                if let SqlExpr::Function(f) = node
                    && crate::functions::is_aggregate(&f.name.to_string())
                    && misplaced.is_none()
                {
                    misplaced = bound(node);
                }
                None
            });
        }
    }
    match misplaced {
        Some(name) => Err(PlanError::Invalid(format!(
            "Window bounds column {name} can only be used in the SELECT clause of windowed aggregations"
        ))),
        None => Ok(()),
    }
}

/// ksqlDB's message for a column used outside GROUP BY and aggregates.
pub fn non_aggregate_error(e: PlanError, clause: &str) -> PlanError {
    match e {
        PlanError::UnknownColumn(c) if clause == "HAVING" => PlanError::Invalid(format!(
            "Non-aggregate HAVING expression not part of GROUP BY: {c}"
        )),
        PlanError::UnknownColumn(c) => PlanError::Invalid(format!(
            "Non-aggregate {clause} expression(s) not part of GROUP BY: {c}"
        )),
        other => other,
    }
}

/// Every select item must be computable from the groups and aggregates; ksqlDB names the
/// items that are not, as it prints them.
fn check_grouped(
    items: &[(SqlExpr, Option<sqlparser::ast::Ident>)],
    projection: &[(String, SqlExpr)],
    output: &SchemaRef,
    no_aggregates: bool,
) -> Result<()> {
    let df = DFSchema::try_from(output.as_ref().clone())?;
    let planner = ExprPlanner::new(&df);
    let bad: Vec<String> = items
        .iter()
        .zip(projection)
        .filter(|(_, (_, rewritten))| {
            matches!(planner.lower(rewritten), Err(PlanError::UnknownColumn(_)))
        })
        .map(|((original, _), _)| ksql_text(original))
        .collect();
    if bad.is_empty() {
        return Ok(());
    }
    if no_aggregates {
        return Err(PlanError::Invalid(
            "GROUP BY requires aggregate functions in either the SELECT or HAVING clause.".into(),
        ));
    }
    Err(PlanError::Invalid(format!(
        "Non-aggregate SELECT expression(s) not part of GROUP BY: {}\nEither add the column(s) to the GROUP BY or remove them from the SELECT.",
        bad.join(", ")
    )))
}
