//! The server on the real broker, through its REST API only: statements, pull and push
//! queries, inserts, PRINT, SHOW/DESCRIBE, errors, 100 push queries at once, and restarts (SIGTERM
//! and SIGKILL while records flow) after which the counts are exactly right.
//!
//! Needs the broker the project starts (`docker/kafka.sh start`). Every run uses its own
//! service id and topics, so runs never see each other's state.

// Test helpers outside #[test] functions: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Http, Server, free_port, now_ms, produce};
use serde_json::{Value, json};

impl Http {
    /// Polls a pull query of per-user counts until `want` holds (at most 90 s).
    async fn wait_for_counts(&self, want: &dyn Fn(&Counts) -> bool) -> Counts {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let rows: Counts = self
                .poll_pull("SELECT user, c FROM counts;")
                .await
                .unwrap_or_default()
                .iter()
                .map(|r| (r[0].as_str().unwrap().to_string(), r[1].as_i64().unwrap()))
                .collect();
            if want(&rows) || Instant::now() > deadline {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

const USERS: usize = 8;

/// Per user, the count a pull query shows.
type Counts = Vec<(String, i64)>;

/// `per_user` clicks for each user, paced over about `seconds`.
fn click_stream(
    topic: String,
    first_ts: i64,
    per_user: usize,
    seconds: u64,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let pause = Duration::from_millis(seconds * 1000 / per_user as u64);
        for i in 0..per_user {
            let records: Vec<(String, Vec<u8>, i64)> = (0..USERS)
                .map(|u| (format!("u{u}"), br#"{"n":1}"#.to_vec(), first_ts + i as i64))
                .collect();
            let borrowed: Vec<(&str, &[u8], i64)> = records
                .iter()
                .map(|(k, v, t)| (k.as_str(), v.as_slice(), *t))
                .collect();
            produce(&topic, &borrowed);
            std::thread::park_timeout(pause);
        }
    })
}

fn all_users_at(rows: &Counts, count: i64) -> bool {
    rows.len() == USERS && rows.iter().all(|(_, c)| *c == count)
}

/// Statements, a bad one with its position, SHOW and DESCRIBE.
async fn statements(http: &Http, topic: &str, run: i64) {
    let (status, created) = http
        .ksql(&format!(
            "CREATE STREAM clicks (user VARCHAR KEY, n INT) WITH (kafka_topic='{topic}', value_format='JSON', partitions=2);\n\
             CREATE TABLE counts WITH (KAFKA_TOPIC='counts_{run}') AS SELECT user, COUNT(*) AS c, SUM(n) AS total FROM clicks GROUP BY user;"
        ))
        .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(
        created[1]["commandStatus"]["status"], "SUCCESS",
        "{created}"
    );
    assert_eq!(created[1]["commandStatus"]["queryId"], "CTAS_COUNTS_0");
    let (status, error) = http.ksql("SELECT * FROM clicks EMIT CHANGES;").await;
    assert_eq!((status, error["error_code"].as_i64()), (400, Some(40002)));
    let (status, error) = http
        .ksql("CREATE STREAM x (a INT) WITH (kafka_topic='x');\nSELEC 1;")
        .await;
    assert_eq!(status, 400);
    assert!(
        error["message"].as_str().unwrap().starts_with("line 2:1:"),
        "{error}"
    );
    let (_, shown) = http
        .ksql("SHOW TABLES; DESCRIBE counts; DESCRIBE clicks;")
        .await;
    assert_eq!(shown[0]["tables"][0]["name"], "COUNTS");
    assert_eq!(shown[1]["sourceDescription"]["fields"][0]["type"], "KEY");
    // The query reading CLICKS writes COUNTS's topic.
    let reads = &shown[2]["sourceDescription"]["readQueries"][0];
    assert_eq!(
        reads["sinkKafkaTopics"],
        serde_json::json!([format!("counts_{run}")]),
        "{reads}"
    );
}

/// Records from a producer, INSERT VALUES and /inserts-stream: every user at 11.
async fn inserts(http: &Http, topic: &str, run: i64) {
    click_stream(topic.to_string(), run, 10, 1).join().unwrap();
    http.ksql("INSERT INTO clicks (user, n) VALUES ('u0', 1);")
        .await;
    let (status, acks) = http
        .post_raw(
            "/inserts-stream",
            "{\"target\":\"CLICKS\"}\n{\"USER\":\"u1\",\"N\":1}\n",
        )
        .await;
    assert_eq!(status, 200);
    assert!(acks.contains("\"status\":\"ok\""), "{acks}");
    for u in 2..USERS {
        http.ksql(&format!("INSERT INTO clicks (user, n) VALUES ('u{u}', 1);"))
            .await;
    }
    let rows = http.wait_for_counts(&|rows| all_users_at(rows, 11)).await;
    assert!(all_users_at(&rows, 11), "{rows:?}");
    let (status, printed) = http
        .post(
            "/query",
            json!({ "ksql": format!("PRINT '{topic}' FROM BEGINNING LIMIT 2;") }),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(printed.lines().count(), 2, "{printed}");
    assert!(
        printed.contains("key: u") && printed.contains("value: {\"n\":1}"),
        "{printed}"
    );
}

/// A push query with LIMIT, then `held` push queries at once that each see a new record;
/// none is left running after. Every user ends at 12.
async fn push_queries(http: &Http, held: usize) {
    let (status, pushed) = http
        .post(
            "/query",
            json!({"ksql": "SELECT user, n FROM clicks EMIT CHANGES LIMIT 3;",
                   "streamsProperties": {"ksql.streams.auto.offset.reset": "earliest"}}),
        )
        .await;
    assert_eq!(status, 200);
    let pushed: Vec<Value> = serde_json::from_str(&pushed).unwrap();
    assert_eq!(pushed.len(), 5, "{pushed:?}");
    assert_eq!(pushed[4]["finalMessage"], "Limit Reached");
    let mut streams = Vec::new();
    for _ in 0..held {
        let response = http
            .client
            .post(format!("{}/query-stream", http.base))
            .json(&json!({"sql": "SELECT user, n FROM clicks WHERE n = 7 EMIT CHANGES LIMIT 1;"}))
            .send()
            .await
            .unwrap();
        streams.push(response);
    }
    tokio::time::sleep(Duration::from_secs(8)).await; // every consumer joins its group
    http.ksql("INSERT INTO clicks (user, n) VALUES ('u7', 7);")
        .await;
    for response in streams {
        let text = tokio::time::timeout(Duration::from_secs(60), response.text())
            .await
            .unwrap()
            .unwrap();
        assert!(text.contains("[\"u7\",7]"), "{text}");
    }
    let (_, queries) = http.ksql("SHOW QUERIES;").await;
    assert_eq!(
        queries[0]["queries"].as_array().unwrap().len(),
        1,
        "{queries}"
    );
    for u in 0..USERS - 1 {
        http.ksql(&format!("INSERT INTO clicks (user, n) VALUES ('u{u}', 1);"))
            .await;
    }
    let rows = http.wait_for_counts(&|rows| all_users_at(rows, 12)).await;
    assert!(all_users_at(&rows, 12), "{rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_api_survives_restarts_with_exact_counts() {
    let run = now_ms();
    let service = format!("rest{run}_");
    let topic = format!("clicks_{run}");
    let port = free_port();
    let log = std::env::temp_dir().join(format!("eddy-kafka-server-{run}.log"));
    let http = Http::new(port);
    let server = Server::start_rest(&service, port, &log);
    statements(&http, &topic, run).await;
    inserts(&http, &topic, run).await;
    push_queries(&http, 100).await;

    // SIGTERM while records flow, then start again: nothing lost, nothing counted twice.
    let flow = click_stream(topic.clone(), run + 1_000, 60, 6);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = server.stop();
    assert!(status.success(), "server exit after SIGTERM: {status}");
    let server = Server::start_rest(&service, port, &log);
    flow.join().unwrap();
    let rows = http.wait_for_counts(&|rows| all_users_at(rows, 72)).await;
    assert!(
        all_users_at(&rows, 72),
        "after SIGTERM and restart: {rows:?}"
    );

    // SIGKILL while records flow: the restarted server restores state from the changelog.
    let flow = click_stream(topic.clone(), run + 2_000, 60, 6);
    tokio::time::sleep(Duration::from_secs(3)).await;
    server.kill();
    let server = Server::start_rest(&service, port, &log);
    flow.join().unwrap();
    let rows = http.wait_for_counts(&|rows| all_users_at(rows, 132)).await;
    assert!(
        all_users_at(&rows, 132),
        "after SIGKILL and restart: {rows:?}"
    );

    // The table's topic ends with the exact count of every user.
    let mut last = std::collections::BTreeMap::new();
    for (_, key, value) in common::consume(&format!("counts_{run}"), 1) {
        last.insert(String::from_utf8(key).unwrap(), value.unwrap());
    }
    assert_eq!(last.len(), USERS);
    for value in last.values() {
        let v: Value = serde_json::from_str(value).unwrap();
        assert_eq!(v["C"], 132, "{value}");
    }
    assert!(server.stop().success());
}
