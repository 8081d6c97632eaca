//! [`JoinOp`]: joins two inputs on a key, with Kafka Streams' semantics.
//!
//! Both inputs arrive in the *side layout* the planner builds: column 0 is the join key, the
//! last column is `ROWTIME`, and the columns between are the side's payload (its columns,
//! already prefixed with the source alias). The operator keeps per-side state and emits
//! joined rows in the output layout: the join key, the left payload, the right payload,
//! `ROWTIME`. Four kinds, as [`JoinType`] says:
//!
//! - stream-stream: both sides buffered per key and timestamp for the join window; results
//!   carry the later timestamp. With a grace period, LEFT/FULL rows that found no partner are
//!   held until the window closes (Kafka Streams' spurious-result fix); without one they are
//!   emitted at once, as ksqlDB's legacy joins do.
//! - stream-table: the table side is the latest row per key; stream rows look it up.
//! - table-table on the primary key: both sides are tables; each change re-joins its key and
//!   emits an upsert or a tombstone.
//! - foreign key: the left table's key is its own primary key; its join-key column points at
//!   the right table's key; a right change re-joins every left row that points at it.
//!
//! State lives in memory per task, rows as `ScalarValue`s (joins look rows up one at a
//! time). Every change is remembered until the next checkpoint ([`JoinOp::checkpoint`]),
//! which writes the changed entries (buffered stream rows per key and timestamp, rows
//! waiting for a partner, table rows, foreign-key left rows) in Arrow's row format
//! ([`RowCodec`]); [`JoinOp::restore`] reads them back.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use datafusion_common::ScalarValue;

use super::window::DEFAULT_GRACE_MS;
use super::{Batch, EntryRef, ExecError, StateEntry};
use crate::sql::ast::JoinKind;
use crate::state::row_codec::RowCodec;

/// Which input a batch comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The left input (the `FROM` source or the previous join).
    Left,
    /// The right input (the `JOIN` source).
    Right,
}

/// How the two inputs are joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinType {
    /// Two streams within a window.
    StreamStream {
        /// How far the right side may precede the left (ms).
        before: i64,
        /// How far the right side may follow the left (ms).
        after: i64,
        /// `GRACE PERIOD` (ms), when the statement gives one.
        grace: Option<i64>,
    },
    /// A stream looking up a table by its key.
    StreamTable,
    /// Two tables on their primary keys.
    TableTable,
    /// A table's column against another table's primary key.
    ForeignKey,
    /// A foreign-key join over several partitions, on the left table's task: left rows
    /// against the responses the right table's tasks sent back ([`ResponseColumns`]).
    ForeignKeyResponse,
}

/// Where a foreign-key response row (the right side of [`JoinType::ForeignKeyResponse`])
/// holds what the left task checks: its payload is the right row's payload, then these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseColumns {
    /// The left row's own key columns, in the response payload.
    pub own: Vec<usize>,
    /// The version (the left row's offset) the response answers, in the response payload.
    pub version: usize,
    /// The left row's version, in the left payload.
    pub left_version: usize,
    /// A column of the right row that is never NULL when there is one (its key).
    pub found: usize,
}

/// A planned join.
#[derive(Debug)]
pub struct JoinSpec {
    /// INNER, LEFT, RIGHT or FULL.
    pub kind: JoinKind,
    /// Stream-stream, stream-table, table-table or foreign key.
    pub join_type: JoinType,
    /// Schema of left batches (side layout).
    pub left: SchemaRef,
    /// Schema of right batches (side layout).
    pub right: SchemaRef,
    /// Schema of the joined rows: key, left payload, right payload, `ROWTIME`.
    pub output: SchemaRef,
    /// Foreign-key joins: the columns of the left payload that hold the left table's key.
    pub left_key_columns: Vec<usize>,
    /// [`JoinType::ForeignKeyResponse`]: the response's columns.
    pub response: Option<ResponseColumns>,
}

/// One side's row: its timestamp and payload.
type Row = (i64, Vec<ScalarValue>);

/// A joined result before it becomes a batch.
struct Joined {
    key: ScalarValue,
    left: Option<Vec<ScalarValue>>,
    right: Option<Vec<ScalarValue>>,
    timestamp: i64,
    tombstone: bool,
}

/// Buffered stream rows of one side: key → timestamp → rows.
#[derive(Debug, Default)]
struct WindowStore {
    rows: HashMap<ScalarValue, BTreeMap<i64, Vec<Vec<ScalarValue>>>>,
    /// The keys with rows at each timestamp, so expiry touches only what expires.
    times: BTreeMap<i64, Vec<ScalarValue>>,
    observed: i64,
}

impl WindowStore {
    /// Stores a row unless it is older than the retention allows; whether it stored it.
    fn put(&mut self, key: ScalarValue, ts: i64, row: Vec<ScalarValue>, retention: i64) -> bool {
        self.observed = self.observed.max(ts);
        if ts <= self.observed - retention {
            return false;
        }
        let at = self
            .rows
            .entry(key.clone())
            .or_default()
            .entry(ts)
            .or_default();
        if at.is_empty() {
            self.times.entry(ts).or_default().push(key);
        }
        at.push(row);
        true
    }

    /// Puts back the rows of `key` at `ts` (restore).
    fn insert(&mut self, key: ScalarValue, ts: i64, rows: Vec<Vec<ScalarValue>>) {
        if self
            .rows
            .entry(key.clone())
            .or_default()
            .insert(ts, rows)
            .is_none()
        {
            self.times.entry(ts).or_default().push(key);
        }
    }

    /// Rows of `key` with timestamps in `[from, to]` still within retention.
    fn fetch(&self, key: &ScalarValue, from: i64, to: i64, retention: i64) -> Vec<Row> {
        let from = from.max(self.observed - retention + 1);
        if from > to {
            return Vec::new();
        }
        self.rows
            .get(key)
            .map(|by_ts| {
                by_ts
                    .range(from..=to)
                    .flat_map(|(ts, rows)| rows.iter().map(|r| (*ts, r.clone())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Drops rows past retention; the (key, timestamp) entries dropped.
    fn expire(&mut self, retention: i64) -> Vec<(ScalarValue, i64)> {
        let horizon = self.observed - retention;
        let mut expired = Vec::new();
        while let Some(entry) = self.times.first_entry() {
            if *entry.key() > horizon {
                break;
            }
            let (ts, keys) = entry.remove_entry();
            for key in keys {
                let Some(by_ts) = self.rows.get_mut(&key) else {
                    continue;
                };
                if by_ts.remove(&ts).is_some() {
                    expired.push((key.clone(), ts));
                }
                if by_ts.is_empty() {
                    self.rows.remove(&key);
                }
            }
        }
        expired
    }
}

/// A state entry changed since the last checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Dirty {
    /// Side, key and timestamp of buffered stream rows.
    Window(u8, ScalarValue, i64),
    /// A row waiting for a partner.
    Unmatched((i64, u8, u64)),
    /// Side and key of a table row.
    Table(u8, ScalarValue),
    /// A foreign-key join's left row, by its own key.
    FkLeft(Vec<ScalarValue>),
    /// Whether a left row (by its own key) is new and unanswered.
    FkFresh(Vec<ScalarValue>),
    /// A response that arrived before its left row's version.
    FkPending(Vec<ScalarValue>),
}

/// The state of a running join.
#[derive(Debug, Default)]
struct State {
    /// Stream-stream: buffered rows per side.
    windows: [WindowStore; 2],
    /// Stream-stream with grace: rows still waiting for a partner, by (timestamp, side, seq).
    unmatched: BTreeMap<(i64, u8, u64), (ScalarValue, Vec<ScalarValue>)>,
    next_seq: u64,
    stream_time: i64,
    /// Tables: the latest row per key, per side.
    tables: [HashMap<ScalarValue, Row>; 2],
    /// Foreign key: left rows by their own key, their foreign key, and its inverse.
    fk_left: HashMap<Vec<ScalarValue>, Row>,
    fk_of: HashMap<Vec<ScalarValue>, ScalarValue>,
    pointing_at: HashMap<ScalarValue, Vec<Vec<ScalarValue>>>,
    /// Foreign key over partitions: left rows with no earlier value and no answer yet (an
    /// INNER join has no result of theirs to retract when the answer is "no right row").
    fk_fresh: HashSet<Vec<ScalarValue>>,
    /// Foreign key over partitions: responses to left versions not read yet, by own key
    /// (with the response's key).
    fk_pending: HashMap<Vec<ScalarValue>, (ScalarValue, Row)>,
    /// Entries changed since the last checkpoint.
    dirty: HashSet<Dirty>,
}

impl State {
    /// Upserts or deletes `key` in table `side`.
    fn apply(&mut self, side: usize, key: ScalarValue, row: Row, tombstone: bool) {
        self.dirty.insert(Dirty::Table(side as u8, key.clone()));
        if tombstone {
            self.tables[side].remove(&key);
        } else {
            self.tables[side].insert(key, row);
        }
    }

    /// A waiting row of side `tag` at `ts` found a partner: it will not be emitted alone.
    fn partnered(&mut self, ts: i64, tag: u8, key: &ScalarValue) {
        let waiting: Vec<_> = self
            .unmatched
            .range((ts, tag, 0)..=(ts, tag, u64::MAX))
            .filter(|(_, (k, _))| k == key)
            .map(|(id, _)| *id)
            .collect();
        for id in waiting {
            self.unmatched.remove(&id);
            self.dirty.insert(Dirty::Unmatched(id));
        }
    }

    /// Forgets which foreign key left row `own` pointed at.
    fn unpoint(&mut self, own: &[ScalarValue]) {
        if let Some(old) = self.fk_of.remove(own)
            && let Some(list) = self.pointing_at.get_mut(&old)
        {
            list.retain(|k| k != own);
            if list.is_empty() {
                self.pointing_at.remove(&old);
            }
        }
    }

    /// Left row `own` points at right key `key`.
    fn point(&mut self, own: Vec<ScalarValue>, key: ScalarValue) {
        self.fk_of.insert(own.clone(), key.clone());
        self.pointing_at.entry(key).or_default().push(own);
    }

    /// The changelog entry of `dirty` as the state holds it now (`None`: deleted).
    /// `no_key` is the left key type's NULL (a foreign-key left row pointing nowhere).
    fn entry(
        &self,
        dirty: &Dirty,
        codecs: &Codecs,
        no_key: &ScalarValue,
    ) -> Result<StateEntry, ExecError> {
        Ok(match dirty {
            Dirty::Window(side, key, ts) => {
                let mut k = vec![WINDOW, *side];
                k.extend(ts.to_be_bytes());
                k.extend(codecs.keys[*side as usize].encode(std::slice::from_ref(key))?);
                let rows = self.windows[*side as usize]
                    .rows
                    .get(key)
                    .and_then(|by_ts| by_ts.get(ts));
                let value = match rows {
                    Some(rows) => {
                        let mut v = Vec::new();
                        for row in rows {
                            put_bytes(&mut v, &codecs.row(*side, key, (*ts, row))?);
                        }
                        Some(v)
                    }
                    None => None,
                };
                (k, value)
            }
            Dirty::Unmatched(id @ (ts, side, seq)) => {
                let mut k = vec![UNMATCHED];
                k.extend(ts.to_be_bytes());
                k.push(*side);
                k.extend(seq.to_be_bytes());
                let value = match self.unmatched.get(id) {
                    Some((key, row)) => Some(codecs.row(*side, key, (*ts, row))?),
                    None => None,
                };
                (k, value)
            }
            Dirty::Table(side, key) => {
                let mut k = vec![TABLE, *side];
                k.extend(codecs.keys[*side as usize].encode(std::slice::from_ref(key))?);
                let value = match self.tables[*side as usize].get(key) {
                    Some((ts, row)) => Some(codecs.row(*side, key, (*ts, row))?),
                    None => None,
                };
                (k, value)
            }
            Dirty::FkPending(own) | Dirty::FkFresh(own) => {
                self.response_entry(dirty, own, codecs)?
            }
            Dirty::FkLeft(own) => {
                let mut k = vec![FK_LEFT];
                k.extend(codecs.own.encode(own)?);
                let value = match self.fk_left.get(own) {
                    Some((ts, row)) => {
                        let fk = self.fk_of.get(own).unwrap_or(no_key);
                        Some(codecs.row(0, fk, (*ts, row))?)
                    }
                    None => None,
                };
                (k, value)
            }
        })
    }

    /// The entry of a foreign-key join's early response or fresh mark for left key `own`.
    fn response_entry(
        &self,
        dirty: &Dirty,
        own: &[ScalarValue],
        codecs: &Codecs,
    ) -> Result<StateEntry, ExecError> {
        let pending = matches!(dirty, Dirty::FkPending(_));
        let mut k = vec![if pending { FK_PENDING } else { FK_FRESH }];
        k.extend(codecs.own.encode(own)?);
        let value = if pending {
            match self.fk_pending.get(own) {
                Some((key, (ts, row))) => Some(codecs.row(1, key, (*ts, row))?),
                None => None,
            }
        } else {
            self.fk_fresh.contains(own).then(Vec::new)
        };
        Ok((k, value))
    }

    /// Puts back buffered stream rows and table rows decoded in bulk: `slots` says per entry
    /// its side, its timestamp (window rows) and how many of `bytes[side]`'s rows it holds.
    fn insert_decoded(
        &mut self,
        codecs: &Codecs,
        slots: &[(u8, Option<i64>, usize)],
        bytes: &[Vec<&[u8]>; 2],
    ) -> Result<(), ExecError> {
        let mut rows = [
            codecs.sides[0].decode_many(&bytes[0])?.into_iter(),
            codecs.sides[1].decode_many(&bytes[1])?.into_iter(),
        ];
        for &(side, ts, n) in slots {
            let mut taken = Vec::with_capacity(n);
            for _ in 0..n {
                taken.push(split_row(
                    rows[side as usize].next().ok_or_else(bad_entry)?,
                )?);
            }
            let Some(join_key) = taken.first().map(|(key, _)| key.clone()) else {
                continue;
            };
            match ts {
                Some(ts) => self.windows[side as usize].insert(
                    join_key,
                    ts,
                    taken.into_iter().map(|(_, (_, r))| r).collect(),
                ),
                None => {
                    if let Some((key, row)) = taken.pop() {
                        self.tables[side as usize].insert(key, row);
                    }
                }
            }
        }
        Ok(())
    }

    /// A row waiting for a partner.
    fn restore_unmatched(
        &mut self,
        codecs: &Codecs,
        mut rest: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), ExecError> {
        let ts = take_i64(&mut rest).ok_or_else(bad_entry)?;
        let side = *rest.first().ok_or_else(bad_entry)?;
        rest = &rest[1..];
        let seq = take_i64(&mut rest).ok_or_else(bad_entry)? as u64;
        match value {
            Some(v) => {
                let (join_key, (_, row)) = codecs.unrow(side, v)?;
                self.unmatched.insert((ts, side, seq), (join_key, row));
            }
            None => {
                self.unmatched.remove(&(ts, side, seq));
            }
        }
        Ok(())
    }

    /// A foreign-key join's left row and the key it points at.
    fn restore_fk_left(
        &mut self,
        codecs: &Codecs,
        rest: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), ExecError> {
        let own = codecs.own.decode(rest)?;
        self.unpoint(&own);
        match value {
            Some(v) => {
                let (fk, row) = codecs.unrow(0, v)?;
                if !fk.is_null() {
                    self.point(own.clone(), fk);
                }
                self.fk_left.insert(own, row);
            }
            None => {
                self.fk_left.remove(&own);
            }
        }
        Ok(())
    }
}

/// Joins two inputs.
#[derive(Debug)]
pub struct JoinOp {
    spec: Arc<JoinSpec>,
    state: State,
    processed: u64,
    /// Changelog encodings, made at the first checkpoint or restore.
    codecs: Option<Codecs>,
}

/// How a join's state entries are written: each side's rows in its side layout (key,
/// payload, `ROWTIME`), join keys alone, and a foreign-key join's left keys.
#[derive(Debug)]
struct Codecs {
    sides: [RowCodec; 2],
    keys: [RowCodec; 2],
    own: RowCodec,
}

impl Codecs {
    fn try_new(spec: &JoinSpec) -> Result<Self, ExecError> {
        let key = |schema: &SchemaRef| RowCodec::try_new(vec![schema.field(0).data_type().clone()]);
        let own = spec
            .left_key_columns
            .iter()
            .map(|c| spec.left.field(c + 1).data_type().clone())
            .collect();
        Ok(Self {
            sides: [
                RowCodec::of_schema(&spec.left)?,
                RowCodec::of_schema(&spec.right)?,
            ],
            keys: [key(&spec.left)?, key(&spec.right)?],
            own: RowCodec::try_new(own)?,
        })
    }

    /// A side-layout row: key, payload, timestamp.
    fn row(
        &self,
        side: u8,
        key: &ScalarValue,
        (ts, payload): (i64, &[ScalarValue]),
    ) -> Result<Vec<u8>, ExecError> {
        let mut values = Vec::with_capacity(payload.len() + 2);
        values.push(key.clone());
        values.extend_from_slice(payload);
        values.push(ScalarValue::Int64(Some(ts)));
        self.sides[side as usize].encode(&values)
    }

    /// The key, timestamp and payload of a side-layout row.
    fn unrow(&self, side: u8, bytes: &[u8]) -> Result<(ScalarValue, Row), ExecError> {
        split_row(self.sides[side as usize].decode(bytes)?)
    }
}

/// Changelog key tags of a join's entries.
const TIMES: u8 = b't';
const WINDOW: u8 = b'w';
const UNMATCHED: u8 = b'u';
const TABLE: u8 = b'b';
const FK_LEFT: u8 = b'f';
const FK_FRESH: u8 = b'n';
const FK_PENDING: u8 = b'q';

/// A decoded side-layout row as its key, timestamp and payload.
fn split_row(mut values: Vec<ScalarValue>) -> Result<(ScalarValue, Row), ExecError> {
    let ts = match values.pop() {
        Some(ScalarValue::Int64(Some(ts))) => ts,
        _ => {
            return Err(ExecError::Internal(
                "join changelog row without ROWTIME".into(),
            ));
        }
    };
    if values.is_empty() {
        return Err(ExecError::Internal("join changelog row without key".into()));
    }
    let key = values.remove(0);
    Ok((key, (ts, values)))
}

/// Length-prefixed byte strings, one after another.
fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend((bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn take_bytes<'a>(input: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = u32::from_be_bytes(input.get(..4)?.try_into().ok()?) as usize;
    let bytes = input.get(4..4 + len)?;
    *input = &input[4 + len..];
    Some(bytes)
}

fn take_i64(input: &mut &[u8]) -> Option<i64> {
    let v = i64::from_be_bytes(input.get(..8)?.try_into().ok()?);
    *input = &input[8..];
    Some(v)
}

fn bad_entry() -> ExecError {
    ExecError::Internal("malformed join changelog entry".into())
}

impl JoinOp {
    /// A join with empty state.
    pub fn new(spec: Arc<JoinSpec>) -> Self {
        Self {
            spec,
            state: State {
                stream_time: i64::MIN,
                ..State::default()
            },
            processed: 0,
            codecs: None,
        }
    }

    fn codecs(&mut self) -> Result<&Codecs, ExecError> {
        if self.codecs.is_none() {
            self.codecs = Some(Codecs::try_new(&self.spec)?);
        }
        self.codecs
            .as_ref()
            .ok_or_else(|| ExecError::Internal("join codecs".into()))
    }

    /// The state entries changed since the last checkpoint (a deleted entry has no value),
    /// and the join's clocks.
    pub fn checkpoint(&mut self) -> Result<Vec<StateEntry>, ExecError> {
        let dirty: Vec<Dirty> = self.state.dirty.drain().collect();
        self.codecs()?;
        let (state, Some(codecs)) = (&self.state, &self.codecs) else {
            return Err(ExecError::Internal("join codecs".into()));
        };
        let mut clocks = Vec::with_capacity(32);
        for v in [
            state.stream_time,
            state.windows[0].observed,
            state.windows[1].observed,
            state.next_seq as i64,
        ] {
            clocks.extend(v.to_be_bytes());
        }
        let no_key = ScalarValue::try_from(self.spec.left.field(0).data_type())?;
        let mut entries = vec![(vec![TIMES], Some(clocks))];
        for d in &dirty {
            entries.push(state.entry(d, codecs, &no_key)?);
        }
        Ok(entries)
    }

    /// Rebuilds a fresh join's state from the entries [`JoinOp::checkpoint`] wrote, in log
    /// order. Only each entry key's last value matters (a deleted one restores nothing), so
    /// buffered stream rows and table rows, the bulk of a join's state, are decoded all at
    /// once per side; the other entries are applied in order.
    pub fn restore_all(&mut self, entries: &[EntryRef<'_>]) -> Result<(), ExecError> {
        let mut last: HashMap<&[u8], Option<&[u8]>> = HashMap::with_capacity(entries.len());
        for (key, value) in entries {
            last.insert(key, *value);
        }
        // (side, timestamp for window rows, how many rows) per entry, and every row's bytes.
        let mut slots: Vec<(u8, Option<i64>, usize)> = Vec::new();
        let mut bytes: [Vec<&[u8]>; 2] = [Vec::new(), Vec::new()];
        for (key, _) in entries {
            let Some(value) = last.remove(key) else {
                continue; // an earlier value of a key written again later
            };
            match (key.first(), value) {
                (Some(&WINDOW), Some(mut v)) if key.len() >= 10 => {
                    let side = key[1] % 2;
                    let ts = i64::from_be_bytes(key[2..10].try_into().map_err(|_| bad_entry())?);
                    let mut n = 0;
                    while !v.is_empty() {
                        bytes[side as usize].push(take_bytes(&mut v).ok_or_else(bad_entry)?);
                        n += 1;
                    }
                    slots.push((side, Some(ts), n));
                }
                (Some(&TABLE), Some(v)) if key.len() >= 2 => {
                    let side = key[1] % 2;
                    bytes[side as usize].push(v);
                    slots.push((side, None, 1));
                }
                (Some(&WINDOW | &TABLE), None) => {}
                (_, value) => self.restore(key, value)?,
            }
        }
        self.codecs()?;
        let (state, Some(codecs)) = (&mut self.state, &self.codecs) else {
            return Err(ExecError::Internal("join codecs".into()));
        };
        state.insert_decoded(codecs, &slots, &bytes)
    }

    /// Applies one entry [`JoinOp::checkpoint`] wrote, other than buffered stream rows and
    /// table rows (those [`JoinOp::restore_all`] puts back in bulk).
    fn restore(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), ExecError> {
        self.codecs()?;
        let (state, Some(codecs)) = (&mut self.state, &self.codecs) else {
            return Err(ExecError::Internal("join codecs".into()));
        };
        let (&tag, rest) = key.split_first().ok_or_else(bad_entry)?;
        match tag {
            TIMES => {
                let mut v = value.unwrap_or_default();
                let mut next = || take_i64(&mut v).ok_or_else(bad_entry);
                state.stream_time = next()?;
                state.windows[0].observed = next()?;
                state.windows[1].observed = next()?;
                state.next_seq = next()? as u64;
                Ok(())
            }
            UNMATCHED => state.restore_unmatched(codecs, rest, value),
            FK_LEFT => state.restore_fk_left(codecs, rest, value),
            FK_PENDING => {
                let own = codecs.own.decode(rest)?;
                match value {
                    Some(v) => {
                        let (key, row) = codecs.unrow(1, v)?;
                        state.fk_pending.insert(own, (key, row));
                    }
                    None => {
                        state.fk_pending.remove(&own);
                    }
                }
                Ok(())
            }
            FK_FRESH => {
                let own = codecs.own.decode(rest)?;
                match value {
                    Some(_) => state.fk_fresh.insert(own),
                    None => state.fk_fresh.remove(&own),
                };
                Ok(())
            }
            _ => Err(bad_entry()),
        }
    }

    /// Joins one batch from `side`, pushing the results (if any) to `out`.
    pub fn process(
        &mut self,
        side: Side,
        batch: Batch,
        out: &mut Vec<Batch>,
    ) -> Result<(), ExecError> {
        let data = &batch.data;
        let width = data.num_columns();
        let times = data
            .column(width - 1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(|| ExecError::Internal("join input without ROWTIME".into()))?
            .clone();
        let mut results = Vec::new();
        for i in 0..data.num_rows() {
            let key = ScalarValue::try_from_array(data.column(0), i)?;
            let payload = (1..width - 1)
                .map(|c| ScalarValue::try_from_array(data.column(c), i))
                .collect::<Result<Vec<_>, _>>()?;
            let ts = times.value(i);
            let tombstone = batch.is_tombstone(i);
            self.processed += 1;
            match self.spec.join_type {
                JoinType::StreamStream {
                    before,
                    after,
                    grace,
                } => self.stream_stream(
                    side,
                    key,
                    (ts, payload),
                    (before, after, grace),
                    &mut results,
                ),
                JoinType::StreamTable => {
                    self.stream_table(side, key, (ts, payload), tombstone, &mut results)
                }
                JoinType::TableTable => {
                    self.table_table(side, key, (ts, payload), tombstone, &mut results)
                }
                JoinType::ForeignKey => {
                    self.foreign_key(side, key, (ts, payload), tombstone, &mut results)
                }
                JoinType::ForeignKeyResponse => match side {
                    Side::Left => self.response_left(key, (ts, payload), tombstone, &mut results),
                    Side::Right => self.response(key, (ts, payload), &mut results),
                },
            }
        }
        if !results.is_empty() {
            out.push(self.build(results)?);
        }
        Ok(())
    }

    fn outer(&self, side: Side) -> bool {
        match side {
            Side::Left => matches!(self.spec.kind, JoinKind::Left | JoinKind::Full),
            Side::Right => matches!(self.spec.kind, JoinKind::Right | JoinKind::Full),
        }
    }

    fn stream_stream(
        &mut self,
        side: Side,
        key: ScalarValue,
        (ts, row): Row,
        (before, after, grace): (i64, i64, Option<i64>),
        out: &mut Vec<Joined>,
    ) {
        let outer = self.outer(side);
        let state = &mut self.state;
        state.stream_time = state.stream_time.max(ts);
        if key.is_null() {
            if outer {
                out.push(joined(side, key, row, None, ts));
            }
            return;
        }
        let retention = before + after + grace.unwrap_or(DEFAULT_GRACE_MS);
        if grace.is_some() && ts == state.stream_time {
            emit_unmatched(state, (before, after, grace.unwrap_or(0)), out);
        }
        let (this, other) = match side {
            Side::Left => (0, 1),
            Side::Right => (1, 0),
        };
        if state.windows[this].put(key.clone(), ts, row.clone(), retention) {
            state
                .dirty
                .insert(Dirty::Window(this as u8, key.clone(), ts));
        }
        // The other side's rows within the window, seen from this side.
        let (from, to) = match side {
            Side::Left => (ts - before, ts + after),
            Side::Right => (ts - after, ts + before),
        };
        let matches = state.windows[other].fetch(&key, from.max(0), to.max(0), retention);
        for (other_ts, other_row) in &matches {
            if grace.is_some() {
                state.partnered(*other_ts, other as u8, &key);
            }
            let (l, r) = match side {
                Side::Left => (row.clone(), other_row.clone()),
                Side::Right => (other_row.clone(), row.clone()),
            };
            out.push(Joined {
                key: key.clone(),
                left: Some(l),
                right: Some(r),
                timestamp: ts.max(*other_ts),
                tombstone: false,
            });
        }
        if matches.is_empty() && outer {
            if grace.is_none() || to < state.stream_time {
                out.push(joined(side, key, row, None, ts));
            } else {
                state.next_seq += 1;
                let id = (ts, this as u8, state.next_seq);
                state.unmatched.insert(id, (key, row));
                state.dirty.insert(Dirty::Unmatched(id));
            }
        }
        if self.processed.is_multiple_of(1024) {
            for (side, store) in state.windows.iter_mut().enumerate() {
                for (key, ts) in store.expire(retention) {
                    state.dirty.insert(Dirty::Window(side as u8, key, ts));
                }
            }
        }
    }

    fn stream_table(
        &mut self,
        side: Side,
        key: ScalarValue,
        (ts, row): Row,
        tombstone: bool,
        out: &mut Vec<Joined>,
    ) {
        if key.is_null() {
            return;
        }
        match side {
            Side::Right => self.state.apply(1, key, (ts, row), tombstone),
            Side::Left => match self.state.tables[1].get(&key) {
                Some((_, right)) => out.push(Joined {
                    key,
                    left: Some(row),
                    right: Some(right.clone()),
                    timestamp: ts,
                    tombstone: false,
                }),
                None if self.outer(Side::Left) => out.push(joined(side, key, row, None, ts)),
                None => {}
            },
        }
    }

    fn table_table(
        &mut self,
        side: Side,
        key: ScalarValue,
        (ts, row): Row,
        tombstone: bool,
        out: &mut Vec<Joined>,
    ) {
        if key.is_null() {
            return;
        }
        let (this, other) = match side {
            Side::Left => (0, 1),
            Side::Right => (1, 0),
        };
        self.state
            .apply(this, key.clone(), (ts, row.clone()), tombstone);
        let other_row = self.state.tables[other].get(&key).cloned();
        let this_row = (!tombstone).then_some(row);
        let other_side = match side {
            Side::Left => Side::Right,
            Side::Right => Side::Left,
        };
        let emits = match (&this_row, &other_row) {
            (_, Some(_)) => true,
            (Some(_), None) => self.outer(side),
            (None, None) => self.outer(side),
        };
        if !emits {
            return;
        }
        let timestamp = other_row.as_ref().map_or(ts, |(t, _)| ts.max(*t));
        // The row survives if both sides exist, or the surviving side is outer.
        let keeps = match (&this_row, &other_row) {
            (Some(_), Some(_)) => true,
            (Some(_), None) => self.outer(side),
            (None, Some(_)) => self.outer(other_side),
            (None, None) => false,
        };
        let (l, r) = match side {
            Side::Left => (this_row, other_row.map(|(_, r)| r)),
            Side::Right => (other_row.map(|(_, r)| r), this_row),
        };
        out.push(Joined {
            key,
            left: l,
            right: r,
            timestamp,
            tombstone: !keeps,
        });
    }

    fn foreign_key(
        &mut self,
        side: Side,
        key: ScalarValue,
        row: Row,
        tombstone: bool,
        out: &mut Vec<Joined>,
    ) {
        match side {
            Side::Left => self.foreign_key_left(key, row, tombstone, out),
            Side::Right => self.foreign_key_right(key, row, tombstone, out),
        }
    }

    /// A foreign-key join's left row's own key (none with a NULL in it).
    fn own_key(&self, row: &[ScalarValue]) -> Option<Vec<ScalarValue>> {
        let own: Vec<ScalarValue> = (self.spec.left_key_columns.iter())
            .map(|i| row[*i].clone())
            .collect();
        (!own.iter().any(ScalarValue::is_null)).then_some(own)
    }

    /// A left row changed: (re)join it with the right row its foreign key points at.
    fn foreign_key_left(
        &mut self,
        key: ScalarValue,
        (ts, row): Row,
        tombstone: bool,
        out: &mut Vec<Joined>,
    ) {
        let outer = self.outer(Side::Left);
        let Some(own) = self.own_key(&row) else {
            return;
        };
        let state = &mut self.state;
        state.unpoint(&own);
        state.dirty.insert(Dirty::FkLeft(own.clone()));
        if tombstone {
            state.fk_left.remove(&own);
            out.push(tombstone_of(key, row, ts));
            return;
        }
        let existed = state
            .fk_left
            .insert(own.clone(), (ts, row.clone()))
            .is_some();
        let right = if key.is_null() {
            None
        } else {
            state.point(own, key.clone());
            state.tables[1].get(&key).cloned()
        };
        match right {
            Some((rts, r)) => out.push(Joined {
                key,
                left: Some(row),
                right: Some(r),
                timestamp: ts.max(rts),
                tombstone: false,
            }),
            None if outer => out.push(joined(Side::Left, key, row, None, ts)),
            // An inner join retracts an earlier result; a new row without a match has
            // nothing to retract.
            None if existed => out.push(tombstone_of(key, row, ts)),
            None => {}
        }
    }

    /// A right row changed: rejoin every left row that points at it.
    fn foreign_key_right(
        &mut self,
        key: ScalarValue,
        (ts, row): Row,
        tombstone: bool,
        out: &mut Vec<Joined>,
    ) {
        if key.is_null() {
            return;
        }
        let outer = self.outer(Side::Left);
        let state = &mut self.state;
        state.apply(1, key.clone(), (ts, row.clone()), tombstone);
        let lefts = state.pointing_at.get(&key).cloned().unwrap_or_default();
        for own in lefts {
            let Some((lts, l)) = state.fk_left.get(&own).cloned() else {
                continue;
            };
            let right = (!tombstone).then(|| row.clone());
            out.push(left_result(key.clone(), l, right, ts.max(lts), outer));
        }
    }

    /// A left row changed, on its own task: remember it; a delete, or a row pointing
    /// nowhere, is answered at once; otherwise its answer is the response for its version,
    /// which may have arrived already (the subscription stage reads the left table on its own).
    fn response_left(
        &mut self,
        key: ScalarValue,
        (ts, row): Row,
        tombstone: bool,
        out: &mut Vec<Joined>,
    ) {
        let outer = self.outer(Side::Left);
        let Some(own) = self.own_key(&row) else {
            return;
        };
        let state = &mut self.state;
        for dirty in [Dirty::FkLeft, Dirty::FkFresh, Dirty::FkPending] {
            state.dirty.insert(dirty(own.clone()));
        }
        // An early answer: to this version (joined now), a later one (kept), or stale.
        let pending = state.fk_pending.remove(&own);
        if tombstone {
            state.fk_fresh.remove(&own);
            if state.fk_left.remove(&own).is_some() {
                out.push(tombstone_of(key, row, ts));
            }
        } else {
            let existed = state
                .fk_left
                .insert(own.clone(), (ts, row.clone()))
                .is_some();
            if existed {
                state.fk_fresh.remove(&own);
            } else {
                state.fk_fresh.insert(own);
            }
            if key.is_null() && outer {
                out.push(joined(Side::Left, key, row, None, ts));
            } else if key.is_null() && existed {
                out.push(tombstone_of(key, row, ts));
            }
        }
        if let Some((key, response)) = pending {
            self.response(key, response, out);
        }
    }

    /// A right table's task answered a left row: join if the answer is for the row's
    /// current version (as KIP-213's hash check); keep it if it is for a version this task
    /// has not read yet; drop it if a later version has its own answer coming.
    fn response(&mut self, key: ScalarValue, (ts, row): Row, out: &mut Vec<Joined>) {
        let Some(columns) = &self.spec.response else {
            return;
        };
        let own: Vec<ScalarValue> = columns.own.iter().map(|i| row[*i].clone()).collect();
        let current = self.state.fk_left.get(&own);
        let ahead =
            current.is_none_or(|(_, left)| row[columns.version] > left[columns.left_version]);
        if ahead {
            self.state.dirty.insert(Dirty::FkPending(own.clone()));
            self.state.fk_pending.insert(own, (key, (ts, row)));
            return;
        }
        let Some((lts, left)) =
            current.filter(|(_, l)| l[columns.left_version] == row[columns.version])
        else {
            return;
        };
        let timestamp = ts.max(*lts);
        let left = left.clone();
        let found = !row[columns.found].is_null();
        if !found && !self.outer(Side::Left) && self.state.fk_fresh.contains(&own) {
            // A new row without a partner: an INNER join has no result to retract.
            return;
        }
        if self.state.fk_fresh.remove(&own) {
            self.state.dirty.insert(Dirty::FkFresh(own));
        }
        let right = found.then_some(row);
        out.push(left_result(
            key,
            left,
            right,
            timestamp,
            self.outer(Side::Left),
        ));
    }

    /// Turns results into one batch in the output layout.
    fn build(&self, rows: Vec<Joined>) -> Result<Batch, ExecError> {
        let schema = &self.spec.output;
        let left_width = self.spec.left.fields().len() - 2;
        let fields = schema.fields();
        // (A response row carries more than the right payload: the rest is not output.)
        let right_width = fields.len() - 2 - left_width;
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(fields.len());
        columns.push(column(
            rows.iter().map(|r| r.key.clone()),
            fields[0].data_type(),
        )?);
        for c in 0..left_width {
            let t = fields[1 + c].data_type();
            columns.push(column(pick(&rows, |r| r.left.as_ref(), c, t)?, t)?);
        }
        for c in 0..right_width {
            let t = fields[1 + left_width + c].data_type();
            columns.push(column(pick(&rows, |r| r.right.as_ref(), c, t)?, t)?);
        }
        columns.push(Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.timestamp),
        )));
        let data = RecordBatch::try_new(Arc::clone(schema), columns)?;
        let tombstones = rows
            .iter()
            .any(|r| r.tombstone)
            .then(|| BooleanArray::from(rows.iter().map(|r| r.tombstone).collect::<Vec<_>>()));
        let is_table = matches!(
            self.spec.join_type,
            JoinType::TableTable | JoinType::ForeignKey
        );
        Ok(Batch {
            data,
            tombstones: tombstones
                .or_else(|| is_table.then(|| BooleanArray::from(vec![false; rows.len()]))),
        })
    }
}

/// The rows emitted once their join window has closed without a partner.
fn emit_unmatched(
    state: &mut State,
    (before, after, grace): (i64, i64, i64),
    out: &mut Vec<Joined>,
) {
    let closed: Vec<(i64, u8, u64)> = state
        .unmatched
        .keys()
        .filter(|(ts, side, _)| {
            let look = if *side == 0 { after } else { before };
            ts + look + grace < state.stream_time
        })
        .copied()
        .collect();
    for id in closed {
        state.dirty.insert(Dirty::Unmatched(id));
        if let Some((key, row)) = state.unmatched.remove(&id) {
            let side = if id.1 == 0 { Side::Left } else { Side::Right };
            out.push(joined(side, key, row, None, id.0));
        }
    }
}

/// A result with one side present and the other missing.
fn joined(
    side: Side,
    key: ScalarValue,
    row: Vec<ScalarValue>,
    other: Option<Vec<ScalarValue>>,
    timestamp: i64,
) -> Joined {
    let (left, right) = match side {
        Side::Left => (Some(row), other),
        Side::Right => (other, Some(row)),
    };
    Joined {
        key,
        left,
        right,
        timestamp,
        tombstone: false,
    }
}

/// A left row's foreign-key join result: with its right row, else alone (an outer join) or
/// deleted (an inner join).
fn left_result(
    key: ScalarValue,
    left: Vec<ScalarValue>,
    right: Option<Vec<ScalarValue>>,
    timestamp: i64,
    outer: bool,
) -> Joined {
    if right.is_some() || outer {
        joined(Side::Left, key, left, right, timestamp)
    } else {
        tombstone_of(key, left, timestamp)
    }
}

/// A foreign-key join's deletion of a left row (which carries the left key columns).
fn tombstone_of(key: ScalarValue, left: Vec<ScalarValue>, timestamp: i64) -> Joined {
    Joined {
        key,
        left: Some(left),
        right: None,
        timestamp,
        tombstone: true,
    }
}

fn pick(
    rows: &[Joined],
    side: impl Fn(&Joined) -> Option<&Vec<ScalarValue>>,
    c: usize,
    data_type: &DataType,
) -> Result<Vec<ScalarValue>, ExecError> {
    let null = ScalarValue::try_from(data_type)?;
    Ok(rows
        .iter()
        .map(|r| side(r).map_or_else(|| null.clone(), |row| row[c].clone()))
        .collect())
}

fn column(
    values: impl IntoIterator<Item = ScalarValue>,
    data_type: &DataType,
) -> Result<ArrayRef, ExecError> {
    let values: Vec<ScalarValue> = values.into_iter().collect();
    if values.is_empty() {
        return Ok(arrow::array::new_empty_array(data_type));
    }
    let array = ScalarValue::iter_to_array(values)?;
    if array.data_type() == data_type {
        Ok(array)
    } else {
        Ok(arrow::compute::cast(&array, data_type)?)
    }
}
