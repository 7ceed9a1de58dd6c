//! `#[derive(Model)]`: from a struct to a `Model` implementation, typed
//! column constants and relation constants.
//!
//! ```text
//!   struct User { #[model(primary_key)] id: i64, name: String, orders: HasMany<Order> }
//!        │
//!        ├─ impl Model for User   TABLE (TableDef), values(), decode(), keys
//!        ├─ impl FromRow for User decode by column name (raw SQL)
//!        └─ impl User             ID: Column<User, i64>, NAME: Column<User, String>,
//!                                 ORDERS: Relation<User, Order>
//! ```
//!
//! The metadata is a `const`, so it costs nothing at run time and other
//! models' derives can read it in their own constants (a foreign key names
//! `<User as Model>::TABLE_NAME`). Constants that other constants read are
//! plain literals (`TABLE_NAME`, `PRIMARY_KEY`), never `TABLE` itself, so
//! two models that reference each other never form a constant cycle.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, GenericArgument, Ident, PathArguments, Type};

use crate::attrs::{FieldAttrs, RelAttrs, RelKind, StructAttrs};

/// Identifiers longer than this are shortened with a hash: PostgreSQL
/// truncates names at 63 bytes and MySQL refuses names over 64.
const MAX_IDENT_LEN: usize = 60;

struct ColumnField {
    ident: Ident,
    ty: Type,
    column: String,
    attrs: FieldAttrs,
}

struct RelationField {
    ident: Ident,
    target: Type,
    rel: RelAttrs,
}

pub fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(&input.generics, "a Model cannot be generic"));
    }
    let fields = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => &named.named,
            _ => return Err(syn::Error::new_spanned(&input.ident, "a Model needs named fields")),
        },
        _ => return Err(syn::Error::new_spanned(&input.ident, "a Model must be a struct")),
    };
    let sattrs = StructAttrs::parse(&input.attrs)?;
    let name = &input.ident;
    let table = sattrs.table.clone().unwrap_or_else(|| snake_case(&name.to_string()));

    let mut columns: Vec<ColumnField> = Vec::new();
    let mut relations: Vec<RelationField> = Vec::new();
    let mut skipped: Vec<Ident> = Vec::new();
    for field in fields {
        let ident = field.ident.clone().expect("named field");
        let attrs = FieldAttrs::parse(&field.attrs)?;
        if let Some(rel) = attrs.relation {
            let target = relation_target(&field.ty, rel.kind)?;
            relations.push(RelationField { ident, target, rel });
        } else if attrs.skip {
            skipped.push(ident);
        } else {
            let column = attrs.column.clone().unwrap_or_else(|| unraw(&ident));
            columns.push(ColumnField { ident, ty: field.ty.clone(), column, attrs });
        }
    }
    if columns.is_empty() {
        return Err(syn::Error::new_spanned(name, "a Model needs at least one column"));
    }
    let pk: Vec<&ColumnField> = columns.iter().filter(|c| c.attrs.primary_key).collect();
    if pk.is_empty() {
        return Err(syn::Error::new_spanned(name, "mark the primary key with #[model(primary_key)]"));
    }
    if columns.iter().any(|c| c.attrs.auto_increment) && pk.len() != 1 {
        return Err(syn::Error::new_spanned(name, "auto_increment needs a single-column primary key"));
    }
    let mut numeric_of = Vec::with_capacity(columns.len());
    for c in &columns {
        numeric_of.push(numeric(&c.attrs)?);
    }
    for (i, c) in columns.iter().enumerate() {
        if columns[..i].iter().any(|o| o.column == c.column) {
            return Err(syn::Error::new_spanned(&c.ident, format!("two fields map to column \"{}\"", c.column)));
        }
    }
    let find = |ident: &Ident| -> syn::Result<&ColumnField> {
        columns
            .iter()
            .find(|c| c.ident == *ident)
            .ok_or_else(|| syn::Error::new_spanned(ident, format!("`{ident}` is not a column field of {name}")))
    };

    // ---- table metadata ----
    let column_defs = columns.iter().zip(&numeric_of).map(|(c, numeric)| {
        let (col, field, ty) = (&c.column, unraw(&c.ident), &c.ty);
        let numeric = match numeric {
            Some((p, s)) => quote!(::core::option::Option::Some((#p, #s))),
            None => quote!(::core::option::Option::None),
        };
        let (pk, auto) = (c.attrs.primary_key, c.attrs.auto_increment);
        let default = opt_str(c.attrs.default.as_deref());
        let max_length = match c.attrs.max_length {
            Some(n) => quote!(::core::option::Option::Some(#n)),
            None => quote!(::core::option::Option::None),
        };
        quote! {
            ::shoal_orm::ColumnDef {
                name: #col,
                field: #field,
                ty: <#ty as ::shoal_orm::SqlType>::TYPE,
                nullable: <#ty as ::shoal_orm::SqlType>::NULLABLE,
                primary_key: #pk,
                auto_increment: #auto,
                default: #default,
                max_length: #max_length,
                numeric: #numeric,
            }
        }
    });
    let pk_columns: Vec<&String> = pk.iter().map(|c| &c.column).collect();

    let mut index_defs = Vec::new();
    for c in &columns {
        if c.attrs.unique || c.attrs.index {
            let unique = c.attrs.unique;
            let idx_name = index_name(&table, &[&c.column], unique);
            let col = &c.column;
            index_defs.push(quote!(::shoal_orm::IndexDef { name: #idx_name, columns: &[#col], unique: #unique }));
        }
    }
    for (fields, unique, explicit) in &sattrs.indexes {
        let cols: Vec<&String> = fields.iter().map(|f| find(f).map(|c| &c.column)).collect::<syn::Result<_>>()?;
        let idx_name = explicit.clone().unwrap_or_else(|| index_name(&table, &cols, *unique));
        index_defs.push(quote!(::shoal_orm::IndexDef { name: #idx_name, columns: &[#(#cols),*], unique: #unique }));
    }
    let check_defs = sattrs.checks.iter().map(|(n, s)| quote!(::shoal_orm::CheckDef { name: #n, sql: #s }));
    let distribution = if sattrs.reference {
        quote!(::shoal_orm::Distribution::Reference)
    } else if let Some(key) = &sattrs.shard_key {
        let col = &find(key)?.column;
        let shards = match sattrs.shards {
            Some(n) => quote!(::core::option::Option::Some(#n)),
            None => quote!(::core::option::Option::None),
        };
        quote!(::shoal_orm::Distribution::Sharded { column: #col, shards: #shards })
    } else {
        quote!(::shoal_orm::Distribution::Default)
    };

    // ---- values, keys, decoding ----
    let value_exprs: Vec<TokenStream> = columns
        .iter()
        .map(|c| {
            let ident = &c.ident;
            quote!(::shoal_orm::SqlType::to_value(&self.#ident))
        })
        .collect();
    let bind_exprs = columns.iter().map(|c| {
        let ident = &c.ident;
        quote!(to.bind(::shoal_orm::SqlType::to_value_ref(&self.#ident))?;)
    });
    let (key_ty, key_values, push_key) = if pk.len() == 1 {
        let ty = &pk[0].ty;
        (
            quote!(#ty),
            quote!(::std::vec![::shoal_orm::SqlType::to_value(&key)]),
            quote!(to.push(::shoal_orm::SqlType::to_value(&key));),
        )
    } else {
        let tys = pk.iter().map(|c| &c.ty);
        let idx: Vec<syn::Index> = (0..pk.len()).map(syn::Index::from).collect();
        (
            quote!((#(#tys),*)),
            quote!(::std::vec![#(::shoal_orm::SqlType::to_value(&key.#idx)),*]),
            quote!(#(to.push(::shoal_orm::SqlType::to_value(&key.#idx));)*),
        )
    };
    let pk_idents: Vec<&Ident> = pk.iter().map(|c| &c.ident).collect();
    let first_pk = pk_idents[0];
    // A NUMERIC(p, s) field reads back with the column's scale (SQLite
    // returns 12.50 as 12.5), and compiles only for a decimal type.
    let decode_fields = columns.iter().zip(&numeric_of).map(|(c, numeric)| {
        let (ident, col) = (&c.ident, &c.column);
        match numeric {
            Some((_, s)) => quote!(#ident: ::shoal_orm::__private::decode_numeric(values, #table, #col, #s)?),
            None => quote!(#ident: ::shoal_orm::__private::decode_next(values, #table, #col)?),
        }
    });
    let named_fields = columns.iter().zip(&numeric_of).map(|(c, numeric)| {
        let (ident, col) = (&c.ident, &c.column);
        match numeric {
            Some((_, s)) => quote!(#ident: ::shoal_orm::__private::NumericField::with_scale(row.take(#col)?, #s)),
            None => quote!(#ident: row.take(#col)?),
        }
    });
    let numeric_checks = columns.iter().zip(&numeric_of).filter(|(_, n)| n.is_some()).map(|(c, _)| {
        let ty = &c.ty;
        quote_spanned!(ty.span()=> const _: () = ::shoal_orm::__private::assert_numeric::<#ty>();)
    });
    let defaulted: Vec<&Ident> = relations.iter().map(|r| &r.ident).chain(skipped.iter()).collect();
    let auto = columns.iter().find(|c| c.attrs.auto_increment);
    let (auto_unset, auto_set, auto_check) = match auto {
        Some(c) => {
            let (ident, ty, col) = (&c.ident, &c.ty, &c.column);
            (
                quote!(::shoal_orm::__private::AutoKey::is_unset(&self.#ident)),
                quote! {
                    self.#ident = ::shoal_orm::__private::decode_value(value, #table, #col)?;
                    ::core::result::Result::Ok(())
                },
                quote!(const _: () = ::shoal_orm::__private::assert_auto_key::<#ty>();),
            )
        }
        None => (
            quote!(false),
            quote! {
                let _ = value;
                ::core::result::Result::Ok(())
            },
            quote!(),
        ),
    };

    // ---- typed column constants ----
    // A NUMERIC(p, s) column carries p and s, so `update_where(…).set(…)`
    // rounds and checks its value as a model write does.
    let column_consts = columns.iter().zip(&numeric_of).map(|(c, numeric)| {
        let const_name = format_ident!("{}", unraw(&c.ident).to_uppercase(), span = c.ident.span());
        let (ty, col) = (&c.ty, &c.column);
        let doc = format!("Column `{col}` of `{table}`.");
        let numeric = numeric.map(|(p, s)| quote!(.__numeric(#p, #s)));
        quote! {
            #[doc = #doc]
            pub const #const_name: ::shoal_orm::Column<#name, #ty> = ::shoal_orm::Column::__new(#table, #col)#numeric;
        }
    });

    // ---- relations ----
    let mut relation_consts = Vec::new();
    let mut fk_defs = Vec::new();
    for r in &relations {
        let (consts, fk) = relation(name, &table, r, &pk, &columns)?;
        relation_consts.push(consts);
        fk_defs.extend(fk);
    }

    Ok(quote! {
        impl ::shoal_orm::Model for #name {
            const TABLE_NAME: &'static str = #table;
            const PRIMARY_KEY: &'static [&'static str] = &[#(#pk_columns),*];
            const TABLE: ::shoal_orm::TableDef = ::shoal_orm::TableDef {
                name: #table,
                columns: &[#(#column_defs),*],
                primary_key: &[#(#pk_columns),*],
                indexes: &[#(#index_defs),*],
                foreign_keys: &[#(#fk_defs),*],
                checks: &[#(#check_defs),*],
                distribution: #distribution,
            };
            type Key = #key_ty;

            fn values(&self) -> ::std::vec::Vec<::shoal_orm::Value> {
                ::std::vec![#(#value_exprs),*]
            }
            fn bind_values(&self, to: &mut dyn ::shoal_orm::backend::Binder) -> ::shoal_orm::Result<()> {
                #(#bind_exprs)*
                ::core::result::Result::Ok(())
            }
            fn key_values(key: Self::Key) -> ::std::vec::Vec<::shoal_orm::Value> {
                #key_values
            }
            fn __push_key_values(key: Self::Key, to: &mut ::std::vec::Vec<::shoal_orm::Value>) {
                #push_key
            }
            fn primary_key_values(&self) -> ::std::vec::Vec<::shoal_orm::Value> {
                ::std::vec![#(::shoal_orm::SqlType::to_value(&self.#pk_idents)),*]
            }
            fn first_key_value(&self) -> ::shoal_orm::Value {
                ::shoal_orm::SqlType::to_value(&self.#first_pk)
            }
            fn decode(values: &mut ::shoal_orm::__private::Values<'_>) -> ::shoal_orm::Result<Self> {
                ::core::result::Result::Ok(#name {
                    #(#decode_fields,)*
                    #(#defaulted: ::core::default::Default::default(),)*
                })
            }
            fn generated_key_unset(&self) -> bool {
                #auto_unset
            }
            fn set_generated_key(&mut self, value: ::shoal_orm::Value) -> ::shoal_orm::Result<()> {
                #auto_set
            }
            fn __sql_cache() -> &'static ::shoal_orm::__private::SqlCache {
                static CACHE: ::shoal_orm::__private::SqlCache = ::shoal_orm::__private::SqlCache::new();
                &CACHE
            }
        }

        impl ::shoal_orm::FromRow for #name {
            fn from_row(row: &mut ::shoal_orm::Row) -> ::shoal_orm::Result<Self> {
                ::core::result::Result::Ok(#name {
                    #(#named_fields,)*
                    #(#defaulted: ::core::default::Default::default(),)*
                })
            }
        }

        #auto_check
        #(#numeric_checks)*

        // Not every application reads every column or relation constant.
        #[allow(dead_code)]
        impl #name {
            #(#column_consts)*
            #(#relation_consts)*
        }
    })
}

/// Emits a relation constant and, for `belongs_to`, its foreign key.
fn relation(
    model: &Ident,
    table: &str,
    r: &RelationField,
    pk: &[&ColumnField],
    columns: &[ColumnField],
) -> syn::Result<(TokenStream, Option<TokenStream>)> {
    let find = |ident: &Ident| -> syn::Result<&ColumnField> {
        columns
            .iter()
            .find(|c| c.ident == *ident)
            .ok_or_else(|| syn::Error::new_spanned(ident, format!("`{ident}` is not a column field of {model}")))
    };
    let target = &r.target;
    let field = &r.ident;
    let rel_name = unraw(field);
    let const_name = format_ident!("{}", rel_name.to_uppercase(), span = field.span());
    let kind = format_ident!("{}", r.rel.kind.variant());
    let upper = |i: &Ident| format_ident!("{}", unraw(i).to_uppercase(), span = i.span());
    let single_pk = || -> syn::Result<&ColumnField> {
        if pk.len() == 1 {
            Ok(pk[0])
        } else {
            Err(syn::Error::new(
                r.rel.span,
                format!(
                    "{model} has a composite primary key: name the key this relation matches with `references = field`"
                ),
            ))
        }
    };
    let span = r.rel.span;
    let doc = format!("Relation `{rel_name}` of `{table}`: load it with `.with({model}::{const_name})`.");
    let mut fk = None;
    let body = match r.rel.kind {
        RelKind::HasMany | RelKind::HasOne => {
            let parent = match &r.rel.references {
                Some(f) => find(f)?,
                None => single_pk()?,
            };
            let (pf, pcol) = (&parent.ident, &parent.column);
            let fk_field = r.rel.foreign_key.as_ref().expect("checked by the parser");
            let fk_const = upper(fk_field);
            quote_spanned! {span=>
                fn parent_key(p: &#model) -> ::shoal_orm::Value { ::shoal_orm::SqlType::to_value(&p.#pf) }
                fn child_key(c: &#target) -> ::shoal_orm::Value { ::shoal_orm::SqlType::to_value(&c.#fk_field) }
                fn assign(p: &mut #model, v: ::std::vec::Vec<#target>) {
                    ::shoal_orm::__private::RelationField::assign(&mut p.#field, v)
                }
                #[allow(dead_code)]
                fn check(p: &#model, c: &#target) { ::shoal_orm::__private::assert_key_compatible(&p.#pf, &c.#fk_field) }
                ::shoal_orm::Relation::__new(::shoal_orm::__private::RelationSpec {
                    name: #rel_name,
                    kind: ::shoal_orm::RelationKind::#kind,
                    parent_table: #table,
                    parent_column: #pcol,
                    child_table: <#target as ::shoal_orm::Model>::TABLE_NAME,
                    child_column: #target::#fk_const.name(),
                    through: ::core::option::Option::None,
                    parent_key,
                    child_key,
                    assign,
                })
            }
        }
        RelKind::BelongsTo => {
            let fk_field = r.rel.foreign_key.as_ref().expect("checked by the parser");
            let own = find(fk_field)?;
            let fcol = &own.column;
            let (child_key, child_column, ref_columns, check) = match &r.rel.references {
                Some(rf) => {
                    let rc = upper(rf);
                    (
                        quote_spanned!(span=> ::shoal_orm::SqlType::to_value(&c.#rf)),
                        quote_spanned!(span=> #target::#rc.name()),
                        quote_spanned!(span=> &[#target::#rc.name()]),
                        quote_spanned!(span=> ::shoal_orm::__private::assert_key_compatible(&p.#fk_field, &c.#rf)),
                    )
                }
                None => (
                    quote_spanned!(span=> ::shoal_orm::Model::first_key_value(c)),
                    quote_spanned!(span=> ::shoal_orm::__private::single_key_column(<#target as ::shoal_orm::Model>::PRIMARY_KEY)),
                    quote_spanned!(span=> <#target as ::shoal_orm::Model>::PRIMARY_KEY),
                    quote_spanned!(span=> {
                        let _ = c;
                        ::shoal_orm::__private::assert_key_matches::<#target, _>(&p.#fk_field)
                    }),
                ),
            };
            let fk_name = constraint_name(&format!("{table}_{fcol}_fkey"));
            let action = format_ident!(
                "{}",
                match r.rel.on_delete.as_deref() {
                    Some("cascade") => "Cascade",
                    Some("set_null") => "SetNull",
                    Some("restrict") => "Restrict",
                    _ => "NoAction",
                }
            );
            fk = Some(quote_spanned! {span=>
                ::shoal_orm::ForeignKeyDef {
                    name: #fk_name,
                    columns: &[#fcol],
                    ref_table: <#target as ::shoal_orm::Model>::TABLE_NAME,
                    ref_columns: #ref_columns,
                    on_delete: ::shoal_orm::FkAction::#action,
                }
            });
            quote_spanned! {span=>
                fn parent_key(p: &#model) -> ::shoal_orm::Value { ::shoal_orm::SqlType::to_value(&p.#fk_field) }
                fn child_key(c: &#target) -> ::shoal_orm::Value { #child_key }
                fn assign(p: &mut #model, v: ::std::vec::Vec<#target>) {
                    ::shoal_orm::__private::RelationField::assign(&mut p.#field, v)
                }
                #[allow(dead_code)]
                fn check(p: &#model, c: &#target) { #check }
                ::shoal_orm::Relation::__new(::shoal_orm::__private::RelationSpec {
                    name: #rel_name,
                    kind: ::shoal_orm::RelationKind::BelongsTo,
                    parent_table: #table,
                    parent_column: #fcol,
                    child_table: <#target as ::shoal_orm::Model>::TABLE_NAME,
                    child_column: #child_column,
                    through: ::core::option::Option::None,
                    parent_key,
                    child_key,
                    assign,
                })
            }
        }
        RelKind::ManyToMany => {
            let parent = single_pk()?;
            let (pf, pcol) = (&parent.ident, &parent.column);
            let through = r.rel.through.as_ref().expect("checked by the parser");
            let source = r.rel.source.as_ref().expect("checked by the parser");
            let target_field = r.rel.target.as_ref().expect("checked by the parser");
            let (sc, tc) = (upper(source), upper(target_field));
            quote_spanned! {span=>
                fn parent_key(p: &#model) -> ::shoal_orm::Value { ::shoal_orm::SqlType::to_value(&p.#pf) }
                fn child_key(c: &#target) -> ::shoal_orm::Value { ::shoal_orm::Model::first_key_value(c) }
                fn assign(p: &mut #model, v: ::std::vec::Vec<#target>) {
                    ::shoal_orm::__private::RelationField::assign(&mut p.#field, v)
                }
                #[allow(dead_code)]
                fn check(p: &#model, j: &#through) {
                    ::shoal_orm::__private::assert_key_compatible(&p.#pf, &j.#source);
                    ::shoal_orm::__private::assert_key_matches::<#target, _>(&j.#target_field);
                }
                ::shoal_orm::Relation::__new(::shoal_orm::__private::RelationSpec {
                    name: #rel_name,
                    kind: ::shoal_orm::RelationKind::ManyToMany,
                    parent_table: #table,
                    parent_column: #pcol,
                    child_table: <#target as ::shoal_orm::Model>::TABLE_NAME,
                    child_column: ::shoal_orm::__private::single_key_column(<#target as ::shoal_orm::Model>::PRIMARY_KEY),
                    through: ::core::option::Option::Some(::shoal_orm::__private::Through {
                        table: <#through as ::shoal_orm::Model>::TABLE_NAME,
                        source_column: #through::#sc.name(),
                        target_column: #through::#tc.name(),
                    }),
                    parent_key,
                    child_key,
                    assign,
                })
            }
        }
    };
    let consts = quote_spanned! {span=>
        #[doc = #doc]
        pub const #const_name: ::shoal_orm::Relation<#model, #target> = { #body };
    };
    Ok((consts, fk))
}

/// The model type inside `HasMany<T>`, `HasOne<T>`, `BelongsTo<T>`,
/// `ManyToMany<T>` (or `Loaded<Vec<T>>` / `Loaded<Option<T>>`).
fn relation_target(ty: &Type, kind: RelKind) -> syn::Result<Type> {
    let err = || {
        syn::Error::new_spanned(
            ty,
            "a relation field has type HasMany<T>, HasOne<T>, BelongsTo<T> or ManyToMany<T> (from shoal_orm)",
        )
    };
    let (ident, arg) = last_segment_arg(ty).ok_or_else(err)?;
    let expected = match kind {
        RelKind::HasMany => "HasMany",
        RelKind::HasOne => "HasOne",
        RelKind::BelongsTo => "BelongsTo",
        RelKind::ManyToMany => "ManyToMany",
    };
    match ident.as_str() {
        "HasMany" | "HasOne" | "BelongsTo" | "ManyToMany" if ident == expected => Ok(arg),
        "HasMany" | "HasOne" | "BelongsTo" | "ManyToMany" => Err(syn::Error::new_spanned(
            ty,
            format!("this field is declared {} but has type {ident}<…>", kind_attr(kind)),
        )),
        "Loaded" => {
            let (inner, target) = last_segment_arg(&arg).ok_or_else(err)?;
            let many = matches!(kind, RelKind::HasMany | RelKind::ManyToMany);
            match (inner.as_str(), many) {
                ("Vec", true) | ("Option", false) => Ok(target),
                _ => Err(err()),
            }
        }
        _ => Err(err()),
    }
}

fn kind_attr(kind: RelKind) -> &'static str {
    match kind {
        RelKind::HasMany => "has_many",
        RelKind::HasOne => "has_one",
        RelKind::BelongsTo => "belongs_to",
        RelKind::ManyToMany => "many_to_many",
    }
}

fn last_segment_arg(ty: &Type) -> Option<(String, Type)> {
    let Type::Path(path) = ty else { return None };
    let seg = path.path.segments.last()?;
    let PathArguments::AngleBracketed(args) = &seg.arguments else { return None };
    args.args.iter().find_map(|a| match a {
        GenericArgument::Type(t) => Some((seg.ident.to_string(), t.clone())),
        _ => None,
    })
}

/// The largest precision a model may declare (every 28-digit number fits
/// rust_decimal; keep in step with `shoal_orm::numeric::MAX_PRECISION`).
const MAX_PRECISION: u32 = 28;

/// `precision = p, scale = s` checked: `Some((p, s))`, scale 0 by default.
fn numeric(attrs: &FieldAttrs) -> syn::Result<Option<(u32, u32)>> {
    let precision = match (&attrs.precision, &attrs.scale) {
        (None, None) => return Ok(None),
        (None, Some(s)) => {
            return Err(syn::Error::new_spanned(s, "scale needs a precision (`precision = 12, scale = 2`)"))
        }
        (Some(p), _) => p,
    };
    let p: u32 = precision.base10_parse()?;
    if !(1..=MAX_PRECISION).contains(&p) {
        return Err(syn::Error::new_spanned(
            precision,
            format!("precision must be 1 to {MAX_PRECISION} (the digits rust_decimal holds exactly)"),
        ));
    }
    let s: u32 = match &attrs.scale {
        Some(lit) => lit.base10_parse()?,
        None => 0,
    };
    if s > p {
        return Err(syn::Error::new_spanned(
            attrs.scale.as_ref().unwrap_or(precision),
            format!("scale {s} is larger than precision {p}"),
        ));
    }
    if attrs.max_length.is_some() {
        return Err(syn::Error::new_spanned(precision, "max_length is for text; precision and scale for decimals"));
    }
    Ok(Some((p, s)))
}

fn opt_str(s: Option<&str>) -> TokenStream {
    match s {
        Some(s) => quote!(::core::option::Option::Some(#s)),
        None => quote!(::core::option::Option::None),
    }
}

fn unraw(ident: &Ident) -> String {
    let s = ident.to_string();
    s.strip_prefix("r#").map(str::to_string).unwrap_or(s)
}

/// `UserAccount` → `user_account`.
pub fn snake_case(s: &str) -> String {
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if ch.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(ch.to_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

/// PostgreSQL's naming: `users_email_key` (unique) and `users_age_idx`.
fn index_name(table: &str, columns: &[&String], unique: bool) -> String {
    let cols: Vec<&str> = columns.iter().map(|c| c.as_str()).collect();
    constraint_name(&format!("{table}_{}_{}", cols.join("_"), if unique { "key" } else { "idx" }))
}

/// Shortens a long generated name to a stable prefix plus an FNV hash.
fn constraint_name(name: &str) -> String {
    if name.len() <= MAX_IDENT_LEN {
        return name.to_string();
    }
    let mut hash: u32 = 0x811c9dc5;
    for b in name.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x01000193);
    }
    let mut cut = MAX_IDENT_LEN - 9;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}_{hash:08x}", &name[..cut])
}
