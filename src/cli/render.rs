//! How the shell shows things: aligned tables, ksqlDB's entities, rows as they stream, and
//! errors with their position marked in the statement.
//!
//! Everything returns strings (the shell prints them), so rendering is tested without a
//! terminal. [`OutputFormat::Json`] shows the server's JSON as it came instead.

use serde_json::Value;

/// `SET CLI OUTPUT`-style choice: tables for people, JSON for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// Aligned tables.
    #[default]
    Tabular,
    /// The server's JSON.
    Json,
}

/// A text table with a header and aligned columns.
pub fn table(header: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let rule = border(&widths);
    let mut out = format!("{rule}\n{}\n{rule}\n", line(header, &widths));
    for row in rows {
        out.push_str(&line(row, &widths));
        out.push('\n');
    }
    out.push_str(&rule);
    out.push('\n');
    out
}

/// `+------+----+`
pub fn border(widths: &[usize]) -> String {
    let mut out = String::from("+");
    for w in widths {
        out.push_str(&"-".repeat(w + 2));
        out.push('+');
    }
    out
}

/// `| a    | b  |`
pub fn line(cells: &[String], widths: &[usize]) -> String {
    let mut out = String::from("|");
    for (i, w) in widths.iter().enumerate() {
        let cell = cells.get(i).map_or("", String::as_str);
        let pad = w.saturating_sub(cell.chars().count());
        out.push_str(&format!(" {cell}{} |", " ".repeat(pad)));
    }
    out
}

/// A JSON value as a table cell: strings bare, `null` as NULL, the rest as JSON.
pub fn cell(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "NULL".to_string(),
        other => other.to_string(),
    }
}

/// Column widths for streamed rows, which cannot be measured in advance: each column gets at
/// least its name's width, and a share of a 120-column screen (8 to 20 characters); longer
/// values widen their cell.
pub fn stream_widths(names: &[String]) -> Vec<usize> {
    let share = (120 / names.len().max(1)).saturating_sub(3).clamp(8, 20);
    names.iter().map(|n| n.chars().count().max(share)).collect()
}

/// One entity of a `/ksql` answer, for people.
pub fn entity(entity: &Value) -> String {
    let strings = |v: &Value, key: &str| v[key].as_str().unwrap_or_default().to_string();
    match entity["@type"].as_str().unwrap_or_default() {
        "currentStatus" => {
            let status = &entity["commandStatus"];
            table(&["Message".into()], &[vec![strings(status, "message")]])
        }
        "streams" => listing(&entity["streams"], &SOURCE_COLUMNS),
        "tables" => listing(&entity["tables"], &SOURCE_COLUMNS),
        "queries" => listing(&entity["queries"], &QUERY_COLUMNS),
        "kafka_topics" => {
            let rows: Vec<Vec<String>> = list(&entity["topics"])
                .iter()
                .map(|t| {
                    vec![
                        strings(t, "name"),
                        list(&t["replicaInfo"]).len().to_string(),
                    ]
                })
                .collect();
            table(&["Kafka Topic".into(), "Partitions".into()], &rows)
        }
        "properties" => listing(
            &entity["properties"],
            &[("Property", "name"), ("Value", "value")],
        ),
        "sourceDescription" => description(&entity["sourceDescription"]),
        "queryDescription" => {
            let q = &entity["queryDescription"];
            format!(
                "ID: {}\nSQL: {}\n\nExecution plan:\n{}\n",
                strings(q, "id"),
                strings(q, "statementText"),
                strings(q, "executionPlan")
            )
        }
        _ => format!(
            "{}\n",
            serde_json::to_string_pretty(entity).unwrap_or_default()
        ),
    }
}

/// Columns of `SHOW STREAMS/TABLES`: header and field.
const SOURCE_COLUMNS: [(&str, &str); 5] = [
    ("Name", "name"),
    ("Kafka Topic", "topic"),
    ("Key Format", "keyFormat"),
    ("Value Format", "valueFormat"),
    ("Windowed", "isWindowed"),
];

/// Columns of `SHOW QUERIES`.
const QUERY_COLUMNS: [(&str, &str); 5] = [
    ("Query ID", "id"),
    ("Query Type", "queryType"),
    ("Status", "state"),
    ("Sink Name", "sinks"),
    ("Query String", "queryString"),
];

/// A table of the objects in `items`, one column per `(header, field)`.
fn listing(items: &Value, columns: &[(&str, &str)]) -> String {
    let header: Vec<String> = columns.iter().map(|(h, _)| h.to_string()).collect();
    let rows: Vec<Vec<String>> = list(items)
        .iter()
        .map(|item| {
            columns
                .iter()
                .map(|(_, field)| match &item[*field] {
                    Value::Array(_) => cells(&item[*field]),
                    other => cell(other),
                })
                .collect()
        })
        .collect();
    table(&header, &rows)
}

fn list(value: &Value) -> Vec<Value> {
    value.as_array().cloned().unwrap_or_default()
}

fn cells(value: &Value) -> String {
    list(value).iter().map(cell).collect::<Vec<_>>().join(", ")
}

/// `DESCRIBE`: the source's facts, then its fields.
fn description(d: &Value) -> String {
    let strings = |key: &str| d[key].as_str().unwrap_or_default().to_string();
    let mut out = format!(
        "Name                 : {}\nType                 : {}\nKafka topic          : {} (partitions: {})\nKey format           : {}\nValue format         : {}\n",
        strings("name"),
        strings("type"),
        strings("topic"),
        d["partitions"],
        strings("keyFormat"),
        strings("valueFormat"),
    );
    let fields: Vec<Vec<String>> = list(&d["fields"])
        .iter()
        .map(|f| {
            let key = if f["type"] == "KEY" { " (key)" } else { "" };
            vec![
                f["name"].as_str().unwrap_or_default().to_string(),
                format!("{}{key}", f["schema"]["type"].as_str().unwrap_or_default()),
            ]
        })
        .collect();
    out.push_str(&table(&["Field".into(), "Type".into()], &fields));
    for (title, key) in [
        ("Queries that write", "writeQueries"),
        ("Queries that read", "readQueries"),
    ] {
        let ids: Vec<String> = list(&d[key]).iter().map(|q| cell(&q["id"])).collect();
        if !ids.is_empty() {
            out.push_str(&format!("{title}: {}\n", ids.join(", ")));
        }
    }
    if let Some(stats) = d["statistics"].as_str().filter(|s| !s.is_empty()) {
        out.push_str(&format!("Statistics: {stats}\n"));
    }
    out
}

/// An error message, with the statement's offending position marked when the message says
/// where (`line L:C: ...`).
pub fn error(message: &str, statement: Option<&str>) -> String {
    let mut out = format!("Error: {message}\n");
    let position = message
        .strip_prefix("line ")
        .and_then(|rest| rest.split_once(':'))
        .and_then(|(line, rest)| {
            let column = rest.split(':').next()?;
            Some((line.parse::<usize>().ok()?, column.parse::<usize>().ok()?))
        });
    if let (Some((line, column)), Some(statement)) = (position, statement)
        && let Some(text) = statement.lines().nth(line.saturating_sub(1))
    {
        out.push_str(&format!(
            "  {text}\n  {}^\n",
            " ".repeat(column.saturating_sub(1))
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_their_columns() {
        let t = table(
            &["A".into(), "Long name".into()],
            &[
                vec!["x".into(), "1".into()],
                vec!["wider".into(), "22".into()],
            ],
        );
        assert_eq!(
            t,
            "+-------+-----------+\n| A     | Long name |\n+-------+-----------+\n| x     | 1         |\n| wider | 22        |\n+-------+-----------+\n"
        );
    }

    #[test]
    fn errors_mark_their_position() {
        let out = error("line 1:8: Expected ...", Some("SELECT FORM x;"));
        assert_eq!(
            out,
            "Error: line 1:8: Expected ...\n  SELECT FORM x;\n         ^\n"
        );
    }

    #[test]
    fn statuses_show_their_message() {
        let out = entity(
            &json!({"@type": "currentStatus", "commandStatus": {"message": "Stream created"}}),
        );
        assert!(out.contains("| Stream created |"), "{out}");
    }
}
