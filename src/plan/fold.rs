//! Planning Eddy's stateful per-key fold, `FOLD(initial, s => next) OVER (PARTITION BY k)`,
//! in the select list of a stream query (an extension of ksqlDB's dialect).
//!
//! Every `FOLD` call is replaced by a reference to a synthetic column (`KSQL_FOLD_n`) that a
//! fold operator ([`crate::exec::fold`]), placed after `WHERE` and before the projection,
//! fills with the key's new state. The initial state is a constant expression whose type is
//! the state's type; the lambda's body reads the state (its one parameter) and any column of
//! the row, and its value is cast to the state's type. `PARTITION BY` must name the rows' key
//! columns, so all rows of a key are in one partition and one task folds them in order;
//! re-key the stream in an earlier query (`PARTITION BY`) to fold by another column. Not
//! planned: folds in aggregations, in queries with `PARTITION BY`, over tables, `ORDER BY` or
//! frames in `OVER`.

use std::sync::Arc;

use arrow::array::{RecordBatch, new_null_array};
use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion_common::{DFSchema, ScalarValue};
use sqlparser::ast::{Expr as SqlExpr, Function, WindowType};

use super::error::PlanError;
use super::expr::{ExprPlanner, function_args};
use super::from::KeyColumn;
use super::rewrite::{column_ref, rewrite};
use crate::exec::fold::{FoldOp, FoldSpec};
use crate::exec::task::OperatorSpec;
use crate::sql::ast::normalize;

type Result<T> = std::result::Result<T, PlanError>;

fn is_fold(node: &SqlExpr) -> Option<&Function> {
    match node {
        SqlExpr::Function(f) if f.name.to_string().eq_ignore_ascii_case("FOLD") => Some(f),
        _ => None,
    }
}

/// Whether any of `items` calls `FOLD`.
pub fn has_fold<'a>(items: impl IntoIterator<Item = &'a SqlExpr>) -> bool {
    let mut found = false;
    for item in items {
        rewrite(item, &mut |node| {
            found |= is_fold(node).is_some();
            None
        });
    }
    found
}

/// Rewrites `items` to read the folds' state columns and pushes one fold operator per call.
/// Returns the items and the schema the projection then reads.
pub fn plan_folds(
    items: Vec<(String, SqlExpr)>,
    input: &SchemaRef,
    keys: &[KeyColumn],
    operators: &mut Vec<(OperatorSpec, SchemaRef)>,
) -> Result<(Vec<(String, SqlExpr)>, SchemaRef)> {
    let mut calls: Vec<Function> = Vec::new();
    let items: Vec<(String, SqlExpr)> = items
        .into_iter()
        .map(|(name, item)| {
            let rewritten = rewrite(&item, &mut |node| {
                let f = is_fold(node)?;
                calls.push(f.clone());
                Some(column_ref(&format!("KSQL_FOLD_{}", calls.len() - 1)))
            });
            (name, rewritten)
        })
        .collect();
    let mut schema = Arc::clone(input);
    for (i, call) in calls.iter().enumerate() {
        let spec = Arc::new(plan_fold(call, &schema, keys, format!("KSQL_FOLD_{i}"))?);
        let op = FoldOp::try_new(Arc::clone(&spec), &schema)
            .map_err(|e| PlanError::Invalid(e.to_string()))?;
        operators.push((OperatorSpec::Fold(spec), Arc::clone(&schema)));
        schema = Arc::clone(op.schema());
    }
    Ok((items, schema))
}

/// One `FOLD` call over rows of `input`, its state column named `name`.
fn plan_fold(
    f: &Function,
    input: &SchemaRef,
    keys: &[KeyColumn],
    name: String,
) -> Result<FoldSpec> {
    let usage = || {
        PlanError::Invalid(format!(
            "FOLD takes an initial state and a lambda of the state, then OVER (PARTITION BY key): {f}"
        ))
    };
    let args = function_args(f)?;
    let [initial, SqlExpr::Lambda(lambda)] = args.as_slice() else {
        return Err(usage());
    };
    let Some(WindowType::WindowSpec(over)) = &f.over else {
        return Err(usage());
    };
    if !over.order_by.is_empty() || over.window_frame.is_some() || over.window_name.is_some() {
        return Err(PlanError::Invalid(
            "FOLD folds rows in their order per key: OVER takes only PARTITION BY".into(),
        ));
    }
    check_partition_by(&over.partition_by, keys)?;
    let [param] = &*lambda.params else {
        return Err(usage());
    };
    let param = normalize(&param.name);
    if input.field_with_name(&param).is_ok() {
        return Err(PlanError::Invalid(format!(
            "FOLD's lambda parameter {param} hides a column of the same name: rename it"
        )));
    }
    let df = DFSchema::try_from(input.as_ref().clone())?;
    let planner = ExprPlanner::new(&df);
    let partition_by = over
        .partition_by
        .iter()
        .map(|e| planner.plan(e))
        .collect::<Result<Vec<_>>>()?;
    let initial = constant(&planner.plan(initial)?, input)?;
    let step_schema = FoldSpec::with_state(input, &param, initial.data_type());
    let step_df = DFSchema::try_from(step_schema.as_ref().clone())?;
    let step_planner = ExprPlanner::new(&step_df);
    let body = step_planner.lower(&lambda.body)?;
    let body_type = step_planner.data_type(&body)?;
    if !arrow::compute::can_cast_types(&body_type, &initial.data_type()) {
        return Err(PlanError::Invalid(format!(
            "FOLD's lambda gives {}, but the state is {}",
            crate::types::sql_name(&body_type),
            crate::types::sql_name(&initial.data_type())
        )));
    }
    Ok(FoldSpec {
        partition_by,
        initial,
        step: step_planner.physical(&body)?,
        param,
        name,
    })
}

/// The PARTITION BY must be the rows' key columns (in any order).
fn check_partition_by(partition_by: &[SqlExpr], keys: &[KeyColumn]) -> Result<()> {
    let named = |e: &SqlExpr| match e {
        SqlExpr::Identifier(id) => Some(normalize(id)),
        SqlExpr::CompoundIdentifier(ids) => ids.last().map(normalize),
        _ => None,
    };
    let is_key = |name: &str| {
        keys.iter()
            .any(|k| k.names.iter().any(|n| n == name) || k.read.as_deref() == Some(name))
    };
    let all_keys = partition_by.len() == keys.len()
        && partition_by
            .iter()
            .all(|e| named(e).is_some_and(|n| is_key(&n)));
    if all_keys {
        return Ok(());
    }
    let key_names: Vec<&str> = keys
        .iter()
        .filter_map(|k| k.names.first().map(String::as_str))
        .collect();
    Err(PlanError::Invalid(format!(
        "FOLD ... OVER (PARTITION BY ...) must partition by the rows' key ({}), so that one task \
         sees all rows of a key in order; re-key the stream with PARTITION BY in an earlier query",
        if key_names.is_empty() {
            "they have none".to_string()
        } else {
            key_names.join(", ")
        }
    )))
}

/// The value of a constant expression (evaluated over one row of NULLs).
fn constant(
    expr: &Arc<dyn datafusion_physical_expr::PhysicalExpr>,
    input: &Schema,
) -> Result<ScalarValue> {
    let fields: Vec<Field> = input
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    let columns = fields
        .iter()
        .map(|f| new_null_array(f.data_type(), 1))
        .collect();
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    let value = expr.evaluate(&batch)?.into_array(1)?;
    Ok(ScalarValue::try_from_array(&value, 0)?)
}
