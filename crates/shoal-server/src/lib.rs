//! # shoal-server — one Shoal node
//!
//! Wires the layers together for one `shoal server` process:
//!
//! ```text
//! pgwire front (shoal-pgwire) ──▶ ShoalSession (session.rs)
//!                                   ├─ parse + plan (shoal-sql) against the published catalog
//!                                   ├─ reads  ──▶ Group::read / snapshot reader   ┐
//!                                   ├─ writes ──▶ batcher / WriteTxn ──▶ Raft      ├ shoal-raft
//!                                   └─ catalog queries ──▶ attached pg_catalog     ┘ (catalog_views.rs)
//! admin HTTP (http.rs): /api/status, /metrics (metrics.rs)
//! ```
//!
//! [`Node`] owns the meta group and the data group and publishes the
//! committed catalog; [`run`] starts the node and its listeners and stops
//! them on shutdown.

pub mod cancel;
pub mod catalog_views;
pub mod cluster;
pub mod config;
pub mod consistency;
pub mod http;
pub mod idempotency;
pub mod membership;
pub mod metrics;
pub mod node;
pub mod session;

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use shoal_common::{Error, Result, SqlState};
use shoal_pgwire::{AuthMethod, Backend, ConnectParams, TlsFiles, WireConfig};

pub use config::{ConfigFile, ServerConfig};
pub use node::Node;
pub use session::ShoalSession;

/// What clients see as `server_version` (drivers parse the leading 16.x).
pub const SERVER_VERSION: &str = concat!("16.4 (Shoal ", env!("CARGO_PKG_VERSION"), ")");

/// The full `version()` string.
pub const VERSION_STRING: &str = concat!(
    "PostgreSQL 16.4 (Shoal ",
    env!("CARGO_PKG_VERSION"),
    ") on x86_64-pc-linux-gnu, compiled by rustc, 64-bit"
);

/// Creates sessions for the wire layer.
pub struct NodeBackend {
    node: Arc<Node>,
}

#[async_trait]
impl Backend for NodeBackend {
    type Session = ShoalSession;

    async fn connect(&self, params: ConnectParams) -> Result<ShoalSession> {
        let mut session = ShoalSession::new(
            self.node.clone(),
            params.user,
            params.database,
            params.application_name.unwrap_or_default(),
        );
        // PGOPTIONS-style settings, applied as SET (a bad one refuses the connection).
        for (name, value) in params.options {
            session.apply_startup_setting(&name, value)?;
        }
        Ok(session)
    }
}

/// Starts a node and serves clients until `shutdown` resolves.
pub async fn run(config: ServerConfig, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
    let wire = Arc::new(wire_config(&config)?);
    if config.password.is_none() && config.auth == AuthMethod::Password {
        tracing::warn!("no password configured: only clients on this machine (loopback) can connect; set --password or SHOAL_PASSWORD");
    }
    let pg_listener = tokio::net::TcpListener::bind(config.pg_addr)
        .await
        .map_err(|e| Error::io(format!("cannot listen for PostgreSQL clients on {}", config.pg_addr), e))?;
    let http_listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .map_err(|e| Error::io(format!("cannot listen for HTTP on {}", config.http_addr), e))?;
    let rpc_listener = tokio::net::TcpListener::bind(config.rpc_addr)
        .await
        .map_err(|e| Error::io(format!("cannot listen for peers on {}", config.rpc_addr), e))?;
    let node = Node::start(config.clone(), rpc_listener).await?;
    tracing::info!(pg = %config.pg_addr, http = %config.http_addr, data = %config.data_dir.display(), "shoal node ready");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let http = {
        let mut stop = stop_rx.clone();
        let router = http::router(node.clone());
        tokio::spawn(async move {
            let _ = axum::serve(http_listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
        })
    };
    let backend = Arc::new(NodeBackend { node: node.clone() });
    let mut stop = stop_rx.clone();
    let served = shoal_pgwire::serve(pg_listener, backend, wire, async move {
        let _ = stop.wait_for(|s| *s).await;
    });
    tokio::pin!(served);
    let mut failed = None;
    tokio::select! {
        result = &mut served => {
            if let Err(e) = result {
                tracing::error!(error = %e, "PostgreSQL listener failed");
                failed = Some(Error::io("the PostgreSQL listener failed", e));
            }
        }
        () = shutdown => {}
    }
    let _ = stop_tx.send(true);
    let _ = http.await;
    node.shutdown().await;
    tracing::info!("shoal node stopped");
    failed.map_or(Ok(()), Err)
}

/// The wire front end's settings, checked now so that a bad combination
/// or file stops the server before it binds or touches anything.
fn wire_config(config: &ServerConfig) -> Result<WireConfig> {
    let wire = WireConfig {
        user: config.user.clone(),
        password: config.password.clone(),
        tls: client_tls(config)?,
        tls_required: config.tls_required,
        auth: config.auth,
        max_message_bytes: 64 << 20,
        server_version: SERVER_VERSION.to_string(),
    };
    wire.check()?;
    let client_ca = wire.tls.as_ref().is_some_and(|t| t.client_ca.is_some());
    match (wire.auth, client_ca) {
        (AuthMethod::Password, false) => {}
        (AuthMethod::Password, true) => tracing::info!(
            "TLS clients must present a certificate signed by --tls-client-ca whose CN is their user name, \
             then authenticate as usual; plain connections are not asked for one"
        ),
        (AuthMethod::Cert, _) => tracing::info!(
            "--auth cert: clients log in with a certificate signed by --tls-client-ca whose CN is their user \
             name, and in no other way"
        ),
        (AuthMethod::CertOrPassword, _) => tracing::info!(
            "--auth cert-or-password: a certificate signed by --tls-client-ca whose CN is the user logs in \
             without a password; clients without one authenticate with the password"
        ),
    }
    if wire.tls_required {
        tracing::info!("--tls-required: plain connections are refused, loopback included (cancel requests excepted)");
    }
    Ok(wire)
}

/// The TLS set-up for clients, its files read now so that a missing or bad
/// one stops the server before it starts (the error names the file).
fn client_tls(config: &ServerConfig) -> Result<Option<TlsFiles>> {
    let bad = |message: String| Error::new(SqlState::INVALID_PARAMETER_VALUE, message);
    let (cert, key) = match (&config.tls_cert, &config.tls_key, &config.tls_client_ca) {
        (Some(cert), Some(key), _) => (cert.clone(), key.clone()),
        (None, None, None) => return Ok(None),
        (None, None, Some(_)) => {
            return Err(bad("--tls-client-ca needs TLS: give --tls-cert and --tls-key too".into()));
        }
        _ => return Err(bad("--tls-cert and --tls-key must be given together".into())),
    };
    let files = TlsFiles { cert, key, client_ca: config.tls_client_ca.clone() };
    files.check().map_err(|e| bad(format!("TLS for clients: {e}")))?;
    Ok(Some(files))
}
