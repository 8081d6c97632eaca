//! The DELIMITED format: one line of separated fields, as ksqlDB reads and writes it.
//!
//! Fields follow the column order; an empty field is NULL; a field holding the delimiter, a
//! quote or a line break is double-quoted, with quotes doubled (CSV). Field text is coerced to
//! the column's type by the same rules as JSON strings ([`super::json`]). The delimiter comes
//! from `VALUE_DELIMITER`/`KEY_DELIMITER` (`,` by default; `TAB` and `SPACE` by name).

use arrow::datatypes::DataType;
use datafusion_common::ScalarValue;
use serde_json::Value;

use super::json;

/// The delimiter a `*_DELIMITER` property names.
pub fn delimiter(name: &str) -> Result<char, String> {
    match name.to_ascii_uppercase().as_str() {
        "TAB" => Ok('\t'),
        "SPACE" => Ok(' '),
        _ => {
            let mut chars = name.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Ok(c),
                _ => Err(format!(
                    "Invalid delimiter value: '{name}'. Delimiter must be a single character or TAB or SPACE"
                )),
            }
        }
    }
}

/// Splits one line into fields; `None` for an empty field.
pub fn split(line: &str, delimiter: char) -> Vec<Option<String>> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let (mut quoted, mut was_quoted) = (false, false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            '"' if quoted => quoted = false,
            '"' if field.is_empty() => {
                quoted = true;
                was_quoted = true;
            }
            c if c == delimiter && !quoted => {
                fields.push(finish(&mut field, &mut was_quoted));
            }
            c => field.push(c),
        }
    }
    fields.push(finish(&mut field, &mut was_quoted));
    fields
}

fn finish(field: &mut String, was_quoted: &mut bool) -> Option<String> {
    let text = std::mem::take(field);
    let quoted = std::mem::take(was_quoted);
    (quoted || !text.is_empty()).then_some(text)
}

/// The columns of one line, coerced to `types`.
pub fn to_scalars(
    line: &str,
    delimiter: char,
    types: &[DataType],
) -> Result<Vec<ScalarValue>, String> {
    let fields = split(line, delimiter);
    if fields.len() != types.len() {
        return Err(format!(
            "Column count mismatch on deserialization. expected: {}, got: {}",
            types.len(),
            fields.len()
        ));
    }
    fields
        .into_iter()
        .zip(types)
        .map(|(field, t)| json::to_scalar(&field.map_or(Value::Null, Value::String), t))
        .collect()
}

/// One line from scalars.
pub fn from_scalars(values: &[ScalarValue], delimiter: char) -> String {
    let fields: Vec<String> = values
        .iter()
        .map(|v| match json::from_scalar(v) {
            Value::Null => String::new(),
            // A decimal keeps its scale's digits: DECIMAL(5,3) 10.12 is `10.120`.
            _ if matches!(v, ScalarValue::Decimal128(..)) => v.to_string(),
            Value::String(s) => quote_if_needed(&s, delimiter),
            other => other.to_string(),
        })
        .collect();
    fields.join(&delimiter.to_string())
}

/// Quotes as Apache Commons CSV's minimal mode (ksqlDB's writer) does: a value starting with
/// a character up to `#`, ending with one up to the space, or holding the delimiter, a quote
/// or a line break.
fn quote_if_needed(s: &str, delimiter: char) -> String {
    let starts_low = s.chars().next().is_some_and(|c| c <= '#');
    let ends_low = s.chars().last().is_some_and(|c| c <= ' ');
    if starts_low || ends_low || s.contains([delimiter, '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_quotes_and_nulls() {
        let values = vec![
            ScalarValue::Utf8(Some("a,b \"c\"".into())),
            ScalarValue::Int32(None),
            ScalarValue::Float64(Some(1.5)),
        ];
        let line = from_scalars(&values, ',');
        assert_eq!(line, "\"a,b \"\"c\"\"\",,1.5");
        let back = to_scalars(
            &line,
            ',',
            &[DataType::Utf8, DataType::Int32, DataType::Float64],
        )
        .unwrap();
        assert_eq!(back, values);
    }

    #[test]
    fn counts_columns() {
        assert!(
            to_scalars("1,2", ',', &[DataType::Int32])
                .unwrap_err()
                .contains("Column count mismatch")
        );
        assert_eq!(
            split("a\tb", '\t'),
            vec![Some("a".into()), Some("b".into())]
        );
    }
}
