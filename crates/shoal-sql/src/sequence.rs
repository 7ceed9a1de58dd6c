//! Sequences: `CREATE/ALTER/DROP SEQUENCE`, SERIAL and identity columns,
//! `nextval`, `currval`, `setval`, `lastval`, `pg_get_serial_sequence`.
//!
//! A sequence has two halves. Its definition is in the [`Catalog`]
//! ([`SequenceDef`]: type, bounds, owner), for planning and for
//! `pg_class`/`pg_sequence`; its state is a row of the replica's
//! `__shoal_sequences` table (see `shoal_storage::sequences`), which DDL
//! writes in the same transaction as the catalog. The functions translate to
//! calls that read and advance that row where the statement runs:
//!
//! | PostgreSQL                  | SQLite                              |
//! |-----------------------------|-------------------------------------|
//! | `nextval('s')`              | `shoal_nextval(16385)` (OID resolved at plan time) |
//! | `nextval($1)`               | `shoal_nextval(?1)` (name resolved when it runs)  |
//! | `setval('s', v[, called])`  | `shoal_setval(16385, v, called)`    |
//! | `currval('s')`, `lastval()` | `shoal_currval(?k, 16385)`, `shoal_lastval(?k)` |
//!
//! `nextval` and `setval` write, so a statement that calls them is planned as
//! a [`Plan::Write`] (a `SELECT nextval(…)` too) and goes through Raft like
//! an INSERT. `currval` and `lastval` read the *session's* state, which the
//! executor appends as one extra text parameter `?k` after the client's
//! parameters (the plan's `sequence_state` flag); the binder writes a marker
//! where `?k` goes and `binder::number_placeholders` numbers it once the
//! client's parameter count is known.
//!
//! A SERIAL or identity column owns a sequence named like PostgreSQL's
//! (`<table>_<column>_seq`). An INSERT that omits such a column (or writes
//! `DEFAULT`) gets `shoal_nextval(oid)` for it explicitly: SQLite ignores
//! column defaults on an `INTEGER PRIMARY KEY`, and keeping the call out of
//! the SQLite DDL lets `DROP SEQUENCE … CASCADE` drop a default by changing
//! only the catalog. An explicit value does not move the sequence, as in
//! PostgreSQL.

use shoal_common::{DataType, Error, Result, SqlState};
use sqlparser::ast::{self, Expr, SequenceOptions};

use crate::binder::{self, fold, object_name, quote, quote_str, Binder, Typed};
use crate::catalog::{Catalog, ColumnDef, SequenceDef};
use crate::parser::{AlterSequence, AlterSequenceAction};
use crate::plan::Plan;

/// Where the session's sequence state parameter goes; numbered by
/// `binder::number_placeholders` once the client's parameter count is known.
pub(crate) const SESSION_STATE_MARKER: &str = "\u{1}shoal_sequence_state\u{1}";
/// [`SESSION_STATE_MARKER`] without its delimiters.
pub(crate) const SESSION_STATE_NAME: &str = "shoal_sequence_state";

/// The call that draws a column's next value.
pub(crate) fn nextval_sql(oid: u32) -> String {
    format!("shoal_nextval({oid})")
}

/// True when a column default (SQLite text) draws from a sequence, so an
/// INSERT must write it explicitly (see the module docs).
pub(crate) fn draws_from_sequence(sqlite_default: Option<&str>) -> bool {
    sqlite_default.is_some_and(|d| d.contains("shoal_nextval("))
}

/// The bounds of a sequence's data type.
fn type_bounds(ty: &DataType) -> (i64, i64) {
    match ty {
        DataType::Int2 => (i16::MIN as i64, i16::MAX as i64),
        DataType::Int4 => (i32::MIN as i64, i32::MAX as i64),
        _ => (i64::MIN, i64::MAX),
    }
}

fn invalid(message: String) -> Error {
    Error::new(SqlState::INVALID_PARAMETER_VALUE, message)
}

/// An option's integer value (`INCREMENT BY -2`).
fn option_int(e: &Expr) -> Result<i64> {
    let text = e.to_string().replace(' ', "");
    text.parse::<i64>().map_err(|_| invalid(format!("invalid sequence option value: {e}")))
}

/// The options a sequence definition starts from, when they are not given.
struct Given {
    data_type: Option<DataType>,
    increment: Option<i64>,
    min: Option<Option<i64>>,
    max: Option<Option<i64>>,
    start: Option<i64>,
    cache: Option<i64>,
    cycle: Option<bool>,
    owned_by: Option<Option<ast::ObjectName>>,
}

fn given(options: &[SequenceOptions]) -> Result<Given> {
    let mut g = Given {
        data_type: None,
        increment: None,
        min: None,
        max: None,
        start: None,
        cache: None,
        cycle: None,
        owned_by: None,
    };
    for o in options {
        match o {
            SequenceOptions::DataType(t) => {
                let ty = match binder::data_type(t) {
                    Ok((ty @ (DataType::Int2 | DataType::Int4 | DataType::Int8), false)) => ty,
                    _ => return Err(invalid("sequence type must be smallint, integer, or bigint".into())),
                };
                g.data_type = Some(ty);
            }
            SequenceOptions::IncrementBy(e, _) => g.increment = Some(option_int(e)?),
            SequenceOptions::MinValue(e) => g.min = Some(e.as_ref().map(option_int).transpose()?),
            SequenceOptions::MaxValue(e) => g.max = Some(e.as_ref().map(option_int).transpose()?),
            SequenceOptions::StartWith(e, _) => g.start = Some(option_int(e)?),
            SequenceOptions::Cache(e) => g.cache = Some(option_int(e)?),
            // sqlparser's flag is "NO CYCLE".
            SequenceOptions::Cycle(no) => g.cycle = Some(!no),
            SequenceOptions::OwnedBy(o) => g.owned_by = Some(o.clone()),
        }
    }
    Ok(g)
}

/// Applies options to a definition (`old` for ALTER, `None` for CREATE) and
/// checks them as PostgreSQL's `init_params` does.
fn define(name: &str, oid: u32, old: Option<&SequenceDef>, g: &Given, default_type: DataType) -> Result<SequenceDef> {
    let old_type = old.map(|o| o.data_type.clone());
    let data_type = g.data_type.clone().or(old_type.clone()).unwrap_or(default_type);
    let (type_min, type_max) = type_bounds(&data_type);
    let increment = g.increment.or(old.map(|o| o.increment)).unwrap_or(1);
    if increment == 0 {
        return Err(invalid("INCREMENT must not be zero".into()));
    }
    let ascending = increment > 0;
    // A bound left at its type's limit follows a change of type (as in PostgreSQL).
    let old_bounds = old_type.as_ref().map(type_bounds);
    let max = match (g.max, old) {
        (Some(Some(v)), _) => v,
        (None, Some(o)) if !(g.data_type.is_some() && old_bounds.is_some_and(|b| b.1 == o.max)) => o.max,
        _ => {
            if ascending {
                type_max
            } else {
                -1
            }
        }
    };
    let min = match (g.min, old) {
        (Some(Some(v)), _) => v,
        (None, Some(o)) if !(g.data_type.is_some() && old_bounds.is_some_and(|b| b.0 == o.min)) => o.min,
        _ => {
            if ascending {
                1
            } else {
                type_min
            }
        }
    };
    let type_name = data_type.sql_name();
    if max < type_min || max > type_max {
        return Err(invalid(format!("MAXVALUE ({max}) is out of range for sequence data type {type_name}")));
    }
    if min < type_min || min > type_max {
        return Err(invalid(format!("MINVALUE ({min}) is out of range for sequence data type {type_name}")));
    }
    if min >= max {
        return Err(invalid(format!("MINVALUE ({min}) must be less than MAXVALUE ({max})")));
    }
    let start = g.start.or(old.map(|o| o.start)).unwrap_or(if ascending { min } else { max });
    if start < min {
        return Err(invalid(format!("START value ({start}) cannot be less than MINVALUE ({min})")));
    }
    if start > max {
        return Err(invalid(format!("START value ({start}) cannot be greater than MAXVALUE ({max})")));
    }
    let cache = g.cache.or(old.map(|o| o.cache)).unwrap_or(1);
    if cache < 1 {
        return Err(invalid(format!("CACHE ({cache}) must be greater than zero")));
    }
    Ok(SequenceDef {
        name: name.to_string(),
        oid,
        data_type,
        start,
        increment,
        min,
        max,
        cache,
        cycle: g.cycle.or(old.map(|o| o.cycle)).unwrap_or(false),
        owned_by: old.and_then(|o| o.owned_by.clone()),
    })
}

/// The statement creating a sequence's state row.
fn insert_state_sql(s: &SequenceDef) -> String {
    format!(
        "INSERT INTO \"__shoal_sequences\" (\"oid\", \"name\", \"increment\", \"min_value\", \"max_value\", \"cycle\", \
         \"last_value\", \"is_called\") VALUES ({}, {}, {}, {}, {}, {}, {}, 0)",
        s.oid,
        quote_str(&s.name),
        s.increment,
        s.min,
        s.max,
        s.cycle as i32,
        s.start
    )
}

/// The statement updating a sequence's parameters in its state row.
fn update_state_sql(s: &SequenceDef) -> String {
    format!(
        "UPDATE \"__shoal_sequences\" SET \"name\" = {}, \"increment\" = {}, \"min_value\" = {}, \"max_value\" = {}, \
         \"cycle\" = {} WHERE \"oid\" = {}",
        quote_str(&s.name),
        s.increment,
        s.min,
        s.max,
        s.cycle as i32,
        s.oid
    )
}

/// The statement deleting sequences' state rows.
pub(crate) fn delete_state_sql(oids: &[u32]) -> String {
    let list: Vec<String> = oids.iter().map(|o| o.to_string()).collect();
    format!("DELETE FROM \"__shoal_sequences\" WHERE \"oid\" IN ({})", list.join(", "))
}

/// Removes the sequences owned by `table` (all its columns, or only
/// `column`), returning the statements that delete their state.
pub(crate) fn drop_owned(catalog: &mut Catalog, table: &str, column: Option<&str>) -> Vec<String> {
    let owned: Vec<(String, u32)> = catalog
        .sequences
        .values()
        .filter(|s| s.owned_by.as_ref().is_some_and(|(t, c)| t == table && column.is_none_or(|col| col == c)))
        .map(|s| (s.name.clone(), s.oid))
        .collect();
    for (name, _) in &owned {
        catalog.sequences.remove(name);
    }
    if owned.is_empty() {
        return vec![];
    }
    vec![delete_state_sql(&owned.iter().map(|(_, o)| *o).collect::<Vec<_>>())]
}

/// Follows a table or column rename in the sequences it owns.
pub(crate) fn rename_owner(catalog: &mut Catalog, table: &str, old_col: Option<&str>, new: &str) {
    for s in catalog.sequences.values_mut() {
        if let Some((t, c)) = &mut s.owned_by {
            if t == table {
                match old_col {
                    None => *t = new.to_string(),
                    Some(old) if c == old => *c = new.to_string(),
                    Some(_) => {}
                }
            }
        }
    }
}

/// Parses the text of a `regclass` (`'s'`, `'public.s'`, `'"S"'`) into a folded name.
fn regclass_name(text: &str) -> Result<String> {
    let bad = || Error::new(SqlState::parse("42602"), format!("invalid name syntax: \"{text}\""));
    let dialect = sqlparser::dialect::PostgreSqlDialect {};
    let mut parser = sqlparser::parser::Parser::new(&dialect).try_with_sql(text).map_err(|_| bad())?;
    let name = parser.parse_object_name(false).map_err(|_| bad())?;
    if parser.peek_token_ref().token != sqlparser::tokenizer::Token::EOF {
        return Err(bad());
    }
    match object_name(&name) {
        Ok(n) => Ok(n),
        Err(e) if e.code == SqlState::INVALID_SCHEMA_NAME => Err(Error::new(SqlState::parse("3F000"), e.message)),
        Err(e) => Err(e),
    }
}

/// A string literal, possibly cast to `regclass` or `text` (`'s'::regclass`).
fn literal_name(e: &Expr) -> Option<&str> {
    match e {
        Expr::Nested(inner) => literal_name(inner),
        Expr::Cast { expr, .. } => literal_name(expr),
        Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) => Some(s),
            _ => None,
        },
        _ => None,
    }
}

/// Strips a `::regclass` cast, which would look the name up in `pg_class`
/// (not attached on the writer); the sequence functions resolve names themselves.
fn strip_regclass(e: &Expr) -> &Expr {
    match e {
        Expr::Cast { expr, data_type, .. }
            if matches!(data_type, ast::DataType::Regclass)
                || matches!(data_type, ast::DataType::Custom(n, _) if n.to_string().eq_ignore_ascii_case("regclass")) =>
        {
            expr
        }
        Expr::Nested(inner) => strip_regclass(inner),
        other => other,
    }
}

impl Binder<'_> {
    /// The sequence a literal names (42P01 when none, 42809 for another kind of relation).
    fn sequence_by_name(&self, text: &str) -> Result<&SequenceDef> {
        let name = regclass_name(text)?;
        if let Some(s) = self.catalog.sequence(&name) {
            return Ok(s);
        }
        if self.catalog.relation_exists(&name) {
            return Err(Error::new(SqlState::WRONG_OBJECT_TYPE, format!("\"{name}\" is not a sequence")));
        }
        Err(Error::new(SqlState::UNDEFINED_TABLE, format!("relation \"{name}\" does not exist")))
    }

    /// A sequence argument: an OID literal when the name is known now, else
    /// the value (a name as text, or an OID) for the function to resolve.
    fn sequence_arg(&mut self, e: &Expr) -> Result<String> {
        if let Some(text) = literal_name(e) {
            return Ok(self.sequence_by_name(text)?.oid.to_string());
        }
        let t = self.expr(strip_regclass(e))?;
        if t.ty == DataType::Oid || t.ty.is_numeric() && !t.is_untyped() {
            return Ok(t.sql);
        }
        let t = self.align(t, &DataType::Text)?;
        if !t.ty.is_text() && t.ty != DataType::Unknown {
            return Err(Error::new(
                SqlState::UNDEFINED_FUNCTION,
                format!("function nextval({}) does not exist", t.ty.sql_name()),
            ));
        }
        Ok(t.sql)
    }

    /// `nextval`, `currval`, `setval`, `lastval`, `pg_get_serial_sequence`;
    /// `Ok(None)` for any other name.
    pub fn sequence_function(&mut self, name: &str, args: &[&Expr]) -> Result<Option<Typed>> {
        let arity = |ok: bool| crate::func::check_arity(name, args.len(), ok);
        let t = match name {
            "nextval" => {
                arity(args.len() == 1)?;
                let seq = self.sequence_arg(args[0])?;
                self.sequence_writes = true;
                Typed::new(format!("shoal_nextval({seq})"), DataType::Int8)
            }
            "setval" => {
                arity(args.len() == 2 || args.len() == 3)?;
                let seq = self.sequence_arg(args[0])?;
                let v = self.expr(args[1])?;
                let v = self.align(v, &DataType::Int8)?;
                if !v.ty.is_numeric() && v.ty != DataType::Unknown {
                    return Err(Error::new(
                        SqlState::UNDEFINED_FUNCTION,
                        format!("function setval(regclass, {}) does not exist", v.ty.sql_name()),
                    ));
                }
                let called = match args.get(2) {
                    Some(e) => {
                        let b = self.expr(e)?;
                        self.align(b, &DataType::Bool)?.sql
                    }
                    None => "1".into(),
                };
                self.sequence_writes = true;
                Typed::new(format!("shoal_setval({seq}, {}, {called})", v.sql), DataType::Int8)
            }
            "currval" => {
                arity(args.len() == 1)?;
                let seq = self.sequence_arg(args[0])?;
                self.sequence_state = true;
                Typed::new(format!("shoal_currval({SESSION_STATE_MARKER}, {seq})"), DataType::Int8)
            }
            "lastval" => {
                arity(args.is_empty())?;
                self.sequence_state = true;
                Typed::new(format!("shoal_lastval({SESSION_STATE_MARKER})"), DataType::Int8)
            }
            "pg_get_serial_sequence" => {
                arity(args.len() == 2)?;
                self.serial_sequence(args[0], args[1])?
            }
            _ => return Ok(None),
        };
        Ok(Some(t.named(name)))
    }

    /// `pg_get_serial_sequence(table, column)`: the sequence owned by the
    /// column, as `public.name`. The column name is taken literally (not folded), as in PostgreSQL.
    fn serial_sequence(&mut self, table: &Expr, column: &Expr) -> Result<Typed> {
        let qualified = |s: &SequenceDef| {
            let plain = s.name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
                && s.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if plain {
                format!("public.{}", s.name)
            } else {
                format!("public.{}", quote(&s.name))
            }
        };
        if let (Some(t), Some(c)) = (literal_name(table), literal_name(column)) {
            let t = regclass_name(t)?;
            let Some(tab) = self.catalog.table(&t) else {
                return Err(Error::new(SqlState::UNDEFINED_TABLE, format!("relation \"{t}\" does not exist")));
            };
            if tab.column(c).is_none() {
                return Err(Error::new(
                    SqlState::UNDEFINED_COLUMN,
                    format!("column \"{c}\" of relation \"{t}\" does not exist"),
                ));
            }
            let owned = self
                .catalog
                .sequences
                .values()
                .find(|s| s.owned_by.as_ref().is_some_and(|(ot, oc)| *ot == t && oc == c));
            return Ok(match owned {
                Some(s) => Typed::new(quote_str(&qualified(s)), DataType::Text),
                None => Typed::new("NULL", DataType::Text),
            });
        }
        let t = self.text_arg(table)?;
        let c = self.text_arg(column)?;
        let rows: Vec<String> = self
            .catalog
            .sequences
            .values()
            .filter_map(|s| {
                let (ot, oc) = s.owned_by.as_ref()?;
                Some(format!("({}, {}, {})", quote_str(ot), quote_str(oc), quote_str(&qualified(s))))
            })
            .collect();
        if rows.is_empty() {
            return Ok(Typed::new("NULL", DataType::Text));
        }
        Ok(Typed::new(
            format!(
                "(SELECT \"column3\" FROM (VALUES {}) WHERE (\"column1\" = lower({}) OR 'public.' || \"column1\" = lower({1})) AND \"column2\" = {})",
                rows.join(", "),
                t.sql,
                c.sql
            ),
            DataType::Text,
        ))
    }

    /// `CREATE SEQUENCE`.
    pub fn create_sequence(
        &mut self,
        name: &ast::ObjectName,
        if_not_exists: bool,
        temporary: bool,
        options: &[SequenceOptions],
    ) -> Result<Plan> {
        if temporary {
            return Err(Error::unsupported("temporary sequences"));
        }
        let name = object_name(name)?;
        if self.catalog.relation_exists(&name) {
            if if_not_exists {
                return Ok(Plan::Noop {
                    tag: "CREATE SEQUENCE".into(),
                    notice: Some(format!("relation \"{name}\" already exists, skipping")),
                });
            }
            return Err(Error::new(SqlState::DUPLICATE_TABLE, format!("relation \"{name}\" already exists")));
        }
        let g = given(options)?;
        let mut catalog = self.catalog.clone();
        let oid = catalog.alloc_oid();
        let mut def = define(&name, oid, None, &g, DataType::Int8)?;
        def.owned_by = self.owner(&catalog, &g)?.unwrap_or(None);
        let sql = insert_state_sql(&def);
        catalog.sequences.insert(name, def);
        Ok(Plan::Ddl { statements: vec![sql], catalog, tag: "CREATE SEQUENCE".into(), notices: vec![] })
    }

    /// `OWNED BY table.column | NONE`: `None` when not given, `Some(None)` for NONE.
    fn owner(&self, catalog: &Catalog, g: &Given) -> Result<Option<Option<(String, String)>>> {
        let Some(owned) = &g.owned_by else { return Ok(None) };
        let Some(target) = owned else { return Ok(Some(None)) };
        let parts: Vec<String> = target.0.iter().filter_map(|p| p.as_ident()).map(fold).collect();
        let (table, column) = match parts.as_slice() {
            [t, c] => (t.clone(), c.clone()),
            [s, t, c] if s == "public" => (t.clone(), c.clone()),
            _ => {
                return Err(Error::new(SqlState::INVALID_PARAMETER_VALUE, "invalid OWNED BY option")
                    .with_hint("Specify OWNED BY table.column or OWNED BY NONE."))
            }
        };
        let Some(t) = catalog.table(&table) else {
            return Err(Error::new(SqlState::UNDEFINED_TABLE, format!("relation \"{table}\" does not exist")));
        };
        if t.column(&column).is_none() {
            return Err(Error::new(
                SqlState::UNDEFINED_COLUMN,
                format!("column \"{column}\" of relation \"{table}\" does not exist"),
            ));
        }
        Ok(Some(Some((table, column))))
    }

    /// `ALTER SEQUENCE`.
    pub fn alter_sequence(&mut self, a: &AlterSequence) -> Result<Plan> {
        let name = object_name(&a.name)?;
        let Some(old) = self.catalog.sequence(&name).cloned() else {
            if a.if_exists {
                return Ok(Plan::Noop {
                    tag: "ALTER SEQUENCE".into(),
                    notice: Some(format!("relation \"{name}\" does not exist, skipping")),
                });
            }
            if self.catalog.relation_exists(&name) {
                return Err(Error::new(SqlState::WRONG_OBJECT_TYPE, format!("\"{name}\" is not a sequence")));
            }
            return Err(Error::new(SqlState::UNDEFINED_TABLE, format!("relation \"{name}\" does not exist")));
        };
        let mut catalog = self.catalog.clone();
        let mut stmts = Vec::new();
        match &a.action {
            AlterSequenceAction::Rename(to) => {
                let new = object_name(to)?;
                if catalog.relation_exists(&new) {
                    return Err(Error::new(SqlState::DUPLICATE_TABLE, format!("relation \"{new}\" already exists")));
                }
                let mut def = old.clone();
                def.name = new.clone();
                catalog.sequences.remove(&name);
                for t in catalog.tables.values_mut() {
                    for c in t.columns.iter_mut().filter(|c| c.sequence.as_deref() == Some(name.as_str())) {
                        c.sequence = Some(new.clone());
                    }
                }
                stmts.push(update_state_sql(&def));
                catalog.sequences.insert(new, def);
            }
            AlterSequenceAction::Options { options, restart } => {
                let g = given(options)?;
                let mut def = define(&name, old.oid, Some(&old), &g, DataType::Int8)?;
                if let Some(owner) = self.owner(&catalog, &g)? {
                    def.owned_by = owner;
                }
                stmts.push(update_state_sql(&def));
                if let Some(at) = restart {
                    let value = match at {
                        Some(e) => option_int(e)?,
                        None => def.start,
                    };
                    if value < def.min {
                        return Err(invalid(format!(
                            "RESTART value ({value}) cannot be less than MINVALUE ({})",
                            def.min
                        )));
                    }
                    if value > def.max {
                        return Err(invalid(format!(
                            "RESTART value ({value}) cannot be greater than MAXVALUE ({})",
                            def.max
                        )));
                    }
                    stmts.push(format!(
                        "UPDATE \"__shoal_sequences\" SET \"last_value\" = {value}, \"is_called\" = 0 WHERE \"oid\" = {}",
                        def.oid
                    ));
                }
                catalog.sequences.insert(name, def);
            }
        }
        Ok(Plan::Ddl { statements: stmts, catalog, tag: "ALTER SEQUENCE".into(), notices: vec![] })
    }

    /// Drops the sequence `name` from `catalog` (for `DROP SEQUENCE`),
    /// returning the statements to run and the notices to send. Columns
    /// whose default draws from it block the drop unless `cascade`, which
    /// drops those defaults; an identity column's sequence cannot be dropped.
    pub(crate) fn drop_sequence(
        &self,
        catalog: &mut Catalog,
        name: &str,
        cascade: bool,
        notices: &mut Vec<String>,
    ) -> Result<Vec<String>> {
        let Some(seq) = catalog.sequences.get(name).cloned() else {
            return Err(Error::internal("drop_sequence of a missing sequence"));
        };
        let call = nextval_sql(seq.oid);
        let mut dependents = Vec::new();
        for t in catalog.tables.values() {
            for c in &t.columns {
                if c.identity && c.sequence.as_deref() == Some(name) {
                    return Err(Error::new(
                        SqlState::parse("2BP01"),
                        format!(
                            "cannot drop sequence {name} because column {} of table {} requires it",
                            c.name, t.name
                        ),
                    )
                    .with_hint(format!("You can drop column {} of table {} instead.", c.name, t.name)));
                }
                if c.sqlite_default.as_deref().is_some_and(|d| d.contains(&call)) {
                    dependents.push((t.name.clone(), c.name.clone()));
                }
            }
        }
        if !dependents.is_empty() && !cascade {
            let detail: Vec<String> = dependents
                .iter()
                .map(|(t, c)| format!("default value for column {c} of table {t} depends on sequence {name}"))
                .collect();
            return Err(Error::new(
                SqlState::parse("2BP01"),
                format!("cannot drop sequence {name} because other objects depend on it"),
            )
            .with_detail(detail.join("\n"))
            .with_hint("Use DROP ... CASCADE to drop the dependent objects too."));
        }
        for (t, c) in &dependents {
            notices.push(format!("drop cascades to default value for column {c} of table {t}"));
            if let Some(col) = catalog.tables.get_mut(t).and_then(|t| t.columns.iter_mut().find(|x| x.name == *c)) {
                drop_default(col);
            }
        }
        catalog.sequences.remove(name);
        Ok(vec![delete_state_sql(&[seq.oid])])
    }

    /// Creates the sequence a SERIAL or identity column of `table` owns and
    /// points the column at it. Returns the statement creating its state.
    pub(crate) fn column_sequence(
        &mut self,
        catalog: &mut Catalog,
        table: &str,
        col: &mut ColumnDef,
        options: &[SequenceOptions],
    ) -> Result<String> {
        let name = catalog.free_relation_name(&format!("{table}_{}_seq", col.name));
        let name = if name == table { catalog.free_relation_name(&format!("{name}1")) } else { name };
        let oid = catalog.alloc_oid();
        let g = given(options)?;
        let mut def = define(&name, oid, None, &g, col.data_type.clone())?;
        def.owned_by = Some((table.to_string(), col.name.clone()));
        col.nullable = false;
        col.serial = true;
        col.sequence = Some(name.clone());
        col.sqlite_default = Some(nextval_sql(oid));
        let sql = insert_state_sql(&def);
        catalog.sequences.insert(name, def);
        Ok(sql)
    }
}

/// Removes a column's default (its sequence was dropped with CASCADE).
fn drop_default(col: &mut ColumnDef) {
    col.default = None;
    col.sqlite_default = None;
    col.serial = false;
    col.sequence = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_follow_postgresql_defaults_and_checks() {
        let g = given(&[]).unwrap();
        let d = define("s", 1, None, &g, DataType::Int8).unwrap();
        assert_eq!((d.min, d.max, d.start, d.increment, d.cache), (1, i64::MAX, 1, 1, 1));
        let parse_opts = |sql: &str| match &crate::parse(sql).unwrap()[0] {
            crate::Stmt::Sql(ast::Statement::CreateSequence { sequence_options, .. }) => sequence_options.clone(),
            other => panic!("{other:?}"),
        };
        let g = given(&parse_opts("CREATE SEQUENCE s INCREMENT BY -1 AS smallint")).unwrap();
        let d = define("s", 1, None, &g, DataType::Int8).unwrap();
        assert_eq!((d.min, d.max, d.start), (i16::MIN as i64, -1, -1));
        for (sql, message) in [
            ("CREATE SEQUENCE s INCREMENT 0", "INCREMENT must not be zero"),
            (
                "CREATE SEQUENCE s AS smallint MAXVALUE 100000",
                "MAXVALUE (100000) is out of range for sequence data type smallint",
            ),
            ("CREATE SEQUENCE s MINVALUE 10 MAXVALUE 5", "MINVALUE (10) must be less than MAXVALUE (5)"),
            ("CREATE SEQUENCE s START 0", "START value (0) cannot be less than MINVALUE (1)"),
            ("CREATE SEQUENCE s CACHE 0", "CACHE (0) must be greater than zero"),
        ] {
            let err = given(&parse_opts(sql)).and_then(|g| define("s", 1, None, &g, DataType::Int8)).unwrap_err();
            assert_eq!((err.code, err.message.as_str()), (SqlState::INVALID_PARAMETER_VALUE, message), "{sql}");
        }
        // ALTER … AS integer pulls a maximum left at bigint's limit down with it.
        let old = define("s", 1, None, &given(&[]).unwrap(), DataType::Int8).unwrap();
        let g = given(&parse_opts("CREATE SEQUENCE s AS integer")).unwrap();
        assert_eq!(define("s", 1, Some(&old), &g, DataType::Int8).unwrap().max, i32::MAX as i64);
    }

    #[test]
    fn regclass_names_fold_like_postgresql() {
        assert_eq!(regclass_name("Foo").unwrap(), "foo");
        assert_eq!(regclass_name("public.\"Foo\"").unwrap(), "Foo");
        assert_eq!(regclass_name("other.foo").unwrap_err().code.as_str(), "3F000");
        assert_eq!(regclass_name("a b").unwrap_err().code.as_str(), "42602");
    }
}
