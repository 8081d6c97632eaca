//! ksqlDB's date and time arithmetic: `DATEADD`, `DATESUB`, `TIMEADD`, `TIMESUB`,
//! `TIMESTAMPADD`, `TIMESTAMPSUB` (`f(unit, amount, value)`), lowered to integer arithmetic.
//!
//! The unit is a bare word (`MILLISECONDS`, `SECONDS`, `MINUTES`, `HOURS`, `DAYS`, singular
//! or plural). A DATE moves by whole days, a TIME wraps around midnight, a TIMESTAMP moves by
//! milliseconds; a NULL amount or value gives NULL. Anything else is ksqlDB's "does not accept
//! parameters" error. Also ksqlDB's "magic" timestamps: `ROWTIME`, `WINDOWSTART` and
//! `WINDOWEND` compared with a string literal read it as a (partial) ISO timestamp. This file
//! plans expressions; it evaluates nothing.

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

/// The pseudo columns whose comparisons with a string literal read it as a timestamp.
const MAGIC: [&str; 3] = ["ROWTIME", "WINDOWSTART", "WINDOWEND"];

/// When `column` is `ROWTIME`, `WINDOWSTART` or `WINDOWEND` (qualified or not) and `literal` a
/// string, the literal as epoch milliseconds; `None` otherwise (or when it is no timestamp).
pub fn magic_timestamp(column: &SqlExpr, literal: &SqlExpr) -> Option<i64> {
    let name = super::expr::column_name(column)?;
    if !MAGIC.contains(&name.as_str()) {
        return None;
    }
    let SqlExpr::Value(v) = literal else {
        return None;
    };
    let sqlparser::ast::Value::SingleQuotedString(text) = &v.value else {
        return None;
    };
    partial_timestamp(text)
}

/// `yyyy[-MM[-dd[THH[:mm[:ss[.SSS]]]]]][Z|±HH[:]mm]` as epoch milliseconds, missing parts
/// at their start (`'2018'` is 2018-01-01T00:00:00.000 UTC), as ksqlDB reads them.
pub fn partial_timestamp(text: &str) -> Option<i64> {
    static PATTERN: std::sync::LazyLock<Option<regex::Regex>> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?)?)?)?)?(Z|[+-]\d{2}:?\d{2})?$",
        )
        .ok()
    });
    let caps = PATTERN.as_ref()?.captures(text.trim())?;
    let part = |i: usize, default: u32| {
        caps.get(i)
            .map_or(Some(default), |m| m.as_str().parse::<u32>().ok())
    };
    let date = chrono::NaiveDate::from_ymd_opt(
        caps.get(1)?.as_str().parse().ok()?,
        part(2, 1)?,
        part(3, 1)?,
    )?;
    let millis = caps.get(7).map_or(Some(0), |m| {
        format!("{:0<3}", m.as_str()).parse::<u32>().ok()
    })?;
    let time =
        chrono::NaiveTime::from_hms_milli_opt(part(4, 0)?, part(5, 0)?, part(6, 0)?, millis)?;
    let local = date.and_time(time).and_utc().timestamp_millis();
    let offset_ms = match caps.get(8).map(|m| m.as_str()) {
        None | Some("Z") => 0,
        Some(zone) => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let digits: String = zone[1..].chars().filter(char::is_ascii_digit).collect();
            let (h, m) = (
                digits[..2].parse::<i64>().ok()?,
                digits[2..].parse::<i64>().ok()?,
            );
            sign * (h * 60 + m) * 60_000
        }
    };
    Some(local - offset_ms)
}

#[cfg(test)]
mod tests {
    use super::partial_timestamp;

    #[test]
    fn partial_timestamps_read_as_ksqldb_reads_them() {
        assert_eq!(partial_timestamp("2018"), Some(1_514_764_800_000));
        assert_eq!(
            partial_timestamp("2018-01-01T00:00:00.001"),
            Some(1_514_764_800_001)
        );
        assert_eq!(
            partial_timestamp("2020-02-10T08:31:44.001+0000"),
            Some(1_581_323_504_001)
        );
        assert_eq!(
            partial_timestamp("2019-01-01T00:00:00+0445"),
            Some(1_546_300_800_000 - (4 * 60 + 45) * 60_000)
        );
        assert_eq!(partial_timestamp("not a time"), None);
        assert_eq!(partial_timestamp("2018-13"), None);
    }
}
