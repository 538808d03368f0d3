//! HTTP/1.1 on the upstream side, as bytes: the request head written, the response head read,
//! how long the response body is, and the chunked body taken apart. Pure functions over
//! buffers, no IO, so that every case is tested by feeding bytes.

use std::mem::MaybeUninit;

use bytes::{Buf as _, Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, HeaderName, HeaderValue, TRANSFER_ENCODING};
use http::{HeaderMap, Method, StatusCode, Version};

use super::passed::{Collect, Framing, PassedFields};

/// The most bytes a response head (or a chunked body's trailers) may take.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The most header fields a response head may carry.
pub const MAX_HEADERS: usize = 128;
/// The longest chunk-size line accepted, extensions included.
const MAX_CHUNK_LINE: usize = 4096;

/// Something the upstream sent that is not HTTP/1.1 as this client reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad<T>(why: impl Into<String>) -> Result<T, ProtocolError> {
    Err(ProtocolError(why.into()))
}

/// How a request body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFraming {
    /// No body and no length header.
    None,
    /// `Content-Length: n` and exactly n bytes.
    Sized(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Field lines written in place of the map's fields of some names (the proxy's forwarding
/// headers, written this way so that the map is not grown for them).
#[derive(Debug, Clone, Copy, Default)]
pub struct Replacing<'a> {
    /// The names whose fields in the map are left out.
    pub names: &'a [HeaderName],
    /// Whole field lines (`name: value\r\n`), written after the map's fields.
    pub lines: &'a [u8],
}

/// Writes a request head: the request line in origin form, the headers as they are except
/// for the framing ones, which `framing` decides, and the ones `replacing` replaces.
pub fn encode_request_head(
    method: &Method,
    path_and_query: &str,
    headers: &HeaderMap,
    replacing: Replacing<'_>,
    framing: RequestFraming,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path_and_query.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING || replacing.names.contains(name) {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(replacing.lines);
    match framing {
        RequestFraming::None => {}
        RequestFraming::Sized(n) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa(n, &mut [0; 20]));
            out.extend_from_slice(b"\r\n");
        }
        RequestFraming::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

/// The chunk-size line for a chunk of `len` bytes.
pub fn chunk_header(len: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(format!("{len:x}\r\n").as_bytes());
}

/// The last chunk with its trailers.
pub fn last_chunk(trailers: Option<&HeaderMap>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"0\r\n");
    for (name, value) in trailers.into_iter().flatten() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// `n` in decimal ASCII, written at the end of `buf`.
pub fn itoa(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// A response head read off the wire.
#[derive(Debug)]
pub struct ResponseHead {
    /// The status.
    pub status: StatusCode,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// The header fields, in order; empty when they are [`passed`](Self::passed).
    pub headers: HeaderMap,
    /// The end-to-end fields on the head's bytes, when asked for and the head allows it.
    pub passed: Option<PassedFields>,
    /// What its framing fields say, noted as it was parsed.
    framing: FramingFields,
}

/// What a head's `Connection`, `Transfer-Encoding` and `Content-Length` fields say, noted
/// field by field as the head is parsed, so that deciding the body's length looks nothing up.
#[derive(Debug, Default, Clone, Copy)]
struct FramingFields {
    /// A `Connection` field has the `close` token.
    close: bool,
    /// `Transfer-Encoding` fields came; `Some(true)` when their last coding is `chunked`.
    transfer_encoding: Option<bool>,
    content_length: ContentLength,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ContentLength {
    #[default]
    Absent,
    Is(u64),
    Invalid,
    Conflicting,
}

impl FramingFields {
    fn note(&mut self, name: &str, value: &[u8]) {
        let named = if name.eq_ignore_ascii_case("connection") {
            Framing::Connection
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            Framing::TransferEncoding
        } else if name.eq_ignore_ascii_case("content-length") {
            Framing::ContentLength
        } else {
            return;
        };
        self.note_named(named, value);
    }

    /// Notes a field whose name is known to be one of the framing ones.
    fn note_named(&mut self, named: Framing, value: &[u8]) {
        let tokens = || {
            value
                .split(|&b| b == b',')
                .map(<[u8]>::trim_ascii)
                .filter(|t| !t.is_empty())
        };
        if named == Framing::Connection {
            self.close |= tokens().any(|t| t.eq_ignore_ascii_case(b"close"));
        } else if named == Framing::TransferEncoding {
            let last = tokens()
                .next_back()
                .map(|t| t.eq_ignore_ascii_case(b"chunked"));
            // a field with no coding leaves the last one as it was
            self.transfer_encoding = last.or(self.transfer_encoding).or(Some(false));
        } else if named == Framing::ContentLength {
            for part in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                let n =
                    (!part.is_empty() && part.len() <= 19 && part.iter().all(u8::is_ascii_digit))
                        .then(|| part.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')));
                self.content_length = match (self.content_length, n) {
                    (ContentLength::Invalid | ContentLength::Conflicting, _) => self.content_length,
                    (_, None) => ContentLength::Invalid,
                    (ContentLength::Absent, Some(n)) => ContentLength::Is(n),
                    (ContentLength::Is(l), Some(n)) if l == n => ContentLength::Is(n),
                    (ContentLength::Is(_), Some(_)) => ContentLength::Conflicting,
                };
            }
        }
    }
}

/// Reads a response head from the front of `buf`: `Ok(None)` when more bytes are needed; on
/// success the head's bytes are taken out of `buf`. Interim (1xx) heads other than 101 are
/// skipped, as a proxy that does not pass them on must. With `pass`, the end-to-end fields
/// are kept as they came ([`ResponseHead::passed`]) when the head allows it, and no map is
/// built.
pub fn parse_response_head(
    buf: &mut BytesMut,
    pass: bool,
) -> Result<Option<ResponseHead>, ProtocolError> {
    loop {
        // room for the fields left uninitialised: filling 128 empty ones cost more than
        // parsing a small head
        let mut fields = [const { MaybeUninit::uninit() }; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut []);
        let n = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut parsed,
            buf,
            &mut fields,
        ) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                if buf.len() > MAX_HEAD_BYTES {
                    return bad(format!("response head over {MAX_HEAD_BYTES} bytes"));
                }
                return Ok(None);
            }
            Err(httparse::Error::TooManyHeaders) => {
                return bad(format!("response head with over {MAX_HEADERS} fields"));
            }
            Err(e) => return bad(format!("invalid response head: {e}")),
        };
        if n > MAX_HEAD_BYTES {
            return bad(format!("response head over {MAX_HEAD_BYTES} bytes"));
        }
        let code = parsed.code.unwrap_or(0);
        let status =
            StatusCode::from_u16(code).or_else(|_| bad(format!("invalid status code {code}")))?;
        let version = if parsed.version == Some(0) {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
        if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
            buf.advance(n);
            continue;
        }
        let base = buf.as_ptr() as usize;
        // httparse's slices are of `buf` (an empty one is placed nowhere in particular)
        let at = |s: &[u8]| match s.len() {
            0 => 0,
            len => (s.as_ptr() as usize).wrapping_sub(base).min(n - len),
        };
        let mut framing = FramingFields::default();
        let mut passed = None;
        if pass {
            let mut collect = Collect::new(&buf[..n], parsed.headers.len());
            for f in parsed.headers.iter() {
                let named = collect.field(f.name, f.value, at(f.name.as_bytes()), at(f.value));
                framing.note_named(named, f.value);
            }
            match collect.finish(status) {
                Ok(p) => passed = Some(p),
                Err(why) => tracing::trace!(why, "response fields read into a map"),
            }
        }
        let mut headers = HeaderMap::new();
        if passed.is_none() {
            // one copy of the head, and every value a slice of it: one allocation, not one each
            let head = Bytes::copy_from_slice(&buf[..n]);
            headers.reserve(parsed.headers.len());
            for f in parsed.headers.iter() {
                if !pass {
                    framing.note(f.name, f.value);
                }
                let name = HeaderName::from_bytes(f.name.as_bytes())
                    .or_else(|_| bad(format!("invalid header name {:?}", f.name)))?;
                let at = at(f.value);
                let value = HeaderValue::from_maybe_shared(head.slice(at..at + f.value.len()))
                    .or_else(|_| bad(format!("invalid value for header {:?}", f.name)))?;
                headers.append(name, value);
            }
        }
        buf.advance(n);
        return Ok(Some(ResponseHead {
            status,
            version,
            headers,
            passed,
            framing,
        }));
    }
}

/// The fields as a header map, the values copied.
fn header_map(fields: &[httparse::Header<'_>]) -> Result<HeaderMap, ProtocolError> {
    let mut headers = HeaderMap::with_capacity(fields.len());
    for f in fields {
        let name = HeaderName::from_bytes(f.name.as_bytes())
            .or_else(|_| bad(format!("invalid header name {:?}", f.name)))?;
        let value = HeaderValue::from_bytes(f.value)
            .or_else(|_| bad(format!("invalid value for header {:?}", f.name)))?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// How long a response body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLength {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Sized(u64),
    /// Chunked.
    Chunked,
    /// Until the upstream closes the connection.
    UntilClose,
}

/// The response body's length and whether the connection can carry another request after it
/// (RFC 9112 §6.3). `Transfer-Encoding` wins over `Content-Length`, and the connection is not
/// kept then; a `Content-Length` that is not one number is an error.
pub fn response_body(
    request_method: &Method,
    head: &mut ResponseHead,
) -> Result<(BodyLength, bool), ProtocolError> {
    let fields = head.framing;
    let mut keep = head.version == Version::HTTP_11 && !fields.close;
    let no_body = request_method == Method::HEAD
        || head.status.is_informational()
        || head.status == StatusCode::NO_CONTENT
        || head.status == StatusCode::NOT_MODIFIED;
    if no_body {
        return Ok((BodyLength::Empty, keep));
    }
    if let Some(chunked) = fields.transfer_encoding {
        if fields.content_length != ContentLength::Absent {
            head.headers.remove(CONTENT_LENGTH);
            keep = false;
        }
        return Ok(if chunked {
            (BodyLength::Chunked, keep)
        } else {
            (BodyLength::UntilClose, false)
        });
    }
    match fields.content_length {
        ContentLength::Is(0) => Ok((BodyLength::Empty, keep)),
        ContentLength::Is(n) => Ok((BodyLength::Sized(n), keep)),
        ContentLength::Absent => Ok((BodyLength::UntilClose, false)),
        ContentLength::Invalid => bad("invalid content-length"),
        ContentLength::Conflicting => bad("conflicting content-length values"),
    }
}

/// What the body decoder got out of the buffer.
#[derive(Debug, PartialEq)]
pub enum Decoded {
    /// Body bytes.
    Data(Bytes),
    /// The trailers of a chunked body (its end follows).
    Trailers(HeaderMap),
    /// The body is complete.
    Done,
    /// More bytes are needed.
    NeedMore,
}

/// Takes a response body apart as its bytes arrive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoder {
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Sized(u64),
    UntilClose,
    ChunkSize,
    ChunkData(u64),
    ChunkDataEnd,
    Trailers,
    Done,
}

impl Decoder {
    /// A decoder for a body of this length.
    pub fn new(length: BodyLength) -> Self {
        let state = match length {
            BodyLength::Empty | BodyLength::Sized(0) => State::Done,
            BodyLength::Sized(n) => State::Sized(n),
            BodyLength::Chunked => State::ChunkSize,
            BodyLength::UntilClose => State::UntilClose,
        };
        Self { state }
    }

    /// Whether the body has been read to its end.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The bytes still to come, when the length is known.
    pub fn remaining(&self) -> Option<u64> {
        match self.state {
            State::Sized(n) => Some(n),
            State::Done => Some(0),
            _ => None,
        }
    }

    /// Takes what it can from the front of `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, ProtocolError> {
        loop {
            match self.state {
                State::Done => return Ok(Decoded::Done),
                State::Sized(n) | State::ChunkData(n) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let take = usize::try_from(n).unwrap_or(usize::MAX).min(buf.len());
                    let left = n - take as u64;
                    self.state = match (self.state, left) {
                        (State::Sized(_), 0) => State::Done,
                        (State::Sized(_), _) => State::Sized(left),
                        (_, 0) => State::ChunkDataEnd,
                        _ => State::ChunkData(left),
                    };
                    return Ok(Decoded::Data(buf.split_to(take).freeze()));
                }
                State::UntilClose => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    return Ok(Decoded::Data(buf.split().freeze()));
                }
                State::ChunkSize => {
                    let Some(end) = buf.iter().position(|&b| b == b'\n') else {
                        if buf.len() > MAX_CHUNK_LINE {
                            return bad("chunk-size line too long");
                        }
                        return Ok(Decoded::NeedMore);
                    };
                    if end > MAX_CHUNK_LINE {
                        return bad("chunk-size line too long");
                    }
                    let size = chunk_size(&buf[..end])?;
                    buf.advance(end + 1);
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::ChunkData(size)
                    };
                }
                State::ChunkDataEnd => match buf.get(..2) {
                    None if buf.first().is_none_or(|&b| b == b'\r') => {
                        return Ok(Decoded::NeedMore);
                    }
                    Some(b"\r\n") => {
                        buf.advance(2);
                        self.state = State::ChunkSize;
                    }
                    _ => return bad("chunk data not followed by CRLF"),
                },
                State::Trailers => {
                    if buf.starts_with(b"\r\n") {
                        buf.advance(2);
                        self.state = State::Done;
                        continue;
                    }
                    if buf.len() < 2 {
                        return Ok(Decoded::NeedMore);
                    }
                    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    match httparse::parse_headers(buf, &mut fields) {
                        Ok(httparse::Status::Complete((n, fields))) => {
                            let trailers = header_map(fields)?;
                            buf.advance(n);
                            self.state = State::Done;
                            return Ok(Decoded::Trailers(trailers));
                        }
                        Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD_BYTES => {
                            return Ok(Decoded::NeedMore);
                        }
                        Ok(httparse::Status::Partial) => return bad("trailers too long"),
                        Err(e) => return bad(format!("invalid trailers: {e}")),
                    }
                }
            }
        }
    }

    /// The upstream closed the connection: the end of a body read until close, an error for
    /// any other body not yet complete.
    pub fn eof(&mut self) -> Result<(), ProtocolError> {
        match self.state {
            State::Done => Ok(()),
            State::UntilClose => {
                self.state = State::Done;
                Ok(())
            }
            _ => bad("the upstream closed the connection before the body ended"),
        }
    }
}

/// The size of a chunk-size line (`\r\n` or `\n` ended, extensions ignored).
fn chunk_size(line: &[u8]) -> Result<u64, ProtocolError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let digits = line
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if digits.is_empty() || digits.len() > 15 {
        return bad("invalid chunk size");
    }
    digits.iter().try_fold(0u64, |n, &d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            b'A'..=b'F' => d - b'A' + 10,
            _ => return bad("invalid chunk size"),
        };
        Ok(n * 16 + u64::from(v))
    })
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
