//! The expressions catalog queries use: regular-expression operators,
//! `reg*` casts, arrays (`ANY`, `ARRAY(…)`, subscripts, `array_agg`,
//! `unnest`, `information_schema._pg_expandarray`), record field access
//! (`(r).n`) and PostgreSQL's catalog functions (`format_type`,
//! `pg_get_constraintdef`, `pg_table_is_visible`, …).
//!
//! Records (`DataType::Record`, only from `_pg_expandarray` today) are stored
//! as PostgreSQL's record text, `(3,1)`; `(r).x` reads a field of a record
//! built in the same SELECT from its SQL directly (`Kind::Row`) and parses
//! the text of any other (`pg_record_field`). Records are not compared,
//! sorted, grouped or de-duplicated (0A000): their text does not order or
//! compare as PostgreSQL compares records, field by field.
//!
//! Arrays are array-literal text (`{a,b}`) or, for `int2vector`/`oidvector`
//! catalog columns, space-separated text (`"1 2"`, 0-based subscripts); the
//! `pg_array_*` functions of `shoal_storage::functions` understand both.
//! Element comparison (`x = ANY(arr)`) is on the elements' text, which is
//! exact for the integer, `char` and name arrays of the catalog.
//!
//! Limits (refused with 0A000 or documented in `docs/sql.md`): only
//! one-dimensional arrays; set-returning functions (`unnest`,
//! `generate_subscripts`) in a SELECT list must all range over the same
//! array or arrays of the same length (PostgreSQL runs them in lockstep;
//! Shoal joins the first array's elements and reads the others at the same
//! position, so a longer later array is cut short); `ANY`/`ALL` support `=`
//! and `<>` only.

use shoal_common::{DataType, Error, Result, SqlState};
use sqlparser::ast::{self, BinaryOperator as B, Expr};

use crate::binder::{fold, quote, quote_str, Binder, Kind, Typed};
use crate::expr::text_of;
use crate::func::EXPANDARRAY;
use crate::system::DEFS_TABLE;

/// The full `version()` text; the same words as `shoal_server::VERSION_STRING`.
pub const VERSION_TEXT: &str = concat!(
    "PostgreSQL 16.4 (Shoal ",
    env!("CARGO_PKG_VERSION"),
    ") on x86_64-pc-linux-gnu, compiled by rustc, 64-bit"
);

/// The `reg*` pseudo-types of casts (`x::regclass`).
fn reg_type(t: &ast::DataType) -> Option<String> {
    match t {
        ast::DataType::Regclass => Some("regclass".into()),
        ast::DataType::Custom(name, _) => {
            let n = name.0.last().and_then(|p| p.as_ident()).map(fold)?;
            matches!(n.as_str(), "regclass" | "regtype" | "regnamespace" | "regproc" | "regprocedure" | "regrole")
                .then_some(n)
        }
        _ => None,
    }
}

impl Binder<'_> {
    /// `x ~ p`, `x ~* p`, `x !~ p`, `x !~* p`, `x OPERATOR(pg_catalog.~) p`; `None` when `op` is not one.
    pub fn regex_op(&mut self, a: &Expr, op: &B, b: &Expr) -> Result<Option<Typed>> {
        let sym = match op {
            B::PGRegexMatch => "~".to_string(),
            B::PGRegexIMatch => "~*".into(),
            B::PGRegexNotMatch => "!~".into(),
            B::PGRegexNotIMatch => "!~*".into(),
            B::PGCustomBinaryOperator(parts) => match parts.as_slice() {
                [s, o] if s.eq_ignore_ascii_case("pg_catalog") => o.clone(),
                [o] => o.clone(),
                _ => return Ok(None),
            },
            _ => return Ok(None),
        };
        let (negate, flags) = match sym.as_str() {
            "~" => (false, ""),
            "~*" => (false, "i"),
            "!~" => (true, ""),
            "!~*" => (true, "i"),
            "=" | "<>" | "<" | ">" | "<=" | ">=" => {
                let op = match sym.as_str() {
                    "=" => B::Eq,
                    "<>" => B::NotEq,
                    "<" => B::Lt,
                    ">" => B::Gt,
                    "<=" => B::LtEq,
                    _ => B::GtEq,
                };
                return self
                    .expr(&Expr::BinaryOp { left: Box::new(a.clone()), op, right: Box::new(b.clone()) })
                    .map(Some);
            }
            other => return Err(Error::unsupported(format!("the operator {other}"))),
        };
        let l = self.text_arg(a)?;
        let r = self.text_arg(b)?;
        let not = if negate { "NOT " } else { "" };
        Ok(Some(Typed::new(format!("({not}pg_regex({}, {}, '{flags}'))", l.sql, r.sql), DataType::Bool)))
    }

    /// `x::regclass` and friends: names ⇄ OIDs through the attached catalog.
    pub fn reg_cast(&mut self, inner: &Expr, to: &ast::DataType) -> Result<Option<Typed>> {
        let Some(reg) = reg_type(to) else { return Ok(None) };
        let (table, name_col) = reg_table(&reg);
        let t = self.expr(inner)?;
        let out_name = t.name.clone().unwrap_or_else(|| reg.clone());
        let by_name = |text: &str| {
            format!(
                "(SELECT \"oid\" FROM \"pg_catalog\".{} WHERE {} = {text} OR ('public.' || {1}) = {text} OR ('pg_catalog.' || {1}) = {text})",
                quote(table),
                quote(name_col)
            )
        };
        let out = match &t.kind {
            Kind::StrLit(s) => match s.trim().parse::<i64>() {
                Ok(n) => Typed::new(n.to_string(), DataType::Oid),
                // pg_depend's class of relations (psql's `\d seq` asks for it).
                Err(_) if reg == "regclass" && matches!(s.trim(), "pg_class" | "pg_catalog.pg_class") => {
                    Typed::new(crate::system::PG_CLASS_OID.to_string(), DataType::Oid)
                }
                Err(_) => Typed::new(by_name(&quote_str(s.trim().trim_matches('"'))), DataType::Oid),
            },
            Kind::Param(_) if t.ty == DataType::Unknown || t.ty.is_text() => {
                let t = self.align(t, &DataType::Text)?;
                Typed::new(by_name(&t.sql), DataType::Oid)
            }
            Kind::Null => Typed::new("NULL", DataType::Oid),
            _ if t.ty.is_text() => Typed::new(by_name(&t.sql), DataType::Oid),
            _ => {
                let shown = if reg == "regtype" {
                    format!("pg_format_type({}, NULL)", t.sql)
                } else {
                    format!(
                        "coalesce((SELECT {} FROM \"pg_catalog\".{} WHERE \"oid\" = {x}), CAST({x} AS TEXT))",
                        quote(name_col),
                        quote(table),
                        x = t.sql
                    )
                };
                // PostgreSQL prints the invalid OID 0 of every reg* type as `-`.
                let shown = format!("(CASE WHEN {} = 0 THEN '-' ELSE {shown} END)", t.sql);
                Typed::new(shown, DataType::Name)
            }
        };
        Ok(Some(out.named(out_name)))
    }

    /// A text value looked up by name as `ty` (a `reg*` type): its OID or NULL.
    fn reg_cast_text(&mut self, x: Typed, ty: &ast::DataType) -> Result<Typed> {
        let reg = reg_type(ty).unwrap_or_else(|| "regclass".into());
        let (table, name_col) = reg_table(&reg);
        Ok(Typed::new(
            format!(
                "(SELECT \"oid\" FROM \"pg_catalog\".{} WHERE {1} = {x} OR ('public.' || {1}) = {x} OR ('pg_catalog.' || {1}) = {x})",
                quote(table),
                quote(name_col),
                x = x.sql
            ),
            DataType::Oid,
        ))
    }

    /// `x op ANY (array)` / `x op ALL (array)`, `op` being `=` or `<>`.
    pub fn any_all(&mut self, left: &Expr, op: &B, right: &Expr, all: bool) -> Result<Typed> {
        let negate = match op {
            B::Eq => false,
            B::NotEq => true,
            other => return Err(Error::unsupported(format!("{other} ANY/ALL"))),
        };
        // `x = ANY (ARRAY[a, b])` is exactly `x IN (a, b)`.
        if let Expr::Array(arr) = strip_nested(right) {
            let list = arr.elem.clone();
            if list.is_empty() {
                return Ok(Typed::new(if all { "1" } else { "0" }, DataType::Bool));
            }
            return match (negate, all) {
                (false, false) => self.in_list(left, &list, false),
                (true, true) => self.in_list(left, &list, true),
                _ => Err(Error::unsupported("this ANY/ALL form")),
            };
        }
        let arr = self.expr(right)?;
        let arr = self.array_arg(arr)?;
        let x = self.expr(left)?;
        let elem = match &arr.ty {
            DataType::Array(e) => (**e).clone(),
            _ => DataType::Text,
        };
        let x = text_of(self.align(x, &elem)?);
        let sql = match (negate, all) {
            (false, false) => format!("pg_array_contains({}, {})", arr.sql, x.sql),
            (true, true) => format!("(NOT pg_array_contains({}, {}))", arr.sql, x.sql),
            _ => return Err(Error::unsupported("this ANY/ALL form")),
        };
        Ok(Typed::new(sql, DataType::Bool))
    }

    /// An array operand: array-typed, or text holding a literal/vector.
    fn array_arg(&mut self, t: Typed) -> Result<Typed> {
        match &t.ty {
            DataType::Array(_) => Ok(t),
            _ if t.is_untyped() => self.cast(t, &DataType::Array(Box::new(DataType::Text))),
            ty if ty.is_text() => Ok(t),
            other => Err(Error::new(
                SqlState::DATATYPE_MISMATCH,
                format!("op ANY/ALL (array) requires array on right side, not {other}"),
            )),
        }
    }

    /// `ARRAY(subquery)`: the subquery's single column as an array (`{}` when empty).
    pub fn array_subquery(&mut self, q: &ast::Query) -> Result<Typed> {
        let (sql, cols) = self.subquery(q)?;
        let [(name, ty)] = cols.as_slice() else {
            return Err(Error::syntax("subquery must return only one column"));
        };
        let elem = element_text(&Typed::new(format!("\"__a\".{}", quote(name)), ty.clone()));
        Ok(Typed::new(
            format!("coalesce((SELECT '{{' || group_concat({elem}, ',') || '}}' FROM ({sql}) AS \"__a\"), '{{}}')"),
            DataType::Array(Box::new(ty.clone())),
        )
        .named("array"))
    }

    /// `arr[i]` on a one-dimensional array or catalog vector.
    pub fn subscript(&mut self, root: &Expr, chain: &[ast::AccessExpr]) -> Result<Typed> {
        let [ast::AccessExpr::Subscript(ast::Subscript::Index { index })] = chain else {
            return Err(Error::unsupported("this array access"));
        };
        let arr = self.expr(root)?;
        let arr = self.array_arg(arr)?;
        let i = self.int_arg(index)?;
        let elem = match &arr.ty {
            DataType::Array(e) => (**e).clone(),
            _ => DataType::Int2,
        };
        let raw = Typed::new(format!("pg_array_get({}, {})", arr.sql, i.sql), DataType::Text);
        let mut out = self.cast(raw, &elem)?;
        out.name = arr.name.clone();
        Ok(out)
    }

    /// `array_agg(x [ORDER BY …])`.
    pub fn array_agg(&mut self, x: Typed, distinct: &str, order: &str) -> Typed {
        let ty = if x.ty == DataType::Unknown { DataType::Text } else { x.ty.clone() };
        let elem = element_text(&x);
        Typed::new(
            format!("('{{' || group_concat({distinct}{elem}, ','{order}) || '}}')"),
            DataType::Array(Box::new(ty)),
        )
    }

    /// `unnest(arr)` / `generate_subscripts(arr, 1)` in a SELECT list: joins the
    /// array's elements once per row (see the module docs for the limit).
    pub fn select_list_srf(&mut self, name: &str, args: &[&Expr]) -> Result<Typed> {
        let Some(first) = args.first() else {
            return Err(Error::new(SqlState::UNDEFINED_FUNCTION, format!("function {name}() does not exist")));
        };
        if name == EXPANDARRAY && args.len() != 1 {
            return Err(arity(name));
        }
        if !self.scope().in_select_list {
            // PostgreSQL refuses them in WHERE, JOIN … ON, GROUP BY, … with 0A000 too.
            return Err(Error::unsupported(format!("the set-returning function {name} outside a SELECT list or FROM")));
        }
        let arr = self.expr(first)?;
        let arr = self.array_arg(arr)?;
        for extra in &args[1..] {
            self.int_arg(extra)?;
        }
        // The first array drives the rows; another array is read at the same
        // position (lockstep, as PostgreSQL does for arrays of equal length).
        let (alias, driver) = match self.scope().srf.clone() {
            Some((sql, alias)) => (alias, sql == arr.sql),
            None => {
                let alias = self.fresh_alias("srf");
                self.scope().srf = Some((arr.sql.clone(), alias.clone()));
                (alias, true)
            }
        };
        let a = quote(&alias);
        if name == "generate_subscripts" {
            return Ok(Typed::new(format!("({a}.\"key\" + pg_array_lower({}))", arr.sql), DataType::Int4));
        }
        let elem = match &arr.ty {
            DataType::Array(e) => (**e).clone(),
            _ => DataType::Int2,
        };
        let value = if driver {
            format!("{a}.\"value\"")
        } else {
            format!("json_extract(pg_array_json({}), '$[' || {a}.\"key\" || ']')", arr.sql)
        };
        if name == EXPANDARRAY {
            // The record (x, n): the element and its 1-based position, which
            // is `key + 1` for arrays (lower bound 1) and vectors (0) alike.
            let x = self.cast(Typed::new(value.clone(), DataType::Text), &elem)?;
            let n = format!("({a}.\"key\" + 1)");
            let ty = DataType::Record(vec![("x".into(), elem), ("n".into(), DataType::Int4)]);
            let sql = format!("pg_record({value}, {n})");
            return Ok(Typed { sql, ty, name: None, kind: Kind::Row(vec![x.sql, n]) });
        }
        let raw = Typed::new(value, DataType::Text);
        let mut out = self.cast(raw, &elem)?;
        out.kind = Kind::Func;
        Ok(out)
    }

    /// `(expr).field` on a record: the field's value, named after the field.
    pub fn field_access(&mut self, root: &Expr, field: &Expr) -> Result<Typed> {
        let Expr::Identifier(ident) = field else {
            return Err(Error::unsupported(format!("the field selection .{field}")));
        };
        let name = fold(ident);
        let rec = self.expr(root)?;
        let DataType::Record(fields) = &rec.ty else {
            return Err(Error::new(
                SqlState::WRONG_OBJECT_TYPE,
                format!("column notation .{name} applied to type {}, which is not a composite type", rec.ty),
            ));
        };
        let Some(i) = fields.iter().position(|(f, _)| *f == name) else {
            return Err(Error::new(
                SqlState::UNDEFINED_COLUMN,
                format!("could not identify column \"{name}\" in record data type"),
            ));
        };
        let ty = fields[i].1.clone();
        let mut out = match &rec.kind {
            Kind::Row(sqls) => Typed::new(sqls[i].clone(), ty),
            _ => {
                let raw = Typed::new(format!("pg_record_field({}, {})", rec.sql, i + 1), DataType::Text);
                self.cast(raw, &ty)?
            }
        };
        out.name = Some(name);
        Ok(out)
    }

    /// Catalog functions; `Ok(None)` when `name` is not one.
    pub fn catalog_function(&mut self, name: &str, args: &[&Expr]) -> Result<Option<Typed>> {
        use DataType as T;
        let mut xs = Vec::new();
        let translate = |b: &mut Self, xs: &mut Vec<Typed>| -> Result<()> {
            for a in args {
                xs.push(b.expr(a)?);
            }
            Ok(())
        };
        let arg = |xs: &[Typed], i: usize| xs.get(i).map(|t| t.sql.clone()).unwrap_or_else(|| "NULL".into());
        let t = match name {
            "format_type" => {
                translate(self, &mut xs)?;
                Typed::new(format!("pg_format_type({}, {})", arg(&xs, 0), arg(&xs, 1)), T::Text)
            }
            "pg_get_expr" => {
                translate(self, &mut xs)?;
                Typed::new(arg(&xs, 0), T::Text)
            }
            "pg_get_constraintdef" => {
                translate(self, &mut xs)?;
                Typed::new(format!("(SELECT \"def\" FROM {DEFS_TABLE} WHERE \"oid\" = {})", arg(&xs, 0)), T::Text)
            }
            "pg_get_indexdef" => {
                translate(self, &mut xs)?;
                let col = if xs.len() >= 2 { arg(&xs, 1) } else { "0".into() };
                Typed::new(
                    format!(
                        "(SELECT CASE WHEN coalesce({col}, 0) = 0 THEN \"def\" ELSE pg_array_get(\"cols\", {col}) END FROM {DEFS_TABLE} WHERE \"oid\" = {})",
                        arg(&xs, 0)
                    ),
                    T::Text,
                )
            }
            "pg_get_userbyid" => {
                translate(self, &mut xs)?;
                let x = arg(&xs, 0);
                Typed::new(
                    format!("coalesce((SELECT \"rolname\" FROM \"pg_catalog\".\"pg_authid\" WHERE \"oid\" = {x}), 'unknown (OID=' || {x} || ')')"),
                    T::Name,
                )
            }
            "pg_table_is_visible"
            | "pg_type_is_visible"
            | "pg_collation_is_visible"
            | "pg_function_is_visible"
            | "has_table_privilege"
            | "has_schema_privilege"
            | "has_database_privilege"
            | "has_column_privilege"
            | "has_function_privilege"
            | "has_sequence_privilege"
            | "has_any_column_privilege"
            | "pg_has_role" => {
                translate(self, &mut xs)?;
                Typed::new("1", T::Bool)
            }
            "pg_is_in_recovery" | "pg_relation_is_publishable" => Typed::new("0", T::Bool),
            "obj_description" | "col_description" | "shobj_description" => {
                translate(self, &mut xs)?;
                let cond = match name {
                    "col_description" => format!("\"objoid\" = {} AND \"objsubid\" = {}", arg(&xs, 0), arg(&xs, 1)),
                    _ => format!("\"objoid\" = {} AND \"objsubid\" = 0", arg(&xs, 0)),
                };
                Typed::new(
                    format!("(SELECT \"description\" FROM \"pg_catalog\".\"pg_description\" WHERE {cond} LIMIT 1)"),
                    T::Text,
                )
            }
            "pg_encoding_to_char" => {
                translate(self, &mut xs)?;
                Typed::new(
                    format!("(CASE {} WHEN 6 THEN 'UTF8' WHEN 0 THEN 'SQL_ASCII' ELSE '' END)", arg(&xs, 0)),
                    T::Name,
                )
            }
            "array_to_string" => {
                let a = self.expr(args.first().copied().ok_or_else(|| arity(name))?)?;
                let a = self.array_arg(a)?;
                let mut rest = vec![a];
                for x in &args[1..] {
                    rest.push(self.text_arg(x)?);
                }
                let null_str = rest.get(2).map(|t| t.sql.clone()).unwrap_or_else(|| "NULL".into());
                Typed::new(format!("pg_array_to_string({}, {}, {null_str})", rest[0].sql, arg(&rest, 1)), T::Text)
            }
            "array_upper" | "array_lower" | "array_length" | "cardinality" => {
                let a = self.expr(args.first().copied().ok_or_else(|| arity(name))?)?;
                let a = self.array_arg(a)?;
                for x in &args[1..] {
                    self.int_arg(x)?;
                }
                let sql = match name {
                    "array_upper" => format!("pg_array_upper({})", a.sql),
                    "array_lower" => {
                        format!("(CASE WHEN pg_array_length({0}) > 0 THEN pg_array_lower({0}) END)", a.sql)
                    }
                    "array_length" => format!("nullif(pg_array_length({}), 0)", a.sql),
                    _ => format!("pg_array_length({})", a.sql),
                };
                Typed::new(sql, T::Int4)
            }
            "current_schemas" => {
                translate(self, &mut xs)?;
                Typed::new("'{pg_catalog,public}'", T::Array(Box::new(T::Name)))
            }
            "version" => Typed::new(quote_str(VERSION_TEXT), T::Text),
            "to_regclass" | "to_regtype" | "to_regnamespace" | "to_regrole" => {
                let x = args.first().copied().ok_or_else(|| arity(name))?;
                let reg = ast::Ident::new(name.trim_start_matches("to_"));
                let ty = ast::DataType::Custom(ast::ObjectName::from(vec![reg]), vec![]);
                let x = self.text_arg(x)?;
                // A text operand always resolves by name (NULL when missing, as `to_reg*` does).
                let by_name = self.reg_cast_text(x, &ty)?;
                Typed::new(by_name.sql, T::Oid)
            }
            "pg_backend_pid" => Typed::new("0", T::Int4),
            "current_setting" => {
                let x = self.text_arg(args.first().copied().ok_or_else(|| arity(name))?)?;
                // The session's value in reads, else the static catalog's.
                Typed::new(
                    format!(
                        "coalesce(shoal_session_setting({0}), \
                         (SELECT \"setting\" FROM \"pg_catalog\".\"pg_settings\" WHERE \"name\" = {0}))",
                        x.sql
                    ),
                    T::Text,
                )
            }
            "pg_get_serial_sequence" => {
                translate(self, &mut xs)?;
                Typed::new("NULL", T::Text)
            }
            "pg_partition_ancestors" => {
                let x = self.expr(args.first().copied().ok_or_else(|| arity(name))?)?;
                let x = self.align(x, &T::Oid)?;
                Typed::new(x.sql, T::Oid)
            }
            "pg_get_statisticsobjdef_columns" | "pg_get_triggerdef" | "pg_get_viewdef" | "pg_get_functiondef" => {
                translate(self, &mut xs)?;
                if name == "pg_get_viewdef" {
                    Typed::new(
                        format!("(SELECT \"definition\" FROM \"pg_catalog\".\"pg_views\" v JOIN \"pg_catalog\".\"pg_class\" c ON c.\"relname\" = v.\"viewname\" WHERE c.\"oid\" = {})", arg(&xs, 0)),
                        T::Text,
                    )
                } else {
                    Typed::new("NULL", T::Text)
                }
            }
            "pg_total_relation_size" | "pg_relation_size" | "pg_table_size" | "pg_indexes_size" => {
                translate(self, &mut xs)?;
                Typed::new("0", T::Int8)
            }
            "json_build_object" | "jsonb_build_object" => {
                if !args.len().is_multiple_of(2) {
                    return Err(Error::new(
                        SqlState::INVALID_PARAMETER_VALUE,
                        "argument list must have even number of elements",
                    ));
                }
                let mut parts = Vec::new();
                for pair in args.chunks(2) {
                    parts.push(self.text_arg(pair[0])?.sql);
                    let v = self.expr(pair[1])?;
                    let v = self.align(v, &T::Text)?;
                    parts.push(match v.ty {
                        T::Bool => format!("json(CASE {} WHEN 1 THEN 'true' WHEN 0 THEN 'false' END)", v.sql),
                        T::Json | T::Jsonb => format!("json({})", v.sql),
                        T::Numeric(_) => crate::expr::json_numeric(&v.sql),
                        _ => v.sql,
                    });
                }
                let ty = if name == "jsonb_build_object" { T::Jsonb } else { T::Json };
                Typed::new(format!("json_object({})", parts.join(", ")), ty)
            }
            _ => return Ok(None),
        };
        Ok(Some(t.named(name)))
    }

    /// Table functions of catalog queries: `unnest(arr)`, `generate_subscripts(arr, 1)`,
    /// `pg_partition_ancestors(oid)`; `Ok(None)` for other names.
    pub fn catalog_table_function(
        &mut self,
        fname: &str,
        args: &[&Expr],
        alias: Option<&ast::TableAlias>,
        ordinality: bool,
    ) -> Result<Option<TableFunction>> {
        let first = match (fname, args.first()) {
            ("unnest" | "generate_subscripts" | "pg_partition_ancestors", Some(a)) => *a,
            (EXPANDARRAY, Some(a)) if args.len() == 1 => *a,
            (EXPANDARRAY, _) => return Err(arity(fname)),
            _ => return Ok(None),
        };
        let alias_name = alias.map(|a| fold(&a.name)).unwrap_or_else(|| fname.to_string());
        let names: Vec<String> = alias.iter().flat_map(|a| a.columns.iter().map(|c| fold(&c.name))).collect();
        let col = |i: usize, default: &str| names.get(i).cloned().unwrap_or_else(|| default.to_string());
        let (value_sql, ty, source) = if fname == "pg_partition_ancestors" {
            let x = self.expr(first)?;
            let x = self.align(x, &DataType::Oid)?;
            (x.sql.clone(), DataType::Oid, format!("(SELECT 0 AS \"key\", {} AS \"value\")", x.sql))
        } else {
            let arr = self.expr(first)?;
            let arr = self.array_arg(arr)?;
            let elem = match &arr.ty {
                DataType::Array(e) => (**e).clone(),
                _ => DataType::Int2,
            };
            let source = format!("json_each(pg_array_json({}))", arr.sql);
            if fname == "generate_subscripts" {
                (format!("(\"key\" + pg_array_lower({}))", arr.sql), DataType::Int4, source)
            } else {
                let v = self.cast(Typed::new("\"value\"", DataType::Text), &elem)?;
                (v.sql, elem, source)
            }
        };
        let value_name = match fname {
            "pg_partition_ancestors" => col(0, "relid"),
            EXPANDARRAY => col(0, "x"),
            _ => col(0, &alias_name),
        };
        let mut cols = vec![(value_name.clone(), ty)];
        let mut select = vec![format!("{value_sql} AS {}", quote(&value_name))];
        if fname == EXPANDARRAY {
            // The record's second field: the element's 1-based position.
            let n = col(1, "n");
            select.push(format!("(\"key\" + 1) AS {}", quote(&n)));
            cols.push((n, DataType::Int4));
        }
        if ordinality {
            let ord = col(cols.len(), "ordinality");
            select.push(format!("(\"key\" + 1) AS {}", quote(&ord)));
            cols.push((ord, DataType::Int8));
        }
        Ok(Some((format!("(SELECT {} FROM {source}) AS {}", select.join(", "), quote(&alias_name)), cols)))
    }
}

/// A table function's SQL (a FROM item) and its output columns.
pub type TableFunction = (String, Vec<(String, DataType)>);

/// The catalog relation and name column behind a `reg*` type.
fn reg_table(reg: &str) -> (&'static str, &'static str) {
    match reg {
        "regclass" => ("pg_class", "relname"),
        "regtype" => ("pg_type", "typname"),
        "regnamespace" => ("pg_namespace", "nspname"),
        "regrole" => ("pg_authid", "rolname"),
        _ => ("pg_proc", "proname"),
    }
}

fn arity(name: &str) -> Error {
    Error::new(SqlState::UNDEFINED_FUNCTION, format!("function {name} with these arguments does not exist"))
}

fn strip_nested(e: &Expr) -> &Expr {
    match e {
        Expr::Nested(inner) => strip_nested(inner),
        other => other,
    }
}

/// SQL for one element of an array literal under construction: PostgreSQL's
/// text of the value, quoted when needed, `NULL` for null.
fn element_text(x: &Typed) -> String {
    let text = match x.ty {
        DataType::Bool => format!("(CASE {} WHEN 1 THEN 't' WHEN 0 THEN 'f' END)", x.sql),
        _ => text_of(x.clone()).sql,
    };
    format!("pg_array_elem({text})")
}
