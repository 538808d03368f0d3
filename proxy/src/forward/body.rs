//! The bodies the proxy answers with: the upstream's streamed as it comes, its own small ones,
//! and gRPC answers, streamed too but watched for their `grpc-status` so that a gRPC error
//! counts as an error even when HTTP says 200.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;

use crate::error::UpstreamErrorKind;
use crate::telemetry::metrics::PairTelemetry;
use crate::upstream::ResponseBody;
use crate::upstream::h1client::passed::PassedFields;

pub use sluice_io::Holding;

/// Errors a response body can end with.
pub use crate::error::BodyError;

/// A response body.
pub enum ProxyBody {
    /// The upstream's, streamed.
    Upstream(ResponseBody),
    /// The proxy's own.
    Own(Full<Bytes>),
    /// A gRPC answer, streamed and watched.
    Grpc(GrpcBody),
}

impl crate::downstream::h1::answer::Passing for ProxyBody {
    fn take_passed(&mut self) -> Option<PassedFields> {
        match self {
            Self::Upstream(ResponseBody::H1(b)) => b.passed.take(),
            _ => None,
        }
    }
}

impl From<Full<Bytes>> for ProxyBody {
    fn from(f: Full<Bytes>) -> Self {
        Self::Own(f)
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            Self::Upstream(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            Self::Own(b) => Pin::new(b).poll_frame(cx).map_err(|never| match never {}),
            Self::Grpc(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Upstream(b) => b.is_end_stream(),
            Self::Own(b) => b.is_end_stream(),
            Self::Grpc(b) => b.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Upstream(b) => b.size_hint(),
            Self::Own(b) => b.size_hint(),
            Self::Grpc(b) => b.inner.size_hint(),
        }
    }
}

/// The `grpc-status` of a header map.
pub fn grpc_status(h: &HeaderMap) -> Option<u32> {
    h.get("grpc-status")?.to_str().ok()?.trim().parse().ok()
}

/// Whether a response is gRPC.
pub fn is_grpc(h: &HeaderMap) -> bool {
    h.get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// Counts gRPC messages (a flag byte, a 4-byte length, the payload) across data frames.
#[derive(Debug, Default)]
pub struct MessageCounter {
    header: [u8; 5],
    have: usize,
    remaining: u64,
    /// Messages seen so far.
    pub messages: u32,
}

impl MessageCounter {
    /// Feeds the next bytes of the body.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                self.remaining -= n as u64;
                data = &data[n..];
                continue;
            }
            let n = (5 - self.have).min(data.len());
            self.header[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            data = &data[n..];
            if self.have == 5 {
                let [_, a, b, c, d] = self.header;
                self.remaining = u64::from(u32::from_be_bytes([a, b, c, d]));
                self.have = 0;
                self.messages = self.messages.saturating_add(1);
            }
        }
    }
}

/// A gRPC answer, recorded when its status is known: from the trailers, or from the head of
/// a trailers-only answer. Answers with more than one message are streams and stay out of
/// the latency histogram.
pub struct GrpcBody {
    inner: ResponseBody,
    record: Option<GrpcRecord>,
}

struct GrpcRecord {
    /// When the stats clock started (see `Shared::sec_of`).
    epoch: Instant,
    telemetry: Arc<PairTelemetry>,
    started: Instant,
    head_status: Option<u32>,
    errors: Arc<[bool; 17]>,
    counter: MessageCounter,
}

impl GrpcBody {
    /// Watches `inner`.
    pub fn new(
        inner: ResponseBody,
        epoch: Instant,
        telemetry: Arc<PairTelemetry>,
        started: Instant,
        head_status: Option<u32>,
        errors: Arc<[bool; 17]>,
    ) -> Self {
        Self {
            inner,
            record: Some(GrpcRecord {
                epoch,
                telemetry,
                started,
                head_status,
                errors,
                counter: MessageCounter::default(),
            }),
        }
    }

    fn finish(&mut self, status: Option<u32>, broken: bool) {
        let Some(r) = self.record.take() else { return };
        let code = status.or(r.head_status);
        let failed =
            broken || code.is_none_or(|c| r.errors.get(c as usize).copied().unwrap_or(true));
        let elapsed = r.started.elapsed();
        let latency = (r.counter.messages <= 1).then_some(elapsed);
        let kind = broken.then_some(UpstreamErrorKind::Closed);
        r.telemetry.record(
            (r.started + elapsed)
                .saturating_duration_since(r.epoch)
                .as_secs(),
            if failed { 500 } else { 200 },
            latency,
            kind,
        );
    }
}

impl Body for GrpcBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(t) = frame.trailers_ref() {
                    let status = grpc_status(t);
                    self.finish(status, false);
                } else if let (Some(r), Some(d)) = (self.record.as_mut(), frame.data_ref()) {
                    r.counter.feed(d);
                }
            }
            Poll::Ready(Some(Err(_))) => self.finish(None, true),
            Poll::Ready(None) => self.finish(None, false),
            Poll::Pending => {}
        }
        polled.map_err(Into::into)
    }
}

impl Drop for GrpcBody {
    fn drop(&mut self) {
        // the client went away before the status: the call did not complete
        if self.record.is_some() {
            self.finish(None, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_counted_across_frames() {
        let mut c = MessageCounter::default();
        // two messages of 3 and 0 bytes, split awkwardly
        let bytes = [0u8, 0, 0, 0, 3, b'a', b'b', b'c', 0, 0, 0, 0, 0];
        for chunk in bytes.chunks(2) {
            c.feed(chunk);
        }
        assert_eq!(c.messages, 2);
        let mut one = MessageCounter::default();
        one.feed(&[0, 0, 0, 0, 2, 1, 2]);
        assert_eq!(one.messages, 1);
    }

    #[test]
    fn grpc_headers_are_read() {
        let mut h = HeaderMap::new();
        assert!(!is_grpc(&h));
        h.insert(
            http::header::CONTENT_TYPE,
            "application/grpc+proto".parse().unwrap(),
        );
        assert!(is_grpc(&h));
        assert_eq!(grpc_status(&h), None);
        h.insert("grpc-status", "14".parse().unwrap());
        assert_eq!(grpc_status(&h), Some(14));
    }
}
