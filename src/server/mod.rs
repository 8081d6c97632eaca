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

pub mod auth;
pub mod cluster;
pub mod commands;
pub mod entities;
pub mod error;
pub mod http;
pub mod rest;
pub mod schema_registry;

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
    let auth = checked_properties(&config)?;
    let mut engine = Engine::new(KafkaRuntime::connect(config.kafka.clone())?);
    use_registry(&mut engine, &config, auth.clone()).await?;
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
            auth: auth.clone(),
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

/// The server's schema registry, and the embedded one's API if it serves one.
struct Registry {
    registry: crate::format::registry::SchemaRegistry,
    serve: Option<(axum::Router, tokio::net::TcpListener)>,
}

/// An external registry if `ksql.schema.registry.url` names one; otherwise the embedded
/// registry over its Kafka topic (`schema.registry.kafkastore.topic`, default
/// `_eddy_schemas`), served on `schema.registry.listeners` (default `http://0.0.0.0:8081`;
/// empty: not served).
async fn schema_registry(kafka: &KafkaConfig) -> Result<Registry, Error> {
    use crate::format::registry::{SchemaRegistry, client};
    let properties = || kafka.properties.iter().map(|(k, v)| (k, v));
    if let Some(external) = client::ClientConfig::from_properties(properties()) {
        tracing::info!("Schema Registry at {}", external.urls.join(", "));
        let client = client::Client::new(external)
            .map_err(|e| Error::Registry(format!("ksql.schema.registry.url: {e}")))?;
        return Ok(Registry {
            registry: SchemaRegistry::new(std::sync::Arc::new(client)),
            serve: None,
        });
    }
    let property = |name: &str| {
        properties()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let topic = property("schema.registry.kafkastore.topic")
        .unwrap_or_else(|| crate::kafka::schemas::DEFAULT_TOPIC.into());
    let log = crate::kafka::schemas::SchemaLog::open(kafka, &topic).await?;
    let listeners =
        property("schema.registry.listeners").unwrap_or_else(|| "http://0.0.0.0:8081".into());
    let serve = match listen_address(&listeners) {
        address if address.is_empty() => None,
        address => {
            let listener = tokio::net::TcpListener::bind(&address).await.map_err(|e| {
                Error::Registry(format!(
                    "the embedded Schema Registry cannot listen on {address} ({e}): set -p schema.registry.listeners=http://HOST:PORT (empty: do not serve it), or use an external registry with -p ksql.schema.registry.url=URL"
                ))
            })?;
            Some((
                schema_registry::router(std::sync::Arc::clone(&log)),
                listener,
            ))
        }
    };
    Ok(Registry {
        registry: SchemaRegistry::new(log),
        serve,
    })
}

/// Checks the server's properties: the queries' default settings (`-p
/// processing.guarantee=...`) and the authentication they ask for.
fn checked_properties(
    config: &ServerConfig,
) -> Result<Option<std::sync::Arc<auth::BasicAuth>>, Error> {
    crate::engine::QuerySettings::from_properties(
        config.kafka.properties.iter().map(|(k, v)| (k, v)),
    )?;
    Ok(auth::BasicAuth::from_properties(&config.kafka.properties)
        .map_err(Error::Config)?
        .map(std::sync::Arc::new))
}

/// Gives the engine the server's schema registry, and serves the embedded one's API.
async fn use_registry(
    engine: &mut Engine<KafkaRuntime>,
    config: &ServerConfig,
    users: Option<std::sync::Arc<auth::BasicAuth>>,
) -> Result<(), Error> {
    let registry = schema_registry(&config.kafka).await?;
    engine.set_registry(std::sync::Arc::new(registry.registry));
    if let Some((router, listener)) = registry.serve {
        spawn_registry((auth::protect(router, users), listener), config.limits);
    }
    Ok(())
}

/// Serves the embedded registry's API until Ctrl-C or SIGTERM.
fn spawn_registry(
    (router, listener): (axum::Router, tokio::net::TcpListener),
    limits: http::HttpLimits,
) {
    let address = (listener.local_addr())
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!("Schema Registry on http://{address}");
    tokio::spawn(async move {
        let served = http::serve(router, listener, limits, shutdown_signal(), || {}).await;
        if let Err(e) = served {
            tracing::warn!("serving the schema registry on {address}: {e}");
        }
    });
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
