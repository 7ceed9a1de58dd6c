//! Schema changes: CREATE/ALTER/DROP TABLE, indexes, views, TRUNCATE.
//!
//! Each DDL statement yields SQLite DDL plus the new [`Catalog`]. Column
//! types are enforced with named CHECK constraints that SQLite reports by
//! name, and that [`crate::errors::map_sqlite_error`] turns back into
//! PostgreSQL errors:
//!
//! | constraint name              | checks                                  | PostgreSQL error |
//! |------------------------------|-----------------------------------------|------------------|
//! | `shoal_type:<type>`          | `typeof(col)` fits the storage class    | 22P02            |
//! | `shoal_len:<type>`           | `length(col) <= n` for varchar/char(n)  | 22001            |
//! | `<table>_<col>_check`, user  | the user's CHECK                        | 23514            |
//!
//! A SERIAL/BIGSERIAL/SMALLSERIAL or `GENERATED … AS IDENTITY` column owns
//! a sequence `<table>_<column>_seq` created in the same statement (see
//! `crate::sequence`); its SQLite column has no DEFAULT, because every
//! INSERT writes the `shoal_nextval(…)` call explicitly.

use shoal_common::{DataType, Error, Result, SqlState};
use sqlparser::ast::{self, ColumnOption, TableConstraint};

use crate::binder::{self, fold, object_name, quote, storage, Binder, Col, Rel, Scope, Storage};
use crate::catalog::{
    Catalog, CheckDef, ColumnDef, Distribution, ForeignKeyDef, IndexDef, Table, UniqueDef, ViewColumn, ViewDef,
};
use crate::plan::Plan;
use crate::sequence::{self, draws_from_sequence};

fn ddl(statements: Vec<String>, catalog: Catalog, tag: &str) -> Plan {
    Plan::Ddl { statements, catalog, tag: tag.into(), notices: vec![] }
}

fn noop(tag: &str, notice: String) -> Plan {
    Plan::Noop { tag: tag.into(), notice: Some(notice) }
}

fn idents(cols: &[ast::IndexColumn]) -> Result<Vec<String>> {
    cols.iter()
        .map(|c| match &c.column.expr {
            ast::Expr::Identifier(i) => Ok(fold(i)),
            other => Err(Error::unsupported(format!("the index expression {other}"))),
        })
        .collect()
}

/// A table being defined: columns, constraints, and the SQLite pieces.
struct Draft {
    table: Table,
    column_sql: Vec<String>,
    constraint_sql: Vec<String>,
}

impl Binder<'_> {
    pub fn create_table(&mut self, ct: &ast::CreateTable) -> Result<Plan> {
        if ct.query.is_some() || ct.like.is_some() || ct.clone.is_some() || ct.temporary || ct.external {
            return Err(Error::unsupported("CREATE TABLE AS / LIKE / TEMPORARY"));
        }
        let name = object_name(&ct.name)?;
        if self.catalog.relation_exists(&name) {
            if ct.if_not_exists {
                return Ok(noop("CREATE TABLE", format!("relation \"{name}\" already exists, skipping")));
            }
            return Err(Error::new(SqlState::DUPLICATE_TABLE, format!("relation \"{name}\" already exists")));
        }
        let mut catalog = self.catalog.clone();
        let oid = catalog.alloc_oid();
        let table = Table {
            name: name.clone(),
            oid,
            columns: vec![],
            primary_key: vec![],
            unique: vec![],
            foreign_keys: vec![],
            checks: vec![],
            distribution: Distribution::Local,
        };
        let mut draft = Draft { table, column_sql: vec![], constraint_sql: vec![] };
        let mut serial_cols: Vec<(String, Vec<ast::SequenceOptions>)> = Vec::new();
        for c in &ct.columns {
            let (ty, serial) = binder::data_type(&c.data_type)?;
            let cname = fold(&c.name);
            if draft.table.column(&cname).is_some() {
                return Err(Error::new(
                    SqlState::DUPLICATE_COLUMN,
                    format!("column \"{cname}\" specified more than once"),
                ));
            }
            let mut identity = None;
            for o in &c.options {
                if let ColumnOption::Generated { generated_as, sequence_options, generation_expr, .. } = &o.option {
                    if generation_expr.is_some() || matches!(generated_as, ast::GeneratedAs::ExpStored) {
                        return Err(Error::unsupported("generated columns (GENERATED ALWAYS AS (expression))"));
                    }
                    identity = Some((
                        matches!(generated_as, ast::GeneratedAs::Always),
                        sequence_options.clone().unwrap_or_default(),
                    ));
                }
            }
            if identity.is_some() && serial {
                return Err(Error::syntax(format!(
                    "both default and identity specified for column \"{cname}\" of table \"{name}\""
                )));
            }
            if identity.is_some() && !matches!(ty, DataType::Int2 | DataType::Int4 | DataType::Int8) {
                return Err(Error::new(
                    SqlState::INVALID_PARAMETER_VALUE,
                    "identity column type must be smallint, integer, or bigint",
                ));
            }
            if serial || identity.is_some() {
                serial_cols.push((cname.clone(), identity.as_ref().map(|i| i.1.clone()).unwrap_or_default()));
            }
            draft.table.columns.push(ColumnDef {
                name: cname,
                data_type: ty,
                nullable: true,
                default: None,
                sqlite_default: None,
                serial: serial || identity.is_some(),
                identity_always: identity.as_ref().is_some_and(|i| i.0),
                identity: identity.is_some(),
                sequence: None,
            });
        }
        for c in &ct.columns {
            self.column_options(&mut draft, &fold(&c.name), &c.options)?;
        }
        for tc in &ct.constraints {
            self.table_constraint(&mut draft, tc)?;
        }
        draft.table.distribution = distribution(&ct.table_options, &draft.table)?;
        let mut sequence_sql = Vec::new();
        for (col, options) in &serial_cols {
            if draft.table.column(col).is_some_and(|(_, c)| c.default.is_some()) {
                return Err(Error::syntax(format!(
                    "multiple default values specified for column \"{col}\" of table \"{name}\""
                )));
            }
            let Some(c) = draft.table.columns.iter_mut().find(|c| c.name == *col) else { continue };
            sequence_sql.push(self.column_sequence(&mut catalog, &name, c, options)?);
        }
        let sql = self.table_sql(&mut draft)?;
        catalog.tables.insert(name, draft.table);
        let mut stmts = vec![sql];
        stmts.extend(sequence_sql);
        Ok(ddl(stmts, catalog, "CREATE TABLE"))
    }

    fn column_options(&mut self, d: &mut Draft, col: &str, options: &[ast::ColumnOptionDef]) -> Result<()> {
        for o in options {
            let cname = o.name.as_ref().map(fold);
            match &o.option {
                ColumnOption::Null => {}
                ColumnOption::NotNull => self.col_mut(d, col)?.nullable = false,
                ColumnOption::Default(e) => self.column_default(d, col, e)?,
                ColumnOption::PrimaryKey(_) => self.add_pk(d, vec![col.to_string()])?,
                ColumnOption::Unique(_) => self.add_unique(d, cname, vec![col.to_string()])?,
                ColumnOption::ForeignKey(fk) => {
                    self.add_fk(d, cname, vec![col.to_string()], &fk.foreign_table, &fk.referred_columns, fk)?
                }
                ColumnOption::Check(c) => {
                    let name = cname.or(c.name.as_ref().map(fold));
                    self.add_check(d, name, Some(col), &c.expr)?
                }
                ColumnOption::Generated { .. } => {}
                other => return Err(Error::unsupported(format!("the column option {other}"))),
            }
        }
        Ok(())
    }

    fn col_mut<'d>(&self, d: &'d mut Draft, col: &str) -> Result<&'d mut ColumnDef> {
        d.table.columns.iter_mut().find(|c| c.name == col).ok_or_else(|| {
            Error::new(SqlState::UNDEFINED_COLUMN, format!("column \"{col}\" named in key does not exist"))
        })
    }

    fn column_default(&mut self, d: &mut Draft, col: &str, e: &ast::Expr) -> Result<()> {
        let ty = self.col_mut(d, col)?.data_type.clone();
        self.scopes.push(Scope::default());
        let t = self.expr(e);
        self.scopes.pop();
        let t = self.assign(t?, &ty, col)?;
        if !self.params.is_empty() {
            return Err(Error::new(SqlState::UNDEFINED_PARAMETER, "there is no parameter $1"));
        }
        if self.sequence_state {
            return Err(Error::unsupported("currval() or lastval() in a column default"));
        }
        let c = self.col_mut(d, col)?;
        c.default = Some(e.to_string());
        c.sqlite_default = Some(format!("({})", t.sql));
        Ok(())
    }

    fn add_pk(&mut self, d: &mut Draft, cols: Vec<String>) -> Result<()> {
        if !d.table.primary_key.is_empty() {
            return Err(Error::new(
                SqlState::INVALID_TABLE_DEFINITION,
                format!("multiple primary keys for table \"{}\" are not allowed", d.table.name),
            ));
        }
        for c in &cols {
            self.col_mut(d, c)?.nullable = false;
        }
        d.table.primary_key = cols;
        Ok(())
    }

    fn add_unique(&mut self, d: &mut Draft, name: Option<String>, cols: Vec<String>) -> Result<()> {
        for c in &cols {
            self.col_mut(d, c)?;
        }
        let name = name.unwrap_or_else(|| unique_name(&d.table, &format!("{}_{}_key", d.table.name, cols.join("_"))));
        d.constraint_sql.push(format!("CONSTRAINT {} UNIQUE ({})", quote(&name), quote_list(&cols)));
        d.table.unique.push(UniqueDef { name, columns: cols });
        Ok(())
    }

    fn add_fk(
        &mut self,
        d: &mut Draft,
        name: Option<String>,
        cols: Vec<String>,
        foreign: &ast::ObjectName,
        referred: &[ast::Ident],
        fk: &ast::ForeignKeyConstraint,
    ) -> Result<()> {
        let ftable = object_name(foreign)?;
        let target_pk = if ftable == d.table.name {
            d.table.primary_key.clone()
        } else {
            self.catalog
                .table(&ftable)
                .ok_or_else(|| Error::new(SqlState::UNDEFINED_TABLE, format!("relation \"{ftable}\" does not exist")))?
                .primary_key
                .clone()
        };
        let fcols: Vec<String> = if referred.is_empty() { target_pk } else { referred.iter().map(fold).collect() };
        if fcols.len() != cols.len() {
            return Err(Error::new(
                SqlState::parse("42830"),
                "number of referencing and referenced columns for foreign key disagree",
            ));
        }
        let name = name.unwrap_or_else(|| unique_name(&d.table, &format!("{}_{}_fkey", d.table.name, cols.join("_"))));
        let mut sql = format!(
            "CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({})",
            quote(&name),
            quote_list(&cols),
            quote(&ftable),
            quote_list(&fcols)
        );
        for (word, action) in [("DELETE", &fk.on_delete), ("UPDATE", &fk.on_update)] {
            if let Some(a) = action {
                sql.push_str(&format!(" ON {word} {}", referential(a)?));
            }
        }
        d.constraint_sql.push(sql);
        let action = |a: &Option<ast::ReferentialAction>| -> Result<Option<String>> {
            Ok(match a {
                Some(ast::ReferentialAction::NoAction) | None => None,
                Some(other) => Some(referential(other)?.to_string()),
            })
        };
        d.table.foreign_keys.push(ForeignKeyDef {
            name,
            columns: cols,
            foreign_table: ftable,
            foreign_columns: fcols,
            on_delete: action(&fk.on_delete)?,
            on_update: action(&fk.on_update)?,
        });
        Ok(())
    }

    fn add_check(&mut self, d: &mut Draft, name: Option<String>, col: Option<&str>, e: &ast::Expr) -> Result<()> {
        self.scopes.push(Scope::default());
        let cols = d
            .table
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| Col {
                name: c.name.clone(),
                ty: c.data_type.clone(),
                sql: quote(&c.name),
                table_oid: 0,
                column_id: i as i16 + 1,
            })
            .collect();
        self.scope().rels.push(Rel { alias: d.table.name.clone(), cols });
        let t = self.condition(e);
        self.scopes.pop();
        let t = t?;
        let base = match col {
            Some(c) => format!("{}_{c}_check", d.table.name),
            None => match single_column(e) {
                Some(c) => format!("{}_{c}_check", d.table.name),
                None => format!("{}_check", d.table.name),
            },
        };
        let name = name.unwrap_or_else(|| unique_name(&d.table, &base));
        d.constraint_sql.push(format!("CONSTRAINT {} CHECK ({})", quote(&name), t.sql));
        d.table.checks.push(CheckDef { name, expr: e.to_string() });
        Ok(())
    }

    fn table_constraint(&mut self, d: &mut Draft, tc: &TableConstraint) -> Result<()> {
        match tc {
            TableConstraint::PrimaryKey(pk) => self.add_pk(d, idents(&pk.columns)?),
            TableConstraint::Unique(u) => self.add_unique(d, u.name.as_ref().map(fold), idents(&u.columns)?),
            TableConstraint::ForeignKey(fk) => {
                let cols = fk.columns.iter().map(fold).collect();
                self.add_fk(d, fk.name.as_ref().map(fold), cols, &fk.foreign_table, &fk.referred_columns, fk)
            }
            TableConstraint::Check(c) => self.add_check(d, c.name.as_ref().map(fold), None, &c.expr),
            other => Err(Error::unsupported(format!("the table constraint {other}"))),
        }
    }

    /// The SQLite `CREATE TABLE`.
    fn table_sql(&mut self, d: &mut Draft) -> Result<String> {
        let mut cols = Vec::new();
        for c in &d.table.columns {
            let mut sql = format!("{} {}", quote(&c.name), column_type(&c.data_type));
            if !c.nullable {
                sql.push_str(" NOT NULL");
            }
            // A default that draws from a sequence is written by every INSERT instead.
            if let Some(def) = c.sqlite_default.as_ref().filter(|d| !draws_from_sequence(Some(d))) {
                sql.push_str(&format!(" DEFAULT {def}"));
            }
            sql.push_str(&type_checks(&c.name, &c.data_type));
            cols.push(sql);
        }
        d.column_sql = cols;
        let mut parts = d.column_sql.clone();
        if !d.table.primary_key.is_empty() {
            parts.push(format!(
                "CONSTRAINT {} PRIMARY KEY ({})",
                quote(&format!("{}_pkey", d.table.name)),
                quote_list(&d.table.primary_key)
            ));
        }
        parts.extend(d.constraint_sql.iter().cloned());
        Ok(format!("CREATE TABLE {} ({})", quote(&d.table.name), parts.join(", ")))
    }

    pub fn alter_table(&mut self, at: &ast::AlterTable) -> Result<Plan> {
        let name = object_name(&at.name)?;
        let Some(table) = self.catalog.table(&name).cloned() else {
            if at.if_exists {
                return Ok(noop("ALTER TABLE", format!("relation \"{name}\" does not exist, skipping")));
            }
            return Err(Error::new(SqlState::UNDEFINED_TABLE, format!("relation \"{name}\" does not exist")));
        };
        let mut catalog = self.catalog.clone();
        let mut current = table;
        let mut stmts = Vec::new();
        for op in &at.operations {
            self.alter_op(&mut catalog, &mut current, op, &mut stmts)?;
        }
        Ok(ddl(stmts, catalog, "ALTER TABLE"))
    }

    fn alter_op(
        &mut self,
        catalog: &mut Catalog,
        t: &mut Table,
        op: &ast::AlterTableOperation,
        out: &mut Vec<String>,
    ) -> Result<()> {
        use ast::AlterTableOperation as Op;
        let qt = quote(&t.name);
        match op {
            Op::AddColumn { column_def, if_not_exists, .. } => {
                let cname = fold(&column_def.name);
                if t.column(&cname).is_some() {
                    if *if_not_exists {
                        return Ok(());
                    }
                    return Err(Error::new(
                        SqlState::DUPLICATE_COLUMN,
                        format!("column \"{cname}\" of relation \"{}\" already exists", t.name),
                    ));
                }
                let (ty, serial) = binder::data_type(&column_def.data_type)?;
                if serial {
                    return Err(Error::unsupported("adding a serial column"));
                }
                let mut draft = Draft { table: t.clone(), column_sql: vec![], constraint_sql: vec![] };
                draft.table.columns.push(ColumnDef {
                    name: cname.clone(),
                    data_type: ty.clone(),
                    nullable: true,
                    default: None,
                    sqlite_default: None,
                    serial: false,
                    identity_always: false,
                    identity: false,
                    sequence: None,
                });
                if column_def.options.iter().any(|o| matches!(o.option, ColumnOption::Generated { .. })) {
                    return Err(Error::unsupported("adding an identity or generated column"));
                }
                self.column_options(&mut draft, &cname, &column_def.options)?;
                if draft.constraint_sql.iter().any(|c| c.contains(" UNIQUE ") || c.contains("FOREIGN KEY"))
                    || draft.table.primary_key != t.primary_key
                {
                    return Err(Error::unsupported("ADD COLUMN with PRIMARY KEY, UNIQUE or REFERENCES"));
                }
                let Some(col) = draft.table.columns.last().cloned() else { return Ok(()) };
                if draws_from_sequence(col.sqlite_default.as_deref()) {
                    return Err(Error::unsupported("ADD COLUMN with a DEFAULT that calls nextval()"));
                }
                let mut sql = format!("ALTER TABLE {qt} ADD COLUMN {} {}", quote(&cname), column_type(&ty));
                if !col.nullable {
                    sql.push_str(" NOT NULL");
                }
                if let Some(def) = &col.sqlite_default {
                    sql.push_str(&format!(" DEFAULT {def}"));
                }
                sql.push_str(&type_checks(&cname, &ty));
                for c in &draft.constraint_sql {
                    sql.push(' ');
                    sql.push_str(c);
                }
                out.push(sql);
                *t = draft.table;
            }
            Op::DropColumn { column_names, if_exists, .. } => {
                for c in column_names {
                    let cname = fold(c);
                    if t.column(&cname).is_none() {
                        if *if_exists {
                            continue;
                        }
                        return Err(Error::new(
                            SqlState::UNDEFINED_COLUMN,
                            format!("column \"{cname}\" of relation \"{}\" does not exist", t.name),
                        ));
                    }
                    if t.primary_key.contains(&cname) || t.unique.iter().any(|u| u.columns.contains(&cname)) {
                        return Err(Error::unsupported("dropping a primary-key or unique column"));
                    }
                    if matches!(&t.distribution, Distribution::Hash { column, .. } if *column == cname) {
                        return Err(Error::new(
                            SqlState::FEATURE_NOT_SUPPORTED,
                            format!("cannot drop column \"{cname}\": it is the shard key of \"{}\"", t.name),
                        )
                        .with_hint("A distributed table keeps its shard key; create a new table to change it."));
                    }
                    let dropped: Vec<String> = catalog
                        .indexes
                        .values()
                        .filter(|i| i.table == t.name && i.columns.contains(&cname))
                        .map(|i| i.name.clone())
                        .collect();
                    for ix in dropped {
                        out.push(format!("DROP INDEX {}", quote(&ix)));
                        catalog.indexes.remove(&ix);
                    }
                    out.push(format!("ALTER TABLE {qt} DROP COLUMN {}", quote(&cname)));
                    t.columns.retain(|col| col.name != cname);
                    out.extend(sequence::drop_owned(catalog, &t.name, Some(&cname)));
                }
            }
            Op::RenameColumn { old_column_name, new_column_name } => {
                let (old, new) = (fold(old_column_name), fold(new_column_name));
                if t.column(&old).is_none() {
                    return Err(Error::new(SqlState::UNDEFINED_COLUMN, format!("column \"{old}\" does not exist")));
                }
                if t.column(&new).is_some() {
                    return Err(Error::new(
                        SqlState::DUPLICATE_COLUMN,
                        format!("column \"{new}\" of relation \"{}\" already exists", t.name),
                    ));
                }
                out.push(format!("ALTER TABLE {qt} RENAME COLUMN {} TO {}", quote(&old), quote(&new)));
                rename_column(catalog, t, &old, &new);
                sequence::rename_owner(catalog, &t.name, Some(&old), &new);
            }
            Op::RenameTable { table_name } => {
                let (ast::RenameTableNameKind::To(n) | ast::RenameTableNameKind::As(n)) = table_name;
                let new = object_name(n)?;
                if catalog.relation_exists(&new) {
                    return Err(Error::new(SqlState::DUPLICATE_TABLE, format!("relation \"{new}\" already exists")));
                }
                out.push(format!("ALTER TABLE {qt} RENAME TO {}", quote(&new)));
                catalog.tables.remove(&t.name);
                for ix in catalog.indexes.values_mut().filter(|i| i.table == t.name) {
                    ix.table = new.clone();
                }
                for other in catalog.tables.values_mut() {
                    for fk in other.foreign_keys.iter_mut().filter(|f| f.foreign_table == t.name) {
                        fk.foreign_table = new.clone();
                    }
                }
                sequence::rename_owner(catalog, &t.name, None, &new);
                t.name = new;
            }
            other => return Err(Error::unsupported(format!("ALTER TABLE {other}"))),
        }
        catalog.tables.insert(t.name.clone(), t.clone());
        Ok(())
    }

    pub fn create_index(&mut self, ci: &ast::CreateIndex) -> Result<Plan> {
        if ci.predicate.is_some() || !ci.include.is_empty() || ci.using.is_some() && !is_btree(&ci.using) {
            return Err(Error::unsupported("partial, covering or non-btree indexes"));
        }
        let table_name = object_name(&ci.table_name)?;
        let table = self.catalog.table(&table_name).ok_or_else(|| {
            Error::new(SqlState::UNDEFINED_TABLE, format!("relation \"{table_name}\" does not exist"))
        })?;
        let cols = idents(&ci.columns)?;
        for c in &cols {
            if table.column(c).is_none() {
                return Err(Error::new(SqlState::UNDEFINED_COLUMN, format!("column \"{c}\" does not exist")));
            }
        }
        let name = match &ci.name {
            Some(n) => object_name(n)?,
            None => format!("{table_name}_{}_{}", cols.join("_"), if ci.unique { "key" } else { "idx" }),
        };
        if self.catalog.relation_exists(&name) {
            if ci.if_not_exists {
                return Ok(noop("CREATE INDEX", format!("relation \"{name}\" already exists, skipping")));
            }
            return Err(Error::new(SqlState::DUPLICATE_TABLE, format!("relation \"{name}\" already exists")));
        }
        let mut parts = Vec::new();
        for (c, ic) in cols.iter().zip(&ci.columns) {
            let desc = matches!(ic.column.options.sort, Some(ast::OrderBySort::Desc));
            parts.push(format!("{}{}", quote(c), if desc { " DESC" } else { "" }));
        }
        let unique = if ci.unique { "UNIQUE " } else { "" };
        let sql = format!("CREATE {unique}INDEX {} ON {} ({})", quote(&name), quote(&table_name), parts.join(", "));
        let mut catalog = self.catalog.clone();
        let oid = catalog.alloc_oid();
        catalog
            .indexes
            .insert(name.clone(), IndexDef { name, oid, table: table_name, columns: cols, unique: ci.unique });
        Ok(ddl(vec![sql], catalog, "CREATE INDEX"))
    }

    pub fn drop(
        &mut self,
        object_type: &ast::ObjectType,
        if_exists: bool,
        names: &[ast::ObjectName],
        cascade: bool,
    ) -> Result<Plan> {
        let (tag, kind) = match object_type {
            ast::ObjectType::Table => ("DROP TABLE", "table"),
            ast::ObjectType::Index => ("DROP INDEX", "index"),
            ast::ObjectType::View => ("DROP VIEW", "view"),
            ast::ObjectType::Sequence => ("DROP SEQUENCE", "sequence"),
            ast::ObjectType::Schema => return Err(Error::unsupported("DROP SCHEMA")),
            other => return Err(Error::unsupported(format!("DROP {other}"))),
        };
        let mut catalog = self.catalog.clone();
        let mut stmts = Vec::new();
        let mut notices = Vec::new();
        for n in names {
            let name = object_name(n)?;
            if kind == "sequence" && catalog.sequence(&name).is_some() {
                stmts.extend(self.drop_sequence(&mut catalog, &name, cascade, &mut notices)?);
                continue;
            }
            if kind == "sequence" && catalog.relation_exists(&name) {
                let (what, noun) = match () {
                    _ if catalog.table(&name).is_some() => ("TABLE", "table"),
                    _ if catalog.view(&name).is_some() => ("VIEW", "view"),
                    _ => ("INDEX", "index"),
                };
                return Err(Error::new(SqlState::WRONG_OBJECT_TYPE, format!("\"{name}\" is not a sequence"))
                    .with_hint(format!(
                        "Use DROP {what} to remove {} {noun}.",
                        if noun == "index" { "an" } else { "a" }
                    )));
            }
            let exists = match kind {
                "table" => catalog.tables.remove(&name).is_some(),
                "index" => catalog.indexes.remove(&name).is_some(),
                "sequence" => false,
                _ => catalog.views.remove(&name).is_some(),
            };
            if !exists {
                if if_exists {
                    notices.push(format!("{kind} \"{name}\" does not exist, skipping"));
                    continue;
                }
                // PostgreSQL: a missing table or view is 42P01, a missing index 42704.
                let code = if kind == "index" { SqlState::UNDEFINED_OBJECT } else { SqlState::UNDEFINED_TABLE };
                return Err(Error::new(code, format!("{kind} \"{name}\" does not exist")));
            }
            if kind == "table" {
                catalog.indexes.retain(|_, i| i.table != name);
            }
            stmts.push(format!("DROP {} {}", kind.to_uppercase(), quote(&name)));
            if kind == "table" {
                stmts.extend(sequence::drop_owned(&mut catalog, &name, None));
            }
        }
        if stmts.is_empty() {
            return Ok(Plan::Noop { tag: tag.into(), notice: notices.into_iter().next() });
        }
        Ok(Plan::Ddl { statements: stmts, catalog, tag: tag.into(), notices })
    }

    pub fn create_view(&mut self, cv: &ast::CreateView) -> Result<Plan> {
        if cv.materialized || cv.temporary {
            return Err(Error::unsupported("MATERIALIZED or TEMPORARY views"));
        }
        let name = object_name(&cv.name)?;
        let exists = self.catalog.view(&name).is_some();
        if self.catalog.relation_exists(&name) && !(exists && (cv.or_replace || cv.if_not_exists)) {
            return Err(Error::new(SqlState::DUPLICATE_TABLE, format!("relation \"{name}\" already exists")));
        }
        if exists && cv.if_not_exists {
            return Ok(noop("CREATE VIEW", format!("relation \"{name}\" already exists, skipping")));
        }
        let names: Vec<String> = cv.columns.iter().map(|c| fold(&c.name)).collect();
        let (sql, cols) = self.query(&cv.query, (!names.is_empty()).then_some(names.as_slice()))?;
        if !self.params.is_empty() {
            return Err(Error::new(SqlState::UNDEFINED_PARAMETER, "there is no parameter $1"));
        }
        if self.sequence_writes || self.sequence_state {
            return Err(Error::unsupported("a view that calls nextval(), setval(), currval() or lastval()"));
        }
        let mut catalog = self.catalog.clone();
        let oid = catalog.view(&name).map(|v| v.oid).unwrap_or_else(|| catalog.alloc_oid());
        let columns =
            cols.iter().map(|c| ViewColumn { name: c.name.clone(), data_type: c.data_type.clone() }).collect();
        catalog
            .views
            .insert(name.clone(), ViewDef { name: name.clone(), oid, columns, definition: cv.query.to_string() });
        let mut stmts = Vec::new();
        if exists {
            stmts.push(format!("DROP VIEW {}", quote(&name)));
        }
        stmts.push(format!("CREATE VIEW {} AS {sql}", quote(&name)));
        Ok(ddl(stmts, catalog, "CREATE VIEW"))
    }

    pub fn truncate(&mut self, t: &ast::Truncate) -> Result<Plan> {
        let mut stmts = Vec::new();
        for target in &t.table_names {
            let name = object_name(&target.name)?;
            if self.catalog.table(&name).is_none() {
                return Err(Error::new(SqlState::UNDEFINED_TABLE, format!("relation \"{name}\" does not exist")));
            }
            stmts.push(format!("DELETE FROM {}", quote(&name)));
            if matches!(t.identity, Some(ast::TruncateIdentityOption::Restart)) {
                // RESTART IDENTITY: the table's owned sequences start over.
                for s in self.catalog.sequences.values().filter(|s| s.owned_by.as_ref().is_some_and(|o| o.0 == name)) {
                    stmts.push(format!(
                        "UPDATE \"__shoal_sequences\" SET \"last_value\" = {}, \"is_called\" = 0 WHERE \"oid\" = {}",
                        s.start, s.oid
                    ));
                }
            }
        }
        Ok(ddl(stmts, self.catalog.clone(), "TRUNCATE TABLE"))
    }
}

/// A column's SQLite type: its affinity, and for numerics the collation
/// that compares their text numerically (indexes and UNIQUE use it too).
fn column_type(ty: &DataType) -> String {
    match ty {
        DataType::Numeric(_) => format!("{} COLLATE {}", ty.sqlite_affinity(), binder::NUMERIC_COLLATION),
        _ => ty.sqlite_affinity().to_string(),
    }
}

/// The generated CHECK constraints that make SQLite's dynamic typing strict.
pub fn type_checks(col: &str, ty: &DataType) -> String {
    let q = quote(col);
    let type_name = ty.sql_name();
    let mut out = String::new();
    let allowed = match storage(ty) {
        Storage::Integer => Some("'integer'"),
        Storage::Real => Some("'real', 'integer'"),
        Storage::Blob => Some("'blob'"),
        // A numeric is always its text form (never a REAL that lost digits).
        Storage::Text if matches!(ty, DataType::Numeric(_)) => Some("'text'"),
        Storage::Text => None,
    };
    if let Some(allowed) = allowed {
        out.push_str(&format!(
            " CONSTRAINT {} CHECK (typeof({q}) IN ({allowed}, 'null'))",
            quote(&format!("shoal_type:{type_name}"))
        ));
    }
    if *ty == DataType::Bool {
        out.push_str(&format!(" CONSTRAINT {} CHECK ({q} IN (0, 1))", quote(&format!("shoal_type:{type_name}"))));
    }
    if let DataType::Varchar(Some(n)) | DataType::Char(n) = ty {
        out.push_str(&format!(" CONSTRAINT {} CHECK (length({q}) <= {n})", quote(&format!("shoal_len:{type_name}"))));
    }
    if matches!(ty, DataType::Json | DataType::Jsonb) {
        out.push_str(&format!(" CONSTRAINT {} CHECK (json_valid({q}))", quote(&format!("shoal_type:{type_name}"))));
    }
    out
}

fn rename_column(catalog: &mut Catalog, t: &mut Table, old: &str, new: &str) {
    let fix = |cols: &mut Vec<String>| {
        for c in cols.iter_mut().filter(|c| *c == old) {
            *c = new.to_string();
        }
    };
    for c in t.columns.iter_mut().filter(|c| c.name == old) {
        c.name = new.to_string();
    }
    fix(&mut t.primary_key);
    if let Distribution::Hash { column, .. } = &mut t.distribution {
        if column == old {
            *column = new.to_string();
        }
    }
    for u in &mut t.unique {
        fix(&mut u.columns);
    }
    for f in &mut t.foreign_keys {
        fix(&mut f.columns);
    }
    for ix in catalog.indexes.values_mut().filter(|i| i.table == t.name) {
        fix(&mut ix.columns);
    }
}

/// The most shards a table may be split into when it is created.
const MAX_SHARDS: u32 = 1024;

/// Reads `CREATE TABLE … WITH (shard_key = 'col', shards = n, strategy =
/// 'hash')` or `WITH (reference = true)`. Anything else in `WITH` is refused:
/// PostgreSQL's storage parameters mean nothing to SQLite, and a silently
/// ignored option is a misunderstanding waiting to happen.
fn distribution(options: &ast::CreateTableOptions, table: &Table) -> Result<Distribution> {
    let list = match options {
        ast::CreateTableOptions::None => return Ok(Distribution::Local),
        ast::CreateTableOptions::With(list) => list,
        other => return Err(Error::unsupported(format!("the table options {other}"))),
    };
    let (mut shard_key, mut shards, mut reference) = (None, None, false);
    for option in list {
        let ast::SqlOption::KeyValue { key, value } = option else {
            return Err(Error::unsupported(format!("the table option {option}")));
        };
        let name = key.to_string().to_lowercase();
        let text = option_text(value);
        let invalid = |what: &str| {
            Error::new(
                SqlState::INVALID_PARAMETER_VALUE,
                format!("invalid value for parameter \"{name}\": \"{value}\""),
            )
            .with_hint(what.to_string())
        };
        match name.as_str() {
            "shard_key" => shard_key = Some(fold_option(&text)),
            "shards" => {
                shards =
                    Some(parse_shard_count(&text).ok_or_else(|| invalid(&format!("shards is {}", shard_counts())))?)
            }
            "strategy" => match text.to_lowercase().as_str() {
                "hash" => {}
                "range" | "list" => {
                    return Err(Error::unsupported(format!(
                        "{text} distribution (only strategy = 'hash' exists today)"
                    )))
                }
                _ => return Err(invalid("strategy is 'hash'")),
            },
            "reference" => {
                reference = match text.to_lowercase().as_str() {
                    "true" | "on" | "1" => true,
                    "false" | "off" | "0" => false,
                    _ => return Err(invalid("reference is true or false")),
                }
            }
            _ => {
                return Err(Error::new(SqlState::INVALID_PARAMETER_VALUE, format!("unrecognized parameter \"{name}\""))
                    .with_hint("Shoal's table options are shard_key, shards, strategy and reference."))
            }
        }
    }
    match (shard_key, reference) {
        (Some(_), true) => Err(Error::new(
            SqlState::INVALID_TABLE_DEFINITION,
            "a reference table is copied to every shard and has no shard_key",
        )
        .with_hint("Give either shard_key or reference = true, not both.")),
        (None, true) if shards.is_some() => Err(Error::new(
            SqlState::INVALID_TABLE_DEFINITION,
            "a reference table is copied to every shard and takes no shards option",
        )),
        (None, true) => Ok(Distribution::Reference),
        (None, false) if shards.is_some() => {
            Err(Error::new(SqlState::INVALID_TABLE_DEFINITION, "shards needs a shard_key to split the table by")
                .with_hint("Add shard_key = '<column>'."))
        }
        (None, false) => Ok(Distribution::Local),
        (Some(column), false) => {
            shard_key_of(table, &column)?;
            Ok(Distribution::Hash { column, shards: shards.unwrap_or(1) })
        }
    }
}

/// The key kind of `table`'s column `column`, if the table may be
/// distributed by it: 42703 when there is no such column, 0A000 for a type
/// without a defined shard hash.
pub(crate) fn shard_key_of(table: &Table, column: &str) -> Result<shoal_common::shard::KeyKind> {
    let Some((_, col)) = table.column(column) else {
        return Err(Error::new(
            SqlState::UNDEFINED_COLUMN,
            format!("shard key column \"{column}\" does not exist in \"{}\"", table.name),
        ));
    };
    shard_key_kind(&col.data_type).ok_or_else(|| {
        Error::unsupported(format!(
            "a shard key of type {} (use smallint, integer, bigint, text or varchar)",
            col.data_type
        ))
    })
}

/// The shard counts a table may be created with, for messages.
pub(crate) fn shard_counts() -> String {
    format!("a whole number from 1 to {MAX_SHARDS}")
}

/// A shard count given as text, if it is one of [`shard_counts`].
pub(crate) fn parse_shard_count(text: &str) -> Option<u32> {
    text.parse().ok().filter(|n| (1..=MAX_SHARDS).contains(n))
}

/// The shard hash's key kind for a column type, if a table may be
/// distributed by such a column.
pub fn shard_key_kind(ty: &DataType) -> Option<shoal_common::shard::KeyKind> {
    use shoal_common::shard::KeyKind;
    match ty {
        DataType::Int2 | DataType::Int4 | DataType::Int8 => Some(KeyKind::Integer),
        DataType::Text | DataType::Varchar(_) => Some(KeyKind::Text),
        _ => None,
    }
}

/// An option's value as text: `'id'`, `id`, `8`, `true`.
fn option_text(value: &ast::Expr) -> String {
    match value {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) => s.clone(),
            other => other.to_string(),
        },
        other => other.to_string(),
    }
}

/// A column named in an option folds like an identifier unless quoted
/// inside the string (`shard_key = '"UserId"'`).
pub(crate) fn fold_option(text: &str) -> String {
    match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => text.to_lowercase(),
    }
}

fn referential(a: &ast::ReferentialAction) -> Result<&'static str> {
    Ok(match a {
        ast::ReferentialAction::Cascade => "CASCADE",
        ast::ReferentialAction::Restrict => "RESTRICT",
        ast::ReferentialAction::SetNull => "SET NULL",
        ast::ReferentialAction::NoAction => "NO ACTION",
        ast::ReferentialAction::SetDefault => "SET DEFAULT",
    })
}

fn is_btree(u: &Option<ast::IndexType>) -> bool {
    matches!(u, Some(ast::IndexType::BTree))
}

fn quote_list(cols: &[String]) -> String {
    cols.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ")
}

/// PostgreSQL appends a number when a generated constraint name is taken.
fn unique_name(t: &Table, base: &str) -> String {
    let used = t.constraint_names();
    if !used.iter().any(|u| u == base) {
        return base.to_string();
    }
    (1..).map(|i| format!("{base}{i}")).find(|n| !used.contains(n)).unwrap_or_else(|| base.to_string())
}

fn single_column(e: &ast::Expr) -> Option<String> {
    let s = e.to_string();
    let mut found: Option<String> = None;
    for tok in s.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
        if tok.is_empty() || tok.chars().next().is_some_and(|c| c.is_ascii_digit()) {
            continue;
        }
        let upper = tok.to_ascii_uppercase();
        if ["AND", "OR", "NOT", "NULL", "IS", "IN", "LIKE", "BETWEEN", "TRUE", "FALSE"].contains(&upper.as_str()) {
            continue;
        }
        match &found {
            None => found = Some(tok.to_lowercase()),
            Some(f) if *f == tok.to_lowercase() => {}
            Some(_) => return None,
        }
    }
    found
}
