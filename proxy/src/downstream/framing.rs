//! Finds the HTTP/1 requests that carry both `Content-Length` and `Transfer-Encoding`, or
//! whose head ends a line with a bare LF.
//!
//! hyper's parser settles that conflict itself (RFC 9112 §6.3: the length is dropped, the
//! body is read as chunked, the connection is closed after the answer) and hands the handler
//! a head with no trace of the length, so the handler cannot refuse it. [`Watched`] sits
//! under hyper and reads the same bytes: [`Scanner`] walks the stream request by request
//! (heads with `httparse`, bodies by their length or their chunks) and records the index of
//! the first request on the connection that had both; the handler counts its requests and
//! answers that one with 400 instead of forwarding it, and closes the connection.
//!
//! A line ended by LF alone is refused too (RFC 9112 §2.2 lets a recipient accept it, and
//! httparse does): a server behind the proxy, or in front of it, that does not would see
//! the head end somewhere else, and the bytes after it as another request.
//!
//! The scanner never decides anything on its own: when it sees something it does not follow
//! (an HTTP/2 preface, an upgrade or CONNECT, a head it cannot parse or that is too big, a
//! malformed chunk), it stops for the rest of the connection, and hyper's own handling (which
//! is safe: it never forwards the length) applies from there.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Heads are parsed with room for this many headers; a head with more stops the scanner
/// (hyper refuses it anyway beyond the configured `max_headers`).
const MAX_HEADERS: usize = 128;

/// What the scanner found, shared with the connection's request handler.
#[derive(Debug, Default)]
pub struct Verdicts {
    /// 1 + the index of the first request refused; 0 for none.
    flagged: AtomicU64,
    /// Why it was refused.
    why: std::sync::OnceLock<&'static str>,
    /// Requests handed to the handler so far (HTTP/1 only).
    served: AtomicU64,
    /// The connection began with the HTTP/2 preface.
    http2: AtomicBool,
    /// Reads that brought bytes, so far.
    reads: AtomicU64,
    /// The last read found nothing to read: every byte the client sent has been taken.
    drained: AtomicBool,
}

impl Verdicts {
    /// Called by the handler once per HTTP/1 request, in order: why this request is refused
    /// (both `Content-Length` and `Transfer-Encoding`, or a bare LF), if it is.
    pub fn next_refused(&self) -> Option<&'static str> {
        let index = self.served.fetch_add(1, Relaxed);
        (self.flagged.load(Relaxed) == index + 1)
            .then(|| self.why.get().copied().unwrap_or(BOTH_LENGTHS))
    }

    /// Whether the connection speaks HTTP/2 (it began with the preface).
    pub fn is_http2(&self) -> bool {
        self.http2.load(Relaxed)
    }

    /// Records that the connection began with the HTTP/2 preface.
    pub fn mark_http2(&self) {
        self.http2.store(true, Relaxed);
    }

    /// Reads that brought bytes, so far.
    pub fn reads(&self) -> u64 {
        self.reads.load(Relaxed)
    }

    /// Whether the last read found nothing to read (a connection never read is not).
    pub fn drained(&self) -> bool {
        self.drained.load(Relaxed)
    }

    /// Records a read's outcome: bytes brought, or nothing there yet.
    pub fn read(&self, brought: bool) {
        if brought {
            self.reads.fetch_add(1, Relaxed);
        }
        self.drained.store(!brought, Relaxed);
    }
}

/// An IO that lets a [`Scanner`] see every byte read from it.
pub struct Watched<IO> {
    inner: IO,
    scanner: Scanner,
    verdicts: Arc<Verdicts>,
}

impl<IO> Watched<IO> {
    /// Wraps `inner`, telling what it finds to `verdicts`; heads longer than
    /// `max_head_bytes` stop the scanner.
    pub fn new(inner: IO, max_head_bytes: usize, verdicts: Arc<Verdicts>) -> Self {
        Watched {
            inner,
            scanner: Scanner::new(max_head_bytes),
            verdicts,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        match polled {
            Poll::Pending => this.verdicts.read(false),
            Poll::Ready(Ok(())) if buf.filled().len() > before => this.verdicts.read(true),
            Poll::Ready(_) => {}
        }
        if matches!(polled, Poll::Ready(Ok(()))) && !this.scanner.is_off() {
            if let Some(index) = this.scanner.feed(&buf.filled()[before..]) {
                let _ = this.verdicts.why.set(this.scanner.why());
                this.verdicts.flagged.store(index + 1, Relaxed);
            }
            if this.scanner.is_http2() {
                this.verdicts.mark_http2();
            }
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Where the scanner is in the byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Reading a request head (bytes so far are in `Scanner::head`).
    Head,
    /// Skipping this many body bytes.
    Fixed(u64),
    /// Inside a chunked body.
    Chunk(Chunk),
    /// Not following this connection any more.
    Off,
}

/// Where the scanner is inside a chunked body (RFC 9112 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading the hex size; `digits` says whether one was seen.
    Size { size: u64, digits: bool },
    /// Whitespace after the size.
    SizeSpace { size: u64 },
    /// A chunk extension, up to the CR.
    Extension { size: u64 },
    /// The LF after the size line.
    SizeLf { size: u64 },
    /// This many data bytes left.
    Data(u64),
    /// The CR after the data.
    DataCr,
    /// The LF after the data.
    DataLf,
    /// The start of a trailer line, or the final CRLF.
    TrailerStart,
    /// Inside a trailer field line.
    Trailer,
    /// The LF ending a trailer line.
    TrailerLf,
    /// The LF of the final empty line.
    EndLf,
}

/// Follows an HTTP/1 request stream one byte slice at a time. Pure: no IO, no clock.
#[derive(Debug)]
pub struct Scanner {
    state: State,
    head: Vec<u8>,
    max_head_bytes: usize,
    /// Index of the next request head on the connection.
    next_index: u64,
    /// The stream began with the HTTP/2 preface.
    http2: bool,
    /// Why the flagged request was flagged.
    why: &'static str,
}

/// Why a request with both lengths is refused.
pub const BOTH_LENGTHS: &str = "both Content-Length and Transfer-Encoding";
/// Why a request whose head has a line ended by LF alone is refused.
pub const BARE_LF: &str = "a line of the head ended by LF without CR";

impl Scanner {
    /// A scanner at the start of a connection.
    pub fn new(max_head_bytes: usize) -> Self {
        Scanner {
            state: State::Head,
            head: Vec::new(),
            max_head_bytes,
            next_index: 0,
            http2: false,
            why: BOTH_LENGTHS,
        }
    }

    /// Whether the stream began with the HTTP/2 preface (the scanner is off then).
    pub fn is_http2(&self) -> bool {
        self.http2
    }

    /// Whether the scanner has stopped following the connection.
    pub fn is_off(&self) -> bool {
        self.state == State::Off
    }

    /// Why the request [`Self::feed`] returned was flagged.
    pub fn why(&self) -> &'static str {
        self.why
    }

    /// Feeds the next bytes read; returns the index of a request found to carry both
    /// `Content-Length` and `Transfer-Encoding`, or a bare LF in its head (the scanner stops
    /// after one).
    pub fn feed(&mut self, mut bytes: &[u8]) -> Option<u64> {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Off => return None,
                State::Head => {
                    let (used, flagged) = self.head_bytes(bytes);
                    bytes = &bytes[used..];
                    if flagged.is_some() {
                        return flagged;
                    }
                }
                State::Fixed(left) => {
                    let n = usize::try_from(*left)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len());
                    *left -= n as u64;
                    bytes = &bytes[n..];
                    if *left == 0 {
                        self.state = State::Head;
                    }
                }
                State::Chunk(chunk) => {
                    let (used, next) = chunk_bytes(*chunk, bytes);
                    bytes = &bytes[used..];
                    self.state = next;
                }
            }
        }
        None
    }

    /// Adds head bytes; once the head is complete, decides what follows it. Returns how
    /// many bytes were used and a flagged request index.
    fn head_bytes(&mut self, bytes: &[u8]) -> (usize, Option<u64>) {
        let start = self.head.len();
        let take = bytes
            .len()
            .min(self.max_head_bytes.saturating_sub(start) + 1);
        self.head.extend_from_slice(&bytes[..take]);
        if self.next_index == 0 {
            const PREFACE: &[u8] = b"PRI * HTTP/2.0";
            let n = self.head.len().min(PREFACE.len());
            if self.head[..n] == PREFACE[..n] {
                if n == PREFACE.len() {
                    self.http2 = true;
                    self.state = State::Off;
                    return (bytes.len(), None);
                }
                // may yet be the preface
                return (take, None);
            }
        }
        let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let parsed = match req.parse_with_uninit_headers(&self.head, &mut headers) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => {
                if self.head.len() > self.max_head_bytes {
                    self.state = State::Off;
                }
                return (take, None);
            }
            Err(_) => {
                self.state = State::Off;
                return (take, None);
            }
        };
        let framing = Framing::of(&req);
        let bare_lf = has_bare_lf(&self.head[..parsed]);
        let index = self.next_index;
        self.next_index += 1;
        let used = parsed - start;
        self.head.clear();
        if framing.both_lengths || bare_lf {
            self.why = if bare_lf { BARE_LF } else { BOTH_LENGTHS };
            self.state = State::Off;
            return (used, Some(index));
        }
        self.state = match framing.body {
            _ if framing.opaque_after => State::Off,
            Body::None => State::Head,
            Body::Fixed(n) => State::Fixed(n),
            Body::Chunked => State::Chunk(Chunk::Size {
                size: 0,
                digits: false,
            }),
            Body::Unknown => State::Off,
        };
        (used, None)
    }
}

/// How a request head frames what follows it.
struct Framing {
    both_lengths: bool,
    body: Body,
    /// After an upgrade request or CONNECT the bytes may stop being HTTP/1.
    opaque_after: bool,
}

enum Body {
    None,
    Fixed(u64),
    Chunked,
    /// Framing hyper refuses (it closes the connection): nothing more to follow.
    Unknown,
}

impl Framing {
    fn of(req: &httparse::Request<'_, '_>) -> Framing {
        let mut length: Option<Option<u64>> = None;
        let mut te: Option<bool> = None;
        let mut opaque_after = req.method == Some("CONNECT");
        for h in req.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                let value = parse_length(h.value);
                length = match length {
                    None => Some(value),
                    Some(prev) if prev == value => Some(prev),
                    Some(_) => Some(None),
                };
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                // hyper reads the last Transfer-Encoding line for "chunked"
                te = Some(last_coding_is_chunked(h.value));
            } else if h.name.eq_ignore_ascii_case("upgrade") {
                opaque_after = true;
            }
        }
        let body = match (te, length) {
            (Some(true), _) if req.version == Some(1) => Body::Chunked,
            (Some(_), _) => Body::Unknown,
            (None, Some(Some(0))) | (None, None) => Body::None,
            (None, Some(Some(n))) => Body::Fixed(n),
            (None, Some(None)) => Body::Unknown,
        };
        Framing {
            both_lengths: te.is_some() && length.is_some() && req.version == Some(1),
            body,
            opaque_after,
        }
    }
}

/// Whether a LF in `head` comes without the CR before it.
pub fn has_bare_lf(head: &[u8]) -> bool {
    let mut from = 0;
    while let Some(i) = head[from..].iter().position(|&b| b == b'\n') {
        let at = from + i;
        if at == 0 || head[at - 1] != b'\r' {
            return true;
        }
        from = at + 1;
    }
    false
}

/// A `Content-Length` value: digits only, within 64 bits.
pub fn parse_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

fn last_coding_is_chunked(v: &[u8]) -> bool {
    v.rsplit(|&b| b == b',')
        .next()
        .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

/// Advances through a chunked body; returns the bytes used and the next state.
fn chunk_bytes(mut chunk: Chunk, bytes: &[u8]) -> (usize, State) {
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        chunk = match chunk {
            Chunk::Data(left) => {
                let n = usize::try_from(left)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len() - i);
                i += n;
                let left = left - n as u64;
                if left == 0 {
                    Chunk::DataCr
                } else {
                    Chunk::Data(left)
                }
            }
            other => {
                i += 1;
                match step(other, b) {
                    Some(State::Chunk(next)) => next,
                    Some(done) => return (i, done),
                    None => return (i, State::Off),
                }
            }
        };
    }
    (i, State::Chunk(chunk))
}

/// One byte of chunk framing; `None` for a byte hyper's decoder would not take either.
fn step(chunk: Chunk, b: u8) -> Option<State> {
    let next = match chunk {
        Chunk::Size { size, digits } => match b {
            b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                let digit = u64::from((b as char).to_digit(16)?);
                Chunk::Size {
                    size: size.checked_mul(16)?.checked_add(digit)?,
                    digits: true,
                }
            }
            b' ' | b'\t' if digits => Chunk::SizeSpace { size },
            b';' if digits => Chunk::Extension { size },
            b'\r' if digits => Chunk::SizeLf { size },
            _ => return None,
        },
        Chunk::SizeSpace { size } => match b {
            b' ' | b'\t' => Chunk::SizeSpace { size },
            b';' => Chunk::Extension { size },
            b'\r' => Chunk::SizeLf { size },
            _ => return None,
        },
        Chunk::Extension { size } => match b {
            b'\r' => Chunk::SizeLf { size },
            b'\n' => return None,
            _ => Chunk::Extension { size },
        },
        Chunk::SizeLf { size } => match (b, size) {
            (b'\n', 0) => Chunk::TrailerStart,
            (b'\n', n) => Chunk::Data(n),
            _ => return None,
        },
        Chunk::Data(_) => return None,
        Chunk::DataCr => match b {
            b'\r' => Chunk::DataLf,
            _ => return None,
        },
        Chunk::DataLf => match b {
            b'\n' => Chunk::Size {
                size: 0,
                digits: false,
            },
            _ => return None,
        },
        Chunk::TrailerStart => match b {
            b'\r' => Chunk::EndLf,
            b'\n' => return None,
            _ => Chunk::Trailer,
        },
        Chunk::Trailer => match b {
            b'\r' => Chunk::TrailerLf,
            b'\n' => return None,
            _ => Chunk::Trailer,
        },
        Chunk::TrailerLf => match b {
            b'\n' => Chunk::TrailerStart,
            _ => return None,
        },
        Chunk::EndLf => match b {
            b'\n' => return Some(State::Head),
            _ => return None,
        },
    };
    Some(State::Chunk(next))
}

#[cfg(test)]
mod tests;
