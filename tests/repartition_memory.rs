//! Re-keying through repartition topics, on the in-memory driver: GROUP BY a value column and
//! a stream-table join on a foreign column, over two-partition topics, must go through the
//! query's internal topic and still give each group and each join its exact result.

// Test helpers outside #[test] functions: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use eddy::engine::Engine;
use eddy::record::Record;
use eddy::testing::memory::MemoryKafka;

fn record(topic: &str, key: &str, value: &str, ts: i64) -> Record {
    Record {
        topic: topic.into(),
        key: Some(key.as_bytes().to_vec()),
        value: Some(value.as_bytes().to_vec()),
        timestamp: ts,
        ..Record::default()
    }
}

/// Every record of `topic` as (key, value) text.
fn keyed(kafka: &MemoryKafka, topic: &str) -> Vec<(String, String)> {
    kafka
        .records(topic)
        .into_iter()
        .map(|r| {
            (
                String::from_utf8(r.key.unwrap()).unwrap(),
                String::from_utf8(r.value.unwrap_or_default()).unwrap(),
            )
        })
        .collect()
}

/// The last value written for each key of `topic`, as text.
fn latest(kafka: &MemoryKafka, topic: &str) -> Vec<(String, String)> {
    let last: std::collections::BTreeMap<String, String> =
        keyed(kafka, topic).into_iter().collect();
    last.into_iter().collect()
}

async fn engine(sql: &str) -> Engine<MemoryKafka> {
    let mut engine = Engine::new(MemoryKafka::default());
    engine.execute_script(sql).await.unwrap();
    engine
}

#[tokio::test]
async fn group_by_a_value_column_goes_through_a_repartition_topic() {
    let mut engine = engine(
        "CREATE STREAM payments (id VARCHAR KEY, order_id VARCHAR, amount DOUBLE)
               WITH (KAFKA_TOPIC='payments', VALUE_FORMAT='JSON', PARTITIONS=2);
             CREATE TABLE paid AS SELECT order_id, SUM(amount) AS total, COUNT(*) AS n
               FROM payments GROUP BY order_id;",
    )
    .await;
    let kafka = engine.runtime_mut();
    for (i, (order, amount)) in [
        ("o1", 10.0),
        ("o2", 5.0),
        ("o1", 2.5),
        ("o3", 1.0),
        ("o2", 5.0),
    ]
    .into_iter()
    .enumerate()
    {
        let value = format!(r#"{{"order_id": "{order}", "amount": {amount}}}"#);
        kafka
            .produce(record("payments", &format!("p{i}"), &value, i as i64))
            .unwrap();
    }
    kafka.run_until_idle().unwrap();
    let internal = "eddy-query-CTAS_PAID_0-GroupBy-repartition";
    assert_eq!(
        kafka.records(internal).len(),
        5,
        "every payment is re-keyed"
    );
    assert!(
        kafka
            .records(internal)
            .iter()
            .all(|r| r.key.as_deref().is_some_and(|k| k.starts_with(b"\"o"))),
        "re-keyed by order id"
    );
    assert_eq!(
        latest(kafka, "PAID"),
        vec![
            ("o1".into(), r#"{"TOTAL":12.5,"N":2}"#.into()),
            ("o2".into(), r#"{"TOTAL":10.0,"N":2}"#.into()),
            ("o3".into(), r#"{"TOTAL":1.0,"N":1}"#.into()),
        ]
    );
}

#[tokio::test]
async fn a_join_on_a_value_column_repartitions_the_stream() {
    let mut engine = engine(
        "CREATE STREAM orders (id VARCHAR KEY, customer_id VARCHAR, total DOUBLE)
               WITH (KAFKA_TOPIC='orders', VALUE_FORMAT='JSON', PARTITIONS=2);
             CREATE TABLE customers (id VARCHAR PRIMARY KEY, name VARCHAR)
               WITH (KAFKA_TOPIC='customers', VALUE_FORMAT='JSON', PARTITIONS=2);
             CREATE STREAM enriched AS SELECT c.id AS customer, o.id AS order_id, c.name, o.total
               FROM orders o JOIN customers c ON o.customer_id = c.id;",
    )
    .await;
    let kafka = engine.runtime_mut();
    for (id, name) in [("c1", "ada"), ("c2", "bob"), ("c3", "cy")] {
        let value = format!(r#"{{"name": "{name}"}}"#);
        kafka.produce(record("customers", id, &value, 0)).unwrap();
    }
    // The table is loaded before the orders arrive.
    kafka.run_until_idle().unwrap();
    for (i, customer) in ["c2", "c1", "c9", "c3"].into_iter().enumerate() {
        let value = format!(r#"{{"customer_id": "{customer}", "total": {i}.5}}"#);
        kafka
            .produce(record("orders", &format!("o{i}"), &value, 10 + i as i64))
            .unwrap();
    }
    kafka.run_until_idle().unwrap();
    assert_eq!(
        kafka
            .records("eddy-query-CSAS_ENRICHED_0-Join-left-repartition")
            .len(),
        4
    );
    let mut got = keyed(kafka, "ENRICHED");
    got.sort();
    assert_eq!(
        got,
        vec![
            (
                "c1".into(),
                r#"{"ORDER_ID":"o1","NAME":"ada","TOTAL":1.5}"#.into()
            ),
            (
                "c2".into(),
                r#"{"ORDER_ID":"o0","NAME":"bob","TOTAL":0.5}"#.into()
            ),
            (
                "c3".into(),
                r#"{"ORDER_ID":"o3","NAME":"cy","TOTAL":3.5}"#.into()
            ),
        ]
    );
}
