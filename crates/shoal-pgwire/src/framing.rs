//! Framing: bytes on the socket ⇄ pgwire message values.
//!
//! Every frontend message is `[type byte] length:i32 body` (the startup-phase
//! messages have no type byte). The framer reads the length first, so an
//! oversized message is refused before its body is read, then cuts exactly
//! one frame out of the read buffer and hands only that frame to pgwire's
//! decoder. Isolating the frame matters: pgwire's decoders trust inner counts
//! and would otherwise read into the next message — or panic on a short
//! buffer, which is why the decode call is also wrapped in `catch_unwind`
//! (contained here and reported as a protocol violation, never a crash).

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use pgwire::messages::startup::{GssEncRequest, SslRequest};
use pgwire::messages::{DecodeContext, PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::tokio_rustls::server::TlsStream;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// Flush the write buffer once it holds this much, so a large result is
/// streamed instead of accumulated.
const WRITE_HIGH_WATER_BYTES: usize = 256 * 1024;

/// The socket, before or after the TLS upgrade.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Transient state while the plain socket is handed to the TLS acceptor.
    Detached,
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Detached => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Detached => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Detached => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Detached => Poll::Ready(Ok(())),
        }
    }
}

/// Why no message could be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    Io(io::Error),
    /// The length header announced more than `max_message_bytes`.
    TooLarge {
        len: usize,
    },
    /// Malformed framing or a message pgwire could not decode.
    Protocol(String),
}

impl From<io::Error> for ReadError {
    fn from(err: io::Error) -> ReadError {
        ReadError::Io(err)
    }
}

/// A message-oriented view of one client socket.
pub(crate) struct Framer {
    pub(crate) stream: Stream,
    rbuf: BytesMut,
    wbuf: BytesMut,
    ctx: DecodeContext,
    max_message_bytes: usize,
}

impl Framer {
    pub(crate) fn new(socket: TcpStream, max_message_bytes: usize) -> Framer {
        Framer {
            stream: Stream::Plain(socket),
            rbuf: BytesMut::with_capacity(8 * 1024),
            wbuf: BytesMut::with_capacity(8 * 1024),
            ctx: DecodeContext::default(),
            max_message_bytes,
        }
    }

    /// After SSLRequest/GSSENCRequest handling: only StartupMessage or
    /// CancelRequest may come next.
    pub(crate) fn expect_startup_only(&mut self) {
        self.ctx.awaiting_frontend_ssl = false;
        self.ctx.awaiting_frontend_startup = true;
    }

    /// After the StartupMessage: every message now has a type byte.
    pub(crate) fn expect_typed_messages(&mut self) {
        self.ctx.awaiting_frontend_ssl = false;
        self.ctx.awaiting_frontend_startup = false;
    }

    /// True when bytes beyond the last message have already arrived (a client
    /// must not pipeline data behind an SSLRequest: it would bypass TLS).
    pub(crate) fn has_buffered_input(&self) -> bool {
        !self.rbuf.is_empty()
    }

    /// Reads the next message; `Ok(None)` is a clean end of stream between
    /// messages. Cancel-safe: partial input stays in the buffer.
    pub(crate) async fn read(&mut self) -> Result<Option<PgWireFrontendMessage>, ReadError> {
        loop {
            if let Some(msg) = self.try_decode()? {
                return Ok(Some(msg));
            }
            let n = self.stream.read_buf(&mut self.rbuf).await?;
            if n == 0 {
                return if self.rbuf.is_empty() {
                    Ok(None)
                } else {
                    Err(ReadError::Io(io::ErrorKind::UnexpectedEof.into()))
                };
            }
        }
    }

    fn try_decode(&mut self) -> Result<Option<PgWireFrontendMessage>, ReadError> {
        let startup_phase = self.ctx.awaiting_frontend_ssl || self.ctx.awaiting_frontend_startup;
        let offset = usize::from(!startup_phase);
        let Some(header) = self.rbuf.get(offset..offset + 4) else {
            return Ok(None);
        };
        let len = i32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let min_len = if startup_phase { 8 } else { 4 };
        if len < min_len {
            return Err(ReadError::Protocol(format!("invalid message length {len}")));
        }
        let len = len as usize;
        if len > self.max_message_bytes {
            return Err(ReadError::TooLarge { len });
        }
        let total = offset + len;
        if self.rbuf.len() < total {
            self.rbuf.reserve(total - self.rbuf.len());
            return Ok(None);
        }
        let mut frame = self.rbuf.split_to(total);
        if self.ctx.awaiting_frontend_ssl
            && !SslRequest::is_ssl_request_packet(&frame)
            && !GssEncRequest::is_gss_enc_request_packet(&frame)
        {
            // A StartupMessage or CancelRequest right away, without SSL negotiation.
            self.expect_startup_only();
        }
        let ctx = &self.ctx;
        match catch_unwind(AssertUnwindSafe(|| PgWireFrontendMessage::decode(&mut frame, ctx))) {
            Ok(Ok(Some(msg))) => Ok(Some(msg)),
            Ok(Ok(None)) => Err(ReadError::Protocol("incomplete message".into())),
            Ok(Err(err)) => Err(ReadError::Protocol(err.to_string())),
            Err(_) => Err(ReadError::Protocol("malformed message".into())),
        }
    }

    /// Queues a message; it is sent on the next [`Framer::flush`].
    pub(crate) fn queue(&mut self, msg: PgWireBackendMessage) {
        let mark = self.wbuf.len();
        if let Err(err) = msg.encode(&mut self.wbuf) {
            // Never leave half a message in the stream.
            self.wbuf.truncate(mark);
            tracing::error!(%err, "could not encode a backend message");
        }
    }

    /// Queues a message and writes out the buffer if it has grown large.
    pub(crate) async fn send(&mut self, msg: PgWireBackendMessage) -> io::Result<()> {
        self.queue(msg);
        if self.wbuf.len() >= WRITE_HIGH_WATER_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    /// Writes everything queued to the socket.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        self.stream.flush().await
    }

    /// Best-effort orderly close of the socket.
    pub(crate) async fn shutdown(&mut self) {
        let _ = self.flush().await;
        let _ = self.stream.shutdown().await;
    }
}
