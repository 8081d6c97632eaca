//! [`KafkaRuntime`]: persistent queries on a real broker.
//!
//! Each query gets a thread that runs its [`lifecycle::TaskManager`] with a consumer in the
//! group `<service-id>-query-<id>` (several servers with one service id share the
//! partitions): the thread polls a batch (up to [`MAX_BATCH`] records, or what arrives within
//! [`POLL`]) from the query's input topics, hands each partition's records to the manager
//! and commits when the commit interval has passed. Assignment, restore, commits, revocation
//! and transactions are the lifecycle's ([`super::lifecycle`]); this file starts and stops
//! query threads and does the runtime's other I/O (`INSERT VALUES`, `PRINT`, scans).
//! A query thread that fails (the broker gone, a transaction fenced or lost, a result record
//! the broker refuses under `ksql.fail.on.production.error=true`) puts its query in state
//! `ERROR` with the reason (`SHOW QUERIES`, `EXPLAIN`) and starts it again from what is
//! committed, after a backoff that grows to [`MAX_BACKOFF`]; it is `RUNNING` again once it
//! has run [`HEALTHY_AFTER`] without failing.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::producer::{BaseRecord, FutureProducer, FutureRecord};

use super::admin::Topics;
use super::fanout::Fanouts;
use super::lifecycle::{self, Membership, QueryConsumer, TaskManager};
use super::standby::{Ownership, Standby};
use super::{KafkaConfig, KafkaError};
use crate::engine::{PersistentQuery, QueryStatus, Runtime, StoreShare};
use crate::error::Error;
use crate::record::Record;

/// Most records handed to tasks in one poll round.
pub const MAX_BATCH: usize = 5_000;
/// The longest wait before a failed query starts again.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a restarted query runs without failing before its state is `RUNNING` again.
const HEALTHY_AFTER: Duration = Duration::from_secs(5);
/// How long a poll waits for the first record of a batch.
pub const POLL: Duration = Duration::from_millis(100);

struct RunningQuery {
    stop: Arc<AtomicBool>,
    /// Its stream threads, each a member of the query's group.
    threads: Vec<JoinHandle<()>>,
    /// A client's query: stopping it does not wait for its thread (it commits nothing).
    transient: bool,
}

/// Runs queries on Kafka.
pub struct KafkaRuntime {
    config: KafkaConfig,
    topics: Topics,
    queries: HashMap<String, RunningQuery>,
    /// Readers shared by the stateless push queries of each source.
    fanouts: Fanouts,
    /// Writes `INSERT VALUES` records and the command topic's.
    producer: FutureProducer,
    /// Who runs which task here, and the standby replicas.
    ownership: Arc<Ownership>,
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
        let producer: FutureProducer = config
            .client_config()
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "0")
            .create()?;
        Ok(Self {
            config,
            topics,
            queries: HashMap::new(),
            fanouts: Fanouts::default(),
            producer,
            ownership: Arc::default(),
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
        let mut tasks = 1;
        for source in &query.source_topics {
            tasks = tasks.max(self.topics.partitions(source).await?.unwrap_or(1));
        }
        let (changelog, sink_partitions) = self.state_topics(&query, tasks).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let id = query.id.clone();
        let transient = !query.commits;
        let settings = query.settings.or(self.config.default_settings());
        let replicas = settings.standby_replicas();
        let store = lifecycle::per_partition_store_topic(&query, (sink_partitions, tasks));
        let standby = self.standby(&query, replicas, (&changelog, &store))?;
        // A source table's materialization is no persistent query, but its tasks split
        // its store among the servers too.
        if !transient || store.is_some() {
            let lead = query.source_topics.first().map_or("", String::as_str);
            self.ownership.register(
                &id,
                (lead, tasks, store.is_some()),
                replicas,
                standby.clone(),
            );
        }
        let ownership = Arc::clone(&self.ownership);
        let setup = move || lifecycle::Setup {
            changelog: changelog.clone(),
            sink_partitions,
            tasks,
            ownership: Arc::clone(&ownership),
            standby: standby.clone(),
        };
        // Several stream threads split the tasks as members of the query's group, each
        // with an identity of its own (its transactional id, its static membership).
        let threads = if transient {
            1
        } else {
            settings.stream_threads().min(tasks.max(1) as usize)
        };
        let mut handles = Vec::new();
        for thread in 0..threads {
            let mut config = self.config.clone();
            if thread > 0 {
                config.instance_id = format!("{}-{thread}", config.instance_id);
            }
            handles.push(spawn_stream_thread(
                (query.clone(), config, thread),
                setup.clone(),
                Arc::clone(&stop),
            )?);
        }
        tracing::info!(query = %id, threads, "query started");
        self.queries.insert(
            id,
            RunningQuery {
                stop,
                threads: handles,
                transient,
            },
        );
        Ok(())
    }

    async fn start_push(
        &mut self,
        query: PersistentQuery,
        shared: Option<String>,
    ) -> Result<(), Error> {
        match shared {
            Some(source) => {
                let config = self.config.clone();
                // Starting a source's reader asks the broker for its end offsets.
                tokio::task::block_in_place(|| self.fanouts.join(&config, &source, &query))
            }
            None => self.start_query(query).await,
        }
    }

    async fn produce(&self, record: Record) -> Result<(), Error> {
        // Awaits the delivery report (a flush waits up to 100 ms more per record).
        self.producer
            .send(future_record(&record), Duration::from_secs(10))
            .await
            .map_err(|(e, _)| KafkaError::from(e))?;
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

    fn store_share(&self, query_id: &str) -> Option<StoreShare> {
        self.ownership.store_share(query_id)
    }

    fn standby_rows(
        &self,
        query_id: &str,
        partitions: &BTreeSet<i32>,
    ) -> (BTreeSet<i32>, Vec<Record>) {
        self.ownership.standby_rows(query_id, partitions)
    }

    async fn stop_query(&mut self, id: &str) -> Result<(), Error> {
        if self.fanouts.leave(id) {
            return Ok(());
        }
        self.ownership.unregister(id);
        if let Some(q) = self.queries.remove(id) {
            q.stop.store(true, Ordering::Relaxed);
            // A persistent query's last commit is awaited; a client's query ends on its own.
            if !q.transient {
                let _ = tokio::task::spawn_blocking(move || {
                    for thread in q.threads {
                        let _ = thread.join();
                    }
                })
                .await;
            }
            tracing::info!(query = %id, "query stopped");
        }
        Ok(())
    }
}

impl KafkaRuntime {
    /// The changelog of `query` (created if needed, with `tasks` partitions) if its state is
    /// checkpointed, and its sink's partition count.
    async fn state_topics(
        &self,
        query: &PersistentQuery,
        tasks: i32,
    ) -> Result<(Option<String>, i32), Error> {
        let changelog = if query.commits && query.pipeline.is_stateful() {
            let topic = self.internal_topic(&query.id, "Aggregate-Materialize-changelog");
            self.topics
                .create_with(&topic, tasks, &[("cleanup.policy", "compact")])
                .await?;
            Some(topic)
        } else {
            None
        };
        let sink_partitions = match query.sink_topic.as_str() {
            "" => 0,
            sink => self.topics.partitions(sink).await?.unwrap_or(0),
        };
        Ok((changelog, sink_partitions))
    }

    /// Who runs which task on this server (the cluster's heartbeats carry it).
    pub fn ownership(&self) -> Arc<Ownership> {
        Arc::clone(&self.ownership)
    }

    /// The standby replicas of a durable `query` with `replicas` > 0: copies of its changelog
    /// and of the topic its table's store is split by, if it is.
    fn standby(
        &self,
        query: &PersistentQuery,
        replicas: usize,
        (changelog, store): (&Option<String>, &Option<String>),
    ) -> Result<Option<Arc<Standby>>, Error> {
        if !query.commits || replicas == 0 || (changelog.is_none() && store.is_none()) {
            return Ok(None);
        }
        let standby = Standby::start(&self.config, changelog.clone(), store.clone())?;
        Ok(Some(standby))
    }
}

/// Starts stream thread `thread` of `query`, a member of its group as `config`'s instance.
fn spawn_stream_thread(
    (query, config, thread): (PersistentQuery, KafkaConfig, usize),
    setup: impl Fn() -> lifecycle::Setup + Send + 'static,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, Error> {
    Ok(std::thread::Builder::new()
        .name(format!("query-{}-{thread}", query.id))
        // Evaluating expressions recurses once per level (see sql::limits).
        .stack_size(crate::sql::limits::THREAD_STACK)
        .spawn(move || run_with_restarts(&query, &config, &setup, &stop))
        .map_err(|e| KafkaError::Unavailable(format!("cannot start a query thread: {e}")))?)
}

/// Runs `query` until `stop`; a run that fails starts again from what is committed.
fn run_with_restarts(
    query: &PersistentQuery,
    config: &KafkaConfig,
    setup: &dyn Fn() -> lifecycle::Setup,
    stop: &AtomicBool,
) {
    let mut backoff = Duration::from_millis(500);
    while !stop.load(Ordering::Relaxed) {
        let started = std::time::Instant::now();
        let result = TaskManager::new(query.clone(), config.clone(), setup())
            .and_then(|manager| QueryLoop::new(query, config, manager))
            .and_then(|query_loop| query_loop.run(stop));
        let Err(e) = result else {
            return;
        };
        query
            .status
            .failed(&e.to_string(), e.kind() == crate::error::ErrorKind::User);
        tracing::error!(query = %query.id, "query failed, starting again in {backoff:?}: {e}");
        if started.elapsed() > MAX_BACKOFF {
            backoff = Duration::from_millis(500);
        }
        let until = std::time::Instant::now() + backoff;
        while std::time::Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::park_timeout(Duration::from_millis(50));
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// The polling loop of one query.
struct QueryLoop {
    consumer: QueryConsumer,
    id: String,
    status: QueryStatus,
}

impl QueryLoop {
    /// A consumer for `query` in its group, subscribed to its lead topic; its rebalances
    /// assign and revoke `manager`'s tasks.
    fn new(
        query: &PersistentQuery,
        config: &KafkaConfig,
        manager: TaskManager,
    ) -> Result<Self, Error> {
        let membership = Membership::new(&query.source_topics, manager);
        let mut client = config.client_config();
        client
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
            .set("isolation.level", "read_committed")
            .set("partition.assignment.strategy", "cooperative-sticky")
            // A crashed server's partitions move to another after 10 s; a static member
            // restarted before gets them back at once, one that stops cleanly without
            // static membership hands them over at once.
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "3000")
            .set("enable.partition.eof", "false");
        if query.commits && config.static_membership {
            client.set("group.instance.id", &config.instance_id);
        }
        let consumer: QueryConsumer = client
            .create_with_context(membership)
            .map_err(KafkaError::from)?;
        let lead = consumer.context().lead().to_string();
        consumer.subscribe(&[&lead]).map_err(KafkaError::from)?;
        Ok(Self {
            consumer,
            id: query.id.clone(),
            status: query.status.clone(),
        })
    }

    /// Runs until `stop` (then commits a last time) or a failure.
    fn run(self, stop: &AtomicBool) -> Result<(), Error> {
        let result = self.run_until(stop);
        let mut manager = self.consumer.context().manager();
        let result = result.and_then(|()| manager.close(&self.consumer));
        manager.stop();
        result
    }

    fn run_until(&self, stop: &AtomicBool) -> Result<(), Error> {
        let started = std::time::Instant::now();
        let mut healthy = false;
        while !stop.load(Ordering::Relaxed) {
            if !healthy && started.elapsed() >= HEALTHY_AFTER {
                // Restarted after a failure, it has run long enough to be running again.
                self.status.running();
                healthy = true;
            }
            let batch = self.poll_batch();
            let mut manager = self.consumer.context().manager();
            if let Some(e) = manager.take_failure() {
                return Err(e);
            }
            for ((topic, partition), records) in batch {
                manager.process(&topic, partition, &records)?;
            }
            manager.drain_all(&self.consumer)?;
            manager.poll_producers()?;
            if manager.commit_due() {
                manager.commit(&self.consumer)?;
            }
        }
        Ok(())
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
                Err(e) => tracing::warn!(query = %self.id, "consumer: {e}"),
            }
        }
        by_partition
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

/// A record as rdkafka's future producer sends it (a null key or value stays null).
pub(crate) fn future_record(record: &Record) -> FutureRecord<'_, [u8], [u8]> {
    let mut out = FutureRecord::to(&record.topic).timestamp(record.timestamp);
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

/// A record as rdkafka sends it (a null key or value stays null), with its delivery opaque.
pub(crate) fn base_record<D: rdkafka::util::IntoOpaque>(
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
