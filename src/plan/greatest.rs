//! `GREATEST` and `LEAST` resolved as ksqlDB resolves its overloads.
//!
//! ksqlDB has one variadic overload per type (INT, BIGINT, DECIMAL, DOUBLE, STRING, ...).
//! Arguments of one type use it (decimals of different precision widen); numbers of mixed
//! types use the one overload every argument widens to (INT → BIGINT → DECIMAL → DOUBLE),
//! and when several fit the call is ambiguous, as it is with only NULLs. Numbers and strings
//! together fit none. Other mixes (dates and date strings, ...) are left to DataFusion's
//! coercion. This file only picks the type; DataFusion computes the result.

use arrow::datatypes::DataType;
use datafusion_expr::Expr;
use sqlparser::ast::Expr as SqlExpr;

use super::error::PlanError;
use super::expr::{ExprPlanner, Family, family};

type Result<T> = std::result::Result<T, PlanError>;

/// ksqlDB's numeric types, narrowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Numeric {
    Int,
    Bigint,
    Decimal,
    Double,
}

fn numeric(t: &DataType) -> Option<Numeric> {
    match t {
        DataType::Int8 | DataType::Int16 | DataType::Int32 => Some(Numeric::Int),
        DataType::Int64 => Some(Numeric::Bigint),
        DataType::Decimal128(..) | DataType::Decimal256(..) => Some(Numeric::Decimal),
        DataType::Float32 | DataType::Float64 => Some(Numeric::Double),
        _ => None,
    }
}

impl ExprPlanner<'_> {
    /// `GREATEST(...)` or `LEAST(...)` (`name` upper case).
    pub(super) fn greatest_least(&self, name: &str, args: &[SqlExpr]) -> Result<Expr> {
        let (lowered, types) = self.lower_typed(args)?;
        let args = match overload(&name.to_ascii_lowercase(), &types)? {
            Some(t) => lowered
                .into_iter()
                .map(|e| datafusion_expr::cast(e, t.clone()))
                .collect(),
            None => lowered,
        };
        let udf = crate::functions::scalar(name)
            .ok_or_else(|| PlanError::UnknownFunction(name.to_string()))?;
        self.call(&udf, args)
    }
}

/// The type every argument must be cast to (`None`: leave them to DataFusion), or ksqlDB's
/// error for a call no overload takes or several take.
fn overload(name: &str, types: &[DataType]) -> Result<Option<DataType>> {
    let listed = || {
        types
            .iter()
            .map(|t| match t {
                DataType::Null => "null".to_string(),
                t => crate::types::sql_name(t),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let not_accepted = || {
        PlanError::Invalid(format!(
            "Function '{name}' does not accept parameters ({}).",
            listed()
        ))
    };
    let ambiguous = || {
        PlanError::Invalid(format!(
            "Function '{name}' cannot be resolved due to ambiguous method parameters ({}).",
            listed()
        ))
    };
    if types.is_empty() {
        return Err(not_accepted());
    }
    let present: Vec<&DataType> = types.iter().filter(|t| !t.is_null()).collect();
    if present.is_empty() {
        return Err(ambiguous());
    }
    let numbers: Option<Vec<Numeric>> = present.iter().map(|t| numeric(t)).collect();
    match numbers {
        Some(numbers) => {
            let widest = numbers.iter().copied().max().unwrap_or(Numeric::Int);
            if numbers.iter().all(|n| *n == widest) {
                Ok(None) // one type: its own overload
            } else if widest == Numeric::Double {
                Ok(Some(DataType::Float64))
            } else {
                // BIGINT, DECIMAL and DOUBLE all take narrower numbers.
                Err(ambiguous())
            }
        }
        None if present.iter().any(|t| numeric(t).is_some())
            && present.iter().any(|t| family(t) == Family::Text) =>
        {
            Err(not_accepted())
        }
        None => Ok(None),
    }
}
