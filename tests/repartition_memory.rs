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

/// A table's rows regrouped over four partitions: each update that moves a row to another
/// group, and each delete, takes it back from the group it left, whichever task holds it.
#[tokio::test]
async fn group_by_over_a_table_retracts_rows_that_move_between_groups() {
    let mut engine = engine(
        "CREATE TABLE users (id VARCHAR PRIMARY KEY, region VARCHAR, score INT)
               WITH (KAFKA_TOPIC='users', VALUE_FORMAT='JSON', PARTITIONS=4);
             CREATE TABLE per_region AS SELECT region, COUNT(*) AS n, SUM(score) AS total
               FROM users GROUP BY region;",
    )
    .await;
    let kafka = engine.runtime_mut();
    let mut expected: std::collections::BTreeMap<String, (String, i64)> = Default::default();
    // 40 users over 5 regions, then every user moves twice and every third is deleted.
    for round in 0..3 {
        for u in 0..40 {
            let id = format!("u{u}");
            let region = format!("r{}", (u + round * 3) % 5);
            if round == 2 && u % 3 == 0 {
                kafka
                    .produce(Record {
                        value: None,
                        ..record("users", &id, "", round)
                    })
                    .unwrap();
                expected.remove(&id);
                continue;
            }
            let value = format!(r#"{{"region": "{region}", "score": {u}}}"#);
            kafka.produce(record("users", &id, &value, round)).unwrap();
            expected.insert(id, (region, u));
        }
        kafka.run_until_idle().unwrap();
    }
    let mut want: std::collections::BTreeMap<String, (i64, i64)> = Default::default();
    for (region, score) in expected.values() {
        let e = want.entry(region.clone()).or_default();
        e.0 += 1;
        e.1 += score;
    }
    let want: Vec<(String, String)> = want
        .into_iter()
        .map(|(r, (n, total))| (r, format!(r#"{{"N":{n},"TOTAL":{total}}}"#)))
        .collect();
    assert_eq!(latest(kafka, "PER_REGION"), want);
    let internal = kafka.records("eddy-query-CTAS_PER_REGION_0-GroupBy-repartition");
    let retractions = internal
        .iter()
        .filter(|r| {
            String::from_utf8_lossy(r.value.as_deref().unwrap()).contains(r#""$RETRACT":true"#)
        })
        .count();
    // Every user moves once (40), then 26 move again and 14 are deleted.
    assert_eq!(retractions, 40 + 26 + 14, "{}", internal.len());
}

/// What Eddy cannot re-key yet, or what ksqlDB forbids, is refused with a message naming
/// the construct, on topics of several partitions; never planned to give wrong rows.
#[tokio::test]
async fn joins_that_cannot_meet_are_refused_with_a_clear_message() {
    let mut engine = engine(
        "CREATE TABLE a (id VARCHAR PRIMARY KEY, b_id VARCHAR, x INT)
               WITH (KAFKA_TOPIC='a', VALUE_FORMAT='JSON', PARTITIONS=4);
             CREATE TABLE b (id VARCHAR PRIMARY KEY, c_id VARCHAR, y INT)
               WITH (KAFKA_TOPIC='b', VALUE_FORMAT='JSON', PARTITIONS=4);
             CREATE TABLE c (id VARCHAR PRIMARY KEY, z INT)
               WITH (KAFKA_TOPIC='c', VALUE_FORMAT='JSON', PARTITIONS=1);
             CREATE STREAM s (id VARCHAR KEY, v INT)
               WITH (KAFKA_TOPIC='s', VALUE_FORMAT='JSON', PARTITIONS=4);",
    )
    .await;
    let refused = async |engine: &mut Engine<MemoryKafka>, sql: &str| {
        engine.execute_script(sql).await.unwrap_err().to_string()
    };
    // Keys joined on topics of different partition counts (ksqlDB's rule and message).
    let message = refused(
        &mut engine,
        "CREATE TABLE ac AS SELECT a.id AS id, x, z FROM a JOIN c ON a.id = c.id;",
    )
    .await;
    assert!(
        message.contains("Can't join `A` with `C` since the number of partitions don't match"),
        "{message}"
    );
    assert!(
        engine.queries().is_empty(),
        "no refused statement left a query running"
    );
}

/// GROUP BY over a table-table join's results on another key, over four partitions: the
/// joins run in the stage that regroups their results, so each group is whole, and a joined
/// row that changes group (or whose join goes away) leaves its old group.
#[tokio::test]
async fn group_by_over_a_join_regroups_its_results() {
    let mut engine = engine(
        "CREATE TABLE accounts (id VARCHAR PRIMARY KEY, region VARCHAR)
               WITH (KAFKA_TOPIC='accounts', VALUE_FORMAT='JSON', PARTITIONS=4);
             CREATE TABLE balances (id VARCHAR PRIMARY KEY, amount INT)
               WITH (KAFKA_TOPIC='balances', VALUE_FORMAT='JSON', PARTITIONS=4);
             CREATE TABLE per_region AS SELECT region, COUNT(*) AS n, SUM(amount) AS total
               FROM accounts a JOIN balances b ON a.id = b.id GROUP BY region;",
    )
    .await;
    let kafka = engine.runtime_mut();
    for u in 0..30 {
        let value = format!(r#"{{"region": "r{}"}}"#, u % 3);
        kafka
            .produce(record("accounts", &format!("a{u}"), &value, 0))
            .unwrap();
        let value = format!(r#"{{"amount": {u}}}"#);
        kafka
            .produce(record("balances", &format!("a{u}"), &value, 0))
            .unwrap();
    }
    kafka.run_until_idle().unwrap();
    // a0..a9 move to region r9; a10..a14 lose their balance (the inner join goes away).
    for u in 0..10 {
        let value = r#"{"region": "r9"}"#;
        kafka
            .produce(record("accounts", &format!("a{u}"), value, 1))
            .unwrap();
    }
    for u in 10..15 {
        let tombstone = Record {
            value: None,
            ..record("balances", &format!("a{u}"), "", 1)
        };
        kafka.produce(tombstone).unwrap();
    }
    kafka.run_until_idle().unwrap();
    let mut want: std::collections::BTreeMap<String, (i64, i64)> = Default::default();
    for u in (10..30).filter(|u| !(10..15).contains(u)) {
        let e = want.entry(format!("r{}", u % 3)).or_default();
        e.0 += 1;
        e.1 += u;
    }
    want.insert("r9".into(), (10, (0..10).sum()));
    let latest: std::collections::BTreeMap<String, String> =
        latest(kafka, "PER_REGION").into_iter().collect();
    for (region, (n, total)) in want {
        assert_eq!(
            latest.get(&region).map(String::as_str),
            Some(format!(r#"{{"N":{n},"TOTAL":{total}}}"#).as_str()),
            "{region}: {latest:?}"
        );
    }
    assert!(
        !kafka
            .records("eddy-query-CTAS_PER_REGION_0-GroupBy-repartition")
            .is_empty(),
        "regrouped through the repartition topic"
    );
}

/// A 3-way join whose second join is on another key of the first join's result, over four
/// partitions: a stage runs the first join and re-keys its rows by the second join's key,
/// so every row meets its partner in the third source.
#[tokio::test]
async fn a_three_way_join_re_keys_the_first_joins_result() {
    let mut engine = engine(
        "CREATE STREAM s (id VARCHAR KEY, v INT)
               WITH (KAFKA_TOPIC='s', VALUE_FORMAT='JSON', PARTITIONS=4);
             CREATE TABLE a (id VARCHAR PRIMARY KEY, b_id VARCHAR)
               WITH (KAFKA_TOPIC='a', VALUE_FORMAT='JSON', PARTITIONS=4);
             CREATE TABLE b (id VARCHAR PRIMARY KEY, name VARCHAR)
               WITH (KAFKA_TOPIC='b', VALUE_FORMAT='JSON', PARTITIONS=4);
             CREATE STREAM sab AS SELECT b.id AS id, s.id AS s_id, v, name
               FROM s JOIN a ON s.id = a.id JOIN b ON a.b_id = b.id;",
    )
    .await;
    let kafka = engine.runtime_mut();
    for i in 0..10 {
        let value = format!(r#"{{"name": "n{i}"}}"#);
        kafka
            .produce(record("b", &format!("b{i}"), &value, 0))
            .unwrap();
    }
    for i in 0..40 {
        let value = format!(r#"{{"b_id": "b{}"}}"#, i % 10);
        kafka
            .produce(record("a", &format!("a{i}"), &value, 0))
            .unwrap();
    }
    kafka.run_until_idle().unwrap();
    for i in 0..40 {
        let value = format!(r#"{{"v": {i}}}"#);
        kafka
            .produce(record("s", &format!("a{i}"), &value, 10))
            .unwrap();
    }
    kafka.run_until_idle().unwrap();
    let mut got = keyed(kafka, "SAB");
    got.sort();
    let mut want: Vec<(String, String)> = (0..40)
        .map(|i| {
            let value = format!(r#"{{"S_ID":"a{i}","V":{i},"NAME":"n{}"}}"#, i % 10);
            (format!("b{}", i % 10), value)
        })
        .collect();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(
        kafka
            .records("eddy-query-CSAS_SAB_0-Join-left-1-repartition")
            .len(),
        40
    );
}
