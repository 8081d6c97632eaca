//! The `FROM` clause: what the rest of a query reads, and which inputs feed it.
//!
//! A single source is read as is. Joins ([`super::join`]) produce a virtual source whose
//! columns are the joined sources' columns prefixed with their alias (`L_A`, `R_B`), read
//! from the joins' output. Either way the rest of the planner (filter, aggregation,
//! projection) sees one [`FromPlan`]: a source, the schema of its batches, the columns `*`
//! stands for and the key columns the projection must carry.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;

use super::error::PlanError;
use super::join::plan_joins;
use crate::catalog::{Catalog, LogicalSchema, Source};
use crate::exec::task::{JoinStageSpec, OperatorSpec};
use crate::sql::ast::{Query, normalize};

/// One input topic of a query and the operators its records go through first.
#[derive(Debug, Clone)]
pub struct InputPlan {
    /// The source read.
    pub source: Arc<Source>,
    /// Operators between the decoder and the join (empty without joins).
    pub operators: Vec<(OperatorSpec, SchemaRef)>,
    /// Whether the input is joined or grouped on something other than its key, so that on a
    /// topic with several partitions its records must meet through a repartition topic.
    pub needs_repartition: bool,
    /// How to repartition it, when Eddy can (`None` with `needs_repartition`: not yet).
    pub repartition: Option<RepartitionPlan>,
    /// A stream record with a null value flows on (PARTITION BY) instead of being skipped.
    pub keep_null_values: bool,
}

/// Re-keying an input through an internal topic, as Kafka Streams does: a stage reads the
/// source, computes the new key and writes `<query>-<name>-repartition`, keyed by it; the
/// query reads that topic instead and restores the layout its operators expect.
#[derive(Debug, Clone)]
pub struct RepartitionPlan {
    /// Names the topic (`Join-left`, `Join-right`, `GroupBy`).
    pub name: String,
    /// The stage's operators over the source's batches; their output holds the key columns
    /// first, then the value columns, then `ROWTIME`.
    pub operators: Vec<(OperatorSpec, SchemaRef)>,
    /// The stage's output schema.
    pub output: SchemaRef,
    /// How many leading columns of `output` are the new key.
    pub keys: usize,
    /// Operators the query applies to the repartition topic's batches.
    pub restore: Vec<(OperatorSpec, SchemaRef)>,
}

impl RepartitionPlan {
    /// The repartition topic's columns, as a catalog schema.
    pub fn schema(&self) -> LogicalSchema {
        let keys: Vec<String> = self.output.fields()[..self.keys]
            .iter()
            .map(|f| f.name().clone())
            .collect();
        LogicalSchema::from_batch(&self.output, &keys)
    }

    /// A repartition whose stage ends in `output`; the query reads back the columns of
    /// `restored`, each from the named column of the repartition topic's batches.
    pub fn new(
        name: &str,
        (operators, output): (Vec<(OperatorSpec, SchemaRef)>, SchemaRef),
        keys: usize,
        restored: &[(String, String)],
    ) -> Result<Self, PlanError> {
        let mut plan = Self {
            name: name.to_string(),
            operators,
            output,
            keys,
            restore: Vec::new(),
        };
        let read = plan.schema().batch_schema(false);
        let df = datafusion_common::DFSchema::try_from(read.as_ref().clone())?;
        let planner = super::expr::ExprPlanner::new(&df);
        let exprs = restored
            .iter()
            .map(|(name, from)| {
                Ok((
                    name.clone(),
                    planner.plan(&super::rewrite::column_ref(from))?,
                ))
            })
            .collect::<Result<Vec<_>, PlanError>>()?;
        plan.restore = vec![(OperatorSpec::Project(exprs), read)];
        Ok(plan)
    }

    /// Every column of `schema` read back under its own name (a `restored` list).
    pub fn identity(schema: &arrow::datatypes::Schema) -> Vec<(String, String)> {
        (schema.fields().iter())
            .map(|f| (f.name().clone(), f.name().clone()))
            .collect()
    }

    /// The query reads rows whose BOOLEAN column `column` is set as tombstones (the
    /// retractions of a regrouped table, [`crate::exec::regroup`]).
    pub fn read_retractions(&mut self, column: &str) -> Result<(), PlanError> {
        let read = Arc::clone(&self.restore[0].1);
        let retract = read.index_of(column)?;
        self.restore
            .insert(0, (OperatorSpec::Retractions(retract), read));
        Ok(())
    }
}

/// A key column of the query's result: which input columns can provide it.
#[derive(Debug, Clone)]
pub struct KeyColumn {
    /// Columns that may be selected as this key (a join's key is either join column).
    pub names: Vec<String>,
    /// The column holding the key's value, when it is not the selected column itself (a
    /// join's key comes from the join, not from a side that may be missing).
    pub read: Option<String>,
    /// The error when the projection selects none of `names`. For keys that are reported
    /// together, `{COLUMNS}` and `{LIST}` stand for "column"/"columns" and the missing ones.
    pub missing: String,
    /// How the key is named in that list.
    pub label: String,
    /// When one key is missing, the error lists every key (ksqlDB's PARTITION BY does).
    pub lists_all: bool,
}

impl KeyColumn {
    /// A GROUP BY key, which must be selected by its own name.
    pub fn grouping(name: &str, sink: &str) -> Self {
        Self {
            missing: format!(
                "Key missing from projection (ie, SELECT). The query used to build `{sink}` must include the grouping expression {name} in its projection (eg, SELECT {name}...)."
            ),
            lists_all: false,
            ..Self::plain(name, sink)
        }
    }

    /// A PARTITION BY key; ksqlDB names a missing one by its expression over `source`.
    pub fn partitioning(name: &str, source: &str, expr: &sqlparser::ast::Expr, sink: &str) -> Self {
        let label = match expr {
            sqlparser::ast::Expr::Identifier(id) => format!("{source}.{}", normalize(id)),
            other => super::text::ksql_text(other),
        };
        Self {
            missing: format!(
                "Key missing from projection (ie, SELECT). The query used to build `{sink}` must include the partitioning {{EXPRESSIONS}} {{AND_LIST}} in its projection (eg, SELECT {{EG_LIST}}...)."
            ),
            label,
            ..Self::plain(name, sink)
        }
    }

    /// A key that must be selected by its own name; when one of a source's keys is missing,
    /// ksqlDB names them all.
    pub fn plain(name: &str, sink: &str) -> Self {
        Self {
            names: vec![name.to_string()],
            read: None,
            missing: format!(
                "Key missing from projection (ie, SELECT). The query used to build `{sink}` must include the key {{COLUMNS}} {{AND_LIST}} in its projection (eg, SELECT {{EG_LIST}}...)."
            ),
            label: name.to_string(),
            lists_all: true,
        }
    }

    /// The error for `missing` keys (this one first).
    pub fn missing_message(&self, missing: &[&KeyColumn]) -> String {
        let list: Vec<String> = missing.iter().map(|k| format!("`{}`", k.label)).collect();
        let columns = if missing.len() > 1 {
            "columns"
        } else {
            "column"
        };
        let labels: Vec<&str> = missing.iter().map(|k| k.label.as_str()).collect();
        let expressions = if missing.len() > 1 {
            "expressions"
        } else {
            "expression"
        };
        self.missing
            .replace("{COLUMNS}", columns)
            .replace("{LIST}", &list.join(", "))
            .replace("{EXPRESSIONS}", expressions)
            .replace("{AND_LIST}", &labels.join(" and "))
            .replace("{EG_LIST}", &labels.join(", "))
    }
}

/// What the rest of the query reads.
#[derive(Debug)]
pub struct FromPlan {
    /// The query's input topics, `FROM` first.
    pub inputs: Vec<InputPlan>,
    /// The joins, left to right.
    pub joins: Vec<JoinStageSpec>,
    /// A foreign-key join's steps over several partitions.
    pub foreign_key: Option<super::foreign_key::ForeignKeyPlan>,
    /// GROUP BY over the joins' results on another key: the stage (the joins, then this
    /// re-keying) and how the query reads it back.
    pub joined_repartition: Option<RepartitionPlan>,
    /// Join `j` whose left side, the result of the joins before it, is re-keyed: the stage
    /// runs those joins into this repartition topic, the query reads it as join `j`'s left.
    pub rekeyed_join: Option<(usize, RepartitionPlan)>,
    /// The source the rest of the query reads (virtual for joins).
    pub source: Source,
    /// The schema of its batches.
    pub input: SchemaRef,
    /// The columns `SELECT *` stands for.
    pub star: Vec<String>,
    /// The key columns of the result, before GROUP BY or PARTITION BY change them.
    pub keys: Vec<KeyColumn>,
    /// The query, with source-qualified column names resolved (for joins).
    pub query: Query,
}

/// Plans the `FROM` clause of `query`, whose results go to `sink`.
pub fn plan_from(query: &Query, catalog: &Catalog, sink: &str) -> Result<FromPlan, PlanError> {
    if !query.from.joins.is_empty() {
        return plan_joins(query, catalog, sink);
    }
    let name = normalize(&query.from.base.name);
    let source = Arc::clone(catalog.get(&name).ok_or(PlanError::UnknownSource(name))?);
    let keys = source
        .schema
        .keys()
        .map(|c| KeyColumn::plain(&c.name, sink))
        .collect();
    Ok(FromPlan {
        input: source.schema.batch_schema(source.window.is_some()),
        star: source.schema.names(),
        keys,
        source: source.as_ref().clone(),
        inputs: vec![InputPlan {
            source,
            operators: Vec::new(),
            needs_repartition: false,
            repartition: None,
            keep_null_values: false,
        }],
        joins: Vec::new(),
        foreign_key: None,
        joined_repartition: None,
        rekeyed_join: None,
        query: query.clone(),
    })
}
