//! Casts and coercions between PostgreSQL types over SQLite storage.
//!
//! Three situations, as in PostgreSQL:
//! * **explicit casts** (`x::int`, `CAST`) — [`Binder::cast`];
//! * **assignment** (a value written into a column) — [`Binder::assign`]:
//!   numeric widening, rounding to the column's scale, blank-padding for
//!   `character(n)`; text into a non-text column is refused (42804);
//! * **literals of unknown type** (`'42'` compared with an integer) take the
//!   other operand's type — done at plan time when the text is simple
//!   (integers, booleans, numbers), otherwise through `pg_cast()` at run time.
//!
//! Conversions SQLite cannot do faithfully call `pg_cast(value, from, to)`
//! (registered by `shoal_storage::functions`), which reports PostgreSQL's
//! errors, e.g. `invalid input syntax for type integer: "abc"`.

use shoal_common::{DataType, Error, Result, SqlState};

use crate::binder::{cast_name, quote_str, storage, Binder, Kind, Storage, Typed};

impl Binder<'_> {
    /// An explicit cast.
    pub fn cast(&mut self, mut t: Typed, to: &DataType) -> Result<Typed> {
        let name = t.name.clone();
        let out = match &t.kind {
            Kind::StrLit(s) => literal(s, to)?,
            Kind::Null => Typed::new("NULL", to.clone()),
            Kind::Param(_) if t.ty == DataType::Unknown => {
                self.infer_param(&mut t, to);
                if t.ty == *to {
                    Typed::new(t.sql, to.clone())
                } else {
                    convert(t, to)
                }
            }
            _ => convert(t, to),
        };
        Ok(Typed { name, ..out })
    }

    /// Gives an untyped operand the type of its partner (`'1' = int_col`, `$1 = int_col`).
    pub fn align(&mut self, t: Typed, to: &DataType) -> Result<Typed> {
        if *to == DataType::Unknown {
            return Ok(t);
        }
        // An unknown operand resolves to the partner's type without its
        // modifier (PostgreSQL): `n = '1.005'` with n numeric(5,2) compares
        // against 1.005, not against the literal rounded to 1.01.
        let to = &match to {
            DataType::Numeric(Some(_)) => DataType::Numeric(None),
            other => other.clone(),
        };
        match &t.kind {
            Kind::StrLit(_) | Kind::Null => self.cast(t, to),
            Kind::Param(_) if t.ty == DataType::Unknown => self.cast(t, to),
            _ => Ok(t),
        }
    }

    /// Coerces a value written into `column` of type `to`.
    pub fn assign(&mut self, t: Typed, to: &DataType, column: &str) -> Result<Typed> {
        if t.is_untyped() || matches!(t.kind, Kind::Param(_)) && t.ty == DataType::Unknown {
            let t = self.cast(t, to)?;
            return Ok(pad_or_round(t, to));
        }
        let from = t.ty.clone();
        if from == *to {
            return Ok(pad_or_round(t, to));
        }
        let ok = (from.is_numeric() && to.is_numeric())
            || (from.is_text() && to.is_text())
            || to.is_text()
            || matches!(
                (&from, to),
                (DataType::Date | DataType::Timestamp | DataType::Timestamptz, DataType::Date)
                    | (DataType::Date | DataType::Timestamp | DataType::Timestamptz, DataType::Timestamp)
                    | (DataType::Date | DataType::Timestamp | DataType::Timestamptz, DataType::Timestamptz)
                    | (DataType::Json | DataType::Jsonb, DataType::Json | DataType::Jsonb)
                    | (DataType::Int4 | DataType::Int8 | DataType::Int2, DataType::Oid)
            );
        if !ok {
            return Err(Error::new(
                SqlState::DATATYPE_MISMATCH,
                format!("column \"{column}\" is of type {to} but expression is of type {from}"),
            )
            .with_hint("You will need to rewrite or cast the expression."));
        }
        if from.is_integer() && to.is_integer() && int_width(to) < int_width(&from) {
            return narrow_int(t, &from, to);
        }
        if from.is_text() && to.is_text() || from.is_integer() && to.is_integer() {
            return Ok(pad_or_round(Typed::new(t.sql, to.clone()), to));
        }
        Ok(pad_or_round(convert(t, to), to))
    }
}

/// Bytes of an integer type (int2 < int4 < int8); other types are widest.
fn int_width(t: &DataType) -> u8 {
    match t {
        DataType::Int2 => 2,
        DataType::Int4 => 4,
        _ => 8,
    }
}

/// PostgreSQL's message for an integer that does not fit `ty`.
pub fn int_out_of_range(ty: &DataType) -> Error {
    let name = match ty {
        DataType::Int2 => "smallint",
        DataType::Int4 => "integer",
        _ => "bigint",
    };
    Error::new(SqlState::NUMERIC_VALUE_OUT_OF_RANGE, format!("{name} out of range"))
}

/// An integer into a narrower integer type: a literal is checked now, anything
/// else by `pg_cast` at run time (`smallint out of range`, as PostgreSQL).
fn narrow_int(t: Typed, from: &DataType, to: &DataType) -> Result<Typed> {
    if let Ok(n) = t.sql.parse::<i64>() {
        let fits = match to {
            DataType::Int2 => i16::try_from(n).is_ok(),
            DataType::Int4 => i32::try_from(n).is_ok(),
            _ => true,
        };
        return if fits { Ok(Typed::new(t.sql, to.clone())) } else { Err(int_out_of_range(to)) };
    }
    let sql = format!("pg_cast({}, {}, {})", t.sql, quote_str(&cast_name(from)), quote_str(&cast_name(to)));
    Ok(Typed::new(sql, to.clone()))
}

/// Blank-pads `character(n)`. (A NUMERIC(p,s) value is rounded and checked
/// where it is converted: [`literal`], `convert`, or the parameter's binding.)
fn pad_or_round(t: Typed, to: &DataType) -> Typed {
    match to {
        DataType::Char(n) if !matches!(t.kind, Kind::Null) => {
            Typed { sql: format!("pg_bpchar({}, {n})", t.sql), ty: to.clone(), ..t }
        }
        _ => Typed { ty: to.clone(), ..t },
    }
}

/// Converts a typed, non-literal expression.
fn convert(t: Typed, to: &DataType) -> Typed {
    let from = t.ty.clone();
    if from == *to {
        return t;
    }
    let same = |sql: String| Typed::new(sql, to.clone());
    let (fs, ts) = (storage(&from), storage(to));
    if let Some(sql) = convert_numeric(&t, &from, to) {
        return same(sql);
    }
    let lossless = match (&from, to) {
        (f, t) if f.is_integer() && t.is_integer() => int_width(t) >= int_width(f),
        (DataType::Float4 | DataType::Float8, DataType::Float4 | DataType::Float8) => true,
        (DataType::Numeric(_), DataType::Numeric(None) | DataType::Text | DataType::Varchar(None)) => true,
        (f, DataType::Text | DataType::Varchar(None) | DataType::Name) if f.is_text() => true,
        (DataType::CatalogChar, DataType::Text | DataType::Varchar(_) | DataType::Name) => true,
        (DataType::Timestamp, DataType::Timestamptz) | (DataType::Timestamptz, DataType::Timestamp) => true,
        (
            DataType::Date | DataType::Time | DataType::Timestamp | DataType::Timestamptz | DataType::Uuid,
            DataType::Text | DataType::Varchar(None),
        ) => true,
        (DataType::Json | DataType::Jsonb, DataType::Text | DataType::Json) => true,
        (DataType::Interval, DataType::Text) => true,
        (DataType::Record(_), DataType::Text | DataType::Varchar(None)) => true,
        (DataType::Unknown, _) => fs == ts,
        _ => false,
    };
    if lossless {
        return same(t.sql);
    }
    if from.is_integer() && matches!(ts, Storage::Real) && !matches!(to, DataType::Numeric(Some(_))) {
        return same(format!("CAST({} AS REAL)", t.sql));
    }
    same(format!("pg_cast({}, {}, {})", t.sql, quote_str(&cast_name(&from)), quote_str(&cast_name(to))))
}

/// Conversions into and out of numeric (stored as exact text): integers are
/// printed (their text is the numeric's), numerics become doubles through
/// `pg_num_float8`, and a `numeric(p, s)` target rounds and checks precision.
/// `None` for conversions that involve no numeric.
fn convert_numeric(t: &Typed, from: &DataType, to: &DataType) -> Option<String> {
    match (from, to) {
        (f, DataType::Numeric(None)) if f.is_integer() => Some(match t.sql.parse::<i64>() {
            Ok(n) => quote_str(&n.to_string()),
            Err(_) => format!("CAST({} AS TEXT)", t.sql),
        }),
        (f, DataType::Numeric(Some((p, s)))) if f.is_integer() || matches!(f, DataType::Numeric(_)) => {
            Some(format!("pg_num_typmod({}, {p}, {s})", t.sql))
        }
        // A numeric literal folds to a double literal now, so `float_col * 1.5`
        // costs what it did before numerics were exact.
        (DataType::Numeric(_), DataType::Float8) => Some(match numeric_literal_f64(&t.sql) {
            Some(x) => format!("{x:?}"),
            None => format!("pg_num_float8({})", t.sql),
        }),
        _ => None,
    }
}

/// The value of a numeric literal as the translator emits it (`'1.5'`), when finite as a double.
fn numeric_literal_f64(sql: &str) -> Option<f64> {
    let inner = sql.strip_prefix('\'')?.strip_suffix('\'')?;
    let n = shoal_common::numeric::Numeric::parse(inner).ok()?;
    let x = n.to_f64();
    x.is_finite().then_some(x)
}

/// A string literal of unknown type given type `to`. Simple cases are folded
/// at plan time (PostgreSQL also rejects a bad literal before running anything).
pub fn literal(s: &str, to: &DataType) -> Result<Typed> {
    let t = |sql: String| Ok(Typed::new(sql, to.clone()));
    let invalid = |type_name: &str| {
        Error::new(SqlState::INVALID_TEXT_REPRESENTATION, format!("invalid input syntax for type {type_name}: \"{s}\""))
    };
    match to {
        DataType::Int2 | DataType::Int4 | DataType::Int8 | DataType::Oid => {
            let n: i64 = s.trim().parse().map_err(|_| invalid(&to.sql_name()))?;
            let fits = match to {
                DataType::Int2 => i16::try_from(n).is_ok(),
                DataType::Int4 => i32::try_from(n).is_ok(),
                _ => true,
            };
            if !fits {
                return Err(Error::new(
                    SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
                    format!("value \"{s}\" is out of range for type {to}"),
                ));
            }
            t(n.to_string())
        }
        DataType::Float4 | DataType::Float8 => {
            let x: f64 = s.trim().parse().map_err(|_| invalid(&to.sql_name()))?;
            if !x.is_finite() {
                return t(format!("pg_cast({}, 'text', {})", quote_str(s), quote_str(&cast_name(to))));
            }
            t(format!("{x:?}"))
        }
        // Exact: the literal's numeric text, rounded and checked for numeric(p, s).
        DataType::Numeric(typmod) => match shoal_common::convert::parse_numeric(s, *typmod) {
            Ok(n) => t(quote_str(&n.to_string())),
            Err(e) if e.code == SqlState::INVALID_TEXT_REPRESENTATION => Err(invalid("numeric")),
            Err(e) => Err(e),
        },
        DataType::Bool => match s.trim().to_ascii_lowercase().as_str() {
            "t" | "true" | "y" | "yes" | "on" | "1" => t("1".into()),
            "f" | "false" | "n" | "no" | "off" | "0" => t("0".into()),
            _ => Err(invalid("boolean")),
        },
        DataType::Text | DataType::Name | DataType::Varchar(None) | DataType::Unknown => t(quote_str(s)),
        // Array literals are validated and normalised at plan time (stored as literal text).
        DataType::Array(_) => match shoal_common::convert::text_to_storage(to, s)? {
            shoal_common::Value::Text(norm) => t(quote_str(&norm)),
            _ => Err(invalid(&to.sql_name())),
        },
        // The catalog's one-byte `"char"`: the first character ('' stays '').
        DataType::CatalogChar => t(quote_str(&s.chars().take(1).collect::<String>())),
        DataType::Varchar(Some(_)) => t(quote_str(s)),
        // Blank-padded like a stored value, so `c = 'ab'` matches `'ab  '`; a
        // longer literal is left alone for the assignment check to refuse.
        DataType::Char(n) => {
            if *n > 10_485_760 {
                return Err(Error::new(
                    SqlState::INVALID_PARAMETER_VALUE,
                    "length for type char cannot exceed 10485760",
                ));
            }
            let len = s.chars().count();
            t(quote_str(&format!("{s}{}", " ".repeat((*n as usize).saturating_sub(len)))))
        }
        _ => t(format!("pg_cast({}, 'text', {})", quote_str(s), quote_str(&cast_name(to)))),
    }
}
