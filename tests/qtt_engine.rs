//! ksqlDB's functional tests (`../shared/qtt/qtt/`) on the in-memory driver, with a ratchet.
//!
//! Runs every case, writes the per-file table to `docs/compatibility.md`, and fails if fewer
//! cases pass than `tests/qtt_engine.count` records. When more pass, raise the record in
//! the same commit. Reads `../shared` in place; fails (never skips) without it.

// Test helpers outside #[test] functions: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use eddy::testing::qtt::{self, Outcome};

/// The markdown of `docs/compatibility.md`.
fn compatibility_table(
    per_file: &BTreeMap<&str, (usize, usize, usize)>,
    totals: qtt::Totals,
    all: usize,
) -> String {
    let mut table = format!(
        "# Compatibility with ksqlDB's functional tests\n\n\
         Written by `cargo test --test qtt_engine` from `../shared/qtt/qtt/` (cases expanded over\n\
         their formats and configs, run on the in-memory driver). Skipped cases need a schema\n\
         registry (Avro, Protobuf, JSON_SR) or are disabled upstream; they count as not passing.\n\n\
         **{} of {all} cases pass ({:.1}%)**; {} fail, {} skipped.\n\n\
         | file | cases | passed | skipped | passed % |\n|---|---:|---:|---:|---:|\n",
        totals.passed,
        100.0 * totals.passed as f64 / all as f64,
        totals.failed,
        totals.skipped
    );
    for (file, (n, passed, skipped)) in per_file {
        table.push_str(&format!(
            "| {file} | {n} | {passed} | {skipped} | {:.0}% |\n",
            100.0 * *passed as f64 / *n as f64
        ));
    }
    table
}

#[tokio::test]
async fn qtt_ratchet() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cases = qtt::load(&[root.join("../shared/qtt/qtt")]).unwrap();
    assert!(
        !cases.is_empty(),
        "no QTT cases found under ../shared/qtt/qtt"
    );
    let results = qtt::run_all(&cases).await;
    let mut per_file: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    for (case, outcome) in &results {
        let entry = per_file.entry(case.file.as_str()).or_default();
        entry.0 += 1;
        match outcome {
            Outcome::Passed => entry.1 += 1,
            Outcome::Skipped(_) => entry.2 += 1,
            Outcome::Failed(_) => {}
        }
    }
    let totals = qtt::totals(results.iter().map(|(_, o)| o));
    let table = compatibility_table(&per_file, totals, results.len());
    let doc = root.join("docs/compatibility.md");
    if std::fs::read_to_string(&doc).ok().as_deref() != Some(table.as_str()) {
        std::fs::create_dir_all(root.join("docs")).unwrap();
        std::fs::write(&doc, &table).unwrap();
    }
    println!(
        "{} passed, {} failed, {} skipped",
        totals.passed, totals.failed, totals.skipped
    );
    let recorded: usize = std::fs::read_to_string(root.join("tests/qtt_engine.count"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        totals.passed >= recorded,
        "QTT cases passing fell from {recorded} to {}",
        totals.passed
    );
    if totals.passed > recorded {
        println!(
            "raise tests/qtt_engine.count from {recorded} to {}",
            totals.passed
        );
    }
}
