//! Queries whose answer depends on how topics are partitioned are right or refused, never
//! silently wrong: a foreign-key join over multi-partition topics (whose task for partition
//! `p` would see only the foreign keys that happen to live on `p`) is refused with a clear
//! message until subscription topics (KIP-213) exist; over one partition it joins every row.
//!
//! Needs the broker the project starts (`docker/kafka.sh start`).

// Test helpers outside #[test] functions: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Http, Server, free_port, now_ms};

/// Declares orders and customers tables over topics of `partitions` partitions, and the
/// foreign-key join of orders to their customer; the join's answer.
async fn fk_join(http: &Http, run: i64, partitions: i32) -> (u16, serde_json::Value) {
    let (status, body) = http
        .ksql(&format!(
            "CREATE TABLE customers_{partitions} (id VARCHAR PRIMARY KEY, name VARCHAR) WITH (KAFKA_TOPIC='fk_customers_{run}_{partitions}', VALUE_FORMAT='JSON', PARTITIONS={partitions});
             CREATE TABLE orders_{partitions} (id VARCHAR PRIMARY KEY, customer VARCHAR) WITH (KAFKA_TOPIC='fk_orders_{run}_{partitions}', VALUE_FORMAT='JSON', PARTITIONS={partitions});"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    http.ksql(&format!(
        "CREATE TABLE named_{partitions} AS SELECT o.id AS id, c.name AS name FROM orders_{partitions} o JOIN customers_{partitions} c ON o.customer = c.id;"
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_key_joins_over_many_partitions_are_refused_not_wrong() {
    let run = now_ms();
    let port = free_port();
    let log = std::env::temp_dir().join(format!("eddy-partitioning-{run}.log"));
    let server = Server::start_rest(&format!("partitioning{run}_"), port, &log);
    let http = Http::new(port);

    let (status, body) = fk_join(&http, run, 4).await;
    assert_eq!(status, 400, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("foreign-key join") && message.contains("4 partitions"),
        "{message}"
    );
    let (_, queries) = http.ksql("SHOW QUERIES;").await;
    assert!(
        queries[0]["queries"].as_array().unwrap().is_empty(),
        "{queries}"
    );
    let (_, tables) = http.ksql("SHOW TABLES;").await;
    assert!(!tables.to_string().contains("NAMED_4"), "{tables}");

    // Over one partition every order finds its customer.
    let (status, body) = fk_join(&http, run, 1).await;
    assert_eq!(status, 200, "{body}");
    let customers: Vec<(String, String)> = (0..20)
        .map(|c| (format!("c{c}"), format!(r#"{{"NAME":"n{c}"}}"#)))
        .collect();
    let orders: Vec<(String, String)> = (0..100)
        .map(|o| (format!("o{o}"), format!(r#"{{"CUSTOMER":"c{}"}}"#, o % 20)))
        .collect();
    for (topic, rows) in [("customers", &customers), ("orders", &orders)] {
        let refs: Vec<(&str, &[u8], i64)> = rows
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes(), run))
            .collect();
        common::produce(&format!("fk_{topic}_{run}_1"), &refs);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = http.poll_pull("SELECT * FROM named_1;").await;
        let rows = rows.unwrap_or_default();
        let right = rows.iter().all(|r| {
            let order: usize = r[0].as_str().unwrap()[1..].parse().unwrap();
            r[1] == format!("n{}", order % 20)
        });
        if rows.len() == 100 && right {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of 100 orders: {rows:?}",
            rows.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(server.stop().success());
}
