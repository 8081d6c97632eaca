//! AST → plan: catalog entries for DDL, operators and a sink for persistent queries.
//!
//! [`ddl`] plans `CREATE STREAM/TABLE`; [`query`] plans `CREATE ... AS SELECT` (with [`from`]
//! for the `FROM` clause, [`join`] for joins and [`repartition`] for re-keying,
//! [`aggregate`] for GROUP BY and windows, [`partition`] for PARTITION BY, [`table_functions`] for EXPLODE, [`fold`] for Eddy's per-key FOLD); [`expr`] lowers expressions to DataFusion (with [`in_list`] for
//! ksqlDB's IN coercion and [`greatest`] for GREATEST/LEAST's overloads), [`rewrite`] rewrites them and [`text`] prints them as ksqlDB's
//! messages do. Nothing here runs a query or talks to Kafka.

pub mod aggregate;
pub mod ddl;
pub mod error;
pub mod expr;
pub mod fold;
pub mod foreign_key;
pub mod from;
pub mod greatest;
pub mod in_list;
pub mod join;
pub mod partition;
pub mod query;
pub mod repartition;
pub mod rewrite;
pub mod table_functions;
pub mod temporal;
pub mod text;

pub use error::PlanError;
