//! Deterministic drivers for tests: the engine without a broker.
//!
//! [`memory::MemoryKafka`] is an in-memory set of topics that implements
//! [`crate::engine::Runtime`] and runs persistent queries with the same [`crate::exec::task::Task`]s
//! the Kafka runtime uses, feeding one record per batch so every input yields its outputs at
//! once (ksqlDB's test mode). Like Kafka Streams' TopologyTestDriver, time only moves with
//! record timestamps. [`qtt`] runs ksqlDB's functional test files on it; [`rest`] runs its
//! REST test files through the HTTP API served over it; [`partitions`] checks that their
//! tables' answers do not depend on how topics are partitioned; [`sql_files`] runs tests of `.sql` files
//! (ksql-test-runner's form: input and expected output files beside them).

pub mod memory;
pub mod partitions;
pub mod qtt;
pub mod rest;
pub mod sql_files;
