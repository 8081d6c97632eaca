//! Grammar tests: every `cases/*.sql` file is parsed and snapshotted with insta.
//!
//! A file that parses snapshots each statement as printed SQL and its AST; a file that does
//! not snapshots `ERROR: line:col: message`, so error messages are reviewed like output.
//! Every parsed statement must print back to SQL that parses to the same AST (round trip).
//! Update snapshots with `cargo insta review` (or `INSTA_UPDATE=always cargo test --test grammar`).

#[test]
fn grammar() {
    insta::glob!("cases/*.sql", |path| {
        let sql = std::fs::read_to_string(path).unwrap();
        let out = match eddy::sql::parse(&sql) {
            Ok(stmts) => stmts
                .iter()
                .map(|s| {
                    let printed = s.to_string();
                    let again = eddy::sql::parse(&printed)
                        .unwrap_or_else(|e| panic!("printed SQL must re-parse: {printed}: {e}"));
                    assert_eq!(
                        again,
                        vec![s.clone()],
                        "round trip changed the AST of {printed}"
                    );
                    format!("{printed}\n---\n{s:#?}")
                })
                .collect::<Vec<_>>()
                .join("\n\n"),
            Err(e) => format!("ERROR: {e}"),
        };
        insta::assert_snapshot!(out);
    });
}
