//! `eddy check` as a user runs it: exit codes and `file:line:col: message` output.

use std::process::Command;

fn eddy_check(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_eddy"))
        .arg("check")
        .args(args)
        .output()
        .expect("eddy runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn queries_folder_passes() {
    let queries = concat!(env!("CARGO_MANIFEST_DIR"), "/queries");
    let (ok, out) = eddy_check(&[queries]);
    assert!(ok, "eddy check queries/ failed:\n{out}");
}

#[test]
fn errors_point_at_line_and_column() {
    let dir = std::env::temp_dir().join(format!("eddy-cli-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("bad.sql");
    std::fs::write(
        &file,
        "CREATE STREAM s (a INT)\n  WITH (KAFKA_TOPIC='t' VALUE_FORMAT='JSON');\n",
    )
    .expect("write");
    let (ok, out) = eddy_check(&[file.to_str().expect("utf-8 path")]);
    assert!(!ok, "a bad file must fail");
    assert_eq!(
        out.trim(),
        format!(
            "{}:2:25: Expected: ',' or ')' in WITH, found: VALUE_FORMAT",
            file.display()
        )
    );
    std::fs::remove_dir_all(dir).expect("cleanup");
}
