//! [`Cluster`]: the servers of one service id, as each sees the others.
//!
//! Every server heartbeats once a second to the compacted topic `_eddy-<service-id>-cluster`
//! (key: its instance id; value: its advertised URL, `--advertised-listener`, the time, and
//! the partitions of each query it runs and keeps standbys of) and tails it, so each knows
//! every host, whether it is alive (a heartbeat within [`ALIVE_WITHIN`]) and who owns each
//! task; a server that stops cleanly writes a tombstone. From the live hosts' heartbeats
//! each server places its standby replicas ([`crate::kafka::standby`]). A table's pull query
//! sent to any server is answered from every live server's share of the table: the server
//! asks each peer for its local rows ([`peer_rows`], marked with the request property
//! [`LOCAL_ONLY`]) and merges them with its own. A key lookup is the same merge: only the
//! owner of the key's partition has its row. `/clusterStatus` lists the hosts.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};

use super::error::{RestError, code};
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
                let value =
                    json!({"topic": parts.topic, "active": parts.active, "standby": parts.standby});
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

    /// The URLs of the other servers that are alive.
    pub fn live_peers(&self) -> Vec<String> {
        self.hosts()
            .into_iter()
            .filter(|(id, host)| *id != self.me && host.alive() && host.url != self.url)
            .map(|(_, host)| host.url)
            .collect()
    }

    /// This server's instance id.
    pub fn me(&self) -> &str {
        &self.me
    }
}

/// The partitions of each query a heartbeat lists.
fn parts_of(queries: &Value) -> BTreeMap<String, Parts> {
    let partitions = |v: &Value| -> std::collections::BTreeSet<i32> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_i64())
                    .map(|p| p as i32)
                    .collect()
            })
            .unwrap_or_default()
    };
    queries
        .as_object()
        .map(|queries| {
            queries
                .iter()
                .map(|(id, q)| {
                    let parts = Parts {
                        topic: q["topic"].as_str().unwrap_or_default().to_string(),
                        active: partitions(&q["active"]),
                        standby: partitions(&q["standby"]),
                    };
                    (id.clone(), parts)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Each live peer's own rows of pull query `request` (a `/query` body), as (columns,
/// tombstone); a peer that cannot answer fails the query, rather than answering with part
/// of the table.
pub async fn peer_rows(
    cluster: &Cluster,
    request: &Value,
) -> Result<Vec<(Vec<Value>, bool)>, RestError> {
    let mut body = request.clone();
    body["requestProperties"] = json!({ LOCAL_ONLY: true });
    let asks = cluster.live_peers().into_iter().map(|url| {
        let body = body.clone();
        async move {
            let response = cluster
                .client
                .post(format!("{url}/query"))
                .json(&body)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status);
            let text = match response {
                Ok(r) => r.text().await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            text.map_err(|e| (url, e))
        }
    });
    let mut rows = Vec::new();
    for answer in futures_util::future::join_all(asks).await {
        let text = answer.map_err(|(url, e)| {
            RestError::generic(
                code::SERVICE_UNAVAILABLE,
                format!("The server at {url} holding part of the table did not answer: {e}"),
            )
        })?;
        let elements: Vec<Value> = serde_json::from_str(&text).unwrap_or_default();
        rows.extend(elements.iter().filter_map(|e| {
            let row = e.get("row")?;
            let columns = row["columns"].as_array()?.clone();
            Some((columns, row["tombstone"].as_bool().unwrap_or(false)))
        }));
    }
    Ok(rows)
}
