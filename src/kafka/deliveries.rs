//! [`Deliveries`]: which records of a query's producer the broker has not acknowledged yet,
//! counted by commit epoch.
//!
//! A persistent query commits at-least-once: the offsets of a checkpoint may be committed only
//! when every record produced before it (results and changelog entries) is acknowledged.
//! Flushing the producer at each checkpoint does that, but stops the query's thread for as
//! long as the broker takes to write a checkpoint's changelog. Instead, each record carries
//! the epoch of the checkpoint it belongs to (the next one), and the query commits a
//! checkpoint's offsets once no record of that epoch or an earlier one is outstanding, while
//! it goes on processing. A failed delivery is kept so the query stops with it.
//!
//! This is the producer's context (delivery reports arrive in the thread that polls the
//! producer); it sends nothing and commits nothing itself: [`super::runtime`] does.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use rdkafka::ClientContext;
use rdkafka::producer::{DeliveryResult, ProducerContext};

/// Outstanding records per commit epoch, and the first delivery failure.
#[derive(Debug, Default)]
pub struct Deliveries {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Epoch → records sent and not yet acknowledged (epochs with none are removed).
    outstanding: BTreeMap<usize, usize>,
    failure: Option<String>,
}

impl Deliveries {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A record of `epoch` was handed to the producer.
    pub fn sent(&self, epoch: usize) {
        *self.state().outstanding.entry(epoch).or_default() += 1;
    }

    /// Whether every record of `epoch` and of the epochs before it has been acknowledged.
    pub fn done_through(&self, epoch: usize) -> bool {
        self.state()
            .outstanding
            .first_key_value()
            .is_none_or(|(first, _)| *first > epoch)
    }

    /// The first delivery that failed, if one did.
    pub fn failure(&self) -> Option<String> {
        self.state().failure.clone()
    }
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, epoch: usize) {
        self.acknowledged(epoch, result.as_ref().err().map(|(e, _)| e.to_string()));
    }
}

impl Deliveries {
    /// The broker answered for a record of `epoch`: written, or `failed`.
    fn acknowledged(&self, epoch: usize, failed: Option<String>) {
        let mut state = self.state();
        if let Some(n) = state.outstanding.get_mut(&epoch) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                state.outstanding.remove(&epoch);
            }
        }
        if let Some(why) = failed {
            state.failure.get_or_insert(why);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_is_done_when_it_and_every_earlier_one_are_acknowledged() {
        let d = Deliveries::default();
        assert!(d.done_through(0), "nothing sent");
        d.sent(0);
        d.sent(1);
        d.sent(1);
        assert!(!d.done_through(0));
        // Epoch 1's records are acknowledged first: epoch 1 still waits for epoch 0's.
        d.acknowledged(1, None);
        d.acknowledged(1, None);
        assert!(!d.done_through(1));
        d.acknowledged(0, None);
        assert!(d.done_through(1));
        assert!(d.failure().is_none());
    }

    #[test]
    fn the_first_failure_is_kept() {
        let d = Deliveries::default();
        d.sent(0);
        d.sent(0);
        d.acknowledged(0, Some("first".into()));
        d.acknowledged(0, Some("second".into()));
        assert_eq!(d.failure().as_deref(), Some("first"));
        assert!(d.done_through(0));
    }
}
