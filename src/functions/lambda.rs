//! ksqlDB's lambda functions: `TRANSFORM`, `FILTER` and `REDUCE` over arrays and maps.
//!
//! The planner plans each lambda body as a DataFusion `PhysicalExpr` over a batch whose
//! columns are the lambda's parameters ([`Lambda`]); this UDF evaluates the bodies row by
//! row: over all of an array's elements (or a map's entries) at once for TRANSFORM and
//! FILTER, element by element for REDUCE, whose state carries from one to the next; REDUCE
//! over a NULL collection gives its initial state, as in ksqlDB. Lambda bodies see only their
//! parameters (not the row's other columns). Arithmetic on a NULL inside a lambda body fails
//! the call ([`Unboxed`]), so the whole result is NULL, as Java's unboxing makes it in ksqlDB;
//! so does a TRANSFORM of a map that yields one key twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion_common::{Result, ScalarValue, exec_err};
use datafusion_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_physical_expr::PhysicalExpr;

/// A planned lambda: its body and the schema of its parameters.
#[derive(Debug, Clone)]
pub struct Lambda {
    /// The body, over batches of `params`.
    pub body: Arc<dyn PhysicalExpr>,
    /// One column per parameter.
    pub params: SchemaRef,
}

impl Lambda {
    fn eval(&self, columns: Vec<ArrayRef>) -> Result<ArrayRef> {
        let rows = columns.first().map_or(0, |c| c.len());
        let batch = RecordBatch::try_new(Arc::clone(&self.params), columns)?;
        self.body.evaluate(&batch)?.into_array(rows)
    }
}

/// An arithmetic operand inside a lambda body: passed through, but a NULL fails the call
/// (ksqlDB's lambdas unbox their numbers, and a NULL throws).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Unboxed {
    signature: Signature,
}

impl Unboxed {
    /// The check as a DataFusion function of one argument.
    pub fn udf() -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::new_from_impl(Self {
            signature: Signature::any(1, Volatility::Immutable),
        }))
    }
}

impl ScalarUDFImpl for Unboxed {
    fn name(&self) -> &str {
        "unboxed"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args.first().cloned().unwrap_or(DataType::Null))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let Some(value) = args.args.into_iter().next() else {
            return exec_err!("unboxed takes one argument");
        };
        let nulls = match &value {
            ColumnarValue::Array(a) => a.null_count() > 0,
            ColumnarValue::Scalar(s) => s.is_null(),
        };
        if nulls {
            return exec_err!("arithmetic on a NULL in a lambda");
        }
        Ok(value)
    }
}

/// Which higher-order function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `TRANSFORM(array, x => ..)`, `TRANSFORM(map, (k, v) => .., (k, v) => ..)`
    Transform,
    /// `FILTER(array, x => ..)`, `FILTER(map, (k, v) => ..)`
    Filter,
    /// `REDUCE(array, s0, (s, x) => ..)`, `REDUCE(map, s0, (s, k, v) => ..)`
    Reduce,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// One call of a lambda function, with its planned lambdas.
#[derive(Debug)]
pub struct LambdaCall {
    id: u64,
    kind: Kind,
    lambdas: Vec<Lambda>,
    returns: DataType,
    signature: Signature,
}

// Each planned call is its own function.
super::identified_by!(LambdaCall, id);

impl LambdaCall {
    /// The UDF for one call: `kind` over a collection, with `lambdas`, returning `returns`.
    pub fn udf(kind: Kind, lambdas: Vec<Lambda>, returns: DataType) -> Arc<ScalarUDF> {
        let arity = if kind == Kind::Reduce { 2 } else { 1 };
        Arc::new(ScalarUDF::new_from_impl(Self {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            kind,
            lambdas,
            returns,
            signature: Signature::any(arity, Volatility::Immutable),
        }))
    }

    fn one(&self, collection: &ArrayRef, init: Option<ScalarValue>) -> Result<ScalarValue> {
        let map_parts = |m: &arrow::array::MapArray| {
            let entries = m.value(0);
            (Arc::clone(entries.column(0)), Arc::clone(entries.column(1)))
        };
        match (self.kind, collection.data_type()) {
            (Kind::Transform, DataType::List(_)) => {
                let items = collection.as_list::<i32>().value(0);
                list(self.lambdas[0].eval(vec![items])?)
            }
            (Kind::Filter, DataType::List(_)) => {
                let items = collection.as_list::<i32>().value(0);
                let keep = self.lambdas[0].eval(vec![Arc::clone(&items)])?;
                if keep.null_count() > 0 {
                    // ksqlDB's predicate cannot answer NULL: the call fails, giving NULL.
                    return ScalarValue::try_from(&self.returns);
                }
                let kept = arrow::compute::filter(&items, keep.as_boolean())?;
                list(kept)
            }
            (Kind::Reduce, DataType::List(_)) => {
                let items = collection.as_list::<i32>().value(0);
                self.fold(init, &[items])
            }
            (Kind::Transform, DataType::Map(..)) => {
                let (k, v) = map_parts(collection.as_map());
                let keys = self.lambdas[0].eval(vec![Arc::clone(&k), Arc::clone(&v)])?;
                let mut seen = std::collections::HashSet::new();
                let unique = (0..keys.len())
                    .all(|i| ScalarValue::try_from_array(&keys, i).is_ok_and(|s| seen.insert(s)));
                if !unique {
                    // ksqlDB's map builder refuses a key twice: the call fails, giving NULL.
                    return ScalarValue::try_from(&self.returns);
                }
                let values = self.lambdas[1].eval(vec![k, v])?;
                map(&self.returns, keys, values)
            }
            (Kind::Filter, DataType::Map(..)) => {
                let (k, v) = map_parts(collection.as_map());
                let keep = self.lambdas[0].eval(vec![Arc::clone(&k), Arc::clone(&v)])?;
                if keep.null_count() > 0 {
                    return ScalarValue::try_from(&self.returns);
                }
                let mask = keep.as_boolean();
                map(
                    &self.returns,
                    arrow::compute::filter(&k, mask)?,
                    arrow::compute::filter(&v, mask)?,
                )
            }
            (Kind::Reduce, DataType::Map(..)) => {
                let (k, v) = map_parts(collection.as_map());
                self.fold(init, &[k, v])
            }
            (_, other) => exec_err!("lambda functions take an ARRAY or a MAP, not {other}"),
        }
    }

    /// REDUCE: the state through each element in turn.
    fn fold(&self, init: Option<ScalarValue>, columns: &[ArrayRef]) -> Result<ScalarValue> {
        let mut state = init.unwrap_or(ScalarValue::Null).cast_to(&self.returns)?;
        for i in 0..columns.first().map_or(0, |c| c.len()) {
            let mut args = vec![state.to_array()?];
            args.extend(columns.iter().map(|c| c.slice(i, 1)));
            let next = self.lambdas[0].eval(args)?;
            state = ScalarValue::try_from_array(&next, 0)?.cast_to(&self.returns)?;
        }
        Ok(state)
    }
}

fn list(items: ArrayRef) -> Result<ScalarValue> {
    let values = (0..items.len())
        .map(|i| ScalarValue::try_from_array(&items, i))
        .collect::<Result<Vec<_>>>()?;
    Ok(ScalarValue::List(ScalarValue::new_list_nullable(
        &values,
        items.data_type(),
    )))
}

fn map(returns: &DataType, keys: ArrayRef, values: ArrayRef) -> Result<ScalarValue> {
    let DataType::Map(entries, sorted) = returns else {
        return exec_err!("TRANSFORM of a MAP returns a MAP");
    };
    let DataType::Struct(fields) = entries.data_type() else {
        return exec_err!("malformed MAP type");
    };
    let keys = arrow::compute::cast(&keys, fields[0].data_type())?;
    let values = arrow::compute::cast(&values, fields[1].data_type())?;
    let struct_array =
        arrow::array::StructArray::try_new(fields.clone(), vec![keys, values], None)?;
    let offsets = arrow::buffer::OffsetBuffer::from_lengths([struct_array.len()]);
    let map =
        arrow::array::MapArray::try_new(Arc::clone(entries), offsets, struct_array, None, *sorted)?;
    Ok(ScalarValue::Map(Arc::new(map)))
}

impl ScalarUDFImpl for LambdaCall {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Transform => "transform",
            Kind::Filter => "filter",
            Kind::Reduce => "reduce",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.returns.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (n, columns) = super::arg_arrays(args)?;
        let mut out = Vec::with_capacity(n);
        for row in 0..n {
            let collection = columns[0].slice(row, 1);
            let init = columns
                .get(1)
                .map(|c| ScalarValue::try_from_array(c, row))
                .transpose()?;
            out.push(match (collection.is_null(0), self.kind) {
                // REDUCE over nothing is its initial state.
                (true, Kind::Reduce) => init.unwrap_or(ScalarValue::Null).cast_to(&self.returns)?,
                (true, _) => ScalarValue::try_from(&self.returns)?,
                (false, _) => self.one(&collection, init)?,
            });
        }
        super::result_column(out, &self.returns)
    }
}

/// The parameters of a lambda as a schema (names as ksqlDB normalizes them).
pub fn params(names: &[String], types: &[DataType]) -> SchemaRef {
    Arc::new(Schema::new(
        names
            .iter()
            .zip(types)
            .map(|(n, t)| Field::new(n, t.clone(), true))
            .collect::<Vec<_>>(),
    ))
}
