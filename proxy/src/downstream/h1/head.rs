//! Reads a request head for the proxy's own HTTP/1.1 server: one `httparse` pass over the
//! bytes as they arrived, the framing and smuggling checks folded into it, and the request
//! built on the same bytes (the target and the field values are slices of the head, not
//! copies).
//!
//! This path takes only heads it can forward as they are: HTTP/1.1, no `Transfer-Encoding`,
//! at most one `Content-Length` of digits only, no empty line before it, no upgrade, no
//! CONNECT, no `Expect`, one `Host` that `headers::check_host` takes, no line
//! ended by LF alone, within the head and field limits, and a target and fields that `http`
//! takes. Any other head is [`Parsed::Elsewhere`]: the connection goes on under hyper from
//! that request, from its first byte, where the framing scanner and hyper's own checks decide
//! (a 400, a 431, a tunnel, a chunked body). Nothing here refuses a request, so this parse
//! never answers differently from the one it stands in for. Pure: no IO.

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Uri, Version};
use smallvec::SmallVec;

use crate::downstream::{framing, headers};

/// Heads of up to this many fields are parsed with room on the stack.
const ON_STACK: usize = 100;
/// Heads of up to this many fields have their places noted on the stack.
const FIELDS_ON_STACK: usize = 16;

/// The limits a head must keep.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most bytes in a head.
    pub max_bytes: usize,
    /// Most header fields.
    pub max_headers: usize,
}

/// A request head taken off the front of the buffer.
#[derive(Debug)]
pub struct Head {
    /// The request, its body yet to come.
    pub request: Request<()>,
    /// The body's length (`Content-Length`; 0 without one).
    pub body: u64,
    /// The client asked to close the connection after this request (`Connection: close`).
    pub close: bool,
    /// The client takes trailers (`TE: trailers`).
    pub trailers: bool,
}

/// What the front of the buffer holds.
// one per request, moved once: boxing the head would cost an allocation per request
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Parsed {
    /// Not a whole head yet, and within the limit.
    Partial,
    /// A head this path leaves to hyper, and why (for the debug log). The buffer is as it was.
    Elsewhere(&'static str),
    /// A head, taken off the buffer.
    Head(Head),
}

/// Where a field's name and value lie in the head.
#[derive(Clone, Copy)]
struct Field {
    name: (usize, usize),
    value: (usize, usize),
}

/// Parses the head at the front of `buf`. On [`Parsed::Head`] its bytes are taken off `buf`;
/// otherwise `buf` is left as it was.
pub fn parse(buf: &mut BytesMut, limits: Limits) -> Parsed {
    // httparse skips empty lines before the request line, where a LF alone would not be seen
    if matches!(buf.first(), Some(b'\r' | b'\n')) {
        return Parsed::Elsewhere("an empty line before the request line");
    }
    let mut on_stack = [const { MaybeUninit::uninit() }; ON_STACK];
    let mut on_heap;
    let room: &mut [MaybeUninit<httparse::Header<'_>>] = if limits.max_headers <= ON_STACK {
        &mut on_stack[..limits.max_headers]
    } else {
        on_heap = vec![MaybeUninit::uninit(); limits.max_headers];
        &mut on_heap
    };
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, room) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > limits.max_bytes => {
            return Parsed::Elsewhere("a head over the limit");
        }
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => return Parsed::Elsewhere("too many fields"),
        Err(_) => return Parsed::Elsewhere("a head httparse refuses"),
    };
    if len > limits.max_bytes {
        return Parsed::Elsewhere("a head over the limit");
    }
    if req.version != Some(1) {
        return Parsed::Elsewhere("not HTTP/1.1");
    }
    let base = buf.as_ptr() as usize;
    // httparse's slices are of `buf` (an empty one is placed nowhere in particular)
    let at = |s: &[u8]| match s.len() {
        0 => (0, 0),
        n => ((s.as_ptr() as usize).wrapping_sub(base).min(len - n), n),
    };
    let (Some(method), Some(path)) = (req.method, req.path) else {
        return Parsed::Elsewhere("no method or target");
    };
    if method == "CONNECT" {
        return Parsed::Elsewhere("CONNECT");
    }
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Parsed::Elsewhere("a method http refuses");
    };
    let path = at(path.as_bytes());
    // on the stack for the usual head: an allocation per request otherwise
    let mut fields: SmallVec<[Field; FIELDS_ON_STACK]> = SmallVec::with_capacity(req.headers.len());
    let (mut body, mut close, mut trailers, mut host) = (None, false, false, false);
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            if body.is_some() {
                return Parsed::Elsewhere("more than one Content-Length");
            }
            match framing::parse_length(h.value) {
                Some(n) => body = Some(n),
                None => return Parsed::Elsewhere("a Content-Length that is not digits"),
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Parsed::Elsewhere("Transfer-Encoding");
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            return Parsed::Elsewhere("an upgrade");
        } else if name.eq_ignore_ascii_case(b"expect") {
            return Parsed::Elsewhere("Expect");
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in tokens(h.value) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    return Parsed::Elsewhere("an upgrade");
                } else if token.eq_ignore_ascii_case(b"host") {
                    return Parsed::Elsewhere("a Connection field naming Host");
                }
            }
        } else if name.eq_ignore_ascii_case(b"host") {
            if host {
                return Parsed::Elsewhere("several Host fields");
            }
            if !headers::valid_host(h.value) {
                return Parsed::Elsewhere("a Host that is not a host and port");
            }
            host = true;
        } else if name.eq_ignore_ascii_case(b"te") {
            trailers |= tokens(h.value).any(|t| t.eq_ignore_ascii_case(b"trailers"));
        }
        fields.push(Field {
            name: at(name),
            value: at(h.value),
        });
    }
    if !host {
        return Parsed::Elsewhere("no Host");
    }
    if !lines_end_in_crlf(buf, path, &fields, len) {
        return Parsed::Elsewhere("a line ended by LF alone");
    }
    let head = buf.split_to(len).freeze();
    match build(&head, method, path, &fields) {
        Some(request) => Parsed::Head(Head {
            request,
            body: body.unwrap_or(0),
            close,
            trailers,
        }),
        None => {
            put_back(head, buf);
            Parsed::Elsewhere("a target or field http refuses")
        }
    }
}

/// Whether every line of the head ends in CRLF, looked at where httparse found each line to
/// end (after the version, after each field value, and the empty line), so that the head is
/// not scanned again: httparse ends a line at a LF, and refuses a CR not before one.
fn lines_end_in_crlf(buf: &[u8], path: (usize, usize), fields: &[Field], len: usize) -> bool {
    let cr_after = |mut i: usize| {
        while buf.get(i).is_some_and(|b| *b == b' ' || *b == b'\t') {
            i += 1;
        }
        buf.get(i) == Some(&b'\r')
    };
    // the target, a space and `HTTP/1.1`
    cr_after(path.0 + path.1 + 9)
        && fields.iter().all(|f| match f.value {
            (_, 0) => cr_after(f.name.0 + f.name.1 + 1),
            (at, n) => cr_after(at + n),
        })
        && buf.get(len - 2) == Some(&b'\r')
}

/// The comma-separated tokens of a field value, trimmed.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(<[u8]>::trim_ascii)
}

/// The request on the head's bytes.
fn build(
    head: &Bytes,
    method: Method,
    path: (usize, usize),
    fields: &[Field],
) -> Option<Request<()>> {
    let slice = |(at, len): (usize, usize)| head.slice(at..at + len);
    let uri = Uri::from_maybe_shared(slice(path)).ok()?;
    let mut headers = HeaderMap::with_capacity(fields.len());
    for f in fields {
        let name = HeaderName::from_bytes(&head[f.name.0..f.name.0 + f.name.1]).ok()?;
        let value = HeaderValue::from_maybe_shared(slice(f.value)).ok()?;
        headers.append(name, value);
    }
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = headers;
    Some(request)
}

/// Puts a head taken off `buf` back at its front.
fn put_back(head: Bytes, buf: &mut BytesMut) {
    let rest = std::mem::take(buf);
    *buf = match head.try_into_mut() {
        Ok(mut whole) => {
            whole.unsplit(rest);
            whole
        }
        Err(head) => {
            let mut whole = BytesMut::with_capacity(head.len() + rest.len());
            whole.extend_from_slice(&head);
            whole.extend_from_slice(&rest);
            whole
        }
    };
}

#[cfg(test)]
mod tests;
