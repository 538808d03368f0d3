//! A response head's end-to-end fields kept as the upstream sent them, for an answer that
//! goes on to the proxy's own HTTP/1.1 server: the fields are written again from the head's
//! bytes, with no `HeaderMap` built for them (on the request path's most common case that
//! map, its names looked up and its values hashed, cost more than parsing the head).
//!
//! The hop-by-hop fields are left out here, as `downstream::headers::strip_hop_by_hop` would
//! remove them from a map. A head this view cannot pass on exactly as the map would be (a
//! `Connection` field naming other fields, `TE`, `Transfer-Encoding` beside `Content-Length`,
//! gRPC, a 101) is read into a map instead; see [`Collect::finish`]. Pure: no IO.

use std::ops::Range;

use crate::downstream::headers::HOP_BY_HOP;

/// Which of the fields that frame a body a field is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Connection`.
    Connection,
    /// `Transfer-Encoding`.
    TransferEncoding,
    /// `Content-Length`.
    ContentLength,
    /// None of them.
    None,
}

/// What a kept field is to the answer's writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `Content-Length`.
    ContentLength,
    /// `Date`.
    Date,
    /// Any other end-to-end field.
    Other,
}

/// A field line as the answer's writer takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line<'a> {
    /// `name: value`, written as it is.
    AsIs(&'a [u8]),
    /// A name to write in lower case, as the map's names are, and a value.
    Parts {
        /// The name as sent.
        name: &'a [u8],
        /// The value.
        value: &'a [u8],
    },
}

/// A record's kind byte: the kind in the low bits, and whether the line is written as it is.
const AS_IS: u8 = 0x80;

fn kind_of(b: u8) -> Kind {
    match b & !AS_IS {
        0 => Kind::ContentLength,
        1 => Kind::Date,
        _ => Kind::Other,
    }
}

/// A kept field's record: its name's and its value's offset and length in the head (a head
/// is at most 64 KiB), and its kind.
const RECORD: usize = 9;
/// What follows the records: the stated length (8 bytes), its flags (1), the number of
/// records (2) and the head's length (4).
const TRAILER: usize = 15;
const HAS_LENGTH: u8 = 1;
const STATES_LENGTH: u8 = 2;

/// The end-to-end fields of a response head, in one allocation: a copy of the head, a record
/// per kept field, and a trailer (see [`RECORD`], [`TRAILER`]). One allocation where a map
/// takes two and the head's copy a third.
#[derive(Debug, Clone)]
pub struct PassedFields(Box<[u8]>);

impl PassedFields {
    fn trailer(&self) -> &[u8] {
        &self.0[self.0.len() - TRAILER..]
    }

    fn records(&self) -> &[u8] {
        let t = self.trailer();
        let count = usize::from(u16::from_le_bytes([t[9], t[10]]));
        let head = u32::from_le_bytes([t[11], t[12], t[13], t[14]]) as usize;
        &self.0[head..head + count * RECORD]
    }

    /// The fields in order: name (as sent), value, kind.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8], Kind)> {
        let bytes = &self.0;
        self.records().chunks_exact(RECORD).map(move |r| {
            let (name, value, kind) = record(r);
            (&bytes[name], &bytes[value], kind_of(kind))
        })
    }

    /// The fields in order as the answer's writer takes them: each line as it is in the
    /// head when it can be written so (a name in lower case, `: ` and the value), else its
    /// name and value; and its kind.
    pub fn lines(&self) -> impl Iterator<Item = (Line<'_>, Kind)> {
        let bytes = &self.0;
        self.records().chunks_exact(RECORD).map(move |r| {
            let (name, value, kind) = record(r);
            let line = if kind & AS_IS != 0 {
                Line::AsIs(&bytes[name.start..value.end])
            } else {
                Line::Parts {
                    name: &bytes[name],
                    value: &bytes[value],
                }
            };
            (line, kind_of(kind))
        })
    }

    /// The length the fields state (the first `Content-Length`, when it is digits only).
    pub fn stated_length(&self) -> Option<u64> {
        let t = self.trailer();
        (t[8] & STATES_LENGTH != 0)
            .then(|| u64::from_le_bytes([t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]]))
    }

    /// Whether a `Content-Length` field is kept (stating a length or not).
    pub fn has_length(&self) -> bool {
        self.trailer()[8] & HAS_LENGTH != 0
    }

    /// How many fields are kept.
    pub fn len(&self) -> usize {
        self.records().len() / RECORD
    }

    /// Whether no field is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A record's name and value, as places in the head, and its kind byte.
fn record(r: &[u8]) -> (Range<usize>, Range<usize>, u8) {
    let n = |i: usize| usize::from(u16::from_le_bytes([r[i], r[i + 1]]));
    let (name_at, value_at) = (n(0), n(4));
    (name_at..name_at + n(2), value_at..value_at + n(6), r[8])
}

/// Gathers the fields of one head as they are parsed.
#[derive(Debug)]
pub struct Collect {
    /// The head, then the records so far; its capacity is the whole allocation's.
    bytes: Vec<u8>,
    head: usize,
    length: Option<u64>,
    content_length: bool,
    transfer_encoding: bool,
    /// Why the head cannot be passed on as it came; it is read into a map then.
    refused: Option<&'static str>,
}

impl Collect {
    /// For the fields of `head` (at most 64 KiB), `fields` of them at most.
    pub fn new(head: &[u8], fields: usize) -> Self {
        let mut bytes = Vec::with_capacity(head.len() + fields * RECORD + TRAILER);
        bytes.extend_from_slice(head);
        Self {
            bytes,
            head: head.len(),
            length: None,
            content_length: false,
            transfer_encoding: false,
            refused: (head.len() > usize::from(u16::MAX)).then_some("a head over 64 KiB"),
        }
    }

    /// Notes one field, its name and value at these offsets of the head; says which framing
    /// field it is, if any, so that its name is compared once.
    pub fn field(&mut self, name: &str, value: &[u8], name_at: usize, value_at: usize) -> Framing {
        let n = name.as_bytes();
        if n.eq_ignore_ascii_case(b"connection") {
            let nominates = value
                .split(|&b| b == b',')
                .map(<[u8]>::trim_ascii)
                .any(|t| {
                    !t.is_empty()
                        && !t.eq_ignore_ascii_case(b"close")
                        && !t.eq_ignore_ascii_case(b"keep-alive")
                });
            if nominates {
                self.refused
                    .get_or_insert("a Connection field naming other fields");
            }
            return Framing::Connection;
        }
        if n.eq_ignore_ascii_case(b"transfer-encoding") {
            self.transfer_encoding = true;
            return Framing::TransferEncoding;
        }
        // left out, as `strip_hop_by_hop` removes them from a map
        if HOP_BY_HOP
            .iter()
            .any(|h| n.eq_ignore_ascii_case(h.as_str().as_bytes()))
        {
            return Framing::None;
        }
        let (kind, named) = if n.eq_ignore_ascii_case(b"content-length") {
            if !self.content_length {
                self.length = crate::downstream::framing::parse_length(value);
            }
            self.content_length = true;
            (0, Framing::ContentLength)
        } else if n.eq_ignore_ascii_case(b"date") {
            (1, Framing::None)
        } else if n.eq_ignore_ascii_case(b"te") {
            self.refused.get_or_insert("TE");
            return Framing::None;
        } else {
            if n.eq_ignore_ascii_case(b"content-type") && value.starts_with(b"application/grpc") {
                self.refused.get_or_insert("gRPC");
                return Framing::None;
            }
            (2, Framing::None)
        };
        if self.refused.is_some() {
            return named;
        }
        let name_end = name_at + n.len();
        // a name with a capital goes out in lower case, as the map's names do
        let capitals = n.iter().fold(false, |c, b| c | b.is_ascii_uppercase());
        let as_is = !capitals
            && value_at == name_end + 2
            && self.bytes.get(name_end..value_at) == Some(b": ");
        // within the head, which is at most 64 KiB (see `new`)
        for x in [name_at, n.len(), value_at, value.len()] {
            self.bytes.extend_from_slice(&(x as u16).to_le_bytes());
        }
        self.bytes.push(if as_is { kind | AS_IS } else { kind });
        named
    }

    /// The fields, or why they go into a map instead.
    pub fn finish(mut self, status: http::StatusCode) -> Result<PassedFields, &'static str> {
        if let Some(why) = self.refused {
            return Err(why);
        }
        if status.is_informational() {
            return Err("an interim answer");
        }
        if self.transfer_encoding && self.content_length {
            return Err("Transfer-Encoding beside Content-Length");
        }
        let count = (self.bytes.len() - self.head) / RECORD;
        // the room of the fields left out filled, so that the allocation is kept as it is
        self.bytes.resize(self.bytes.capacity() - TRAILER, 0);
        self.bytes
            .extend_from_slice(&self.length.unwrap_or(0).to_le_bytes());
        let flags = if self.content_length { HAS_LENGTH } else { 0 }
            | if self.length.is_some() {
                STATES_LENGTH
            } else {
                0
            };
        self.bytes.push(flags);
        self.bytes.extend_from_slice(&(count as u16).to_le_bytes());
        self.bytes
            .extend_from_slice(&(self.head as u32).to_le_bytes());
        Ok(PassedFields(self.bytes.into_boxed_slice()))
    }
}

/// The fields of a head made of `pairs` (each written `name: value`), for tests.
#[cfg(test)]
pub fn of_pairs(
    pairs: &[(&str, &str)],
    status: http::StatusCode,
) -> Result<PassedFields, &'static str> {
    let mut head = Vec::new();
    let mut at = Vec::new();
    for (n, v) in pairs {
        let name_at = head.len();
        head.extend_from_slice(n.as_bytes());
        head.extend_from_slice(b": ");
        at.push((name_at, head.len()));
        head.extend_from_slice(v.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    let mut c = Collect::new(&head, pairs.len());
    for ((n, v), (name_at, value_at)) in pairs.iter().zip(at) {
        c.field(n, v.as_bytes(), name_at, value_at);
    }
    c.finish(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(fields: &[(&str, &str)]) -> Result<PassedFields, &'static str> {
        of_pairs(fields, http::StatusCode::OK)
    }

    fn names(p: &PassedFields) -> Vec<(String, String, Kind)> {
        p.iter()
            .map(|(n, v, k)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                    k,
                )
            })
            .collect()
    }

    #[test]
    fn end_to_end_fields_are_kept_in_order_with_their_case() {
        let p = collect(&[
            ("Content-Type", "text/plain"),
            ("Content-Length", "5"),
            ("Date", "Mon, 07 Dec 2026 21:00:00 GMT"),
            ("X-A", "1"),
            ("x-a", "2"),
        ])
        .unwrap();
        assert_eq!(
            names(&p),
            vec![
                ("Content-Type".into(), "text/plain".into(), Kind::Other),
                ("Content-Length".into(), "5".into(), Kind::ContentLength),
                (
                    "Date".into(),
                    "Mon, 07 Dec 2026 21:00:00 GMT".into(),
                    Kind::Date
                ),
                ("X-A".into(), "1".into(), Kind::Other),
                ("x-a".into(), "2".into(), Kind::Other),
            ]
        );
        assert_eq!(p.stated_length(), Some(5));
        assert!(p.has_length());
        assert_eq!(p.len(), 5);
    }

    #[test]
    fn lines_in_lower_case_with_one_space_are_written_as_they_are() {
        let p = collect(&[("content-type", "text/plain"), ("X-Up", "1")]).unwrap();
        let lines: Vec<Line<'_>> = p.lines().map(|(l, _)| l).collect();
        assert_eq!(
            lines,
            vec![
                Line::AsIs(b"content-type: text/plain"),
                Line::Parts {
                    name: b"X-Up",
                    value: b"1"
                },
            ]
        );
        // `name:value`, as a head may have it
        let head = b"x-a:1\r\n";
        let mut c = Collect::new(head, 1);
        c.field("x-a", b"1", 0, 4);
        let p = c.finish(http::StatusCode::OK).unwrap();
        let (line, kind) = p.lines().next().unwrap();
        assert_eq!(
            line,
            Line::Parts {
                name: b"x-a",
                value: b"1"
            }
        );
        assert_eq!(kind, Kind::Other);
    }

    #[test]
    fn hop_by_hop_fields_are_left_out() {
        let p = collect(&[
            ("Connection", "keep-alive, close"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Connection", "x"),
            ("Proxy-Authenticate", "Basic"),
            ("Trailer", "X-Sum"),
            ("Transfer-Encoding", "chunked"),
            ("Upgrade", "h2c"),
            ("X-Kept", "yes"),
        ])
        .unwrap();
        assert_eq!(
            names(&p),
            vec![("X-Kept".into(), "yes".into(), Kind::Other)]
        );
        assert_eq!(p.stated_length(), None);
    }

    #[test]
    fn heads_a_map_must_take_are_refused() {
        assert_eq!(
            collect(&[("Connection", "close, X-Secret"), ("X-Secret", "1")]).unwrap_err(),
            "a Connection field naming other fields"
        );
        assert_eq!(collect(&[("TE", "trailers")]).unwrap_err(), "TE");
        assert_eq!(
            collect(&[("content-type", "application/grpc+proto")]).unwrap_err(),
            "gRPC"
        );
        assert_eq!(
            collect(&[("Transfer-Encoding", "chunked"), ("Content-Length", "3")]).unwrap_err(),
            "Transfer-Encoding beside Content-Length"
        );
        let interim = Collect::new(b"", 0).finish(http::StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(interim.unwrap_err(), "an interim answer");
    }

    #[test]
    fn the_stated_length_is_the_first_and_digits_only() {
        let p = collect(&[("Content-Length", "7"), ("Content-Length", "7")]).unwrap();
        assert_eq!(p.stated_length(), Some(7));
        let p = collect(&[("Content-Length", "+7")]).unwrap();
        assert_eq!(p.stated_length(), None);
        let p = collect(&[("Content-Length", "x"), ("Content-Length", "3")]).unwrap();
        assert_eq!(p.stated_length(), None);
        assert!(p.has_length());
        let p = collect(&[("X", "y")]).unwrap();
        assert_eq!(p.stated_length(), None);
        assert!(!p.has_length());
        assert!(collect(&[]).unwrap().is_empty());
    }
}
