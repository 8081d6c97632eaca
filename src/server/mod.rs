//! The server: runs the engine on Kafka until it is told to stop.
//!
//! Today the server runs headless, as ksqlDB does with `--queries-file`: it executes the file's
//! statements, keeps the persistent queries running, and stops them cleanly on Ctrl-C or
//! SIGTERM. The REST API and the command topic are not implemented yet.

use std::path::PathBuf;

use crate::engine::Engine;
use crate::error::Error;
use crate::kafka::KafkaConfig;
use crate::kafka::runtime::KafkaRuntime;

/// What the server needs to start.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// How to reach Kafka.
    pub kafka: KafkaConfig,
    /// The SQL file to run headless.
    pub queries_file: PathBuf,
}

/// Runs the queries file until Ctrl-C or SIGTERM.
pub async fn run(config: ServerConfig) -> Result<(), Error> {
    let path = config.queries_file.display().to_string();
    let script = std::fs::read_to_string(&config.queries_file).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    let mut engine = Engine::new(KafkaRuntime::connect(config.kafka)?);
    for outcome in engine.execute_script(&script).await? {
        tracing::info!("{path}: {outcome}");
    }
    tracing::info!(
        "running {} persistent queries; Ctrl-C or SIGTERM stops them",
        engine.queries().len()
    );
    shutdown_signal().await;
    tracing::info!("stopping");
    engine.shutdown().await
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
