//! Parsing of `#[model(…)]` attributes into plain structs.
//!
//! Field references inside attributes (`shard_key = id`, `foreign_key =
//! user_id`, `index(name, age)`) accept an identifier or a string literal;
//! both name a *Rust field*, never a column, so a rename with
//! `column = "…"` never has to be repeated elsewhere.

use syn::meta::ParseNestedMeta;
use syn::{Attribute, Ident, LitInt, LitStr, Result};

/// Struct-level options.
#[derive(Default)]
pub struct StructAttrs {
    pub table: Option<String>,
    pub shard_key: Option<Ident>,
    /// `shards = n`: how many hash shards Shoal splits the table into.
    pub shards: Option<u32>,
    pub reference: bool,
    /// `(fields, unique, explicit name)` for `index(…)` and `unique(…)`.
    pub indexes: Vec<(Vec<Ident>, bool, Option<String>)>,
    /// `(name, sql)` for `check(name = "…", sql = "…")`.
    pub checks: Vec<(String, String)>,
}

/// The relation kinds a field can declare.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum RelKind {
    HasMany,
    HasOne,
    BelongsTo,
    ManyToMany,
}

impl RelKind {
    pub fn variant(self) -> &'static str {
        match self {
            RelKind::HasMany => "HasMany",
            RelKind::HasOne => "HasOne",
            RelKind::BelongsTo => "BelongsTo",
            RelKind::ManyToMany => "ManyToMany",
        }
    }
}

/// A relation declared on a field.
pub struct RelAttrs {
    pub kind: RelKind,
    pub span: proc_macro2::Span,
    pub foreign_key: Option<Ident>,
    pub references: Option<Ident>,
    pub through: Option<syn::Path>,
    pub source: Option<Ident>,
    pub target: Option<Ident>,
    pub on_delete: Option<String>,
}

/// Field-level options.
#[derive(Default)]
pub struct FieldAttrs {
    pub primary_key: bool,
    pub auto_increment: bool,
    pub column: Option<String>,
    pub unique: bool,
    pub index: bool,
    pub default: Option<String>,
    pub max_length: Option<u32>,
    /// `NUMERIC(precision, scale)` of a decimal column.
    pub precision: Option<LitInt>,
    pub scale: Option<LitInt>,
    pub skip: bool,
    pub relation: Option<RelAttrs>,
}

fn field_ref(meta: &ParseNestedMeta) -> Result<Ident> {
    let value = meta.value()?;
    if value.peek(LitStr) {
        let lit: LitStr = value.parse()?;
        syn::parse_str::<Ident>(&lit.value()).map_err(|_| syn::Error::new(lit.span(), "expected a field name"))
    } else {
        value.parse()
    }
}

fn string(meta: &ParseNestedMeta) -> Result<String> {
    Ok(meta.value()?.parse::<LitStr>()?.value())
}

fn ident_list(meta: &ParseNestedMeta, name: &mut Option<String>) -> Result<Vec<Ident>> {
    let mut fields = Vec::new();
    meta.parse_nested_meta(|inner| {
        if inner.path.is_ident("name") {
            *name = Some(string(&inner)?);
            return Ok(());
        }
        match inner.path.get_ident() {
            Some(ident) => {
                fields.push(ident.clone());
                Ok(())
            }
            None => Err(inner.error("expected a field name")),
        }
    })?;
    if fields.is_empty() {
        return Err(meta.error("list at least one field"));
    }
    Ok(fields)
}

impl StructAttrs {
    pub fn parse(attrs: &[Attribute]) -> Result<StructAttrs> {
        let mut out = StructAttrs::default();
        for attr in attrs.iter().filter(|a| a.path().is_ident("model")) {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("table") {
                    out.table = Some(string(&meta)?);
                } else if meta.path.is_ident("shard_key") {
                    out.shard_key = Some(field_ref(&meta)?);
                } else if meta.path.is_ident("shards") {
                    let n: LitInt = meta.value()?.parse()?;
                    let shards: u32 = n.base10_parse()?;
                    if !(1..=1024).contains(&shards) {
                        return Err(syn::Error::new(n.span(), "shards is a whole number from 1 to 1024"));
                    }
                    out.shards = Some(shards);
                } else if meta.path.is_ident("reference") {
                    out.reference = true;
                } else if meta.path.is_ident("index") || meta.path.is_ident("unique") {
                    let unique = meta.path.is_ident("unique");
                    let mut name = None;
                    let fields = ident_list(&meta, &mut name)?;
                    out.indexes.push((fields, unique, name));
                } else if meta.path.is_ident("check") {
                    let (mut name, mut sql) = (None, None);
                    meta.parse_nested_meta(|inner| {
                        if inner.path.is_ident("name") {
                            name = Some(string(&inner)?);
                        } else if inner.path.is_ident("sql") {
                            sql = Some(string(&inner)?);
                        } else {
                            return Err(inner.error("expected `name = \"…\"` or `sql = \"…\"`"));
                        }
                        Ok(())
                    })?;
                    match (name, sql) {
                        (Some(n), Some(s)) => out.checks.push((n, s)),
                        _ => return Err(meta.error("check needs both `name = \"…\"` and `sql = \"…\"`")),
                    }
                } else {
                    return Err(meta.error(
                        "unknown model option (expected table, shard_key, shards, reference, index, unique or check)",
                    ));
                }
                Ok(())
            })?;
        }
        if out.shards.is_some() && out.shard_key.is_none() {
            return Err(syn::Error::new(
                proc_macro2::Span::call_site(),
                "shards needs a shard_key to split the table by",
            ));
        }
        if out.reference && out.shard_key.is_some() {
            return Err(syn::Error::new(
                proc_macro2::Span::call_site(),
                "a reference table is copied to every shard and has no shard_key",
            ));
        }
        Ok(out)
    }
}

impl FieldAttrs {
    pub fn parse(attrs: &[Attribute]) -> Result<FieldAttrs> {
        let mut out = FieldAttrs::default();
        for attr in attrs.iter().filter(|a| a.path().is_ident("model")) {
            attr.parse_nested_meta(|meta| {
                let kind = if meta.path.is_ident("has_many") {
                    Some(RelKind::HasMany)
                } else if meta.path.is_ident("has_one") {
                    Some(RelKind::HasOne)
                } else if meta.path.is_ident("belongs_to") {
                    Some(RelKind::BelongsTo)
                } else if meta.path.is_ident("many_to_many") {
                    Some(RelKind::ManyToMany)
                } else {
                    None
                };
                if let Some(kind) = kind {
                    out.relation = Some(parse_relation(&meta, kind)?);
                } else if meta.path.is_ident("primary_key") {
                    out.primary_key = true;
                } else if meta.path.is_ident("auto_increment") {
                    out.auto_increment = true;
                } else if meta.path.is_ident("column") {
                    out.column = Some(string(&meta)?);
                } else if meta.path.is_ident("unique") {
                    out.unique = true;
                } else if meta.path.is_ident("index") {
                    out.index = true;
                } else if meta.path.is_ident("default") {
                    out.default = Some(string(&meta)?);
                } else if meta.path.is_ident("max_length") {
                    let lit: LitInt = meta.value()?.parse()?;
                    out.max_length = Some(lit.base10_parse()?);
                } else if meta.path.is_ident("precision") {
                    out.precision = Some(meta.value()?.parse()?);
                } else if meta.path.is_ident("scale") {
                    out.scale = Some(meta.value()?.parse()?);
                } else if meta.path.is_ident("skip") {
                    out.skip = true;
                } else {
                    return Err(meta.error(
                        "unknown field option (expected primary_key, auto_increment, column, unique, index, \
                         default, max_length, precision, scale, skip, has_many, has_one, belongs_to or many_to_many)",
                    ));
                }
                Ok(())
            })?;
        }
        if out.auto_increment && !out.primary_key {
            return Err(syn::Error::new(proc_macro2::Span::call_site(), "auto_increment needs primary_key"));
        }
        Ok(out)
    }
}

fn parse_relation(meta: &ParseNestedMeta, kind: RelKind) -> Result<RelAttrs> {
    let mut rel = RelAttrs {
        kind,
        span: meta.path.get_ident().map(|i| i.span()).unwrap_or_else(proc_macro2::Span::call_site),
        foreign_key: None,
        references: None,
        through: None,
        source: None,
        target: None,
        on_delete: None,
    };
    meta.parse_nested_meta(|inner| {
        if inner.path.is_ident("foreign_key") {
            rel.foreign_key = Some(field_ref(&inner)?);
        } else if inner.path.is_ident("references") {
            rel.references = Some(field_ref(&inner)?);
        } else if inner.path.is_ident("through") {
            rel.through = Some(inner.value()?.parse()?);
        } else if inner.path.is_ident("source") {
            rel.source = Some(field_ref(&inner)?);
        } else if inner.path.is_ident("target") {
            rel.target = Some(field_ref(&inner)?);
        } else if inner.path.is_ident("on_delete") {
            let action = string(&inner)?.to_ascii_lowercase();
            if !["cascade", "restrict", "set_null", "no_action"].contains(&action.as_str()) {
                return Err(inner.error("on_delete is one of \"cascade\", \"restrict\", \"set_null\", \"no_action\""));
            }
            rel.on_delete = Some(action);
        } else {
            return Err(inner.error("unknown relation option"));
        }
        Ok(())
    })?;
    match kind {
        RelKind::ManyToMany => {
            if rel.through.is_none() || rel.source.is_none() || rel.target.is_none() {
                return Err(meta.error("many_to_many needs `through = JoinModel, source = field, target = field`"));
            }
        }
        _ => {
            if rel.foreign_key.is_none() {
                return Err(meta.error("this relation needs `foreign_key = field`"));
            }
            if rel.through.is_some() || rel.source.is_some() || rel.target.is_some() {
                return Err(meta.error("through/source/target belong to many_to_many"));
            }
        }
    }
    if rel.on_delete.is_some() && kind != RelKind::BelongsTo {
        return Err(meta.error("on_delete belongs on the belongs_to side, where the foreign key lives"));
    }
    Ok(rel)
}
