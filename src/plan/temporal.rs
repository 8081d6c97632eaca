//! ksqlDB's date and time arithmetic: `DATEADD`, `DATESUB`, `TIMEADD`, `TIMESUB`,
//! `TIMESTAMPADD`, `TIMESTAMPSUB` (`f(unit, amount, value)`), lowered to integer arithmetic.
//!
//! The unit is a bare word (`MILLISECONDS`, `SECONDS`, `MINUTES`, `HOURS`, `DAYS`, singular
//! or plural). A DATE moves by whole days, a TIME wraps around midnight, a TIMESTAMP moves by
//! milliseconds; a NULL amount or value gives NULL. Anything else is ksqlDB's "does not accept
//! parameters" error. This file plans expressions; it evaluates nothing.

use arrow::datatypes::{DataType, TimeUnit};
use datafusion_expr::{Expr, cast, lit};
use sqlparser::ast::Expr as SqlExpr;

use super::error::PlanError;
use super::expr::ExprPlanner;

const DAY_MS: i64 = 86_400_000;

/// Whether `name` is one of the functions of this file.
pub fn is_temporal(name: &str) -> bool {
    matches!(
        name.to_ascii_uppercase().as_str(),
        "DATEADD" | "DATESUB" | "TIMEADD" | "TIMESUB" | "TIMESTAMPADD" | "TIMESTAMPSUB"
    )
}

fn unit_ms(unit: &SqlExpr) -> Option<i64> {
    let SqlExpr::Identifier(word) = unit else {
        return None;
    };
    let word = word.value.to_ascii_uppercase();
    Some(match word.trim_end_matches('S') {
        "MILLISECOND" => 1,
        "SECOND" => 1_000,
        "MINUTE" => 60_000,
        "HOUR" => 3_600_000,
        "DAY" => DAY_MS,
        _ => return None,
    })
}

impl ExprPlanner<'_> {
    /// `name(unit, amount, value)`.
    pub fn temporal(&self, name: &str, args: &[SqlExpr]) -> Result<Expr, PlanError> {
        let lower = name.to_ascii_lowercase();
        let refuse = |types: Vec<String>| {
            PlanError::Invalid(format!(
                "Function '{lower}' does not accept parameters ({}).",
                types.join(", ")
            ))
        };
        let [unit, amount, value] = args else {
            return Err(refuse(vec![]));
        };
        let (amount, value) = (self.lower(amount)?, self.lower(value)?);
        let (amount_type, value_type) = (self.data_type(&amount)?, self.data_type(&value)?);
        let Some(unit) = unit_ms(unit) else {
            let first = self.lower(unit).and_then(|u| self.data_type(&u));
            let types = [first.ok(), Some(amount_type), Some(value_type)]
                .into_iter()
                .flatten()
                .map(|t| crate::types::sql_name(&t))
                .collect();
            return Err(refuse(types));
        };
        let sign = if lower.ends_with("sub") { -1 } else { 1 };
        let delta = cast(amount, DataType::Int64) * lit(sign * unit);
        match (lower.as_str(), &value_type) {
            ("dateadd" | "datesub", DataType::Date32) => {
                let days =
                    cast(cast(value, DataType::Int32), DataType::Int64) + delta / lit(DAY_MS);
                Ok(cast(cast(days, DataType::Int32), DataType::Date32))
            }
            ("timeadd" | "timesub", DataType::Time32(_)) => {
                let ms = cast(cast(value, DataType::Int32), DataType::Int64) + delta;
                let wrapped = (ms % lit(DAY_MS) + lit(DAY_MS)) % lit(DAY_MS);
                Ok(cast(
                    cast(wrapped, DataType::Int32),
                    DataType::Time32(TimeUnit::Millisecond),
                ))
            }
            ("timestampadd" | "timestampsub", DataType::Timestamp(..)) => {
                let ms = cast(value, DataType::Int64) + delta;
                Ok(cast(ms, DataType::Timestamp(TimeUnit::Millisecond, None)))
            }
            _ => Err(refuse(vec![
                "INTERVAL UNIT".into(),
                crate::types::sql_name(&amount_type),
                crate::types::sql_name(&value_type),
            ])),
        }
    }
}
