//! `#[derive(FromRow)]`: plain structs that receive query results.
//!
//! Two decoders are emitted: `FromRow` reads columns *by name* (raw SQL
//! results, where column order is the author's business) and `FromTuple`
//! builds the struct from a typed tuple, which is what lets
//! `.select((a, b)).into_struct::<T>()` check at compile time that the
//! projection's types are exactly the struct's field types.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput, Fields};

use crate::attrs::FieldAttrs;

pub fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(&input.generics, "FromRow cannot be derived for a generic struct"));
    }
    let fields = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => &named.named,
            _ => return Err(syn::Error::new_spanned(&input.ident, "FromRow needs named fields")),
        },
        _ => return Err(syn::Error::new_spanned(&input.ident, "FromRow must be derived for a struct")),
    };
    let name = &input.ident;
    let mut idents = Vec::new();
    let mut columns = Vec::new();
    let mut types = Vec::new();
    for field in fields {
        let ident = field.ident.clone().expect("named field");
        let attrs = FieldAttrs::parse(&field.attrs)?;
        if attrs.relation.is_some() || attrs.primary_key || attrs.skip {
            return Err(syn::Error::new_spanned(&ident, "FromRow fields accept only #[model(column = \"…\")]"));
        }
        let raw = ident.to_string();
        columns.push(attrs.column.unwrap_or_else(|| raw.strip_prefix("r#").unwrap_or(&raw).to_string()));
        types.push(field.ty.clone());
        idents.push(ident);
    }
    let idx = (0..idents.len()).map(syn::Index::from);
    let tuple_ty = if types.len() == 1 {
        let t = &types[0];
        quote!((#t,))
    } else {
        quote!((#(#types),*))
    };
    Ok(quote! {
        impl ::shoal_orm::FromRow for #name {
            fn from_row(row: &mut ::shoal_orm::Row) -> ::shoal_orm::Result<Self> {
                ::core::result::Result::Ok(#name { #(#idents: row.take(#columns)?,)* })
            }
        }
        impl ::shoal_orm::FromTuple for #name {
            type Tuple = #tuple_ty;
            fn from_tuple(t: Self::Tuple) -> Self {
                #name { #(#idents: t.#idx,)* }
            }
        }
    })
}
