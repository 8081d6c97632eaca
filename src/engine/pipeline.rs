//! Assembling a planned query for a runtime: topics, decoders, encoders, repartition stages.
//!
//! The sink topic is created with the first input's partition count unless the statement
//! says otherwise. An input that must be re-keyed ([`crate::plan::from::RepartitionPlan`])
//! goes through an internal topic when its topic has more than one partition: a stage query
//! writes the re-keyed rows there (with the partition count and key format of the inputs it
//! must meet, so equal keys share a partition number) and the query reads them back. With one partition every key already meets in one task, so the
//! input is read directly. A foreign-key join over several partitions runs as three steps
//! ([`crate::plan::foreign_key`]): two stages and the query. Inputs Eddy cannot re-key yet are
//! refused on multi-partition topics rather than joined or grouped wrong.

use std::sync::Arc;

use super::{PersistentQuery, Runtime};
use crate::catalog::Source;
use crate::error::Error;
use crate::exec::join::JoinType;
use crate::exec::output::{Output, RowSink};
use crate::exec::processing_log::ProcessingLog;
use crate::exec::task::{InputSpec, JoinStageSpec, PipelineSpec};
use crate::format::Format;
use crate::format::decode::SourceDecoder;
use crate::format::encode::SinkEncoder;
use crate::format::registry::SchemaRegistry;
use crate::plan::PlanError;
use crate::plan::foreign_key::ForeignKeyPlan;
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
    // With one partition everywhere every key meets in the one task; otherwise an input
    // joined or grouped on another key goes through a repartition topic.
    let many = partitions.iter().any(|p| *p > 1);
    let rekeyed = |i: usize| plan.inputs[i].needs_repartition && many;
    let meet = meeting(plan, &partitions, &rekeyed)?;
    check_copartitioned(plan, &partitions, &rekeyed)?;
    let (output, store) = output(runtime, registry, plan, (rows, first)).await?;
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
            (None, true) => return Err(not_rekeyable(plan, &partitions)),
        };
        assembled.pipeline.inputs.push(spec);
        assembled.source_topics.push(topic);
    }
    let id = (id, text);
    across_partitions(runtime, registry, id, plan, (&partitions, &mut assembled)).await?;
    Ok(assembled)
}

/// The steps that make rows meet across partitions after the inputs are read: a
/// foreign-key join's stages, and the stage re-keying the joins' results for GROUP BY.
async fn across_partitions<R: Runtime>(
    runtime: &R,
    registry: &Arc<SchemaRegistry>,
    (id, text): (&str, &str),
    plan: &QueryPlan,
    (partitions, assembled): (&[i32], &mut Assembled),
) -> Result<(), Error> {
    let many = partitions.iter().any(|p| *p > 1);
    let foreign_key = (plan.joins.iter()).any(|j| j.join.join_type == JoinType::ForeignKey);
    if foreign_key && many {
        let Some(fk) = &plan.foreign_key else {
            return Err(PlanError::Unsupported(format!(
                "a foreign-key join within an n-way join over topics with several partitions ({})",
                assembled.source_topics.join(", ")
            ))
            .into());
        };
        let (id, plan) = ((id, text), (plan, fk));
        foreign_key_stages(runtime, registry, id, plan, (partitions, assembled)).await?;
    }
    if let Some((j, repartition)) = plan.rekeyed_join.as_ref().filter(|_| many) {
        let meet = &plan.inputs[j + 1].source;
        if !matches!(meet.key_format, Format::Kafka | Format::Json) {
            return Err(PlanError::Unsupported(format!(
                "re-keying a join's result to meet `{}`'s {} keys (repartition topics use KAFKA or JSON keys)",
                meet.name, meet.key_format
            ))
            .into());
        }
        let at = (*j, partitions[j + 1], meet.key_format);
        split_joins(runtime, registry, (id, text), (repartition, at), assembled).await?;
    }
    if let Some(repartition) = plan.joined_repartition.as_ref().filter(|_| many) {
        let rekeyed = (repartition, partitions.iter().copied().max().unwrap_or(1));
        rekey_joined(runtime, registry, (id, text), rekeyed, assembled).await?;
    }
    Ok(())
}

/// Moves the inputs and joins before join `j` into a stage that re-keys their (stream)
/// result by join `j`'s left expression into a topic of `partitions` and `key_format`, those
/// of join `j`'s right input; the query reads that topic as join `j`'s left side.
async fn split_joins<R: Runtime>(
    runtime: &R,
    registry: &Arc<SchemaRegistry>,
    (id, text): (&str, &str),
    (repartition, (j, partitions, key_format)): (&RepartitionPlan, (usize, i32, Format)),
    assembled: &mut Assembled,
) -> Result<(), Error> {
    let at = (partitions, key_format);
    let (stage_id, topic, encoder, read) =
        repartition_topic(runtime, registry, id, repartition, at).await?;
    let rest_inputs = assembled.pipeline.inputs.split_off(j + 1);
    let rest_joins = assembled.pipeline.joins.split_off(j);
    let rest_topics = assembled.source_topics.split_off(j + 1);
    let pipeline = PipelineSpec {
        inputs: std::mem::replace(&mut assembled.pipeline.inputs, vec![read]),
        joins: std::mem::replace(&mut assembled.pipeline.joins, rest_joins),
        operators: Vec::new(),
        output: to_topic(encoder),
    };
    let sources = std::mem::replace(&mut assembled.source_topics, vec![topic.clone()]);
    assembled.pipeline.inputs.extend(rest_inputs);
    assembled.source_topics.extend(rest_topics);
    assembled
        .stages
        .push(stage_query((&stage_id, text), sources, &topic, pipeline));
    Ok(())
}

/// Moves the joins into a stage that re-keys their results (GROUP BY another key) into
/// `repartition`'s topic, of `partitions` partitions; the query reads that topic alone.
async fn rekey_joined<R: Runtime>(
    runtime: &R,
    registry: &Arc<SchemaRegistry>,
    (id, text): (&str, &str),
    (repartition, partitions): (&RepartitionPlan, i32),
    assembled: &mut Assembled,
) -> Result<(), Error> {
    let at = (partitions, Format::Json);
    let (stage_id, topic, encoder, read) =
        repartition_topic(runtime, registry, id, repartition, at).await?;
    let pipeline = PipelineSpec {
        inputs: std::mem::take(&mut assembled.pipeline.inputs),
        joins: std::mem::take(&mut assembled.pipeline.joins),
        operators: repartition.operators.clone(),
        output: to_topic(encoder),
    };
    let sources = std::mem::take(&mut assembled.source_topics);
    assembled
        .stages
        .push(stage_query((&stage_id, text), sources, &topic, pipeline));
    assembled.pipeline.inputs = vec![read];
    assembled.source_topics = vec![topic];
    Ok(())
}

/// Inputs joined on their keys must have as many partitions (ksqlDB's rule), else partition
/// `p`'s task would miss the rows of the other side's other partitions. A foreign-key join
/// meets through its own topics, whatever the counts.
fn check_copartitioned(
    plan: &QueryPlan,
    partitions: &[i32],
    rekeyed: &dyn Fn(usize) -> bool,
) -> Result<(), Error> {
    if (plan.joins.iter()).any(|j| j.join.join_type == JoinType::ForeignKey) {
        return Ok(());
    }
    let direct: Vec<usize> = (0..plan.inputs.len()).filter(|i| !rekeyed(*i)).collect();
    let many = partitions.iter().any(|p| *p > 1);
    // A registered schema's id is part of the key bytes, and each topic's key subject has
    // ids of its own: equal keys of two such topics land on different partitions.
    let framed = (direct.iter()).find(|i| plan.inputs[**i].source.key_format.uses_registry());
    if let Some(i) = framed.filter(|_| direct.len() > 1 && many) {
        let source = &plan.inputs[*i].source;
        return Err(PlanError::Unsupported(format!(
            "joining `{}`, whose {} keys carry a schema id, on its key over topics with several partitions (equal keys of the two topics do not share a partition)",
            source.name, source.key_format
        ))
        .into());
    }
    // Equal keys in different formats are different bytes, on different partitions.
    let format = |i: usize| plan.inputs[i].source.key_format;
    let mismatch = (direct.windows(2)).find(|w| format(w[0]) != format(w[1]));
    if let Some(w) = mismatch.filter(|_| many) {
        let (l, r) = (&plan.inputs[w[0]].source, &plan.inputs[w[1]].source);
        return Err(PlanError::Unsupported(format!(
            "joining `{}` ({} keys) with `{}` ({} keys) on their keys over topics with several partitions (equal keys in different formats do not share a partition)",
            l.name, l.key_format, r.name, r.key_format
        ))
        .into());
    }
    let Some(pair) = direct
        .windows(2)
        .find(|w| partitions[w[0]] != partitions[w[1]])
    else {
        return Ok(());
    };
    let (l, r) = (
        &plan.inputs[pair[0]].source.name,
        &plan.inputs[pair[1]].source.name,
    );
    Err(PlanError::Invalid(format!(
        "Can't join `{l}` with `{r}` since the number of partitions don't match. `{l}` partitions = {}; `{r}` partitions = {}. Please repartition either one so that the number of partitions match.",
        partitions[pair[0]], partitions[pair[1]]
    ))
    .into())
}

/// Where a query's rows go: to `rows` (a client), else to the sink topic (a table's also
/// to a store for pull queries).
async fn output<R: Runtime>(
    runtime: &R,
    registry: &SchemaRegistry,
    plan: &QueryPlan,
    (rows, first): (Option<RowSink>, i32),
) -> Result<(Output, Option<Arc<TableStore>>), Error> {
    Ok(match rows {
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
    })
}

/// The refusal of a re-keying Eddy cannot do yet: the result of a join grouped, or joined
/// again, on another key.
fn not_rekeyable(plan: &QueryPlan, partitions: &[i32]) -> Error {
    let names: Vec<String> = (plan.inputs.iter())
        .zip(partitions)
        .map(|(i, p)| format!("`{}` ({p} partitions)", i.source.name))
        .collect();
    PlanError::Unsupported(format!(
        "re-keying the result of the join of {} (by GROUP BY, or by a later JOIN on another key) through a repartition topic",
        names.join(", ")
    ))
    .into()
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
        (registry, &plan.sink.schemas),
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
    let at = (partitions, key_format);
    let (stage_id, topic, encoder, spec) =
        repartition_topic(runtime, registry, id, repartition, at).await?;
    let pipeline = PipelineSpec {
        inputs: vec![InputSpec {
            decoder: SourceDecoder::try_new(&input.source, registry)?,
            operators: repartition.operators.clone(),
        }],
        joins: Vec::new(),
        operators: Vec::new(),
        output: to_topic(encoder),
    };
    let stage = stage_query(
        (&stage_id, text),
        vec![input.source.topic.clone()],
        &topic,
        pipeline,
    );
    Ok((spec, stage))
}

/// `repartition`'s stage of query `id` and its `<name>-repartition` topic, of `partitions`
/// and `key_format`: the stage's id, the topic, the stage's encoder and how the next step
/// reads the topic.
async fn repartition_topic<R: Runtime>(
    runtime: &R,
    registry: &Arc<SchemaRegistry>,
    id: &str,
    repartition: &RepartitionPlan,
    (partitions, key_format): (i32, Format),
) -> Result<(String, String, SinkEncoder, InputSpec), Error> {
    let stage_id = format!("{id}-{}", repartition.name);
    let topic = runtime.internal_topic(id, &format!("{}-repartition", repartition.name));
    let at = (topic.as_str(), partitions, key_format);
    let (encoder, read) = internal_topic(runtime, registry, at, (repartition, &stage_id)).await?;
    Ok((stage_id, topic, encoder, read))
}

/// Creates internal topic `topic` (unless it exists) for `plan`'s stage `stage_id`: the
/// encoder its stage writes with and how the next step reads it.
async fn internal_topic<R: Runtime>(
    runtime: &R,
    registry: &Arc<SchemaRegistry>,
    (topic, partitions, key_format): (&str, i32, Format),
    (plan, stage_id): (&RepartitionPlan, &str),
) -> Result<(SinkEncoder, InputSpec), Error> {
    if runtime.topic_partitions(topic).await?.is_none() {
        runtime.create_topic(topic, partitions).await?;
    }
    let internal = Source {
        written_by: Some(stage_id.to_string()),
        ..Source::stream(topic, (key_format, Format::Json), plan.schema())
    };
    let keys: Vec<String> = internal.schema.keys().map(|c| c.name.clone()).collect();
    let encoder = SinkEncoder::try_new(
        topic,
        partitions,
        (key_format, Format::Json),
        &plan.output,
        (&keys, true),
        None,
        (registry, &crate::catalog::SchemaChoice::default()),
    )?;
    let spec = InputSpec {
        decoder: SourceDecoder::try_new(&internal, registry)?,
        operators: plan.restore.clone(),
    };
    Ok((encoder, spec))
}

/// A stage's output: its internal topic.
fn to_topic(encoder: SinkEncoder) -> Output {
    Output::Topic {
        encoder: Box::new(encoder),
        store: None,
    }
}

/// A stage of query `text`: a persistent query of its own reading `sources` into `sink`.
fn stage_query(
    (stage_id, text): (&str, &str),
    sources: Vec<String>,
    sink: &str,
    pipeline: PipelineSpec,
) -> PersistentQuery {
    PersistentQuery {
        id: stage_id.to_string(),
        statement: text.to_string(),
        source_topics: sources,
        sink_topic: sink.to_string(),
        log: ProcessingLog::new(stage_id),
        commits: true,
        from_beginning: true,
        // An internal topic is the next step's input, so its records are state: they are
        // written in the stage's transactions whatever the query's guarantee.
        settings: super::QuerySettings {
            guarantee: Some(super::Guarantee::ExactlyOnce),
            ..super::QuerySettings::default()
        },
        status: super::QueryStatus::default(),
        pipeline,
    }
}

/// Replaces a foreign-key join over several partitions by its three steps
/// ([`crate::plan::foreign_key`]): the subscription and response stages start first, and the
/// query joins its left table with the responses instead of the right table.
async fn foreign_key_stages<R: Runtime>(
    runtime: &R,
    registry: &Arc<SchemaRegistry>,
    (id, text): (&str, &str),
    (plan, fk): (&QueryPlan, &ForeignKeyPlan),
    (partitions, assembled): (&[i32], &mut Assembled),
) -> Result<(), Error> {
    let right = &plan.inputs[1].source;
    let (stage, read_subscriptions) =
        subscription_stage(runtime, registry, (id, text), (plan, fk), partitions[1]).await?;
    let subscriptions = stage.sink_topic.clone();
    assembled.stages.push(stage);
    let responses = runtime.internal_topic(id, "FK-JOIN-SUBSCRIPTION-RESPONSE-topic");
    let stage_id = format!("{id}-responses");
    let (encoder, read_responses) = internal_topic(
        runtime,
        registry,
        (&responses, partitions[0], Format::Json),
        (&fk.responses, &stage_id),
    )
    .await?;
    let pipeline = PipelineSpec {
        inputs: vec![read_subscriptions, assembled.pipeline.inputs[1].clone()],
        joins: vec![JoinStageSpec {
            join: Arc::clone(&fk.respond),
            then: Vec::new(),
        }],
        operators: fk.responses.operators.clone(),
        output: to_topic(encoder.partitioned_by(fk.response_partition)),
    };
    let sources = vec![subscriptions, right.topic.clone()];
    let stage = stage_query((&stage_id, text), sources, &responses, pipeline);
    assembled.stages.push(stage);
    assembled.pipeline.inputs[1] = read_responses;
    assembled.source_topics[1] = responses;
    assembled.pipeline.joins[0].join = Arc::clone(&fk.join);
    Ok(())
}

/// The subscription stage of a foreign-key join (step 1), writing to a topic of the right
/// table's `right_partitions`, and how the response stage reads it.
async fn subscription_stage<R: Runtime>(
    runtime: &R,
    registry: &Arc<SchemaRegistry>,
    (id, text): (&str, &str),
    (plan, fk): (&QueryPlan, &ForeignKeyPlan),
    right_partitions: i32,
) -> Result<(PersistentQuery, InputSpec), Error> {
    let (left, right) = (&plan.inputs[0].source, &plan.inputs[1].source);
    // Subscriptions meet the right table's rows when their key bytes are the same: written
    // in its key format, or (a registered schema's format) placed as its key would be.
    let plain = matches!(right.key_format, Format::Kafka | Format::Json);
    let subscriptions = runtime.internal_topic(id, "FK-JOIN-SUBSCRIPTION-REGISTRATION-topic");
    let stage_id = format!("{id}-subscriptions");
    let key_format = if plain {
        right.key_format
    } else {
        Format::Json
    };
    let (mut encoder, read_subscriptions) = internal_topic(
        runtime,
        registry,
        (&subscriptions, right_partitions, key_format),
        (&fk.subscriptions, &stage_id),
    )
    .await?;
    if !plain {
        // The foreign key as the right table's key column, so a registered key schema (its
        // message's field, say) encodes it as the right table's records do.
        let right_key = right.schema.keys().next().map(|c| c.name.clone());
        let mut fields: Vec<arrow::datatypes::FieldRef> =
            fk.subscriptions.output.fields().iter().cloned().collect();
        if let (Some(name), Some(first)) = (&right_key, fields.first_mut()) {
            *first = Arc::new(first.as_ref().clone().with_name(name));
        }
        let as_right = arrow::datatypes::Schema::new(fields);
        let keys = [as_right.field(0).name().clone()];
        encoder = encoder.partitioned_like(SinkEncoder::try_new(
            &right.topic,
            right_partitions,
            (right.key_format, Format::Json),
            &as_right,
            (&keys, true),
            None,
            (registry, &right.schemas),
        )?);
    }
    let pipeline = PipelineSpec {
        inputs: vec![InputSpec {
            decoder: SourceDecoder::try_new(left, registry)?,
            operators: fk.subscriptions.operators.clone(),
        }],
        joins: Vec::new(),
        operators: Vec::new(),
        output: to_topic(encoder),
    };
    let sources = vec![left.topic.clone()];
    let stage = stage_query((&stage_id, text), sources, &subscriptions, pipeline);
    Ok((stage, read_subscriptions))
}
