//! Input nested deeper than any stack allows, as a careless or hostile client sends it: the
//! server refuses it with ksqlDB's error body and the position, and keeps answering (it used
//! to abort on a stack overflow: an OR chain of ~700 terms, `+` of ~670, `||` of ~930,
//! `ARRAY<>` nested ~2,200 and `STRUCT<>` ~1,500 deep). Each construct is sent at ten times
//! its limit (`eddy::sql::limits`); a chain just under the limit is planned and runs, over
//! REST and in `eddy check`.
//!
//! Needs the broker the project starts (`docker/kafka.sh start`).

// Test helpers outside #[test] functions: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Http, Server, free_port, now_ms};
use eddy::sql::limits::{MAX_EXPRESSION_DEPTH, MAX_TYPE_DEPTH};

/// `a = 0 OP a = 1 OP ...` with `terms` terms.
fn chain(terms: usize, op: &str) -> String {
    (0..terms)
        .map(|i| format!("a = {i}"))
        .collect::<Vec<_>>()
        .join(&format!(" {op} "))
}

/// `x OP x OP ...` with `terms` terms.
fn values(terms: usize, op: &str, x: &str) -> String {
    vec![x; terms].join(&format!(" {op} "))
}

/// `ARRAY<ARRAY<...INT...>>` (or STRUCT) nested `depth` levels.
fn nested_type(depth: usize, open: &str, close: &str) -> String {
    format!("{}INT{}", open.repeat(depth), close.repeat(depth))
}

async fn assert_alive(http: &Http, after: &str) {
    let (status, body) = http.post("/info", serde_json::json!({})).await;
    assert!(
        status == 200 || status == 405,
        "after {after}: /info {status} {body}"
    );
    let (status, body) = http.ksql("SHOW STREAMS;").await;
    assert_eq!(status, 200, "after {after}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_nesting_is_refused_and_the_server_goes_on() {
    let run = now_ms();
    let port = free_port();
    let log = std::env::temp_dir().join(format!("eddy-hostile-{run}.log"));
    let server = Server::start_rest(&format!("hostile{run}_"), port, &log);
    let http = Http::new(port);
    let topic = format!("hostile_{run}");
    let (status, body) = http
        .ksql(&format!(
            "CREATE STREAM s (a INT, t VARCHAR) WITH (KAFKA_TOPIC='{topic}', VALUE_FORMAT='JSON', PARTITIONS=1);"
        ))
        .await;
    assert_eq!(status, 200, "{body}");

    for (what, sql) in &deep_cases(&topic) {
        let endpoint = if sql.starts_with("SELECT") {
            "/query"
        } else {
            "/ksql"
        };
        let (status, body) = http
            .post(endpoint, serde_json::json!({ "ksql": sql }))
            .await;
        assert_eq!(status, 400, "{what}: {body}");
        let error: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(error["error_code"].as_i64().is_some(), "{what}: {body}");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains("levels deep"), "{what}: {message}");
        assert!(
            message.contains("line 1:"),
            "{what}: the position: {message}"
        );
        assert_alive(&http, what).await;
    }

    // Just under the limit (the server used to abort at ~700 terms): planned and running.
    let near = chain(MAX_EXPRESSION_DEPTH - 100, "OR");
    let (status, body) = http
        .ksql(&format!(
            "CREATE STREAM near AS SELECT * FROM s WHERE {near};"
        ))
        .await;
    assert_eq!(status, 200, "a 900-term OR: {body}");
    assert_alive(&http, "a 900-term OR").await;
    assert!(server.stop().success());
}

#[test]
fn eddy_check_refuses_deep_chains_without_aborting() {
    let dir = std::env::temp_dir().join(format!("eddy-hostile-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("deep.sql");
    // Ten times the 2,800 `+` that used to abort `eddy check`.
    std::fs::write(
        &file,
        format!(
            "CREATE STREAM s (a INT) WITH (KAFKA_TOPIC='t', VALUE_FORMAT='JSON', PARTITIONS=1);\nCREATE STREAM x AS SELECT {} AS b FROM s;\n",
            values(28_000, "+", "a")
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_eddy"))
        .arg("check")
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(":2:") && stdout.contains("levels deep"),
        "{stdout}"
    );
    // Just under the limit: planned (it used to overflow `check`'s main thread at 800).
    let near = dir.join("near.sql");
    let terms = MAX_EXPRESSION_DEPTH - 10;
    std::fs::write(
        &near,
        format!(
            "CREATE STREAM s (a INT) WITH (KAFKA_TOPIC='t', VALUE_FORMAT='JSON', PARTITIONS=1);
CREATE STREAM x AS SELECT {} AS b FROM s;
CREATE STREAM y AS SELECT * FROM s WHERE {};
",
            values(terms, "+", "a"),
            chain(terms, "OR")
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_eddy"))
        .arg("check")
        .arg(&near)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// Each construct nested ten times deeper than its limit, in a statement.
fn deep_cases(topic: &str) -> Vec<(&'static str, String)> {
    let ten = MAX_EXPRESSION_DEPTH * 10;
    vec![
        (
            "OR chain",
            format!("SELECT * FROM s WHERE {} EMIT CHANGES;", chain(ten, "OR")),
        ),
        (
            "AND chain",
            format!("SELECT * FROM s WHERE {} EMIT CHANGES;", chain(ten, "AND")),
        ),
        (
            "+ chain",
            format!("SELECT {} AS x FROM s EMIT CHANGES;", values(ten, "+", "a")),
        ),
        (
            "|| chain",
            format!(
                "SELECT {} AS x FROM s EMIT CHANGES;",
                values(ten, "||", "t")
            ),
        ),
        (
            "IN VALUES",
            format!("INSERT INTO s (a) VALUES ({});", values(ten, "+", "1")),
        ),
        (
            "ARRAY type",
            format!(
                "CREATE STREAM d1 (x {}) WITH (KAFKA_TOPIC='{topic}', VALUE_FORMAT='JSON');",
                nested_type(MAX_TYPE_DEPTH * 10, "ARRAY<", ">")
            ),
        ),
        (
            "STRUCT type",
            format!(
                "CREATE STREAM d2 (x {}) WITH (KAFKA_TOPIC='{topic}', VALUE_FORMAT='JSON');",
                nested_type(MAX_TYPE_DEPTH * 10, "STRUCT<f ", ">")
            ),
        ),
    ]
}
