//! A response head's end-to-end fields kept as the upstream sent them, for an answer that
//! goes on to the proxy's own HTTP/1.1 server: the fields are written again from the head's
//! bytes, with no `HeaderMap` built for them (on the request path's most common case that
//! map, its names looked up and its values hashed, cost more than parsing the head).
//!
//! The hop-by-hop fields are left out here, as `downstream::headers::strip_hop_by_hop` would
//! remove them from a map. A head this view cannot pass on exactly as the map would be (a
//! `Connection` field naming other fields, `TE`, `Transfer-Encoding` beside `Content-Length`,
//! gRPC, a 101) is read into a map instead; see [`Collect::finish`]. Pure: no IO.

use bytes::Bytes;

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

/// One kept field: where its name and value lie in the head.
#[derive(Debug, Clone, Copy)]
struct Field {
    name: (u32, u32),
    value: (u32, u32),
    kind: Kind,
}

/// The end-to-end fields of a response head, on the head's bytes.
#[derive(Debug, Clone)]
pub struct PassedFields {
    head: Bytes,
    fields: Vec<Field>,
    /// The first `Content-Length` when it is digits only.
    length: Option<u64>,
    /// A `Content-Length` field is kept.
    has_length: bool,
}

impl PassedFields {
    /// The fields in order: name (as sent), value, kind.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8], Kind)> {
        let at = |(at, len): (u32, u32)| &self.head[at as usize..(at + len) as usize];
        self.fields
            .iter()
            .map(move |f| (at(f.name), at(f.value), f.kind))
    }

    /// The length the fields state (the first `Content-Length`, digits only).
    pub fn stated_length(&self) -> Option<u64> {
        self.length
    }

    /// Whether a `Content-Length` field is kept (stating a length or not).
    pub fn has_length(&self) -> bool {
        self.has_length
    }

    /// How many fields are kept.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether no field is kept.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

/// Hop-by-hop names, left out (as `strip_hop_by_hop` removes them).
const HOP_BY_HOP: [&[u8]; 7] = [
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"proxy-authenticate",
    b"trailer",
    b"transfer-encoding",
    b"upgrade",
];

/// Gathers the fields of one head as they are parsed.
#[derive(Debug)]
pub struct Collect {
    fields: Vec<Field>,
    length: Option<u64>,
    content_length: bool,
    transfer_encoding: bool,
    /// Why the head cannot be passed on as it came; it is read into a map then.
    refused: Option<&'static str>,
}

impl Collect {
    /// Room for `n` fields.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            fields: Vec::with_capacity(n),
            length: None,
            content_length: false,
            transfer_encoding: false,
            refused: None,
        }
    }

    /// Notes one field, its name and value at these offsets of the head.
    pub fn field(&mut self, name: &str, value: &[u8], name_at: usize, value_at: usize) {
        if self.refused.is_some() {
            return;
        }
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
                self.refused = Some("a Connection field naming other fields");
            }
            return;
        }
        if n.eq_ignore_ascii_case(b"transfer-encoding") {
            self.transfer_encoding = true;
            return;
        }
        if HOP_BY_HOP.iter().any(|h| n.eq_ignore_ascii_case(h)) {
            return;
        }
        let kind = if n.eq_ignore_ascii_case(b"content-length") {
            if !self.content_length {
                self.length = crate::downstream::framing::parse_length(value);
            }
            self.content_length = true;
            Kind::ContentLength
        } else if n.eq_ignore_ascii_case(b"date") {
            Kind::Date
        } else if n.eq_ignore_ascii_case(b"te") {
            self.refused = Some("TE");
            return;
        } else {
            if n.eq_ignore_ascii_case(b"content-type") && value.starts_with(b"application/grpc") {
                self.refused = Some("gRPC");
                return;
            }
            Kind::Other
        };
        self.fields.push(Field {
            name: (name_at as u32, n.len() as u32),
            value: (value_at as u32, value.len() as u32),
            kind,
        });
    }

    /// The fields on `head` (the bytes the offsets are of), or why they go into a map instead.
    pub fn finish(
        self,
        head: Bytes,
        status: http::StatusCode,
    ) -> Result<PassedFields, &'static str> {
        if let Some(why) = self.refused {
            return Err(why);
        }
        if status.is_informational() {
            return Err("an interim answer");
        }
        if self.transfer_encoding && self.content_length {
            return Err("Transfer-Encoding beside Content-Length");
        }
        Ok(PassedFields {
            head,
            fields: self.fields,
            length: self.length,
            has_length: self.content_length,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(fields: &[(&str, &str)]) -> Result<PassedFields, &'static str> {
        let mut head = Vec::new();
        let mut c = Collect::with_capacity(fields.len());
        for (n, v) in fields {
            let name_at = head.len();
            head.extend_from_slice(n.as_bytes());
            head.extend_from_slice(b": ");
            let value_at = head.len();
            head.extend_from_slice(v.as_bytes());
            head.extend_from_slice(b"\r\n");
            c.field(n, v.as_bytes(), name_at, value_at);
        }
        c.finish(Bytes::from(head), http::StatusCode::OK)
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
        let interim =
            Collect::with_capacity(0).finish(Bytes::new(), http::StatusCode::SWITCHING_PROTOCOLS);
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
