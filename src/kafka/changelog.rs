//! Changelog topics: how a query's task state survives a restart.
//!
//! At each commit a task writes the changes to its state since the last commit
//! ([`crate::exec::task::Task::checkpoint`]) to partition `p` of the query's compacted
//! changelog topic (partition `p` belongs to the task of input partition `p`), followed by a
//! checkpoint marker holding the input offsets those changes account for. Once the producer
//! has flushed, the consumer group's offsets are committed too. A restarted task reads its
//! changelog partition, applies the entries up to the last marker, and skips input records
//! below the marker's offsets, so state and input position always agree: nothing is counted
//! twice, and outputs produced after the last commit are produced again (at-least-once).
//! Entries after the last marker (a crash in the middle of a commit) are ignored.
//! This file reads and writes changelog records; deciding when to commit is the runtime's.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::{Value, json};

use super::{KafkaConfig, KafkaError};
use crate::exec::StateEntry;
use crate::record::Record;

/// The key of a checkpoint marker (operator indexes never reach 255).
pub const MARKER: &[u8] = b"\xff__checkpoint";

/// The records of one task's commit: its state changes, then the marker with `offsets`
/// (next offset to read, per input topic).
pub fn commit_records(
    topic: &str,
    partition: i32,
    entries: Vec<StateEntry>,
    offsets: &HashMap<String, i64>,
) -> Vec<Record> {
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let record = |key: Vec<u8>, value: Option<Vec<u8>>| Record {
        topic: topic.to_string(),
        partition: Some(partition),
        offset: 0,
        key: Some(key),
        value,
        timestamp,
        headers: Vec::new(),
    };
    let mut records: Vec<Record> = entries.into_iter().map(|(k, v)| record(k, v)).collect();
    let marker = json!({ "offsets": offsets }).to_string().into_bytes();
    records.push(record(MARKER.to_vec(), Some(marker)));
    records
}

/// What a task restores from its changelog partition: the entries up to the last marker
/// and the marker's input offsets (empty when there is no marker yet).
#[derive(Debug, Default)]
pub struct Restored {
    /// State entries, in order.
    pub entries: Vec<StateEntry>,
    /// Next offset to read, per input topic.
    pub offsets: HashMap<String, i64>,
}

/// Reads partition `partition` of `topic` to its end.
pub fn read(config: &KafkaConfig, topic: &str, partition: i32) -> Result<Restored, KafkaError> {
    let consumer: BaseConsumer = config
        .client_config()
        .set("group.id", format!("{}-restore", config.service_id))
        .set("enable.auto.commit", "false")
        .create()?;
    let timeout = Duration::from_secs(10);
    let (low, high) = consumer.fetch_watermarks(topic, partition, timeout)?;
    let mut restored = Restored::default();
    if high <= low {
        return Ok(restored);
    }
    let mut assignment = rdkafka::TopicPartitionList::new();
    assignment.add_partition_offset(topic, partition, rdkafka::Offset::Offset(low))?;
    consumer.assign(&assignment)?;
    let mut pending = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut next = low;
    while next < high {
        if std::time::Instant::now() > deadline {
            return Err(KafkaError::Unavailable(format!(
                "restoring {topic}/{partition}: stopped at offset {next} of {high}"
            )));
        }
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = message?;
        next = m.offset() + 1;
        let key = m.key().unwrap_or_default().to_vec();
        if key == MARKER {
            restored.entries.append(&mut pending);
            restored.offsets = m
                .payload()
                .and_then(|p| serde_json::from_slice::<Value>(p).ok())
                .and_then(|v| serde_json::from_value(v["offsets"].clone()).ok())
                .unwrap_or_default();
        } else {
            pending.push((key, m.payload().map(<[u8]>::to_vec)));
        }
    }
    Ok(restored)
}
