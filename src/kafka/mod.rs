//! Kafka I/O: the runtime that runs persistent queries on a real broker.
//!
//! [`runtime::KafkaRuntime`] implements [`crate::engine::Runtime`]: topics through the admin
//! API ([`admin`]), and one consumer-group consumer per query whose records are handed, batch
//! by batch and partition by partition, to that partition's [`crate::exec::task::Task`]; results go
//! out through a producer placing records with Java's partitioner ([`partitioner`]).
//! [`lifecycle`] is the task lifecycle: co-partitioned assignment, restore, transactional
//! commits, revocation; [`alignment`] orders a task's inputs by timestamp; [`changelog`] writes and reads the changelog topics that make task
//! state survive restarts; [`deliveries`] keeps a producer's first failed delivery;
//! [`fanout`] serves every stateless push query of a source from one shared reader.
//! [`print`] reads a topic for people (the quickstart's alert view). Everything here is I/O:
//! no query logic.

pub mod admin;
pub mod alignment;
pub mod changelog;
pub mod deliveries;
pub mod fanout;
pub mod lifecycle;
pub mod partitioner;
pub mod print;
pub mod runtime;
pub mod schemas;
pub mod standby;

use rdkafka::ClientConfig;

use crate::engine::QuerySettings;

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
    /// A record that cannot be written whatever is tried again (too large, say).
    #[error(
        "a result record for topic {topic} cannot be written: {reason} (ksql.fail.on.production.error=false skips such records to the processing log)"
    )]
    RecordRefused {
        /// The record's topic.
        topic: String,
        /// Why.
        reason: String,
    },
}

impl KafkaError {
    /// Whether librdkafka's `code` refuses one record, not the producer or the broker: the
    /// same record fails every time, others may pass.
    pub fn refuses_the_record(code: rdkafka::types::RDKafkaErrorCode) -> bool {
        use rdkafka::types::RDKafkaErrorCode as C;
        matches!(
            code,
            C::MessageSizeTooLarge
                | C::InvalidMessageSize
                | C::InvalidMessage
                | C::InvalidRecord
                | C::PolicyViolation
        )
    }
}

/// How to reach the cluster.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `bootstrap.servers`
    pub bootstrap_servers: String,
    /// ksqlDB's `ksql.service.id`: prefixes consumer groups and internal topics.
    pub service_id: String,
    /// Extra librdkafka properties (security, tuning), applied to every client; Kafka
    /// Streams' and ksqlDB's query settings ([`QuerySettings`]) are the defaults of the
    /// server's queries instead, and other `ksql.*` properties the server's.
    pub properties: Vec<(String, String)>,
    /// This server's stable identity among the servers of one service id: the suffix of its
    /// transactional ids, and its static group membership if [`Self::static_membership`].
    /// A restarted server must keep it, two running servers must not share it.
    pub instance_id: String,
    /// Join the queries' groups as the static member `instance_id` (`group.instance.id`):
    /// a server restarted within the session timeout gets its partitions back without a
    /// rebalance, but one that stops hands them over only when the timeout passes. Without
    /// it, a server that stops leaves the groups and its partitions move at once.
    pub static_membership: bool,
}

impl KafkaConfig {
    /// A client configuration with the bootstrap servers and the extra properties.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap_servers);
        // ksqlDB's own server properties (`ksql.*`, `authentication.*`) and the embedded
        // schema registry's (`schema.registry.*`) are no client's.
        for (k, v) in &self.properties {
            let lower = k.to_ascii_lowercase();
            if !QuerySettings::is_setting(k)
                && !lower.starts_with("ksql.")
                && !lower.starts_with("schema.registry.")
                && !lower.starts_with("authentication.")
            {
                config.set(k, v);
            }
        }
        config
    }

    /// The settings of queries whose statement does not give them (invalid values are
    /// refused when the server starts).
    pub fn default_settings(&self) -> QuerySettings {
        QuerySettings::from_properties(self.properties.iter().map(|(k, v)| (k, v)))
            .unwrap_or_default()
    }

    /// A consumer's configuration for reading assigned partitions (no group membership, no
    /// commits), under the group name `<service-id>-<purpose>`.
    pub fn reader(&self, purpose: &str) -> ClientConfig {
        let mut config = self.client_config();
        config
            .set("group.id", format!("{}-{purpose}", self.service_id))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false");
        config
    }

    /// The consumer group (and application id) of query `query_id`.
    pub fn application_id(&self, query_id: &str) -> String {
        format!("{}-query-{query_id}", self.service_id)
    }
}
