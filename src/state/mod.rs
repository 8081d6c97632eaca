//! State of running queries: what operators remember between batches.
//!
//! [`aggregate_store::AggregateStore`] holds one set of DataFusion accumulators per group
//! (per key and window) and knows which windows close first. State is in memory and scoped
//! to one task (one input partition), so a task moves as a unit; it also tracks which groups
//! changed, so a commit writes only those to the changelog (see [`crate::kafka::changelog`]).
//! [`table_store::TableStore`] keeps a table's latest records for pull queries;
//! [`row_codec::RowCodec`] writes rows of values (joins' state) to changelog bytes.

pub mod aggregate_store;
pub mod row_codec;
pub mod table_store;
