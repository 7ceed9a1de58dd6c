//! Function calls: scalar functions, aggregates and window functions.
//!
//! Each PostgreSQL function maps to a SQLite built-in with the same meaning
//! or to a `pg_*` function from `shoal_storage::functions`; the result type
//! follows PostgreSQL (`count` → bigint, `sum(int4)` → bigint, `avg` →
//! numeric, `now()` → timestamptz, …). Unknown functions are refused (42883),
//! never passed through to SQLite under a name that means something else.

use shoal_common::{DataType, Error, Result, SqlState};
use sqlparser::ast::{self, Expr, FunctionArg, FunctionArgExpr, FunctionArguments};

use crate::binder::{fold, quote_str, Binder, Kind, Typed};
use crate::expr::{call, text_of};

/// The parsed argument list of one call.
struct Args<'e> {
    exprs: Vec<&'e Expr>,
    star: bool,
    distinct: bool,
    order_by: Vec<ast::OrderByExpr>,
}

fn args_of(f: &ast::Function) -> Result<Args<'_>> {
    let mut out = Args { exprs: vec![], star: false, distinct: false, order_by: vec![] };
    match &f.args {
        FunctionArguments::None => {}
        FunctionArguments::Subquery(_) => return Err(Error::unsupported("a subquery as function argument")),
        FunctionArguments::List(list) => {
            out.distinct = matches!(list.duplicate_treatment, Some(ast::DuplicateTreatment::Distinct));
            for a in &list.args {
                match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => out.exprs.push(e),
                    FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => out.star = true,
                    _ => return Err(Error::unsupported("named or qualified-wildcard function arguments")),
                }
            }
            for c in &list.clauses {
                match c {
                    ast::FunctionArgumentClause::OrderBy(o) => out.order_by = o.clone(),
                    other => return Err(Error::unsupported(format!("the function clause {other}"))),
                }
            }
        }
    }
    Ok(out)
}

/// `information_schema._pg_expandarray(anyarray)`: the set of records
/// `(x, n)`, each element with its 1-based position (JDBC's metadata queries).
pub(crate) const EXPANDARRAY: &str = "_pg_expandarray";

pub(crate) const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "string_agg",
    "bool_and",
    "bool_or",
    "every",
    "json_agg",
    "jsonb_agg",
    "array_agg",
];
const WINDOW_ONLY: &[&str] = &[
    "row_number",
    "rank",
    "dense_rank",
    "percent_rank",
    "cume_dist",
    "ntile",
    "lag",
    "lead",
    "first_value",
    "last_value",
    "nth_value",
];

impl Binder<'_> {
    pub fn function(&mut self, f: &ast::Function) -> Result<Typed> {
        let parts: Vec<String> = f.name.0.iter().filter_map(|p| p.as_ident()).map(fold).collect();
        let name = match parts.as_slice() {
            [n] if n != EXPANDARRAY => n.clone(),
            [s, n] if (s == "pg_catalog" || s == "public") && n != EXPANDARRAY => n.clone(),
            // Only reachable qualified, as in PostgreSQL (information_schema is not on the search path).
            [s, n] if s == "information_schema" && n == EXPANDARRAY => n.clone(),
            [n] | [_, n] if n == EXPANDARRAY => {
                return Err(Error::new(SqlState::UNDEFINED_FUNCTION, format!("function {n} does not exist")))
            }
            _ => return Err(Error::unsupported(format!("the function {}", f.name))),
        };
        if let (FunctionArguments::Subquery(q), "array") = (&f.args, name.as_str()) {
            return self.array_subquery(q);
        }
        if !f.within_group.is_empty() || f.null_treatment.is_some() {
            return Err(Error::unsupported("WITHIN GROUP / IGNORE NULLS"));
        }
        let args = args_of(f)?;
        let is_agg = AGGREGATES.contains(&name.as_str());
        let is_window = WINDOW_ONLY.contains(&name.as_str());
        if (args.distinct || !args.order_by.is_empty() || f.filter.is_some()) && !is_agg {
            return Err(Error::new(
                SqlState::WRONG_OBJECT_TYPE,
                format!("DISTINCT/ORDER BY/FILTER specified, but {name} is not an aggregate function"),
            ));
        }
        if is_window && f.over.is_none() {
            return Err(Error::new(
                SqlState::WRONG_OBJECT_TYPE,
                format!("window function {name} requires an OVER clause"),
            ));
        }
        let mut t = if is_agg {
            self.aggregate(&name, &args)?
        } else if is_window {
            self.window_fn(&name, &args)?
        } else {
            if f.over.is_some() {
                return Err(Error::new(
                    SqlState::WRONG_OBJECT_TYPE,
                    format!("OVER specified, but {name} is not a window function nor an aggregate function"),
                ));
            }
            return self.scalar(&name, &args.exprs);
        };
        if let Some(filter) = &f.filter {
            let c = self.condition(filter)?;
            t.sql = format!("{} FILTER (WHERE {})", t.sql, c.sql);
        }
        if let Some(over) = &f.over {
            t.sql = format!("{} OVER ({})", t.sql, self.window_spec(over)?);
        }
        t.name = Some(name);
        t.kind = Kind::Func;
        Ok(t)
    }

    fn aggregate(&mut self, name: &str, a: &Args) -> Result<Typed> {
        let distinct = if a.distinct { "DISTINCT " } else { "" };
        if a.star {
            if name != "count" {
                return Err(Error::syntax(format!("{name}(*) is not allowed")));
            }
            return Ok(Typed::new("count(*)", DataType::Int8));
        }
        let mut xs = Vec::new();
        for e in &a.exprs {
            xs.push(self.expr(e)?);
        }
        let order = self.order_list(&a.order_by)?;
        let order = if order.is_empty() { String::new() } else { format!(" ORDER BY {order}") };
        let one = |xs: &[Typed]| -> Result<Typed> {
            match xs {
                [x] => Ok(x.clone()),
                _ => Err(Error::new(SqlState::UNDEFINED_FUNCTION, format!("function {name} does not exist"))
                    .with_hint("No function matches the given name and argument types.")),
            }
        };
        let (sql, ty) = match name {
            "count" if a.distinct => (format!("count({distinct}{})", ordered_key(&one(&xs)?)?), DataType::Int8),
            "count" => (format!("count({})", numeric_key(&one(&xs)?)), DataType::Int8),
            "sum" => {
                let x = self.agg_numeric(one(&xs)?)?;
                match x.ty {
                    DataType::Int2 | DataType::Int4 => (format!("sum({distinct}{})", x.sql), DataType::Int8),
                    // sum(bigint) and sum(numeric) are exact numerics (no overflow).
                    DataType::Int8 | DataType::Numeric(_) => {
                        (format!("pg_num_sum({distinct}{})", numeric_key(&x)), DataType::Numeric(None))
                    }
                    ref t => (format!("sum({distinct}{})", x.sql), t.clone()),
                }
            }
            "avg" => {
                let x = self.agg_numeric(one(&xs)?)?;
                if matches!(x.ty, DataType::Float4 | DataType::Float8) {
                    (format!("avg({distinct}{})", x.sql), DataType::Float8)
                } else {
                    // Exact: the sum divided with numeric's division scale.
                    (format!("pg_num_avg({distinct}{})", numeric_key(&x)), DataType::Numeric(None))
                }
            }
            "min" | "max" => {
                let x = one(&xs)?;
                let ty = if x.ty == DataType::Unknown { DataType::Text } else { x.ty.clone() };
                (format!("{name}({distinct}{})", ordered_key(&x)?), ty)
            }
            "bool_and" | "every" | "bool_or" => {
                let x = self.align(one(&xs)?, &DataType::Bool)?;
                let f = if name == "bool_or" { "max" } else { "min" };
                (format!("{f}({})", x.sql), DataType::Bool)
            }
            "array_agg" => {
                let x = one(&xs)?;
                let t = self.array_agg(x, distinct, &order);
                (t.sql, t.ty)
            }
            "string_agg" => {
                let [x, sep] = xs.as_slice() else {
                    return Err(Error::new(SqlState::UNDEFINED_FUNCTION, "function string_agg requires two arguments"));
                };
                let x = text_of(self.align(x.clone(), &DataType::Text)?);
                let sep = self.align(sep.clone(), &DataType::Text)?;
                (format!("group_concat({distinct}{}, {}{order})", x.sql, sep.sql), DataType::Text)
            }
            _ => {
                let x = one(&xs)?;
                let ty = if name == "jsonb_agg" { DataType::Jsonb } else { DataType::Json };
                let x = match x.ty {
                    DataType::Numeric(_) => crate::expr::json_numeric(&x.sql),
                    _ => x.sql,
                };
                (format!("json_group_array({distinct}{x}{order})"), ty)
            }
        };
        Ok(Typed::new(sql, ty))
    }

    fn agg_numeric(&mut self, x: Typed) -> Result<Typed> {
        let x = if x.ty == DataType::Unknown && !matches!(x.kind, Kind::Null) {
            self.cast(x, &DataType::Numeric(None))?
        } else {
            x
        };
        let x = self.align(x, &DataType::Numeric(None))?;
        if !x.ty.is_numeric() && x.ty != DataType::Interval {
            return Err(Error::new(SqlState::UNDEFINED_FUNCTION, format!("function does not exist for type {}", x.ty)));
        }
        if x.ty == DataType::Interval {
            return Err(Error::unsupported("sum/avg of intervals"));
        }
        Ok(x)
    }

    fn window_fn(&mut self, name: &str, a: &Args) -> Result<Typed> {
        let mut xs = Vec::new();
        for e in &a.exprs {
            xs.push(self.expr(e)?);
        }
        let ty = match name {
            "row_number" | "rank" | "dense_rank" => DataType::Int8,
            "percent_rank" | "cume_dist" => DataType::Float8,
            "ntile" => DataType::Int4,
            _ => xs.first().map(|x| x.ty.clone()).unwrap_or(DataType::Unknown),
        };
        Ok(call(name, &xs, ty))
    }

    fn window_spec(&mut self, w: &ast::WindowType) -> Result<String> {
        let ast::WindowType::WindowSpec(spec) = w else {
            return Err(Error::unsupported("named windows"));
        };
        let mut parts = Vec::new();
        if !spec.partition_by.is_empty() {
            let mut ps = Vec::new();
            for p in &spec.partition_by {
                ps.push(ordered_key(&self.expr(p)?)?);
            }
            parts.push(format!("PARTITION BY {}", ps.join(", ")));
        }
        if !spec.order_by.is_empty() {
            parts.push(format!("ORDER BY {}", self.order_list(&spec.order_by)?));
        }
        if let Some(frame) = &spec.window_frame {
            let bound_ok = |b: &ast::WindowFrameBound| match b {
                ast::WindowFrameBound::Preceding(Some(e)) | ast::WindowFrameBound::Following(Some(e)) => {
                    matches!(e.as_ref(), Expr::Value(v) if matches!(v.value, ast::Value::Number(..)))
                }
                _ => true,
            };
            if !bound_ok(&frame.start_bound) || !frame.end_bound.as_ref().is_none_or(bound_ok) {
                return Err(Error::unsupported("window frame bounds other than numeric literals"));
            }
            let end = frame.end_bound.as_ref().map(|e| format!(" AND {e}")).unwrap_or_default();
            let between = if frame.end_bound.is_some() { "BETWEEN " } else { "" };
            parts.push(format!("{} {between}{}{end}", frame.units, frame.start_bound));
        }
        Ok(parts.join(" "))
    }

    /// Translates ORDER BY items (expressions only) with PostgreSQL's NULL placement.
    pub fn order_list(&mut self, items: &[ast::OrderByExpr]) -> Result<String> {
        let mut out = Vec::new();
        for o in items {
            let t = self.expr(&o.expr)?;
            out.push(order_suffix(ordered_key(&t)?, &o.options));
        }
        Ok(out.join(", "))
    }

    fn scalar(&mut self, name: &str, args: &[&Expr]) -> Result<Typed> {
        let t = self.scalar_inner(name, args)?;
        Ok(if t.name.is_none() { t.named(name) } else { t })
    }

    fn scalar_inner(&mut self, name: &str, args: &[&Expr]) -> Result<Typed> {
        use DataType as T;
        let n = args.len();
        let arity = |ok: bool| check_arity(name, n, ok);
        let texts = |b: &mut Self| -> Result<Vec<Typed>> { args.iter().map(|a| b.text_arg(a)).collect() };
        let nums = |b: &mut Self| -> Result<Vec<Typed>> { args.iter().map(|a| b.numeric_arg(a)).collect() };
        match name {
            "now" | "transaction_timestamp" | "statement_timestamp" | "clock_timestamp" => {
                arity(n == 0)?;
                Ok(Typed::new("shoal_now()", T::Timestamptz))
            }
            "current_timestamp" | "localtimestamp" => {
                arity(n == 0)?;
                let ty = if name == "localtimestamp" { T::Timestamp } else { T::Timestamptz };
                Ok(Typed::new("shoal_now()", ty))
            }
            "current_date" => Ok(Typed::new("substr(shoal_now(), 1, 10)", T::Date)),
            "current_time" | "localtime" => Ok(Typed::new("substr(shoal_now(), 12)", T::Time)),
            "random" => {
                arity(n == 0)?;
                Ok(Typed::new("shoal_random()", T::Float8))
            }
            "gen_random_uuid" | "uuid_generate_v4" => {
                arity(n == 0)?;
                Ok(Typed::new("gen_random_uuid()", T::Uuid))
            }
            "pi" => Ok(Typed::new("3.141592653589793", T::Float8)),
            "quote_ident" => {
                arity(n == 1)?;
                let x = &texts(self)?[0];
                // Quoted unless it is a plain lower-case identifier (PostgreSQL
                // also quotes reserved words, which Shoal does not know here).
                Ok(Typed::new(
                    format!(
                        "(CASE WHEN {x} GLOB '[a-z_]*' AND NOT {x} GLOB '*[^a-z0-9_]*' THEN {x} \
                         ELSE '\"' || replace({x}, '\"', '\"\"') || '\"' END)",
                        x = x.sql
                    ),
                    T::Text,
                ))
            }
            "lower" | "upper" | "initcap" | "reverse" | "md5" => {
                arity(n == 1)?;
                Ok(call(&format!("pg_{name}"), &texts(self)?, T::Text))
            }
            "length" | "char_length" | "character_length" | "octet_length" => {
                arity(n == 1)?;
                // bytea: the number of bytes (SQLite's length() of a BLOB), not of its text form.
                let x = self.expr(args[0])?;
                if x.ty == T::Bytea {
                    return Ok(Typed::new(format!("length({})", x.sql), T::Int4));
                }
                let a = text_of(self.align(x, &T::Text)?);
                let sql = if name == "octet_length" {
                    format!("length(CAST({} AS BLOB))", a.sql)
                } else {
                    format!("length({})", a.sql)
                };
                Ok(Typed::new(sql, T::Int4))
            }
            "substr" | "substring" => {
                arity(n == 2 || n == 3)?;
                let mut a = vec![self.text_arg(args[0])?];
                for x in &args[1..] {
                    a.push(self.int_arg(x)?);
                }
                Ok(call("pg_substr", &a, T::Text))
            }
            "strpos" => {
                arity(n == 2)?;
                let a = texts(self)?;
                Ok(Typed::new(format!("instr({}, {})", a[0].sql, a[1].sql), T::Int4))
            }
            "btrim" | "ltrim" | "rtrim" => {
                arity(n == 1 || n == 2)?;
                let f = if name == "btrim" { "trim" } else { name };
                Ok(call(f, &texts(self)?, T::Text))
            }
            "replace" => {
                arity(n == 3)?;
                Ok(call("replace", &texts(self)?, T::Text))
            }
            "left" | "right" | "repeat" => {
                arity(n == 2)?;
                let a = vec![self.text_arg(args[0])?, self.int_arg(args[1])?];
                Ok(call(&format!("pg_{name}"), &a, T::Text))
            }
            "lpad" | "rpad" => {
                arity(n == 2 || n == 3)?;
                let mut a = vec![self.text_arg(args[0])?, self.int_arg(args[1])?];
                if n == 3 {
                    a.push(self.text_arg(args[2])?);
                }
                Ok(call(&format!("pg_{name}"), &a, T::Text))
            }
            "split_part" => {
                arity(n == 3)?;
                let a = vec![self.text_arg(args[0])?, self.text_arg(args[1])?, self.int_arg(args[2])?];
                Ok(call("pg_split_part", &a, T::Text))
            }
            "starts_with" => {
                arity(n == 2)?;
                Ok(call("pg_starts_with", &texts(self)?, T::Bool))
            }
            "concat" => {
                arity(n >= 1)?;
                let parts: Vec<String> = texts(self)?.into_iter().map(|t| format!("coalesce({}, '')", t.sql)).collect();
                Ok(Typed::new(format!("({})", parts.join(" || ")), T::Text))
            }
            "concat_ws" => {
                arity(n >= 2)?;
                Ok(call("pg_concat_ws", &texts(self)?, T::Text))
            }
            "ascii" => {
                arity(n == 1)?;
                Ok(call("unicode", &texts(self)?, T::Int4))
            }
            "chr" => {
                arity(n == 1)?;
                let a = vec![self.int_arg(args[0])?];
                Ok(call("char", &a, T::Text))
            }
            "abs" => {
                arity(n == 1)?;
                let a = nums(self)?;
                let ty = a[0].ty.clone();
                if let T::Numeric(_) = ty {
                    return Ok(call("pg_num_abs", &a, T::Numeric(None)));
                }
                Ok(call("abs", &a, ty))
            }
            "round" | "ceil" | "ceiling" | "floor" | "trunc" | "sign" => {
                arity(n == 1 || (matches!(name, "round" | "trunc") && n == 2))?;
                let mut a = vec![self.numeric_arg(args[0])?];
                if n == 2 {
                    a.push(self.int_arg(args[1])?);
                }
                let f = if name == "ceiling" { "ceil" } else { name };
                self.rounding_fn(f, a)
            }
            "mod" => {
                arity(n == 2)?;
                let a = nums(self)?;
                if a.iter().all(|x| x.ty.is_integer()) {
                    let ty = if a.iter().any(|x| x.ty == T::Int8) { T::Int8 } else { T::Int4 };
                    return Ok(call("pg_mod", &a, ty));
                }
                let mut b = Vec::new();
                for x in a {
                    b.push(if x.ty.is_integer() { self.cast(x, &T::Numeric(None))? } else { x });
                }
                if b.iter().any(|x| !matches!(x.ty, T::Numeric(_))) {
                    return Err(Error::new(
                        SqlState::UNDEFINED_FUNCTION,
                        format!("function mod({}, {}) does not exist", b[0].ty, b[1].ty),
                    ));
                }
                Ok(call("pg_num_mod", &b, T::Numeric(None)))
            }
            "power" | "pow" => {
                arity(n == 2)?;
                let a = nums(self)?;
                let (x, y) = (a[0].clone(), a[1].clone());
                // power(int, int) is double precision in PostgreSQL, like `^`.
                Ok(self.power(x, y)?.named("power"))
            }
            "sqrt" if n == 1 => {
                let a = nums(self)?;
                if let T::Numeric(_) = a[0].ty {
                    return Ok(call("pg_num_sqrt", &a, T::Numeric(None)));
                }
                Ok(call("pg_sqrt", &a, T::Float8))
            }
            "sqrt" | "exp" | "ln" | "log" | "log10" => {
                arity(n == 1 || (name == "log" && n == 2))?;
                let f = if name == "log10" { "log" } else { name };
                Ok(call(&format!("pg_{f}"), &nums(self)?, T::Float8))
            }
            "greatest" | "least" | "coalesce" => {
                arity(n >= 1)?;
                let mut xs = Vec::new();
                for a in args {
                    xs.push(self.expr(a)?);
                }
                let xs = self.unify_all(xs, &name.to_uppercase())?;
                let ty = xs[0].ty.clone();
                let f = match (name, &ty) {
                    ("coalesce", _) => "coalesce".to_string(),
                    (_, T::Numeric(_)) => format!("pg_num_{name}"),
                    _ => format!("pg_{name}"),
                };
                if name == "coalesce" && n == 1 {
                    return Ok(Typed::new(xs[0].sql.clone(), ty));
                }
                Ok(call(&f, &xs, ty))
            }
            "nullif" => {
                arity(n == 2)?;
                let (a, b) = self.pair(args[0], args[1])?;
                let ty = a.ty.clone();
                // nullif compares like `=`: numerically, with the numeric's collation.
                let (a, b) = self.comparable(a, b)?;
                let a = if matches!(ty, T::Numeric(_)) { Typed { ty: ty.clone(), ..a } } else { a };
                Ok(call("nullif", &[a, b], ty))
            }
            "date_trunc" => {
                arity(n == 2)?;
                let field = self.text_arg(args[0])?;
                let ts = self.expr(args[1])?;
                let ts = self.align(ts, &T::Timestamp)?;
                let ty = if ts.ty == T::Timestamptz { T::Timestamptz } else { T::Timestamp };
                Ok(Typed::new(format!("pg_date_trunc(lower({}), {})", field.sql, ts.sql), ty))
            }
            "date_part" => {
                arity(n == 2)?;
                let field = self.text_arg(args[0])?;
                let ts = self.expr(args[1])?;
                let ts = self.align(ts, &T::Timestamp)?;
                Ok(Typed::new(format!("pg_extract(lower({}), {})", field.sql, ts.sql), T::Float8))
            }
            "to_json" | "to_jsonb" => {
                arity(n == 1)?;
                let x = self.expr(args[0])?;
                let x = self.align(x, &T::Text)?;
                let ty = if name == "to_jsonb" { T::Jsonb } else { T::Json };
                let sql = match x.ty {
                    T::Bool => format!("json(CASE {} WHEN 1 THEN 'true' WHEN 0 THEN 'false' END)", x.sql),
                    T::Json | T::Jsonb => x.sql,
                    T::Numeric(_) => crate::expr::json_numeric(&x.sql),
                    _ => format!("json_quote({})", x.sql),
                };
                Ok(Typed::new(sql, ty))
            }
            "jsonb_typeof" | "json_typeof" => {
                arity(n == 1)?;
                let x = self.expr(args[0])?;
                let x = self.align(x, &T::Jsonb)?;
                Ok(Typed::new(
                    format!("(CASE json_type({}) WHEN 'integer' THEN 'number' WHEN 'real' THEN 'number' WHEN 'true' THEN 'boolean' WHEN 'false' THEN 'boolean' ELSE json_type({0}) END)", x.sql),
                    T::Text,
                ))
            }
            "current_schema" => Ok(Typed::new("'public'", T::Name)),
            "current_database" => Ok(Typed::new("'shoal'", T::Name)),
            "current_user" | "session_user" | "user" => Ok(Typed::new("'shoal'", T::Name)),
            "pg_typeof" => {
                arity(n == 1)?;
                let x = self.expr(args[0])?;
                let ty = if x.ty == T::Unknown { "unknown".to_string() } else { x.ty.sql_name() };
                Ok(Typed::new(quote_str(&ty), T::Text))
            }
            "format" => {
                arity(n >= 1)?;
                Ok(call("pg_format", &texts(self)?, T::Text))
            }
            "current_setting" if static_setting(args).is_some() => {
                Ok(Typed::new(quote_str(static_setting(args).unwrap_or_default()), T::Text))
            }
            "generate_series" => Err(Error::unsupported("generate_series outside FROM")),
            "unnest" | "generate_subscripts" | EXPANDARRAY => self.select_list_srf(name, args),
            _ if let Some(t) = self.sequence_function(name, args)? => Ok(t),
            _ if let Some(t) = self.catalog_function(name, args)? => {
                self.reads.catalog = true;
                Ok(t)
            }
            _ => Err(Error::new(SqlState::UNDEFINED_FUNCTION, format!("function {name} does not exist")).with_hint(
                "No function matches the given name and argument types. You might need to add explicit type casts.",
            )),
        }
    }
}

/// `current_setting('name')` of a setting no session can change, as a
/// literal; session settings are read from `pg_settings` (catalog_expr).
fn static_setting(args: &[&Expr]) -> Option<&'static str> {
    let [Expr::Value(v)] = args else { return None };
    let ast::Value::SingleQuotedString(name) = &v.value else { return None };
    Some(match name.to_ascii_lowercase().as_str() {
        "server_version_num" => "160004",
        "server_encoding" => "UTF8",
        "integer_datetimes" => "on",
        "standard_conforming_strings" => "on",
        "max_identifier_length" => "63",
        "block_size" => "8192",
        _ => return None,
    })
}

/// Appends direction and PostgreSQL's NULL placement (NULLs sort as the largest value).
pub fn order_suffix(sql: String, o: &ast::OrderByOptions) -> String {
    let desc = matches!(o.sort, Some(ast::OrderBySort::Desc));
    let nulls_first = o.nulls_first.unwrap_or(desc);
    format!("{sql} {} NULLS {}", if desc { "DESC" } else { "ASC" }, if nulls_first { "FIRST" } else { "LAST" })
}

/// [`numeric_key`] of a sort, grouping or de-duplication key, refusing a
/// record: its stored text does not order or compare as PostgreSQL orders
/// records (field by field, each by its type).
pub fn ordered_key(t: &Typed) -> Result<String> {
    refuse_record(&t.ty, "sorting, grouping or de-duplicating records")?;
    Ok(numeric_key(t))
}

/// 0A000 for a record where its text would stand in for its value.
pub fn refuse_record(ty: &DataType, what: &str) -> Result<()> {
    match ty {
        DataType::Record(_) => Err(Error::unsupported(what)),
        _ => Ok(()),
    }
}

/// An expression that SQLite compares, sorts or de-duplicates (`DISTINCT`,
/// `min`/`max`): a numeric gets the `pg_numeric` collation, so `9 < 10`.
pub fn numeric_key(t: &Typed) -> String {
    match t.ty {
        DataType::Numeric(_) => crate::binder::numeric_collate(&t.sql),
        _ => t.sql.clone(),
    }
}

/// 42883 for `name` called with `n` arguments unless `ok` (PostgreSQL's
/// message and hint).
pub(crate) fn check_arity(name: &str, n: usize, ok: bool) -> Result<()> {
    if ok {
        return Ok(());
    }
    Err(Error::new(SqlState::UNDEFINED_FUNCTION, format!("function {name} with {n} arguments does not exist"))
        .with_hint("No function matches the given name and argument types. You might need to add explicit type casts."))
}
