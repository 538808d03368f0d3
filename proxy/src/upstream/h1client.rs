//! HTTP/1.1 exchanges with upstreams on connections of our own, for the request path's most
//! common case. The request task itself writes the request and reads the response head; the
//! response body reads straight from the connection as the client side asks for it and puts
//! the connection back in its endpoint's pool when the body has ended. No task per connection,
//! no channel between tasks: one wake-up per readiness event, where a general client has two.
//!
//! What it does not do goes elsewhere: protocol upgrades (`Upgrade`, WebSocket) take hyper's
//! client connection, which hands the connection over after a 101.

pub mod codec;
pub mod passed;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http::{Method, Request, Response};
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

pub use codec::{BodyLength, RequestFraming};
use codec::{Decoded, Decoder};

use crate::error::{Error, UpstreamErrorKind};
use crate::upstream::h1pool::{H1Pool, Reusable};

/// Room made in a connection's read buffer when less than half of it is left: reads take
/// what has come, up to the room there is.
const READ_CHUNK: usize = 8 * 1024;
/// The largest request-head buffer a connection keeps for its next request.
const KEPT_WIRE_BYTES: usize = 16 * 1024;

/// Makes room to read into, reusing the buffer's allocation when nothing else holds it.
fn make_room(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < READ_CHUNK / 2 {
        buf.reserve(READ_CHUNK);
    }
}

/// One connection to an endpoint, with what was read from it and not used yet.
#[derive(Debug)]
pub struct H1Conn {
    stream: TcpStream,
    buf: BytesMut,
    /// The request head as written last, its allocation kept for the next one.
    wire: Vec<u8>,
    /// Whether a response was read on it before (so it may have been closed while idle).
    reused: bool,
}

impl H1Conn {
    /// A fresh connection.
    pub fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: BytesMut::new(),
            wire: Vec::new(),
            reused: false,
        }
    }

    /// Whether a kept connection can carry a request: nothing arrived while it was idle
    /// (an idle HTTP/1.1 connection hears nothing but its close). Reads only when the
    /// reactor has seen the socket become readable.
    pub fn idle_and_open(&self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => matches!(
                self.stream.try_read(&mut [0u8; 1]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
            ),
        }
    }
}

#[cfg(test)]
impl H1Conn {
    /// Waits until the reactor has seen the connection become readable.
    pub(crate) async fn readable(&self) {
        self.stream.readable().await.unwrap();
    }
}

/// A request body as this client sends it.
pub enum SendBody<B> {
    /// Held whole (and so sent again if a kept connection turns out closed).
    Full(Bytes),
    /// Streamed from the client, `Some(n)` when its length is known.
    Streamed(B, Option<u64>),
}

impl Reusable for H1Conn {
    fn idle_and_open(&self) -> bool {
        H1Conn::idle_and_open(self)
    }
}

/// Where a connection goes back when its response has been read.
#[derive(Clone)]
pub struct Home {
    /// The pool of the endpoint it goes to.
    pub pool: Arc<H1Pool<H1Conn>>,
    /// The most idle connections that pool keeps.
    pub max_idle: usize,
    /// The pool's slot for the worker whose event loop the connection is registered with.
    pub slot: usize,
}

/// Why an exchange failed, and whether it may be tried again on a fresh connection.
struct Failed {
    error: Error,
    /// The request may not have reached the upstream: a kept connection was closed under it
    /// before any byte of a response.
    stale: bool,
}

fn failed(kind: UpstreamErrorKind, detail: impl Into<String>) -> Failed {
    Failed {
        error: Error::Upstream {
            kind,
            detail: detail.into(),
        },
        stale: false,
    }
}

/// Sends `req` on `conn` (or, when `conn` turns out closed before answering and the body is
/// held whole, on a connection from `connect`) and reads the response head; with `pass`, its
/// end-to-end fields are kept as they came when the head allows it (see [`passed`]), in the
/// body's [`H1Body::passed`] and not in the response's map.
pub async fn exchange<B, F, Fut>(
    conn: H1Conn,
    connect: F,
    head: Request<()>,
    replacing: codec::Replacing<'_>,
    body: SendBody<B>,
    home: Home,
    pass: bool,
) -> Result<Response<H1Body>, Error>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<H1Conn, Error>>,
{
    let method = head.method().clone();
    let (framing, whole) = match &body {
        SendBody::Full(b)
            if b.is_empty() && !head.headers().contains_key(http::header::CONTENT_LENGTH) =>
        {
            (RequestFraming::None, true)
        }
        SendBody::Full(b) => (RequestFraming::Sized(b.len() as u64), true),
        SendBody::Streamed(_, Some(n)) => (RequestFraming::Sized(*n), false),
        SendBody::Streamed(_, None) => (RequestFraming::Chunked, false),
    };
    let target = head
        .uri()
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    let mut conn = conn;
    let mut wire = std::mem::take(&mut conn.wire);
    wire.clear();
    codec::encode_request_head(
        &method,
        target,
        head.headers(),
        replacing,
        framing,
        &mut wire,
    );
    let body = match body {
        SendBody::Full(b) => {
            wire.extend_from_slice(&b);
            None
        }
        SendBody::Streamed(b, _) => Some(b),
    };
    let first = match body {
        None => one_exchange(&mut conn, &wire, None::<(B, RequestFraming)>, &method, pass).await,
        Some(b) => one_exchange(&mut conn, &wire, Some((b, framing)), &method, pass).await,
    };
    let outcome = match first {
        Err(f) if f.stale && whole => {
            tracing::debug!(error = %f.error, "kept connection closed under the request; sending again");
            conn = connect().await?;
            one_exchange(&mut conn, &wire, None::<(B, RequestFraming)>, &method, pass).await
        }
        other => other,
    };
    if wire.capacity() <= KEPT_WIRE_BYTES {
        conn.wire = wire;
    }
    let (resp_head, length, keep) = outcome.map_err(|f| f.error)?;
    let mut resp = Response::new(H1Body {
        conn: Some(conn),
        decoder: Decoder::new(length),
        keep,
        home,
        passed: resp_head.passed,
    });
    *resp.status_mut() = resp_head.status;
    *resp.version_mut() = resp_head.version;
    *resp.headers_mut() = resp_head.headers;
    if resp.body().decoder.is_done() {
        resp.body_mut().finish();
    }
    Ok(resp)
}

/// Writes the request (head and held body in `wire`, then a streamed body if any) while
/// watching for the response head, which may come before the body has all been sent.
async fn one_exchange<B>(
    conn: &mut H1Conn,
    wire: &[u8],
    streamed: Option<(B, RequestFraming)>,
    method: &Method,
    pass: bool,
) -> Result<(codec::ResponseHead, BodyLength, bool), Failed>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let reused = conn.reused;
    // a request that reached a connection closed under it may have been acted on: sent again
    // only when doing it twice does no harm (or when it could not be written at all)
    let resend_after_write = reused && method.is_idempotent();
    let H1Conn { stream, buf, .. } = conn;
    let (mut reader, mut writer) = stream.split();
    let write = async {
        writer.write_all(wire).await.map_err(|e| {
            let mut f = failed(
                UpstreamErrorKind::Closed,
                format!("sending the request: {e}"),
            );
            f.stale = reused;
            f
        })?;
        if let Some((body, framing)) = streamed {
            write_body(&mut writer, body, framing).await?;
        }
        Ok::<(), Failed>(())
    };
    let mut write = std::pin::pin!(write);
    let mut sent = false;
    let head = loop {
        if sent {
            break read_head(&mut reader, buf, resend_after_write, pass).await?;
        }
        tokio::select! {
            biased;
            done = &mut write => {
                done?;
                sent = true;
            }
            head = read_head(&mut reader, buf, resend_after_write, pass) => {
                // an answer before the whole body went: the connection is not kept after it
                let mut head = head?;
                let (length, _) = codec::response_body(method, &mut head)
                    .map_err(|e| failed(UpstreamErrorKind::Protocol, e.0))?;
                conn.reused = true;
                return Ok((head, length, false));
            }
        }
    };
    let mut head = head;
    let (length, keep) = codec::response_body(method, &mut head)
        .map_err(|e| failed(UpstreamErrorKind::Protocol, e.0))?;
    conn.reused = true;
    Ok((head, length, keep))
}

/// Reads until a whole response head is in `buf`; cancel-safe (what was read stays in `buf`).
/// A close before any byte of it is `stale` when `resendable`.
async fn read_head(
    reader: &mut tokio::net::tcp::ReadHalf<'_>,
    buf: &mut BytesMut,
    resendable: bool,
    pass: bool,
) -> Result<codec::ResponseHead, Failed> {
    loop {
        if !buf.is_empty()
            && let Some(head) = codec::parse_response_head(buf, pass)
                .map_err(|e| failed(UpstreamErrorKind::Protocol, e.0))?
        {
            return Ok(head);
        }
        let nothing_yet = buf.is_empty();
        make_room(buf);
        match reader.read_buf(buf).await {
            Ok(0) => {
                let mut f = failed(
                    UpstreamErrorKind::Closed,
                    "the upstream closed the connection before a response head",
                );
                f.stale = resendable && nothing_yet;
                return Err(f);
            }
            Ok(_) => {}
            Err(e) => {
                let mut f = failed(
                    UpstreamErrorKind::Closed,
                    format!("reading the response: {e}"),
                );
                f.stale = resendable && nothing_yet;
                return Err(f);
            }
        }
    }
}

/// Streams a request body, sized or chunked.
async fn write_body<B>(
    writer: &mut tokio::net::tcp::WriteHalf<'_>,
    mut body: B,
    framing: RequestFraming,
) -> Result<(), Failed>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let io = |e: std::io::Error| {
        failed(
            UpstreamErrorKind::Closed,
            format!("sending the request body: {e}"),
        )
    };
    let mut sent: u64 = 0;
    let mut scratch = Vec::new();
    let mut trailers = None;
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|e| {
            failed(
                UpstreamErrorKind::Closed,
                format!("the request body ended early: {e}"),
            )
        })?;
        let frame = match frame.into_data() {
            Ok(data) => {
                if data.is_empty() {
                    continue;
                }
                sent += data.len() as u64;
                if let RequestFraming::Sized(n) = framing {
                    if sent > n {
                        return Err(failed(
                            UpstreamErrorKind::Closed,
                            "the request body is longer than its content-length",
                        ));
                    }
                    writer.write_all(&data).await.map_err(io)?;
                } else {
                    scratch.clear();
                    codec::chunk_header(data.len(), &mut scratch);
                    writer.write_all(&scratch).await.map_err(io)?;
                    writer.write_all(&data).await.map_err(io)?;
                    writer.write_all(b"\r\n").await.map_err(io)?;
                }
                continue;
            }
            Err(frame) => frame,
        };
        if let Ok(t) = frame.into_trailers() {
            trailers = Some(t);
        }
    }
    match framing {
        RequestFraming::Sized(n) if sent != n => Err(failed(
            UpstreamErrorKind::Closed,
            "the request body is shorter than its content-length",
        )),
        RequestFraming::Chunked => {
            scratch.clear();
            codec::last_chunk(trailers.as_ref(), &mut scratch);
            writer.write_all(&scratch).await.map_err(io)
        }
        _ => Ok(()),
    }
}

/// A response body read from its connection as it is polled; the connection goes back to
/// its endpoint's pool when the body has ended and the connection can carry another request.
pub struct H1Body {
    conn: Option<H1Conn>,
    decoder: Decoder,
    keep: bool,
    home: Home,
    /// The response's end-to-end fields as they came, when they were not put in its map.
    pub passed: Option<passed::PassedFields>,
}

impl std::fmt::Debug for H1Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H1Body")
            .field("decoder", &self.decoder)
            .field("keep", &self.keep)
            .finish()
    }
}

impl H1Body {
    /// The body has ended: the connection goes home, unless it cannot be reused.
    fn finish(&mut self) {
        if let Some(conn) = self.conn.take()
            && self.keep
            && conn.buf.is_empty()
        {
            self.home
                .pool
                .put_back(self.home.slot, conn, Instant::now(), self.home.max_idle);
        }
    }

    fn error(kind: UpstreamErrorKind, detail: impl Into<String>) -> crate::error::BodyError {
        Box::new(Error::Upstream {
            kind,
            detail: detail.into(),
        })
    }
}

impl Body for H1Body {
    type Data = Bytes;
    type Error = crate::error::BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match this.decoder.decode(&mut conn.buf) {
                Ok(Decoded::Data(d)) => {
                    if this.decoder.is_done() {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                Ok(Decoded::Trailers(t)) => {
                    this.finish();
                    return Poll::Ready(Some(Ok(Frame::trailers(t))));
                }
                Ok(Decoded::Done) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(Decoded::NeedMore) => {}
                Err(e) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(Self::error(UpstreamErrorKind::Protocol, e.0))));
                }
            }
            make_room(&mut conn.buf);
            match conn.stream.try_read_buf(&mut conn.buf) {
                Ok(0) => {
                    this.keep = false;
                    if let Err(e) = this.decoder.eof() {
                        this.conn = None;
                        return Poll::Ready(Some(Err(Self::error(UpstreamErrorKind::Closed, e.0))));
                    }
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if let Err(e) = ready!(conn.stream.poll_read_ready(cx)) {
                        this.conn = None;
                        return Poll::Ready(Some(Err(Self::error(
                            UpstreamErrorKind::Closed,
                            e.to_string(),
                        ))));
                    }
                }
                Err(e) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(Self::error(
                        UpstreamErrorKind::Closed,
                        format!("reading the response body: {e}"),
                    ))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.decoder.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        match self.decoder.remaining() {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests;
