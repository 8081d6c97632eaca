//! The server: the engine on Kafka behind ksqlDB's REST API, until it is told to stop.
//!
//! `eddy server` connects to Kafka, runs the `--queries-file` if one is given (headless, as
//! ksqlDB does: statements that change the server are then refused over REST, while
//! queries, `SHOW`, `DESCRIBE` and pull and push queries still work), and serves the REST API
//! on `--listeners` ([`rest`]). Ctrl-C or SIGTERM closes the push queries' responses, stops
//! the persistent queries (flushing their output) and exits. Layout: [`rest`] (routes and
//! handlers), [`http`] (connections and the limits on what one client may ask),
//! [`entities`] (ksqlDB's response shapes), [`error`] (its error bodies).
//!
//! Unless headless, every statement that changes the server is appended to the command
//! topic (`_eddy-<service-id>-command`, one partition, kept forever); a starting server
//! replays it in order, so its catalog and persistent queries come back with the same query
//! ids, and each query resumes from its committed offsets with its state restored from its
//! changelog (see [`crate::kafka::changelog`]).

pub mod cluster;
pub mod commands;
pub mod entities;
pub mod error;
pub mod http;
pub mod rest;

use std::path::PathBuf;

use crate::engine::{Engine, Runtime};
use crate::error::Error;
use crate::kafka::KafkaConfig;
use crate::kafka::runtime::KafkaRuntime;

/// What the server needs to start.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// How to reach Kafka.
    pub kafka: KafkaConfig,
    /// Where the REST API listens, as ksqlDB's `listeners` (`http://0.0.0.0:8088`).
    pub listeners: String,
    /// A SQL file, or a folder of them, to run headless.
    pub queries_file: Option<PathBuf>,
    /// Bounds on connections and requests.
    pub limits: http::HttpLimits,
    /// How the other servers reach this one (ksqlDB's `ksql.advertised.listener`; default:
    /// the first listener, `0.0.0.0` as `127.0.0.1`).
    pub advertised_listener: Option<String>,
}

/// The URL the other servers reach this one at.
pub fn advertised_url(config: &ServerConfig) -> String {
    let url = config
        .advertised_listener
        .clone()
        .unwrap_or_else(|| listen_address(&config.listeners).replacen("0.0.0.0", "127.0.0.1", 1));
    let url = url.trim_end_matches('/');
    if url.starts_with("http://") || url.starts_with("https://") {
        url.to_string()
    } else {
        format!("http://{url}")
    }
}

/// The `host:port` of a `listeners` value such as `http://0.0.0.0:8088`.
pub fn listen_address(listeners: &str) -> String {
    let first = listeners.split(',').next().unwrap_or_default().trim();
    first
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

/// Whether server property `name` (`-p`) is `true`.
fn is_true(properties: &[(String, String)], name: &str) -> bool {
    properties
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case(name) && v.eq_ignore_ascii_case("true"))
}

/// Runs the server until Ctrl-C or SIGTERM.
pub async fn run(config: ServerConfig) -> Result<(), Error> {
    // The queries' default settings (`-p processing.guarantee=...`) must be valid.
    crate::engine::QuerySettings::from_properties(
        config.kafka.properties.iter().map(|(k, v)| (k, v)),
    )?;
    let mut engine = Engine::new(KafkaRuntime::connect(config.kafka.clone())?);
    let headless = config.queries_file.is_some();
    let log = match &config.queries_file {
        Some(queries) => {
            run_queries_file(&mut engine, queries).await?;
            None
        }
        None => Some(statement_log(&mut engine, &config.kafka).await?),
    };
    let queries = engine.queries().len();
    let ownership = engine.runtime().ownership();
    let cluster =
        cluster::Cluster::join(&config.kafka, &advertised_url(&config), ownership).await?;
    let state = rest::AppState::new(
        engine,
        rest::ServerInfo {
            service_id: config.kafka.service_id.clone(),
            headless,
            scalable_push: false,
            limits: config.limits,
            cluster: Some(std::sync::Arc::clone(&cluster)),
            standby_reads: is_true(&config.kafka.properties, rest::STANDBY_READS),
            properties: vec![
                (
                    "bootstrap.servers".into(),
                    config.kafka.bootstrap_servers.clone(),
                ),
                ("ksql.service.id".into(), config.kafka.service_id.clone()),
            ],
        },
        log.clone(),
    );
    if let Some(log) = log {
        commands::spawn_runner(&config.kafka, log, std::sync::Arc::clone(&state))?;
    }
    let address = listen_address(&config.listeners);
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .map_err(|source| Error::Io {
            path: format!("listening on {address}"),
            source,
        })?;
    tracing::info!(
        "running {queries} persistent queries; REST API on http://{address}; Ctrl-C or SIGTERM stops"
    );
    rest::serve(std::sync::Arc::clone(&state), listener, shutdown_signal())
        .await
        .map_err(|source| Error::Io {
            path: format!("serving on {address}"),
            source,
        })?;
    tracing::info!("stopping");
    cluster.leave(&config.kafka);
    state.engine.lock().await.shutdown().await
}

/// Replays the command topic (`_eddy-<service-id>-command`) and returns the statement log
/// that goes on from its end.
async fn statement_log(
    engine: &mut Engine<KafkaRuntime>,
    kafka: &KafkaConfig,
) -> Result<std::sync::Arc<commands::CommandLog>, Error> {
    let topic = format!("_eddy-{}-command", kafka.service_id);
    let next = replay(engine, kafka, &topic).await?;
    Ok(std::sync::Arc::new(commands::CommandLog::new(
        kafka, &topic, next,
    )?))
}

/// Runs a queries file, or a folder's .sql files (recursively, in name order) as `eddy
/// check` reads them.
async fn run_queries_file(
    engine: &mut Engine<KafkaRuntime>,
    queries: &std::path::Path,
) -> Result<(), Error> {
    for file in crate::check::sql_files(&[queries.to_path_buf()])? {
        let path = file.display().to_string();
        let script = std::fs::read_to_string(&file).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        for outcome in engine.execute_script(&script).await? {
            tracing::info!("{path}: {outcome}");
        }
    }
    Ok(())
}

/// Creates the command topic if needed and re-executes its statements in order; returns
/// the offset after the last. A statement that fails now (e.g. its topic was deleted) is
/// skipped with a warning, as ksqlDB does.
async fn replay(
    engine: &mut Engine<KafkaRuntime>,
    kafka: &KafkaConfig,
    topic: &str,
) -> Result<i64, Error> {
    crate::kafka::admin::Topics::connect(kafka)?
        .create_with(topic, 1, &[("retention.ms", "-1")])
        .await?;
    let records = engine.runtime().scan(topic).await?;
    for record in &records {
        let Some((statement, properties)) = rest::command_statement(record) else {
            continue;
        };
        let saved = engine.overlay_properties(properties);
        let replayed = engine.execute_script(&statement).await;
        engine.restore_properties(saved);
        match replayed {
            Ok(_) => tracing::info!("replayed: {statement}"),
            Err(e) => tracing::warn!("replaying {statement}: {e}"),
        }
    }
    if !records.is_empty() {
        tracing::info!(
            "replayed {} statements from {topic}; {} persistent queries running",
            records.len(),
            engine.queries().len()
        );
    }
    Ok(records.iter().map(|r| r.offset + 1).max().unwrap_or(0))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
