//! Helpers of the end-to-end tests on the real broker: the server binary, producing and
//! consuming with rdkafka. Needs the broker the project starts (`docker/kafka.sh start`) at
//! `EDDY_BOOTSTRAP_SERVERS` (default 127.0.0.1:9092).

// Test helpers outside #[test] functions: a panic is the failure report.
#![allow(clippy::unwrap_used, dead_code)]

pub mod orders;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use eddy::kafka::KafkaConfig;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::{Value, json};

pub fn bootstrap() -> String {
    std::env::var("EDDY_BOOTSTRAP_SERVERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

pub fn config() -> KafkaConfig {
    KafkaConfig {
        bootstrap_servers: bootstrap(),
        service_id: "e2e_".into(),
        properties: Vec::new(),
        instance_id: "e2e-test".into(),
        static_membership: false,
    }
}

/// Kills the server if the test fails before stopping it.
pub struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Server {
    /// Runs the queries of `queries` under a service id of its own (so its consumer groups
    /// and changelogs are new, whatever earlier runs left on the broker).
    pub fn start(queries: &std::path::Path, log: &std::path::Path) -> Self {
        let service = format!("e2e_{}_{}", std::process::id(), now_ms());
        Self::start_as(&service, queries, log)
    }

    /// Runs the queries of `queries` under `service_id` (whose internal topics are its own).
    pub fn start_as(service_id: &str, queries: &std::path::Path, log: &std::path::Path) -> Self {
        let log = std::fs::File::create(log).unwrap();
        Server(spawn(
            service_id,
            free_port(),
            Some(queries),
            log,
            Member::Static(&[]),
        ))
    }

    /// Runs the server with its REST API on `port` under `service_id` (no queries file).
    pub fn start_rest(service_id: &str, port: u16, log: &std::path::Path) -> Self {
        Self::start_rest_with(service_id, port, log, &[])
    }

    /// [`Self::start_rest`] with more command-line arguments (limits, say).
    pub fn start_rest_with(
        service_id: &str,
        port: u16,
        log: &std::path::Path,
        args: &[&str],
    ) -> Self {
        Self::rest(service_id, port, log, Member::Static(args))
    }

    /// [`Self::start_rest`] without `--instance-id`: a dynamic member of its queries' groups,
    /// as a server started without one is.
    pub fn start_rest_dynamic(service_id: &str, port: u16, log: &std::path::Path) -> Self {
        Self::rest(service_id, port, log, Member::Dynamic)
    }

    fn rest(service_id: &str, port: u16, log: &std::path::Path, member: Member<'_>) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let server = Server(spawn(service_id, port, None, log, member));
        wait_for_port(port);
        server
    }

    /// Runs the queries of `queries` (a file or folder) headless under `service_id`, its REST
    /// API on `port`; returns once the queries run and the API listens.
    pub fn start_headless(
        service_id: &str,
        port: u16,
        queries: &std::path::Path,
        log: &std::path::Path,
    ) -> Self {
        Self::headless(service_id, port, queries, log, Member::Static(&[]))
    }

    /// [`Self::start_headless`] without `--instance-id`: a dynamic member of its queries'
    /// groups, which hands its partitions over at once when it stops.
    pub fn start_headless_dynamic(
        service_id: &str,
        port: u16,
        queries: &std::path::Path,
        log: &std::path::Path,
    ) -> Self {
        Self::headless(service_id, port, queries, log, Member::Dynamic)
    }

    fn headless(
        service_id: &str,
        port: u16,
        queries: &std::path::Path,
        log: &std::path::Path,
        member: Member<'_>,
    ) -> Self {
        let log = std::fs::File::create(log).unwrap();
        let server = Server(spawn(service_id, port, Some(queries), log, member));
        wait_for_port(port);
        server
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// SIGKILL: the process dies at once, as in a crash.
    pub fn kill(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }

    /// SIGTERM, then the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.0.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not stop within 30 s of SIGTERM"
            );
            std::thread::park_timeout(Duration::from_millis(100));
        }
    }
}

/// Waits (at most 60 s) until something listens on `port`.
fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server did not listen on {port}");
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

/// How a test's server joins its queries' groups.
enum Member<'a> {
    /// With `--instance-id` (static membership) and these further arguments.
    Static(&'a [&'a str]),
    /// Without: it leaves the groups when it stops.
    Dynamic,
}

/// `eddy server` on the broker, its REST API on `port`, headless when given `queries`.
fn spawn(
    service_id: &str,
    port: u16,
    queries: Option<&std::path::Path>,
    log: std::fs::File,
    member: Member<'_>,
) -> Child {
    // EDDY_BIN runs another build of the server (a release build, for figures by hand).
    let binary = std::env::var("EDDY_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_eddy").into());
    let mut command = Command::new(binary);
    command.args([
        "server",
        "--bootstrap-servers",
        &bootstrap(),
        "--service-id",
        service_id,
        "--listeners",
        &format!("http://127.0.0.1:{port}"),
    ]);
    if let Some(queries) = queries {
        command.arg("--queries-file").arg(queries);
    }
    let mut own_registry = false;
    if let Member::Static(args) = member {
        // A stable identity, as servers restarted in place keep theirs.
        command.args(["--instance-id", &format!("{service_id}-{port}")]);
        command.args(args);
        own_registry = args.iter().any(|a| a.contains("schema.registry."));
    }
    if !own_registry {
        // Several servers on one machine: each serves the embedded registry on a port of its own.
        command.args([
            "-p",
            &format!("schema.registry.listeners=http://127.0.0.1:{}", free_port()),
        ]);
    }
    command.stdout(Stdio::null()).stderr(log).spawn().unwrap()
}

pub fn produce(topic: &str, records: &[(&str, &[u8], i64)]) {
    let records: Vec<(&[u8], &[u8], i64)> = records
        .iter()
        .map(|(k, v, ts)| (k.as_bytes(), *v, *ts))
        .collect();
    produce_bytes(topic, &records);
}

/// Produces records with any key bytes (e.g. an 8-byte long), placed as Java clients do.
pub fn produce_bytes(topic: &str, records: &[(&[u8], &[u8], i64)]) {
    let records: Vec<Keyed<'_>> = records
        .iter()
        .map(|(k, v, ts)| (*k, Some(*v), *ts))
        .collect();
    produce_keyed(topic, &records);
}

/// Produces table changes: a `None` value is a tombstone.
pub fn produce_changes(topic: &str, records: &[(&str, Option<&[u8]>, i64)]) {
    let records: Vec<Keyed<'_>> = records
        .iter()
        .map(|(k, v, ts)| (k.as_bytes(), *v, *ts))
        .collect();
    produce_keyed(topic, &records);
}

/// A record to produce: key, value (`None`: a tombstone), timestamp.
type Keyed<'a> = (&'a [u8], Option<&'a [u8]>, i64);

/// Produces keyed records (a `None` value is a tombstone), placed as Java clients do.
fn produce_keyed(topic: &str, records: &[Keyed<'_>]) {
    let producer: BaseProducer = config()
        .client_config()
        .set("partitioner", "murmur2_random")
        .create()
        .unwrap();
    for (key, value, ts) in records {
        let mut record = BaseRecord::<[u8], [u8]>::to(topic).key(*key).timestamp(*ts);
        if let Some(value) = value {
            record = record.payload(*value);
        }
        producer.send(record).unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// The names of the broker's topics.
pub fn topic_names() -> Vec<String> {
    let consumer: BaseConsumer = config().client_config().create().unwrap();
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    metadata
        .topics()
        .iter()
        .map(|t| t.name().to_string())
        .collect()
}

/// Reads `topic` until at least `expected` records arrived and 5 s passed without more (at
/// most 90 s).
pub fn consume(topic: &str, expected: usize) -> Vec<(i32, Vec<u8>, Option<String>)> {
    let consumer: BaseConsumer = config()
        .client_config()
        .set("group.id", format!("e2e-check-{topic}"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline
        && !(out.len() >= expected && quiet_since.elapsed() > Duration::from_secs(5))
    {
        // Until the server creates the output topic, polls report it unknown: keep waiting.
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            out.push((
                m.partition(),
                m.key().unwrap().to_vec(),
                m.payload().map(|v| String::from_utf8(v.to_vec()).unwrap()),
            ));
            quiet_since = Instant::now();
        }
    }
    out
}

/// Milliseconds since the epoch.
/// The rows' columns of a `/query` response.
pub fn rows_of(text: &str) -> Vec<Value> {
    let elements: Vec<Value> = serde_json::from_str(text).unwrap();
    elements
        .into_iter()
        .filter_map(|e| e.get("row").map(|r| r["columns"].clone()))
        .collect()
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A free local TCP port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The REST API of one server.
pub struct Http {
    pub client: reqwest::Client,
    pub base: String,
}

impl Http {
    pub fn new(port: u16) -> Self {
        Self {
            client: reqwest::Client::new(),
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, String) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    pub async fn post_raw(&self, path: &str, body: &'static str) -> (u16, String) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    pub async fn ksql(&self, sql: &str) -> (u16, Value) {
        let (status, text) = self.post("/ksql", json!({ "ksql": sql })).await;
        (status, serde_json::from_str(&text).unwrap())
    }

    /// A pull query's rows.
    pub async fn pull(&self, sql: &str) -> Vec<Value> {
        let (status, text) = self.post("/query", json!({ "ksql": sql })).await;
        assert_eq!(status, 200, "{sql}: {text}");
        rows_of(&text)
    }

    /// A pull query's rows, or `None` while the server cannot answer for the whole table
    /// (503: some partitions' tasks are being assigned or moved), for tests that poll.
    pub async fn poll_pull(&self, sql: &str) -> Option<Vec<Value>> {
        let (status, text) = self.post("/query", json!({ "ksql": sql })).await;
        if status == 503 {
            return None;
        }
        assert_eq!(status, 200, "{sql}: {text}");
        Some(rows_of(&text))
    }
}
