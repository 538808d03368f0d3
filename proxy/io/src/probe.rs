//! One probe of an endpoint: a TCP connect, or an HTTP/1.1 GET whose status says healthy.
//! The proxy's active health checks and the local runtime's readiness checks both use it.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One probe of `address`: a TCP connect, or with `path` an HTTP/1.1 GET whose status is 2xx
/// or 3xx, within `timeout`.
pub async fn probe(address: &str, path: Option<&str>, timeout: Duration) -> bool {
    let attempt = async {
        let mut s = TcpStream::connect(address).await.ok()?;
        let Some(path) = path else { return Some(true) };
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nUser-Agent: sluice-health\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.ok()?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head).await.ok()?;
        let code: u16 = std::str::from_utf8(&head).ok()?.get(9..12)?.parse().ok()?;
        Some((200..400).contains(&code))
    };
    matches!(tokio::time::timeout(timeout, attempt).await, Ok(Some(true)))
}
