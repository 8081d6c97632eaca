//! Planning table functions (`EXPLODE`) in a select list.
//!
//! Every `EXPLODE(array)` call is replaced by a reference to a synthetic column
//! (`KSQL_SYNTH_n`) that an unnest operator, placed before the projection, fills with one
//! array element per output row. Aggregations over exploded rows are not planned yet.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion_common::DFSchema;
use sqlparser::ast::Expr as SqlExpr;

use super::error::PlanError;
use super::expr::{ExprPlanner, function_args};
use super::rewrite::{column_ref, rewrite};
use crate::exec::task::OperatorSpec;
use crate::exec::unnest::UnnestOp;

type Result<T> = std::result::Result<T, PlanError>;

/// Rewrites `items` over exploded rows and pushes the unnest operator, if any item explodes.
/// Returns the items and the schema the projection then reads.
pub fn plan_table_functions(
    items: Vec<(String, SqlExpr)>,
    input: &SchemaRef,
    operators: &mut Vec<(OperatorSpec, SchemaRef)>,
) -> Result<(Vec<(String, SqlExpr)>, SchemaRef)> {
    let mut arrays: Vec<SqlExpr> = Vec::new();
    let mut failure = None;
    let items: Vec<(String, SqlExpr)> = items
        .into_iter()
        .map(|(name, item)| {
            let rewritten = rewrite(&item, &mut |node| {
                let SqlExpr::Function(f) = node else {
                    return None;
                };
                if !f.name.to_string().eq_ignore_ascii_case("EXPLODE") {
                    return None;
                }
                match function_args(f).map(|a| a.as_slice().to_vec()) {
                    Ok(args) if args.len() == 1 => arrays.push(args[0].clone()),
                    _ => {
                        failure = Some(PlanError::Invalid(
                            "EXPLODE takes one ARRAY argument".into(),
                        ))
                    }
                }
                Some(column_ref(&format!(
                    "KSQL_SYNTH_{}",
                    arrays.len().saturating_sub(1)
                )))
            });
            (name, rewritten)
        })
        .collect();
    if let Some(e) = failure {
        return Err(e);
    }
    if arrays.is_empty() {
        return Ok((items, Arc::clone(input)));
    }
    let df = DFSchema::try_from(input.as_ref().clone())?;
    let planner = ExprPlanner::new(&df);
    let named = arrays
        .iter()
        .enumerate()
        .map(|(i, a)| Ok((format!("KSQL_SYNTH_{i}"), planner.plan(a)?)))
        .collect::<Result<Vec<_>>>()?;
    let unnested =
        UnnestOp::try_new(named.clone(), input).map_err(|e| PlanError::Invalid(e.to_string()))?;
    let schema = Arc::clone(unnested.schema());
    operators.push((OperatorSpec::Unnest(named), Arc::clone(input)));
    Ok((items, schema))
}
