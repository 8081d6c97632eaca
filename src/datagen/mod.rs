//! `eddy datagen`: sample card authorizations for the quickstart, written to Kafka.
//!
//! [`Authorizations`] is a seeded, reproducible generator of JSON authorizations keyed by card
//! number: most cards are used now and then, a few "stolen" cards in bursts, so the talk's
//! fraud rule (more than 3 uses in 5 minutes) fires on those. [`produce`] writes them at a
//! given rate with event time = now.

use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use crate::kafka::{KafkaConfig, KafkaError};

const MERCHANTS: &[&str] = &[
    "grocer",
    "fuel",
    "books",
    "cafe",
    "airline",
    "hotel",
    "pharmacy",
    "electronics",
];

/// One generated authorization.
#[derive(Debug, Clone, PartialEq)]
pub struct Authorization {
    /// The card, also the record key.
    pub card_number: String,
    /// Amount in currency units.
    pub amount: f64,
    /// Where the card was used.
    pub merchant: &'static str,
}

impl Authorization {
    /// The JSON value, as `queries/card-fraud.sql` declares it.
    pub fn to_json(&self) -> String {
        serde_json::json!({"card_number": self.card_number, "amount": self.amount, "merchant": self.merchant}).to_string()
    }
}

/// A reproducible stream of authorizations over `cards` cards.
#[derive(Debug)]
pub struct Authorizations {
    rng: SmallRng,
    cards: u32,
    stolen: u32,
}

impl Authorizations {
    /// `cards` cards, of which about one in fifty (at least one) is used in bursts.
    pub fn new(seed: u64, cards: u32) -> Self {
        Self {
            rng: SmallRng::seed_from_u64(seed),
            cards: cards.max(1),
            stolen: (cards / 50).max(1),
        }
    }
}

impl Iterator for Authorizations {
    type Item = Authorization;

    fn next(&mut self) -> Option<Authorization> {
        // A third of the traffic comes from the few stolen cards: they cross the threshold.
        let card = if self.rng.random_bool(1.0 / 3.0) {
            self.rng.random_range(0..self.stolen)
        } else {
            self.rng.random_range(0..self.cards)
        };
        Some(Authorization {
            card_number: format!("4000-0000-{:04}-{:04}", card / 10_000, card % 10_000),
            amount: f64::from(self.rng.random_range(100..50_000u32)) / 100.0,
            merchant: MERCHANTS[self.rng.random_range(0..MERCHANTS.len())],
        })
    }
}

/// Produces `rate` authorizations per second to `topic` for `duration` (forever if `None`).
pub fn produce(
    config: &KafkaConfig,
    topic: &str,
    rate: u32,
    cards: u32,
    duration: Option<Duration>,
) -> Result<u64, KafkaError> {
    let producer: BaseProducer = config
        .client_config()
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .create()?;
    let start = Instant::now();
    let mut sent: u64 = 0;
    for auth in Authorizations::new(42, cards) {
        if duration.is_some_and(|d| start.elapsed() >= d) {
            break;
        }
        let due = start + Duration::from_secs_f64(sent as f64 / f64::from(rate.max(1)));
        while Instant::now() < due {
            producer.poll(
                due.saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(50)),
            );
        }
        let value = auth.to_json();
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        producer
            .send(
                BaseRecord::to(topic)
                    .key(&auth.card_number)
                    .payload(&value)
                    .timestamp(ts),
            )
            .map_err(|(e, _)| e)?;
        sent += 1;
    }
    producer.flush(Duration::from_secs(10))?;
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let a: Vec<_> = Authorizations::new(7, 100).take(20).collect();
        let b: Vec<_> = Authorizations::new(7, 100).take(20).collect();
        assert_eq!(a, b);
    }
}
