//! State of running queries: what operators remember between batches.
//!
//! [`aggregate_store::AggregateStore`] holds one set of DataFusion accumulators per group
//! (per key and window) and knows which windows close first. State is in memory and scoped
//! to one task (one input partition), so a task moves as a unit. Changelog topics and
//! restore after a restart are not implemented yet: a restarted query rebuilds its state by
//! re-reading its input from the earliest offset.

pub mod aggregate_store;
pub mod table_store;
