//! Stage 1: text → statements, with sqlparser's PostgreSQL dialect.
//!
//! sqlparser lacks a few PostgreSQL statements Shoal supports (`ALTER
//! SEQUENCE`, `MOVE`, and `FETCH` in all of PostgreSQL's forms); the
//! statement loop here recognizes them by their first words and parses them
//! with the same parser, so they can share a query string with any other
//! statement. [`Stmt`] carries either kind.

use std::fmt;

use shoal_common::{Error, Result};
use sqlparser::ast::{ObjectName, ObjectNamePart, SequenceOptions, Statement};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::Token;

/// The parser's own recursion limit, well below what the stack can hold.
const RECURSION_LIMIT: usize = 50;

/// One parsed statement.
// sqlparser's `Statement` is large; statements are few and short-lived, so
// boxing it would only add an allocation per statement.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Stmt {
    /// Everything sqlparser parses.
    Sql(Statement),
    /// `ALTER SEQUENCE`.
    AlterSequence(AlterSequence),
    /// `FETCH` or `MOVE` on a cursor.
    Fetch(Fetch),
}

/// `FETCH [direction] [FROM | IN] cursor` / `MOVE …`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetch {
    pub cursor: String,
    pub direction: FetchDirection,
    /// `MOVE`: reposition without returning rows.
    pub move_only: bool,
}

/// Where a FETCH or MOVE goes, PostgreSQL's directions normalized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchDirection {
    /// `NEXT`, `FORWARD [n]`, `n`; `None` is `ALL` / `FORWARD ALL`.
    Forward(Option<u64>),
    /// `PRIOR`, `BACKWARD [n]`, `-n`; `None` is `BACKWARD ALL`.
    Backward(Option<u64>),
    /// `ABSOLUTE n` (`FIRST` is 1, `LAST` is -1).
    Absolute(i64),
    /// `RELATIVE n`.
    Relative(i64),
}

/// `ALTER SEQUENCE [IF EXISTS] name …`.
#[derive(Clone, Debug, PartialEq)]
pub struct AlterSequence {
    pub if_exists: bool,
    pub name: ObjectName,
    pub action: AlterSequenceAction,
}

/// What an `ALTER SEQUENCE` changes.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum AlterSequenceAction {
    /// Options as in `CREATE SEQUENCE`, plus `RESTART [[WITH] n]`
    /// (`Some(None)`: restart at the start value).
    Options { options: Vec<SequenceOptions>, restart: Option<Option<sqlparser::ast::Expr>> },
    /// `RENAME TO new`.
    Rename(ObjectName),
}

impl fmt::Display for Stmt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stmt::Sql(s) => write!(f, "{s}"),
            Stmt::Fetch(x) => {
                let verb = if x.move_only { "MOVE" } else { "FETCH" };
                let dir = match &x.direction {
                    FetchDirection::Forward(None) => "FORWARD ALL".to_string(),
                    FetchDirection::Forward(Some(n)) => format!("FORWARD {n}"),
                    FetchDirection::Backward(None) => "BACKWARD ALL".to_string(),
                    FetchDirection::Backward(Some(n)) => format!("BACKWARD {n}"),
                    FetchDirection::Absolute(n) => format!("ABSOLUTE {n}"),
                    FetchDirection::Relative(n) => format!("RELATIVE {n}"),
                };
                write!(f, "{verb} {dir} FROM \"{}\"", x.cursor.replace('"', "\"\""))
            }
            Stmt::AlterSequence(a) => {
                write!(f, "ALTER SEQUENCE {}{}", if a.if_exists { "IF EXISTS " } else { "" }, a.name)?;
                match &a.action {
                    AlterSequenceAction::Rename(to) => write!(f, " RENAME TO {to}"),
                    AlterSequenceAction::Options { options, restart } => {
                        for o in options {
                            write!(f, "{o}")?;
                        }
                        match restart {
                            Some(Some(n)) => write!(f, " RESTART WITH {n}"),
                            Some(None) => write!(f, " RESTART"),
                            None => Ok(()),
                        }
                    }
                }
            }
        }
    }
}

/// Splits a query string into statements. An empty (or all-whitespace/comment) string gives none.
pub fn parse(sql: &str) -> Result<Vec<Stmt>> {
    if sql.trim().is_empty() {
        return Ok(vec![]);
    }
    let dialect = PostgreSqlDialect {};
    Parser::new(&dialect)
        .with_recursion_limit(RECURSION_LIMIT)
        .try_with_sql(sql)
        .and_then(|mut p| statements(&mut p))
        .map_err(|e| match e {
            ParserError::RecursionLimitExceeded => {
                Error::new(shoal_common::SqlState::PROGRAM_LIMIT_EXCEEDED, "statement is nested too deeply")
            }
            ParserError::TokenizerError(m) | ParserError::ParserError(m) => Error::syntax(format!("syntax error: {m}")),
        })
}

/// sqlparser's `parse_statements` loop, with Shoal's extra statements.
fn statements(p: &mut Parser<'_>) -> std::result::Result<Vec<Stmt>, ParserError> {
    let mut out = Vec::new();
    let mut expecting_delimiter = false;
    loop {
        while p.consume_token(&Token::SemiColon) {
            expecting_delimiter = false;
        }
        if p.peek_token_ref().token == Token::EOF {
            break;
        }
        if expecting_delimiter {
            return p.expected("end of statement", p.peek_token());
        }
        let word = match &p.peek_token_ref().token {
            Token::Word(w) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
            _ => String::new(),
        };
        let stmt = if p.parse_keywords(&[Keyword::ALTER, Keyword::SEQUENCE]) {
            Stmt::AlterSequence(alter_sequence(p)?)
        } else if word == "FETCH" || word == "MOVE" {
            p.next_token();
            Stmt::Fetch(fetch(p, word == "MOVE")?)
        } else {
            Stmt::Sql(p.parse_statement()?)
        };
        out.push(stmt);
        expecting_delimiter = true;
    }
    Ok(out)
}

/// A signed integer literal.
fn count(p: &mut Parser<'_>) -> std::result::Result<i64, ParserError> {
    let e = p.parse_number()?;
    e.to_string().replace(' ', "").parse().map_err(|_| ParserError::ParserError(format!("invalid row count {e}")))
}

/// Whether the next token starts a number (a count rather than the cursor's name).
fn at_number(p: &Parser<'_>) -> bool {
    matches!(p.peek_token_ref().token, Token::Number(..) | Token::Minus | Token::Plus)
}

fn fetch(p: &mut Parser<'_>, move_only: bool) -> std::result::Result<Fetch, ParserError> {
    let signed = |n: i64| {
        if n < 0 {
            FetchDirection::Backward(Some(n.unsigned_abs()))
        } else {
            FetchDirection::Forward(Some(n as u64))
        }
    };
    let direction = if p.parse_keyword(Keyword::NEXT) {
        FetchDirection::Forward(Some(1))
    } else if p.parse_keyword(Keyword::PRIOR) {
        FetchDirection::Backward(Some(1))
    } else if p.parse_keyword(Keyword::FIRST) {
        FetchDirection::Absolute(1)
    } else if p.parse_keyword(Keyword::LAST) {
        FetchDirection::Absolute(-1)
    } else if p.parse_keyword(Keyword::ABSOLUTE) {
        FetchDirection::Absolute(count(p)?)
    } else if p.parse_keyword(Keyword::RELATIVE) {
        FetchDirection::Relative(count(p)?)
    } else if p.parse_keyword(Keyword::ALL) {
        FetchDirection::Forward(None)
    } else if p.parse_keyword(Keyword::FORWARD) {
        if p.parse_keyword(Keyword::ALL) {
            FetchDirection::Forward(None)
        } else if at_number(p) {
            signed(count(p)?)
        } else {
            FetchDirection::Forward(Some(1))
        }
    } else if p.parse_keyword(Keyword::BACKWARD) {
        if p.parse_keyword(Keyword::ALL) {
            FetchDirection::Backward(None)
        } else if at_number(p) {
            let n = count(p)?;
            signed(n.checked_neg().unwrap_or(i64::MAX))
        } else {
            FetchDirection::Backward(Some(1))
        }
    } else if at_number(p) {
        signed(count(p)?)
    } else {
        FetchDirection::Forward(Some(1))
    };
    let _ = p.parse_keyword(Keyword::FROM) || p.parse_keyword(Keyword::IN);
    let cursor = crate::binder::fold(&p.parse_identifier()?);
    Ok(Fetch { cursor, direction, move_only })
}

fn alter_sequence(p: &mut Parser<'_>) -> std::result::Result<AlterSequence, ParserError> {
    let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
    let name = p.parse_object_name(false)?;
    if p.parse_keywords(&[Keyword::RENAME, Keyword::TO]) {
        let to = p.parse_object_name(false)?;
        return Ok(AlterSequence { if_exists, name, action: AlterSequenceAction::Rename(to) });
    }
    let mut options: Vec<SequenceOptions> = Vec::new();
    let mut restart = None;
    loop {
        let option = if p.parse_keyword(Keyword::INCREMENT) {
            let by = p.parse_keyword(Keyword::BY);
            SequenceOptions::IncrementBy(p.parse_number()?, by)
        } else if p.parse_keyword(Keyword::MINVALUE) {
            SequenceOptions::MinValue(Some(p.parse_number()?))
        } else if p.parse_keywords(&[Keyword::NO, Keyword::MINVALUE]) {
            SequenceOptions::MinValue(None)
        } else if p.parse_keyword(Keyword::MAXVALUE) {
            SequenceOptions::MaxValue(Some(p.parse_number()?))
        } else if p.parse_keywords(&[Keyword::NO, Keyword::MAXVALUE]) {
            SequenceOptions::MaxValue(None)
        } else if p.parse_keyword(Keyword::START) {
            let with = p.parse_keyword(Keyword::WITH);
            SequenceOptions::StartWith(p.parse_number()?, with)
        } else if p.parse_keyword(Keyword::RESTART) {
            if restart.is_some() {
                return Err(ParserError::ParserError("conflicting or redundant options".into()));
            }
            let with = p.parse_keyword(Keyword::WITH);
            let at_number = matches!(p.peek_token_ref().token, Token::Number(..) | Token::Minus | Token::Plus);
            restart = Some(if with || at_number { Some(p.parse_number()?) } else { None });
            continue;
        } else if p.parse_keyword(Keyword::CACHE) {
            SequenceOptions::Cache(p.parse_number()?)
        } else if p.parse_keywords(&[Keyword::NO, Keyword::CYCLE]) {
            SequenceOptions::Cycle(true)
        } else if p.parse_keyword(Keyword::CYCLE) {
            SequenceOptions::Cycle(false)
        } else if p.parse_keyword(Keyword::AS) {
            SequenceOptions::DataType(p.parse_data_type()?)
        } else if p.parse_keywords(&[Keyword::OWNED, Keyword::BY]) {
            let owner = p.parse_object_name(false)?;
            let none = matches!(owner.0.as_slice(),
                [ObjectNamePart::Identifier(i)] if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("none"));
            SequenceOptions::OwnedBy((!none).then_some(owner))
        } else {
            break;
        };
        if options.iter().any(|seen| std::mem::discriminant(seen) == std::mem::discriminant(&option)) {
            return Err(ParserError::ParserError("conflicting or redundant options".into()));
        }
        options.push(option);
    }
    if options.is_empty() && restart.is_none() {
        return p.expected("a sequence option or RENAME TO after ALTER SEQUENCE", p.peek_token());
    }
    Ok(AlterSequence { if_exists, name, action: AlterSequenceAction::Options { options, restart } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alter_sequence_parses_beside_other_statements() {
        let stmts =
            parse("SELECT 1; ALTER SEQUENCE IF EXISTS s RESTART WITH 5 INCREMENT BY -2 NO CYCLE; SELECT 2").unwrap();
        assert_eq!(stmts.len(), 3);
        let Stmt::AlterSequence(a) = &stmts[1] else { panic!("{:?}", stmts[1]) };
        assert!(a.if_exists);
        assert_eq!(stmts[1].to_string(), "ALTER SEQUENCE IF EXISTS s INCREMENT BY -2 NO CYCLE RESTART WITH 5");
        let stmts = parse("alter sequence s restart; alter sequence s rename to t").unwrap();
        assert_eq!(stmts[0].to_string(), "ALTER SEQUENCE s RESTART");
        assert_eq!(stmts[1].to_string(), "ALTER SEQUENCE s RENAME TO t");
        assert!(parse("ALTER SEQUENCE s").is_err());
        assert!(parse("ALTER SEQUENCE s CACHE 1 CACHE 2").is_err());
        assert!(parse("SELECT 1 SELECT 2").is_err());
    }

    #[test]
    fn fetch_and_move_take_postgresql_directions() {
        let dir = |sql: &str| match &parse(sql).unwrap()[0] {
            Stmt::Fetch(f) => (f.cursor.clone(), f.direction.clone(), f.move_only),
            other => panic!("{other:?}"),
        };
        assert_eq!(dir("FETCH c"), ("c".into(), FetchDirection::Forward(Some(1)), false));
        assert_eq!(dir("fetch forward 7 from \"C\""), ("C".into(), FetchDirection::Forward(Some(7)), false));
        assert_eq!(dir("FETCH FORWARD ALL FROM c").1, FetchDirection::Forward(None));
        assert_eq!(dir("FETCH -2 IN c").1, FetchDirection::Backward(Some(2)));
        assert_eq!(dir("FETCH BACKWARD 3 c").1, FetchDirection::Backward(Some(3)));
        assert_eq!(dir("FETCH LAST FROM c").1, FetchDirection::Absolute(-1));
        assert_eq!(dir("FETCH RELATIVE -1 FROM c").1, FetchDirection::Relative(-1));
        assert_eq!(dir("MOVE 5 IN c"), ("c".into(), FetchDirection::Forward(Some(5)), true));
        assert!(parse("FETCH FORWARD FROM").is_err());
    }
}
