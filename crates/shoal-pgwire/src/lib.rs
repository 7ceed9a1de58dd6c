//! # shoal-pgwire — the PostgreSQL wire protocol front end
//!
//! Clients (`psql`, drivers, ORMs) talk to Shoal exactly as they talk to
//! PostgreSQL 16: protocol 3.0 over TCP, optionally inside TLS. This crate
//! owns everything about that conversation and nothing about SQL: it turns
//! protocol messages into calls on a [`Session`] (implemented by
//! `shoal-server`) and the session's [`Value`]s back into PostgreSQL's text or
//! binary encodings.
//!
//! ```text
//!  TcpListener ──serve()──▶ one task per connection (connection.rs)
//!                             │
//!     SSLRequest ─▶ 'S' + rustls handshake (tls.rs)  │  'N' when no cert is configured
//!     CancelRequest ─▶ CancelRegistry (cancel.rs) ─▶ the target session's Canceller
//!     StartupMessage ─▶ auth.rs: Policy::login — plain refused if TLS is required; client
//!                       certificate CN = user (tls.rs, when a client CA is configured);
//!                       then logged in by that certificate (--auth cert…), or
//!                       SCRAM-SHA-256 (pgwire's ScramAuth), or loopback trust
//!                    ─▶ Backend::connect ─▶ AuthenticationOk, ParameterStatus*, BackendKeyData, ReadyForQuery
//!                             │
//!     Query  ───────────────▶ Session::simple_query ─▶ RowDescription, DataRow*, CommandComplete … ReadyForQuery
//!     Parse  ───────────────▶ Session::prepare       (statement cache: name → Prepared)
//!     Bind   ─▶ codec.rs decodes parameters ─▶ portal (name → statement, params, result formats)
//!     Describe ─────────────▶ ParameterDescription / RowDescription from the Prepared
//!     Execute ──────────────▶ Session::execute ─▶ DataRow* (max_rows at a time) ─▶ PortalSuspended | CommandComplete
//!     Sync   ───────────────▶ ReadyForQuery(Session::transaction_status())
//!     EOF / Terminate / fatal ─▶ Session::close(), exactly once
//! ```
//!
//! The `pgwire` crate supplies the message types, their encoders and
//! decoders, and the SCRAM-SHA-256 server state machine. The connection loop
//! is Shoal's own rather than pgwire's `process_socket`, because Shoal needs
//! things that loop does not offer: a configurable per-message size limit
//! (`54000` before the body is even read), the session's own transaction
//! status in every ReadyForQuery, a guaranteed single `Session::close()`,
//! PostgreSQL's exact error wording for authentication, and immunity to
//! malformed frames (each frame is decoded in isolation, and a decoder panic
//! on hostile bytes is contained and reported as `08P01`).
//!
//! Roles of the types: [`WireConfig`] is what an operator configures;
//! [`serve`] is the accept loop; [`backend`] holds the contract with the
//! database ([`Backend`], [`Session`], [`Prepared`], [`StatementResult`]);
//! [`codec`] converts values; [`auth`] holds the login rules
//! ([`AuthMethod`], the loopback trust rule).
//!
//! Out of scope, deliberately: COPY (CopyData messages are ignored), GSSAPI
//! encryption (refused), protocol 3.2 features (clients are negotiated down to
//! 3.0), SCRAM channel binding (`SCRAM-SHA-256-PLUS`; plain SCRAM works over
//! TLS), LISTEN/NOTIFY, and the `pg_catalog` emulation (the SQL layer answers
//! catalog queries; this crate only reports the types it is given).

pub mod auth;
pub mod backend;
mod cancel;
pub mod codec;
mod connection;
mod framing;
mod tls;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use auth::AuthMethod;
pub use backend::{
    Backend, Canceller, Column, ConnectParams, Notice, Prepared, Session, StatementResult, TransactionStatus,
};
pub use shoal_common::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Paths of the PEM files for TLS.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates (PEM) for client certificates. `Some`: every TLS
    /// client is asked for a certificate, which must chain to one of these
    /// and name the connecting user as its subject CN, or the connection
    /// fails with FATAL `28000` (PostgreSQL's `clientcert=verify-full`; see
    /// `tls.rs`). A client that presents none is refused too, unless
    /// [`WireConfig::auth`] is `CertOrPassword`, which asks it for the
    /// password instead. Plain connections are not asked for one.
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    /// Reads every file and builds the TLS configuration, so a server can
    /// refuse to start on a missing or bad file ([`serve`] would fail the
    /// same way, later). The error names the file.
    pub fn check(&self) -> std::io::Result<()> {
        tls::acceptor(self).map(|_| ())
    }
}

/// How the wire front end behaves; one per listener.
#[derive(Clone, Debug)]
pub struct WireConfig {
    /// The only user name accepted when `password` is set.
    pub user: String,
    /// `Some`: clients must authenticate as `user` with SCRAM-SHA-256.
    /// `None`: no authentication, and only loopback clients are accepted.
    pub password: Option<String>,
    /// `Some`: SSLRequest is accepted and TLS negotiated with this
    /// certificate (and client certificates checked, if it names a CA).
    pub tls: Option<TlsFiles>,
    /// Refuse plain connections (FATAL `28000`), loopback included, as a
    /// `pg_hba.conf` with only `hostssl` lines does. Cancel requests are
    /// still accepted on plain connections (`auth.rs`). Needs `tls`.
    pub tls_required: bool,
    /// How clients log in (`auth.rs` has the table). The certificate
    /// methods need a client CA; `CertOrPassword` needs `password` and
    /// `Cert` refuses one (it would never be asked for).
    pub auth: AuthMethod,
    /// Largest frontend message accepted; larger ones get `54000` and the
    /// connection is closed (reading the rest of a huge message is the attack).
    pub max_message_bytes: usize,
    /// Reported as `server_version`; drivers parse the leading `16.4` to pick
    /// their PostgreSQL 16 behaviour.
    pub server_version: String,
}

impl Default for WireConfig {
    fn default() -> WireConfig {
        WireConfig {
            user: "shoal".into(),
            password: None,
            tls: None,
            tls_required: false,
            auth: AuthMethod::Password,
            max_message_bytes: 64 * 1024 * 1024,
            server_version: format!("16.4 (Shoal {})", env!("CARGO_PKG_VERSION")),
        }
    }
}

impl WireConfig {
    /// Checks that the settings fit together; the error (22023) names the
    /// server options to fix. [`serve`] refuses a configuration this
    /// refuses, so a server can check it before starting anything.
    pub fn check(&self) -> Result<(), shoal_common::Error> {
        let bad =
            |message: &str| Err(shoal_common::Error::new(shoal_common::SqlState::INVALID_PARAMETER_VALUE, message));
        let client_ca = self.tls.as_ref().is_some_and(|t| t.client_ca.is_some());
        if self.tls_required && self.tls.is_none() {
            return bad("--tls-required needs TLS: give --tls-cert and --tls-key too");
        }
        match self.auth {
            AuthMethod::Password => Ok(()),
            AuthMethod::Cert | AuthMethod::CertOrPassword if !client_ca => bad(&format!(
                "--auth {} logs clients in by certificate, so it needs --tls-client-ca (the CA that signs them), \
                 with --tls-cert and --tls-key",
                self.auth
            )),
            AuthMethod::Cert if self.password.is_some() => {
                bad("--auth cert never asks for a password, so --password (or SHOAL_PASSWORD) would be ignored: drop \
                 it, or use --auth cert-or-password to let clients without a certificate use the password")
            }
            AuthMethod::CertOrPassword if self.password.is_none() => {
                bad("--auth cert-or-password needs --password (or SHOAL_PASSWORD) for clients without a certificate; \
                 use --auth cert to accept certificates only")
            }
            AuthMethod::Cert | AuthMethod::CertOrPassword => Ok(()),
        }
    }
}

/// How long open connections get to finish after shutdown before `serve`
/// returns anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Accept loop: serves every connection on its own task until the listener
/// fails or `shutdown` resolves.
///
/// On shutdown, idle connections are told `57P01 terminating connection due to
/// administrator command` and closed; a statement in flight is allowed to
/// finish first. `serve` waits up to a few seconds for that before returning.
/// Fails immediately if the TLS files cannot be loaded or the settings do
/// not fit together ([`WireConfig::check`]).
pub async fn serve<B: Backend>(
    listener: TcpListener,
    backend: Arc<B>,
    config: Arc<WireConfig>,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let shared = Arc::new(connection::Shared::new(backend, config)?);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    let result = loop {
        tokio::select! {
            _ = &mut shutdown => break Ok(()),
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let shared = shared.clone();
                    let stop = stop_rx.clone();
                    tasks.spawn(async move { connection::run(socket, peer, shared, stop).await });
                }
                Err(err) if is_transient_accept_error(&err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%err, "accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(err) => break Err(err),
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    };
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async { while tasks.join_next().await.is_some() {} }).await;
    // Whatever is still running keeps running detached; dropping the JoinSet
    // would abort it mid-statement and skip Session::close().
    tasks.detach_all();
    result
}

/// Errors after which the listener is still usable.
fn is_transient_accept_error(err: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(err.kind(), ConnectionAborted | ConnectionReset | Interrupted | WouldBlock)
        || matches!(err.raw_os_error(), Some(23 | 24)) // ENFILE, EMFILE
}
