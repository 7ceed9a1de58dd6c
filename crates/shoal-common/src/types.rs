//! The PostgreSQL types Shoal exposes, and how each is stored in SQLite.
//!
//! Columns keep their PostgreSQL type on the wire even though SQLite stores
//! values dynamically. The **storage representation** below is a contract
//! between the SQL translator (which writes and compares stored values) and
//! the wire encoder (which turns stored values into PostgreSQL text/binary):
//!
//! | DataType                     | SQLite storage                                   |
//! |------------------------------|--------------------------------------------------|
//! | Bool                         | INTEGER 0 / 1                                    |
//! | Int2, Int4, Int8             | INTEGER                                          |
//! | Float4, Float8               | REAL                                             |
//! | Numeric{p,s}                 | TEXT `COLLATE pg_numeric`, PostgreSQL's exact output (`12.50`, `NaN`) |
//! | Text, Varchar(n), Char(n)    | TEXT (Char(n) blank-padded to n)                 |
//! | Bytea                        | BLOB                                             |
//! | Date                         | TEXT `YYYY-MM-DD`                                |
//! | Time                         | TEXT `HH:MM:SS[.ffffff]`                         |
//! | Timestamp                    | TEXT `YYYY-MM-DD HH:MM:SS[.ffffff]`              |
//! | Timestamptz                  | TEXT, UTC, `YYYY-MM-DD HH:MM:SS[.ffffff]` (no offset; output appends `+00`) |
//! | Interval                     | TEXT in PostgreSQL's output style, e.g. `1 day 02:00:00` |
//! | Json, Jsonb                  | TEXT (minified JSON for Jsonb)                   |
//! | Uuid                         | TEXT, lower-case canonical `8-4-4-4-12`          |
//! | Record(fields)               | TEXT, PostgreSQL's record output `(1,"a b",)`    |
//!
//! Text forms sort correctly as text, so comparisons and ORDER BY on dates and
//! timestamps work on the stored values, and SQLite's date functions accept them.
//! Numerics are the exception: their text sorts numerically only under the
//! `pg_numeric` collation (see `shoal_common::numeric`), which numeric
//! columns declare and the translator adds to computed numerics.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A PostgreSQL data type as seen by clients.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DataType {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    /// `NUMERIC(precision, scale)`; `None` when unconstrained.
    Numeric(Option<(u32, u32)>),
    Text,
    /// `VARCHAR(n)`; `None` when unbounded.
    Varchar(Option<u32>),
    /// `CHAR(n)` (`bpchar`).
    Char(u32),
    Bytea,
    Date,
    Time,
    Timestamp,
    Timestamptz,
    Interval,
    Json,
    Jsonb,
    Uuid,
    /// The `name` type used by catalog columns (`pg_class.relname`, …).
    Name,
    /// `oid` and the `reg*` types in catalog queries.
    Oid,
    /// `char` (the single-byte catalog type, e.g. `pg_class.relkind`).
    CatalogChar,
    /// A one-dimensional array of the element type.
    Array(Box<DataType>),
    /// An anonymous composite (`record`, OID 2249) with named, typed fields,
    /// e.g. the `(x, n)` rows of `information_schema._pg_expandarray()`.
    /// Only expressions produce it; no column is declared with it.
    Record(Vec<(String, DataType)>),
    /// A value whose type is not known (an untyped `NULL`, an unused parameter).
    Unknown,
}

impl DataType {
    /// The type's OID in PostgreSQL's `pg_type`.
    pub fn oid(&self) -> u32 {
        match self {
            DataType::Bool => 16,
            DataType::Bytea => 17,
            DataType::CatalogChar => 18,
            DataType::Name => 19,
            DataType::Int8 => 20,
            DataType::Int2 => 21,
            DataType::Int4 => 23,
            DataType::Text => 25,
            DataType::Oid => 26,
            DataType::Json => 114,
            DataType::Float4 => 700,
            DataType::Float8 => 701,
            DataType::Unknown => 705,
            DataType::Char(_) => 1042,
            DataType::Varchar(_) => 1043,
            DataType::Date => 1082,
            DataType::Time => 1083,
            DataType::Timestamp => 1114,
            DataType::Timestamptz => 1184,
            DataType::Interval => 1186,
            DataType::Numeric(_) => 1700,
            DataType::Uuid => 2950,
            DataType::Jsonb => 3802,
            DataType::Record(_) => 2249,
            DataType::Array(elem) => match elem.as_ref() {
                DataType::Bool => 1000,
                DataType::Bytea => 1001,
                DataType::Name => 1003,
                DataType::Int2 => 1005,
                DataType::Int4 => 1007,
                DataType::Text => 1009,
                DataType::Char(_) => 1014,
                DataType::Varchar(_) => 1015,
                DataType::Int8 => 1016,
                DataType::Float4 => 1021,
                DataType::Float8 => 1022,
                DataType::Oid => 1028,
                DataType::Timestamp => 1115,
                DataType::Date => 1182,
                DataType::Time => 1183,
                DataType::Timestamptz => 1185,
                DataType::Interval => 1187,
                DataType::Numeric(_) => 1231,
                DataType::Uuid => 2951,
                DataType::Json => 199,
                DataType::Jsonb => 3807,
                _ => 1009,
            },
        }
    }

    /// The type with the given OID, if Shoal knows it.
    pub fn from_oid(oid: u32) -> Option<DataType> {
        Some(match oid {
            16 => DataType::Bool,
            17 => DataType::Bytea,
            18 => DataType::CatalogChar,
            19 => DataType::Name,
            20 => DataType::Int8,
            21 => DataType::Int2,
            23 => DataType::Int4,
            25 => DataType::Text,
            26 => DataType::Oid,
            114 => DataType::Json,
            700 => DataType::Float4,
            701 => DataType::Float8,
            705 => DataType::Unknown,
            1042 => DataType::Char(1),
            1043 => DataType::Varchar(None),
            1082 => DataType::Date,
            1083 => DataType::Time,
            1114 => DataType::Timestamp,
            1184 => DataType::Timestamptz,
            1186 => DataType::Interval,
            1700 => DataType::Numeric(None),
            2950 => DataType::Uuid,
            3802 => DataType::Jsonb,
            1000 => DataType::Array(Box::new(DataType::Bool)),
            1005 => DataType::Array(Box::new(DataType::Int2)),
            1007 => DataType::Array(Box::new(DataType::Int4)),
            1009 => DataType::Array(Box::new(DataType::Text)),
            1016 => DataType::Array(Box::new(DataType::Int8)),
            1022 => DataType::Array(Box::new(DataType::Float8)),
            _ => return None,
        })
    }

    /// The `typmod` reported in RowDescription (`-1` when none).
    pub fn typmod(&self) -> i32 {
        match self {
            DataType::Varchar(Some(n)) | DataType::Char(n) => *n as i32 + 4,
            DataType::Numeric(Some((p, s))) => (((*p as i32) << 16) | *s as i32) + 4,
            _ => -1,
        }
    }

    /// The fixed size reported in RowDescription (`-1` when variable).
    pub fn size(&self) -> i16 {
        match self {
            DataType::Bool | DataType::CatalogChar => 1,
            DataType::Int2 => 2,
            DataType::Int4 | DataType::Float4 | DataType::Date | DataType::Oid => 4,
            DataType::Int8 | DataType::Float8 | DataType::Time | DataType::Timestamp | DataType::Timestamptz => 8,
            DataType::Interval | DataType::Uuid => 16,
            DataType::Name => 64,
            _ => -1,
        }
    }

    /// The name PostgreSQL's `format_type()` prints, e.g. `character varying(20)`.
    pub fn sql_name(&self) -> String {
        match self {
            DataType::Bool => "boolean".into(),
            DataType::Int2 => "smallint".into(),
            DataType::Int4 => "integer".into(),
            DataType::Int8 => "bigint".into(),
            DataType::Float4 => "real".into(),
            DataType::Float8 => "double precision".into(),
            DataType::Numeric(None) => "numeric".into(),
            DataType::Numeric(Some((p, s))) => format!("numeric({p},{s})"),
            DataType::Text => "text".into(),
            DataType::Varchar(None) => "character varying".into(),
            DataType::Varchar(Some(n)) => format!("character varying({n})"),
            DataType::Char(n) => format!("character({n})"),
            DataType::Bytea => "bytea".into(),
            DataType::Date => "date".into(),
            DataType::Time => "time without time zone".into(),
            DataType::Timestamp => "timestamp without time zone".into(),
            DataType::Timestamptz => "timestamp with time zone".into(),
            DataType::Interval => "interval".into(),
            DataType::Json => "json".into(),
            DataType::Jsonb => "jsonb".into(),
            DataType::Uuid => "uuid".into(),
            DataType::Name => "name".into(),
            DataType::Oid => "oid".into(),
            DataType::CatalogChar => "\"char\"".into(),
            DataType::Array(elem) => format!("{}[]", elem.sql_name()),
            DataType::Record(_) => "record".into(),
            DataType::Unknown => "unknown".into(),
        }
    }

    /// The short name in `pg_type.typname`, e.g. `int4`, `varchar`.
    pub fn type_name(&self) -> String {
        match self {
            DataType::Bool => "bool".into(),
            DataType::Int2 => "int2".into(),
            DataType::Int4 => "int4".into(),
            DataType::Int8 => "int8".into(),
            DataType::Float4 => "float4".into(),
            DataType::Float8 => "float8".into(),
            DataType::Numeric(_) => "numeric".into(),
            DataType::Text => "text".into(),
            DataType::Varchar(_) => "varchar".into(),
            DataType::Char(_) => "bpchar".into(),
            DataType::Bytea => "bytea".into(),
            DataType::Date => "date".into(),
            DataType::Time => "time".into(),
            DataType::Timestamp => "timestamp".into(),
            DataType::Timestamptz => "timestamptz".into(),
            DataType::Interval => "interval".into(),
            DataType::Json => "json".into(),
            DataType::Jsonb => "jsonb".into(),
            DataType::Uuid => "uuid".into(),
            DataType::Name => "name".into(),
            DataType::Oid => "oid".into(),
            DataType::CatalogChar => "char".into(),
            DataType::Array(elem) => format!("_{}", elem.type_name()),
            DataType::Record(_) => "record".into(),
            DataType::Unknown => "unknown".into(),
        }
    }

    /// True for the integer types.
    pub fn is_integer(&self) -> bool {
        matches!(self, DataType::Int2 | DataType::Int4 | DataType::Int8 | DataType::Oid)
    }

    /// True for any numeric type.
    pub fn is_numeric(&self) -> bool {
        self.is_integer() || matches!(self, DataType::Float4 | DataType::Float8 | DataType::Numeric(_))
    }

    /// True for the character-string types.
    pub fn is_text(&self) -> bool {
        matches!(self, DataType::Text | DataType::Varchar(_) | DataType::Char(_) | DataType::Name)
    }

    /// The SQLite column type used in `CREATE TABLE`, chosen so SQLite's type
    /// affinity stores values in the representation documented above.
    pub fn sqlite_affinity(&self) -> &'static str {
        match self {
            DataType::Bool | DataType::Int2 | DataType::Int4 | DataType::Int8 | DataType::Oid => "INTEGER",
            DataType::Float4 | DataType::Float8 => "REAL",
            DataType::Bytea => "BLOB",
            _ => "TEXT",
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.sql_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_round_trip() {
        for t in [
            DataType::Bool,
            DataType::Int2,
            DataType::Int4,
            DataType::Int8,
            DataType::Float8,
            DataType::Text,
            DataType::Date,
            DataType::Timestamptz,
            DataType::Uuid,
            DataType::Jsonb,
            DataType::Bytea,
        ] {
            assert_eq!(DataType::from_oid(t.oid()), Some(t));
        }
    }

    #[test]
    fn typmods_match_postgres() {
        assert_eq!(DataType::Varchar(Some(20)).typmod(), 24);
        assert_eq!(DataType::Char(3).typmod(), 7);
        assert_eq!(DataType::Numeric(Some((10, 2))).typmod(), (10 << 16 | 2) + 4);
        assert_eq!(DataType::Text.typmod(), -1);
        assert_eq!(DataType::Varchar(None).typmod(), -1);
    }
}
