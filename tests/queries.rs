//! The SQL files of `queries/` (the talk's card fraud rule and the orders system), each run on
//! the in-memory driver with the input records beside it and compared with the expected
//! output records beside it (`X.sql`, `X.input.json`, `X.output.json`), as `eddy test
//! queries queries/` runs them; and every file must have such a test.

use std::path::PathBuf;

use eddy::testing::qtt::Outcome;
use eddy::testing::sql_files::{discover, untested};

fn queries() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/queries"))
}

#[test]
fn every_query_file_has_a_test() {
    let missing = untested(&queries()).expect("queries/ readable");
    assert!(missing.is_empty(), "SQL files without tests: {missing:?}");
}

#[tokio::test]
async fn every_query_file_gives_its_expected_output() {
    expect_outputs(false).await;
}

/// The same, with every checkpointed query (FOLD state, aggregations) restarted from its
/// changelog after every input record.
#[tokio::test]
async fn every_query_file_gives_its_expected_output_across_restarts() {
    expect_outputs(true).await;
}

async fn expect_outputs(restarts: bool) {
    let tests = discover(&[queries()]).expect("queries/ readable");
    assert!(tests.len() >= 7, "found only {} tests", tests.len());
    let cases: Vec<_> = tests
        .iter()
        .map(|t| t.case().expect("test files readable"))
        .collect();
    let results = eddy::testing::qtt::run_all_with(&cases, restarts).await;
    let failures: Vec<String> = results
        .iter()
        .filter_map(|(case, outcome)| match outcome {
            Outcome::Passed => None,
            other => Some(format!("{}: {other:?}", case.name)),
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_ksql_test_runner_form_runs_one_test() {
    let dir = queries().join("orders");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_eddy"))
        .arg("test")
        .args(["--sql", "00-streams.sql", "--sql", "inventory.sql"])
        .args([
            "--input",
            "inventory.input.json",
            "--output",
            "inventory.output.json",
        ])
        .current_dir(&dir)
        .output()
        .expect("eddy runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("1 passed, 0 failed"), "{stdout}");
}

#[test]
fn a_wrong_expectation_fails_with_a_diff() {
    let dir = std::env::temp_dir().join(format!("eddy-queries-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let output = dir.join("wrong.output.json");
    let wrong = std::fs::read_to_string(queries().join("orders/inventory.output.json"))
        .expect("readable")
        .replacen("\"FAIL\"", "\"PASS\"", 1);
    std::fs::write(&output, wrong).expect("write");
    let orders = queries().join("orders");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_eddy"))
        .arg("test")
        .arg("--sql")
        .arg(orders.join("00-streams.sql"))
        .arg("--sql")
        .arg(orders.join("inventory.sql"))
        .arg("--input")
        .arg(orders.join("inventory.input.json"))
        .arg("--output")
        .arg(&output)
        .output()
        .expect("eddy runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("order-validations record 2: value: expected"),
        "{stdout}"
    );
    std::fs::remove_dir_all(dir).expect("cleanup");
}
