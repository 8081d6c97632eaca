//! `eddy print`: read a topic and show its records to a person.
//!
//! Like ksqlDB's `PRINT`: each record's timestamp, partition, key and value on one line. With
//! `windowed`, the last 8 key bytes are read as the window start (Kafka Streams' windowed
//! key), so the quickstart shows `card @ [start .. end)` in UTC. Runs until interrupted or `limit`.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};

use super::{KafkaConfig, KafkaError};

/// What to print.
#[derive(Debug, Clone)]
pub struct PrintOptions {
    /// The topic.
    pub topic: String,
    /// Start from the earliest offset (else only new records).
    pub from_beginning: bool,
    /// Keys end with an 8-byte window start; the window size (ms) gives the end.
    pub window_size_ms: Option<i64>,
    /// Stop after this many records.
    pub limit: Option<usize>,
}

/// Prints records of `options.topic` to stdout until `limit` or `stop` says so.
pub fn print_topic(
    config: &KafkaConfig,
    options: &PrintOptions,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<(), KafkaError> {
    let consumer: BaseConsumer = config
        .client_config()
        .set(
            "group.id",
            format!("{}-print-{}", config.service_id, std::process::id()),
        )
        .set("enable.auto.commit", "false")
        .set(
            "auto.offset.reset",
            if options.from_beginning {
                "earliest"
            } else {
                "latest"
            },
        )
        .create()?;
    consumer.subscribe(&[options.topic.as_str()])?;
    let mut printed = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed)
        && options.limit.is_none_or(|l| printed < l)
    {
        let Some(result) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = result?;
        println!(
            "{}",
            line(&super::runtime::record_of(&m), options.window_size_ms)
        );
        printed += 1;
    }
    Ok(())
}

/// One record as `PRINT` shows it: timestamp, partition, key and value.
pub fn line(record: &crate::record::Record, window_size: Option<i64>) -> String {
    format!(
        "rowtime: {}, partition: {}, key: {}, value: {}",
        utc(record.timestamp),
        record.partition.unwrap_or(0),
        record
            .key
            .as_deref()
            .map_or("<null>".to_string(), |k| show_key(k, window_size)),
        record
            .value
            .as_deref()
            .map_or("<tombstone>".to_string(), |v| String::from_utf8_lossy(v)
                .into_owned()),
    )
}

fn show_key(key: &[u8], window_size: Option<i64>) -> String {
    match window_size {
        Some(size) if key.len() >= 8 => {
            let (inner, start) = key.split_at(key.len() - 8);
            let start = i64::from_be_bytes(start.try_into().unwrap_or([0; 8]));
            format!(
                "{} @ [{} .. {})",
                String::from_utf8_lossy(inner),
                utc(start),
                utc(start.saturating_add(size))
            )
        }
        _ => String::from_utf8_lossy(key).into_owned(),
    }
}

/// `2026-11-25 07:15:00.000Z`, or the raw number if out of range.
fn utc(ms: i64) -> String {
    arrow::temporal_conversions::timestamp_ms_to_datetime(ms).map_or_else(
        || ms.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S%.3fZ").to_string(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn windowed_keys_show_their_window() {
        let mut key = b"card-1".to_vec();
        key.extend_from_slice(&300_000i64.to_be_bytes());
        assert_eq!(
            super::show_key(&key, Some(300_000)),
            "card-1 @ [1970-01-01 00:05:00.000Z .. 1970-01-01 00:10:00.000Z)"
        );
    }
}
