//! Helpers of the end-to-end tests on the real broker: the server binary, producing and
//! consuming with rdkafka. Needs the broker the project starts (`docker/kafka.sh start`) at
//! `EDDY_BOOTSTRAP_SERVERS` (default 127.0.0.1:9092).

// Test helpers outside #[test] functions: a panic is the failure report.
#![allow(clippy::unwrap_used, dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use eddy::kafka::KafkaConfig;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

pub fn bootstrap() -> String {
    std::env::var("EDDY_BOOTSTRAP_SERVERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

pub fn config() -> KafkaConfig {
    KafkaConfig {
        bootstrap_servers: bootstrap(),
        service_id: "e2e_".into(),
        properties: Vec::new(),
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
    /// Runs the queries of `queries` under the service id `e2e_`.
    pub fn start(queries: &std::path::Path, log: &std::path::Path) -> Self {
        Self::start_as("e2e_", queries, log)
    }

    /// Runs the queries of `queries` under `service_id` (whose internal topics are its own).
    pub fn start_as(service_id: &str, queries: &std::path::Path, log: &std::path::Path) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_eddy"))
            .args([
                "server",
                "--bootstrap-servers",
                &bootstrap(),
                "--service-id",
                service_id,
                "--queries-file",
            ])
            .arg(queries)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        Server(child)
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

pub fn produce(topic: &str, records: &[(&str, &[u8], i64)]) {
    let producer: BaseProducer = config()
        .client_config()
        .set("partitioner", "murmur2_random")
        .create()
        .unwrap();
    for (key, value, ts) in records {
        producer
            .send(
                BaseRecord::to(topic)
                    .key(*key)
                    .payload(*value)
                    .timestamp(*ts),
            )
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
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
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
