//! Entry points for the fuzz targets in `tests/fuzz/`. The HTTP/1 codecs are private to the
//! request path; this module (built only with the `fuzzing` feature) runs each over input
//! cut into arbitrary pieces, so that a target can check that where the reads fall changes
//! nothing.

use bytes::BytesMut;
use http::Method;

use crate::downstream::framing::Scanner;
use crate::downstream::h1::head::{self, Limits, Parsed};
use crate::upstream::h1client::codec::{self, Decoded, Decoder};

/// Splits `bytes` at the positions `cuts` names (each taken modulo the length, in order).
fn pieces<'a>(bytes: &'a [u8], cuts: &[u8]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts
        .iter()
        .map(|&c| usize::from(c) % (bytes.len() + 1))
        .collect();
    at.sort_unstable();
    at.dedup();
    let mut out = Vec::new();
    let mut from = 0;
    for a in at {
        out.push(&bytes[from..a]);
        from = a;
    }
    out.push(&bytes[from..]);
    out
}

/// What the request framing scanner made of a connection's bytes: the index of the first
/// request flagged for carrying both `Content-Length` and `Transfer-Encoding` or for a bare
/// LF in its head, whether it
/// stopped following the stream, whether the stream was HTTP/2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scanned {
    /// The flagged request's index, and why it was flagged.
    pub flagged: Option<(u64, &'static str)>,
    /// The scanner stopped.
    pub off: bool,
    /// The HTTP/2 preface came first.
    pub http2: bool,
}

/// Runs the downstream framing scanner over `bytes`, fed in the pieces `cuts` makes.
pub fn scan_requests(bytes: &[u8], cuts: &[u8], max_head_bytes: usize) -> Scanned {
    let mut s = Scanner::new(max_head_bytes);
    let mut flagged = None;
    for piece in pieces(bytes, cuts) {
        if let Some(i) = s.feed(piece) {
            flagged = Some((i, s.why()));
            break;
        }
    }
    Scanned {
        flagged,
        off: s.is_off(),
        http2: s.is_http2(),
    }
}

/// What the own HTTP/1.1 server's head parse made of the front of a connection's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnHead {
    /// The bytes ended before a whole head.
    Partial,
    /// Left to hyper, with the bytes as they came (checked here), and why.
    Elsewhere(&'static str),
    /// A head of this many bytes: its method, target, field count, body length and close.
    Head {
        /// Bytes taken off the buffer.
        len: usize,
        /// The method.
        method: String,
        /// The target.
        target: String,
        /// Field lines.
        fields: usize,
        /// `Content-Length`.
        body: u64,
        /// `Connection: close`.
        close: bool,
    },
}

/// Runs the own server's head parse over `bytes` arriving in the pieces `cuts` makes, as the
/// server does: parsed again after every read, until it is not partial.
///
/// # Panics
/// When the parse leaves to hyper a buffer it has changed.
pub fn own_head(bytes: &[u8], cuts: &[u8], max_head_bytes: usize) -> OwnHead {
    let limits = Limits {
        max_bytes: max_head_bytes,
        max_headers: 100,
    };
    let mut buf = BytesMut::new();
    for piece in pieces(bytes, cuts) {
        buf.extend_from_slice(piece);
        let before = buf.len();
        match head::parse(&mut buf, limits) {
            Parsed::Partial => {}
            Parsed::Elsewhere(why) => {
                assert_eq!(buf.len(), before, "a head left to hyper lost bytes");
                assert_eq!(
                    &buf[..],
                    &bytes[..before],
                    "a head left to hyper was changed"
                );
                return OwnHead::Elsewhere(why);
            }
            Parsed::Head(h) => {
                return OwnHead::Head {
                    len: before - buf.len(),
                    method: h.request.method().to_string(),
                    target: h.request.uri().to_string(),
                    fields: h.request.headers().len(),
                    body: h.body,
                    close: h.close,
                };
            }
        }
    }
    OwnHead::Partial
}

/// What the upstream response codec made of a response: its status, body and trailer count,
/// or the protocol error it refused it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded1 {
    /// The status.
    pub status: u16,
    /// The body bytes, as decoded.
    pub body: Vec<u8>,
    /// Trailer fields.
    pub trailers: usize,
    /// Whether the body ended (by its length, its last chunk, or the close).
    pub complete: bool,
}

/// Panics unless a head read with its fields passed as they came says what the same head read
/// into a map says once the map's hop-by-hop fields are removed: the same fields in the same
/// order (names compared in lower case), the same stated length, and the same refusals.
fn passed_fields_agree(bytes: &[u8]) {
    let (mut a, mut b) = (BytesMut::from(bytes), BytesMut::from(bytes));
    let (mapped, passing) = (
        codec::parse_response_head(&mut a, false),
        codec::parse_response_head(&mut b, true),
    );
    assert_eq!(
        mapped.is_ok(),
        passing.is_ok(),
        "{mapped:?} against {passing:?}"
    );
    assert_eq!(a, b, "the bytes taken differ");
    let (Ok(Some(mut mapped)), Ok(Some(passing))) = (mapped, passing) else {
        return;
    };
    assert_eq!(mapped.status, passing.status);
    let Some(passed) = passing.passed else {
        return;
    };
    assert!(passing.headers.is_empty(), "fields both passed and mapped");
    crate::downstream::headers::strip_hop_by_hop(&mut mapped.headers);
    let from_map: Vec<(Vec<u8>, Vec<u8>)> = mapped
        .headers
        .iter()
        .map(|(n, v)| (n.as_str().as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
    let from_passed: Vec<(Vec<u8>, Vec<u8>)> = passed
        .iter()
        .map(|(n, v, _)| (n.to_ascii_lowercase(), v.to_vec()))
        .collect();
    // a map keeps the values of one name together, in the order they came
    let mut in_map_order = from_passed.clone();
    in_map_order.sort_by_key(|(n, _)| {
        from_map
            .iter()
            .position(|(m, _)| m == n)
            .unwrap_or(usize::MAX)
    });
    assert_eq!(from_map, in_map_order, "the fields differ");
    // what the answer's writer takes says the same
    let written: Vec<(Vec<u8>, Vec<u8>)> = passed
        .lines()
        .map(|(line, _)| match line {
            crate::upstream::h1client::passed::Line::AsIs(l) => {
                let colon = l
                    .iter()
                    .position(|&b| b == b':')
                    .expect("a line with no colon");
                assert_eq!(&l[colon..colon + 2], b": ");
                assert!(!l[..colon].iter().any(u8::is_ascii_uppercase));
                (l[..colon].to_vec(), l[colon + 2..].to_vec())
            }
            crate::upstream::h1client::passed::Line::Parts { name, value } => {
                (name.to_ascii_lowercase(), value.to_vec())
            }
        })
        .collect();
    assert_eq!(written, from_passed, "the lines written differ");
    let stated = mapped
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| crate::downstream::framing::parse_length(v.as_bytes()));
    assert_eq!(passed.stated_length(), stated, "the stated lengths differ");
    assert_eq!(
        passed.has_length(),
        mapped.headers.contains_key(http::header::CONTENT_LENGTH)
    );
}

/// Reads a response to a request of `method` from `bytes`, arriving in the pieces `cuts`
/// makes, the upstream closing the connection after the last.
pub fn decode_response(bytes: &[u8], cuts: &[u8], method: &Method) -> Result<Decoded1, String> {
    passed_fields_agree(bytes);
    let mut buf = BytesMut::new();
    let mut arriving = pieces(bytes, cuts).into_iter();
    let mut head = loop {
        if let Some(h) = codec::parse_response_head(&mut buf, false).map_err(|e| e.0)? {
            break h;
        }
        match arriving.next() {
            Some(p) => buf.extend_from_slice(p),
            None => return Err("closed before the head".into()),
        }
    };
    let (length, _keep) = codec::response_body(method, &mut head).map_err(|e| e.0)?;
    let mut decoder = Decoder::new(length);
    let mut out = Decoded1 {
        status: head.status.as_u16(),
        body: Vec::new(),
        trailers: 0,
        complete: false,
    };
    loop {
        match decoder.decode(&mut buf).map_err(|e| e.0)? {
            Decoded::Data(d) => out.body.extend_from_slice(&d),
            Decoded::Trailers(t) => out.trailers = t.len(),
            Decoded::Done => {
                out.complete = true;
                return Ok(out);
            }
            Decoded::NeedMore => match arriving.next() {
                Some(p) => buf.extend_from_slice(p),
                None => {
                    decoder.eof().map_err(|e| e.0)?;
                    out.complete = decoder.is_done();
                    return Ok(out);
                }
            },
        }
    }
}
