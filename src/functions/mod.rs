//! ksqlDB's functions, by name, as DataFusion functions.
//!
//! [`scalar`] and [`aggregate`] map a ksqlDB function name (case-insensitive) to the
//! DataFusion UDF with the same meaning. Only functions whose semantics match are mapped
//! here; ksqlDB functions that DataFusion lacks or computes differently will be Eddy UDFs in
//! this module. `COUNT(*)` is handled by the planner, which counts `ROWTIME`; `COALESCE`/`IFNULL`
//! are lowered to `CASE` by [`crate::plan::expr`].

use std::sync::Arc;

pub mod attr;
pub mod cast;
pub mod collect;
pub mod cube;
pub mod entries;
pub mod json;
pub mod lambda;
pub mod rowwise;
pub mod sum_list;
pub mod test_udfs;

use collect::{Collect, Kind};

use datafusion_expr::{AggregateUDF, ScalarUDF};

/// Implements `PartialEq`, `Eq` and `Hash` for a UDF type by one field that identifies it.
macro_rules! identified_by {
    ($ty:ty, $field:ident) => {
        impl PartialEq for $ty {
            fn eq(&self, other: &Self) -> bool {
                self.$field == other.$field
            }
        }

        impl Eq for $ty {}

        impl std::hash::Hash for $ty {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                self.$field.hash(state);
            }
        }
    };
}
pub(crate) use identified_by;

/// A row-by-row UDF's arguments as arrays of `rows` rows.
pub(crate) fn arg_arrays(
    args: datafusion_expr::ScalarFunctionArgs,
) -> datafusion_common::Result<(usize, Vec<arrow::array::ArrayRef>)> {
    let n = args.number_rows;
    let columns = args
        .args
        .into_iter()
        .map(|a| a.into_array(n))
        .collect::<datafusion_common::Result<Vec<_>>>()?;
    Ok((n, columns))
}

/// A row-by-row UDF's results as one column of `returns`.
pub(crate) fn result_column(
    out: Vec<datafusion_common::ScalarValue>,
    returns: &arrow::datatypes::DataType,
) -> datafusion_common::Result<datafusion_expr::ColumnarValue> {
    if out.is_empty() {
        return Ok(datafusion_expr::ColumnarValue::Array(
            arrow::array::new_empty_array(returns),
        ));
    }
    Ok(datafusion_expr::ColumnarValue::Array(
        datafusion_common::ScalarValue::iter_to_array(out)?,
    ))
}

/// The scalar function ksqlDB calls `name`.
pub fn scalar(name: &str) -> Option<Arc<ScalarUDF>> {
    use datafusion_functions::{core, math, string, unicode};
    Some(match name.to_ascii_uppercase().as_str() {
        "UCASE" => string::upper(),
        "LCASE" => string::lower(),
        "TRIM" => string::btrim(),
        "CONCAT" => string::concat(),
        "REPLACE" => string::replace(),
        "LEN" => unicode::character_length(),
        "SUBSTRING" => unicode::substr(),
        "ABS" => math::abs(),
        "CEIL" => math::ceil(),
        "FLOOR" => math::floor(),
        "SQRT" => math::sqrt(),
        "NULLIF" => core::nullif(),
        "GREATEST" => core::greatest(),
        "LEAST" => core::least(),
        "ROUND" => math::round(),
        "POWER" => math::power(),
        "SIGN" => math::signum(),
        "EXP" => math::exp(),
        "LN" => math::ln(),
        "TRUNC" => math::trunc(),
        "CBRT" => math::cbrt(),
        "SIN" => math::sin(),
        "COS" => math::cos(),
        "TAN" => math::tan(),
        "COT" => math::cot(),
        "ASIN" => math::asin(),
        "ACOS" => math::acos(),
        "ATAN" => math::atan(),
        "ATAN2" => math::atan2(),
        "SINH" => math::sinh(),
        "COSH" => math::cosh(),
        "TANH" => math::tanh(),
        "DEGREES" => math::degrees(),
        "RADIANS" => math::radians(),
        "PI" => math::pi(),
        "RANDOM" => math::random(),
        "CONCAT_WS" => string::concat_ws(),
        "TO_JSON_STRING" => json::ToJsonString::udf(),
        other => {
            return nested(other)
                .or_else(|| rowwise::function(other))
                .or_else(|| test_udfs::function(other));
        }
    })
}

/// ksqlDB's ARRAY and MAP functions with a DataFusion counterpart.
fn nested(name: &str) -> Option<Arc<ScalarUDF>> {
    use datafusion_functions_nested::{
        array_has, concat, except, extract, length, map_keys, map_values, min_max, remove, set_ops,
        sort,
    };
    Some(match name {
        "ARRAY_LENGTH" => length::array_length_udf(),
        "ARRAY_CONTAINS" => array_has::array_has_udf(),
        "ARRAY_MAX" => min_max::array_max_udf(),
        "ARRAY_MIN" => min_max::array_min_udf(),
        "ARRAY_SORT" => sort::array_sort_udf(),
        "ARRAY_DISTINCT" => set_ops::array_distinct_udf(),
        "ARRAY_REMOVE" => remove::array_remove_all_udf(),
        "ARRAY_CONCAT" => concat::array_concat_udf(),
        "ARRAY_UNION" => set_ops::array_union_udf(),
        "ARRAY_INTERSECT" => set_ops::array_intersect_udf(),
        "ARRAY_EXCEPT" => except::array_except_udf(),
        "SLICE" => extract::array_slice_udf(),
        "MAP_KEYS" => map_keys::map_keys_udf(),
        "AS_MAP" => datafusion_functions_nested::map::map_udf(),
        "ENTRIES" => entries::Entries::udf(),
        "MAP_VALUES" => map_values::map_values_udf(),
        _ => return None,
    })
}

/// A ksqlDB aggregate as a DataFusion aggregate and the options it is called with.
#[derive(Debug, Clone)]
pub struct Aggregate {
    /// The DataFusion function.
    pub udaf: Arc<AggregateUDF>,
    /// Called as `f(DISTINCT x)`.
    pub distinct: bool,
    /// NULL inputs are skipped.
    pub ignore_nulls: bool,
    /// What a NULL result (no non-null input) is reported as.
    pub when_null: WhenNull,
}

/// What ksqlDB reports where DataFusion's aggregate gives NULL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenNull {
    /// NULL.
    Null,
    /// Zero of the result's type (SUM starts at 0; one value's deviation is 0).
    Zero,
    /// NaN (an undefined correlation).
    NaN,
}

/// The aggregate function ksqlDB calls `name`.
///
/// `EARLIEST_BY_OFFSET` and `LATEST_BY_OFFSET` are the first and last non-null values seen:
/// a task sees its partition's records in offset order, so no ordering is needed.
pub fn aggregate(name: &str) -> Option<Aggregate> {
    use datafusion_functions_aggregate::{average, count, first_last, min_max, sum};
    let plain = |udaf| Aggregate {
        udaf,
        distinct: false,
        ignore_nulls: false,
        when_null: WhenNull::Null,
    };
    Some(match name.to_ascii_uppercase().as_str() {
        "COUNT" => plain(count::count_udaf()),
        "SUM" => Aggregate {
            when_null: WhenNull::Zero,
            ..plain(sum::sum_udaf())
        },
        "MIN" => plain(min_max::min_udaf()),
        "MAX" => plain(min_max::max_udaf()),
        "AVG" => plain(average::avg_udaf()),
        "COLLECT_LIST" => plain(Collect::udaf(Kind::List)),
        "COLLECT_SET" => plain(Collect::udaf(Kind::Set)),
        "TOPK" => plain(Collect::udaf(Kind::TopK)),
        "TOPKDISTINCT" => plain(Collect::udaf(Kind::TopKDistinct)),
        "HISTOGRAM" => plain(Collect::udaf(Kind::Histogram)),
        "SUM_LIST" => plain(sum_list::SumList::udaf()),
        "ATTR" => plain(attr::Attr::udaf()),
        // A single value's deviation is 0 in ksqlDB, NULL in DataFusion; ksqlDB's
        // STDDEV_SAMP computes the sample variance (its STDDEV_SAMPLE the deviation).
        "STDDEV_SAMPLE" => Aggregate {
            when_null: WhenNull::Zero,
            ..plain(datafusion_functions_aggregate::stddev::stddev_udaf())
        },
        "STDDEV_SAMP" => Aggregate {
            when_null: WhenNull::Zero,
            ..plain(datafusion_functions_aggregate::variance::var_samp_udaf())
        },
        "CORRELATION" => Aggregate {
            when_null: WhenNull::NaN,
            ..plain(datafusion_functions_aggregate::correlation::corr_udaf())
        },
        "EARLIEST_BY_OFFSET" => Aggregate {
            ignore_nulls: true,
            ..plain(first_last::first_value_udaf())
        },
        "LATEST_BY_OFFSET" => Aggregate {
            ignore_nulls: true,
            ..plain(first_last::last_value_udaf())
        },
        _ => return None,
    })
}

/// The argument types of an aggregate, from DataFusion's state-field arguments.
pub(crate) fn input_types(
    args: &datafusion_expr::function::StateFieldsArgs,
) -> Vec<arrow::datatypes::DataType> {
    args.input_fields
        .iter()
        .map(|f| f.data_type().clone())
        .collect()
}

/// Whether `name` is an aggregate function.
pub fn is_aggregate(name: &str) -> bool {
    aggregate(name).is_some()
}
