//! Which request bodies are held whole before they are sent: those small enough to be sent
//! again (to another endpoint, to stable on failover, or as a mirror's copy). A held body is
//! read within the request timeout; one the client breaks off or trickles is the client's
//! error.

use bytes::Bytes;
use http_body_util::BodyExt as _;

use crate::error::{ClientErrorKind, Error};

/// The request's `Content-Length`, when it has one.
pub fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Reads `body` whole within `limit`. A body the client breaks off, or does not finish
/// sending in time, is the client's error.
pub async fn read_whole<B>(body: B, limit: std::time::Duration) -> Result<Bytes, Error>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    match tokio::time::timeout(limit, body.collect()).await {
        Ok(Ok(b)) => Ok(b.to_bytes()),
        Ok(Err(e)) => Err(Error::Client {
            kind: ClientErrorKind::BodyBroken,
            detail: e.to_string(),
        }),
        Err(_) => Err(Error::Client {
            kind: ClientErrorKind::BodyTimeout,
            detail: format!("the body was not sent whole within {limit:?}"),
        }),
    }
}
