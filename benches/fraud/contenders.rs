//! The contenders and how each is started: the ceiling (this harness re-run as a plain
//! consumer that only counts messages and bytes), Eddy's server with the rule as a SQL file,
//! and the Kafka Streams application (`benches/streams/WindowedCount.java`). Each gets fresh
//! consumer groups, state and output topics, so runs never share anything but the input.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::run::Group;

type BoxError = Box<dyn std::error::Error>;

/// When results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    /// Every update of a count above 3.
    Changes,
    /// Once per window, when it closes.
    Final,
}

impl Emit {
    pub fn name(self) -> &'static str {
        match self {
            Emit::Changes => "changes",
            Emit::Final => "final",
        }
    }
}

/// An engine under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Eddy,
    /// Kafka Streams with its persistent (RocksDB, changelogged) window store.
    StreamsRocksDb,
    /// Kafka Streams with its in-memory window store, changelog disabled.
    StreamsMemory,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Eddy => "Eddy",
            Engine::StreamsRocksDb => "Kafka Streams (RocksDB)",
            Engine::StreamsMemory => "Kafka Streams (in-memory)",
        }
    }
}

/// Where the contenders' programs are.
pub struct Programs {
    /// The `eddy` binary.
    pub eddy: PathBuf,
    /// Properties for the Eddy server (`-p`), e.g. `num.stream.threads=2`.
    pub eddy_properties: Vec<String>,
    /// How many Eddy servers share the work (one service id, the group splits the
    /// partitions).
    pub eddy_servers: usize,
    /// Class path of the Kafka Streams application (jars and compiled class).
    pub streams_classpath: Option<String>,
    /// Folder for logs, SQL files and state.
    pub work: PathBuf,
}

/// A started engine: its process, the group to watch and the output topic.
pub struct Started {
    pub proc: crate::run::Proc,
    pub group: Group,
    pub output: String,
}

/// Starts `engine` reading `input` with emit mode `emit`; `run` names everything it creates.
pub fn start(
    programs: &Programs,
    bootstrap: &str,
    (engine, emit): (Engine, Emit),
    (input, partitions): (&str, i32),
    run: &str,
) -> Result<Started, BoxError> {
    let output = format!("bench-out-{run}");
    let log = programs.work.join(format!("{run}.log"));
    match engine {
        Engine::Eddy => {
            let sql = programs.work.join(format!("{run}.sql"));
            std::fs::write(&sql, eddy_sql((input, partitions), &output, emit))?;
            let service = format!("bench_{run}");
            let mut commands = Vec::new();
            for server in 0..programs.eddy_servers.max(1) {
                let log = match server {
                    0 => log.clone(),
                    n => programs.work.join(format!("{run}-{n}.log")),
                };
                commands.push((eddy_server(programs, bootstrap, &service, &sql)?, log));
            }
            Ok(Started {
                proc: crate::run::Proc::spawn_all(commands)?,
                group: Group::Prefixed(format!("{service}-query-")),
                output,
            })
        }
        Engine::StreamsRocksDb | Engine::StreamsMemory => {
            let classpath = programs
                .streams_classpath
                .as_deref()
                .ok_or("no Kafka Streams class path (--streams-classpath)")?;
            crate::run::create_topic(bootstrap, (&output, partitions), &[])?;
            let store = if engine == Engine::StreamsMemory {
                "memory"
            } else {
                "rocksdb"
            };
            let state = programs.work.join(format!("{run}-state"));
            let app = format!("bench-{run}");
            let mut command = Command::new("java");
            command
                .args(["-Xms1g", "-Xmx1g", "-XX:+UseG1GC", "-cp", classpath])
                .args([
                    "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                    "WindowedCount",
                ])
                .args([bootstrap, input, &output, &app, emit.name(), store])
                .arg(&state);
            Ok(Started {
                proc: crate::run::Proc::spawn(command, &log)?,
                group: Group::Named(app),
                output,
            })
        }
    }
}

/// An Eddy server of `service` running the queries of `sql` headless, on a free port.
fn eddy_server(
    programs: &Programs,
    bootstrap: &str,
    service: &str,
    sql: &Path,
) -> Result<Command, BoxError> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut command = Command::new(&programs.eddy);
    command
        .args(["server", "--bootstrap-servers", bootstrap])
        .args(["--service-id", service])
        .args(["--listeners", &format!("http://127.0.0.1:{port}")])
        .arg("--queries-file")
        .arg(sql)
        // Several servers on one machine, no Avro: none serves the embedded schema registry.
        .args(["-p", "schema.registry.listeners="])
        .env("RUST_LOG", "warn");
    for property in &programs.eddy_properties {
        command.args(["-p", property]);
    }
    Ok(command)
}

/// The rule in Eddy's SQL, over `input`, writing `output` (with as many partitions).
fn eddy_sql((input, partitions): (&str, i32), output: &str, emit: Emit) -> String {
    format!(
        "CREATE STREAM authorizations (card_number VARCHAR KEY, amount DOUBLE, merchant VARCHAR)
           WITH (KAFKA_TOPIC='{input}', VALUE_FORMAT='JSON');
         CREATE TABLE possible_fraud WITH (KAFKA_TOPIC='{output}', PARTITIONS={partitions}) AS
           SELECT card_number, COUNT(*) AS attempts
           FROM authorizations WINDOW TUMBLING (SIZE 5 MINUTES, GRACE PERIOD 0 SECONDS)
           GROUP BY card_number HAVING COUNT(*) > 3
           EMIT {};\n",
        if emit == Emit::Final {
            "FINAL"
        } else {
            "CHANGES"
        }
    )
}

/// What the ceiling consumer measured of itself.
#[derive(Debug)]
pub struct Ceiling {
    pub events: u64,
    pub bytes: u64,
    /// First message → last.
    pub elapsed: Duration,
    pub cpu_s: f64,
    pub peak_rss_mib: f64,
}

/// The ceiling, run in a child process (`--ceiling`): reads `topic` from the beginning to its
/// end offsets with one consumer, touching each message's key and value, and prints its figures.
pub fn ceiling_child(bootstrap: &str, topic: &str) -> Result<(), BoxError> {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set(
            "group.id",
            format!("eddy-bench-ceiling-{}", std::process::id()),
        )
        .set("enable.auto.commit", "false")
        .create()?;
    let mut ends = std::collections::HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for p in crate::run::partitions_of(&consumer, topic)? {
        let (_, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
        ends.insert(p, high);
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let (mut events, mut bytes) = (0u64, 0u64);
    let mut first: Option<Instant> = None;
    ends.retain(|_, high| *high > 0);
    while !ends.is_empty() {
        let Some(m) = consumer.poll(Duration::from_secs(1)) else {
            continue;
        };
        let m = m?;
        first.get_or_insert_with(Instant::now);
        events += 1;
        bytes += (m.key_len() + m.payload_len()) as u64;
        if ends.get(&m.partition()) == Some(&(m.offset() + 1)) {
            ends.remove(&m.partition());
        }
    }
    let elapsed = first.map_or(Duration::ZERO, |f| f.elapsed());
    println!(
        "CEILING {events} {bytes} {} {} {}",
        elapsed.as_secs_f64(),
        crate::run::cpu_seconds("self")?,
        crate::run::peak_rss_mib("self")?
    );
    Ok(())
}

/// Runs the ceiling child and reads its figures.
pub fn ceiling(bootstrap: &str, topic: &str, work: &Path) -> Result<(Ceiling, Duration), BoxError> {
    let started = Instant::now();
    let output = Command::new(std::env::current_exe()?)
        .args(["--bench", "--ceiling", bootstrap, topic])
        .stderr(std::fs::File::create(work.join("ceiling.log"))?)
        .output()?;
    let wall = started.elapsed();
    let text = String::from_utf8(output.stdout)?;
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("CEILING "))
        .ok_or_else(|| format!("the ceiling consumer failed: {text}"))?;
    let f: Vec<&str> = line.split_whitespace().collect();
    Ok((
        Ceiling {
            events: f[0].parse()?,
            bytes: f[1].parse()?,
            elapsed: Duration::from_secs_f64(f[2].parse()?),
            cpu_s: f[3].parse()?,
            peak_rss_mib: f[4].parse()?,
        },
        wall,
    ))
}
