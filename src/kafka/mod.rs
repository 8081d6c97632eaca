//! Kafka I/O: the runtime that runs persistent queries on a real broker.
//!
//! [`runtime::KafkaRuntime`] implements [`crate::engine::Runtime`]: topics through the admin
//! API ([`admin`]), and one consumer-group consumer per query whose records are handed, batch
//! by batch and partition by partition, to that partition's [`crate::exec::task::Task`]; results go
//! out through a producer placing records with Java's partitioner ([`partitioner`]).
//! [`changelog`] writes and reads the changelog topics that make task state survive restarts;
//! [`deliveries`] tells when a checkpoint's records are all written, so its offsets can be committed.
//! [`print`] reads a topic for people (the quickstart's alert view). Everything here is I/O:
//! no query logic.

pub mod admin;
pub mod changelog;
pub mod deliveries;
pub mod partitioner;
pub mod print;
pub mod runtime;

use rdkafka::ClientConfig;

/// Errors talking to Kafka.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// librdkafka reported an error.
    #[error("Kafka: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    /// A topic is missing, or cannot be created as asked.
    #[error("{0}")]
    Topic(String),
    /// The broker did not answer in time.
    #[error("Kafka: {0}")]
    Unavailable(String),
}

/// How to reach the cluster.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `bootstrap.servers`
    pub bootstrap_servers: String,
    /// ksqlDB's `ksql.service.id`: prefixes consumer groups and internal topics.
    pub service_id: String,
    /// Extra librdkafka properties (security, tuning), applied to every client.
    pub properties: Vec<(String, String)>,
}

impl KafkaConfig {
    /// A client configuration with the bootstrap servers and the extra properties.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap_servers);
        for (k, v) in &self.properties {
            config.set(k, v);
        }
        config
    }

    /// The consumer group (and application id) of query `query_id`.
    pub fn application_id(&self, query_id: &str) -> String {
        format!("{}-query-{query_id}", self.service_id)
    }
}
