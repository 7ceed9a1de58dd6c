//! Stage 1: text → statements, with sqlparser's PostgreSQL dialect.

use shoal_common::{Error, Result};
use sqlparser::ast::Statement;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::{Parser, ParserError};

/// The parser's own recursion limit, well below what the stack can hold.
const RECURSION_LIMIT: usize = 50;

/// Splits a query string into statements. An empty (or all-whitespace/comment) string gives none.
pub fn parse(sql: &str) -> Result<Vec<Statement>> {
    if sql.trim().is_empty() {
        return Ok(vec![]);
    }
    Parser::new(&PostgreSqlDialect {})
        .with_recursion_limit(RECURSION_LIMIT)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| match e {
            ParserError::RecursionLimitExceeded => {
                Error::new(shoal_common::SqlState::PROGRAM_LIMIT_EXCEEDED, "statement is nested too deeply")
            }
            ParserError::TokenizerError(m) | ParserError::ParserError(m) => Error::syntax(format!("syntax error: {m}")),
        })
}
