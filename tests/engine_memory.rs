//! The engine on the in-memory driver: the talk's fraud query, HAVING tombstones, EMIT FINAL,
//! a malformed record and an expression failing on a record, checked record by record
//! without a broker.

// Test helpers outside #[test] functions: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use eddy::engine::Engine;
use eddy::record::Record;
use eddy::testing::memory::MemoryKafka;

const STREAM: &str =
    "CREATE STREAM authorizations (card_number VARCHAR KEY, amount DOUBLE, merchant VARCHAR)
  WITH (KAFKA_TOPIC='authorizations', VALUE_FORMAT='JSON', PARTITIONS=2);";

fn auth(card: &str, ts: i64) -> Record {
    Record {
        topic: "authorizations".into(),
        key: Some(card.as_bytes().to_vec()),
        value: Some(br#"{"amount": 10.5, "merchant": "cafe"}"#.to_vec()),
        timestamp: ts,
        ..Record::default()
    }
}

/// `(card, window start, value JSON or None)` of each output record, partition by partition.
fn outputs(kafka: &MemoryKafka, topic: &str) -> Vec<(String, i64, Option<String>)> {
    kafka
        .records(topic)
        .into_iter()
        .map(|r| {
            let key = r.key.unwrap();
            let (card, start) = key.split_at(key.len() - 8);
            (
                String::from_utf8(card.to_vec()).unwrap(),
                i64::from_be_bytes(start.try_into().unwrap()),
                r.value.map(|v| String::from_utf8(v).unwrap()),
            )
        })
        .collect()
}

async fn engine_with(sql: &str) -> Engine<MemoryKafka> {
    let mut engine = Engine::new(MemoryKafka::default());
    engine.execute_script(STREAM).await.unwrap();
    engine.execute_script(sql).await.unwrap();
    engine
}

const MIN: i64 = 60_000;

#[tokio::test]
async fn fraud_query_emits_every_change_past_having() {
    let mut engine = engine_with(
        "CREATE TABLE possible_fraud AS SELECT card_number, COUNT(*) AS attempts
           FROM authorizations WINDOW TUMBLING (SIZE 5 MINUTES)
           GROUP BY card_number HAVING COUNT(*) > 3 EMIT CHANGES;",
    )
    .await;
    let kafka = engine_runtime(&mut engine);
    for i in 0..5 {
        kafka.produce(auth("card-a", i * 1000)).unwrap(); // 5 in one window
    }
    for i in 0..3 {
        kafka.produce(auth("card-b", i * 1000)).unwrap(); // 3: never alerts
    }
    for ts in [4 * MIN, 4 * MIN + 1, 5 * MIN, 5 * MIN + 1] {
        kafka.produce(auth("card-c", ts)).unwrap(); // 2 + 2 across a boundary
    }
    kafka.run_until_idle().unwrap();
    let mut got = outputs(kafka, "POSSIBLE_FRAUD");
    got.sort();
    assert_eq!(
        got,
        vec![
            ("card-a".into(), 0, Some(r#"{"ATTEMPTS":4}"#.into())),
            ("card-a".into(), 0, Some(r#"{"ATTEMPTS":5}"#.into())),
        ]
    );
    let sink = engine.catalog().get("POSSIBLE_FRAUD").unwrap();
    assert_eq!(
        sink.schema.to_sql(),
        "`CARD_NUMBER` STRING KEY, `ATTEMPTS` BIGINT"
    );
}

#[tokio::test]
async fn having_that_stops_matching_emits_a_tombstone() {
    let mut engine = engine_with(
        "CREATE TABLE big AS SELECT card_number, SUM(amount) AS total
           FROM authorizations WINDOW TUMBLING (SIZE 30 SECONDS)
           GROUP BY card_number HAVING SUM(amount) > 15;",
    )
    .await;
    let kafka = engine_runtime(&mut engine);
    kafka.produce(auth("x", 0)).unwrap(); // 10.5: below, nothing
    kafka.produce(auth("x", 1)).unwrap(); // 21.0: emitted
    let mut refund = auth("x", 2);
    refund.value = Some(br#"{"amount": -20}"#.to_vec()); // 1.0: tombstone
    kafka.produce(refund).unwrap();
    kafka.run_until_idle().unwrap();
    assert_eq!(
        outputs(kafka, "BIG"),
        vec![
            ("x".into(), 0, Some(r#"{"TOTAL":21.0}"#.into())),
            ("x".into(), 0, None)
        ]
    );
}

/// An engine counting authorizations per card in tumbling windows of `size`, EMIT FINAL
/// with no grace, into `FINALS`.
async fn final_counts(size: &str) -> Engine<MemoryKafka> {
    engine_with(&format!(
        "CREATE TABLE finals AS SELECT card_number, COUNT(*) AS n
           FROM authorizations WINDOW TUMBLING (SIZE {size}, GRACE PERIOD 0 MILLISECONDS)
           GROUP BY card_number EMIT FINAL;"
    ))
    .await
}

#[tokio::test]
async fn emit_final_waits_for_the_window_to_close() {
    let mut engine = final_counts("2 MILLISECONDS").await;
    let kafka = engine_runtime(&mut engine);
    // One card, so every record lands in one partition and drives its stream time.
    for ts in [0, 1] {
        kafka.produce(auth("k", ts)).unwrap();
    }
    kafka.run_until_idle().unwrap();
    assert!(
        kafka.records("FINALS").is_empty(),
        "nothing before the window closes"
    );
    kafka.produce(auth("k", 2)).unwrap();
    kafka.run_until_idle().unwrap();
    let records = kafka.records("FINALS");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].value.as_deref(), Some(&br#"{"N":2}"#[..]));
    assert_eq!(
        records[0].timestamp, 1,
        "a final row carries its latest timestamp"
    );
}

#[tokio::test]
async fn emit_final_does_not_depend_on_how_records_are_batched() {
    let mut engine = final_counts("5 MINUTES").await;
    let kafka = engine_runtime(&mut engine);
    kafka.set_batch_size(100);
    // One batch whose stream time moves two windows on: each window is released by the
    // record that closes it, before the next one moves the store past its retention.
    for ts in [0, MIN, 6 * MIN, 12 * MIN] {
        kafka.produce(auth("k", ts)).unwrap();
    }
    kafka.run_until_idle().unwrap();
    let got: Vec<_> = outputs(kafka, "FINALS")
        .into_iter()
        .map(|(_, start, value)| (start, value.unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, r#"{"N":2}"#.to_string()),
            (5 * MIN, r#"{"N":1}"#.to_string())
        ]
    );
}

#[tokio::test]
async fn malformed_records_are_skipped_and_counted() {
    let mut engine = engine_with(
        "CREATE TABLE counts AS SELECT card_number, COUNT(*) AS n
           FROM authorizations WINDOW TUMBLING (SIZE 5 MINUTES) GROUP BY card_number;",
    )
    .await;
    let kafka = engine_runtime(&mut engine);
    kafka.produce(auth("k", 0)).unwrap();
    let mut bad = auth("k", 1);
    bad.value = Some(b"{not json".to_vec());
    kafka.produce(bad).unwrap();
    kafka.produce(auth("k", 2)).unwrap();
    kafka.run_until_idle().unwrap();
    let values: Vec<_> = outputs(kafka, "COUNTS")
        .into_iter()
        .map(|o| o.2.unwrap())
        .collect();
    assert_eq!(values, vec![r#"{"N":1}"#, r#"{"N":2}"#]);
    let id = engine.queries().keys().next().unwrap().clone();
    assert_eq!(engine.runtime().processing_errors(&id), 1);
}

#[tokio::test]
async fn an_expression_failing_on_a_record_gives_null_and_the_query_goes_on() {
    let mut engine = engine_with(
        "CREATE STREAM shares AS SELECT card_number, CAST(amount AS INT) / CAST(merchant AS INT) AS share
           FROM authorizations;",
    )
    .await;
    let kafka = engine_runtime(&mut engine);
    for (merchant, ts) in [("0", 0), ("5", 1)] {
        let mut record = auth("k", ts);
        record.value =
            Some(format!(r#"{{"amount": 10.5, "merchant": "{merchant}"}}"#).into_bytes());
        kafka.produce(record).unwrap();
    }
    kafka.run_until_idle().unwrap();
    let values: Vec<_> = kafka
        .records("SHARES")
        .into_iter()
        .map(|r| String::from_utf8(r.value.unwrap()).unwrap())
        .collect();
    assert_eq!(values, vec![r#"{"SHARE":null}"#, r#"{"SHARE":2}"#]);
    let id = engine.queries().keys().next().unwrap().clone();
    assert_eq!(engine.runtime().processing_errors(&id), 1);
}

#[tokio::test]
async fn plan_errors_speak_ksqldb() {
    let mut engine = Engine::new(MemoryKafka::default());
    engine.execute_script(STREAM).await.unwrap();
    let err = engine
        .execute_script("CREATE STREAM s AS SELECT card_number, COUNT(*) FROM authorizations GROUP BY card_number;")
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("Your SELECT query produces a TABLE"),
        "{err}"
    );
    let err = engine
        .execute_script("CREATE STREAM s AS SELECT nope FROM authorizations;")
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("SELECT column 'NOPE' cannot be resolved."),
        "{err}"
    );
    let err = engine
        .execute_script("CREATE TABLE t AS SELECT card_number, COUNT(*) FROM authorizations GROUP BY card_number EMIT FINAL;")
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("EMIT FINAL is only supported for windowed aggregations."),
        "{err}"
    );
}

fn engine_runtime(engine: &mut Engine<MemoryKafka>) -> &mut MemoryKafka {
    engine.runtime_mut()
}

#[tokio::test]
async fn table_updates_retract_before_they_add() {
    let mut engine = Engine::new(MemoryKafka::default());
    engine
        .execute_script(
            "CREATE TABLE accounts (id VARCHAR PRIMARY KEY, region VARCHAR, balance BIGINT)
               WITH (KAFKA_TOPIC='accounts', VALUE_FORMAT='JSON', PARTITIONS=1);
             CREATE TABLE by_region AS SELECT region, COUNT(*) AS n, SUM(balance) AS total
               FROM accounts GROUP BY region;",
        )
        .await
        .unwrap();
    let kafka = engine.runtime_mut();
    let account = |id: &str, value: Option<&str>| Record {
        topic: "accounts".into(),
        key: Some(id.as_bytes().to_vec()),
        value: value.map(|v| v.as_bytes().to_vec()),
        ..Record::default()
    };
    kafka
        .produce(account("a", Some(r#"{"region":"eu","balance":10}"#)))
        .unwrap();
    kafka
        .produce(account("b", Some(r#"{"region":"eu","balance":5}"#)))
        .unwrap();
    kafka
        .produce(account("a", Some(r#"{"region":"us","balance":7}"#)))
        .unwrap(); // moves a
    kafka.produce(account("b", None)).unwrap(); // deletes b
    kafka.run_until_idle().unwrap();
    let rows: Vec<(String, String)> = kafka
        .records("BY_REGION")
        .into_iter()
        .map(|r| {
            (
                String::from_utf8(r.key.unwrap()).unwrap(),
                String::from_utf8(r.value.unwrap()).unwrap(),
            )
        })
        .collect();
    let row = |k: &str, v: &str| (k.to_string(), v.to_string());
    assert_eq!(
        rows,
        vec![
            row("eu", r#"{"N":1,"TOTAL":10}"#),
            row("eu", r#"{"N":2,"TOTAL":15}"#),
            row("eu", r#"{"N":1,"TOTAL":5}"#), // a leaves eu...
            row("us", r#"{"N":1,"TOTAL":7}"#), // ...and joins us
            row("eu", r#"{"N":0,"TOTAL":0}"#), // b deleted: ksqlDB's SUM of nothing is 0
        ]
    );
    let err = engine
        .execute_script(
            "CREATE TABLE m AS SELECT region, MAX(balance) FROM accounts GROUP BY region;",
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("The aggregation functions MAX cannot be applied to a table source"),
        "{err}"
    );
}

#[tokio::test]
async fn insert_values_writes_one_record_in_the_source_formats() {
    let mut engine = Engine::new(MemoryKafka::default());
    engine
        .execute_script(
            "CREATE STREAM s (id INT KEY, name VARCHAR, score DOUBLE)
               WITH (KAFKA_TOPIC='s', VALUE_FORMAT='JSON', PARTITIONS=1);
             INSERT INTO s (id, name, ROWTIME) VALUES (7, 'ada', 1234);
             INSERT INTO s VALUES (8, 'bob', 2.5);",
        )
        .await
        .unwrap();
    let records = engine.runtime().records("s");
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].key.as_deref(), Some(&7i32.to_be_bytes()[..]));
    assert_eq!(
        records[0].value.as_deref(),
        Some(&br#"{"NAME":"ada","SCORE":null}"#[..])
    );
    assert_eq!(records[0].timestamp, 1234);
    assert_eq!(
        records[1].value.as_deref(),
        Some(&br#"{"NAME":"bob","SCORE":2.5}"#[..])
    );
    let err = engine
        .execute_script("INSERT INTO \"s\" VALUES (1, 'x', 1.0);")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Did you mean S?"), "{err}");
}

/// Another service's command topic, a query's changelog and Kafka's own topics can be read
/// but not written: CREATE ... AS, INSERT INTO and INSERT VALUES are refused with ksqlDB's
/// message, and nothing is created.
#[tokio::test]
async fn internal_topics_are_read_only() {
    let mut engine = engine_with(
        "CREATE STREAM commands (k VARCHAR KEY, statement VARCHAR) WITH (KAFKA_TOPIC='_eddy-shop_-command', VALUE_FORMAT='JSON', PARTITIONS=1);
         CREATE STREAM clicks (k VARCHAR KEY, statement VARCHAR) WITH (KAFKA_TOPIC='clicks', VALUE_FORMAT='JSON', PARTITIONS=1);",
    )
    .await;
    for (sql, topic) in [
        (
            "INSERT INTO commands (k, statement) VALUES ('x', 'DROP STREAM orders;');",
            "_eddy-shop_-command",
        ),
        (
            "INSERT INTO commands SELECT * FROM clicks;",
            "_eddy-shop_-command",
        ),
        (
            "CREATE STREAM copy WITH (KAFKA_TOPIC='shop_-query-CTAS_T_1-Aggregate-Materialize-changelog') AS SELECT * FROM clicks;",
            "shop_-query-CTAS_T_1-Aggregate-Materialize-changelog",
        ),
        (
            "CREATE STREAM offsets WITH (KAFKA_TOPIC='__consumer_offsets') AS SELECT * FROM clicks;",
            "__consumer_offsets",
        ),
    ] {
        let err = engine.execute_script(sql).await.unwrap_err().to_string();
        assert!(
            err.contains(&format!("Cannot insert into read-only topic: {topic}")),
            "{sql}: {err}"
        );
    }
    assert!(engine.catalog().get("COPY").is_none());
    assert!(engine.queries().is_empty());
    // Reading one stays allowed.
    engine
        .execute_script("CREATE STREAM seen AS SELECT * FROM commands;")
        .await
        .unwrap();
}
