//! [`CommandLog`]: the statement log every server of a service id shares.
//!
//! As ksqlDB's distributed statement executor: a statement that changes the server is not run
//! where it arrives; it is appended to the command topic (`_eddy-<service-id>-command`, one
//! partition, kept forever, written by an idempotent producer), and every server tails that
//! topic and applies each statement in log order ([`spawn_runner`]). The server that received
//! the statement answers once its own runner has applied it, with that outcome and the
//! statement's offset as `commandSequenceNumber`. So every server holds the same catalog and
//! queries, with the same query ids; a name created on two servers at once is created by the
//! first in the log and refused to the second, wherever each was sent; `TERMINATE` and `DROP`
//! act on every server. A request may carry the `commandSequenceNumber` of an earlier answer
//! to wait until this server has applied it.
//!
//! Statements are not validated before they are appended: one that fails fails on every
//! server alike (and again when replayed), as execution depends only on the log before it.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch};

use super::error::{RestError, code};
use crate::engine::Outcome;
use crate::kafka::{KafkaConfig, KafkaError};
use crate::record::Record;

/// How long a request waits for a statement (its own, or one it names) to be applied here.
pub const APPLY_TIMEOUT: Duration = Duration::from_secs(60);
/// Outcomes kept for requests still to collect theirs.
const KEPT_OUTCOMES: usize = 10_000;

/// A statement's result as this server applied it.
pub type Applied = Result<Outcome, RestError>;

/// The command topic, and how far this server has applied it.
pub struct CommandLog {
    topic: String,
    producer: FutureProducer,
    /// The offset of the next command to apply.
    next: watch::Sender<i64>,
    outcomes: Mutex<BTreeMap<i64, Applied>>,
}

impl std::fmt::Debug for CommandLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandLog")
            .field("topic", &self.topic)
            .field("next", &*self.next.borrow())
            .finish()
    }
}

impl CommandLog {
    /// The log of `topic`, whose commands before offset `next` are applied.
    pub fn new(config: &KafkaConfig, topic: &str, next: i64) -> Result<Self, KafkaError> {
        let producer: FutureProducer = config
            .client_config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "0")
            .create()?;
        Ok(Self {
            topic: topic.to_string(),
            producer,
            next: watch::Sender::new(next),
            outcomes: Mutex::default(),
        })
    }

    /// The offset of the next command to apply: how many this server has applied.
    pub fn applied(&self) -> i64 {
        *self.next.borrow()
    }

    /// Appends `statement` (run with `properties`); its offset.
    pub async fn append(
        &self,
        statement: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<i64, RestError> {
        let record = super::rest::command_record(&self.topic, statement, properties);
        let delivery = self
            .producer
            .send(
                crate::kafka::runtime::future_record(&record),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| {
                RestError::generic(
                    code::SERVER_ERROR,
                    format!("Could not write the statement to the command topic: {e}"),
                )
            })?;
        Ok(delivery.offset)
    }

    /// Waits until the command at `offset` is applied here (at most [`APPLY_TIMEOUT`]).
    pub async fn wait_for(&self, offset: i64) -> Result<(), RestError> {
        let mut next = self.next.subscribe();
        let applied = tokio::time::timeout(APPLY_TIMEOUT, next.wait_for(|n| *n > offset)).await;
        match applied {
            Ok(Ok(_)) => Ok(()),
            _ => Err(RestError::generic(
                code::SERVICE_UNAVAILABLE,
                format!(
                    "Timed out while waiting for a previous command to execute. command sequence number: {offset}"
                ),
            )),
        }
    }

    /// The outcome of the command at `offset`, once applied.
    pub fn take_outcome(&self, offset: i64) -> Option<Applied> {
        self.outcomes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&offset)
    }

    /// Records that the command at `offset` was applied with `outcome`.
    fn applied_one(&self, offset: i64, outcome: Applied) {
        let mut outcomes = self.outcomes.lock().unwrap_or_else(PoisonError::into_inner);
        outcomes.insert(offset, outcome);
        while outcomes.len() > KEPT_OUTCOMES {
            outcomes.pop_first();
        }
        drop(outcomes);
        self.next.send_replace(offset + 1);
    }
}

/// What applies a command to this server: its engine, its statuses.
pub trait Applier: Send + Sync + 'static {
    /// Runs the statement of command `record`.
    fn apply(&self, record: Record) -> impl Future<Output = Applied> + Send;
}

/// Tails the log from its next command on a thread of its own, handing each command to
/// `applier` in order, until `applier` is dropped everywhere else.
pub fn spawn_runner<A: Applier>(
    config: &KafkaConfig,
    log: Arc<CommandLog>,
    applier: Arc<A>,
) -> Result<(), KafkaError> {
    let consumer: BaseConsumer = config
        .reader("command-runner")
        .set("fetch.wait.max.ms", "10")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(&log.topic, 0, Offset::Offset(log.applied()))?;
    consumer.assign(&assignment)?;
    let (sender, mut receiver) = mpsc::channel::<Record>(1_000);
    std::thread::Builder::new()
        .name("command-runner".into())
        .spawn(move || {
            while !sender.is_closed() {
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100))
                    && sender
                        .blocking_send(crate::kafka::runtime::record_of(&m))
                        .is_err()
                {
                    return;
                }
            }
        })
        .map_err(|e| KafkaError::Unavailable(format!("cannot start the command runner: {e}")))?;
    let weak = Arc::downgrade(&applier);
    drop(applier);
    tokio::spawn(async move {
        while let Some(record) = receiver.recv().await {
            let Some(applier) = weak.upgrade() else {
                return;
            };
            let offset = record.offset;
            let outcome = applier.apply(record).await;
            log.applied_one(offset, outcome);
        }
    });
    Ok(())
}
