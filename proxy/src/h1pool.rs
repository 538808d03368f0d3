//! Keep-alive HTTP/1.1 connections to one endpoint, for the request path's most common case.
//!
//! Each endpoint owns its pool, so finding a connection is a short scan of a small vector under
//! an uncontended lock: no key to hash, no task spawned per request (the general-purpose
//! client's pool does both). A connection is taken out while its request is sent and put back
//! as soon as the response head has arrived; while the response body is still being read it
//! is not ready, and a later checkout passes over it. Closed connections and those idle for too
//! long are dropped when a scan meets them.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyper::client::conn::http1::SendRequest;

/// One kept connection.
struct Kept<B> {
    sender: SendRequest<B>,
    since: Instant,
}

/// The pool of one endpoint's HTTP/1.1 connections.
pub struct H1Pool<B> {
    kept: Mutex<Vec<Kept<B>>>,
}

impl<B> Default for H1Pool<B> {
    fn default() -> Self {
        Self {
            kept: Mutex::new(Vec::new()),
        }
    }
}

impl<B> std::fmt::Debug for H1Pool<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H1Pool")
            .field("kept", &self.kept.lock().map(|k| k.len()).unwrap_or(0))
            .finish()
    }
}

impl<B> H1Pool<B>
where
    B: hyper::body::Body + 'static,
{
    /// A connection ready for a request, newest first; drops the closed ones and those idle
    /// longer than `idle_timeout` on the way.
    pub fn checkout(&self, now: Instant, idle_timeout: Duration) -> Option<SendRequest<B>> {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let mut i = kept.len();
        while i > 0 {
            i -= 1;
            let k = &kept[i];
            if k.sender.is_closed() || now.saturating_duration_since(k.since) > idle_timeout {
                kept.swap_remove(i);
            } else if k.sender.is_ready() {
                return Some(kept.swap_remove(i).sender);
            }
        }
        None
    }

    /// Keeps a connection whose request has been answered (its body may still be coming);
    /// drops it when `max` are kept already.
    pub fn put_back(&self, sender: SendRequest<B>, now: Instant, max: usize) {
        if sender.is_closed() {
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() < max {
            kept.push(Kept { sender, since: now });
        }
    }

    /// Connections kept, busy or not.
    pub fn len(&self) -> usize {
        self.kept.lock().map(|k| k.len()).unwrap_or(0)
    }

    /// Whether no connection is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt as _, Empty};
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    type Body = Empty<Bytes>;

    /// A loopback server answering each request on a connection with a short response, the
    /// body of the first one held back until `release` is notified.
    async fn server(release: std::sync::Arc<tokio::sync::Notify>) -> std::net::SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let release = release.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let mut first = true;
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
                            .await
                            .unwrap();
                        if first {
                            release.notified().await;
                            first = false;
                        }
                        s.write_all(b"ok").await.unwrap();
                    }
                });
            }
        });
        addr
    }

    async fn connect(addr: std::net::SocketAddr) -> SendRequest<Body> {
        let s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
            .await
            .unwrap();
        tokio::spawn(conn);
        sender
    }

    fn get() -> http::Request<Body> {
        http::Request::builder()
            .uri("/")
            .header("host", "x")
            .body(Empty::new())
            .unwrap()
    }

    #[tokio::test]
    async fn a_connection_is_reused_only_once_its_response_body_has_been_read() {
        let release = std::sync::Arc::new(tokio::sync::Notify::new());
        let addr = server(release.clone()).await;
        let pool: H1Pool<Body> = H1Pool::default();
        let idle = Duration::from_secs(60);
        assert!(pool.checkout(Instant::now(), idle).is_none());
        let mut s = connect(addr).await;
        let resp = s.send_request(get()).await.unwrap();
        // back in the pool at the head, but busy until the body is read
        pool.put_back(s, Instant::now(), 8);
        assert_eq!(pool.len(), 1);
        assert!(pool.checkout(Instant::now(), idle).is_none());
        release.notify_one();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ok");
        let mut s = loop {
            if let Some(s) = pool.checkout(Instant::now(), idle) {
                break s;
            }
            tokio::task::yield_now().await;
        };
        assert!(pool.is_empty());
        let resp = s.send_request(get()).await.unwrap();
        assert_eq!(resp.status(), 200);
    }

    #[tokio::test]
    async fn closed_idle_too_long_and_surplus_connections_are_dropped() {
        let release = std::sync::Arc::new(tokio::sync::Notify::new());
        release.notify_one();
        let addr = server(release).await;
        let pool: H1Pool<Body> = H1Pool::default();
        let t0 = Instant::now();
        for _ in 0..3 {
            pool.put_back(connect(addr).await, t0, 2);
        }
        assert_eq!(pool.len(), 2, "the third one is over the maximum");
        // idle longer than the timeout: dropped, not handed out
        let later = t0 + Duration::from_secs(61);
        assert!(pool.checkout(later, Duration::from_secs(60)).is_none());
        assert!(pool.is_empty());
    }
}
