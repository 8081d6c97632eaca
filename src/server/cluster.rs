//! [`Cluster`]: the servers of one service id, as each sees the others.
//!
//! Every server heartbeats once a second to the compacted topic `_eddy-<service-id>-cluster`
//! (key: its instance id; value: its advertised URL, `--advertised-listener`, the time, and
//! the partitions of each query it runs and keeps standbys of) and tails it, so each knows
//! every host, whether it is alive (a heartbeat within [`ALIVE_WITHIN`]) and who owns each
//! task; a server that stops cleanly writes a tombstone. From the live hosts' heartbeats
//! each server places its standby replicas ([`crate::kafka::standby`]).
//!
//! A pull query of a table split by partition among the servers is answered, by whichever
//! server receives it, from the servers holding each partition ([`route_pull`]): the
//! receiver answers the partitions whose tasks it runs and asks, for each other partition,
//! a live server whose heartbeat says it runs that task (or, with
//! `ksql.query.pull.enable.standby.reads`, keeps a standby copy). A peer answers only the
//! partitions it holds at that moment (request properties [`LOCAL_ONLY`], [`PARTITIONS`],
//! [`STANDBY`]) and says which ([`SERVED`]); a partition no server answered is asked of the
//! next holder, and if none is left the query fails with 503 rather than answer with part
//! of the table. `/clusterStatus` lists the hosts.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};

use super::error::{RestError, code};
use crate::engine::select::PullShare;
use crate::kafka::standby::{Ownership, Parts};
use crate::kafka::{KafkaConfig, KafkaError};

/// How recent a host's last heartbeat must be for it to count as alive.
pub const ALIVE_WITHIN: Duration = Duration::from_secs(5);
/// How often a server heartbeats.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// The request property that asks a server for its own rows only (a peer's forwarded pull).
pub const LOCAL_ONLY: &str = "eddy.pull.local.only";
/// How long a peer may take to answer a forwarded pull query.
const PEER_TIMEOUT: Duration = Duration::from_secs(10);

/// One server as the heartbeats show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Its advertised REST URL.
    pub url: String,
    /// Its last heartbeat (ms since the epoch).
    pub last_seen_ms: i64,
    /// The partitions of each query it runs and keeps standbys of.
    pub queries: BTreeMap<String, Parts>,
}

impl Host {
    /// Whether it heartbeated within [`ALIVE_WITHIN`].
    pub fn alive(&self) -> bool {
        crate::record::now_ms() - self.last_seen_ms <= ALIVE_WITHIN.as_millis() as i64
    }
}

/// The hosts of the service id, kept up to date by the heartbeat threads.
#[derive(Debug)]
pub struct Cluster {
    me: String,
    url: String,
    topic: String,
    hosts: Mutex<BTreeMap<String, Host>>,
    stop: AtomicBool,
    client: reqwest::Client,
    ownership: Arc<Ownership>,
}

impl Cluster {
    /// Joins the cluster of `config`'s service id as `url`, telling what `ownership` says
    /// this server runs: creates the heartbeat topic if needed and starts heartbeating and
    /// tailing it.
    pub async fn join(
        config: &KafkaConfig,
        url: &str,
        ownership: Arc<Ownership>,
    ) -> Result<Arc<Self>, crate::Error> {
        let topic = format!("_eddy-{}-cluster", config.service_id);
        crate::kafka::admin::Topics::connect(config)?
            .create_with(&topic, 1, &[("cleanup.policy", "compact")])
            .await?;
        let cluster = Arc::new(Self {
            me: config.instance_id.clone(),
            url: url.trim_end_matches('/').to_string(),
            topic,
            hosts: Mutex::default(),
            stop: AtomicBool::new(false),
            client: reqwest::Client::builder()
                .timeout(PEER_TIMEOUT)
                .build()
                .map_err(|e| KafkaError::Unavailable(e.to_string()))?,
            ownership,
        });
        let producer: BaseProducer = config
            .client_config()
            .set("linger.ms", "0")
            .create()
            .map_err(KafkaError::from)?;
        let consumer: BaseConsumer = config
            .reader("cluster")
            .create()
            .map_err(KafkaError::from)?;
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(&cluster.topic, 0, Offset::Beginning)
            .map_err(KafkaError::from)?;
        consumer.assign(&assignment).map_err(KafkaError::from)?;
        Self::start_threads(&cluster, producer, consumer)?;
        Ok(cluster)
    }

    /// Starts heartbeating (and placing standbys) and tailing the heartbeats, until the
    /// cluster is dropped or left.
    fn start_threads(
        cluster: &Arc<Self>,
        producer: BaseProducer,
        consumer: BaseConsumer,
    ) -> Result<(), KafkaError> {
        let (writer, reader) = (Arc::downgrade(cluster), Arc::downgrade(cluster));
        std::thread::Builder::new()
            .name("cluster-heartbeat".into())
            .spawn(move || {
                while let Some(cluster) = writer.upgrade() {
                    if cluster.stop.load(Ordering::Relaxed) {
                        break;
                    }
                    cluster.heartbeat(&producer);
                    cluster.place_standbys();
                    drop(cluster);
                    std::thread::park_timeout(HEARTBEAT);
                }
            })
            .map_err(|e| KafkaError::Unavailable(format!("cannot start heartbeats: {e}")))?;
        std::thread::Builder::new()
            .name("cluster-members".into())
            .spawn(move || {
                loop {
                    let message = consumer.poll(Duration::from_millis(200));
                    let Some(cluster) = reader.upgrade() else {
                        return;
                    };
                    if let Some(Ok(m)) = message {
                        cluster.heard(m.key(), m.payload());
                    }
                }
            })
            .map_err(|e| KafkaError::Unavailable(format!("cannot start heartbeats: {e}")))?;
        Ok(())
    }

    /// This server's heartbeat.
    fn heartbeat(&self, producer: &BaseProducer) {
        let queries: serde_json::Map<String, Value> = self
            .ownership
            .snapshot()
            .into_iter()
            .map(|(id, parts)| {
                let lags: serde_json::Map<String, Value> = parts
                    .lags
                    .iter()
                    .map(|(p, (at, end))| (p.to_string(), json!([at, end])))
                    .collect();
                let value = json!({
                    "topic": parts.topic,
                    "active": parts.active,
                    "standby": parts.standby,
                    "lags": lags,
                });
                (id, value)
            })
            .collect();
        let value = json!({"url": self.url, "time": crate::record::now_ms(), "queries": queries})
            .to_string();
        let record = BaseRecord::to(&self.topic)
            .key(self.me.as_bytes())
            .payload(value.as_bytes());
        if let Err((e, _)) = producer.send(record) {
            tracing::warn!("heartbeat: {e}");
        }
        producer.poll(Duration::ZERO);
    }

    /// A heartbeat (or a tombstone: the host left) read from the topic.
    fn heard(&self, key: Option<&[u8]>, value: Option<&[u8]>) {
        let Some(id) = key.map(|k| String::from_utf8_lossy(k).to_string()) else {
            return;
        };
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        let beat = value.and_then(|v| serde_json::from_slice::<Value>(v).ok());
        match beat {
            Some(beat) => {
                let host = Host {
                    url: beat["url"].as_str().unwrap_or_default().to_string(),
                    last_seen_ms: beat["time"].as_i64().unwrap_or(0),
                    queries: parts_of(&beat["queries"]),
                };
                hosts.insert(id, host);
            }
            None => {
                hosts.remove(&id);
            }
        }
    }

    /// Places this server's standby replicas from the live hosts' heartbeats.
    fn place_standbys(&self) {
        let live: BTreeMap<String, BTreeMap<String, Parts>> = self
            .hosts()
            .into_iter()
            .filter(|(id, host)| host.alive() && *id != self.me)
            .map(|(id, host)| (id, host.queries))
            .collect();
        self.ownership.place_standbys(&self.me, &live);
    }

    /// What this server runs, as its heartbeat says.
    pub fn local_parts(&self) -> BTreeMap<String, Parts> {
        self.ownership.snapshot()
    }

    /// Leaves the cluster: no more heartbeats, and a tombstone so the others know at once.
    pub fn leave(&self, config: &KafkaConfig) {
        self.stop.store(true, Ordering::Relaxed);
        if let Ok(producer) = config.client_config().create::<BaseProducer>() {
            let _ =
                producer.send(BaseRecord::<[u8], [u8]>::to(&self.topic).key(self.me.as_bytes()));
            let _ = producer.flush(Duration::from_secs(5));
        }
    }

    /// Every host heard of (this one included), by instance id.
    pub fn hosts(&self) -> BTreeMap<String, Host> {
        self.hosts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// This server's instance id.
    pub fn me(&self) -> &str {
        &self.me
    }
}

/// The partitions a JSON array lists (a heartbeat's, a forwarded pull query's, a peer's
/// answer's).
pub fn partition_set(v: &Value) -> BTreeSet<i32> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_i64)
                .map(|p| p as i32)
                .collect()
        })
        .unwrap_or_default()
}

/// The partitions of each query a heartbeat lists.
fn parts_of(queries: &Value) -> BTreeMap<String, Parts> {
    queries
        .as_object()
        .map(|queries| {
            queries
                .iter()
                .map(|(id, q)| {
                    let lags = q["lags"].as_object().map(|lags| {
                        lags.iter()
                            .filter_map(|(p, v)| {
                                Some((p.parse().ok()?, (v[0].as_i64()?, v[1].as_i64()?)))
                            })
                            .collect()
                    });
                    let parts = Parts {
                        topic: q["topic"].as_str().unwrap_or_default().to_string(),
                        active: partition_set(&q["active"]),
                        standby: partition_set(&q["standby"]),
                        lags: lags.unwrap_or_default(),
                    };
                    (id.clone(), parts)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The request property naming the partitions a peer is asked for.
pub const PARTITIONS: &str = "eddy.pull.partitions";
/// The request property allowing a peer to answer from its standby copies.
pub const STANDBY: &str = "eddy.pull.standby";
/// The element of a peer's answer that says which partitions its rows are from.
pub const SERVED: &str = "servedPartitions";
/// How long a pull query waits for the heartbeats to name a holder of each partition.
pub const ROUTING_WAIT: Duration = Duration::from_secs(3);

/// A table's rows as the servers holding them answer, as (columns, tombstone).
pub type Rows = Vec<(Vec<Value>, bool)>;

/// The rows of the partitions of `share`'s table this server did not answer (those holding
/// the keys looked up, or all), from the servers holding them: each partition is asked of a live server running its task (or,
/// with standby reads, keeping a standby copy of it at most `standby_reads` offsets
/// behind), and a partition no server answered is asked of the next. While partitions have
/// no holder (their tasks are moving, or the heartbeats do not say yet) the heartbeats are
/// waited for, up to [`ROUTING_WAIT`]; then the query fails, rather than answering with
/// part of the table. `request` is the client's `/query` body.
pub async fn route_pull(
    cluster: &Cluster,
    request: &Value,
    share: &PullShare,
    standby_reads: Option<i64>,
) -> Result<Rows, RestError> {
    let needed = (share.needed.clone()).unwrap_or_else(|| (0..share.tasks).collect());
    let mut missing: BTreeSet<i32> = needed.difference(&share.served).copied().collect();
    // This server answered already; a server that failed is not asked again.
    let mut asked: BTreeSet<(String, i32)> =
        missing.iter().map(|p| (cluster.url.clone(), *p)).collect();
    let (mut failed, mut rows) = (BTreeMap::new(), Vec::new());
    let deadline = tokio::time::Instant::now() + ROUTING_WAIT;
    while !missing.is_empty() {
        let skip =
            |url: &str, p: i32| failed.contains_key(url) || asked.contains(&(url.to_string(), p));
        let plan = cluster.plan_pull(&share.query_id, &missing, skip, standby_reads);
        if plan.is_empty() {
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(HEARTBEAT / 4).await;
            asked.clear();
            continue;
        }
        let asks = plan.iter().map(|(url, partitions)| {
            let mut body = request.clone();
            body["requestProperties"] = json!({
                LOCAL_ONLY: true,
                PARTITIONS: partitions,
                STANDBY: standby_reads.is_some(),
            });
            async move { (url, cluster.ask(url, &body).await) }
        });
        for (url, partitions) in &plan {
            asked.extend(partitions.iter().map(|p| (url.clone(), *p)));
        }
        for (url, answer) in futures_util::future::join_all(asks).await {
            match answer {
                Ok((served, answered)) => {
                    missing.retain(|p| !served.contains(p));
                    rows.extend(answered);
                }
                Err(e) => {
                    failed.insert(url.clone(), e);
                }
            }
        }
    }
    if missing.is_empty() {
        return Ok(rows);
    }
    Err(unanswered(
        &share.query_id,
        &missing,
        standby_reads,
        &failed,
    ))
}

/// The error of a pull query whose `missing` partitions no server answered.
fn unanswered(
    query_id: &str,
    missing: &BTreeSet<i32>,
    standby_reads: Option<i64>,
    failed: &BTreeMap<String, String>,
) -> RestError {
    let mut message = format!(
        "Unable to execute pull query: no live server answered for partitions {missing:?} of query {query_id} (their tasks are moving to another server{}).",
        if standby_reads.is_some() {
            ""
        } else {
            "; ksql.query.pull.enable.standby.reads=true lets standby replicas answer"
        }
    );
    if !failed.is_empty() {
        let failures: Vec<String> = failed.iter().map(|(u, e)| format!("{u}: {e}")).collect();
        message.push_str(&format!(" Servers that failed: {}", failures.join("; ")));
    }
    RestError::generic(code::SERVICE_UNAVAILABLE, message)
}

impl Cluster {
    /// Which live server to ask for each of `partitions` of query `query_id` (but not a
    /// server `skip` says, for a partition): one running its task, else (with standby reads)
    /// one keeping a copy at most `standby_reads` offsets behind.
    fn plan_pull(
        &self,
        query_id: &str,
        partitions: &BTreeSet<i32>,
        skip: impl Fn(&str, i32) -> bool,
        standby_reads: Option<i64>,
    ) -> BTreeMap<String, Vec<i32>> {
        let hosts: Vec<Host> = self.hosts().into_values().filter(Host::alive).collect();
        let mut plan: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for p in partitions {
            let holds = |host: &&Host, standby: bool| {
                let fresh = !skip(&host.url, *p);
                host.queries.get(query_id).is_some_and(|parts| {
                    let near = |max: i64| {
                        let lag = parts.lags.get(p).map(|(at, end)| end - at);
                        lag.map_or(max == i64::MAX, |lag| lag <= max)
                    };
                    fresh
                        && if standby {
                            parts.standby.contains(p) && standby_reads.is_some_and(near)
                        } else {
                            parts.active.contains(p)
                        }
                })
            };
            let chosen = hosts
                .iter()
                .find(|h| holds(h, false))
                .or_else(|| hosts.iter().find(|h| holds(h, true)));
            if let Some(host) = chosen {
                plan.entry(host.url.clone()).or_default().push(*p);
            }
        }
        plan
    }

    /// A server's own rows of the pull query `body`, and which partitions they are from.
    async fn ask(&self, url: &str, body: &Value) -> Result<(BTreeSet<i32>, Rows), String> {
        let mut request = self.client.post(format!("{url}/query")).json(body);
        if let Some(credentials) = super::auth::forwarded() {
            request = request.header(reqwest::header::AUTHORIZATION, credentials);
        }
        let response = request
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| e.to_string())?;
        let text = response.text().await.map_err(|e| e.to_string())?;
        let elements: Vec<Value> = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let mut served = BTreeSet::new();
        let mut rows = Vec::new();
        for element in &elements {
            if let Some(partitions) = element.get(SERVED) {
                served.extend(partition_set(partitions));
            }
            if let Some(row) = element.get("row")
                && let Some(columns) = row["columns"].as_array()
            {
                rows.push((columns.clone(), row["tombstone"].as_bool().unwrap_or(false)));
            }
        }
        Ok((served, rows))
    }
}
