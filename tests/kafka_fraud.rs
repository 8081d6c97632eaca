//! End to end on the real broker: `eddy server --queries-file` runs the talk's fraud query
//! over records produced with rdkafka, and the output topic is checked exactly.
//!
//! Needs the broker the project starts (`docker/kafka.sh start`; `.ci/test.sh` does it) at
//! `EDDY_BOOTSTRAP_SERVERS` (default 127.0.0.1:9092). It fails, never skips, without one.
//! Topic names are unique per run, so reruns never see old data.

// Test helpers outside #[test] functions: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use common::{Server, bootstrap, config, consume, now_ms, produce};
use eddy::kafka::admin::Topics;
use eddy::kafka::partitioner::partition_for;

const FIVE_MINUTES: i64 = 300_000;

const OK: &[u8] = br#"{"amount": 9.99, "merchant": "cafe"}"#;

/// The inputs, all in the window starting at `w0` or the next one, in produce order.
fn fraud_inputs(w0: i64) -> Vec<(&'static str, &'static [u8], i64)> {
    let mut records: Vec<(&str, &[u8], i64)> = Vec::new();
    records.extend((0..5).map(|i| ("card-five", OK, w0 + i * 1000))); // alerts at 4 and 5
    records.extend((0..3).map(|i| ("card-three", OK, w0 + i * 1000))); // never alerts
    for ts in [
        w0 + FIVE_MINUTES - 2,
        w0 + FIVE_MINUTES - 1,
        w0 + FIVE_MINUTES,
        w0 + FIVE_MINUTES + 1,
    ] {
        records.push(("card-straddle", OK, ts)); // 2 + 2 in two windows: never alerts
    }
    records.extend((0..2).map(|i| ("card-bad", OK, w0 + i * 1000)));
    records.push(("card-bad", b"{\"amount\": oops", w0 + 2000)); // malformed: logged, skipped
    records.extend((3..5).map(|i| ("card-bad", OK, w0 + i * 1000))); // still counted: alert at 4
    records
}

/// Where the malformed record lands: its partition, after the earlier records there.
fn bad_position(records: &[(&str, &[u8], i64)]) -> (i32, usize) {
    let partition = partition_for(b"card-bad", 2);
    let offset = records
        .iter()
        .take_while(|r| r.1 == OK)
        .filter(|r| partition_for(r.0.as_bytes(), 2) == partition)
        .count();
    (partition, offset)
}

fn write_queries(dir: &std::path::Path, input: &str, output: &str) -> std::path::PathBuf {
    let queries = dir.join("fraud.sql");
    std::fs::write(
        &queries,
        format!(
            "CREATE STREAM authorizations (card_number VARCHAR KEY, amount DOUBLE, merchant VARCHAR)
               WITH (KAFKA_TOPIC='{input}', VALUE_FORMAT='JSON');
             CREATE TABLE possible_fraud WITH (KAFKA_TOPIC='{output}') AS
               SELECT card_number, COUNT(*) AS attempts
               FROM authorizations WINDOW TUMBLING (SIZE 5 MINUTES)
               GROUP BY card_number HAVING COUNT(*) > 3 EMIT CHANGES;"
        ),
    )
    .unwrap();
    queries
}

/// The latest count per (card, window start), checking every record on the way.
///
/// Updates of one key within a poll batch coalesce (as ksqlDB's cache does), so the exact
/// check is on each (card, window)'s latest count; every emitted count must pass HAVING and
/// counts only grow.
fn latest_counts(got: Vec<(i32, Vec<u8>, Option<String>)>) -> BTreeMap<(String, i64), u64> {
    let mut latest = BTreeMap::new();
    for (partition, key, value) in got {
        let (card, start) = key.split_at(key.len() - 8);
        assert_eq!(
            partition,
            partition_for(card, 2),
            "output partitioned by the card, as Java would"
        );
        let card = String::from_utf8(card.to_vec()).unwrap();
        let value: serde_json::Value =
            serde_json::from_str(&value.expect("no tombstones: counts only grow")).unwrap();
        let attempts = value["ATTEMPTS"].as_u64().unwrap();
        assert!(
            attempts > 3,
            "HAVING COUNT(*) > 3 let {attempts} through for {card}"
        );
        let previous = latest.insert(
            (card.clone(), i64::from_be_bytes(start.try_into().unwrap())),
            attempts,
        );
        assert!(
            previous.is_none_or(|p| p < attempts),
            "{card}: count went from {previous:?} to {attempts}"
        );
    }
    latest
}

#[test]
fn fraud_query_on_a_real_broker() {
    let run = format!("{}_{}", std::process::id(), now_ms());
    let (input, output) = (
        format!("authorizations_{run}"),
        format!("POSSIBLE_FRAUD_{run}"),
    );
    let topics = Topics::connect(&config()).unwrap();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(topics.create(&input, 2))
        .unwrap_or_else(|e| {
            panic!(
                "no broker at {} ({e}): start it with docker/kafka.sh start",
                bootstrap()
            )
        });
    // Event time two hours ago, aligned to a window: well inside the default 24 h grace.
    let w0 = (now_ms() - 2 * 3_600_000) / FIVE_MINUTES * FIVE_MINUTES;
    let records = fraud_inputs(w0);
    produce(&input, &records);

    let dir = std::env::temp_dir().join(format!("eddy-e2e-{run}"));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("server.log");
    let server = Server::start(&write_queries(&dir, &input, &output), &log);
    let got = consume(&output, 2);
    let status = server.stop();
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "server exit {status}; log:\n{log_text}");

    let expected = BTreeMap::from([
        (("card-bad".to_string(), w0), 4),
        (("card-five".to_string(), w0), 5),
    ]);
    assert_eq!(latest_counts(got), expected, "server log:\n{log_text}");
    let (partition, offset) = bad_position(&records);
    let skipped = log_text
        .lines()
        .find(|l| l.contains("processing_log"))
        .unwrap_or_else(|| panic!("no processing log line:\n{log_text}"));
    for field in [
        format!("topic={input}"),
        format!("partition={partition}"),
        format!("offset={offset}"),
    ] {
        assert!(skipped.contains(&field), "{field} missing from: {skipped}");
    }
}
