//! Queries: SELECT, VALUES, set operations, CTEs, FROM/JOIN, ORDER BY/LIMIT.
//!
//! ```text
//!  Query ─ WITH ctes ─ body ─ ORDER BY ─ LIMIT/OFFSET/FETCH
//!            │          ├─ Select: FROM → WHERE → GROUP BY → HAVING → SELECT list → DISTINCT [ON]
//!            │          ├─ VALUES
//!            │          └─ set operation (UNION/INTERSECT/EXCEPT) of bodies
//!            └─ each CTE is itself a Query (WITH RECURSIVE: the anchor arm types the CTE first)
//! ```
//!
//! Each query level pushes a [`Scope`]; FROM items add relations to it; the
//! SELECT list is expanded (`*` included) into explicit, aliased columns, so
//! the output names and types PostgreSQL would report are known exactly.

use shoal_common::{DataType, Error, Result, SqlState};
use sqlparser::ast::{self, Expr, SelectItem, SetExpr, TableFactor};

use crate::binder::{fold, object_name, quote, Binder, Col, CteDef, Kind, Rel, Scope, Typed};
use crate::func::{numeric_key, order_suffix, ordered_key, refuse_record, EXPANDARRAY};
use crate::plan::OutputColumn;
use crate::system;

/// A translated query: SQLite SQL and its output columns.
pub type QueryOut = (String, Vec<OutputColumn>);

impl Binder<'_> {
    /// A subquery in an expression: returns its SQL and (name, type) per column.
    pub fn subquery(&mut self, q: &ast::Query) -> Result<(String, Vec<(String, DataType)>)> {
        let (sql, cols) = self.query(q, None)?;
        Ok((sql, cols.into_iter().map(|c| (c.name, c.data_type)).collect()))
    }

    /// Translates a query; `names` renames its output columns (derived-table aliases).
    pub fn query(&mut self, q: &ast::Query, names: Option<&[String]>) -> Result<QueryOut> {
        self.enter()?;
        let saved = self.ctes.len();
        let out = self.query_inner(q, names);
        self.ctes.truncate(saved);
        self.leave();
        out
    }

    fn query_inner(&mut self, q: &ast::Query, names: Option<&[String]>) -> Result<QueryOut> {
        if q.for_clause.is_some() || q.settings.is_some() || q.format_clause.is_some() || !q.pipe_operators.is_empty() {
            return Err(Error::unsupported("this query clause"));
        }
        let with = match &q.with {
            Some(w) => self.with_clause(w)?,
            None => String::new(),
        };
        let order = q.order_by.as_ref().map(order_items).transpose()?.unwrap_or_default();
        let (mut sql, cols) = match q.body.as_ref() {
            SetExpr::Select(s) => self.select(s, names, &order)?,
            other => {
                let (sql, cols) = self.set_expr(other, names)?;
                (format!("{sql}{}", set_order(&order, &cols)?), cols)
            }
        };
        sql.push_str(&self.limit(q)?);
        Ok((format!("{with}{sql}"), cols))
    }

    fn with_clause(&mut self, w: &ast::With) -> Result<String> {
        let mut parts = Vec::new();
        for cte in &w.cte_tables {
            if cte.materialized.is_some() || cte.from.is_some() {
                return Err(Error::unsupported("MATERIALIZED CTEs"));
            }
            let name = fold(&cte.alias.name);
            let alias_cols: Vec<String> = cte.alias.columns.iter().map(|c| fold(&c.name)).collect();
            let names = (!alias_cols.is_empty()).then_some(alias_cols.as_slice());
            if w.recursive {
                if let SetExpr::SetOperation { left, .. } = cte.query.body.as_ref() {
                    let (_, anchor) = self.set_expr(left, names)?;
                    self.ctes.push(CteDef { name: name.clone(), cols: cols_of(&anchor) });
                }
            }
            let (sql, cols) = self.query(&cte.query, names)?;
            self.ctes.retain(|c| c.name != name);
            self.ctes.push(CteDef { name: name.clone(), cols: cols_of(&cols) });
            let col_list: Vec<String> = cols.iter().map(|c| quote(&c.name)).collect();
            parts.push(format!("{}({}) AS ({sql})", quote(&name), col_list.join(", ")));
        }
        let rec = if w.recursive { "RECURSIVE " } else { "" };
        Ok(format!("WITH {rec}{} ", parts.join(", ")))
    }

    fn set_expr(&mut self, body: &SetExpr, names: Option<&[String]>) -> Result<QueryOut> {
        match body {
            SetExpr::Select(s) => self.select(s, names, &[]),
            SetExpr::Query(q) => {
                let (sql, cols) = self.query(q, names)?;
                Ok((format!("SELECT * FROM ({sql})"), cols))
            }
            SetExpr::Values(v) => self.values(v, names),
            SetExpr::SetOperation { op, set_quantifier, left, right } => {
                self.set_operation(op, set_quantifier, left, right, names)
            }
            _ => Err(Error::unsupported("this query form")),
        }
    }

    fn set_operation(
        &mut self,
        op: &ast::SetOperator,
        quantifier: &ast::SetQuantifier,
        left: &SetExpr,
        right: &SetExpr,
        names: Option<&[String]>,
    ) -> Result<QueryOut> {
        let all = match quantifier {
            ast::SetQuantifier::All => true,
            ast::SetQuantifier::Distinct | ast::SetQuantifier::None => false,
            _ => return Err(Error::unsupported("BY NAME set operations")),
        };
        let word = match (op, all) {
            (ast::SetOperator::Union, true) => "UNION ALL",
            (ast::SetOperator::Union, false) => "UNION",
            (ast::SetOperator::Intersect, false) => "INTERSECT",
            (ast::SetOperator::Except, false) => "EXCEPT",
            (ast::SetOperator::Intersect | ast::SetOperator::Except, true) => {
                return Err(Error::unsupported(format!("{op} ALL")))
            }
            _ => return Err(Error::unsupported(format!("{op}"))),
        };
        let (lsql, lcols) = self.set_expr(left, names)?;
        let (rsql, rcols) = self.set_expr(right, None)?;
        if lcols.len() != rcols.len() {
            return Err(Error::syntax(format!("each {op} query must have the same number of columns")));
        }
        let rsql = if matches!(right, SetExpr::SetOperation { .. }) { format!("SELECT * FROM ({rsql})") } else { rsql };
        let mut cols = Vec::with_capacity(lcols.len());
        let mut targets = Vec::with_capacity(lcols.len());
        for (l, r) in lcols.iter().zip(&rcols) {
            if word != "UNION ALL" {
                refuse_record(&l.data_type, &format!("{word} over records"))?;
            }
            let ty = crate::binder::unify(&l.data_type, &r.data_type)
                .ok_or_else(|| crate::binder::mismatch(&op.to_string(), &l.data_type, &r.data_type))?;
            let ty = if ty == DataType::Unknown { DataType::Text } else { ty };
            let same = l.data_type == ty;
            targets.push(ty.clone());
            cols.push(OutputColumn { data_type: ty, table_oid: if same { l.table_oid } else { 0 }, ..l.clone() });
        }
        let lsql = self.convert_branch(lsql, &lcols, &targets)?;
        let rsql = self.convert_branch(rsql, &rcols, &targets)?;
        Ok((format!("{lsql} {word} {rsql}"), cols))
    }

    /// A set operation's branch whose columns must change representation to
    /// the combined type (an integer column of a numeric result becomes
    /// numeric text, a numeric column of a float result a double), so the
    /// rows compare and print as one type. Other branches are left alone.
    fn convert_branch(&mut self, sql: String, cols: &[OutputColumn], targets: &[DataType]) -> Result<String> {
        let numeric = |t: &DataType| matches!(t, DataType::Numeric(_));
        let needs = |from: &DataType, to: &DataType| {
            from != to
                && (numeric(from) != numeric(to))
                && crate::binder::numeric_rank(from).is_some()
                && crate::binder::numeric_rank(to).is_some()
        };
        if !cols.iter().zip(targets).any(|(c, t)| needs(&c.data_type, t)) {
            return Ok(sql);
        }
        let mut items = Vec::with_capacity(cols.len());
        for (c, t) in cols.iter().zip(targets) {
            let col = Typed::new(quote(&c.name), c.data_type.clone());
            let col = if needs(&c.data_type, t) { self.cast(col, t)? } else { col };
            items.push(format!("{} AS {}", numeric_key(&col), quote(&c.name)));
        }
        Ok(format!("SELECT {} FROM ({sql})", items.join(", ")))
    }

    fn values(&mut self, v: &ast::Values, names: Option<&[String]>) -> Result<QueryOut> {
        let width = v.rows.first().map(|r| r.len()).unwrap_or(0);
        let mut columns: Vec<Vec<Typed>> = vec![Vec::new(); width];
        for row in &v.rows {
            if row.len() != width {
                return Err(Error::syntax("VALUES lists must all be the same length"));
            }
            for (i, e) in row.iter().enumerate() {
                columns[i].push(self.expr(e)?);
            }
        }
        let mut typed_cols = Vec::with_capacity(width);
        for col in columns {
            typed_cols.push(self.unify_all(col, "VALUES")?);
        }
        let mut rows = Vec::new();
        for r in 0..v.rows.len() {
            let cells: Vec<String> = typed_cols.iter().map(|c| c[r].sql.clone()).collect();
            rows.push(format!("({})", cells.join(", ")));
        }
        let mut select = Vec::new();
        let mut cols = Vec::new();
        for (i, c) in typed_cols.iter().enumerate() {
            let name = names.and_then(|n| n.get(i)).cloned().unwrap_or(format!("column{}", i + 1));
            let ty = c.first().map(|t| t.ty.clone()).unwrap_or(DataType::Text);
            let ty = if ty == DataType::Unknown { DataType::Text } else { ty };
            select.push(format!("\"column{}\" AS {}", i + 1, quote(&name)));
            cols.push(OutputColumn { name, data_type: ty, table_oid: 0, column_id: 0 });
        }
        Ok((format!("SELECT {} FROM (VALUES {})", select.join(", "), rows.join(", ")), cols))
    }

    fn select(&mut self, s: &ast::Select, names: Option<&[String]>, order: &[ast::OrderByExpr]) -> Result<QueryOut> {
        self.scopes.push(Scope::default());
        let out = self.select_inner(s, names, order);
        self.scopes.pop();
        out
    }

    fn select_inner(
        &mut self,
        s: &ast::Select,
        names: Option<&[String]>,
        order: &[ast::OrderByExpr],
    ) -> Result<QueryOut> {
        if s.into.is_some() || s.top.is_some() || !s.lateral_views.is_empty() || s.qualify.is_some() {
            return Err(Error::unsupported("SELECT INTO / TOP / QUALIFY"));
        }
        if !s.named_window.is_empty() {
            return Err(Error::unsupported("named windows"));
        }
        let from = self.translate_from(&s.from)?;
        let where_sql = match &s.selection {
            Some(w) => format!(" WHERE {}", self.condition(w)?.sql),
            None => String::new(),
        };
        self.scope().in_select_list = true;
        let items = self.projection(&s.projection);
        self.scope().in_select_list = false;
        let items = items?;
        let from = match self.scope().srf.clone() {
            Some((array, alias)) => {
                let join = format!("json_each(pg_array_json({array})) AS {}", quote(&alias));
                if from.is_empty() {
                    format!(" FROM {join}")
                } else {
                    format!("{from}, {join}")
                }
            }
            None => from,
        };
        let mut select_sql = Vec::new();
        let mut cols = Vec::new();
        for (i, t) in items.iter().enumerate() {
            let name = names.and_then(|n| n.get(i)).cloned().unwrap_or_else(|| output_name(t));
            select_sql.push(format!("{} AS {}", numeric_key(t), quote(&name)));
            cols.push(output_column(name.clone(), t));
            self.scope().aliases.push((name, t.clone()));
        }
        let group = self.group_by(&s.group_by, &items)?;
        let having = match &s.having {
            Some(h) => format!(" HAVING {}", self.condition(h)?.sql),
            None => String::new(),
        };
        self.check_grouping(s, order)?;
        let tail = format!("{from}{where_sql}{group}{having}");
        if s.distinct.is_some() {
            for c in &cols {
                refuse_record(&c.data_type, "DISTINCT over records")?;
            }
        }
        match &s.distinct {
            Some(ast::Distinct::On(on)) => self.distinct_on(on, &select_sql, &tail, order, cols),
            distinct => {
                let d = if matches!(distinct, Some(ast::Distinct::Distinct)) { "DISTINCT " } else { "" };
                let order_sql = self.select_order(order)?;
                Ok((format!("SELECT {d}{}{tail}{order_sql}", select_sql.join(", ")), cols))
            }
        }
    }

    /// `DISTINCT ON (e…)`: keep the first row per key in ORDER BY order, via `row_number()`.
    fn distinct_on(
        &mut self,
        on: &[Expr],
        select_sql: &[String],
        tail: &str,
        order: &[ast::OrderByExpr],
        cols: Vec<OutputColumn>,
    ) -> Result<QueryOut> {
        let mut keys = Vec::new();
        for e in on {
            keys.push(self.order_key(e)?);
        }
        let mut inner = select_sql.to_vec();
        let mut outer_order = Vec::new();
        let mut window_order = Vec::new();
        for (i, o) in order.iter().enumerate() {
            let key = self.order_key(&o.expr)?;
            inner.push(format!("{key} AS \"__o{i}\""));
            window_order.push(order_suffix(key, &o.options));
            outer_order.push(order_suffix(format!("\"__o{i}\""), &o.options));
        }
        let over_order =
            if window_order.is_empty() { String::new() } else { format!(" ORDER BY {}", window_order.join(", ")) };
        inner.push(format!("row_number() OVER (PARTITION BY {}{over_order}) AS \"__rn\"", keys.join(", ")));
        let names: Vec<String> = cols.iter().map(|c| quote(&c.name)).collect();
        let order_sql =
            if outer_order.is_empty() { String::new() } else { format!(" ORDER BY {}", outer_order.join(", ")) };
        let sql = format!(
            "SELECT {} FROM (SELECT {}{tail}) WHERE \"__rn\" = 1{order_sql}",
            names.join(", "),
            inner.join(", ")
        );
        Ok((sql, cols))
    }

    /// An ORDER BY / GROUP BY / DISTINCT ON key: an output alias, an ordinal, or an expression.
    fn order_key(&mut self, e: &Expr) -> Result<String> {
        if let Expr::Identifier(i) = e {
            let name = fold(i);
            let is_column = self.resolve(std::slice::from_ref(i)).is_ok();
            if !is_column {
                if let Some((_, t)) = self.scope().aliases.iter().find(|(n, _)| *n == name) {
                    return ordered_key(t);
                }
            }
        }
        if let Expr::Value(v) = e {
            if let ast::Value::Number(n, _) = &v.value {
                let k: usize = n.parse().map_err(|_| Error::syntax("non-integer constant in ORDER BY"))?;
                let aliases = &self.scope().aliases;
                return match k.checked_sub(1).and_then(|i| aliases.get(i)) {
                    Some((_, t)) => ordered_key(t),
                    None => Err(Error::new(
                        SqlState::INVALID_COLUMN_REFERENCE,
                        format!("ORDER BY position {k} is not in select list"),
                    )),
                };
            }
        }
        ordered_key(&self.expr(e)?)
    }

    fn select_order(&mut self, order: &[ast::OrderByExpr]) -> Result<String> {
        if order.is_empty() {
            return Ok(String::new());
        }
        let mut parts = Vec::new();
        for o in order {
            let key = self.order_key(&o.expr)?;
            parts.push(order_suffix(key, &o.options));
        }
        Ok(format!(" ORDER BY {}", parts.join(", ")))
    }

    fn group_by(&mut self, g: &ast::GroupByExpr, _items: &[Typed]) -> Result<String> {
        let ast::GroupByExpr::Expressions(exprs, modifiers) = g else {
            return Err(Error::unsupported("GROUP BY ALL"));
        };
        if !modifiers.is_empty() {
            return Err(Error::unsupported("GROUP BY modifiers (ROLLUP/CUBE)"));
        }
        if exprs.is_empty() {
            return Ok(String::new());
        }
        let mut parts = Vec::new();
        for e in exprs {
            parts.push(self.order_key(e)?);
        }
        Ok(format!(" GROUP BY {}", parts.join(", ")))
    }

    fn limit(&mut self, q: &ast::Query) -> Result<String> {
        let (mut limit, mut offset) = (None, None);
        match &q.limit_clause {
            Some(ast::LimitClause::LimitOffset { limit: l, offset: o, limit_by }) => {
                if !limit_by.is_empty() {
                    return Err(Error::unsupported("LIMIT BY"));
                }
                limit = l.as_ref();
                offset = o.as_ref().map(|o| &o.value);
            }
            Some(ast::LimitClause::OffsetCommaLimit { .. }) => return Err(Error::unsupported("LIMIT offset, count")),
            None => {}
        }
        if let Some(f) = &q.fetch {
            if f.with_ties || f.percent {
                return Err(Error::unsupported("FETCH … WITH TIES / PERCENT"));
            }
            limit = f.quantity.as_ref();
            if limit.is_none() {
                return Ok(" LIMIT 1".into());
            }
        }
        let mut sql = String::new();
        let lim = match limit {
            Some(Expr::Value(v)) if matches!(v.value, ast::Value::Null) => None,
            Some(e) => Some(self.limit_value(e)?),
            None => None,
        };
        let off = offset.map(|e| self.limit_value(e)).transpose()?;
        if lim.is_some() || off.is_some() {
            sql.push_str(&format!(" LIMIT {}", lim.unwrap_or_else(|| "-1".into())));
        }
        if let Some(o) = off {
            sql.push_str(&format!(" OFFSET {o}"));
        }
        Ok(sql)
    }

    fn limit_value(&mut self, e: &Expr) -> Result<String> {
        let t = self.expr(e)?;
        let t = self.align(t, &DataType::Int8)?;
        if !t.ty.is_numeric() {
            return Err(Error::new(SqlState::DATATYPE_MISMATCH, "argument of LIMIT must be type bigint"));
        }
        Ok(t.sql)
    }

    /// Expands the SELECT list (`*`, `t.*`, expressions) into typed items.
    fn projection(&mut self, items: &[SelectItem]) -> Result<Vec<Typed>> {
        let mut out = Vec::new();
        for item in items {
            match item {
                SelectItem::UnnamedExpr(e) => {
                    let t = self.expr(e)?;
                    out.push(self.output_type(t)?);
                }
                SelectItem::ExprWithAlias { expr, alias } => {
                    let t = self.expr(expr)?;
                    out.push(self.output_type(t)?.named(fold(alias)));
                }
                SelectItem::Wildcard(_) => {
                    let scope = self.scope().clone();
                    if scope.rels.is_empty() {
                        return Err(Error::syntax("SELECT * with no tables specified is not valid"));
                    }
                    out.extend(scope.merged.iter().map(col_typed));
                    for rel in &scope.rels {
                        out.extend(
                            rel.cols.iter().filter(|c| !scope.merged.iter().any(|m| m.name == c.name)).map(col_typed),
                        );
                    }
                }
                SelectItem::QualifiedWildcard(kind, _) => {
                    let ast::SelectItemQualifiedWildcardKind::ObjectName(name) = kind else {
                        return Err(Error::unsupported("this wildcard"));
                    };
                    let alias = object_name(name)?;
                    let scope = self.scope().clone();
                    let rel = scope.rels.iter().find(|r| r.alias == alias).ok_or_else(|| {
                        Error::new(
                            SqlState::UNDEFINED_TABLE,
                            format!("missing FROM-clause entry for table \"{alias}\""),
                        )
                    })?;
                    out.extend(rel.cols.iter().map(col_typed));
                }
                SelectItem::ExprWithAliases { .. } => return Err(Error::unsupported("multiple aliases")),
            }
        }
        Ok(out)
    }

    /// Unknown-typed outputs (`SELECT 'a'`, `SELECT $1`) are reported as text, as PostgreSQL does.
    fn output_type(&mut self, t: Typed) -> Result<Typed> {
        if t.ty == DataType::Unknown {
            let name = t.name.clone();
            let kind = t.kind.clone();
            let mut out = self.align(t, &DataType::Text)?;
            out.name = name;
            if matches!(kind, Kind::Null) {
                out.ty = DataType::Text;
            }
            return Ok(out);
        }
        Ok(t)
    }

    pub fn translate_from(&mut self, from: &[ast::TableWithJoins]) -> Result<String> {
        if from.is_empty() {
            return Ok(String::new());
        }
        let mut parts = Vec::new();
        for twj in from {
            let mut sql = self.factor(&twj.relation)?;
            for j in &twj.joins {
                sql = self.join(sql, j)?;
            }
            parts.push(sql);
        }
        Ok(format!(" FROM {}", parts.join(", ")))
    }

    fn join(&mut self, left_sql: String, j: &ast::Join) -> Result<String> {
        use ast::JoinOperator as J;
        let (word, constraint) = match &j.join_operator {
            J::Join(c) | J::Inner(c) => ("JOIN", c),
            J::Left(c) | J::LeftOuter(c) => ("LEFT JOIN", c),
            J::Right(c) | J::RightOuter(c) => ("RIGHT JOIN", c),
            J::FullOuter(c) => ("FULL JOIN", c),
            J::CrossJoin(c) => ("CROSS JOIN", c),
            _ => return Err(Error::unsupported("this join type")),
        };
        let left_rels = self.scope().rels.len();
        let right_sql = self.factor(&j.relation)?;
        let using: Vec<String> = match constraint {
            ast::JoinConstraint::On(e) => {
                let c = self.condition(e)?;
                return Ok(format!("{left_sql} {word} {right_sql} ON {}", c.sql));
            }
            ast::JoinConstraint::None => return Ok(format!("{left_sql} {word} {right_sql}")),
            ast::JoinConstraint::Using(cols) => cols.iter().map(object_name).collect::<Result<_>>()?,
            ast::JoinConstraint::Natural => self.natural_columns(left_rels),
            ast::JoinConstraint::UsingAlias(..) => return Err(Error::unsupported("USING … AS")),
        };
        let mut conds = Vec::new();
        for name in &using {
            let (l, r) = self.using_pair(left_rels, name)?;
            let sql = match word {
                "RIGHT JOIN" => r.sql.clone(),
                "FULL JOIN" => format!("COALESCE({}, {})", l.sql, r.sql),
                _ => l.sql.clone(),
            };
            conds.push(format!("{} = {}", l.sql, r.sql));
            let merged = Col { sql, table_oid: 0, column_id: 0, ..l };
            let scope = self.scope();
            scope.merged.retain(|m| m.name != *name);
            scope.merged.push(merged);
        }
        let on = if conds.is_empty() { "1".to_string() } else { conds.join(" AND ") };
        Ok(format!("{left_sql} {word} {right_sql} ON {on}"))
    }

    fn natural_columns(&mut self, left_rels: usize) -> Vec<String> {
        let scope = self.scope();
        let Some(right) = scope.rels.last() else { return vec![] };
        let left_names: Vec<&str> =
            scope.rels[..left_rels].iter().flat_map(|r| r.cols.iter().map(|c| c.name.as_str())).collect();
        right.cols.iter().filter(|c| left_names.contains(&c.name.as_str())).map(|c| c.name.clone()).collect()
    }

    fn using_pair(&mut self, left_rels: usize, name: &str) -> Result<(Col, Col)> {
        let scope = self.scope().clone();
        let missing = |side: &str| {
            Error::new(
                SqlState::UNDEFINED_COLUMN,
                format!("column \"{name}\" specified in USING clause does not exist in {side} table"),
            )
        };
        let left = scope
            .merged
            .iter()
            .find(|c| c.name == name)
            .or_else(|| scope.rels[..left_rels].iter().flat_map(|r| r.cols.iter()).find(|c| c.name == name))
            .cloned()
            .ok_or_else(|| missing("left"))?;
        let right = scope
            .rels
            .last()
            .and_then(|r| r.cols.iter().find(|c| c.name == name))
            .cloned()
            .ok_or_else(|| missing("right"))?;
        Ok((left, right))
    }

    /// One FROM item; adds its relation to the current scope.
    fn factor(&mut self, f: &TableFactor) -> Result<String> {
        match f {
            TableFactor::Table { name, alias, args, with_ordinality, .. } => {
                if let Some(args) = args {
                    return self.table_function(name, &args.args, alias.as_ref(), *with_ordinality);
                }
                if *with_ordinality {
                    return Err(Error::unsupported("WITH ORDINALITY"));
                }
                self.table_ref(name, alias.as_ref())
            }
            TableFactor::Derived { lateral, subquery, alias, .. } => {
                if *lateral {
                    return Err(Error::unsupported("LATERAL"));
                }
                let names: Vec<String> = alias.iter().flat_map(|a| a.columns.iter().map(|c| fold(&c.name))).collect();
                self.scopes.push(Scope::default());
                let res = self.query(subquery, (!names.is_empty()).then_some(names.as_slice()));
                self.scopes.pop();
                let (sql, cols) = res?;
                let alias_name = match alias {
                    Some(a) => fold(&a.name),
                    None => self.fresh_alias("sub"),
                };
                self.add_rel(&alias_name, cols.iter().map(|c| (c.name.clone(), c.data_type.clone(), 0, 0)).collect());
                Ok(format!("({sql}) AS {}", quote(&alias_name)))
            }
            TableFactor::UNNEST { alias, array_exprs, with_offset: false, with_ordinality, .. }
                if array_exprs.len() == 1 =>
            {
                let exprs: Vec<&Expr> = array_exprs.iter().collect();
                let Some((sql, cols)) =
                    self.catalog_table_function("unnest", &exprs, alias.as_ref(), *with_ordinality)?
                else {
                    return Err(Error::unsupported("this unnest"));
                };
                let alias_name = alias.as_ref().map(|a| fold(&a.name)).unwrap_or_else(|| "unnest".into());
                self.add_rel(&alias_name, cols.into_iter().map(|(n, t)| (n, t, 0, 0)).collect());
                Ok(sql)
            }
            TableFactor::NestedJoin { .. } => Err(Error::unsupported("parenthesized joins")),
            _ => Err(Error::unsupported("this FROM item")),
        }
    }

    fn add_rel(&mut self, alias: &str, cols: Vec<(String, DataType, u32, i16)>) {
        let cols = cols
            .into_iter()
            .map(|(name, ty, oid, id)| Col {
                sql: format!("{}.{}", quote(alias), quote(&name)),
                name,
                ty,
                table_oid: oid,
                column_id: id,
            })
            .collect();
        self.scope().rels.push(Rel { alias: alias.to_string(), cols });
    }

    fn table_ref(&mut self, name: &ast::ObjectName, alias: Option<&ast::TableAlias>) -> Result<String> {
        if let Some((schema, table, cols)) = system::lookup(name) {
            if schema == "shoal" {
                self.reads.system_views = true;
            } else {
                self.reads.catalog = true;
            }
            let alias_name = alias.map(|a| fold(&a.name)).unwrap_or_else(|| table.to_string());
            if (schema, table) == ("pg_catalog", "pg_sequences") {
                // last_value is live state: read it from the sequences' rows.
                let select: Vec<String> = cols
                    .iter()
                    .map(|(n, _)| match n.as_str() {
                        "last_value" => "(SELECT CASE WHEN q.\"is_called\" THEN q.\"last_value\" END \
                                         FROM \"main\".\"__shoal_sequences\" AS q \
                                         WHERE q.\"name\" = p.\"sequencename\") AS \"last_value\""
                            .to_string(),
                        other => format!("p.{}", quote(other)),
                    })
                    .collect();
                self.add_rel(&alias_name, cols.into_iter().map(|(n, t)| (n, t, 0, 0)).collect());
                return Ok(format!(
                    "(SELECT {} FROM \"pg_catalog\".\"pg_sequences\" AS p) AS {}",
                    select.join(", "),
                    quote(&alias_name)
                ));
            }
            self.add_rel(&alias_name, cols.into_iter().map(|(n, t)| (n, t, 0, 0)).collect());
            return Ok(format!("{}.{} AS {}", quote(schema), quote(table), quote(&alias_name)));
        }
        let table = object_name(name)?;
        if let Some(seq) = self.catalog.sequence(&table) {
            // A sequence reads as its one row (last_value, log_cnt, is_called).
            let alias_name = alias.map(|a| fold(&a.name)).unwrap_or_else(|| table.clone());
            let cols = vec![
                ("last_value".to_string(), DataType::Int8, 0, 0),
                ("log_cnt".to_string(), DataType::Int8, 0, 0),
                ("is_called".to_string(), DataType::Bool, 0, 0),
            ];
            self.add_rel(&alias_name, cols);
            return Ok(format!(
                "(SELECT \"last_value\", 0 AS \"log_cnt\", \"is_called\" FROM \"main\".\"__shoal_sequences\" WHERE \"oid\" = {}) AS {}",
                seq.oid,
                quote(&alias_name)
            ));
        }
        let alias_name = alias.map(|a| fold(&a.name)).unwrap_or_else(|| table.clone());
        let renames: Vec<String> = alias.iter().flat_map(|a| a.columns.iter().map(|c| fold(&c.name))).collect();
        let cols: Vec<(String, DataType, u32, i16)> =
            if let Some(cte) = self.ctes.iter().rev().find(|c| c.name == table) {
                cte.cols.iter().map(|(n, t)| (n.clone(), t.clone(), 0, 0)).collect()
            } else if let Some(t) = self.catalog.table(&table) {
                self.relations.push(table.clone());
                t.columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.name.clone(), c.data_type.clone(), t.oid, i as i16 + 1))
                    .collect()
            } else if let Some(v) = self.catalog.view(&table) {
                self.relations.push(table.clone());
                v.columns.iter().map(|c| (c.name.clone(), c.data_type.clone(), 0, 0)).collect()
            } else {
                return Err(Error::new(SqlState::UNDEFINED_TABLE, format!("relation \"{table}\" does not exist")));
            };
        if renames.is_empty() {
            self.add_rel(&alias_name, cols);
            return Ok(format!("{} AS {}", quote(&table), quote(&alias_name)));
        }
        let mut select = Vec::new();
        let mut renamed = Vec::new();
        for (i, (n, t, oid, id)) in cols.into_iter().enumerate() {
            let new = renames.get(i).cloned().unwrap_or_else(|| n.clone());
            select.push(format!("{} AS {}", quote(&n), quote(&new)));
            renamed.push((new, t, oid, id));
        }
        self.add_rel(&alias_name, renamed);
        Ok(format!("(SELECT {} FROM {}) AS {}", select.join(", "), quote(&table), quote(&alias_name)))
    }

    /// `generate_series(start, stop [, step])` over integers (SQLite's `series` extension).
    fn table_function(
        &mut self,
        name: &ast::ObjectName,
        args: &[ast::FunctionArg],
        alias: Option<&ast::TableAlias>,
        ordinality: bool,
    ) -> Result<String> {
        let exprs: Vec<&Expr> = args
            .iter()
            .filter_map(|a| match a {
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => Some(e),
                _ => None,
            })
            .collect();
        if let Some(call) = admin_call(name, &exprs)? {
            if ordinality {
                return Err(Error::unsupported("WITH ORDINALITY on a shoal administrative function"));
            }
            let view = call.result_view();
            self.reads.admin = Some(call);
            let alias_name = alias.map(|a| fold(&a.name)).unwrap_or_else(|| view.name.to_string());
            self.add_rel(&alias_name, view.columns.iter().map(|(n, t)| (n.to_string(), t.clone(), 0, 0)).collect());
            return Ok(format!("shoal.{} AS {}", quote(view.name), quote(&alias_name)));
        }
        let fname = match name.0.as_slice() {
            [s, f] if s.as_ident().is_some_and(|i| fold(i) == "pg_catalog") => {
                f.as_ident().map(fold).unwrap_or_default()
            }
            [s, f]
                if s.as_ident().is_some_and(|i| fold(i) == "information_schema")
                    && f.as_ident().is_some_and(|i| fold(i) == EXPANDARRAY) =>
            {
                EXPANDARRAY.to_string()
            }
            [f] if f.as_ident().is_some_and(|i| fold(i) == EXPANDARRAY) => {
                return Err(Error::new(SqlState::UNDEFINED_FUNCTION, format!("function {EXPANDARRAY} does not exist")))
            }
            _ => object_name(name)?,
        };
        if let Some((sql, cols)) = self.catalog_table_function(&fname, &exprs, alias, ordinality)? {
            let alias_name = alias.map(|a| fold(&a.name)).unwrap_or_else(|| fname.clone());
            self.add_rel(&alias_name, cols.into_iter().map(|(n, t)| (n, t, 0, 0)).collect());
            return Ok(sql);
        }
        if ordinality {
            return Err(Error::unsupported("WITH ORDINALITY"));
        }
        if fname != "generate_series" {
            return Err(Error::unsupported(format!("the table function {fname}")));
        }
        if !(2..=3).contains(&args.len()) {
            return Err(Error::new(SqlState::UNDEFINED_FUNCTION, "function generate_series needs 2 or 3 arguments"));
        }
        let mut xs = Vec::new();
        for a in args {
            let ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) = a else {
                return Err(Error::unsupported("named arguments"));
            };
            let t = self.expr(e)?;
            let t = self.align(t, &DataType::Int4)?;
            if !t.ty.is_integer() {
                return Err(Error::unsupported(format!("generate_series over {}", t.ty)));
            }
            xs.push(t);
        }
        let ty = if xs.iter().any(|x| x.ty == DataType::Int8) { DataType::Int8 } else { DataType::Int4 };
        let alias_name = alias.map(|a| fold(&a.name)).unwrap_or_else(|| "generate_series".into());
        let col = alias.and_then(|a| a.columns.first()).map(|c| fold(&c.name)).unwrap_or_else(|| alias_name.clone());
        let (start, stop) = (&xs[0].sql, &xs[1].sql);
        let sql = match xs.get(2) {
            None => format!(
                "(SELECT value AS {} FROM generate_series({start}, {stop}, 1)) AS {}",
                quote(&col),
                quote(&alias_name)
            ),
            // SQLite's series ignores the sign of the step (it always counts up
            // from start to stop), so count the steps k = 0..n and compute
            // start + k*step: PostgreSQL's order for negative steps too.
            Some(Typed { sql: step, .. }) => format!(
                "(SELECT ({start}) + ({step}) * value AS {} FROM generate_series(0, \
                 CASE WHEN (({stop}) - ({start})) * ({step}) < 0 THEN -1 \
                 ELSE pg_div(({stop}) - ({start}), pg_step({step})) END, 1)) AS {}",
                quote(&col),
                quote(&alias_name)
            ),
        };
        self.add_rel(&alias_name, vec![(col, ty, 0, 0)]);
        Ok(sql)
    }
}

fn order_items(o: &ast::OrderBy) -> Result<Vec<ast::OrderByExpr>> {
    match &o.kind {
        ast::OrderByKind::Expressions(e) => {
            if e.iter().any(|x| matches!(x.options.sort, Some(ast::OrderBySort::Using(_)))) {
                return Err(Error::unsupported("ORDER BY … USING"));
            }
            Ok(e.clone())
        }
        ast::OrderByKind::All(_) => Err(Error::unsupported("ORDER BY ALL")),
    }
}

/// ORDER BY of a set operation: output column names or ordinals only.
fn set_order(order: &[ast::OrderByExpr], cols: &[OutputColumn]) -> Result<String> {
    if order.is_empty() {
        return Ok(String::new());
    }
    let mut parts = Vec::new();
    for o in order {
        let key = match &o.expr {
            Expr::Identifier(i) if cols.iter().any(|c| c.name == fold(i)) => quote(&fold(i)),
            Expr::Value(v) if matches!(v.value, ast::Value::Number(..)) => v.value.to_string(),
            _ => return Err(Error::unsupported("ORDER BY expressions on UNION/INTERSECT/EXCEPT results")),
        };
        parts.push(order_suffix(key, &o.options));
    }
    Ok(format!(" ORDER BY {}", parts.join(", ")))
}

fn cols_of(cols: &[OutputColumn]) -> Vec<(String, DataType)> {
    cols.iter().map(|c| (c.name.clone(), c.data_type.clone())).collect()
}

fn col_typed(c: &Col) -> Typed {
    let kind = if c.table_oid != 0 { Kind::Column(c.table_oid, c.column_id) } else { Kind::Expr };
    Typed { sql: c.sql.clone(), ty: c.ty.clone(), name: Some(c.name.clone()), kind }
}

pub fn output_name(t: &Typed) -> String {
    t.name.clone().unwrap_or_else(|| "?column?".into())
}

pub fn output_column(name: String, t: &Typed) -> OutputColumn {
    let (table_oid, column_id) = match t.kind {
        Kind::Column(oid, id) => (oid, id),
        _ => (0, 0),
    };
    let ty = if t.ty == DataType::Unknown { DataType::Text } else { t.ty.clone() };
    OutputColumn { name, data_type: ty, table_oid, column_id }
}

/// `shoal.verify()`, `shoal.add_node(id)`, `shoal.remove_node(id)`,
/// `shoal.set_replication_factor(n)`: `None` for any other function. The
/// arguments must be integer literals (the call runs before the query).
fn admin_call(name: &ast::ObjectName, args: &[&Expr]) -> Result<Option<crate::plan::AdminCall>> {
    use crate::plan::AdminCall;
    let parts: Vec<String> = name.0.iter().filter_map(|p| p.as_ident()).map(fold).collect();
    let [schema, function] = parts.as_slice() else { return Ok(None) };
    if schema != "shoal" {
        return Ok(None);
    }
    let integer = |what: &str| -> Result<u64> {
        let wrong = || {
            Error::new(SqlState::UNDEFINED_FUNCTION, format!("shoal.{function}() takes one argument: the {what}"))
                .with_hint(format!("pass a positive integer literal, e.g. SELECT * FROM shoal.{function}(3)"))
        };
        match args {
            [Expr::Value(v)] => match &v.value {
                ast::Value::Number(n, _) => n.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(wrong),
                _ => Err(wrong()),
            },
            _ => Err(wrong()),
        }
    };
    let call = match function.as_str() {
        "verify" if args.is_empty() => AdminCall::Verify,
        "verify" => return Err(Error::new(SqlState::UNDEFINED_FUNCTION, "shoal.verify() takes no arguments")),
        "add_node" => AdminCall::AddNode(integer("node id")?),
        "remove_node" => AdminCall::RemoveNode(integer("node id")?),
        "set_replication_factor" => AdminCall::SetReplicationFactor(integer("replication factor")?),
        _ => return Ok(None),
    };
    Ok(Some(call))
}
