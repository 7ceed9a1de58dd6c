//! Items the derive macros' generated code calls. Not part of the API: names
//! and signatures may change with the macros.

pub use crate::model::{RelationField, SqlCache, Values};
pub use crate::relation::{RelationSpec, Through};
pub use crate::value::{AutoKey, ToValue};

use crate::error::{Error, Result};
use crate::model::Model;
use crate::value::{SqlType, Value};

/// The next column value of a positional decode, as `T`.
pub fn decode_next<T: SqlType>(values: &mut Values<'_>, table: &str, column: &str) -> Result<T> {
    match values.next_as::<T>() {
        Some(Ok(v)) => Ok(v),
        Some(Err(e)) => Err(e.in_column(table, column)),
        None => Err(Error::Decode {
            column: format!("{table}.{column}"),
            message: "the row has fewer columns than the model".into(),
        }),
    }
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
