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

/// Writes `request` on a new connection and reads what comes back until the server closes
/// it (or 20 s pass): the status line's code, and the body after the headers.
async fn raw(port: u16, request: &[u8]) -> (Option<u16>, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    // The server may answer (431, 413) and close before it has read all of a huge request.
    let _ = stream.write_all(request).await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        stream.read_to_end(&mut response),
    )
    .await;
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok());
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// ksqlDB's error body, with its code.
fn error_code(body: &str) -> Option<i64> {
    let start = body.find('{')?;
    let end = body.rfind('}')?;
    let error: serde_json::Value = serde_json::from_str(&body[start..=end]).ok()?;
    error["@type"].as_str()?;
    error["message"].as_str()?;
    error["error_code"].as_i64()
}

/// Slow and idle connections are closed after the header timeout, more connections than
/// the limit wait their turn, and every malformed or oversized request gets a 4xx with
/// ksqlDB's error body; the server answers throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_abuse_is_bounded_and_answered_with_ksql_errors() {
    let run = now_ms();
    let port = free_port();
    let log = std::env::temp_dir().join(format!("eddy-hostile-http-{run}.log"));
    let server = Server::start_rest_with(
        &format!("hostilehttp{run}_"),
        port,
        &log,
        &[
            "--header-timeout-ms",
            "1000",
            "--max-connections",
            "40",
            "--max-request-bytes",
            "1048576",
            "--max-statements",
            "100",
        ],
    );
    let http = Http::new(port);
    slow_connections_are_closed(&http, port).await;
    bad_requests_get_ksql_errors(&http, port).await;
    assert!(server.stop().success());
}

/// Slowloris: more connections than the limit, each sending half a request or nothing.
async fn slow_connections_are_closed(http: &Http, port: u16) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut slow = Vec::new();
    for i in 0..60 {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        if i % 2 == 0 {
            stream
                .write_all(b"POST /ksql HTTP/1.1\r\nHost: eddy\r\nX-Slow: ")
                .await
                .unwrap();
        }
        slow.push(stream);
    }
    // The server answers once the timeout has freed connections.
    assert_alive(http, "60 slow connections").await;
    for (i, mut stream) in slow.into_iter().enumerate() {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            stream.read_to_end(&mut buf),
        )
        .await;
        assert!(read.is_ok(), "slow connection {i} is still open after 30 s");
    }
}

/// Oversized and malformed requests: a 4xx with ksqlDB's error body each.
async fn bad_requests_get_ksql_errors(http: &Http, port: u16) {
    let big = serde_json::json!({ "ksql": format!("SHOW STREAMS; -- {}", "x".repeat(2 << 20)) });
    let (status, body) = http.post("/ksql", big).await;
    assert_eq!((status, error_code(&body)), (413, Some(41300)), "{body}");
    let response = http
        .client
        .get(format!("{}/ksql", http.base))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    assert_eq!((status, error_code(&body)), (405, Some(40500)), "{body}");
    let (status, body) = http
        .post("/ksql", serde_json::json!({ "streamsProperties": {} }))
        .await;
    assert_eq!((status, error_code(&body)), (400, Some(40000)), "{body}");
    assert!(body.contains("ksql"), "{body}");
    let many = "SET 'a'='b';".repeat(101);
    let (status, body) = http
        .post("/ksql", serde_json::json!({ "ksql": many }))
        .await;
    assert_eq!((status, error_code(&body)), (400, Some(40000)), "{body}");
    assert!(body.contains("at most 100"), "{body}");
    let (status, body) = http.post_raw("/ksql", "{\"ksql\": ").await;
    assert_eq!((status, error_code(&body)), (400, Some(40000)), "{body}");
    assert_alive(http, "bad requests").await;

    // Bad chunking.
    let (status, body) = raw(
        port,
        b"POST /ksql HTTP/1.1\r\nHost: eddy\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(status, Some(400), "bad chunking: {body}");
    assert_eq!(error_code(&body), Some(40000), "bad chunking: {body}");
    // 10 MB of headers: refused (431) without reading them all.
    let mut huge = b"GET /info HTTP/1.1\r\nHost: eddy\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'x', 10 << 20));
    huge.extend_from_slice(b"\r\n\r\n");
    let (status, _) = raw(port, &huge).await;
    assert!(
        status.is_none_or(|s| s == 431),
        "10 MB of headers: {status:?}"
    );
    assert_alive(http, "10 MB of headers").await;
}

/// A request whose statements run longer than its budget stops at the first statement not
/// started in time, with the results of those before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_stops_running_statements_when_its_time_is_up() {
    let run = now_ms();
    let port = free_port();
    let log = std::env::temp_dir().join(format!("eddy-hostile-budget-{run}.log"));
    let server = Server::start_rest_with(
        &format!("hostilebudget{run}_"),
        port,
        &log,
        &["--request-timeout-ms", "20"],
    );
    let http = Http::new(port);
    let sets = "SET 'a'='b';\n".repeat(9_000);
    let (status, body) = http
        .post("/ksql", serde_json::json!({ "ksql": sets }))
        .await;
    assert_eq!((status, error_code(&body)), (408, Some(40800)), "{body}");
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["@type"], "statement_error", "{body}");
    assert!(
        error["message"].as_str().unwrap().contains("not run"),
        "{body}"
    );
    assert_alive(&http, "a request out of time").await;
    assert!(server.stop().success());
}

/// The id and state of the query writing `sink`, as `SHOW QUERIES` lists it.
async fn query_state(http: &Http, sink: &str) -> (String, String) {
    let (status, body) = http.ksql("SHOW QUERIES;").await;
    assert_eq!(status, 200, "{body}");
    let query = body[0]["queries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["sinks"][0] == sink)
        .unwrap_or_else(|| panic!("no query writes {sink}: {body}"));
    assert_eq!(query["statusCount"][query["state"].as_str().unwrap()], 1);
    (
        query["id"].as_str().unwrap().to_string(),
        query["state"].as_str().unwrap().to_string(),
    )
}

/// A result record too large for Kafka: with `ksql.fail.on.production.error=false` it goes
/// to the processing log and the query goes on; with the default the query shows state ERROR
/// with the reason (and is retried); the server answers throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_record_kafka_refuses_is_skipped_or_stops_its_query_visibly() {
    let run = now_ms();
    let port = free_port();
    let log = std::env::temp_dir().join(format!("eddy-hostile-poison-{run}.log"));
    let server = Server::start_rest(&format!("hostilepoison{run}_"), port, &log);
    let http = Http::new(port);
    let topic = format!("hostile_poison_{run}");
    let create = format!(
        "CREATE STREAM big (k VARCHAR KEY, id INT, v VARCHAR) WITH (KAFKA_TOPIC='{topic}', VALUE_FORMAT='JSON', PARTITIONS=1);
         CREATE STREAM failing WITH (KAFKA_TOPIC='{topic}_failing') AS SELECT k, id, CONCAT(v, v) AS vv FROM big;"
    );
    let (status, body) = http.ksql(&create).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = http
        .post(
            "/ksql",
            serde_json::json!({
                "ksql": format!("CREATE STREAM skipping WITH (KAFKA_TOPIC='{topic}_skipping') AS SELECT k, id, CONCAT(v, v) AS vv FROM big;"),
                "streamsProperties": { "ksql.fail.on.production.error": false },
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // A record the broker takes (under 1 MB) whose result is twice as large, between two
    // small ones.
    let huge = format!(r#"{{"ID":2,"V":"{}"}}"#, "x".repeat(600_000));
    common::produce(
        &topic,
        &[
            ("a", br#"{"ID":1,"V":"small"}"#.as_slice(), run),
            ("b", huge.as_bytes(), run + 1),
            ("c", br#"{"ID":3,"V":"small"}"#.as_slice(), run + 2),
        ],
    );
    let skipped = common::consume(&format!("{topic}_skipping"), 2);
    let ids: Vec<String> = skipped
        .iter()
        .map(|(_, _, v)| v.clone().unwrap_or_default())
        .collect();
    assert!(
        ids.len() == 2 && ids[0].contains("\"ID\":1") && ids[1].contains("\"ID\":3"),
        "{ids:?}"
    );
    assert_eq!(query_state(&http, "SKIPPING").await.1, "RUNNING");
    the_failing_query_shows_error(&http).await;
    assert_alive(&http, "a poison record").await;
    assert!(server.stop().success());
}

/// The query writing FAILING, whose result record Kafka refuses, is in state ERROR with the
/// reason in `SHOW QUERIES`, `EXPLAIN` and `DESCRIBE EXTENDED`.
async fn the_failing_query_shows_error(http: &Http) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let failing = loop {
        let (id, state) = query_state(http, "FAILING").await;
        if state == "ERROR" {
            break id;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the failing query never showed ERROR"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let (status, body) = http.ksql(&format!("EXPLAIN {failing};")).await;
    assert_eq!(status, 200, "{body}");
    let errors = body[0]["queryDescription"]["queryErrors"]
        .as_array()
        .unwrap();
    let message = errors.last().unwrap()["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("cannot be written") && message.contains("fail.on.production.error"),
        "{message}"
    );
    let (status, body) = http.ksql("DESCRIBE failing EXTENDED;").await;
    assert_eq!(status, 200, "{body}");
    let described = &body[0]["sourceDescription"];
    assert_eq!(described["writeQueries"][0]["state"], "ERROR", "{body}");
    assert!(
        described["errorStats"]
            .as_str()
            .unwrap()
            .contains("cannot be written"),
        "{body}"
    );
}

/// Push queries that need a consumer of their own (an aggregation here) are limited
/// (`--max-push-queries`, ksqlDB's `ksql.max.push.queries`); one more is refused with
/// ksqlDB's 40003, while push queries sharing the source's reader are not counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_queries_with_a_consumer_of_their_own_are_limited() {
    let run = now_ms();
    let port = free_port();
    let log = std::env::temp_dir().join(format!("eddy-hostile-push-{run}.log"));
    let server = Server::start_rest_with(
        &format!("hostilepush{run}_"),
        port,
        &log,
        &["--max-push-queries", "2"],
    );
    let http = Http::new(port);
    let (status, body) = http
        .ksql(&format!(
            "CREATE STREAM p (k VARCHAR KEY, n INT) WITH (KAFKA_TOPIC='hostile_push_{run}', VALUE_FORMAT='JSON', PARTITIONS=1);"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let open = |sql: &'static str| {
        http.client
            .post(format!("{}/query-stream", http.base))
            .json(&serde_json::json!({ "sql": sql }))
            .send()
    };
    let counting = "SELECT k, COUNT(*) AS c FROM p GROUP BY k EMIT CHANGES;";
    let first = open(counting).await.unwrap();
    let second = open(counting).await.unwrap();
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let third = open(counting).await.unwrap();
    assert_eq!(third.status(), 400);
    let body = third.text().await.unwrap();
    assert_eq!(error_code(&body), Some(40003), "{body}");
    assert!(body.contains("ksql.max.push.queries"), "{body}");
    let plain = open("SELECT * FROM p WHERE n > 0 EMIT CHANGES;")
        .await
        .unwrap();
    assert_eq!(
        plain.status(),
        200,
        "a query sharing the reader is not counted"
    );
    // Once one leaves, another may start.
    drop(first);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let again = open(counting).await.unwrap();
        if again.status() == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no room after a push query left"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    drop((second, plain));
    assert_alive(&http, "push queries at their limit").await;
    assert!(server.stop().success());
}
