//! Parsing ksqlDB's type syntax: `BOOLEAN`, `INT`, `BIGINT`, `DOUBLE`, `DECIMAL(p, s)`,
//! `STRING`/`VARCHAR`, `BYTES`, `TIMESTAMP`, `DATE`, `TIME`, `ARRAY<T>`, `MAP<K, V>`,
//! `STRUCT<name T, ...>` and custom type names.
//!
//! Works on sqlparser's [`Parser`] so that both Eddy's statement parser (column lists,
//! `CREATE TYPE`) and the dialect's expression hook (`CAST(x AS MAP<...>)`) use it. Checks
//! syntax only: whether a DECIMAL's precision is allowed is the planner's concern.

use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::Token;

use super::ast::SqlType;
use super::limits::MAX_TYPE_DEPTH;

/// Parses one type. `>>` closing two levels of nesting is handled.
pub fn parse_sql_type(parser: &mut Parser<'_>) -> Result<SqlType, ParserError> {
    let mut types = TypeParser {
        parser,
        pending_gt: false,
        depth: 0,
    };
    types.parse()
}

struct TypeParser<'p, 'a> {
    parser: &'p mut Parser<'a>,
    /// A `>` left over from splitting a `>>` token.
    pending_gt: bool,
    /// How many types enclose the one being parsed.
    depth: usize,
}

impl TypeParser<'_, '_> {
    /// One type, nested at most [`MAX_TYPE_DEPTH`] levels deep.
    fn parse(&mut self) -> Result<SqlType, ParserError> {
        if self.depth >= MAX_TYPE_DEPTH {
            return Err(ParserError::ParserError(format!(
                "Type nests more than {MAX_TYPE_DEPTH} levels deep{}",
                self.parser.peek_token().span.start
            )));
        }
        self.depth += 1;
        let parsed = self.parse_one();
        self.depth -= 1;
        parsed
    }

    fn parse_one(&mut self) -> Result<SqlType, ParserError> {
        let next = self.parser.peek_token();
        let Token::Word(word) = &next.token else {
            return self.parser.expected("a type", next);
        };
        if word.quote_style.is_none() && word.value.eq_ignore_ascii_case("NULL") {
            // NULL is a value, never a type (ksqlDB's grammar refuses it).
            return Err(ParserError::ParserError(format!(
                "Syntax Error: NULL is not a type{}",
                next.span.start
            )));
        }
        let ident = self.parser.parse_identifier()?;
        if word.quote_style.is_some() {
            return Ok(SqlType::Custom(ident));
        }
        let upper = word.value.to_ascii_uppercase();
        let base = match upper.as_str() {
            "BOOLEAN" => Some(SqlType::Boolean),
            "INT" | "INTEGER" => Some(SqlType::Int),
            "BIGINT" => Some(SqlType::Bigint),
            "DOUBLE" => Some(SqlType::Double),
            "STRING" | "VARCHAR" => Some(SqlType::String),
            "BYTES" => Some(SqlType::Bytes),
            "TIMESTAMP" => Some(SqlType::Timestamp),
            "DATE" => Some(SqlType::Date),
            "TIME" => Some(SqlType::Time),
            _ => None,
        };
        if let Some(base) = base {
            let at = self.parser.peek_token().span.start;
            // ksqlDB accepts and ignores parameters on STRING types, e.g. `VARCHAR(STRING)`.
            if self.parameters()? && base != SqlType::String {
                return Err(ParserError::ParserError(format!(
                    "{upper} takes no type parameters{at}"
                )));
            }
            return Ok(base);
        }
        Ok(match upper.as_str() {
            "DECIMAL" => self.decimal()?,
            "ARRAY" => {
                self.parser.expect_token(&Token::Lt)?;
                let element = self.parse()?;
                self.expect_gt()?;
                SqlType::Array(Box::new(element))
            }
            "MAP" => {
                self.parser.expect_token(&Token::Lt)?;
                let key = self.parse()?;
                self.parser.expect_token(&Token::Comma)?;
                let value = self.parse()?;
                self.expect_gt()?;
                SqlType::Map(Box::new(key), Box::new(value))
            }
            "STRUCT" => self.struct_fields()?,
            _ => SqlType::Custom(ident),
        })
    }

    fn decimal(&mut self) -> Result<SqlType, ParserError> {
        self.parser.expect_token(&Token::LParen)?;
        let precision = self.parser.parse_literal_uint()?;
        self.parser.expect_token(&Token::Comma)?;
        let scale = self.parser.parse_literal_uint()?;
        self.parser.expect_token(&Token::RParen)?;
        match (u8::try_from(precision), i8::try_from(scale)) {
            (Ok(p), Ok(s)) => Ok(SqlType::Decimal(p, s)),
            _ => Err(ParserError::ParserError(format!(
                "DECIMAL({precision}, {scale}) is out of range"
            ))),
        }
    }

    fn struct_fields(&mut self) -> Result<SqlType, ParserError> {
        self.parser.expect_token(&Token::Lt)?;
        let mut fields = Vec::new();
        if self.parser.consume_token(&Token::Gt) {
            return Ok(SqlType::Struct(fields));
        }
        loop {
            let name = self.parser.parse_identifier()?;
            let field_type = self.parse()?;
            fields.push((name, field_type));
            // A `>>` that closed a nested type also closes this one.
            if self.pending_gt || !self.parser.consume_token(&Token::Comma) {
                break;
            }
        }
        self.expect_gt()?;
        Ok(SqlType::Struct(fields))
    }

    /// Type parameters `(p, ...)`, which ksqlDB's grammar allows after a base type: integers
    /// or `STRING`, anything else being its syntax error. Whether there were any.
    fn parameters(&mut self) -> Result<bool, ParserError> {
        if !self.parser.consume_token(&Token::LParen) {
            return Ok(false);
        }
        loop {
            let next = self.parser.next_token();
            match &next.token {
                Token::Number(n, _) if n.bytes().all(|b| b.is_ascii_digit()) => {}
                Token::Word(w) if w.value.eq_ignore_ascii_case("STRING") => {}
                _ => {
                    return Err(ParserError::ParserError(format!(
                        "Syntax Error\nExpecting {{'STRING', INTEGER_VALUE}}{}",
                        next.span.start
                    )));
                }
            }
            if self.parser.consume_token(&Token::RParen) {
                return Ok(true);
            }
            self.parser.expect_token(&Token::Comma)?;
        }
    }

    /// `>` closing type parameters; a `>>` token closes two.
    fn expect_gt(&mut self) -> Result<(), ParserError> {
        if std::mem::take(&mut self.pending_gt) {
            return Ok(());
        }
        let next = self.parser.peek_token();
        match next.token {
            Token::Gt => {}
            Token::ShiftRight => self.pending_gt = true,
            _ => return self.parser.expected("'>'", next),
        }
        self.parser.next_token();
        Ok(())
    }
}
