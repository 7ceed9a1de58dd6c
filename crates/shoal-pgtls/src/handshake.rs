//! [`Connector`]: the TLS step of a tokio-postgres connection, over
//! rustls, keeping a [`Record`] of how each handshake ended.
//!
//! tokio-postgres asks its connector for TLS once the server has answered
//! `S` to the SSLRequest. If the handshake then fails, tokio-postgres gives
//! up — under its `prefer` too — with an error that does not say which
//! step failed. [`crate::Tls::connect`] reads the record afterwards: a
//! failed handshake is libpq's reason to try once more without TLS under
//! `prefer`, and a completed one says what the session negotiated.
//!
//! ```text
//!   Tls::connect ──new Record──▶ Connector ──make_tls_connect──▶ Handshake ──connect──▶ Stream
//!        ▲                        (one per socket: forgets        (records the protocol and
//!        │                         the last socket's result)       cipher, or that it failed)
//!        └──────────── reads the Record once tokio-postgres returns ─────┘
//! ```
//!
//! tokio-postgres-rustls does the same TLS, but keeps its stream's rustls
//! session private, so neither the outcome nor the protocol and cipher can
//! be read from it. This is its connector with the record added; channel
//! binding (`tls-server-end-point`, for SCRAM-SHA-256-PLUS) is computed as
//! it computes it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use sha2::{Digest, Sha256, Sha384, Sha512};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
use tokio_rustls::TlsConnector;
use x509_cert::der::oid::db::rfc5912::{
    ECDSA_WITH_SHA_256, ECDSA_WITH_SHA_384, ID_SHA_1, ID_SHA_256, ID_SHA_384, ID_SHA_512, SHA_1_WITH_RSA_ENCRYPTION,
    SHA_256_WITH_RSA_ENCRYPTION, SHA_384_WITH_RSA_ENCRYPTION, SHA_512_WITH_RSA_ENCRYPTION,
};
use x509_cert::der::Decode;
use x509_cert::Certificate;

use crate::session::Encryption;

/// How the handshakes of one [`crate::Tls::connect`] call ended, shared by
/// the connector tokio-postgres drives and the call that reads it after.
#[derive(Clone, Default)]
pub(crate) struct Record(Arc<Mutex<Handshakes>>);

#[derive(Default)]
struct Handshakes {
    /// What the current socket's handshake negotiated: `None` until it
    /// completes, and for a socket whose server declined TLS.
    current: Option<Encryption>,
    /// A handshake failed on some socket of the call (tokio-postgres tries
    /// each host and address in turn, one socket each).
    failed: bool,
}

impl Record {
    /// What the session tokio-postgres returned negotiated; `None` if it
    /// is plain.
    pub(crate) fn encryption(&self) -> Option<Encryption> {
        self.lock().current.clone()
    }

    /// A server agreed to TLS and the handshake then failed.
    pub(crate) fn handshake_failed(&self) -> bool {
        self.lock().failed
    }

    fn lock(&self) -> MutexGuard<'_, Handshakes> {
        // The guarded code cannot panic, but a poisoned record is still a
        // true one.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// tokio-postgres' TLS connector for one connect call, writing to its
/// [`Record`].
pub(crate) struct Connector {
    config: Arc<ClientConfig>,
    record: Record,
}

impl Connector {
    pub(crate) fn new(config: Arc<ClientConfig>, record: Record) -> Connector {
        Connector { config, record }
    }
}

impl<S> MakeTlsConnect<S> for Connector
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Stream<S>;
    type TlsConnect = Handshake;
    type Error = io::Error;

    /// Called once per socket, before the SSLRequest.
    fn make_tls_connect(&mut self, hostname: &str) -> Result<Handshake, io::Error> {
        // A new socket: what an earlier one negotiated is not its session's.
        self.record.lock().current = None;
        Ok(Handshake {
            connector: TlsConnector::from(self.config.clone()),
            hostname: hostname.to_string(),
            record: self.record.clone(),
        })
    }
}

/// The handshake on one socket whose server answered `S`.
pub(crate) struct Handshake {
    connector: TlsConnector,
    /// The host as configured: the name sent (SNI) and, under
    /// `verify-full`, the name the certificate must hold.
    hostname: String,
    record: Record,
}

impl<S> TlsConnect<S> for Handshake
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Stream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Stream<S>>> + Send>>;

    fn connect(self, socket: S) -> Self::Future {
        let Handshake { connector, hostname, record } = self;
        Box::pin(async move {
            let result = match ServerName::try_from(hostname) {
                Ok(name) => connector.connect(name, socket).await,
                Err(e) => Err(io::Error::new(io::ErrorKind::InvalidInput, e)),
            };
            {
                let mut handshakes = record.lock();
                match &result {
                    Ok(stream) => handshakes.current = Some(Encryption::of(stream.get_ref().1)),
                    Err(_) => handshakes.failed = true,
                }
            }
            result.map(Stream)
        })
    }
}

/// A TLS session's byte stream.
pub(crate) struct Stream<S>(tokio_rustls::client::TlsStream<S>);

impl<S> tokio_postgres::tls::TlsStream for Stream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// `tls-server-end-point` (RFC 5929): the server certificate's hash, by
    /// the hash of its signature (SHA-1 raised to SHA-256); none for a
    /// certificate signed without one (Ed25519), as in libpq.
    fn channel_binding(&self) -> ChannelBinding {
        let (_, session) = self.0.get_ref();
        let Some(leaf) = session.peer_certificates().and_then(|chain| chain.first()) else {
            return ChannelBinding::none();
        };
        let Ok(cert) = Certificate::from_der(leaf) else { return ChannelBinding::none() };
        match server_end_point(cert.signature_algorithm.oid, leaf) {
            Some(hash) => ChannelBinding::tls_server_end_point(hash),
            None => ChannelBinding::none(),
        }
    }
}

/// The `tls-server-end-point` hash of `cert`, signed by `algorithm`.
fn server_end_point(algorithm: x509_cert::der::oid::ObjectIdentifier, cert: &[u8]) -> Option<Vec<u8>> {
    match algorithm {
        ID_SHA_1 | ID_SHA_256 | SHA_1_WITH_RSA_ENCRYPTION | SHA_256_WITH_RSA_ENCRYPTION | ECDSA_WITH_SHA_256 => {
            Some(Sha256::digest(cert).to_vec())
        }
        ID_SHA_384 | SHA_384_WITH_RSA_ENCRYPTION | ECDSA_WITH_SHA_384 => Some(Sha384::digest(cert).to_vec()),
        ID_SHA_512 | SHA_512_WITH_RSA_ENCRYPTION => Some(Sha512::digest(cert).to_vec()),
        _ => None,
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Stream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash follows the certificate's signature algorithm, as RFC 5929
    /// and tokio-postgres-rustls say.
    #[test]
    fn channel_binding_hashes_by_the_signature_algorithm() {
        for (alg, hash_len) in [
            (&rcgen::PKCS_ECDSA_P256_SHA256, Some(32)),
            (&rcgen::PKCS_ECDSA_P384_SHA384, Some(48)),
            (&rcgen::PKCS_ED25519, None),
        ] {
            let key = rcgen::KeyPair::generate_for(alg).unwrap();
            let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().self_signed(&key).unwrap();
            let der = cert.der().to_vec();
            let oid = Certificate::from_der(&der).unwrap().signature_algorithm.oid;
            let hash = server_end_point(oid, &der);
            assert_eq!(hash.as_ref().map(Vec::len), hash_len, "{alg:?}");
            if hash_len == Some(32) {
                assert_eq!(hash.unwrap(), Sha256::digest(&der).to_vec());
            }
        }
    }
}
