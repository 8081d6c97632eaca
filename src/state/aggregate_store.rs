//! [`AggregateStore`]: accumulators per group, with windows ordered by when they close.
//!
//! A group is a key (the GROUP BY values, encoded as Arrow row bytes) and, for windowed
//! aggregations, a window. Each group owns one DataFusion [`Accumulator`] per aggregate call,
//! the latest timestamp that contributed (the result's ROWTIME), and whether a row for it has
//! been emitted (so a later HAVING failure knows to emit a tombstone). It does not evaluate
//! expressions or decide what to emit: [`crate::exec::aggregate`] does.

use std::collections::{BTreeMap, HashMap};

use datafusion_expr::Accumulator;

use crate::exec::window::TimeWindow;

/// Identifies a group: the encoded GROUP BY values and the window (if any).
pub type GroupKey = (Box<[u8]>, Option<TimeWindow>);

/// What the store keeps for one group.
pub struct GroupState {
    /// One accumulator per aggregate call, in call order.
    pub accumulators: Vec<Box<dyn Accumulator>>,
    /// The latest event time that contributed.
    pub max_timestamp: i64,
    /// Whether the group's current row has been emitted (and not deleted since).
    pub emitted: bool,
}

impl std::fmt::Debug for GroupState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupState")
            .field("accumulators", &self.accumulators.len())
            .field("max_timestamp", &self.max_timestamp)
            .field("emitted", &self.emitted)
            .finish()
    }
}

/// Groups and their accumulators for one task.
#[derive(Debug, Default)]
pub struct AggregateStore {
    groups: HashMap<GroupKey, GroupState>,
    /// Windowed groups by window end, so closed windows are found without a scan.
    by_end: BTreeMap<i64, Vec<GroupKey>>,
    /// Windows by key, for session merging.
    windows: HashMap<Box<[u8]>, Vec<TimeWindow>>,
}

impl AggregateStore {
    /// The group's state, created with `new_accumulators` if it is new.
    pub fn get_or_insert_with(
        &mut self,
        key: &GroupKey,
        new_accumulators: impl FnOnce() -> Result<
            Vec<Box<dyn Accumulator>>,
            datafusion_common::DataFusionError,
        >,
    ) -> Result<&mut GroupState, datafusion_common::DataFusionError> {
        if !self.groups.contains_key(key) {
            let state = GroupState {
                accumulators: new_accumulators()?,
                max_timestamp: i64::MIN,
                emitted: false,
            };
            if let Some(window) = key.1 {
                self.by_end.entry(window.end).or_default().push(key.clone());
                self.windows.entry(key.0.clone()).or_default().push(window);
            }
            self.groups.insert(key.clone(), state);
        }
        self.groups
            .get_mut(key)
            .ok_or_else(|| datafusion_common::DataFusionError::Internal("group vanished".into()))
    }

    /// The group's state, if it exists.
    pub fn get_mut(&mut self, key: &GroupKey) -> Option<&mut GroupState> {
        self.groups.get_mut(key)
    }

    /// The windows held for `key`.
    pub fn windows_of(&self, key: &[u8]) -> &[TimeWindow] {
        self.windows.get(key).map_or(&[], Vec::as_slice)
    }

    /// Removes one group.
    pub fn remove(&mut self, key: &GroupKey) -> Option<GroupState> {
        let state = self.groups.remove(key)?;
        if let Some(window) = key.1 {
            self.forget_window(&key.0, window);
        }
        Some(state)
    }

    fn forget_window(&mut self, key: &[u8], window: TimeWindow) {
        if let Some(windows) = self.windows.get_mut(key) {
            windows.retain(|w| *w != window);
            if windows.is_empty() {
                self.windows.remove(key);
            }
        }
    }

    /// Removes and returns every windowed group whose window ends at or before `end`, in
    /// order of window end.
    pub fn remove_ending_by(&mut self, end: i64) -> Vec<(GroupKey, GroupState)> {
        let mut closed = Vec::new();
        while let Some(entry) = self.by_end.first_entry() {
            if *entry.key() > end {
                break;
            }
            for key in entry.remove() {
                if let Some(state) = self.groups.remove(&key) {
                    if let Some(window) = key.1 {
                        self.forget_window(&key.0, window);
                    }
                    closed.push((key, state));
                }
            }
        }
        closed
    }

    /// Number of groups held.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether no groups are held.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}
