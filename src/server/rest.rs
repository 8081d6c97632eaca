//! ksqlDB's REST API over the engine, with axum: `/ksql`, `/query`, `/query-stream`,
//! `/close-query`, `/inserts-stream`, `/info`, `/healthcheck`, `/status`, `/clusterStatus`.
//!
//! Requests and responses have ksqlDB's shapes (`../entities.rs`), errors its bodies
//! (`../error.rs`). Statements run one at a time against the engine behind a lock. A push
//! query's rows are pumped from its bounded row channel to the HTTP response by a task of
//! its own: a client that stops reading fills the channel and is disconnected with an error
//! message; a client that goes away, a `LIMIT` reached, `/close-query` or the server's
//! shutdown closes the query on the engine. The handlers are generic over the engine's
//! runtime, so `eddy test rest` serves the same API over the in-memory driver.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::{Mutex, mpsc};

use super::commands::{Applied, Applier, CommandLog};
use super::entities::{self, SourceDetails};
use super::error::{RestError, code};
use crate::engine::select::{Header, PullResult, PullScope, PushOptions, PushQuery, Selected};
use crate::engine::{Engine, Outcome, Runtime};
use crate::exec::Batch;
use crate::kafka::standby::Parts;
use crate::sql::Statement;
use crate::sql::ast::{Explain, ListKind, SourceKind, normalize};
use crate::sql::variables::{self, Variables};

/// ksqlDB's JSON content type.
pub const KSQL_JSON: &str = "application/vnd.ksql.v1+json";
/// The new API's delimited content type (one JSON document per line).
pub const DELIMITED: &str = "application/vnd.ksqlapi.delimited.v1";
/// Pull query rows as Protobuf messages (`/query`).
pub const PROTOBUF: &str = "application/vnd.ksql.v1+protobuf";
/// How often an idle push query checks whether its client is still there.
const IDLE_CHECK: Duration = Duration::from_millis(500);

/// What the server says about itself.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// `ksql.service.id`.
    pub service_id: String,
    /// Running a queries file: statements that change the server are refused.
    pub headless: bool,
    /// Properties shown by `SHOW PROPERTIES`.
    pub properties: Vec<(String, String)>,
    /// `ksql.query.push.v2.enabled`: name simple push queries as ksqlDB's scalable ones.
    pub scalable_push: bool,
    /// Bounds on connections and requests.
    pub limits: super::http::HttpLimits,
    /// The other servers of the service id (none: this server alone).
    pub cluster: Option<Arc<super::cluster::Cluster>>,
    /// `ksql.query.pull.enable.standby.reads`: a partition whose task has no live server
    /// may be answered from a standby copy.
    pub standby_reads: bool,
    /// Who may use the API (none: anyone).
    pub auth: Option<Arc<super::auth::BasicAuth>>,
}

/// The property that lets pull queries read standby copies.
pub const STANDBY_READS: &str = "ksql.query.pull.enable.standby.reads";
/// The property bounding how far behind a standby copy answering a pull query may be.
const MAX_OFFSET_LAG: &str = "ksql.query.pull.max.allowed.offset.lag";

/// A statement as the command topic holds it, with the properties it ran with.
pub fn command_record(
    topic: &str,
    statement: &str,
    properties: &BTreeMap<String, String>,
) -> crate::record::Record {
    let command = json!({ "statement": statement, "streamsProperties": properties });
    crate::record::Record {
        topic: topic.to_string(),
        partition: Some(0),
        offset: 0,
        key: None,
        value: Some(command.to_string().into_bytes()),
        timestamp: crate::record::now_ms(),
        headers: Vec::new(),
    }
}

/// The statement a command topic record holds, and the properties it ran with.
pub fn command_statement(
    record: &crate::record::Record,
) -> Option<(String, BTreeMap<String, String>)> {
    let value: Value = serde_json::from_slice(record.value.as_deref()?).ok()?;
    let properties = value["streamsProperties"]
        .as_object()
        .map(property_strings)
        .unwrap_or_default();
    Some((value["statement"].as_str()?.to_string(), properties))
}

/// The state every handler shares.
pub struct AppState<R> {
    /// The engine; statements run one at a time.
    pub engine: Mutex<Engine<R>>,
    info: ServerInfo,
    /// The cluster's statement log (none: statements run here only).
    log: Option<Arc<CommandLog>>,
    /// Sequence numbers of statements run without a log.
    sequence: AtomicI64,
    statuses: std::sync::Mutex<BTreeMap<String, String>>,
    closing: AtomicBool,
}

impl<R> std::fmt::Debug for AppState<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("info", &self.info)
            .finish()
    }
}

impl<R: Runtime + Sync + 'static> AppState<R> {
    /// Shared state for a server running `engine`, its statements going through `log` if
    /// it has one.
    pub fn new(engine: Engine<R>, info: ServerInfo, log: Option<Arc<CommandLog>>) -> Arc<Self> {
        Arc::new(Self {
            engine: Mutex::new(engine),
            info,
            sequence: AtomicI64::new(log.as_ref().map_or(0, |l| l.applied())),
            log,
            statuses: std::sync::Mutex::default(),
            closing: AtomicBool::new(false),
        })
    }

    /// Ends every push query's response (before a shutdown).
    pub fn close_all(&self) {
        self.closing.store(true, Ordering::Relaxed);
    }
}

impl<R: Runtime + Sync + 'static> Applier for AppState<R> {
    /// Runs a command of the statement log, with the properties it was sent with.
    async fn apply(&self, record: crate::record::Record) -> Applied {
        let Some((statement, properties)) = command_statement(&record) else {
            return Err(RestError::generic(
                code::SERVER_ERROR,
                format!("command {} is not a statement", record.offset),
            ));
        };
        let mut engine = self.engine.lock().await;
        let saved = engine.overlay_properties(properties);
        let outcomes = engine.execute_script(&statement).await;
        engine.restore_properties(saved);
        drop(engine);
        match outcomes {
            Ok(outcomes) => {
                let outcome = outcomes
                    .into_iter()
                    .last()
                    .unwrap_or_else(|| Outcome::Noop(String::new()));
                tracing::info!(offset = record.offset, "applied: {statement}");
                self.record_status(&statement, &outcome);
                Ok(outcome)
            }
            Err(e) => {
                tracing::warn!(offset = record.offset, "applying {statement}: {e}");
                Err(RestError::from_engine(&e, &statement, vec![]))
            }
        }
    }
}

/// The routes.
pub fn router<R: Runtime + Sync + 'static>(state: Arc<AppState<R>>) -> Router {
    Router::new()
        .route("/ksql", post(ksql::<R>))
        .route("/query", post(query::<R>))
        .route("/query-stream", post(query_stream::<R>))
        .route("/close-query", post(close_query::<R>))
        .route("/inserts-stream", post(inserts_stream::<R>))
        .route("/", get(info::<R>))
        .route("/info", get(info::<R>))
        .route("/healthcheck", get(healthcheck::<R>))
        .route("/status", get(status::<R>))
        .route("/clusterStatus", get(cluster_status::<R>))
        .fallback(|| async {
            RestError::generic(code::NOT_FOUND, "The requested resource does not exist.")
        })
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve<R: Runtime + Sync + 'static>(
    state: Arc<AppState<R>>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.info.limits;
    let closing = Arc::clone(&state);
    let app = super::auth::protect(router(Arc::clone(&state)), state.info.auth.clone());
    super::http::serve(app, listener, limits, shutdown, move || {
        closing.close_all();
    })
    .await
}

/// `/ksql` and `/query` requests (`/query-stream` names the first two `sql` and
/// `properties`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KsqlRequest {
    #[serde(alias = "sql")]
    ksql: Option<String>,
    #[serde(default, alias = "properties")]
    streams_properties: Map<String, Value>,
    #[serde(default)]
    session_variables: Map<String, Value>,
    /// Wait until this server has applied the statement log up to this command.
    command_sequence_number: Option<i64>,
    /// Properties of the request itself (a peer's forwarded pull query says so).
    #[serde(default)]
    request_properties: Map<String, Value>,
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, RestError> {
    serde_json::from_slice(body)
        .map_err(|e| RestError::generic(code::BAD_REQUEST, format!("Invalid JSON in request: {e}")))
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (status, [("content-type", KSQL_JSON)], body.to_string()).into_response()
}

fn session(variables: &Map<String, Value>) -> Variables {
    variables
        .iter()
        .map(|(k, v)| {
            let value = v.as_str().map_or_else(|| v.to_string(), String::from);
            (k.to_ascii_uppercase(), value)
        })
        .collect()
}

/// A request's `streamsProperties` as text.
fn property_strings(properties: &Map<String, Value>) -> BTreeMap<String, String> {
    properties
        .iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.to_ascii_lowercase(), text)
        })
        .collect()
}

/// Whether a push query should read from the beginning (`auto.offset.reset=earliest`).
fn from_beginning(properties: &Map<String, Value>) -> bool {
    ["auto.offset.reset", "ksql.streams.auto.offset.reset"]
        .iter()
        .any(|k| properties.get(*k).and_then(Value::as_str) == Some("earliest"))
}

impl<R: Runtime + Sync + 'static> AppState<R> {
    /// Waits until this server has applied the command `request` names, if it names one.
    async fn caught_up(&self, request: &KsqlRequest) -> Result<(), RestError> {
        match (&self.log, request.command_sequence_number) {
            (Some(log), Some(n)) if n >= 0 => log.wait_for(n).await,
            _ => Ok(()),
        }
    }
}

impl KsqlRequest {
    /// A peer's forwarded pull query: this server's rows only.
    fn local_only(&self) -> bool {
        self.request_properties
            .get(super::cluster::LOCAL_ONLY)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// Which part of a table split among the servers this server answers: a peer's
    /// forwarded query says which partitions; a client's query on a cluster gets the
    /// partitions this server runs (the others are asked of their owners); without a
    /// cluster, the whole store.
    fn pull_scope(&self, cluster: bool) -> Option<PullScope> {
        if self.local_only() {
            let partitions = self.request_properties.get(super::cluster::PARTITIONS);
            return Some(PullScope {
                partitions: partitions.map(super::cluster::partition_set),
                standby: self.request_properties.get(super::cluster::STANDBY)
                    == Some(&Value::Bool(true)),
            });
        }
        cluster.then(PullScope::default)
    }

    /// Whether standby copies may answer (`ksql.query.pull.enable.standby.reads`, as the
    /// request sets it or else the server) and how far behind they may be
    /// (`ksql.query.pull.max.allowed.offset.lag`, by default any distance).
    fn standby_reads(&self, server: bool) -> Option<i64> {
        let property = |name: &str| match self.streams_properties.get(name) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
            None => None,
        };
        let enabled = property(STANDBY_READS).map_or(server, |v| v.eq_ignore_ascii_case("true"));
        let max_lag = property(MAX_OFFSET_LAG).and_then(|v| v.trim().parse().ok());
        enabled.then_some(max_lag.unwrap_or(i64::MAX))
    }

    /// The statements' text; a request without it is malformed.
    fn sql(&self) -> Result<&str, RestError> {
        self.ksql.as_deref().ok_or_else(|| {
            RestError::generic(
                code::BAD_REQUEST,
                "Invalid request: the \"ksql\" field (\"sql\" on /query-stream) is required",
            )
        })
    }
}

/// Splits and parses `sql`: each statement with its text as sent and with its variables
/// substituted (as the command topic logs it). More than `max` statements are refused
/// before any is parsed.
fn statements(
    sql: &str,
    variables: &mut Variables,
    max: usize,
) -> Result<Vec<(String, String, Statement)>, RestError> {
    let pieces = variables::split(sql);
    if pieces.len() > max {
        return Err(RestError::generic(
            code::BAD_REQUEST,
            format!(
                "The request has {} statements; a request may have at most {max} (--max-statements)",
                pieces.len()
            ),
        ));
    }
    let mut out = Vec::new();
    for piece in pieces {
        let text = piece.text.trim().to_string();
        if text.is_empty() || text == ";" {
            continue;
        }
        let bad = |e: crate::sql::ParseError| {
            RestError::statement(code::BAD_STATEMENT, e.to_string(), &text, vec![])
        };
        let substituted = variables::substitute(&piece, variables)
            .map_err(bad)?
            .trim()
            .to_string();
        let parsed = crate::sql::parse_piece(&piece, variables).map_err(bad)?;
        out.extend(
            parsed
                .into_iter()
                .map(|s| (text.clone(), substituted.clone(), s)),
        );
    }
    Ok(out)
}

async fn ksql<R: Runtime + Sync + 'static>(
    State(state): State<Arc<AppState<R>>>,
    body: Bytes,
) -> Response {
    match run_ksql(&state, &body).await {
        Ok(entities) => json_response(StatusCode::OK, &Value::Array(entities)),
        Err(e) => e.into_response(),
    }
}

async fn run_ksql<R: Runtime + Sync + 'static>(
    state: &AppState<R>,
    body: &[u8],
) -> Result<Vec<Value>, RestError> {
    let request: KsqlRequest = parse_body(body)?;
    state.caught_up(&request).await?;
    let mut variables = session(&request.session_variables);
    // The request's properties, and those its SET statements change for the statements after.
    let mut properties = property_strings(&request.streams_properties);
    let mut entities = Vec::new();
    let limits = &state.info.limits;
    let started = std::time::Instant::now();
    let parsed = statements(request.sql()?, &mut variables, limits.max_statements)?;
    for (text, substituted, statement) in parsed {
        if started.elapsed() > limits.request_budget {
            return Err(RestError::statement(
                code::REQUEST_TIMEOUT,
                format!(
                    "The request ran out of time ({} ms, --request-timeout-ms): this statement and those after it were not run",
                    limits.request_budget.as_millis()
                ),
                &text,
                entities,
            ));
        }
        match &statement {
            Statement::SetProperty { name, value } => {
                properties.insert(name.to_ascii_lowercase(), value.clone());
            }
            Statement::UnsetProperty(name) => {
                properties.remove(&name.to_ascii_lowercase());
            }
            _ => {}
        }
        match state
            .statement(&statement, (&text, &substituted), &properties)
            .await
        {
            Ok(Some(entity)) => entities.push(entity),
            Ok(None) => {}
            Err(mut e) => {
                if let Some((_, before)) = &mut e.statement {
                    *before = entities;
                }
                return Err(e);
            }
        }
    }
    Ok(entities)
}

impl<R: Runtime + Sync + 'static> AppState<R> {
    /// Runs one `/ksql` statement; `None` for statements without an entity.
    async fn statement(
        &self,
        statement: &Statement,
        (text, substituted): (&str, &str),
        properties: &BTreeMap<String, String>,
    ) -> Result<Option<Value>, RestError> {
        let refuse = |code, message: &str| Err(RestError::statement(code, message, text, vec![]));
        match statement {
            Statement::Query(_) | Statement::Print(_) => refuse(
                code::QUERY_ENDPOINT,
                "The following statement types should be issued to the websocket endpoint '/query':\n\t* PRINT\n\t* SELECT",
            ),
            Statement::SetProperty { .. }
            | Statement::UnsetProperty(_)
            | Statement::Define { .. }
            | Statement::Undefine(_) => Ok(None),
            Statement::List(kind, _) => self.list(kind, text).await.map(Some),
            Statement::Describe { name, extended } => self
                .describe(&normalize(name), *extended, text)
                .await
                .map(Some),
            Statement::DescribeStreams(extended) => {
                let engine = self.engine.lock().await;
                let names: Vec<String> = engine
                    .catalog()
                    .sources()
                    .filter(|s| s.kind == SourceKind::Stream)
                    .map(|s| s.name.clone())
                    .collect();
                drop(engine);
                let mut descriptions = Vec::new();
                for name in names {
                    let d = self.describe(&name, *extended, text).await?;
                    descriptions.push(d["sourceDescription"].clone());
                }
                Ok(Some(json!({
                    "@type": "source_descriptions", "statementText": text,
                    "sourceDescriptions": descriptions, "warnings": [],
                })))
            }
            Statement::Explain(explain) => self.explain(explain, text).await.map(Some),
            _ if self.info.headless => refuse(
                code::BAD_REQUEST,
                "The server is running in headless mode. Interactive use is disabled.",
            ),
            other => match &self.log {
                Some(log) if !matches!(other, Statement::InsertValues(_)) => {
                    self.through_the_log(log, (text, substituted), properties)
                        .await
                }
                _ => self.execute(other, text, properties).await,
            },
        }
    }

    /// Runs a statement with the request's `properties` (the engine's own are put back after).
    async fn execute(
        &self,
        statement: &Statement,
        text: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<Option<Value>, RestError> {
        let mut engine = self.engine.lock().await;
        let saved = engine.overlay_properties(properties.clone());
        let outcome = engine.execute(statement).await;
        engine.restore_properties(saved);
        let outcome = outcome.map_err(|e| RestError::from_engine(&e, text, vec![]))?;
        if matches!(statement, Statement::InsertValues(_)) {
            return Ok(None);
        }
        drop(engine);
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        let entity = entities::current_status(text, &outcome, sequence);
        self.record_status(text, &outcome);
        Ok(Some(entity))
    }

    /// Appends a statement to the cluster's statement log and answers once this server
    /// has applied it (see [`super::commands`]).
    async fn through_the_log(
        &self,
        log: &CommandLog,
        (text, substituted): (&str, &str),
        properties: &BTreeMap<String, String>,
    ) -> Result<Option<Value>, RestError> {
        let offset = log.append(substituted, properties).await?;
        log.wait_for(offset).await?;
        let outcome = log.take_outcome(offset).unwrap_or_else(|| {
            Err(RestError::generic(
                code::SERVER_ERROR,
                "The statement was applied but its outcome was not kept",
            ))
        })?;
        Ok(Some(entities::current_status(text, &outcome, offset)))
    }

    /// Keeps `outcome` of `statement` for `/status`.
    fn record_status(&self, statement: &str, outcome: &Outcome) {
        let entity = entities::current_status(statement, outcome, 0);
        if let Some(id) = entity["commandId"].as_str() {
            self.statuses
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id.to_string(), outcome.to_string());
        }
    }

    async fn list(&self, kind: &ListKind, text: &str) -> Result<Value, RestError> {
        let engine = self.engine.lock().await;
        let catalog = engine.catalog();
        Ok(match kind {
            ListKind::Streams => entities::source_list(
                text,
                SourceKind::Stream,
                catalog.sources().map(|s| s.as_ref()),
            ),
            ListKind::Tables => entities::source_list(
                text,
                SourceKind::Table,
                catalog.sources().map(|s| s.as_ref()),
            ),
            ListKind::Queries => {
                let queries = engine.queries().iter().map(|(id, info)| {
                    let topic = catalog.get(&info.sink).map(|s| s.topic.as_str());
                    (id, info, topic)
                });
                entities::query_list(text, queries, &engine.push_queries())
            }
            ListKind::Topics { all } => {
                let topics = engine
                    .runtime()
                    .topics()
                    .await
                    .map_err(|e| RestError::from_engine(&e, text, vec![]))?;
                let shown: Vec<(String, i32)> = topics
                    .into_iter()
                    .filter(|(name, _)| {
                        *all || !(name.starts_with('_')
                            || crate::catalog::reserved::is_read_only(name))
                    })
                    .collect();
                entities::topic_list(text, &shown)
            }
            ListKind::Properties => entities::properties(text, &self.info.properties),
            other => {
                return Err(RestError::statement(
                    code::BAD_STATEMENT,
                    format!("SHOW {other} is not supported yet."),
                    text,
                    vec![],
                ));
            }
        })
    }

    async fn describe(&self, name: &str, extended: bool, text: &str) -> Result<Value, RestError> {
        let engine = self.engine.lock().await;
        let source = engine.catalog().get(name).cloned().ok_or_else(|| {
            RestError::statement(
                code::BAD_STATEMENT,
                format!("Could not find STREAM/TABLE '{name}' in the Metastore"),
                text,
                vec![],
            )
        })?;
        let mut details = SourceDetails {
            partitions: engine
                .runtime()
                .topic_partitions(&source.topic)
                .await
                .ok()
                .flatten()
                .unwrap_or(0),
            ..SourceDetails::default()
        };
        for (id, info) in engine.queries() {
            // Each query as it writes: its sink's topic.
            let sink_topic = engine.catalog().get(&info.sink).map(|s| s.topic.clone());
            let reference = entities::query_summary(id, info, sink_topic.as_deref());
            if info.sink == source.name {
                if let Some(last) = info.status.errors().last() {
                    details.errors.push(format!("{id}: {}", last.message));
                }
                details.write_queries.push(reference);
            } else if info.sources.contains(&source.name) {
                details.read_queries.push(reference);
            }
        }
        if extended {
            details.statistics = engine.statistics(&source.name);
        }
        Ok(entities::source_description(
            text, &source, extended, details,
        ))
    }

    async fn explain(&self, explain: &Explain, text: &str) -> Result<Value, RestError> {
        let engine = self.engine.lock().await;
        let id = match explain {
            Explain::Query(id) => normalize(id),
            Explain::Statement(_) => {
                return Err(RestError::statement(
                    code::BAD_STATEMENT,
                    "EXPLAIN of a statement is not supported yet; EXPLAIN a running query's id.",
                    text,
                    vec![],
                ));
            }
        };
        let info = engine.queries().get(&id).ok_or_else(|| {
            RestError::statement(
                code::BAD_STATEMENT,
                format!("Query with id:{id} does not exist, use SHOW QUERIES to view the full set of running queries."),
                text,
                vec![],
            )
        })?;
        Ok(entities::query_description(
            text,
            &id,
            info,
            &info.sources,
            &engine.describe_plan(&id),
        ))
    }
}

/// How a query's results are written.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Framing {
    /// `/query`: `[{"header":..},\n{"row":..},\n...]`.
    Query,
    /// `/query-stream` delimited: a metadata line, then one JSON array per row.
    Delimited,
    /// `/query-stream` with `Accept: application/json`: one JSON array.
    JsonArray,
    /// `/query` with `Accept: application/vnd.ksql.v1+protobuf`: a pull query's header gives
    /// the rows' `protoSchema` and each row is a message (`protobufBytes`); push queries
    /// answer as [`Framing::Query`].
    Protobuf,
}

impl Framing {
    /// How a push query answers: Protobuf is for pull queries only.
    fn for_push(self) -> Self {
        match self {
            Framing::Protobuf => Framing::Query,
            other => other,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Framing::Query => KSQL_JSON,
            Framing::Protobuf => PROTOBUF,
            Framing::Delimited => DELIMITED,
            Framing::JsonArray => "application/json",
        }
    }

    fn header(self, id: &str, header: &Header) -> String {
        match self {
            Framing::Query | Framing::Protobuf => {
                let h = json!({"header": {"queryId": id, "schema": header.schema()}});
                format!("[{h},\n")
            }
            Framing::Delimited | Framing::JsonArray => {
                let names: Vec<&str> = header.columns.iter().map(|c| c.name.as_str()).collect();
                let types: Vec<String> = header
                    .columns
                    .iter()
                    .map(|c| crate::types::sql_name(&c.data_type))
                    .collect();
                let meta = json!({"queryId": id, "columnNames": names, "columnTypes": types});
                match self {
                    Framing::Delimited => format!("{meta}\n"),
                    _ => format!("[{meta}"),
                }
            }
        }
    }

    fn row(self, columns: Vec<Value>, tombstone: bool) -> String {
        match self {
            Framing::Query | Framing::Protobuf => {
                let mut row = json!({"columns": columns});
                if tombstone {
                    row["tombstone"] = json!(true);
                }
                format!("{},\n", json!({ "row": row }))
            }
            Framing::Delimited => format!("{}\n", Value::Array(columns)),
            Framing::JsonArray => format!(",{}", Value::Array(columns)),
        }
    }

    /// The end of the response, with `finalMessage` or an error for `/query` (whose
    /// elements each end with `,\n`, as ksqlDB writes them, so a client can read the
    /// stream line by line).
    fn end(self, message: Option<&str>, error: Option<&RestError>) -> String {
        match (self, error) {
            (Framing::Query | Framing::Protobuf, Some(e)) => {
                format!("{}]\n", json!({"errorMessage": e.body()}))
            }
            (Framing::Query | Framing::Protobuf, None) => match message {
                Some(m) => format!("{}]\n", json!({ "finalMessage": m })),
                None => "]\n".to_string(),
            },
            (Framing::Delimited, Some(e)) => format!("{}\n", e.body()),
            (Framing::Delimited, None) => String::new(),
            (Framing::JsonArray, Some(e)) => format!(",{}]", e.body()),
            (Framing::JsonArray, None) => "]".to_string(),
        }
    }
}

fn rows_of(batch: &Batch) -> Vec<(Vec<Value>, bool)> {
    entities::row_json(&batch.data)
        .into_iter()
        .enumerate()
        .map(|(i, row)| (row, batch.is_tombstone(i)))
        .collect()
}

async fn query<R: Runtime + Sync + 'static>(
    State(state): State<Arc<AppState<R>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let framing = if accepts(&headers, DELIMITED) {
        Framing::Delimited
    } else if accepts(&headers, PROTOBUF) {
        Framing::Protobuf
    } else {
        Framing::Query
    };
    run_query(state, &body, framing).await
}

async fn query_stream<R: Runtime + Sync + 'static>(
    State(state): State<Arc<AppState<R>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let framing = if accepts(&headers, "application/json") {
        Framing::JsonArray
    } else {
        Framing::Delimited
    };
    run_query(state, &body, framing).await
}

fn accepts(headers: &HeaderMap, content_type: &str) -> bool {
    headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains(content_type))
}

async fn run_query<R: Runtime + Sync + 'static>(
    state: Arc<AppState<R>>,
    body: &[u8],
    framing: Framing,
) -> Response {
    let request: KsqlRequest = match parse_body(body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = state.caught_up(&request).await {
        return e.into_response();
    }
    let options = PushOptions {
        from_beginning: from_beginning(&request.streams_properties),
        scalable: state.info.scalable_push,
        buffer_bytes: state.info.limits.push_buffer_bytes,
        max_dedicated: state.info.limits.max_push_queries,
    };
    let mut variables = session(&request.session_variables);
    let parsed = match request
        .sql()
        .and_then(|sql| statements(sql, &mut variables, 1))
    {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if let [(_, _, Statement::Print(print))] = parsed.as_slice() {
        return print_response(&state, print).await;
    }
    let [(text, _, Statement::Query(query))] = parsed.as_slice() else {
        return RestError::generic(
            code::BAD_STATEMENT,
            "The /query endpoint takes exactly one SELECT or PRINT statement.",
        )
        .into_response();
    };
    // The request's properties apply while the query is planned (the engine's are put back).
    let selected = {
        let mut engine = state.engine.lock().await;
        let saved = engine.overlay_properties(property_strings(&request.streams_properties));
        let scope = request.pull_scope(state.info.cluster.is_some());
        let selected = engine.select(query, text, (options, scope.as_ref())).await;
        engine.restore_properties(saved);
        selected
    };
    match selected {
        Err(e) if query.emit.is_some() => {
            let mut error = RestError::from_engine(&e, text, vec![]);
            error.statement = None;
            error.into_response()
        }
        Err(e) => RestError::from_engine(&e, text, vec![]).into_response(),
        Ok(Selected::Pull(result)) => {
            pull_answer(&state, (&request, body), &result, (framing, query.limit)).await
        }
        Ok(Selected::Push(push)) => {
            let (sender, receiver) = mpsc::channel::<String>(64);
            let framing = framing.for_push();
            tokio::spawn(pump(state, push, sender, framing));
            streaming(receiver, framing.content_type())
        }
    }
}

/// A pull query's response: this server's rows and those of the servers holding the rest;
/// a peer's answer also says which partitions it is (its framing is `Query`).
async fn pull_answer<R: Runtime + Sync + 'static>(
    state: &AppState<R>,
    (request, body): (&KsqlRequest, &[u8]),
    result: &PullResult,
    (framing, limit): (Framing, Option<u64>),
) -> Response {
    match peers_rows(state, request, result, body).await {
        Ok(peers) => {
            let served = request.local_only().then_some(result.share.as_ref());
            let served = served.flatten().map(|s| &s.served);
            pull_response(result, framing, (peers, limit, served))
        }
        Err(e) => e.into_response(),
    }
}

/// The rows of a table's pull query that the other servers hold (the servers owning the
/// partitions of a table split among them this server did not answer); none for a whole
/// table, a stream's scan or a peer's forwarded query.
async fn peers_rows<R: Runtime + Sync + 'static>(
    state: &AppState<R>,
    request: &KsqlRequest,
    result: &PullResult,
    body: &[u8],
) -> Result<super::cluster::Rows, RestError> {
    match (&state.info.cluster, &result.share) {
        (Some(cluster), Some(share)) if !request.local_only() => {
            let mut body: Value = serde_json::from_slice(body).unwrap_or_default();
            // A peer answers once it has applied the statements this server has (the
            // table's CREATE among them).
            if let Some(applied) = state.log.as_ref().map(|l| l.applied()).filter(|n| *n > 0) {
                body["commandSequenceNumber"] = json!(applied - 1);
            }
            let standby_reads = request.standby_reads(state.info.standby_reads);
            super::cluster::route_pull(cluster, &body, share, standby_reads).await
        }
        _ => Ok(Vec::new()),
    }
}

/// `PRINT topic`: one line per record as it arrives (every `INTERVAL`-th, up to `LIMIT`),
/// until the client leaves.
async fn print_response<R: Runtime + Sync + 'static>(
    state: &Arc<AppState<R>>,
    print: &crate::sql::ast::Print,
) -> Response {
    let written = print.topic.value.clone();
    let engine = state.engine.lock().await;
    let mut topic = None;
    for candidate in [
        written.clone(),
        written.to_ascii_uppercase(),
        written.to_ascii_lowercase(),
    ] {
        if matches!(
            engine.runtime().topic_partitions(&candidate).await,
            Ok(Some(_))
        ) {
            topic = Some(candidate);
            break;
        }
    }
    let Some(topic) = topic else {
        return RestError::generic(
            code::BAD_STATEMENT,
            format!("Could not find topic '{written}', or the KSQL user does not have permissions to list the topic. Topic names are case-sensitive."),
        )
        .into_response();
    };
    let mut records = match engine.runtime().tail(&topic, print.from_beginning).await {
        Ok(r) => r,
        Err(e) => return RestError::from_engine(&e, "", vec![]).into_response(),
    };
    drop(engine);
    let (interval, limit) = (print.interval.unwrap_or(1).max(1), print.limit);
    let (sender, receiver) = mpsc::channel::<String>(64);
    let closing = Arc::clone(state);
    tokio::spawn(async move {
        let (mut seen, mut sent) = (0u64, 0u64);
        while limit.is_none_or(|l| sent < l) && !closing.closing.load(Ordering::Relaxed) {
            let record = match tokio::time::timeout(IDLE_CHECK, records.recv()).await {
                Ok(Some(record)) => record,
                Ok(None) => break,
                Err(_) if sender.is_closed() => break,
                Err(_) => continue,
            };
            seen += 1;
            if (seen - 1) % interval != 0 {
                continue;
            }
            let line = crate::kafka::print::line(&record, None);
            if sender.send(format!("{line}\n")).await.is_err() {
                break;
            }
            sent += 1;
        }
    });
    streaming(receiver, "text/plain")
}

/// A response whose body is the chunks `receiver` yields.
fn streaming(receiver: mpsc::Receiver<String>, content_type: &'static str) -> Response {
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|chunk| (Ok::<_, Infallible>(Bytes::from(chunk)), receiver))
    });
    (
        StatusCode::OK,
        [("content-type", content_type)],
        Body::from_stream(stream),
    )
        .into_response()
}

/// A pull query's complete response.
fn pull_response(
    result: &PullResult,
    framing: Framing,
    (peers, limit, served): (super::cluster::Rows, Option<u64>, Option<&BTreeSet<i32>>),
) -> Response {
    let id = format!("pull_{}", rand::random::<u32>());
    let rows = result.batches.iter().flat_map(rows_of).chain(peers);
    let rows = rows.take(limit.map_or(usize::MAX, |l| l as usize));
    let mut out = match framing {
        Framing::Protobuf => match protobuf_rows(&id, &result.header, rows) {
            Ok(out) => out,
            Err(e) => return RestError::generic(code::BAD_REQUEST, e).into_response(),
        },
        _ => {
            let mut out = framing.header(&id, &result.header);
            for (row, tombstone) in rows {
                out.push_str(&framing.row(row, tombstone));
            }
            out
        }
    };
    if let Some(served) = served {
        out.push_str(&format!("{},\n", json!({ super::cluster::SERVED: served })));
    }
    let message = result.scanned_stream.then_some("Query Completed");
    if message.is_none() && matches!(framing, Framing::Query | Framing::Protobuf) {
        // The last element then ends the array: no separator after it.
        out.truncate(out.trim_end_matches(",\n").len());
    }
    out.push_str(&framing.end(message, None));
    (
        StatusCode::OK,
        [("content-type", framing.content_type())],
        out,
    )
        .into_response()
}

/// A pull query's header and rows as Protobuf: the `protoSchema` ksqlDB gives its columns,
/// and each row that message's bytes in base64.
fn protobuf_rows(
    id: &str,
    header: &Header,
    rows: impl Iterator<Item = (Vec<Value>, bool)>,
) -> Result<String, String> {
    use base64::Engine as _;
    let columns: Vec<(String, arrow::datatypes::DataType)> = (header.columns.iter())
        .map(|c| (c.name.clone(), c.data_type.clone()))
        .collect();
    let schema = crate::format::protobuf::schema_text(&columns);
    let message = crate::format::protobuf::compile(&schema, None)?;
    let head = json!({"header": {"queryId": id, "schema": header.schema(), "protoSchema": schema}});
    let mut out = format!("[{head},\n");
    for (row, _) in rows {
        let object: Map<String, Value> =
            (columns.iter().map(|(n, _)| n.clone())).zip(row).collect();
        let encoded = crate::format::protobuf::encode(&crate::format::protobuf::from_json(
            &Value::Object(object),
            &message,
        )?);
        let bytes = base64::engine::general_purpose::STANDARD.encode(encoded);
        out.push_str(&format!("{},\n", json!({"row": {"protobufBytes": bytes}})));
    }
    Ok(out)
}

/// Copies a push query's rows to its response until the limit, the client's departure,
/// an overflow, or shutdown; then closes the query.
async fn pump<R: Runtime + Sync + 'static>(
    state: Arc<AppState<R>>,
    mut push: PushQuery,
    out: mpsc::Sender<String>,
    framing: Framing,
) {
    let limit = push.limit.map(|l| l as usize);
    let mut sent = 0usize;
    let mut end = (None, None);
    let mut open = out
        .send(framing.header(&push.id, &push.header))
        .await
        .is_ok();
    if limit == Some(0) {
        end.0 = Some("Limit Reached");
    }
    while open && end.0.is_none() && !state.closing.load(Ordering::Relaxed) {
        if push.rows.overflowed() {
            end.1 = Some(RestError::generic(
                code::SERVER_ERROR,
                "The client did not read the query's results fast enough; the query was closed.",
            ));
            break;
        }
        let batch = match tokio::time::timeout(IDLE_CHECK, push.rows.recv()).await {
            Ok(Some(batch)) => batch,
            Ok(None) => {
                end.0 = Some("Query Completed");
                break;
            }
            Err(_) => {
                open = !out.is_closed();
                continue;
            }
        };
        for (row, tombstone) in rows_of(&batch) {
            let Some(permit) = room_for_a_row(&state, &push, &out).await else {
                open = false;
                break;
            };
            permit.send(framing.row(row, tombstone));
            sent += 1;
            if limit.is_some_and(|l| sent >= l) {
                end.0 = Some("Limit Reached");
                break;
            }
        }
    }
    if end == (None, None) {
        end.1 = Some(RestError::generic(
            code::SERVER_ERROR,
            "The server is shutting down; the query was closed.",
        ));
    }
    if open {
        let _ = out.send(framing.end(end.0, end.1.as_ref())).await;
    }
    if let Err(e) = state.engine.lock().await.close_push(&push.id).await {
        tracing::warn!(query = %push.id, "closing push query: {e}");
    }
}

/// Room for one more row in `out`, waiting while the client reads; `None` if it left, or
/// stopped reading until its query overflowed, or the server is closing.
async fn room_for_a_row<'a, R: Runtime + Sync + 'static>(
    state: &AppState<R>,
    push: &PushQuery,
    out: &'a mpsc::Sender<String>,
) -> Option<mpsc::Permit<'a, String>> {
    loop {
        tokio::select! {
            permit = out.reserve() => return permit.ok(),
            () = tokio::time::sleep(IDLE_CHECK) => {
                if push.rows.overflowed() || state.closing.load(Ordering::Relaxed) {
                    return None;
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CloseRequest {
    query_id: String,
}

async fn close_query<R: Runtime + Sync + 'static>(
    State(state): State<Arc<AppState<R>>>,
    body: Bytes,
) -> Response {
    let request: CloseRequest = match parse_body(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let mut engine = state.engine.lock().await;
    if !engine.push_queries().contains(&request.query_id) {
        return RestError::generic(
            code::BAD_REQUEST,
            format!("No query with id {}", request.query_id),
        )
        .into_response();
    }
    match engine.close_push(&request.query_id).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => RestError::from_engine(&e, "", vec![]).into_response(),
    }
}

/// `/inserts-stream`: a first line naming the target, then one JSON row per line; answers
/// one acknowledgement per row (`{"status":"ok","seq":n}` or an error with its message).
async fn inserts_stream<R: Runtime + Sync + 'static>(
    State(state): State<Arc<AppState<R>>>,
    body: Bytes,
) -> Response {
    if state.info.headless {
        return RestError::generic(
            code::BAD_REQUEST,
            "The server is running in headless mode. Interactive use is disabled.",
        )
        .into_response();
    }
    let text = String::from_utf8_lossy(&body);
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let target = lines
        .next()
        .and_then(|l| serde_json::from_str::<Value>(l).ok())
        .and_then(|v| v["target"].as_str().map(String::from));
    let Some(target) = target else {
        return RestError::generic(
            code::BAD_REQUEST,
            "The first line must be {\"target\": \"<stream>\"}.",
        )
        .into_response();
    };
    let mut acks = String::new();
    for (seq, line) in lines.enumerate() {
        let ack = match insert_line(&state, &target, line).await {
            Ok(()) => json!({"status": "ok", "seq": seq}),
            Err(e) => json!({
                "status": "error", "seq": seq, "error_code": e.code, "message": e.message,
            }),
        };
        acks.push_str(&format!("{ack}\n"));
    }
    (StatusCode::OK, [("content-type", DELIMITED)], acks).into_response()
}

async fn insert_line<R: Runtime + Sync + 'static>(
    state: &AppState<R>,
    target: &str,
    line: &str,
) -> Result<(), RestError> {
    let bad = |m: String| RestError::generic(code::BAD_REQUEST, m);
    let row: Value = serde_json::from_str(line).map_err(|e| bad(format!("Invalid JSON: {e}")))?;
    let object = row
        .as_object()
        .ok_or_else(|| bad("A row must be a JSON object".into()))?;
    let mut engine = state.engine.lock().await;
    let name = target.to_ascii_uppercase();
    let source = engine
        .catalog()
        .get(&name)
        .or_else(|| engine.catalog().get(target))
        .cloned()
        .ok_or_else(|| {
            bad(format!(
                "Cannot insert into an unknown stream/table: {target}"
            ))
        })?;
    engine
        .insert_json(&source, object)
        .await
        .map_err(|e| bad(e.to_string()))
}

async fn info<R: Runtime + Sync + 'static>(State(state): State<Arc<AppState<R>>>) -> Response {
    json_response(
        StatusCode::OK,
        &json!({"KsqlServerInfo": {
            "version": env!("CARGO_PKG_VERSION"),
            "kafkaClusterId": "",
            "ksqlServiceId": state.info.service_id,
            "serverStatus": "RUNNING",
        }}),
    )
}

async fn healthcheck<R: Runtime + Sync + 'static>(
    State(state): State<Arc<AppState<R>>>,
) -> Response {
    let kafka = state.engine.lock().await.runtime().topics().await.is_ok();
    let status = if kafka {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(
        status,
        &json!({
            "isHealthy": kafka,
            "details": {
                "metastore": {"isHealthy": true},
                "kafka": {"isHealthy": kafka},
                "commandRunner": {"isHealthy": true},
            },
            "serverState": "RUNNING",
        }),
    )
}

async fn status<R: Runtime + Sync + 'static>(State(state): State<Arc<AppState<R>>>) -> Response {
    let statuses: Map<String, Value> = state
        .statuses
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .keys()
        .map(|id| (id.clone(), json!("SUCCESS")))
        .collect();
    json_response(StatusCode::OK, &json!({ "commandStatuses": statuses }))
}

async fn cluster_status<R: Runtime + Sync + 'static>(
    State(state): State<Arc<AppState<R>>>,
) -> Response {
    let queries: Vec<String> = state
        .engine
        .lock()
        .await
        .queries()
        .keys()
        .cloned()
        .collect();
    let Some(cluster) = &state.info.cluster else {
        let parts = queries
            .into_iter()
            .map(|id| (id, Parts::default()))
            .collect();
        let local = host_status(true, crate::record::now_ms(), &parts);
        return json_response(StatusCode::OK, &json!({"clusterStatus": {"local": local}}));
    };
    // ksqlDB names hosts `host:port`.
    let hosts: Map<String, Value> = cluster
        .hosts()
        .into_iter()
        .map(|(id, host)| {
            let name = host.url.trim_start_matches("http://").to_string();
            let status = if id == cluster.me() {
                host_status(true, crate::record::now_ms(), &cluster.local_parts())
            } else {
                host_status(host.alive(), host.last_seen_ms, &host.queries)
            };
            (name, status)
        })
        .collect();
    json_response(StatusCode::OK, &json!({ "clusterStatus": hosts }))
}

/// One host of `/clusterStatus`: alive or not, and its active and standby partitions of each
/// query (as topic partitions of the query's lead topic).
fn host_status(alive: bool, seen_ms: i64, queries: &BTreeMap<String, Parts>) -> Value {
    let partitions = |topic: &str, ps: &BTreeSet<i32>| -> Vec<Value> {
        ps.iter()
            .map(|p| json!({"topic": topic, "partition": p}))
            .collect()
    };
    let per_query: Map<String, Value> = queries
        .iter()
        .map(|(id, parts)| {
            let status = json!({
                "activeStores": [],
                "activePartitions": partitions(&parts.topic, &parts.active),
                "standByStores": [],
                "standByPartitions": partitions(&parts.topic, &parts.standby),
            });
            (id.clone(), status)
        })
        .collect();
    // The lags of the standby copies, by store (`<query>#<store>`, as ksqlDB names them).
    let lags: Map<String, Value> = queries
        .iter()
        .filter(|(_, parts)| !parts.lags.is_empty())
        .map(|(id, parts)| {
            let by_partition: Map<String, Value> = parts
                .lags
                .iter()
                .map(|(p, (at, end))| {
                    let lag = json!({
                        "currentOffsetPosition": at,
                        "endOffsetPosition": end,
                        "offsetLag": end - at,
                    });
                    (p.to_string(), lag)
                })
                .collect();
            let store = json!({"lagByPartition": by_partition, "size": parts.lags.len()});
            (format!("{id}#Aggregate-Materialize"), store)
        })
        .collect();
    json!({
        "hostAlive": alive,
        "lastStatusUpdateMs": seen_ms,
        "activeStandbyPerQuery": per_query,
        "hostStoreLags": {"stateStoreLags": lags, "updateTimeMs": seen_ms},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_records_keep_the_properties_a_statement_ran_with() {
        let properties = BTreeMap::from([(
            "ksql.persistence.default.format.value".to_string(),
            "JSON".to_string(),
        )]);
        let record = command_record(
            "_commands",
            "CREATE STREAM s (a INT) WITH (KAFKA_TOPIC='s');",
            &properties,
        );
        let (statement, read) = command_statement(&record).unwrap();
        assert_eq!(statement, "CREATE STREAM s (a INT) WITH (KAFKA_TOPIC='s');");
        assert_eq!(read, properties);
        // Records written before properties were logged still replay.
        let old = crate::record::Record {
            value: Some(br#"{"statement":"DROP STREAM s;"}"#.to_vec()),
            ..crate::record::Record::default()
        };
        assert_eq!(
            command_statement(&old).unwrap(),
            ("DROP STREAM s;".to_string(), BTreeMap::new())
        );
    }
}
