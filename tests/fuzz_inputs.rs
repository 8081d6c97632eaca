//! Mutation fuzzing, bounded in count so CI runs it in seconds: statements (the repository's
//! own `.sql` files, mutated) through the parser and the planner, and request bodies
//! (valid ones, mutated) through a running server's REST API. No input may panic the
//! parser or the engine, and the server answers every request with a status and, for an
//! error, ksqlDB's error body, and keeps answering. `EDDY_FUZZ_CASES` runs more cases.
//!
//! The REST part needs the broker the project starts (`docker/kafka.sh start`).

// Test helpers outside #[test] functions: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{Http, Server, free_port, now_ms};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn cases(default: usize) -> usize {
    std::env::var("EDDY_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// Every `.sql` file under `dir`, as text.
fn sql_files(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sql_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "sql") {
            out.push(std::fs::read_to_string(&path).unwrap());
        }
    }
}

/// Seed statements: those of the grammar snapshots' cases and of `queries/`.
fn seeds() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sql_files(&root.join("grammar-tests/cases"), &mut files);
    sql_files(&root.join("queries"), &mut files);
    files
        .iter()
        .flat_map(|f| eddy::sql::variables::split(f))
        .map(|s| s.text)
        .collect()
}

/// Fragments a mutation may insert: the grammar's sharp edges.
const FRAGMENTS: &[&str] = &[
    "(",
    ")",
    "'",
    "\"",
    "`",
    ",",
    ";",
    "<",
    ">",
    "[",
    "]",
    "{",
    "}",
    "${x}",
    "--",
    "/*",
    "*/",
    "\\",
    "\u{0}",
    "é",
    "🦀",
    " EMIT CHANGES",
    " WINDOW TUMBLING (SIZE 1 SECOND)",
    " GROUP BY ",
    " JOIN ",
    " ARRAY<",
    " STRUCT<",
    " MAP<",
    " CAST(",
    " AS ",
    " NULL",
    " 1e999",
    " -9223372036854775809",
    " CASE WHEN ",
    " END",
    " => ",
    " WITHIN ",
    " PARTITION BY ",
    " HAVING ",
    "*",
    ".",
    "::",
];

/// `text` mutated a few times: bytes flipped, spans cut or repeated, fragments inserted.
fn mutate(rng: &mut SmallRng, text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for _ in 0..rng.random_range(1..5) {
        let at = rng.random_range(0..=chars.len());
        match rng.random_range(0..5) {
            0 if !chars.is_empty() => {
                let i = at.min(chars.len() - 1);
                chars[i] = char::from(rng.random_range(0x20u8..0x7f));
            }
            1 => {
                let end = (at + rng.random_range(0..20)).min(chars.len());
                chars.drain(at..end);
            }
            2 => {
                let end = (at + rng.random_range(1..30)).min(chars.len());
                let span: Vec<char> = chars[at..end].to_vec();
                for _ in 0..rng.random_range(1..50) {
                    chars.splice(at..at, span.iter().copied());
                }
            }
            _ => {
                let fragment = FRAGMENTS[rng.random_range(0..FRAGMENTS.len())];
                chars.splice(at..at, fragment.chars());
            }
        }
    }
    chars.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_statements_never_panic_the_parser_or_the_engine() {
    let seeds = seeds();
    assert!(seeds.len() > 50, "{} seeds", seeds.len());
    let mut rng = SmallRng::seed_from_u64(0x5eed);
    let mut engine = eddy::engine::Engine::new(eddy::testing::memory::MemoryKafka::default());
    let declarations = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("queries/orders/00-streams.sql"),
    )
    .unwrap();
    engine.execute_script(&declarations).await.unwrap();
    let (mut parsed, mut planned) = (0, 0);
    for case in 0..cases(20_000) {
        let text = mutate(&mut rng, &seeds[case % seeds.len()]);
        let result = std::panic::catch_unwind(|| eddy::sql::parse(&text));
        let statements = result.unwrap_or_else(|_| panic!("the parser panicked on: {text}"));
        if statements.is_ok() {
            parsed += 1;
            // Planned (and run on the in-memory driver) as a client's statement would be.
            if engine.execute_script(&text).await.is_ok() {
                planned += 1;
            }
        }
    }
    println!(
        "{} mutated statements: {parsed} parsed, {planned} ran",
        cases(20_000)
    );
}

/// Valid request bodies of each endpoint, to mutate.
fn bodies(stream: &str) -> Vec<(&'static str, String)> {
    vec![
        ("/ksql", serde_json::json!({"ksql": "SHOW STREAMS;", "streamsProperties": {}}).to_string()),
        (
            "/ksql",
            serde_json::json!({"ksql": format!("DESCRIBE {stream} EXTENDED;"), "sessionVariables": {"a": 1}}).to_string(),
        ),
        (
            "/query",
            serde_json::json!({"ksql": format!("SELECT * FROM {stream} WHERE n > 1;")}).to_string(),
        ),
        (
            "/query-stream",
            serde_json::json!({"sql": format!("SELECT * FROM {stream} EMIT CHANGES LIMIT 1;"), "properties": {"auto.offset.reset": "earliest"}}).to_string(),
        ),
        (
            "/inserts-stream",
            format!("{{\"target\":\"{stream}\"}}\n{{\"K\":\"a\",\"N\":1}}\n"),
        ),
        ("/close-query", serde_json::json!({"queryId": "nope"}).to_string()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_request_bodies_get_answers_and_the_server_goes_on() {
    let run = now_ms();
    let port = free_port();
    let log = std::env::temp_dir().join(format!("eddy-fuzz-{run}.log"));
    let server = Server::start_rest(&format!("fuzz{run}_"), port, &log);
    let http = Http::new(port);
    let stream = format!("FUZZ{run}");
    let (status, body) = http
        .ksql(&format!(
            "CREATE STREAM {stream} (k VARCHAR KEY, n INT) WITH (KAFKA_TOPIC='fuzz_{run}', VALUE_FORMAT='JSON', PARTITIONS=1);"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let bodies = bodies(&stream);
    let mut rng = SmallRng::seed_from_u64(run as u64);
    let mut statuses = std::collections::BTreeMap::new();
    for case in 0..cases(1_500) {
        let (path, valid) = &bodies[case % bodies.len()];
        let body = mutate(&mut rng, valid);
        let response = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            http.client
                .post(format!("{}{path}", http.base))
                .body(body.clone())
                .send(),
        )
        .await
        .unwrap_or_else(|_| panic!("{path} did not answer within 30 s: {body}"))
        .unwrap_or_else(|e| panic!("{path} failed ({e}): {body}"));
        let status = response.status().as_u16();
        // A push query that matched runs until its LIMIT or the client leaves: not read.
        if status >= 400 {
            let text = response.text().await.unwrap();
            let error: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("{path} {status} without ksqlDB's body: {text}"));
            assert!(
                error["error_code"].is_i64() && error["message"].is_string(),
                "{path} {status}: {text}"
            );
        }
        *statuses.entry(status).or_insert(0) += 1;
    }
    assert!(statuses.keys().all(|s| *s < 500), "{statuses:?}");
    let (status, _) = http.ksql("SHOW STREAMS;").await;
    assert_eq!(status, 200);
    println!(
        "{} mutated request bodies: statuses {statuses:?}",
        cases(1_500)
    );
    assert!(server.stop().success());
}
