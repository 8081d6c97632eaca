//! Partition independence: a query's table must end the same whatever the partitioning.
//!
//! A ksqlDB functional case is run twice on the in-memory driver: with every topic at one
//! partition, and with every topic at N (input records spread by key with Java's
//! partitioner, each query running one task per partition, as on a broker). For every table
//! the case's queries write, the last value of each key must be the same. Streams' outputs
//! are not compared: their interleaving across partitions is free. A case whose query Eddy
//! refuses on N partitions ("refused") is not wrong; one whose tables differ is.

use std::collections::BTreeMap;

use serde_json::Value;

use super::memory::MemoryKafka;
use super::qtt::{self, Case};
use crate::engine::Engine;
use crate::sql::ast::SourceKind;

/// Each table topic's final rows: (topic, key bytes) → value bytes.
pub type Tables = BTreeMap<(String, Vec<u8>), Value>;

/// How one case compared.
#[derive(Debug, Clone, PartialEq)]
pub enum Comparison {
    /// Its tables ended the same (how many keys).
    Same(usize),
    /// Some key ended differently (the first such, described).
    Differs(String),
    /// A statement or record failed on N partitions only: the error.
    Refused(String),
    /// The answer depends on partitioning by definition: the case reads `ROWPARTITION` or
    /// `ROWOFFSET`, or drops late records by a grace period (stream time is per partition).
    PartitionDependent,
    /// Nothing to compare: no table output, an expected error, or a failure on one partition.
    NotApplicable,
}

/// Runs `case` with every topic at `partitions` partitions and returns its tables' final rows.
pub async fn final_tables(case: &Case, partitions: i32) -> Result<Tables, String> {
    let mut engine = Engine::new(MemoryKafka::default());
    engine.runtime_mut().spread_over(partitions);
    qtt::create_topics(case, engine.runtime()).await;
    qtt::register_schemas(case, engine.registry());
    qtt::execute(case, &mut engine).await?;
    qtt::feed(case, &mut engine, false)?;
    let topics: Vec<String> = engine
        .catalog()
        .sources()
        .filter(|s| s.kind == SourceKind::Table && s.written_by.is_some())
        .map(|s| s.topic.clone())
        .collect();
    let mut tables = Tables::new();
    for topic in topics {
        let source = qtt::source_for(&engine, &topic);
        for record in engine.runtime().records(&topic) {
            // Compared decoded: a map's entries may be written in any order.
            let value = qtt::decode(source.as_deref(), &record, engine.registry())?.value;
            let key = (topic.clone(), record.key.unwrap_or_default());
            match record.value {
                Some(_) => tables.insert(key, value),
                None => tables.remove(&key),
            };
        }
    }
    Ok(tables)
}

/// Compares `case`'s tables on one partition and on `partitions`.
pub async fn compare(case: &Case, partitions: i32) -> Comparison {
    let spec = &case.spec;
    if spec["enabled"] == Value::Bool(false) || spec.get("expectedException").is_some() {
        return Comparison::NotApplicable;
    }
    let text = case.statements.join("\n").to_ascii_uppercase();
    if ["ROWPARTITION", "ROWOFFSET", "GRACE PERIOD"]
        .iter()
        .any(|w| text.contains(w))
    {
        return Comparison::PartitionDependent;
    }
    let Ok(one) = final_tables(case, 1).await else {
        return Comparison::NotApplicable;
    };
    if one.is_empty() {
        return Comparison::NotApplicable;
    }
    let many = match final_tables(case, partitions).await {
        Ok(many) => many,
        Err(e) => return Comparison::Refused(e),
    };
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    for key in one.keys().chain(many.keys()) {
        let (a, b) = (one.get(key), many.get(key));
        if a != b {
            return Comparison::Differs(format!(
                "{} key {}: {:?} on 1 partition, {:?} on {partitions}",
                key.0,
                text(&key.1),
                a.map(Value::to_string),
                b.map(Value::to_string)
            ));
        }
    }
    Comparison::Same(one.len())
}
