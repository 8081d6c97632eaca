//! Avro, Protobuf and JSON Schema shared with other applications through Eddy's embedded
//! Schema Registry, as users would share them: Confluent's Python serializers (pip
//! `confluent-kafka`) produce into 4-partition topics registering their schemas with
//! `eddy server`; Eddy creates streams with the columns inferred from those schemas and
//! writes sinks in the same formats; Confluent's deserializers read the sinks' exact values
//! with the schemas Eddy registered. The schemas and their ids survive a SIGKILL and
//! restart; a second server of the same service serves the same ids from its own listener;
//! a server of another service uses the first one's registry as an external registry
//! (`ksql.schema.registry.url`).
//!
//! Needs the broker the project starts (`docker/kafka.sh start`) and Python 3 (the test
//! installs `confluent-kafka` into a virtual environment under `~/.cache/eddy`).

// Test helpers outside #[test] functions: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{Http, Server, free_port, now_ms};
use serde_json::{Value, json};

/// The pinned client, with the serializers' extras (fastavro, protobuf, jsonschema).
const CLIENT: &str = "confluent-kafka[avro,json,protobuf,schemaregistry]==2.16.2";

/// A Python with `confluent-kafka`, installed on first use.
fn python() -> PathBuf {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/tmp".into());
    let venv = PathBuf::from(home).join(".cache/eddy/sr-venv");
    let python = venv.join("bin/python");
    let ready = |python: &PathBuf| {
        Command::new(python)
            .args(["-c", "import confluent_kafka.schema_registry.avro, confluent_kafka.schema_registry.protobuf, confluent_kafka.schema_registry.json_schema"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ready(&python) {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status();
        assert!(
            made.is_ok_and(|s| s.success()),
            "python3 -m venv failed: Python 3 with venv is needed"
        );
        let installed = Command::new(venv.join("bin/pip"))
            .args(["install", "-q", CLIENT])
            .status();
        assert!(
            installed.is_ok_and(|s| s.success()),
            "pip install {CLIENT} failed"
        );
        assert!(ready(&python), "{CLIENT} does not import");
    }
    python
}

/// Runs the client script: `produce` or `consume` `count` records of `format` on `topic`.
fn client(action: &str, format: &str, topic: &str, count: usize, registry: u16) -> Vec<Value> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/schema_registry.py"
    );
    let out = Command::new(python())
        .arg(script)
        .args([action, format, topic, &count.to_string()])
        .arg(format!("http://127.0.0.1:{registry}"))
        .arg(common::bootstrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{action} {format} {topic}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut values: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    values.sort_by_key(|v| v["ID"].as_i64());
    values
}

/// What the sinks hold for `count` produced records: ID, NAME, DOUBLED = 2 * amount.
fn expected(count: usize) -> Vec<Value> {
    (1..=count)
        .map(|i| json!({"ID": i, "NAME": format!("payment-{i}"), "DOUBLED": i as f64 * 3.0}))
        .collect()
}

/// The formats: the client's name and Eddy's.
const FORMATS: [(&str, &str); 3] = [
    ("avro", "AVRO"),
    ("protobuf", "PROTOBUF"),
    ("json", "JSON_SR"),
];

/// A stream over `input` with the columns its registered schema gives, and a sink in the
/// same format.
fn statements(name: &str, format: &str, input: &str, output: &str) -> String {
    format!(
        "CREATE STREAM {name}_in WITH (KAFKA_TOPIC='{input}', VALUE_FORMAT='{format}');
         CREATE STREAM {name}_out WITH (KAFKA_TOPIC='{output}', VALUE_FORMAT='{format}') AS
           SELECT id, name, amount * 2 AS doubled FROM {name}_in EMIT CHANGES;"
    )
}

async fn create(http: &Http, sql: &str) {
    let (status, body) = http
        .post(
            "/ksql",
            json!({"ksql": sql, "streamsProperties": {"auto.offset.reset": "earliest"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// Reads the sink until it holds `want` (the sink fills while the query runs).
async fn read_sink(format: &'static str, topic: String, registry: u16, want: Vec<Value>) {
    let count = want.len();
    let got =
        tokio::task::spawn_blocking(move || client("consume", format, &topic, count, registry))
            .await
            .unwrap();
    assert_eq!(got, want, "{format}");
}

async fn get(port: u16, path: &str) -> Value {
    let url = format!("http://127.0.0.1:{port}{path}");
    let response = reqwest::get(&url).await.unwrap();
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

/// The ids of the sinks' subjects, and their schemas, as `port`'s registry serves them.
async fn sink_schemas(port: u16, run: i64) -> Vec<Value> {
    let mut schemas = Vec::new();
    for (format, _) in FORMATS {
        let subject = format!("sr_{format}_out_{run}-value");
        let latest = get(port, &format!("/subjects/{subject}/versions/latest")).await;
        let id = latest["id"].as_u64().unwrap();
        schemas.push(json!([id, get(port, &format!("/schemas/ids/{id}")).await]));
    }
    schemas
}

/// Each format from an outside producer, through a stream with inferred columns and a sink,
/// to an outside consumer.
async fn share_three_formats(http: &Http, run: i64, registry: u16) {
    for (format, name) in FORMATS {
        let input = format!("sr_{format}_in_{run}");
        tokio::task::spawn_blocking(move || client("produce", format, &input, 20, registry))
            .await
            .unwrap();
        let sql = statements(
            &format!("{format}_{run}"),
            name,
            &format!("sr_{format}_in_{run}"),
            &format!("sr_{format}_out_{run}"),
        );
        create(http, &sql).await;
    }
    for (format, _) in FORMATS {
        read_sink(
            format,
            format!("sr_{format}_out_{run}"),
            registry,
            expected(20),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_applications_and_eddy_share_schemas_through_the_embedded_registry() {
    let run = now_ms();
    let (port, registry) = (free_port(), free_port());
    let service = format!("registry{run}_");
    let log = std::env::temp_dir().join(format!("eddy-registry-{run}.log"));
    let listener = format!("schema.registry.listeners=http://127.0.0.1:{registry}");
    let args = ["-p", listener.as_str()];
    let server = Server::start_rest_with(&service, port, &log, &args);
    share_three_formats(&Http::new(port), run, registry).await;
    let before = sink_schemas(registry, run).await;

    // A crash: the registry's state is its topic, so the ids come back with the server, and
    // the queries go on with the schemas they registered.
    server.kill();
    let server = Server::start_rest_with(&service, port, &log, &args);
    assert_eq!(sink_schemas(registry, run).await, before);
    let input = format!("sr_avro_in_{run}");
    // 25 more (ids 1 to 25 again), written with the schema registered before the crash.
    tokio::task::spawn_blocking(move || client("produce", "avro", &input, 25, registry))
        .await
        .unwrap();

    // Another server of the service: its own listener, the same ids.
    let (port2, registry2) = (free_port(), free_port());
    let listener2 = format!("schema.registry.listeners=http://127.0.0.1:{registry2}");
    let second = Server::start_rest_with(&service, port2, &log, &["-p", listener2.as_str()]);
    assert_eq!(sink_schemas(registry2, run).await, before);

    // Another service, pointed at the first server's registry.
    let (port3, other) = (free_port(), format!("registry{run}_other_"));
    let external = format!("ksql.schema.registry.url=http://127.0.0.1:{registry}");
    let third = Server::start_rest_with(&other, port3, &log, &["-p", external.as_str()]);
    create(
        &Http::new(port3),
        &statements(
            &format!("again_{run}"),
            "AVRO",
            &format!("sr_avro_in_{run}"),
            &format!("sr_avro_again_{run}"),
        ),
    )
    .await;
    let mut want = expected(20);
    want.extend(expected(25));
    want.sort_by_key(|v| v["ID"].as_i64());
    read_sink("avro", format!("sr_avro_out_{run}"), registry, want.clone()).await;
    read_sink("avro", format!("sr_avro_again_{run}"), registry, want).await;
    let subjects = get(registry2, "/subjects").await;
    assert!(
        (subjects.as_array().unwrap()).contains(&json!(format!("sr_avro_again_{run}-value"))),
        "{subjects}"
    );
    for server in [third, second, server] {
        server.stop();
    }
}
