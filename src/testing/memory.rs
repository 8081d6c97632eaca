//! [`MemoryKafka`]: in-memory topics and a synchronous query driver.
//!
//! Records produced to a topic get offsets per partition (a keyed record's partition comes
//! from Java's partitioner, as on Kafka). [`MemoryKafka::run_until_idle`] feeds every query
//! the records it has not seen, one record per batch (ksqlDB's test mode; see
//! [`MemoryKafka::set_batch_size`] for batches as a poll returns them), appending their outputs to the sink
//! topics, until no query has anything left to read. As on Kafka, a query runs one task per
//! partition number: task `p` reads partition `p` of each of its inputs, so a query whose
//! inputs do not meet by key gives the answer it would give on a real broker.
//! [`MemoryKafka::spread_over`] gives every topic N partitions, to check that an answer does
//! not depend on partitioning. No threads, no clocks.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::engine::{PersistentQuery, Runtime};
use crate::error::Error;
use crate::exec::StateEntry;
use crate::exec::processing_log::ProcessingLog;
use crate::exec::task::Task;
use crate::kafka::partitioner::partition_for;
use crate::record::Record;

/// One running query and how far it has read.
struct MemoryQuery {
    query: PersistentQuery,
    /// Its tasks, by partition number, created when their partition first has records.
    tasks: BTreeMap<i32, Task>,
    /// Next offset to read, per input and partition.
    positions: HashMap<(usize, i32), usize>,
    log: ProcessingLog,
    /// Each task's checkpoints (the changelog topic's partition), or `None` once a
    /// checkpoint was refused.
    changelog: Option<BTreeMap<i32, Vec<StateEntry>>>,
}

/// In-memory topics running persistent queries.
#[derive(Default)]
pub struct MemoryKafka {
    topics: Mutex<BTreeMap<String, Vec<Vec<Record>>>>,
    /// Per topic, (partition, offset) of every record in the order they were produced.
    produced: Mutex<BTreeMap<String, Vec<(usize, usize)>>>,
    queries: Vec<MemoryQuery>,
    /// Records per batch (0 counts as 1).
    batch_size: usize,
    /// Every topic's partition count, whatever its creator asked ([`Self::spread_over`]).
    spread: Option<i32>,
}

impl std::fmt::Debug for MemoryKafka {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryKafka")
            .field("queries", &self.queries.len())
            .finish()
    }
}

impl MemoryKafka {
    /// Feeds queries up to `n` records of a partition per batch, as a Kafka poll delivers
    /// them, instead of one (ksqlDB's test mode). Updates to one key within a batch may then
    /// coalesce; nothing else may change.
    pub fn set_batch_size(&mut self, n: usize) {
        self.batch_size = n;
    }

    /// Creates every topic from now on with `partitions` partitions, whatever its
    /// statement asks: records are spread by key with Java's partitioner, and each query
    /// runs a task per partition.
    pub fn spread_over(&mut self, partitions: i32) {
        self.spread = Some(partitions);
    }

    fn topics(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<Vec<Record>>>> {
        self.topics
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends `record` to its topic (which must exist), choosing a partition by key when
    /// it names none. Returns the record's offset.
    pub fn produce(&self, mut record: Record) -> Result<i64, Error> {
        let mut topics = self.topics();
        let partitions = topics.get_mut(&record.topic).ok_or_else(|| {
            crate::kafka::KafkaError::Topic(format!("topic {} does not exist", record.topic))
        })?;
        let count = partitions.len() as i32;
        let partition = record
            .partition
            .unwrap_or_else(|| record.key.as_deref().map_or(0, |k| partition_for(k, count)));
        let log = partitions.get_mut(partition as usize).ok_or_else(|| {
            crate::kafka::KafkaError::Topic(format!(
                "partition {partition} of {} does not exist",
                record.topic
            ))
        })?;
        record.partition = Some(partition);
        record.offset = log.len() as i64;
        let offset = record.offset;
        self.produced
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(record.topic.clone())
            .or_default()
            .push((partition as usize, log.len()));
        log.push(record);
        Ok(offset)
    }

    /// Every record of `topic` in the order they were produced (across partitions, as a
    /// test driver reads a topic).
    pub fn records(&self, topic: &str) -> Vec<Record> {
        let topics = self.topics();
        let Some(partitions) = topics.get(topic) else {
            return Vec::new();
        };
        let produced = self
            .produced
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        produced
            .get(topic)
            .into_iter()
            .flatten()
            .filter_map(|(p, o)| partitions.get(*p)?.get(*o).cloned())
            .collect()
    }

    /// Runs every query until none has unread input.
    pub fn run_until_idle(&mut self) -> Result<(), Error> {
        loop {
            let mut progressed = false;
            for i in 0..self.queries.len() {
                progressed |= self.step(i)?;
            }
            if !progressed {
                return Ok(());
            }
        }
    }

    /// Feeds query `i` its unread records, input by input, each input's in the order they
    /// were produced across its partitions (as they would arrive), one batch per partition run.
    fn step(&mut self, i: usize) -> Result<bool, Error> {
        let topics = self.queries[i].query.source_topics.clone();
        let mut progressed = false;
        for (input, topic) in topics.iter().enumerate() {
            let partitions: Vec<Vec<Record>> =
                self.topics().get(topic).cloned().unwrap_or_default();
            let produced = self
                .produced
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .get(topic)
                .cloned()
                .unwrap_or_default();
            for (partition, offset) in produced {
                if let Some(records) = partitions.get(partition) {
                    let upto = &records[..(offset + 1).min(records.len())];
                    progressed |= self.feed(i, input, partition as i32, upto)?;
                }
            }
        }
        Ok(progressed)
    }

    /// Feeds query `i`'s input `input` the unread records of one partition.
    fn feed(
        &mut self,
        i: usize,
        input: usize,
        partition: i32,
        records: &[Record],
    ) -> Result<bool, Error> {
        let mut progressed = false;
        loop {
            let q = &mut self.queries[i];
            let position = q.positions.entry((input, partition)).or_insert(0);
            let start = *position;
            let end = (start + self.batch_size.max(1)).min(records.len());
            if start >= end {
                return Ok(progressed);
            }
            *position = end;
            let batch = &records[start..end];
            let query_error = |source| Error::Query {
                query: q.query.id.clone(),
                source,
            };
            let task = match q.tasks.entry(partition) {
                std::collections::btree_map::Entry::Occupied(task) => task.into_mut(),
                std::collections::btree_map::Entry::Vacant(slot) => slot.insert(
                    q.query
                        .pipeline
                        .new_task(q.log.clone())
                        .map_err(query_error)?,
                ),
            };
            let outputs = task.process(input, batch).map_err(query_error)?;
            // A checkpoint after every batch, as a commit would write it.
            match (task.checkpoint().map_err(query_error)?, &mut q.changelog) {
                (Some(entries), Some(changelog)) => {
                    changelog.entry(partition).or_default().extend(entries);
                }
                _ => q.changelog = None,
            }
            for output in outputs {
                self.produce(output)?;
            }
            progressed = true;
        }
    }

    /// Restarts every query whose state was checkpointed: its task is rebuilt from its
    /// changelog and resumes where it stopped, as after a server restart. Returns how many
    /// queries restarted.
    pub fn restart_checkpointed(&mut self) -> Result<usize, Error> {
        let mut restarted = 0;
        for q in &mut self.queries {
            let Some(changelog) = &q.changelog else {
                continue;
            };
            let query_error = |source| Error::Query {
                query: q.query.id.clone(),
                source,
            };
            q.tasks = changelog
                .iter()
                .map(|(partition, entries)| {
                    let task = q.query.pipeline.restored_task(q.log.clone(), entries);
                    Ok((*partition, task.map_err(query_error)?))
                })
                .collect::<Result<_, Error>>()?;
            restarted += 1;
        }
        Ok(restarted)
    }

    /// Records the query `id` could not process.
    pub fn processing_errors(&self, id: &str) -> u64 {
        self.queries
            .iter()
            .find(|q| q.query.id == id)
            .map_or(0, |q| q.log.error_count())
    }
}

impl Runtime for MemoryKafka {
    async fn topic_partitions(&self, topic: &str) -> Result<Option<i32>, Error> {
        Ok(self.topics().get(topic).map(|p| p.len() as i32))
    }

    async fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), Error> {
        let partitions = self.spread.unwrap_or(partitions);
        self.topics()
            .entry(topic.to_string())
            .or_insert_with(|| vec![Vec::new(); partitions.max(1) as usize]);
        Ok(())
    }

    async fn start_query(&mut self, query: PersistentQuery) -> Result<(), Error> {
        let log = query.log.clone();
        let mut positions = HashMap::new();
        if !query.from_beginning {
            let topics = self.topics();
            for (input, topic) in query.source_topics.iter().enumerate() {
                for (partition, records) in topics.get(topic).into_iter().flatten().enumerate() {
                    positions.insert((input, partition as i32), records.len());
                }
            }
        }
        self.queries.push(MemoryQuery {
            query,
            tasks: BTreeMap::new(),
            positions,
            log,
            changelog: Some(BTreeMap::new()),
        });
        Ok(())
    }

    async fn topics(&self) -> Result<Vec<(String, i32)>, Error> {
        Ok(self
            .topics()
            .iter()
            .map(|(name, partitions)| (name.clone(), partitions.len() as i32))
            .collect())
    }

    async fn tail(
        &self,
        topic: &str,
        from_beginning: bool,
    ) -> Result<tokio::sync::mpsc::Receiver<Record>, Error> {
        let records = if from_beginning {
            self.records(topic)
        } else {
            Vec::new()
        };
        let (sender, receiver) = tokio::sync::mpsc::channel(records.len().max(1));
        for record in records {
            let _ = sender.try_send(record);
        }
        Ok(receiver)
    }

    async fn scan(&self, topic: &str) -> Result<Vec<Record>, Error> {
        Ok(self.records(topic))
    }

    async fn settle(&mut self) -> Result<(), Error> {
        self.run_until_idle()
    }

    async fn produce(&self, record: Record) -> Result<(), Error> {
        MemoryKafka::produce(self, record).map(|_| ())
    }

    async fn stop_query(&mut self, id: &str) -> Result<(), Error> {
        self.queries.retain(|q| q.query.id != id);
        Ok(())
    }
}
