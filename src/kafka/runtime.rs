//! [`KafkaRuntime`]: persistent queries on a real broker.
//!
//! Each query gets a thread with a consumer in the group `<service-id>-query-<id>`
//! (cooperative-sticky assignment, so several servers with one service id share the
//! partitions) and a producer. The thread polls a batch (up to [`MAX_BATCH`] records, or what
//! arrives within [`POLL`]) from the query's input topics, splits it by topic and partition,
//! hands each partition's records to that partition's task (partition `p` of every joined
//! topic goes to the same task: joined topics are co-partitioned), and produces the results
//! to the partitions the encoder chose.
//!
//! Every [`COMMIT_INTERVAL`] (and when the query stops) a persistent query checkpoints: each
//! task's state changes go to the query's compacted changelog topic with a checkpoint marker
//! ([`super::changelog`]), and the checkpoint's input offsets wait until every record sent
//! before them (outputs and changelog) is acknowledged ([`super::deliveries`]); then they are
//! committed (at-least-once). The thread goes on processing meanwhile; only stopping flushes
//! the producer and waits. A restarted query resumes from its committed
//! offsets and its tasks restore their state from the changelog before processing. A query
//! whose state cannot be checkpointed yet (joins, aggregations over tables) never commits:
//! it re-reads its input from the earliest offset on restart and rebuilds its state exactly,
//! re-emitting results. Push queries never commit.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError as RdKafkaError, RDKafkaErrorCode};
use rdkafka::message::Headers;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use super::admin::Topics;
use super::changelog;
use super::deliveries::Deliveries;
use super::{KafkaConfig, KafkaError};
use crate::engine::{PersistentQuery, Runtime};
use crate::error::Error;
use crate::exec::processing_log::ProcessingLog;
use crate::exec::task::Task;
use crate::record::Record;

/// Most records handed to tasks in one poll round.
pub const MAX_BATCH: usize = 5_000;
/// How often a persistent query commits its offsets and checkpoints its state.
pub const COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// How long a poll waits for the first record of a batch.
pub const POLL: Duration = Duration::from_millis(100);

struct RunningQuery {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// Runs queries on Kafka.
pub struct KafkaRuntime {
    config: KafkaConfig,
    topics: Topics,
    queries: HashMap<String, RunningQuery>,
    /// Writes `INSERT VALUES` records.
    producer: BaseProducer,
}

impl std::fmt::Debug for KafkaRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaRuntime")
            .field("bootstrap_servers", &self.config.bootstrap_servers)
            .field("queries", &self.queries.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl KafkaRuntime {
    /// A runtime for the cluster of `config`.
    pub fn connect(config: KafkaConfig) -> Result<Self, KafkaError> {
        let topics = Topics::connect(&config)?;
        let producer: BaseProducer = config
            .client_config()
            .set("partitioner", "murmur2_random")
            .create()?;
        Ok(Self {
            config,
            topics,
            queries: HashMap::new(),
            producer,
        })
    }
}

impl KafkaRuntime {
    /// Joined topics must have as many partitions as each other (partition `p` of each goes
    /// to task `p`).
    async fn check_co_partitioned(&self, query: &PersistentQuery) -> Result<(), Error> {
        let mut counts = Vec::new();
        for topic in &query.source_topics {
            counts.push(self.topics.partitions(topic).await?.unwrap_or(1));
        }
        if let Some(i) = counts.iter().position(|c| *c != counts[0]) {
            return Err(crate::plan::PlanError::Invalid(format!(
                "Can't join {} with {} since the number of partitions don't match.",
                query.source_topics[0], query.source_topics[i]
            ))
            .into());
        }
        Ok(())
    }
}

impl Runtime for KafkaRuntime {
    async fn topic_partitions(&self, topic: &str) -> Result<Option<i32>, Error> {
        Ok(self.topics.partitions(topic).await?)
    }

    async fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), Error> {
        Ok(self.topics.create(topic, partitions).await?)
    }

    async fn start_query(&mut self, query: PersistentQuery) -> Result<(), Error> {
        self.check_co_partitioned(&query).await?;
        let (consumer, producer) = clients(&self.config, &query)?;
        // Joins' state is not checkpointed yet: such queries replay their input instead.
        let changelog =
            if query.commits && query.pipeline.is_stateful() && query.pipeline.joins.is_empty() {
                let topic = self.internal_topic(&query.id, "Aggregate-Materialize-changelog");
                let mut partitions = 1;
                for source in &query.source_topics {
                    partitions = partitions.max(self.topics.partitions(source).await?.unwrap_or(1));
                }
                self.topics
                    .create_with(&topic, partitions, &[("cleanup.policy", "compact")])
                    .await?;
                Some(topic)
            } else {
                None
            };
        let config = self.config.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let id = query.id.clone();
        let loop_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(format!("query-{id}"))
            .spawn(move || {
                let id = query.id.clone();
                let query_loop = QueryLoop::new(query, (consumer, producer), (config, changelog));
                if let Err(e) = query_loop.run(&loop_stop) {
                    tracing::error!(query = %id, "query stopped with an error: {e}");
                }
            })
            .map_err(|e| KafkaError::Unavailable(format!("cannot start a query thread: {e}")))?;
        tracing::info!(query = %id, "query started");
        self.queries.insert(id, RunningQuery { stop, thread });
        Ok(())
    }

    async fn produce(&self, record: Record) -> Result<(), Error> {
        self.producer
            .send(base_record(&record, ()))
            .map_err(|(e, _)| KafkaError::from(e))?;
        self.producer
            .flush(Duration::from_secs(10))
            .map_err(KafkaError::from)?;
        Ok(())
    }

    async fn topics(&self) -> Result<Vec<(String, i32)>, Error> {
        Ok(self.topics.list().await?)
    }

    async fn tail(
        &self,
        topic: &str,
        from_beginning: bool,
    ) -> Result<tokio::sync::mpsc::Receiver<Record>, Error> {
        let consumer: BaseConsumer = self
            .config
            .client_config()
            .set(
                "group.id",
                format!("{}-print-{}", self.config.service_id, rand::random::<u32>()),
            )
            .set("enable.auto.commit", "false")
            .set(
                "auto.offset.reset",
                if from_beginning { "earliest" } else { "latest" },
            )
            .create()
            .map_err(KafkaError::from)?;
        consumer.subscribe(&[topic]).map_err(KafkaError::from)?;
        let (sender, receiver) = tokio::sync::mpsc::channel(1_000);
        std::thread::Builder::new()
            .name(format!("print-{topic}"))
            .spawn(move || {
                while !sender.is_closed() {
                    if let Some(Ok(m)) = consumer.poll(POLL)
                        && sender.blocking_send(record_of(&m)).is_err()
                    {
                        return;
                    }
                }
            })
            .map_err(|e| KafkaError::Unavailable(format!("cannot start a print thread: {e}")))?;
        Ok(receiver)
    }

    async fn scan(&self, topic: &str) -> Result<Vec<Record>, Error> {
        let config = self.config.clone();
        let topic = topic.to_string();
        tokio::task::spawn_blocking(move || scan_topic(&config, &topic))
            .await
            .map_err(|e| KafkaError::Unavailable(format!("scan: {e}")))?
            .map_err(Error::from)
    }

    fn internal_topic(&self, query_id: &str, name: &str) -> String {
        format!("{}-{name}", self.config.application_id(query_id))
    }

    async fn stop_query(&mut self, id: &str) -> Result<(), Error> {
        if let Some(q) = self.queries.remove(id) {
            q.stop.store(true, Ordering::Relaxed);
            let _ = tokio::task::spawn_blocking(move || q.thread.join()).await;
            tracing::info!(query = %id, "query stopped");
        }
        Ok(())
    }
}

fn clients(
    config: &KafkaConfig,
    query: &PersistentQuery,
) -> Result<(BaseConsumer, QueryProducer), KafkaError> {
    let consumer: BaseConsumer = config
        .client_config()
        .set("group.id", config.application_id(&query.id))
        .set("enable.auto.commit", "false")
        .set(
            "auto.offset.reset",
            if query.from_beginning {
                "earliest"
            } else {
                "latest"
            },
        )
        .set("partition.assignment.strategy", "cooperative-sticky")
        // A crashed server's partitions move (to it, restarted, or to another) after 10 s.
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "3000")
        .set("enable.partition.eof", "false")
        .create()?;
    let topics: Vec<&str> = query.source_topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    let producer: QueryProducer = config
        .client_config()
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .create_with_context(Deliveries::default())?;
    Ok((consumer, producer))
}

/// A query's producer: delivery reports counted by commit epoch.
type QueryProducer = BaseProducer<Deliveries>;

/// The polling loop of one query.
struct QueryLoop {
    query: PersistentQuery,
    consumer: BaseConsumer,
    producer: QueryProducer,
    /// The checkpoint the records sent now belong to.
    epoch: usize,
    /// Checkpoints whose offsets wait for their records' acknowledgements, oldest first.
    pending: VecDeque<(usize, rdkafka::TopicPartitionList)>,
    tasks: HashMap<i32, Task>,
    log: ProcessingLog,
    config: KafkaConfig,
    /// The changelog topic of a query with state.
    changelog: Option<String>,
    /// Next offset to read, per (topic, partition): what a commit records.
    positions: HashMap<(String, i32), i64>,
    /// Records were read since the last commit (an idle query writes nothing).
    uncommitted: bool,
    /// Per (topic, partition): records below this offset are already in restored state.
    resume: HashMap<(String, i32), i64>,
    last_commit: std::time::Instant,
    /// False once some task's state could not be checkpointed: nothing is committed then.
    durable: bool,
}

impl QueryLoop {
    fn new(
        query: PersistentQuery,
        (consumer, producer): (BaseConsumer, QueryProducer),
        (config, changelog): (KafkaConfig, Option<String>),
    ) -> Self {
        let log = query.log.clone();
        let durable = query.commits;
        Self {
            query,
            consumer,
            producer,
            epoch: 0,
            pending: VecDeque::new(),
            tasks: HashMap::new(),
            log,
            config,
            changelog,
            positions: HashMap::new(),
            uncommitted: false,
            resume: HashMap::new(),
            last_commit: std::time::Instant::now(),
            durable,
        }
    }

    fn run(mut self, stop: &AtomicBool) -> Result<(), Error> {
        while !stop.load(Ordering::Relaxed) {
            let batch = self.poll_batch();
            for ((topic, partition), records) in batch {
                let inputs: Vec<usize> = (0..self.query.source_topics.len())
                    .filter(|i| self.query.source_topics[*i] == topic)
                    .collect();
                for input in inputs {
                    self.process(input, partition, &records)?;
                }
                if let Some(last) = records.last() {
                    self.positions.insert((topic, partition), last.offset + 1);
                    self.uncommitted = true;
                }
            }
            self.producer.poll(Duration::ZERO);
            self.commit_acknowledged(rdkafka::consumer::CommitMode::Async)?;
            if self.last_commit.elapsed() >= COMMIT_INTERVAL {
                self.checkpoint()?;
            }
        }
        self.checkpoint()?;
        self.producer
            .flush(Duration::from_secs(30))
            .map_err(KafkaError::from)?;
        self.commit_acknowledged(rdkafka::consumer::CommitMode::Sync)
    }

    /// Commits the offsets of the checkpoints whose records are all acknowledged; fails if
    /// a record could not be written.
    fn commit_acknowledged(&mut self, mode: rdkafka::consumer::CommitMode) -> Result<(), Error> {
        let deliveries = self.producer.context();
        if let Some(why) = deliveries.failure() {
            return Err(KafkaError::Unavailable(format!("a record was not written: {why}")).into());
        }
        let mut ready = None;
        while let Some((epoch, _)) = self.pending.front()
            && deliveries.done_through(*epoch)
        {
            ready = self.pending.pop_front().map(|(_, offsets)| offsets);
        }
        // The latest ready checkpoint's offsets cover the earlier ones'.
        if let Some(offsets) = ready {
            self.consumer
                .commit(&offsets, mode)
                .map_err(KafkaError::from)?;
        }
        Ok(())
    }

    /// Checkpoints every task's state to the changelog and queues the offsets to commit once
    /// everything sent so far is acknowledged.
    fn checkpoint(&mut self) -> Result<(), Error> {
        self.last_commit = std::time::Instant::now();
        if !self.durable || !self.uncommitted {
            return Ok(());
        }
        let mut records = Vec::new();
        for (partition, task) in &mut self.tasks {
            let entries = task.checkpoint().map_err(|source| Error::Query {
                query: self.query.id.clone(),
                source,
            })?;
            let Some(entries) = entries else {
                tracing::warn!(
                    query = %self.query.id,
                    "this query's state cannot be checkpointed yet: it will re-read its input after a restart"
                );
                self.durable = false;
                return Ok(());
            };
            if let Some(topic) = &self.changelog {
                let offsets: HashMap<String, i64> = self
                    .positions
                    .iter()
                    .filter(|((_, p), _)| p == partition)
                    .map(|((t, _), o)| (t.clone(), *o))
                    .collect();
                records.extend(changelog::commit_records(
                    topic, *partition, entries, &offsets,
                ));
            }
        }
        for record in &records {
            self.send(record)?;
        }
        let mut offsets = rdkafka::TopicPartitionList::new();
        for ((topic, partition), offset) in &self.positions {
            offsets
                .add_partition_offset(topic, *partition, rdkafka::Offset::Offset(*offset))
                .map_err(KafkaError::from)?;
        }
        self.pending.push_back((self.epoch, offsets));
        self.epoch += 1;
        self.uncommitted = false;
        Ok(())
    }

    /// A new task for `partition`, its state restored from the changelog.
    fn new_task(&mut self, partition: i32) -> Result<Task, Error> {
        let query_error = |source| Error::Query {
            query: self.query.id.clone(),
            source,
        };
        let Some(topic) = &self.changelog else {
            return self
                .query
                .pipeline
                .new_task(self.log.clone())
                .map_err(query_error);
        };
        let restored = changelog::read(&self.config, topic, partition)?;
        let task = self
            .query
            .pipeline
            .restored_task(self.log.clone(), &restored.entries)
            .map_err(query_error)?;
        tracing::info!(
            query = %self.query.id,
            partition,
            entries = restored.entries.len(),
            "task state restored from {topic}"
        );
        for (input, offset) in restored.offsets {
            self.resume.insert((input, partition), offset);
        }
        Ok(task)
    }

    /// Up to [`MAX_BATCH`] records, grouped by topic and partition in arrival order.
    fn poll_batch(&self) -> Vec<((String, i32), Vec<Record>)> {
        let mut by_partition: Vec<((String, i32), Vec<Record>)> = Vec::new();
        let mut timeout = POLL;
        for _ in 0..MAX_BATCH {
            let Some(result) = self.consumer.poll(timeout) else {
                break;
            };
            timeout = Duration::ZERO;
            match result {
                Ok(m) => {
                    let record = record_of(&m);
                    let at = (m.topic().to_string(), m.partition());
                    match by_partition.iter_mut().find(|(p, _)| *p == at) {
                        Some((_, records)) => records.push(record),
                        None => by_partition.push((at, vec![record])),
                    }
                }
                Err(e) => tracing::warn!(query = %self.query.id, "consumer: {e}"),
            }
        }
        by_partition
    }

    fn process(&mut self, input: usize, partition: i32, records: &[Record]) -> Result<(), Error> {
        if !self.tasks.contains_key(&partition) {
            tracing::info!(query = %self.query.id, partition, "task created");
            let task = self.new_task(partition)?;
            self.tasks.insert(partition, task);
        }
        // Records the restored state already accounts for (a commit cut short).
        let topic = &self.query.source_topics[input];
        let skip = self
            .resume
            .get(&(topic.clone(), partition))
            .map_or(0, |from| {
                records.iter().take_while(|r| r.offset < *from).count()
            });
        let records = &records[skip..];
        let Some(task) = self.tasks.get_mut(&partition) else {
            return Ok(());
        };
        let outputs = task
            .process(input, records)
            .map_err(|source| Error::Query {
                query: self.query.id.clone(),
                source,
            })?;
        for output in &outputs {
            self.send(output)?;
        }
        Ok(())
    }

    /// Produces one record (of the current epoch), waiting while the producer's queue is full.
    fn send(&self, record: &Record) -> Result<(), Error> {
        loop {
            match self.producer.send(base_record(record, self.epoch)) {
                Ok(()) => {
                    self.producer.context().sent(self.epoch);
                    return Ok(());
                }
                Err((RdKafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    self.producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => return Err(KafkaError::from(e).into()),
            }
        }
    }
}

/// Reads every partition of `topic` from its first offset up to its end as of now.
fn scan_topic(config: &KafkaConfig, topic: &str) -> Result<Vec<Record>, KafkaError> {
    let consumer: BaseConsumer = config
        .client_config()
        .set("group.id", format!("{}-scan", config.service_id))
        .set("enable.auto.commit", "false")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut assignment = rdkafka::TopicPartitionList::new();
    let mut ends = HashMap::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let (low, high) =
            consumer.fetch_watermarks(topic, partition.id(), Duration::from_secs(10))?;
        if high > low {
            assignment.add_partition_offset(topic, partition.id(), rdkafka::Offset::Offset(low))?;
            ends.insert(partition.id(), high);
        }
    }
    let mut records = Vec::new();
    if ends.is_empty() {
        return Ok(records);
    }
    consumer.assign(&assignment)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !ends.is_empty() && std::time::Instant::now() < deadline {
        let Some(result) = consumer.poll(POLL) else {
            continue;
        };
        let m = result?;
        if ends
            .get(&m.partition())
            .is_some_and(|end| m.offset() < *end)
        {
            records.push(record_of(&m));
        }
        if ends
            .get(&m.partition())
            .is_some_and(|end| m.offset() + 1 >= *end)
        {
            ends.remove(&m.partition());
        }
    }
    records.sort_by_key(|r| (r.partition, r.offset));
    Ok(records)
}

/// A consumed message as a [`Record`].
pub fn record_of(m: &rdkafka::message::BorrowedMessage<'_>) -> Record {
    Record {
        topic: m.topic().to_string(),
        partition: Some(m.partition()),
        offset: m.offset(),
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().map(<[u8]>::to_vec),
        timestamp: m.timestamp().to_millis().unwrap_or(0),
        headers: m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// A record as rdkafka sends it (a null key or value stays null), with its delivery opaque.
fn base_record<D: rdkafka::util::IntoOpaque>(
    record: &Record,
    opaque: D,
) -> BaseRecord<'_, [u8], [u8], D> {
    let mut out = BaseRecord::with_opaque_to(&record.topic, opaque).timestamp(record.timestamp);
    if let Some(key) = &record.key {
        out = out.key(key.as_slice());
    }
    if let Some(value) = &record.value {
        out = out.payload(value.as_slice());
    }
    if let Some(p) = record.partition {
        out = out.partition(p);
    }
    out
}
