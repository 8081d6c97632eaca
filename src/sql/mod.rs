//! SQL text → AST: ksqlDB's dialect.
//!
//! [`parse`] turns a script into [`Statement`]s, or a [`ParseError`] with line and column.
//! Layout: [`ast`] (the tree, printable back to SQL), [`parser`] (ksql statements and
//! clauses, delegating expressions to sqlparser), [`dialect`] (sqlparser's tokenizing rules),
//! [`error`]. Names are not resolved and types are not checked here: that is [`crate::plan`].

pub mod ast;
pub mod dialect;
pub mod error;
pub mod parser;
pub mod types;

pub use ast::Statement;
pub use error::ParseError;

/// Parses a script of `;`-separated statements.
pub fn parse(sql: &str) -> Result<Vec<Statement>, ParseError> {
    let dialect = dialect::KsqlDialect;
    parser::KsqlParser::new(&dialect, sql)?.parse_statements()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fraud_query_parses_and_round_trips() {
        let sql = "CREATE TABLE possible_fraud AS SELECT card_number, COUNT(*) AS attempts \
                   FROM authorizations WINDOW TUMBLING (SIZE 5 MINUTES) \
                   GROUP BY card_number HAVING COUNT(*) > 3 EMIT CHANGES;";
        let stmts = parse(sql).unwrap();
        assert_eq!(stmts.len(), 1);
        let printed = stmts[0].to_string();
        assert_eq!(parse(&printed).unwrap(), stmts);
    }

    #[test]
    fn legacy_window_is_tumbling() {
        let stmts = parse("SELECT a, COUNT(*) FROM s WINDOW (SIZE 5 MINUTE) GROUP BY a;").unwrap();
        let Statement::Query(q) = &stmts[0] else {
            panic!()
        };
        assert!(matches!(q.window, Some(ast::WindowExpr::Tumbling { .. })));
    }

    #[test]
    fn error_has_line_and_column() {
        let err = parse("CREATE STREAM s (a INT)\n  WITH (KAFKA_TOPIC='t' VALUE_FORMAT='JSON');")
            .unwrap_err();
        assert_eq!((err.line, err.column), (2, 25), "{err}");
        assert!(
            err.message.contains("Expected: ',' or ')' in WITH"),
            "{err}"
        );
    }

    #[test]
    fn nested_types_close_with_shift_right() {
        let stmts =
            parse("CREATE STREAM s (a ARRAY<MAP<STRING, INT>>) WITH (KAFKA_TOPIC='t');").unwrap();
        assert_eq!(
            stmts[0].to_string(),
            "CREATE STREAM s (a ARRAY<MAP<STRING, INTEGER>>) WITH (KAFKA_TOPIC='t')"
        );
    }
}
