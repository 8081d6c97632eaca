//! Who runs which task, and standby replicas (`num.standby.replicas`): warm copies of the
//! state of tasks other servers run, so a task that moves here resumes without reading its
//! whole changelog.
//!
//! [`Ownership`] is this server's record of its tasks: every [`super::lifecycle::TaskManager`]
//! notes the lead partitions it is assigned and gives up, and each query with standbys
//! registers its [`Standby`]. The cluster's heartbeats carry it (so every server knows who
//! owns each partition: `/clusterStatus`, pull queries), and once a second
//! [`Ownership::place_standbys`] decides from them which partitions this server keeps warm:
//! the owner of partition `p` of a query comes first in the list of live servers running
//! the query (sorted by instance id, cyclically), and the `n` servers after it keep standbys
//! of `p`. Every server computes the same placement from the same heartbeats.
//!
//! A [`Standby`] tails changelog partition `p` (and the table sink's partition `p`, for a
//! table's store) with `read_committed`, keeping each key's last committed entry, as a
//! restore would build it. When the group gives this server partition `p`, the manager
//! [`Standby::take`]s the warm copy and reads only what was committed after it. The group's
//! assignor (librdkafka's cooperative-sticky) does not know about standbys, so a moved
//! partition lands on a standby's server only when the assignor picks that server (always
//! with two servers and one standby, or with a standby on every other server); elsewhere it
//! is restored in full, as without standbys. Either way the state is exact: the copy is the
//! committed changelog, and the rest is read before the task runs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::{KafkaConfig, KafkaError, changelog};
use crate::exec::StateEntry;
use crate::record::Record;
use crate::state::table_store::TableStore;

/// How often a standby asks the broker how far its copies are behind.
const END_REFRESH: Duration = Duration::from_secs(2);

/// The partitions of one query a server runs and keeps standbys of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parts {
    /// The query's lead topic (its partition `p` is task `p`).
    pub topic: String,
    /// Lead partitions whose tasks run here.
    pub active: BTreeSet<i32>,
    /// Lead partitions whose state is kept warm here.
    pub standby: BTreeSet<i32>,
    /// How far each standby copy is: (its position, the end offset) of the topic it copies
    /// (the table's sink, else the changelog), where the end is known.
    pub lags: BTreeMap<i32, (i64, i64)>,
}

/// A query registered with [`Ownership`].
#[derive(Debug)]
struct Owned {
    parts: Parts,
    /// The query's task count.
    tasks: i32,
    /// `num.standby.replicas`.
    replicas: usize,
    standby: Option<Arc<Standby>>,
    /// It keeps a table store whose partition `p` task `p` holds (pull queries are routed
    /// to the partitions' owners).
    partitioned_store: bool,
}

/// This server's tasks and standbys, per query.
#[derive(Debug, Default)]
pub struct Ownership {
    queries: Mutex<BTreeMap<String, Owned>>,
}

impl Ownership {
    fn queries(&self) -> MutexGuard<'_, BTreeMap<String, Owned>> {
        self.queries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Query `id` runs here: `tasks` tasks over `topic`, `replicas` standbys of each; its
    /// table store (if `partitioned_store`) is split by partition like its tasks.
    pub fn register(
        &self,
        id: &str,
        (topic, tasks, partitioned_store): (&str, i32, bool),
        replicas: usize,
        standby: Option<Arc<Standby>>,
    ) {
        let parts = Parts {
            topic: topic.to_string(),
            ..Parts::default()
        };
        self.queries().insert(
            id.to_string(),
            Owned {
                parts,
                tasks,
                replicas,
                standby,
                partitioned_store,
            },
        );
    }

    /// Which partitions of query `id`'s table store are here, if it has one split by
    /// partition.
    pub fn store_share(&self, id: &str) -> Option<crate::engine::StoreShare> {
        let queries = self.queries();
        let owned = queries.get(id).filter(|o| o.partitioned_store)?;
        Some(crate::engine::StoreShare {
            tasks: owned.tasks,
            active: owned.parts.active.clone(),
            standby: owned.parts.standby.clone(),
        })
    }

    /// The rows the standby copies of query `id` hold of its store's `partitions`, and
    /// which of them are copied here.
    pub fn standby_rows(
        &self,
        id: &str,
        partitions: &BTreeSet<i32>,
    ) -> (BTreeSet<i32>, Vec<Record>) {
        let standby = self.queries().get(id).and_then(|o| o.standby.clone());
        standby.map_or_else(Default::default, |s| s.rows(partitions))
    }

    /// Query `id` stopped here.
    pub fn unregister(&self, id: &str) {
        if let Some(owned) = self.queries().remove(id)
            && let Some(standby) = owned.standby
        {
            standby.stop();
        }
    }

    /// Lead partitions `partitions` of query `id` now run here (`true`) or no longer do.
    pub fn set_active(&self, id: &str, partitions: &[i32], active: bool) {
        if let Some(owned) = self.queries().get_mut(id) {
            for p in partitions {
                if active {
                    owned.parts.active.insert(*p);
                } else {
                    owned.parts.active.remove(p);
                }
            }
        }
    }

    /// Every registered query's partitions here.
    pub fn snapshot(&self) -> BTreeMap<String, Parts> {
        self.queries()
            .iter()
            .map(|(id, owned)| {
                let mut parts = owned.parts.clone();
                if let Some(standby) = &owned.standby {
                    parts.lags = standby.lags();
                }
                (id.clone(), parts)
            })
            .collect()
    }

    /// Decides which partitions this server (`me`) keeps standbys of, from what every live
    /// server (this one included) says it runs, and has the standbys follow.
    pub fn place_standbys(&self, me: &str, live: &BTreeMap<String, BTreeMap<String, Parts>>) {
        let mut queries = self.queries();
        for (id, owned) in queries.iter_mut() {
            let Some(standby) = &owned.standby else {
                continue;
            };
            let mut running: Vec<&str> = live
                .iter()
                .filter(|(_, parts)| parts.contains_key(id))
                .map(|(host, _)| host.as_str())
                .collect();
            if !running.contains(&me) {
                running.push(me);
                running.sort_unstable();
            }
            let owner_of = |p: i32| {
                if owned.parts.active.contains(&p) {
                    return Some(me);
                }
                live.iter()
                    .find(|(host, parts)| {
                        host.as_str() != me && parts.get(id).is_some_and(|q| q.active.contains(&p))
                    })
                    .map(|(host, _)| host.as_str())
            };
            let mut keep = BTreeSet::new();
            for p in 0..owned.tasks {
                let kept = match owner_of(p) {
                    Some(owner) => {
                        owner != me && standbys_of(&running, owner, owned.replicas).contains(&me)
                    }
                    // Moving: a copy is kept until its new owner is known.
                    None => owned.parts.standby.contains(&p),
                };
                if kept {
                    keep.insert(p);
                }
            }
            if keep != owned.parts.standby {
                tracing::info!(query = %id, standbys = ?keep, "standby replicas placed");
                standby.keep(&keep);
                owned.parts.standby = keep;
            }
        }
    }
}

/// The `replicas` servers after `owner` in `running` (sorted, taken cyclically).
fn standbys_of<'a>(running: &[&'a str], owner: &str, replicas: usize) -> Vec<&'a str> {
    let Some(at) = running.iter().position(|h| *h == owner) else {
        return Vec::new();
    };
    (1..running.len())
        .take(replicas)
        .map(|i| running[(at + i) % running.len()])
        .collect()
}

/// A task's warm state, as a standby kept it.
#[derive(Debug, Default)]
pub struct Warm {
    /// Each key's last committed changelog entry.
    pub entries: Vec<StateEntry>,
    /// The changelog offset after the last one read.
    pub changelog_next: i64,
    /// The table sink partition's rows (for the table's store).
    pub sink_rows: Vec<Record>,
    /// The sink offset after the last one read.
    pub sink_next: i64,
}

/// One partition's copy.
#[derive(Debug, Default)]
struct Replica {
    entries: HashMap<Vec<u8>, Option<Vec<u8>>>,
    changelog_next: Option<i64>,
    sink_next: Option<i64>,
}

/// The standby replicas of one query on this server.
pub struct Standby {
    changelog: Option<String>,
    sink: Option<String>,
    /// The copies of the sink's partitions (a standby's share of the table's store).
    store: TableStore,
    consumer: BaseConsumer,
    replicas: Mutex<BTreeMap<i32, Replica>>,
    /// Asks the broker for end offsets (a client of its own: the tailing consumer is not
    /// held up).
    offsets: BaseConsumer,
    /// (position, end offset) of the copied partitions of [`Self::lag_topic`], as last asked.
    lags: Mutex<BTreeMap<i32, (i64, i64)>>,
    stopped: AtomicBool,
}

impl std::fmt::Debug for Standby {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Standby")
            .field("changelog", &self.changelog)
            .field("sink", &self.sink)
            .finish_non_exhaustive()
    }
}

impl Standby {
    /// Standbys of a query whose state is `changelog` and whose table store is built from
    /// `sink`; a thread tails what they copy until [`Self::stop`].
    pub fn start(
        config: &KafkaConfig,
        changelog: Option<String>,
        sink: Option<String>,
    ) -> Result<Arc<Self>, KafkaError> {
        let consumer: BaseConsumer = config
            .reader("standby")
            .set("isolation.level", "read_committed")
            .create()?;
        let offsets: BaseConsumer = config.reader("standby-lag").create()?;
        let standby = Arc::new(Self {
            changelog,
            sink,
            store: TableStore::default(),
            consumer,
            offsets,
            replicas: Mutex::default(),
            lags: Mutex::default(),
            stopped: AtomicBool::new(false),
        });
        let (tailing, measuring) = (Arc::downgrade(&standby), Arc::downgrade(&standby));
        let spawn = |name: &str, run: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(run)
                .map_err(|e| KafkaError::Unavailable(format!("cannot start a standby: {e}")))
        };
        spawn("standby", Box::new(move || tail(&tailing)))?;
        spawn("standby-lag", Box::new(move || measure_lags(&measuring)))?;
        Ok(standby)
    }

    fn replicas(&self) -> MutexGuard<'_, BTreeMap<i32, Replica>> {
        self.replicas.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps copies of exactly `partitions` (new ones are read from their beginning).
    pub fn keep(&self, partitions: &BTreeSet<i32>) {
        let mut replicas = self.replicas();
        replicas.retain(|p, _| partitions.contains(p));
        for p in partitions {
            replicas.entry(*p).or_default();
        }
        self.store.retain_partitions(|p| replicas.contains_key(&p));
        self.reassign(&replicas);
    }

    /// The warm copy of partition `partition`, if this server kept one; it is no longer kept.
    pub fn take(&self, partition: i32) -> Option<Warm> {
        let mut replicas = self.replicas();
        let replica = replicas.remove(&partition)?;
        self.reassign(&replicas);
        let sink_rows = self.store.take_partition(partition);
        let replica_read = replica.changelog_next.is_some() || replica.sink_next.is_some();
        replica_read.then(|| Warm {
            entries: replica.entries.into_iter().collect(),
            changelog_next: replica.changelog_next.unwrap_or(0),
            sink_rows,
            sink_next: replica.sink_next.unwrap_or(0),
        })
    }

    /// The rows copied of the store's `partitions`, and which of them are copied here.
    pub fn rows(&self, partitions: &BTreeSet<i32>) -> (BTreeSet<i32>, Vec<Record>) {
        if self.sink.is_none() {
            return Default::default();
        }
        // Records are applied holding the replicas, so the copies and the rows agree.
        let replicas = self.replicas();
        let copied: BTreeSet<i32> = partitions
            .iter()
            .filter(|p| replicas.contains_key(p))
            .copied()
            .collect();
        let rows = self.store.snapshot_of(&copied);
        (copied, rows)
    }

    /// The topic whose position says how far a copy is: the sink if it copies one, else
    /// the changelog.
    fn lag_topic(&self) -> Option<&str> {
        self.sink.as_deref().or(self.changelog.as_deref())
    }

    /// Each copy's (position, end offset) in [`Self::lag_topic`], as the lag thread last
    /// asked (every [`END_REFRESH`]).
    pub fn lags(&self) -> BTreeMap<i32, (i64, i64)> {
        let lags = self
            .lags
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let replicas = self.replicas();
        lags.into_iter()
            .filter(|(p, _)| replicas.contains_key(p))
            .collect()
    }

    /// Asks the broker for the end offsets of the copied partitions, and notes how far the
    /// consumer is in each (its position, past transaction markers).
    fn refresh_lags(&self) {
        let Some(topic) = self.lag_topic() else {
            return;
        };
        let positions: HashMap<i32, i64> = self
            .consumer
            .position()
            .map(|tpl| {
                tpl.elements_for_topic(topic)
                    .iter()
                    .filter_map(|e| Some((e.partition(), e.offset().to_raw()?)))
                    .filter(|(_, at)| *at >= 0)
                    .collect()
            })
            .unwrap_or_default();
        let partitions: Vec<i32> = self.replicas().keys().copied().collect();
        let lags: BTreeMap<i32, (i64, i64)> = partitions
            .into_iter()
            .filter_map(|p| {
                let (start, end) = self
                    .offsets
                    .fetch_watermarks(topic, p, Duration::from_secs(1))
                    .ok()?;
                // A copy that fetched nothing yet is at the partition's start.
                let at = positions.get(&p).copied().unwrap_or(start);
                Some((p, (at.min(end), end)))
            })
            .collect();
        *self.lags.lock().unwrap_or_else(PoisonError::into_inner) = lags;
    }

    /// Stops tailing.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    /// Has the consumer read the copied partitions, each from where its copy is: partitions
    /// no longer copied are unassigned and new ones assigned, those kept are left as they
    /// are (assigning them again at once made librdkafka stop fetching some of them).
    fn reassign(&self, replicas: &BTreeMap<i32, Replica>) {
        let changelog_next: fn(&Replica) -> Option<i64> = |r| r.changelog_next;
        let sink_next: fn(&Replica) -> Option<i64> = |r| r.sink_next;
        let topics = [(&self.changelog, changelog_next), (&self.sink, sink_next)];
        let assigned: BTreeSet<(String, i32)> = self
            .consumer
            .assignment()
            .map(|tpl| {
                tpl.elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition()))
                    .collect()
            })
            .unwrap_or_default();
        let (mut gone, mut new) = (TopicPartitionList::new(), TopicPartitionList::new());
        for (topic, p) in &assigned {
            if !replicas.contains_key(p) {
                gone.add_partition(topic, *p);
            }
        }
        for (p, replica) in replicas {
            for (topic, next) in &topics {
                let Some(topic) = topic else { continue };
                if !assigned.contains(&(topic.to_string(), *p)) {
                    let at = next(replica).map_or(Offset::Beginning, Offset::Offset);
                    let _ = new.add_partition_offset(topic, *p, at);
                }
            }
        }
        let unassigned = match gone.count() {
            0 => Ok(()),
            _ => self.consumer.incremental_unassign(&gone),
        };
        let assigned = match new.count() {
            0 => Ok(()),
            _ => self.consumer.incremental_assign(&new),
        };
        if let Err(e) = unassigned.and(assigned) {
            tracing::warn!("standby replicas: {e}");
        }
    }

    /// Applies one record the consumer read.
    fn apply(&self, message: &rdkafka::message::BorrowedMessage<'_>) {
        let p = message.partition();
        let mut replicas = self.replicas();
        let Some(replica) = replicas.get_mut(&p) else {
            return;
        };
        if self.changelog.as_deref() == Some(message.topic()) {
            replica.changelog_next = Some(message.offset() + 1);
            let key = message.key().unwrap_or_default();
            if key != changelog::MARKER {
                replica
                    .entries
                    .insert(key.to_vec(), message.payload().map(<[u8]>::to_vec));
            }
        } else {
            replica.sink_next = Some(message.offset() + 1);
            self.store
                .apply(std::slice::from_ref(&super::runtime::record_of(message)));
        }
    }
}

/// The standby's thread: applies what its consumer reads, until the standby is stopped or
/// dropped.
fn tail(standby: &Weak<Standby>) {
    loop {
        let Some(standby) = standby.upgrade() else {
            return;
        };
        if standby.stopped.load(Ordering::Relaxed) {
            return;
        }
        match standby.consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => standby.apply(&m),
            Some(Err(e)) => tracing::debug!("standby replicas: {e}"),
            None => {}
        }
    }
}

/// The standby's second thread: notes how far its copies are every [`END_REFRESH`], until
/// the standby is stopped or dropped.
fn measure_lags(standby: &Weak<Standby>) {
    loop {
        match standby.upgrade() {
            Some(s) if !s.stopped.load(Ordering::Relaxed) => s.refresh_lags(),
            _ => return,
        }
        std::thread::park_timeout(END_REFRESH);
    }
}

#[cfg(test)]
mod tests {
    use super::standbys_of;

    #[test]
    fn standbys_follow_the_owner_cyclically() {
        let running = ["a", "b", "c"];
        assert_eq!(standbys_of(&running, "a", 1), ["b"]);
        assert_eq!(standbys_of(&running, "c", 1), ["a"]);
        assert_eq!(standbys_of(&running, "b", 2), ["c", "a"]);
        // More replicas than other servers: every other server.
        assert_eq!(standbys_of(&running, "b", 5), ["c", "a"]);
        assert!(standbys_of(&running, "x", 1).is_empty());
        assert!(standbys_of(&["a"], "a", 1).is_empty());
    }
}
