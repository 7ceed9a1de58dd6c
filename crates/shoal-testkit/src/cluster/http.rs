//! The smallest HTTP client that reads a node's `/api/status`: one GET over
//! HTTP/1.0 (the server closes the connection after the body, so no chunked
//! encoding or keep-alive to handle), with a deadline and a size bound.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response accepted; a status document is a few KiB.
const MAX_RESPONSE_BYTES: u64 = 1 << 20;

/// `GET path` from `addr`: the status code and the body.
pub(crate) async fn get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(u16, String)> {
    let request = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).await?;
        let mut response = Vec::new();
        stream.take(MAX_RESPONSE_BYTES).read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(timeout, request)
        .await
        .map_err(|_| anyhow!("GET http://{addr}{path}: no answer within {timeout:?}"))?
        .with_context(|| format!("GET http://{addr}{path}"))?;
    parse(&response).with_context(|| format!("GET http://{addr}{path}"))
}

fn parse(response: &[u8]) -> Result<(u16, String)> {
    let text = String::from_utf8_lossy(response);
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| anyhow!("response without a header end"))?;
    let status_line = head.lines().next().unwrap_or_default();
    let code = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("bad status line {status_line:?}"))?;
    Ok((code, body.to_string()))
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    #[test]
    fn parses_status_and_body() {
        let (code, body) = parse(b"HTTP/1.0 200 OK\r\ncontent-type: application/json\r\n\r\n{\"a\":1}").unwrap();
        assert_eq!((code, body.as_str()), (200, "{\"a\":1}"));
        assert!(parse(b"garbage").is_err());
        assert!(parse(b"HTTP/1.0 abc\r\n\r\n").is_err());
    }

    #[tokio::test]
    async fn gets_from_a_server_and_times_out_on_a_silent_one() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let n = socket.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"GET /api/status HTTP/1.0\r\n"));
            socket.write_all(b"HTTP/1.0 503 Busy\r\n\r\nlater").await.unwrap();
            // HTTP/1.0: the body ends where the connection does.
            drop(socket);
            // Accept the next one and say nothing.
            let (_silent, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        assert_eq!(get(addr, "/api/status", Duration::from_secs(5)).await.unwrap(), (503, "later".to_string()));
        let err = get(addr, "/api/status", Duration::from_millis(200)).await.unwrap_err();
        assert!(err.to_string().contains("no answer within"), "{err}");
        server.abort();
    }
}
