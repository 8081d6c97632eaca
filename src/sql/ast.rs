//! The abstract syntax tree of ksqlDB's dialect.
//!
//! ksql statements and clauses (`CREATE STREAM`, `WINDOW`, `EMIT`, `WITHIN`, `PARTITION BY`,
//! `WITH (...)`) are Eddy's own types; expressions are sqlparser's [`Expr`] and select items
//! sqlparser's [`SelectItem`]. Every node implements `Display`, printing SQL that parses back to
//! the same tree. Names keep the case they were written in: [`normalize`] applies ksqlDB's rule
//! (unquoted names are upper-cased) when the planner resolves them. Nothing here knows about a
//! catalog or types beyond their spelling.

use std::fmt;

use sqlparser::ast::{Expr, Ident, SelectItem, Value};

/// One statement of ksqlDB's dialect.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // a unified AST reads better than boxed variants
pub enum Statement {
    /// `CREATE [OR REPLACE] [SOURCE] STREAM|TABLE [IF NOT EXISTS] name (columns) WITH (...)`
    CreateSource(CreateSource),
    /// `CREATE [OR REPLACE] STREAM|TABLE [IF NOT EXISTS] name [WITH (...)] AS SELECT ...`
    CreateAsSelect(CreateAsSelect),
    /// `INSERT INTO name [WITH (...)] SELECT ...`
    InsertInto(InsertInto),
    /// `INSERT INTO name [(columns)] VALUES (...)`
    InsertValues(InsertValues),
    /// A push or pull query: `SELECT ... [EMIT CHANGES]`.
    Query(Box<Query>),
    /// `DROP STREAM|TABLE [IF EXISTS] name [DELETE TOPIC]`
    Drop(DropSource),
    /// `TERMINATE query_id` or `TERMINATE ALL`
    Terminate(QueryTarget),
    /// `PAUSE query_id` or `PAUSE ALL`
    Pause(QueryTarget),
    /// `RESUME query_id` or `RESUME ALL`
    Resume(QueryTarget),
    /// `(LIST|SHOW) STREAMS|TABLES|QUERIES|[ALL] TOPICS|PROPERTIES|FUNCTIONS|TYPES|VARIABLES|... [EXTENDED]`
    List(ListKind, bool),
    /// `DESCRIBE name [EXTENDED]`
    Describe {
        /// The stream or table described.
        name: Ident,
        /// `EXTENDED` asks for statistics too.
        extended: bool,
    },
    /// `DESCRIBE STREAMS [EXTENDED]`: every stream.
    DescribeStreams(bool),
    /// `DESCRIBE FUNCTION name`
    DescribeFunction(Ident),
    /// `DESCRIBE CONNECTOR name`
    DescribeConnector(Ident),
    /// `PRINT topic [FROM BEGINNING] [INTERVAL|SAMPLE n] [LIMIT n]`
    Print(Print),
    /// `EXPLAIN statement` or `EXPLAIN query_id`
    Explain(Box<Explain>),
    /// `DEFINE name = 'value'`
    Define {
        /// The variable.
        name: Ident,
        /// Its value.
        value: String,
    },
    /// `UNDEFINE name`
    Undefine(Ident),
    /// `CREATE TYPE [IF NOT EXISTS] name AS type`
    CreateType {
        /// The type's name.
        name: Ident,
        /// What it stands for.
        data_type: SqlType,
        /// `IF NOT EXISTS`
        if_not_exists: bool,
    },
    /// `DROP TYPE [IF EXISTS] name`
    DropType {
        /// The type's name.
        name: Ident,
        /// `IF EXISTS`
        if_exists: bool,
    },
    /// `ALTER STREAM|TABLE name ADD [COLUMN] col type [, ADD [COLUMN] col type]*`
    Alter {
        /// Stream or table.
        kind: SourceKind,
        /// The source altered.
        name: Ident,
        /// Columns added.
        columns: Vec<(Ident, SqlType)>,
    },
    /// `ALTER SYSTEM 'property' = 'value'`
    AlterSystem {
        /// Property name.
        name: String,
        /// Property value.
        value: String,
    },
    /// `ASSERT [NOT EXISTS] TOPIC name [WITH (...)] [TIMEOUT n unit]`
    AssertTopic {
        /// `NOT EXISTS`
        not_exists: bool,
        /// The topic.
        name: Ident,
        /// Expected topic properties.
        properties: WithProperties,
        /// How long to wait.
        timeout: Option<Duration>,
    },
    /// `ASSERT [NOT EXISTS] SCHEMA [SUBJECT name] [ID n] [TIMEOUT n unit]`
    AssertSchema {
        /// `NOT EXISTS`
        not_exists: bool,
        /// The subject.
        subject: Option<Ident>,
        /// The schema id.
        id: Option<u64>,
        /// How long to wait.
        timeout: Option<Duration>,
    },
    /// `RUN SCRIPT 'path'`
    RunScript(String),
    /// `CREATE SOURCE|SINK CONNECTOR [IF NOT EXISTS] name WITH (...)`
    CreateConnector {
        /// Source or sink.
        kind: ConnectorKind,
        /// The connector's name.
        name: Ident,
        /// Its configuration.
        properties: WithProperties,
        /// `IF NOT EXISTS`
        if_not_exists: bool,
    },
    /// `DROP CONNECTOR [IF EXISTS] name`
    DropConnector {
        /// The connector's name.
        name: Ident,
        /// `IF EXISTS`
        if_exists: bool,
    },
    /// `SET 'property' = 'value'`
    SetProperty {
        /// Property name, e.g. `auto.offset.reset`.
        name: String,
        /// Property value.
        value: String,
    },
    /// `UNSET 'property'`
    UnsetProperty(String),
}

/// Streams are append-only; tables are changelogs keyed by their primary key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKind {
    /// `STREAM`
    Stream,
    /// `TABLE`
    Table,
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceKind::Stream => "STREAM",
            SourceKind::Table => "TABLE",
        })
    }
}

/// `CREATE [OR REPLACE] [SOURCE] {STREAM | TABLE} [IF NOT EXISTS] name [(columns)] [WITH (props)]`
///
/// ```text
/// CREATE STREAM authorizations (card_number VARCHAR KEY, amount DOUBLE)
///   WITH (KAFKA_TOPIC='authorizations', VALUE_FORMAT='JSON', PARTITIONS=2);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CreateSource {
    /// Stream or table.
    pub kind: SourceKind,
    /// The new source's name.
    pub name: Ident,
    /// Declared columns; empty when the schema comes from a registry.
    pub columns: Vec<ColumnDef>,
    /// `WITH (...)` properties.
    pub properties: WithProperties,
    /// `OR REPLACE`
    pub or_replace: bool,
    /// `IF NOT EXISTS`
    pub if_not_exists: bool,
    /// `SOURCE`: read-only and materialized.
    pub is_source: bool,
}

/// `CREATE [OR REPLACE] {STREAM | TABLE} [IF NOT EXISTS] name [WITH (props)] AS query`
#[derive(Debug, Clone, PartialEq)]
pub struct CreateAsSelect {
    /// Stream or table.
    pub kind: SourceKind,
    /// The sink's name.
    pub name: Ident,
    /// `WITH (...)` properties of the sink.
    pub properties: WithProperties,
    /// The query that feeds the sink.
    pub query: Box<Query>,
    /// `OR REPLACE`
    pub or_replace: bool,
    /// `IF NOT EXISTS`
    pub if_not_exists: bool,
}

/// `INSERT INTO name [WITH (props)] query`
#[derive(Debug, Clone, PartialEq)]
pub struct InsertInto {
    /// The target stream.
    pub target: Ident,
    /// `WITH (QUERY_ID='...')`
    pub properties: WithProperties,
    /// The query whose rows are inserted.
    pub query: Box<Query>,
}

/// `INSERT INTO name [(col, ...)] VALUES (expr, ...)`
#[derive(Debug, Clone, PartialEq)]
pub struct InsertValues {
    /// The target stream or table.
    pub target: Ident,
    /// Named columns; empty means all columns in order.
    pub columns: Vec<Ident>,
    /// One value per column.
    pub values: Vec<Expr>,
}

/// `DROP {STREAM | TABLE} [IF EXISTS] name [DELETE TOPIC]`
#[derive(Debug, Clone, PartialEq)]
pub struct DropSource {
    /// Stream or table.
    pub kind: SourceKind,
    /// The dropped source.
    pub name: Ident,
    /// `IF EXISTS`
    pub if_exists: bool,
    /// `DELETE TOPIC`
    pub delete_topic: bool,
}

/// What `TERMINATE` applies to.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryTarget {
    /// One query, by id.
    Id(Ident),
    /// `ALL`
    All,
}

/// What `EXPLAIN` explains.
#[derive(Debug, Clone, PartialEq)]
pub enum Explain {
    /// A statement's plan.
    Statement(Statement),
    /// A running query's plan.
    Query(Ident),
}

/// `PRINT topic [FROM BEGINNING] [INTERVAL|SAMPLE n] [LIMIT n]`
#[derive(Debug, Clone, PartialEq)]
pub struct Print {
    /// The topic, as an identifier or a quoted string (case kept).
    pub topic: Ident,
    /// `FROM BEGINNING`
    pub from_beginning: bool,
    /// `INTERVAL n`: print every n-th record.
    pub interval: Option<u64>,
    /// `LIMIT n`
    pub limit: Option<u64>,
}

/// Source or sink connectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorKind {
    /// `SOURCE`
    Source,
    /// `SINK`
    Sink,
}

impl fmt::Display for ConnectorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnectorKind::Source => "SOURCE",
            ConnectorKind::Sink => "SINK",
        })
    }
}

/// What `LIST`/`SHOW` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// `STREAMS`
    Streams,
    /// `TABLES`
    Tables,
    /// `QUERIES`
    Queries,
    /// `[ALL] TOPICS`; `ALL` includes internal topics.
    Topics {
        /// `ALL`
        all: bool,
    },
    /// `PROPERTIES`
    Properties,
    /// `FUNCTIONS`
    Functions,
    /// `TYPES`
    Types,
    /// `VARIABLES`
    Variables,
    /// `[SOURCE|SINK] CONNECTORS`
    Connectors(Option<ConnectorKind>),
    /// `CONNECTOR PLUGINS`
    ConnectorPlugins,
}

impl fmt::Display for ListKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ListKind::Streams => "STREAMS",
            ListKind::Tables => "TABLES",
            ListKind::Queries => "QUERIES",
            ListKind::Topics { all: false } => "TOPICS",
            ListKind::Topics { all: true } => "ALL TOPICS",
            ListKind::Properties => "PROPERTIES",
            ListKind::Functions => "FUNCTIONS",
            ListKind::Types => "TYPES",
            ListKind::Variables => "VARIABLES",
            ListKind::Connectors(None) => "CONNECTORS",
            ListKind::Connectors(Some(ConnectorKind::Source)) => "SOURCE CONNECTORS",
            ListKind::Connectors(Some(ConnectorKind::Sink)) => "SINK CONNECTORS",
            ListKind::ConnectorPlugins => "CONNECTOR PLUGINS",
        })
    }
}

/// A column in a `CREATE STREAM/TABLE` column list: `name type [KEY | PRIMARY KEY | HEADERS | HEADER('k')]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    /// Column name.
    pub name: Ident,
    /// Column type.
    pub data_type: SqlType,
    /// Where the column lives in the record, when not in the value.
    pub constraint: Option<ColumnConstraint>,
}

/// Where a declared column comes from, when it is not part of the value.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnConstraint {
    /// `KEY` (streams)
    Key,
    /// `PRIMARY KEY` (tables)
    PrimaryKey,
    /// `HEADERS`: all headers, as `ARRAY<STRUCT<KEY STRING, VALUE BYTES>>`
    Headers,
    /// `HEADER('k')`: the last header with that key
    Header(String),
}

/// ksqlDB's SQL types.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlType {
    /// `BOOLEAN`
    Boolean,
    /// `INT` / `INTEGER` (32 bits)
    Int,
    /// `BIGINT` (64 bits)
    Bigint,
    /// `DOUBLE`
    Double,
    /// `DECIMAL(precision, scale)`
    Decimal(u8, i8),
    /// `STRING` / `VARCHAR`
    String,
    /// `BYTES`
    Bytes,
    /// `TIMESTAMP` (milliseconds since the epoch, no zone)
    Timestamp,
    /// `DATE`
    Date,
    /// `TIME`
    Time,
    /// `ARRAY<T>`
    Array(Box<SqlType>),
    /// `MAP<K, V>`
    Map(Box<SqlType>, Box<SqlType>),
    /// `STRUCT<name T, ...>`
    Struct(Vec<(Ident, SqlType)>),
    /// A type registered with `CREATE TYPE`.
    Custom(Ident),
}

/// `WITH (name = value, ...)`; names are case-insensitive, values literals.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WithProperties(pub Vec<(Ident, Value)>);

impl WithProperties {
    /// The value of property `name` (case-insensitive), if set.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0
            .iter()
            .find(|(k, _)| k.value.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The value of property `name` as text: strings unquoted, numbers and booleans as written.
    pub fn get_str(&self, name: &str) -> Option<String> {
        self.get(name).map(value_text)
    }
}

/// A literal's text: strings without quotes, other values as written.
pub fn value_text(value: &Value) -> String {
    match value {
        Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
        Value::Number(n, _) => n.clone(),
        other => other.to_string(),
    }
}

/// The query clause, in ksqlDB's fixed order:
///
/// ```text
/// SELECT items FROM relation [WINDOW w] [WHERE e] [GROUP BY e, ...] [PARTITION BY e, ...]
///   [HAVING e] [EMIT CHANGES | EMIT FINAL] [LIMIT n]
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The select list.
    pub projection: Vec<ProjectionItem>,
    /// `FROM` source and joins.
    pub from: Relation,
    /// `WINDOW ...`
    pub window: Option<WindowExpr>,
    /// `WHERE ...`
    pub selection: Option<Expr>,
    /// `GROUP BY ...`
    pub group_by: Vec<Expr>,
    /// `PARTITION BY ...`
    pub partition_by: Vec<Expr>,
    /// `HAVING ...`
    pub having: Option<Expr>,
    /// `EMIT CHANGES` / `EMIT FINAL`
    pub emit: Option<Emit>,
    /// `LIMIT n`
    pub limit: Option<u64>,
}

/// One item of a select list.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // the common variant is the large one: boxing it buys nothing
pub enum ProjectionItem {
    /// `*`, `src.*`, `expr [AS alias]`: sqlparser's select items.
    Item(SelectItem),
    /// `expr->*`: every field of a struct.
    StructAll(Expr),
}

impl fmt::Display for ProjectionItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProjectionItem::Item(item) => write!(f, "{item}"),
            ProjectionItem::StructAll(e) => write!(f, "{e}->*"),
        }
    }
}

/// `source [alias] (join_type JOIN source [alias] [WITHIN ...] ON expr)*`
#[derive(Debug, Clone, PartialEq)]
pub struct Relation {
    /// The left-most source.
    pub base: AliasedSource,
    /// Joins, applied left to right.
    pub joins: Vec<Join>,
}

/// A source named in `FROM` or `JOIN`, with an optional alias.
#[derive(Debug, Clone, PartialEq)]
pub struct AliasedSource {
    /// The stream or table.
    pub name: Ident,
    /// `[AS] alias`
    pub alias: Option<Ident>,
}

/// `[INNER | LEFT [OUTER] | RIGHT [OUTER] | FULL [OUTER]] JOIN source [WITHIN ...] ON expr`
#[derive(Debug, Clone, PartialEq)]
pub struct Join {
    /// Inner or outer.
    pub kind: JoinKind,
    /// The right side.
    pub source: AliasedSource,
    /// The join window of a stream-stream join.
    pub within: Option<Within>,
    /// The join condition.
    pub on: Expr,
}

/// The kind of a join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    /// `[INNER] JOIN`
    Inner,
    /// `LEFT [OUTER] JOIN`
    Left,
    /// `RIGHT [OUTER] JOIN`
    Right,
    /// `FULL [OUTER] JOIN`
    Full,
}

/// `WITHIN n unit` or `WITHIN (before n unit, after n unit)`, then `[GRACE PERIOD n unit]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Within {
    /// How far the right side may precede the left.
    pub before: Duration,
    /// How far the right side may follow the left; `None` when it equals `before`.
    pub after: Option<Duration>,
    /// `GRACE PERIOD n unit`
    pub grace: Option<Duration>,
}

/// `n unit`: a length of time as written in SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duration {
    /// The number of units.
    pub count: u64,
    /// The unit.
    pub unit: TimeUnit,
}

impl Duration {
    /// The duration in milliseconds (saturating).
    pub fn millis(&self) -> i64 {
        let per = match self.unit {
            TimeUnit::Millisecond => 1,
            TimeUnit::Second => 1_000,
            TimeUnit::Minute => 60_000,
            TimeUnit::Hour => 3_600_000,
            TimeUnit::Day => 86_400_000,
        };
        i64::try_from(self.count)
            .unwrap_or(i64::MAX)
            .saturating_mul(per)
    }
}

/// ksqlDB's time units; there are no weeks, months or years.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    /// `MILLISECOND(S)`
    Millisecond,
    /// `SECOND(S)`
    Second,
    /// `MINUTE(S)`
    Minute,
    /// `HOUR(S)`
    Hour,
    /// `DAY(S)`
    Day,
}

impl TimeUnit {
    /// Reads a unit word, singular or plural, in any case.
    pub fn from_word(word: &str) -> Option<Self> {
        let upper = word.to_ascii_uppercase();
        Some(match upper.strip_suffix('S').unwrap_or(&upper) {
            "MILLISECOND" => TimeUnit::Millisecond,
            "SECOND" => TimeUnit::Second,
            "MINUTE" => TimeUnit::Minute,
            "HOUR" => TimeUnit::Hour,
            "DAY" => TimeUnit::Day,
            _ => return None,
        })
    }
}

/// `WINDOW TUMBLING|HOPPING|SESSION (...)`
#[derive(Debug, Clone, PartialEq)]
pub enum WindowExpr {
    /// `TUMBLING (SIZE n unit [, RETENTION n unit] [, GRACE PERIOD n unit])`; also the
    /// talk's legacy `WINDOW (SIZE n unit)`.
    Tumbling {
        /// `SIZE`
        size: Duration,
        /// `RETENTION`
        retention: Option<Duration>,
        /// `GRACE PERIOD`
        grace: Option<Duration>,
    },
    /// `HOPPING (SIZE n unit, ADVANCE BY n unit [, RETENTION ...] [, GRACE PERIOD ...])`
    Hopping {
        /// `SIZE`
        size: Duration,
        /// `ADVANCE BY`
        advance: Duration,
        /// `RETENTION`
        retention: Option<Duration>,
        /// `GRACE PERIOD`
        grace: Option<Duration>,
    },
    /// `SESSION (n unit [, RETENTION ...] [, GRACE PERIOD ...])`: the inactivity gap.
    Session {
        /// The gap that closes a session.
        gap: Duration,
        /// `RETENTION`
        retention: Option<Duration>,
        /// `GRACE PERIOD`
        grace: Option<Duration>,
    },
}

/// `EMIT CHANGES` (every update) or `EMIT FINAL` (once per window, when it closes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    /// `EMIT CHANGES`
    Changes,
    /// `EMIT FINAL`
    Final,
}

/// ksqlDB's rule for names: unquoted identifiers are upper-cased, quoted ones keep their case.
pub fn normalize(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_ascii_uppercase(),
    }
}

/// Prints items separated by `, `.
struct Commas<'a, T>(&'a [T]);

impl<T: fmt::Display> fmt::Display for Commas<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, item) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{item}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Statement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Statement::CreateSource(s) => write!(f, "{s}"),
            Statement::CreateAsSelect(s) => write!(f, "{s}"),
            Statement::InsertInto(s) => write!(f, "{s}"),
            Statement::InsertValues(s) => write!(f, "{s}"),
            Statement::Query(q) => write!(f, "{q}"),
            Statement::Drop(d) => write!(f, "{d}"),
            Statement::Terminate(t) => write!(f, "TERMINATE {t}"),
            Statement::Pause(t) => write!(f, "PAUSE {t}"),
            Statement::Resume(t) => write!(f, "RESUME {t}"),
            Statement::List(kind, extended) => {
                write!(f, "SHOW {kind}{}", if *extended { " EXTENDED" } else { "" })
            }
            Statement::Describe { name, extended } => {
                write!(
                    f,
                    "DESCRIBE {name}{}",
                    if *extended { " EXTENDED" } else { "" }
                )
            }
            Statement::SetProperty { name, value } => {
                write!(f, "SET {} = {}", quote(name), quote(value))
            }
            Statement::UnsetProperty(name) => write!(f, "UNSET {}", quote(name)),
            other => fmt_more(other, f),
        }
    }
}

impl fmt::Display for QueryTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryTarget::All => f.write_str("ALL"),
            QueryTarget::Id(id) => write!(f, "{id}"),
        }
    }
}

/// The statements beyond the core DDL and queries.
fn fmt_more(statement: &Statement, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let extended = |e: &bool| if *e { " EXTENDED" } else { "" };
    match statement {
        Statement::DescribeStreams(e) => write!(f, "DESCRIBE STREAMS{}", extended(e)),
        Statement::DescribeFunction(name) => write!(f, "DESCRIBE FUNCTION {name}"),
        Statement::DescribeConnector(name) => write!(f, "DESCRIBE CONNECTOR {name}"),
        Statement::Print(p) => write!(f, "{p}"),
        Statement::Explain(e) => match e.as_ref() {
            Explain::Statement(s) => write!(f, "EXPLAIN {s}"),
            Explain::Query(id) => write!(f, "EXPLAIN {id}"),
        },
        Statement::Define { name, value } => write!(f, "DEFINE {name} = {}", quote(value)),
        Statement::Undefine(name) => write!(f, "UNDEFINE {name}"),
        other => fmt_definitions(other, f),
    }
}

/// Types, ALTER, ASSERT, scripts and connectors.
fn fmt_definitions(statement: &Statement, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match statement {
        Statement::CreateType {
            name,
            data_type,
            if_not_exists,
        } => {
            let ine = if *if_not_exists { "IF NOT EXISTS " } else { "" };
            write!(f, "CREATE TYPE {ine}{name} AS {data_type}")
        }
        Statement::DropType { name, if_exists } => {
            write!(
                f,
                "DROP TYPE {}{name}",
                if *if_exists { "IF EXISTS " } else { "" }
            )
        }
        Statement::Alter {
            kind,
            name,
            columns,
        } => {
            let adds: Vec<String> = columns
                .iter()
                .map(|(c, t)| format!("ADD COLUMN {c} {t}"))
                .collect();
            write!(f, "ALTER {kind} {name} {}", adds.join(", "))
        }
        Statement::AlterSystem { name, value } => {
            write!(f, "ALTER SYSTEM {} = {}", quote(name), quote(value))
        }
        other => fmt_assertions_and_connectors(other, f),
    }
}

/// ASSERT, RUN SCRIPT and connectors.
fn fmt_assertions_and_connectors(statement: &Statement, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match statement {
        Statement::AssertTopic {
            not_exists,
            name,
            properties,
            timeout,
        } => {
            write!(
                f,
                "ASSERT {}TOPIC {name}{properties}",
                if *not_exists { "NOT EXISTS " } else { "" }
            )?;
            timeout.map_or(Ok(()), |t| write!(f, " TIMEOUT {t}"))
        }
        Statement::AssertSchema {
            not_exists,
            subject,
            id,
            timeout,
        } => {
            write!(
                f,
                "ASSERT {}SCHEMA",
                if *not_exists { "NOT EXISTS " } else { "" }
            )?;
            if let Some(s) = subject {
                write!(f, " SUBJECT {s}")?;
            }
            if let Some(id) = id {
                write!(f, " ID {id}")?;
            }
            timeout.map_or(Ok(()), |t| write!(f, " TIMEOUT {t}"))
        }
        Statement::RunScript(path) => write!(f, "RUN SCRIPT {}", quote(path)),
        Statement::CreateConnector {
            kind,
            name,
            properties,
            if_not_exists,
        } => {
            let ine = if *if_not_exists { "IF NOT EXISTS " } else { "" };
            write!(f, "CREATE {kind} CONNECTOR {ine}{name}{properties}")
        }
        Statement::DropConnector { name, if_exists } => {
            write!(
                f,
                "DROP CONNECTOR {}{name}",
                if *if_exists { "IF EXISTS " } else { "" }
            )
        }
        other => write!(f, "{other:?}"),
    }
}

impl fmt::Display for Print {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.topic.quote_style == Some('\'') {
            write!(f, "PRINT {}", quote(&self.topic.value))?;
        } else {
            write!(f, "PRINT {}", self.topic)?;
        }
        if self.from_beginning {
            f.write_str(" FROM BEGINNING")?;
        }
        if let Some(n) = self.interval {
            write!(f, " INTERVAL {n}")?;
        }
        if let Some(n) = self.limit {
            write!(f, " LIMIT {n}")?;
        }
        Ok(())
    }
}

/// A single-quoted SQL string literal.
fn quote(s: &str) -> String {
    Value::SingleQuotedString(s.to_string()).to_string()
}

fn create_prefix(f: &mut fmt::Formatter<'_>, or_replace: bool, is_source: bool) -> fmt::Result {
    f.write_str("CREATE ")?;
    if or_replace {
        f.write_str("OR REPLACE ")?;
    }
    if is_source {
        f.write_str("SOURCE ")?;
    }
    Ok(())
}

impl fmt::Display for CreateSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        create_prefix(f, self.or_replace, self.is_source)?;
        write!(f, "{} ", self.kind)?;
        if self.if_not_exists {
            f.write_str("IF NOT EXISTS ")?;
        }
        write!(f, "{}", self.name)?;
        if !self.columns.is_empty() {
            write!(f, " ({})", Commas(&self.columns))?;
        }
        write!(f, "{}", self.properties)
    }
}

impl fmt::Display for CreateAsSelect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        create_prefix(f, self.or_replace, false)?;
        write!(f, "{} ", self.kind)?;
        if self.if_not_exists {
            f.write_str("IF NOT EXISTS ")?;
        }
        write!(f, "{}{} AS {}", self.name, self.properties, self.query)
    }
}

impl fmt::Display for InsertInto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "INSERT INTO {}{} {}",
            self.target, self.properties, self.query
        )
    }
}

impl fmt::Display for InsertValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "INSERT INTO {} ", self.target)?;
        if !self.columns.is_empty() {
            write!(f, "({}) ", Commas(&self.columns))?;
        }
        write!(f, "VALUES ({})", Commas(&self.values))
    }
}

impl fmt::Display for DropSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DROP {} ", self.kind)?;
        if self.if_exists {
            f.write_str("IF EXISTS ")?;
        }
        write!(f, "{}", self.name)?;
        if self.delete_topic {
            f.write_str(" DELETE TOPIC")?;
        }
        Ok(())
    }
}

impl fmt::Display for ColumnDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.data_type)?;
        match &self.constraint {
            None => Ok(()),
            Some(ColumnConstraint::Key) => f.write_str(" KEY"),
            Some(ColumnConstraint::PrimaryKey) => f.write_str(" PRIMARY KEY"),
            Some(ColumnConstraint::Headers) => f.write_str(" HEADERS"),
            Some(ColumnConstraint::Header(k)) => write!(f, " HEADER({})", quote(k)),
        }
    }
}

impl fmt::Display for SqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqlType::Boolean => f.write_str("BOOLEAN"),
            SqlType::Int => f.write_str("INTEGER"),
            SqlType::Bigint => f.write_str("BIGINT"),
            SqlType::Double => f.write_str("DOUBLE"),
            SqlType::Decimal(p, s) => write!(f, "DECIMAL({p}, {s})"),
            SqlType::String => f.write_str("STRING"),
            SqlType::Bytes => f.write_str("BYTES"),
            SqlType::Timestamp => f.write_str("TIMESTAMP"),
            SqlType::Date => f.write_str("DATE"),
            SqlType::Time => f.write_str("TIME"),
            SqlType::Array(t) => write!(f, "ARRAY<{t}>"),
            SqlType::Map(k, v) => write!(f, "MAP<{k}, {v}>"),
            SqlType::Struct(fields) => {
                f.write_str("STRUCT<")?;
                for (i, (name, t)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{name} {t}")?;
                }
                f.write_str(">")
            }
            SqlType::Custom(name) => write!(f, "{name}"),
        }
    }
}

impl fmt::Display for WithProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return Ok(());
        }
        f.write_str(" WITH (")?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k}={v}")?;
        }
        f.write_str(")")
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SELECT {} FROM {}", Commas(&self.projection), self.from)?;
        if let Some(w) = &self.window {
            write!(f, " WINDOW {w}")?;
        }
        if let Some(e) = &self.selection {
            write!(f, " WHERE {e}")?;
        }
        if !self.group_by.is_empty() {
            write!(f, " GROUP BY {}", Commas(&self.group_by))?;
        }
        if !self.partition_by.is_empty() {
            write!(f, " PARTITION BY {}", Commas(&self.partition_by))?;
        }
        if let Some(e) = &self.having {
            write!(f, " HAVING {e}")?;
        }
        match self.emit {
            Some(Emit::Changes) => f.write_str(" EMIT CHANGES")?,
            Some(Emit::Final) => f.write_str(" EMIT FINAL")?,
            None => {}
        }
        if let Some(n) = self.limit {
            write!(f, " LIMIT {n}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.base)?;
        for join in &self.joins {
            write!(f, " {join}")?;
        }
        Ok(())
    }
}

impl fmt::Display for AliasedSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name)?;
        if let Some(alias) = &self.alias {
            write!(f, " {alias}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Join {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            JoinKind::Inner => "INNER JOIN",
            JoinKind::Left => "LEFT JOIN",
            JoinKind::Right => "RIGHT JOIN",
            JoinKind::Full => "FULL OUTER JOIN",
        })?;
        write!(f, " {}", self.source)?;
        if let Some(w) = &self.within {
            write!(f, " {w}")?;
        }
        write!(f, " ON {}", self.on)
    }
}

impl fmt::Display for Within {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.after {
            None => write!(f, "WITHIN {}", self.before)?,
            Some(after) => write!(f, "WITHIN ({}, {after})", self.before)?,
        }
        if let Some(g) = &self.grace {
            write!(f, " GRACE PERIOD {g}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.unit {
            TimeUnit::Millisecond => "MILLISECOND",
            TimeUnit::Second => "SECOND",
            TimeUnit::Minute => "MINUTE",
            TimeUnit::Hour => "HOUR",
            TimeUnit::Day => "DAY",
        };
        let plural = if self.count == 1 { "" } else { "S" };
        write!(f, "{} {unit}{plural}", self.count)
    }
}

fn window_options(
    f: &mut fmt::Formatter<'_>,
    retention: &Option<Duration>,
    grace: &Option<Duration>,
) -> fmt::Result {
    if let Some(r) = retention {
        write!(f, ", RETENTION {r}")?;
    }
    if let Some(g) = grace {
        write!(f, ", GRACE PERIOD {g}")?;
    }
    f.write_str(")")
}

impl fmt::Display for WindowExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WindowExpr::Tumbling {
                size,
                retention,
                grace,
            } => {
                write!(f, "TUMBLING (SIZE {size}")?;
                window_options(f, retention, grace)
            }
            WindowExpr::Hopping {
                size,
                advance,
                retention,
                grace,
            } => {
                write!(f, "HOPPING (SIZE {size}, ADVANCE BY {advance}")?;
                window_options(f, retention, grace)
            }
            WindowExpr::Session {
                gap,
                retention,
                grace,
            } => {
                write!(f, "SESSION ({gap}")?;
                window_options(f, retention, grace)
            }
        }
    }
}
