//! Every statement of ksqlDB's own test suite (`../shared/qtt/`) must parse.
//!
//! Cases whose expected error is a parse error are left out. Also checks that no statement,
//! cut short or mangled, makes the parser panic. Reads `../shared` in place; fails (never
//! skips) when it is missing.

// Test helpers outside #[test] functions: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn qtt_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/qtt")
}

/// Whether a case expects its statements to fail parsing.
fn expects_parse_error(case: &serde_json::Value) -> bool {
    let error = case
        .get("expectedException")
        .or_else(|| case.get("expectedError"));
    error.is_some_and(|e| {
        let text = e.to_string();
        [
            "ParseFailedException",
            "mismatched input",
            "no viable alternative",
            "extraneous input",
            "Syntax error",
            "Value must be integer",
            "missing ",
        ]
        .iter()
        .any(|needle| text.contains(needle))
    })
}

/// `(file, case name, statement)` for every statement, `{FORMAT}` replaced by each format.
fn statements() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = ["qtt", "rest"]
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(qtt_root().join(d))
                .unwrap_or_else(|e| panic!("{}: {e}", qtt_root().display()))
        })
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    for file in files {
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        for case in json["tests"].as_array().unwrap() {
            if expects_parse_error(case) {
                continue;
            }
            let formats: Vec<String> = case["format"]
                .as_array()
                .map(|f| f.iter().map(|v| v.as_str().unwrap().to_string()).collect())
                .unwrap_or_else(|| vec!["JSON".into()]);
            for statement in case["statements"].as_array().unwrap() {
                for format in &formats {
                    let sql = statement.as_str().unwrap().replace("{FORMAT}", format);
                    out.push((
                        name.clone(),
                        case["name"].as_str().unwrap_or("").to_string(),
                        sql,
                    ));
                    if !statement.as_str().unwrap().contains("{FORMAT}") {
                        break;
                    }
                }
            }
        }
    }
    out
}

#[test]
fn qtt_statements_parse() {
    let all = statements();
    let mut failures: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (file, case, sql) in &all {
        if let Err(e) = eddy::sql::parse(sql) {
            failures
                .entry(e.message.clone())
                .or_default()
                .push(format!("{file} / {case}: {sql}"));
        }
    }
    let failed: usize = failures.values().map(Vec::len).sum();
    let parsed = all.len() - failed;
    println!("QTT statements parsed: {parsed} of {}", all.len());
    let mut by_count: Vec<_> = failures.iter().collect();
    by_count.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
    for (message, examples) in by_count.iter().take(40) {
        println!(
            "{:5} × {message}\n        e.g. {}",
            examples.len(),
            examples[0]
        );
    }
    assert_eq!(failed, 0, "{failed} QTT statements do not parse");
}

/// Property test: every QTT statement, truncated at random points and with random bytes
/// changed, yields `Ok` or a positioned error, never a panic (fixed seed, reproducible).
#[test]
fn parser_never_panics_on_mangled_statements() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(20261125);
    let alphabet: &[u8] = b" ()[]<>,;'\"`=-+*/%|:.$@{}\n0123456789abcXYZ";
    let mut tried = 0;
    for (_, _, sql) in statements() {
        let bytes = sql.as_bytes();
        for _ in 0..4 {
            let mut mangled = bytes[..rng.random_range(0..=bytes.len())].to_vec();
            if !mangled.is_empty() && rng.random_bool(0.5) {
                let at = rng.random_range(0..mangled.len());
                mangled[at] = alphabet[rng.random_range(0..alphabet.len())];
            }
            let text = String::from_utf8_lossy(&mangled).into_owned();
            let outcome = std::panic::catch_unwind(|| eddy::sql::parse(&text));
            assert!(outcome.is_ok(), "the parser panicked on: {text}");
            if let Ok(Err(e)) = outcome {
                assert!(!e.message.is_empty(), "empty error message for: {text}");
            }
            tried += 1;
        }
    }
    println!("{tried} mangled statements parsed without a panic");
}
