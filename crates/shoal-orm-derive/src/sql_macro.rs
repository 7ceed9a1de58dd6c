//! `sql!("… {expr} …")`: raw SQL whose every interpolation is a parameter.
//!
//! The literal is split at compile time into static text fragments and the
//! expressions between them:
//!
//! ```text
//!   sql!("SELECT * FROM t WHERE a = {x} AND b > {y + 1}")
//!        ├── parts:  ["SELECT * FROM t WHERE a = ", " AND b > ", ""]
//!        └── values: [to_value(&(x)), to_value(&(y + 1))]
//! ```
//!
//! The dialect decides later how a hole is spelled (`?`, `$1`). A hole inside
//! a quoted SQL string or identifier is refused: `'{name}'` would be a
//! placeholder inside a string literal, which is never what the author meant.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Expr, LitStr};

pub fn expand(input: TokenStream) -> syn::Result<TokenStream> {
    let lit: LitStr = syn::parse2(input)?;
    let text = lit.value();
    let err = |msg: &str| syn::Error::new(lit.span(), msg);
    let mut parts: Vec<String> = vec![String::new()];
    let mut exprs: Vec<Expr> = Vec::new();
    let mut quote_char: Option<char> = None;
    let mut chars = text.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                parts.last_mut().expect("non-empty").push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                parts.last_mut().expect("non-empty").push('}');
            }
            '{' => {
                if let Some(q) = quote_char {
                    return Err(err(&format!(
                        "a {{…}} hole inside {q}…{q} would not be a parameter: write the hole without quotes"
                    )));
                }
                let mut depth = 1;
                let mut src = String::new();
                for c in chars.by_ref() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    src.push(c);
                }
                if depth != 0 {
                    return Err(err("unclosed `{` (write `{{` for a literal brace)"));
                }
                let expr: Expr =
                    syn::parse_str(&src).map_err(|e| err(&format!("`{{{src}}}` is not a Rust expression: {e}")))?;
                exprs.push(expr);
                parts.push(String::new());
            }
            '}' => return Err(err("unmatched `}` (write `}}` for a literal brace)")),
            '\'' | '"' => {
                match quote_char {
                    None => quote_char = Some(ch),
                    Some(q) if q == ch => quote_char = None,
                    Some(_) => {}
                }
                parts.last_mut().expect("non-empty").push(ch);
            }
            _ => parts.last_mut().expect("non-empty").push(ch),
        }
    }
    if quote_char.is_some() {
        return Err(err("unterminated quote in SQL text"));
    }
    Ok(quote! {
        ::shoal_orm::RawSql::__new(
            &[#(#parts),*],
            ::std::vec![#({
                #[allow(unused_imports)]
                use ::shoal_orm::__private::ToValue as _;
                (&(#exprs)).to_value()
            }),*],
        )
    })
}
