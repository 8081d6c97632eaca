//! [`Fanouts`]: one reader per source for every stateless push query of the server.
//!
//! A client's push query that only filters and projects one source from its latest offset
//! (ksqlDB's scalable push query, `ksql.query.push.v2.enabled`) needs no consumer group, no
//! state and no thread of its own. Such queries join the [`Fanout`] of their source: one
//! thread with one consumer reading every partition of the topic from its end, decoding each
//! record once and handing the batch to each member's task, whose rows go to its client's
//! bounded channel. A query costs its task and that channel.
//!
//! Joining and leaving never wait for the reader: a new member is queued and taken in
//! before the reader's next batch; a member that leaves is flagged and dropped there, as
//! is one whose client went away or fell too far behind (its channel says so). The reader
//! stops when its last member has left.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::runtime::{MAX_BATCH, POLL, record_of};
use super::{KafkaConfig, KafkaError};
use crate::engine::PersistentQuery;
use crate::error::Error;
use crate::exec::task::Task;
use crate::format::decode::SourceDecoder;

/// One push query served by a fanout.
struct Member {
    id: String,
    task: Task,
    left: Arc<AtomicBool>,
}

/// The reader of one source and its members.
struct Fanout {
    /// Members not taken in by the reader yet.
    joining: Arc<Mutex<Vec<Member>>>,
    stop: Arc<AtomicBool>,
    /// Members that have not left.
    members: usize,
}

/// The server's fanouts, by source, and which fanout serves each push query.
#[derive(Default)]
pub struct Fanouts {
    by_source: HashMap<String, Fanout>,
    /// Push query id → (its source's key, its flag to leave).
    members: HashMap<String, (String, Arc<AtomicBool>)>,
}

impl std::fmt::Debug for Fanouts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fanouts")
            .field("sources", &self.by_source.len())
            .field("members", &self.members.len())
            .finish()
    }
}

impl Fanouts {
    /// Serves push query `query` (one input, stateless) from the fanout of `source` (a key
    /// naming the source and how it is decoded), starting that fanout's reader at the end of
    /// the topic if it has none.
    pub fn join(
        &mut self,
        config: &KafkaConfig,
        source: &str,
        query: &PersistentQuery,
    ) -> Result<(), Error> {
        let task = query
            .pipeline
            .new_task(query.log.clone())
            .map_err(|source| Error::Query {
                query: query.id.clone(),
                source,
            })?;
        let topic = query
            .source_topics
            .first()
            .ok_or_else(|| KafkaError::Topic(format!("push query {} has no input", query.id)))?;
        if !self.by_source.contains_key(source) {
            let decoder = task.decoder(0).cloned().ok_or_else(|| {
                KafkaError::Topic(format!("push query {} has no input", query.id))
            })?;
            let fanout = start(config, topic, source, decoder)?;
            self.by_source.insert(source.to_string(), fanout);
        }
        let left = Arc::new(AtomicBool::new(false));
        if let Some(fanout) = self.by_source.get_mut(source) {
            fanout
                .joining
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Member {
                    id: query.id.clone(),
                    task,
                    left: Arc::clone(&left),
                });
            fanout.members += 1;
        }
        self.members
            .insert(query.id.clone(), (source.to_string(), left));
        Ok(())
    }

    /// Ends push query `id` if a fanout serves it (without waiting for the reader); stops
    /// the reader of a source whose last member left.
    pub fn leave(&mut self, id: &str) -> bool {
        let Some((source, left)) = self.members.remove(id) else {
            return false;
        };
        left.store(true, Ordering::Relaxed);
        if let Some(fanout) = self.by_source.get_mut(&source) {
            fanout.members = fanout.members.saturating_sub(1);
            if fanout.members == 0 {
                fanout.stop.store(true, Ordering::Relaxed);
                self.by_source.remove(&source);
            }
        }
        true
    }
}

impl Drop for Fanouts {
    fn drop(&mut self) {
        for fanout in self.by_source.values() {
            fanout.stop.store(true, Ordering::Relaxed);
        }
    }
}

/// Starts the reader of `topic` at its end, for the members of `source`.
/// The end offset of `topic`/`partition`, asked of the broker; retried for up to 10 s while
/// the broker does not know the partition's leader yet (a topic created a moment ago).
fn end_offset(consumer: &BaseConsumer, topic: &str, partition: i32) -> Result<i64, KafkaError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match consumer.fetch_watermarks(topic, partition, Duration::from_secs(10)) {
            Ok((_, high)) => return Ok(high),
            Err(e) if std::time::Instant::now() < deadline => {
                tracing::debug!("end of {topic}/{partition}: {e}; asking again");
                std::thread::park_timeout(Duration::from_millis(100));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn start(
    config: &KafkaConfig,
    topic: &str,
    source: &str,
    decoder: SourceDecoder,
) -> Result<Fanout, Error> {
    let consumer: BaseConsumer = config
        .reader("push-fanout")
        // What the reader fetches ahead is memory every member's client waits behind.
        .set("queued.max.messages.kbytes", "16384")
        .create()
        .map_err(KafkaError::from)?;
    // The end as of now, asked of the broker: a record written once the client has its
    // response is read (an offset resolved later by the fetcher could pass it).
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(KafkaError::from)?;
    let partitions = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map(|t| t.partitions().len() as i32)
        .unwrap_or(0);
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        let high = end_offset(&consumer, topic, partition)?;
        assignment
            .add_partition_offset(topic, partition, Offset::Offset(high))
            .map_err(KafkaError::from)?;
    }
    consumer.assign(&assignment).map_err(KafkaError::from)?;
    let joining = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let (reader_joining, reader_stop) = (Arc::clone(&joining), Arc::clone(&stop));
    std::thread::Builder::new()
        .name(format!("push-{topic}"))
        .stack_size(crate::sql::limits::THREAD_STACK)
        .spawn(move || read(&consumer, &decoder, &reader_joining, &reader_stop))
        .map_err(|e| KafkaError::Unavailable(format!("cannot start a push reader: {e}")))?;
    tracing::info!(%topic, source, "push queries' reader started");
    Ok(Fanout {
        joining,
        stop,
        members: 0,
    })
}

/// The reader's loop: each batch decoded once, then run by every member's task.
fn read(
    consumer: &BaseConsumer,
    decoder: &SourceDecoder,
    joining: &Mutex<Vec<Member>>,
    stop: &AtomicBool,
) {
    let mut members: Vec<Member> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let mut records = Vec::new();
        let mut timeout = POLL;
        while records.len() < MAX_BATCH {
            match consumer.poll(timeout) {
                Some(Ok(m)) => records.push(record_of(&m)),
                Some(Err(e)) => tracing::warn!("push queries' reader: {e}"),
                None => break,
            }
            timeout = Duration::ZERO;
        }
        members.append(&mut joining.lock().unwrap_or_else(PoisonError::into_inner));
        members.retain(|m| !m.left.load(Ordering::Relaxed) && !m.task.abandoned());
        if records.is_empty() || members.is_empty() {
            continue;
        }
        let decoded = decoder.decode(&records);
        for (index, error) in &decoded.failures {
            // Every member would report it: its first one does.
            if let Some(first) = members.first() {
                tracing::warn!(
                    target: "processing_log",
                    query = %first.id,
                    topic = %records[*index].topic,
                    offset = records[*index].offset,
                    "skipped a record: {error}"
                );
            }
        }
        let batch: crate::exec::Batch = decoded.into();
        members.retain_mut(|member| {
            match member.task.process_decoded(0, batch.clone(), records.len()) {
                Ok(_) => true,
                Err(e) => {
                    tracing::warn!(query = %member.id, "push query failed: {e}");
                    false
                }
            }
        });
    }
}
