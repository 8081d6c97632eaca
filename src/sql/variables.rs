//! Scripts with variables: statement splitting and `${name}` substitution.
//!
//! ksqlDB substitutes variables statement by statement: a `DEFINE` applies to the
//! statements after it, so a script cannot be tokenized whole before substitution. This file
//! splits a script into statements (respecting quotes and comments, remembering where each
//! starts) and replaces `${name}` references; [`super::parse_script`] ties them together.

use std::collections::BTreeMap;

use sqlparser::tokenizer::Location;

use super::error::ParseError;

/// Variables defined with `DEFINE`, by name (case-insensitive: stored upper-cased).
pub type Variables = BTreeMap<String, String>;

/// One statement's text and where it starts in the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementText {
    /// The text, up to and including its `;` (if any).
    pub text: String,
    /// Line and column of its first character.
    pub start: Location,
}

/// Characters of a script with their positions.
struct Cursor<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: u64,
    column: u64,
}

impl Iterator for Cursor<'_> {
    type Item = (Location, char);

    fn next(&mut self) -> Option<(Location, char)> {
        let c = self.chars.next()?;
        let here = Location::new(self.line, self.column);
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some((here, c))
    }
}

/// Splits a script into statements at `;` outside quotes and comments. Blank or comment-only
/// pieces are dropped.
pub fn split(script: &str) -> Vec<StatementText> {
    let mut cursor = Cursor {
        chars: script.chars().peekable(),
        line: 1,
        column: 1,
    };
    let mut out = Vec::new();
    let mut current: Option<StatementText> = None;
    while let Some((here, c)) = cursor.next() {
        if c == '-' && cursor.chars.peek() == Some(&'-') {
            // A comment runs to the end of the line; kept in a statement so positions stay true.
            let comment: String = std::iter::once(c)
                .chain(cursor.by_ref().map(|(_, c)| c).take_while(|c| *c != '\n'))
                .collect();
            if let Some(statement) = current.as_mut() {
                statement.text.push_str(&comment);
                statement.text.push('\n');
            }
            continue;
        }
        if current.is_none() && c.is_whitespace() {
            continue;
        }
        let statement = current.get_or_insert_with(|| StatementText {
            text: String::new(),
            start: here,
        });
        statement.text.push(c);
        if matches!(c, '\'' | '"' | '`') {
            // Everything up to the closing quote belongs to the literal.
            for (_, q) in cursor.by_ref() {
                statement.text.push(q);
                if q == c {
                    break;
                }
            }
        } else if c == ';' {
            out.extend(current.take());
        }
    }
    out.extend(current.filter(|s| !s.text.trim().is_empty()));
    out
}

/// Replaces every `${name}` with its value; an undefined name is an error at its position.
pub fn substitute(statement: &StatementText, variables: &Variables) -> Result<String, ParseError> {
    let text = &statement.text;
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[at..]);
            return Ok(out);
        };
        let name = after[..end].trim();
        match variables.get(&name.to_ascii_uppercase()) {
            Some(value) => out.push_str(value),
            None => {
                let offset = text.len() - rest.len() + at;
                return Err(ParseError::at(
                    position(statement, offset),
                    format!("Variable '{name}' is not defined"),
                ));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The script position of byte `offset` of a statement.
fn position(statement: &StatementText, offset: usize) -> Location {
    let before = &statement.text[..offset];
    let newlines = before.matches('\n').count() as u64;
    let column = match before.rfind('\n') {
        Some(nl) => before[nl + 1..].chars().count() as u64 + 1,
        None => statement.start.column + before.chars().count() as u64,
    };
    Location::new(statement.start.line + newlines, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_outside_quotes_and_comments() {
        let parts = split("SET 'a' = ';';\n-- x;\n  SELECT 1 FROM s;");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1].start, Location::new(3, 3));
        assert!(parts[1].text.starts_with("SELECT"));
    }

    #[test]
    fn substitutes_and_reports_undefined_names() {
        let vars = Variables::from([("TOPIC".to_string(), "orders".to_string())]);
        let s = &split("  CREATE STREAM s WITH (KAFKA_TOPIC='${topic}', X=${nope});")[0];
        let e = substitute(s, &vars).unwrap_err();
        assert_eq!((e.line, e.column), (1, 51));
        let s = &split("SELECT * FROM ${topic};")[0];
        assert_eq!(substitute(s, &vars).unwrap(), "SELECT * FROM orders;");
    }
}
