//! End to end on the real broker: the talk's email service. Orders join payments within a
//! minute, then customers, over two-partition topics keyed by order, payment and customer id:
//! both joins re-key one side through a repartition topic, and the emails on the output topic
//! are checked exactly.
//!
//! Needs the broker the project starts (`docker/kafka.sh start`; `.ci/test.sh` does it). It
//! fails, never skips, without one. Topic names and the service id are unique per run.

// Test helpers outside test functions: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Server, bootstrap, config, consume, now_ms, produce};
use eddy::kafka::admin::Topics;

const MINUTE: i64 = 60_000;

fn write_queries(dir: &std::path::Path, run: &str) -> std::path::PathBuf {
    let queries = dir.join("email.sql");
    std::fs::write(
        &queries,
        format!(
            "CREATE STREAM orders (id VARCHAR KEY, customer_id VARCHAR, product VARCHAR, price DOUBLE)
               WITH (KAFKA_TOPIC='orders_{run}', VALUE_FORMAT='JSON');
             CREATE STREAM payments (id VARCHAR KEY, order_id VARCHAR, amount DOUBLE)
               WITH (KAFKA_TOPIC='payments_{run}', VALUE_FORMAT='JSON');
             CREATE TABLE customers (id VARCHAR PRIMARY KEY, name VARCHAR, email VARCHAR)
               WITH (KAFKA_TOPIC='customers_{run}', VALUE_FORMAT='JSON');
             INSERT INTO customers (id, name, email) VALUES ('c1', 'ada', 'ada@example.com');
             CREATE STREAM orders_paid WITH (KAFKA_TOPIC='orders_paid_{run}') AS
               SELECT o.id AS order_id, o.customer_id AS customer_id, o.product, p.amount
               FROM orders o JOIN payments p WITHIN 1 MINUTE ON o.id = p.order_id;
             CREATE STREAM emails WITH (KAFKA_TOPIC='emails_{run}') AS
               SELECT op.customer_id AS customer_id, op.order_id, c.name, c.email, op.amount
               FROM orders_paid op JOIN customers c ON op.customer_id = c.id;"
        ),
    )
    .unwrap();
    queries
}

#[test]
fn email_service_joins_orders_payments_and_customers_on_a_real_broker() {
    let run = format!("{}_{}", std::process::id(), now_ms());
    let topics = Topics::connect(&config()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    for name in ["orders", "payments", "customers"] {
        rt.block_on(topics.create(&format!("{name}_{run}"), 2))
            .unwrap_or_else(|e| {
                panic!(
                    "no broker at {} ({e}): start it with docker/kafka.sh start",
                    bootstrap()
                )
            });
    }
    let dir = std::env::temp_dir().join(format!("eddy-e2e-orders-{run}"));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("server.log");
    let service = format!("e2e_{run}");
    let server = produce_around_start(&rt, &run, || {
        Server::start_as(&service, &write_queries(&dir, &run), &log)
    });
    let got = consume(&format!("emails_{run}"), 2);
    let repartitioned = consume(
        &format!("{service}-query-CSAS_ORDERS_PAID_0-Join-right-repartition"),
        3,
    );
    let status = server.stop();
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "server exit {status}; log:\n{log_text}");
    check(got, repartitioned, &log_text);
}

/// Customers (c1 comes from the queries file's INSERT VALUES), then, once the server has
/// loaded them as a running system would have, orders and payments of an hour ago.
fn produce_around_start(
    rt: &tokio::runtime::Runtime,
    run: &str,
    start: impl FnOnce() -> Server,
) -> Server {
    let t0 = now_ms() - 60 * MINUTE;
    produce(
        &format!("customers_{run}"),
        &[(
            "c2",
            br#"{"name": "bob", "email": "bob@example.com"}"#,
            t0 - MINUTE,
        )],
    );
    let server = start();
    rt.block_on(async { tokio::time::sleep(Duration::from_secs(3)).await });
    produce(
        &format!("orders_{run}"),
        &[
            (
                "o1",
                br#"{"customer_id": "c1", "product": "jumper", "price": 40.0}"#,
                t0,
            ),
            (
                "o2",
                br#"{"customer_id": "c2", "product": "socks", "price": 5.0}"#,
                t0 + 1000,
            ),
            (
                "o3",
                br#"{"customer_id": "c1", "product": "hat", "price": 15.0}"#,
                t0 + 2000,
            ),
        ],
    );
    produce(
        &format!("payments_{run}"),
        &[
            ("p1", br#"{"order_id": "o1", "amount": 40.0}"#, t0 + 30_000),
            // Five minutes late: outside the one-minute window, no email.
            (
                "p2",
                br#"{"order_id": "o2", "amount": 5.0}"#,
                t0 + 5 * MINUTE,
            ),
            (
                "p3",
                br#"{"order_id": "o3", "amount": 15.0}"#,
                t0 + 2000 + 59_000,
            ),
        ],
    );
    server
}

type Consumed = Vec<(i32, Vec<u8>, Option<String>)>;

/// The emails are exactly those of the orders paid within a minute; the payments went
/// through the repartition topic keyed by order id, in the orders' key format (KAFKA) so that
/// the partitions agree.
fn check(got: Consumed, repartitioned: Consumed, log_text: &str) {
    let emails: BTreeSet<(String, String)> = got
        .into_iter()
        .map(|(_, key, value)| (String::from_utf8(key).unwrap(), value.unwrap()))
        .collect();
    let email = |order: &str, amount: &str| {
        (
            "c1".to_string(),
            format!(
                r#"{{"ORDER_ID":"{order}","NAME":"ada","EMAIL":"ada@example.com","AMOUNT":{amount}}}"#
            ),
        )
    };
    assert_eq!(
        emails,
        BTreeSet::from([email("o1", "40.0"), email("o3", "15.0")]),
        "server log:\n{log_text}"
    );
    let keys: BTreeSet<Vec<u8>> = repartitioned.into_iter().map(|(_, k, _)| k).collect();
    assert_eq!(
        keys,
        BTreeSet::from([b"o1".to_vec(), b"o2".to_vec(), b"o3".to_vec()]),
        "payments re-keyed by order id"
    );
}
