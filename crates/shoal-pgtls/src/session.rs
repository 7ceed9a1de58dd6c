//! [`Session`]: what [`crate::Tls::connect`] opens, and [`Encryption`],
//! what its TLS negotiated.

use std::fmt;

use rustls::{ClientConnection, ProtocolVersion};
use tokio_postgres::Client;

use crate::connector::Connection;

/// An open session: the client, the connection task to spawn
/// (`tokio::spawn(session.connection)`), and whether it is encrypted.
pub struct Session {
    pub client: Client,
    /// Drives the socket; it ends when the socket closes.
    pub connection: Connection,
    /// What TLS negotiated; `None` for a plain session (`sslmode=disable`,
    /// a server that declined TLS under `prefer`, or `prefer`'s second
    /// attempt after a failed handshake).
    pub encryption: Option<Encryption>,
}

/// A session's TLS protocol version and cipher suite, as psql shows them
/// at start-up and in `\conninfo`:
///
/// ```text
/// SSL connection (protocol: TLSv1.3, cipher: TLS13_AES_256_GCM_SHA384)
///                 └──────────── Encryption's Display ────────────┘
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encryption {
    /// `TLSv1.3` or `TLSv1.2`, as OpenSSL, and so psql, writes it.
    pub protocol: String,
    /// The cipher suite as rustls names it (`TLS13_AES_256_GCM_SHA384`,
    /// `TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384`), which for TLS 1.2 is the
    /// IANA name; OpenSSL's names differ (`TLS_AES_256_GCM_SHA384`).
    pub cipher: String,
}

impl Encryption {
    /// What a finished handshake negotiated.
    pub(crate) fn of(connection: &ClientConnection) -> Encryption {
        let protocol = match connection.protocol_version() {
            Some(ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
            Some(ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
            Some(other) => format!("{other:?}"),
            // rustls sets both before the handshake completes.
            None => "unknown".to_string(),
        };
        let cipher = match connection.negotiated_cipher_suite() {
            Some(suite) => format!("{:?}", suite.suite()),
            None => "unknown".to_string(),
        };
        Encryption { protocol, cipher }
    }
}

impl fmt::Display for Encryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "protocol: {}, cipher: {}", self.protocol, self.cipher)
    }
}
