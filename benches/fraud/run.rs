//! Running one contender as a process and watching it: CPU time and peak memory from `/proc`,
//! progress from the consumer group's committed offsets (every contender commits every
//! second, after flushing its outputs, so "all input committed" means "every result written"),
//! the first result from the output topic's end offset, and the results themselves read back
//! and decoded (windowed key = the card's bytes then the window start, 8 bytes big-endian;
//! value `{"ATTEMPTS":n}`). Comparing results with the expected answer is `main`'s.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

use crate::data::WindowKey;

type BoxError = Box<dyn std::error::Error>;

/// Creates `topic` with `partitions` (an existing one is left as it is).
pub fn create_topic(
    bootstrap: &str,
    (topic, partitions): (&str, i32),
    config: &[(&str, &str)],
) -> Result<(), BoxError> {
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (k, v) in config {
        new = new.set(k, v);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let results = runtime.block_on(admin.create_topics([&new], &AdminOptions::new()))?;
    for result in results {
        match result {
            Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => return Err(format!("cannot create {t}: {e}").into()),
        }
    }
    Ok(())
}

/// The partitions of `topic` (none while it does not exist).
pub fn partitions_of<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
) -> Result<Vec<i32>, KafkaError> {
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect())
}

fn consumer(bootstrap: &str, group: &str) -> Result<BaseConsumer, KafkaError> {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
}

/// A contender's processes (one, or several Eddy servers sharing a service id).
pub struct Proc {
    children: Vec<Child>,
    /// When it was started.
    pub started: Instant,
}

impl Proc {
    /// Starts `command` with its output going to `log`.
    pub fn spawn(command: Command, log: &Path) -> Result<Self, BoxError> {
        Self::spawn_all(vec![(command, log.to_path_buf())])
    }

    /// Starts every command, each with its output going to its log.
    pub fn spawn_all(commands: Vec<(Command, std::path::PathBuf)>) -> Result<Self, BoxError> {
        let mut children = Vec::new();
        for (mut command, log) in commands {
            let log = std::fs::File::create(log)?;
            children.push(
                command
                    .stdin(Stdio::null())
                    .stdout(log.try_clone()?)
                    .stderr(log)
                    .spawn()?,
            );
        }
        Ok(Self {
            children,
            started: Instant::now(),
        })
    }

    /// Fails if a process has ended.
    pub fn check_alive(&mut self) -> Result<(), BoxError> {
        for child in &mut self.children {
            if let Some(status) = child.try_wait()? {
                return Err(format!("the contender exited early ({status})").into());
            }
        }
        Ok(())
    }

    /// User + system CPU seconds so far, of all the processes.
    pub fn cpu_seconds(&self) -> Result<f64, BoxError> {
        self.children
            .iter()
            .map(|c| cpu_seconds(&c.id().to_string()))
            .sum()
    }

    /// Peak resident set size in MiB (`VmHWM`), summed over the processes.
    pub fn peak_rss_mib(&self) -> Result<f64, BoxError> {
        self.children
            .iter()
            .map(|c| peak_rss_mib(&c.id().to_string()))
            .sum()
    }

    /// SIGTERM, then SIGKILL for those that have not ended within 30 s.
    pub fn terminate(mut self) {
        for child in &self.children {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self
                .children
                .iter_mut()
                .all(|c| matches!(c.try_wait(), Ok(Some(_))))
            {
                return;
            }
            std::thread::park_timeout(Duration::from_millis(100));
        }
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        for child in &mut self.children {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// User + system CPU seconds of process `pid` (`self` for this one).
pub fn cpu_seconds(pid: &str) -> Result<f64, BoxError> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces): state is field 3.
    let after = stat.rsplit_once(')').ok_or("bad /proc stat")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok(ticks / clock_ticks())
}

/// Peak resident set size of process `pid` in MiB (`VmHWM`).
pub fn peak_rss_mib(pid: &str) -> Result<f64, BoxError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .ok_or("no VmHWM")?
        .parse::<f64>()?;
    Ok(kb / 1024.0)
}

/// Clock ticks per second of `/proc` CPU times.
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// What watching a contender until it had committed all its input found.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Start → all input committed.
    pub done: Duration,
    /// The first commit seen: (time since start, records committed).
    pub first_commit: (Duration, u64),
    /// Start → first result on the output topic.
    pub first_result: Option<Duration>,
    /// CPU seconds when done.
    pub cpu_s: f64,
    /// Peak RSS when done.
    pub peak_rss_mib: f64,
}

impl Progress {
    /// Events per second between the first commit and the last: the catch-up rate, without
    /// start-up and group joining.
    pub fn catch_up_rate(&self, events: u64) -> f64 {
        let (t, n) = self.first_commit;
        let secs = (self.done - t).as_secs_f64();
        if secs <= 0.0 || n >= events {
            events as f64 / self.done.as_secs_f64()
        } else {
            (events - n) as f64 / secs
        }
    }
}

/// Which consumer group to watch: a known one, or the first whose name has a prefix.
pub enum Group {
    Named(String),
    Prefixed(String),
}

/// Watches `proc` until its group has committed `events` records of `input`.
pub fn watch(
    proc: &mut Proc,
    bootstrap: &str,
    group: &Group,
    (input, events): (&str, u64),
    output: &str,
    timeout: Duration,
) -> Result<Progress, BoxError> {
    let probe = consumer(bootstrap, "eddy-bench-probe")?;
    let mut watcher: Option<BaseConsumer> = None;
    let mut first_commit = None;
    let mut first_result = None;
    let mut tpl = TopicPartitionList::new();
    for p in partitions_of(&probe, input)? {
        tpl.add_partition(input, p);
    }
    loop {
        proc.check_alive()?;
        let elapsed = proc.started.elapsed();
        if elapsed > timeout {
            return Err(format!("not done after {} s", timeout.as_secs()).into());
        }
        // A topic being created may briefly have no leader: not written yet.
        if first_result.is_none() && output_size(&probe, output).unwrap_or(0) > 0 {
            first_result = Some(elapsed);
        }
        if watcher.is_none() {
            watcher = find_group(&probe, group)?
                .map(|g| consumer(bootstrap, &g))
                .transpose()?;
        }
        if let Some(w) = &watcher {
            let committed = committed(w, &tpl)?;
            if committed > 0 && first_commit.is_none() {
                first_commit = Some((elapsed, committed));
            }
            if committed >= events {
                return Ok(Progress {
                    done: elapsed,
                    first_commit: first_commit.unwrap_or((elapsed, committed)),
                    first_result,
                    cpu_s: proc.cpu_seconds()?,
                    peak_rss_mib: proc.peak_rss_mib()?,
                });
            }
        }
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

fn find_group(probe: &BaseConsumer, group: &Group) -> Result<Option<String>, KafkaError> {
    match group {
        Group::Named(name) => Ok(Some(name.clone())),
        Group::Prefixed(prefix) => Ok(probe
            .fetch_group_list(None, Duration::from_secs(5))?
            .groups()
            .iter()
            .map(|g| g.name().to_string())
            .find(|name| name.starts_with(prefix.as_str()))),
    }
}

fn committed(watcher: &BaseConsumer, tpl: &TopicPartitionList) -> Result<u64, KafkaError> {
    let offsets = watcher.committed_offsets(tpl.clone(), Duration::from_secs(5))?;
    Ok(offsets
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(n) => n.max(0) as u64,
            _ => 0,
        })
        .sum())
}

fn output_size(probe: &BaseConsumer, topic: &str) -> Result<i64, KafkaError> {
    let mut total = 0;
    // No partitions while it is not created yet.
    for p in partitions_of(probe, topic)? {
        let (low, high) = probe.fetch_watermarks(topic, p, Duration::from_secs(5))?;
        total += high - low;
    }
    Ok(total)
}

/// One result record: the window, and the count (`None` for a tombstone).
pub type Row = (WindowKey, Option<u64>);

/// Decodes a result record's key and value.
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Row, BoxError> {
    if key.len() < 8 {
        return Err("windowed key shorter than 8 bytes".into());
    }
    let (card, start) = key.split_at(key.len() - 8);
    let start = i64::from_be_bytes(start.try_into()?);
    let count = match value {
        None => None,
        Some(v) => {
            let json: serde_json::Value = serde_json::from_slice(v)?;
            Some(json["ATTEMPTS"].as_u64().ok_or("no ATTEMPTS")?)
        }
    };
    Ok(((String::from_utf8(card.to_vec())?, start), count))
}

/// Every record of `topic`, in offset order per partition.
pub fn read_results(bootstrap: &str, topic: &str) -> Result<Vec<Row>, BoxError> {
    let consumer = consumer(bootstrap, "eddy-bench-reader")?;
    let mut ends = HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for p in partitions_of(&consumer, topic)? {
        let (_, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
        if high > 0 {
            ends.insert(p, high);
            tpl.add_partition_offset(topic, p, Offset::Beginning)?;
        }
    }
    consumer.assign(&tpl)?;
    let mut rows = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    while !ends.is_empty() && Instant::now() < deadline {
        let Some(m) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let m = m?;
        rows.push(decode(m.key().unwrap_or_default(), m.payload())?);
        if ends.get(&m.partition()) == Some(&(m.offset() + 1)) {
            ends.remove(&m.partition());
        }
    }
    if !ends.is_empty() {
        return Err(format!("could not read all of {topic}").into());
    }
    Ok(rows)
}

/// Latencies (ms) of result records arriving on `topic` until `stop`: arrival time minus the
/// record's timestamp (the input record that caused it, produced at wall-clock time).
pub fn probe_latencies(
    bootstrap: &str,
    topic: &str,
    counted_from_ms: i64,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<Vec<i64>, KafkaError> {
    let consumer = consumer(bootstrap, &format!("eddy-bench-latency-{topic}"))?;
    let mut tpl = TopicPartitionList::new();
    for p in partitions_of(&consumer, topic)? {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let mut latencies = Vec::new();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100))
            && let Some(ts) = m.timestamp().to_millis()
            && ts >= counted_from_ms
        {
            latencies.push(crate::data::now_ms() - ts);
        }
    }
    Ok(latencies)
}
