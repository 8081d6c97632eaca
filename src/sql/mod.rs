//! SQL text → AST: ksqlDB's dialect.
//!
//! [`parse`] turns a script into [`Statement`]s, or a [`ParseError`] with line and column.
//! Layout: [`ast`] (the tree, printable back to SQL), [`parser`] (ksql statements and
//! clauses, delegating expressions to sqlparser), [`dialect`] (sqlparser's tokenizing rules),
//! [`limits`] (how deeply statements may nest), [`error`]. Names are not resolved and types are not checked here: that is [`crate::plan`].

pub mod ast;
pub mod dialect;
pub mod error;
pub mod limits;
pub mod parser;
pub mod types;
pub mod variables;

pub use ast::Statement;
pub use error::ParseError;
use sqlparser::tokenizer::Location;

/// Parses a script of `;`-separated statements (`DEFINE`d variables substituted).
pub fn parse(sql: &str) -> Result<Vec<Statement>, ParseError> {
    let statements = parse_script(sql, &mut variables::Variables::new())?;
    Ok(statements.into_iter().map(|(_, s)| s).collect())
}

/// Parses a script statement by statement, applying each `DEFINE`/`UNDEFINE` to `variables`
/// and substituting `${name}` in the statements after it, as ksqlDB does. Returns each
/// statement with the position where it starts; error positions refer to the script.
pub fn parse_script(
    sql: &str,
    variables: &mut variables::Variables,
) -> Result<Vec<(Location, Statement)>, ParseError> {
    let mut out = Vec::new();
    for piece in variables::split(sql) {
        for statement in parse_piece(&piece, variables)? {
            out.push((piece.start, statement));
        }
    }
    Ok(out)
}

/// Parses one statement's text from [`variables::split`], substituting and updating
/// `variables`. Error positions refer to the whole script.
pub fn parse_piece(
    piece: &variables::StatementText,
    variables: &mut variables::Variables,
) -> Result<Vec<Statement>, ParseError> {
    let dialect = dialect::KsqlDialect;
    let text = variables::substitute(piece, variables)?;
    // Positions are the script's, where the statement stands in it.
    let statements = parser::KsqlParser::at(&dialect, &text, piece.start)
        .and_then(|mut p| p.parse_statements())
        .map_err(|mut e| {
            // ksqlDB's grammar errors quote the statement they are in.
            if e.message.starts_with("Syntax Error\n") {
                e.message = format!("{}\nStatement: {}", e.message, text.trim());
            }
            e
        })?;
    for statement in &statements {
        match statement {
            Statement::Define { name, value } => {
                variables.insert(name.value.to_ascii_uppercase(), value.clone());
            }
            Statement::Undefine(name) => {
                variables.remove(&name.value.to_ascii_uppercase());
            }
            _ => {}
        }
    }
    Ok(statements)
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
    fn define_applies_to_later_statements() {
        let stmts = parse("DEFINE t = 'orders';\nCREATE STREAM s (a INT) WITH (KAFKA_TOPIC='${t}', VALUE_FORMAT='JSON');").unwrap();
        let Statement::CreateSource(c) = &stmts[1] else {
            panic!()
        };
        assert_eq!(
            c.properties.get_str("KAFKA_TOPIC").as_deref(),
            Some("orders")
        );
        let err = parse("UNDEFINE t;\nSELECT * FROM ${t};").unwrap_err();
        assert_eq!((err.line, err.column), (2, 15), "{err}");
    }

    #[test]
    fn positions_are_the_scripts_after_earlier_statements() {
        let err = parse("SET 'a'='b'; SET 'c'='d';\n\n  SELECT * FROM s WHERE;").unwrap_err();
        assert_eq!((err.line, err.column), (3, 24), "{err}");
        let err = parse("SET 'a'='b';  SELECT * FROM s WHERE;").unwrap_err();
        assert_eq!((err.line, err.column), (1, 36), "{err}");
        let err = parse("SET 'a'='b';\n SELECT 'x FROM s;").unwrap_err();
        assert_eq!((err.line, err.column), (2, 9), "{err}");
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
