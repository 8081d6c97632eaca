//! Planning joins: `FROM a [alias] JOIN b [alias] [WITHIN ...] ON a.x = b.y [JOIN ...]`.
//!
//! Every source's columns are renamed `ALIAS_COLUMN` (with `ALIAS_ROWTIME`, `ALIAS_ROWPARTITION`
//! and `ALIAS_ROWOFFSET` beside them), so the joined row can hold both sides. Each side then
//! computes its join expression into a leading key column, and [`crate::exec::join::JoinOp`]
//! joins the sides; n-way joins chain left to right, the result of one join being the left
//! side of the next. The rest of the query is rewritten to the prefixed names (an unqualified
//! column keeps its own name as output name) and planned over the joined rows like a single
//! source.
//!
//! ksqlDB's rules are checked here with its messages: which kinds may be joined (stream-stream
//! needs `WITHIN`, no table-stream, stream-table and table-table on the table's primary key,
//! foreign-key table-table joins), one equality per join, no self-joins, matching key types.
//! The result's key is the join key: one of the join columns when they are plain columns, a
//! synthetic `ROWKEY` otherwise and for FULL OUTER joins, the left table's primary key for
//! foreign-key joins. Joins of windowed sources are not planned yet.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion_common::DFSchema;
use sqlparser::ast::{BinaryOperator, Expr as SqlExpr, Ident, SelectItem};

use super::error::PlanError;
use super::expr::ExprPlanner;
use super::foreign_key::ForeignKeyPlan;
use super::from::{FromPlan, InputPlan, KeyColumn, RepartitionPlan};
use super::rewrite::{column_ref, rewrite};
use super::text::position;
use crate::catalog::schema::{ROWOFFSET, ROWPARTITION, ROWTIME};
use crate::catalog::{Catalog, LogicalSchema, Source};
use crate::exec::join::{JoinSpec, JoinType};
use crate::exec::task::{JoinStageSpec, OperatorSpec};
use crate::format::Format;
use crate::sql::ast::{
    AliasedSource, Join, JoinKind, ProjectionItem, Query, SourceKind, normalize,
};

type Result<T> = std::result::Result<T, PlanError>;

/// The synthetic key column of joins whose key is not a source column.
pub const ROWKEY: &str = "ROWKEY";

/// A joined source and its alias.
#[derive(Debug)]
struct Side {
    alias: String,
    source: Arc<Source>,
}

impl Side {
    fn prefixed(&self, column: &str) -> String {
        format!("{}_{column}", self.alias)
    }

    /// The side's own columns, prefixed (what `alias.*` stands for).
    fn visible(&self) -> Vec<String> {
        self.source
            .schema
            .columns
            .iter()
            .map(|c| self.prefixed(&c.name))
            .collect()
    }

    fn has(&self, column: &str) -> bool {
        self.source.schema.column(column).is_some()
            || [ROWTIME, ROWPARTITION, ROWOFFSET].contains(&column)
    }
}

/// The left input of the next join: what has been joined so far.
struct Left {
    /// Indexes into the sides joined so far.
    sides: Vec<usize>,
    kind: SourceKind,
    /// Its rows: payload columns, then `ROWTIME`.
    schema: SchemaRef,
    /// Columns that hold its key (any one of them).
    key: Vec<String>,
    /// A table's primary key columns (foreign-key joins keep them as the result's key).
    primary_key: Vec<String>,
}

/// Plans the joins of `query`, whose results go to `sink`.
pub fn plan_joins(query: &Query, catalog: &Catalog, sink: &str) -> Result<FromPlan> {
    let mut sides = vec![resolve(&query.from.base, catalog)?];
    for join in &query.from.joins {
        sides.push(resolve(&join.source, catalog)?);
    }
    check_sources(&sides, query)?;
    // ksqlDB checks every condition's sources before anything else.
    for j in 0..query.from.joins.len() {
        split_condition(&query.from.joins[j].on, j, &sides)?;
    }
    let mut joining = Joining::start(&sides)?;
    let mut keys = Vec::new();
    let count = query.from.joins.len();
    for (j, join) in query.from.joins.iter().enumerate() {
        keys = joining.add(join, j, &sides, (j + 1 == count, sink))?;
    }
    let synthetic = keys.iter().any(|k: &KeyColumn| k.names == [ROWKEY]);
    let mut star: Vec<String> = if synthetic {
        vec![ROWKEY.to_string()]
    } else {
        Vec::new()
    };
    star.extend(sides.iter().flat_map(Side::visible));
    let left = &joining.left;
    // A keyless side (KEY_FORMAT NONE) passes the key format on to the next side's.
    let key_format = (sides.iter())
        .map(|s| s.source.key_format)
        .find(|f| *f != Format::None)
        .unwrap_or(Format::None);
    let source = joined_source(
        (&sides[0].source, key_format),
        left.kind,
        &left.schema,
        &left.primary_key,
    );
    Ok(FromPlan {
        input: Arc::clone(&left.schema),
        inputs: joining.inputs,
        joins: joining.joins,
        foreign_key: joining.foreign_key,
        joined_repartition: None,
        rekeyed_join: joining.rekey_at,
        source,
        star,
        keys,
        query: qualify_query(query, &sides)?,
    })
}

/// The joins planned so far.
struct Joining {
    inputs: Vec<InputPlan>,
    joins: Vec<JoinStageSpec>,
    left: Left,
    /// Each side's prefixed rows (`[payload..., ROWTIME]`).
    schemas: Vec<SchemaRef>,
    /// The steps of a foreign-key join over several partitions.
    foreign_key: Option<ForeignKeyPlan>,
    /// A join whose left (an earlier join's stream result) is re-keyed by a stage.
    rekey_at: Option<(usize, RepartitionPlan)>,
}

impl Joining {
    /// Every input renamed to its prefixed columns; the first is the left of the first join.
    fn start(sides: &[Side]) -> Result<Self> {
        let mut inputs = Vec::new();
        let mut schemas = Vec::new();
        for side in sides {
            let (operators, schema) = prefix(side)?;
            inputs.push(InputPlan {
                source: Arc::clone(&side.source),
                operators,
                needs_repartition: false,
                repartition: None,
                keep_null_values: false,
            });
            schemas.push(schema);
        }
        let first = &sides[0];
        let first_keys: Vec<String> = first
            .source
            .schema
            .keys()
            .map(|c| first.prefixed(&c.name))
            .collect();
        let left = Left {
            sides: vec![0],
            kind: first.source.kind,
            schema: Arc::clone(&schemas[0]),
            key: first_keys.clone(),
            primary_key: first_keys,
        };
        Ok(Self {
            inputs,
            joins: Vec::new(),
            left,
            schemas,
            foreign_key: None,
            rekey_at: None,
        })
    }

    /// Adds join `j` (with input `j + 1`); returns the result's key columns.
    fn add(
        &mut self,
        join: &Join,
        j: usize,
        sides: &[Side],
        (last, sink): (bool, &str),
    ) -> Result<Vec<KeyColumn>> {
        let left = &self.left;
        let right_schema = Arc::clone(&self.schemas[j + 1]);
        let planned = plan_one(join, j, sides, (left, &right_schema), (last, sink))?;
        let (key_op, key_schema) = key_projection(&left.schema, &planned.left_expr)?;
        match self.joins.last_mut() {
            Some(previous) => previous.then.push((key_op, Arc::clone(&left.schema))),
            None => self.inputs[0]
                .operators
                .push((key_op, Arc::clone(&left.schema))),
        }
        let (right_op, right_key_schema) = key_projection(&right_schema, &planned.right_expr)?;
        self.inputs[j + 1].operators.push((right_op, right_schema));
        if planned.repartition_left {
            let at = (j, left.kind, &key_schema);
            rekey_left(&mut self.inputs, &mut self.rekey_at, at)?;
        }
        if planned.repartition_right {
            let input = &mut self.inputs[j + 1];
            input.needs_repartition = true;
            input.repartition = Some(side_repartition("Join-right", input, &right_key_schema)?);
        }
        let output = joined_schema(&planned.key_name, &key_schema, &right_key_schema);
        let left_key_columns = payload_indexes(&left.primary_key, &key_schema);
        self.joins.push(JoinStageSpec {
            join: Arc::new(JoinSpec {
                kind: join.kind,
                join_type: planned.join_type,
                left: key_schema,
                right: right_key_schema,
                output: Arc::clone(&output),
                left_key_columns,
                response: None,
            }),
            then: Vec::new(),
        });
        let mut joined_sides = left.sides.clone();
        joined_sides.push(j + 1);
        let primary_key = if planned.join_type == JoinType::ForeignKey {
            left.primary_key.clone()
        } else {
            vec![planned.key_name.clone()]
        };
        self.left = Left {
            sides: joined_sides,
            kind: planned.result_kind,
            schema: output,
            key: planned.key_candidates,
            primary_key,
        };
        if planned.join_type == JoinType::ForeignKey {
            self.plan_foreign_key(sides, j)?;
        }
        Ok(planned.keys)
    }
}

/// Where `columns` sit in the payload of side layout `side`.
fn payload_indexes(columns: &[String], side: &Schema) -> Vec<usize> {
    (columns.iter())
        .filter_map(|k| side.index_of(k).ok().map(|i| i - 1))
        .collect()
}

/// Join `j`'s left side must be re-keyed by its join expression (`side`'s leading
/// column): the `FROM` source through its own repartition topic; a stream-valued join
/// result (once per query) by a stage running the joins before `j`. Other results are
/// marked for the engine to refuse on several partitions.
fn rekey_left(
    inputs: &mut [InputPlan],
    rekey_at: &mut Option<(usize, RepartitionPlan)>,
    (j, kind, side): (usize, SourceKind, &SchemaRef),
) -> Result<()> {
    if j == 0 {
        inputs[0].needs_repartition = true;
        inputs[0].repartition = Some(side_repartition("Join-left", &inputs[0], side)?);
    } else if kind == SourceKind::Stream && rekey_at.is_none() {
        let identity = RepartitionPlan::identity(side);
        let name = format!("Join-left-{j}");
        let plan = RepartitionPlan::new(&name, (Vec::new(), Arc::clone(side)), 1, &identity)?;
        *rekey_at = Some((j, plan));
    } else {
        for input in inputs.iter_mut().take(j + 1) {
            input.needs_repartition = true;
        }
    }
    Ok(())
}

impl Joining {
    /// The steps of foreign-key join `j` over several partitions (it is the only join).
    fn plan_foreign_key(&mut self, sides: &[Side], j: usize) -> Result<()> {
        let (left, right) = (&sides[0], &sides[j + 1]);
        let Some(right_key) = right.source.schema.keys().next() else {
            return Ok(());
        };
        self.foreign_key = Some(super::foreign_key::plan(
            &self.joins[j].join,
            &self.inputs[0].operators,
            (
                &left.prefixed(ROWOFFSET),
                &left.prefixed(ROWPARTITION),
                &right.prefixed(&right_key.name),
            ),
        )?);
        Ok(())
    }
}

fn resolve(aliased: &AliasedSource, catalog: &Catalog) -> Result<Side> {
    let name = normalize(&aliased.name);
    let source = Arc::clone(
        catalog
            .get(&name)
            .ok_or_else(|| PlanError::UnknownSource(name.clone()))?,
    );
    let alias = aliased.alias.as_ref().map_or(name, normalize);
    Ok(Side { alias, source })
}

fn check_sources(sides: &[Side], query: &Query) -> Result<()> {
    let kafka: Vec<&str> = sides
        .iter()
        .filter(|s| s.source.value_format == Format::Kafka)
        .map(|s| s.source.name.as_str())
        .collect();
    if !kafka.is_empty() {
        return Err(PlanError::Invalid(format!(
            "Source(s) {} are using the 'KAFKA' value format. This format does not yet support JOIN.",
            kafka.join(", ")
        )));
    }
    for (i, side) in sides.iter().enumerate() {
        if let Some(earlier) = sides[..i]
            .iter()
            .find(|s| s.source.name == side.source.name)
        {
            return Err(PlanError::Invalid(if sides.len() == 2 {
                format!(
                    "Can not join '{}' to '{}': self joins are not yet supported.",
                    earlier.source.name, side.source.name
                )
            } else {
                format!(
                    "N-way joins do not support multiple occurrences of the same source. Source: '{}'",
                    side.source.name
                )
            }));
        }
    }
    let windowed: Vec<&Side> = sides.iter().filter(|s| s.source.window.is_some()).collect();
    if let Some(w) = windowed.first() {
        if let Some(plain) = sides.iter().find(|s| s.source.window.is_none()) {
            let kind = match w.source.window {
                Some(crate::catalog::WindowInfo::Session) => "SESSION",
                _ => "TUMBLING",
            };
            return Err(PlanError::Invalid(format!(
                "Can not join windowed source to non-windowed source.\n`{}` is {kind} windowed\n`{}` is not windowed",
                w.alias, plain.alias
            )));
        }
        // Windowed sources join on their keys; joining on anything else would re-key them.
        let scope: Vec<&Side> = sides.iter().collect();
        let on_keys = query.from.joins.iter().all(|j| {
            let mut keys_only = true;
            rewrite(&j.on, &mut |e| {
                if let Some((i, column)) = resolve_column(e, &scope) {
                    keys_only &= sides[i].source.schema.keys().any(|k| k.name == column);
                }
                None
            });
            keys_only
        });
        if !on_keys {
            return Err(PlanError::Invalid(
                "Implicit repartitioning of windowed sources is not supported. See https://github.com/confluentinc/ksql/issues/4385.".into(),
            ));
        }
        return Err(PlanError::Unsupported("joins of windowed sources".into()));
    }
    Ok(())
}

/// A join side re-keyed by its join expression: the stage runs the side's operators (their
/// output leads with the join key) and the query reads the same columns back.
fn side_repartition(name: &str, input: &InputPlan, side: &SchemaRef) -> Result<RepartitionPlan> {
    let identity = RepartitionPlan::identity(side);
    RepartitionPlan::new(
        name,
        (input.operators.clone(), Arc::clone(side)),
        1,
        &identity,
    )
}

/// A projection renaming a source's columns to `ALIAS_COLUMN`, keeping `ROWTIME` last.
fn prefix(side: &Side) -> Result<(Vec<(OperatorSpec, SchemaRef)>, SchemaRef)> {
    let input = side
        .source
        .schema
        .batch_schema(side.source.window.is_some());
    let df = DFSchema::try_from(input.as_ref().clone())?;
    let planner = ExprPlanner::new(&df);
    let mut exprs = Vec::new();
    let names = side
        .source
        .schema
        .names()
        .into_iter()
        .chain([ROWTIME, ROWPARTITION, ROWOFFSET].map(String::from));
    for name in names {
        exprs.push((side.prefixed(&name), planner.plan(&column_ref(&name))?));
    }
    exprs.push((ROWTIME.to_string(), planner.plan(&column_ref(ROWTIME))?));
    let schema = schema_of(&exprs, &input)?;
    Ok((vec![(OperatorSpec::Project(exprs), input)], schema))
}

pub(super) fn schema_of(
    exprs: &[(String, Arc<dyn datafusion_physical_expr::PhysicalExpr>)],
    input: &Schema,
) -> Result<SchemaRef> {
    let fields = exprs
        .iter()
        .map(|(n, e)| Ok(Field::new(n, e.data_type(input)?, true)))
        .collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

/// `[key, payload..., ROWTIME]` over a side's `[payload..., ROWTIME]`.
fn key_projection(side: &SchemaRef, key: &SqlExpr) -> Result<(OperatorSpec, SchemaRef)> {
    let df = DFSchema::try_from(side.as_ref().clone())?;
    let planner = ExprPlanner::new(&df);
    let mut exprs = vec![("$JOINKEY".to_string(), planner.plan(key)?)];
    for field in side.fields() {
        exprs.push((
            field.name().clone(),
            planner.plan(&column_ref(field.name()))?,
        ));
    }
    let schema = schema_of(&exprs, side)?;
    Ok((OperatorSpec::Project(exprs), schema))
}

/// The join's output layout: key, left payload, right payload, `ROWTIME`.
pub(super) fn joined_schema(key: &str, left: &SchemaRef, right: &SchemaRef) -> SchemaRef {
    let payload = |s: &SchemaRef| {
        let n = s.fields().len();
        s.fields()[1..n - 1].to_vec()
    };
    let mut fields = vec![Arc::new(Field::new(
        key,
        left.field(0).data_type().clone(),
        true,
    ))];
    fields.extend(payload(left));
    fields.extend(payload(right));
    fields.push(Arc::new(Field::new(ROWTIME, DataType::Int64, false)));
    Arc::new(Schema::new(fields))
}

/// The virtual source the rest of the query reads.
fn joined_source(
    (first, key_format): (&Source, Format),
    kind: SourceKind,
    schema: &SchemaRef,
    keys: &[String],
) -> Source {
    let formats = (key_format, first.value_format);
    Source {
        name: first.name.clone(),
        kind,
        ..Source::stream(
            &first.topic,
            formats,
            LogicalSchema::from_batch(schema, keys),
        )
    }
}

/// One planned join.
struct PlannedJoin {
    join_type: JoinType,
    result_kind: SourceKind,
    left_expr: SqlExpr,
    right_expr: SqlExpr,
    key_name: String,
    key_candidates: Vec<String>,
    keys: Vec<KeyColumn>,
    repartition_left: bool,
    repartition_right: bool,
}

fn plan_one(
    join: &Join,
    j: usize,
    sides: &[Side],
    (left, right_schema): (&Left, &SchemaRef),
    (last, sink): (bool, &str),
) -> Result<PlannedJoin> {
    let right = &sides[j + 1];
    let (left_expr, right_expr, got) = condition(&join.on, j, sides, (left, right_schema))?;
    let left_col = plain_column(&left_expr);
    let right_col = plain_column(&right_expr);
    let right_on_key = right_col.as_ref().is_some_and(|c| {
        let keys: Vec<String> = right
            .source
            .schema
            .keys()
            .map(|k| right.prefixed(&k.name))
            .collect();
        keys == [c.clone()]
    });
    let left_on_key = left_col.as_ref().is_some_and(|c| left.key.contains(c));
    let left_name = &sides[0].alias;
    let join_type = join_type(
        join,
        j,
        (left, right, left_name),
        (left_on_key, right_on_key),
        &got,
    )?;
    let synthetic = join_type != JoinType::ForeignKey
        && (join.kind == JoinKind::Full || (left_col.is_none() && right_col.is_none()));
    let key_name = if synthetic && last {
        ROWKEY.to_string()
    } else {
        format!("$JOINKEY{j}")
    };
    // The columns that may carry the result's key: the left's (all of them when it is
    // already keyed by the join key), then the right's.
    let mut candidates = match &left_col {
        Some(_) if left_on_key && j > 0 => left.key.clone(),
        Some(c) => vec![c.clone()],
        None => Vec::new(),
    };
    candidates.extend(right_col.clone());
    let keys = if join_type == JoinType::ForeignKey {
        fk_keys(&left.primary_key, &sides[0])
    } else if synthetic {
        vec![synthetic_key(sink)]
    } else {
        vec![join_key(&candidates, &key_name, sides, sink)]
    };
    Ok(PlannedJoin {
        join_type,
        // Stream-stream and stream-table joins give streams; table-table joins tables.
        result_kind: left.kind,
        repartition_left: !left_on_key && join_type != JoinType::ForeignKey,
        repartition_right: !right_on_key,
        left_expr,
        right_expr,
        key_name,
        key_candidates: if join_type == JoinType::ForeignKey {
            left.primary_key.clone()
        } else if synthetic {
            vec![format!("$JOINKEY{j}")]
        } else {
            candidates
        },
        keys,
    })
}

/// The join condition's left and right expressions over the sides' prefixed columns, and
/// the condition as ksqlDB quotes it in errors.
fn condition(
    on: &SqlExpr,
    j: usize,
    sides: &[Side],
    (left, right_schema): (&Left, &SchemaRef),
) -> Result<(SqlExpr, SqlExpr, String)> {
    let right = &sides[j + 1];
    let (l, r, swapped) = split_condition(on, j, sides)?;
    let left_scope: Vec<&Side> = left.sides.iter().map(|i| &sides[*i]).collect();
    let left_expr = qualify(&l, &left_scope);
    let right_expr = qualify(&r, &[right]);
    let scope: Vec<&Side> = sides[..=j + 1].iter().collect();
    let (first, second) = if swapped { (&r, &l) } else { (&l, &r) };
    let got = format!("{} = {}", show(first, &scope), show(second, &scope));
    check_types(
        (&left.schema, &left_expr, &l),
        (right_schema, &right_expr, &r),
        &scope,
    )?;
    Ok((left_expr, right_expr, got))
}

/// Both sides of the condition must have the same type.
fn check_types(
    (left_schema, left_expr, l): (&SchemaRef, &SqlExpr, &SqlExpr),
    (right_schema, right_expr, r): (&SchemaRef, &SqlExpr, &SqlExpr),
    scope: &[&Side],
) -> Result<()> {
    let left_type = type_of(left_schema, left_expr)?;
    let right_type = type_of(right_schema, right_expr)?;
    if left_type != right_type {
        return Err(PlanError::Invalid(format!(
            "Invalid join condition: types don't match. Got {}{{{}}} = {}{{{}}}.",
            show(l, scope),
            crate::types::sql_name(&left_type),
            show(r, scope),
            crate::types::sql_name(&right_type)
        )));
    }
    Ok(())
}

/// The synthetic `ROWKEY` of a join whose key is no source column.
fn synthetic_key(sink: &str) -> KeyColumn {
    KeyColumn {
        names: vec![ROWKEY.to_string()],
        read: None,
        missing: format!(
            "Key missing from projection (ie, SELECT). See https://cnfl.io/2LV7ouS.\nThe query used to build `{sink}` must include the join expression ROWKEY in its projection (eg, SELECT ROWKEY...).\nROWKEY was added as a synthetic key column because the join criteria did not match any source column. This expression must be included in the projection and may be aliased."
        ),
        label: ROWKEY.into(),
        lists_all: false,
    }
}

/// Which of ksqlDB's joins this is, or its error.
fn join_type(
    join: &Join,
    j: usize,
    (left, right, left_name): (&Left, &Side, &str),
    (left_on_key, right_on_key): (bool, bool),
    got: &str,
) -> Result<JoinType> {
    let words = match join.kind {
        JoinKind::Inner => "[INNER] JOIN",
        JoinKind::Left => "LEFT [OUTER] JOIN",
        JoinKind::Right => "RIGHT [OUTER] JOIN",
        JoinKind::Full => "[FULL] OUTER JOIN",
    };
    match (left.kind, right.source.kind) {
        (SourceKind::Stream, SourceKind::Stream) => {
            let within = join.within.as_ref().ok_or_else(|| {
                PlanError::Invalid(
                    "Stream-Stream joins must have a WITHIN clause specified. None was provided."
                        .into(),
                )
            })?;
            let before = within.before.millis();
            Ok(JoinType::StreamStream {
                before,
                after: within.after.map_or(before, |a| a.millis()),
                grace: within.grace.map(|g| g.millis()),
            })
        }
        (SourceKind::Table, SourceKind::Stream) => Err(PlanError::Invalid(format!(
            "Invalid join order: table-stream joins are not supported; only stream-table joins. Got {left_name} {words} {}.",
            right.alias
        ))),
        (left_kind, SourceKind::Table) => {
            if join.within.is_some() {
                return Err(PlanError::Invalid(format!(
                    "A window definition was provided for a {}-Table join. These joins are not windowed. Please drop the window definition (ie. the WITHIN clause) and try to execute your join again.",
                    if left_kind == SourceKind::Stream {
                        "Stream"
                    } else {
                        "Table"
                    }
                )));
            }
            if left_kind == SourceKind::Stream {
                if matches!(join.kind, JoinKind::Full | JoinKind::Right) {
                    let which = if join.kind == JoinKind::Full {
                        "full-outer"
                    } else {
                        "right"
                    };
                    return Err(PlanError::Invalid(format!(
                        "Invalid join type: {which} join not supported for stream-table join. Got {left_name} {words} {}.",
                        right.alias
                    )));
                }
                if !right_on_key {
                    return Err(PlanError::Invalid(format!(
                        "Invalid join condition: stream-table joins require to join on the table's primary key. Got {got}."
                    )));
                }
                return Ok(JoinType::StreamTable);
            }
            let windowed = right.source.window.is_some();
            table_table(join.kind, (j, windowed), (left_on_key, right_on_key), got)
        }
    }
}

/// A table-table join: on the right table's primary key, from the left's key or (a
/// foreign-key join) from any expression of the left.
fn table_table(
    kind: JoinKind,
    (j, windowed): (usize, bool),
    (left_on_key, right_on_key): (bool, bool),
    got: &str,
) -> Result<JoinType> {
    if !right_on_key {
        return Err(PlanError::Invalid(format!(
            "Invalid join condition: table-table joins require to join on the primary key of the right input table. Got {got}."
        )));
    }
    if left_on_key {
        return Ok(JoinType::TableTable);
    }
    if j > 0 {
        return Err(PlanError::Invalid(format!(
            "Invalid join condition: foreign-key table-table joins are not supported as part of n-way joins. Got {got}."
        )));
    }
    if windowed {
        return Err(PlanError::Invalid(
            "Foreign-key table-table joins are not supported on windowed tables.".into(),
        ));
    }
    match kind {
        JoinKind::Inner | JoinKind::Left => Ok(JoinType::ForeignKey),
        JoinKind::Right => Err(PlanError::Invalid(
            "RIGHT OUTER JOIN on a foreign key is not supported".into(),
        )),
        JoinKind::Full => Err(PlanError::Invalid(
            "FULL OUTER JOIN on a foreign key is not supported".into(),
        )),
    }
}

/// The key of a join on plain columns: any of the join columns.
fn join_key(candidates: &[String], read: &str, sides: &[Side], sink: &str) -> KeyColumn {
    let shown: Vec<String> = candidates
        .iter()
        .map(|c| {
            sides
                .iter()
                .find_map(|s| {
                    c.strip_prefix(&format!("{}_", s.alias))
                        .filter(|col| s.has(col))
                        .map(|col| format!("{}.{col}", s.alias))
                })
                .unwrap_or_else(|| c.clone())
        })
        .collect();
    let list = match shown.as_slice() {
        [one] => format!("join expression {one}"),
        [init @ .., last] => format!("join expressions {} or {last}", init.join(", ")),
        [] => "join expression".into(),
    };
    KeyColumn {
        names: candidates.to_vec(),
        read: Some(read.to_string()),
        label: shown.first().cloned().unwrap_or_default(),
        missing: format!(
            "The query used to build `{sink}` must include the {list} in its projection (eg, SELECT {}...).",
            shown.first().cloned().unwrap_or_default()
        ),
        lists_all: false,
    }
}

/// A foreign-key join's key: the left table's primary key columns.
fn fk_keys(primary_key: &[String], left: &Side) -> Vec<KeyColumn> {
    primary_key
        .iter()
        .map(|k| KeyColumn {
            names: vec![k.clone()],
            read: None,
            missing: format!(
                "Primary key {{COLUMNS}} missing in projection. For foreign-key table-table joins, the projection must include all primary key columns from the left input table (`{}`). Missing {{COLUMNS}}: {{LIST}}.",
                left.source.name
            ),
            label: k
                .strip_prefix(&format!("{}_", left.alias))
                .unwrap_or(k)
                .to_string(),
            lists_all: false,
        })
        .collect()
}

/// Splits `ON a = b` into (left side, right side, whether they were written the other way
/// round), checking ksqlDB's rules.
fn split_condition(on: &SqlExpr, j: usize, sides: &[Side]) -> Result<(SqlExpr, SqlExpr, bool)> {
    let scope: Vec<&Side> = sides[..=j + 1].iter().collect();
    // `tt.id[1]`: the qualified column as one name, so it resolves as any other.
    let on = &rewrite(on, &mut |e| match e {
        SqlExpr::CompoundFieldAccess { root, access_chain } => {
            let (column, rest) = super::rewrite::qualified_access(root, access_chain)?;
            Some(match rest {
                [] => column,
                rest => SqlExpr::CompoundFieldAccess {
                    root: Box::new(column),
                    access_chain: rest.to_vec(),
                },
            })
        }
        _ => None,
    });
    check_names(on, &scope)?;
    check_on_columns(on, &scope)?;
    let (a, b) = match on {
        SqlExpr::Nested(inner) => return split_condition(inner, j, sides),
        SqlExpr::BinaryOp {
            left: a,
            op: BinaryOperator::Eq,
            right: b,
        } => (a.as_ref().clone(), b.as_ref().clone()),
        SqlExpr::BinaryOp {
            op: BinaryOperator::And,
            ..
        } => {
            return Err(PlanError::Invalid(format!(
                "Invalid join condition: joins on multiple conditions are not yet supported. Got {}.",
                show_nested(on, &scope)
            )));
        }
        other => {
            return Err(PlanError::Invalid(format!(
                "Unsupported join expression: {}. Only equality conditions are supported.",
                show(other, &scope)
            )));
        }
    };
    let (ra, rb) = check_references((&a, &b), &scope)?;
    let right = j + 1;
    if rb.contains(&right) {
        Ok((a, b, false))
    } else if ra.contains(&right) {
        Ok((b, a, true))
    } else {
        Err(PlanError::Invalid(format!(
            "A join criteria is expected to reference the source (`{}`) in the FROM clause, instead the right source references `{}` and the left source references `{}`",
            sides[right].alias,
            sides[*rb.iter().next().unwrap_or(&0)].alias,
            sides[*ra.iter().next().unwrap_or(&0)].alias
        )))
    }
}

/// Each side of a condition must refer to exactly one source, not the same one.
fn check_references(
    (a, b): (&SqlExpr, &SqlExpr),
    scope: &[&Side],
) -> Result<(BTreeSet<usize>, BTreeSet<usize>)> {
    let (ra, rb) = (referenced(a, scope), referenced(b, scope));
    for (side, other) in [(a, &ra), (b, &rb)] {
        if other.is_empty() {
            return Err(PlanError::Invalid(format!(
                "Invalid comparison expression '{}' in join '({} = {})'. Each side of the join comparision must contain references from exactly one source.",
                show(side, scope),
                show(a, scope),
                show(b, scope)
            )));
        }
    }
    if ra.len() > 1 || rb.len() > 1 || ra == rb {
        let name = |set: &BTreeSet<usize>| {
            set.iter()
                .map(|i| scope[*i].alias.clone())
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(PlanError::Invalid(format!(
            "Each side of the join must reference exactly one source and not the same source. Left side references `{}` and right references `{}`",
            name(&ra),
            name(&rb)
        )));
    }
    Ok((ra, rb))
}

/// The sides (indexes into `scope`) an expression refers to.
fn referenced(expr: &SqlExpr, scope: &[&Side]) -> BTreeSet<usize> {
    let mut found = BTreeSet::new();
    rewrite(expr, &mut |e| {
        if let Some(i) = resolve_column(e, scope) {
            found.insert(i.0);
        }
        None
    });
    found
}

/// The side and column an identifier refers to, if it is one.
fn resolve_column(e: &SqlExpr, scope: &[&Side]) -> Option<(usize, String)> {
    match e {
        SqlExpr::CompoundIdentifier(parts) if parts.len() == 2 => {
            let alias = normalize(&parts[0]);
            let column = normalize(&parts[1]);
            scope
                .iter()
                .position(|s| s.alias == alias)
                .map(|i| (i, column))
        }
        SqlExpr::Identifier(id) => {
            let column = normalize(id);
            if [ROWTIME, ROWPARTITION, ROWOFFSET, ROWKEY].contains(&column.as_str()) {
                return None;
            }
            scope
                .iter()
                .position(|s| s.source.schema.column(&column).is_some())
                .map(|i| (i, column))
        }
        _ => None,
    }
}

/// ksqlDB's errors for names that do not resolve: an unknown alias (anywhere in `expr`
/// first), then a column of two sources.
fn check_names(expr: &SqlExpr, scope: &[&Side]) -> Result<()> {
    let mut error = None;
    rewrite(expr, &mut |e| {
        if let SqlExpr::CompoundIdentifier(parts) = e
            && parts.len() == 2
            && !scope.iter().any(|s| s.alias == normalize(&parts[0]))
        {
            error.get_or_insert(format!(
                "Failed to prepare statement: '{}' is not a valid stream/table name or alias.",
                normalize(&parts[0])
            ));
        }
        None
    });
    rewrite(expr, &mut |e| {
        if let SqlExpr::Identifier(id) = e {
            let column = normalize(id);
            let could: Vec<String> = (scope.iter())
                .filter(|s| s.source.schema.column(&column).is_some())
                .map(|s| format!("{}.{column}", s.alias))
                .collect();
            if could.len() > 1 {
                error.get_or_insert(format!(
                    "Exception while preparing statement: {}Column '{column}' is ambiguous. Could be {}.",
                    position(id),
                    could.join(" or ")
                ));
            }
        }
        None
    });
    error.map_or(Ok(()), |e| Err(PlanError::Invalid(e)))
}

/// The column a qualified name in `ON` refers to must exist.
fn check_on_columns(expr: &SqlExpr, scope: &[&Side]) -> Result<()> {
    let mut error = None;
    rewrite(expr, &mut |e| {
        if let SqlExpr::CompoundIdentifier(parts) = e
            && parts.len() == 2
            && let Some(side) = scope.iter().find(|s| s.alias == normalize(&parts[0]))
            && !side.has(&normalize(&parts[1]))
        {
            error.get_or_insert(format!(
                "{}JOIN ON column '{}.{}' cannot be resolved.",
                position(&parts[0]),
                side.alias,
                normalize(&parts[1])
            ));
        }
        None
    });
    error.map_or(Ok(()), |e| Err(PlanError::Invalid(e)))
}

/// Rewrites column references to the prefixed names of the sides in `scope`.
fn qualify(expr: &SqlExpr, scope: &[&Side]) -> SqlExpr {
    rewrite(expr, &mut |e| {
        resolve_column(e, scope).map(|(i, column)| column_ref(&scope[i].prefixed(&column)))
    })
}

/// The query with every column reference prefixed; `alias.*` expanded.
fn qualify_query(query: &Query, sides: &[Side]) -> Result<Query> {
    let scope: Vec<&Side> = sides.iter().collect();
    let mut all: Vec<&SqlExpr> = query.selection.iter().chain(&query.group_by).collect();
    all.extend(query.having.iter().chain(&query.partition_by));
    for item in &query.projection {
        match item {
            ProjectionItem::Item(
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. },
            )
            | ProjectionItem::StructAll(e) => all.push(e),
            _ => {}
        }
    }
    for e in all {
        check_names(e, &scope)?;
    }
    let mut projection = Vec::new();
    for item in &query.projection {
        projection.extend(qualify_item(item, sides)?);
    }
    let q = |e: &SqlExpr| qualify(e, &scope);
    Ok(Query {
        projection,
        selection: query.selection.as_ref().map(q),
        group_by: query.group_by.iter().map(q).collect(),
        partition_by: query.partition_by.iter().map(q).collect(),
        having: query.having.as_ref().map(q),
        ..query.clone()
    })
}

/// One select item over the prefixed columns: `alias.*` becomes the side's columns; a
/// plain column keeps its own name unless another source has a column of that name.
fn qualify_item(item: &ProjectionItem, sides: &[Side]) -> Result<Vec<ProjectionItem>> {
    let scope: Vec<&Side> = sides.iter().collect();
    let q = |e: &SqlExpr| qualify(e, &scope);
    let named =
        |expr, alias: Ident| ProjectionItem::Item(SelectItem::ExprWithAlias { expr, alias });
    Ok(match item {
        ProjectionItem::Item(SelectItem::QualifiedWildcard(kind, _)) => {
            let alias = kind.to_string().trim_end_matches(".*").to_ascii_uppercase();
            let side = sides.iter().find(|s| s.alias == alias).ok_or_else(|| {
                PlanError::Invalid(format!(
                    "'{alias}' is not a valid stream/table name or alias."
                ))
            })?;
            side.visible()
                .into_iter()
                .map(|c| ProjectionItem::Item(SelectItem::UnnamedExpr(column_ref(&c))))
                .collect()
        }
        ProjectionItem::Item(SelectItem::UnnamedExpr(
            e @ (SqlExpr::Identifier(_) | SqlExpr::CompoundIdentifier(_)),
        )) if resolve_column(e, &scope).is_some() => {
            let (i, column) = resolve_column(e, &scope).unwrap_or_default();
            let shared = sides.iter().filter(|s| s.has(&column)).count() > 1;
            let name = if shared {
                sides[i].prefixed(&column)
            } else {
                column
            };
            vec![named(q(e), Ident::with_quote('`', name))]
        }
        ProjectionItem::Item(SelectItem::UnnamedExpr(e)) => {
            vec![ProjectionItem::Item(SelectItem::UnnamedExpr(q(e)))]
        }
        ProjectionItem::Item(SelectItem::ExprWithAlias { expr, alias }) => {
            vec![named(q(expr), alias.clone())]
        }
        ProjectionItem::StructAll(e) => vec![ProjectionItem::StructAll(q(e))],
        other => vec![other.clone()],
    })
}

fn plain_column(expr: &SqlExpr) -> Option<String> {
    match expr {
        SqlExpr::Identifier(id) => Some(normalize(id)),
        _ => None,
    }
}

fn type_of(schema: &SchemaRef, expr: &SqlExpr) -> Result<DataType> {
    let df = DFSchema::try_from(schema.as_ref().clone())?;
    let planner = ExprPlanner::new(&df);
    planner.data_type(&planner.lower(expr)?)
}

/// An expression as ksqlDB prints it in messages: upper-cased, source-qualified names.
fn show(expr: &SqlExpr, scope: &[&Side]) -> String {
    rewrite(expr, &mut |e| match e {
        SqlExpr::Identifier(id) => Some(match resolve_column(e, scope) {
            Some((i, column)) => SqlExpr::CompoundIdentifier(vec![
                Ident::new(scope[i].alias.clone()),
                Ident::new(column),
            ]),
            None => SqlExpr::Identifier(Ident::new(normalize(id))),
        }),
        SqlExpr::CompoundIdentifier(parts) => Some(SqlExpr::CompoundIdentifier(
            parts.iter().map(|p| Ident::new(normalize(p))).collect(),
        )),
        // ksqlDB prints the NULL literal in lower case.
        SqlExpr::Value(v) if v.value == sqlparser::ast::Value::Null => {
            Some(SqlExpr::Identifier(Ident::new("null")))
        }
        _ => None,
    })
    .to_string()
}

fn show_nested(expr: &SqlExpr, scope: &[&Side]) -> String {
    match expr {
        SqlExpr::BinaryOp { left, op, right } => format!(
            "({} {op} {})",
            show_nested(left, scope),
            show_nested(right, scope)
        ),
        SqlExpr::Nested(inner) => show_nested(inner, scope),
        other => show(other, scope),
    }
}
