//! Pre-order rewriting of sqlparser expressions.
//!
//! The aggregate planner replaces aggregate calls and GROUP BY expressions inside SELECT and
//! HAVING with references to the aggregation's output columns. [`rewrite`] walks an
//! expression top-down and lets a closure replace any node (the node's children are then not
//! visited). It covers the expression forms the planner lowers; other forms are left as is.

use sqlparser::ast::{
    CaseWhen, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList,
    FunctionArguments, Ident, WindowSpec, WindowType,
};

/// The columns `expr` names (unquoted names upper-cased; the last part of `a.b`), in order
/// of appearance, each once.
pub fn column_names(expr: &Expr) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    rewrite(expr, &mut |e| {
        let name = match e {
            Expr::Identifier(id) => Some(crate::sql::ast::normalize(id)),
            Expr::CompoundIdentifier(ids) => ids.last().map(crate::sql::ast::normalize),
            _ => None,
        };
        if let Some(name) = name.filter(|n| !names.contains(n)) {
            names.push(name);
        }
        None
    });
    names
}

/// Rewrites `expr` top-down: where `f` returns a replacement, it is used and not descended.
pub fn rewrite(expr: &Expr, f: &mut dyn FnMut(&Expr) -> Option<Expr>) -> Expr {
    if let Some(replacement) = f(expr) {
        return replacement;
    }
    let mut go = |e: &Expr| Box::new(rewrite(e, f));
    match expr {
        Expr::BinaryOp { left, op, right } => Expr::BinaryOp {
            left: go(left),
            op: op.clone(),
            right: go(right),
        },
        Expr::UnaryOp { op, expr } => Expr::UnaryOp {
            op: *op,
            expr: go(expr),
        },
        Expr::Nested(e) => Expr::Nested(go(e)),
        Expr::IsNull(e) => Expr::IsNull(go(e)),
        Expr::IsNotNull(e) => Expr::IsNotNull(go(e)),
        Expr::Between {
            expr,
            negated,
            low,
            high,
        } => Expr::Between {
            expr: go(expr),
            negated: *negated,
            low: go(low),
            high: go(high),
        },
        Expr::InList {
            expr,
            list,
            negated,
        } => {
            let e = go(expr);
            Expr::InList {
                expr: e,
                list: list.iter().map(|i| rewrite(i, f)).collect(),
                negated: *negated,
            }
        }
        Expr::Like { .. } => rewrite_like(expr, f),
        Expr::Cast { .. } | Expr::Case { .. } => rewrite_cast_or_case(expr, f),
        Expr::Substring { .. }
        | Expr::Trim { .. }
        | Expr::CompoundFieldAccess { .. }
        | Expr::Array(_) => rewrite_access(expr, f),
        Expr::IsDistinctFrom(a, b) => Expr::IsDistinctFrom(go(a), go(b)),
        Expr::IsNotDistinctFrom(a, b) => Expr::IsNotDistinctFrom(go(a), go(b)),
        Expr::Function(func) => Expr::Function(rewrite_function(func, f)),
        Expr::Lambda(lambda) => Expr::Lambda(rewrite_lambda(lambda, f)),
        other => other.clone(),
    }
}

/// SUBSTRING, TRIM, subscripts and array constructors.
fn rewrite_access(expr: &Expr, f: &mut dyn FnMut(&Expr) -> Option<Expr>) -> Expr {
    let mut go = |e: &Expr| Box::new(rewrite(e, f));
    match expr {
        Expr::Substring {
            expr: inner,
            substring_from,
            substring_for,
            special,
            shorthand,
        } => Expr::Substring {
            expr: go(inner),
            substring_from: substring_from.as_deref().map(|e| Box::new(rewrite(e, f))),
            substring_for: substring_for.as_deref().map(|e| Box::new(rewrite(e, f))),
            special: *special,
            shorthand: *shorthand,
        },
        Expr::Trim {
            expr: inner,
            trim_where,
            trim_what,
            trim_characters,
        } => Expr::Trim {
            expr: go(inner),
            trim_where: *trim_where,
            trim_what: trim_what.as_deref().map(|e| Box::new(rewrite(e, f))),
            trim_characters: trim_characters.clone(),
        },
        Expr::CompoundFieldAccess { root, access_chain } => Expr::CompoundFieldAccess {
            root: go(root),
            access_chain: access_chain
                .iter()
                .map(|a| match a {
                    sqlparser::ast::AccessExpr::Subscript(sqlparser::ast::Subscript::Index {
                        index,
                    }) => sqlparser::ast::AccessExpr::Subscript(sqlparser::ast::Subscript::Index {
                        index: rewrite(index, f),
                    }),
                    other => other.clone(),
                })
                .collect(),
        },
        Expr::Array(array) => Expr::Array(sqlparser::ast::Array {
            elem: array.elem.iter().map(|e| rewrite(e, f)).collect(),
            named: array.named,
        }),
        other => other.clone(),
    }
}

fn rewrite_cast_or_case(expr: &Expr, f: &mut dyn FnMut(&Expr) -> Option<Expr>) -> Expr {
    match expr {
        Expr::Cast {
            kind,
            expr,
            data_type,
            array,
            format,
        } => Expr::Cast {
            kind: kind.clone(),
            expr: Box::new(rewrite(expr, f)),
            data_type: data_type.clone(),
            array: *array,
            format: format.clone(),
        },
        Expr::Case {
            case_token,
            end_token,
            operand,
            conditions,
            else_result,
        } => Expr::Case {
            case_token: case_token.clone(),
            end_token: end_token.clone(),
            operand: operand.as_ref().map(|o| Box::new(rewrite(o, f))),
            conditions: conditions
                .iter()
                .map(|c| CaseWhen {
                    condition: rewrite(&c.condition, f),
                    result: rewrite(&c.result, f),
                })
                .collect(),
            else_result: else_result.as_ref().map(|e| Box::new(rewrite(e, f))),
        },
        other => other.clone(),
    }
}

fn rewrite_function(func: &Function, f: &mut dyn FnMut(&Expr) -> Option<Expr>) -> Function {
    let FunctionArguments::List(list) = &func.args else {
        return func.clone();
    };
    let args = list
        .args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(rewrite(e, f)))
            }
            // `STRUCT(name := value)`, `MAP('k' := value)`: the values only.
            FunctionArg::Named {
                name,
                arg: FunctionArgExpr::Expr(e),
                operator,
            } => FunctionArg::Named {
                name: name.clone(),
                arg: FunctionArgExpr::Expr(rewrite(e, f)),
                operator: operator.clone(),
            },
            other => other.clone(),
        })
        .collect();
    // A window's PARTITION BY (Eddy's FOLD ... OVER) reads columns too.
    let over = match &func.over {
        Some(WindowType::WindowSpec(spec)) => Some(WindowType::WindowSpec(WindowSpec {
            partition_by: spec.partition_by.iter().map(|e| rewrite(e, f)).collect(),
            ..spec.clone()
        })),
        other => other.clone(),
    };
    Function {
        args: FunctionArguments::List(FunctionArgumentList {
            args,
            ..list.clone()
        }),
        over,
        ..func.clone()
    }
}

/// `LIKE`: the value and the pattern.
fn rewrite_like(expr: &Expr, f: &mut dyn FnMut(&Expr) -> Option<Expr>) -> Expr {
    let Expr::Like {
        negated,
        any,
        expr: value,
        pattern,
        escape_char,
    } = expr
    else {
        return expr.clone();
    };
    Expr::Like {
        negated: *negated,
        any: *any,
        expr: Box::new(rewrite(value, f)),
        pattern: Box::new(rewrite(pattern, f)),
        escape_char: escape_char.clone(),
    }
}

/// A lambda's body (which may read the row's columns as well as its parameters).
fn rewrite_lambda(
    lambda: &sqlparser::ast::LambdaFunction,
    f: &mut dyn FnMut(&Expr) -> Option<Expr>,
) -> sqlparser::ast::LambdaFunction {
    sqlparser::ast::LambdaFunction {
        body: Box::new(rewrite(&lambda.body, f)),
        ..lambda.clone()
    }
}

/// `alias.column[...]` as sqlparser gives it (`alias`, then `.column` in the access chain):
/// the qualified column as one identifier, and the accesses after it.
pub fn qualified_access<'a>(
    root: &Expr,
    chain: &'a [sqlparser::ast::AccessExpr],
) -> Option<(Expr, &'a [sqlparser::ast::AccessExpr])> {
    let Expr::Identifier(alias) = root else {
        return None;
    };
    let (sqlparser::ast::AccessExpr::Dot(Expr::Identifier(column)), rest) = chain.split_first()?
    else {
        return None;
    };
    Some((
        Expr::CompoundIdentifier(vec![alias.clone(), column.clone()]),
        rest,
    ))
}

/// A reference to an output column, quoted so that its case is kept.
pub fn column_ref(name: &str) -> Expr {
    Expr::Identifier(Ident::with_quote('`', name))
}
