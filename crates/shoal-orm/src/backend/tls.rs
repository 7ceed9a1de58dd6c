//! TLS for `postgres://` and `shoal://`: libpq's `sslmode`,
//! `sslrootcert`, `sslcert` and `sslkey` in the URL, and the `PGSSL*`
//! environment variables for those it leaves out, over rustls.
//!
//! The rules and the code are `shoal-pgtls`'s, shared with the `shoal`
//! command line so that an option means the same thing to both (and to
//! `psql`): `split_conninfo` takes the options out of the URL before
//! tokio-postgres parses the rest, `Tls::new` reads their files once per
//! `Db` (so a missing one fails at `Db::connect`), and `Tls::connect`
//! opens each pooled session (under `sslmode=prefer`, with libpq's second
//! attempt without TLS after a failed handshake). A bad option is
//! `Error::Config` (22023); a failed connection `Error::Connect` (08001),
//! with `ConnectError`'s explanation.

pub use shoal_pgtls::SslMode;

use crate::error::Error;

/// A bad TLS option as the ORM reports it: `Error::Config` (22023).
pub(crate) fn config_error(e: shoal_pgtls::ConfigError) -> Error {
    Error::Config(e.to_string())
}
