//! [`AggregateOp`]: GROUP BY with optional windows, HAVING, and EMIT CHANGES or EMIT FINAL.
//!
//! For each input row the operator advances stream time, assigns the row's windows, drops
//! it for windows already closed (late records, counted), and feeds the aggregate arguments
//! to the group's DataFusion accumulators. Within a batch, rows of one group are fed together
//! and the group is emitted once (ksqlDB's cache does the same; in test mode a batch is one
//! record, so every record yields its output at once).
//!
//! Output rows are `[group keys.., WINDOWSTART, WINDOWEND, aggregates.., ROWTIME]`, ROWTIME
//! being the latest contributing timestamp. HAVING is applied here because it needs per-group
//! memory: a group that stops matching after being emitted yields a tombstone. With EMIT
//! FINAL nothing is emitted until stream time passes a window's end plus its grace period.
//! Over a table source, an update retracts the row it replaces (DataFusion's retracting
//! accumulators) before adding itself, and both affected groups are emitted, as in ksqlDB.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::AsArray;
use arrow::array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, UInt32Array, new_empty_array};
use arrow::compute::take;
use arrow::datatypes::{Int64Type, SchemaRef};
use arrow::row::{RowConverter, SortField};
use datafusion_common::ScalarValue;
use datafusion_physical_expr::PhysicalExpr;
use datafusion_physical_expr::aggregate::AggregateFunctionExpr;

use super::emit_final::{FinalEmitter, Release};
use super::filter::evaluate_mask;
use super::window::{TimeWindow, WindowSpec};
use super::{Batch, ExecError, Operator, StateEntry};
use crate::functions::WhenNull;
use crate::state::aggregate_store::{
    AggregateStore, FastMap, GroupKey, decode_key, decode_state, encode_key, encode_state,
};
use crate::state::row_codec::RowCodec;

/// When aggregate results are emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmitMode {
    /// Every update, as it happens.
    Changes,
    /// Once per window, when it closes.
    Final,
}

/// The planned aggregation, shared by every task of a query.
#[derive(Debug)]
pub struct AggregateSpec {
    /// GROUP BY expressions over the input.
    pub group_exprs: Vec<Arc<dyn PhysicalExpr>>,
    /// Aggregate calls, with their argument expressions over the input.
    pub aggregates: Vec<Arc<AggregateFunctionExpr>>,
    /// The window, if any.
    pub window: Option<WindowSpec>,
    /// HAVING over the output schema.
    pub having: Option<Arc<dyn PhysicalExpr>>,
    /// When to emit.
    pub emit: EmitMode,
    /// `[keys.., WINDOWSTART, WINDOWEND (if windowed), aggregates.., ROWTIME]`
    pub output_schema: SchemaRef,
    /// Index of ROWTIME in the input.
    pub input_rowtime: usize,
    /// For a table source, its key columns: an update of a key retracts the row it replaces.
    pub source_keys: Option<Vec<Arc<dyn PhysicalExpr>>>,
    /// Per aggregate: what a NULL result is reported as (ksqlDB's SUM starts at 0).
    pub when_null: Vec<WhenNull>,
    /// How long a window's state is kept (RETENTION, else size plus grace): with EMIT FINAL,
    /// a window this far behind the latest one expires without output.
    pub retention: i64,
}

impl AggregateSpec {
    /// Fresh accumulators for a group; retracting ones for table sources.
    fn accumulators(
        &self,
    ) -> Result<Vec<Box<dyn datafusion_expr::Accumulator>>, datafusion_common::DataFusionError>
    {
        self.aggregates
            .iter()
            .map(|a| {
                if self.source_keys.is_some() {
                    a.create_sliding_accumulator()
                } else {
                    a.create_accumulator()
                }
            })
            .collect()
    }
}

impl AggregateSpec {
    /// A group's current aggregate values (NULL as zero where ksqlDB says so).
    fn evaluate(
        &self,
        state: &mut crate::state::aggregate_store::GroupState,
    ) -> Result<Vec<ScalarValue>, ExecError> {
        let mut values = state
            .accumulators
            .iter_mut()
            .map(|a| a.evaluate())
            .collect::<Result<Vec<_>, _>>()?;
        for (v, when_null) in values.iter_mut().zip(&self.when_null) {
            if v.is_null() {
                match when_null {
                    WhenNull::Null => {}
                    WhenNull::Zero => *v = ScalarValue::new_zero(&v.data_type())?,
                    WhenNull::NaN => *v = ScalarValue::Float64(Some(f64::NAN)),
                }
            }
        }
        Ok(values)
    }
}

/// A batch's group keys, aggregate arguments and timestamps, for row-by-row processing.
struct RowInputs {
    groups: arrow::row::Rows,
    /// Whether row `i`'s grouping key has no NULL (ksqlDB drops rows that have).
    grouped: Vec<bool>,
    args: Vec<Vec<ArrayRef>>,
    rowtime: Int64Array,
}

impl RowInputs {
    /// Row `row`'s aggregate arguments, as one-row arrays.
    fn row_args(&self, row: usize) -> Vec<Vec<ArrayRef>> {
        self.args
            .iter()
            .map(|a| a.iter().map(|c| c.slice(row, 1)).collect())
            .collect()
    }
}

/// One emitted aggregate row: the group, its aggregate values and its timestamp.
type ResultRow = (GroupKey, Vec<ScalarValue>, i64);

/// What a table source's row last contributed: its group and its aggregate arguments.
type Contribution = (GroupKey, Vec<Vec<ArrayRef>>);

/// Runs an [`AggregateSpec`] for one task.
pub struct AggregateOp {
    spec: Arc<AggregateSpec>,
    store: AggregateStore,
    converter: RowConverter,
    /// Table sources: each source key's current contribution, to retract on update.
    previous: HashMap<Box<[u8]>, Contribution>,
    source_converter: Option<RowConverter>,
    /// Table sources: writes contributions to the changelog (all arguments of all
    /// aggregates as one row), with each aggregate's argument count.
    contribution_codec: Option<(RowCodec, Vec<usize>)>,
    /// Table sources: keys whose contribution changed since the last checkpoint.
    changed_sources: HashSet<Box<[u8]>>,
    stream_time: i64,
    late_records: u64,
    /// EMIT FINAL: what has been released so far.
    finals: FinalEmitter,
    /// EMIT FINAL: releases decided by the current batch's records, in order.
    releases: Vec<Release>,
}

impl std::fmt::Debug for AggregateOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregateOp")
            .field("groups", &self.store.len())
            .field("stream_time", &self.stream_time)
            .field("late_records", &self.late_records)
            .finish()
    }
}

/// Rows of one batch, grouped by the group they update, in the order groups were first touched.
#[derive(Default)]
struct Touched {
    order: Vec<GroupKey>,
    rows: FastMap<GroupKey, Vec<u32>>,
}

impl Touched {
    fn add(&mut self, key: GroupKey, row: u32) {
        match self.rows.get_mut(&key) {
            Some(rows) => rows.push(row),
            None => {
                self.order.push(key.clone());
                self.rows.insert(key, vec![row]);
            }
        }
    }
}

impl AggregateOp {
    /// A fresh operator (empty state) for `spec`.
    pub fn try_new(
        spec: Arc<AggregateSpec>,
        input: &arrow::datatypes::Schema,
    ) -> Result<Self, ExecError> {
        let fields = spec
            .group_exprs
            .iter()
            .map(|e| Ok(SortField::new(e.data_type(input)?)))
            .collect::<Result<Vec<_>, ExecError>>()?;
        let source_converter = match &spec.source_keys {
            Some(keys) => Some(RowConverter::new(
                keys.iter()
                    .map(|e| Ok(SortField::new(e.data_type(input)?)))
                    .collect::<Result<Vec<_>, ExecError>>()?,
            )?),
            None => None,
        };
        let contribution_codec = match &spec.source_keys {
            Some(_) => {
                let mut types = Vec::new();
                let mut counts = Vec::new();
                for aggregate in &spec.aggregates {
                    let args = aggregate.expressions();
                    counts.push(args.len());
                    for e in args {
                        types.push(e.data_type(input)?);
                    }
                }
                Some((RowCodec::try_new(types)?, counts))
            }
            None => None,
        };
        let sessions = matches!(spec.window, Some(WindowSpec::Session { .. }));
        Ok(Self {
            spec,
            store: AggregateStore::new(sessions),
            converter: RowConverter::new(fields)?,
            previous: HashMap::new(),
            source_converter,
            contribution_codec,
            changed_sources: HashSet::new(),
            stream_time: i64::MIN,
            late_records: 0,
            finals: FinalEmitter::default(),
            releases: Vec::new(),
        })
    }

    /// Records dropped because their window had closed.
    pub fn late_records(&self) -> u64 {
        self.late_records
    }

    /// Assigns each row to its groups, advancing stream time row by row.
    fn assign_groups(&mut self, batch: &RecordBatch) -> Result<Touched, ExecError> {
        let rows = batch.num_rows();
        let keys = super::evaluate_all(&self.spec.group_exprs, batch)?;
        let encoded = self.converter.convert_columns(&keys)?;
        let rowtime = batch
            .column(self.spec.input_rowtime)
            .as_primitive::<Int64Type>();
        let mut touched = Touched::default();
        for row in 0..rows {
            // ksqlDB drops a record whose grouping key has a NULL: it has no group.
            if !self.spec.group_exprs.is_empty() && keys.iter().any(|k| k.is_null(row)) {
                continue;
            }
            let ts = rowtime.value(row);
            self.stream_time = self.stream_time.max(ts);
            // Without GROUP BY every row is in the one group (the converter has no rows then).
            let key: Box<[u8]> = if keys.is_empty() {
                Box::default()
            } else {
                encoded.row(row).as_ref().into()
            };
            match &self.spec.window {
                None => touched.add((key, None), row as u32),
                Some(spec) => {
                    for window in spec.assign(ts) {
                        if spec.is_closed(&window, self.stream_time) {
                            self.late_records += 1;
                        } else {
                            self.finals.stored(window.start);
                            touched.add((key.clone(), Some(window)), row as u32);
                        }
                    }
                }
            }
            self.note_release();
        }
        Ok(touched)
    }

    /// Feeds each touched group its rows.
    fn update(&mut self, batch: &RecordBatch, touched: &Touched) -> Result<(), ExecError> {
        let args = self
            .spec
            .aggregates
            .iter()
            .map(|a| super::evaluate_all(&a.expressions(), batch))
            .collect::<Result<Vec<_>, ExecError>>()?;
        let rowtime = batch
            .column(self.spec.input_rowtime)
            .as_primitive::<Int64Type>();
        for key in &touched.order {
            let rows = touched.rows.get(key).map_or(&[][..], Vec::as_slice);
            let max_ts = rows
                .iter()
                .map(|i| rowtime.value(*i as usize))
                .max()
                .unwrap_or(i64::MIN);
            // A group's rows: a zero-copy slice when it has one (the common case with many
            // keys), else gathered.
            let indices = (rows.len() > 1).then(|| UInt32Array::from(rows.to_vec()));
            let spec = &self.spec;
            let state = self.store.get_or_insert_with(key, || spec.accumulators())?;
            state.max_timestamp = state.max_timestamp.max(max_ts);
            for (acc, arg_arrays) in state.accumulators.iter_mut().zip(&args) {
                let taken = arg_arrays
                    .iter()
                    .map(|a| match &indices {
                        Some(indices) => take(a.as_ref(), indices, None),
                        None => Ok(a.slice(rows.first().copied().unwrap_or(0) as usize, 1)),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                acc.update_batch(&taken)?;
            }
        }
        Ok(())
    }

    /// The output rows of `groups` (current values), in the given order.
    fn result_rows<'a>(
        &self,
        groups: impl Iterator<Item = (&'a GroupKey, Vec<ScalarValue>, i64)>,
    ) -> Result<RecordBatch, ExecError> {
        let parser = self.converter.parser();
        let mut key_rows = Vec::new();
        let (mut starts, mut ends, mut rowtimes) = (Vec::new(), Vec::new(), Vec::new());
        let mut values: Vec<Vec<ScalarValue>> = vec![Vec::new(); self.spec.aggregates.len()];
        for (key, aggregates, ts) in groups {
            key_rows.push(parser.parse(&key.0));
            if let Some(w) = key.1 {
                starts.push(w.start);
                ends.push(w.end);
            }
            for (column, v) in values.iter_mut().zip(aggregates) {
                column.push(v);
            }
            rowtimes.push(ts);
        }
        let mut columns = self.converter.convert_rows(key_rows)?;
        if self.spec.window.is_some() {
            columns.push(Arc::new(Int64Array::from(starts)));
            columns.push(Arc::new(Int64Array::from(ends)));
        }
        let first_agg = columns.len();
        for (i, column) in values.into_iter().enumerate() {
            let field = self.spec.output_schema.field(first_agg + i);
            columns.push(if column.is_empty() {
                new_empty_array(field.data_type())
            } else {
                // The planner may declare a narrower result than the accumulator computes
                // (ksqlDB's SUM of INT is an INT).
                let array = ScalarValue::iter_to_array(column)?;
                if array.data_type() == field.data_type() {
                    array
                } else {
                    arrow::compute::cast(&array, field.data_type())?
                }
            });
        }
        columns.push(Arc::new(Int64Array::from(rowtimes)));
        Ok(RecordBatch::try_new(
            Arc::clone(&self.spec.output_schema),
            columns,
        )?)
    }

    /// The current row of group `key`.
    fn snapshot(&mut self, key: &GroupKey) -> Result<Option<ResultRow>, ExecError> {
        let Some(state) = self.store.get_mut(key) else {
            return Ok(None);
        };
        let values = self.spec.evaluate(state)?;
        Ok(Some((key.clone(), values, state.max_timestamp)))
    }

    /// Emits the current rows of the touched groups.
    fn emit_changes(&mut self, touched: &Touched, out: &mut Vec<Batch>) -> Result<(), ExecError> {
        let mut rows = Vec::with_capacity(touched.order.len());
        for key in &touched.order {
            rows.extend(self.snapshot(key)?);
        }
        self.emit_rows(rows, out)
    }

    /// Emits result rows in order, applying HAVING: a row that fails it is dropped, or is a
    /// tombstone when its group's last emitted row passed.
    fn emit_rows(&mut self, rows: Vec<ResultRow>, out: &mut Vec<Batch>) -> Result<(), ExecError> {
        let deleted = vec![false; rows.len()];
        self.emit_rows_deleting(rows, &deleted, out)
    }

    /// [`Self::emit_rows`], where rows flagged in `deleted` are tombstones of groups that are
    /// gone (replaced sessions).
    fn emit_rows_deleting(
        &mut self,
        rows: Vec<ResultRow>,
        deleted: &[bool],
        out: &mut Vec<Batch>,
    ) -> Result<(), ExecError> {
        if rows.is_empty() {
            return Ok(());
        }
        let batch = self.result_rows(rows.iter().map(|(k, v, t)| (k, v.clone(), *t)))?;
        let mask = match &self.spec.having {
            Some(having) => evaluate_mask(having, &batch)?,
            None => BooleanArray::from(vec![true; rows.len()]),
        };
        let (mut keep, mut tombstones) = (Vec::new(), Vec::new());
        for (i, (key, _, _)) in rows.iter().enumerate() {
            if deleted[i] {
                keep.push(i as u32);
                tombstones.push(true);
                continue;
            }
            let Some(state) = self.store.get_mut(key) else {
                continue;
            };
            let passes = mask.value(i);
            if passes || state.emitted {
                keep.push(i as u32);
                tombstones.push(!passes);
            }
            state.emitted = passes;
        }
        if !keep.is_empty() {
            let data = arrow::compute::take_record_batch(&batch, &UInt32Array::from(keep))?;
            out.push(Batch {
                data,
                tombstones: Some(BooleanArray::from(tombstones)),
            });
        }
        Ok(())
    }

    /// A batch of table changes: each row retracts what its key contributed before (emitting
    /// that group if the row moves to another group or is a tombstone), then adds itself
    /// unless it is a tombstone or its grouping key has a NULL (emitting its group), as
    /// ksqlDB's table aggregations do.
    fn process_table(&mut self, batch: &Batch, out: &mut Vec<Batch>) -> Result<(), ExecError> {
        let (data, n) = (&batch.data, batch.data.num_rows());
        let eval = |exprs: &[Arc<dyn PhysicalExpr>]| super::evaluate_all(exprs, data);
        let source_keys = eval(self.spec.source_keys.as_deref().unwrap_or_default())?;
        let source_rows = match &self.source_converter {
            Some(c) => c.convert_columns(&source_keys)?,
            None => {
                return Err(ExecError::Internal(
                    "table aggregation without source keys".into(),
                ));
            }
        };
        let inputs = self.row_inputs(data)?;
        let mut emitted = Vec::new();
        for row in 0..n {
            let source_key: Box<[u8]> = source_rows.row(row).as_ref().into();
            let ts = inputs.rowtime.value(row);
            let new_group: Option<GroupKey> = (!batch.is_tombstone(row) && inputs.grouped[row])
                .then(|| (inputs.groups.row(row).as_ref().into(), None));
            self.changed_sources.insert(source_key.clone());
            if let Some((group, old_args)) = self.previous.remove(&source_key) {
                self.apply(&group, &old_args, ts, true)?;
                // An update within one group is one change (Kafka Streams sends the old and
                // new value together when the grouping key stays the same).
                if new_group.as_ref() != Some(&group) {
                    emitted.extend(self.snapshot(&group)?);
                }
            }
            if let Some(group) = new_group {
                let row_args = inputs.row_args(row);
                self.apply(&group, &row_args, ts, false)?;
                emitted.extend(self.snapshot(&group)?);
                self.previous.insert(source_key, (group, row_args));
            }
        }
        self.emit_rows(emitted, out)
    }

    /// What the row-by-row paths (tables, sessions) read from a batch.
    fn row_inputs(&self, data: &RecordBatch) -> Result<RowInputs, ExecError> {
        let eval = |exprs: &[Arc<dyn PhysicalExpr>]| super::evaluate_all(exprs, data);
        let groups = eval(&self.spec.group_exprs)?;
        Ok(RowInputs {
            grouped: (0..data.num_rows())
                .map(|row| groups.iter().all(|g| g.is_valid(row)))
                .collect(),
            groups: self.converter.convert_columns(&groups)?,
            args: self
                .spec
                .aggregates
                .iter()
                .map(|a| eval(&a.expressions()))
                .collect::<Result<Vec<_>, _>>()?,
            rowtime: data
                .column(self.spec.input_rowtime)
                .as_primitive::<Int64Type>()
                .clone(),
        })
    }

    /// A batch for SESSION windows, row by row: a record merges every session of its key it
    /// touches (each replaced session emits a tombstone) into one, then updates it.
    fn process_session(&mut self, batch: &Batch, out: &mut Vec<Batch>) -> Result<(), ExecError> {
        let (data, n) = (&batch.data, batch.data.num_rows());
        let inputs = self.row_inputs(data)?;
        let (mut rows, mut deleted) = (Vec::new(), Vec::new());
        for row in 0..n {
            if !inputs.grouped[row] {
                continue;
            }
            let ts = inputs.rowtime.value(row);
            self.stream_time = self.stream_time.max(ts);
            let key: Box<[u8]> = inputs.groups.row(row).as_ref().into();
            let row_args = inputs.row_args(row);
            if let Some(merged) =
                self.merge_session(&key, ts, &row_args, &mut rows, &mut deleted)?
            {
                rows.extend(self.snapshot(&merged)?);
                deleted.push(false);
            }
            self.note_release();
        }
        if self.spec.emit == EmitMode::Final {
            return Ok(());
        }
        self.emit_rows_deleting(rows, &deleted, out)
    }

    /// Merges the record at `ts` into the sessions of `key` it touches; returns the merged
    /// group, or `None` when the merged session is already closed (a late record).
    fn merge_session(
        &mut self,
        key: &[u8],
        ts: i64,
        row_args: &[Vec<ArrayRef>],
        rows: &mut Vec<ResultRow>,
        deleted: &mut Vec<bool>,
    ) -> Result<Option<GroupKey>, ExecError> {
        let Some(spec) = self.spec.window else {
            return Ok(None);
        };
        let touching: Vec<TimeWindow> = self
            .store
            .windows_of(key)
            .iter()
            .filter(|w| spec.session_touches(w, ts))
            .copied()
            .collect();
        let merged = touching
            .iter()
            .fold(TimeWindow { start: ts, end: ts }, |m, w| TimeWindow {
                start: m.start.min(w.start),
                end: m.end.max(w.end),
            });
        if spec.is_closed(&merged, self.stream_time) {
            self.late_records += 1;
            return Ok(None);
        }
        let mut accumulators = self.spec.accumulators()?;
        let mut max_ts = ts;
        for window in touching {
            let old_key: GroupKey = (key.into(), Some(window));
            let Some(mut old) = self.store.remove(&old_key) else {
                continue;
            };
            if old.emitted {
                rows.push((old_key, self.spec.evaluate(&mut old)?, old.max_timestamp));
                deleted.push(true);
            }
            for (acc, previous) in accumulators.iter_mut().zip(old.accumulators.iter_mut()) {
                let state = previous
                    .state()?
                    .iter()
                    .map(ScalarValue::to_array)
                    .collect::<Result<Vec<_>, _>>()?;
                acc.merge_batch(&state)?;
            }
            max_ts = max_ts.max(old.max_timestamp);
        }
        for (acc, a) in accumulators.iter_mut().zip(row_args) {
            acc.update_batch(a)?;
        }
        let group: GroupKey = (key.into(), Some(merged));
        let state = self.store.get_or_insert_with(&group, || Ok(accumulators))?;
        state.max_timestamp = max_ts;
        Ok(Some(group))
    }

    /// Adds (or retracts) one row's arguments to a group.
    fn apply(
        &mut self,
        group: &GroupKey,
        args: &[Vec<ArrayRef>],
        ts: i64,
        retract: bool,
    ) -> Result<(), ExecError> {
        let spec = &self.spec;
        let state = self
            .store
            .get_or_insert_with(group, || spec.accumulators())?;
        state.max_timestamp = state.max_timestamp.max(ts);
        for (acc, a) in state.accumulators.iter_mut().zip(args) {
            if retract {
                acc.retract_batch(a)?
            } else {
                acc.update_batch(a)?
            }
        }
        Ok(())
    }

    /// With EMIT FINAL, notes whether the record just seen releases windows: decided record
    /// by record, as Kafka Streams does, so that how records are batched changes nothing.
    fn note_release(&mut self) {
        if self.spec.emit != EmitMode::Final {
            return;
        }
        if let Some(spec) = self.spec.window
            && let Some(release) = self
                .finals
                .release(&spec, self.stream_time, self.spec.retention)
        {
            self.releases.push(release);
        }
    }

    /// Drops windows that can no longer change; with EMIT FINAL, emits the windows the
    /// batch's records released.
    fn close_windows(&mut self, out: &mut Vec<Batch>) -> Result<(), ExecError> {
        let Some(spec) = self.spec.window else {
            return Ok(());
        };
        if self.spec.emit != EmitMode::Final {
            self.store
                .remove_ending_by(spec.closed_up_to(self.stream_time));
            return Ok(());
        }
        for release in std::mem::take(&mut self.releases) {
            self.emit_released(spec, release, out)?;
        }
        Ok(())
    }

    /// Emits (EMIT FINAL) the windows `release` makes final, in Kafka Streams' order.
    fn emit_released(
        &mut self,
        spec: WindowSpec,
        release: Release,
        out: &mut Vec<Batch>,
    ) -> Result<(), ExecError> {
        let mut closed = self.store.remove_ending_by(release.ending_by);
        closed.retain(|(key, _)| key.1.is_some_and(|w| w.start >= release.visible_from));
        // In the order Kafka Streams' stores give them: sessions by end; time windows by
        // store segment, then key, then start.
        let segment = (self.spec.retention / 2).max(60_000);
        closed.sort_by_cached_key(|(key, _)| {
            let w = key.1.unwrap_or(TimeWindow { start: 0, end: 0 });
            match spec {
                WindowSpec::Session { .. } => (w.end, key.0.clone(), w.start),
                _ => (w.start.div_euclid(segment), key.0.clone(), w.start),
            }
        });
        let mut finals = Vec::with_capacity(closed.len());
        for (key, mut state) in closed {
            let values = self.spec.evaluate(&mut state)?;
            finals.push((key, values, state.max_timestamp));
        }
        if finals.is_empty() {
            return Ok(());
        }
        let batch = self.result_rows(finals.iter().map(|(k, v, t)| (k, v.clone(), *t)))?;
        let data = match &self.spec.having {
            Some(having) => {
                arrow::compute::filter_record_batch(&batch, &evaluate_mask(having, &batch)?)?
            }
            None => batch,
        };
        if data.num_rows() > 0 {
            let n = data.num_rows();
            out.push(Batch {
                data,
                tombstones: Some(BooleanArray::from(vec![false; n])),
            });
        }
        Ok(())
    }
}

impl Operator for AggregateOp {
    fn name(&self) -> &'static str {
        "Aggregate"
    }

    fn process(&mut self, batch: Batch, out: &mut Vec<Batch>) -> Result<(), ExecError> {
        if self.spec.source_keys.is_some() {
            return self.process_table(&batch, out);
        }
        if matches!(self.spec.window, Some(WindowSpec::Session { .. })) {
            self.process_session(&batch, out)?;
            return self.close_windows(out);
        }
        let touched = self.assign_groups(&batch.data)?;
        self.update(&batch.data, &touched)?;
        if self.spec.emit == EmitMode::Changes && !touched.order.is_empty() {
            self.emit_changes(&touched, out)?;
        }
        self.close_windows(out)
    }

    /// Entries: `t` holds stream time; `g<group>` a group's state; over tables,
    /// `p<source key>` what the source row contributes (its group and arguments).
    fn checkpoint(&mut self) -> Result<Option<Vec<StateEntry>>, ExecError> {
        let mut entries = self.checkpoint_contributions()?;
        entries.extend([
            (
                STREAM_TIME.to_vec(),
                Some(self.stream_time.to_be_bytes().to_vec()),
            ),
            (FINALS.to_vec(), Some(encode_finals(&self.finals))),
        ]);
        self.store.drain_changed(|key, state| {
            let mut k = GROUP.to_vec();
            k.extend(encode_key(key));
            let value = match state {
                Some(state) => Some(encode_state(state)?),
                None => None,
            };
            entries.push((k, value));
            Ok::<(), ExecError>(())
        })?;
        Ok(Some(entries))
    }

    fn restore(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), ExecError> {
        if key == STREAM_TIME {
            let bytes = value.and_then(|v| v.try_into().ok()).unwrap_or([0; 8]);
            self.stream_time = i64::from_be_bytes(bytes);
            return Ok(());
        }
        if key == FINALS {
            self.finals = decode_finals(value.unwrap_or_default());
            return Ok(());
        }
        if let Some(source_key) = key.strip_prefix(CONTRIBUTION) {
            return self.restore_contribution(source_key, value);
        }
        let Some(group) = key.strip_prefix(GROUP).and_then(decode_key) else {
            return Err(ExecError::Internal("unknown changelog entry".into()));
        };
        let state = match value {
            Some(bytes) => Some(decode_state(bytes, self.spec.accumulators()?)?),
            None => None,
        };
        self.store.restore(group, state);
        Ok(())
    }
}

impl AggregateOp {
    /// The changed contributions of table rows, as changelog entries: the group key's
    /// bytes (length-prefixed), then the arguments as one row.
    fn checkpoint_contributions(&mut self) -> Result<Vec<StateEntry>, ExecError> {
        let Some((codec, _)) = &self.contribution_codec else {
            return Ok(Vec::new());
        };
        let mut entries = Vec::with_capacity(self.changed_sources.len());
        for source_key in self.changed_sources.drain() {
            let mut key = CONTRIBUTION.to_vec();
            key.extend_from_slice(&source_key);
            let value = match self.previous.get(&source_key) {
                Some((group, args)) => {
                    let group = encode_key(group);
                    let mut value = (group.len() as u32).to_be_bytes().to_vec();
                    value.extend(group);
                    let values = args
                        .iter()
                        .flatten()
                        .map(|a| ScalarValue::try_from_array(a, 0))
                        .collect::<Result<Vec<_>, _>>()?;
                    value.extend(codec.encode(&values)?);
                    Some(value)
                }
                None => None,
            };
            entries.push((key, value));
        }
        Ok(entries)
    }

    fn restore_contribution(
        &mut self,
        source_key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), ExecError> {
        let bad = || ExecError::Internal("malformed table aggregation changelog entry".into());
        let Some(value) = value else {
            self.previous.remove(source_key);
            return Ok(());
        };
        let (codec, counts) = self.contribution_codec.as_ref().ok_or_else(bad)?;
        let len = u32::from_be_bytes(
            value
                .get(..4)
                .ok_or_else(bad)?
                .try_into()
                .map_err(|_| bad())?,
        ) as usize;
        let group = decode_key(value.get(4..4 + len).ok_or_else(bad)?).ok_or_else(bad)?;
        let mut values = codec.decode(&value[4 + len..])?.into_iter();
        let mut args = Vec::with_capacity(counts.len());
        for count in counts {
            args.push(
                values
                    .by_ref()
                    .take(*count)
                    .map(|v| v.to_array())
                    .collect::<Result<Vec<_>, _>>()?,
            );
        }
        self.previous.insert(source_key.into(), (group, args));
        Ok(())
    }
}

/// Changelog key prefix of a table row's contribution.
const CONTRIBUTION: &[u8] = b"p";
/// Changelog key of an aggregation's stream time.
const STREAM_TIME: &[u8] = b"t";
/// Changelog key of EMIT FINAL's progress.
const FINALS: &[u8] = b"f";

/// EMIT FINAL's progress as bytes: last close time and latest window start, `i64::MIN`
/// standing for none.
fn encode_finals(finals: &FinalEmitter) -> Vec<u8> {
    let mut bytes = finals.last_close.unwrap_or(i64::MIN).to_be_bytes().to_vec();
    bytes.extend(finals.max_start.unwrap_or(i64::MIN).to_be_bytes());
    bytes
}

fn decode_finals(bytes: &[u8]) -> FinalEmitter {
    let field = |i: usize| {
        bytes
            .get(i * 8..i * 8 + 8)
            .and_then(|b| b.try_into().ok())
            .map(i64::from_be_bytes)
            .filter(|v| *v != i64::MIN)
    };
    FinalEmitter {
        last_close: field(0),
        max_start: field(1),
    }
}
/// Changelog key prefix of a group's state.
const GROUP: &[u8] = b"g";
