//! The shell's line-editing helper for rustyline: tab completion and syntax highlighting.
//!
//! Completion offers ksqlDB's keywords, function names, common properties, and the streams,
//! tables and columns the server has (refreshed by the shell after each statement), matching
//! the typed prefix case-insensitively and keeping the case the user types in. Highlighting
//! colours keywords, strings and numbers without changing the line's width. No I/O here.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use rustyline::completion::{Completer, Pair};
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};

/// Keywords of ksqlDB's statements and clauses.
pub const KEYWORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP",
    "BY",
    "HAVING",
    "EMIT",
    "CHANGES",
    "FINAL",
    "LIMIT",
    "WINDOW",
    "TUMBLING",
    "HOPPING",
    "SESSION",
    "SIZE",
    "ADVANCE",
    "GRACE",
    "PERIOD",
    "RETENTION",
    "CREATE",
    "STREAM",
    "TABLE",
    "SOURCE",
    "AS",
    "WITH",
    "INSERT",
    "INTO",
    "VALUES",
    "DROP",
    "DELETE",
    "TOPIC",
    "TERMINATE",
    "ALL",
    "SHOW",
    "LIST",
    "STREAMS",
    "TABLES",
    "QUERIES",
    "TOPICS",
    "PROPERTIES",
    "FUNCTIONS",
    "DESCRIBE",
    "EXTENDED",
    "EXPLAIN",
    "PRINT",
    "BEGINNING",
    "INTERVAL",
    "SET",
    "UNSET",
    "DEFINE",
    "UNDEFINE",
    "JOIN",
    "LEFT",
    "RIGHT",
    "FULL",
    "OUTER",
    "INNER",
    "ON",
    "WITHIN",
    "PARTITION",
    "KEY",
    "PRIMARY",
    "AND",
    "OR",
    "NOT",
    "NULL",
    "IS",
    "IN",
    "LIKE",
    "BETWEEN",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "CAST",
    "TRUE",
    "FALSE",
    "SECONDS",
    "MINUTES",
    "HOURS",
    "DAYS",
    "MILLISECONDS",
    "SECOND",
    "MINUTE",
    "HOUR",
    "DAY",
    "EXIT",
    "RUN",
    "SCRIPT",
    "OUTPUT",
    "IF",
    "EXISTS",
    "REPLACE",
    "VARCHAR",
    "STRING",
    "INT",
    "INTEGER",
    "BIGINT",
    "DOUBLE",
    "BOOLEAN",
    "DECIMAL",
    "ARRAY",
    "MAP",
    "STRUCT",
    "TIMESTAMP",
    "DATE",
    "TIME",
    "BYTES",
];

/// Function names offered by completion.
pub const FUNCTIONS: &[&str] = &[
    "COUNT",
    "SUM",
    "AVG",
    "MIN",
    "MAX",
    "COUNT_DISTINCT",
    "COLLECT_LIST",
    "COLLECT_SET",
    "EARLIEST_BY_OFFSET",
    "LATEST_BY_OFFSET",
    "TOPK",
    "TOPKDISTINCT",
    "HISTOGRAM",
    "ABS",
    "CEIL",
    "FLOOR",
    "ROUND",
    "SQRT",
    "CONCAT",
    "UCASE",
    "LCASE",
    "TRIM",
    "LEN",
    "SUBSTRING",
    "REPLACE",
    "SPLIT",
    "LPAD",
    "RPAD",
    "COALESCE",
    "IFNULL",
    "EXPLODE",
    "ARRAY_CONTAINS",
    "EXTRACTJSONFIELD",
    "JSON_KEYS",
    "TRANSFORM",
    "FILTER",
    "REDUCE",
    "URL_EXTRACT_HOST",
    "AS_VALUE",
    "GREATEST",
    "LEAST",
];

/// Properties offered after `SET`.
pub const PROPERTIES: &[&str] = &[
    "'auto.offset.reset'",
    "'ksql.streams.auto.offset.reset'",
    "'ksql.query.pull.table.scan.enabled'",
];

/// Names the server knows: streams, tables and their columns.
#[derive(Debug, Default, Clone)]
pub struct Names {
    /// Stream and table names.
    pub sources: Vec<String>,
    /// Column names of every source.
    pub columns: Vec<String>,
}

/// The rustyline helper of the shell.
#[derive(Debug, Default, Clone)]
pub struct ShellHelper {
    /// What the server knows, shared with the shell that refreshes it.
    pub names: Arc<Mutex<Names>>,
    /// Colour the input.
    pub colour: bool,
}

impl ShellHelper {
    /// Candidates for the word `prefix`, case-insensitively, in the case the user typed.
    pub fn candidates(&self, prefix: &str) -> Vec<String> {
        if prefix.is_empty() {
            return Vec::new();
        }
        let upper = prefix.to_ascii_uppercase();
        let lower_typed = prefix.chars().all(|c| !c.is_ascii_uppercase());
        let names = self.names.lock().map(|n| n.clone()).unwrap_or_default();
        let mut out: Vec<String> = KEYWORDS
            .iter()
            .chain(FUNCTIONS)
            .map(|k| k.to_string())
            .chain(names.sources)
            .chain(names.columns)
            .chain(PROPERTIES.iter().map(|p| p.to_string()))
            .filter(|c| c.to_ascii_uppercase().starts_with(&upper) && c.len() > prefix.len())
            .map(|c| {
                if lower_typed && c.chars().all(|ch| !ch.is_ascii_lowercase()) {
                    c.to_ascii_lowercase()
                } else {
                    c
                }
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = before
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == '\'' || c == '.'))
            .map_or(0, |i| i + 1);
        let candidates = self
            .candidates(&before[start..])
            .into_iter()
            .map(|c| Pair {
                display: c.clone(),
                replacement: c,
            })
            .collect();
        Ok((start, candidates))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}

impl Validator for ShellHelper {}

impl Highlighter for ShellHelper {
    fn highlight<'l>(&self, line: &'l str, _pos: usize) -> Cow<'l, str> {
        if !self.colour {
            return Cow::Borrowed(line);
        }
        Cow::Owned(highlight(line))
    }

    fn highlight_char(&self, _line: &str, _pos: usize, _kind: CmdKind) -> bool {
        self.colour
    }
}

impl Helper for ShellHelper {}

/// `line` with ANSI colours: keywords bold blue, strings green, numbers yellow.
pub fn highlight(line: &str) -> String {
    let mut out = String::with_capacity(line.len() * 2);
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            let end = chars[i + 1..]
                .iter()
                .position(|&d| d == '\'')
                .map_or(chars.len(), |p| i + 2 + p);
            out.push_str("\x1b[32m");
            out.extend(&chars[i..end]);
            out.push_str("\x1b[0m");
            i = end;
        } else if c.is_alphabetic() || c == '_' {
            let end = chars[i..]
                .iter()
                .position(|d| !(d.is_alphanumeric() || *d == '_'))
                .map_or(chars.len(), |p| i + p);
            let word: String = chars[i..end].iter().collect();
            if KEYWORDS.contains(&word.to_ascii_uppercase().as_str()) {
                out.push_str(&format!("\x1b[1;34m{word}\x1b[0m"));
            } else {
                out.push_str(&word);
            }
            i = end;
        } else if c.is_ascii_digit() {
            let end = chars[i..]
                .iter()
                .position(|d| !(d.is_ascii_digit() || *d == '.'))
                .map_or(chars.len(), |p| i + p);
            out.push_str("\x1b[33m");
            out.extend(&chars[i..end]);
            out.push_str("\x1b[0m");
            i = end;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completes_keywords_and_names_in_the_typed_case() {
        let helper = ShellHelper::default();
        helper.names.lock().unwrap().sources.push("ORDERS".into());
        assert!(helper.candidates("SEL").contains(&"SELECT".to_string()));
        assert!(helper.candidates("sel").contains(&"select".to_string()));
        assert!(helper.candidates("ord").contains(&"orders".to_string()));
        assert!(helper.candidates("").is_empty());
    }

    #[test]
    fn highlighting_keeps_the_text() {
        let out = highlight("SELECT 'x', 42 FROM t;");
        let plain = out
            .replace("\x1b[1;34m", "")
            .replace("\x1b[32m", "")
            .replace("\x1b[33m", "")
            .replace("\x1b[0m", "");
        assert_eq!(plain, "SELECT 'x', 42 FROM t;");
    }
}
