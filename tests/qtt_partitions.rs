//! Partition independence over ksqlDB's functional cases (`../shared/qtt/qtt/`): every table a
//! case's queries write must end with the same value per key when every topic has 4
//! partitions (records spread by key, a task per partition) as with 1. A query Eddy refuses
//! on 4 partitions counts as refused, never as a pass; a differing table fails the test.
//! Cases whose answer depends on partitioning by definition (they read `ROWPARTITION` or
//! `ROWOFFSET`, or drop late records by per-partition stream time) are counted apart.
//! Reads `../shared` in place; fails (never skips) without it.

// Test helpers outside #[test] functions: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use eddy::testing::partitions::{Comparison, compare};
use eddy::testing::qtt;

#[tokio::test]
async fn tables_end_the_same_on_one_and_four_partitions() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cases = qtt::load(&[root.join("../shared/qtt/qtt")]).unwrap();
    assert!(!cases.is_empty(), "no cases under ../shared/qtt/qtt");
    // Per file: (same, refused, differing).
    let mut per_file: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    let mut dependent = 0;
    let mut differing = Vec::new();
    let mut refusals: BTreeMap<String, usize> = BTreeMap::new();
    for case in &cases {
        let entry = per_file.entry(case.file.as_str()).or_default();
        match compare(case, 4).await {
            Comparison::Same(_) => entry.0 += 1,
            Comparison::Refused(why) => {
                entry.1 += 1;
                *refusals.entry(why.chars().take(90).collect()).or_default() += 1;
            }
            Comparison::Differs(what) => {
                entry.2 += 1;
                differing.push(format!("{}: {what}", case.name));
            }
            Comparison::PartitionDependent => dependent += 1,
            Comparison::NotApplicable => {}
        }
    }
    let total = per_file
        .values()
        .fold((0, 0, 0), |t, e| (t.0 + e.0, t.1 + e.1, t.2 + e.2));
    println!(
        "{} cases with tables: {} the same on 4 partitions, {} refused there, {} differing",
        total.0 + total.1 + total.2,
        total.0,
        total.1,
        total.2
    );
    println!(
        "{dependent} more depend on partitioning by definition (ROWPARTITION, ROWOFFSET, grace periods)"
    );
    for (file, (same, refused, differs)) in &per_file {
        if same + refused + differs > 0 {
            println!("  {file}: {same} same, {refused} refused, {differs} differing");
        }
    }
    for (why, n) in &refusals {
        println!("  refused {n}x: {why}");
    }
    assert!(total.0 > 0, "no case compared");
    assert!(
        differing.is_empty(),
        "{} cases' tables depend on partitioning:\n{}",
        differing.len(),
        differing.join("\n")
    );
}
