//! The orders system of `queries/` on the real broker: its files copied for a run's own
//! topics, its reference data and orders sent, its decisions read.

// Test helpers outside #[test] functions: a panic is the failure report.
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{consume, produce, produce_bytes};

/// Copies `from` (recursively) to `to` with `KAFKA_TOPIC='t'` → `KAFKA_TOPIC='t_<run>'`,
/// and every `PARTITIONS=` set to `partitions` if given.
fn copy_queries(from: &Path, to: &Path, run: &str, partitions: Option<i32>) {
    let topic = regex::Regex::new(r"KAFKA_TOPIC='([^']+)'").unwrap();
    let count = regex::Regex::new(r"PARTITIONS=\d+").unwrap();
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_queries(&path, &target, run, partitions);
        } else if path.extension().is_some_and(|e| e == "sql") {
            let sql = std::fs::read_to_string(&path).unwrap();
            let mut renamed = topic
                .replace_all(&sql, format!("KAFKA_TOPIC='${{1}}_{run}'"))
                .to_string();
            if let Some(n) = partitions {
                renamed = count
                    .replace_all(&renamed, format!("PARTITIONS={n}"))
                    .to_string();
            }
            std::fs::write(target, renamed).unwrap();
        }
    }
}

/// A folder of the run's own, with `queries/` copied into it for the run's topics.
pub fn run_dir(run: &str, partitions: Option<i32>) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("eddy-e2e-system-{run}"));
    let queries = dir.join("queries");
    copy_queries(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/queries")),
        &queries,
        run,
        partitions,
    );
    (dir, queries)
}

fn order(id: &str, ts: i64) -> (String, String, i64) {
    let value = serde_json::json!({
        "id": id, "customerId": 2, "state": "CREATED",
        "product": "JUMPERS", "quantity": 1, "price": 1.0,
    });
    (id.to_string(), value.to_string(), ts)
}

/// Customers and stock (`jumpers` JUMPERS).
pub fn send_reference_data(run: &str, t0: i64, jumpers: i32) {
    let customer = serde_json::json!({"id": 2, "firstName": "Neha", "lastName": "Narkhede",
        "email": "neha@example.com", "address": "1 Log Street", "level": "platinum"})
    .to_string();
    produce_bytes(
        &format!("customers_{run}"),
        &[(&2i64.to_be_bytes(), customer.as_bytes(), t0)],
    );
    produce_bytes(
        &format!("warehouse-inventory_{run}"),
        &[
            (b"UNDERPANTS", &75i32.to_be_bytes(), t0),
            (b"JUMPERS", &jumpers.to_be_bytes(), t0),
        ],
    );
}

/// Orders `ids` (customer 2, one JUMPER at 1.0 each) and a payment for each.
pub fn send_orders(run: &str, t0: i64, ids: std::ops::RangeInclusive<i64>) {
    let orders: Vec<(String, String, i64)> = ids
        .map(|i| order(&i.to_string(), t0 + 1000 * (i + 1)))
        .collect();
    let payments: Vec<(String, String, i64)> = orders
        .iter()
        .map(|(id, _, ts)| {
            let value = serde_json::json!({"id": format!("Payment:{id}"), "orderId": id,
                "ccy": "CZK", "amount": 1.0});
            (format!("Payment:{id}"), value.to_string(), ts + 500)
        })
        .collect();
    for (topic, records) in [("orders", &orders), ("payments", &payments)] {
        let records: Vec<(&str, &[u8], i64)> = records
            .iter()
            .map(|(k, v, ts)| (k.as_str(), v.as_bytes(), *ts))
            .collect();
        produce(&format!("{topic}_{run}"), &records);
    }
}

/// The orders' states on `orders-state` once `expected` decisions arrived.
pub async fn decided(run: &str, expected: usize) -> BTreeMap<String, String> {
    let topic = format!("orders-state_{run}");
    let states = tokio::task::spawn_blocking(move || consume(&topic, expected))
        .await
        .unwrap();
    assert_eq!(states.len(), expected, "decisions: {states:?}");
    states
        .iter()
        .map(|(_, key, value)| {
            let value: serde_json::Value = serde_json::from_str(value.as_deref().unwrap()).unwrap();
            (
                String::from_utf8(key.clone()).unwrap(),
                value["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}
