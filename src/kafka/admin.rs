//! Topics: how many partitions a topic has, and creating one.
//!
//! Metadata is read with a blocking librdkafka call on a blocking thread; creation uses the
//! admin API with the broker's default replication factor, treating "already exists" as
//! success so that concurrent creators agree.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use super::{KafkaConfig, KafkaError};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Topic metadata and creation.
#[derive(Clone)]
pub struct Topics {
    admin: Arc<AdminClient<DefaultClientContext>>,
    metadata: Arc<BaseConsumer>,
}

impl std::fmt::Debug for Topics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Topics")
    }
}

impl Topics {
    /// Clients for `config`'s cluster.
    pub fn connect(config: &KafkaConfig) -> Result<Self, KafkaError> {
        let client = config.client_config();
        Ok(Self {
            admin: Arc::new(client.create()?),
            metadata: Arc::new(client.create()?),
        })
    }

    /// The partition count of `topic`, or `None` when it does not exist.
    pub async fn partitions(&self, topic: &str) -> Result<Option<i32>, KafkaError> {
        let consumer = Arc::clone(&self.metadata);
        let topic = topic.to_string();
        tokio::task::spawn_blocking(move || {
            let metadata = consumer.fetch_metadata(Some(&topic), TIMEOUT)?;
            Ok(metadata
                .topics()
                .iter()
                .find(|t| t.name() == topic)
                .and_then(|t| match t.error() {
                    None if !t.partitions().is_empty() => Some(t.partitions().len() as i32),
                    _ => None,
                }))
        })
        .await
        .map_err(|e| KafkaError::Unavailable(e.to_string()))?
    }

    /// Every topic and its partition count, by name.
    pub async fn list(&self) -> Result<Vec<(String, i32)>, KafkaError> {
        let consumer = Arc::clone(&self.metadata);
        tokio::task::spawn_blocking(move || {
            let metadata = consumer.fetch_metadata(None, TIMEOUT)?;
            let mut topics: Vec<(String, i32)> = metadata
                .topics()
                .iter()
                .map(|t| (t.name().to_string(), t.partitions().len() as i32))
                .collect();
            topics.sort();
            Ok(topics)
        })
        .await
        .map_err(|e| KafkaError::Unavailable(e.to_string()))?
    }

    /// Creates `topic`; success if it already exists.
    pub async fn create(&self, topic: &str, partitions: i32) -> Result<(), KafkaError> {
        self.create_with(topic, partitions, &[]).await
    }

    /// Creates `topic` with topic configs (e.g. `cleanup.policy=compact`); success if it
    /// already exists.
    pub async fn create_with(
        &self,
        topic: &str,
        partitions: i32,
        configs: &[(&str, &str)],
    ) -> Result<(), KafkaError> {
        let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(-1));
        for (key, value) in configs {
            new = new.set(key, value);
        }
        let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
        for result in self.admin.create_topics([&new], &options).await? {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(KafkaError::Topic(format!(
                        "Could not create topic {name}: {code}"
                    )));
                }
            }
        }
        // The controller has the topic; the broker's metadata may lag a moment behind, and
        // the next statement may ask it about the topic at once.
        let deadline = std::time::Instant::now() + TIMEOUT;
        while self.partitions(topic).await?.is_none() {
            if std::time::Instant::now() >= deadline {
                return Err(KafkaError::Unavailable(format!(
                    "topic {topic} was created but does not show in the metadata"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::info!(topic, partitions, "created topic");
        Ok(())
    }
}
