//! The read side of a connection the proxy's own HTTP/1.1 server serves, shared by the
//! connection (which reads the request heads) and the body of the request in flight (which
//! reads the bytes after its head, as many as its `Content-Length` says and never more): one
//! buffer for both, so that bytes read past a head are neither lost nor read twice. Every
//! read is told to the connection's [`Verdicts`], which the idle sweeps read.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, ReadBuf};

use crate::downstream::framing::Verdicts;

/// Bytes asked of the socket per read, for a head.
const HEAD_READ: usize = 8 * 1024;
/// At most this many bytes asked per read, for a body.
const BODY_READ: usize = 64 * 1024;

/// The read half, its buffer, and where the connection is in the byte stream.
pub struct Reader<R> {
    /// The read half; taken when the connection goes on under hyper.
    io: Option<R>,
    /// Bytes read and not yet used.
    pub buf: BytesMut,
    /// Bytes of the current request's body not yet read.
    pub body_left: u64,
    verdicts: Arc<Verdicts>,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    /// A reader over `io`, telling its reads to `verdicts`.
    pub fn new(io: R, verdicts: Arc<Verdicts>) -> Self {
        Reader {
            io: Some(io),
            buf: BytesMut::new(),
            body_left: 0,
            verdicts,
        }
    }

    /// Reads what the socket has into the buffer: the number of bytes, 0 at the end of the
    /// stream.
    pub fn poll_fill(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<io::Result<usize>> {
        let Some(io) = self.io.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        if self.buf.capacity() - self.buf.len() < want / 2 {
            self.buf.reserve(want);
        }
        let polled = tokio_util::io::poll_read_buf(Pin::new(io), cx, &mut self.buf);
        match &polled {
            Poll::Pending => self.verdicts.read(false),
            Poll::Ready(Ok(n)) if *n > 0 => self.verdicts.read(true),
            Poll::Ready(_) => {}
        }
        polled
    }

    /// The bytes of a head: as much as a head read asks. With nothing held, the read goes to
    /// the stack and the buffer is made to the size of what came: a connection waiting for
    /// its next request holds no buffer.
    pub fn poll_head_bytes(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if !self.buf.is_empty() {
            return self.poll_fill(cx, HEAD_READ);
        }
        let Some(io) = self.io.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        let mut room = [const { MaybeUninit::uninit() }; HEAD_READ];
        let mut read = ReadBuf::uninit(&mut room);
        match Pin::new(io).poll_read(cx, &mut read) {
            Poll::Pending => {
                self.verdicts.read(false);
                Poll::Pending
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => {
                let n = read.filled().len();
                if n > 0 {
                    self.verdicts.read(true);
                    self.buf = BytesMut::from(read.filled());
                }
                Poll::Ready(Ok(n))
            }
        }
    }

    /// The read half and the bytes read past the last request served, for hyper.
    pub fn take(&mut self) -> Option<(R, BytesMut)> {
        Some((self.io.take()?, std::mem::take(&mut self.buf)))
    }

    /// The next piece of the body: `None` once it has all been read.
    fn poll_body(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        if self.body_left == 0 {
            return Poll::Ready(None);
        }
        if self.buf.is_empty() {
            let want = usize::try_from(self.body_left)
                .unwrap_or(usize::MAX)
                .clamp(HEAD_READ, BODY_READ);
            match self.poll_fill(cx, want) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the client closed the connection before its body was whole",
                    ))));
                }
                Poll::Ready(Ok(_)) => {}
            }
        }
        let n = usize::try_from(self.body_left)
            .unwrap_or(usize::MAX)
            .min(self.buf.len());
        self.body_left -= n as u64;
        Poll::Ready(Some(Ok(self.buf.split_to(n).freeze())))
    }
}

/// Locks a shared reader (never held across an await; a poisoned lock is still the reader).
pub fn lock<R>(r: &Mutex<Reader<R>>) -> MutexGuard<'_, Reader<R>> {
    r.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a request body reads from, whatever the connection's IO type.
pub trait BodySource: Send + Sync {
    /// The next piece of the body.
    fn poll_body(&self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>>;
}

impl<R: AsyncRead + Unpin + Send> BodySource for Mutex<Reader<R>> {
    fn poll_body(&self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        lock(self).poll_body(cx)
    }
}

/// A request body the client sends on a connection the proxy's own server serves.
pub struct OwnBody {
    source: Arc<dyn BodySource>,
    /// Bytes not yet read, as last seen (so that the end is known without a lock).
    left: u64,
}

impl OwnBody {
    /// The body `source` reads, `left` bytes long.
    pub fn new(source: Arc<dyn BodySource>, left: u64) -> Self {
        OwnBody { source, left }
    }
}

impl std::fmt::Debug for OwnBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnBody").field("left", &self.left).finish()
    }
}

impl Body for OwnBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if this.left == 0 {
            return Poll::Ready(None);
        }
        let polled = this.source.poll_body(cx);
        if let Poll::Ready(Some(Ok(b))) = &polled {
            this.left -= b.len() as u64;
        }
        polled.map(|o| o.map(|r| r.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}
