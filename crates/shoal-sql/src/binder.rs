//! The binder's state: name scopes, parameters, typed SQL fragments, coercions.
//!
//! Translation is a single pass over the AST: every expression becomes a
//! [`Typed`] — SQLite SQL text plus its PostgreSQL type and the output name
//! PostgreSQL would give it. Names resolve against a stack of [`Scope`]s (one
//! per query level, so correlated subqueries see their outer query), tables
//! against the [`Catalog`] and the CTEs in view.

use shoal_common::{DataType, Error, Result, SqlState, Value};
use sqlparser::ast::{self, Ident, ObjectName};

use crate::catalog::Catalog;
use crate::plan::SystemReads;

/// An upper bound on nesting (subqueries, expressions), so hostile input
/// cannot overflow the stack.
pub const MAX_DEPTH: usize = 64;

/// At most this many constants of one statement are lifted into parameters
/// (SQLite allows 32,766 per statement; a bulk INSERT of many rows gains
/// nothing from the statement cache anyway).
const MAX_LIFTED: usize = 64;

/// Placeholders for parameters numbered after the client's: the binder
/// writes `\u{1}L<k>\u{1}` for lifted constant `k` (see
/// [`Binder::lift_constant`]) and `crate::sequence::SESSION_STATE_MARKER`
/// for the session's sequence state; [`number_placeholders`] numbers them
/// once the statement is bound and the client's parameter count is known.
/// Control characters never appear in translated SQL outside string
/// literals, which the numbering skips.
const PLACEHOLDER: char = '\u{1}';

/// What kind of fragment a [`Typed`] is; literals and parameters take their
/// type from context, as PostgreSQL's `unknown` type does.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    Expr,
    /// A string literal of not-yet-known type (`'abc'`), unquoted text.
    StrLit(String),
    Null,
    /// `$n` (0-based index).
    Param(usize),
    /// A plain column reference: (table oid, attribute number).
    Column(u32, i16),
    /// An aggregate or window call (for output naming only).
    Func,
    /// A record built in this query level: the SQL of each field, so a
    /// field access reads it directly instead of parsing the record's text.
    Row(Vec<String>),
}

/// A translated expression.
#[derive(Clone, Debug)]
pub struct Typed {
    pub sql: String,
    pub ty: DataType,
    /// The output column name PostgreSQL would choose (`None` → `?column?`).
    pub name: Option<String>,
    pub kind: Kind,
}

impl Typed {
    pub fn new(sql: impl Into<String>, ty: DataType) -> Typed {
        Typed { sql: sql.into(), ty, name: None, kind: Kind::Expr }
    }

    pub fn named(mut self, name: impl Into<String>) -> Typed {
        self.name = Some(name.into());
        self
    }

    /// True when the type still comes from context (`'lit'`, `NULL`, untyped `$n`).
    pub fn is_untyped(&self) -> bool {
        matches!(self.kind, Kind::StrLit(_) | Kind::Null) || self.ty == DataType::Unknown
    }
}

/// One column visible in a scope.
#[derive(Clone, Debug)]
pub struct Col {
    pub name: String,
    pub ty: DataType,
    /// SQL that reads it, e.g. `"u"."id"`.
    pub sql: String,
    pub table_oid: u32,
    pub column_id: i16,
}

/// A relation in a FROM clause.
#[derive(Clone, Debug)]
pub struct Rel {
    pub alias: String,
    pub cols: Vec<Col>,
}

/// The relations visible at one query level.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    pub rels: Vec<Rel>,
    /// Columns merged by `JOIN … USING`/`NATURAL`: unqualified references and
    /// `*` see one column (PostgreSQL semantics), not one per side.
    pub merged: Vec<Col>,
    /// Output aliases of the SELECT list, usable in ORDER BY / GROUP BY.
    pub aliases: Vec<(String, Typed)>,
    /// The array a set-returning function in the SELECT list ranges over
    /// (its SQL) and the alias of the `json_each` joined for it.
    pub srf: Option<(String, String)>,
    /// The SELECT list of this level is being translated: the one place
    /// (besides FROM) a set-returning function may appear.
    pub in_select_list: bool,
}

/// A CTE in view: its name and output columns.
#[derive(Clone, Debug)]
pub struct CteDef {
    pub name: String,
    pub cols: Vec<(String, DataType)>,
}

/// The state of planning one statement.
pub struct Binder<'a> {
    pub catalog: &'a Catalog,
    pub params: Vec<Option<DataType>>,
    pub scopes: Vec<Scope>,
    pub ctes: Vec<CteDef>,
    pub depth: usize,
    /// Counter for generated aliases (`__s1`, …).
    pub fresh: usize,
    /// Catalog and system-view reads seen so far (see [`SystemReads`]).
    pub reads: SystemReads,
    /// A `nextval`/`setval` call was bound: the statement writes.
    pub sequence_writes: bool,
    /// A `currval`/`lastval` call was bound: the statement reads the
    /// session's sequence state (see `crate::sequence`).
    pub sequence_state: bool,
    /// The cells of an `INSERT … VALUES`, for [`crate::plan::KeyProbe`].
    pub value_rows: Option<Vec<Vec<String>>>,
    /// Constants lifted out of the SQL text into parameters, in order.
    pub lifted: Vec<Value>,
    /// Every table and view the statement names, once per mention (the
    /// router's input: see `crate::route`).
    pub relations: Vec<String>,
}

impl<'a> Binder<'a> {
    pub fn new(catalog: &'a Catalog, params: &[Option<DataType>]) -> Binder<'a> {
        Binder {
            catalog,
            params: params.to_vec(),
            scopes: vec![],
            ctes: vec![],
            depth: 0,
            fresh: 0,
            reads: SystemReads::default(),
            relations: Vec::new(),
            sequence_writes: false,
            sequence_state: false,
            value_rows: None,
            lifted: Vec::new(),
        }
    }

    /// Lifts `sql`, the translation of one `INSERT … VALUES` cell, into a
    /// bound parameter when it is a plain SQLite integer or string literal.
    /// Inserts that differ only in their values then share one SQLite
    /// statement text, and with it one prepared statement in the statement
    /// cache of the leader and of every replica that replays the entry —
    /// preparing a fresh text costs more than running the INSERT. The value
    /// is bound exactly as the literal would have been read (column affinity
    /// and CHECK constraints see the same value). Other cells stay as text.
    pub fn lift_constant(&mut self, sql: String) -> String {
        if self.lifted.len() >= MAX_LIFTED {
            return sql;
        }
        match sqlite_constant(&sql) {
            Some(value) => {
                self.lifted.push(value);
                format!("{PLACEHOLDER}L{}{PLACEHOLDER}", self.lifted.len() - 1)
            }
            None => sql,
        }
    }

    /// Parameter types for the plan: unknown ones default to `text`.
    pub fn param_types(&self) -> Vec<DataType> {
        self.params
            .iter()
            .map(|p| match p {
                None | Some(DataType::Unknown) => DataType::Text,
                Some(t) => t.clone(),
            })
            .collect()
    }

    pub fn fresh_alias(&mut self, prefix: &str) -> String {
        self.fresh += 1;
        format!("__{prefix}{}", self.fresh)
    }

    /// Guards recursion depth; pair with [`Binder::leave`].
    pub fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Error::new(SqlState::PROGRAM_LIMIT_EXCEEDED, "statement is nested too deeply"));
        }
        Ok(())
    }

    pub fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// `$n` → `?n`, typed from the client's declaration or (later) from context.
    pub fn param(&mut self, text: &str) -> Result<Typed> {
        let n: usize = text
            .trim_start_matches('$')
            .parse()
            .ok()
            .filter(|n| (1..=65535).contains(n))
            .ok_or_else(|| Error::syntax(format!("syntax error at or near \"{text}\"")))?;
        if self.params.len() < n {
            self.params.resize(n, None);
        }
        let ty = self.params[n - 1].clone().unwrap_or(DataType::Unknown);
        Ok(Typed { sql: format!("?{n}"), ty, name: None, kind: Kind::Param(n - 1) })
    }

    pub fn scope(&mut self) -> &mut Scope {
        if self.scopes.is_empty() {
            self.scopes.push(Scope::default());
        }
        let last = self.scopes.len() - 1;
        &mut self.scopes[last]
    }

    /// Resolves a column reference (`c`, `t.c`, `public.t.c`).
    pub fn resolve(&self, parts: &[Ident]) -> Result<Typed> {
        let names: Vec<String> = parts.iter().map(fold).collect();
        let (qualifier, column) = match names.as_slice() {
            [c] => (None, c.as_str()),
            [t, c] => (Some(t.as_str()), c.as_str()),
            [s, t, c] if matches!(s.as_str(), "public" | "pg_catalog" | "information_schema" | "shoal") => {
                (Some(t.as_str()), c.as_str())
            }
            _ => return Err(Error::unsupported(format!("column reference {}", names.join(".")))),
        };
        for scope in self.scopes.iter().rev() {
            if let Some(col) = lookup(scope, qualifier, column)? {
                let kind = if col.table_oid != 0 { Kind::Column(col.table_oid, col.column_id) } else { Kind::Expr };
                return Ok(Typed { sql: col.sql.clone(), ty: col.ty.clone(), name: Some(col.name.clone()), kind });
            }
        }
        if let Some(q) = qualifier {
            if !self.scopes.iter().any(|s| s.rels.iter().any(|r| r.alias == q)) {
                return Err(Error::new(
                    SqlState::UNDEFINED_TABLE,
                    format!("missing FROM-clause entry for table \"{q}\""),
                ));
            }
            return Err(Error::new(SqlState::UNDEFINED_COLUMN, format!("column {q}.{column} does not exist")));
        }
        Err(Error::new(SqlState::UNDEFINED_COLUMN, format!("column \"{column}\" does not exist")))
    }

    /// Sets an untyped parameter's type from context.
    pub fn infer_param(&mut self, t: &mut Typed, ty: &DataType) {
        if let Kind::Param(i) = t.kind {
            if *ty == DataType::Unknown {
                return;
            }
            // PostgreSQL gives a parameter the type without its modifier: a
            // `$1` compared with a numeric(10,2) column is a plain numeric,
            // so its digits are not rounded away before the comparison.
            let ty = match ty {
                DataType::Numeric(Some(_)) => DataType::Numeric(None),
                other => other.clone(),
            };
            if let Some(slot) = self.params.get_mut(i) {
                if slot.is_none() || *slot == Some(DataType::Unknown) {
                    *slot = Some(ty);
                }
                t.ty = slot.clone().unwrap_or(DataType::Unknown);
            }
        }
    }
}

fn lookup<'s>(scope: &'s Scope, qualifier: Option<&str>, column: &str) -> Result<Option<&'s Col>> {
    if qualifier.is_none() {
        if let Some(c) = scope.merged.iter().find(|c| c.name == column) {
            return Ok(Some(c));
        }
    }
    let mut found: Option<&Col> = None;
    for rel in &scope.rels {
        if qualifier.is_some_and(|q| q != rel.alias) {
            continue;
        }
        if let Some(c) = rel.cols.iter().find(|c| c.name == column) {
            if found.is_some() {
                return Err(Error::new(
                    SqlState::AMBIGUOUS_COLUMN,
                    format!("column reference \"{column}\" is ambiguous"),
                ));
            }
            found = Some(c);
        }
    }
    Ok(found)
}

/// PostgreSQL identifier folding: unquoted names are lower-cased.
pub fn fold(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

/// Double-quotes an identifier for SQLite.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Single-quotes a string literal for SQLite.
pub fn quote_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A table name: `t` or `public.t`, folded.
pub fn object_name(name: &ObjectName) -> Result<String> {
    let parts: Vec<String> = name.0.iter().map(|p| p.as_ident().map(fold).unwrap_or_default()).collect();
    match parts.as_slice() {
        [t] if !t.is_empty() => Ok(t.clone()),
        [s, t] if s == "public" && !t.is_empty() => Ok(t.clone()),
        [s, _] if s == "pg_catalog" || s == "information_schema" => Err(Error::unsupported("this catalog relation")),
        [s, _] => Err(Error::new(SqlState::INVALID_SCHEMA_NAME, format!("schema \"{s}\" does not exist"))),
        _ => Err(Error::unsupported(format!("the qualified name {name}"))),
    }
}

/// Maps a parsed SQL type to Shoal's type. `serial` reports SERIAL/BIGSERIAL.
pub fn data_type(t: &ast::DataType) -> Result<(DataType, bool)> {
    use ast::DataType as A;
    let char_len = |l: &Option<ast::CharacterLength>| match l {
        Some(ast::CharacterLength::IntegerLength { length, .. }) => u32::try_from(*length).ok(),
        _ => None,
    };
    let ty = match t {
        A::SmallInt(_) | A::Int2(_) => DataType::Int2,
        A::Int(_) | A::Integer(_) | A::Int4(_) => DataType::Int4,
        A::BigInt(_) | A::Int8(_) => DataType::Int8,
        A::Real | A::Float4 => DataType::Float4,
        A::DoublePrecision | A::Float8 | A::Double(_) => DataType::Float8,
        A::Float(info) => match info {
            ast::ExactNumberInfo::Precision(p) if *p <= 24 => DataType::Float4,
            _ => DataType::Float8,
        },
        A::Numeric(info) | A::Decimal(info) | A::Dec(info) => {
            let (p, s) = match info {
                ast::ExactNumberInfo::None => return Ok((DataType::Numeric(None), false)),
                ast::ExactNumberInfo::Precision(p) => (*p, 0),
                ast::ExactNumberInfo::PrecisionAndScale(p, s) => (*p, *s),
            };
            if !(1..=shoal_common::numeric::MAX_PRECISION as u64).contains(&p) {
                return Err(Error::new(
                    SqlState::INVALID_PARAMETER_VALUE,
                    format!("NUMERIC precision {p} must be between 1 and 1000"),
                ));
            }
            // PostgreSQL 15 also allows scales below 0 and above the precision; Shoal refuses them.
            if s < 0 || s as u64 > p {
                return Err(Error::unsupported(format!("NUMERIC scale {s} outside 0..{p}")));
            }
            DataType::Numeric(Some((p as u32, s as u32)))
        }
        A::Text => DataType::Text,
        A::Varchar(l) | A::CharacterVarying(l) | A::CharVarying(l) => DataType::Varchar(char_len(l)),
        A::Char(l) | A::Character(l) => DataType::Char(char_len(l).unwrap_or(1)),
        A::Bool | A::Boolean => DataType::Bool,
        A::Date => DataType::Date,
        A::Time(_, tz) => match tz {
            ast::TimezoneInfo::WithTimeZone | ast::TimezoneInfo::Tz => {
                return Err(Error::unsupported("type time with time zone"))
            }
            _ => DataType::Time,
        },
        A::Timestamp(_, tz) => match tz {
            ast::TimezoneInfo::WithTimeZone | ast::TimezoneInfo::Tz => DataType::Timestamptz,
            _ => DataType::Timestamp,
        },
        A::Interval { .. } => DataType::Interval,
        A::Bytea => DataType::Bytea,
        A::JSON => DataType::Json,
        A::JSONB => DataType::Jsonb,
        A::Uuid => DataType::Uuid,
        A::Regclass => DataType::Oid,
        A::Custom(name, _) => return custom_type(name),
        A::Array(ast::ArrayElemTypeDef::SquareBracket(inner, _))
        | A::Array(ast::ArrayElemTypeDef::AngleBracket(inner)) => {
            let (elem, _) = data_type(inner)?;
            DataType::Array(Box::new(elem))
        }
        other => return Err(Error::unsupported(format!("type {other}"))),
    };
    Ok((ty, false))
}

fn custom_type(name: &ObjectName) -> Result<(DataType, bool)> {
    let n = name.0.last().and_then(|p| p.as_ident()).map(fold).unwrap_or_default();
    let ty = match n.as_str() {
        "serial" | "serial4" => return Ok((DataType::Int4, true)),
        "bigserial" | "serial8" => return Ok((DataType::Int8, true)),
        "smallserial" | "serial2" => return Ok((DataType::Int2, true)),
        "timestamptz" => DataType::Timestamptz,
        "int" | "integer" => DataType::Int4,
        "float" => DataType::Float8,
        "bpchar" => DataType::Char(1),
        "name" => DataType::Name,
        "oid" | "regtype" | "regproc" | "regnamespace" | "regrole" | "regclass" => DataType::Oid,
        "text" => DataType::Text,
        "varchar" => DataType::Varchar(None),
        "int2" | "smallint" => DataType::Int2,
        "int4" => DataType::Int4,
        "int8" | "bigint" => DataType::Int8,
        "bool" | "boolean" => DataType::Bool,
        "char" => DataType::CatalogChar,
        "int2vector" | "oidvector" => DataType::Text,
        // Records come only from expressions (`_pg_expandarray`); as a cast
        // target PostgreSQL cannot read one either.
        "record" => return Err(Error::unsupported("the type record in a cast or column")),
        _ => return Err(Error::new(SqlState::UNDEFINED_OBJECT, format!("type \"{n}\" does not exist"))),
    };
    Ok((ty, false))
}

/// The type name `pg_cast()` understands, with its modifier.
pub fn cast_name(t: &DataType) -> String {
    match t {
        DataType::Varchar(Some(n)) => format!("varchar({n})"),
        DataType::Char(n) => format!("bpchar({n})"),
        DataType::Numeric(Some((p, s))) => format!("numeric({p},{s})"),
        DataType::Unknown => "text".into(),
        other => other.type_name(),
    }
}

/// The SQLite collation that orders numeric text numerically (registered by
/// `shoal_storage::numeric`).
pub const NUMERIC_COLLATION: &str = "pg_numeric";

/// `sql` compared, sorted and grouped as a numeric: PostgreSQL compares
/// `1.10 = 1.1` and `9 < 10`, which text does not.
pub fn numeric_collate(sql: &str) -> String {
    format!("({sql} COLLATE {NUMERIC_COLLATION})")
}

/// The storage class a type lives in (see `shoal_common::types`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Storage {
    Integer,
    Real,
    Text,
    Blob,
}

pub fn storage(t: &DataType) -> Storage {
    match t.sqlite_affinity() {
        "INTEGER" => Storage::Integer,
        "REAL" => Storage::Real,
        "BLOB" => Storage::Blob,
        _ => Storage::Text,
    }
}

/// Numeric promotion rank (PostgreSQL's implicit casts: int2 < int4 < int8 < numeric < float4 < float8).
pub fn numeric_rank(t: &DataType) -> Option<u8> {
    Some(match t {
        DataType::Int2 => 1,
        DataType::Int4 => 2,
        DataType::Int8 | DataType::Oid => 3,
        DataType::Numeric(_) => 4,
        DataType::Float4 => 5,
        DataType::Float8 => 6,
        _ => return None,
    })
}

/// The common type of two branches (UNION, CASE, COALESCE), PostgreSQL-style.
pub fn unify(a: &DataType, b: &DataType) -> Option<DataType> {
    if a == b || *b == DataType::Unknown {
        return Some(a.clone());
    }
    if *a == DataType::Unknown {
        return Some(b.clone());
    }
    if let (Some(x), Some(y)) = (numeric_rank(a), numeric_rank(b)) {
        let t = if x >= y { a } else { b };
        return Some(match t {
            DataType::Numeric(_) => DataType::Numeric(None),
            other => other.clone(),
        });
    }
    // The catalog's `"char"` compares with text as text (PostgreSQL casts it implicitly).
    let textual = |t: &DataType| t.is_text() || *t == DataType::CatalogChar;
    if textual(a) && textual(b) {
        return Some(DataType::Text);
    }
    match (a, b) {
        (DataType::Timestamp, DataType::Timestamptz) | (DataType::Timestamptz, DataType::Timestamp) => {
            Some(DataType::Timestamptz)
        }
        (DataType::Date, DataType::Timestamp) | (DataType::Timestamp, DataType::Date) => Some(DataType::Timestamp),
        (DataType::Date, DataType::Timestamptz) | (DataType::Timestamptz, DataType::Date) => {
            Some(DataType::Timestamptz)
        }
        (DataType::Json, DataType::Jsonb) | (DataType::Jsonb, DataType::Json) => Some(DataType::Jsonb),
        _ => None,
    }
}

/// Error for two types with no common type.
pub fn mismatch(context: &str, a: &DataType, b: &DataType) -> Error {
    Error::new(SqlState::DATATYPE_MISMATCH, format!("{context} types {a} and {b} cannot be matched"))
}

/// The value of a SQLite integer literal (`-12`) or string literal
/// (`'it''s'`); `None` for anything else (an expression, a float, whose
/// text SQLite might round differently from Rust, or an integer outside
/// `i64`).
fn sqlite_constant(sql: &str) -> Option<Value> {
    if let Some(body) = sql.strip_prefix('\'').and_then(|rest| rest.strip_suffix('\'')) {
        // One literal only if every quote inside it is doubled.
        return (!body.replace("''", "").contains('\'')).then(|| Value::Text(body.replace("''", "'")));
    }
    let digits = sql.strip_prefix('-').unwrap_or(sql);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    sql.parse().ok().map(Value::Integer)
}

/// Numbers the placeholders of [`PLACEHOLDER`] in `sql`: lifted constant
/// `k` becomes `?{client + k + 1}` and the session's sequence state
/// `?{client + lifted + 1}`. String literals and quoted identifiers are
/// left alone.
pub(crate) fn number_placeholders(sql: &str, client: usize, lifted: usize) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote_char: Option<char> = None;
    let mut rest = sql;
    while let Some(c) = rest.chars().next() {
        if quote_char.is_none() && c == PLACEHOLDER {
            if let Some(end) = rest[1..].find(PLACEHOLDER) {
                let name = &rest[1..1 + end];
                let index = if name == crate::sequence::SESSION_STATE_NAME {
                    Some(client + lifted + 1)
                } else {
                    name.strip_prefix('L').and_then(|k| k.parse::<usize>().ok()).map(|k| client + k + 1)
                };
                if let Some(index) = index {
                    out.push_str(&format!("?{index}"));
                    rest = &rest[end + 2..];
                    continue;
                }
            }
        }
        match (quote_char, c) {
            (None, '\'' | '"') => quote_char = Some(c),
            (Some(q), c) if c == q => quote_char = None,
            _ => {}
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sequence::SESSION_STATE_MARKER;

    #[test]
    fn only_plain_integer_and_string_literals_are_constants() {
        assert_eq!(sqlite_constant("42"), Some(Value::Integer(42)));
        assert_eq!(sqlite_constant("-7"), Some(Value::Integer(-7)));
        assert_eq!(sqlite_constant("'it''s'"), Some(Value::Text("it's".into())));
        assert_eq!(sqlite_constant("''"), Some(Value::Text(String::new())));
        for not in ["1.5", "1e3", "99999999999999999999", "-", "", "'a' || 'b'", "'a'||'b'", "NULL", "(1)", "X'00'"] {
            assert_eq!(sqlite_constant(not), None, "{not}");
        }
    }

    #[test]
    fn placeholders_are_numbered_outside_quotes_only() {
        let m = SESSION_STATE_MARKER;
        let sql =
            format!("VALUES (?1, {p}L1{p}, {p}L0{p}, shoal_currval({m}, 5)), '{p}L0{p}', \"{m}\"", p = PLACEHOLDER);
        let out = number_placeholders(&sql, 1, 2);
        assert!(out.starts_with("VALUES (?1, ?3, ?2, shoal_currval(?4, 5)), '"), "{out}");
        assert_eq!(out.matches(PLACEHOLDER).count(), 4, "{out}");
    }
}
