//! Push and pull queries: the `SELECT` statements a client runs against the engine.
//!
//! A push query (`EMIT CHANGES` / `EMIT FINAL`) is planned like a persistent query but its
//! rows go to the client through a bounded channel ([`crate::exec::output::RowStream`])
//! instead of a topic; it runs on the runtime (with its repartition stages) until the client
//! closes it ([`Engine::close_push`]). It reads from the end of its inputs unless asked to
//! read from the beginning (`auto.offset.reset=earliest`). `LIMIT` is the caller's to
//! enforce, row by row.
//!
//! A pull query (no `EMIT`) reads what is there now: a table's materialized state (kept
//! by the query that writes the table, [`crate::state::table_store`]) or a stream's whole
//! topic. The records are decoded and run through the same planned filter and projection,
//! on a task of its own that never touches the runtime's queries. ksqlDB's pull-query rules
//! (no joins, windows or grouping; only materialized tables) are checked here with its
//! messages. This file does not speak HTTP: the server formats the results.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::datatypes::DataType;

use super::{Engine, PersistentQuery, Runtime, pipeline};
use crate::catalog::Source;
use crate::catalog::schema::{ROWOFFSET, ROWPARTITION, WINDOWEND, WINDOWSTART};
use crate::error::Error;
use crate::exec::Batch;
use crate::exec::output::{RowStream, row_channel};
use crate::exec::processing_log::ProcessingLog;
use crate::plan::PlanError;
use crate::plan::query::{QueryPlan, SinkRequest, plan_query};
use crate::record::Record;
use crate::sql::ast::{ProjectionItem, Query, SourceKind, WithProperties, normalize};
use crate::state::table_store::TableStore;
use sqlparser::ast::{Expr as SqlExpr, SelectItem};

/// Most batches a push query's client may fall behind by before it is disconnected.
pub const PUSH_BUFFER: usize = 1_000;
/// Most bytes of rows a push query's client may fall behind by, unless the server says
/// otherwise (`--push-buffer-bytes`).
pub const PUSH_BUFFER_BYTES: usize = 4 << 20;
/// Records decoded per batch by a pull query.
const PULL_CHUNK: usize = 1_000;

/// One column of a query's result.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultColumn {
    /// The column's name.
    pub name: String,
    /// Its type.
    pub data_type: DataType,
    /// Whether it is a key column of the queried table (pull queries mark them).
    pub key: bool,
}

/// The columns of a query's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// The columns, in select-list order.
    pub columns: Vec<ResultColumn>,
    /// Whether `KEY` is printed after key columns (pull queries) or not (push queries).
    pub mark_keys: bool,
}

impl Header {
    /// The schema as ksqlDB prints it in a response header: `` `ID` STRING KEY, `N` BIGINT``.
    pub fn schema(&self) -> String {
        self.columns
            .iter()
            .map(|c| {
                let key = if c.key && self.mark_keys { " KEY" } else { "" };
                format!("`{}` {}{key}", c.name, crate::types::sql_name(&c.data_type))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A running push query.
#[derive(Debug)]
pub struct PushQuery {
    /// Its id (`transient_<SOURCE>_<n>`), for closing it.
    pub id: String,
    /// The result's columns.
    pub header: Header,
    /// The rows, as the query produces them.
    pub rows: RowStream,
    /// `LIMIT n`: the client stops after `n` rows.
    pub limit: Option<u64>,
}

/// A pull query's complete result.
#[derive(Debug)]
pub struct PullResult {
    /// The result's columns.
    pub header: Header,
    /// A stream's scan (ksqlDB ends its response with "Query Completed"), not a table's
    /// lookup.
    pub scanned_stream: bool,
    /// The rows, `LIMIT` applied.
    pub batches: Vec<Batch>,
    /// Which partitions of a table split among a cluster's servers the rows are from
    /// (`None`: the table, or the stream, is whole here).
    pub share: Option<PullShare>,
}

/// Which part of a table a pull query answers from this server's store, in a cluster whose
/// servers split the table by partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullScope {
    /// The partitions asked for (`None`: all this server runs).
    pub partitions: Option<BTreeSet<i32>>,
    /// Partitions whose task does not run here may be answered from a standby copy
    /// (`ksql.query.pull.enable.standby.reads`).
    pub standby: bool,
}

/// The partitions of a table a pull query's rows are from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullShare {
    /// The query whose store holds the table.
    pub query_id: String,
    /// Its task count: partitions `0..tasks` make the whole table.
    pub tasks: i32,
    /// The partitions holding the keys the query looks up (`None`: it scans them all).
    pub needed: Option<BTreeSet<i32>>,
    /// The partitions answered.
    pub served: BTreeSet<i32>,
}

/// How a client's push query runs.
#[derive(Debug, Clone, Copy)]
pub struct PushOptions {
    /// Read the inputs from their earliest offsets (`auto.offset.reset=earliest`).
    pub from_beginning: bool,
    /// ksqlDB's scalable push queries (`ksql.query.push.v2.enabled`) are on: a query that
    /// only filters and projects a query's sink from its latest offset is named
    /// `SCALABLE_PUSH_QUERY_<n>`.
    pub scalable: bool,
    /// Bytes of rows the client may fall behind by before it is disconnected.
    pub buffer_bytes: usize,
    /// How many push queries with a consumer of their own (those with state, or reading
    /// from the beginning) may run at once (ksqlDB's `ksql.max.push.queries`); those sharing
    /// a source's reader are not counted.
    pub max_dedicated: usize,
}

/// ksqlDB's default `ksql.max.push.queries`.
pub const MAX_PUSH_QUERIES: usize = 100;

/// A running push query: its repartition stages, and whether it has a consumer of its own.
#[derive(Debug, Clone, Default)]
pub struct Transient {
    stages: Vec<String>,
    dedicated: bool,
}

impl Default for PushOptions {
    fn default() -> Self {
        Self {
            from_beginning: false,
            scalable: false,
            buffer_bytes: PUSH_BUFFER_BYTES,
            max_dedicated: MAX_PUSH_QUERIES,
        }
    }
}

/// What a `SELECT` returned.
#[derive(Debug)]
pub enum Selected {
    /// Rows that keep coming.
    Push(PushQuery),
    /// Rows as of now.
    Pull(PullResult),
}

impl<R: Runtime> Engine<R> {
    /// Runs a client's `SELECT`: a push query if it says `EMIT`, else a pull query.
    pub async fn select(
        &mut self,
        query: &Query,
        text: &str,
        (options, scope): (PushOptions, Option<&PullScope>),
    ) -> Result<Selected, Error> {
        if query.emit.is_some() {
            self.push(query, text, options).await.map(Selected::Push)
        } else {
            self.pull(query, text, scope).await.map(Selected::Pull)
        }
    }

    /// Stops push query `id` (and its stages); unknown ids are ignored.
    pub async fn close_push(&mut self, id: &str) -> Result<(), Error> {
        if let Some(Transient { stages, .. }) = self.transients.remove(id) {
            self.runtime.stop_query(id).await?;
            for stage in stages {
                self.runtime.stop_query(&stage).await?;
            }
        }
        Ok(())
    }

    /// The ids of the running push queries.
    pub fn push_queries(&self) -> Vec<String> {
        self.transients.keys().cloned().collect()
    }

    /// Plans and assembles a client's query `id`, its rows going to a channel of `capacity`
    /// batches.
    async fn assemble_transient(
        &self,
        query: &Query,
        (id, text): (&str, &str),
        (capacity, max_bytes): (usize, usize),
    ) -> Result<(pipeline::Assembled, Header, RowStream, QueryPlan), Error> {
        let (plan, header) = self.plan_transient(query, id)?;
        let (sink, rows) = row_channel(capacity, max_bytes);
        let assembled =
            pipeline::assemble(&self.runtime, &self.registry, (id, text), &plan, Some(sink))
                .await?;
        Ok((assembled, header, rows, plan))
    }

    fn plan_transient(&self, query: &Query, id: &str) -> Result<(QueryPlan, Header), Error> {
        let properties = WithProperties::default();
        let sink = SinkRequest {
            name: id.to_string(),
            kind: SourceKind::Stream,
            properties: &properties,
            query_id: id.to_string(),
            transient: true,
            settings: self.settings()?,
        };
        let plan = plan_query(query, &self.catalog, sink)?;
        let input = plan.inputs.first().map(|i| &i.source);
        let windowed = input.is_some_and(|s| s.window.is_some());
        let table = input.is_some_and(|s| s.kind == SourceKind::Table);
        let columns = plan
            .output_schema
            .fields()
            .iter()
            .map(|f| ResultColumn {
                name: f.name().clone(),
                data_type: f.data_type().clone(),
                key: plan.key_names.contains(f.name())
                    || (windowed && [WINDOWSTART, WINDOWEND].contains(&f.name().as_str())),
            })
            .collect();
        let header = Header {
            columns,
            mark_keys: query.emit.is_none() && table,
        };
        Ok((plan, header))
    }

    /// Whether ksqlDB would run `query` as a scalable push query: a plain filter and
    /// projection of one source written by a persistent query, from the latest offset.
    fn is_scalable(&self, query: &Query, options: PushOptions) -> bool {
        let written = self
            .catalog
            .get(&normalize(&query.from.base.name))
            .is_some_and(|s| s.written_by.is_some());
        options.scalable
            && !options.from_beginning
            && written
            && query.from.joins.is_empty()
            && query.window.is_none()
            && query.group_by.is_empty()
            && query.partition_by.is_empty()
            && !query
                .projection
                .iter()
                .any(crate::plan::query::item_has_aggregate)
    }

    async fn push(
        &mut self,
        query: &Query,
        text: &str,
        options: PushOptions,
    ) -> Result<PushQuery, Error> {
        let from_beginning = options.from_beginning;
        let number = rand::random::<u64>() % 10_000_000_000;
        let id = if self.is_scalable(query, options) {
            format!("SCALABLE_PUSH_QUERY_{number}")
        } else {
            format!("transient_{}_{number}", normalize(&query.from.base.name))
        };
        let (assembled, header, rows, plan) = self
            .assemble_transient(query, (&id, text), (PUSH_BUFFER, options.buffer_bytes))
            .await?;
        // A stateless query of one source from its end can share the source's reader.
        let shared = (!from_beginning
            && assembled.stages.is_empty()
            && assembled.pipeline.inputs.len() == 1
            && assembled.pipeline.joins.is_empty()
            && !assembled.pipeline.is_stateful())
        .then(|| shared_reader_key(&plan))
        .flatten();
        let dedicated = self.transients.values().filter(|t| t.dedicated).count();
        if shared.is_none() && dedicated >= options.max_dedicated {
            return Err(PlanError::PushQueryLimit(options.max_dedicated).into());
        }
        let mut stages = Vec::new();
        for mut stage in assembled.stages {
            stage.from_beginning = from_beginning;
            stages.push(stage.id.clone());
            self.runtime.start_query(stage).await?;
        }
        let query_spec = PersistentQuery {
            id: id.clone(),
            statement: text.to_string(),
            source_topics: assembled.source_topics,
            sink_topic: String::new(),
            pipeline: assembled.pipeline,
            log: ProcessingLog::new(&id),
            commits: false,
            from_beginning,
            settings: super::QuerySettings::default(),
            status: super::QueryStatus::default(),
        };
        let dedicated = shared.is_none();
        self.runtime.start_push(query_spec, shared).await?;
        self.transients
            .insert(id.clone(), Transient { stages, dedicated });
        self.runtime.settle().await?;
        Ok(PushQuery {
            id,
            header,
            rows,
            limit: query.limit,
        })
    }

    async fn pull(
        &mut self,
        query: &Query,
        text: &str,
        scope: Option<&PullScope>,
    ) -> Result<PullResult, Error> {
        check_pull(query)?;
        let name = normalize(&query.from.base.name);
        let source = self
            .catalog
            .get(&name)
            .map(Arc::clone)
            .ok_or_else(|| PlanError::UnknownSource(name.clone()))?;
        let (records, share) = match source.kind {
            SourceKind::Table => match self.stores.get(&name) {
                Some(store) => self.table_rows((&source, store), query.selection.as_ref(), scope),
                None => return Err(not_queryable(&source).into()),
            },
            SourceKind::Stream => (self.runtime.scan(&source.topic).await?, None),
        };
        let id = format!("pull_{name}");
        let (assembled, header, mut rows, _) = self
            .assemble_transient(
                query,
                (&id, text),
                (records.len() / PULL_CHUNK + 2, usize::MAX),
            )
            .await?;
        let mut task = assembled
            .pipeline
            .new_task(ProcessingLog::new(&id))
            .map_err(|source| Error::Query {
                query: id.clone(),
                source,
            })?;
        for chunk in records.chunks(PULL_CHUNK) {
            task.process(0, chunk).map_err(|source| Error::Query {
                query: id.clone(),
                source,
            })?;
        }
        drop((task, assembled.pipeline));
        let mut batches = Vec::new();
        let mut left = query.limit.map_or(usize::MAX, |l| l as usize);
        while let Some(batch) = rows.try_recv() {
            let live = live_rows(batch);
            let take = live.num_rows().min(left);
            left -= take;
            if take > 0 {
                batches.push(Batch::stream(live.slice(0, take)));
            }
        }
        Ok(PullResult {
            header,
            batches,
            scanned_stream: source.kind == SourceKind::Stream,
            share,
        })
    }

    /// The records of table `source`'s `store` that `scope` asks for, and which partitions
    /// they are: the whole store without a scope or where the store is whole here; else
    /// the partitions whose tasks run here (as they were both before and after the store
    /// was read, so a partition arriving or leaving meanwhile is not claimed), and those
    /// asked for that standby copies hold.
    fn table_rows(
        &self,
        (source, store): (&Source, &TableStore),
        selection: Option<&SqlExpr>,
        scope: Option<&PullScope>,
    ) -> (Vec<Record>, Option<PullShare>) {
        let writer = (source.written_by.clone()).or_else(|| self.materializer(&source.name));
        let (Some(scope), Some(query_id)) = (scope, writer) else {
            return (store.snapshot(), None);
        };
        let Some(before) = self.runtime.store_share(&query_id) else {
            return (store.snapshot(), None);
        };
        let needed = selection.and_then(|s| key_partitions(source, s, before.tasks));
        let asked = |p: &&i32| {
            scope.partitions.as_ref().is_none_or(|a| a.contains(p))
                && needed.as_ref().is_none_or(|n| n.contains(p))
        };
        let here: BTreeSet<i32> = before.active.iter().filter(asked).copied().collect();
        let rows = store.snapshot_of(&here);
        let after = self.runtime.store_share(&query_id).unwrap_or_default();
        let mut served: BTreeSet<i32> = here.intersection(&after.active).copied().collect();
        let mut records: Vec<Record> = rows
            .into_iter()
            .filter(|r| served.contains(&r.partition.unwrap_or(0)))
            .collect();
        if scope.standby {
            let wanted: BTreeSet<i32> = (0..before.tasks)
                .filter(|p| asked(&p) && !served.contains(p))
                .collect();
            let (copied, rows) = self.runtime.standby_rows(&query_id, &wanted);
            records.extend(rows);
            served.extend(copied);
        }
        let share = PullShare {
            query_id,
            tasks: before.tasks,
            needed,
            served,
        };
        (records, Some(share))
    }
}

/// The partitions of a table of `tasks` partitions holding the keys a pull query's `WHERE`
/// looks up (`key = literal` or `key IN (literals)`, alone or in a conjunction), as its sink
/// places them (Kafka's partitioner over the key in the table's key format); `None` when
/// the clause names no keys or the key format needs a registered schema: every partition.
fn key_partitions(source: &Source, selection: &SqlExpr, tasks: i32) -> Option<BTreeSet<i32>> {
    let keys: Vec<&crate::catalog::Column> = source.schema.keys().collect();
    let [key] = keys.as_slice() else {
        return None;
    };
    let literals = key_literals(selection, &key.name)?;
    let empty = datafusion_common::DFSchema::empty();
    let planner = crate::plan::expr::ExprPlanner::new(&empty);
    let one_row = arrow::array::RecordBatch::try_new_with_options(
        Arc::new(arrow::datatypes::Schema::empty()),
        Vec::new(),
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(1)),
    )
    .ok()?;
    literals
        .iter()
        .map(|literal| {
            let array = planner.plan(literal).ok()?.evaluate(&one_row).ok()?;
            let value =
                datafusion_common::ScalarValue::try_from_array(&array.into_array(1).ok()?, 0)
                    .ok()?
                    .cast_to(&key.data_type)
                    .ok()?;
            let bytes = crate::format::encode::plain_key_bytes(source.key_format, &value)?;
            Some(crate::kafka::partitioner::partition_for(&bytes, tasks))
        })
        .collect()
}

/// The literals `expr` compares column `key` with, if it is `key = literal`,
/// `key IN (literals)`, or a conjunction with one of those.
fn key_literals<'e>(expr: &'e SqlExpr, key: &str) -> Option<Vec<&'e SqlExpr>> {
    use sqlparser::ast::BinaryOperator;
    let is_key = |e: &SqlExpr| crate::plan::expr::column_name(e).as_deref() == Some(key);
    let literal = |e: &SqlExpr| match e {
        SqlExpr::Value(_) => true,
        SqlExpr::UnaryOp { expr, .. } => matches!(**expr, SqlExpr::Value(_)),
        _ => false,
    };
    match expr {
        SqlExpr::Nested(inner) => key_literals(inner, key),
        SqlExpr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => key_literals(left, key).or_else(|| key_literals(right, key)),
        SqlExpr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } if is_key(left) && literal(right) => Some(vec![right]),
        SqlExpr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } if is_key(right) && literal(left) => Some(vec![left]),
        SqlExpr::InList {
            expr,
            list,
            negated: false,
        } if is_key(expr) && list.iter().all(literal) => Some(list.iter().collect()),
        _ => None,
    }
}

/// What push queries that may share a reader of their source have in common: the source
/// as the catalog holds it and how its null values are decoded (`None`: no single source).
fn shared_reader_key(plan: &QueryPlan) -> Option<String> {
    let [input] = plan.inputs.as_slice() else {
        return None;
    };
    Some(format!("{:?}/{}", input.source, input.keep_null_values))
}

/// A table's rows without those a filter turned into deletes.
fn live_rows(batch: Batch) -> arrow::array::RecordBatch {
    match &batch.tombstones {
        None => batch.data,
        Some(tombstones) => {
            let keep = arrow::compute::not(tombstones).unwrap_or_else(|_| tombstones.clone());
            arrow::compute::filter_record_batch(&batch.data, &keep).unwrap_or(batch.data)
        }
    }
}

/// ksqlDB's restrictions on pull queries.
fn check_pull(query: &Query) -> Result<(), PlanError> {
    let refuse = |what: &str| {
        Err(PlanError::Invalid(format!(
            "Pull queries don't support {what} clauses. See https://cnfl.io/queries for more info.\nAdd EMIT CHANGES if you intended to issue a push query."
        )))
    };
    if !query.from.joins.is_empty() {
        return refuse("JOIN");
    }
    if query.window.is_some() {
        return refuse("WINDOW");
    }
    if !query.group_by.is_empty() {
        return refuse("GROUP BY");
    }
    if !query.partition_by.is_empty() {
        return refuse("PARTITION BY");
    }
    if query.having.is_some() {
        return refuse("HAVING");
    }
    let selected: Vec<&SqlExpr> = query
        .projection
        .iter()
        .filter_map(|item| match item {
            ProjectionItem::Item(
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. },
            ) => Some(e),
            _ => None,
        })
        .collect();
    for (clause, exprs) in [
        ("SELECT", selected),
        ("WHERE", query.selection.iter().collect()),
    ] {
        let used = pseudo_columns(&exprs);
        if !used.is_empty() {
            return Err(PlanError::Invalid(format!(
                "Pull queries don't support the following columns in {clause} clauses: {}",
                used.join(", ")
            )));
        }
    }
    Ok(())
}

/// The partition and offset pseudo columns `exprs` read (pull queries have neither).
fn pseudo_columns(exprs: &[&SqlExpr]) -> Vec<String> {
    let mut used: Vec<String> = Vec::new();
    for name in exprs
        .iter()
        .flat_map(|e| crate::plan::rewrite::column_names(e))
    {
        let quoted = format!("`{name}`");
        if [ROWPARTITION, ROWOFFSET].contains(&name.as_str()) && !used.contains(&quoted) {
            used.push(quoted);
        }
    }
    used
}

fn not_queryable(source: &Source) -> PlanError {
    PlanError::Invalid(format!(
        "The `{0}` table isn't queryable. To derive a queryable table, you can do 'CREATE TABLE QUERYABLE_{0} AS SELECT * FROM {0}'. See https://cnfl.io/queries for more info.",
        source.name
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Column, ColumnKind, LogicalSchema};
    use crate::format::Format;
    use crate::kafka::partitioner::partition_for;
    use crate::sql::Statement;

    fn table(key_format: Format) -> Source {
        let column = |name: &str, data_type, kind| Column {
            name: name.into(),
            data_type,
            kind,
        };
        let schema = LogicalSchema::new(vec![
            column("K", DataType::Utf8, ColumnKind::Key),
            column("N", DataType::Int64, ColumnKind::Value),
        ]);
        Source::stream("t", (key_format, Format::Json), schema)
    }

    fn lookup(source: &Source, sql: &str) -> Option<BTreeSet<i32>> {
        let parsed = crate::sql::parse(sql).unwrap();
        let [Statement::Query(query)] = parsed.as_slice() else {
            panic!("{sql} is no query");
        };
        key_partitions(source, query.selection.as_ref()?, 4)
    }

    #[test]
    fn key_lookups_name_the_partitions_of_their_keys() {
        let kafka = table(Format::Kafka);
        let of = |key: &[u8]| partition_for(key, 4);
        let one = |key: &[u8]| Some(BTreeSet::from([of(key)]));
        assert_eq!(lookup(&kafka, "SELECT * FROM t WHERE k = 'a';"), one(b"a"));
        assert_eq!(
            lookup(&kafka, "SELECT * FROM t WHERE 'a' = k AND n > 1;"),
            one(b"a")
        );
        assert_eq!(
            lookup(&kafka, "SELECT * FROM t WHERE k IN ('a', 'b');"),
            Some(BTreeSet::from([of(b"a"), of(b"b")]))
        );
        // JSON keys are hashed as the JSON text the sink writes.
        let json = table(Format::Json);
        assert_eq!(
            lookup(&json, "SELECT * FROM t WHERE k = 'a';"),
            one(b"\"a\"")
        );
        // Scans, disjunctions and schema-registry keys ask every partition.
        for sql in [
            "SELECT * FROM t WHERE n = 1;",
            "SELECT * FROM t WHERE k = 'a' OR k = 'b';",
            "SELECT * FROM t WHERE k > 'a';",
        ] {
            assert_eq!(lookup(&kafka, sql), None, "{sql}");
        }
        assert_eq!(
            lookup(&table(Format::Avro), "SELECT * FROM t WHERE k = 'a';"),
            None
        );
    }
}
