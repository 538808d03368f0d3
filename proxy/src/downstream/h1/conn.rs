//! Serves one HTTP/1.1 connection with the proxy's own server: reads a head, hands the
//! request to the request path, writes the answer, and goes on with the next request on the
//! connection, until the client closes, asks to close, the connection is told to close (see
//! [`Signal`]), or a request comes that this server leaves to hyper (see
//! [`head`](super::head)): then the connection, with the bytes of that request, is given back
//! for hyper to serve from there.
//!
//! One task per connection, no channel: the request body reads the connection's buffer and
//! socket itself (see [`reader`](super::reader)), and an answer is written as one write when
//! its body is ready at once (the head and all of a small body together).

use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body::Body;
use http_body_util::BodyExt as _;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadHalf};

use super::answer::{self, BodyFraming, BodyHint, Passing};
use super::date;
use super::head::{self, Limits, Parsed};
use super::reader::{self, OwnBody, Reader};
use crate::downstream::client_body::RequestBody;
use crate::downstream::conns::{Conn, Signal};
use crate::upstream::h1client::codec::{chunk_header, last_chunk};

/// Answer bytes gathered before they are written.
const GATHER: usize = 64 * 1024;
/// The most answer bytes a connection keeps room for between requests.
const KEEP_OUT: usize = 4 * 1024;
/// Body pieces this long are written as they are rather than copied behind the head.
const WRITE_AS_IS: usize = 16 * 1024;
/// How long closing the connection may take (a TLS close notice to a client that does not
/// read).
const CLOSING: Duration = Duration::from_secs(1);

/// How the own server finished with a connection.
pub enum Ended<IO> {
    /// The connection is closed.
    Closed,
    /// A request this server leaves to hyper: the connection, and the bytes read of it from
    /// that request on.
    Elsewhere {
        /// The connection.
        io: IO,
        /// The bytes read and not served.
        read: Bytes,
        /// Whether requests were served on it before (so it is HTTP/1 for good).
        served: bool,
    },
}

/// What the front of the connection holds.
// one per request, moved once: boxing the head would cost an allocation per request
#[allow(clippy::large_enum_variant)]
enum Next {
    Head(head::Head),
    Elsewhere(&'static str),
    Closed,
}

/// Serves `io` until it closes or a request is left to hyper; `handle` answers
/// each request.
pub async fn serve<IO, H, F, B>(io: IO, conn: &Conn, limits: Limits, mut handle: H) -> Ended<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: FnMut(Request<RequestBody>) -> F,
    F: Future<Output = Response<B>>,
    B: Body<Data = Bytes> + Passing,
    B::Error: std::fmt::Display,
{
    let (rd, mut wr) = tokio::io::split(io);
    let reader: Arc<Mutex<Reader<ReadHalf<IO>>>> =
        Arc::new(Mutex::new(Reader::new(rd, conn.verdicts.clone())));
    let mut out = Vec::new();
    let mut served = false;
    loop {
        let head = match next_head(&reader, conn, limits).await {
            Next::Head(h) => h,
            Next::Closed => break,
            Next::Elsewhere(why) => {
                tracing::trace!(why, "request left to hyper");
                let Some((rd, read)) = reader::lock(&reader).take() else {
                    break;
                };
                return Ended::Elsewhere {
                    io: rd.unsplit(wr),
                    read: read.freeze(),
                    served,
                };
            }
        };
        served = true;
        conn.request_started();
        let answering = Answering(conn);
        let (head_close, trailers) = (head.close, head.trailers);
        let (parts, ()) = head.request.into_parts();
        let to_head = parts.method == Method::HEAD;
        let body = if head.body == 0 {
            RequestBody::Empty
        } else {
            reader::lock(&reader).body_left = head.body;
            let source: Arc<dyn reader::BodySource> = reader.clone();
            RequestBody::Own(OwnBody::new(source, head.body))
        };
        let (held, handler, writer, gathered) = (&reader, &mut handle, &mut wr, &mut out);
        let exchange = async move {
            let resp = handler(Request::from_parts(parts, body)).await;
            // a body not read whole by now leaves the connection's bytes in an unknown place
            let close = head_close
                || conn.signal.raised() != Signal::NONE
                || answer::asks_close(resp.headers())
                || reader::lock(held).body_left > 0;
            let written = write_answer(writer, gathered, resp, to_head, close, trailers).await;
            (close, written)
        };
        // boxed, one allocation per request: held inline, the request path's state and the
        // answer's would be in every connection's task, idle ones too
        let (close, written) = Box::pin(exchange).await;
        drop(answering);
        if out.capacity() > KEEP_OUT {
            // a connection waiting for its next request keeps no big buffer
            out = Vec::new();
        }
        if let Err(e) = written {
            tracing::debug!(error = %e, "answer not written whole");
            break;
        }
        if close || reader::lock(&reader).body_left > 0 {
            break;
        }
    }
    let _ = tokio::time::timeout(CLOSING, wr.shutdown()).await;
    Ended::Closed
}

/// Ends its request on the connection when dropped: the answer has been written whole, or
/// given up.
struct Answering<'a>(&'a Conn);

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

/// Reads until the buffer holds a whole head, one to leave to hyper, or the connection is
/// done: the client closed it, or it was told to close while no whole head had come.
async fn next_head<R: AsyncRead + Unpin>(
    reader: &Mutex<Reader<R>>,
    conn: &Conn,
    limits: Limits,
) -> Next {
    let mut known = None;
    std::future::poll_fn(|cx| {
        conn.signal.listen(&mut known, cx.waker());
        let mut r = reader::lock(reader);
        loop {
            if !r.buf.is_empty() {
                match head::parse(&mut r.buf, limits) {
                    Parsed::Head(h) => return Poll::Ready(Next::Head(h)),
                    Parsed::Elsewhere(why) => return Poll::Ready(Next::Elsewhere(why)),
                    Parsed::Partial => {}
                }
            }
            if conn.signal.raised() != Signal::NONE {
                return Poll::Ready(Next::Closed);
            }
            match r.poll_head_bytes(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(Next::Closed),
                Poll::Ready(Ok(_)) => {}
            }
        }
    })
    .await
}

/// Writes an answer: its head, then its body framed as [`answer::framing`] says.
async fn write_answer<W, B>(
    wr: &mut W,
    out: &mut Vec<u8>,
    resp: Response<B>,
    to_head: bool,
    close: bool,
    trailers_wanted: bool,
) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
    B: Body<Data = Bytes> + Passing,
    B::Error: std::fmt::Display,
{
    let (parts, mut body) = resp.into_parts();
    let passed = body.take_passed();
    let hint = if body.is_end_stream() {
        BodyHint::Ended
    } else {
        body.size_hint()
            .exact()
            .map_or(BodyHint::Unknown, BodyHint::Exact)
    };
    let passed = passed.as_ref();
    let framing = answer::framing(parts.status, &parts.headers, passed, to_head, hint);
    out.clear();
    date::with_date(SystemTime::now(), |d| {
        answer::encode_head(parts.status, &parts.headers, passed, framing, close, d, out);
    });
    let mut left = match framing.0 {
        BodyFraming::Nothing => {
            drop(body);
            return send(wr, out).await;
        }
        BodyFraming::Sized(n) => Some(n),
        BodyFraming::Chunked => None,
    };
    let mut body = std::pin::pin!(body);
    let mut trailers = None;
    loop {
        // a piece ready now joins what is gathered; one not ready yet waits after a write
        let polled = std::future::poll_fn(|cx| Poll::Ready(body.as_mut().poll_frame(cx))).await;
        let frame = match polled {
            Poll::Ready(f) => f,
            Poll::Pending => {
                send(wr, out).await?;
                body.frame().await
            }
        };
        let frame = match frame {
            None => break,
            Some(Ok(f)) => f,
            Some(Err(e)) => {
                let _ = send(wr, out).await;
                return Err(io::Error::other(format!("the answer's body failed: {e}")));
            }
        };
        let data = match frame.into_data() {
            Ok(d) => d,
            Err(frame) => {
                if let Ok(t) = frame.into_trailers() {
                    trailers = Some(t);
                }
                continue;
            }
        };
        if data.is_empty() {
            continue;
        }
        if let Some(l) = left.as_mut() {
            if data.len() as u64 > *l {
                let _ = send(wr, out).await;
                return Err(io::Error::other(
                    "the answer's body is longer than its length",
                ));
            }
            *l -= data.len() as u64;
        } else {
            chunk_header(data.len(), out);
        }
        if data.len() >= WRITE_AS_IS {
            send(wr, out).await?;
            wr.write_all(&data).await?;
        } else {
            out.extend_from_slice(&data);
        }
        if left.is_none() {
            out.extend_from_slice(b"\r\n");
        }
        if out.len() >= GATHER {
            send(wr, out).await?;
        }
    }
    match left {
        Some(0) => {}
        Some(_) => {
            let _ = send(wr, out).await;
            return Err(io::Error::other(
                "the answer's body ended short of its length",
            ));
        }
        None => last_chunk(trailers.as_ref().filter(|_| trailers_wanted), out),
    }
    send(wr, out).await
}

/// Writes and flushes what is gathered in `out`, and empties it.
async fn send<W: AsyncWrite + Unpin>(wr: &mut W, out: &mut Vec<u8>) -> io::Result<()> {
    if !out.is_empty() {
        wr.write_all(out).await?;
        out.clear();
    }
    wr.flush().await
}

#[cfg(test)]
mod tests;
