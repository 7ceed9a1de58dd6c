//! `shoal-orm migrate …`: status, up, down and new, for any database URL.
//!
//! Generating a migration from models needs the application's models, so it
//! runs from the application's own binary calling
//! `shoal_orm::migrate::cli::main(&[&User::TABLE, …])` (see `docs/orm.md`).

fn main() -> std::process::ExitCode {
    shoal_orm::migrate::cli::main(&[])
}
