//! A PostgreSQL server exactly as real as the connect tests need: it
//! answers the SSLRequest as told (decline, a broken TLS, or a real TLS
//! handshake), then answers the StartupMessage with a login or a FATAL
//! 28000, and counts the sockets clients opened.
//!
//! ```text
//!   client                     FakeServer
//!   SSLRequest ───────────────▶ Answer::Decline: 'N'      → StartupMessage in plain
//!                               Answer::Broken:  'S', then bytes that are not TLS, close
//!                               Answer::Serve:   'S', rustls handshake → StartupMessage in TLS
//!   StartupMessage ───────────▶ Login::Accept: AuthenticationOk, ReadyForQuery
//!                               Login::Refuse: ErrorResponse FATAL 28000
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// The SSLRequest's code, where a StartupMessage has its protocol version.
const SSL_REQUEST: u32 = 80877103;
/// A StartupMessage's protocol version, 3.0.
const PROTOCOL_3_0: u32 = 196608;

/// How the server answers an SSLRequest.
#[derive(Clone)]
pub(crate) enum Answer {
    /// `N`: no TLS here.
    Decline,
    /// `S`, then an HTTP error where the ServerHello should be: a server
    /// (or a proxy in front of it) whose TLS is broken.
    Broken,
    /// `S` and a real handshake.
    Serve(Arc<ServerConfig>),
}

/// How the server answers a StartupMessage.
#[derive(Clone, Copy)]
pub(crate) enum Login {
    Accept,
    /// FATAL 28000 with this message.
    Refuse(&'static str),
}

pub(crate) struct FakeServer {
    pub port: u16,
    sockets: Arc<AtomicUsize>,
}

impl FakeServer {
    /// Listens on a free loopback port until the test's runtime ends.
    pub(crate) async fn start(answer: Answer, login: Login) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let sockets = Arc::new(AtomicUsize::new(0));
        let counted = sockets.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let answer = answer.clone();
                tokio::spawn(async move {
                    // A client that gives up mid-way is the test's business.
                    let _ = session(socket, answer, login).await;
                });
            }
        });
        FakeServer { port, sockets }
    }

    /// The sockets clients have opened so far.
    pub(crate) fn sockets(&self) -> usize {
        self.sockets.load(Ordering::SeqCst)
    }
}

/// A rustls server configuration with a fresh self-signed certificate for
/// `localhost`, offering only `versions`.
pub(crate) fn server_tls(versions: &[&'static rustls::SupportedProtocolVersion]) -> Arc<ServerConfig> {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().self_signed(&key).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(versions)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(cert.der().to_vec())], key)
        .unwrap();
    Arc::new(config)
}

async fn session(mut socket: tokio::net::TcpStream, answer: Answer, login: Login) -> std::io::Result<()> {
    let (length, code) = (socket.read_u32().await?, socket.read_u32().await?);
    if code != SSL_REQUEST {
        return startup(socket, length - 8, login).await;
    }
    match answer {
        Answer::Decline => {
            socket.write_all(b"N").await?;
            let length = socket.read_u32().await?;
            assert_eq!(socket.read_u32().await?, PROTOCOL_3_0);
            startup(socket, length - 8, login).await
        }
        Answer::Broken => {
            socket.write_all(b"S").await?;
            let mut client_hello = [0; 512];
            let _ = socket.read(&mut client_hello).await?;
            socket.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await?;
            socket.shutdown().await?;
            drain(socket).await
        }
        Answer::Serve(config) => {
            socket.write_all(b"S").await?;
            let mut tls = tokio_rustls::TlsAcceptor::from(config).accept(socket).await?;
            let length = tls.read_u32().await?;
            assert_eq!(tls.read_u32().await?, PROTOCOL_3_0);
            startup(tls, length - 8, login).await
        }
    }
}

/// Reads the rest of a StartupMessage (`remaining` bytes of parameters)
/// and answers it.
async fn startup<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    remaining: u32,
    login: Login,
) -> std::io::Result<()> {
    let mut parameters = vec![0; remaining as usize];
    stream.read_exact(&mut parameters).await?;
    match login {
        Login::Accept => {
            // AuthenticationOk, ReadyForQuery (idle).
            stream.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 0, b'Z', 0, 0, 0, 5, b'I']).await?;
        }
        Login::Refuse(message) => {
            let mut fields = Vec::new();
            for (tag, value) in [(b'S', "FATAL"), (b'V', "FATAL"), (b'C', "28000"), (b'M', message)] {
                fields.push(tag);
                fields.extend_from_slice(value.as_bytes());
                fields.push(0);
            }
            fields.push(0);
            stream.write_all(b"E").await?;
            stream.write_u32(fields.len() as u32 + 4).await?;
            stream.write_all(&fields).await?;
        }
    }
    stream.flush().await?;
    drain(stream).await
}

/// Reads until the client closes, so that it never meets a reset.
async fn drain<S: AsyncRead + Unpin>(mut stream: S) -> std::io::Result<()> {
    let mut buf = [0; 1024];
    while stream.read(&mut buf).await? > 0 {}
    Ok(())
}
