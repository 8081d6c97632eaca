//! Planning `PARTITION BY`: a new key computed from the input row.
//!
//! As in ksqlDB, the key expressions are evaluated over the input (before the projection);
//! each key column is named after its column, else after the select item computing the same
//! expression, else `KSQL_COL_n`. `PARTITION BY NULL` leaves the rows without a key. A
//! projection operator appends the computed keys to the input row; select items equal to a
//! key expression are rewritten to read the key column. Writing to the sink places each row
//! in the partition of its new key, which is the repartition.

use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion_common::DFSchema;
use datafusion_expr::Expr;
use sqlparser::ast::{BinaryOperator, Expr as SqlExpr, Value};

use super::aggregate::Namer;
use super::error::PlanError;
use super::expr::ExprPlanner;
use super::query::expand_items;
use super::rewrite::{column_ref, rewrite};
use crate::catalog::Source;
use crate::exec::task::OperatorSpec;
use crate::sql::ast::ProjectionItem;

type Result<T> = std::result::Result<T, PlanError>;

/// The select items over the re-keyed rows, the key names, and the re-keyed schema.
pub type Partitioned = (Vec<(String, SqlExpr)>, Vec<String>, SchemaRef);

/// Plans `PARTITION BY partition_by` for the select list `projection` over `input` (rows of
/// `source`), pushing the operator that computes the keys.
pub fn plan_partition_by(
    partition_by: &[SqlExpr],
    projection: &[ProjectionItem],
    (source, original): (&Source, &[String]),
    input: &SchemaRef,
    operators: &mut Vec<(OperatorSpec, SchemaRef)>,
) -> Result<Partitioned> {
    let items = expand_items(projection, original, original, input)?;
    if let [SqlExpr::Value(v)] = partition_by
        && v.value == Value::Null
    {
        return Ok((items, Vec::new(), Arc::clone(input)));
    }
    let df = DFSchema::try_from(input.as_ref().clone())?;
    let planner = ExprPlanner::new(&df);
    let keys = partition_keys(partition_by, &planner)?;
    let with_sql: Vec<(Expr, &SqlExpr)> = keys.iter().cloned().zip(partition_by).collect();
    let names = key_names(&with_sql, &items, &planner);
    // `*` over re-keyed rows: the new keys, the other values, then the old keys.
    let star: Vec<String> = names
        .iter()
        .cloned()
        .chain(
            source
                .schema
                .values()
                .chain(source.schema.keys())
                .map(|c| c.name.clone())
                .filter(|c| !names.contains(c)),
        )
        .collect();
    // Generated names avoid the source's columns, not the new keys.
    let items = expand_items(projection, &star, original, input)?;
    let (exprs, fields) = rekeyed_row(&keys, &names, input, &planner)?;
    operators.push((OperatorSpec::Project(exprs), Arc::clone(input)));
    let items = items
        .into_iter()
        .map(|(name, item)| {
            let rewritten = rewrite(&item, &mut |node| {
                let lowered = planner.lower(node).ok()?;
                keys.iter()
                    .position(|k| *k == lowered)
                    .map(|i| column_ref(&names[i]))
            });
            (name, rewritten)
        })
        .collect();
    Ok((items, names, Arc::new(Schema::new(fields))))
}

/// The re-keyed row: the input, plus each key that is not already an input column.
type Row = (
    Vec<(String, Arc<dyn datafusion_physical_expr::PhysicalExpr>)>,
    Vec<Field>,
);

fn rekeyed_row(
    keys: &[Expr],
    names: &[String],
    input: &SchemaRef,
    planner: &ExprPlanner<'_>,
) -> Result<Row> {
    let mut exprs: Vec<(String, Arc<dyn datafusion_physical_expr::PhysicalExpr>)> = input
        .fields()
        .iter()
        .map(|f| Ok((f.name().clone(), planner.plan(&column_ref(f.name()))?)))
        .collect::<Result<_>>()?;
    let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
    for (key, name) in keys.iter().zip(names) {
        if input.index_of(name).is_err() {
            exprs.push((name.clone(), planner.physical(key)?));
            fields.push(Field::new(name, planner.data_type(key)?, true));
        }
    }
    Ok((exprs, fields))
}

/// The new keys' names: a column keeps its own, an expression the
/// name of the select item computing it, else ksqlDB's name for it (a struct field's name,
/// or `KSQL_COL_n`).
fn key_names(
    keys: &[(Expr, &SqlExpr)],
    items: &[(String, SqlExpr)],
    planner: &ExprPlanner<'_>,
) -> Vec<String> {
    let mut namer = Namer::avoiding(&[]);
    keys.iter()
        .map(|(key, sql)| {
            if let Expr::Column(c) = key {
                return c.name.clone();
            }
            match items
                .iter()
                .find(|(_, item)| planner.lower(item).ok().as_ref() == Some(key))
            {
                Some((name, _)) => name.clone(),
                None if matches!(
                    sql,
                    SqlExpr::BinaryOp {
                        op: BinaryOperator::Arrow,
                        ..
                    }
                ) =>
                {
                    namer.name(sql, None)
                }
                None => namer.name(&SqlExpr::Value(Value::Null.into()), None),
            }
        })
        .collect()
}

/// The PARTITION BY expressions over the input, with ksqlDB's errors.
fn partition_keys(partition_by: &[SqlExpr], planner: &ExprPlanner<'_>) -> Result<Vec<Expr>> {
    if partition_by
        .iter()
        .any(|e| matches!(e, SqlExpr::Tuple(t) if t.is_empty()))
    {
        return Err(PlanError::Invalid(
            "PARTITION BY requires at least one expression".into(),
        ));
    }
    if partition_by
        .iter()
        .any(|e| matches!(e, SqlExpr::Value(v) if v.value == Value::Null))
    {
        return Err(PlanError::Invalid(
            "Cannot PARTITION BY multiple columns including NULL".into(),
        ));
    }
    partition_by
        .iter()
        .map(|p| {
            planner.lower(p).map_err(|e| match e {
                PlanError::UnknownColumn(c) => PlanError::Invalid(format!(
                    "PARTITION BY column '{c}' cannot be resolved. '{c}' must be a column in the source schema since PARTITION BY is applied on the input."
                )),
                other => other,
            })
        })
        .collect()
}
