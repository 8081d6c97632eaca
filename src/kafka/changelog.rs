//! Changelog topics: how a task's state survives a restart or moves to another server.
//!
//! A task's state changes since its last commit ([`crate::exec::task::Task::checkpoint`])
//! go to partition `p` of the query's compacted changelog topic (partition `p` belongs to the
//! task of input partition `p`) inside the task's Kafka transaction, together with the input
//! offsets they account for ([`super::lifecycle`]). So the committed part of a changelog and
//! the group's committed offsets always agree: a restarted (or moved) task reads its
//! changelog partition with `isolation.level=read_committed` up to its end, applies every
//! entry, and resumes reading input at the committed offsets; nothing is counted twice and
//! nothing is lost. Changes of an aborted transaction (a crash before its commit) are never
//! read. Compaction keeps each key's last committed value, which is all a restore needs.
//!
//! [`read_partition`] is also how a table's store for pull queries is rebuilt from its sink
//! topic. Records written by versions of Eddy before transactions ended each commit with a
//! checkpoint marker ([`MARKER`]); such markers are skipped.

use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::{KafkaConfig, KafkaError};
use crate::exec::StateEntry;
use crate::record::Record;

/// The key of the checkpoint markers earlier versions wrote (skipped on restore).
pub const MARKER: &[u8] = b"\xff__checkpoint";

/// How long a restore waits for a partition's open transactions to end (a crashed owner's
/// transaction is aborted by the broker after `transaction.timeout.ms`).
const RESTORE_TIMEOUT: Duration = Duration::from_secs(120);

/// A task's state changes as records of partition `partition` of changelog `topic`.
pub fn records(topic: &str, partition: i32, entries: Vec<StateEntry>) -> Vec<Record> {
    let timestamp = crate::record::now_ms();
    entries
        .into_iter()
        .map(|(key, value)| Record {
            topic: topic.to_string(),
            partition: Some(partition),
            offset: 0,
            key: Some(key),
            value,
            timestamp,
            headers: Vec::new(),
        })
        .collect()
}

/// Every committed state entry of changelog partition `partition` of `topic` from offset
/// `from` on (0: all), in order.
pub fn read(
    config: &KafkaConfig,
    (topic, partition): (&str, i32),
    from: i64,
) -> Result<Vec<StateEntry>, KafkaError> {
    let mut entries = Vec::new();
    read_messages(config, (topic, partition), from, |m| {
        let key = m.key().unwrap_or_default();
        if key != MARKER {
            entries.push((key.to_vec(), m.payload().map(<[u8]>::to_vec)));
        }
    })?;
    Ok(entries)
}

/// Hands every committed record of `topic`/`partition` to `apply`, in order, from the first
/// offset to the end the partition has when the call starts. A read-committed consumer stops
/// at the first open transaction, so this waits until every transaction open at the start
/// has committed or aborted.
pub fn read_partition(
    config: &KafkaConfig,
    topic: &str,
    partition: i32,
    apply: impl FnMut(Record),
) -> Result<u64, KafkaError> {
    read_partition_from(config, (topic, partition), 0, apply)
}

/// [`read_partition`] from offset `from` on.
pub fn read_partition_from(
    config: &KafkaConfig,
    (topic, partition): (&str, i32),
    from: i64,
    mut apply: impl FnMut(Record),
) -> Result<u64, KafkaError> {
    read_messages(config, (topic, partition), from, |m| {
        apply(super::runtime::record_of(m))
    })
}

/// [`read_partition`] handing over the messages as they come.
fn read_messages(
    config: &KafkaConfig,
    (topic, partition): (&str, i32),
    from: i64,
    mut apply: impl FnMut(&rdkafka::message::BorrowedMessage<'_>),
) -> Result<u64, KafkaError> {
    let consumer: BaseConsumer = config
        .reader("restore")
        .set("isolation.level", "read_committed")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "16777216")
        .create()?;
    let timeout = Duration::from_secs(10);
    let (low, high) = consumer.fetch_watermarks(topic, partition, timeout)?;
    let low = low.max(from);
    if high <= low {
        return Ok(0);
    }
    let mut assignment = rdkafka::TopicPartitionList::new();
    assignment.add_partition_offset(topic, partition, rdkafka::Offset::Offset(low))?;
    consumer.assign(&assignment)?;
    let deadline = Instant::now() + RESTORE_TIMEOUT;
    let mut read = 0;
    loop {
        match consumer.poll(Duration::from_millis(50)) {
            Some(Ok(m)) => {
                read += 1;
                let next = m.offset() + 1;
                apply(&m);
                if next >= high {
                    return Ok(read);
                }
                continue;
            }
            None => {}
            Some(Err(e)) => return Err(e.into()),
        }
        // Control records (transaction markers) and aborted records are never handed out:
        // the consumer's position says how far it got.
        if position(&consumer, topic, partition)? >= high {
            return Ok(read);
        }
        if Instant::now() > deadline {
            return Err(KafkaError::Unavailable(format!(
                "reading {topic}/{partition}: a transaction stayed open for {} s",
                RESTORE_TIMEOUT.as_secs()
            )));
        }
    }
}

fn position(consumer: &BaseConsumer, topic: &str, partition: i32) -> Result<i64, KafkaError> {
    let positions = consumer.position()?;
    Ok(positions
        .find_partition(topic, partition)
        .and_then(|p| p.offset().to_raw())
        .unwrap_or(-1))
}
