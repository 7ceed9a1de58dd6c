//! Items the derive macros' generated code calls. Not part of the API: names
//! and signatures may change with the macros.

pub use crate::model::{RelationField, SqlCache, Values};
pub use crate::relation::{RelationSpec, Through};
pub use crate::value::{AutoKey, ToValue};

use crate::error::Result;
use crate::model::Model;
use crate::value::{SqlType, Value};

/// The next column value of a positional decode, as `T`.
#[inline]
pub fn decode_next<T: SqlType>(values: &mut Values<'_>, table: &str, column: &str) -> Result<T> {
    values.next_as::<T>().map_err(|e| e.in_column(table, column))
}

/// One value as `T`.
pub fn decode_value<T: SqlType>(value: Value, table: &str, column: &str) -> Result<T> {
    T::from_value(value).map_err(|e| e.in_column(table, column))
}

/// Compiles only when a foreign key and the key it matches are of the same
/// class (any integer matches any integer, text matches text, …).
pub fn assert_key_compatible<A: SqlType, B: SqlType<KeyClass = A::KeyClass>>(_: &A, _: &B) {}

/// Compiles only when `F` can hold `M`'s single-column primary key.
pub fn assert_key_matches<M: Model, F: SqlType>(_: &F)
where
    M::Key: SqlType<KeyClass = F::KeyClass>,
{
}

/// The only column of a single-column primary key; a composite key is a
/// compile-time error in the constant that asks.
pub const fn single_key_column(pk: &'static [&'static str]) -> &'static str {
    assert!(pk.len() == 1, "relations to a model need a single-column primary key (or `references = field`)");
    pk[0]
}

/// Compiles only for integer types (`auto_increment` keys).
pub const fn assert_auto_key<T: AutoKey>() {}

/// A field that can be a `NUMERIC(precision, scale)` column: a decimal, or
/// an `Option` of one.
#[diagnostic::on_unimplemented(
    message = "`precision`/`scale` need a `rust_decimal::Decimal` field (or `Option` of one), not `{Self}`",
    note = "enable shoal-orm's `decimal` feature for `Decimal` columns"
)]
pub trait NumericField: SqlType {
    /// The value with exactly `scale` fractional digits (how PostgreSQL,
    /// MySQL and Shoal return a `NUMERIC(p, scale)`; SQLite drops zeros).
    fn with_scale(self, scale: u32) -> Self;
}

#[cfg(feature = "decimal")]
impl NumericField for rust_decimal::Decimal {
    fn with_scale(mut self, scale: u32) -> Self {
        self.rescale(scale);
        self
    }
}

#[cfg(feature = "decimal")]
impl NumericField for Option<rust_decimal::Decimal> {
    fn with_scale(self, scale: u32) -> Self {
        self.map(|d| d.with_scale(scale))
    }
}

/// Compiles only for decimal fields (`precision`/`scale`).
pub const fn assert_numeric<T: NumericField>() {}

/// [`decode_next`] for a `NUMERIC(p, scale)` column.
pub fn decode_numeric<T: NumericField>(values: &mut Values<'_>, table: &str, column: &str, scale: u32) -> Result<T> {
    decode_next::<T>(values, table, column).map(|v| v.with_scale(scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_short_of_columns_names_the_missing_one() {
        let mut values = Values::new(vec![Value::Int(7)]);
        assert_eq!(decode_next::<i64>(&mut values, "users", "id").unwrap(), 7);
        match decode_next::<String>(&mut values, "users", "name") {
            Err(crate::Error::Decode { column, message }) => {
                assert_eq!(column, "users.name");
                assert!(message.contains("fewer columns"), "{message}");
            }
            other => panic!("expected a decode error, got {other:?}"),
        }
    }
}
