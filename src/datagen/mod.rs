//! `eddy datagen`: sample data for the quickstart, written to Kafka.
//!
//! [`Authorizations`] is a seeded, reproducible generator of JSON authorizations keyed by card
//! number: most cards are used now and then, a few "stolen" cards in bursts, so the talk's
//! fraud rule (more than 3 uses in 5 minutes) fires on those. [`orders`] generates the orders
//! system's customers, stock, orders and payments. [`produce`] writes both at given rates with
//! event time = now.

pub mod orders;

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

/// What to generate, per second.
#[derive(Debug, Clone)]
pub struct Rates {
    /// Authorizations per second (0: none).
    pub authorizations: u32,
    /// Distinct cards.
    pub cards: u32,
    /// Orders per second, each with its payment (0: no orders system data).
    pub orders: f64,
}

/// What [`produce`] sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    /// Authorizations.
    pub authorizations: u64,
    /// Orders (as many payments).
    pub orders: u64,
}

/// How often the warehouse restocks when orders are generated.
const RESTOCK: Duration = Duration::from_secs(60);

/// Produces authorizations to `topic` and orders (with payments, customers and stock, see
/// [`orders`]) at `rates` for `duration` (forever if `None`), with event time = now.
pub fn produce(
    config: &KafkaConfig,
    topic: &str,
    rates: &Rates,
    duration: Option<Duration>,
) -> Result<Sent, KafkaError> {
    let producer: BaseProducer = config
        .client_config()
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .create()?;
    let prefix = format!("o{}", crate::record::now_ms() / 1000 % 1_000_000);
    let mut orders = orders::OrderGenerator::new(7, &prefix);
    let mut auths = Authorizations::new(42, rates.cards);
    if rates.orders > 0.0 {
        for (t, key, value) in orders.customers().into_iter().chain(orders.restock()) {
            send(&producer, t, &key, &value)?;
        }
    }
    let start = Instant::now();
    let mut last_restock = start;
    let mut sent = Sent::default();
    while duration.is_none_or(|d| start.elapsed() < d) {
        let elapsed = start.elapsed().as_secs_f64();
        while (sent.authorizations as f64) < elapsed * f64::from(rates.authorizations) {
            let auth = auths.next().unwrap_or_else(|| unreachable!("endless"));
            send(
                &producer,
                topic,
                auth.card_number.as_bytes(),
                auth.to_json().as_bytes(),
            )?;
            sent.authorizations += 1;
        }
        while (sent.orders as f64) < elapsed * rates.orders {
            for (t, key, value) in orders.order() {
                send(&producer, t, &key, &value)?;
            }
            sent.orders += 1;
        }
        if rates.orders > 0.0 && last_restock.elapsed() >= RESTOCK {
            last_restock = Instant::now();
            for (t, key, value) in orders.restock() {
                send(&producer, t, &key, &value)?;
            }
        }
        producer.poll(Duration::from_millis(10));
    }
    producer.flush(Duration::from_secs(10))?;
    Ok(sent)
}

fn send(producer: &BaseProducer, topic: &str, key: &[u8], value: &[u8]) -> Result<(), KafkaError> {
    let record = BaseRecord::to(topic)
        .key(key)
        .payload(value)
        .timestamp(crate::record::now_ms());
    producer.send(record).map_err(|(e, _)| e)?;
    Ok(())
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
