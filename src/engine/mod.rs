//! The engine: executes statements against the catalog and a [`Runtime`].
//!
//! `CREATE STREAM/TABLE` adds a source (creating its topic when `PARTITIONS` is given);
//! `CREATE ... AS SELECT` plans a persistent query, creates its sink topic (with the
//! source's partition count unless `PARTITIONS` says otherwise) and starts it on the runtime;
//! `DROP` and `TERMINATE` undo that. The runtime is the Kafka runtime ([`crate::kafka`]) in
//! the server and the in-memory driver ([`crate::testing`]) in tests: the engine does not know
//! which. Query ids follow ksqlDB (`CSAS_<SINK>_<n>`, `CTAS_<SINK>_<n>`).

pub mod insert;
pub mod pipeline;
pub mod select;
pub mod settings;
pub mod status;

pub use settings::{Guarantee, QuerySettings, TaskIdle};
pub use status::{QueryState, QueryStatus};

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;

use crate::catalog::{Catalog, Column, ColumnKind, LogicalSchema, Source};
use crate::error::Error;
use crate::exec::output::Output;
use crate::exec::processing_log::ProcessingLog;
use crate::exec::task::{InputSpec, PipelineSpec};
use crate::format::decode::SourceDecoder;
use crate::format::framed;
use crate::format::registry::SchemaRegistry;
use crate::plan::PlanError;
use crate::plan::ddl::plan_create_source;
use crate::plan::query::{QueryPlan, SinkRequest, plan_query};
use crate::record::Record;
use crate::sql::ast::{
    CreateAsSelect, CreateSource, DropSource, InsertInto, QueryTarget, SourceKind, normalize,
};
use crate::sql::{self, Statement};
use crate::state::table_store::TableStore;

/// Where queries run and topics live.
pub trait Runtime: Send {
    /// The partition count of `topic`, or `None` if it does not exist.
    fn topic_partitions(
        &self,
        topic: &str,
    ) -> impl Future<Output = Result<Option<i32>, Error>> + Send;
    /// Creates `topic` with `partitions` partitions.
    fn create_topic(
        &self,
        topic: &str,
        partitions: i32,
    ) -> impl Future<Output = Result<(), Error>> + Send;
    /// Starts running `query` until [`Runtime::stop_query`].
    fn start_query(
        &mut self,
        query: PersistentQuery,
    ) -> impl Future<Output = Result<(), Error>> + Send;
    /// Starts a client's push query. `shared` names the source (and its decoding) of a
    /// stateless query that reads that one source from its end: a runtime may serve every
    /// such query of a source from one reader (the Kafka runtime does); by default it runs
    /// as any query.
    fn start_push(
        &mut self,
        query: PersistentQuery,
        shared: Option<String>,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        let _ = shared;
        self.start_query(query)
    }
    /// Stops query `id` and releases its resources.
    fn stop_query(&mut self, id: &str) -> impl Future<Output = Result<(), Error>> + Send;
    /// Appends `record` to its topic (`INSERT VALUES`).
    fn produce(&self, record: Record) -> impl Future<Output = Result<(), Error>> + Send;
    /// Every topic and its partition count (`SHOW TOPICS`).
    fn topics(&self) -> impl Future<Output = Result<Vec<(String, i32)>, Error>> + Send {
        async { Ok(Vec::new()) }
    }
    /// The records of `topic` as they arrive (from its beginning, or only new ones), until
    /// the receiver is dropped (`PRINT`).
    fn tail(
        &self,
        topic: &str,
        from_beginning: bool,
    ) -> impl Future<Output = Result<tokio::sync::mpsc::Receiver<Record>, Error>> + Send;
    /// Every record `topic` holds now, partition by partition (a pull query's scan).
    fn scan(&self, topic: &str) -> impl Future<Output = Result<Vec<Record>, Error>> + Send;
    /// Lets the runtime catch up after a change (the in-memory driver runs its queries until
    /// they are idle; Kafka queries run on their own).
    fn settle(&mut self) -> impl Future<Output = Result<(), Error>> + Send {
        async { Ok(()) }
    }
    /// The name of query `query_id`'s internal topic `name` (repartition, changelog).
    fn internal_topic(&self, query_id: &str, name: &str) -> String {
        format!("eddy-query-{query_id}-{name}")
    }
    /// Which partitions of query `query_id`'s table store this server holds, when the
    /// servers of a cluster split the store by partition (`None`: the store is whole here).
    fn store_share(&self, query_id: &str) -> Option<StoreShare> {
        let _ = query_id;
        None
    }
    /// The rows this server's standby copies hold of `partitions` of query `query_id`'s
    /// table store, and which of those partitions it has copies of.
    fn standby_rows(
        &self,
        query_id: &str,
        partitions: &BTreeSet<i32>,
    ) -> (BTreeSet<i32>, Vec<Record>) {
        let _ = (query_id, partitions);
        (BTreeSet::new(), Vec::new())
    }
}

/// The partitions of a table's store one server of a cluster holds: pull queries are
/// answered from the server holding each partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreShare {
    /// The query's task count: partitions `0..tasks` make the whole table.
    pub tasks: i32,
    /// The partitions whose tasks run here.
    pub active: BTreeSet<i32>,
    /// The partitions this server keeps standby copies of.
    pub standby: BTreeSet<i32>,
}

/// A planned query, ready for a runtime.
#[derive(Debug, Clone)]
pub struct PersistentQuery {
    /// `CSAS_<SINK>_<n>` or `CTAS_<SINK>_<n>`.
    pub id: String,
    /// The statement that created it.
    pub statement: String,
    /// The topics read, one per input of the pipeline (`FROM`, then each `JOIN`).
    pub source_topics: Vec<String>,
    /// The topic written.
    pub sink_topic: String,
    /// Decode, operators, encode.
    pub pipeline: PipelineSpec,
    /// Counts the query's records and reports those it cannot process.
    pub log: ProcessingLog,
    /// Commit offsets and checkpoint state (persistent queries), or read from scratch every
    /// time (push queries, source-table materializations).
    pub commits: bool,
    /// Read the inputs from their earliest offsets (persistent queries) rather than from
    /// their ends (push queries, unless `auto.offset.reset` is `earliest`).
    pub from_beginning: bool,
    /// The Kafka Streams and ksqlDB settings it was created with (those not set: the
    /// server's).
    pub settings: QuerySettings,
    /// Its state and recent failures, set by the runtime.
    pub status: QueryStatus,
}

/// What executing a statement did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A stream or table was added to the catalog.
    SourceCreated {
        /// Stream or table.
        kind: SourceKind,
        /// Its name.
        name: String,
    },
    /// A persistent query was started.
    QueryStarted {
        /// The query id.
        id: String,
        /// The sink it writes.
        sink: String,
    },
    /// A source was dropped.
    SourceDropped(String),
    /// Queries were terminated.
    Terminated(Vec<String>),
    /// Nothing to do (e.g. `IF NOT EXISTS` on an existing source).
    Noop(String),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::SourceCreated {
                kind: SourceKind::Stream,
                ..
            } => f.write_str("Stream created"),
            Outcome::SourceCreated {
                kind: SourceKind::Table,
                ..
            } => f.write_str("Table created"),
            Outcome::QueryStarted { id, .. } => write!(f, "Created query with ID {id}"),
            Outcome::SourceDropped(name) => write!(f, "Source `{name}` (topic kept) was dropped."),
            Outcome::Terminated(ids) => write!(f, "Terminated {}", ids.join(", ")),
            Outcome::Noop(why) => f.write_str(why),
        }
    }
}

/// A running persistent query, as the engine remembers it.
#[derive(Debug, Clone)]
pub struct QueryInfo {
    /// The statement text.
    pub statement: String,
    /// The sink's name.
    pub sink: String,
    /// Ids of its repartition stages.
    pub stages: Vec<String>,
    /// The sources it reads.
    pub sources: Vec<String>,
    /// Its record counts.
    pub log: ProcessingLog,
    /// Its state and recent failures.
    pub status: QueryStatus,
    /// Its operators, as `EXPLAIN` prints them.
    pub plan: String,
}

/// Refuses writing to an internal topic (see [`crate::catalog::reserved`]).
fn writable(target: &Source) -> Result<(), PlanError> {
    match crate::catalog::reserved::is_read_only(&target.topic) {
        true => Err(PlanError::Invalid(crate::catalog::reserved::refusal(
            &target.topic,
        ))),
        false => Ok(()),
    }
}

/// Executes statements.
#[derive(Debug)]
pub struct Engine<R> {
    catalog: Catalog,
    registry: Arc<SchemaRegistry>,
    runtime: R,
    next_id: u64,
    queries: BTreeMap<String, QueryInfo>,
    /// Materialized tables (written by a query of this engine), for pull queries.
    stores: BTreeMap<String, Arc<TableStore>>,
    /// Running push queries and their repartition stages.
    transients: BTreeMap<String, select::Transient>,
    /// Properties set for the statements that follow (`SET`, a test case's `properties`).
    properties: BTreeMap<String, String>,
}

impl<R: Runtime> Engine<R> {
    /// An engine with an empty catalog.
    pub fn new(runtime: R) -> Self {
        Self {
            catalog: Catalog::default(),
            registry: Arc::default(),
            runtime,
            next_id: 0,
            queries: BTreeMap::new(),
            stores: BTreeMap::new(),
            transients: BTreeMap::new(),
            properties: BTreeMap::new(),
        }
    }

    /// Sets a property for the statements that follow (`None` unsets it). The planner reads
    /// those [`crate::plan::query::Settings`] names; others are kept but have no effect.
    pub fn set_property(&mut self, name: &str, value: Option<&str>) {
        match value {
            Some(v) => self
                .properties
                .insert(name.to_ascii_lowercase(), v.to_string()),
            None => self.properties.remove(&name.to_ascii_lowercase()),
        };
    }

    /// Sets `properties` over the engine's own (those of a client's request, say), returning
    /// the properties as they were so they can be put back with [`Self::restore_properties`].
    pub fn overlay_properties(
        &mut self,
        properties: BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let mut merged = self.properties.clone();
        merged.extend(
            properties
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v)),
        );
        std::mem::replace(&mut self.properties, merged)
    }

    /// Puts back properties returned by [`Self::overlay_properties`].
    pub fn restore_properties(&mut self, properties: BTreeMap<String, String>) {
        self.properties = properties;
    }

    /// What the properties set ask of the planner.
    fn settings(&self) -> Result<crate::plan::query::Settings, PlanError> {
        let property = |name: &str| self.properties.get(name);
        let format = |name: &str| {
            property(name)
                .map(|f| crate::format::Format::from_name(f))
                .transpose()
        };
        let limit = |name: &str| {
            property(name)
                .and_then(|v| v.parse().ok())
                .unwrap_or(crate::functions::collect::DEFAULT_LIMIT)
        };
        Ok(crate::plan::query::Settings {
            new_planner: property("ksql.new.query.planner.enabled")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
            default_formats: crate::plan::ddl::DefaultFormats {
                key: format("ksql.persistence.default.format.key")?,
                value: format("ksql.persistence.default.format.value")?,
            },
            collect_limits: crate::functions::collect::CollectLimits {
                list: limit("ksql.functions.collect_list.limit"),
                set: limit("ksql.functions.collect_set.limit"),
            },
            topic_prefix: property("ksql.output.topic.name.prefix")
                .cloned()
                .unwrap_or_default(),
        })
    }

    /// The query settings the session's properties ask of new queries.
    fn query_settings(&self) -> Result<QuerySettings, PlanError> {
        QuerySettings::from_properties(self.properties.iter())
    }

    /// The catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Uses `registry` for the schemas of the statements that follow (an external or the
    /// embedded registry, instead of one in the process).
    pub fn set_registry(&mut self, registry: Arc<SchemaRegistry>) {
        self.registry = registry;
    }

    /// The schemas of AVRO and JSON_SR topics.
    pub fn registry(&self) -> &Arc<SchemaRegistry> {
        &self.registry
    }

    /// The runtime.
    pub fn runtime(&self) -> &R {
        &self.runtime
    }

    /// The runtime, mutably (the in-memory driver's tests feed it records).
    pub fn runtime_mut(&mut self) -> &mut R {
        &mut self.runtime
    }

    /// The running queries by id.
    pub fn queries(&self) -> &BTreeMap<String, QueryInfo> {
        &self.queries
    }

    /// Parses and executes a script, statement by statement; stops at the first error.
    pub async fn execute_script(&mut self, script: &str) -> Result<Vec<Outcome>, Error> {
        let mut outcomes = Vec::new();
        for statement in sql::parse(script)? {
            outcomes.push(self.execute(&statement).await?);
        }
        Ok(outcomes)
    }

    /// Executes one statement.
    #[tracing::instrument(skip_all, fields(statement = %statement))]
    pub async fn execute(&mut self, statement: &Statement) -> Result<Outcome, Error> {
        let outcome = self.execute_unsettled(statement).await?;
        self.runtime.settle().await?;
        Ok(outcome)
    }

    async fn execute_unsettled(&mut self, statement: &Statement) -> Result<Outcome, Error> {
        match statement {
            Statement::CreateSource(c) => self.create_source(c).await,
            Statement::CreateAsSelect(c) => self.create_as_select(c, &statement.to_string()).await,
            Statement::InsertInto(i) => self.insert_into(i, &statement.to_string()).await,
            Statement::InsertValues(i) => {
                let target = insert::target(&self.catalog, i)?;
                writable(&target)?;
                insert::insert(&self.runtime, &self.registry, &target, i).await?;
                Ok(Outcome::Noop(String::new()))
            }
            Statement::Alter { kind, name, .. }
                if self
                    .catalog
                    .get(&normalize(name))
                    .is_some_and(|s| s.is_source) =>
            {
                let kind = kind.to_string().to_lowercase();
                Err(PlanError::Invalid(format!(
                    "Cannot alter {kind} '{}': ALTER operations are not supported on source {kind}s.",
                    normalize(name)
                ))
                .into())
            }
            Statement::Drop(d) => self.drop_source(d).await,
            Statement::Terminate(target) => self.terminate(target).await,
            Statement::SetProperty { name, value } => {
                QuerySettings::from_properties([(name, value)])?;
                self.set_property(name, Some(value));
                Ok(Outcome::Noop(format!("Property {name} set to {value}.")))
            }
            Statement::UnsetProperty(name) => {
                self.set_property(name, None);
                Ok(Outcome::Noop(format!("Property {name} unset.")))
            }
            other => Err(PlanError::Unsupported(format!(
                "{} statements in this engine",
                first_words(&other.to_string())
            ))
            .into()),
        }
    }

    async fn create_source(&mut self, stmt: &CreateSource) -> Result<Outcome, Error> {
        let mut planned = plan_create_source(stmt, self.settings()?.default_formats)?;
        self.registry_columns(&mut planned.source)?;
        crate::plan::ddl::check_keys(planned.source.kind, &planned.source.schema)?;
        let name = planned.source.name.clone();
        let existing_source = self.catalog.get(&name).is_some_and(|s| s.is_source);
        if stmt.or_replace && (stmt.is_source || existing_source) {
            let kind = stmt.kind.to_string().to_lowercase();
            return Err(PlanError::Invalid(format!(
                "Cannot add {kind} '{name}': CREATE OR REPLACE is not supported on source {kind}s."
            ))
            .into());
        }
        if let Some(existing) = self.catalog.get(&name) {
            if stmt.if_not_exists {
                return Ok(Outcome::Noop(format!(
                    "Cannot add {name}: it already exists."
                )));
            }
            if !stmt.or_replace {
                return Err(already_exists(existing).into());
            }
        }
        crate::format::validate::validate(&planned.source)?;
        let topic = planned.source.topic.clone();
        match (
            self.runtime.topic_partitions(&topic).await?,
            planned.partitions,
        ) {
            (Some(_), _) => {}
            (None, Some(p)) => self.runtime.create_topic(&topic, p).await?,
            (None, None) => {
                return Err(PlanError::Invalid(format!(
                    "Topic '{topic}' does not exist. If you want to create a new topic for the {} please re-run the statement providing the required 'PARTITIONS' configuration in the WITH clause (and optionally 'REPLICAS').",
                    stmt.kind.to_string().to_lowercase()
                ))
                .into());
            }
        }
        let kind = planned.source.kind;
        let source = self.catalog.insert(planned.source);
        if kind == SourceKind::Table && source.is_source {
            self.materialize(&source).await?;
        }
        Ok(Outcome::SourceCreated { kind, name })
    }

    /// The query keeping source table `name`'s records for pull queries, if it has one.
    fn materializer(&self, name: &str) -> Option<String> {
        self.queries
            .iter()
            .find(|(id, q)| id.starts_with("CST_") && q.sink == name)
            .map(|(id, _)| id.clone())
    }

    /// Keeps a source table's latest records for pull queries, with a query of its own
    /// (`CST_<NAME>_<n>`, as ksqlDB names it).
    async fn materialize(&mut self, source: &Source) -> Result<(), Error> {
        let id = format!("CST_{}_{}", source.name, self.next_id);
        let store = Arc::new(TableStore::default());
        let pipeline = PipelineSpec {
            inputs: vec![InputSpec {
                decoder: SourceDecoder::try_new(source, &self.registry)?,
                operators: Vec::new(),
            }],
            joins: Vec::new(),
            operators: Vec::new(),
            output: Output::Store(Arc::clone(&store)),
        };
        let log = ProcessingLog::new(&id);
        let status = QueryStatus::default();
        let text = format!("CREATE SOURCE TABLE {}", source.name);
        let plan = pipeline.describe(std::slice::from_ref(&source.topic), &source.name);
        self.runtime
            .start_query(PersistentQuery {
                id: id.clone(),
                statement: text.clone(),
                source_topics: vec![source.topic.clone()],
                sink_topic: String::new(),
                pipeline,
                log: log.clone(),
                commits: false,
                from_beginning: true,
                settings: QuerySettings::default(),
                status: status.clone(),
            })
            .await?;
        self.next_id += 1;
        self.stores.insert(source.name.clone(), store);
        self.queries.insert(
            id,
            QueryInfo {
                statement: text,
                sink: source.name.clone(),
                stages: Vec::new(),
                sources: vec![source.name.clone()],
                log,
                status,
                plan,
            },
        );
        Ok(())
    }

    async fn create_as_select(
        &mut self,
        stmt: &CreateAsSelect,
        text: &str,
    ) -> Result<Outcome, Error> {
        let name = normalize(&stmt.name);
        if let Some(existing) = self.catalog.get(&name) {
            if stmt.if_not_exists {
                return Ok(Outcome::Noop(format!(
                    "Cannot add {name}: it already exists."
                )));
            }
            return Err(already_exists(existing).into());
        }
        if stmt.query.limit.is_some() {
            return Err(PlanError::Invalid(format!(
                "CREATE {} AS SELECT statements don't support LIMIT clause.",
                stmt.kind
            ))
            .into());
        }
        let prefix = match stmt.kind {
            SourceKind::Stream => "CSAS",
            SourceKind::Table => "CTAS",
        };
        let id = format!("{prefix}_{name}_{}", self.next_id);
        let sink = SinkRequest {
            name: name.clone(),
            kind: stmt.kind,
            properties: &stmt.properties,
            query_id: id.clone(),
            transient: false,
            settings: self.settings()?,
        };
        let plan = plan_query(&stmt.query, &self.catalog, sink)?;
        crate::format::validate::validate(&plan.sink)?;
        let sink = plan.sink.clone();
        self.start(id.clone(), text, plan).await?;
        self.catalog.insert(sink);
        Ok(Outcome::QueryStarted { id, sink: name })
    }

    /// Starts a planned query (after its repartition stages) and records it.
    async fn start(&mut self, id: String, text: &str, plan: QueryPlan) -> Result<(), Error> {
        writable(&plan.sink)?;
        let assembled =
            pipeline::assemble(&self.runtime, &self.registry, (&id, text), &plan, None).await?;
        if let Some(store) = &assembled.store {
            self.stores
                .insert(plan.sink.name.clone(), Arc::clone(store));
        }
        let stages: Vec<String> = assembled.stages.iter().map(|s| s.id.clone()).collect();
        let log = ProcessingLog::new(&id);
        let status = QueryStatus::default();
        let describe = assembled
            .pipeline
            .describe(&assembled.source_topics, &plan.sink.topic);
        for stage in assembled.stages {
            // A failing stage is the query failing.
            let stage = PersistentQuery {
                status: status.clone(),
                ..stage
            };
            self.runtime.start_query(stage).await?;
        }
        let query = PersistentQuery {
            id: id.clone(),
            statement: text.to_string(),
            source_topics: assembled.source_topics,
            sink_topic: plan.sink.topic.clone(),
            pipeline: assembled.pipeline,
            log: log.clone(),
            commits: true,
            from_beginning: true,
            settings: self.query_settings()?,
            status: status.clone(),
        };
        self.runtime.start_query(query).await?;
        self.next_id += 1;
        self.queries.insert(
            id,
            QueryInfo {
                statement: text.to_string(),
                sink: plan.sink.name.clone(),
                stages,
                sources: plan.inputs.iter().map(|i| i.source.name.clone()).collect(),
                log,
                status,
                plan: describe,
            },
        );
        Ok(())
    }

    /// Stops query `id` and its repartition stages.
    async fn stop(&mut self, id: &str) -> Result<(), Error> {
        self.runtime.stop_query(id).await?;
        if let Some(info) = self.queries.remove(id) {
            for stage in &info.stages {
                self.runtime.stop_query(stage).await?;
            }
        }
        Ok(())
    }

    /// `INSERT INTO stream SELECT ...`: a query writing into an existing stream, whose schema
    /// its results must match.
    async fn insert_into(&mut self, stmt: &InsertInto, text: &str) -> Result<Outcome, Error> {
        let name = normalize(&stmt.target);
        let target = self.catalog.get(&name).map(Arc::clone).ok_or_else(|| {
            let at = crate::plan::text::position(&stmt.target);
            PlanError::UnknownSource(format!("{at}Source `{name}`"))
        })?;
        if target.schema.headers().next().is_some() {
            return Err(PlanError::Invalid(format!(
                "Cannot insert into {name} because it has header columns"
            ))
            .into());
        }
        if target.kind != SourceKind::Stream {
            return Err(PlanError::Invalid(format!(
                "INSERT INTO can only be used to insert into a stream. {name} is a table."
            ))
            .into());
        }
        let id = match stmt.properties.get_str("QUERY_ID") {
            Some(id) => id.to_ascii_uppercase(),
            None => format!("INSERTQUERY_{}", self.next_id),
        };
        let sink = SinkRequest {
            name: name.clone(),
            kind: SourceKind::Stream,
            properties: &stmt.properties,
            query_id: id.clone(),
            transient: false,
            settings: self.settings()?,
        };
        let mut plan = plan_query(&stmt.query, &self.catalog, sink)?;
        if plan.sink.schema != target.schema {
            return Err(PlanError::Invalid(format!(
                "Incompatible schema between results and sink.\nResult schema is {}\nSink schema is {}",
                plan.sink.schema.to_sql(),
                target.schema.to_sql()
            ))
            .into());
        }
        // The results go where the stream lives, in its formats.
        plan.sink = Source {
            written_by: plan.sink.written_by.clone(),
            ..target.as_ref().clone()
        };
        self.start(id.clone(), text, plan).await?;
        Ok(Outcome::QueryStarted { id, sink: name })
    }

    /// For AVRO and JSON_SR: columns a statement leaves out come from the topic's registered
    /// schema; declared columns register their schema if the subject has none yet, as
    /// ksqlDB does.
    fn registry_columns(&self, source: &mut Source) -> Result<(), Error> {
        let topic = source.topic.clone();
        for (format, suffix, kind) in [
            (source.key_format, "key", ColumnKind::Key),
            (source.value_format, "value", ColumnKind::Value),
        ] {
            if !format.uses_registry() {
                continue;
            }
            let subject = format!("{topic}-{suffix}");
            let declared = source.schema.typed(kind.clone());
            if !declared.is_empty() {
                let latest = (self.registry.latest(&subject))
                    .map_err(|e| PlanError::Invalid(e.to_string()))?;
                if latest.is_none() {
                    let single = declared.len() == 1
                        && (kind == ColumnKind::Key || !source.wrap_single_value);
                    let nullable = source.schemas.nullable(kind == ColumnKind::Key);
                    framed::writer_for(
                        format,
                        &subject,
                        (&declared, single, nullable),
                        &self.registry,
                    )
                    .map_err(PlanError::Invalid)?;
                }
                continue;
            }
            let inferred = framed::infer(&subject, source.schemas.part(kind == ColumnKind::Key), &self.registry)
                .map_err(PlanError::Invalid)?
                .ok_or_else(|| {
                    PlanError::Invalid(format!(
                        "Schema for message {suffix}s on topic '{topic}' does not exist in the Schema Registry.Subject: {subject}"
                    ))
                })?;
            let mut inferred = inferred;
            // The whole record is one column: a value with WRAP_SINGLE_VALUE=false, or an
            // AVRO or JSON_SR key (a STRUCT ROWKEY; Protobuf keys are always messages, their
            // fields the key columns).
            let record = !(inferred.len() == 1 && inferred[0].0 == "ROWVAL");
            let whole = match kind {
                ColumnKind::Key => !format.is_protobuf(),
                _ => !source.wrap_single_value,
            };
            if whole && record {
                let fields: arrow::datatypes::Fields = (inferred.iter())
                    .map(|(n, t)| arrow::datatypes::Field::new(n, t.clone(), true))
                    .collect();
                inferred = vec![("ROWVAL".into(), arrow::datatypes::DataType::Struct(fields))];
            }
            let mut columns = source.schema.columns.clone();
            columns.extend(inferred.into_iter().map(|(name, data_type)| Column {
                name: if kind == ColumnKind::Key && name == "ROWVAL" {
                    "ROWKEY".into()
                } else {
                    name
                },
                data_type,
                kind: kind.clone(),
            }));
            source.schema = LogicalSchema::new(columns);
        }
        Ok(())
    }

    async fn drop_source(&mut self, stmt: &DropSource) -> Result<Outcome, Error> {
        let name = normalize(&stmt.name);
        let Some(source) = self.catalog.get(&name).map(Arc::clone) else {
            if stmt.if_exists {
                return Ok(Outcome::Noop(format!("Source {name} does not exist.")));
            }
            let kind = match stmt.kind {
                SourceKind::Stream => "Stream",
                SourceKind::Table => "Table",
            };
            return Err(PlanError::Invalid(format!("{kind} {name} does not exist.")).into());
        };
        if stmt.delete_topic && source.is_source {
            return Err(PlanError::Invalid(format!(
                "Cannot delete topic for read-only source: {name}"
            ))
            .into());
        }
        if let Some(id) = &source.written_by
            && self.queries.contains_key(id)
        {
            let id = id.clone();
            self.stop(&id).await?;
        }
        if let Some(id) = self.materializer(&name) {
            self.stop(&id).await?;
        }
        self.catalog.remove(&name);
        self.stores.remove(&name);
        Ok(Outcome::SourceDropped(name))
    }

    async fn terminate(&mut self, target: &QueryTarget) -> Result<Outcome, Error> {
        let ids: Vec<String> = match target {
            QueryTarget::All => self.queries.keys().cloned().collect(),
            QueryTarget::Id(id) => {
                let id = normalize(id);
                if !self.queries.contains_key(&id) {
                    return Err(PlanError::Invalid(format!("Unknown queryId: {id}")).into());
                }
                vec![id]
            }
        };
        for id in &ids {
            self.stop(id).await?;
        }
        Ok(Outcome::Terminated(ids))
    }

    /// `DESCRIBE EXTENDED`'s statistics of a source: records read by the queries writing it,
    /// records they could not process, when they last read.
    pub fn statistics(&self, source: &str) -> String {
        let writers: Vec<&QueryInfo> = self.queries.values().filter(|q| q.sink == source).collect();
        if writers.is_empty() {
            return String::new();
        }
        let processed: u64 = writers.iter().map(|q| q.log.processed_count()).sum();
        let errors: u64 = writers.iter().map(|q| q.log.error_count()).sum();
        let last = writers
            .iter()
            .map(|q| q.log.last_processed_ms())
            .max()
            .unwrap_or(0);
        let mut line = format!("messages-processed: {processed} processing-errors: {errors}");
        if last > 0 {
            line.push_str(&format!(" last-message: {last}"));
        }
        if let Some(store) = self.stores.get(source) {
            line.push_str(&format!(" rows: {}", store.len()));
        }
        line
    }

    /// Query `id`'s pipeline as text (`EXPLAIN`).
    pub fn describe_plan(&self, id: &str) -> String {
        self.queries
            .get(id)
            .map(|q| q.plan.clone())
            .unwrap_or_default()
    }

    /// Inserts a row given as JSON into `source` (`/inserts-stream`).
    pub async fn insert_json(
        &mut self,
        source: &Source,
        row: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), Error> {
        writable(source)?;
        insert::insert_json(&self.runtime, &self.registry, source, row).await?;
        self.runtime.settle().await
    }

    /// Stops every running query (for shutdown).
    pub async fn shutdown(&mut self) -> Result<(), Error> {
        self.terminate(&QueryTarget::All).await.map(|_| ())
    }
}

fn already_exists(existing: &Source) -> PlanError {
    PlanError::SourceExists {
        kind: existing.kind.to_string().to_lowercase(),
        name: existing.name.clone(),
    }
}

fn first_words(sql: &str) -> String {
    sql.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}
