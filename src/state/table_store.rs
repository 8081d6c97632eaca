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

    /// The live records of `partitions`, by partition then key bytes.
    pub fn snapshot_of(&self, partitions: &std::collections::BTreeSet<i32>) -> Vec<Record> {
        let rows = self.rows();
        partitions
            .iter()
            .flat_map(|p| rows.range((*p, Vec::new())..(p + 1, Vec::new())))
            .map(|(_, r)| r.clone())
            .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(partition: i32, key: &str, value: Option<&str>) -> Record {
        Record {
            topic: "t".into(),
            partition: Some(partition),
            offset: 0,
            key: Some(key.as_bytes().to_vec()),
            value: value.map(|v| v.as_bytes().to_vec()),
            timestamp: 0,
            headers: Vec::new(),
        }
    }

    #[test]
    fn a_snapshot_of_partitions_holds_only_theirs() {
        let store = TableStore::default();
        store.apply(&[
            record(0, "a", Some("1")),
            record(1, "b", Some("2")),
            record(2, "c", Some("3")),
            record(2, "d", Some("4")),
            record(2, "d", None),
        ]);
        let keys = |records: Vec<Record>| -> Vec<Vec<u8>> {
            records.into_iter().filter_map(|r| r.key).collect()
        };
        let of = |ps: &[i32]| keys(store.snapshot_of(&ps.iter().copied().collect()));
        assert_eq!(of(&[0, 2]), vec![b"a".to_vec(), b"c".to_vec()]);
        assert_eq!(of(&[1]), vec![b"b".to_vec()]);
        assert!(of(&[3]).is_empty());
        assert_eq!(keys(store.snapshot()).len(), 3);
    }
}
