//! ksqlDB's REST entities: the JSON shapes `/ksql` answers with, built from the engine.
//!
//! Each function builds one `@type` (`currentStatus`, `streams`, `tables`, `queries`,
//! `kafka_topics`, `sourceDescription`, `properties`, `queryDescription`) with the field
//! names ksqlDB's clients read, and [`row_json`] turns result rows into JSON values. Nothing
//! here runs statements or touches HTTP.

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use datafusion_common::ScalarValue;
use serde_json::{Value, json};

use crate::catalog::{ColumnKind, Source, WindowInfo};
use crate::engine::{Outcome, QueryInfo};
use crate::sql::ast::SourceKind;

/// `currentStatus`: a statement that changed the server.
pub fn current_status(statement: &str, outcome: &Outcome, sequence: i64) -> Value {
    let (command_id, query_id) = match outcome {
        Outcome::SourceCreated { kind, name } => {
            (format!("{}/{name}/create", kind_word(*kind)), None)
        }
        Outcome::QueryStarted { id, sink } => {
            let kind = if id.starts_with("CTAS") {
                "table"
            } else {
                "stream"
            };
            (format!("{kind}/{sink}/create"), Some(id.clone()))
        }
        Outcome::SourceDropped(name) => (format!("stream/{name}/drop"), None),
        Outcome::Terminated(ids) => (format!("terminate/{}/execute", ids.join(",")), None),
        Outcome::Noop(_) => ("statement/execute".to_string(), None),
    };
    json!({
        "@type": "currentStatus",
        "statementText": statement,
        "commandId": command_id,
        "commandStatus": {
            "status": "SUCCESS",
            "message": outcome.to_string(),
            "queryId": query_id,
        },
        "commandSequenceNumber": sequence,
        "warnings": [],
    })
}

fn kind_word(kind: SourceKind) -> &'static str {
    match kind {
        SourceKind::Stream => "stream",
        SourceKind::Table => "table",
    }
}

fn format_name(format: crate::format::Format) -> String {
    format
        .to_string()
        .split('(')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// `streams` or `tables`: `SHOW STREAMS` / `SHOW TABLES`.
pub fn source_list<'a>(
    statement: &str,
    kind: SourceKind,
    sources: impl Iterator<Item = &'a Source>,
) -> Value {
    let list: Vec<Value> = sources
        .filter(|s| s.kind == kind)
        .map(|s| {
            json!({
                "type": kind.to_string(),
                "name": s.name,
                "topic": s.topic,
                "keyFormat": format_name(s.key_format),
                "valueFormat": format_name(s.value_format),
                "isWindowed": s.window.is_some(),
            })
        })
        .collect();
    let (tag, field) = match kind {
        SourceKind::Stream => ("streams", "streams"),
        SourceKind::Table => ("tables", "tables"),
    };
    json!({"@type": tag, "statementText": statement, field: list, "warnings": []})
}

/// One persistent query as `SHOW QUERIES` and `DESCRIBE` list it.
pub fn query_summary(id: &str, info: &QueryInfo, topic: Option<&str>) -> Value {
    json!({
        "queryString": info.statement,
        "sinks": [info.sink],
        "sinkKafkaTopics": topic.into_iter().collect::<Vec<_>>(),
        "id": id,
        "statusCount": {info.status.state().name(): 1},
        "queryType": "PERSISTENT",
        "state": info.status.state().name(),
    })
}

/// ksqlDB's `queryErrors` of a query: its recent failures.
fn query_errors(info: &QueryInfo) -> Vec<Value> {
    info.status
        .errors()
        .into_iter()
        .map(|e| json!({"timestamp": e.timestamp, "errorMessage": e.message, "type": e.kind}))
        .collect()
}

/// `queries`: `SHOW QUERIES` (persistent queries, then push queries).
pub fn query_list<'a>(
    statement: &str,
    queries: impl Iterator<Item = (&'a String, &'a QueryInfo, Option<&'a str>)>,
    push: &[String],
) -> Value {
    let mut list: Vec<Value> = queries
        .map(|(id, info, topic)| query_summary(id, info, topic))
        .collect();
    list.extend(push.iter().map(|id| {
        json!({
            "queryString": "",
            "sinks": [],
            "sinkKafkaTopics": [],
            "id": id,
            "statusCount": {"RUNNING": 1},
            "queryType": "PUSH",
            "state": "RUNNING",
        })
    }));
    json!({"@type": "queries", "statementText": statement, "queries": list, "warnings": []})
}

/// `kafka_topics`: `SHOW TOPICS`.
pub fn topic_list(statement: &str, topics: &[(String, i32)]) -> Value {
    let list: Vec<Value> = topics
        .iter()
        .map(|(name, partitions)| {
            json!({"name": name, "replicaInfo": vec![1; (*partitions).max(0) as usize]})
        })
        .collect();
    json!({"@type": "kafka_topics", "statementText": statement, "topics": list, "warnings": []})
}

/// `properties`: `SHOW PROPERTIES`.
pub fn properties(statement: &str, properties: &[(String, String)]) -> Value {
    let list: Vec<Value> = properties
        .iter()
        .map(|(name, value)| json!({"name": name, "scope": "KSQL", "value": value}))
        .collect();
    json!({"@type": "properties", "statementText": statement, "properties": list, "warnings": []})
}

/// A column's type as ksqlDB's `SchemaInfo`: `{"type": "ARRAY", "memberSchema": {...}}`.
pub fn schema_info(data_type: &DataType) -> Value {
    match data_type {
        DataType::List(item) => json!({
            "type": "ARRAY", "fields": null, "memberSchema": schema_info(item.data_type()),
        }),
        DataType::Map(entries, _) => {
            let value = match entries.data_type() {
                DataType::Struct(kv) if kv.len() == 2 => schema_info(kv[1].data_type()),
                _ => Value::Null,
            };
            json!({"type": "MAP", "fields": null, "memberSchema": value})
        }
        DataType::Struct(fields) => {
            let fields: Vec<Value> = fields
                .iter()
                .map(|f| json!({"name": f.name(), "schema": schema_info(f.data_type())}))
                .collect();
            json!({"type": "STRUCT", "fields": fields, "memberSchema": null})
        }
        other => {
            let name = crate::types::sql_name(other);
            let base = name.split('(').next().unwrap_or_default().to_string();
            json!({"type": base, "fields": null, "memberSchema": null})
        }
    }
}

/// What `DESCRIBE` shows beside the schema: the queries reading and writing the source,
/// its partition count and its processing statistics.
#[derive(Debug, Default)]
pub struct SourceDetails {
    /// Queries reading the source.
    pub read_queries: Vec<Value>,
    /// Queries writing the source.
    pub write_queries: Vec<Value>,
    /// The topic's partition count.
    pub partitions: i32,
    /// A line of statistics (`DESCRIBE EXTENDED`).
    pub statistics: String,
    /// The last failure of each query writing the source (`DESCRIBE EXTENDED`).
    pub errors: Vec<String>,
}

/// `sourceDescription`: `DESCRIBE [EXTENDED] source`.
pub fn source_description(
    statement: &str,
    source: &Source,
    extended: bool,
    details: SourceDetails,
) -> Value {
    let fields: Vec<Value> = source
        .schema
        .columns
        .iter()
        .map(|c| {
            let mut field = json!({"name": c.name, "schema": schema_info(&c.data_type)});
            if c.kind == ColumnKind::Key {
                field["type"] = json!("KEY");
            }
            field
        })
        .collect();
    let window = source.window.map(|w| match w {
        WindowInfo::Session => "SESSION",
        WindowInfo::Time { .. } => "TUMBLING",
    });
    json!({
        "@type": "sourceDescription",
        "statementText": statement,
        "sourceDescription": {
            "name": source.name,
            "windowType": window,
            "readQueries": details.read_queries,
            "writeQueries": details.write_queries,
            "fields": fields,
            "type": source.kind.to_string(),
            "timestamp": source.timestamp_column.clone().unwrap_or_default(),
            "statistics": details.statistics,
            "errorStats": if extended { details.errors.join("; ") } else { String::new() },
            "extended": extended,
            "keyFormat": format_name(source.key_format),
            "valueFormat": format_name(source.value_format),
            "topic": source.topic,
            "partitions": details.partitions,
            "replication": 1,
            "statement": "",
            "queryOffsetSummaries": [],
            "sourceConstraints": [],
        },
        "warnings": [],
    })
}

/// `queryDescription`: `EXPLAIN query_id`.
pub fn query_description(
    statement: &str,
    id: &str,
    info: &QueryInfo,
    sources: &[String],
    plan: &str,
) -> Value {
    json!({
        "@type": "queryDescription",
        "statementText": statement,
        "queryDescription": {
            "id": id,
            "statementText": info.statement,
            "windowType": null,
            "fields": [],
            "sources": sources,
            "sinks": [info.sink],
            "topology": plan,
            "executionPlan": plan,
            "overriddenProperties": {},
            "ksqlHostQueryStatus": {},
            "queryType": "PERSISTENT",
            "queryErrors": query_errors(info),
            "tasksMetadata": [],
            "state": info.status.state().name(),
        },
        "warnings": [],
    })
}

/// Each row of `batch` as a JSON array of its columns.
pub fn row_json(batch: &RecordBatch) -> Vec<Vec<Value>> {
    (0..batch.num_rows())
        .map(|row| {
            batch
                .columns()
                .iter()
                .map(|column| {
                    ScalarValue::try_from_array(column, row)
                        .map(|v| crate::format::json::from_scalar(&v))
                        .unwrap_or(Value::Null)
                })
                .collect()
        })
        .collect()
}
