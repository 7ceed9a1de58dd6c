//! PostgreSQL's grouping rule: in a grouped query (GROUP BY, HAVING or an
//! aggregate in the SELECT list), every column read outside an aggregate must
//! be a grouping key, sit inside an expression that is one, or be
//! functionally dependent on the grouping keys because they include its
//! table's whole primary key. SQLite would instead return a value from an
//! arbitrary row of the group, so the binder refuses such queries (42803)
//! the way PostgreSQL's `check_ungrouped_columns` does.
//!
//! The check walks the AST of the SELECT list, HAVING and ORDER BY after
//! translation (so every name is known to resolve). Expressions it does not
//! look into (subqueries, unusual syntax) are accepted rather than refused:
//! a missed error is better than refusing a valid query.

use shoal_common::{Error, Result, SqlState};
use sqlparser::ast::{self, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, SelectItem};

use crate::binder::{fold, Binder, Col};
use crate::func::AGGREGATES;

/// The grouping keys of one SELECT.
struct Keys {
    /// Every GROUP BY expression as text (ordinals and aliases replaced by the item).
    exprs: Vec<String>,
    /// The SQL of GROUP BY items that are plain columns.
    columns: Vec<String>,
}

impl Binder<'_> {
    /// Refuses an ungrouped column in a grouped query (call inside the SELECT's scope).
    pub fn check_grouping(&mut self, s: &ast::Select, order: &[ast::OrderByExpr]) -> Result<()> {
        let ast::GroupByExpr::Expressions(group, _) = &s.group_by else { return Ok(()) };
        let items: Vec<&Expr> = s
            .projection
            .iter()
            .filter_map(|i| match i {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => Some(e),
                _ => None,
            })
            .collect();
        let grouped = !group.is_empty()
            || s.having.is_some()
            || items.iter().any(|e| has_aggregate(e))
            || s.having.as_ref().is_some_and(has_aggregate);
        if !grouped {
            return Ok(());
        }
        let mut keys = Keys { exprs: vec![], columns: vec![] };
        for g in group {
            let g = self.group_item(g, s);
            keys.exprs.push(g.to_string());
            if let Expr::Identifier(_) | Expr::CompoundIdentifier(_) = g {
                if let Some(col) = self.current_column(g) {
                    keys.columns.push(col.sql);
                }
            }
        }
        for item in &s.projection {
            match item {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => self.ungrouped(e, &keys)?,
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                    let scope = self.scope().clone();
                    for rel in &scope.rels {
                        let wanted = match item {
                            SelectItem::QualifiedWildcard(ast::SelectItemQualifiedWildcardKind::ObjectName(n), _) => {
                                n.0.last().and_then(|p| p.as_ident()).map(fold).is_some_and(|a| a == rel.alias)
                            }
                            _ => true,
                        };
                        for col in rel.cols.iter().filter(|_| wanted) {
                            self.check_column(col, &keys)?;
                        }
                    }
                }
                _ => {}
            }
        }
        if let Some(h) = &s.having {
            self.ungrouped(h, &keys)?;
        }
        for o in order {
            self.ungrouped(&o.expr, &keys)?;
        }
        Ok(())
    }

    /// A GROUP BY item with ordinals (`GROUP BY 1`) and output aliases replaced by the SELECT item.
    fn group_item<'e>(&self, g: &'e Expr, s: &'e ast::Select) -> &'e Expr {
        let item = |i: usize| match s.projection.get(i) {
            Some(SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. }) => Some(e),
            _ => None,
        };
        match g {
            Expr::Value(v) => match &v.value {
                ast::Value::Number(n, _) => n.parse::<usize>().ok().and_then(|k| item(k.checked_sub(1)?)).unwrap_or(g),
                _ => g,
            },
            Expr::Identifier(i) if self.current_column(g).is_none() => s
                .projection
                .iter()
                .find_map(|p| match p {
                    SelectItem::ExprWithAlias { expr, alias } if fold(alias) == fold(i) => Some(expr),
                    _ => None,
                })
                .unwrap_or(g),
            _ => g,
        }
    }

    /// The column `e` names in the current query level (not an outer one), if any.
    fn current_column(&self, e: &Expr) -> Option<Col> {
        let t = match e {
            Expr::Identifier(i) => self.resolve(std::slice::from_ref(i)).ok()?,
            Expr::CompoundIdentifier(parts) => self.resolve(parts).ok()?,
            _ => return None,
        };
        let scope = self.scopes.last()?;
        scope.merged.iter().chain(scope.rels.iter().flat_map(|r| r.cols.iter())).find(|c| c.sql == t.sql).cloned()
    }

    fn ungrouped(&self, e: &Expr, keys: &Keys) -> Result<()> {
        if keys.exprs.contains(&e.to_string()) {
            return Ok(());
        }
        let walk = |x: &Expr| self.ungrouped(x, keys);
        match e {
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) => match self.current_column(e) {
                Some(col) => self.check_column(&col, keys),
                None => Ok(()),
            },
            Expr::Function(f) => {
                let name = f.name.0.last().and_then(|p| p.as_ident()).map(fold).unwrap_or_default();
                if f.over.is_none() && AGGREGATES.contains(&name.as_str()) {
                    return Ok(());
                }
                if let FunctionArguments::List(list) = &f.args {
                    for a in &list.args {
                        if let FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) = a {
                            walk(x)?;
                        }
                    }
                }
                Ok(())
            }
            Expr::BinaryOp { left, right, .. }
            | Expr::IsDistinctFrom(left, right)
            | Expr::IsNotDistinctFrom(left, right) => {
                walk(left)?;
                walk(right)
            }
            Expr::Like { expr, pattern, escape_char, .. } | Expr::ILike { expr, pattern, escape_char, .. } => {
                walk(expr)?;
                walk(pattern)?;
                escape_char.as_deref().map_or(Ok(()), walk)
            }
            Expr::UnaryOp { expr, .. }
            | Expr::Nested(expr)
            | Expr::Cast { expr, .. }
            | Expr::IsNull(expr)
            | Expr::IsNotNull(expr)
            | Expr::IsTrue(expr)
            | Expr::IsNotTrue(expr)
            | Expr::IsFalse(expr)
            | Expr::IsNotFalse(expr)
            | Expr::Collate { expr, .. }
            | Expr::Extract { expr, .. } => walk(expr),
            Expr::Between { expr, low, high, .. } => {
                walk(expr)?;
                walk(low)?;
                walk(high)
            }
            Expr::In { expr, target, .. } => {
                walk(expr)?;
                match target {
                    ast::InTarget::List(list) => list.iter().try_for_each(walk),
                    _ => Ok(()),
                }
            }
            Expr::Case { operand, conditions, else_result, .. } => {
                if let Some(o) = operand {
                    walk(o)?;
                }
                for w in conditions {
                    walk(&w.condition)?;
                    walk(&w.result)?;
                }
                else_result.as_deref().map_or(Ok(()), walk)
            }
            _ => Ok(()),
        }
    }

    /// One column read outside an aggregate: grouped, or dependent on a grouped primary key.
    fn check_column(&self, col: &Col, keys: &Keys) -> Result<()> {
        if keys.columns.contains(&col.sql) {
            return Ok(());
        }
        let Some(scope) = self.scopes.last() else { return Ok(()) };
        let rel = scope.rels.iter().find(|r| r.cols.iter().any(|c| c.sql == col.sql));
        if let Some(rel) = rel {
            let table =
                (col.table_oid != 0).then(|| self.catalog.tables.values().find(|t| t.oid == col.table_oid)).flatten();
            // System catalogs (no table oid here) are keyed by their `oid` column, as in PostgreSQL.
            let system_oid_grouped =
                col.table_oid == 0 && rel.cols.iter().any(|c| c.name == "oid" && keys.columns.contains(&c.sql));
            if system_oid_grouped {
                return Ok(());
            }
            if let Some(t) = table.filter(|t| !t.primary_key.is_empty()) {
                let pk_grouped = t
                    .primary_key
                    .iter()
                    .all(|k| rel.cols.iter().find(|c| c.name == *k).is_some_and(|c| keys.columns.contains(&c.sql)));
                if pk_grouped {
                    return Ok(());
                }
            }
        }
        let qualified = match rel {
            Some(r) => format!("{}.{}", r.alias, col.name),
            None => col.name.clone(),
        };
        Err(Error::new(
            SqlState::GROUPING_ERROR,
            format!("column \"{qualified}\" must appear in the GROUP BY clause or be used in an aggregate function"),
        ))
    }
}

/// True when `e` calls an aggregate of this query level (not a window function, not in a subquery).
fn has_aggregate(e: &Expr) -> bool {
    match e {
        Expr::Function(f) => {
            let name = f.name.0.last().and_then(|p| p.as_ident()).map(fold).unwrap_or_default();
            if f.over.is_none() && AGGREGATES.contains(&name.as_str()) {
                return true;
            }
            match &f.args {
                FunctionArguments::List(list) => list.args.iter().any(|a| match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => has_aggregate(x),
                    _ => false,
                }),
                _ => false,
            }
        }
        Expr::BinaryOp { left, right, .. } => has_aggregate(left) || has_aggregate(right),
        Expr::UnaryOp { expr, .. } | Expr::Nested(expr) | Expr::Cast { expr, .. } => has_aggregate(expr),
        Expr::Case { operand, conditions, else_result, .. } => {
            operand.as_deref().is_some_and(has_aggregate)
                || conditions.iter().any(|w| has_aggregate(&w.condition) || has_aggregate(&w.result))
                || else_result.as_deref().is_some_and(has_aggregate)
        }
        _ => false,
    }
}
