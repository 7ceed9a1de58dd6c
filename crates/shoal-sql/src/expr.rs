//! Expressions: PostgreSQL operators and literals → typed SQLite SQL.
//!
//! Every emitted operator application is parenthesised, so SQLite's operator
//! precedence (which differs from PostgreSQL's, e.g. for `||`) never changes
//! the meaning. Functions live in [`crate::func`].

use shoal_common::{DataType, Error, Result, SqlState};
use sqlparser::ast::{self, BinaryOperator as B, Expr, UnaryOperator as U, Value};

use crate::binder::{self, numeric_rank, quote_str, unify, Binder, Kind, Typed};
use crate::coerce::literal;

impl Binder<'_> {
    /// Translates one expression.
    pub fn expr(&mut self, e: &Expr) -> Result<Typed> {
        self.enter()?;
        let out = self.expr_inner(e);
        self.leave();
        out
    }

    /// Translates a condition (WHERE, ON, HAVING): it must be boolean.
    pub fn condition(&mut self, e: &Expr) -> Result<Typed> {
        let t = self.expr(e)?;
        let t = self.align(t, &DataType::Bool)?;
        if t.ty != DataType::Bool && t.ty != DataType::Unknown {
            return Err(Error::new(
                SqlState::DATATYPE_MISMATCH,
                format!("argument of WHERE must be type boolean, not type {}", t.ty),
            ));
        }
        Ok(t)
    }

    fn expr_inner(&mut self, e: &Expr) -> Result<Typed> {
        match e {
            Expr::Identifier(i) => self.resolve(std::slice::from_ref(i)),
            Expr::CompoundIdentifier(parts) => self.resolve(parts),
            Expr::Value(v) => self.value(&v.value),
            Expr::Nested(inner) => {
                let t = self.expr(inner)?;
                Ok(Typed { sql: format!("({})", t.sql), ..t })
            }
            Expr::BinaryOp { left, op, right } => self.binary(left, op, right),
            Expr::UnaryOp { op, expr } => self.unary(op, expr),
            Expr::Cast { expr, data_type, kind, .. } => {
                if matches!(kind, ast::CastKind::TryCast | ast::CastKind::SafeCast) {
                    return Err(Error::unsupported("TRY_CAST"));
                }
                if let Some(t) = self.reg_cast(expr, data_type)? {
                    self.reads.catalog = true;
                    return Ok(t);
                }
                let (to, _) = binder::data_type(data_type)?;
                let mut inner = self.expr(expr)?;
                // An explicit cast to varchar(n)/char(n) truncates (assignment errors instead).
                if let (Kind::StrLit(s), DataType::Varchar(Some(n)) | DataType::Char(n)) = (&inner.kind, &to) {
                    let cut: String = s.chars().take(*n as usize).collect();
                    inner = Typed { sql: quote_str(&cut), kind: Kind::StrLit(cut), ..inner };
                }
                let name = match inner.kind {
                    Kind::Column(..) | Kind::Func => inner.name.clone(),
                    _ if inner.name.is_some() => inner.name.clone(),
                    _ => Some(to.type_name()),
                };
                let mut t = self.cast(inner, &to)?;
                t.name = name;
                Ok(t)
            }
            Expr::IsNull(x) => self.postfix(x, "IS NULL"),
            Expr::IsNotNull(x) => self.postfix(x, "IS NOT NULL"),
            Expr::IsTrue(x) => self.postfix(x, "IS TRUE"),
            Expr::IsNotTrue(x) => self.postfix(x, "IS NOT TRUE"),
            Expr::IsFalse(x) => self.postfix(x, "IS FALSE"),
            Expr::IsNotFalse(x) => self.postfix(x, "IS NOT FALSE"),
            Expr::IsUnknown(x) => self.postfix(x, "IS NULL"),
            Expr::IsNotUnknown(x) => self.postfix(x, "IS NOT NULL"),
            Expr::IsDistinctFrom(a, b) => self.compare(a, "IS NOT", b),
            Expr::IsNotDistinctFrom(a, b) => self.compare(a, "IS", b),
            Expr::In { expr, target, negated, .. } => match target {
                ast::InTarget::List(list) => self.in_list(expr, list, *negated),
                ast::InTarget::Subquery(q) => self.in_subquery(expr, q, *negated),
                _ => Err(Error::unsupported("IN UNNEST / IN TABLE")),
            },
            Expr::Between { expr, negated, low, high } => self.between(expr, *negated, low, high),
            Expr::Like { negated, any, expr, pattern, escape_char } => {
                self.like(*negated, *any, expr, pattern, escape_char.as_deref(), "pg_like")
            }
            Expr::ILike { negated, any, expr, pattern, escape_char } => {
                self.like(*negated, *any, expr, pattern, escape_char.as_deref(), "pg_ilike")
            }
            Expr::Case { operand, conditions, else_result, .. } => self.case(operand, conditions, else_result),
            Expr::Exists { subquery, negated } => {
                let (sql, _) = self.subquery(subquery)?;
                let not = if *negated { "NOT " } else { "" };
                Ok(Typed::new(format!("({not}EXISTS ({sql}))"), DataType::Bool).named("exists"))
            }
            Expr::Subquery(q) => {
                let (sql, cols) = self.subquery(q)?;
                if cols.len() != 1 {
                    return Err(Error::syntax("subquery must return only one column"));
                }
                let (name, ty) = cols.into_iter().next().unwrap_or(("?column?".into(), DataType::Text));
                // SQLite takes the first row of a scalar subquery; PostgreSQL
                // errors (21000) on a second. Count at most two rows and let
                // pg_single_row raise; the subquery still runs once.
                let sql = format!(
                    "(SELECT pg_single_row(count(*), max({col})) FROM (SELECT {col} FROM ({sql}) LIMIT 2))",
                    col = binder::quote(&name)
                );
                Ok(Typed::new(sql, ty).named(name))
            }
            Expr::Function(f) => self.function(f),
            Expr::Extract { field, expr, .. } => self.extract(field, expr),
            Expr::Substring { expr, substring_from, substring_for, .. } => {
                let mut args = vec![self.text_arg(expr)?];
                let from = match substring_from {
                    Some(f) => self.int_arg(f)?,
                    None => Typed::new("1", DataType::Int4),
                };
                args.push(from);
                if let Some(f) = substring_for {
                    args.push(self.int_arg(f)?);
                }
                Ok(call("pg_substr", &args, DataType::Text).named("substring"))
            }
            Expr::Position { expr, r#in } => {
                let needle = self.text_arg(expr)?;
                let hay = self.text_arg(r#in)?;
                Ok(Typed::new(format!("instr({}, {})", hay.sql, needle.sql), DataType::Int4).named("position"))
            }
            Expr::Trim { expr, trim_where, trim_what, trim_characters } => {
                if trim_characters.is_some() {
                    return Err(Error::unsupported("TRIM with a character list"));
                }
                let f = match trim_where {
                    Some(ast::TrimWhereField::Leading) => "ltrim",
                    Some(ast::TrimWhereField::Trailing) => "rtrim",
                    _ => "trim",
                };
                let mut args = vec![self.text_arg(expr)?];
                if let Some(w) = trim_what {
                    args.push(self.text_arg(w)?);
                }
                Ok(call(f, &args, DataType::Text).named(match f {
                    "trim" => "btrim",
                    other => other,
                }))
            }
            Expr::TypedString(ts) => {
                let (to, _) = binder::data_type(&ts.data_type)?;
                let s = string_value(&ts.value.value).ok_or_else(|| Error::syntax("expected a string literal"))?;
                Ok(literal(&s, &to)?.named(to.type_name()))
            }
            Expr::Interval(iv) => self.interval(iv),
            Expr::Ceil { expr, field } | Expr::Floor { expr, field } => {
                if !matches!(field, ast::CeilFloorKind::DateTimeField(ast::DateTimeField::NoDateTime)) {
                    return Err(Error::unsupported("CEIL/FLOOR with a field"));
                }
                let name = if matches!(e, Expr::Ceil { .. }) { "ceil" } else { "floor" };
                let a = self.numeric_arg(expr)?;
                Ok(self.rounding_fn(name, vec![a])?.named(name))
            }
            Expr::JsonAccess { .. } => Err(Error::unsupported("this JSON access syntax")),
            Expr::AtTimeZone { .. } => Err(Error::unsupported("AT TIME ZONE")),
            Expr::SimilarTo { .. } => Err(Error::unsupported("SIMILAR TO")),
            Expr::RLike { .. } => Err(Error::unsupported("regular expression matching")),
            Expr::AnyOp { left, compare_op, right, .. } => self.any_all(left, compare_op, right, false),
            Expr::AllOp { left, compare_op, right } => self.any_all(left, compare_op, right, true),
            Expr::CompoundFieldAccess { root, access_chain } => self.access(root, access_chain),
            Expr::Array(_) => Err(Error::unsupported("arrays")),
            // Shoal compares text by code point (the C collation); the default
            // and C/POSIX collations mean exactly that, others are refused.
            Expr::Collate { expr, collation } => {
                let name = collation.0.last().and_then(|p| p.as_ident()).map(|i| i.value.to_lowercase());
                match name.as_deref() {
                    Some("default" | "c" | "posix" | "ucs_basic") => self.expr(expr),
                    _ => Err(Error::unsupported(format!("COLLATE {collation}"))),
                }
            }
            Expr::Tuple(_) => Err(Error::unsupported("row constructors")),
            other => Err(Error::unsupported(format!("the expression {}", truncate(&other.to_string())))),
        }
    }

    /// `a.b[i]`, `(r).f`, `(r).f[i]`: sqlparser puts the dotted names of a
    /// column reference before a subscript into the access chain, so those
    /// are joined back into the column's name first.
    fn access(&mut self, root: &Expr, chain: &[ast::AccessExpr]) -> Result<Typed> {
        let mut names = match root {
            Expr::Identifier(i) => vec![i.clone()],
            Expr::CompoundIdentifier(parts) => parts.clone(),
            _ => vec![],
        };
        let mut rest = chain;
        if !names.is_empty() {
            while let [ast::AccessExpr::Dot(Expr::Identifier(i)), tail @ ..] = rest {
                names.push(i.clone());
                rest = tail;
            }
        }
        let root = if names.is_empty() {
            root.clone()
        } else if names.len() == 1 {
            Expr::Identifier(names.remove(0))
        } else {
            Expr::CompoundIdentifier(names)
        };
        match rest {
            [] => self.expr(&root),
            [ast::AccessExpr::Dot(field)] => self.field_access(&root, field),
            [ast::AccessExpr::Subscript(_)] => self.subscript(&root, rest),
            [.., last] => {
                // Apply all but the last step, then the last one.
                let inner =
                    Expr::CompoundFieldAccess { root: Box::new(root), access_chain: rest[..rest.len() - 1].to_vec() };
                match last {
                    ast::AccessExpr::Dot(field) => self.field_access(&inner, field),
                    ast::AccessExpr::Subscript(_) => self.subscript(&inner, std::slice::from_ref(last)),
                }
            }
        }
    }

    fn value(&mut self, v: &Value) -> Result<Typed> {
        match v {
            Value::Number(n, _) => number(n),
            Value::Boolean(b) => Ok(Typed::new(if *b { "1" } else { "0" }, DataType::Bool).named("bool")),
            Value::Null => Ok(Typed { sql: "NULL".into(), ty: DataType::Unknown, name: None, kind: Kind::Null }),
            Value::Placeholder(p) => self.param(p),
            other => match string_value(other) {
                Some(s) => Ok(Typed { sql: quote_str(&s), ty: DataType::Unknown, name: None, kind: Kind::StrLit(s) }),
                None => Err(Error::unsupported(format!("the literal {other}"))),
            },
        }
    }

    fn postfix(&mut self, x: &Expr, op: &str) -> Result<Typed> {
        let t = self.expr(x)?;
        Ok(Typed::new(format!("({} {op})", t.sql), DataType::Bool))
    }

    /// Translates both operands, giving an untyped one the other's type.
    pub fn pair(&mut self, a: &Expr, b: &Expr) -> Result<(Typed, Typed)> {
        let l = self.expr(a)?;
        let r = self.expr(b)?;
        self.align_pair(l, r)
    }

    pub fn align_pair(&mut self, l: Typed, r: Typed) -> Result<(Typed, Typed)> {
        let (lt, rt) = (l.ty.clone(), r.ty.clone());
        let l = if l.is_untyped() && !r.is_untyped() { self.align(l, &rt)? } else { l };
        let r = if r.is_untyped() && !l.is_untyped() { self.align(r, &lt)? } else { r };
        Ok((l, r))
    }

    fn compare(&mut self, a: &Expr, op: &str, b: &Expr) -> Result<Typed> {
        let (l, r) = self.pair(a, b)?;
        check_comparable(&l.ty, &r.ty, op)?;
        let (l, r) = self.comparable(l, r)?;
        Ok(Typed::new(format!("({} {op} {})", l.sql, r.sql), DataType::Bool))
    }

    /// Brings the operands of a comparison to their common type when a
    /// numeric is involved, as PostgreSQL does: numeric vs integer compares as
    /// numeric (the integer printed as numeric text, the left side under the
    /// `pg_numeric` collation), numeric vs float as double precision.
    pub fn comparable(&mut self, l: Typed, r: Typed) -> Result<(Typed, Typed)> {
        let numeric = |t: &DataType| matches!(t, DataType::Numeric(_));
        if !numeric(&l.ty) && !numeric(&r.ty) {
            return Ok((l, r));
        }
        let (Some(_), Some(_)) = (numeric_rank(&l.ty), numeric_rank(&r.ty)) else {
            return Ok((l, r));
        };
        let Some(target) = unify(&l.ty, &r.ty) else {
            return Ok((l, r));
        };
        // An integer against a numeric literal that a double holds exactly
        // (`age > 1.5`, `n = 30.0`) compares natively: SQLite compares an
        // integer with a double exactly, and the integer keeps its index.
        if numeric(&target) {
            if l.ty.is_integer() {
                if let Some(x) = exact_double_literal(&r) {
                    return Ok((l, x));
                }
            }
            if r.ty.is_integer() {
                if let Some(x) = exact_double_literal(&l) {
                    return Ok((x, r));
                }
            }
        }
        let l = if l.ty == target { l } else { self.cast(l, &target)? };
        let r = if r.ty == target { r } else { self.cast(r, &target)? };
        if numeric(&target) {
            let sql = binder::numeric_collate(&l.sql);
            return Ok((Typed { sql, ..l }, r));
        }
        Ok((l, r))
    }

    fn binary(&mut self, a: &Expr, op: &B, b: &Expr) -> Result<Typed> {
        if let Some(t) = self.regex_op(a, op, b)? {
            return Ok(t);
        }
        let sym = match op {
            B::Eq => "=",
            B::NotEq => "<>",
            B::Lt => "<",
            B::LtEq => "<=",
            B::Gt => ">",
            B::GtEq => ">=",
            B::And | B::Or => return self.logical(a, op, b),
            B::StringConcat => return self.concat(a, b),
            B::Plus | B::Minus | B::Multiply | B::Divide | B::Modulo => return self.arith(a, op, b),
            B::PGExp => {
                let x = self.numeric_arg(a)?;
                let y = self.numeric_arg(b)?;
                return self.power(x, y);
            }
            B::Arrow | B::LongArrow => return self.json_access(a, op, b),
            B::BitwiseAnd | B::BitwiseOr | B::PGBitwiseXor => return self.bitwise(a, op, b),
            other => return Err(Error::unsupported(format!("the operator {other}"))),
        };
        self.compare(a, sym, b)
    }

    /// `&`, `|`, `#` on integers: the wider operand's type (`int2 & int2` is
    /// `int2`). SQLite's 64-bit operators give the same bits, and a result of
    /// operands that fit a type fits it too, so no range check is needed.
    fn bitwise(&mut self, a: &Expr, op: &B, b: &Expr) -> Result<Typed> {
        let (l, r) = self.pair(a, b)?;
        let (l, r) = (self.align(l, &DataType::Int4)?, self.align(r, &DataType::Int4)?);
        let int = |t: &DataType| matches!(t, DataType::Int2 | DataType::Int4 | DataType::Int8);
        if !int(&l.ty) || !int(&r.ty) {
            return Err(no_operator(&op.to_string(), &l.ty, &r.ty));
        }
        let ty = if numeric_rank(&l.ty) >= numeric_rank(&r.ty) { l.ty.clone() } else { r.ty.clone() };
        let sql = match op {
            B::BitwiseAnd => format!("({} & {})", l.sql, r.sql),
            B::BitwiseOr => format!("({} | {})", l.sql, r.sql),
            // x # y = (x | y) - (x & y), exactly, without overflow.
            _ => format!("(({0} | {1}) - ({0} & {1}))", l.sql, r.sql),
        };
        Ok(Typed::new(sql, ty))
    }

    fn logical(&mut self, a: &Expr, op: &B, b: &Expr) -> Result<Typed> {
        let l = self.condition(a)?;
        let r = self.condition(b)?;
        let word = if matches!(op, B::And) { "AND" } else { "OR" };
        Ok(Typed::new(format!("({} {word} {})", l.sql, r.sql), DataType::Bool))
    }

    fn concat(&mut self, a: &Expr, b: &Expr) -> Result<Typed> {
        let l = self.expr(a)?;
        let r = self.expr(b)?;
        let l = self.align(l, &DataType::Text)?;
        let r = self.align(r, &DataType::Text)?;
        if matches!(l.ty, DataType::Jsonb) || matches!(r.ty, DataType::Jsonb) {
            return Err(Error::unsupported("jsonb concatenation"));
        }
        let l = text_of(l);
        let r = text_of(r);
        Ok(Typed::new(format!("({} || {})", l.sql, r.sql), DataType::Text))
    }

    fn arith(&mut self, a: &Expr, op: &B, b: &Expr) -> Result<Typed> {
        let (l, r) = self.pair(a, b)?;
        if let Some(t) = self.datetime_arith(&l, op, &r)? {
            return Ok(t);
        }
        let (l, r) = (self.numeric_default(l)?, self.numeric_default(r)?);
        let (Some(x), Some(y)) = (numeric_rank(&l.ty), numeric_rank(&r.ty)) else {
            return Err(no_operator(&op.to_string(), &l.ty, &r.ty));
        };
        let ty = if x >= y { l.ty.clone() } else { r.ty.clone() };
        let ty = match ty {
            DataType::Numeric(_) => DataType::Numeric(None),
            DataType::Int2 => DataType::Int4,
            t => t,
        };
        if matches!(ty, DataType::Int4 | DataType::Int8) && matches!(op, B::Plus | B::Minus | B::Multiply) {
            return checked_int_arith(&l, op, &r, ty);
        }
        if let DataType::Numeric(_) = ty {
            // Exact arithmetic in Rust; integer operands are read exactly as they are.
            let f = match op {
                B::Plus => "pg_num_add",
                B::Minus => "pg_num_sub",
                B::Multiply => "pg_num_mul",
                B::Divide => "pg_num_div",
                _ => "pg_num_mod",
            };
            return Ok(call(f, &[l, r], ty));
        }
        // numeric with a float is computed in double precision, as PostgreSQL does.
        let (l, r) = (self.float_operand(l, &ty)?, self.float_operand(r, &ty)?);
        let sql = match op {
            B::Plus => format!("({} + {})", l.sql, r.sql),
            B::Minus => format!("({} - {})", l.sql, r.sql),
            B::Multiply => format!("({} * {})", l.sql, r.sql),
            B::Divide => format!("pg_div({}, {})", l.sql, r.sql),
            _ => format!("pg_mod({}, {})", l.sql, r.sql),
        };
        Ok(Typed::new(sql, ty))
    }

    /// A numeric operand of a float operation, converted to the float type.
    fn float_operand(&mut self, t: Typed, ty: &DataType) -> Result<Typed> {
        match (&t.ty, ty) {
            (DataType::Numeric(_), DataType::Float4 | DataType::Float8) => self.cast(t, &DataType::Float8),
            _ => Ok(t),
        }
    }

    /// An untyped operand in arithmetic is read as a number (PostgreSQL picks numeric/int).
    fn numeric_default(&mut self, t: Typed) -> Result<Typed> {
        if !t.is_untyped() {
            return Ok(t);
        }
        match &t.kind {
            Kind::StrLit(s) if s.trim().parse::<i64>().is_ok() => self.cast(t, &DataType::Int4),
            Kind::Null => Ok(Typed { ty: DataType::Int4, ..t }),
            _ => self.cast(t, &DataType::Numeric(None)),
        }
    }

    /// Date/time arithmetic: `ts ± interval`, `date ± int`, `date - date`, `ts - ts`.
    fn datetime_arith(&mut self, l: &Typed, op: &B, r: &Typed) -> Result<Option<Typed>> {
        use DataType as T;
        let sign = match op {
            B::Plus => 1,
            B::Minus => -1,
            _ => return Ok(None),
        };
        let is_ts = |t: &T| matches!(t, T::Timestamp | T::Timestamptz | T::Date);
        let out = match (&l.ty, &r.ty) {
            (lt, T::Interval) if is_ts(lt) => {
                let ty = if *lt == T::Timestamptz { T::Timestamptz } else { T::Timestamp };
                Typed::new(format!("pg_ts_add({}, {}, {sign})", l.sql, r.sql), ty)
            }
            (T::Interval, rt) if is_ts(rt) && sign > 0 => {
                let ty = if *rt == T::Timestamptz { T::Timestamptz } else { T::Timestamp };
                Typed::new(format!("pg_ts_add({}, {}, 1)", r.sql, l.sql), ty)
            }
            (T::Interval, T::Interval) => {
                Typed::new(format!("pg_interval_add({}, {}, {sign})", l.sql, r.sql), T::Interval)
            }
            (T::Date, rt) if rt.is_integer() || r.is_untyped() => {
                let n = if sign > 0 { r.sql.clone() } else { format!("(-({}))", r.sql) };
                Typed::new(format!("date({}, ({n}) || ' days')", l.sql), T::Date)
            }
            (lt, T::Date) if lt.is_integer() && sign > 0 => {
                Typed::new(format!("date({}, ({}) || ' days')", r.sql, l.sql), T::Date)
            }
            (T::Date, T::Date) if sign < 0 => {
                Typed::new(format!("CAST(julianday({}) - julianday({}) AS INTEGER)", l.sql, r.sql), T::Int4)
            }
            (lt, rt) if is_ts(lt) && is_ts(rt) && sign < 0 => {
                Typed::new(format!("pg_ts_diff({}, {})", l.sql, r.sql), T::Interval)
            }
            (lt, rt) if is_ts(lt) || is_ts(rt) || *lt == T::Interval || *rt == T::Interval => {
                return Err(no_operator(&op.to_string(), lt, rt))
            }
            _ => return Ok(None),
        };
        Ok(Some(out))
    }

    fn json_access(&mut self, a: &Expr, op: &B, b: &Expr) -> Result<Typed> {
        let l = self.expr(a)?;
        let l = self.align(l, &DataType::Jsonb)?;
        if !matches!(l.ty, DataType::Json | DataType::Jsonb) {
            return Err(no_operator(&op.to_string(), &l.ty, &DataType::Text));
        }
        let r = self.expr(b)?;
        let r = if r.is_untyped() { self.align(r, &DataType::Text)? } else { r };
        let path = if r.ty.is_integer() {
            format!("('$[' || {} || ']')", r.sql)
        } else {
            format!("('$.\"' || replace({}, '\"', '\\\"') || '\"')", r.sql)
        };
        if matches!(op, B::Arrow) {
            return Ok(Typed::new(format!("({} -> {path})", l.sql), l.ty.clone()).named("?column?"));
        }
        Ok(Typed::new(
            format!("(CASE json_type({0}, {path}) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' WHEN 'object' THEN json_extract({0}, {path}) WHEN 'array' THEN json_extract({0}, {path}) ELSE CAST(json_extract({0}, {path}) AS TEXT) END)", l.sql),
            DataType::Text,
        ))
    }

    fn unary(&mut self, op: &U, x: &Expr) -> Result<Typed> {
        match op {
            U::Not => {
                let t = self.condition(x)?;
                Ok(Typed::new(format!("(NOT {})", t.sql), DataType::Bool))
            }
            U::Minus => {
                if let Expr::Value(v) = x {
                    if let Value::Number(n, _) = &v.value {
                        return number(&format!("-{n}"));
                    }
                }
                let t = self.expr(x)?;
                let t = self.numeric_default(t)?;
                if numeric_rank(&t.ty).is_none() && t.ty != DataType::Interval {
                    return Err(Error::new(
                        SqlState::UNDEFINED_FUNCTION,
                        format!("operator does not exist: - {}", t.ty),
                    ));
                }
                if t.ty == DataType::Interval {
                    return Ok(Typed::new(format!("pg_interval_add('0 seconds', {}, -1)", t.sql), DataType::Interval));
                }
                if let DataType::Numeric(_) = t.ty {
                    return Ok(call("pg_num_neg", &[t], DataType::Numeric(None)));
                }
                Ok(Typed::new(format!("(- {})", t.sql), t.ty))
            }
            U::Plus => self.expr(x),
            other => Err(Error::unsupported(format!("the operator {other}"))),
        }
    }

    pub fn in_list(&mut self, x: &Expr, list: &[Expr], negated: bool) -> Result<Typed> {
        let mut l = self.expr(x)?;
        let mut items = Vec::with_capacity(list.len());
        for e in list {
            let item = self.expr(e)?;
            let (nl, item) = self.align_pair(l, item)?;
            l = nl;
            check_comparable(&l.ty, &item.ty, "IN")?;
            items.push(item);
        }
        // A numeric anywhere makes the whole comparison numeric (or float).
        if items.iter().chain([&l]).any(|t| matches!(t.ty, DataType::Numeric(_))) {
            let target = items.iter().try_fold(l.ty.clone(), |acc, t| unify(&acc, &t.ty));
            if let Some(target) = target.filter(|t| numeric_rank(t).is_some()) {
                let probe = Typed::new("NULL", target.clone());
                l = self.comparable(l, probe)?.0;
                for item in &mut items {
                    if item.ty != target {
                        *item = self.cast(item.clone(), &target)?;
                    }
                }
            }
        }
        let items: Vec<String> = items.into_iter().map(|i| i.sql).collect();
        let not = if negated { "NOT " } else { "" };
        Ok(Typed::new(format!("({} {not}IN ({}))", l.sql, items.join(", ")), DataType::Bool))
    }

    fn in_subquery(&mut self, x: &Expr, q: &ast::Query, negated: bool) -> Result<Typed> {
        let l = self.expr(x)?;
        let (sql, cols) = self.subquery(q)?;
        if cols.len() != 1 {
            return Err(Error::syntax("subquery has too many columns"));
        }
        let l = self.align(l, &cols[0].1)?;
        // With a numeric on either side, compare at the common type: the
        // subquery's column is converted by wrapping the subquery.
        let (name, col_ty) = cols[0].clone();
        let col = Typed::new(binder::quote(&name), col_ty.clone());
        let (l, col) = self.comparable(l, col)?;
        let sql = if col.ty != col_ty { format!("SELECT {} FROM ({sql})", col.sql) } else { sql };
        let not = if negated { "NOT " } else { "" };
        Ok(Typed::new(format!("({} {not}IN ({sql}))", l.sql), DataType::Bool))
    }

    fn between(&mut self, x: &Expr, negated: bool, low: &Expr, high: &Expr) -> Result<Typed> {
        let (l, lo) = self.pair(x, low)?;
        let hi = self.expr(high)?;
        let (l, hi) = self.align_pair(l, hi)?;
        check_comparable(&l.ty, &lo.ty, "BETWEEN")?;
        check_comparable(&l.ty, &hi.ty, "BETWEEN")?;
        // `x BETWEEN a AND b` is `x >= a AND x <= b`: each pair at its common type.
        if [&l, &lo, &hi].iter().any(|t| matches!(t.ty, DataType::Numeric(_))) {
            let (x1, lo) = self.comparable(l.clone(), lo)?;
            let (x2, hi) = self.comparable(l, hi)?;
            let (op, join) = if negated { ("<", "OR") } else { (">=", "AND") };
            let op2 = if negated { ">" } else { "<=" };
            let sql = format!("({} {op} {} {join} {} {op2} {})", x1.sql, lo.sql, x2.sql, hi.sql);
            return Ok(Typed::new(sql, DataType::Bool));
        }
        let not = if negated { "NOT " } else { "" };
        Ok(Typed::new(format!("({} {not}BETWEEN {} AND {})", l.sql, lo.sql, hi.sql), DataType::Bool))
    }

    /// `x [NOT] LIKE p [ESCAPE e]` (and ILIKE) as `pg_like(x, p[, e])`, a
    /// function with PostgreSQL's rules (see shoal-storage's functions.rs):
    /// SQLite's own LIKE ignores case, and has no default escape where
    /// PostgreSQL's is a backslash. The escape may be any text expression,
    /// as in PostgreSQL; the function checks it is empty or one character.
    fn like(&mut self, negated: bool, any: bool, x: &Expr, p: &Expr, escape: Option<&Expr>, f: &str) -> Result<Typed> {
        if any {
            return Err(Error::unsupported("LIKE ANY"));
        }
        let l = self.text_arg(x)?;
        let r = self.text_arg(p)?;
        let e = match escape {
            Some(e) => format!(", {}", self.text_arg(e)?.sql),
            None => String::new(),
        };
        let not = if negated { "NOT " } else { "" };
        Ok(Typed::new(format!("({not}{f}({}, {}{e}))", l.sql, r.sql), DataType::Bool))
    }

    fn case(&mut self, operand: &Option<Box<Expr>>, whens: &[ast::CaseWhen], els: &Option<Box<Expr>>) -> Result<Typed> {
        let op = match operand {
            Some(o) => Some(self.expr(o)?),
            None => None,
        };
        let mut parts = Vec::new();
        let mut results = Vec::new();
        let mut pairs = Vec::new();
        for w in whens {
            match &op {
                Some(o) => {
                    let c = self.expr(&w.condition)?;
                    pairs.push(self.align_pair(o.clone(), c)?);
                }
                None => parts.push(self.condition(&w.condition)?.sql),
            }
            results.push(self.expr(&w.result)?);
        }
        // `CASE x WHEN v …` compares `x = v`; with a numeric on either side it
        // becomes `CASE WHEN x = v …` so the comparison is numeric.
        let numeric = |t: &DataType| matches!(t, DataType::Numeric(_));
        let searched = pairs.iter().any(|(o, c)| numeric(&o.ty) || numeric(&c.ty));
        for (o, c) in pairs {
            if searched {
                let (o, c) = self.comparable(o, c)?;
                parts.push(format!("{} = {}", o.sql, c.sql));
            } else {
                parts.push(c.sql);
            }
        }
        let op = if searched { None } else { op };
        if let Some(e) = els {
            results.push(self.expr(e)?);
        }
        let results = self.unify_all(results, "CASE")?;
        let ty = results.first().map(|r| r.ty.clone()).unwrap_or(DataType::Text);
        let mut sql = String::from("(CASE");
        if let Some(o) = &op {
            sql.push(' ');
            sql.push_str(&o.sql);
        }
        for (cond, res) in parts.iter().zip(&results) {
            sql.push_str(&format!(" WHEN {cond} THEN {}", res.sql));
        }
        if els.is_some() {
            if let Some(last) = results.last() {
                sql.push_str(&format!(" ELSE {}", last.sql));
            }
        }
        sql.push_str(" END)");
        Ok(Typed::new(sql, ty).named("case"))
    }

    /// Brings branch results to their common type (unknown literals become text).
    pub fn unify_all(&mut self, items: Vec<Typed>, context: &str) -> Result<Vec<Typed>> {
        let mut ty = DataType::Unknown;
        for t in &items {
            if t.is_untyped() {
                continue;
            }
            ty = unify(&ty, &t.ty).ok_or_else(|| binder::mismatch(context, &ty, &t.ty))?;
        }
        if ty == DataType::Unknown && items.iter().any(|t| matches!(t.kind, Kind::StrLit(_))) {
            ty = DataType::Text;
        }
        let mut out = Vec::with_capacity(items.len());
        for t in items {
            let mixed_numeric = t.ty != ty
                && numeric_rank(&t.ty).is_some()
                && numeric_rank(&ty).is_some()
                && (matches!(t.ty, DataType::Numeric(_)) || matches!(ty, DataType::Numeric(_)));
            let t = if t.is_untyped() {
                self.align(t, &ty)?
            } else if mixed_numeric {
                // An integer branch of a numeric result must become numeric text.
                self.cast(t, &ty)?
            } else {
                t
            };
            out.push(Typed { ty: ty.clone(), ..t });
        }
        Ok(out)
    }

    fn interval(&mut self, iv: &ast::Interval) -> Result<Typed> {
        let v = self.expr(&iv.value)?;
        let Kind::StrLit(s) = &v.kind else {
            return Err(Error::unsupported("INTERVAL with a non-literal value"));
        };
        let mut text = s.clone();
        if let Some(f) = &iv.leading_field {
            if iv.last_field.is_some() {
                return Err(Error::unsupported("INTERVAL … TO …"));
            }
            text = format!("{s} {f}");
        }
        Ok(literal(&text, &DataType::Interval)?.named("interval"))
    }

    fn extract(&mut self, field: &ast::DateTimeField, x: &Expr) -> Result<Typed> {
        let name = field.to_string().to_lowercase();
        let t = self.expr(x)?;
        let t = self.align(t, &DataType::Timestamp)?;
        // PostgreSQL's extract returns numeric: microsecond precision for
        // seconds and epochs, milliseconds with three decimals, else whole.
        let scale = match name.as_str() {
            "second" | "seconds" | "epoch" => 6,
            "millisecond" | "milliseconds" => 3,
            _ => 0,
        };
        let sql = format!("pg_num_round(pg_extract({}, {}), {scale})", quote_str(&name), t.sql);
        Ok(Typed::new(sql, DataType::Numeric(None)).named("extract"))
    }

    /// `x ^ y` / `power(x, y)`: numeric when either side is numeric (and
    /// neither is a float), otherwise double precision, as PostgreSQL resolves it.
    pub fn power(&mut self, x: Typed, y: Typed) -> Result<Typed> {
        let numeric = |t: &DataType| matches!(t, DataType::Numeric(_));
        let float = |t: &DataType| matches!(t, DataType::Float4 | DataType::Float8);
        if (numeric(&x.ty) || numeric(&y.ty)) && !float(&x.ty) && !float(&y.ty) {
            return Ok(call("pg_num_power", &[x, y], DataType::Numeric(None)));
        }
        let (x, y) = (self.float_operand(x, &DataType::Float8)?, self.float_operand(y, &DataType::Float8)?);
        Ok(call("pg_power", &[x, y], DataType::Float8))
    }

    /// `ceil`, `floor`, `round`, `trunc`, `sign` of one argument (and `round`
    /// / `trunc` with a scale): exact on numerics; integers and floats go
    /// through double precision like PostgreSQL's `round(integer)`, except
    /// with a scale argument, which only numeric has.
    pub fn rounding_fn(&mut self, name: &str, mut args: Vec<Typed>) -> Result<Typed> {
        let numeric = matches!(args[0].ty, DataType::Numeric(_));
        if numeric || args.len() == 2 {
            if args[0].ty.is_integer() {
                args[0] = self.cast(args[0].clone(), &DataType::Numeric(None))?;
            }
            if !matches!(args[0].ty, DataType::Numeric(_) | DataType::Unknown) {
                return Err(no_function(name, &args));
            }
            return Ok(call(&format!("pg_num_{name}"), &args, DataType::Numeric(None)));
        }
        let f = if name == "round" { "round".to_string() } else { format!("pg_{name}") };
        let x = if args[0].ty.is_integer() { self.cast(args[0].clone(), &DataType::Float8)? } else { args[0].clone() };
        let ty = if x.ty == DataType::Float4 { DataType::Float4 } else { DataType::Float8 };
        Ok(call(&f, &[x], ty))
    }

    /// An argument that must be text; untyped ones become text, other types are printed.
    pub fn text_arg(&mut self, e: &Expr) -> Result<Typed> {
        let t = self.expr(e)?;
        let t = self.align(t, &DataType::Text)?;
        Ok(text_of(t))
    }

    pub fn int_arg(&mut self, e: &Expr) -> Result<Typed> {
        let t = self.expr(e)?;
        let t = self.align(t, &DataType::Int4)?;
        if !t.ty.is_numeric() && t.ty != DataType::Unknown {
            return Err(Error::new(SqlState::DATATYPE_MISMATCH, format!("argument must be an integer, not {}", t.ty)));
        }
        Ok(t)
    }

    pub fn numeric_arg(&mut self, e: &Expr) -> Result<Typed> {
        let t = self.expr(e)?;
        let t = self.numeric_default(t)?;
        if !t.ty.is_numeric() && t.ty != DataType::Unknown {
            return Err(Error::new(SqlState::UNDEFINED_FUNCTION, format!("function does not accept type {}", t.ty)));
        }
        Ok(t)
    }
}

/// Integer `+ - *` with PostgreSQL's overflow errors (SQLite would turn an
/// overflowing result into a REAL): two literals are folded now, anything
/// else calls `pg_int4pl`/`pg_int8mul`/… at run time.
fn checked_int_arith(l: &Typed, op: &B, r: &Typed, ty: DataType) -> Result<Typed> {
    type Checked = fn(i64, i64) -> Option<i64>;
    let (f, name): (Checked, &str) = match op {
        B::Plus => (i64::checked_add, "pl"),
        B::Minus => (i64::checked_sub, "mi"),
        _ => (i64::checked_mul, "mul"),
    };
    if let (Ok(a), Ok(b)) = (l.sql.parse::<i64>(), r.sql.parse::<i64>()) {
        let n = f(a, b).filter(|n| ty != DataType::Int4 || i32::try_from(*n).is_ok());
        return match n {
            Some(n) if n < 0 => Ok(Typed::new(format!("({n})"), ty)),
            Some(n) => Ok(Typed::new(n.to_string(), ty)),
            None => Err(crate::coerce::int_out_of_range(&ty)),
        };
    }
    let bits = if ty == DataType::Int4 { "int4" } else { "int8" };
    Ok(Typed::new(format!("pg_{bits}{name}({}, {})", l.sql, r.sql), ty))
}

/// Non-text values printed as PostgreSQL prints them (booleans as `true`/`false`).
pub fn text_of(t: Typed) -> Typed {
    match t.ty {
        DataType::Bool => {
            let sql = format!("(CASE {} WHEN 1 THEN 'true' WHEN 0 THEN 'false' END)", t.sql);
            Typed { sql, ty: DataType::Text, ..t }
        }
        DataType::Bytea => Typed { sql: format!("pg_cast({}, 'bytea', 'text')", t.sql), ty: DataType::Text, ..t },
        // character(n) → text drops the padding blanks, as PostgreSQL's rtrim1.
        DataType::Char(_) => Typed { sql: format!("rtrim({}, ' ')", t.sql), ty: DataType::Text, ..t },
        _ => t,
    }
}

/// A numeric literal: `int4` when it fits, else `int8`, else an exact
/// `numeric` (its PostgreSQL text, e.g. `1.50`), as PostgreSQL types them.
fn number(n: &str) -> Result<Typed> {
    if let Ok(v) = n.parse::<i64>() {
        let ty = if i32::try_from(v).is_ok() { DataType::Int4 } else { DataType::Int8 };
        return Ok(Typed::new(n, ty));
    }
    let value = shoal_common::numeric::Numeric::parse(n)?;
    Ok(Typed::new(quote_str(&value.to_string()), DataType::Numeric(None)))
}

/// A numeric literal (`'1.5'`, as [`number`] emits it) as a double literal,
/// when the double is exactly the literal's value.
fn exact_double_literal(t: &Typed) -> Option<Typed> {
    if !matches!(t.ty, DataType::Numeric(_)) {
        return None;
    }
    let inner = t.sql.strip_prefix('\'')?.strip_suffix('\'')?;
    let x = shoal_common::numeric::Numeric::parse(inner).ok()?.to_f64_exact()?;
    Some(Typed::new(format!("({x:?})"), DataType::Float8))
}

/// A numeric (stored as text) as a JSON value: a JSON number, except the
/// special values, which JSON cannot hold and PostgreSQL writes as strings.
pub fn json_numeric(sql: &str) -> String {
    format!("(CASE WHEN {sql} IN ('NaN', 'Infinity', '-Infinity') THEN json_quote({sql}) ELSE json({sql}) END)")
}

pub fn call(f: &str, args: &[Typed], ty: DataType) -> Typed {
    let list: Vec<&str> = args.iter().map(|a| a.sql.as_str()).collect();
    Typed::new(format!("{f}({})", list.join(", ")), ty)
}

pub fn string_value(v: &Value) -> Option<String> {
    match v {
        Value::SingleQuotedString(s)
        | Value::EscapedStringLiteral(s)
        | Value::UnicodeStringLiteral(s)
        | Value::NationalStringLiteral(s)
        | Value::TripleSingleQuotedString(s) => Some(s.clone()),
        Value::DollarQuotedString(d) => Some(d.value.clone()),
        _ => None,
    }
}

fn check_comparable(a: &DataType, b: &DataType, op: &str) -> Result<()> {
    // Records stored as text would compare as text, not field by field.
    if matches!(a, DataType::Record(_)) || matches!(b, DataType::Record(_)) {
        return Err(Error::unsupported("comparing records"));
    }
    if *a == DataType::Unknown || *b == DataType::Unknown || unify(a, b).is_some() {
        return Ok(());
    }
    Err(no_operator(op, a, b))
}

fn no_function(name: &str, args: &[Typed]) -> Error {
    let types: Vec<String> = args.iter().map(|a| a.ty.to_string()).collect();
    Error::new(SqlState::UNDEFINED_FUNCTION, format!("function {name}({}) does not exist", types.join(", ")))
        .with_hint("No function matches the given name and argument types. You might need to add explicit type casts.")
}

pub fn no_operator(op: &str, a: &DataType, b: &DataType) -> Error {
    Error::new(SqlState::UNDEFINED_FUNCTION, format!("operator does not exist: {a} {op} {b}"))
        .with_hint("No operator matches the given name and argument types. You might need to add explicit type casts.")
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}
