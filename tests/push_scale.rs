//! Many push queries on one server, as a dashboard with thousands of viewers uses it: each
//! is served by the source's shared reader (no consumer or thread of its own), each sees a
//! new record, closing them all at once leaves statements answered, and clients that stop
//! reading are cut off at their buffer's bound. `EDDY_PUSH_QUERIES` sets how many (300 by
//! default, the CI size; the figures in `docs/design.md` are for 10,000 with a release build,
//! `EDDY_BIN`). The figures are printed, not asserted, except what is exact: every query gets
//! its row, none is left running, and memory stays within the configured bounds.
//!
//! Needs the broker the project starts (`docker/kafka.sh start`).

// Test helpers outside #[test] functions: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Http, Server, free_port, now_ms};
use serde_json::json;

/// Push queries per HTTP/2 connection (the server allows 200 streams on one).
const PER_CONNECTION: usize = 150;
/// The bound on what a client may fall behind by, for this test's server.
const PUSH_BUFFER_BYTES: usize = 1 << 20;

fn queries() -> usize {
    std::env::var("EDDY_PUSH_QUERIES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300)
}

/// A field of `/proc/<pid>/status` in kB (VmRSS) or as a count (Threads).
fn proc_status(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim_start_matches(':').split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap()
}

/// Opens a push query on `client`; returns the response once its header line came.
async fn open(client: &reqwest::Client, base: &str, sql: &str) -> reqwest::Response {
    let mut response = client
        .post(format!("{base}/query-stream"))
        .json(&json!({ "sql": sql }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let header = response.chunk().await.unwrap().unwrap();
    assert!(
        String::from_utf8_lossy(&header).contains("queryId"),
        "{header:?}"
    );
    response
}

/// Reads `response` until a row with `marker` comes; when it came.
async fn row_with(mut response: reqwest::Response, marker: String) -> Option<Instant> {
    let mut seen = String::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        seen.push_str(&String::from_utf8_lossy(&chunk));
        if seen.contains(&marker) {
            return Some(Instant::now());
        }
    }
    None
}

/// How many push queries `SHOW QUERIES` lists.
async fn push_queries_running(http: &Http) -> usize {
    let (_, body) = http.ksql("SHOW QUERIES;").await;
    body[0]["queries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| q["queryType"] == "PUSH")
        .count()
}

/// `n` push queries over HTTP/2 connections of [`PER_CONNECTION`] streams each, opened one
/// after the other: the clients and the responses.
async fn open_all(base: &str, n: usize) -> (Vec<reqwest::Client>, Vec<reqwest::Response>) {
    let clients: Vec<reqwest::Client> = (0..n.div_ceil(PER_CONNECTION))
        .map(|_| {
            reqwest::Client::builder()
                .http2_prior_knowledge()
                .build()
                .unwrap()
        })
        .collect();
    let mut responses = Vec::new();
    for i in 0..n {
        let client = &clients[i / PER_CONNECTION];
        responses.push(
            open(
                client,
                base,
                "SELECT k, n FROM ticks WHERE n >= 0 EMIT CHANGES;",
            )
            .await,
        );
    }
    (clients, responses)
}

/// Writes one record; every query's response gets its row. How long each took, sorted.
async fn every_query_gets_a_new_row(
    responses: Vec<reqwest::Response>,
    topic: &str,
    run: i64,
) -> Vec<Duration> {
    let marker = format!("\"k{run}\"");
    let waiting: Vec<_> = responses
        .into_iter()
        .map(|r| tokio::spawn(row_with(r, marker.clone())))
        .collect();
    let written = Instant::now();
    common::produce(
        topic,
        &[(
            &format!("k{run}"),
            br#"{"N":1,"PAD":""}"#.as_slice(),
            now_ms(),
        )],
    );
    let mut latencies = Vec::new();
    for w in waiting {
        let came = tokio::time::timeout(Duration::from_secs(120), w)
            .await
            .expect("a push query got no row within 120 s")
            .unwrap()
            .expect("a push query's response ended without the row");
        latencies.push(came.saturating_duration_since(written));
    }
    latencies.sort();
    latencies
}

/// Asks `SHOW STREAMS` every 20 ms until no push query runs: the slowest answer.
async fn statements_while_all_close(http: &Http) -> Duration {
    let closing = Instant::now();
    let mut slowest = Duration::ZERO;
    while push_queries_running(http).await > 0 {
        let asked = Instant::now();
        let (status, _) = http.ksql("SHOW STREAMS;").await;
        assert_eq!(status, 200);
        slowest = slowest.max(asked.elapsed());
        assert!(
            closing.elapsed() < Duration::from_secs(120),
            "push queries still running"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    slowest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_push_queries_share_a_reader() {
    let n = queries();
    let run = now_ms();
    let port = free_port();
    let log = std::env::temp_dir().join(format!("eddy-push-scale-{run}.log"));
    let server = Server::start_rest_with(
        &format!("pushscale{run}_"),
        port,
        &log,
        &["--push-buffer-bytes", &PUSH_BUFFER_BYTES.to_string()],
    );
    let http = Http::new(port);
    let topic = format!("push_scale_{run}");
    let (status, body) = http
        .ksql(&format!(
            "CREATE STREAM ticks (k VARCHAR KEY, n BIGINT, pad VARCHAR) WITH (KAFKA_TOPIC='{topic}', VALUE_FORMAT='JSON', PARTITIONS=4);"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let pid = server.pid();
    let (rss_before, threads_before) = (proc_status(pid, "VmRSS"), proc_status(pid, "Threads"));

    let opening = Instant::now();
    let (_clients, responses) = open_all(&http.base, n).await;
    let opened = opening.elapsed();
    let (rss, threads) = (proc_status(pid, "VmRSS"), proc_status(pid, "Threads"));
    assert_eq!(push_queries_running(&http).await, n);
    let latencies = every_query_gets_a_new_row(responses, &topic, run).await;
    // The rows arrived (the responses are dropped with their tasks): every query closes,
    // while statements keep being answered.
    let closing = Instant::now();
    let slowest_statement = statements_while_all_close(&http).await;
    println!(
        "{n} push queries: opened in {opened:?}; server RSS {} → {} MiB, threads {threads_before} → {threads}; \
         a new row reached all of them in {:?} (median {:?}); all closed in {:?}, slowest statement meanwhile {slowest_statement:?}",
        rss_before / 1024,
        rss / 1024,
        latencies.last().unwrap(),
        latencies[latencies.len() / 2],
        closing.elapsed(),
    );
    clients_that_never_read_are_cut_off(&http, &topic, pid).await;
    assert!(server.stop().success());
}

/// Five clients that never read while 40 MB of rows flow: each is disconnected once its
/// buffer is full, and the server's memory grows by no more than their bounds.
async fn clients_that_never_read_are_cut_off(http: &Http, topic: &str, pid: u32) {
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let rss_before = proc_status(pid, "VmRSS");
    let mut stuck = Vec::new();
    for _ in 0..5 {
        stuck.push(open(&client, &http.base, "SELECT * FROM ticks EMIT CHANGES;").await);
    }
    let pad = "x".repeat(200);
    let value = format!(r#"{{"N":2,"PAD":"{pad}"}}"#);
    let mut peak = 0;
    for batch in 0..20 {
        let records: Vec<(String, &[u8], i64)> = (0..10_000)
            .map(|i| (format!("s{batch}-{i}"), value.as_bytes(), now_ms()))
            .collect();
        let refs: Vec<(&str, &[u8], i64)> = records
            .iter()
            .map(|(k, v, t)| (k.as_str(), *v, *t))
            .collect();
        common::produce(topic, &refs);
        peak = peak.max(proc_status(pid, "VmRSS"));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while push_queries_running(http).await > 0 {
        assert!(
            Instant::now() < deadline,
            "clients that never read are still served"
        );
        peak = peak.max(proc_status(pid, "VmRSS"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let grown = (peak.saturating_sub(rss_before) * 1024) as usize;
    println!(
        "5 clients that never read, 200,000 rows of 230 bytes: cut off; server RSS grew by {} MiB at most (bound {} MiB each)",
        grown >> 20,
        PUSH_BUFFER_BYTES >> 20
    );
    // Their buffers, plus what the server's reader and HTTP/2 windows hold, and allocator slack.
    assert!(
        grown < 5 * PUSH_BUFFER_BYTES + (128 << 20),
        "RSS grew by {} MiB",
        grown >> 20
    );
    drop(stuck);
}
