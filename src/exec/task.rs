//! [`Task`]: one input partition's share of a persistent query.
//!
//! A task decodes a batch of records of one of the query's inputs, pushes the batch through
//! that input's operators, the joins (if any) and the query's operators, and encodes the
//! results for the sink. [`PipelineSpec`] is the planned query, shared by all tasks;
//! [`PipelineSpec::new_task`] creates a task with fresh operator state. Drivers (Kafka or
//! in-memory) own the records and decide batching; the task never does I/O.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion_physical_expr::PhysicalExpr;

use super::aggregate::{AggregateOp, AggregateSpec};
use super::filter::FilterOp;
use super::fold::{FoldOp, FoldSpec};
use super::join::{JoinOp, JoinSpec, Side};
use super::output::Output;
use super::processing_log::ProcessingLog;
use super::project::ProjectOp;
use super::regroup::{DropTombstonesOp, RegroupOp, RegroupSpec, RetractionsOp};
use super::unnest::UnnestOp;
use super::{Batch, EntryRef, ExecError, Operator, StateEntry};
use crate::format::decode::SourceDecoder;
use crate::record::Record;

/// The first byte of a join's changelog keys (plus the join's index); operators' keys start
/// with their index, which stays below it.
pub const JOIN_PREFIX: u8 = 0xc0;

/// One planned operator and the schema of its input.
#[derive(Debug, Clone)]
pub enum OperatorSpec {
    /// `WHERE`
    Filter(Arc<dyn PhysicalExpr>),
    /// The select list.
    Project(Vec<(String, Arc<dyn PhysicalExpr>)>),
    /// `GROUP BY`, windows, `HAVING`, emit mode.
    Aggregate(Arc<AggregateSpec>),
    /// `EXPLODE`: arrays to rows.
    Unnest(Vec<(String, Arc<dyn PhysicalExpr>)>),
    /// `FOLD(...) OVER (PARTITION BY ...)`: per-key state, one output row per input row.
    Fold(Arc<FoldSpec>),
    /// A table's changes re-keyed by group, retracting from the old group (a stage).
    Regroup(Arc<RegroupSpec>),
    /// A regrouped topic's retractions (the BOOLEAN column at this index) as tombstones.
    Retractions(usize),
    /// Only a table's upserts go on.
    DropTombstones,
}

impl OperatorSpec {
    /// The operator's name, as `EXPLAIN` prints it.
    pub fn name(&self) -> &'static str {
        match self {
            OperatorSpec::Filter(_) => "Filter",
            OperatorSpec::Project(_) => "Project",
            OperatorSpec::Aggregate(_) => "Aggregate",
            OperatorSpec::Unnest(_) => "Explode",
            OperatorSpec::Fold(_) => "Fold",
            OperatorSpec::Regroup(_) => "Regroup",
            OperatorSpec::Retractions(_) => "Retractions",
            OperatorSpec::DropTombstones => "DropTombstones",
        }
    }

    fn instantiate(&self, input: &SchemaRef) -> Result<Box<dyn Operator>, ExecError> {
        Ok(match self {
            OperatorSpec::Filter(p) => Box::new(FilterOp::try_new(Arc::clone(p), input)?),
            OperatorSpec::Project(exprs) => Box::new(ProjectOp::try_new(exprs.clone(), input)?),
            OperatorSpec::Aggregate(spec) => {
                Box::new(AggregateOp::try_new(Arc::clone(spec), input)?)
            }
            OperatorSpec::Unnest(arrays) => Box::new(UnnestOp::try_new(arrays.clone(), input)?),
            OperatorSpec::Fold(spec) => Box::new(FoldOp::try_new(Arc::clone(spec), input)?),
            OperatorSpec::Regroup(spec) => Box::new(RegroupOp::try_new(Arc::clone(spec), input)?),
            OperatorSpec::Retractions(column) => Box::new(RetractionsOp::new(*column)),
            OperatorSpec::DropTombstones => Box::new(DropTombstonesOp),
        })
    }
}

/// One input of a query: its decoder and the operators between it and the join (or the
/// query's operators, for a query without joins).
#[derive(Debug, Clone)]
pub struct InputSpec {
    /// Decodes the source's records.
    pub decoder: SourceDecoder,
    /// Operators in order, each with the schema of its input.
    pub operators: Vec<(OperatorSpec, SchemaRef)>,
}

/// One join of a query and the operators that prepare its output for the next join.
#[derive(Debug, Clone)]
pub struct JoinStageSpec {
    /// The join.
    pub join: Arc<JoinSpec>,
    /// Operators after the join, before the next join (empty for the last join).
    pub then: Vec<(OperatorSpec, SchemaRef)>,
}

/// A planned persistent query: decode each input, join them left to right, the query's
/// operators, encode.
#[derive(Debug, Clone)]
pub struct PipelineSpec {
    /// The inputs: the `FROM` source, then each `JOIN` source in order.
    pub inputs: Vec<InputSpec>,
    /// Join `i` joins the previous result (or input 0) with input `i + 1`.
    pub joins: Vec<JoinStageSpec>,
    /// Operators in order, each with the schema of its input.
    pub operators: Vec<(OperatorSpec, SchemaRef)>,
    /// Where results go: the sink topic, or a client.
    pub output: Output,
}

fn instantiate(specs: &[(OperatorSpec, SchemaRef)]) -> Result<Vec<Box<dyn Operator>>, ExecError> {
    specs
        .iter()
        .map(|(op, input)| op.instantiate(input))
        .collect()
}

impl PipelineSpec {
    /// Whether some operator keeps state between batches (aggregations, joins).
    pub fn is_stateful(&self) -> bool {
        let aggregates = |ops: &[(OperatorSpec, SchemaRef)]| {
            ops.iter().any(|(op, _)| {
                matches!(
                    op,
                    OperatorSpec::Aggregate(_) | OperatorSpec::Fold(_) | OperatorSpec::Regroup(_)
                )
            })
        };
        !self.joins.is_empty()
            || self.inputs.iter().any(|i| aggregates(&i.operators))
            || aggregates(&self.operators)
    }

    /// The pipeline as text, one step per line: each input's topic and operators, the
    /// joins, the query's operators and where the rows go.
    pub fn describe(&self, topics: &[String], sink: &str) -> String {
        let names = |ops: &[(OperatorSpec, SchemaRef)]| -> String {
            ops.iter()
                .map(|(op, _)| format!(" -> {}", op.name()))
                .collect()
        };
        let mut lines = Vec::new();
        for (i, input) in self.inputs.iter().enumerate() {
            let topic = topics.get(i).map_or("?", String::as_str);
            lines.push(format!("Source {topic}: Decode{}", names(&input.operators)));
        }
        for (i, join) in self.joins.iter().enumerate() {
            lines.push(format!(
                "Join {} with input {}{}",
                i,
                i + 1,
                names(&join.then)
            ));
        }
        let sink = match &self.output {
            Output::Topic { store: Some(_), .. } => format!("Sink {sink} (materialized)"),
            Output::Topic { .. } => format!("Sink {sink}"),
            Output::Rows(_) => "Client".to_string(),
            Output::Store(_) => "Store (materialized)".to_string(),
        };
        lines.push(format!("Query:{} -> {sink}", names(&self.operators)));
        lines.join("\n")
    }

    /// A task whose state is rebuilt from changelog `entries` ([`Task::checkpoint`]'s).
    pub fn restored_task(
        &self,
        log: ProcessingLog,
        entries: &[StateEntry],
    ) -> Result<Task, ExecError> {
        let mut task = self.new_task(log)?;
        task.restore(entries)?;
        Ok(task)
    }

    /// A task with empty state.
    pub fn new_task(&self, log: ProcessingLog) -> Result<Task, ExecError> {
        Ok(Task {
            inputs: self
                .inputs
                .iter()
                .map(|i| Ok((i.decoder.clone(), instantiate(&i.operators)?)))
                .collect::<Result<_, ExecError>>()?,
            joins: self
                .joins
                .iter()
                .map(|j| Ok((JoinOp::new(Arc::clone(&j.join)), instantiate(&j.then)?)))
                .collect::<Result<_, ExecError>>()?,
            operators: instantiate(&self.operators)?,
            output: self.output.clone(),
            log,
            processed: 0,
        })
    }
}

/// Runs a pipeline for one input partition.
pub struct Task {
    inputs: Vec<(SourceDecoder, Vec<Box<dyn Operator>>)>,
    joins: Vec<(JoinOp, Vec<Box<dyn Operator>>)>,
    operators: Vec<Box<dyn Operator>>,
    output: Output,
    log: ProcessingLog,
    processed: u64,
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.operators.iter().map(|o| o.name()).collect();
        f.debug_struct("Task")
            .field("inputs", &self.inputs.len())
            .field("joins", &self.joins.len())
            .field("operators", &names)
            .field("processed", &self.processed)
            .finish()
    }
}

/// Pushes `batches` through `operators` in order.
fn run(
    operators: &mut [Box<dyn Operator>],
    mut batches: Vec<Batch>,
) -> Result<Vec<Batch>, ExecError> {
    for op in operators {
        let mut next = Vec::new();
        for batch in batches {
            op.process(batch, &mut next)?;
        }
        batches = next;
    }
    Ok(batches)
}

impl Task {
    /// Processes records (in order) of input `input` and returns the records to write to
    /// the sink (none when the output goes to a client).
    ///
    /// A panic inside an operator (a library function meeting an input it cannot handle) is
    /// turned into an internal error of this task, so it stops this query, not the server.
    pub fn process(&mut self, input: usize, records: &[Record]) -> Result<Vec<Record>, ExecError> {
        self.guarded(|task| task.process_unguarded(input, records))
    }

    /// [`Self::process`] for `count` records of input `input` that the caller decoded into
    /// `batch` with this input's decoder ([`Self::decoder`]): readers that serve several
    /// tasks from one source decode each record once.
    pub fn process_decoded(
        &mut self,
        input: usize,
        batch: Batch,
        count: usize,
    ) -> Result<Vec<Record>, ExecError> {
        self.guarded(|task| {
            task.processed += count as u64;
            task.log.record_processed(count);
            task.run_decoded(input, batch)
        })
    }

    /// The decoder of input `input`.
    pub fn decoder(&self, input: usize) -> Option<&SourceDecoder> {
        self.inputs.get(input).map(|(decoder, _)| decoder)
    }

    /// Whether nobody takes this task's results any more (a client's query whose client
    /// left or fell too far behind).
    pub fn abandoned(&self) -> bool {
        matches!(&self.output, Output::Rows(sink) if sink.abandoned())
    }

    /// Runs `work`, turning a panic into an internal error and reporting expressions that
    /// failed on some rows.
    fn guarded(
        &mut self,
        work: impl FnOnce(&mut Self) -> Result<Vec<Record>, ExecError>,
    ) -> Result<Vec<Record>, ExecError> {
        super::row_errors::take();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&mut *self)));
        for failure in super::row_errors::take() {
            self.log.expression_failed(&failure);
        }
        result.unwrap_or_else(|panic| {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(ExecError::Internal(format!("an operator panicked: {why}")))
        })
    }

    fn process_unguarded(
        &mut self,
        input: usize,
        records: &[Record],
    ) -> Result<Vec<Record>, ExecError> {
        if let Output::Store(store) = &self.output {
            self.processed += records.len() as u64;
            self.log.record_processed(records.len());
            store.apply(records);
            return Ok(Vec::new());
        }
        let (decoder, _) = self
            .inputs
            .get(input)
            .ok_or_else(|| ExecError::Internal(format!("no input {input}")))?;
        let decoded = decoder.decode(records);
        for (index, error) in &decoded.failures {
            self.log.record_failed(&records[*index], error);
        }
        self.processed += records.len() as u64;
        self.log.record_processed(records.len());
        self.run_decoded(input, decoded.into())
    }

    /// Runs a decoded batch of input `input` through the operators, joins and output.
    fn run_decoded(&mut self, input: usize, batch: Batch) -> Result<Vec<Record>, ExecError> {
        if batch.data.num_rows() == 0 {
            return Ok(Vec::new());
        }
        let (_, operators) = self
            .inputs
            .get_mut(input)
            .ok_or_else(|| ExecError::Internal(format!("no input {input}")))?;
        let mut batches = run(operators, vec![batch])?;
        if !self.joins.is_empty() {
            let (mut stage, mut side) = match input {
                0 => (0, Side::Left),
                n => (n - 1, Side::Right),
            };
            while stage < self.joins.len() {
                let (join, then) = &mut self.joins[stage];
                let mut joined = Vec::new();
                for batch in batches {
                    join.process(side, batch, &mut joined)?;
                }
                batches = run(then, joined)?;
                stage += 1;
                side = Side::Left;
            }
        }
        let batches = run(&mut self.operators, batches)?;
        let mut out = Vec::new();
        match &self.output {
            Output::Topic { encoder, store } => {
                for batch in batches {
                    out.extend(encoder.encode(&batch.data, &batch.tombstone_flags())?);
                }
                if let Some(store) = store {
                    store.apply(&out);
                }
            }
            Output::Rows(sink) => batches.into_iter().for_each(|b| sink.send(b)),
            Output::Store(_) => {}
        }
        Ok(out)
    }

    /// Every operator, in a fixed order (inputs', joins' followers, the query's).
    fn operators_mut(&mut self) -> impl Iterator<Item = &mut Box<dyn Operator>> {
        self.inputs
            .iter_mut()
            .flat_map(|(_, ops)| ops.iter_mut())
            .chain(self.joins.iter_mut().flat_map(|(_, ops)| ops.iter_mut()))
            .chain(self.operators.iter_mut())
    }

    /// The changes to the task's state since the last checkpoint, as changelog entries whose
    /// keys start with the operator's index (a join's: [`JOIN_PREFIX`] plus its index); `None`
    /// if some state cannot be checkpointed (aggregations over tables).
    pub fn checkpoint(&mut self) -> Result<Option<Vec<StateEntry>>, ExecError> {
        let mut entries = Vec::new();
        for (i, op) in self.operators_mut().enumerate() {
            let Some(changes) = op.checkpoint()? else {
                return Ok(None);
            };
            for (key, value) in changes {
                let mut k = vec![i as u8];
                k.extend(key);
                entries.push((k, value));
            }
        }
        for (j, (join, _)) in self.joins.iter_mut().enumerate() {
            for (key, value) in join.checkpoint()? {
                let mut k = vec![JOIN_PREFIX + j as u8];
                k.extend(key);
                entries.push((k, value));
            }
        }
        Ok(Some(entries))
    }

    /// Applies changelog entries written by [`Task::checkpoint`], in order.
    pub fn restore(&mut self, entries: &[StateEntry]) -> Result<(), ExecError> {
        // The operators in operators_mut's order, and the joins beside them.
        let mut operators: Vec<&mut Box<dyn Operator>> = self
            .inputs
            .iter_mut()
            .flat_map(|(_, ops)| ops.iter_mut())
            .collect();
        let mut joins: Vec<&mut JoinOp> = Vec::new();
        for (join, then) in &mut self.joins {
            joins.push(join);
            operators.extend(then.iter_mut());
        }
        operators.extend(self.operators.iter_mut());
        // Each join's entries, restored at once after the loop.
        let mut join_entries: Vec<Vec<EntryRef<'_>>> = vec![Vec::new(); joins.len()];
        for (key, value) in entries {
            let (index, rest) = key
                .split_first()
                .ok_or_else(|| ExecError::Internal("empty changelog key".into()))?;
            if *index >= JOIN_PREFIX {
                join_entries
                    .get_mut((*index - JOIN_PREFIX) as usize)
                    .ok_or_else(|| ExecError::Internal("changelog entry of no join".into()))?
                    .push((rest, value.as_deref()));
                continue;
            }
            let op = operators
                .get_mut(*index as usize)
                .ok_or_else(|| ExecError::Internal("changelog entry of no operator".into()))?;
            op.restore(rest, value.as_deref())?;
        }
        for (join, entries) in joins.iter_mut().zip(join_entries) {
            join.restore_all(&entries)?;
        }
        Ok(())
    }

    /// Records read by this task so far (including those that failed to decode).
    pub fn processed(&self) -> u64 {
        self.processed
    }
}
