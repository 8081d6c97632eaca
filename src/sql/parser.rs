//! [`KsqlParser`]: ksqlDB's statements and clauses on top of sqlparser.
//!
//! Follows DataFusion's `DFParser`: the parser peeks the leading keyword, parses ksql
//! statements and clauses (`CREATE STREAM`, `WINDOW`, `EMIT`, `WITHIN`, `PARTITION BY`,
//! `WITH (...)`) itself, and hands expressions, select items and literals to sqlparser's
//! [`Parser`]. One `parse_*` method per grammar production. It builds the AST of
//! [`super::ast`] and checks nothing beyond syntax: unknown names and types are the
//! planner's concern.

use sqlparser::ast::{BinaryOperator, Expr, Ident, SelectItem, UnaryOperator, Value};
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Location, Token, Tokenizer};

use super::ast::{
    AliasedSource, ColumnConstraint, ColumnDef, ConnectorKind, CreateAsSelect, CreateSource,
    DropSource, Duration, Emit, Explain, InsertInto, InsertValues, Join, JoinKind, ListKind, Print,
    ProjectionItem, Query, QueryTarget, Relation, SourceKind, SqlType, Statement, TimeUnit,
    WindowExpr, WithProperties, Within,
};
use super::dialect::KsqlDialect;
use super::error::ParseError;
use super::limits;

type Result<T> = std::result::Result<T, ParseError>;

/// Words that end a relation, so they are never taken as an alias.
const CLAUSE_WORDS: &[&str] = &[
    "WINDOW",
    "WHERE",
    "GROUP",
    "PARTITION",
    "HAVING",
    "EMIT",
    "LIMIT",
    "JOIN",
    "INNER",
    "LEFT",
    "RIGHT",
    "FULL",
    "OUTER",
    "WITHIN",
    "ON",
    "AS",
];

/// Parses ksqlDB's dialect. Create one with [`KsqlParser::new`], or use [`super::parse`].
pub struct KsqlParser<'a> {
    parser: Parser<'a>,
    /// Where the input ends, for errors at end of input.
    end: Location,
}

impl<'a> KsqlParser<'a> {
    /// Tokenizes `sql` and prepares to parse it.
    pub fn new(dialect: &'a KsqlDialect, sql: &str) -> Result<Self> {
        Self::at(dialect, sql, Location::new(1, 1))
    }

    /// A parser over `sql` that stands at `start` of a longer script: every position (of
    /// the tree's spans and of errors) is the script's. Shifting the tokens costs the same
    /// whatever `start` is, so a script parses in time linear in its length.
    pub fn at(dialect: &'a KsqlDialect, sql: &str, start: Location) -> Result<Self> {
        let mut tokens = Tokenizer::new(dialect, sql)
            .tokenize_with_location()
            .map_err(|e| ParseError::at(shift(e.location, start), e.message))?;
        for token in &mut tokens {
            token.span.start = shift(token.span.start, start);
            token.span.end = shift(token.span.end, start);
        }
        Ok(Self {
            parser: Parser::new(dialect).with_tokens_with_locations(tokens),
            end: shift(end_of(sql), start),
        })
    }

    /// Parses every statement in the input; statements are separated by `;`.
    pub fn parse_statements(&mut self) -> Result<Vec<Statement>> {
        let mut statements = Vec::new();
        loop {
            while self.parser.consume_token(&Token::SemiColon) {}
            if self.peek() == Token::EOF {
                return Ok(statements);
            }
            statements.push(self.parse_statement()?);
            if !self.parser.consume_token(&Token::SemiColon) && self.peek() != Token::EOF {
                return self.expected("';' at the end of the statement");
            }
        }
    }

    /// Parses one statement, dispatching on its first word.
    pub fn parse_statement(&mut self) -> Result<Statement> {
        let word = self.peek_word_upper().unwrap_or_default();
        match word.as_str() {
            "CREATE" => self.parse_create(),
            "SELECT" => Ok(Statement::Query(Box::new(self.parse_query()?))),
            "INSERT" => self.parse_insert(),
            "DROP" => self.parse_drop(),
            "TERMINATE" | "PAUSE" | "RESUME" => self.parse_query_control(),
            "SHOW" | "LIST" => self.parse_list(),
            "DESCRIBE" => self.parse_describe(),
            "SET" => self.parse_set(),
            "UNSET" => {
                self.parser.next_token();
                Ok(Statement::UnsetProperty(self.parse_string()?))
            }
            "PRINT" => self.parse_print(),
            "EXPLAIN" => self.parse_explain(),
            "DEFINE" => self.parse_define(),
            "UNDEFINE" => {
                self.parser.next_token();
                Ok(Statement::Undefine(self.parse_identifier()?))
            }
            "ALTER" => self.parse_alter(),
            "ASSERT" => self.parse_assert(),
            "RUN" => {
                self.parser.next_token();
                self.expect_word("SCRIPT")?;
                Ok(Statement::RunScript(self.parse_string()?))
            }
            _ => self.expected(
                "a statement (CREATE, SELECT, INSERT, DROP, TERMINATE, PAUSE, RESUME, SHOW, LIST, \
                 DESCRIBE, PRINT, EXPLAIN, SET, UNSET, DEFINE, UNDEFINE, ALTER, ASSERT, RUN SCRIPT)",
            ),
        }
    }

    /// `CREATE [OR REPLACE] [SOURCE] {STREAM | TABLE} [IF NOT EXISTS] name ...`
    fn parse_create(&mut self) -> Result<Statement> {
        self.expect_word("CREATE")?;
        if self.parse_word("TYPE") {
            let if_not_exists = self.parse_words(&["IF", "NOT", "EXISTS"]);
            let name = self.parse_identifier()?;
            self.expect_word("AS")?;
            let data_type = self.parse_sql_type()?;
            return Ok(Statement::CreateType {
                name,
                data_type,
                if_not_exists,
            });
        }
        if let Some(kind) = self.parse_connector_kind() {
            self.expect_word("CONNECTOR")?;
            let if_not_exists = self.parse_words(&["IF", "NOT", "EXISTS"]);
            let name = self.parse_identifier()?;
            let properties = self.parse_with_properties()?;
            return Ok(Statement::CreateConnector {
                kind,
                name,
                properties,
                if_not_exists,
            });
        }
        let or_replace = self.parse_words(&["OR", "REPLACE"]);
        let is_source = self.parse_word("SOURCE");
        let kind = self.parse_source_kind()?;
        let if_not_exists = self.parse_words(&["IF", "NOT", "EXISTS"]);
        let name = self.parse_identifier()?;
        let columns = if self.parser.consume_token(&Token::LParen) {
            self.parse_column_defs()?
        } else {
            Vec::new()
        };
        let properties = self.parse_with_properties()?;
        if !self.parse_word("AS") {
            return Ok(Statement::CreateSource(CreateSource {
                kind,
                name,
                columns,
                properties,
                or_replace,
                if_not_exists,
                is_source,
            }));
        }
        if is_source || !columns.is_empty() {
            return self.expected("no AS: CREATE SOURCE and column lists do not take a query");
        }
        let query = Box::new(self.parse_query()?);
        Ok(Statement::CreateAsSelect(CreateAsSelect {
            kind,
            name,
            properties,
            query,
            or_replace,
            if_not_exists,
        }))
    }

    fn parse_source_kind(&mut self) -> Result<SourceKind> {
        if self.parse_word("STREAM") {
            Ok(SourceKind::Stream)
        } else if self.parse_word("TABLE") {
            Ok(SourceKind::Table)
        } else {
            self.expected("STREAM or TABLE")
        }
    }

    /// `(column type [KEY|PRIMARY KEY|HEADERS|HEADER('k')], ...)`, after the `(`.
    fn parse_column_defs(&mut self) -> Result<Vec<ColumnDef>> {
        let mut columns = Vec::new();
        if self.parser.consume_token(&Token::RParen) {
            return Ok(columns);
        }
        loop {
            columns.push(self.parse_column_def()?);
            if self.parser.consume_token(&Token::RParen) {
                return Ok(columns);
            }
            self.expect_token(Token::Comma, "',' or ')' in the column list")?;
        }
    }

    fn parse_column_def(&mut self) -> Result<ColumnDef> {
        let name = self.parse_identifier()?;
        let data_type = self.parse_sql_type()?;
        let constraint = if self.parse_word("KEY") {
            Some(ColumnConstraint::Key)
        } else if self.parse_words(&["PRIMARY", "KEY"]) {
            Some(ColumnConstraint::PrimaryKey)
        } else if self.parse_word("HEADERS") {
            Some(ColumnConstraint::Headers)
        } else if self.parse_word("HEADER") {
            self.expect_token(Token::LParen, "'(' after HEADER")?;
            let key = self.parse_string()?;
            self.expect_token(Token::RParen, "')'")?;
            Some(ColumnConstraint::Header(key))
        } else {
            None
        };
        Ok(ColumnDef {
            name,
            data_type,
            constraint,
        })
    }

    /// A ksqlDB type (see [`super::types`]).
    pub fn parse_sql_type(&mut self) -> Result<SqlType> {
        Ok(super::types::parse_sql_type(&mut self.parser)?)
    }

    /// A non-negative integer literal, or `Expected: <what>`.
    fn parse_small_int(&mut self, what: &str) -> Result<u64> {
        match self.peek() {
            Token::Number(n, _) if n.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(self.parser.parse_literal_uint()?)
            }
            _ => self.expected(what),
        }
    }

    /// `[WITH (name = literal, ...)]`
    fn parse_with_properties(&mut self) -> Result<WithProperties> {
        let mut properties = Vec::new();
        if !self.parse_word("WITH") {
            return Ok(WithProperties(properties));
        }
        self.expect_token(Token::LParen, "'(' after WITH")?;
        loop {
            let name = self.parse_name_or_string()?;
            self.expect_token(Token::Eq, "'=' after the property name")?;
            let value = self.parse_literal()?;
            properties.push((name, value));
            if self.parser.consume_token(&Token::RParen) {
                return Ok(WithProperties(properties));
            }
            self.expect_token(Token::Comma, "',' or ')' in WITH")?;
        }
    }

    fn parse_literal(&mut self) -> Result<Value> {
        if self.parser.consume_token(&Token::Minus) {
            return match self.parser.parse_number_value()?.value {
                Value::Number(n, long) => Ok(Value::Number(format!("-{n}"), long)),
                _ => self.expected("a number after '-'"),
            };
        }
        Ok(self.parser.parse_value()?.value)
    }

    /// `SELECT items FROM relation [WINDOW ...] [WHERE ...] [GROUP BY ...] [PARTITION BY ...]
    /// [HAVING ...] [EMIT ...] [LIMIT n]`
    pub fn parse_query(&mut self) -> Result<Query> {
        self.expect_word("SELECT")?;
        let projection = self.parse_projection()?;
        self.expect_word("FROM")?;
        let from = self.parse_relation()?;
        let window = if self.parse_word("WINDOW") {
            Some(self.parse_window()?)
        } else {
            None
        };
        let selection = self.parse_optional_expr(&["WHERE"])?;
        let group_by = self.parse_expr_list(&["GROUP", "BY"])?;
        let partition_by = self.parse_expr_list(&["PARTITION", "BY"])?;
        let having = self.parse_optional_expr(&["HAVING"])?;
        let emit = self.parse_emit()?;
        let limit = match (self.parse_word("LIMIT"), self.peek()) {
            (false, _) => None,
            (true, Token::Number(n, _)) if n.bytes().all(|b| b.is_ascii_digit()) => {
                Some(self.parser.parse_literal_uint()?)
            }
            (true, _) => {
                return Err(self.error_here(
                    "Failed to prepare statement: Value must be integer for command: LIMIT",
                ));
            }
        };
        Ok(Query {
            projection,
            from,
            window,
            selection,
            group_by,
            partition_by,
            having,
            emit,
            limit,
        })
    }

    fn parse_projection(&mut self) -> Result<Vec<ProjectionItem>> {
        let mut items = vec![self.parse_projection_item()?];
        while self.parser.consume_token(&Token::Comma) {
            items.push(self.parse_projection_item()?);
        }
        Ok(items)
    }

    /// A select item, or `expr->*` (the dialect stops expressions before `->*`).
    fn parse_projection_item(&mut self) -> Result<ProjectionItem> {
        let at = self.parser.peek_token().span.start;
        let item = self.parser.parse_select_item()?;
        if !limits::within_depth(&item) {
            if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
                limits::dismantle(e);
            }
            return Err(ParseError::at(at, limits::too_deep()));
        }
        if self.peek() == Token::Arrow && self.parser.peek_nth_token(1).token == Token::Mul {
            let SelectItem::UnnamedExpr(expr) = item else {
                return self.expected("a struct before ->*");
            };
            self.parser.next_token();
            self.parser.next_token();
            return Ok(ProjectionItem::StructAll(expr));
        }
        Ok(ProjectionItem::Item(item))
    }

    fn parse_optional_expr(&mut self, words: &[&str]) -> Result<Option<Expr>> {
        if self.parse_words(words) {
            Ok(Some(self.parse_expr()?))
        } else {
            Ok(None)
        }
    }

    fn parse_expr_list(&mut self, words: &[&str]) -> Result<Vec<Expr>> {
        if !self.parse_words(words) {
            return Ok(Vec::new());
        }
        // `()` parses (ksqlDB rejects it when planning): kept as an empty tuple.
        if self.peek() == Token::LParen && self.parser.peek_nth_token(1).token == Token::RParen {
            self.parser.next_token();
            self.parser.next_token();
            return Ok(vec![Expr::Tuple(Vec::new())]);
        }
        let mut exprs = vec![self.parse_value_expr()?];
        while self.parser.consume_token(&Token::Comma) {
            exprs.push(self.parse_value_expr()?);
        }
        Ok(exprs)
    }

    /// A value expression, as ksqlDB's grammar wants in GROUP BY and PARTITION BY: a
    /// condition (`a AND b`, `a = b`, `a IS NULL`, ...) only in parentheses.
    fn parse_value_expr(&mut self) -> Result<Expr> {
        let at = self.parser.peek_token().span.start;
        let expr = self.parse_expr()?;
        let condition = match &expr {
            Expr::BinaryOp { op, .. } => matches!(
                op,
                BinaryOperator::And
                    | BinaryOperator::Or
                    | BinaryOperator::Xor
                    | BinaryOperator::Eq
                    | BinaryOperator::NotEq
                    | BinaryOperator::Lt
                    | BinaryOperator::LtEq
                    | BinaryOperator::Gt
                    | BinaryOperator::GtEq
            ),
            Expr::UnaryOp {
                op: UnaryOperator::Not,
                ..
            }
            | Expr::IsNull(_)
            | Expr::IsNotNull(_)
            | Expr::IsDistinctFrom(..)
            | Expr::IsNotDistinctFrom(..)
            | Expr::Like { .. }
            | Expr::InList { .. }
            | Expr::Between { .. } => true,
            _ => false,
        };
        if condition {
            return Err(ParseError::at(
                at,
                format!("Syntax Error: a condition here needs parentheses: ({expr})"),
            ));
        }
        Ok(expr)
    }

    fn parse_emit(&mut self) -> Result<Option<Emit>> {
        if !self.parse_word("EMIT") {
            return Ok(None);
        }
        if self.parse_word("CHANGES") {
            Ok(Some(Emit::Changes))
        } else if self.parse_word("FINAL") {
            Ok(Some(Emit::Final))
        } else {
            self.expected("CHANGES or FINAL after EMIT")
        }
    }

    /// `source [alias] (join)*`
    fn parse_relation(&mut self) -> Result<Relation> {
        let base = self.parse_aliased_source()?;
        let mut joins = Vec::new();
        while let Some(kind) = self.parse_join_kind()? {
            let source = self.parse_aliased_source()?;
            let within = if self.parse_word("WITHIN") {
                Some(self.parse_within()?)
            } else {
                None
            };
            self.expect_word("ON")?;
            let on = self.parse_expr()?;
            joins.push(Join {
                kind,
                source,
                within,
                on,
            });
        }
        Ok(Relation { base, joins })
    }

    fn parse_aliased_source(&mut self) -> Result<AliasedSource> {
        let name = self.parse_identifier()?;
        let explicit = self.parse_word("AS");
        let alias = match self.peek_word_upper() {
            Some(w) if explicit || !CLAUSE_WORDS.contains(&w.as_str()) => {
                Some(self.parse_identifier()?)
            }
            _ if explicit => return self.expected("an alias after AS"),
            _ => None,
        };
        Ok(AliasedSource { name, alias })
    }

    fn parse_join_kind(&mut self) -> Result<Option<JoinKind>> {
        let kind = if self.parse_word("JOIN") {
            return Ok(Some(JoinKind::Inner));
        } else if self.parse_word("INNER") {
            JoinKind::Inner
        } else if self.parse_word("LEFT") {
            JoinKind::Left
        } else if self.parse_word("RIGHT") {
            JoinKind::Right
        } else if self.parse_word("FULL") {
            JoinKind::Full
        } else {
            return Ok(None);
        };
        if kind != JoinKind::Inner {
            self.parse_word("OUTER");
        }
        self.expect_word("JOIN")?;
        Ok(Some(kind))
    }

    /// `n unit | (n unit, n unit)`, then `[GRACE PERIOD n unit]`.
    fn parse_within(&mut self) -> Result<Within> {
        let (before, after) = if self.parser.consume_token(&Token::LParen) {
            let before = self.parse_duration()?;
            self.expect_token(Token::Comma, "',' between the before and after durations")?;
            let after = self.parse_duration()?;
            self.expect_token(Token::RParen, "')'")?;
            (before, Some(after))
        } else {
            (self.parse_duration()?, None)
        };
        let grace = self.parse_grace()?;
        Ok(Within {
            before,
            after,
            grace,
        })
    }

    fn parse_grace(&mut self) -> Result<Option<Duration>> {
        if self.parse_words(&["GRACE", "PERIOD"]) {
            Ok(Some(self.parse_duration()?))
        } else {
            Ok(None)
        }
    }

    /// `n unit`
    fn parse_duration(&mut self) -> Result<Duration> {
        let count = self.parse_small_int("a number of time units")?;
        let unit = match self
            .peek_word_upper()
            .as_deref()
            .and_then(TimeUnit::from_word)
        {
            Some(unit) => unit,
            None => {
                return self.expected("a time unit (MILLISECONDS, SECONDS, MINUTES, HOURS, DAYS)");
            }
        };
        self.parser.next_token();
        Ok(Duration { count, unit })
    }

    /// After `WINDOW`: `[name] TUMBLING (...) | HOPPING (...) | SESSION (...)`, or the legacy
    /// `(SIZE n unit)` that means a tumbling window.
    fn parse_window(&mut self) -> Result<WindowExpr> {
        if self.parser.consume_token(&Token::LParen) {
            return self.parse_tumbling_body();
        }
        let mut kind = self.peek_word_upper();
        if !matches!(kind.as_deref(), Some("TUMBLING" | "HOPPING" | "SESSION")) {
            // `WINDOW w TUMBLING (...)`: a legacy window name, parsed and ignored as ksqlDB does.
            self.parse_identifier()?;
            kind = self.peek_word_upper();
        }
        let kind = kind.unwrap_or_default();
        match kind.as_str() {
            "TUMBLING" | "HOPPING" | "SESSION" => {
                self.parser.next_token();
                self.expect_token(Token::LParen, "'(' after the window type")?;
            }
            _ => return self.expected("TUMBLING, HOPPING or SESSION"),
        }
        match kind.as_str() {
            "TUMBLING" => self.parse_tumbling_body(),
            "HOPPING" => self.parse_hopping_body(),
            _ => self.parse_session_body(),
        }
    }

    fn parse_tumbling_body(&mut self) -> Result<WindowExpr> {
        self.expect_word("SIZE")?;
        let size = self.parse_duration()?;
        let (retention, grace) = self.parse_window_options()?;
        Ok(WindowExpr::Tumbling {
            size,
            retention,
            grace,
        })
    }

    fn parse_hopping_body(&mut self) -> Result<WindowExpr> {
        self.expect_word("SIZE")?;
        let size = self.parse_duration()?;
        self.expect_token(Token::Comma, "',' then ADVANCE BY")?;
        self.expect_words(&["ADVANCE", "BY"])?;
        let advance = self.parse_duration()?;
        let (retention, grace) = self.parse_window_options()?;
        Ok(WindowExpr::Hopping {
            size,
            advance,
            retention,
            grace,
        })
    }

    fn parse_session_body(&mut self) -> Result<WindowExpr> {
        let gap = self.parse_duration()?;
        let (retention, grace) = self.parse_window_options()?;
        Ok(WindowExpr::Session {
            gap,
            retention,
            grace,
        })
    }

    /// `[, RETENTION n unit] [, GRACE PERIOD n unit] )`, in that order.
    fn parse_window_options(&mut self) -> Result<(Option<Duration>, Option<Duration>)> {
        let mut retention = None;
        let mut grace = None;
        while self.parser.consume_token(&Token::Comma) {
            if retention.is_none() && grace.is_none() && self.parse_word("RETENTION") {
                retention = Some(self.parse_duration()?);
            } else if grace.is_none() && self.parse_words(&["GRACE", "PERIOD"]) {
                grace = Some(self.parse_duration()?);
            } else {
                return self.expected("RETENTION or GRACE PERIOD (in that order)");
            }
        }
        self.expect_token(Token::RParen, "')' closing the window")?;
        Ok((retention, grace))
    }

    /// `INSERT INTO name [WITH (...)] query` or `INSERT INTO name [(cols)] VALUES (...)`
    fn parse_insert(&mut self) -> Result<Statement> {
        self.expect_words(&["INSERT", "INTO"])?;
        let target = self.parse_identifier()?;
        let mut columns = Vec::new();
        if self.parser.consume_token(&Token::LParen) {
            loop {
                columns.push(self.parse_identifier()?);
                if self.parser.consume_token(&Token::RParen) {
                    break;
                }
                self.expect_token(Token::Comma, "',' or ')' in the column list")?;
            }
        }
        if self.parse_word("VALUES") {
            self.expect_token(Token::LParen, "'(' after VALUES")?;
            let at = self.parser.peek_token().span.start;
            let values = self.parser.parse_comma_separated(Parser::parse_expr)?;
            if !values.iter().all(limits::within_depth) {
                values.into_iter().for_each(limits::dismantle);
                return Err(ParseError::at(at, limits::too_deep()));
            }
            self.expect_token(Token::RParen, "')' after the values")?;
            return Ok(Statement::InsertValues(InsertValues {
                target,
                columns,
                values,
            }));
        }
        if !columns.is_empty() {
            return self.expected("VALUES after the column list");
        }
        let properties = self.parse_with_properties()?;
        let query = Box::new(self.parse_query()?);
        Ok(Statement::InsertInto(InsertInto {
            target,
            properties,
            query,
        }))
    }

    /// `DROP {STREAM | TABLE} [IF EXISTS] name [DELETE TOPIC]`
    fn parse_drop(&mut self) -> Result<Statement> {
        self.expect_word("DROP")?;
        if self.parse_word("TYPE") {
            let if_exists = self.parse_words(&["IF", "EXISTS"]);
            return Ok(Statement::DropType {
                if_exists,
                name: self.parse_identifier()?,
            });
        }
        if self.parse_word("CONNECTOR") {
            let if_exists = self.parse_words(&["IF", "EXISTS"]);
            return Ok(Statement::DropConnector {
                if_exists,
                name: self.parse_identifier()?,
            });
        }
        let kind = self.parse_source_kind()?;
        let if_exists = self.parse_words(&["IF", "EXISTS"]);
        let name = self.parse_identifier()?;
        let delete_topic = self.parse_words(&["DELETE", "TOPIC"]);
        Ok(Statement::Drop(DropSource {
            kind,
            name,
            if_exists,
            delete_topic,
        }))
    }

    /// `TERMINATE|PAUSE|RESUME (query_id | ALL)`
    fn parse_query_control(&mut self) -> Result<Statement> {
        let verb = self.peek_word_upper().unwrap_or_default();
        self.parser.next_token();
        let target = if self.parse_word("ALL") {
            QueryTarget::All
        } else {
            QueryTarget::Id(self.parse_identifier()?)
        };
        Ok(match verb.as_str() {
            "PAUSE" => Statement::Pause(target),
            "RESUME" => Statement::Resume(target),
            _ => Statement::Terminate(target),
        })
    }

    /// `(LIST|SHOW) what [EXTENDED]`
    fn parse_list(&mut self) -> Result<Statement> {
        self.parser.next_token();
        let kind = if self.parse_words(&["ALL", "TOPICS"]) {
            ListKind::Topics { all: true }
        } else if self.parse_words(&["CONNECTOR", "PLUGINS"]) {
            ListKind::ConnectorPlugins
        } else if let Some(kind) = self.parse_connector_kind() {
            self.expect_word("CONNECTORS")?;
            ListKind::Connectors(Some(kind))
        } else {
            let kind = match self.peek_word_upper().as_deref() {
                Some("STREAMS") => ListKind::Streams,
                Some("TABLES") => ListKind::Tables,
                Some("QUERIES") => ListKind::Queries,
                Some("TOPICS") => ListKind::Topics { all: false },
                Some("PROPERTIES") => ListKind::Properties,
                Some("FUNCTIONS") => ListKind::Functions,
                Some("TYPES") => ListKind::Types,
                Some("VARIABLES") => ListKind::Variables,
                Some("CONNECTORS") => ListKind::Connectors(None),
                _ => {
                    return self.expected(
                        "STREAMS, TABLES, QUERIES, [ALL] TOPICS, PROPERTIES, FUNCTIONS, TYPES, VARIABLES or CONNECTORS",
                    );
                }
            };
            self.parser.next_token();
            kind
        };
        Ok(Statement::List(kind, self.parse_word("EXTENDED")))
    }

    /// `SOURCE` or `SINK` when a connector follows (`CONNECTOR`, `CONNECTORS`); consumes only
    /// that word, so `CREATE SOURCE STREAM` is left alone.
    fn parse_connector_kind(&mut self) -> Option<ConnectorKind> {
        let kind = match self.peek_word_upper().as_deref() {
            Some("SOURCE") => ConnectorKind::Source,
            Some("SINK") => ConnectorKind::Sink,
            _ => return None,
        };
        let next = match self.parser.peek_nth_token(1).token {
            Token::Word(w) => w.value.to_ascii_uppercase(),
            _ => String::new(),
        };
        if next == "CONNECTOR" || next == "CONNECTORS" {
            self.parser.next_token();
            Some(kind)
        } else {
            None
        }
    }

    fn parse_describe(&mut self) -> Result<Statement> {
        self.expect_word("DESCRIBE")?;
        if self.parse_word("STREAMS") {
            return Ok(Statement::DescribeStreams(self.parse_word("EXTENDED")));
        }
        if self.peek_nth_is_word(1) {
            if self.parse_word("FUNCTION") {
                return Ok(Statement::DescribeFunction(self.parse_identifier()?));
            }
            if self.parse_word("CONNECTOR") {
                return Ok(Statement::DescribeConnector(self.parse_identifier()?));
            }
        }
        let name = self.parse_identifier()?;
        let extended = self.parse_word("EXTENDED");
        Ok(Statement::Describe { name, extended })
    }

    fn parse_set(&mut self) -> Result<Statement> {
        self.expect_word("SET")?;
        let name = self.parse_string()?;
        self.expect_token(Token::Eq, "'=' after the property name")?;
        let value = self.parse_string()?;
        Ok(Statement::SetProperty { name, value })
    }

    /// `PRINT topic [FROM BEGINNING] [INTERVAL|SAMPLE n] [LIMIT n]`
    fn parse_print(&mut self) -> Result<Statement> {
        self.expect_word("PRINT")?;
        let topic = match self.peek() {
            Token::SingleQuotedString(t) => {
                self.parser.next_token();
                Ident::with_quote('\'', t)
            }
            _ => self.parse_identifier()?,
        };
        let from_beginning = self.parse_words(&["FROM", "BEGINNING"]);
        let interval = if self.parse_word("INTERVAL") || self.parse_word("SAMPLE") {
            Some(self.parse_small_int("a record count after INTERVAL")?)
        } else {
            None
        };
        let limit = if self.parse_word("LIMIT") {
            Some(self.parse_small_int("a record count after LIMIT")?)
        } else {
            None
        };
        Ok(Statement::Print(Print {
            topic,
            from_beginning,
            interval,
            limit,
        }))
    }

    /// `EXPLAIN statement` or `EXPLAIN query_id`
    fn parse_explain(&mut self) -> Result<Statement> {
        self.expect_word("EXPLAIN")?;
        let explained = match self.peek_word_upper().as_deref() {
            Some("SELECT" | "CREATE" | "INSERT") => Explain::Statement(self.parse_statement()?),
            _ => Explain::Query(self.parse_identifier()?),
        };
        Ok(Statement::Explain(Box::new(explained)))
    }

    /// `DEFINE name = 'value'`
    fn parse_define(&mut self) -> Result<Statement> {
        self.expect_word("DEFINE")?;
        let name = self.parse_identifier()?;
        self.expect_token(Token::Eq, "'=' after the variable name")?;
        Ok(Statement::Define {
            name,
            value: self.parse_string()?,
        })
    }

    /// `ALTER STREAM|TABLE name ADD [COLUMN] c t, ...` or `ALTER SYSTEM 'p' = 'v'`
    fn parse_alter(&mut self) -> Result<Statement> {
        self.expect_word("ALTER")?;
        if self.parse_word("SYSTEM") {
            let name = self.parse_string()?;
            self.expect_token(Token::Eq, "'=' after the property name")?;
            return Ok(Statement::AlterSystem {
                name,
                value: self.parse_string()?,
            });
        }
        let kind = self.parse_source_kind()?;
        let name = self.parse_identifier()?;
        let mut columns = Vec::new();
        loop {
            self.expect_word("ADD")?;
            self.parse_word("COLUMN");
            columns.push((self.parse_identifier()?, self.parse_sql_type()?));
            if !self.parser.consume_token(&Token::Comma) {
                return Ok(Statement::Alter {
                    kind,
                    name,
                    columns,
                });
            }
        }
    }

    /// `ASSERT [NOT EXISTS] TOPIC ...` or `ASSERT [NOT EXISTS] SCHEMA ...`
    fn parse_assert(&mut self) -> Result<Statement> {
        self.expect_word("ASSERT")?;
        let not_exists = self.parse_words(&["NOT", "EXISTS"]);
        if self.parse_word("TOPIC") {
            let name = self.parse_name_or_string()?;
            let properties = self.parse_with_properties()?;
            let timeout = self.parse_timeout()?;
            return Ok(Statement::AssertTopic {
                not_exists,
                name,
                properties,
                timeout,
            });
        }
        if !self.parse_word("SCHEMA") {
            // ksqlDB's wording for an ASSERT of something else (`ASSERT VALUES`, ...).
            let next = self.parser.peek_token();
            let at = next.span.start;
            return Err(ParseError::at(
                at,
                format!(
                    "Syntax error at or near '{}' at line {}:{}",
                    next.token, at.line, at.column
                ),
            ));
        }
        let subject = if self.parse_word("SUBJECT") {
            Some(self.parse_name_or_string()?)
        } else {
            None
        };
        let id = if self.parse_word("ID") {
            Some(self.parse_small_int("a schema id")?)
        } else {
            None
        };
        let timeout = self.parse_timeout()?;
        Ok(Statement::AssertSchema {
            not_exists,
            subject,
            id,
            timeout,
        })
    }

    fn parse_timeout(&mut self) -> Result<Option<Duration>> {
        if self.parse_word("TIMEOUT") {
            Ok(Some(self.parse_duration()?))
        } else {
            Ok(None)
        }
    }

    /// A name, or a quoted string kept as a name with its case.
    fn parse_name_or_string(&mut self) -> Result<Ident> {
        match self.peek() {
            Token::SingleQuotedString(t) => {
                self.parser.next_token();
                Ok(Ident::with_quote('`', t))
            }
            _ => self.parse_identifier(),
        }
    }

    /// An expression, refused (with its position) if it nests too deeply ([`limits`]).
    fn parse_expr(&mut self) -> Result<Expr> {
        let at = self.parser.peek_token().span.start;
        let expr = self.parser.parse_expr()?;
        if limits::within_depth(&expr) {
            Ok(expr)
        } else {
            limits::dismantle(expr);
            Err(ParseError::at(at, limits::too_deep()))
        }
    }

    // ---- token helpers -------------------------------------------------------------------

    fn peek(&self) -> Token {
        self.parser.peek_token().token
    }

    /// The next token's text upper-cased, if it is an unquoted word.
    fn peek_word_upper(&self) -> Option<String> {
        match self.peek() {
            Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
            _ => None,
        }
    }

    /// Whether the token after the next one is a word (so the next one is not the last name).
    fn peek_nth_is_word(&self, n: usize) -> bool {
        matches!(self.parser.peek_nth_token(n).token, Token::Word(_))
    }

    /// Consumes the next token if it is the (unquoted, case-insensitive) word `word`.
    fn parse_word(&mut self, word: &str) -> bool {
        if self.peek_word_upper().as_deref() == Some(word) {
            self.parser.next_token();
            true
        } else {
            false
        }
    }

    /// Consumes `words` if all of them come next; otherwise consumes nothing.
    fn parse_words(&mut self, words: &[&str]) -> bool {
        let all = words.iter().enumerate().all(|(i, w)| {
            matches!(self.parser.peek_nth_token(i).token,
                Token::Word(ref t) if t.quote_style.is_none() && t.value.eq_ignore_ascii_case(w))
        });
        if all {
            for _ in words {
                self.parser.next_token();
            }
        }
        all
    }

    fn expect_word(&mut self, word: &str) -> Result<()> {
        if self.parse_word(word) {
            Ok(())
        } else {
            self.expected(word)
        }
    }

    fn expect_words(&mut self, words: &[&str]) -> Result<()> {
        for word in words {
            self.expect_word(word)?;
        }
        Ok(())
    }

    fn expect_token(&mut self, token: Token, what: &str) -> Result<()> {
        if self.parser.consume_token(&token) {
            Ok(())
        } else {
            self.expected(what)
        }
    }

    fn parse_identifier(&mut self) -> Result<Ident> {
        match self.peek() {
            Token::Word(_) => Ok(self.parser.parse_identifier()?),
            _ => self.expected("a name"),
        }
    }

    fn parse_string(&mut self) -> Result<String> {
        match self.peek() {
            Token::SingleQuotedString(_) => Ok(self.parser.parse_literal_string()?),
            _ => self.expected("a quoted string"),
        }
    }

    /// An error at the next token: `Expected: <what>, found: <token>`.
    fn expected<T>(&self, what: &str) -> Result<T> {
        let found = match self.parser.peek_token().token {
            Token::EOF => "end of input".to_string(),
            other => other.to_string(),
        };
        Err(self.error_here(&format!("Expected: {what}, found: {found}")))
    }

    /// An error with `message` at the next token (or the end of the input).
    fn error_here(&self, message: &str) -> ParseError {
        let next = self.parser.peek_token();
        let location = if next.token == Token::EOF || next.span.start.line == 0 {
            self.end
        } else {
            next.span.start
        };
        ParseError::at(location, message)
    }
}

/// The position just past the last non-blank character of `sql`.
/// `location` in a text that starts at `start` of the script, as a position in the script.
fn shift(location: Location, start: Location) -> Location {
    match location.line {
        // No position (an empty span).
        0 => location,
        1 => Location::new(start.line, location.column + start.column.saturating_sub(1)),
        line => Location::new(line + start.line.saturating_sub(1), location.column),
    }
}

fn end_of(sql: &str) -> Location {
    let text = sql.trim_end();
    let line = text.lines().count().max(1);
    let column = text.lines().last().unwrap_or("").chars().count() + 1;
    Location::new(line as u64, column as u64)
}
