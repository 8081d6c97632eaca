//! Limits on how deeply a statement may nest, so that no input can overflow a stack.
//!
//! sqlparser parses chains of binary operators (`a OR b OR ...`, `x + y + ...`) in a loop,
//! building trees as deep as the chain is long; everything after it (printing, planning,
//! lowering to DataFusion, evaluating, dropping) recurses once per level. So each expression
//! is measured right after it is parsed, by a visitor that stops at the limit (it never
//! recurses deeper itself), and one that nests too deeply is refused with its position and
//! taken apart without recursion. Types (`ARRAY<ARRAY<...>>`) are bounded where they are
//! parsed; other nesting (parentheses, `NOT`, function calls) is bounded by sqlparser's own
//! recursion limit. Threads that plan statements or run queries get [`THREAD_STACK`] of
//! stack, room for planning expressions [`MAX_EXPRESSION_DEPTH`] deep in a debug build.

use std::ops::ControlFlow;

use sqlparser::ast::{Expr, Value, Visit, Visitor};

/// How deeply expressions may nest (a chain of 1,000 `OR`s is 1,000 deep).
pub const MAX_EXPRESSION_DEPTH: usize = 1_000;
/// How deeply types may nest (`ARRAY<STRUCT<A ARRAY<...>>>`).
pub const MAX_TYPE_DEPTH: usize = 100;
/// The stack of threads that parse and plan statements or run queries (reserved, not
/// used: pages are only touched as deep as a thread recurses).
pub const THREAD_STACK: usize = 64 << 20;

/// The message for an expression nesting deeper than [`MAX_EXPRESSION_DEPTH`].
pub fn too_deep() -> String {
    format!(
        "Expression nests more than {MAX_EXPRESSION_DEPTH} levels deep (the limit of nesting and of chained operators such as AND, OR, + and ||)"
    )
}

/// Whether `node`'s expressions nest at most [`MAX_EXPRESSION_DEPTH`] levels.
pub fn within_depth<V: Visit>(node: &V) -> bool {
    let mut visitor = Depth { depth: 0 };
    node.visit(&mut visitor).is_continue()
}

struct Depth {
    depth: usize,
}

impl Visitor for Depth {
    type Break = ();

    fn pre_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
        self.depth += 1;
        if self.depth > MAX_EXPRESSION_DEPTH {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    fn post_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
}

/// Drops `expr` without recursing into the chains that make expressions deep (binary and
/// unary operators, parentheses, `IS` tests, casts).
pub fn dismantle(expr: Expr) {
    let take = |e: &mut Box<Expr>| std::mem::replace(e.as_mut(), Expr::value(Value::Null));
    let mut stack = vec![expr];
    while let Some(mut e) = stack.pop() {
        match &mut e {
            Expr::BinaryOp { left, right, .. } => {
                stack.push(take(left));
                stack.push(take(right));
            }
            Expr::UnaryOp { expr, .. }
            | Expr::Nested(expr)
            | Expr::IsNull(expr)
            | Expr::IsNotNull(expr)
            | Expr::IsTrue(expr)
            | Expr::IsFalse(expr)
            | Expr::IsNotTrue(expr)
            | Expr::IsNotFalse(expr)
            | Expr::IsUnknown(expr)
            | Expr::IsNotUnknown(expr)
            | Expr::Cast { expr, .. } => stack.push(take(expr)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(terms: usize, op: &str) -> String {
        (0..terms)
            .map(|i| format!("a = {i}"))
            .collect::<Vec<_>>()
            .join(&format!(" {op} "))
    }

    fn parse(sql: &str) -> Expr {
        let dialect = super::super::dialect::KsqlDialect;
        sqlparser::parser::Parser::new(&dialect)
            .try_with_sql(sql)
            .unwrap()
            .parse_expr()
            .unwrap()
    }

    #[test]
    fn chains_up_to_the_limit_pass_and_ten_times_longer_ones_are_refused_without_recursing() {
        // Each `a = i` is two levels under the OR chain's own.
        let fits = parse(&chain(MAX_EXPRESSION_DEPTH / 2 - 2, "OR"));
        assert!(within_depth(&fits));
        dismantle(fits);
        // On the test thread's small stack: neither the check nor the drop recurses.
        let deep = parse(&chain(MAX_EXPRESSION_DEPTH * 10, "OR"));
        assert!(!within_depth(&deep));
        dismantle(deep);
    }
}
