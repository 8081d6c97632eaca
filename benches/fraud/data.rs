//! The benchmark's data: a seeded stream of JSON card authorizations, the answer the fraud
//! rule must give on it (computed here, without any engine), loading it into a topic, and
//! producing it live at a fixed rate.
//!
//! Every record is keyed by its card, carries its event time as the record timestamp, and
//! timestamps only grow (each partition's records are in event-time order), so with no grace
//! period no record is late and the expected counts are exact. Nothing here measures.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use eddy::kafka::partitioner::partition_for;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

/// Partitions of the input topic unless `--partitions` says otherwise (= the machine's cores).
pub const DEFAULT_PARTITIONS: i32 = 2;
/// The tumbling window of the rule.
pub const WINDOW_MS: i64 = 5 * 60 * 1000;
/// Distinct merchants.
const MERCHANTS: u32 = 5_000;

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// Records.
    pub events: u64,
    /// Distinct cards, chosen uniformly.
    pub cards: u32,
    /// Event time covered, ending about now.
    pub span_ms: i64,
    /// Generator seed.
    pub seed: u64,
    /// Partitions of the input and output topics.
    pub partitions: i32,
}

/// One authorization: the card (the key), its fields, and its event time (the timestamp).
pub struct Auth {
    pub card: String,
    cents: u32,
    merchant: u32,
    pub ts: i64,
}

impl Auth {
    /// The JSON value.
    pub fn value(&self) -> String {
        format!(
            r#"{{"card_number":"{}","amount":{}.{:02},"merchant":"merchant_{:05}","ts":{}}}"#,
            self.card,
            self.cents / 100,
            self.cents % 100,
            self.merchant,
            self.ts
        )
    }
}

/// The card numbers of the workload, formatted once.
fn card_numbers(cards: u32) -> Vec<String> {
    (0..cards).map(|c| format!("4000{c:012}")).collect()
}

/// The workload's records in order; timestamps spread evenly over `span_ms` from `start_ms`.
pub fn generate(w: Workload, start_ms: i64) -> impl Iterator<Item = Auth> {
    let cards = card_numbers(w.cards);
    let mut rng = SmallRng::seed_from_u64(w.seed);
    (0..w.events).map(move |i| {
        let card = cards[rng.random_range(0..w.cards) as usize].clone();
        let ts = start_ms + (i as i128 * w.span_ms as i128 / w.events.max(1) as i128) as i64;
        let cents: u32 = rng.random_range(100..200_000);
        let merchant = rng.random_range(0..MERCHANTS);
        Auth {
            card,
            cents,
            merchant,
            ts,
        }
    })
}

/// A window of one card: (card, window start).
pub type WindowKey = (String, i64);

/// The rule's answer, computed from the generator alone.
pub struct Expected {
    /// Final count of every (card, window) whose count is above 3.
    pub alerts: HashMap<WindowKey, u64>,
    /// Windows closed by the end of the input (window end <= the partition's stream time):
    /// what EMIT FINAL must have written.
    pub closed: HashMap<WindowKey, u64>,
}

/// Counts every (card, window) of the workload.
pub fn expected(w: Workload, start_ms: i64) -> Expected {
    let mut counts: HashMap<WindowKey, u64> = HashMap::new();
    let mut stream_time = vec![i64::MIN; w.partitions as usize];
    for auth in generate(w, start_ms) {
        let partition = partition_for(auth.card.as_bytes(), w.partitions) as usize;
        stream_time[partition] = stream_time[partition].max(auth.ts);
        let window = auth.ts - auth.ts.rem_euclid(WINDOW_MS);
        *counts.entry((auth.card, window)).or_default() += 1;
    }
    let alerts: HashMap<WindowKey, u64> = counts.into_iter().filter(|(_, n)| *n > 3).collect();
    let closed = alerts
        .iter()
        .filter(|((card, start), _)| {
            let partition = partition_for(card.as_bytes(), w.partitions) as usize;
            start + WINDOW_MS <= stream_time[partition]
        })
        .map(|(k, n)| (k.clone(), *n))
        .collect();
    Expected { alerts, closed }
}

/// A producer placing keys as Java clients do, tuned for throughput.
fn producer(bootstrap: &str, linger_ms: &str) -> Result<BaseProducer, KafkaError> {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("partitioner", "murmur2_random")
        .set("linger.ms", linger_ms)
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .set("acks", "all")
        .create()
}

fn send(producer: &BaseProducer, topic: &str, auth: &Auth) -> Result<(), KafkaError> {
    loop {
        let value = auth.value();
        let record = BaseRecord::to(topic)
            .key(auth.card.as_bytes())
            .payload(value.as_bytes())
            .timestamp(auth.ts);
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                producer.poll(Duration::from_millis(10));
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Records in `topic` (sum of its partitions' end offsets), or `None` if it does not exist.
pub fn topic_size(bootstrap: &str, topic: &str) -> Result<Option<u64>, KafkaError> {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let Some(t) = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
    else {
        return Ok(None);
    };
    let mut total = 0;
    for p in t.partitions() {
        let (low, high) = consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(10))?;
        total += (high - low) as u64;
    }
    Ok(Some(total))
}

/// Fills `topic` with the workload (event time ending now) unless it already holds it; returns
/// the first timestamp, which [`expected`] needs. The topic's name must identify the workload.
pub fn load(bootstrap: &str, topic: &str, w: Workload) -> Result<i64, Box<dyn std::error::Error>> {
    let start_file = std::env::temp_dir().join(format!("eddy-bench-{topic}.start"));
    if topic_size(bootstrap, topic)? == Some(w.events)
        && let Ok(start) = std::fs::read_to_string(&start_file)
    {
        eprintln!("bench: reusing {topic} ({} records)", w.events);
        return Ok(start.trim().parse()?);
    }
    crate::run::create_topic(bootstrap, (topic, w.partitions), &[("retention.ms", "-1")])?;
    let start_ms = now_ms() - w.span_ms - 60_000;
    let producer = producer(bootstrap, "50")?;
    let began = Instant::now();
    for auth in generate(w, start_ms) {
        send(&producer, topic, &auth)?;
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(120))?;
    let secs = began.elapsed().as_secs_f64();
    eprintln!(
        "bench: loaded {} records into {topic} in {secs:.1} s ({:.0}/s)",
        w.events,
        w.events as f64 / secs
    );
    std::fs::write(&start_file, start_ms.to_string())?;
    Ok(start_ms)
}

/// Produces the workload's records at `rate` per second for `seconds`, timestamped now.
/// Returns how many were sent.
pub fn produce_live(
    bootstrap: &str,
    topic: &str,
    w: Workload,
    rate: u32,
    seconds: u64,
) -> Result<u64, KafkaError> {
    let producer = producer(bootstrap, "5")?;
    let began = Instant::now();
    let mut sent = 0u64;
    for mut auth in generate(w, 0) {
        if began.elapsed() >= Duration::from_secs(seconds) {
            break;
        }
        let due = began + Duration::from_secs_f64(sent as f64 / f64::from(rate.max(1)));
        while Instant::now() < due {
            producer.poll(due.saturating_duration_since(Instant::now()));
        }
        auth.ts = now_ms();
        send(&producer, topic, &auth)?;
        producer.poll(Duration::ZERO);
        sent += 1;
    }
    producer.flush(Duration::from_secs(30))?;
    Ok(sent)
}

/// Wall-clock milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
