//! [`KsqlDialect`]: how sqlparser tokenizes and parses expressions for ksqlDB.
//!
//! ksqlDB's lexer: identifiers are letters, digits, `_` and `@`; `"x"` and `` `x` `` quote
//! names; strings are single-quoted with `''` as the escape. This file only answers
//! sqlparser's dialect questions; ksql's own clauses are parsed in [`super::parser`].

use sqlparser::dialect::Dialect;

/// sqlparser's view of ksqlDB's dialect.
#[derive(Debug, Default)]
pub struct KsqlDialect;

impl Dialect for KsqlDialect {
    fn is_identifier_start(&self, ch: char) -> bool {
        ch.is_ascii_alphabetic() || ch == '_'
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        ch.is_ascii_alphanumeric() || ch == '_' || ch == '@'
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        ch == '"' || ch == '`'
    }

    fn supports_string_literal_backslash_escape(&self) -> bool {
        false
    }
}
