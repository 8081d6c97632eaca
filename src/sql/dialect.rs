//! [`KsqlDialect`]: how sqlparser tokenizes and parses expressions for ksqlDB.
//!
//! ksqlDB's lexer: identifiers are letters, digits, `_` and `@`; `"x"` and `` `x` `` quote
//! names; strings are single-quoted with `''` as the escape. Expression forms sqlparser does
//! not know are parsed by the [`Dialect::parse_prefix`] hook:
//! - `CAST(e AS type)` with ksqlDB's types (`MAP<K, V>`, `STRUCT<...>`); the type is kept as a
//!   custom sqlparser type whose text is ksqlDB's spelling.
//! - lambdas `x => body` and `(x, y) => body`. sqlparser prints lambdas as `x -> body`, which
//!   in ksqlDB is a struct dereference, so Eddy's AST keeps them in sqlparser's keyword form,
//!   printed `lambda x, y : body`, and this hook reads that form back too.
//!
//! - `->` (struct dereference) binds tightly, like `.`; `s->*` in a select list ends the
//!   expression before `->*`, for the parser to take.
//!
//! ksql's statements and clauses are parsed in [`super::parser`].

use sqlparser::ast::{
    CastKind, DataType, Expr, Ident, LambdaFunction, LambdaFunctionParameter, LambdaSyntax,
    ObjectName, OneOrManyWithParens,
};
use sqlparser::dialect::{Dialect, Precedence};
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::Token;

/// sqlparser's view of ksqlDB's dialect.
#[derive(Debug, Default)]
pub struct KsqlDialect;

impl Dialect for KsqlDialect {
    fn is_identifier_start(&self, ch: char) -> bool {
        ch.is_ascii_alphabetic() || ch == '_'
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        ch.is_ascii_alphanumeric() || ch == '_' || ch == '@'
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        ch == '"' || ch == '`'
    }

    fn supports_string_literal_backslash_escape(&self) -> bool {
        false
    }

    /// ksqlDB's DIGIT_IDENTIFIER: names such as `1R` may start with digits.
    fn supports_numeric_prefix(&self) -> bool {
        true
    }

    fn supports_named_fn_args_with_assignment_operator(&self) -> bool {
        true
    }

    /// `f(x => body)` is a lambda in ksqlDB, never a named argument.
    fn supports_named_fn_args_with_rarrow_operator(&self) -> bool {
        false
    }

    /// `->` binds like `.` (struct dereference), except that `s->*` in a select list ends
    /// the expression before `->*`.
    fn get_next_precedence(&self, parser: &Parser) -> Option<Result<u8, ParserError>> {
        if parser.peek_token().token != Token::Arrow {
            return None;
        }
        if parser.peek_nth_token(1).token == Token::Mul {
            return Some(Ok(0));
        }
        Some(Ok(self.prec_value(Precedence::DoubleColon)))
    }

    fn parse_prefix(&self, parser: &mut Parser) -> Option<Result<Expr, ParserError>> {
        if let Some(params) = lambda_params(parser) {
            return Some(parse_lambda_body(parser, params));
        }
        if is_word(&parser.peek_token().token, "CAST")
            && parser.peek_nth_token(1).token == Token::LParen
        {
            return Some(parse_cast(parser));
        }
        None
    }
}

fn is_word(token: &Token, word: &str) -> bool {
    matches!(token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
}

/// Consumes the parameters of a lambda (and its `=>` or `:`), if one starts here.
fn lambda_params(parser: &mut Parser) -> Option<Vec<Ident>> {
    let (names, consumed) = if parser.peek_nth_token(1).token == Token::RArrow {
        // `x => body`
        (vec![word_at(parser, 0)?], 2)
    } else if parser.peek_token().token == Token::LParen {
        // `(x, y) => body`
        names_until(parser, &[Token::RParen, Token::RArrow])?
    } else if is_word(&parser.peek_token().token, "LAMBDA") {
        // `lambda x, y : body`, the form Eddy prints.
        names_until(parser, &[Token::Colon])?
    } else {
        return None;
    };
    for _ in 0..consumed {
        parser.next_token();
    }
    Some(names)
}

/// The name at token `n`, if that token is a word.
fn word_at(parser: &Parser, n: usize) -> Option<Ident> {
    let token = parser.peek_nth_token(n);
    match token.token {
        Token::Word(w) => Some(Ident {
            value: w.value,
            quote_style: w.quote_style,
            span: token.span,
        }),
        _ => None,
    }
}

/// Names separated by commas from token 1 on, ending with the tokens `end`: the names, and
/// how many tokens that is in all (the opening token included). Consumes nothing.
fn names_until(parser: &Parser, end: &[Token]) -> Option<(Vec<Ident>, usize)> {
    let mut names = Vec::new();
    let mut n = 1;
    loop {
        names.push(word_at(parser, n)?);
        n += 1;
        if parser.peek_nth_token(n).token == Token::Comma {
            n += 1;
            continue;
        }
        let ends = end
            .iter()
            .enumerate()
            .all(|(i, t)| parser.peek_nth_token(n + i).token == *t);
        return ends.then_some((names, n + end.len()));
    }
}

fn parse_lambda_body(parser: &mut Parser, params: Vec<Ident>) -> Result<Expr, ParserError> {
    let body = parser.parse_expr()?;
    let mut params: Vec<LambdaFunctionParameter> = params
        .into_iter()
        .map(|name| LambdaFunctionParameter {
            name,
            data_type: None,
        })
        .collect();
    let params = if params.len() == 1 {
        OneOrManyWithParens::One(params.remove(0))
    } else {
        OneOrManyWithParens::Many(params)
    };
    Ok(Expr::Lambda(LambdaFunction {
        params,
        body: Box::new(body),
        syntax: LambdaSyntax::LambdaKeyword,
    }))
}

/// `CAST(e AS type)`, with the type in ksqlDB's syntax.
fn parse_cast(parser: &mut Parser) -> Result<Expr, ParserError> {
    parser.next_token();
    parser.expect_token(&Token::LParen)?;
    let expr = parser.parse_expr()?;
    let as_token = parser.next_token();
    if !is_word(&as_token.token, "AS") {
        return parser.expected("AS", as_token);
    }
    let next = parser.peek_token();
    if is_word(&next.token, "NULL") {
        // ksqlDB's wording for a cast to NULL.
        let at = next.span.start;
        return Err(ParserError::ParserError(format!(
            "Syntax error at or near 'NULL' at line {}:{}{at}",
            at.line, at.column
        )));
    }
    let sql_type = super::types::parse_sql_type(parser)?;
    parser.expect_token(&Token::RParen)?;
    Ok(Expr::Cast {
        kind: CastKind::Cast,
        expr: Box::new(expr),
        data_type: DataType::Custom(
            ObjectName::from(vec![Ident::new(sql_type.to_string())]),
            Vec::new(),
        ),
        array: false,
        format: None,
    })
}
