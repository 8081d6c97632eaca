//! Expressions as ksqlDB prints them in its messages.
//!
//! ksqlDB's error messages quote expressions in its own format: names upper-cased,
//! operations in parentheses, `NULL` as `null`, named constructor arguments as `k:=v`
//! (`MAP('a':=VAL1)`, `STRUCT(F0:=VAL1)`). Only used to word errors; planning never parses
//! this text back. Also [`position`], the `Line: l, Col: c: ` some errors start with.

use sqlparser::ast::{Expr as SqlExpr, FunctionArg, FunctionArgExpr, FunctionArguments, Value};

use crate::sql::ast::normalize;

/// Where a name stands in the script, as ksqlDB prefixes some errors: `Line: 3, Col: 70: `
/// (nothing when the name has no position).
pub fn position(id: &sqlparser::ast::Ident) -> String {
    let at = id.span.start;
    if at.line == 0 {
        return String::new();
    }
    format!("Line: {}, Col: {}: ", at.line, at.column)
}

/// `expr` as ksqlDB prints it in messages.
pub fn ksql_text(expr: &SqlExpr) -> String {
    match expr {
        SqlExpr::Identifier(id) => normalize(id),
        SqlExpr::CompoundIdentifier(parts) => {
            parts.iter().map(normalize).collect::<Vec<_>>().join(".")
        }
        SqlExpr::Nested(inner) => ksql_text(inner),
        SqlExpr::Value(v) if v.value == Value::Null => "null".into(),
        SqlExpr::BinaryOp { left, op, right } => {
            format!("({} {op} {})", ksql_text(left), ksql_text(right))
        }
        SqlExpr::Function(f) => {
            let args = match &f.args {
                FunctionArguments::List(list) => list
                    .args
                    .iter()
                    .map(argument)
                    .collect::<Vec<_>>()
                    .join(", "),
                _ => String::new(),
            };
            format!("{}({args})", f.name.to_string().to_ascii_uppercase())
        }
        SqlExpr::Substring {
            expr,
            substring_from,
            substring_for,
            ..
        } => {
            let args: Vec<String> = std::iter::once(expr)
                .chain(substring_from)
                .chain(substring_for)
                .map(|e| ksql_text(e))
                .collect();
            format!("SUBSTRING({})", args.join(", "))
        }
        SqlExpr::Trim {
            expr,
            trim_where: None,
            trim_what: None,
            trim_characters: None,
        } => format!("TRIM({})", ksql_text(expr)),
        other => other.to_string(),
    }
}

fn argument(arg: &FunctionArg) -> String {
    let value = |arg: &FunctionArgExpr| match arg {
        FunctionArgExpr::Expr(e) => ksql_text(e),
        other => other.to_string(),
    };
    match arg {
        FunctionArg::Unnamed(a) => value(a),
        FunctionArg::Named { name, arg, .. } if name.quote_style == Some('\'') => {
            format!("'{}':={}", name.value, value(arg))
        }
        FunctionArg::Named { name, arg, .. } => format!("{}:={}", normalize(name), value(arg)),
        FunctionArg::ExprNamed { name, arg, .. } => format!("{}:={}", ksql_text(name), value(arg)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(sql: &str) -> String {
        let dialect = crate::sql::dialect::KsqlDialect;
        let expr = sqlparser::parser::Parser::new(&dialect)
            .try_with_sql(sql)
            .and_then(|mut p| p.parse_expr())
            .unwrap();
        ksql_text(&expr)
    }

    #[test]
    fn prints_as_ksqldb_messages_do() {
        assert_eq!(text("a + b * 2"), "(A + (B * 2))");
        assert_eq!(text("l.a = null"), "(L.A = null)");
        assert_eq!(text("array_length(val0)"), "ARRAY_LENGTH(VAL0)");
        assert_eq!(text("MAP('a' := val1)"), "MAP('a':=VAL1)");
        assert_eq!(text("STRUCT(f0 := val1)"), "STRUCT(F0:=VAL1)");
        assert_eq!(text("substring(source, 0, 1)"), "SUBSTRING(SOURCE, 0, 1)");
        assert_eq!(text("trim(col3)"), "TRIM(COL3)");
    }
}
