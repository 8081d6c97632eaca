//! Queries whose rows must meet across partitions give the same answer on 4 partitions as
//! on 1, through a SIGKILL: foreign-key joins (INNER and LEFT; the left rows change foreign
//! key, the right rows change and are deleted) run through subscription and response topics
//! (KIP-213), and GROUP BY over a table re-keys its changes with retractions, so a row that
//! moves to another group, or is deleted, leaves its old group wherever that group is counted;
//! a 3-way join whose second join is on another key re-keys the first join's result.
//!
//! Needs the broker the project starts (`docker/kafka.sh start`).

// Test helpers outside #[test] functions: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Http, Server, free_port, now_ms};
use serde_json::Value;

/// The statements of one partitioning: two tables and three queries over them.
fn statements(run: i64, p: i32) -> String {
    format!(
        "CREATE TABLE customers_{p} (id VARCHAR PRIMARY KEY, name VARCHAR) WITH (KAFKA_TOPIC='part_customers_{run}_{p}', VALUE_FORMAT='JSON', PARTITIONS={p});
         CREATE TABLE orders_{p} (id VARCHAR PRIMARY KEY, customer VARCHAR, amount INT) WITH (KAFKA_TOPIC='part_orders_{run}_{p}', VALUE_FORMAT='JSON', PARTITIONS={p});
         CREATE TABLE named_{p} AS SELECT o.id AS id, c.name AS name FROM orders_{p} o JOIN customers_{p} c ON o.customer = c.id;
         CREATE TABLE all_named_{p} AS SELECT o.id AS id, c.name AS name FROM orders_{p} o LEFT JOIN customers_{p} c ON o.customer = c.id;
         CREATE TABLE per_customer_{p} AS SELECT customer, COUNT(*) AS n, SUM(amount) AS total FROM orders_{p} GROUP BY customer;
         CREATE STREAM shipments_{p} (id VARCHAR KEY, qty INT) WITH (KAFKA_TOPIC='part_shipments_{run}_{p}', VALUE_FORMAT='JSON', PARTITIONS={p});
         CREATE STREAM shipped_{p} WITH (KAFKA_TOPIC='part_shipped_{run}_{p}') AS SELECT c.id AS id, s.id AS order_id, qty, c.name AS name FROM shipments_{p} s JOIN orders_{p} o ON s.id = o.id JOIN customers_{p} c ON o.customer = c.id;"
    )
}

/// A change to a table: key and value (`None`: delete).
type Change = (String, Option<String>);

/// The changes before and after the kill: customers, orders.
fn phases() -> [(Vec<Change>, Vec<Change>); 2] {
    let customer =
        |c: usize, name: &str| (format!("c{c}"), Some(format!(r#"{{"NAME":"{name}{c}"}}"#)));
    let order = |o: usize, c: &str| {
        (
            format!("o{o}"),
            Some(format!(r#"{{"CUSTOMER":"{c}","AMOUNT":{o}}}"#)),
        )
    };
    let first = (
        (0..20).map(|c| customer(c, "n")).collect(),
        (0..100)
            .map(|o| order(o, &format!("c{}", o % 20)))
            .collect(),
    );
    let mut customers: Vec<Change> = (0..5).map(|c| customer(c, "m")).collect();
    customers.push(("c5".into(), None));
    let mut orders: Vec<Change> = (0..30)
        .map(|o| order(o, &format!("c{}", (o + 7) % 20)))
        .collect();
    orders.extend((30..35).map(|o| order(o, "c99")));
    orders.extend((90..100).map(|o| (format!("o{o}"), None)));
    [first, (customers, orders)]
}

fn produce(topic: &str, changes: &[Change], ts: i64) {
    let records: Vec<(&str, Option<&[u8]>, i64)> = changes
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_deref().map(str::as_bytes), ts))
        .collect();
    common::produce_changes(topic, &records);
}

/// What the three tables must hold after both phases: (id → name) for the inner and left
/// joins, (customer → "n,total") for the aggregation's groups that still have orders.
fn expected() -> [BTreeMap<String, String>; 3] {
    let mut customers = BTreeMap::new();
    let mut orders = BTreeMap::new();
    for (cs, os) in phases() {
        for (table, changes) in [(&mut customers, cs), (&mut orders, os)] {
            for (k, v) in changes {
                match v {
                    Some(v) => table.insert(k, serde_json::from_str::<Value>(&v).unwrap()),
                    None => table.remove(&k),
                };
            }
        }
    }
    let (mut inner, mut left, mut groups) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    for (id, order) in &orders {
        let customer = order["CUSTOMER"].as_str().unwrap();
        let name = customers
            .get(customer)
            .map(|c: &Value| c["NAME"].to_string());
        if let Some(name) = &name {
            inner.insert(id.clone(), name.clone());
        }
        left.insert(id.clone(), name.unwrap_or_else(|| "null".into()));
        let g = groups.entry(customer.to_string()).or_insert((0, 0));
        g.0 += 1;
        g.1 += order["AMOUNT"].as_i64().unwrap();
    }
    let groups = groups
        .into_iter()
        .map(|(c, (n, total))| (c, format!("{n},{total}")))
        .collect();
    [inner, left, groups]
}

/// The three tables of partitioning `p`, as `expected` shapes them (groups with no order
/// left are not shown).
async fn tables(http: &Http, p: i32) -> Option<[BTreeMap<String, String>; 3]> {
    let mut out: [BTreeMap<String, String>; 3] = Default::default();
    for (i, table) in ["named", "all_named"].iter().enumerate() {
        for row in http
            .poll_pull(&format!("SELECT * FROM {table}_{p};"))
            .await?
        {
            out[i].insert(row[0].as_str()?.to_string(), row[1].to_string());
        }
    }
    for row in http
        .poll_pull(&format!("SELECT * FROM per_customer_{p};"))
        .await?
    {
        if row[1].as_i64()? > 0 {
            out[2].insert(
                row[0].as_str()?.to_string(),
                format!("{},{}", row[1], row[2]),
            );
        }
    }
    Some(out)
}

/// Waits until partitioning `p`'s tables hold `want`.
async fn settle(http: &Http, p: i32, want: &[BTreeMap<String, String>; 3]) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got = tables(http, p).await;
        if got.as_ref() == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{p} partitions: expected {want:?}\ngot {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A shipment of every order (deleted ones too) through the 3-way join, whose second join
/// is on the order's customer (re-keyed by a stage on 4 partitions): both partitionings ship
/// the same rows, each with the name the inner join gives its order.
async fn check_shipments(run: i64, inner: &BTreeMap<String, String>) {
    let shipments: Vec<Change> = (0..100)
        .map(|o| (format!("o{o}"), Some(format!(r#"{{"QTY":{o}}}"#))))
        .collect();
    for p in [1, 4] {
        produce(&format!("part_shipments_{run}_{p}"), &shipments, run + 10);
    }
    let shipped = move |p: i32| {
        let mut rows: Vec<(String, String)> =
            common::consume(&format!("part_shipped_{run}_{p}"), 81)
                .into_iter()
                .map(|(_, k, v)| (String::from_utf8(k).unwrap(), v.unwrap_or_default()))
                .collect();
        rows.sort();
        rows
    };
    let (one, four) = tokio::task::spawn_blocking(move || (shipped(1), shipped(4)))
        .await
        .unwrap();
    assert_eq!(one.len(), 81, "{one:?}");
    assert_eq!(one, four);
    for (customer, value) in &one {
        let row: Value = serde_json::from_str(value).unwrap();
        let order = row["ORDER_ID"].as_str().unwrap();
        assert_eq!(inner[order], row["NAME"].to_string(), "{customer}: {row}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_and_table_aggregations_end_the_same_on_four_partitions_through_a_kill() {
    let run = now_ms();
    let port = free_port();
    let service = format!("partitioning{run}_");
    let log = std::env::temp_dir().join(format!("eddy-partitioning-{run}.log"));
    let server = Server::start_rest(&service, port, &log);
    let http = Http::new(port);
    for p in [1, 4] {
        let (status, body) = http.ksql(&statements(run, p)).await;
        assert_eq!(status, 200, "{body}");
    }
    let [first, second] = phases();
    for p in [1, 4] {
        produce(&format!("part_customers_{run}_{p}"), &first.0, run);
        produce(&format!("part_orders_{run}_{p}"), &first.1, run);
    }
    // Once the first phase is in, the server dies mid-flight and starts again.
    let deadline = Instant::now() + Duration::from_secs(120);
    while tables(&http, 4).await.is_none_or(|t| t[0].len() < 100) {
        assert!(Instant::now() < deadline, "the first phase never joined");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    server.kill();
    let server = Server::start_rest(&service, port, &log);
    for p in [1, 4] {
        produce(&format!("part_customers_{run}_{p}"), &second.0, run + 1);
        produce(&format!("part_orders_{run}_{p}"), &second.1, run + 1);
    }
    let want = expected();
    assert_eq!((want[0].len(), want[1].len(), want[2].len()), (81, 90, 21));
    settle(&http, 1, &want).await;
    settle(&http, 4, &want).await;
    check_shipments(run, &want[0]).await;
    // The 4-partition queries went through their internal topics (the 1-partition ones
    // need none).
    let topics = common::topic_names();
    for (query, internal) in [
        ("CTAS_NAMED_4_", "-FK-JOIN-SUBSCRIPTION-REGISTRATION-topic"),
        ("CTAS_ALL_NAMED_4_", "-FK-JOIN-SUBSCRIPTION-RESPONSE-topic"),
        ("CTAS_PER_CUSTOMER_4_", "-GroupBy-repartition"),
        ("CSAS_SHIPPED_4_", "-Join-left-1-repartition"),
    ] {
        let found = (topics.iter())
            .any(|t| t.contains(&service) && t.contains(query) && t.ends_with(internal));
        assert!(
            found,
            "no {query}..{internal} topic of {service}: {topics:?}"
        );
    }
    assert!(server.stop().success());
}
