//! libpq's TLS options for tokio-postgres clients: `sslmode`,
//! `sslrootcert`, `sslcert`, `sslkey` and their `PGSSL*` environment
//! variables, over rustls (ring provider, no system libraries).
//!
//! Two clients share it, so that an option means the same thing to both,
//! and the same thing as to `psql`:
//!
//! * the ORM (`shoal-orm`), whose `postgres://` and `shoal://` URLs carry
//!   the options as query parameters;
//! * the `shoal` command line: `--sslmode`, `--sslrootcert`, `--sslcert`
//!   and `--sslkey` of `shoal sql` and `shoal cluster`, and the
//!   `key=value` connection string of `shoal bench --postgres`.
//!
//! ```text
//!   URL or key=value string ──split_conninfo──┐
//!                                             ├─▶ TlsOptions ──Tls::new──▶ Tls ──Tls::connect──┬─▶ Session: Client, Connection,
//!   flags ──TlsSettings::resolve──────────────┘    (PGSSL* fill     (files read,                │   Encryption when TLS
//!                                                   what is unset)   rustls set up)             └─▶ ConnectError, explained
//! ```
//!
//! The modes are libpq's:
//!
//! ```text
//!   sslmode       TLS        server certificate checked           server declines TLS   server agrees, handshake fails
//!   ───────────   ────────   ──────────────────────────────────   ───────────────────   ──────────────────────────────
//!   disable       never      —                                    (not asked)           —
//!   prefer (dflt) if offered no (verify-ca if sslrootcert given)  plain                 plain, on a second socket
//!   require       always     no (verify-ca if sslrootcert given)  error                 error
//!   verify-ca     always     chain to sslrootcert                 error                 error
//!   verify-full   always     chain to sslrootcert + host name     error                 error
//! ```
//!
//! Under `prefer`, as in libpq, a handshake that fails after the server
//! agreed to TLS — the server's (or a proxy's) TLS is broken, or its
//! certificate does not chain to `sslrootcert` — is followed by one more
//! attempt, without TLS. If that fails too, the [`ConnectError`] tells
//! both; against a server that refuses plain sessions (Shoal with
//! `--tls-required`) the second is its FATAL 28000. The retry gives up no
//! protection `prefer` had: an active attacker could as well answer the
//! SSLRequest with `N`. Not retried, as in libpq's handshake rule: a
//! failure after the handshake (the server refusing the login, or the
//! client's certificate — with TLS 1.3 that refusal arrives after the
//! client's half of the handshake). With several hosts, the retry is one
//! pass over them all without TLS after the pass with TLS, where libpq
//! retries host by host.
//!
//! tokio-postgres gives up after a failed handshake, under its `prefer`
//! too, with an error that does not say which step failed; so the TLS step
//! is this crate's (`handshake.rs`, over tokio-rustls), and records how
//! each handshake ended and, for a session that completed one, its
//! protocol and cipher ([`Encryption`], what psql prints as `SSL connection
//! (protocol: …, cipher: …)`).
//!
//! `verify-ca` and `verify-full` without `sslrootcert` use libpq's default
//! file, `~/.postgresql/root.crt`; no system certificate store is read
//! (`sslrootcert=system` is refused). Without verification, TLS still
//! checks the handshake's signatures, so it keeps out a passive listener
//! but not an active impostor — as in libpq.
//!
//! A client certificate (for a server that checks them, such as Shoal with
//! `--tls-client-ca` or PostgreSQL with `clientcert`) comes from `sslcert`
//! and `sslkey`, PEM files as libpq reads them, or from libpq's defaults
//! `~/.postgresql/postgresql.crt` and `.key` when those exist. It is
//! offered whenever TLS is used and the server asks for one:
//!
//! ```text
//!   sslcert            sslkey             result
//!   ─────────────────  ─────────────────  ───────────────────────────────────────────────
//!   given or default   given or default   presented (the key must match, 0600 as libpq)
//!   given or default   —                  ConfigError: a certificate without its key
//!   —                  given              ConfigError: a key without a certificate
//!   —                  — (or default)     no client certificate
//! ```
//!
//! Each option the user does not give comes from libpq's environment
//! variable for it, when that is set; what the user gives wins, option by
//! option:
//!
//! ```text
//!   given (URL, string, flag)   else the variable   else
//!   ─────────────────────────   ─────────────────   ──────────────────────────────────
//!   sslmode                     PGSSLMODE           prefer
//!   sslrootcert                 PGSSLROOTCERT       ~/.postgresql/root.crt (verify-*)
//!   sslcert                     PGSSLCERT           ~/.postgresql/postgresql.crt
//!   sslkey                      PGSSLKEY            ~/.postgresql/postgresql.key
//! ```
//!
//! A variable is checked as its option is (an empty or unknown value, a
//! missing file: [`ConfigError`]), and every message names the option as
//! the user wrote it — `sslcert` in a URL, `--sslcert` on a command line,
//! `PGSSLCERT` from the environment ([`Spelling`]) — so `PGSSLCERT
//! /etc/app.crt: No such file` says where the path came from. The
//! environment arrives as a lookup function ([`Env`]), so tests give their
//! own instead of changing the process's.
//!
//! tokio-postgres knows only disable/prefer/require and refuses options it
//! does not know, so [`split_conninfo`] takes these four out of a
//! connection string before tokio-postgres parses the rest, and
//! [`Tls::new`] builds the rustls configuration once (reading every file,
//! so a missing one fails there, before any connection). Channel binding
//! (SCRAM-SHA-256-PLUS) is computed as tokio-postgres-rustls computes it.
//!
//! Types: [`SslMode`]; [`TlsSettings`] (the options as given) and
//! [`TlsOptions`] (completed from the environment); [`Tls`] (the rustls
//! set-up and the connect call); [`Session`] and [`Encryption`] (what a
//! connect call opened); [`ConfigError`] (a bad option, before any
//! connection) and [`ConnectError`] (a failed connection).
//!
//! Out of scope: `sslmode=allow` (refused: plain first, and TLS only if the
//! server refuses plain — `prefer` reaches the same servers, encrypted
//! whenever it can), `sslrootcert=system`, certificate revocation lists
//! (`sslcrl`), encrypted keys (`sslpassword`), `sslnegotiation=direct`, and
//! libpq's other `prefer` retry, after a server's error response to a
//! StartupMessage sent over TLS.

mod connect_error;
mod connector;
mod conninfo;
mod error;
mod handshake;
mod identity;
mod mode;
mod options;
mod session;
mod verify;

pub use connect_error::ConnectError;
pub use connector::{Connection, Tls};
pub use conninfo::{split_conninfo, Split};
pub use error::ConfigError;
pub use mode::SslMode;
pub use options::{process_env, Env, Spelling, TlsOptions, TlsSettings};
pub use session::{Encryption, Session};

#[cfg(test)]
mod fake_server;

/// Files for the unit tests: client certificates and key modes.
#[cfg(test)]
pub(crate) mod testutil {
    use std::path::{Path, PathBuf};

    /// A self-signed client certificate (CN=app) and its key (mode 0600),
    /// `dir/<name>.crt` and `dir/<name>.key`.
    pub fn identity_files(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "app");
        let cert = params.self_signed(&key).unwrap();
        let (cert_path, key_path) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        set_mode(&key_path, 0o600);
        (cert_path, key_path)
    }

    pub fn set_mode(path: &Path, mode: u32) {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        #[cfg(not(unix))]
        let _ = (path, mode);
    }
}
