//! ksqlDB's functional tests (`../shared/qtt/qtt/`) on the in-memory driver, and its REST
//! tests (`../shared/qtt/rest/`) through the HTTP API, each with a ratchet.
//!
//! Each runs every case, writes its per-file table to `docs/` (`compatibility.md`,
//! `compatibility-rest.md`), and fails if fewer cases pass than `tests/qtt_engine.count`
//! (or `tests/qtt_rest.count`) records. When more pass, raise the record in the same
//! commit. Reads `../shared` in place; fails (never skips) without it.

// Test helpers outside #[test] functions: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use eddy::testing::qtt::{self, Case, Outcome};

/// Writes `table` to `docs/<doc>` and checks the passes against `tests/<count>`.
fn ratchet(table: &str, totals: qtt::Totals, doc: &str, count: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = root.join("docs").join(doc);
    if std::fs::read_to_string(&doc).ok().as_deref() != Some(table) {
        std::fs::create_dir_all(root.join("docs")).unwrap();
        std::fs::write(&doc, table).unwrap();
    }
    println!(
        "{} passed, {} failed, {} skipped",
        totals.passed, totals.failed, totals.skipped
    );
    let recorded: usize = std::fs::read_to_string(root.join("tests").join(count))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        totals.passed >= recorded,
        "cases passing fell from {recorded} to {} (tests/{count})",
        totals.passed
    );
    if totals.passed > recorded {
        println!("raise tests/{count} from {recorded} to {}", totals.passed);
    }
}

fn load(folder: &str) -> Vec<Case> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cases = qtt::load(&[root.join("../shared/qtt").join(folder)]).unwrap();
    assert!(
        !cases.is_empty(),
        "no cases found under ../shared/qtt/{folder}"
    );
    cases
}

#[tokio::test]
async fn qtt_ratchet() {
    let cases = load("qtt");
    let results: Vec<(&Case, Outcome)> = qtt::run_all(&cases).await;
    let (table, totals) = qtt::compatibility_table(
        "Compatibility with ksqlDB's functional tests",
        "Written by `cargo test --test qtt_engine` from `../shared/qtt/qtt/` (cases expanded over\n\
         their formats and configs, run on the in-memory driver). Skipped cases need a schema\n\
         registry (Avro, Protobuf, JSON_SR) or are disabled upstream; they count as not passing.",
        &results,
    );
    ratchet(&table, totals, "compatibility.md", "qtt_engine.count");
}

/// The same cases with every checkpointed query restarted from its changelog after each
/// input record: restoring state must not change a single output.
#[tokio::test]
async fn qtt_with_restarts() {
    let cases = load("qtt");
    let plain = qtt::run_all(&cases).await;
    let restarted = qtt::run_all_with(&cases, true).await;
    let differing: Vec<String> = plain
        .iter()
        .zip(&restarted)
        .filter(|((_, a), (_, b))| (*a == Outcome::Passed) != (*b == Outcome::Passed))
        .map(|((case, _), (_, b))| format!("{}: {b:?}", case.name))
        .collect();
    assert!(
        differing.is_empty(),
        "restarting from changelogs changed {} cases:\n{}",
        differing.len(),
        differing.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_ratchet() {
    let cases = load("rest");
    let results: Vec<(&Case, Outcome)> = eddy::testing::rest::run_all(&cases).await;
    let (table, totals) = qtt::compatibility_table(
        "Compatibility with ksqlDB's REST tests",
        "Written by `cargo test --test qtt_engine` from `../shared/qtt/rest/`: each case runs\n\
         through Eddy's HTTP API (`/ksql`, `/query`) served over the in-memory driver, as\n\
         `eddy test rest` does.",
        &results,
    );
    ratchet(&table, totals, "compatibility-rest.md", "qtt_rest.count");
}
