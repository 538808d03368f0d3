//! One HTTP exchange with a timeout: the request sent, the answer's status and whole body
//! read, all within the time given. The proxy's subscription, the controller's API client
//! and the analysis providers use it.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

/// A plain-HTTP client whose requests carry a whole body.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Why an exchange brought no answer.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The connection could not be made, or broke, or the answer was not HTTP.
    #[error("{0}")]
    Failed(String),
    /// The answer (head and body) did not come within the time given.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// A client that gives up connecting after `connect_timeout`.
pub fn client(connect_timeout: Duration) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_nodelay(true);
    Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector)
}

/// Sends `req` and reads the answer whole, within `timeout`.
pub async fn exchange(
    client: &HttpClient,
    req: Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<(StatusCode, Bytes), ExchangeError> {
    let failed = |e: &dyn std::fmt::Display| ExchangeError::Failed(e.to_string());
    let whole = async {
        let resp = client.request(req).await.map_err(|e| failed(&e))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| failed(&e))?
            .to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(timeout, whole)
        .await
        .map_err(|_| ExchangeError::Timeout(timeout))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    fn get(addr: std::net::SocketAddr) -> Request<Full<Bytes>> {
        Request::get(format!("http://{addr}/"))
            .body(Full::new(Bytes::new()))
            .unwrap()
    }

    #[tokio::test]
    async fn an_answer_comes_whole_and_a_silent_server_times_out() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap();
            // the second connection hears nothing back
            let (_silent, _) = l.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let c = client(Duration::from_secs(1));
        let (status, body) = exchange(&c, get(addr), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!((status.as_u16(), &body[..]), (201, &b"ok"[..]));
        let fresh = client(Duration::from_secs(1));
        let e = exchange(&fresh, get(addr), Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(e, ExchangeError::Timeout(_)), "{e}");
        server.abort();
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_failure_not_a_timeout() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let e = exchange(
            &client(Duration::from_secs(1)),
            get(addr),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, ExchangeError::Failed(_)), "{e}");
    }
}
