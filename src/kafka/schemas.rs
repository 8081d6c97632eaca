//! [`SchemaLog`]: the embedded Schema Registry's state, kept in a compacted Kafka topic
//! (`_eddy_schemas` by default, one partition) as Confluent's registry keeps its own in
//! `_schemas`.
//!
//! Every server reads the topic from the beginning into a [`Store`] and follows it. A
//! change (a registration, a delete, a compatibility level) is appended to the topic and
//! takes effect when it is read back: the writer waits until its reader has passed the
//! topic's end as it was after the write, then looks at the state. Registrations are
//! decided in log order ([`Store::apply`]), so servers racing to register agree on every
//! id without a leader, and ids survive restarts. Each registration or delete record has a
//! key of its own (compaction never removes one, so the order they were decided in stays);
//! compatibility levels share a key per subject, the latest wins.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value as Json, json};

use super::{KafkaConfig, KafkaError};
use crate::format::registry::{Backend, Change, Compatibility, RegistryError, Schema, Store};

/// The topic's default name.
pub const DEFAULT_TOPIC: &str = "_eddy_schemas";

const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct State {
    store: Store,
    /// The offset of the next record to read.
    position: i64,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    advanced: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The embedded registry's store: a Kafka topic and the state read from it.
pub struct SchemaLog {
    shared: Arc<Shared>,
    producer: BaseProducer,
    watermarks: BaseConsumer,
    topic: String,
    writer: String,
    sequence: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for SchemaLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SchemaLog({})", self.topic)
    }
}

impl SchemaLog {
    /// Creates the topic if needed, reads it to its end and follows it.
    pub async fn open(config: &KafkaConfig, topic: &str) -> Result<Arc<Self>, KafkaError> {
        super::admin::Topics::connect(config)?
            .create_with(topic, 1, &[("cleanup.policy", "compact")])
            .await?;
        let mut producer = config.client_config();
        producer
            .set("acks", "all")
            .set("enable.idempotence", "true");
        let reader = config.reader("schemas");
        let log = Arc::new(Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    store: Store::new(Compatibility::Backward),
                    position: 0,
                }),
                advanced: Condvar::new(),
            }),
            producer: producer.create()?,
            watermarks: reader.create()?,
            topic: topic.to_string(),
            writer: format!(
                "{}-{}-{}",
                config.service_id,
                config.instance_id,
                crate::record::now_ms()
            ),
            sequence: Default::default(),
        });
        let follower: BaseConsumer = reader.create()?;
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(topic, 0, Offset::Beginning)?;
        follower.assign(&assignment)?;
        let shared = Arc::clone(&log.shared);
        let name = topic.to_string();
        std::thread::Builder::new()
            .name("schema-log".into())
            .spawn(move || follow(&follower, &name, &shared))
            .map_err(|e| KafkaError::Unavailable(e.to_string()))?;
        let caught_up = Arc::clone(&log);
        tokio::task::spawn_blocking(move || caught_up.sync())
            .await
            .map_err(|e| KafkaError::Unavailable(e.to_string()))?
            .map_err(|e| KafkaError::Unavailable(e.to_string()))?;
        Ok(log)
    }

    /// Reads the state.
    pub fn read<T>(&self, f: impl FnOnce(&Store) -> T) -> T {
        f(&self.shared.lock().store)
    }

    /// Waits until every change written so far has been read.
    pub fn sync(&self) -> Result<(), RegistryError> {
        let deadline = Instant::now() + TIMEOUT;
        let end = loop {
            // A topic just created may not have its leader yet (NotLeaderForPartition).
            match self.watermarks.fetch_watermarks(&self.topic, 0, TIMEOUT) {
                Ok((_, end)) => break end,
                Err(e) if Instant::now() >= deadline => {
                    return Err(RegistryError::Unavailable(e.to_string()));
                }
                Err(_) => std::thread::park_timeout(Duration::from_millis(100)),
            }
        };
        let mut state = self.shared.lock();
        while state.position < end {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RegistryError::Unavailable(format!(
                    "reading {} timed out at offset {} of {end}",
                    self.topic, state.position
                )));
            }
            state = (self.shared.advanced.wait_timeout(state, left))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        Ok(())
    }

    /// Appends `change` and waits until it has been read (and so applied, if it was
    /// consistent with what came before it).
    pub fn write(&self, change: &Change) -> Result<(), RegistryError> {
        let n = (self.sequence).fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let key = match change {
            Change::Config { subject, .. } => {
                json!({"keytype": "CONFIG", "subject": subject, "magic": 0})
            }
            other => json!({
                "keytype": key_type(other),
                "magic": 1,
                "writer": format!("{}-{n}", self.writer),
            }),
        };
        let (key, value) = (key.to_string(), to_json(change).to_string());
        let unavailable = |e: String| RegistryError::Unavailable(e);
        self.producer
            .send(
                BaseRecord::to(&self.topic)
                    .key(&key)
                    .payload(&value)
                    .partition(0),
            )
            .map_err(|(e, _)| unavailable(e.to_string()))?;
        self.producer
            .flush(TIMEOUT)
            .map_err(|e| unavailable(e.to_string()))?;
        self.sync()
    }

    /// Registers `schema` under `subject`: the existing version if there is one, else a
    /// new one (proposed again if another server's registration took its place).
    pub fn register(&self, subject: &str, schema: &Schema) -> Result<(u32, u32), RegistryError> {
        for _ in 0..8 {
            let proposal = self.read(|store| match store.lookup(subject, schema) {
                Some(found) => Ok(Err(found)),
                None => store.propose(subject, schema).map(Ok),
            })?;
            match proposal {
                Err(found) => return Ok(found),
                Ok(change) => self.write(&change)?,
            }
        }
        Err(RegistryError::Unavailable(format!(
            "registering under {subject} kept losing to other servers' registrations"
        )))
    }
}

fn key_type(change: &Change) -> &'static str {
    match change {
        Change::Schema { .. } => "SCHEMA",
        Change::DeleteVersion { .. } => "DELETE_VERSION",
        Change::DeleteSubject { .. } => "DELETE_SUBJECT",
        Change::Config { .. } => "CONFIG",
    }
}

fn to_json(change: &Change) -> Json {
    serde_json::to_value(change).unwrap_or(Json::Null)
}

/// Reads the topic into the state until the process ends.
fn follow(consumer: &BaseConsumer, topic: &str, shared: &Shared) {
    loop {
        let Some(polled) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = match polled {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("reading {topic}: {e}");
                continue;
            }
        };
        let change = message
            .payload()
            .and_then(|v| serde_json::from_slice::<Change>(v).ok());
        let mut state = shared.lock();
        if let Some(change) = change
            && !state.store.apply(&change)
        {
            tracing::debug!(?change, "a change that lost to an earlier one");
        }
        state.position = message.offset() + 1;
        drop(state);
        shared.advanced.notify_all();
    }
}

impl Backend for SchemaLog {
    fn register(&self, subject: &str, schema: &Schema) -> Result<u32, RegistryError> {
        Self::register(self, subject, schema).map(|(_, id)| id)
    }

    fn schema(&self, id: u32) -> Result<Option<Schema>, RegistryError> {
        if let Some(found) = self.read(|s| s.schema(id).cloned()) {
            return Ok(Some(found));
        }
        // Another server may have registered it a moment ago.
        self.sync()?;
        Ok(self.read(|s| s.schema(id).cloned()))
    }

    fn version(&self, subject: &str, version: u32) -> Result<Option<(u32, Schema)>, RegistryError> {
        self.sync()?;
        Ok(self.read(|s| s.version(subject, version)))
    }

    fn latest(&self, subject: &str) -> Result<Option<(u32, Schema)>, RegistryError> {
        self.sync()?;
        Ok(self.read(|s| {
            s.latest(subject)
                .and_then(|(_, id)| Some((id, s.schema(id)?.clone())))
        }))
    }
}
