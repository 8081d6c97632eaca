//! The task lifecycle: how a query's partitions are assigned to this server, restored,
//! processed, committed and given up, in one place.
//!
//! A persistent query runs one [`TaskManager`] per server. Its consumer is a member of the
//! query's consumer group (`<service-id>-query-<id>`), subscribed to the query's **lead**
//! topic only (its first input); the group hands out lead partitions, and [`Membership`]
//! (the consumer's rebalance callback) assigns partition `p` of every other input topic
//! (the other side of a join) together with lead partition `p`. So co-partitioned inputs
//! always meet in one task on one server, whatever the group's assignor does with several
//! topics (see `docs/design.md`).
//!
//! A task goes through these states:
//! - **assigned**: the group gave this server lead partition `p` (cooperative-sticky
//!   rebalances, static membership: a restarted server gets its partitions back at once);
//! - **restoring**: its state is read from changelog partition `p` with `read_committed`
//!   up to the end, and a table sink's store for pull queries from sink partition `p`;
//!   newly assigned partitions restore in parallel, before any of their records is processed;
//! - **running**: records of partition `p` of each input go through the task; a task with
//!   several input topics processes them in timestamp order across the topics, waiting while
//!   an input with nothing buffered still has records on the broker, or the broker cannot
//!   tell (a loaded broker's answer timed out), at most [`MAX_LAGGING_IDLE`]
//!   ([`super::alignment`]),
//!   and as `max.task.idle.ms` says for one the broker has no more of ([`TaskIdle`]);
//! - **committing**: every commit interval (1 s, or 100 ms exactly-once), each task's state
//!   changes go to its changelog partition, and the input offsets are added with
//!   `send_offsets_to_transaction` (KIP-447: fenced by the group's generation) to one Kafka
//!   transaction, which commits them all at once;
//! - **revoked**: the group takes `p` away: the manager commits first, then drops the task
//!   and its share of the store. A partition taken away without warning (lost: this server
//!   was thrown out of the group) cannot commit: the manager fails and the query restarts
//!   from what is committed.
//!
//! Transactions hold the state (changelog records), the records written to repartition
//! topics and the input offsets, so state is never counted twice, whatever the guarantee.
//! With `processing.guarantee=exactly_once_v2` the query's sink records are in the
//! transaction too, so a `read_committed` reader of the sink sees each result exactly once.
//! With `at_least_once` (the default, as in ksqlDB) sink records go out at once through a
//! second, idempotent producer, flushed before each commit: after a crash, results since the
//! last commit are written again. The transactional id is `<application id>-<instance id>`,
//! so a restarted server fences its previous incarnation and aborts its open transaction at
//! once (`init_transactions`).
//!
//! Queries that do not commit (push queries, a source table's materialization, and queries
//! whose state cannot be checkpointed yet) use the same manager without transactions.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError as RdKafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::alignment::InputQueues;
use super::deliveries::Deliveries;
use super::standby::{Ownership, Standby, Warm};
use super::{KafkaConfig, KafkaError, changelog};
use crate::engine::{Guarantee, PersistentQuery, TaskIdle};
use crate::error::Error;
use crate::exec::output::Output;
use crate::exec::processing_log::ProcessingLog;
use crate::exec::task::Task;
use crate::record::Record;
use crate::state::table_store::TableStore;

/// How often an at-least-once query commits.
pub const COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// How often an exactly-once query commits (ksqlDB's default for exactly-once).
pub const EXACTLY_ONCE_COMMIT_INTERVAL: Duration = Duration::from_millis(100);
/// How long a transaction may stay open before the broker aborts it (a crashed server's).
const TRANSACTION_TIMEOUT_MS: &str = "10000";
/// How long a commit's broker calls may take.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest a task waits for an input known to have older records on the broker, or
/// whose lag the broker does not tell (it is asked again meanwhile): a loaded broker's
/// answers time out when servers join and leave, and giving up waiting then would join
/// records out of timestamp order.
pub const MAX_LAGGING_IDLE: Duration = Duration::from_secs(30);
/// How long a partition's high watermark is trusted.
const WATERMARK_TTL: Duration = Duration::from_millis(100);
/// Records buffered for one input partition at which it is paused (resumed at half).
const PAUSE_AT: usize = 20_000;

/// A query's producer: its context records the first failed delivery.
pub type QueryProducer = BaseProducer<Deliveries>;

/// A query's consumer, whose rebalances drive its [`TaskManager`].
pub type QueryConsumer = BaseConsumer<Membership>;

/// Where a table sink's store (for pull queries) is rebuilt from.
#[derive(Debug)]
struct SinkStore {
    topic: String,
    store: Arc<TableStore>,
    /// Task `p` writes only sink partition `p` (the sink has as many partitions as the
    /// inputs), so each task restores and drops its own share; otherwise the whole store is
    /// read when the query starts.
    per_partition: bool,
}

impl SinkStore {
    /// The store of `query`'s table sink, if it has one, for a sink of `sink_partitions`
    /// partitions and `tasks` tasks.
    fn of(query: &PersistentQuery, (sink_partitions, tasks): (i32, i32)) -> Option<Self> {
        match &query.pipeline.output {
            Output::Topic {
                store: Some(store), ..
            } => Some(SinkStore {
                topic: query.sink_topic.clone(),
                store: Arc::clone(store),
                per_partition: sink_partitions == tasks,
            }),
            // A source table's store holds its topic's records: partition `p`'s are task
            // `p`'s.
            Output::Store(store) => Some(SinkStore {
                topic: query.source_topics.first().cloned().unwrap_or_default(),
                store: Arc::clone(store),
                per_partition: true,
            }),
            Output::Topic { store: None, .. } | Output::Rows(_) => None,
        }
    }
}

/// The sink topic whose partition `p` task `p` restores its table store's share from, if
/// `query` has such a store: what a standby copies besides the changelog.
pub fn per_partition_store_topic(
    query: &PersistentQuery,
    (sink_partitions, tasks): (i32, i32),
) -> Option<String> {
    SinkStore::of(query, (sink_partitions, tasks))
        .filter(|s| s.per_partition)
        .map(|s| s.topic)
}

impl SinkStore {}

/// The tasks of one query on this server, and their commits.
pub struct TaskManager {
    query: PersistentQuery,
    config: KafkaConfig,
    /// The changelog topic of a query with checkpointed state.
    changelog: Option<String>,
    sink_store: Option<SinkStore>,
    /// Commits offsets and state in transactions (false: never commits, replays its input).
    durable: bool,
    /// Sink records go in the transaction too.
    exactly_once: bool,
    /// How long a task waits for an empty input that is caught up.
    task_idle: TaskIdle,
    /// A result record the broker refuses stops the query (else: processing log).
    fail_on_production_error: bool,
    /// The transactional producer (durable queries).
    transactional: Option<QueryProducer>,
    /// Sink records of at-least-once and non-durable queries.
    immediate: QueryProducer,
    in_transaction: bool,
    tasks: BTreeMap<i32, Task>,
    /// The distinct input topics (the lead first); a task with several aligns them.
    topics: Vec<String>,
    /// Per task reading several topics: records not processed yet, by input topic.
    queues: BTreeMap<i32, InputQueues>,
    /// When a task started waiting for a lagging input.
    waiting_since: HashMap<i32, Instant>,
    /// When a task last took records: a high watermark asked before then may miss records
    /// older than them (written before them, after it was asked).
    pushed_at: HashMap<i32, Instant>,
    /// Low and high watermarks of input partitions, and when they were asked.
    watermarks: HashMap<(String, i32), (i64, i64, Instant)>,
    /// Input partitions paused because their buffer is full.
    paused: HashSet<(String, i32)>,
    /// Where reading an input partition started, for one nothing was consumed from yet.
    starts: HashMap<(String, i32), i64>,
    /// Next offset to read, per (topic, partition) of an owned task.
    positions: HashMap<(String, i32), i64>,
    /// Something was processed since the last commit.
    dirty: bool,
    last_commit: Instant,
    interval: Duration,
    ownership: Arc<Ownership>,
    standby: Option<Arc<Standby>>,
    /// Why the manager cannot go on (set in a rebalance callback, read by the loop).
    failure: Option<Error>,
    /// The query thread is done with it (closed, or failed): the revocation librdkafka
    /// makes when the consumer closes commits nothing.
    stopped: bool,
}

impl Drop for TaskManager {
    fn drop(&mut self) {
        let partitions: Vec<i32> = self.tasks.keys().copied().collect();
        self.ownership
            .set_active(&self.query.id, &partitions, false);
    }
}

impl std::fmt::Debug for TaskManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskManager")
            .field("query", &self.query.id)
            .field("tasks", &self.tasks.keys().collect::<Vec<_>>())
            .field("durable", &self.durable)
            .field("exactly_once", &self.exactly_once)
            .finish()
    }
}

/// What starting a manager needs from the runtime.
#[derive(Debug)]
pub struct Setup {
    /// The changelog topic (queries whose state is checkpointed).
    pub changelog: Option<String>,
    /// The sink topic's partition count (a table sink's store is rebuilt from it).
    pub sink_partitions: i32,
    /// The lead topic's partition count (one task per partition).
    pub tasks: i32,
    /// This server's record of who runs which task.
    pub ownership: Arc<Ownership>,
    /// The query's standby replicas on this server (`num.standby.replicas` > 0).
    pub standby: Option<Arc<Standby>>,
}

impl TaskManager {
    /// The manager of `query`, with its producers; a durable query's transactional producer
    /// has fenced any earlier incarnation of this server's (its open transaction is aborted).
    pub fn new(query: PersistentQuery, config: KafkaConfig, setup: Setup) -> Result<Self, Error> {
        // A query whose state cannot be checkpointed re-reads its input on restart.
        let durable = query.commits && checkpointable(&query)?;
        if query.commits && !durable {
            tracing::warn!(
                query = %query.id,
                "this query's state cannot be checkpointed yet: it re-reads its input after a restart"
            );
        }
        let settings = query.settings.or(config.default_settings());
        let exactly_once = durable && settings.guarantee() == Guarantee::ExactlyOnce;
        let transactional = if durable {
            Some(transactional_producer(&config, &query.id)?)
        } else {
            None
        };
        let fail_on_production_error = settings.fail_on_production_error();
        let immediate = immediate_producer(
            &config,
            (!fail_on_production_error).then(|| query.log.clone()),
        )?;
        let task_idle = settings.task_idle();
        let sink_store = SinkStore::of(&query, (setup.sink_partitions, setup.tasks));
        let mut manager = Self {
            topics: distinct(&query.source_topics),
            queues: BTreeMap::new(),
            waiting_since: HashMap::new(),
            pushed_at: HashMap::new(),
            watermarks: HashMap::new(),
            paused: HashSet::new(),
            starts: HashMap::new(),
            changelog: if durable { setup.changelog } else { None },
            sink_store,
            durable,
            exactly_once,
            task_idle,
            fail_on_production_error,
            transactional,
            immediate,
            in_transaction: false,
            tasks: BTreeMap::new(),
            positions: HashMap::new(),
            dirty: false,
            last_commit: Instant::now(),
            interval: if exactly_once {
                EXACTLY_ONCE_COMMIT_INTERVAL
            } else {
                COMMIT_INTERVAL
            },
            failure: None,
            stopped: false,
            ownership: setup.ownership,
            standby: setup.standby,
            query,
            config,
        };
        manager.restore_whole_store(setup.sink_partitions)?;
        Ok(manager)
    }

    /// The query's id.
    pub fn query_id(&self) -> &str {
        &self.query.id
    }

    /// A sink store that tasks cannot restore share by share is read whole, once.
    fn restore_whole_store(&mut self, partitions: i32) -> Result<(), Error> {
        let Some(sink) = &self.sink_store else {
            return Ok(());
        };
        if sink.per_partition || !self.durable {
            return Ok(());
        }
        for p in 0..partitions {
            changelog::read_partition(&self.config, &sink.topic, p, |r| {
                sink.store.apply(std::slice::from_ref(&r));
            })?;
        }
        Ok(())
    }

    /// Lead partitions `partitions` were assigned: their tasks are restored (in parallel)
    /// and start running.
    pub fn assign(&mut self, partitions: &[i32]) {
        if let Err(e) = self.try_assign(partitions) {
            self.failure.get_or_insert(e);
        }
    }

    fn try_assign(&mut self, partitions: &[i32]) -> Result<(), Error> {
        let started = Instant::now();
        let restore_store = self
            .sink_store
            .as_ref()
            .filter(|s| s.per_partition && self.durable);
        let (query, log) = (&self.query, &self.query.log);
        let build = |entries: &[crate::exec::StateEntry]| {
            query
                .pipeline
                .restored_task(log.clone(), entries)
                .map_err(|source| Error::Query {
                    query: query.id.clone(),
                    source,
                })
        };
        let warm: HashMap<i32, Warm> = partitions
            .iter()
            .filter_map(|p| Some((*p, self.standby.as_ref()?.take(*p)?)))
            .collect();
        let restored = restore_tasks(
            &self.config,
            (self.changelog.as_deref(), restore_store),
            (partitions, warm),
            &build,
        );
        for (p, restored) in restored {
            let (task, entries, warm) = restored?;
            tracing::info!(
                query = %self.query.id,
                member = %self.config.instance_id,
                partition = p,
                entries,
                warm,
                "task assigned and restored"
            );
            self.tasks.insert(p, task);
            self.ownership.set_active(&self.query.id, &[p], true);
        }
        if !partitions.is_empty() {
            tracing::info!(
                query = %self.query.id,
                ?partitions,
                millis = started.elapsed().as_millis() as u64,
                "tasks running"
            );
        }
        Ok(())
    }

    /// Lead partitions `partitions` are taken away: commit what is processed, then drop their
    /// tasks. `lost`: the group already gave them to another server, so nothing may be
    /// committed; the manager fails and the query restarts from its last commit.
    pub fn revoke(&mut self, consumer: &QueryConsumer, partitions: &[i32], lost: bool) {
        if self.stopped {
        } else if lost {
            if self.durable && self.dirty {
                self.failure.get_or_insert(
                    KafkaError::Unavailable(
                        "partitions were lost (this server left the group): restarting from the last commit".into(),
                    )
                    .into(),
                );
            }
        } else if let Err(e) = self.commit(consumer) {
            self.failure.get_or_insert(e);
        }
        self.ownership.set_active(&self.query.id, partitions, false);
        for p in partitions {
            self.tasks.remove(p);
            self.queues.remove(p);
            self.waiting_since.remove(p);
            self.pushed_at.remove(p);
            self.starts.retain(|(_, q), _| q != p);
            let paused: Vec<(String, i32)> = self
                .paused
                .iter()
                .filter(|(_, q)| q == p)
                .cloned()
                .collect();
            for key in paused {
                self.paused.remove(&key);
                let _ = consumer.resume(&one_partition(&key.0, key.1));
            }
            self.positions.retain(|(_, q), _| q != p);
            if let Some(sink) = self.sink_store.as_ref().filter(|s| s.per_partition) {
                sink.store.remove_partition(*p);
            }
        }
        tracing::info!(query = %self.query.id, ?partitions, lost, "tasks revoked");
    }

    /// Why the manager cannot go on, if it cannot.
    pub fn take_failure(&mut self) -> Option<Error> {
        self.failure.take()
    }

    /// Takes records of `topic`/`partition`, in order: a task with one input topic processes
    /// them at once, one with several buffers them until [`Self::drain_all`] (called once the
    /// whole poll is taken: the consumer's positions count every polled record as read).
    /// Records of a partition this server no longer owns are dropped (they belong to another
    /// server now).
    pub fn process(
        &mut self,
        topic: &str,
        partition: i32,
        records: &[Record],
    ) -> Result<(), Error> {
        if !self.tasks.contains_key(&partition) {
            return Ok(());
        }
        if self.topics.len() < 2 {
            return self.process_run(topic, partition, records);
        }
        let Some(input) = self.topics.iter().position(|t| t == topic) else {
            return Ok(());
        };
        let inputs = self.topics.len();
        self.queues
            .entry(partition)
            .or_insert_with(|| InputQueues::new(inputs))
            .push(input, records);
        self.pushed_at.insert(partition, Instant::now());
        Ok(())
    }

    /// Processes what every waiting task can process now.
    pub fn drain_all(&mut self, consumer: &QueryConsumer) -> Result<(), Error> {
        let waiting: Vec<i32> = self
            .queues
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(p, _)| *p)
            .collect();
        for p in waiting {
            self.drain(consumer, p)?;
        }
        Ok(())
    }

    /// Processes task `partition`'s buffered records in timestamp order, as far as no
    /// lagging input may still hold older ones.
    fn drain(&mut self, consumer: &QueryConsumer, partition: i32) -> Result<(), Error> {
        let Some(mut queues) = self.queues.remove(&partition) else {
            return Ok(());
        };
        let waited = self
            .waiting_since
            .get(&partition)
            .map_or(Duration::ZERO, Instant::elapsed);
        let topics = self.topics.clone();
        let idle = self.task_idle;
        let mut result = Ok(());
        loop {
            let next = queues.next_run(&mut |i| {
                if idle == TaskIdle::Never {
                    return true;
                }
                match self.lag(consumer, &topics[i], partition) {
                    Lag::CaughtUp => match idle {
                        TaskIdle::For(wait) => waited >= wait,
                        TaskIdle::Never | TaskIdle::UntilFetched => true,
                    },
                    Lag::Behind | Lag::Unknown => waited >= MAX_LAGGING_IDLE,
                }
            });
            let Some((input, run)) = next else {
                break;
            };
            self.waiting_since.remove(&partition);
            if let Err(e) = self.process_run(&topics[input], partition, &run) {
                result = Err(e);
                break;
            }
        }
        if queues.is_empty() {
            self.waiting_since.remove(&partition);
        } else if !self.waiting_since.contains_key(&partition) {
            tracing::debug!(
                query = %self.query.id,
                partition,
                buffered = (0..topics.len()).map(|i| queues.len(i)).sum::<usize>(),
                "task waits for an input with older records"
            );
            self.waiting_since.insert(partition, Instant::now());
        }
        self.flow_control(consumer, partition, &queues);
        self.queues.insert(partition, queues);
        result
    }

    /// Whether this server has read everything `topic`/`partition` holds, so that an empty
    /// buffer of it cannot hide an older record.
    fn lag(&mut self, consumer: &QueryConsumer, topic: &str, partition: i32) -> Lag {
        let key = (topic.to_string(), partition);
        let pushed = self.pushed_at.get(&partition).copied();
        let cached = self
            .watermarks
            .get(&key)
            .filter(|(_, _, at)| at.elapsed() < WATERMARK_TTL && pushed.is_none_or(|p| *at > p))
            .map(|(low, high, _)| (*low, *high));
        let (low, high) = match cached {
            Some(marks) => marks,
            None => match consumer.fetch_watermarks(topic, partition, Duration::from_secs(1)) {
                Ok((low, high)) => {
                    self.watermarks
                        .insert(key.clone(), (low, high, Instant::now()));
                    (low, high)
                }
                Err(_) => return Lag::Unknown,
            },
        };
        let consumed = consumer.position().ok().and_then(|positions| {
            positions
                .find_partition(topic, partition)
                .and_then(|e| e.offset().to_raw())
                .filter(|o| *o >= 0)
        });
        let position = match consumed.or_else(|| self.starts.get(&key).copied()) {
            Some(position) => position,
            // Nothing consumed from it since it was assigned: reading starts at its committed
            // offset, else at its first (or last) offset, as auto.offset.reset says.
            None => {
                let Ok(committed) = consumer
                    .committed_offsets(one_partition(topic, partition), Duration::from_secs(2))
                else {
                    return Lag::Unknown;
                };
                let committed = committed
                    .find_partition(topic, partition)
                    .and_then(|e| e.offset().to_raw())
                    .filter(|o| *o >= 0);
                let start = committed.unwrap_or(if self.query.from_beginning { low } else { high });
                self.starts.insert(key, start);
                start
            }
        };
        if position >= high {
            Lag::CaughtUp
        } else {
            Lag::Behind
        }
    }

    /// Pauses an input partition whose buffer is full, resumes it once half is processed.
    fn flow_control(&mut self, consumer: &QueryConsumer, partition: i32, queues: &InputQueues) {
        for (i, topic) in self.topics.iter().enumerate() {
            let key = (topic.clone(), partition);
            let len = queues.len(i);
            if len >= PAUSE_AT && !self.paused.contains(&key) {
                if consumer.pause(&one_partition(topic, partition)).is_ok() {
                    self.paused.insert(key);
                }
            } else if len < PAUSE_AT / 2
                && self.paused.remove(&key)
                && let Err(e) = consumer.resume(&one_partition(topic, partition))
            {
                tracing::warn!(query = %self.query.id, "resuming {topic}/{partition}: {e}");
            }
        }
    }

    /// Processes records of `topic`/`partition`, in order, through its task.
    fn process_run(
        &mut self,
        topic: &str,
        partition: i32,
        records: &[Record],
    ) -> Result<(), Error> {
        let Some(last) = records.last() else {
            return Ok(());
        };
        let Some(task) = self.tasks.get_mut(&partition) else {
            return Ok(());
        };
        let mut outputs = Vec::new();
        for input in 0..self.query.source_topics.len() {
            if self.query.source_topics[input] != topic {
                continue;
            }
            outputs.extend(
                task.process(input, records)
                    .map_err(|source| Error::Query {
                        query: self.query.id.clone(),
                        source,
                    })?,
            );
        }
        for output in &outputs {
            match self.send(output, self.exactly_once) {
                Err(Error::Kafka(KafkaError::RecordRefused { reason, .. }))
                    if !self.fail_on_production_error =>
                {
                    self.query.log.result_refused(&output.topic, &reason);
                }
                result => result?,
            }
        }
        self.positions
            .insert((topic.to_string(), partition), last.offset + 1);
        self.dirty = true;
        Ok(())
    }

    /// Serves delivery reports; fails if a record could not be written.
    pub fn poll_producers(&self) -> Result<(), Error> {
        self.immediate.poll(Duration::ZERO);
        if let Some(p) = &self.transactional {
            p.poll(Duration::ZERO);
        }
        for producer in std::iter::once(&self.immediate).chain(&self.transactional) {
            if let Some(failure) = producer.context().failure() {
                let error = if failure.refused {
                    KafkaError::RecordRefused {
                        topic: failure.topic,
                        reason: failure.reason,
                    }
                } else {
                    KafkaError::Unavailable(format!("a record was not written: {}", failure.reason))
                };
                return Err(error.into());
            }
        }
        Ok(())
    }

    /// Whether the commit interval has passed.
    pub fn commit_due(&self) -> bool {
        self.last_commit.elapsed() >= self.interval
    }

    /// Commits: every task's state changes and the input offsets in one transaction (after
    /// the at-least-once sink records are all written).
    pub fn commit(&mut self, consumer: &QueryConsumer) -> Result<(), Error> {
        self.last_commit = Instant::now();
        if !self.durable || !self.dirty {
            return Ok(());
        }
        let mut records = Vec::new();
        for (partition, task) in &mut self.tasks {
            let entries = task.checkpoint().map_err(|source| Error::Query {
                query: self.query.id.clone(),
                source,
            })?;
            if let (Some(topic), Some(entries)) = (&self.changelog, entries) {
                records.extend(changelog::records(topic, *partition, entries));
            }
        }
        for record in &records {
            self.send(record, true)?;
        }
        if !self.exactly_once {
            self.immediate
                .flush(COMMIT_TIMEOUT)
                .map_err(KafkaError::from)?;
        }
        self.poll_producers()?;
        let mut offsets = TopicPartitionList::new();
        for ((topic, partition), offset) in &self.positions {
            offsets
                .add_partition_offset(topic, *partition, Offset::Offset(*offset))
                .map_err(KafkaError::from)?;
        }
        let group = consumer
            .group_metadata()
            .ok_or_else(|| KafkaError::Unavailable("the consumer has no group metadata".into()))?;
        self.begin()?;
        let producer = self.transactional()?;
        producer
            .send_offsets_to_transaction(&offsets, &group, COMMIT_TIMEOUT)
            .map_err(KafkaError::from)?;
        producer
            .commit_transaction(COMMIT_TIMEOUT)
            .map_err(KafkaError::from)?;
        self.in_transaction = false;
        self.dirty = false;
        Ok(())
    }

    /// The last commit, when the query stops: then every record is written.
    pub fn close(&mut self, consumer: &QueryConsumer) -> Result<(), Error> {
        self.commit(consumer)?;
        self.immediate
            .flush(COMMIT_TIMEOUT)
            .map_err(KafkaError::from)?;
        self.poll_producers()
    }

    /// The query thread is done with the manager: nothing more is committed.
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    fn transactional(&self) -> Result<&QueryProducer, Error> {
        self.transactional
            .as_ref()
            .ok_or_else(|| KafkaError::Unavailable("no transactional producer".into()).into())
    }

    fn begin(&mut self) -> Result<(), Error> {
        if !self.in_transaction {
            self.transactional()?
                .begin_transaction()
                .map_err(KafkaError::from)?;
            self.in_transaction = true;
        }
        Ok(())
    }

    /// Produces one record, in the transaction or at once, waiting while the producer's
    /// queue is full.
    fn send(&mut self, record: &Record, transactional: bool) -> Result<(), Error> {
        if transactional {
            self.begin()?;
        }
        let producer = match (&self.transactional, transactional) {
            (Some(p), true) => p,
            _ => &self.immediate,
        };
        loop {
            match producer.send(super::runtime::base_record(record, ())) {
                Ok(()) => return Ok(()),
                Err((RdKafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    producer.poll(Duration::from_millis(50));
                }
                // Refused before it was queued (larger than `message.max.bytes`): a
                // transaction it would have been in is not affected.
                Err((RdKafkaError::MessageProduction(code), _))
                    if KafkaError::refuses_the_record(code) =>
                {
                    return Err(KafkaError::RecordRefused {
                        topic: record.topic.clone(),
                        reason: code.to_string(),
                    }
                    .into());
                }
                Err((e, _)) => return Err(KafkaError::from(e).into()),
            }
        }
    }
}

/// The producer of sink records outside transactions; records the broker refuses go to
/// `skipped` (a query's processing log) if given, else fail the query.
fn immediate_producer(
    config: &KafkaConfig,
    skipped: Option<ProcessingLog>,
) -> Result<QueryProducer, Error> {
    let deliveries = skipped.map_or_else(Deliveries::default, Deliveries::skipping);
    Ok(config
        .client_config()
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .set("enable.idempotence", "true")
        .create_with_context(deliveries)
        .map_err(KafkaError::from)?)
}

/// `topics` without repetitions, in order.
fn distinct(topics: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in topics {
        if !out.contains(t) {
            out.push(t.clone());
        }
    }
    out
}

/// How far this server's reading of an input partition is from its end.
enum Lag {
    /// Everything the partition holds was read.
    CaughtUp,
    /// The partition holds records not read yet.
    Behind,
    /// The broker did not say.
    Unknown,
}

/// A list of one partition.
fn one_partition(topic: &str, partition: i32) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    tpl
}

/// Whether every operator of `query` can checkpoint its state (a fresh task says).
fn checkpointable(query: &PersistentQuery) -> Result<bool, Error> {
    let probe = query
        .pipeline
        .new_task(query.log.clone())
        .and_then(|mut t| t.checkpoint())
        .map_err(|source| Error::Query {
            query: query.id.clone(),
            source,
        })?;
    Ok(probe.is_some())
}

/// A durable query's producer, its transactions initialized: an earlier incarnation with the
/// same transactional id is fenced, and its open transaction aborted.
fn transactional_producer(config: &KafkaConfig, query_id: &str) -> Result<QueryProducer, Error> {
    let id = format!("{}-{}", config.application_id(query_id), config.instance_id);
    let producer: QueryProducer = config
        .client_config()
        .set("transactional.id", id)
        .set("transaction.timeout.ms", TRANSACTION_TIMEOUT_MS)
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .create_with_context(Deliveries::default())
        .map_err(KafkaError::from)?;
    producer
        .init_transactions(COMMIT_TIMEOUT)
        .map_err(KafkaError::from)?;
    Ok(producer)
}

/// A restored task, how many changelog entries it read, and whether it started from a
/// standby's warm copy.
type Restored = Result<(Task, usize, bool), Error>;

/// Restores the task of each of `partitions` on a thread of its own: reads its changelog
/// partition (and its share of a sink's store), after the warm copy a standby kept of it if
/// there is one, and `build`s the task from the entries; each partition's task and how many
/// entries it restored.
fn restore_tasks(
    config: &KafkaConfig,
    (changelog, store): (Option<&str>, Option<&SinkStore>),
    (partitions, mut warm): (&[i32], HashMap<i32, Warm>),
    build: &(dyn Fn(&[crate::exec::StateEntry]) -> Result<Task, Error> + Sync),
) -> Vec<(i32, Restored)> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = partitions
            .iter()
            .map(|&p| {
                let copy = warm.remove(&p);
                let handle = scope.spawn(move || {
                    let is_warm = copy.is_some();
                    let copy = copy.unwrap_or_default();
                    if let Some(sink) = store {
                        sink.store.remove_partition(p);
                        sink.store.apply(&copy.sink_rows);
                        changelog::read_partition_from(
                            config,
                            (&sink.topic, p),
                            copy.sink_next,
                            |r| {
                                sink.store.apply(std::slice::from_ref(&r));
                            },
                        )?;
                    }
                    let mut entries = copy.entries;
                    if let Some(topic) = changelog {
                        entries.extend(changelog::read(config, (topic, p), copy.changelog_next)?);
                    }
                    Ok((build(&entries)?, entries.len(), is_warm))
                });
                (p, handle)
            })
            .collect();
        handles
            .into_iter()
            .map(|(p, h)| {
                let result = h.join().unwrap_or_else(|_| {
                    Err(KafkaError::Unavailable(format!("restoring partition {p} panicked")).into())
                });
                (p, result)
            })
            .collect()
    })
}

/// The consumer's context: turns the group's rebalances into task assignments and
/// revocations of the query's [`TaskManager`].
pub struct Membership {
    /// The topic the consumer subscribes to.
    lead: String,
    /// The other topics whose partition `p` goes with lead partition `p`.
    co_topics: Vec<String>,
    manager: Mutex<TaskManager>,
}

impl Membership {
    /// The membership of `manager`'s query, which reads `topics` (the first leads).
    pub fn new(topics: &[String], manager: TaskManager) -> Self {
        let mut co_topics = distinct(topics);
        let lead = if co_topics.is_empty() {
            String::new()
        } else {
            co_topics.remove(0)
        };
        Self {
            lead,
            co_topics,
            manager: Mutex::new(manager),
        }
    }

    /// The topic the consumer subscribes to.
    pub fn lead(&self) -> &str {
        &self.lead
    }

    /// The manager (never held while the consumer is polled: rebalances run inside polls).
    pub fn manager(&self) -> MutexGuard<'_, TaskManager> {
        self.manager
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The lead partitions of `tpl`, and the list with each one's co-partitions added.
    fn with_co_partitions(&self, tpl: &TopicPartitionList) -> (Vec<i32>, TopicPartitionList) {
        let leads: Vec<i32> = tpl
            .elements()
            .iter()
            .filter(|e| e.topic() == self.lead)
            .map(|e| e.partition())
            .collect();
        let mut full = tpl.clone();
        for topic in &self.co_topics {
            for p in &leads {
                full.add_partition(topic, *p);
            }
        }
        (leads, full)
    }
}

impl ClientContext for Membership {}

impl ConsumerContext for Membership {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let (leads, full) = self.with_co_partitions(tpl);
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let assigned = if cooperative {
                    consumer.incremental_assign(&full)
                } else {
                    consumer.assign(&full)
                };
                if assigned.is_ok() {
                    self.manager().assign(&leads);
                }
                assigned
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let lost = consumer.assignment_lost();
                self.manager().revoke(consumer, &leads, lost);
                if cooperative {
                    consumer.incremental_unassign(&full)
                } else {
                    consumer.unassign()
                }
            }
            other => Err(RdKafkaError::Rebalance(other.into())),
        };
        if let Err(e) = result {
            let mut manager = self.manager();
            tracing::warn!(query = %manager.query_id(), "rebalance: {e}");
            manager.failure.get_or_insert(KafkaError::from(e).into());
        }
    }
}
