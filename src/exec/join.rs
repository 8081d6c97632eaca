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
//! State lives in memory per task; it is not yet backed by a changelog topic. Rows are kept
//! as `ScalarValue`s: joins look rows up one at a time.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use datafusion_common::ScalarValue;

use super::window::DEFAULT_GRACE_MS;
use super::{Batch, ExecError};
use crate::sql::ast::JoinKind;

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
    observed: i64,
}

impl WindowStore {
    /// Stores a row unless it is older than the retention allows.
    fn put(&mut self, key: ScalarValue, ts: i64, row: Vec<ScalarValue>, retention: i64) {
        self.observed = self.observed.max(ts);
        if ts <= self.observed - retention {
            return;
        }
        self.rows
            .entry(key)
            .or_default()
            .entry(ts)
            .or_default()
            .push(row);
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

    fn expire(&mut self, retention: i64) {
        let horizon = self.observed - retention;
        self.rows.retain(|_, by_ts| {
            by_ts.retain(|ts, _| *ts > horizon);
            !by_ts.is_empty()
        });
    }
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
}

impl State {
    /// Upserts or deletes `key` in table `side`.
    fn apply(&mut self, side: usize, key: ScalarValue, row: Row, tombstone: bool) {
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
        }
    }
}

/// Joins two inputs.
#[derive(Debug)]
pub struct JoinOp {
    spec: Arc<JoinSpec>,
    state: State,
    processed: u64,
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
        state.windows[this].put(key.clone(), ts, row.clone(), retention);
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
                state
                    .unmatched
                    .insert((ts, this as u8, state.next_seq), (key, row));
            }
        }
        if self.processed.is_multiple_of(1024) {
            for store in &mut state.windows {
                store.expire(retention);
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

    /// A left row changed: (re)join it with the right row its foreign key points at.
    fn foreign_key_left(
        &mut self,
        key: ScalarValue,
        (ts, row): Row,
        tombstone: bool,
        out: &mut Vec<Joined>,
    ) {
        let outer = self.outer(Side::Left);
        let state = &mut self.state;
        let own: Vec<ScalarValue> = self
            .spec
            .left_key_columns
            .iter()
            .map(|i| row[*i].clone())
            .collect();
        if own.iter().any(ScalarValue::is_null) {
            return;
        }
        if let Some(old) = state.fk_of.remove(&own)
            && let Some(list) = state.pointing_at.get_mut(&old)
        {
            list.retain(|k| *k != own);
        }
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
            state.fk_of.insert(own.clone(), key.clone());
            state.pointing_at.entry(key.clone()).or_default().push(own);
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
            let timestamp = ts.max(lts);
            out.push(if !tombstone {
                Joined {
                    key: key.clone(),
                    left: Some(l),
                    right: Some(row.clone()),
                    timestamp,
                    tombstone: false,
                }
            } else if outer {
                joined(Side::Left, key.clone(), l, None, timestamp)
            } else {
                tombstone_of(key.clone(), l, timestamp)
            });
        }
    }

    /// Turns results into one batch in the output layout.
    fn build(&self, rows: Vec<Joined>) -> Result<Batch, ExecError> {
        let schema = &self.spec.output;
        let left_width = self.spec.left.fields().len() - 2;
        let right_width = self.spec.right.fields().len() - 2;
        let fields = schema.fields();
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
