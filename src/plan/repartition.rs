//! Re-keying inputs through repartition topics (see [`super::from::RepartitionPlan`]).
//!
//! A stream grouped by anything but its key is re-keyed by its grouping expressions, so each
//! group meets in one task; the stage carries every column (and the source partition and
//! offset, which the query may read) so the query sees the source's own layout. A table's
//! stage also regroups ([`crate::exec::regroup`]): a row that leaves its group sends that
//! group's task a retraction first, which the query reads back as a tombstone of the source
//! key, so the table aggregation retracts it wherever it was counted. A join's results
//! grouped differently are re-keyed the same way, the joins running in the stage. Join sides
//! are re-keyed in [`super::join`].

use std::sync::Arc;

use arrow::datatypes::Schema;
use datafusion_common::DFSchema;
use sqlparser::ast::Expr as SqlExpr;

use super::error::PlanError;
use super::expr::ExprPlanner;
use super::from::{FromPlan, RepartitionPlan};
use super::rewrite::column_ref;
use crate::catalog::schema::{ROWOFFSET, ROWPARTITION, ROWTIME};
use crate::exec::regroup::RegroupSpec;
use crate::exec::task::OperatorSpec;
use crate::sql::ast::SourceKind;
use datafusion_physical_expr::expressions::lit;

type Result<T> = std::result::Result<T, PlanError>;

/// The column of a regrouped table's repartition topic that marks retractions.
const RETRACT: &str = "$RETRACT";

/// How the query reads a re-keyed source back in its own layout: the pseudo columns
/// `ROWPARTITION` and `ROWOFFSET` travel as values (`$ROWPARTITION`, `$ROWOFFSET`).
fn source_layout(input: &Schema) -> Vec<(String, String)> {
    input
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
        .collect()
}

/// The stage step that regroups a table's changes projected into `output` (the new key
/// first): it finds the source's key columns there by name.
fn regroup(
    source: &crate::catalog::Source,
    keys: usize,
    output: &arrow::datatypes::SchemaRef,
) -> Result<(OperatorSpec, arrow::datatypes::SchemaRef)> {
    let source_keys = source
        .schema
        .keys()
        .map(|c| output.index_of(&c.name))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let spec = RegroupSpec {
        keys,
        source_keys,
        retract: output.index_of(RETRACT)?,
    };
    Ok((OperatorSpec::Regroup(Arc::new(spec)), Arc::clone(output)))
}

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

/// GROUP BY on anything but the source's key: a stream's or table's rows, or a join's
/// results, are re-keyed by the grouping expressions through a repartition topic, so that
/// each group meets in one task (a table's with retractions).
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
    let plan = group_repartition(from)?;
    if from.inputs.len() > 1 {
        // A join's results: the joins run in the stage (see engine::pipeline).
        from.joined_repartition = Some(plan);
    } else {
        from.inputs[0].needs_repartition = true;
        from.inputs[0].repartition = Some(plan);
    }
    Ok(())
}

/// The `GroupBy` stage over the FROM clause's rows: `[$KEY.., every column (pseudo columns
/// as `$ROWPARTITION`, `$ROWOFFSET`), $RETRACT for tables, ROWTIME]`.
fn group_repartition(from: &FromPlan) -> Result<RepartitionPlan> {
    let input = &from.input;
    let df = DFSchema::try_from(input.as_ref().clone())?;
    let planner = ExprPlanner::new(&df);
    let mut exprs = Vec::new();
    for (i, g) in from.query.group_by.iter().enumerate() {
        exprs.push((format!("$KEY{i}"), planner.plan(g)?));
    }
    let restored = source_layout(input);
    for (name, stored) in restored.iter().filter(|(n, _)| n != ROWTIME) {
        exprs.push((stored.clone(), planner.plan(&column_ref(name))?));
    }
    let table = from.source.kind == SourceKind::Table;
    if table {
        // Set on the retractions the stage writes (see exec::regroup).
        exprs.push((RETRACT.to_string(), lit(false)));
    }
    exprs.push((ROWTIME.to_string(), planner.plan(&column_ref(ROWTIME))?));
    let output = super::join::schema_of(&exprs, input)?;
    let keys = from.query.group_by.len();
    let mut stage = vec![(OperatorSpec::Project(exprs), Arc::clone(input))];
    if table {
        stage.push(regroup(&from.source, keys, &output)?);
    }
    let mut plan = RepartitionPlan::new("GroupBy", (stage, output), keys, &restored)?;
    if table {
        plan.read_retractions(RETRACT)?;
    }
    Ok(plan)
}
