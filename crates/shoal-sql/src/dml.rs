//! INSERT / UPDATE / DELETE, with RETURNING and ON CONFLICT.
//!
//! Every value written into a column goes through [`Binder::assign`], so it
//! arrives in the column's storage representation (and a text value aimed at
//! an integer column is refused at plan time, as in PostgreSQL). `DEFAULT`
//! inside VALUES is replaced by the column's default expression, since SQLite
//! has no `DEFAULT` keyword there.

use shoal_common::{DataType, Error, Result, SqlState};
use sqlparser::ast::{self, Expr, SelectItem, SetExpr};

use crate::binder::{fold, object_name, quote, Binder, Col, Rel, Scope, Typed};
use crate::catalog::Table;
use crate::plan::{KeyProbe, OutputColumn, Plan, WriteKind};

/// Inserts with more rows than this get no key in a unique violation's detail.
const MAX_PROBE_ROWS: usize = 1000;
use crate::query::{output_column, output_name};
use crate::sequence::draws_from_sequence;

impl Binder<'_> {
    fn target(&mut self, name: &ast::ObjectName) -> Result<Table> {
        let n = object_name(name)?;
        if self.catalog.view(&n).is_some() {
            return Err(Error::new(SqlState::WRONG_OBJECT_TYPE, format!("cannot change view \"{n}\"")));
        }
        self.relations.push(n.clone());
        self.catalog
            .table(&n)
            .cloned()
            .ok_or_else(|| Error::new(SqlState::UNDEFINED_TABLE, format!("relation \"{n}\" does not exist")))
    }

    /// A relation over `table` whose columns read as `"alias"."c"` (or bare `"c"` when `alias` is None).
    fn table_rel(table: &Table, alias: Option<&str>, name: &str) -> Rel {
        let cols = table
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| Col {
                name: c.name.clone(),
                ty: c.data_type.clone(),
                sql: match alias {
                    Some(a) => format!("{}.{}", quote(a), quote(&c.name)),
                    None => quote(&c.name),
                },
                table_oid: table.oid,
                column_id: i as i16 + 1,
            })
            .collect();
        Rel { alias: name.to_string(), cols }
    }

    pub fn insert(&mut self, ins: &ast::Insert) -> Result<Plan> {
        if ins.or.is_some() || ins.ignore || ins.overwrite || ins.partitioned.is_some() || !ins.assignments.is_empty() {
            return Err(Error::unsupported("this INSERT form"));
        }
        if ins.overriding.is_some() {
            return Err(Error::unsupported("OVERRIDING"));
        }
        let ast::TableObject::TableName(name) = &ins.table else {
            return Err(Error::unsupported("INSERT INTO a table function"));
        };
        let table = self.target(name)?;
        let alias = ins.table_alias.as_ref().map(|a| fold(&a.alias));
        let columns = self.insert_columns(&table, &ins.columns)?;
        let has_upsert = ins.on.is_some();
        // Omitted columns that draw from a sequence get their nextval call
        // here (see `crate::sequence`): SQLite's own default would not run
        // for an INTEGER PRIMARY KEY.
        let drawn: Vec<(String, String)> = table
            .columns
            .iter()
            .filter(|c| ins.source.is_none() || !columns.contains(&c.name))
            .filter_map(|c| {
                let d = c.sqlite_default.as_deref().filter(|d| draws_from_sequence(Some(d)))?;
                Some((c.name.clone(), d.to_string()))
            })
            .collect();
        let extra: Vec<String> = drawn.iter().map(|(_, d)| d.clone()).collect();
        let body = match &ins.source {
            None if extra.is_empty() => "DEFAULT VALUES".to_string(),
            None => format!("VALUES ({})", extra.join(", ")),
            Some(q) => self.insert_source(&table, &columns, q, has_upsert, &extra)?,
        };
        let mut all_columns: Vec<String> = if ins.source.is_none() { vec![] } else { columns.clone() };
        all_columns.extend(drawn.iter().map(|(c, _)| c.clone()));
        let col_list = if all_columns.is_empty() {
            String::new()
        } else {
            format!(" ({})", all_columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", "))
        };
        let target_name = alias.clone().unwrap_or_else(|| table.name.clone());
        let alias_sql = alias.as_ref().map(|a| format!(" AS {}", quote(a))).unwrap_or_default();
        let mut sql = format!("INSERT INTO {}{alias_sql}{col_list} {body}", quote(&table.name));
        if let Some(on) = &ins.on {
            sql.push_str(&self.on_conflict(&table, &target_name, on)?);
        }
        let (ret, columns) = self.returning(&table, &target_name, ins.returning.as_deref())?;
        sql.push_str(&ret);
        let key_probe =
            self.value_rows.take().map(|rows| KeyProbe { table: table.name.clone(), columns: all_columns, rows });
        Ok(Plan::Write {
            kind: WriteKind::Insert,
            sql,
            param_types: self.param_types(),
            columns,
            sequence_state: false,
            key_probe,
            lifted: Vec::new(),
        })
    }

    fn insert_columns(&self, table: &Table, cols: &[ast::ObjectName]) -> Result<Vec<String>> {
        if cols.is_empty() {
            return Ok(table.columns.iter().map(|c| c.name.clone()).collect());
        }
        let mut out = Vec::new();
        for c in cols {
            let n = object_name(c)?;
            if table.column(&n).is_none() {
                return Err(Error::new(
                    SqlState::UNDEFINED_COLUMN,
                    format!("column \"{n}\" of relation \"{}\" does not exist", table.name),
                ));
            }
            if out.contains(&n) {
                return Err(Error::new(SqlState::DUPLICATE_COLUMN, format!("column \"{n}\" specified more than once")));
            }
            out.push(n);
        }
        Ok(out)
    }

    fn insert_source(
        &mut self,
        table: &Table,
        columns: &[String],
        q: &ast::Query,
        upsert: bool,
        extra: &[String],
    ) -> Result<String> {
        if let (SetExpr::Values(v), None, None) = (q.body.as_ref(), &q.with, &q.order_by) {
            return self.insert_values(table, columns, v, extra);
        }
        if let Some(c) = columns.iter().find(|c| table.column(c).is_some_and(|(_, d)| d.identity_always)) {
            return Err(identity_always(c, "cannot insert a non-DEFAULT value into column"));
        }
        let (sql, out) = self.query(q, None)?;
        if out.len() > columns.len() {
            return Err(Error::syntax("INSERT has more expressions than target columns"));
        }
        let mut exprs = Vec::new();
        let mut plain = true;
        for (i, (col, name)) in out.iter().zip(columns).enumerate() {
            let ty = table.column(name).map(|(_, c)| c.data_type.clone()).unwrap_or(DataType::Text);
            let src = Typed::new(format!("\"__src\".\"__c{i}\""), col.data_type.clone());
            let t = self.assign(src.clone(), &ty, name)?;
            plain &= t.sql == src.sql;
            exprs.push(t.sql);
        }
        if out.len() < columns.len() {
            return Err(Error::syntax("INSERT has more target columns than expressions"));
        }
        if plain && !upsert && extra.is_empty() {
            return Ok(sql);
        }
        exprs.extend(extra.iter().cloned());
        // Re-plan with positional names so the wrapper can address each column.
        let names: Vec<String> = (0..out.len()).map(|i| format!("__c{i}")).collect();
        let (sql, _) = self.query(q, Some(&names))?;
        Ok(format!("SELECT {} FROM ({sql}) AS \"__src\" WHERE true", exprs.join(", ")))
    }

    fn insert_values(
        &mut self,
        table: &Table,
        columns: &[String],
        v: &ast::Values,
        extra: &[String],
    ) -> Result<String> {
        let mut rows = Vec::new();
        for row in &v.rows {
            if row.len() > columns.len() {
                return Err(Error::syntax("INSERT has more expressions than target columns"));
            }
            if row.len() < columns.len() {
                return Err(Error::syntax("INSERT has more target columns than expressions"));
            }
            let mut cells = Vec::new();
            for (e, name) in row.iter().zip(columns) {
                let Some((_, col)) = table.column(name) else { continue };
                if is_default(e) {
                    cells.push(col.sqlite_default.clone().unwrap_or_else(|| "NULL".into()));
                    continue;
                }
                if col.identity_always {
                    return Err(identity_always(name, "cannot insert a non-DEFAULT value into column"));
                }
                let t = self.expr(e)?;
                let sql = self.assign(t, &col.data_type, name)?.sql;
                cells.push(self.lift_constant(sql));
            }
            cells.extend(extra.iter().cloned());
            rows.push(format!("({})", cells.join(", ")));
            if v.rows.len() <= MAX_PROBE_ROWS {
                self.value_rows.get_or_insert_with(Vec::new).push(cells);
            }
        }
        Ok(format!("VALUES {}", rows.join(", ")))
    }

    fn on_conflict(&mut self, table: &Table, target_name: &str, on: &ast::OnInsert) -> Result<String> {
        let ast::OnInsert::OnConflict(oc) = on else {
            return Err(Error::unsupported("ON DUPLICATE KEY UPDATE"));
        };
        let target = match &oc.conflict_target {
            None => String::new(),
            Some(ast::ConflictTarget::Columns { columns: cols, .. }) => {
                let names: Vec<String> = cols.iter().map(fold).collect();
                if let Some(bad) = names.iter().find(|n| table.column(n).is_none()) {
                    return Err(Error::new(SqlState::UNDEFINED_COLUMN, format!("column \"{bad}\" does not exist")));
                }
                format!(" ({})", names.iter().map(|n| quote(n)).collect::<Vec<_>>().join(", "))
            }
            Some(ast::ConflictTarget::OnConstraint(name)) => {
                let n = object_name(name)?;
                let (_, cols) = self.catalog.constraint(&n).ok_or_else(|| {
                    Error::new(
                        SqlState::UNDEFINED_OBJECT,
                        format!("constraint \"{n}\" for table \"{}\" does not exist", table.name),
                    )
                })?;
                format!(" ({})", cols.iter().map(|n| quote(n)).collect::<Vec<_>>().join(", "))
            }
        };
        match &oc.action {
            ast::OnConflictAction::DoNothing => Ok(format!(" ON CONFLICT{target} DO NOTHING")),
            ast::OnConflictAction::DoUpdate(du) => {
                if target.is_empty() {
                    return Err(Error::syntax(
                        "ON CONFLICT DO UPDATE requires inference specification or constraint name",
                    )
                    .with_hint("For example, ON CONFLICT (column_name)."));
                }
                self.scopes.push(Scope::default());
                let res = self.do_update(table, target_name, du);
                self.scopes.pop();
                Ok(format!(" ON CONFLICT{target} DO UPDATE SET {}", res?))
            }
        }
    }

    fn do_update(&mut self, table: &Table, target_name: &str, du: &ast::DoUpdate) -> Result<String> {
        let rel = Self::table_rel(table, Some(target_name), target_name);
        let mut excluded = Self::table_rel(table, Some("excluded"), "excluded");
        for c in &mut excluded.cols {
            c.table_oid = 0;
        }
        self.scope().rels.push(rel);
        self.scope().rels.push(excluded);
        let mut sql = self.assignments(table, &du.assignments)?;
        if let Some(w) = &du.selection {
            sql.push_str(&format!(" WHERE {}", self.condition(w)?.sql));
        }
        Ok(sql)
    }

    fn assignments(&mut self, table: &Table, assignments: &[ast::Assignment]) -> Result<String> {
        let mut sets = Vec::new();
        for a in assignments {
            let ast::AssignmentTarget::ColumnName(name) = &a.target else {
                return Err(Error::unsupported("multi-column assignment"));
            };
            let n = name.0.last().and_then(|p| p.as_ident()).map(fold).unwrap_or_default();
            let (_, col) = table.column(&n).ok_or_else(|| {
                Error::new(
                    SqlState::UNDEFINED_COLUMN,
                    format!("column \"{n}\" of relation \"{}\" does not exist", table.name),
                )
            })?;
            let col = col.clone();
            if col.identity_always && !is_default(&a.value) {
                let mut e = identity_always(&n, "can only be updated to DEFAULT");
                e.hint = None;
                return Err(e);
            }
            let value = if is_default(&a.value) {
                col.sqlite_default.clone().unwrap_or_else(|| "NULL".into())
            } else {
                let t = self.expr(&a.value)?;
                self.assign(t, &col.data_type, &n)?.sql
            };
            sets.push(format!("{} = {value}", quote(&n)));
        }
        Ok(sets.join(", "))
    }

    /// `RETURNING …`: evaluated by SQLite over the written row (bare column names).
    fn returning(
        &mut self,
        table: &Table,
        name: &str,
        items: Option<&[SelectItem]>,
    ) -> Result<(String, Vec<OutputColumn>)> {
        let Some(items) = items else { return Ok((String::new(), vec![])) };
        self.scopes.push(Scope::default());
        self.scope().rels.push(Self::table_rel(table, None, name));
        let res = self.returning_items(items);
        self.scopes.pop();
        let (sql, cols) = res?;
        Ok((format!(" RETURNING {sql}"), cols))
    }

    fn returning_items(&mut self, items: &[SelectItem]) -> Result<(String, Vec<OutputColumn>)> {
        let mut parts = Vec::new();
        let mut cols = Vec::new();
        let mut push = |t: &Typed, name: String, parts: &mut Vec<String>| {
            parts.push(format!("{} AS {}", t.sql, quote(&name)));
            cols.push(output_column(name, t));
        };
        for item in items {
            match item {
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                    let rel = self.scope().rels[0].clone();
                    for c in &rel.cols {
                        let t = Typed {
                            sql: c.sql.clone(),
                            ty: c.ty.clone(),
                            name: Some(c.name.clone()),
                            kind: crate::binder::Kind::Column(c.table_oid, c.column_id),
                        };
                        push(&t, c.name.clone(), &mut parts);
                    }
                }
                SelectItem::UnnamedExpr(e) => {
                    let t = self.expr(e)?;
                    push(&t, output_name(&t), &mut parts);
                }
                SelectItem::ExprWithAlias { expr, alias } => {
                    let t = self.expr(expr)?;
                    push(&t, fold(alias), &mut parts);
                }
                SelectItem::ExprWithAliases { .. } => return Err(Error::unsupported("multiple aliases")),
            }
        }
        Ok((parts.join(", "), cols))
    }

    pub fn update(&mut self, u: &ast::Update) -> Result<Plan> {
        if u.or.is_some() || !u.order_by.is_empty() || u.limit.is_some() || !u.table.joins.is_empty() {
            return Err(Error::unsupported("this UPDATE form"));
        }
        let ast::TableFactor::Table { name, alias, .. } = &u.table.relation else {
            return Err(Error::unsupported("UPDATE of a derived table"));
        };
        let table = self.target(name)?;
        let target_name = alias.as_ref().map(|a| fold(&a.name)).unwrap_or_else(|| table.name.clone());
        self.scopes.push(Scope::default());
        let res = self.update_inner(u, &table, &target_name, alias.is_some());
        self.scopes.pop();
        let mut sql = res?;
        let (ret, columns) = self.returning(&table, &target_name, u.returning.as_deref())?;
        sql.push_str(&ret);
        Ok(Plan::Write {
            kind: WriteKind::Update,
            sql,
            param_types: self.param_types(),
            columns,
            sequence_state: false,
            key_probe: None,
            lifted: Vec::new(),
        })
    }

    fn update_inner(&mut self, u: &ast::Update, table: &Table, target_name: &str, aliased: bool) -> Result<String> {
        let rel = Self::table_rel(table, Some(target_name), target_name);
        self.scope().rels.push(rel);
        let from = match &u.from {
            Some(ast::UpdateTableFromKind::AfterSet(f)) | Some(ast::UpdateTableFromKind::BeforeSet(f)) => {
                self.translate_from(f)?
            }
            None => String::new(),
        };
        let sets = self.assignments(table, &u.assignments)?;
        let where_sql = match &u.selection {
            Some(w) => format!(" WHERE {}", self.condition(w)?.sql),
            None => String::new(),
        };
        let alias_sql = if aliased { format!(" AS {}", quote(target_name)) } else { String::new() };
        Ok(format!("UPDATE {}{alias_sql} SET {sets}{from}{where_sql}", quote(&table.name)))
    }

    pub fn delete(&mut self, d: &ast::Delete) -> Result<Plan> {
        if !d.tables.is_empty() || d.using.is_some() || !d.order_by.is_empty() || d.limit.is_some() {
            return Err(Error::unsupported("DELETE … USING / multi-table DELETE"));
        }
        let from = match &d.from {
            ast::FromTable::WithFromKeyword(f) | ast::FromTable::WithoutKeyword(f) => f,
        };
        let [twj] = from.as_slice() else {
            return Err(Error::unsupported("DELETE from several tables"));
        };
        let ast::TableFactor::Table { name, alias, .. } = &twj.relation else {
            return Err(Error::unsupported("DELETE from a derived table"));
        };
        if !twj.joins.is_empty() {
            return Err(Error::unsupported("DELETE with joins"));
        }
        let table = self.target(name)?;
        let target_name = alias.as_ref().map(|a| fold(&a.name)).unwrap_or_else(|| table.name.clone());
        self.scopes.push(Scope::default());
        self.scope().rels.push(Self::table_rel(&table, Some(&target_name), &target_name));
        let where_sql = match &d.selection {
            Some(w) => self.condition(w).map(|c| format!(" WHERE {}", c.sql)),
            None => Ok(String::new()),
        };
        self.scopes.pop();
        let alias_sql = if alias.is_some() { format!(" AS {}", quote(&target_name)) } else { String::new() };
        let mut sql = format!("DELETE FROM {}{alias_sql}{}", quote(&table.name), where_sql?);
        let (ret, columns) = self.returning(&table, &target_name, d.returning.as_deref())?;
        sql.push_str(&ret);
        Ok(Plan::Write {
            kind: WriteKind::Delete,
            sql,
            param_types: self.param_types(),
            columns,
            sequence_state: false,
            key_probe: None,
            lifted: Vec::new(),
        })
    }
}

/// Writing a value into a `GENERATED ALWAYS AS IDENTITY` column (428C9).
fn identity_always(column: &str, what: &str) -> Error {
    let message =
        if what.starts_with("cannot") { format!("{what} \"{column}\"") } else { format!("column \"{column}\" {what}") };
    Error::new(SqlState::parse("428C9"), message)
        .with_detail(format!("Column \"{column}\" is an identity column defined as GENERATED ALWAYS."))
        .with_hint("Use OVERRIDING SYSTEM VALUE to override.")
}

fn is_default(e: &Expr) -> bool {
    matches!(e, Expr::Identifier(i) if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default"))
}
