//! [`AggregateStore`]: accumulators per group, with windows ordered by when they close.
//!
//! A group is a key (the GROUP BY values, encoded as Arrow row bytes) and, for windowed
//! aggregations, a window. Each group owns one DataFusion [`Accumulator`] per aggregate call,
//! the latest timestamp that contributed (the result's ROWTIME), and whether a row for it has
//! been emitted (so a later HAVING failure knows to emit a tombstone). It does not evaluate
//! expressions or decide what to emit: [`crate::exec::aggregate`] does.
//!
//! For the changelog, the store remembers which groups changed since the last
//! [`AggregateStore::take_changed`], and encodes a group's key ([`encode_key`]) and state
//! ([`encode_state`]: each accumulator's intermediate state as JSON, DataFusion's partial
//! aggregation state) so a restarted task can rebuild it with `merge_batch`.

use std::collections::{BTreeMap, HashMap};

use datafusion_common::{DataFusionError, ScalarValue};
use datafusion_expr::Accumulator;
use serde_json::{Value, json};

use crate::exec::window::TimeWindow;

/// Identifies a group: the encoded GROUP BY values and the window (if any).
pub type GroupKey = (Box<[u8]>, Option<TimeWindow>);

/// A hash map with a fast, non-cryptographic hasher (keys are the engine's own bytes, and
/// SipHash showed up as the largest single cost of aggregations in profiles).
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// What the store keeps for one group.
pub struct GroupState {
    /// One accumulator per aggregate call, in call order.
    pub accumulators: Vec<Box<dyn Accumulator>>,
    /// The latest event time that contributed.
    pub max_timestamp: i64,
    /// Whether the group's current row has been emitted (and not deleted since).
    pub emitted: bool,
    /// Changed since the last checkpoint (and listed in the store's changed groups).
    pub dirty: bool,
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
    groups: FastMap<GroupKey, GroupState>,
    /// Windowed groups by window end, so closed windows are found without a scan.
    by_end: BTreeMap<i64, Vec<GroupKey>>,
    /// Windows by key, for session merging (kept only for session windows).
    windows: FastMap<Box<[u8]>, Vec<TimeWindow>>,
    /// Whether to keep `windows`.
    sessions: bool,
    /// Groups changed (or removed) since the last checkpoint, each listed once while its
    /// state is dirty (a removed group may appear again if it comes back).
    changed: Vec<GroupKey>,
}

impl AggregateStore {
    /// An empty store; `sessions` keeps each key's windows for session merging.
    pub fn new(sessions: bool) -> Self {
        Self {
            sessions,
            ..Self::default()
        }
    }

    fn track(&mut self, key: &GroupKey) {
        if let Some(window) = key.1 {
            self.by_end.entry(window.end).or_default().push(key.clone());
            if self.sessions {
                self.windows.entry(key.0.clone()).or_default().push(window);
            }
        }
    }

    /// The group's state, created with `new_accumulators` if it is new.
    pub fn get_or_insert_with(
        &mut self,
        key: &GroupKey,
        new_accumulators: impl FnOnce() -> Result<Vec<Box<dyn Accumulator>>, DataFusionError>,
    ) -> Result<&mut GroupState, DataFusionError> {
        if !self.groups.contains_key(key) {
            let state = GroupState {
                accumulators: new_accumulators()?,
                max_timestamp: i64::MIN,
                emitted: false,
                dirty: false,
            };
            self.track(key);
            self.groups.insert(key.clone(), state);
        }
        self.get_mut(key)
            .ok_or_else(|| DataFusionError::Internal("group vanished".into()))
    }

    /// The group's state, if it exists (marked changed).
    pub fn get_mut(&mut self, key: &GroupKey) -> Option<&mut GroupState> {
        let state = self.groups.get_mut(key)?;
        if !state.dirty {
            state.dirty = true;
            self.changed.push(key.clone());
        }
        Some(state)
    }

    /// The windows held for `key`.
    pub fn windows_of(&self, key: &[u8]) -> &[TimeWindow] {
        self.windows.get(key).map_or(&[], Vec::as_slice)
    }

    /// Removes one group.
    pub fn remove(&mut self, key: &GroupKey) -> Option<GroupState> {
        let state = self.groups.remove(key)?;
        self.changed.push(key.clone());
        if let Some(window) = key.1 {
            self.forget_window(&key.0, window);
        }
        Some(state)
    }

    fn forget_window(&mut self, key: &[u8], window: TimeWindow) {
        if !self.sessions {
            return;
        }
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
                    self.changed.push(key.clone());
                    if let Some(window) = key.1 {
                        self.forget_window(&key.0, window);
                    }
                    closed.push((key, state));
                }
            }
        }
        closed
    }

    /// Calls `f` with each group changed since the last call and its state (`None`:
    /// removed), and marks them clean.
    pub fn drain_changed<E>(
        &mut self,
        mut f: impl FnMut(&GroupKey, Option<&mut GroupState>) -> Result<(), E>,
    ) -> Result<(), E> {
        for key in std::mem::take(&mut self.changed) {
            let state = self.groups.get_mut(&key);
            match state {
                Some(state) if !state.dirty => {} // listed twice: written already
                Some(state) => {
                    state.dirty = false;
                    f(&key, Some(state))?;
                }
                None => f(&key, None)?,
            }
        }
        Ok(())
    }

    /// Puts back a group read from the changelog (`None`: the group was removed).
    pub fn restore(&mut self, key: GroupKey, state: Option<GroupState>) {
        match state {
            Some(state) => {
                if !self.groups.contains_key(&key) {
                    self.track(&key);
                }
                self.groups.insert(key, state);
            }
            None => {
                self.remove(&key);
                self.changed.retain(|k| *k != key);
            }
        }
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

/// A group key as bytes: a window flag, the window's start and end, then the key.
pub fn encode_key(key: &GroupKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(17 + key.0.len());
    match key.1 {
        Some(w) => {
            out.push(1);
            out.extend_from_slice(&w.start.to_be_bytes());
            out.extend_from_slice(&w.end.to_be_bytes());
        }
        None => {
            out.push(0);
            out.extend_from_slice(&[0; 16]);
        }
    }
    out.extend_from_slice(&key.0);
    out
}

/// The group key [`encode_key`] wrote.
pub fn decode_key(bytes: &[u8]) -> Option<GroupKey> {
    let (head, key) = (bytes.get(..17)?, bytes.get(17..)?);
    let long = |b: &[u8]| i64::from_be_bytes(b.try_into().unwrap_or([0; 8]));
    let window = (head[0] == 1).then(|| TimeWindow {
        start: long(&head[1..9]),
        end: long(&head[9..17]),
    });
    Some((key.into(), window))
}

/// A group's state as JSON: its timestamp, whether it was emitted, and each accumulator's
/// intermediate state.
pub fn encode_state(state: &mut GroupState) -> Result<Vec<u8>, DataFusionError> {
    let mut states = Vec::new();
    for acc in &mut state.accumulators {
        let values: Vec<Value> = acc
            .state()?
            .iter()
            .map(|v| match v {
                // Doubles exactly (JSON output of records rounds them as ksqlDB prints them).
                ScalarValue::Float64(Some(x)) => Value::String(format!("{x:?}")),
                other => crate::format::json::from_scalar(other),
            })
            .collect();
        states.push(Value::Array(values));
    }
    Ok(
        json!({"ts": state.max_timestamp, "emitted": state.emitted, "states": states})
            .to_string()
            .into_bytes(),
    )
}

/// Rebuilds a group's state from [`encode_state`]'s bytes into fresh `accumulators`.
pub fn decode_state(
    bytes: &[u8],
    mut accumulators: Vec<Box<dyn Accumulator>>,
) -> Result<GroupState, DataFusionError> {
    let bad = |why: String| DataFusionError::Internal(format!("changelog entry: {why}"));
    let value: Value = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    let states = value["states"].as_array().cloned().unwrap_or_default();
    for (acc, saved) in accumulators.iter_mut().zip(states) {
        // A fresh accumulator's state gives the types of the saved values.
        let types: Vec<arrow::datatypes::DataType> =
            acc.state()?.iter().map(ScalarValue::data_type).collect();
        let saved = saved.as_array().cloned().unwrap_or_default();
        let arrays = types
            .iter()
            .zip(&saved)
            .map(|(t, v)| {
                // Intermediate states use types records never hold (e.g. AVG's UInt64 count):
                // those are read back through a cast from their text.
                let scalar = match (crate::format::json::to_scalar(v, t), v) {
                    (Ok(s), _) => s,
                    (Err(_), Value::Number(n)) => ScalarValue::try_from_string(n.to_string(), t)?,
                    (Err(_), Value::String(s)) => ScalarValue::try_from_string(s.clone(), t)?,
                    (Err(e), _) => return Err(bad(e)),
                };
                scalar.to_array()
            })
            .collect::<Result<Vec<_>, DataFusionError>>()?;
        acc.merge_batch(&arrays)?;
    }
    Ok(GroupState {
        accumulators,
        max_timestamp: value["ts"].as_i64().unwrap_or(i64::MIN),
        emitted: value["emitted"].as_bool().unwrap_or(false),
        dirty: false,
    })
}
