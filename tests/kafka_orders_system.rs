//! End to end on the real broker: all of `queries/` (the card fraud rule and the orders
//! system) loaded into one server, as the README's main command runs them. Customers, stock,
//! orders and payments go in; every order's final state comes out on `orders-state` and from
//! a pull query on `orders_view`, and the emails are checked (the demo's EndToEndTest: ten
//! orders of JUMPERS against a stock of 10 are VALIDATED, the eleventh FAILS inventory).
//!
//! The files are copied with every `KAFKA_TOPIC` suffixed by a run id, so runs never share
//! topics. Needs the broker the project starts (`docker/kafka.sh start`; `.ci/test.sh` does
//! it); it fails, never skips, without one.

// Test helpers outside test functions: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use common::orders::{decided, run_dir, send_orders, send_reference_data};
use common::{Http, Server, consume, free_port, now_ms};

#[tokio::test(flavor = "multi_thread")]
async fn the_orders_system_validates_and_fails_orders_on_a_real_broker() {
    let run = format!("{}_{}", std::process::id(), now_ms());
    let (dir, queries) = run_dir(&run, None);
    let log = dir.join("server.log");
    let port = free_port();
    let server = Server::start_headless(&format!("e2e_{run}"), port, &queries, &log);
    let t0 = now_ms() - 60_000;
    // Stock first, then ten orders: all ten reserve a JUMPER and are VALIDATED. Orders are
    // keyed by id, so two orders in different partitions reach the per-product reservation
    // in either order; the eleventh is sent after the ten are decided (as in the demo's
    // end-to-end test), so it is the one that finds no stock left.
    let r = run.clone();
    tokio::task::spawn_blocking(move || {
        send_reference_data(&r, t0, 10);
        std::thread::park_timeout(std::time::Duration::from_secs(3));
        send_orders(&r, t0, 0..=9);
    })
    .await
    .unwrap();
    let first = decided(&run, 10).await;
    assert!(first.values().all(|s| s == "VALIDATED"), "{first:?}");
    let r = run.clone();
    tokio::task::spawn_blocking(move || send_orders(&r, t0, 10..=10))
        .await
        .unwrap();
    let final_state = decided(&run, 11).await;
    for i in 0..10 {
        assert_eq!(
            final_state[&i.to_string()],
            "VALIDATED",
            "order {i}: {final_state:?}"
        );
    }
    assert_eq!(final_state["10"], "FAILED", "{final_state:?}");
    check_view_and_emails(port, &run).await;
    let status = server.stop();
    assert!(
        status.success(),
        "server exit {status}; log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// The Q in CQRS: each order's latest state by pull query; and one email per order.
async fn check_view_and_emails(port: u16, run: &str) {
    let http = Http::new(port);
    for (id, want) in [("3", "VALIDATED"), ("10", "FAILED")] {
        let rows = http
            .pull(&format!(
                "SELECT state FROM orders_view WHERE order_key = '{id}';"
            ))
            .await;
        assert_eq!(rows, vec![serde_json::json!([want])], "order {id}");
    }
    let emails_topic = format!("emails_{run}");
    let emails = tokio::task::spawn_blocking(move || consume(&emails_topic, 11))
        .await
        .unwrap();
    assert_eq!(
        emails.len(),
        11,
        "one email per order and payment: {emails:?}"
    );
}

/// The orders system under SIGKILLs, exactly-once: 200 orders of JUMPERS against a stock of
/// exactly 200, sent in ten parts with the server SIGKILLed and restarted after each. Every
/// order must be VALIDATED (a reservation counted twice would leave a later order without
/// stock), decided once and emailed once; the 201st FAILS. Under at-least-once a crash may
/// repeat records of the sinks that chain the services (as in ksqlDB), so this runs with
/// `processing.guarantee=exactly_once_v2`.
#[tokio::test(flavor = "multi_thread")]
async fn the_orders_system_is_exact_through_sigkills() {
    const ORDERS: i64 = 200;
    let run = format!("{}_{}k", std::process::id(), now_ms());
    let (dir, queries) = run_dir(&run, None);
    let declarations = queries.join("orders/00-streams.sql");
    let sql = std::fs::read_to_string(&declarations).unwrap();
    std::fs::write(
        &declarations,
        format!("SET 'processing.guarantee'='exactly_once_v2';\n{sql}"),
    )
    .unwrap();
    let (log, port) = (dir.join("server.log"), free_port());
    let service = format!("e2e_{run}");
    let mut server = Server::start_headless(&service, port, &queries, &log);
    let t0 = now_ms() - 600_000;
    let r = run.clone();
    tokio::task::spawn_blocking(move || send_reference_data(&r, t0, ORDERS as i32))
        .await
        .unwrap();
    for part in 0..10 {
        let r = run.clone();
        let ids = part * ORDERS / 10..=(part + 1) * ORDERS / 10 - 1;
        tokio::task::spawn_blocking(move || send_orders(&r, t0, ids))
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        server.kill();
        server = Server::start_headless(&service, port, &queries, &log);
    }
    let states = decided(&run, ORDERS as usize).await;
    let failed: Vec<&String> = states
        .iter()
        .filter(|(_, s)| *s != "VALIDATED")
        .map(|(id, _)| id)
        .collect();
    assert!(failed.is_empty(), "not VALIDATED: {failed:?}");
    let r = run.clone();
    tokio::task::spawn_blocking(move || send_orders(&r, t0, ORDERS..=ORDERS))
        .await
        .unwrap();
    let states = decided(&run, ORDERS as usize + 1).await;
    assert_eq!(states[&ORDERS.to_string()], "FAILED", "no stock left");
    let emails_topic = format!("emails_{run}");
    let emails = tokio::task::spawn_blocking(move || consume(&emails_topic, ORDERS as usize + 1))
        .await
        .unwrap();
    assert_eq!(emails.len(), ORDERS as usize + 1, "one email per order");
    assert!(server.stop().success());
    std::fs::remove_dir_all(dir).unwrap();
}
