//! Re-keying inputs through repartition topics (see [`super::from::RepartitionPlan`]).
//!
//! A stream grouped by anything but its key is re-keyed by its grouping expressions, so each
//! group meets in one task; the stage carries every column (and the source partition and
//! offset, which the query may read) so the query sees the source's own layout. Join sides
//! are re-keyed in [`super::join`]. Tables and joins' results grouped differently need the old
//! row retracted from its old group's task, which this does not do yet: they are marked as
//! needing a repartition, and the engine refuses them on topics with several partitions.

use std::sync::Arc;

use arrow::datatypes::{Field, Schema};
use datafusion_common::DFSchema;
use sqlparser::ast::Expr as SqlExpr;

use super::error::PlanError;
use super::expr::ExprPlanner;
use super::from::{FromPlan, RepartitionPlan};
use super::rewrite::column_ref;
use crate::catalog::schema::{ROWOFFSET, ROWPARTITION, ROWTIME};
use crate::exec::task::OperatorSpec;
use crate::sql::ast::SourceKind;

type Result<T> = std::result::Result<T, PlanError>;

/// Whether the query groups by exactly the source's key columns, in order.
fn grouped_by_key(from: &FromPlan) -> bool {
    let keys: Vec<String> = from.source.schema.keys().map(|c| c.name.clone()).collect();
    let grouped: Vec<Option<String>> = from
        .query
        .group_by
        .iter()
        .map(|g| match g {
            SqlExpr::Identifier(id) => Some(crate::sql::ast::normalize(id)),
            _ => None,
        })
        .collect();
    grouped.iter().all(Option::is_some) && grouped.into_iter().flatten().collect::<Vec<_>>() == keys
}

/// GROUP BY on anything but the source's key: a stream's rows are re-keyed by the grouping
/// expressions through a repartition topic, so that each group meets in one task. (Tables and
/// joins' results need the old row sent to its old group as well: not yet.)
pub fn plan_group_repartition(from: &mut FromPlan) -> Result<()> {
    // Aggregates in GROUP BY are an error the aggregation planner reports.
    if grouped_by_key(from)
        || from
            .query
            .group_by
            .iter()
            .any(super::aggregate::contains_aggregate)
    {
        return Ok(());
    }
    if from.source.kind == SourceKind::Table || from.inputs.len() > 1 {
        for input in &mut from.inputs {
            input.needs_repartition = true;
            input.repartition = None;
        }
        return Ok(());
    }
    let input = &from.input;
    let df = DFSchema::try_from(input.as_ref().clone())?;
    let planner = ExprPlanner::new(&df);
    let mut exprs = Vec::new();
    for (i, g) in from.query.group_by.iter().enumerate() {
        exprs.push((format!("$KEY{i}"), planner.plan(g)?));
    }
    let columns = from.source.schema.names();
    let carried = columns.iter().map(|c| (c.clone(), c.clone())).chain([
        (format!("${ROWPARTITION}"), ROWPARTITION.to_string()),
        (format!("${ROWOFFSET}"), ROWOFFSET.to_string()),
        (ROWTIME.to_string(), ROWTIME.to_string()),
    ]);
    for (to, from_column) in carried {
        exprs.push((to, planner.plan(&column_ref(&from_column))?));
    }
    // The query reads the source's layout back; the pseudo columns travel as values.
    let restored: Vec<(String, String)> = input
        .fields()
        .iter()
        .map(|f| {
            let name = f.name().clone();
            let from_column = if name == ROWPARTITION || name == ROWOFFSET {
                format!("${name}")
            } else {
                name.clone()
            };
            (name, from_column)
        })
        .collect();
    let fields = exprs
        .iter()
        .map(|(n, e)| Ok(Field::new(n, e.data_type(input)?, true)))
        .collect::<Result<Vec<_>>>()?;
    let output = Arc::new(Schema::new(fields));
    let stage = vec![(OperatorSpec::Project(exprs), Arc::clone(input))];
    let plan = RepartitionPlan::new(
        "GroupBy",
        (stage, output),
        from.query.group_by.len(),
        &restored,
    )?;
    from.inputs[0].needs_repartition = true;
    from.inputs[0].repartition = Some(plan);
    Ok(())
}
