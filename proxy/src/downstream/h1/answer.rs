//! Writes an answer's head for the proxy's own HTTP/1.1 server, and decides how its body goes
//! on the wire: as many bytes as its `Content-Length` says, chunked, or nothing at all (an
//! answer to `HEAD`, a 204, a 304). What hyper's server does for the same answer, so that
//! clients see no difference between the two paths. Pure: no IO, no clock (the `Date` value
//! is given).

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use http::{HeaderMap, StatusCode};

use crate::upstream::h1client::codec::itoa;
use crate::upstream::h1client::passed::{Kind, Line, PassedFields};

/// An answer's body that may carry the answer's fields as an HTTP/1.1 upstream sent them
/// ([`PassedFields`]), to be written from those bytes rather than from the answer's map.
pub trait Passing {
    /// The fields kept as they came, taken (`None` when the map holds them all).
    fn take_passed(&mut self) -> Option<PassedFields> {
        None
    }
}

impl Passing for http_body_util::Full<Bytes> {}

/// How an answer's body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body is written, whatever the body holds (`HEAD`, 1xx, 204, 304).
    Nothing,
    /// Exactly this many bytes.
    Sized(u64),
    /// Chunks, and a last chunk (with trailers when the client takes them).
    Chunked,
}

/// What the body says of its own length before it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyHint {
    /// It has ended already: no bytes.
    Ended,
    /// Exactly this many bytes.
    Exact(u64),
    /// Not known.
    Unknown,
}

/// How the answer's head frames its body, and the length field to add (none when the head
/// has one, or has no body).
///
/// The answer's fields are in `passed` (see [`encode_head`]) and in `headers`.
pub fn framing(
    status: StatusCode,
    headers: &HeaderMap,
    passed: Option<&PassedFields>,
    to_head: bool,
    hint: BodyHint,
) -> (BodyFraming, Option<u64>) {
    let no_body_status = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    // the passed fields come first when written, and have no Transfer-Encoding
    let stated = match passed.filter(|p| p.has_length()) {
        Some(p) => p.stated_length(),
        None => headers
            .get(CONTENT_LENGTH)
            .and_then(|v| crate::downstream::framing::parse_length(v.as_bytes())),
    };
    let from_body = match hint {
        BodyHint::Ended => Some(0),
        BodyHint::Exact(n) => Some(n),
        BodyHint::Unknown => None,
    };
    if no_body_status {
        return (BodyFraming::Nothing, None);
    }
    if to_head {
        // the head says what a GET would have got: its length field as it is, else the
        // body's when known (a body that has ended says nothing of a GET's)
        let add = match (stated, hint) {
            (None, BodyHint::Exact(n)) if !headers.contains_key(TRANSFER_ENCODING) => Some(n),
            _ => None,
        };
        return (BodyFraming::Nothing, add);
    }
    match (stated, from_body) {
        (Some(n), _) => (BodyFraming::Sized(n), None),
        (None, Some(n)) => (BodyFraming::Sized(n), Some(n)),
        (None, None) => (BodyFraming::Chunked, None),
    }
}

/// Writes the status line and the fields of an answer into `out`. `framing` and `length`
/// are [`framing`]'s; `close` adds `connection: close` when the fields do not say it;
/// `date` is the `Date` value, added when the fields have none.
///
/// The fields are those in `passed` (written first, their names in lower case as the map's
/// are) and those in `headers`.
pub fn encode_head(
    status: StatusCode,
    headers: &HeaderMap,
    passed: Option<&PassedFields>,
    (framing, length): (BodyFraming, Option<u64>),
    close: bool,
    date: &[u8],
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let no_length = framing == BodyFraming::Nothing && length.is_none() && {
        status.is_informational() || status == StatusCode::NO_CONTENT
    };
    let (mut has_connection, mut has_date) = (false, false);
    if let Some(p) = passed {
        for (line, kind) in p.lines() {
            // the same rules as below; a passed field is never hop-by-hop
            if kind == Kind::ContentLength && (no_length || framing == BodyFraming::Chunked) {
                continue;
            }
            has_date |= kind == Kind::Date;
            match line {
                Line::AsIs(line) => out.extend_from_slice(line),
                Line::Parts { name, value } => {
                    let at = out.len();
                    out.extend_from_slice(name);
                    out[at..].make_ascii_lowercase();
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(value);
                }
            }
            out.extend_from_slice(b"\r\n");
        }
    }
    for (name, value) in headers {
        // the framing is this server's to say: a stated transfer coding is replaced by its
        // own, and a 1xx or 204 carries no length
        if name == TRANSFER_ENCODING || (no_length && name == CONTENT_LENGTH) {
            continue;
        }
        has_connection |= name == CONNECTION;
        has_date |= name == DATE;
        if framing == BodyFraming::Chunked && name == CONTENT_LENGTH {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(n) = length {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(itoa(n, &mut [0; 20]));
        out.extend_from_slice(b"\r\n");
    }
    if framing == BodyFraming::Chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if close && !has_connection {
        out.extend_from_slice(b"connection: close\r\n");
    }
    if !has_date {
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(date);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Whether the answer's fields ask for the connection to close (`Connection: close`).
pub fn asks_close(headers: &HeaderMap) -> bool {
    headers.get_all(CONNECTION).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
    })
}

#[cfg(test)]
mod tests;
