//! [`RegroupOp`]: a table's changes re-keyed by their new group, with retractions, as Kafka
//! Streams' `KTable.groupBy` sends them.
//!
//! GROUP BY over a table on several partitions moves each row to its group's partition
//! through a repartition topic. When a row changes group (or is deleted), the task holding its
//! old group must take back what it contributed, and that task may sit on another partition.
//! So the stage remembers each source key's current group and, before the new row, writes a
//! retraction keyed by the old group: the row with the retraction column set, which the
//! query's side turns back into a tombstone of the source key ([`RetractionsOp`]). The
//! aggregation then retracts and adds exactly as over a one-partition table.
//!
//! The first `keys` columns of the batch are the new key; a row whose new key has a NULL has
//! no group (ksqlDB drops it) and only retracts.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, UInt32Array};
use arrow::compute::{interleave_record_batch, take_record_batch};
use arrow::datatypes::Schema;
use arrow::row::{RowConverter, SortField};

use super::{Batch, ExecError, Operator, StateEntry};

/// Where the regrouping finds its columns.
#[derive(Debug, Clone)]
pub struct RegroupSpec {
    /// How many leading columns are the new key.
    pub keys: usize,
    /// The columns holding the source table's key.
    pub source_keys: Vec<usize>,
    /// The BOOLEAN column set on retractions (false on every input row).
    pub retract: usize,
}

/// Re-keys a table's changes, writing a retraction to a row's old group when it moves.
pub struct RegroupOp {
    spec: Arc<RegroupSpec>,
    groups: RowConverter,
    sources: RowConverter,
    /// Each source key's current group (both as rows of their converters).
    current: HashMap<Box<[u8]>, Box<[u8]>>,
    /// Source keys whose group changed since the last checkpoint.
    changed: HashSet<Box<[u8]>>,
}

impl std::fmt::Debug for RegroupOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegroupOp")
            .field("rows", &self.current.len())
            .finish()
    }
}

/// A converter for the given columns of `input`.
fn converter(
    input: &Schema,
    columns: impl Iterator<Item = usize>,
) -> Result<RowConverter, ExecError> {
    let fields = columns
        .map(|c| SortField::new(input.field(c).data_type().clone()))
        .collect();
    Ok(RowConverter::new(fields)?)
}

impl RegroupOp {
    /// A fresh operator (nothing remembered) over batches of `input`.
    pub fn try_new(spec: Arc<RegroupSpec>, input: &Schema) -> Result<Self, ExecError> {
        Ok(Self {
            groups: converter(input, 0..spec.keys)?,
            sources: converter(input, spec.source_keys.iter().copied())?,
            spec,
            current: HashMap::new(),
            changed: HashSet::new(),
        })
    }

    /// The retraction rows: rows `rows` of `data` with their key replaced by `old` groups
    /// and the retraction column set.
    fn retractions(
        &self,
        data: &RecordBatch,
        rows: Vec<u32>,
        old: Vec<Box<[u8]>>,
    ) -> Result<RecordBatch, ExecError> {
        let taken = take_record_batch(data, &UInt32Array::from(rows))?;
        let parser = self.groups.parser();
        let keys = self
            .groups
            .convert_rows(old.iter().map(|g| parser.parse(g)))?;
        let mut columns: Vec<ArrayRef> = taken.columns().to_vec();
        columns[..self.spec.keys].clone_from_slice(&keys);
        columns[self.spec.retract] = Arc::new(BooleanArray::from(vec![true; taken.num_rows()]));
        Ok(RecordBatch::try_new(taken.schema(), columns)?)
    }
}

impl Operator for RegroupOp {
    fn name(&self) -> &'static str {
        "Regroup"
    }

    fn process(&mut self, batch: Batch, out: &mut Vec<Batch>) -> Result<(), ExecError> {
        let data = &batch.data;
        let key_columns = &data.columns()[..self.spec.keys];
        let groups = self.groups.convert_columns(key_columns)?;
        let source_columns: Vec<ArrayRef> = self
            .spec
            .source_keys
            .iter()
            .map(|c| Arc::clone(data.column(*c)))
            .collect();
        let sources = self.sources.convert_columns(&source_columns)?;
        // (0, row): the row itself; (1, j): the j-th retraction.
        let mut order = Vec::new();
        let (mut retracted, mut old_groups) = (Vec::new(), Vec::new());
        for row in 0..data.num_rows() {
            let source: Box<[u8]> = sources.row(row).as_ref().into();
            let grouped = !batch.is_tombstone(row) && key_columns.iter().all(|k| k.is_valid(row));
            let group: Option<Box<[u8]>> = grouped.then(|| groups.row(row).as_ref().into());
            let old = match &group {
                Some(g) => self.current.insert(source.clone(), g.clone()),
                None => self.current.remove(&source),
            };
            if let Some(old) = old.filter(|old| Some(old) != group.as_ref()) {
                order.push((1, retracted.len()));
                retracted.push(row as u32);
                old_groups.push(old);
            }
            if group.is_some() {
                order.push((0, row));
            }
            self.changed.insert(source);
        }
        if order.is_empty() {
            return Ok(());
        }
        if retracted.is_empty() && order.len() == data.num_rows() {
            // No row moved or left: the batch goes on as it is.
            out.push(Batch::stream(batch.data));
            return Ok(());
        }
        let retractions = self.retractions(data, retracted, old_groups)?;
        let merged = interleave_record_batch(&[data, &retractions], &order)?;
        out.push(Batch::stream(merged));
        Ok(())
    }

    /// Entries: source key → its current group (deleted when it has none).
    fn checkpoint(&mut self) -> Result<Option<Vec<StateEntry>>, ExecError> {
        Ok(Some(
            self.changed
                .drain()
                .map(|source| {
                    let group = self.current.get(&source).map(|g| g.to_vec());
                    (source.into_vec(), group)
                })
                .collect(),
        ))
    }

    fn restore(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), ExecError> {
        match value {
            Some(group) => self.current.insert(key.into(), group.into()),
            None => self.current.remove(key),
        };
        Ok(())
    }
}

/// Turns the rows of a regrouped topic whose retraction column is true into tombstones, so
/// a table aggregation downstream retracts their source key.
#[derive(Debug)]
pub struct RetractionsOp {
    column: usize,
}

impl RetractionsOp {
    /// Reads the BOOLEAN column `column` of each batch.
    pub fn new(column: usize) -> Self {
        Self { column }
    }
}

impl Operator for RetractionsOp {
    fn name(&self) -> &'static str {
        "Retractions"
    }

    fn process(&mut self, batch: Batch, out: &mut Vec<Batch>) -> Result<(), ExecError> {
        let flags = batch
            .data
            .column(self.column)
            .as_boolean_opt()
            .ok_or_else(|| ExecError::Internal("the retraction column is not BOOLEAN".into()))?;
        let tombstones: BooleanArray = flags.iter().map(|f| Some(f.unwrap_or(false))).collect();
        out.push(Batch {
            data: batch.data,
            tombstones: Some(tombstones),
        });
        Ok(())
    }
}

/// Keeps a table's upserts and drops its deletes (a foreign-key join's response stage
/// answers subscriptions, never their retractions).
#[derive(Debug)]
pub struct DropTombstonesOp;

impl Operator for DropTombstonesOp {
    fn name(&self) -> &'static str {
        "DropTombstones"
    }

    fn process(&mut self, batch: Batch, out: &mut Vec<Batch>) -> Result<(), ExecError> {
        let Some(tombstones) = &batch.tombstones else {
            out.push(batch);
            return Ok(());
        };
        let kept =
            arrow::compute::filter_record_batch(&batch.data, &arrow::compute::not(tombstones)?)?;
        if kept.num_rows() > 0 {
            out.push(Batch::stream(kept));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field};

    fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![
            Field::new("G", DataType::Utf8, true),
            Field::new("ID", DataType::Int64, true),
            Field::new("$RETRACT", DataType::Boolean, true),
        ]))
    }

    fn batch(rows: &[(Option<&str>, i64, bool)]) -> Batch {
        let data = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(rows.iter().map(|r| r.0).collect::<StringArray>()),
                Arc::new(rows.iter().map(|r| r.1).collect::<Int64Array>()),
                Arc::new(BooleanArray::from(vec![false; rows.len()])),
            ],
        )
        .unwrap();
        Batch {
            data,
            tombstones: Some(rows.iter().map(|r| Some(r.2)).collect()),
        }
    }

    /// (group, id, retract) of each output row.
    fn rows(out: &[Batch]) -> Vec<(Option<String>, i64, bool)> {
        let mut rows = Vec::new();
        for b in out {
            let g = b.data.column(0).as_string::<i32>();
            let id = b
                .data
                .column(1)
                .as_primitive::<arrow::datatypes::Int64Type>();
            let r = b.data.column(2).as_boolean();
            for i in 0..b.data.num_rows() {
                rows.push((
                    g.is_valid(i).then(|| g.value(i).to_string()),
                    id.value(i),
                    r.value(i),
                ));
            }
        }
        rows
    }

    fn op() -> RegroupOp {
        let spec = RegroupSpec {
            keys: 1,
            source_keys: vec![1],
            retract: 2,
        };
        RegroupOp::try_new(Arc::new(spec), &schema()).unwrap()
    }

    #[test]
    fn a_row_moving_group_retracts_from_the_old_one_first() {
        let mut op = op();
        let mut out = Vec::new();
        op.process(
            batch(&[(Some("a"), 1, false), (Some("a"), 1, false)]),
            &mut out,
        )
        .unwrap();
        op.process(
            batch(&[(Some("b"), 1, false), (None, 1, false), (None, 1, true)]),
            &mut out,
        )
        .unwrap();
        let s = |g: &str| Some(g.to_string());
        assert_eq!(
            rows(&out),
            vec![
                (s("a"), 1, false),
                (s("a"), 1, false),
                (s("a"), 1, true),
                (s("b"), 1, false),
                (s("b"), 1, true),
            ]
        );
    }

    #[test]
    fn the_current_groups_survive_a_restore() {
        let mut op = op();
        op.process(
            batch(&[(Some("a"), 1, false), (Some("b"), 2, false)]),
            &mut Vec::new(),
        )
        .unwrap();
        op.process(batch(&[(Some("b"), 2, true)]), &mut Vec::new())
            .unwrap();
        let entries = op.checkpoint().unwrap().unwrap();
        assert_eq!(entries.len(), 2);
        let mut restored = self::op();
        for (k, v) in &entries {
            restored.restore(k, v.as_deref()).unwrap();
        }
        let mut out = Vec::new();
        restored
            .process(
                batch(&[(Some("c"), 1, false), (Some("c"), 2, false)]),
                &mut out,
            )
            .unwrap();
        let s = |g: &str| Some(g.to_string());
        assert_eq!(
            rows(&out),
            vec![(s("a"), 1, true), (s("c"), 1, false), (s("c"), 2, false)]
        );
    }

    #[test]
    fn retractions_become_tombstones() {
        let mut out = Vec::new();
        let mut regrouped = Vec::new();
        let mut op = op();
        op.process(batch(&[(Some("a"), 1, false)]), &mut regrouped)
            .unwrap();
        op.process(batch(&[(Some("b"), 1, false)]), &mut regrouped)
            .unwrap();
        for b in regrouped {
            RetractionsOp::new(2).process(b, &mut out).unwrap();
        }
        let flags: Vec<Vec<bool>> = out.iter().map(Batch::tombstone_flags).collect();
        assert_eq!(flags, vec![vec![false], vec![true, false]]);
    }
}
