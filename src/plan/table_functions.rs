//! Planning table functions (`EXPLODE`, `CUBE_EXPLODE`) in a select list.
//!
//! Every `EXPLODE(array)` call is replaced by a reference to a synthetic column
//! (`KSQL_SYNTH_n`) that an unnest operator, placed before the projection, fills with one
//! array element per output row. `CUBE_EXPLODE(array)` explodes the array's combinations
//! ([`crate::functions::cube`]). Aggregations over exploded rows are not planned yet.

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
    (input, table): (&SchemaRef, bool),
    operators: &mut Vec<(OperatorSpec, SchemaRef)>,
) -> Result<(Vec<(String, SqlExpr)>, SchemaRef)> {
    // Each exploded array, and whether it is CUBE_EXPLODE's.
    let mut arrays: Vec<(SqlExpr, bool)> = Vec::new();
    let mut failure = None;
    let items: Vec<(String, SqlExpr)> = items
        .into_iter()
        .map(|(name, item)| {
            let rewritten = rewrite(&item, &mut |node| {
                let SqlExpr::Function(f) = node else {
                    return None;
                };
                let name = f.name.to_string().to_ascii_uppercase();
                if name != "EXPLODE" && name != "CUBE_EXPLODE" {
                    return None;
                }
                match function_args(f).map(|a| a.as_slice().to_vec()) {
                    Ok(args) if args.len() == 1 => {
                        arrays.push((args[0].clone(), name == "CUBE_EXPLODE"))
                    }
                    _ => {
                        failure = Some(PlanError::Invalid(format!(
                            "{name} takes one ARRAY argument"
                        )))
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
    if table {
        return Err(PlanError::Invalid(
            "Table source is not supported with table functions".into(),
        ));
    }
    let df = DFSchema::try_from(input.as_ref().clone())?;
    let planner = ExprPlanner::new(&df);
    let named = arrays
        .iter()
        .enumerate()
        .map(|(i, (a, cube))| Ok((format!("KSQL_SYNTH_{i}"), exploded(a, *cube, &planner)?)))
        .collect::<Result<Vec<_>>>()?;
    let unnested =
        UnnestOp::try_new(named.clone(), input).map_err(|e| PlanError::Invalid(e.to_string()))?;
    let schema = Arc::clone(unnested.schema());
    operators.push((OperatorSpec::Unnest(named), Arc::clone(input)));
    Ok((items, schema))
}

/// The array a table function explodes: its argument, or for CUBE_EXPLODE the argument's
/// combinations; ksqlDB's error when the argument is no array.
fn exploded(
    array: &SqlExpr,
    cube: bool,
    planner: &ExprPlanner<'_>,
) -> Result<Arc<dyn datafusion_physical_expr::PhysicalExpr>> {
    let mut lowered = planner.lower(array)?;
    let t = planner.data_type(&lowered)?;
    if !matches!(t, arrow::datatypes::DataType::List(_)) {
        let name = if cube { "cube_explode" } else { "explode" };
        return Err(PlanError::Invalid(format!(
            "Function '{name}' does not accept parameters ({}).\nValid alternatives are:\n{name}(ARRAY<DECIMAL> input)\n{name}(ARRAY<T> list)",
            crate::types::sql_name(&t)
        )));
    }
    if cube {
        lowered = crate::functions::cube::CubeCombinations::udf().call(vec![lowered]);
    }
    planner.physical(&lowered)
}
