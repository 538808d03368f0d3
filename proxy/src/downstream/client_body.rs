//! A streamed request body that remembers how the client sent it, so that a failed exchange
//! is blamed where it belongs.
//!
//! When an exchange fails while its body is being sent, the upstream client only sees "the
//! body ended early" or "no response head in time". [`ClientBody`] records what the client
//! did: whether its body broke off (a malformed chunk, a closed or reset connection), and
//! whether the exchange was waiting on the client for more of the body, not on the upstream.
//! [`BodyWatch::blame`] turns that into a client error. The request path then answers 400
//! or 408 and counts the request under `sluice_client_errors_total`, never as the backend's
//! 5xx, upstream error, ejection strike or analysis figure.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::downstream::h1::reader::OwnBody;
use crate::error::{BodyError, ClientErrorKind, Error, UpstreamErrorKind};

/// A request's body as the client sends it: read by hyper, by the proxy's own HTTP/1.1
/// server, or none at all.
#[derive(Debug)]
pub enum RequestBody {
    /// No body (the own server's requests without one).
    Empty,
    /// hyper's (HTTP/2, and the HTTP/1 requests it serves).
    Hyper(Incoming),
    /// The own server's, of a known length.
    Own(OwnBody),
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            Self::Empty => Poll::Ready(None),
            Self::Hyper(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            Self::Own(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Empty => true,
            Self::Hyper(b) => b.is_end_stream(),
            Self::Own(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Empty => SizeHint::with_exact(0),
            Self::Hyper(b) => b.size_hint(),
            Self::Own(b) => b.size_hint(),
        }
    }
}

/// What a client's body was doing when last looked at.
#[derive(Debug, Default)]
pub struct BodyWatch(AtomicU8);

impl BodyWatch {
    /// Nothing asked of the body yet, or its last frame was delivered.
    const FLOWING: u8 = 0;
    /// Asked for more, and the client has not sent it yet.
    const WAITING: u8 = 1;
    /// Ended whole.
    const ENDED: u8 = 2;
    /// Broke off.
    const BROKEN: u8 = 3;

    fn set(&self, state: u8) {
        self.0.store(state, Relaxed);
    }

    /// Whose fault a failed exchange was: the client's when its body broke off, or when the
    /// request timed out while the exchange waited on the client for more of its body.
    /// `None`: the upstream's (or nobody's) to judge as usual.
    pub fn blame(&self, e: &Error) -> Option<ClientErrorKind> {
        match self.0.load(Relaxed) {
            Self::BROKEN => Some(ClientErrorKind::BodyBroken),
            Self::WAITING
                if matches!(
                    e,
                    Error::Upstream {
                        kind: UpstreamErrorKind::Timeout,
                        ..
                    }
                ) =>
            {
                Some(ClientErrorKind::BodyTimeout)
            }
            _ => None,
        }
    }
}

/// The client's streamed request body, watched.
pub struct ClientBody {
    inner: RequestBody,
    watch: Arc<BodyWatch>,
}

impl ClientBody {
    /// Watches `inner`; `watch` is kept by the request path to judge the outcome.
    pub fn new(inner: RequestBody, watch: Arc<BodyWatch>) -> Self {
        Self { inner, watch }
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        this.watch.set(match &polled {
            Poll::Pending => BodyWatch::WAITING,
            Poll::Ready(Some(Err(_))) => BodyWatch::BROKEN,
            Poll::Ready(None) => BodyWatch::ENDED,
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => BodyWatch::ENDED,
            Poll::Ready(Some(Ok(_))) => BodyWatch::FLOWING,
        });
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout() -> Error {
        Error::Upstream {
            kind: UpstreamErrorKind::Timeout,
            detail: String::new(),
        }
    }

    fn closed() -> Error {
        Error::Upstream {
            kind: UpstreamErrorKind::Closed,
            detail: String::new(),
        }
    }

    #[test]
    fn a_broken_body_is_the_clients_whatever_the_upstream_said() {
        let w = BodyWatch::default();
        w.set(BodyWatch::BROKEN);
        assert_eq!(w.blame(&closed()), Some(ClientErrorKind::BodyBroken));
        assert_eq!(w.blame(&timeout()), Some(ClientErrorKind::BodyBroken));
    }

    #[test]
    fn a_timeout_is_the_clients_only_while_waiting_on_its_body() {
        let w = BodyWatch::default();
        w.set(BodyWatch::WAITING);
        assert_eq!(w.blame(&timeout()), Some(ClientErrorKind::BodyTimeout));
        assert_eq!(
            w.blame(&closed()),
            None,
            "the upstream closed while we waited"
        );
        for upstreams in [BodyWatch::FLOWING, BodyWatch::ENDED] {
            w.set(upstreams);
            assert_eq!(w.blame(&timeout()), None, "state {upstreams}");
            assert_eq!(w.blame(&closed()), None, "state {upstreams}");
        }
    }
}
