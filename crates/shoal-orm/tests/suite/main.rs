//! One suite, four backends: every case runs against embedded SQLite, the
//! machine's PostgreSQL and MariaDB, and a Shoal server it starts.
//!
//! ```text
//!   suite!(crud::crud_roundtrip, …)
//!     ├─ sqlite::crud_roundtrip     sqlite::memory:
//!     ├─ postgres::crud_roundtrip   a fresh schema in 127.0.0.1:5432/test
//!     ├─ mysql::crud_roundtrip      a fresh database on 127.0.0.1:3306
//!     └─ shoal::crud_roundtrip      a fresh `shoal server` child process
//! ```
//!
//! Unreachable external backends are skipped with a printed reason, or
//! fail when `SHOAL_REQUIRE_EXTERNAL=1` (see `harness.rs`).

mod crud;
mod harness;
mod migrations;
mod models;
mod queries;
mod relations;
mod safety;
mod shoal_features;
mod tls;
mod transactions;
mod types;

macro_rules! backend_tests {
    ($backend:ident, $kind:ident; $($module:ident :: $case:ident),*) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let kind = crate::harness::Kind::$kind;
                    if let Some(t) = crate::harness::open(kind, stringify!($case)).await {
                        crate::$module::$case(t).await;
                    }
                }
            )*
        }
    };
}

macro_rules! suite {
    ($($module:ident :: $case:ident),* $(,)?) => {
        backend_tests!(sqlite, Sqlite; $($module::$case),*);
        backend_tests!(postgres, Postgres; $($module::$case),*);
        backend_tests!(mysql, Mysql; $($module::$case),*);
        backend_tests!(shoal, Shoal; $($module::$case),*);
    };
}

suite!(
    crud::crud_roundtrip,
    crud::composite_keys_and_types,
    crud::bulk_insert_upsert_and_filtered_writes,
    queries::filters_and_ordering,
    queries::aggregates_groups_and_projections,
    queries::joins,
    queries::streaming,
    relations::eager_loading_one_query_per_level,
    relations::eager_loading_chunks_and_edge_cases,
    relations::strict_mode_names_the_repeated_shape,
    transactions::commit_rollback_and_panic,
    transactions::savepoints_and_closed_handles,
    transactions::retry_helper,
    transactions::failed_statement_inside_a_transaction,
    safety::injection_strings_are_stored_verbatim,
    safety::typed_errors_with_sqlstates,
    safety::raw_sql_binds_every_value,
    migrations::generate_apply_revert,
    migrations::renames_drops_and_safety_checks,
    shoal_features::routing_hints_and_follower_reads,
    shoal_features::shard_grouped_eager_loads_and_explain,
    types::dates_decimals_and_uuids,
    types::numeric_precision_and_scale,
);
