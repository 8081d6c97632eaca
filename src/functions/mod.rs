//! ksqlDB's functions, by name, as DataFusion functions.
//!
//! [`scalar`] and [`aggregate`] map a ksqlDB function name (case-insensitive) to the
//! DataFusion UDF with the same meaning. Only functions whose semantics match are mapped
//! here; ksqlDB functions that DataFusion lacks or computes differently will be Eddy UDFs in
//! this module. `COUNT(*)` is handled by the planner, which counts `ROWTIME`; `COALESCE`/`IFNULL`
//! are lowered to `CASE` by [`crate::plan::expr`].

use std::sync::Arc;

use datafusion_expr::{AggregateUDF, ScalarUDF};

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
        _ => return None,
    })
}

/// The aggregate function ksqlDB calls `name`.
pub fn aggregate(name: &str) -> Option<Arc<AggregateUDF>> {
    use datafusion_functions_aggregate::{average, count, min_max, sum};
    Some(match name.to_ascii_uppercase().as_str() {
        "COUNT" => count::count_udaf(),
        "SUM" => sum::sum_udaf(),
        "MIN" => min_max::min_udaf(),
        "MAX" => min_max::max_udaf(),
        "AVG" => average::avg_udaf(),
        _ => return None,
    })
}

/// Whether `name` is an aggregate function.
pub fn is_aggregate(name: &str) -> bool {
    aggregate(name).is_some()
}
