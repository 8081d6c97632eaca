//! [`TableStore`]: a table's latest record per key (and window), for pull queries.
//!
//! The query that writes a table keeps this store beside its sink topic: every record it
//! produces replaces the record of its key (key bytes include the window, so each window of
//! a windowed table is its own entry), and a tombstone removes it. It is exactly what the
//! compacted sink topic holds, so a pull query decodes a snapshot of it with the table's
//! own decoder and runs its filter and projection over the rows, as a push query would over
//! the topic. The store is in memory and shared by the query's tasks (keys never meet across
//! partitions). A task restored on a server reads its sink partition into the store and
//! forgets it when the partition moves away ([`crate::kafka::lifecycle`]).

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::record::Record;

/// The latest record of each key of a table.
#[derive(Debug, Default)]
pub struct TableStore {
    rows: Mutex<BTreeMap<(i32, Vec<u8>), Record>>,
}

impl TableStore {
    fn rows(&self) -> std::sync::MutexGuard<'_, BTreeMap<(i32, Vec<u8>), Record>> {
        self.rows.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies records written to the table's topic, in order.
    pub fn apply(&self, records: &[Record]) {
        let mut rows = self.rows();
        for record in records {
            let key = (
                record.partition.unwrap_or(0),
                record.key.clone().unwrap_or_default(),
            );
            if record.value.is_some() {
                rows.insert(key, record.clone());
            } else {
                rows.remove(&key);
            }
        }
    }

    /// Forgets the records of sink partition `partition` (its task moved to another server).
    pub fn remove_partition(&self, partition: i32) {
        self.retain_partitions(|p| p != partition);
    }

    /// Takes the records of sink partition `partition` out of the store.
    pub fn take_partition(&self, partition: i32) -> Vec<Record> {
        let mut rows = self.rows();
        let taken: Vec<(i32, Vec<u8>)> = rows
            .keys()
            .filter(|(p, _)| *p == partition)
            .cloned()
            .collect();
        taken.iter().filter_map(|k| rows.remove(k)).collect()
    }

    /// Keeps only the partitions `keep` says.
    pub fn retain_partitions(&self, keep: impl Fn(i32) -> bool) {
        self.rows().retain(|(p, _), _| keep(*p));
    }

    /// Every live record, by partition then key bytes (the order a scan of Kafka Streams'
    /// stores gives).
    pub fn snapshot(&self) -> Vec<Record> {
        self.rows().values().cloned().collect()
    }

    /// How many keys the table holds.
    pub fn len(&self) -> usize {
        self.rows().len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
