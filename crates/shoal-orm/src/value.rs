//! Values and the Rust types that map to columns.
//!
//! Every value crossing the ORM is a [`Value`]: six variants, the common
//! denominator of SQLite, PostgreSQL and MySQL. Each backend converts its
//! driver's values to and from these at its edge, so the query builder,
//! the eager loader and the decoders never see a driver type.
//!
//! A Rust type is usable as a column when it implements [`SqlType`]:
//! `bool`, `i16`, `i32`, `i64`, `f32`, `f64`, `String`, `Vec<u8>`, and
//! `Option<T>` of those for NULL. [`Bind<T>`] says which Rust values may be
//! compared with a column of type `T` (`&str` with a `String` column, `5`
//! with an `Option<i32>` column), so comparisons are checked at compile time.

use std::fmt;
use std::hash::{Hash, Hasher};

use crate::error::{Error, Result};

/// A value as the ORM sees it, whatever the backend.
#[derive(Clone, Debug)]
pub enum Value {
    Null,
    Bool(bool),
    /// Every integer width; narrowed (with a range check) when decoded.
    Int(i64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
    /// A calendar date: days since 1970-01-01.
    Date(i32),
    /// A date and time without a zone: microseconds since 1970-01-01 00:00:00.
    Timestamp(i64),
    /// An instant: microseconds since 1970-01-01 00:00:00 UTC.
    TimestampTz(i64),
    /// An exact decimal number as canonical text (`-12.50`).
    Decimal(String),
    Uuid([u8; 16]),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The variant's name, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Bool(_) => "boolean",
            Value::Int(_) => "integer",
            Value::Float(_) => "float",
            Value::Text(_) => "text",
            Value::Bytes(_) => "bytes",
            Value::Date(_) => "date",
            Value::Timestamp(_) => "timestamp",
            Value::TimestampTz(_) => "timestamptz",
            Value::Decimal(_) => "decimal",
            Value::Uuid(_) => "uuid",
        }
    }
}

/// Keys are compared by value across drivers: `Bool(true)` and `Int(1)` are
/// different keys, floats compare by bit pattern (keys are rarely floats,
/// and a total order is needed to group by them).
impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits(),
            (Value::Text(a), Value::Text(b)) => a == b,
            (Value::Bytes(a), Value::Bytes(b)) => a == b,
            (Value::Date(a), Value::Date(b)) => a == b,
            (Value::Timestamp(a), Value::Timestamp(b)) | (Value::TimestampTz(a), Value::TimestampTz(b)) => a == b,
            (Value::Decimal(a), Value::Decimal(b)) => a == b,
            (Value::Uuid(a), Value::Uuid(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Value {}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            Value::Null => {}
            Value::Bool(b) => b.hash(state),
            Value::Int(i) => i.hash(state),
            Value::Float(f) => f.to_bits().hash(state),
            Value::Text(s) => s.hash(state),
            Value::Bytes(b) => b.hash(state),
            Value::Date(d) => d.hash(state),
            Value::Timestamp(t) | Value::TimestampTz(t) => t.hash(state),
            Value::Decimal(d) => d.hash(state),
            Value::Uuid(u) => u.hash(state),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Text(s) => write!(f, "{s:?}"),
            Value::Bytes(b) => write!(f, "<{} bytes>", b.len()),
            Value::Date(d) => f.write_str(&crate::civil::format_date(*d)),
            Value::Timestamp(t) => f.write_str(&crate::civil::format_timestamp(*t)),
            Value::TimestampTz(t) => f.write_str(&crate::civil::format_timestamptz(*t)),
            Value::Decimal(d) => f.write_str(d),
            Value::Uuid(u) => f.write_str(&crate::civil::format_uuid(u)),
        }
    }
}

/// A value borrowed rather than owned, in either direction: read from the
/// driver's current row (decoded into a field without an intermediate
/// [`Value`]), or taken from a model's field to be bound (a bulk insert
/// binds text and bytes without copying them; see [`crate::backend::Binder`]).
#[derive(Clone, Debug)]
pub enum ValueRef<'a> {
    Null,
    Int(i64),
    Float(f64),
    /// Text as stored (checked for UTF-8 when decoded).
    Text(&'a [u8]),
    Blob(&'a [u8]),
    /// A value the driver had to build (types without a borrowed form).
    Owned(Value),
}

impl ValueRef<'_> {
    /// The owned value (text that is not UTF-8 becomes bytes).
    pub fn to_value(self) -> Value {
        match self {
            ValueRef::Null => Value::Null,
            ValueRef::Int(i) => Value::Int(i),
            ValueRef::Float(f) => Value::Float(f),
            ValueRef::Text(t) => match std::str::from_utf8(t) {
                Ok(s) => Value::Text(s.to_string()),
                Err(_) => Value::Bytes(t.to_vec()),
            },
            ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
            ValueRef::Owned(v) => v,
        }
    }
}

/// The portable column types; [`crate::Dialect::column_type`] spells them
/// for each backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ColumnType {
    Bool,
    SmallInt,
    Int,
    BigInt,
    Real,
    Double,
    Text,
    Bytes,
    Date,
    /// Date and time without a zone.
    Timestamp,
    /// An instant (stored in UTC).
    TimestampTz,
    /// Exact decimal (`NUMERIC`).
    Decimal,
    Uuid,
}

/// Marker classes for relation keys: a foreign key and the key it points
/// at must be of the same class (any integer width matches any other).
pub mod key_class {
    pub struct Integer;
    pub struct Text;
    pub struct Bytes;
    pub struct Bool;
    pub struct Float;
    pub struct Date;
    pub struct Timestamp;
    pub struct Decimal;
    pub struct Uuid;
}

/// A Rust type that maps to a column.
pub trait SqlType: Sized + Send + Sync + 'static {
    /// The column type migrations create for it.
    const TYPE: ColumnType;
    /// Whether the column accepts NULL (`Option<T>`).
    const NULLABLE: bool = false;
    /// Which keys it can be matched with in a relation.
    type KeyClass;
    /// The type with `Option` removed (what `min`/`max` return inside `Option`).
    type Base: SqlType;
    fn to_value(&self) -> Value;
    fn from_value(value: Value) -> Result<Self>;
    /// Decodes a value borrowed from the driver's row; the common types
    /// override it to skip building a [`Value`].
    #[doc(hidden)]
    fn from_ref(value: ValueRef<'_>) -> Result<Self> {
        Self::from_value(value.to_value())
    }
    /// The value to bind, borrowed where the type allows (text, bytes),
    /// so binding does not copy it.
    #[doc(hidden)]
    fn to_value_ref(&self) -> ValueRef<'_> {
        ValueRef::Owned(self.to_value())
    }
}

fn decimal_to_f64(d: &str) -> Result<f64> {
    d.parse::<f64>().map_err(|e| Error::Decode { column: String::new(), message: format!("decimal {d}: {e}") })
}

pub(crate) fn mismatch(expected: &'static str, found: &Value) -> Error {
    Error::Decode { column: String::new(), message: format!("expected {expected}, found {}", found.kind()) }
}

macro_rules! int_type {
    ($t:ty, $ct:expr, $name:literal) => {
        impl SqlType for $t {
            const TYPE: ColumnType = $ct;
            type KeyClass = key_class::Integer;
            type Base = $t;
            fn to_value(&self) -> Value {
                Value::Int(i64::from(*self))
            }
            fn from_value(value: Value) -> Result<Self> {
                match value {
                    Value::Int(i) => <$t>::try_from(i).map_err(|_| Error::Decode {
                        column: String::new(),
                        message: format!("{i} is out of range for {}", $name),
                    }),
                    Value::Bool(b) => Ok(<$t>::from(b)),
                    // PostgreSQL's SUM of bigints and MySQL's of ints are NUMERIC.
                    Value::Decimal(d) => match d.parse::<i64>() {
                        Ok(i) => <$t>::from_value(Value::Int(i)),
                        Err(_) => Err(Error::Decode {
                            column: String::new(),
                            message: format!("{d} is not an integer in range for {}", $name),
                        }),
                    },
                    other => Err(mismatch($name, &other)),
                }
            }
            fn from_ref(value: ValueRef<'_>) -> Result<Self> {
                match value {
                    // The common case, without building (and dropping) a Value.
                    ValueRef::Int(i) => <$t>::try_from(i).or_else(|_| Self::from_value(Value::Int(i))),
                    other => Self::from_value(other.to_value()),
                }
            }
            fn to_value_ref(&self) -> ValueRef<'_> {
                ValueRef::Int(i64::from(*self))
            }
        }
    };
}

int_type!(i16, ColumnType::SmallInt, "i16");
int_type!(i32, ColumnType::Int, "i32");
int_type!(i64, ColumnType::BigInt, "i64");

impl SqlType for bool {
    const TYPE: ColumnType = ColumnType::Bool;
    type KeyClass = key_class::Bool;
    type Base = bool;
    fn to_value(&self) -> Value {
        Value::Bool(*self)
    }
    fn from_value(value: Value) -> Result<Self> {
        match value {
            Value::Bool(b) => Ok(b),
            // SQLite and MySQL store booleans as integers.
            Value::Int(0) => Ok(false),
            Value::Int(1) => Ok(true),
            other => Err(mismatch("bool", &other)),
        }
    }
}

impl SqlType for f64 {
    const TYPE: ColumnType = ColumnType::Double;
    type KeyClass = key_class::Float;
    type Base = f64;
    fn to_value(&self) -> Value {
        Value::Float(*self)
    }
    fn from_value(value: Value) -> Result<Self> {
        match value {
            Value::Float(f) => Ok(f),
            // SQLite returns integral REALs as integers after some arithmetic.
            Value::Int(i) => Ok(i as f64),
            // AVG and SUM return NUMERIC on PostgreSQL and MySQL.
            Value::Decimal(d) => decimal_to_f64(&d),
            other => Err(mismatch("f64", &other)),
        }
    }
    fn from_ref(value: ValueRef<'_>) -> Result<Self> {
        match value {
            ValueRef::Float(f) => Ok(f),
            ValueRef::Int(i) => Ok(i as f64),
            other => Self::from_value(other.to_value()),
        }
    }
}

impl SqlType for f32 {
    const TYPE: ColumnType = ColumnType::Real;
    type KeyClass = key_class::Float;
    type Base = f32;
    fn to_value(&self) -> Value {
        Value::Float(f64::from(*self))
    }
    fn from_value(value: Value) -> Result<Self> {
        match value {
            Value::Float(f) => Ok(f as f32),
            Value::Int(i) => Ok(i as f32),
            Value::Decimal(d) => decimal_to_f64(&d).map(|f| f as f32),
            other => Err(mismatch("f32", &other)),
        }
    }
}

impl SqlType for String {
    const TYPE: ColumnType = ColumnType::Text;
    type KeyClass = key_class::Text;
    type Base = String;
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
    fn from_value(value: Value) -> Result<Self> {
        match value {
            Value::Text(s) => Ok(s),
            Value::Bytes(b) => String::from_utf8(b).map_err(|_| Error::Decode {
                column: String::new(),
                message: "text column holds bytes that are not UTF-8".into(),
            }),
            other => Err(mismatch("String", &other)),
        }
    }
    fn from_ref(value: ValueRef<'_>) -> Result<Self> {
        match value {
            ValueRef::Text(t) => match std::str::from_utf8(t) {
                Ok(s) => Ok(s.to_owned()),
                Err(_) => Err(Error::Decode {
                    column: String::new(),
                    message: "text column holds bytes that are not UTF-8".into(),
                }),
            },
            other => Self::from_value(other.to_value()),
        }
    }
    fn to_value_ref(&self) -> ValueRef<'_> {
        ValueRef::Text(self.as_bytes())
    }
}

impl SqlType for Vec<u8> {
    const TYPE: ColumnType = ColumnType::Bytes;
    type KeyClass = key_class::Bytes;
    type Base = Vec<u8>;
    fn to_value(&self) -> Value {
        Value::Bytes(self.clone())
    }
    fn from_value(value: Value) -> Result<Self> {
        match value {
            Value::Bytes(b) => Ok(b),
            Value::Text(s) => Ok(s.into_bytes()),
            other => Err(mismatch("Vec<u8>", &other)),
        }
    }
    fn to_value_ref(&self) -> ValueRef<'_> {
        ValueRef::Blob(self)
    }
}

impl<T: SqlType> SqlType for Option<T> {
    const TYPE: ColumnType = T::TYPE;
    const NULLABLE: bool = true;
    type KeyClass = T::KeyClass;
    type Base = T::Base;
    fn to_value(&self) -> Value {
        match self {
            Some(v) => v.to_value(),
            None => Value::Null,
        }
    }
    fn from_value(value: Value) -> Result<Self> {
        match value {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
    fn from_ref(value: ValueRef<'_>) -> Result<Self> {
        match value {
            ValueRef::Null => Ok(None),
            v => T::from_ref(v).map(Some),
        }
    }
    fn to_value_ref(&self) -> ValueRef<'_> {
        match self {
            Some(v) => v.to_value_ref(),
            None => ValueRef::Null,
        }
    }
}

/// A Rust value that may be compared with, or stored into, a column of type
/// `T`. Implemented for `T` itself, `&T`, `&str` for text columns, and a
/// plain value for an `Option<T>` column.
pub trait Bind<T> {
    fn into_value(self) -> Value;
}

impl<T: SqlType> Bind<T> for T {
    fn into_value(self) -> Value {
        self.to_value()
    }
}

impl<T: SqlType> Bind<T> for &T {
    fn into_value(self) -> Value {
        self.to_value()
    }
}

impl<T: SqlType + Bind<T>> Bind<Option<T>> for T {
    fn into_value(self) -> Value {
        self.to_value()
    }
}

impl Bind<String> for &str {
    fn into_value(self) -> Value {
        Value::Text(self.to_string())
    }
}

impl Bind<Option<String>> for &str {
    fn into_value(self) -> Value {
        Value::Text(self.to_string())
    }
}

impl Bind<Vec<u8>> for &[u8] {
    fn into_value(self) -> Value {
        Value::Bytes(self.to_vec())
    }
}

/// Anything the `sql!` macro can bind: every [`SqlType`], `str`, `[u8]`.
pub trait ToValue {
    fn to_value(&self) -> Value;
}

impl<T: SqlType> ToValue for T {
    fn to_value(&self) -> Value {
        SqlType::to_value(self)
    }
}

impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_string())
    }
}

impl ToValue for [u8] {
    fn to_value(&self) -> Value {
        Value::Bytes(self.to_vec())
    }
}

impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}

/// Integer types an `auto_increment` key may have; zero means "not yet
/// assigned, let the database choose".
pub trait AutoKey: SqlType {
    fn is_unset(&self) -> bool;
}

impl AutoKey for i32 {
    fn is_unset(&self) -> bool {
        *self == 0
    }
}

impl AutoKey for i64 {
    fn is_unset(&self) -> bool {
        *self == 0
    }
}

/// Numeric types that can be summed: integers sum to `i64`, floats to `f64`.
pub trait Summable: SqlType {
    type Sum: SqlType;
}

impl Summable for i16 {
    type Sum = i64;
}
impl Summable for i32 {
    type Sum = i64;
}
impl Summable for i64 {
    type Sum = i64;
}
impl Summable for f32 {
    type Sum = f64;
}
impl Summable for f64 {
    type Sum = f64;
}
impl<T: Summable> Summable for Option<T> {
    type Sum = T::Sum;
}

/// Text columns, which accept `LIKE`.
pub trait TextType: SqlType {}
impl TextType for String {}
impl TextType for Option<String> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrowing_is_range_checked() {
        assert_eq!(i32::from_value(Value::Int(7)).unwrap(), 7);
        let err = i16::from_value(Value::Int(1 << 20)).unwrap_err();
        assert!(err.to_string().contains("out of range"), "{err}");
    }

    #[test]
    fn option_maps_null() {
        assert_eq!(Option::<String>::from_value(Value::Null).unwrap(), None);
        assert_eq!(Option::<i64>::from_value(Value::Int(3)).unwrap(), Some(3));
        const { assert!(Option::<i64>::NULLABLE && !i64::NULLABLE) };
    }

    #[test]
    fn integer_booleans_decode_strictly() {
        assert!(bool::from_value(Value::Int(1)).unwrap());
        assert!(bool::from_value(Value::Int(2)).is_err());
    }
}
