//! [`Deliveries`]: a query producer's context, keeping the first record the broker refused.
//!
//! Delivery reports arrive in the thread that polls the producer (the query's); the task
//! manager ([`super::lifecycle`]) checks [`Deliveries::failure`] after serving them and before
//! each commit, so a record that could not be written stops the commit that would have
//! counted it as written. A context made with [`Deliveries::skipping`] instead reports a
//! record the broker refuses for itself (too large: `ksql.fail.on.production.error=false`)
//! to the processing log. This context sends and commits nothing itself.

use std::sync::Mutex;

use rdkafka::ClientContext;
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryResult, ProducerContext};

use super::KafkaError;
use crate::exec::processing_log::ProcessingLog;

/// The first delivery that failed.
#[derive(Debug, Default)]
pub struct Deliveries {
    failure: Mutex<Option<Failure>>,
    /// Where refused records go instead of failing (none: they fail).
    skipped: Option<ProcessingLog>,
}

/// A delivery that failed: why, and whether the broker refused that record itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The error.
    pub reason: String,
    /// The record's topic.
    pub topic: String,
    /// The same record would fail again ([`KafkaError::refuses_the_record`]).
    pub refused: bool,
}

impl Deliveries {
    /// A context that reports records the broker refuses to `log` rather than failing.
    pub fn skipping(log: ProcessingLog) -> Self {
        Self {
            failure: Mutex::default(),
            skipped: Some(log),
        }
    }

    /// The first delivery that failed, if one did.
    pub fn failure(&self) -> Option<Failure> {
        self.failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The broker answered for a record: written, or `failed`.
    fn acknowledged(&self, failed: Option<Failure>) {
        let Some(failure) = failed else {
            return;
        };
        if let (true, Some(log)) = (failure.refused, &self.skipped) {
            log.result_refused(&failure.topic, &failure.reason);
            return;
        }
        self.failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_or_insert(failure);
    }
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        self.acknowledged(result.as_ref().err().map(|(e, message)| {
            Failure {
                reason: e.to_string(),
                topic: message.topic().to_string(),
                refused: e
                    .rdkafka_error_code()
                    .is_some_and(KafkaError::refuses_the_record),
            }
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(reason: &str, refused: bool) -> Option<Failure> {
        Some(Failure {
            reason: reason.into(),
            topic: "t".into(),
            refused,
        })
    }

    #[test]
    fn the_first_failure_is_kept() {
        let d = Deliveries::default();
        assert!(d.failure().is_none());
        d.acknowledged(None);
        assert!(d.failure().is_none());
        d.acknowledged(failure("first", true));
        d.acknowledged(failure("second", false));
        assert_eq!(d.failure().map(|f| f.reason).as_deref(), Some("first"));
    }

    #[test]
    fn a_skipping_context_logs_refused_records_and_fails_on_the_others() {
        let log = ProcessingLog::new("q");
        let d = Deliveries::skipping(log.clone());
        d.acknowledged(failure("too large", true));
        assert!(d.failure().is_none());
        assert_eq!(log.error_count(), 1);
        d.acknowledged(failure("broker gone", false));
        assert_eq!(
            d.failure().map(|f| f.reason).as_deref(),
            Some("broker gone")
        );
    }
}
