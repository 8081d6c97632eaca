//! Foreign-key table-table joins over several partitions, as Kafka Streams runs them
//! (KIP-213): a left row's foreign key lives on any partition of the right table, so the join
//! is three steps, each on the task that owns what it needs.
//!
//! 1. **Subscription** (a stage over the left table, by left key): each left row registers
//!    (its own key, its version = its offset, its partition) under its foreign key in the
//!    `-SUBSCRIPTION-REGISTRATION-topic`, keyed by the foreign key as the right table's topic is; when
//!    the foreign key changes or the row is deleted, the old foreign key's task gets a
//!    retraction ([`crate::exec::regroup`]).
//! 2. **Response** (a stage over the subscriptions and the right table, by right key): a
//!    foreign-key join of subscriptions to right rows ([`crate::exec::join`]); every
//!    subscription, and every change of a right row, answers each subscribed left key with the
//!    right row (or none) in the `-SUBSCRIPTION-RESPONSE-topic`, written to the left row's
//!    partition.
//! 3. **Join** (the query, by left key): left rows against responses
//!    ([`crate::exec::join::JoinType::ForeignKeyResponse`]); an answer to an older version of
//!    the row is dropped (KIP-213's hash check, with the offset as an exact version), so the
//!    last answer always wins however the two stages interleave.
//!
//! The planner prepares every step from the one-partition plan; the engine uses them when a
//! table's topic has more than one partition.

use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use datafusion_physical_expr::PhysicalExpr;
use datafusion_physical_expr::expressions::{Column, lit};

use super::error::PlanError;
use super::from::RepartitionPlan;
use super::join::{joined_schema, schema_of};
use crate::catalog::schema::ROWTIME;
use crate::exec::join::{JoinSpec, JoinType, ResponseColumns};
use crate::exec::regroup::RegroupSpec;
use crate::exec::task::OperatorSpec;
use crate::sql::ast::JoinKind;

type Result<T> = std::result::Result<T, PlanError>;

/// The foreign key, the key of the subscription topic.
const FK: &str = "$FK";
/// The left row's version (its offset in the left table's topic).
const VERSION: &str = "$VERSION";
/// The left row's partition, where its response goes.
const PARTITION: &str = "$PARTITION";
/// Marks a subscription's retraction.
const RETRACT: &str = "$RETRACT";

/// The steps of a foreign-key join over several partitions.
#[derive(Debug, Clone)]
pub struct ForeignKeyPlan {
    /// The subscription stage: over the left table's batches, into the subscription topic
    /// (`operators`, `output`, keyed by the foreign key); `restore` reads it back as a
    /// table of subscriptions in the side layout.
    pub subscriptions: RepartitionPlan,
    /// The response stage's join of subscriptions (left) with the right table's rows.
    pub respond: Arc<JoinSpec>,
    /// The response topic: `operators` turn the response join's rows into it (keyed by the
    /// left key), `restore` reads it back as the query's right side.
    pub responses: RepartitionPlan,
    /// Column of `responses.output` naming the partition each response goes to.
    pub response_partition: usize,
    /// The query's join of left rows with responses.
    pub join: Arc<JoinSpec>,
}

fn column(schema: &Schema, name: &str) -> Result<Arc<dyn PhysicalExpr>> {
    Ok(Arc::new(Column::new(name, schema.index_of(name)?)))
}

/// Names of the payload columns of a side layout (`[key, payload..., ROWTIME]`).
fn payload(side: &Schema) -> Vec<String> {
    let n = side.fields().len();
    side.fields()[1..n - 1]
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

/// Plans the steps of `join` (a foreign-key join planned for one task): `left_ops` are its
/// left input's operators (ending in the side layout), `version` and `partition` the left
/// payload's offset and partition columns, `found` a right payload column that is never NULL
/// in a right row (its key).
pub fn plan(
    join: &JoinSpec,
    left_ops: &[(OperatorSpec, SchemaRef)],
    (version, partition, found): (&str, &str, &str),
) -> Result<ForeignKeyPlan> {
    let left_payload = payload(&join.left);
    let own: Vec<String> = (join.left_key_columns.iter())
        .map(|i| left_payload[*i].clone())
        .collect();
    let own_names: Vec<String> = (0..own.len()).map(|i| format!("$LK{i}")).collect();
    let subscriptions = subscriptions(join, left_ops, (&own, &own_names), (version, partition))?;
    let subscribed = schema_of_restore(&subscriptions)?;
    // The response join: always LEFT, so that "no right row" is answered too.
    let respond_output = joined_schema(subscribed.field(0).name(), &subscribed, &join.right);
    let respond = JoinSpec {
        kind: JoinKind::Left,
        join_type: JoinType::ForeignKey,
        left: Arc::clone(&subscribed),
        right: Arc::clone(&join.right),
        output: Arc::clone(&respond_output),
        left_key_columns: (0..own.len()).collect(),
        response: None,
    };
    let right_payload = payload(&join.right);
    let responses = responses(&respond_output, &right_payload, &own_names)?;
    let width = right_payload.len();
    let columns = ResponseColumns {
        own: (width..width + own.len()).collect(),
        version: width + own.len(),
        left_version: index_in(&left_payload, version)?,
        found: index_in(&right_payload, found)?,
    };
    Ok(ForeignKeyPlan {
        response_partition: responses.output.index_of(PARTITION)?,
        join: Arc::new(JoinSpec {
            join_type: JoinType::ForeignKeyResponse,
            right: schema_of_restore(&responses)?,
            response: Some(columns),
            left: Arc::clone(&join.left),
            output: Arc::clone(&join.output),
            left_key_columns: join.left_key_columns.clone(),
            kind: join.kind,
        }),
        subscriptions,
        respond: Arc::new(respond),
        responses,
    })
}

/// Step 1: the left rows as subscriptions `[$FK, $LK.., $VERSION, $PARTITION, $RETRACT,
/// ROWTIME]`, regrouped by foreign key; read back as `[$FK, $LK.., $VERSION, $PARTITION,
/// ROWTIME]` (the response join's left side), retractions as tombstones.
fn subscriptions(
    join: &JoinSpec,
    left_ops: &[(OperatorSpec, SchemaRef)],
    (own, own_names): (&[String], &[String]),
    (version, partition): (&str, &str),
) -> Result<RepartitionPlan> {
    let left = &join.left;
    let mut exprs = vec![(FK.to_string(), column(left, left.field(0).name())?)];
    for (name, from) in own_names.iter().zip(own) {
        exprs.push((name.clone(), column(left, from)?));
    }
    exprs.push((VERSION.to_string(), column(left, version)?));
    exprs.push((PARTITION.to_string(), column(left, partition)?));
    exprs.push((RETRACT.to_string(), lit(false)));
    exprs.push((ROWTIME.to_string(), column(left, ROWTIME)?));
    let subscription = schema_of(&exprs, left)?;
    let regroup = RegroupSpec {
        keys: 1,
        source_keys: (1..=own.len()).collect(),
        retract: subscription.index_of(RETRACT)?,
    };
    let mut subscribe = left_ops.to_vec();
    subscribe.push((OperatorSpec::Project(exprs), Arc::clone(left)));
    subscribe.push((
        OperatorSpec::Regroup(Arc::new(regroup)),
        Arc::clone(&subscription),
    ));
    let mut side = RepartitionPlan::identity(&subscription);
    side.retain(|(name, _)| name != RETRACT);
    let mut plan = RepartitionPlan::new("subscriptions", (subscribe, subscription), 1, &side)?;
    plan.read_retractions(RETRACT)?;
    Ok(plan)
}

/// Step 2's output: the response join's upserts as responses `[$LK.. (key), $VERSION,
/// $PARTITION, $FK, right payload.., ROWTIME]`, read back as the query's right side `[$FK,
/// right payload.., $LK.., $VERSION, ROWTIME]`.
fn responses(
    respond_output: &SchemaRef,
    right_payload: &[String],
    own_names: &[String],
) -> Result<RepartitionPlan> {
    let mut exprs = Vec::new();
    for name in own_names
        .iter()
        .cloned()
        .chain([VERSION, PARTITION].map(String::from))
    {
        exprs.push((name.clone(), column(respond_output, &name)?));
    }
    exprs.push((
        FK.to_string(),
        column(respond_output, respond_output.field(0).name())?,
    ));
    for name in right_payload {
        exprs.push((name.clone(), column(respond_output, name)?));
    }
    exprs.push((ROWTIME.to_string(), column(respond_output, ROWTIME)?));
    let response = schema_of(&exprs, respond_output)?;
    let answer = vec![
        (OperatorSpec::DropTombstones, Arc::clone(respond_output)),
        (OperatorSpec::Project(exprs), Arc::clone(respond_output)),
    ];
    let same = |n: &str| (n.to_string(), n.to_string());
    let mut side = vec![same(FK)];
    side.extend(right_payload.iter().map(|n| same(n)));
    side.extend(own_names.iter().map(|n| same(n)));
    side.extend([same(VERSION), same(ROWTIME)]);
    RepartitionPlan::new("responses", (answer, response), own_names.len(), &side)
}

fn index_in(names: &[String], name: &str) -> Result<usize> {
    names
        .iter()
        .position(|n| n == name)
        .ok_or_else(|| PlanError::Invalid(format!("foreign-key join: no column {name}")))
}

/// The schema a repartition plan's restore step produces.
fn schema_of_restore(plan: &RepartitionPlan) -> Result<SchemaRef> {
    match plan.restore.last() {
        Some((OperatorSpec::Project(exprs), input)) => schema_of(exprs, input),
        _ => Err(PlanError::Invalid(
            "foreign-key join: no restore step".into(),
        )),
    }
}
