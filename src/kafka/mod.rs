//! Kafka I/O: the runtime that runs persistent queries on a real broker.
//!
//! [`runtime::KafkaRuntime`] implements [`crate::engine::Runtime`]: topics through the admin
//! API ([`admin`]), and one consumer-group consumer per query whose records are handed, batch
//! by batch and partition by partition, to that partition's [`crate::exec::task::Task`]; results go
//! out through a producer placing records with Java's partitioner ([`partitioner`]).
//! [`lifecycle`] is the task lifecycle: co-partitioned assignment, restore, transactional
//! commits, revocation; [`alignment`] orders a task's inputs by timestamp; [`changelog`] writes and reads the changelog topics that make task
//! state survive restarts; [`deliveries`] keeps a producer's first failed delivery.
//! [`print`] reads a topic for people (the quickstart's alert view). Everything here is I/O:
//! no query logic.

pub mod admin;
pub mod alignment;
pub mod changelog;
pub mod deliveries;
pub mod lifecycle;
pub mod partitioner;
pub mod print;
pub mod runtime;

use rdkafka::ClientConfig;

use crate::engine::{Guarantee, TaskIdle};

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
    /// Extra librdkafka properties (security, tuning), applied to every client; Kafka
    /// Streams' `processing.guarantee` and `max.task.idle.ms` (also with the prefix
    /// `ksql.streams.`) are the defaults of the server's queries instead.
    pub properties: Vec<(String, String)>,
    /// This server's stable identity among the servers of one service id: its static group
    /// membership (`group.instance.id`) and the suffix of its transactional ids. A restarted
    /// server must keep it, two running servers must not share it.
    pub instance_id: String,
}

/// The properties that are Kafka Streams', not librdkafka's.
const STREAMS_PROPERTIES: [&str; 4] = [
    Guarantee::PROPERTIES[0],
    Guarantee::PROPERTIES[1],
    TaskIdle::PROPERTIES[0],
    TaskIdle::PROPERTIES[1],
];

impl KafkaConfig {
    /// A client configuration with the bootstrap servers and the extra properties.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap_servers);
        for (k, v) in &self.properties {
            if !STREAMS_PROPERTIES.contains(&k.as_str()) {
                config.set(k, v);
            }
        }
        config
    }

    /// The guarantee of queries whose statement sets none (`processing.guarantee`).
    pub fn default_guarantee(&self) -> Guarantee {
        self.streams_setting(&Guarantee::PROPERTIES, Guarantee::parse)
    }

    /// The `max.task.idle.ms` of queries whose statement sets none.
    pub fn default_task_idle(&self) -> TaskIdle {
        self.streams_setting(&TaskIdle::PROPERTIES, TaskIdle::parse)
    }

    /// The last of the server's properties `names` given, parsed (else the default).
    fn streams_setting<T: Default>(
        &self,
        names: &[&str],
        parse: fn(&str) -> Result<T, crate::plan::PlanError>,
    ) -> T {
        self.properties
            .iter()
            .rev()
            .find(|(k, _)| names.contains(&k.as_str()))
            .and_then(|(_, v)| parse(v).ok())
            .unwrap_or_default()
    }

    /// The consumer group (and application id) of query `query_id`.
    pub fn application_id(&self, query_id: &str) -> String {
        format!("{}-query-{query_id}", self.service_id)
    }
}
