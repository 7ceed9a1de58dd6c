//! # shoal-orm-derive — the code generators behind `shoal-orm`
//!
//! Three macros, each the only way to produce its kind of code, so the
//! runtime crate never has to trust hand-written metadata:
//!
//! * `#[derive(Model)]` (module `model`) reads a struct and its `#[model(…)]`
//!   attributes and emits the `shoal_orm::Model` implementation: a constant
//!   `TableDef` (table, columns, keys, indexes, foreign keys, distribution),
//!   one typed `Column<Model, T>` constant per field (`User::AGE`), one
//!   `Relation<Parent, Child>` constant per relation field (`User::ORDERS`),
//!   and positional and by-name row decoders.
//! * `#[derive(FromRow)]` (module `from_row`) for plain structs that receive
//!   projections or raw-SQL results.
//! * `sql!("… {expr} …")` (module `sql_macro`) splits a string literal at its
//!   `{…}` holes at compile time; every hole becomes a bound parameter, never
//!   text. It is the only door to raw SQL in `shoal-orm`.
//!
//! Everything the macros refer to lives under `::shoal_orm`, so the user
//! crate needs only `shoal-orm` as a dependency. Mistakes in attributes are
//! `compile_error!`s pointing at the offending token; mistakes that need the
//! *other* model's definition (a foreign key naming a field that does not
//! exist, key types that cannot match) surface as ordinary type errors,
//! because the generated code names those fields through their typed
//! constants.

mod attrs;
mod from_row;
mod model;
mod sql_macro;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

/// Derives `shoal_orm::Model` for a struct with named fields.
///
/// See the `shoal_orm` crate documentation for the attribute reference.
#[proc_macro_derive(Model, attributes(model))]
pub fn derive_model(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    model::expand(&input).unwrap_or_else(|e| e.to_compile_error()).into()
}

/// Derives `shoal_orm::FromRow` (decode by column name) and
/// `shoal_orm::FromTuple` (typed projections) for a struct with named fields.
#[proc_macro_derive(FromRow, attributes(model))]
pub fn derive_from_row(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    from_row::expand(&input).unwrap_or_else(|e| e.to_compile_error()).into()
}

/// Raw SQL with every `{expression}` bound as a parameter.
///
/// `sql!("SELECT id FROM users WHERE name = {name}")` produces a
/// `shoal_orm::RawSql`; `{{` and `}}` are literal braces.
#[proc_macro]
pub fn sql(input: TokenStream) -> TokenStream {
    sql_macro::expand(input.into()).unwrap_or_else(|e| e.to_compile_error()).into()
}
