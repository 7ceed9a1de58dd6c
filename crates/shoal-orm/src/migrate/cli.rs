//! The `migrate` command line, shared by the `shoal-orm` binary and by an
//! application's own migration binary.
//!
//! ```text
//!   shoal-orm migrate status   --url URL [--dir migrations]
//!   shoal-orm migrate up       --url URL [--dir migrations] [--to VERSION]
//!   shoal-orm migrate down     --url URL [--dir migrations] [--steps N]
//!   shoal-orm migrate new NAME           [--dir migrations]       an empty pair to write by hand
//!   <your binary> migrate generate NAME --url URL [--rename-column users.name=full_name]
//! ```
//!
//! `generate` diffs *models* against the database, and models live in the
//! application, so it is available from a binary the application builds:
//!
//! ```no_run
//! # use shoal_orm::prelude::*;
//! # #[derive(Model, Clone)] #[model(table = "users")] struct User { #[model(primary_key)] id: i64 }
//! // src/bin/migrate.rs
//! fn main() -> std::process::ExitCode {
//!     shoal_orm::migrate::cli::main(&[&User::TABLE])
//! }
//! ```
//!
//! The URL may also come from `DATABASE_URL`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use super::{Migrator, Rename};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::schema::TableDef;

#[derive(Parser, Debug)]
#[command(name = "shoal-orm", about = "shoal-orm's command line: versioned migrations", version)]
struct Cli {
    #[command(subcommand)]
    command: Top,
}

#[derive(Subcommand, Debug)]
enum Top {
    /// Create, apply, revert and inspect migrations.
    Migrate {
        #[command(subcommand)]
        action: Action,
    },
}

#[derive(clap::Args, Debug, Clone)]
struct Target {
    /// Database URL: sqlite://file.db, postgres://…, mysql://…, shoal://…
    #[arg(long, env = "DATABASE_URL")]
    url: String,
    /// Directory holding the migration files.
    #[arg(long, default_value = "migrations")]
    dir: PathBuf,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// List migrations and whether each is applied.
    Status {
        #[command(flatten)]
        target: Target,
    },
    /// Apply pending migrations, in order, under the migration lock.
    Up {
        #[command(flatten)]
        target: Target,
        /// Stop after this version.
        #[arg(long)]
        to: Option<u64>,
    },
    /// Revert the newest applied migrations.
    Down {
        #[command(flatten)]
        target: Target,
        /// How many to revert.
        #[arg(long, default_value_t = 1)]
        steps: usize,
    },
    /// Write an empty up/down pair to fill in by hand.
    New {
        name: String,
        #[arg(long, default_value = "migrations")]
        dir: PathBuf,
    },
    /// Diff the models against the database and write the next migration
    /// (only in a binary that passes its models to `cli::main`).
    Generate {
        name: String,
        #[command(flatten)]
        target: Target,
        /// A renamed table: OLD=NEW (without it the old table is dropped).
        #[arg(long = "rename-table", value_name = "OLD=NEW")]
        rename_table: Vec<String>,
        /// A renamed column: TABLE.OLD=NEW (without it the column is dropped and re-added).
        #[arg(long = "rename-column", value_name = "TABLE.OLD=NEW")]
        rename_column: Vec<String>,
    },
}

fn parse_renames(tables: &[String], columns: &[String]) -> Result<Vec<Rename>> {
    let mut out = Vec::new();
    for t in tables {
        let (from, to) =
            t.split_once('=').ok_or_else(|| Error::Config(format!("--rename-table {t}: expected OLD=NEW")))?;
        out.push(Rename::table(from, to));
    }
    for c in columns {
        let parsed = c.split_once('=').and_then(|(left, to)| left.split_once('.').map(|(t, from)| (t, from, to)));
        let (table, from, to) =
            parsed.ok_or_else(|| Error::Config(format!("--rename-column {c}: expected TABLE.OLD=NEW")))?;
        out.push(Rename::column(table, from, to));
    }
    Ok(out)
}

/// Runs the command line `args` (program name first) with these models;
/// the text to print.
pub async fn run(models: &[&'static TableDef], args: impl IntoIterator<Item = String>) -> Result<String> {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion) => {
            return Ok(e.to_string())
        }
        Err(e) => return Err(Error::Config(e.to_string())),
    };
    let Top::Migrate { action } = cli.command;
    match action {
        Action::New { name, dir } => {
            let f = super::write_pair(&dir, &name, None, &[], &[], &[])?;
            Ok(format!("wrote {} and its .down.sql", f.up_path.display()))
        }
        Action::Status { target } => {
            let db = Db::connect(&target.url).await?;
            let status = Migrator::new(&db, &target.dir).status().await?;
            if status.is_empty() {
                return Ok(format!("no migrations in {}", target.dir.display()));
            }
            let lines: Vec<String> = status
                .iter()
                .map(|s| {
                    let state = if s.applied { "applied" } else { "pending" };
                    let problem = s.problem.as_deref().map(|p| format!("  ({p})")).unwrap_or_default();
                    format!("{:04}  {state:8} {}{problem}", s.version, s.name)
                })
                .collect();
            Ok(lines.join("\n"))
        }
        Action::Up { target, to } => {
            let db = Db::connect(&target.url).await?;
            let applied = Migrator::new(&db, &target.dir).up_to(to).await?;
            Ok(match applied.as_slice() {
                [] => "nothing to apply".to_string(),
                v => format!("applied {}", v.iter().map(|n| format!("{n:04}")).collect::<Vec<_>>().join(", ")),
            })
        }
        Action::Down { target, steps } => {
            let db = Db::connect(&target.url).await?;
            let reverted = Migrator::new(&db, &target.dir).down(steps).await?;
            Ok(match reverted.as_slice() {
                [] => "nothing to revert".to_string(),
                v => format!("reverted {}", v.iter().map(|n| format!("{n:04}")).collect::<Vec<_>>().join(", ")),
            })
        }
        Action::Generate { name, target, rename_table, rename_column } => {
            if models.is_empty() {
                return Err(Error::Config(
                    "generate compares your models with the database, so it runs from a binary of your \
                     application: fn main() -> ExitCode { shoal_orm::migrate::cli::main(&[&User::TABLE, …]) }"
                        .into(),
                ));
            }
            let db = Db::connect(&target.url).await?;
            let mut migrator = Migrator::new(&db, &target.dir).models(models);
            for r in parse_renames(&rename_table, &rename_column)? {
                migrator = migrator.rename(r);
            }
            Ok(match migrator.generate(&name).await? {
                Some(f) => format!("wrote {} and its .down.sql", f.up_path.display()),
                None => "the database already matches the models".to_string(),
            })
        }
    }
}

/// The whole program: parse `std::env::args`, run, print, exit 0 or 1.
pub fn main(models: &[&'static TableDef]) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(models, std::env::args())) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error ({}): {e}", e.sqlstate());
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rename_flags_parse_or_say_why() {
        let r = parse_renames(&["a=b".into()], &["t.x=y".into()]).unwrap();
        assert_eq!(r, vec![Rename::table("a", "b"), Rename::column("t", "x", "y")]);
        assert!(parse_renames(&["ab".into()], &[]).is_err());
        assert!(parse_renames(&[], &["tx=y".into()]).is_err());
    }
}
