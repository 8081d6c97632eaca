//! Parse errors: what was expected, what was found, and where (line and column).
//!
//! Every failure of [`super::parse`] is a [`ParseError`]; errors raised by sqlparser
//! while it parses expressions are converted here so that they carry a position too.
//! This file does not decide HTTP statuses or exit codes: [`crate::Error`] does.

use sqlparser::parser::ParserError;
use sqlparser::tokenizer::Location;

/// A statement that could not be parsed, with the 1-based position of the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}:{column}: {message}")]
pub struct ParseError {
    /// 1-based line of the offending token (0 when the input ended).
    pub line: u64,
    /// 1-based column of the offending token (0 when the input ended).
    pub column: u64,
    /// What went wrong, e.g. `Expected: ), found: EMIT`.
    pub message: String,
}

impl ParseError {
    /// An error at `location` with `message`.
    pub fn at(location: Location, message: impl Into<String>) -> Self {
        Self {
            line: location.line,
            column: location.column,
            message: message.into(),
        }
    }

    /// Moves the position by the line offset of the statement within a larger file.
    pub fn offset_lines(mut self, lines: u64) -> Self {
        if self.line > 0 {
            self.line += lines;
        }
        self
    }
}

impl From<ParserError> for ParseError {
    /// sqlparser puts the position at the end of its message (`... at Line: 3, Column: 7`):
    /// move it into the fields so that every error reads the same way.
    fn from(e: ParserError) -> Self {
        let text = match e {
            ParserError::TokenizerError(s) | ParserError::ParserError(s) => s,
            ParserError::RecursionLimitExceeded => "statement nests too deeply".to_string(),
        };
        match split_location(&text) {
            Some((message, line, column)) => Self {
                line,
                column,
                message: message.to_string(),
            },
            None => Self {
                line: 0,
                column: 0,
                message: text,
            },
        }
    }
}

fn split_location(text: &str) -> Option<(&str, u64, u64)> {
    let at = text.rfind(" at Line: ")?;
    let (message, rest) = text.split_at(at);
    let rest = rest.strip_prefix(" at Line: ")?;
    let (line, column) = rest.split_once(", Column: ")?;
    Some((
        message,
        line.trim().parse().ok()?,
        column.trim().parse().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlparser_location_moves_into_fields() {
        let e = ParseError::from(ParserError::ParserError(
            "Expected: an expression, found: ) at Line: 2, Column: 14".into(),
        ));
        assert_eq!((e.line, e.column), (2, 14));
        assert_eq!(
            e.to_string(),
            "line 2:14: Expected: an expression, found: )"
        );
    }
}
