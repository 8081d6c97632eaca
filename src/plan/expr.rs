//! Expressions: sqlparser [`SqlExpr`] → DataFusion [`Expr`] → [`PhysicalExpr`].
//!
//! [`ExprPlanner`] resolves names against one input schema (ksqlDB's rule: unquoted names
//! are upper-cased), maps literals to ksqlDB's types (integers are INT or BIGINT, `1.5` is a
//! DECIMAL, `1.5E0` a DOUBLE), maps function names through [`crate::functions`], and inserts
//! the casts DataFusion's coercion rules ask for, so physical expressions always see matching
//! types. Aggregate calls never reach it: [`super::query`] replaces them with columns first.

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion_common::{Column, DFSchema, ScalarValue};
use datafusion_expr::execution_props::ExecutionProps;
use datafusion_expr::expr::{Between, Case, Like, ScalarFunction};
use datafusion_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion_expr::type_coercion::binary::BinaryTypeCoercer;
use datafusion_expr::type_coercion::functions::fields_with_udf;
use datafusion_expr::{Expr, ExprSchemable, Operator, ScalarUDF};
use datafusion_physical_expr::{PhysicalExpr, create_physical_expr};
use sqlparser::ast::{
    AccessExpr, BinaryOperator, CastKind, CeilFloorKind, DataType as SqlDataType, DateTimeField,
    Expr as SqlExpr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, Subscript,
    UnaryOperator, Value,
};

use super::error::PlanError;
use crate::functions::lambda::Kind as LambdaKind;
use crate::sql::ast::normalize;

type Result<T> = std::result::Result<T, PlanError>;

/// Lowers expressions over one input schema.
#[derive(Debug)]
pub struct ExprPlanner<'a> {
    schema: &'a DFSchema,
    /// Inside a lambda body: arithmetic on a NULL fails (Java's unboxing, in ksqlDB).
    strict_arithmetic: bool,
}

impl<'a> ExprPlanner<'a> {
    /// A planner resolving names in `schema`.
    pub fn new(schema: &'a DFSchema) -> Self {
        Self {
            schema,
            strict_arithmetic: false,
        }
    }

    /// Lowers each of `exprs`, with its type.
    pub fn lower_typed<'e>(
        &self,
        exprs: impl IntoIterator<Item = &'e SqlExpr>,
    ) -> Result<(Vec<Expr>, Vec<DataType>)> {
        let lowered = exprs
            .into_iter()
            .map(|e| self.lower(e))
            .collect::<Result<Vec<_>>>()?;
        let types = lowered
            .iter()
            .map(|e| self.data_type(e))
            .collect::<Result<Vec<_>>>()?;
        Ok((lowered, types))
    }

    /// Lowers and plans `expr` in one step.
    pub fn plan(&self, expr: &SqlExpr) -> Result<Arc<dyn PhysicalExpr>> {
        self.physical(&self.lower(expr)?)
    }

    /// A physical expression for a lowered `expr`.
    pub fn physical(&self, expr: &Expr) -> Result<Arc<dyn PhysicalExpr>> {
        Ok(create_physical_expr(
            expr,
            self.schema,
            &ExecutionProps::new(),
            &PhysicalPlanningContext::default(),
        )?)
    }

    /// The names of the columns expressions are planned over.
    pub fn column_names(&self) -> Vec<String> {
        self.schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    /// The Arrow schema expressions are planned over.
    pub fn arrow_schema(&self) -> &arrow::datatypes::Schema {
        self.schema.as_arrow()
    }

    /// The type of a lowered expression.
    pub fn data_type(&self, expr: &Expr) -> Result<DataType> {
        Ok(expr.get_type(self.schema)?)
    }

    /// Lowers a sqlparser expression to a DataFusion one, with casts where types differ.
    pub fn lower(&self, expr: &SqlExpr) -> Result<Expr> {
        match expr {
            SqlExpr::Identifier(ident) => self.column(&normalize(ident)),
            // `alias.column`: sources are not qualified yet, so the column name decides.
            SqlExpr::CompoundIdentifier(parts) => match parts.last() {
                Some(last) => self.column(&normalize(last)).map_err(|e| match e {
                    PlanError::UnknownColumn(_) => PlanError::UnknownColumn(
                        parts.iter().map(normalize).collect::<Vec<_>>().join("."),
                    ),
                    other => other,
                }),
                None => Err(PlanError::Invalid("empty name".into())),
            },
            SqlExpr::Value(v) => literal(&v.value, v.span.start),
            SqlExpr::Nested(inner) => self.lower(inner),
            SqlExpr::BinaryOp { left, op, right } => self.binary(left, op, right),
            SqlExpr::UnaryOp { op, expr } => self.unary(op, expr),
            SqlExpr::IsNull(e) => Ok(Expr::IsNull(Box::new(self.lower(e)?))),
            SqlExpr::IsNotNull(e) => Ok(Expr::IsNotNull(Box::new(self.lower(e)?))),
            SqlExpr::IsDistinctFrom(a, b) => self.distinct(a, b, false),
            SqlExpr::IsNotDistinctFrom(a, b) => self.distinct(a, b, true),
            SqlExpr::Between {
                expr,
                negated,
                low,
                high,
            } => self.between(expr, *negated, low, high),
            SqlExpr::InList {
                expr,
                list,
                negated,
            } => self.in_list(expr, list, *negated),
            SqlExpr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => self.case(operand.as_deref(), conditions, else_result.as_deref()),
            SqlExpr::Function(f) => self.function(f),
            other => self.lower_more(other),
        }
    }

    /// LIKE, CAST and SUBSTRING, which sqlparser gives nodes of their own.
    fn lower_more(&self, expr: &SqlExpr) -> Result<Expr> {
        match expr {
            SqlExpr::Like {
                negated,
                expr,
                pattern,
                escape_char,
                ..
            } => self.like(
                *negated,
                expr,
                pattern,
                escape_char.as_ref().map(|v| &v.value),
            ),
            SqlExpr::Cast {
                kind: CastKind::Cast,
                expr,
                data_type,
                ..
            } => self.cast(expr, cast_type(data_type)?),
            SqlExpr::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => self.substring(expr, [substring_from, substring_for]),
            SqlExpr::Trim {
                expr,
                trim_where: None,
                trim_what: None,
                trim_characters: None,
            } => {
                // As Java's String.trim(): every character up to the space.
                let blanks: String = (0u8..=b' ').map(char::from).collect();
                let args = vec![self.lower(expr)?, datafusion_expr::lit(blanks)];
                self.call(&datafusion_functions::string::btrim(), args)
            }
            SqlExpr::CompoundFieldAccess { root, access_chain } => self.access(root, access_chain),
            SqlExpr::Array(array) => self.array_constructor(&array.elem),
            // sqlparser gives CEIL(x) and FLOOR(x) nodes of their own (for `CEIL(x TO unit)`).
            SqlExpr::Ceil {
                expr,
                field: CeilFloorKind::DateTimeField(DateTimeField::NoDateTime),
            } => self.call(&datafusion_functions::math::ceil(), vec![self.lower(expr)?]),
            SqlExpr::Floor {
                expr,
                field: CeilFloorKind::DateTimeField(DateTimeField::NoDateTime),
            } => self.call(
                &datafusion_functions::math::floor(),
                vec![self.lower(expr)?],
            ),
            other => Err(PlanError::Unsupported(format!("expression {other}"))),
        }
    }

    /// `ARRAY[e, ...]`: the elements in one type ([`super::in_list::unify`]), string literals
    /// read as it when it is a number or a boolean.
    fn array_constructor(&self, elements: &[SqlExpr]) -> Result<Expr> {
        check_constructor_elements(elements)?;
        let (lowered, types) = self.lower_typed(elements)?;
        let mut common = (types.iter().zip(elements))
            .filter(|(_, e)| string_literal(e).is_none())
            .fold(DataType::Null, |acc, (t, _)| super::in_list::unify(&acc, t));
        if family(&common) == Family::Number {
            // A string read as a number counts as the DECIMAL it spells.
            for decimal in elements
                .iter()
                .filter_map(string_literal)
                .filter_map(decimal_type)
            {
                common = super::in_list::unify(&common, &decimal);
            }
        }
        let mut out = Vec::with_capacity(elements.len());
        for ((e, t), sql) in lowered.into_iter().zip(types).zip(elements) {
            let (e, t) = self.read_literal_as(sql, (e, t), &common)?;
            out.push(if common.is_null() || t.is_null() {
                e
            } else {
                super::in_list::conform(e, &t, &common)
            });
        }
        self.call(
            &datafusion_functions_nested::make_array::make_array_udf(),
            out,
        )
    }

    /// `CAST(expr AS target)`: Arrow's cast, or ksqlDB's where they differ
    /// ([`crate::functions::cast`]); a string never casts to a collection or struct.
    fn cast(&self, expr: &SqlExpr, target: DataType) -> Result<Expr> {
        let e = self.lower(expr)?;
        let from = self.data_type(&e)?;
        if family(&from) == Family::Text
            && matches!(
                family(&target),
                Family::Array | Family::Map | Family::Struct
            )
        {
            return Err(PlanError::Type(format!(
                "Cast of {} to {} is not supported",
                crate::types::sql_name(&from),
                crate::types::sql_name(&target)
            )));
        }
        if crate::functions::cast::needed(&from, &target) {
            return Ok(crate::functions::cast::KsqlCast::udf(target).call(vec![e]));
        }
        Ok(datafusion_expr::cast(e, target))
    }

    /// `SPLIT`, `LPAD` and `RPAD` of a string, or of bytes (`<NAME>_BYTES`).
    fn string_or_bytes(&self, name: &str, args: &[SqlExpr]) -> Result<Expr> {
        let args = args
            .iter()
            .map(|a| self.lower(a))
            .collect::<Result<Vec<_>>>()?;
        let bytes = match args.first() {
            Some(first) => self.data_type(first)? == DataType::Binary,
            None => false,
        };
        let name = if bytes {
            format!("{name}_BYTES")
        } else {
            name.to_string()
        };
        let udf =
            crate::functions::rowwise::function(&name).ok_or(PlanError::UnknownFunction(name))?;
        self.call(&udf, args)
    }

    /// `SUBSTRING(s, from[, for])`, of a string or (ksqlDB's own) of bytes.
    fn substring(&self, expr: &SqlExpr, bounds: [&Option<Box<SqlExpr>>; 2]) -> Result<Expr> {
        let mut args = vec![self.lower(expr)?];
        for e in bounds.into_iter().flatten() {
            args.push(self.lower(e)?);
        }
        if self.data_type(&args[0])? == DataType::Binary
            && let Some(bytes) = crate::functions::rowwise::function("SUBSTRING_BYTES")
        {
            return self.call(&bytes, args);
        }
        self.call(&datafusion_functions::unicode::substr(), args)
    }

    /// `expr [NOT] LIKE pattern [ESCAPE 'c']`.
    fn like(
        &self,
        negated: bool,
        expr: &SqlExpr,
        pattern: &SqlExpr,
        escape_char: Option<&Value>,
    ) -> Result<Expr> {
        let escape = match escape_char {
            Some(Value::SingleQuotedString(s)) => s.chars().next(),
            _ => None,
        };
        let mut p = self.lower(pattern)?;
        if let Some(c) = escape.filter(|c| *c != '\\') {
            // DataFusion escapes with a backslash only: backslashes become literal, the
            // chosen escape character becomes the backslash.
            let replace = datafusion_functions::string::replace();
            let literal_backslashes = replace.call(vec![
                p,
                datafusion_expr::lit("\\"),
                datafusion_expr::lit("\\\\"),
            ]);
            p = replace.call(vec![
                literal_backslashes,
                datafusion_expr::lit(c.to_string()),
                datafusion_expr::lit("\\"),
            ]);
        }
        let e = self.lower(expr)?;
        let t = self.data_type(&e)?;
        if !matches!(t, DataType::Utf8 | DataType::Null) {
            return Err(PlanError::Invalid(format!(
                "The column type for Like condition must be VARCHAR. The column type is {}",
                crate::types::sql_name(&t)
            )));
        }
        let e = Box::new(e);
        let escape = escape.map(|_| '\\');
        Ok(Expr::Like(Like::new(
            negated,
            e,
            Box::new(p),
            escape,
            false,
        )))
    }

    /// `a[i]` (1-based; negative counts from the end), `m['k']`, and `.field` chains.
    fn access(&self, root: &SqlExpr, chain: &[AccessExpr]) -> Result<Expr> {
        if let Some((column, rest)) = super::rewrite::qualified_access(root, chain) {
            return self.access(&column, rest);
        }
        let mut expr = self.lower(root)?;
        for access in chain {
            let AccessExpr::Subscript(Subscript::Index { index }) = access else {
                return Err(PlanError::Unsupported(format!("access {access}")));
            };
            let index = self.lower(index)?;
            expr = match self.data_type(&expr)? {
                DataType::Map(..) => {
                    let values = self.call(
                        &datafusion_functions_nested::map_extract::map_extract_udf(),
                        vec![expr, index],
                    )?;
                    let first = Expr::Literal(ScalarValue::Int64(Some(1)), None);
                    self.call(
                        &datafusion_functions_nested::extract::array_element_udf(),
                        vec![values, first],
                    )?
                }
                DataType::List(_) => self.call(
                    &datafusion_functions_nested::extract::array_element_udf(),
                    vec![expr, index],
                )?,
                other => {
                    return Err(PlanError::Invalid(format!(
                        "Subscripts are only supported on ARRAY and MAP, not {}",
                        crate::types::sql_name(&other)
                    )));
                }
            };
        }
        Ok(expr)
    }

    fn case(
        &self,
        operand: Option<&SqlExpr>,
        conditions: &[sqlparser::ast::CaseWhen],
        else_result: Option<&SqlExpr>,
    ) -> Result<Expr> {
        let operand = operand.map(|o| self.lower(o).map(Box::new)).transpose()?;
        let when_then = conditions
            .iter()
            .map(|c| {
                Ok((
                    Box::new(self.lower(&c.condition)?),
                    Box::new(self.lower(&c.result)?),
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let else_expr = else_result
            .map(|e| self.lower(e).map(Box::new))
            .transpose()?;
        // NULL results take the type of the other branches; ksqlDB rejects a CASE whose
        // branches are all NULL.
        let results: Vec<&Expr> = when_then
            .iter()
            .map(|(_, t)| t.as_ref())
            .chain(else_expr.as_deref())
            .collect();
        let typed = results
            .iter()
            .map(|r| self.data_type(r))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .find(|t| !t.is_null());
        let Some(target) = typed else {
            return Err(PlanError::Invalid(
                "Invalid Case expression. All case branches have NULL type".into(),
            ));
        };
        let retype = |e: Box<Expr>| -> Result<Box<Expr>> {
            Ok(match self.data_type(&e)? {
                DataType::Null => Box::new(datafusion_expr::cast(*e, target.clone())),
                _ => e,
            })
        };
        let when_then = when_then
            .into_iter()
            .map(|(w, t)| Ok((w, retype(t)?)))
            .collect::<Result<Vec<_>>>()?;
        let else_expr = else_expr.map(retype).transpose()?;
        Ok(Expr::Case(Case::new(operand, when_then, else_expr)))
    }

    fn column(&self, name: &str) -> Result<Expr> {
        let column = Column::new_unqualified(name);
        if self.schema.has_column(&column) {
            Ok(Expr::Column(column))
        } else {
            Err(PlanError::UnknownColumn(name.to_string()))
        }
    }

    fn binary(&self, left: &SqlExpr, sql_op: &BinaryOperator, right: &SqlExpr) -> Result<Expr> {
        if *sql_op == BinaryOperator::Arrow {
            return self.struct_field(left, right);
        }
        let op = binary_operator(sql_op)?;
        let (l, r) = self.operands(left, op, right)?;
        let (lt, rt) = (self.data_type(&l)?, self.data_type(&r)?);
        check_null_operand((left, &lt), op, (right, &rt))?;
        // ksqlDB's `+` concatenates strings.
        let op = if op == Operator::Plus && lt == DataType::Utf8 && rt == DataType::Utf8 {
            Operator::StringConcat
        } else {
            op
        };
        let (lc, rc) = BinaryTypeCoercer::new(&lt, &op, &rt)
            .get_input_types()
            .map_err(|_| unsupported_operands((left, &lt), (sql_op, op), (right, &rt)))?;
        check_comparable((left, &lt), op, (right, &rt))?;
        let (l, r) = (cast_to(l, &lt, &lc), cast_to(r, &rt, &rc));
        let (l, r) = if self.strict_arithmetic && is_arithmetic_operator(op) {
            let unboxed = crate::functions::lambda::Unboxed::udf();
            (unboxed.call(vec![l]), unboxed.call(vec![r]))
        } else {
            (l, r)
        };
        // Java's && and || do not evaluate their right side when the left decides: in a
        // lambda (where arithmetic on a NULL fails) the right side must not run then.
        if self.strict_arithmetic && matches!(op, Operator::And | Operator::Or) {
            let (then, otherwise) = match op {
                Operator::And => (r, datafusion_expr::lit(false)),
                _ => (datafusion_expr::lit(true), r),
            };
            return Ok(datafusion_expr::when(l, then).otherwise(otherwise)?);
        }
        if is_comparison(op) {
            // ksqlDB: a comparison with a NULL operand is false, not NULL. Arithmetic on a
            // NULL fails in ksqlDB (Java unboxing) and fails the whole expression, giving
            // NULL: such an operand is left to make the comparison NULL.
            let null_checks: Vec<Expr> = [(left, &l), (right, &r)]
                .into_iter()
                .filter(|(sql, _)| !is_arithmetic(sql))
                .map(|(_, e)| Expr::IsNull(Box::new(e.clone())))
                .collect();
            let compared = datafusion_expr::binary_expr(l, op, r);
            return Ok(match null_checks.into_iter().reduce(Expr::or) {
                Some(either_null) => {
                    datafusion_expr::when(either_null, datafusion_expr::lit(false))
                        .otherwise(compared)?
                }
                None => compared,
            });
        }
        Ok(datafusion_expr::binary_expr(l, op, r))
    }

    /// A binary operator's operands, lowered; a string compared with `ROWTIME`, `WINDOWSTART`
    /// or `WINDOWEND` is read as a timestamp.
    fn operands(&self, left: &SqlExpr, op: Operator, right: &SqlExpr) -> Result<(Expr, Expr)> {
        let magic = |column: &SqlExpr, literal: &SqlExpr| {
            is_comparison(op)
                .then(|| super::temporal::magic_timestamp(column, literal))
                .flatten()
        };
        Ok(match (magic(left, right), magic(right, left)) {
            (Some(ts), _) => (self.lower(left)?, datafusion_expr::lit(ts)),
            (_, Some(ts)) => (datafusion_expr::lit(ts), self.lower(right)?),
            _ => (self.lower(left)?, self.lower(right)?),
        })
    }

    /// `a IS [NOT] DISTINCT FROM b`: NULL-aware equality.
    fn distinct(&self, left: &SqlExpr, right: &SqlExpr, negated: bool) -> Result<Expr> {
        let (l, r) = (self.lower(left)?, self.lower(right)?);
        let (lt, rt) = (self.data_type(&l)?, self.data_type(&r)?);
        let op = if negated {
            Operator::IsNotDistinctFrom
        } else {
            Operator::IsDistinctFrom
        };
        let (lc, rc) = BinaryTypeCoercer::new(&lt, &op, &rt)
            .get_input_types()
            .unwrap_or((lt.clone(), rt.clone()));
        Ok(datafusion_expr::binary_expr(
            cast_to(l, &lt, &lc),
            op,
            cast_to(r, &rt, &rc),
        ))
    }

    /// `s->f`: field `f` of struct `s` (names as ksqlDB normalizes them).
    fn struct_field(&self, base: &SqlExpr, field: &SqlExpr) -> Result<Expr> {
        let SqlExpr::Identifier(name) = field else {
            return Err(PlanError::Invalid(format!(
                "Expected a field name after '->', got {field}"
            )));
        };
        let base = self.lower(base)?;
        let name = normalize(name);
        match self.data_type(&base)? {
            DataType::Struct(fields) if fields.iter().any(|f| *f.name() == name) => {
                Ok(datafusion_functions::core::expr_fn::get_field(base, name))
            }
            DataType::Struct(_) => Err(PlanError::Invalid(format!(
                "Could not find field '{name}' in '{base}'."
            ))),
            other => Err(PlanError::Invalid(format!(
                "Expected STRUCT type for '->' dereference, got {}",
                crate::types::sql_name(&other)
            ))),
        }
    }

    fn unary(&self, op: &UnaryOperator, expr: &SqlExpr) -> Result<Expr> {
        // A negative number is one literal (so -9223372036854775808 fits a BIGINT).
        if let (UnaryOperator::Minus, SqlExpr::Value(v)) = (op, expr)
            && let Value::Number(n, long) = &v.value
        {
            return literal(&Value::Number(format!("-{n}"), *long), v.span.start);
        }
        let inner = self.lower(expr)?;
        match op {
            UnaryOperator::Not => Ok(Expr::Not(Box::new(inner))),
            UnaryOperator::Minus => Ok(Expr::Negative(Box::new(inner))),
            UnaryOperator::Plus => Ok(inner),
            other => Err(PlanError::Unsupported(format!("operator {other}"))),
        }
    }

    fn between(
        &self,
        expr: &SqlExpr,
        negated: bool,
        low: &SqlExpr,
        high: &SqlExpr,
    ) -> Result<Expr> {
        let e = self.lower(expr)?;
        let t = self.data_type(&e)?;
        let bound = |b: &SqlExpr| match super::temporal::magic_timestamp(expr, b) {
            Some(ts) => Ok(datafusion_expr::lit(ts)),
            None => self.lower(b),
        };
        let (low, high) = (bound(low)?, bound(high)?);
        let (lt, ht) = (self.data_type(&low)?, self.data_type(&high)?);
        Ok(Expr::Between(Between::new(
            Box::new(e),
            negated,
            Box::new(cast_to(low, &lt, &t)),
            Box::new(cast_to(high, &ht, &t)),
        )))
    }

    fn function(&self, f: &Function) -> Result<Expr> {
        let name = f.name.to_string();
        if name.eq_ignore_ascii_case("COALESCE") || name.eq_ignore_ascii_case("IFNULL") {
            return self.coalesce(&function_args(f)?);
        }
        if name.eq_ignore_ascii_case("STRUCT") {
            return self.struct_constructor(f);
        }
        if super::temporal::is_temporal(&name) {
            return self.temporal(&name, &function_args(f)?);
        }
        let upper = name.to_ascii_uppercase();
        if matches!(upper.as_str(), "SPLIT" | "LPAD" | "RPAD") {
            return self.string_or_bytes(&upper, &function_args(f)?);
        }
        if name.eq_ignore_ascii_case("MAP") {
            return self.map_constructor(f);
        }
        if matches!(upper.as_str(), "GREATEST" | "LEAST") {
            return self.greatest_least(&upper, &function_args(f)?);
        }
        if upper == "GENERATE_SERIES" {
            return self.generate_series(&function_args(f)?);
        }
        let kind = match name.to_ascii_uppercase().as_str() {
            "TRANSFORM" => Some(LambdaKind::Transform),
            "FILTER" => Some(LambdaKind::Filter),
            "REDUCE" => Some(LambdaKind::Reduce),
            _ => None,
        };
        if let Some(kind) = kind {
            return self.lambda_call(kind, &function_args(f)?);
        }
        if name.eq_ignore_ascii_case("ARRAY_SORT") {
            // ksqlDB sorts NULLs last, ascending unless told 'DESC'.
            let mut args = function_args(f)?
                .iter()
                .map(|a| self.lower(a))
                .collect::<Result<Vec<_>>>()?;
            if args.len() == 1 {
                args.push(Expr::Literal(ScalarValue::Utf8(Some("ASC".into())), None));
            }
            args.push(Expr::Literal(
                ScalarValue::Utf8(Some("NULLS LAST".into())),
                None,
            ));
            return self.call(&datafusion_functions_nested::sort::array_sort_udf(), args);
        }
        // AS_VALUE(x) is x: it only makes a key column (which must be selected as the key)
        // appear in the value too.
        if name.eq_ignore_ascii_case("AS_VALUE") {
            return match function_args(f)?.as_slice() {
                // The alias keeps it from being taken for the key column itself.
                [arg] => Ok(self.lower(arg)?.alias("AS_VALUE")),
                _ => Err(PlanError::Invalid("AS_VALUE takes one argument".into())),
            };
        }
        let udf = crate::functions::scalar(&name)
            .ok_or_else(|| PlanError::UnknownFunction(name.to_ascii_uppercase()))?;
        let args = function_args(f)?
            .iter()
            .map(|a| self.lower(a))
            .collect::<Result<Vec<_>>>()?;
        self.call(&udf, args)
    }

    /// `STRUCT(f1 := v1, ...)` as DataFusion's `named_struct('F1', v1, ...)`.
    fn struct_constructor(&self, f: &Function) -> Result<Expr> {
        let list = match &f.args {
            FunctionArguments::List(list) if !list.args.is_empty() => list,
            // STRUCT(): a struct with no fields.
            _ => {
                let empty = arrow::array::StructArray::new_empty_fields(1, None);
                return Ok(Expr::Literal(ScalarValue::Struct(Arc::new(empty)), None));
            }
        };
        let mut args = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for arg in &list.args {
            let FunctionArg::Named {
                name,
                arg: FunctionArgExpr::Expr(value),
                ..
            } = arg
            else {
                return Err(PlanError::Invalid(format!(
                    "STRUCT fields are written name := value, got {arg}"
                )));
            };
            let field = normalize(name);
            if names.contains(&field) {
                return Err(PlanError::Invalid(format!(
                    "Duplicate field names found in STRUCT: '{field}'"
                )));
            }
            names.push(field.clone());
            args.push(Expr::Literal(ScalarValue::Utf8(Some(field)), None));
            args.push(self.lower(value)?);
        }
        Ok(datafusion_functions::core::named_struct().call(args))
    }

    /// `TRANSFORM`, `FILTER` or `REDUCE` over an array or a map, with lambdas.
    fn lambda_call(&self, kind: LambdaKind, args: &[SqlExpr]) -> Result<Expr> {
        let bad = || PlanError::Invalid(format!("wrong arguments for {kind:?}: {args:?}"));
        let collection = self.lower(args.first().ok_or_else(bad)?)?;
        let collection_type = self.data_type(&collection)?;
        let items: Vec<DataType> = match &collection_type {
            DataType::List(f) => vec![f.data_type().clone()],
            DataType::Map(entries, _) => match entries.data_type() {
                DataType::Struct(kv) => vec![kv[0].data_type().clone(), kv[1].data_type().clone()],
                _ => return Err(bad()),
            },
            other => {
                return Err(PlanError::Invalid(format!(
                    "{kind:?} takes an ARRAY or a MAP, not {}",
                    crate::types::sql_name(other)
                )));
            }
        };
        let is_map = items.len() == 2;
        let (lambdas, returns, call_args) = match kind {
            LambdaKind::Reduce => {
                let init = self.lower(args.get(1).ok_or_else(bad)?)?;
                let state = self.data_type(&init)?;
                let mut types = vec![state.clone()];
                types.extend(items);
                let (lambda, _) = self.plan_lambda(args.get(2).ok_or_else(bad)?, &types)?;
                (vec![lambda], state, vec![collection, init])
            }
            LambdaKind::Filter => {
                let (lambda, _) = self.plan_lambda(args.get(1).ok_or_else(bad)?, &items)?;
                (vec![lambda], collection_type, vec![collection])
            }
            LambdaKind::Transform if is_map => {
                let (keys, key_type) = self.plan_lambda(args.get(1).ok_or_else(bad)?, &items)?;
                let (values, value_type) =
                    self.plan_lambda(args.get(2).ok_or_else(bad)?, &items)?;
                (
                    vec![keys, values],
                    crate::types::map_of(key_type, value_type),
                    vec![collection],
                )
            }
            LambdaKind::Transform => {
                let (lambda, t) = self.plan_lambda(args.get(1).ok_or_else(bad)?, &items)?;
                let returns =
                    DataType::List(Arc::new(arrow::datatypes::Field::new("item", t, true)));
                (vec![lambda], returns, vec![collection])
            }
        };
        let udf = crate::functions::lambda::LambdaCall::udf(kind, lambdas, returns);
        Ok(udf.call(call_args))
    }

    /// A lambda's body planned over its parameters, which take `types`; and its type.
    fn plan_lambda(
        &self,
        expr: &SqlExpr,
        types: &[DataType],
    ) -> Result<(crate::functions::lambda::Lambda, DataType)> {
        let SqlExpr::Lambda(lambda) = expr else {
            return Err(PlanError::Invalid(format!("expected a lambda, got {expr}")));
        };
        let names: Vec<String> = lambda.params.iter().map(|p| normalize(&p.name)).collect();
        if names.len() != types.len() {
            return Err(PlanError::Invalid(format!(
                "the lambda {expr} takes {} arguments, not {}",
                types.len(),
                names.len()
            )));
        }
        let params = crate::functions::lambda::params(&names, types);
        let df = DFSchema::try_from(params.as_ref().clone())?;
        let planner = ExprPlanner {
            strict_arithmetic: true,
            ..ExprPlanner::new(&df)
        };
        let lowered = planner.lower(&lambda.body)?;
        let returns = planner.data_type(&lowered)?;
        let body = planner.physical(&lowered)?;
        Ok((crate::functions::lambda::Lambda { body, params }, returns))
    }

    /// `MAP(k1 := v1, ...)` (keys and values are expressions) or `MAP(keys, values)` (two
    /// arrays), as DataFusion's `map`.
    fn map_constructor(&self, f: &Function) -> Result<Expr> {
        let list = match &f.args {
            FunctionArguments::List(list) if !list.args.is_empty() => list,
            _ => return Err(PlanError::Invalid(
                "Map constructor cannot be empty. Please supply at least one key value pair (see https://github.com/confluentinc/ksql/issues/4239).".into(),
            )),
        };
        let (mut keys, mut values) = (Vec::new(), Vec::new());
        for arg in &list.args {
            let Some((key, value)) = self.map_entry(arg)? else {
                // MAP(keys, values): two arrays.
                let args = function_args(f)?
                    .iter()
                    .map(|a| self.lower(a))
                    .collect::<Result<Vec<_>>>()?;
                return self.call(&datafusion_functions_nested::map::map_udf(), args);
            };
            keys.push(key);
            values.push(value);
        }
        let (keys, values) = self.map_entries(keys, &values)?;
        check_map_entries(&keys, &values)?;
        let array = datafusion_functions_nested::make_array::make_array_udf();
        let keys = self.call(&array, keys)?;
        let values = self.call(&array, values)?;
        self.call(
            &datafusion_functions_nested::map::map_udf(),
            vec![keys, values],
        )
    }

    /// One `key := value` entry of a map constructor: the key lowered and the value as
    /// written; `None` for a plain argument (the two-array form).
    fn map_entry<'f>(&self, arg: &'f FunctionArg) -> Result<Option<(Expr, &'f SqlExpr)>> {
        Ok(Some(match arg {
            FunctionArg::Named {
                name,
                arg: FunctionArgExpr::Expr(value),
                ..
            } if name.quote_style == Some('\'') => (
                Expr::Literal(ScalarValue::Utf8(Some(name.value.clone())), None),
                value,
            ),
            FunctionArg::Named {
                name,
                arg: FunctionArgExpr::Expr(value),
                ..
            } if name.value.eq_ignore_ascii_case("NULL") => {
                (Expr::Literal(ScalarValue::Null, None), value)
            }
            FunctionArg::Named {
                name,
                arg: FunctionArgExpr::Expr(value),
                ..
            } => (self.lower(&SqlExpr::Identifier(name.clone()))?, value),
            FunctionArg::ExprNamed {
                name,
                arg: FunctionArgExpr::Expr(value),
                ..
            } => (self.lower(name)?, value),
            // `10 := v`: sqlparser reads a literal key as an assignment expression.
            FunctionArg::Unnamed(FunctionArgExpr::Expr(SqlExpr::BinaryOp {
                left,
                op: BinaryOperator::Assignment,
                right,
            })) => (self.lower(left)?, right.as_ref()),
            FunctionArg::Unnamed(FunctionArgExpr::Expr(_)) => return Ok(None),
            other => {
                return Err(PlanError::Invalid(format!(
                    "MAP entries are written key := value, got {other}"
                )));
            }
        }))
    }

    /// `GENERATE_SERIES(start, end[, step])`: the numbers from `start` to `end` inclusive,
    /// counting down when `end` is smaller and no step is given; INT for INT arguments.
    fn generate_series(&self, args: &[SqlExpr]) -> Result<Expr> {
        let (lowered, types) = self.lower_typed(args)?;
        let [start, end, rest @ ..] = lowered.as_slice() else {
            return Err(PlanError::Invalid(
                "GENERATE_SERIES takes a start, an end and optionally a step".into(),
            ));
        };
        let wide = |e: &Expr| datafusion_expr::cast(e.clone(), DataType::Int64);
        let step = match rest.first() {
            Some(step) => wide(step),
            None => datafusion_expr::when(wide(start).lt_eq(wide(end)), datafusion_expr::lit(1i64))
                .otherwise(datafusion_expr::lit(-1i64))?,
        };
        let series = datafusion_functions_nested::range::gen_series_udf().call(vec![
            wide(start),
            wide(end),
            step,
        ]);
        Ok(if types.iter().all(|t| *t == DataType::Int32) {
            let item = Arc::new(arrow::datatypes::Field::new("item", DataType::Int32, true));
            datafusion_expr::cast(series, DataType::List(item))
        } else {
            series
        })
    }

    /// `sql` (lowered as `value` of type `t`) read as `target` when it is a string literal and
    /// `target` a number or a boolean (ksqlDB's error when it holds none); else as it is.
    fn read_literal_as(
        &self,
        sql: &SqlExpr,
        (value, t): (Expr, DataType),
        target: &DataType,
    ) -> Result<(Expr, DataType)> {
        let Some(text) = string_literal(sql).filter(|_| !target.is_null()) else {
            return Ok((value, t));
        };
        match super::in_list::literal_as(text, target)? {
            Some(read) => {
                let value = self.lower(&read)?;
                let t = self.data_type(&value)?;
                Ok((value, t))
            }
            None => Ok((value, t)),
        }
    }

    /// A map constructor's keys and values in one key type and one value type, as ksqlDB
    /// types them: the first key's type (a NULL key of a STRING map reads `null`), and the
    /// first value's that is not a string literal (string literals read as that type).
    fn map_entries(&self, keys: Vec<Expr>, values: &[&SqlExpr]) -> Result<(Vec<Expr>, Vec<Expr>)> {
        let (lowered, types) = self.lower_typed(values.iter().copied())?;
        let value_type = (types.iter().zip(values))
            .find(|(t, v)| !t.is_null() && string_literal(v).is_none())
            .or_else(|| types.iter().zip(values).find(|(t, _)| !t.is_null()))
            .map(|(t, _)| t.clone());
        let mut out_values = Vec::with_capacity(values.len());
        for ((value, t), sql) in lowered.into_iter().zip(types).zip(values) {
            let (value, t) = match &value_type {
                Some(target) => self.read_literal_as(sql, (value, t), target)?,
                None => (value, t),
            };
            out_values.push(match &value_type {
                Some(target) => cast_to(value, &t, target),
                None => value,
            });
        }
        let key_types = keys
            .iter()
            .map(|k| self.data_type(k))
            .collect::<Result<Vec<_>>>()?;
        let key_type = key_types.iter().find(|t| !t.is_null()).cloned();
        let out_keys = keys
            .into_iter()
            .zip(&key_types)
            .map(|(k, t)| match &key_type {
                Some(DataType::Utf8) if t.is_null() && !out_values.is_empty() => {
                    datafusion_expr::lit("null")
                }
                Some(target) => cast_to(k, t, target),
                None => k,
            })
            .collect();
        Ok((out_keys, out_values))
    }

    /// `COALESCE(a, b, ...)` as `CASE WHEN a IS NOT NULL THEN a ... END`, in the first
    /// argument's type.
    fn coalesce(&self, args: &[SqlExpr]) -> Result<Expr> {
        let args = args
            .iter()
            .map(|a| self.lower(a))
            .collect::<Result<Vec<_>>>()?;
        let Some(first) = args.first() else {
            return Err(PlanError::Invalid(
                "Function 'COALESCE' does not accept parameters ()".into(),
            ));
        };
        let target = self.data_type(first)?;
        let when_then = args
            .iter()
            .map(|a| {
                let t = self.data_type(a)?;
                Ok((
                    Box::new(Expr::IsNotNull(Box::new(a.clone()))),
                    Box::new(cast_to(a.clone(), &t, &target)),
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Expr::Case(Case::new(None, when_then, None)))
    }

    /// Calls `udf`, casting the arguments to what its signature accepts.
    pub(super) fn call(&self, udf: &Arc<ScalarUDF>, args: Vec<Expr>) -> Result<Expr> {
        let fields = args
            .iter()
            .map(|a| Ok(a.to_field(self.schema)?.1))
            .collect::<Result<Vec<_>>>()?;
        let coerced = fields_with_udf(&fields, udf.as_ref())?;
        let args = args
            .into_iter()
            .zip(fields.iter().zip(&coerced))
            .map(|(a, (from, to))| cast_to(a, from.data_type(), to.data_type()))
            .collect();
        let call = Expr::ScalarFunction(ScalarFunction::new_udf(Arc::clone(udf), args));
        // ksqlDB's TIMESTAMP is milliseconds; DataFusion may coerce to another unit (GREATEST
        // of timestamps and a date string gives nanoseconds).
        let millis = DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None);
        match self.data_type(&call)? {
            DataType::Timestamp(unit, _) if unit != arrow::datatypes::TimeUnit::Millisecond => {
                Ok(datafusion_expr::cast(call, millis))
            }
            // ksqlDB has no unsigned types: DataFusion's counts and lengths are INTEGERs.
            DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
                Ok(datafusion_expr::cast(call, DataType::Int32))
            }
            _ => Ok(call),
        }
    }
}

/// ksqlDB compares numbers with numbers only (a string is not read as a number here, unlike
/// in IN lists), and never orders arrays, maps or structs.
fn check_comparable(
    (left, lt): (&SqlExpr, &DataType),
    op: Operator,
    (right, rt): (&SqlExpr, &DataType),
) -> Result<()> {
    let nested = |t: &DataType| {
        matches!(
            t,
            DataType::List(_) | DataType::Map(..) | DataType::Struct(_)
        )
    };
    let ordering = matches!(
        op,
        Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq
    );
    let text_and_number =
        |a: &DataType, b: &DataType| family(a) == Family::Number && matches!(b, DataType::Utf8);
    let mismatched = is_comparison(op) && (text_and_number(lt, rt) || text_and_number(rt, lt));
    if mismatched || (ordering && (nested(lt) || nested(rt))) {
        return Err(PlanError::Invalid(format!(
            "Cannot compare {} ({}) to {} ({}) with {}.",
            normalize_expr(left),
            crate::types::sql_name(lt),
            normalize_expr(right),
            crate::types::sql_name(rt),
            comparison_name(op)
        )));
    }
    Ok(())
}

/// ksqlDB's error for operands an operator does not take.
fn unsupported_operands(
    (left, lt): (&SqlExpr, &DataType),
    (sql_op, op): (&BinaryOperator, Operator),
    (right, rt): (&SqlExpr, &DataType),
) -> PlanError {
    let base = |t: &DataType| {
        let name = crate::types::sql_name(t);
        name.split('(').next().unwrap_or_default().to_string()
    };
    let text = super::text::ksql_text(&SqlExpr::BinaryOp {
        left: Box::new(left.clone()),
        op: sql_op.clone(),
        right: Box::new(right.clone()),
    });
    let what = if is_arithmetic_operator(op) {
        format!("Unsupported arithmetic types. {} {}", base(lt), base(rt))
    } else {
        format!(
            "Unsupported {op} between {} and {}",
            crate::types::sql_name(lt),
            crate::types::sql_name(rt)
        )
    };
    PlanError::Invalid(format!("Error processing expression: {text}. {what}"))
}

fn is_arithmetic_operator(op: Operator) -> bool {
    matches!(
        op,
        Operator::Plus | Operator::Minus | Operator::Multiply | Operator::Divide | Operator::Modulo
    )
}

/// Whether `expr` is arithmetic (`+ - * / %`, possibly in parentheses).
fn is_arithmetic(expr: &SqlExpr) -> bool {
    match expr {
        SqlExpr::Nested(inner) => is_arithmetic(inner),
        SqlExpr::BinaryOp { op, .. } => matches!(
            op,
            BinaryOperator::Plus
                | BinaryOperator::Minus
                | BinaryOperator::Multiply
                | BinaryOperator::Divide
                | BinaryOperator::Modulo
        ),
        _ => false,
    }
}

/// The text of a string literal.
pub(super) fn string_literal(expr: &SqlExpr) -> Option<&str> {
    match expr {
        SqlExpr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => Some(s),
            _ => None,
        },
        _ => None,
    }
}

/// The DECIMAL type of a number written as text (`'2e1'` is DECIMAL(2, 0)), as Java's
/// BigDecimal reads it; `None` if it is no number.
fn decimal_type(text: &str) -> Option<DataType> {
    let text = text.trim().trim_start_matches(['+', '-']);
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().ok()?),
        None => (text, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if !(whole.chars().chain(fraction.chars())).all(|c| c.is_ascii_digit())
        || whole.len() + fraction.len() == 0
    {
        return None;
    }
    let digits = format!("{whole}{fraction}")
        .trim_start_matches('0')
        .len()
        .max(1) as i32;
    let scale = fraction.len() as i32 - exponent;
    let (precision, scale) = if scale < 0 {
        (digits - scale, 0)
    } else {
        (digits.max(scale), scale)
    };
    Some(DataType::Decimal128(
        u8::try_from(precision.clamp(1, 38)).ok()?,
        i8::try_from(scale.min(38)).ok()?,
    ))
}

/// The name of the column an identifier (`c` or `alias.c`) refers to, as ksqlDB normalizes it.
pub fn column_name(expr: &SqlExpr) -> Option<String> {
    match expr {
        SqlExpr::Identifier(id) => Some(normalize(id)),
        SqlExpr::CompoundIdentifier(parts) => parts.last().map(normalize),
        _ => None,
    }
}

/// ksqlDB's checks of `MAP(k := v, ...)`: some key and some value must not be NULL.
fn check_map_entries(keys: &[Expr], values: &[Expr]) -> Result<()> {
    let all_null = |exprs: &[Expr]| {
        exprs
            .iter()
            .all(|e| matches!(e, Expr::Literal(ScalarValue::Null, _)))
    };
    for (exprs, what) in [(keys, "keys"), (values, "values")] {
        if all_null(exprs) {
            return Err(PlanError::Invalid(format!(
                "Cannot construct a map with all NULL {what}"
            )));
        }
    }
    Ok(())
}

/// ksqlDB's checks of `ARRAY[...]`: not empty, not only NULLs (the type would be unknown).
fn check_constructor_elements(elements: &[SqlExpr]) -> Result<()> {
    let issue = "(see https://github.com/confluentinc/ksql/issues/4239)";
    if elements.is_empty() {
        return Err(PlanError::Invalid(format!(
            "Array constructor cannot be empty. Please supply at least one element {issue}."
        )));
    }
    let null = |e: &SqlExpr| matches!(e, SqlExpr::Value(v) if v.value == Value::Null);
    if elements.iter().all(null) {
        return Err(PlanError::Invalid(format!(
            "Cannot construct an array with all NULL elements {issue}. As a workaround, you may cast a NULL value to the desired type."
        )));
    }
    Ok(())
}

/// The plain argument expressions of a call; `*` yields none.
pub fn function_args(f: &Function) -> Result<Vec<SqlExpr>> {
    let FunctionArguments::List(list) = &f.args else {
        return Ok(Vec::new());
    };
    list.args
        .iter()
        .filter_map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(Ok(e.clone())),
            FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => None,
            other => Some(Err(PlanError::Unsupported(format!(
                "function argument {other}"
            )))),
        })
        .collect()
}

/// Kinds of values that compare with each other.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Family {
    Number,
    Text,
    Boolean,
    Array,
    Map,
    Struct,
    Other(DataType),
}

pub(super) fn family(t: &DataType) -> Family {
    match t {
        t if t.is_numeric() => Family::Number,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Family::Text,
        DataType::Boolean => Family::Boolean,
        DataType::List(_) => Family::Array,
        DataType::Map(..) => Family::Map,
        DataType::Struct(_) => Family::Struct,
        other => Family::Other(other.clone()),
    }
}

fn cast_to(expr: Expr, from: &DataType, to: &DataType) -> Expr {
    if from == to {
        expr
    } else {
        datafusion_expr::cast(expr, to.clone())
    }
}

/// ksqlDB's literal types.
/// A literal; a number ksqlDB cannot hold fails with its position (at `at`), as ksqlDB's
/// statement preparation reports it.
fn literal(value: &Value, at: sqlparser::tokenizer::Location) -> Result<Expr> {
    Ok(Expr::Literal(
        match value {
            // ksqlDB reports these one column past the literal's first character (its AST
            // builder adds one to a position that already counts from one).
            Value::Number(n, _) => number(n).map_err(|e| {
                PlanError::Invalid(format!(
                    "Failed to prepare statement: line {}:{}: {e}",
                    at.line,
                    at.column + 1
                ))
            })?,
            Value::SingleQuotedString(s) => ScalarValue::Utf8(Some(s.clone())),
            Value::Boolean(b) => ScalarValue::Boolean(Some(*b)),
            Value::Null => ScalarValue::Null,
            other => return Err(PlanError::Unsupported(format!("literal {other}"))),
        },
        None,
    ))
}

fn number(text: &str) -> Result<ScalarValue> {
    let invalid = || PlanError::Invalid(format!("Invalid numeric literal: {text}"));
    if text.contains(['e', 'E']) {
        let f: f64 = text.parse().map_err(|_| invalid())?;
        if f.is_infinite() {
            return Err(PlanError::Invalid(format!(
                "Number overflows DOUBLE: {text}"
            )));
        }
        return Ok(ScalarValue::Float64(Some(f)));
    }
    if let Some((whole, fraction)) = text.split_once('.') {
        let digits = format!("{whole}{fraction}");
        let unscaled: i128 = digits.parse().map_err(|_| invalid())?;
        let precision = digits
            .trim_start_matches('0')
            .len()
            .max(fraction.len())
            .max(1);
        return Ok(ScalarValue::Decimal128(
            Some(unscaled),
            u8::try_from(precision).map_err(|_| invalid())?,
            i8::try_from(fraction.len()).map_err(|_| invalid())?,
        ));
    }
    let n: i64 = text.parse().map_err(|_| invalid())?;
    Ok(match i32::try_from(n) {
        Ok(small) => ScalarValue::Int32(Some(small)),
        Err(_) => ScalarValue::Int64(Some(n)),
    })
}

/// The Arrow type of a `CAST(... AS type)` target.
fn cast_type(data_type: &SqlDataType) -> Result<DataType> {
    let text = data_type.to_string();
    let dialect = crate::sql::dialect::KsqlDialect;
    let sql_type = crate::sql::parser::KsqlParser::new(&dialect, &text)
        .and_then(|mut p| p.parse_sql_type())
        .map_err(|e| PlanError::Invalid(e.message))?;
    crate::types::to_arrow(&sql_type)
        .ok_or_else(|| PlanError::Unsupported(format!("cast to {text}")))
}

fn is_comparison(op: Operator) -> bool {
    matches!(
        op,
        Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq
    )
}

/// ksqlDB's name of a comparison, as its messages print it.
fn comparison_name(op: Operator) -> &'static str {
    match op {
        Operator::Lt => "LESS_THAN",
        Operator::LtEq => "LESS_THAN_OR_EQUAL",
        Operator::Gt => "GREATER_THAN",
        Operator::GtEq => "GREATER_THAN_OR_EQUAL",
        Operator::Eq => "EQUAL",
        _ => "NOT_EQUAL",
    }
}

/// DataFusion's operator for a ksqlDB binary operator.
fn binary_operator(op: &BinaryOperator) -> Result<Operator> {
    Ok(match op {
        BinaryOperator::Plus => Operator::Plus,
        BinaryOperator::Minus => Operator::Minus,
        BinaryOperator::Multiply => Operator::Multiply,
        BinaryOperator::Divide => Operator::Divide,
        BinaryOperator::Modulo => Operator::Modulo,
        BinaryOperator::Eq => Operator::Eq,
        BinaryOperator::NotEq => Operator::NotEq,
        BinaryOperator::Lt => Operator::Lt,
        BinaryOperator::LtEq => Operator::LtEq,
        BinaryOperator::Gt => Operator::Gt,
        BinaryOperator::GtEq => Operator::GtEq,
        BinaryOperator::And => Operator::And,
        BinaryOperator::Or => Operator::Or,
        BinaryOperator::StringConcat => Operator::StringConcat,
        other => return Err(PlanError::Unsupported(format!("operator {other}"))),
    })
}

/// ksqlDB refuses arithmetic and comparisons with a `NULL` literal operand (its type is
/// unknown; `IS NULL` is the way to test for NULL).
fn check_null_operand(
    (left, lt): (&SqlExpr, &DataType),
    op: Operator,
    (right, rt): (&SqlExpr, &DataType),
) -> Result<()> {
    let arithmetic = matches!(
        op,
        Operator::Plus | Operator::Minus | Operator::Multiply | Operator::Divide | Operator::Modulo
    );
    let is_null = |e: &SqlExpr| matches!(e, SqlExpr::Value(v) if v.value == Value::Null);
    if !(is_null(left) || is_null(right)) {
        return Ok(());
    }
    if is_comparison(op) {
        let side = |e: &SqlExpr, t: &DataType| {
            if is_null(e) {
                "NULL".to_string()
            } else {
                crate::types::sql_name(t)
            }
        };
        let symbol = match op {
            Operator::NotEq => "<>".to_string(),
            other => other.to_string(),
        };
        return Err(PlanError::Invalid(format!(
            "Comparison with NULL not supported: {} {symbol} {}\nUse 'IS NULL' or 'IS NOT NULL' instead.",
            side(left, lt),
            side(right, rt)
        )));
    }
    if !arithmetic {
        return Ok(());
    }
    let name = |e: &SqlExpr, t: &DataType| {
        if is_null(e) {
            "null".to_string()
        } else {
            crate::types::sql_name(t)
        }
    };
    let text = |e: &SqlExpr| {
        if is_null(e) {
            "null".to_string()
        } else {
            normalize_expr(e)
        }
    };
    Err(PlanError::Invalid(format!(
        "Error processing expression: ({} {op} {}). Arithmetic on types {} and {} are not supported.",
        text(left),
        text(right),
        name(left, lt),
        name(right, rt)
    )))
}

/// An expression with its names upper-cased, as ksqlDB's messages print it.
fn normalize_expr(expr: &SqlExpr) -> String {
    super::rewrite::rewrite(expr, &mut |e| match e {
        SqlExpr::Identifier(id) => Some(SqlExpr::Identifier(sqlparser::ast::Ident::new(
            normalize(id),
        ))),
        _ => None,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_follow_ksqldb_types() {
        assert_eq!(number("3").unwrap(), ScalarValue::Int32(Some(3)));
        assert_eq!(
            number("3000000000").unwrap(),
            ScalarValue::Int64(Some(3_000_000_000))
        );
        assert_eq!(
            number("1.50").unwrap(),
            ScalarValue::Decimal128(Some(150), 3, 2)
        );
        assert_eq!(number("1.5E0").unwrap(), ScalarValue::Float64(Some(1.5)));
    }
}
