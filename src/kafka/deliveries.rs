//! [`Deliveries`]: a query producer's context, keeping the first record the broker refused.
//!
//! Delivery reports arrive in the thread that polls the producer (the query's); the task
//! manager ([`super::lifecycle`]) checks [`Deliveries::failure`] after serving them and before
//! each commit, so a record that could not be written stops the commit that would have
//! counted it as written. This context sends and commits nothing itself.

use std::sync::Mutex;

use rdkafka::ClientContext;
use rdkafka::producer::{DeliveryResult, ProducerContext};

/// The first delivery that failed.
#[derive(Debug, Default)]
pub struct Deliveries {
    failure: Mutex<Option<String>>,
}

impl Deliveries {
    /// The first delivery that failed, if one did.
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The broker answered for a record: written, or `failed`.
    fn acknowledged(&self, failed: Option<String>) {
        if let Some(why) = failed {
            self.failure
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get_or_insert(why);
        }
    }
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        self.acknowledged(result.as_ref().err().map(|(e, _)| e.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failure_is_kept() {
        let d = Deliveries::default();
        assert!(d.failure().is_none());
        d.acknowledged(None);
        assert!(d.failure().is_none());
        d.acknowledged(Some("first".into()));
        d.acknowledged(Some("second".into()));
        assert_eq!(d.failure().as_deref(), Some("first"));
    }
}
