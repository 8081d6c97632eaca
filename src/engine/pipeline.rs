//! Assembling a planned query for a runtime: topics, decoders, encoders, repartition stages.
//!
//! The sink topic is created with the first input's partition count unless the statement
//! says otherwise. An input that must be re-keyed ([`crate::plan::from::RepartitionPlan`])
//! goes through an internal topic when its topic has more than one partition: a stage query
//! writes the re-keyed rows there (with the partition count and key format of the inputs it
//! must meet, so equal keys share a partition number) and the query reads them back. With one partition every key already meets in one task, so the
//! input is read directly. Inputs Eddy cannot re-keye yet are refused on multi-partition
//! topics rather than joined or grouped wrong.

use std::sync::Arc;

use super::{PersistentQuery, Runtime};
use crate::catalog::Source;
use crate::error::Error;
use crate::exec::output::{Output, RowSink};
use crate::exec::processing_log::ProcessingLog;
use crate::exec::task::{InputSpec, PipelineSpec};
use crate::format::Format;
use crate::format::decode::SourceDecoder;
use crate::format::encode::SinkEncoder;
use crate::format::registry::SchemaRegistry;
use crate::plan::PlanError;
use crate::plan::from::{InputPlan, RepartitionPlan};
use crate::plan::query::QueryPlan;
use crate::sql::ast::SourceKind;
use crate::state::table_store::TableStore;

/// A query ready to start: its pipeline, the topics it reads, and its repartition stages
/// (to start first).
#[derive(Debug)]
pub struct Assembled {
    /// The query's own pipeline.
    pub pipeline: PipelineSpec,
    /// The topics its inputs read (repartition topics where re-keyed).
    pub source_topics: Vec<String>,
    /// Stage queries writing the repartition topics.
    pub stages: Vec<PersistentQuery>,
    /// A table sink's materialized state, for pull queries.
    pub store: Option<Arc<TableStore>>,
}

/// Creates the sink and repartition topics and assembles query `id`'s pipeline. Its rows
/// go to `rows` for a transient query, else to the sink topic (a table's also to a store).
pub async fn assemble<R: Runtime>(
    runtime: &R,
    registry: &Arc<SchemaRegistry>,
    (id, text): (&str, &str),
    plan: &QueryPlan,
    rows: Option<RowSink>,
) -> Result<Assembled, Error> {
    let partitions = input_partitions(runtime, plan).await?;
    let first = partitions.first().copied().unwrap_or(1);
    let rekeyed = |i: usize| plan.inputs[i].needs_repartition && partitions[i] > 1;
    let meet = meeting(plan, &partitions, &rekeyed)?;
    let (output, store) = match rows {
        Some(rows) => (Output::Rows(rows), None),
        None => {
            let store =
                (plan.sink.kind == SourceKind::Table).then(|| Arc::new(TableStore::default()));
            let encoder = sink_encoder(runtime, registry, plan, first).await?;
            let output = Output::Topic {
                encoder: Box::new(encoder),
                store: store.clone(),
            };
            (output, store)
        }
    };
    let mut assembled = Assembled {
        pipeline: PipelineSpec {
            inputs: Vec::new(),
            joins: plan.joins.clone(),
            operators: plan.operators.clone(),
            output,
        },
        source_topics: Vec::new(),
        stages: Vec::new(),
        store,
    };
    for (i, input) in plan.inputs.iter().enumerate() {
        let (spec, topic) = match (&input.repartition, rekeyed(i)) {
            (_, false) => (
                InputSpec {
                    decoder: SourceDecoder::try_new(&input.source, registry)?
                        .keeping_null_values(input.keep_null_values),
                    operators: input.operators.clone(),
                },
                input.source.topic.clone(),
            ),
            (Some(repartition), true) => {
                let (spec, stage) =
                    repartition_stage(runtime, registry, (id, text), (input, repartition), meet)
                        .await?;
                let topic = stage.sink_topic.clone();
                assembled.stages.push(stage);
                (spec, topic)
            }
            (None, true) => {
                return Err(PlanError::Unsupported(format!(
                    "re-keying `{}` (a table, or the result of a join) through a repartition topic; its topic has {} partitions",
                    input.source.name, partitions[i]
                ))
                .into());
            }
        };
        assembled.pipeline.inputs.push(spec);
        assembled.source_topics.push(topic);
    }
    Ok(assembled)
}

/// The partition count of each input's topic.
async fn input_partitions<R: Runtime>(runtime: &R, plan: &QueryPlan) -> Result<Vec<i32>, Error> {
    let mut partitions = Vec::new();
    for input in &plan.inputs {
        let topic = &input.source.topic;
        partitions.push(
            runtime
                .topic_partitions(topic)
                .await?
                .ok_or_else(|| PlanError::Invalid(format!("Topic '{topic}' does not exist.")))?,
        );
    }
    Ok(partitions)
}

/// The partition count and key format a repartition topic takes: those of the inputs it must
/// meet, so that equal keys land in the same partition number.
fn meeting(
    plan: &QueryPlan,
    partitions: &[i32],
    rekeyed: &dyn Fn(usize) -> bool,
) -> Result<(i32, Format), Error> {
    let met = (0..plan.inputs.len()).find(|i| !rekeyed(*i));
    let format = met.map_or(Format::Json, |i| plan.inputs[i].source.key_format);
    if (0..plan.inputs.len()).any(rekeyed) && !matches!(format, Format::Kafka | Format::Json) {
        // Equal keys must serialize to equal bytes to share a partition number.
        return Err(PlanError::Unsupported(format!(
            "re-keying an input to meet {format} keys (repartition topics use KAFKA or JSON keys)"
        ))
        .into());
    }
    Ok((
        met.map_or(partitions.first().copied().unwrap_or(1), |i| partitions[i]),
        format,
    ))
}

/// The sink's encoder, creating the sink topic if it does not exist.
async fn sink_encoder<R: Runtime>(
    runtime: &R,
    registry: &SchemaRegistry,
    plan: &QueryPlan,
    first: i32,
) -> Result<SinkEncoder, Error> {
    let partitions = match runtime.topic_partitions(&plan.sink.topic).await? {
        Some(existing) => existing,
        None => {
            let p = plan.partitions.unwrap_or(first);
            runtime.create_topic(&plan.sink.topic, p).await?;
            p
        }
    };
    Ok(SinkEncoder::try_new(
        &plan.sink.topic,
        partitions,
        (plan.sink.key_format, plan.sink.value_format),
        &plan.output_schema,
        (&plan.key_names, plan.sink.wrap_single_value),
        plan.sink.window,
        registry,
    )?)
}

/// The stage that re-keys `input` into its repartition topic, and how the query reads it.
async fn repartition_stage<R: Runtime>(
    runtime: &R,
    registry: &Arc<SchemaRegistry>,
    (id, text): (&str, &str),
    (input, repartition): (&InputPlan, &RepartitionPlan),
    (partitions, key_format): (i32, Format),
) -> Result<(InputSpec, PersistentQuery), Error> {
    let key_format = if repartition.keys == 1 {
        key_format
    } else {
        Format::Json
    };
    let stage_id = format!("{id}-{}", repartition.name);
    let topic = runtime.internal_topic(id, &format!("{}-repartition", repartition.name));
    if runtime.topic_partitions(&topic).await?.is_none() {
        runtime.create_topic(&topic, partitions).await?;
    }
    let internal = Source {
        written_by: Some(stage_id.clone()),
        ..Source::stream(&topic, (key_format, Format::Json), repartition.schema())
    };
    let keys: Vec<String> = internal.schema.keys().map(|c| c.name.clone()).collect();
    let stage = PersistentQuery {
        id: stage_id.clone(),
        statement: text.to_string(),
        source_topics: vec![input.source.topic.clone()],
        sink_topic: topic.clone(),
        log: ProcessingLog::new(&stage_id),
        commits: true,
        from_beginning: true,
        // The repartition topic is the next stage's input, so its records are state: they
        // are written in the stage's transactions whatever the query's guarantee.
        settings: super::QuerySettings {
            guarantee: Some(super::Guarantee::ExactlyOnce),
            ..super::QuerySettings::default()
        },
        status: super::QueryStatus::default(),
        pipeline: PipelineSpec {
            inputs: vec![InputSpec {
                decoder: SourceDecoder::try_new(&input.source, registry)?,
                operators: repartition.operators.clone(),
            }],
            joins: Vec::new(),
            operators: Vec::new(),
            output: Output::Topic {
                encoder: Box::new(SinkEncoder::try_new(
                    &topic,
                    partitions,
                    (key_format, Format::Json),
                    &repartition.output,
                    (&keys, true),
                    None,
                    registry,
                )?),
                store: None,
            },
        },
    };
    let spec = InputSpec {
        decoder: SourceDecoder::try_new(&internal, registry)?,
        operators: repartition.restore.clone(),
    };
    Ok((spec, stage))
}
