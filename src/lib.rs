//! Eddy: a continuous SQL engine for Apache Kafka, speaking ksqlDB's dialect.
//!
//! # Layout
//! The pipeline, SQL text to Kafka and back:
//! * [`sql`]: parsing ksqlDB's dialect into an AST (wrapping sqlparser).
//! * [`plan`]: AST → catalog entries and persistent-query plans (DataFusion expressions).
//! * [`catalog`]: the streams and tables known, with their topics, formats and schemas.
//! * [`exec`]: operators over Arrow record batches, and the per-partition [`exec::task::Task`].
//! * [`state`]: what operators remember (aggregates per key and window).
//! * [`format`]: record bytes ↔ Arrow (JSON, KAFKA), windowed keys.
//! * [`kafka`]: the Kafka runtime (consumers, producers, topics, partitioner).
//! * [`testing`]: the in-memory topic driver that runs the same tasks without a broker.
//! * [`engine`]: executes statements against a catalog and a runtime.
//! * [`server`]: the long-running server.
//! * [`check`]: `eddy check`, static checks of SQL files against the catalog they build.
//! * [`datagen`]: sample data for the quickstart.
//! * [`functions`], [`types`], [`record`], [`error`]: shared pieces.

pub mod catalog;
pub mod check;
pub mod cli;
pub mod datagen;
pub mod engine;
pub mod error;
pub mod exec;
pub mod format;
pub mod functions;
pub mod kafka;
pub mod plan;
pub mod record;
pub mod server;
pub mod sql;
pub mod state;
pub mod testing;
pub mod types;

pub use error::{Error, ErrorKind};
