//! Migrations: diff models against the live schema, write versioned up/down
//! SQL files, apply them under a lock with a migrations table.
//!
//! ```text
//!   Migrator::new(&db, "migrations").models(&[&User::TABLE, &Order::TABLE])
//!     .generate("add orders")   introspect ─▶ diff ─▶ 0002_add_orders.{up,down}.sql
//!     .up()                     lock ─▶ pending files in order ─▶ shoal_migrations rows
//!     .down(1)                  lock ─▶ newest applied down file ─▶ row removed
//!     .status()                 files × shoal_migrations
//! ```
//!
//! **Locking.** PostgreSQL, Shoal and SQLite apply every pending migration
//! in *one* transaction that first updates the single row of
//! `shoal_migrations_lock` — a row lock on PostgreSQL, the one writer slot
//! on Shoal and SQLite — so concurrent runners queue and a failure leaves
//! nothing half-applied. MySQL commits DDL implicitly, so there the runner
//! holds `GET_LOCK('shoal_orm_migrate')` and records each migration as soon
//! as it has run; a failure stops at the failing migration and says so.
//!
//! **SQLite rebuilds.** Foreign-key enforcement cannot change inside a
//! transaction, so the runner turns it off before `BEGIN`, runs
//! `PRAGMA foreign_key_check` before `COMMIT`, and turns it on again.
//!
//! **Shoal.** Generated DDL carries the model's distribution
//! (`WITH (shard_key = '…')`, `WITH (reference = true)`); the other
//! backends' files leave it out. A server that does not accept those options
//! yet makes `up` fail with its own error — see the guide.
//!
//! `Db::sync_schema` applies the additive part of a diff directly (no files,
//! never drops): for tests, examples and prototypes.

pub mod cli;
mod diff;
mod files;
mod introspect;

use std::path::{Path, PathBuf};

pub use diff::{diff, Plan, Rename, Scope};
pub use files::{read_dir, sanitize_name, split_statements, write_pair, MigrationFile};
pub use introspect::live_schema;

use crate::db::{run_exec, run_query, Db, Stmt};
use crate::dialect::Dialect;
use crate::error::{Error, Result};
use crate::schema::{TableDef, TableSchema};
use crate::value::Value;

/// The table recording applied migrations.
pub const MIGRATIONS_TABLE: &str = "shoal_migrations";
/// The one-row table whose row lock serialises migration runners.
pub const LOCK_TABLE: &str = "shoal_migrations_lock";

/// How long a MySQL runner waits for another runner's lock.
const MYSQL_LOCK_WAIT_SECONDS: i64 = 60;

/// One migration's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrationStatus {
    pub version: u64,
    pub name: String,
    pub applied: bool,
    /// Applied, but its file is gone or was edited since.
    pub problem: Option<String>,
}

/// Generates and applies the migrations in one directory.
pub struct Migrator {
    db: Db,
    dir: PathBuf,
    models: Vec<&'static TableDef>,
    renames: Vec<Rename>,
}

impl Migrator {
    pub fn new(db: &Db, dir: impl Into<PathBuf>) -> Migrator {
        Migrator { db: db.clone(), dir: dir.into(), models: Vec::new(), renames: Vec::new() }
    }

    /// The models the schema should match (every table of the application:
    /// tables absent from this list are dropped by `generate`).
    pub fn models(mut self, models: &[&'static TableDef]) -> Migrator {
        self.models.extend_from_slice(models);
        self
    }

    /// A rename hint; without one a renamed table or column is dropped and
    /// added again.
    pub fn rename(mut self, rename: Rename) -> Migrator {
        self.renames.push(rename);
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The changes `generate` would write, without writing them.
    pub async fn plan(&self) -> Result<Plan> {
        if self.models.is_empty() {
            return Err(Error::Migration("no models given: call .models(&[&User::TABLE, …]) first".into()));
        }
        let pending: Vec<MigrationStatus> = self.status().await?.into_iter().filter(|s| !s.applied).collect();
        if let Some(first) = pending.first() {
            return Err(Error::Migration(format!(
                "migration {:04}_{} is not applied yet; apply pending migrations before generating a new one",
                first.version, first.name
            )));
        }
        let live = user_tables(&self.db).await?;
        let desired: Vec<TableSchema> = self.models.iter().map(|t| t.to_schema()).collect();
        Ok(diff(self.db.dialect(), &desired, &live, &self.renames, Scope::Full))
    }

    /// Writes the next migration pair; `None` when the schema already
    /// matches the models.
    pub async fn generate(&self, name: &str) -> Result<Option<MigrationFile>> {
        let plan = self.plan().await?;
        if plan.is_empty() {
            return Ok(None);
        }
        write_pair(&self.dir, name, Some(self.db.dialect()), &plan.notes, &plan.up, &plan.down).map(Some)
    }

    /// Every migration on disk or in the database, oldest first.
    pub async fn status(&self) -> Result<Vec<MigrationStatus>> {
        let files = read_dir(&self.dir)?;
        let applied = applied(&self.db).await?;
        let mut out: Vec<MigrationStatus> = files
            .iter()
            .map(|f| {
                let record = applied.iter().find(|(v, _)| *v == f.version);
                MigrationStatus {
                    version: f.version,
                    name: f.name.clone(),
                    applied: record.is_some(),
                    problem: record
                        .filter(|(_, sum)| *sum != f.checksum())
                        .map(|_| "edited after it was applied".to_string()),
                }
            })
            .collect();
        for (v, _) in &applied {
            if !files.iter().any(|f| f.version == *v) {
                out.push(MigrationStatus {
                    version: *v,
                    name: "?".into(),
                    applied: true,
                    problem: Some("applied, but its file is missing".into()),
                });
            }
        }
        out.sort_by_key(|s| s.version);
        Ok(out)
    }

    /// Applies every pending migration (up to `target` when given); the
    /// versions applied.
    pub async fn up(&self) -> Result<Vec<u64>> {
        self.up_to(None).await
    }

    pub async fn up_to(&self, target: Option<u64>) -> Result<Vec<u64>> {
        let files = read_dir(&self.dir)?;
        let dialect = self.db.dialect();
        for f in &files {
            if let Some(d) = f.dialect() {
                if d != dialect {
                    return Err(Error::Migration(format!(
                        "{} was generated for {}, but this database is {}",
                        f.up_path.display(),
                        d.name(),
                        dialect.name()
                    )));
                }
            }
        }
        run_locked(&self.db, |applied| {
            for f in &files {
                if let Some((_, sum)) = applied.iter().find(|(v, _)| *v == f.version) {
                    if *sum != f.checksum() {
                        return Err(Error::Migration(format!(
                            "{} was edited after it was applied; restore it or write a new migration",
                            f.up_path.display()
                        )));
                    }
                }
            }
            Ok(files
                .iter()
                .filter(|f| !applied.iter().any(|(v, _)| *v == f.version))
                .filter(|f| target.is_none_or(|t| f.version <= t))
                .map(|f| Step::Up(f.clone()))
                .collect())
        })
        .await
    }

    /// Reverts the newest `steps` applied migrations; the versions reverted.
    pub async fn down(&self, steps: usize) -> Result<Vec<u64>> {
        let files = read_dir(&self.dir)?;
        run_locked(&self.db, |applied| {
            let mut versions: Vec<u64> = applied.iter().map(|(v, _)| *v).collect();
            versions.sort_unstable_by(|a, b| b.cmp(a));
            versions
                .into_iter()
                .take(steps)
                .map(|v| {
                    let f = files.iter().find(|f| f.version == v).ok_or_else(|| {
                        Error::Migration(format!("migration {v:04} is applied but its files are missing"))
                    })?;
                    if f.down.is_none() {
                        return Err(Error::Migration(format!("{} has no .down.sql file", f.up_path.display())));
                    }
                    Ok(Step::Down(f.clone()))
                })
                .collect()
        })
        .await
    }
}

impl Db {
    /// Creates what the models need and the database lacks (tables, columns,
    /// indexes, keys) and never drops anything. For tests, examples and
    /// prototypes; production schemas belong in reviewed migration files
    /// ([`Migrator`]). Returns the plan it applied (see `Plan::notes`).
    pub async fn sync_schema(&self, models: &[&'static TableDef]) -> Result<Plan> {
        let live = user_tables(self).await?;
        let desired: Vec<TableSchema> = models.iter().map(|t| t.to_schema()).collect();
        let plan = diff(self.dialect(), &desired, &live, &[], Scope::AdditiveOnly);
        if !plan.up.is_empty() {
            apply_statements(self, &plan.up).await?;
        }
        Ok(plan)
    }
}

/// The live schema without the migrator's own tables.
async fn user_tables(db: &Db) -> Result<std::collections::BTreeMap<String, TableSchema>> {
    let mut live = live_schema(db).await?;
    live.remove(MIGRATIONS_TABLE);
    live.remove(LOCK_TABLE);
    Ok(live)
}

/// Applied versions and checksums; empty before the first migration.
async fn applied(db: &Db) -> Result<Vec<(u64, String)>> {
    let live = live_schema(db).await?;
    if !live.contains_key(MIGRATIONS_TABLE) {
        return Ok(Vec::new());
    }
    let d = db.dialect();
    let sql = format!("SELECT version, checksum FROM {} ORDER BY version", d.ident(MIGRATIONS_TABLE));
    let rows = crate::db::Executor::__fetch(db, Stmt::read(sql, vec![]).bookkeeping()).await?;
    rows.into_rows()
        .map(|r| Ok((u64::try_from(r.get::<i64>("version")?).unwrap_or(0), r.get::<String>("checksum")?)))
        .collect()
}

enum Step {
    Up(MigrationFile),
    Down(MigrationFile),
}

fn bookkeeping_ddl(d: Dialect) -> Vec<String> {
    let text = d.column_type(crate::value::ColumnType::Text, Some(255), true);
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {} (version BIGINT NOT NULL PRIMARY KEY, name {text} NOT NULL, \
             checksum {text} NOT NULL, applied_at BIGINT NOT NULL)",
            d.ident(MIGRATIONS_TABLE)
        ),
        format!("CREATE TABLE IF NOT EXISTS {} (id INTEGER NOT NULL PRIMARY KEY, holder {text})", d.ident(LOCK_TABLE)),
    ]
}

fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Runs the steps `choose` picks from the applied list, under the lock.
async fn run_locked(db: &Db, choose: impl FnOnce(&[(u64, String)]) -> Result<Vec<Step>>) -> Result<Vec<u64>> {
    let d = db.dialect();
    let core = &db.core;
    for ddl in bookkeeping_ddl(d) {
        crate::db::Executor::__exec(db, Stmt::write(ddl, vec![]).bookkeeping()).await?;
    }
    let mut w = crate::dialect::SqlWriter::new(d);
    w.push(&format!("INSERT INTO {} (id, holder) VALUES (", d.ident(LOCK_TABLE)));
    w.bind(Value::Int(1));
    w.push(", NULL)");
    d.upsert(&["id"], &[], &mut w);
    let (sql, params) = w.finish();
    crate::db::Executor::__exec(db, Stmt::write(sql, params).bookkeeping()).await?;

    let _writer = core.writer_slot().await?;
    let mut conn = core.pool.acquire().await?;
    let holder = format!("pid {}", std::process::id());
    let transactional = d.transactional_ddl();
    if d == Dialect::Sqlite {
        conn.batch("PRAGMA foreign_keys = OFF").await?;
    }
    let result = async {
        if transactional {
            conn.in_transaction = true;
            conn.batch(d.begin()).await?;
            let mut w = crate::dialect::SqlWriter::new(d);
            w.push(&format!("UPDATE {} SET holder = ", d.ident(LOCK_TABLE)));
            w.bind(Value::Text(holder.clone()));
            w.push(" WHERE id = ");
            w.bind(Value::Int(1));
            let (sql, params) = w.finish();
            run_exec(core, &mut *conn, &Stmt::write(sql, params)).await?;
        } else {
            let got = run_query(
                core,
                &mut *conn,
                &Stmt::read(
                    "SELECT GET_LOCK(?, ?)",
                    vec![Value::Text("shoal_orm_migrate".into()), Value::Int(MYSQL_LOCK_WAIT_SECONDS)],
                ),
            )
            .await?;
            if got.first_value() != Some(Value::Int(1)) {
                return Err(Error::Migration(format!(
                    "another migration runner held the lock for {MYSQL_LOCK_WAIT_SECONDS} s"
                )));
            }
        }
        let sql = format!("SELECT version, checksum FROM {} ORDER BY version", d.ident(MIGRATIONS_TABLE));
        let rows = run_query(core, &mut *conn, &Stmt::read(sql, vec![])).await?;
        let applied: Vec<(u64, String)> = rows
            .into_rows()
            .map(|r| Ok((u64::try_from(r.get::<i64>("version")?).unwrap_or(0), r.get::<String>("checksum")?)))
            .collect::<Result<_>>()?;
        let steps = choose(&applied)?;
        let mut done = Vec::new();
        for step in steps {
            let (file, sql) = match &step {
                Step::Up(f) => (f, f.up.as_str()),
                Step::Down(f) => (f, f.down.as_deref().unwrap_or("")),
            };
            for stmt in split_statements(sql) {
                conn.batch(&stmt).await.map_err(|e| {
                    Error::Migration(format!(
                        "{:04}_{}: {e}{}\n  in: {stmt}",
                        file.version,
                        file.name,
                        if transactional { "" } else { " (MySQL: the statements before it stay applied)" }
                    ))
                })?;
            }
            let mut w = crate::dialect::SqlWriter::new(d);
            match step {
                Step::Up(_) => {
                    w.push(&format!(
                        "INSERT INTO {} (version, name, checksum, applied_at) VALUES (",
                        d.ident(MIGRATIONS_TABLE)
                    ));
                    w.bind(Value::Int(i64::try_from(file.version).unwrap_or(i64::MAX)));
                    w.push(", ");
                    w.bind(Value::Text(file.name.clone()));
                    w.push(", ");
                    w.bind(Value::Text(file.checksum()));
                    w.push(", ");
                    w.bind(Value::Int(now_seconds()));
                    w.push(")");
                }
                Step::Down(_) => {
                    w.push(&format!("DELETE FROM {} WHERE version = ", d.ident(MIGRATIONS_TABLE)));
                    w.bind(Value::Int(i64::try_from(file.version).unwrap_or(i64::MAX)));
                }
            }
            let (sql, params) = w.finish();
            run_exec(core, &mut *conn, &Stmt::write(sql, params)).await?;
            done.push(file.version);
        }
        if d == Dialect::Sqlite {
            let bad = run_query(core, &mut *conn, &Stmt::read("PRAGMA foreign_key_check", vec![])).await?;
            if let Some(row) = bad.into_rows().next() {
                return Err(Error::Migration(format!(
                    "the migration leaves rows whose foreign keys point nowhere (first: {row:?}); nothing was applied"
                )));
            }
        }
        if transactional {
            conn.batch("COMMIT").await?;
            conn.in_transaction = false;
        }
        Ok(done)
    }
    .await;
    if transactional && conn.in_transaction {
        if conn.batch("ROLLBACK").await.is_ok() {
            conn.in_transaction = false;
        }
    } else if !transactional {
        let release = Stmt::read("SELECT RELEASE_LOCK(?)", vec![Value::Text("shoal_orm_migrate".into())]);
        let _ = run_query(core, &mut *conn, &release).await;
    }
    if d == Dialect::Sqlite {
        conn.batch("PRAGMA foreign_keys = ON").await?;
    }
    result
}

/// Runs DDL statements atomically where the backend allows it.
async fn apply_statements(db: &Db, statements: &[String]) -> Result<()> {
    let d = db.dialect();
    let core = &db.core;
    let _writer = core.writer_slot().await?;
    let mut conn = core.pool.acquire().await?;
    if d == Dialect::Sqlite {
        conn.batch("PRAGMA foreign_keys = OFF").await?;
    }
    let result = async {
        if d.transactional_ddl() {
            conn.in_transaction = true;
            conn.batch(d.begin()).await?;
        }
        for stmt in statements {
            conn.batch(stmt).await.map_err(|e| Error::Migration(format!("{e}\n  in: {stmt}")))?;
        }
        if d == Dialect::Sqlite {
            let bad = run_query(core, &mut *conn, &Stmt::read("PRAGMA foreign_key_check", vec![])).await?;
            if !bad.is_empty() {
                return Err(Error::Migration("the change leaves dangling foreign keys; nothing was applied".into()));
            }
        }
        if d.transactional_ddl() {
            conn.batch("COMMIT").await?;
            conn.in_transaction = false;
        }
        Ok(())
    }
    .await;
    if conn.in_transaction && conn.batch("ROLLBACK").await.is_ok() {
        conn.in_transaction = false;
    }
    if d == Dialect::Sqlite {
        conn.batch("PRAGMA foreign_keys = ON").await?;
    }
    result
}
