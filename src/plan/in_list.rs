//! `x [NOT] IN (a, b, ...)` with ksqlDB's coercion rules.
//!
//! The tested value and the items are compared in one common type, found left to right:
//! numbers widen (INT < BIGINT < DECIMAL < DOUBLE, decimals to hold both), collections and
//! structs widen element by element. A string literal where a number or a boolean is wanted
//! is read as one (also inside `ARRAY[...]`, `MAP(k := v)` and `STRUCT(f := v)`
//! constructors), and ksqlDB's error names the string when it holds none. A struct item with
//! a field the tested struct lacks can never be equal and is left out; fields it lacks are
//! NULL. Any other mismatch is ksqlDB's "operator does not exist" error, naming the common
//! type found so far. Nothing here evaluates: the result is a DataFusion `InList`.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields};
use datafusion_common::ScalarValue;
use datafusion_expr::Expr;
use datafusion_expr::expr::InList;
use sqlparser::ast::{Expr as SqlExpr, FunctionArg, FunctionArgExpr, FunctionArguments, Value};

use super::error::PlanError;
use super::expr::{ExprPlanner, Family, family, string_literal};
use super::text::ksql_text;
use crate::sql::ast::normalize;

type Result<T> = std::result::Result<T, PlanError>;

impl ExprPlanner<'_> {
    /// `expr [NOT] IN (list)`, everything cast to the common type.
    pub(super) fn in_list(&self, expr: &SqlExpr, list: &[SqlExpr], negated: bool) -> Result<Expr> {
        let e = self.lower(expr)?;
        let left = self.data_type(&e)?;
        let mut common = left.clone();
        let mut items = Vec::with_capacity(list.len());
        for item in list {
            let lowered = self.lower(&coerce_literals(item, &common)?)?;
            let it = self.data_type(&lowered)?;
            match widen(&common, &it) {
                Widened::To(t) => common = t,
                Widened::NeverEqual => continue,
                Widened::Incomparable => return Err(incomparable(&common, &it, item)),
            }
            items.push((lowered, it));
        }
        if items.is_empty() {
            // Nothing can be equal: false, or NULL for a NULL value, as ksqlDB compares.
            let never = Expr::Literal(ScalarValue::Boolean(Some(negated)), None);
            return Ok(Expr::Case(datafusion_expr::expr::Case::new(
                None,
                vec![(Box::new(Expr::IsNotNull(Box::new(e))), Box::new(never))],
                None,
            )));
        }
        let list = items
            .into_iter()
            .map(|(x, t)| conform(x, &t, &common))
            .collect();
        Ok(Expr::InList(InList::new(
            Box::new(conform(e, &left, &common)),
            list,
            negated,
        )))
    }
}

/// What comparing a value of the common type with an item's type gives.
enum Widened {
    /// Comparable, in this (possibly wider) common type.
    To(DataType),
    /// Comparable, but never equal (a struct with a field the other lacks).
    NeverEqual,
    /// ksqlDB refuses the comparison.
    Incomparable,
}

fn widen(common: &DataType, item: &DataType) -> Widened {
    if item.is_null() {
        return Widened::To(common.clone());
    }
    match (common, item) {
        (a, b) if family(a) == Family::Number && family(b) == Family::Number => {
            Widened::To(wider_number(a, b))
        }
        (DataType::List(a), DataType::List(b)) => match widen(a.data_type(), b.data_type()) {
            Widened::To(t) => Widened::To(DataType::List(Arc::new(Field::new("item", t, true)))),
            other => other,
        },
        (DataType::Map(a, sorted), DataType::Map(b, _)) => match (a.data_type(), b.data_type()) {
            (DataType::Struct(a), DataType::Struct(b)) if a.len() == 2 && b.len() == 2 => {
                let (Widened::To(k), Widened::To(v)) = (
                    widen(a[0].data_type(), b[0].data_type()),
                    widen(a[1].data_type(), b[1].data_type()),
                ) else {
                    return Widened::Incomparable;
                };
                Widened::To(map_type(k, v, *sorted))
            }
            _ => Widened::Incomparable,
        },
        (DataType::Struct(a), DataType::Struct(b)) => widen_struct(a, b),
        (a, b) if family(a) == family(b) => Widened::To(a.clone()),
        _ => Widened::Incomparable,
    }
}

fn widen_struct(common: &Fields, item: &Fields) -> Widened {
    if item.iter().any(|f| common.find(f.name()).is_none()) {
        return Widened::NeverEqual;
    }
    let mut fields = Vec::with_capacity(common.len());
    for field in common {
        let t = match item.find(field.name()) {
            None => field.data_type().clone(),
            Some((_, other)) => match widen(field.data_type(), other.data_type()) {
                Widened::To(t) => t,
                // A field that can never be equal makes the structs never equal.
                other => return other,
            },
        };
        fields.push(Field::new(field.name(), t, true));
    }
    Widened::To(DataType::Struct(fields.into()))
}

/// The type an ARRAY constructor's elements share: numbers widen, structs take every field
/// any of them has (in order of appearance), arrays unify their elements; otherwise the
/// first type stays (DataFusion's coercion decides).
pub(super) fn unify(a: &DataType, b: &DataType) -> DataType {
    match (a, b) {
        (a, b) if a.is_null() => b.clone(),
        (a, b) if b.is_null() => a.clone(),
        (a, b) if family(a) == Family::Number && family(b) == Family::Number => wider_number(a, b),
        (DataType::List(x), DataType::List(y)) => DataType::List(Arc::new(Field::new(
            "item",
            unify(x.data_type(), y.data_type()),
            true,
        ))),
        (DataType::Struct(x), DataType::Struct(y)) => {
            let mut fields: Vec<Field> = x
                .iter()
                .map(|f| {
                    let t = match y.find(f.name()) {
                        Some((_, g)) => unify(f.data_type(), g.data_type()),
                        None => f.data_type().clone(),
                    };
                    Field::new(f.name(), t, true)
                })
                .collect();
            fields.extend(
                y.iter()
                    .filter(|g| x.find(g.name()).is_none())
                    .map(|g| Field::new(g.name(), g.data_type().clone(), true)),
            );
            DataType::Struct(fields.into())
        }
        (a, _) => a.clone(),
    }
}

fn map_type(key: DataType, value: DataType, sorted: bool) -> DataType {
    let entries = Field::new(
        "entries",
        DataType::Struct(
            vec![
                Field::new("key", key, false),
                Field::new("value", value, true),
            ]
            .into(),
        ),
        false,
    );
    DataType::Map(Arc::new(entries), sorted)
}

/// ksqlDB's numeric widening: INT < BIGINT < DECIMAL < DOUBLE; two decimals (integers as
/// DECIMAL(10, 0) and DECIMAL(19, 0)) widen to hold both.
pub(super) fn wider_number(a: &DataType, b: &DataType) -> DataType {
    fn as_decimal(t: &DataType) -> Option<(u8, i8)> {
        match t {
            DataType::Decimal128(p, s) => Some((*p, *s)),
            DataType::Int8 | DataType::Int16 | DataType::Int32 => Some((10, 0)),
            DataType::Int64 => Some((19, 0)),
            _ => None,
        }
    }
    match (a, b) {
        (DataType::Float64 | DataType::Float32, _) | (_, DataType::Float64 | DataType::Float32) => {
            DataType::Float64
        }
        (DataType::Decimal128(..), _) | (_, DataType::Decimal128(..)) => {
            match (as_decimal(a), as_decimal(b)) {
                (Some((p1, s1)), Some((p2, s2))) => {
                    let scale = s1.max(s2);
                    let digits = (i16::from(p1) - i16::from(s1)).max(i16::from(p2) - i16::from(s2));
                    let precision = (digits + i16::from(scale)).clamp(1, 38) as u8;
                    DataType::Decimal128(precision, scale)
                }
                _ => DataType::Float64,
            }
        }
        (DataType::Int64, _) | (_, DataType::Int64) => DataType::Int64,
        _ => a.clone(),
    }
}

/// `x` of type `from` as the common type `to`: a cast, except for structs, which are rebuilt
/// field by field (missing fields NULL) since Arrow casts structs only field for field.
pub(super) fn conform(x: Expr, from: &DataType, to: &DataType) -> Expr {
    match (from, to) {
        (DataType::Struct(have), DataType::Struct(want)) if have != want => {
            let mut args = Vec::with_capacity(want.len() * 2);
            for field in want {
                args.push(Expr::Literal(
                    ScalarValue::Utf8(Some(field.name().clone())),
                    None,
                ));
                let value = match have.find(field.name()) {
                    Some((_, f)) => conform(
                        datafusion_functions::core::get_field().call(vec![
                            x.clone(),
                            Expr::Literal(ScalarValue::Utf8(Some(field.name().clone())), None),
                        ]),
                        f.data_type(),
                        field.data_type(),
                    ),
                    None => Expr::Literal(
                        ScalarValue::try_from(field.data_type()).unwrap_or(ScalarValue::Null),
                        None,
                    ),
                };
                args.push(value);
            }
            let rebuilt = datafusion_expr::cast(
                datafusion_functions::core::named_struct().call(args),
                to.clone(),
            );
            // A NULL struct stays NULL rather than becoming a struct of NULLs.
            Expr::Case(datafusion_expr::expr::Case::new(
                None,
                vec![(Box::new(Expr::IsNotNull(Box::new(x))), Box::new(rebuilt))],
                None,
            ))
        }
        _ if from == to => x,
        _ => datafusion_expr::cast(x, to.clone()),
    }
}

/// `item` with each string literal that stands where `target` wants a number or a boolean
/// replaced by that literal, through constructors; ksqlDB's error when it holds none.
fn coerce_literals(item: &SqlExpr, target: &DataType) -> Result<SqlExpr> {
    match (item, target) {
        (SqlExpr::Value(_), _) => match string_literal(item) {
            Some(s) => Ok(literal_as(s, target)?.unwrap_or(item.clone())),
            None => Ok(item.clone()),
        },
        (SqlExpr::Array(array), DataType::List(element)) => {
            let mut array = array.clone();
            for e in &mut array.elem {
                *e = coerce_literals(e, element.data_type())?;
            }
            Ok(SqlExpr::Array(array))
        }
        (SqlExpr::Function(f), DataType::Map(..) | DataType::Struct(_)) => {
            let name = f.name.to_string().to_ascii_uppercase();
            let FunctionArguments::List(list) = &f.args else {
                return Ok(item.clone());
            };
            let mut f = f.clone();
            let mut list = list.clone();
            for arg in &mut list.args {
                if let FunctionArg::Named {
                    name: field,
                    arg: FunctionArgExpr::Expr(value),
                    ..
                } = arg
                    && let Some(t) = entry_type(&name, target, &normalize(field))
                {
                    *value = coerce_literals(value, &t)?;
                }
            }
            f.args = FunctionArguments::List(list);
            Ok(SqlExpr::Function(f))
        }
        _ => Ok(item.clone()),
    }
}

/// The type a `name := value` entry of constructor `function` has in `target`.
fn entry_type(function: &str, target: &DataType, field: &str) -> Option<DataType> {
    match (function, target) {
        ("MAP", DataType::Map(entries, _)) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => Some(kv[1].data_type().clone()),
            _ => None,
        },
        ("STRUCT", DataType::Struct(fields)) => {
            fields.find(field).map(|(_, f)| f.data_type().clone())
        }
        _ => None,
    }
}

/// A string literal read as the number or boolean `target` wants (`None`: left a string).
pub(super) fn literal_as(s: &str, target: &DataType) -> Result<Option<SqlExpr>> {
    let value = match family(target) {
        Family::Number => {
            let text = s.trim();
            let plain = !text.is_empty()
                && text.parse::<f64>().is_ok_and(f64::is_finite)
                && !text.contains(['i', 'I', 'n', 'N']);
            plain.then(|| Value::Number(text.trim_start_matches('+').to_string(), false))
        }
        Family::Boolean => ksql_boolean(s).map(Value::Boolean),
        _ => return Ok(None),
    };
    match value {
        Some(v) => Ok(Some(SqlExpr::Value(v.into()))),
        None => {
            let name = crate::types::sql_name(target);
            Err(PlanError::Type(format!(
                "invalid input syntax for type {}: \"{s}\".",
                name.split('(').next().unwrap_or(&name)
            )))
        }
    }
}

/// ksqlDB's reading of a string as a boolean: any prefix of `true` or `yes`, `false` or
/// `no`, in any case.
fn ksql_boolean(s: &str) -> Option<bool> {
    let lower = s.trim().to_ascii_lowercase();
    let prefix_of =
        |words: [&str; 2]| !lower.is_empty() && words.iter().any(|w| w.starts_with(&lower));
    if prefix_of(["true", "yes"]) {
        Some(true)
    } else if prefix_of(["false", "no"]) {
        Some(false)
    } else {
        None
    }
}

fn incomparable(common: &DataType, item: &DataType, expr: &SqlExpr) -> PlanError {
    PlanError::Type(format!(
        "operator does not exist: {} = {} ({})\nHint: You might need to add explicit type casts.",
        crate::types::sql_name(common),
        crate::types::sql_name(item),
        ksql_text(expr)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_widen_as_ksqldb_does() {
        let d = |p, s| DataType::Decimal128(p, s);
        assert_eq!(wider_number(&d(4, 2), &DataType::Int32), d(12, 2));
        assert_eq!(
            wider_number(&DataType::Int32, &DataType::Int64),
            DataType::Int64
        );
        assert_eq!(
            wider_number(&d(4, 2), &DataType::Float64),
            DataType::Float64
        );
        assert_eq!(wider_number(&d(3, 2), &d(4, 3)), d(4, 3));
    }

    #[test]
    fn booleans_read_from_prefixes() {
        assert_eq!(ksql_boolean("TrUe"), Some(true));
        assert_eq!(ksql_boolean("tr"), Some(true));
        assert_eq!(ksql_boolean("Y"), Some(true));
        assert_eq!(ksql_boolean("n"), Some(false));
        assert_eq!(ksql_boolean("Not a boolean"), None);
        assert_eq!(ksql_boolean(""), None);
    }
}
