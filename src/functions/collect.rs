//! ksqlDB's aggregates over the values themselves: COLLECT_LIST, COLLECT_SET, TOPK,
//! TOPKDISTINCT and HISTOGRAM.
//!
//! They share one accumulator that keeps every value seen (in arrival order) and computes
//! its result on demand. Keeping the values is what lets a table aggregation *retract* the
//! exact value an update replaces, which DataFusion's `array_agg` (which retracts the oldest
//! value, for window frames) cannot do. Merging states (when session windows merge) appends
//! the values kept. COLLECT_LIST and COLLECT_SET give at most their limit of values (ksqlDB's
//! `ksql.functions.collect_list.limit` and `collect_set.limit`, 1,000 by default): the
//! first ones.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion_common::{Result, ScalarValue, exec_err};
use datafusion_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, Signature, Volatility,
};

/// Which aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Every value, in arrival order.
    List,
    /// Distinct values, in order of first arrival.
    Set,
    /// The `k` greatest values, greatest first.
    TopK,
    /// The `k` greatest distinct values, greatest first.
    TopKDistinct,
    /// Each value's count.
    Histogram,
    /// The first `k` values (EARLIEST_BY_OFFSET(x, k)).
    Earliest,
    /// The last `k` values (LATEST_BY_OFFSET(x, k)).
    Latest,
}

/// One of the collecting aggregates, as a DataFusion aggregate function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Collect {
    kind: Kind,
    /// At most this many values in the result (COLLECT_LIST, COLLECT_SET).
    limit: usize,
    signature: Signature,
}

/// ksqlDB's default limit on the values COLLECT_LIST and COLLECT_SET return.
pub const DEFAULT_LIMIT: usize = 1000;

/// The limits of COLLECT_LIST and COLLECT_SET (`ksql.functions.collect_list.limit`,
/// `ksql.functions.collect_set.limit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectLimits {
    /// COLLECT_LIST's.
    pub list: usize,
    /// COLLECT_SET's.
    pub set: usize,
}

impl Default for CollectLimits {
    fn default() -> Self {
        Self {
            list: DEFAULT_LIMIT,
            set: DEFAULT_LIMIT,
        }
    }
}

impl Collect {
    /// The aggregate function of `kind` (with the default limit).
    pub fn udaf(kind: Kind) -> Arc<AggregateUDF> {
        Self::limited(kind, DEFAULT_LIMIT)
    }

    /// The aggregate function of `kind`, returning at most `limit` values.
    pub fn limited(kind: Kind, limit: usize) -> Arc<AggregateUDF> {
        Arc::new(AggregateUDF::new_from_impl(Self {
            kind,
            limit,
            signature: Signature::variadic_any(Volatility::Immutable),
        }))
    }
}

impl AggregateUDFImpl for Collect {
    fn name(&self) -> &str {
        match self.kind {
            Kind::List => "collect_list",
            Kind::Set => "collect_set",
            Kind::TopK => "topk",
            Kind::TopKDistinct => "topkdistinct",
            Kind::Histogram => "histogram",
            Kind::Earliest => "earliest_by_offset",
            Kind::Latest => "latest_by_offset",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let Some(item) = arg_types.first() else {
            return exec_err!("{} takes a column", self.name());
        };
        Ok(match self.kind {
            Kind::Histogram => crate::types::map_of(DataType::Utf8, DataType::Int64),
            Kind::TopK if arg_types.len() > 2 => DataType::List(Arc::new(Field::new(
                "item",
                DataType::Struct(top_fields(&arg_types[..arg_types.len() - 1])),
                true,
            ))),
            _ => DataType::List(Arc::new(Field::new("item", item.clone(), true))),
        })
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        // The state is every value kept, as a list (for HISTOGRAM too).
        let types = super::input_types(&args);
        let item = match self.return_type(&types)? {
            DataType::List(item) => item.data_type().clone(),
            _ => types.first().cloned().unwrap_or(DataType::Null),
        };
        Ok(vec![Arc::new(Field::new(
            format!("{}_state", args.name),
            DataType::List(Arc::new(Field::new("item", item, true))),
            true,
        ))])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let counted = matches!(
            self.kind,
            Kind::TopK | Kind::TopKDistinct | Kind::Earliest | Kind::Latest
        );
        let count_arg = match self.kind {
            Kind::Earliest | Kind::Latest => args.exprs.get(1),
            _ => args.exprs.last().filter(|_| args.exprs.len() > 1),
        };
        let k = match (counted, count_arg) {
            (true, Some(k)) => {
                match k.evaluate(&RecordBatch::new_empty(Arc::new(args.schema.clone())))? {
                    ColumnarValue::Scalar(s) if !s.is_null() => {
                        match s.cast_to(&DataType::Int64)? {
                            ScalarValue::Int64(Some(n)) => usize::try_from(n).unwrap_or(0),
                            _ => 0,
                        }
                    }
                    _ => return exec_err!("{}'s second argument must be a number", self.name()),
                }
            }
            (true, None) => {
                return exec_err!("{} takes a column and a count", self.name());
            }
            _ => 0,
        };
        let width = match self.kind {
            Kind::TopK => args.exprs.len().saturating_sub(1).max(1),
            _ => 1,
        };
        let item = match args.return_field.data_type() {
            DataType::List(f) => f.data_type().clone(),
            other => other.clone(),
        };
        Ok(Box::new(Values {
            kind: self.kind,
            limit: self.limit,
            k,
            ignore_nulls: args.ignore_nulls,
            width,
            item,
            values: Vec::new(),
        }))
    }
}

/// TOPK's result fields when it carries other columns: `sort_col`, `col0`, `col1`, ...
fn top_fields(types: &[DataType]) -> arrow::datatypes::Fields {
    types
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let name = if i == 0 {
                "sort_col".to_string()
            } else {
                format!("col{}", i - 1)
            };
            Field::new(name, t.clone(), true)
        })
        .collect()
}

/// Every value seen, in arrival order.
#[derive(Debug)]
struct Values {
    kind: Kind,
    /// At most this many values in a COLLECT_LIST or COLLECT_SET result.
    limit: usize,
    k: usize,
    /// EARLIEST/LATEST: skip NULL inputs.
    ignore_nulls: bool,
    /// How many arguments make one value (TOPK may carry other columns with its sort value).
    width: usize,
    /// The type of one element of the result.
    item: DataType,
    values: Vec<ScalarValue>,
}

/// A map value with its entries sorted by key (other values as they are), so that two maps
/// with the same entries compare equal.
fn sorted_map(value: &ScalarValue) -> ScalarValue {
    let ScalarValue::Map(map) = value else {
        return value.clone();
    };
    let sorted = || -> Result<ScalarValue> {
        if map.is_empty() || map.is_null(0) {
            return Ok(value.clone());
        }
        let entries = map.value(0);
        let order = arrow::compute::sort_to_indices(entries.column(0), None, None)?;
        let columns = entries
            .columns()
            .iter()
            .map(|c| arrow::compute::take(c, &order, None))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let entries = arrow::array::StructArray::try_new(entries.fields().clone(), columns, None)?;
        let DataType::Map(field, ordered) = map.data_type() else {
            return Ok(value.clone());
        };
        let offsets = arrow::buffer::OffsetBuffer::from_lengths([entries.len()]);
        Ok(ScalarValue::Map(Arc::new(arrow::array::MapArray::try_new(
            Arc::clone(field),
            offsets,
            entries,
            None,
            *ordered,
        )?)))
    };
    sorted().unwrap_or_else(|_| value.clone())
}

impl Values {
    /// Whether a NULL input is kept (COLLECT_LIST and COLLECT_SET keep them).
    fn keeps_nulls(&self) -> bool {
        match self.kind {
            Kind::List | Kind::Set => true,
            Kind::Earliest | Kind::Latest => !self.ignore_nulls,
            _ => false,
        }
    }

    /// The values once each, in arrival order; maps equal whatever their entries' order.
    fn distinct(&self) -> Vec<ScalarValue> {
        let mut seen: Vec<ScalarValue> = Vec::new();
        let mut out = Vec::new();
        for v in &self.values {
            let canonical = sorted_map(v);
            if !seen.contains(&canonical) {
                seen.push(canonical);
                out.push(v.clone());
            }
        }
        out
    }

    /// The `k` greatest, greatest first; ties keep their arrival order.
    fn top(&self, mut values: Vec<ScalarValue>) -> Vec<ScalarValue> {
        let sort_value = |v: &ScalarValue| match v {
            ScalarValue::Struct(s) => {
                ScalarValue::try_from_array(s.column(0), 0).unwrap_or(ScalarValue::Null)
            }
            other => other.clone(),
        };
        values.sort_by(|a, b| {
            sort_value(b)
                .partial_cmp(&sort_value(a))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        values.truncate(self.k);
        values
    }

    /// Row `i` of the arguments as one value (a struct when TOPK carries other columns).
    fn value(&self, args: &[ArrayRef], i: usize) -> Result<ScalarValue> {
        if self.width == 1 {
            return ScalarValue::try_from_array(&args[0], i);
        }
        let DataType::Struct(fields) = &self.item else {
            return exec_err!("TOPK with columns needs a STRUCT result");
        };
        let columns = args[..self.width]
            .iter()
            .map(|a| a.slice(i, 1))
            .collect::<Vec<_>>();
        let row = arrow::array::StructArray::try_new(fields.clone(), columns, None)?;
        Ok(ScalarValue::Struct(Arc::new(row)))
    }

    fn histogram(&self) -> Result<ScalarValue> {
        let mut counts: Vec<(ScalarValue, i64)> = Vec::new();
        for v in &self.values {
            match counts.iter_mut().find(|(k, _)| k == v) {
                Some((_, n)) => *n += 1,
                None => counts.push((v.clone(), 1)),
            }
        }
        let keys: Vec<ScalarValue> = counts
            .iter()
            .map(|(k, _)| ScalarValue::Utf8(Some(k.to_string())))
            .collect();
        let values: Vec<ScalarValue> = counts
            .iter()
            .map(|(_, n)| ScalarValue::Int64(Some(*n)))
            .collect();
        let map_type = crate::types::map_of(DataType::Utf8, DataType::Int64);
        let DataType::Map(entries, sorted) = &map_type else {
            return exec_err!("malformed MAP type");
        };
        let DataType::Struct(fields) = entries.data_type() else {
            return exec_err!("malformed MAP type");
        };
        let key_array = if keys.is_empty() {
            arrow::array::new_empty_array(&DataType::Utf8)
        } else {
            ScalarValue::iter_to_array(keys)?
        };
        let value_array = if values.is_empty() {
            arrow::array::new_empty_array(&DataType::Int64)
        } else {
            ScalarValue::iter_to_array(values)?
        };
        let entries_array =
            arrow::array::StructArray::try_new(fields.clone(), vec![key_array, value_array], None)?;
        let offsets = arrow::buffer::OffsetBuffer::from_lengths([entries_array.len()]);
        let map = arrow::array::MapArray::try_new(
            Arc::clone(entries),
            offsets,
            entries_array,
            None,
            *sorted,
        )?;
        Ok(ScalarValue::Map(Arc::new(map)))
    }
}

impl Accumulator for Values {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for i in 0..values[0].len() {
            if values[0].is_null(i) && !self.keeps_nulls() {
                continue;
            }
            let v = self.value(values, i)?;
            self.values.push(v);
        }
        Ok(())
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for i in 0..values[0].len() {
            let v = self.value(values, i)?;
            if let Some(at) = self.values.iter().position(|x| *x == v) {
                self.values.remove(at);
            }
        }
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let list = |values: Vec<ScalarValue>| {
            ScalarValue::List(ScalarValue::new_list_nullable(&values, &self.item))
        };
        Ok(match self.kind {
            Kind::List => list(self.values.iter().take(self.limit).cloned().collect()),
            Kind::Set => list(self.distinct().into_iter().take(self.limit).collect()),
            Kind::TopK => list(self.top(self.values.clone())),
            Kind::TopKDistinct => list(self.top(self.distinct())),
            Kind::Histogram => self.histogram()?,
            Kind::Earliest => list(self.values.iter().take(self.k).cloned().collect()),
            Kind::Latest => {
                let skip = self.values.len().saturating_sub(self.k);
                list(self.values[skip..].to_vec())
            }
        })
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.values.iter().map(ScalarValue::size).sum::<usize>()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let item = match self.kind {
            Kind::Histogram => self
                .values
                .first()
                .map_or(DataType::Utf8, ScalarValue::data_type),
            _ => self.item.clone(),
        };
        Ok(vec![ScalarValue::List(ScalarValue::new_list_nullable(
            &self.values,
            &item,
        ))])
    }

    /// Merging states (session windows that merge) appends the other's values.
    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let Some(lists) = states.first() else {
            return Ok(());
        };
        for i in 0..lists.len() {
            if let ScalarValue::List(list) = ScalarValue::try_from_array(lists, i)? {
                let values = list.value(0);
                for j in 0..values.len() {
                    self.values.push(ScalarValue::try_from_array(&values, j)?);
                }
            }
        }
        Ok(())
    }
}
