//! Versioned migration files on disk.
//!
//! ```text
//!   migrations/
//!     0001_create_users.up.sql      -- shoal-orm migration 0001 create_users
//!     0001_create_users.down.sql    -- dialect: postgres
//!     0002_add_orders.up.sql        CREATE TABLE "orders" (…);
//!     0002_add_orders.down.sql      …
//! ```
//!
//! A file is plain SQL, statements ending in `;`. Generated files name their
//! dialect in the header, and the runner refuses to apply a file generated
//! for another backend. Each applied migration's checksum is recorded, so a
//! file edited after it ran is reported instead of silently diverging.

use std::path::{Path, PathBuf};

use crate::dialect::Dialect;
use crate::error::{Error, Result};

/// One migration: its version, name and both directions.
#[derive(Clone, Debug, PartialEq)]
pub struct MigrationFile {
    pub version: u64,
    pub name: String,
    pub up: String,
    pub down: Option<String>,
    pub up_path: PathBuf,
}

impl MigrationFile {
    /// FNV-1a over the up file: cheap, stable, enough to notice an edit.
    pub fn checksum(&self) -> String {
        let mut h: u64 = 0xcbf29ce484222325;
        for b in self.up.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
        format!("{h:016x}")
    }

    /// The dialect named in the header, if any.
    pub fn dialect(&self) -> Option<Dialect> {
        self.up.lines().take(5).find_map(|l| l.strip_prefix("-- dialect: ")).and_then(|d| Dialect::from_name(d.trim()))
    }
}

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::Migration(format!("{}: {e}", path.display()))
}

/// Every migration in `dir`, by version. A missing directory is empty.
pub fn read_dir(dir: &Path) -> Result<Vec<MigrationFile>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(dir, e)),
    };
    let mut out: Vec<MigrationFile> = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| io(dir, e))?.path();
        let Some(file) = path.file_name().and_then(|f| f.to_str()) else { continue };
        let Some(stem) = file.strip_suffix(".up.sql") else { continue };
        let Some((version, name)) = stem.split_once('_') else { continue };
        let Ok(version) = version.parse::<u64>() else { continue };
        if out.iter().any(|m| m.version == version) {
            return Err(Error::Migration(format!("two migrations have version {version:04} in {}", dir.display())));
        }
        let up = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
        let down_path = path.with_file_name(format!("{stem}.down.sql"));
        let down = match std::fs::read_to_string(&down_path) {
            Ok(s) => Some(s),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(&down_path, e)),
        };
        out.push(MigrationFile { version, name: name.to_string(), up, down, up_path: path });
    }
    out.sort_by_key(|m| m.version);
    Ok(out)
}

/// `add orders!` → `add_orders`.
pub fn sanitize_name(name: &str) -> String {
    let s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    let s = s.trim_matches('_').to_string();
    if s.is_empty() {
        "migration".into()
    } else {
        s
    }
}

/// Writes a new migration pair after the highest existing version.
pub fn write_pair(
    dir: &Path,
    name: &str,
    dialect: Option<Dialect>,
    notes: &[String],
    up: &[String],
    down: &[String],
) -> Result<MigrationFile> {
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let version = read_dir(dir)?.last().map(|m| m.version + 1).unwrap_or(1);
    let name = sanitize_name(name);
    let header = |dir_name: &str| {
        let mut h = format!("-- shoal-orm migration {version:04} {name} ({dir_name})\n");
        if let Some(d) = dialect {
            h.push_str(&format!("-- dialect: {}\n", d.name()));
        }
        for n in notes {
            h.push_str(&format!("-- NOTE: {n}\n"));
        }
        h
    };
    let body = |stmts: &[String]| stmts.iter().map(|s| format!("{s};\n")).collect::<String>();
    let up_text = format!("{}{}", header("up"), body(up));
    let down_text = format!("{}{}", header("down"), body(down));
    let up_path = dir.join(format!("{version:04}_{name}.up.sql"));
    let down_path = dir.join(format!("{version:04}_{name}.down.sql"));
    std::fs::write(&up_path, &up_text).map_err(|e| io(&up_path, e))?;
    std::fs::write(&down_path, &down_text).map_err(|e| io(&down_path, e))?;
    Ok(MigrationFile { version, name, up: up_text, down: Some(down_text), up_path })
}

/// Splits SQL into statements at `;` outside quotes, comments and
/// PostgreSQL dollar-quoted bodies. Comment-only pieces are dropped.
pub fn split_statements(sql: &str) -> Vec<String> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' | b'"' | b'`' => {
                let q = bytes[i];
                i += 1;
                while i < bytes.len() && bytes[i] != q {
                    i += 1;
                }
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b'$' => {
                // $tag$ … $tag$
                if let Some(len) = sql[i + 1..].find('$') {
                    let tag = &sql[i..i + len + 2];
                    if tag[1..tag.len() - 1].chars().all(|c| c.is_alphanumeric() || c == '_') {
                        if let Some(end) = sql[i + tag.len()..].find(tag) {
                            i += tag.len() + end + tag.len() - 1;
                        }
                    }
                }
            }
            b';' => {
                push_statement(&sql[start..i], &mut out);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    push_statement(&sql[start.min(sql.len())..], &mut out);
    out
}

/// Keeps a piece that has SQL in it, without its leading comment lines.
fn push_statement(piece: &str, out: &mut Vec<String>) {
    let mut rest = piece.trim_start();
    while rest.starts_with("--") {
        rest = rest.split_once('\n').map_or("", |(_, r)| r).trim_start();
    }
    let rest = rest.trim();
    if !rest.is_empty() {
        out.push(rest.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_outside_quotes_and_comments() {
        let sql = "-- header; not a statement\nCREATE TABLE a (x TEXT DEFAULT 'a;b');\n/* ; */ INSERT INTO a VALUES ('x');\nCREATE FUNCTION f() AS $$ SELECT 1; $$;\n";
        let parts = split_statements(sql);
        assert_eq!(parts.len(), 3, "{parts:?}");
        assert!(parts[0].ends_with("DEFAULT 'a;b')"));
        assert!(parts[2].contains("SELECT 1;"));
    }

    #[test]
    fn writes_numbered_pairs() {
        let dir = tempfile::tempdir().unwrap();
        let a = write_pair(
            dir.path(),
            "Create users!",
            Some(Dialect::Sqlite),
            &[],
            &["CREATE TABLE u (id INTEGER)".into()],
            &["DROP TABLE u".into()],
        )
        .unwrap();
        let b = write_pair(dir.path(), "second", None, &["check this".into()], &[], &[]).unwrap();
        assert_eq!((a.version, a.name.as_str(), b.version), (1, "create_users", 2));
        let read = read_dir(dir.path()).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].dialect(), Some(Dialect::Sqlite));
        assert_eq!(split_statements(&read[0].up), vec!["CREATE TABLE u (id INTEGER)"]);
        assert!(read[1].up.contains("-- NOTE: check this"));
        assert_ne!(read[0].checksum(), read[1].checksum());
    }
}
