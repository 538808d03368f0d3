use http::HeaderValue;

use super::*;

fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in pairs {
        h.append(*n, HeaderValue::from_static(v));
    }
    h
}

fn head(
    status: u16,
    pairs: &[(&'static str, &'static str)],
    to_head: bool,
    hint: BodyHint,
    close: bool,
) -> (BodyFraming, String) {
    let status = StatusCode::from_u16(status).unwrap();
    let h = map(pairs);
    let f = framing(status, &h, None, to_head, hint);
    let mut out = Vec::new();
    encode_head(status, &h, None, f, close, b"D", &mut out);
    let text = String::from_utf8(out).unwrap();
    // the same fields passed as an upstream sent them make the same head
    if let Some(p) = passed(status, pairs) {
        let empty = HeaderMap::new();
        let pf = framing(status, &empty, Some(&p), to_head, hint);
        let mut out = Vec::new();
        encode_head(status, &empty, Some(&p), pf, close, b"D", &mut out);
        assert_eq!((pf, String::from_utf8(out).unwrap()), (f, text.clone()));
    }
    (f.0, text)
}

/// The fields as a head's passed fields, when they all pass (none hop-by-hop).
fn passed(status: StatusCode, pairs: &[(&str, &str)]) -> Option<PassedFields> {
    let p = crate::upstream::h1client::passed::of_pairs(pairs, status).ok()?;
    (p.len() == pairs.len()).then_some(p)
}

#[test]
fn passed_fields_are_written_in_lower_case_before_the_map_s() {
    let status = StatusCode::OK;
    let p = passed(
        status,
        &[
            ("Content-Type", "text/plain"),
            ("Content-Length", "2"),
            ("Date", "E"),
        ],
    )
    .unwrap();
    let h = map(&[("x-extra", "1")]);
    let f = framing(status, &h, Some(&p), false, BodyHint::Unknown);
    assert_eq!(f, (BodyFraming::Sized(2), None));
    let mut out = Vec::new();
    encode_head(status, &h, Some(&p), f, true, b"D", &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\ndate: E\r\n\
         x-extra: 1\r\nconnection: close\r\n\r\n"
    );
}

#[test]
fn a_typical_answer_is_one_head_with_its_length_and_date() {
    let (f, text) = head(
        200,
        &[("content-type", "text/plain")],
        false,
        BodyHint::Exact(5),
        false,
    );
    assert_eq!(f, BodyFraming::Sized(5));
    assert_eq!(
        text,
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\ndate: D\r\n\r\n"
    );
}

#[test]
fn the_body_is_framed_by_the_stated_length_else_by_what_the_body_knows_else_chunked() {
    type Case<'a> = (
        &'a [(&'a str, &'a str)],
        BodyHint,
        BodyFraming,
        Option<&'a str>,
    );
    let cases: &[Case<'_>] = &[
        (
            &[("content-length", "7")],
            BodyHint::Unknown,
            BodyFraming::Sized(7),
            Some("7"),
        ),
        (
            &[("content-length", "7")],
            BodyHint::Exact(7),
            BodyFraming::Sized(7),
            Some("7"),
        ),
        (&[], BodyHint::Exact(3), BodyFraming::Sized(3), Some("3")),
        (&[], BodyHint::Ended, BodyFraming::Sized(0), Some("0")),
        (&[], BodyHint::Unknown, BodyFraming::Chunked, None),
        (
            &[("transfer-encoding", "gzip, chunked")],
            BodyHint::Unknown,
            BodyFraming::Chunked,
            None,
        ),
    ];
    for (pairs, hint, want, length) in cases {
        let pairs: Vec<(&'static str, &'static str)> = pairs
            .iter()
            .map(|(n, v)| (&*n.to_string().leak(), &*v.to_string().leak()))
            .collect();
        let (f, text) = head(200, &pairs, false, *hint, false);
        assert_eq!(f, *want, "{pairs:?} {hint:?}");
        let lengths: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("content-length: "))
            .collect();
        assert_eq!(
            lengths,
            length.iter().copied().collect::<Vec<_>>(),
            "{text}"
        );
        let codings: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("transfer-encoding: "))
            .collect();
        let chunked = *want == BodyFraming::Chunked;
        assert_eq!(
            codings,
            if chunked { vec!["chunked"] } else { vec![] },
            "{text}"
        );
    }
}

#[test]
fn no_body_goes_out_for_head_204_304_or_1xx() {
    // HEAD: the length a GET would have got
    let (f, text) = head(
        200,
        &[("content-length", "42")],
        true,
        BodyHint::Ended,
        false,
    );
    assert_eq!(f, BodyFraming::Nothing);
    assert!(text.contains("content-length: 42\r\n"), "{text}");
    let (_, text) = head(200, &[], true, BodyHint::Exact(9), false);
    assert!(text.contains("content-length: 9\r\n"), "{text}");
    let (_, text) = head(200, &[], true, BodyHint::Ended, false);
    assert!(!text.contains("content-length"), "{text}");
    // 204 and 1xx carry no length; 304 keeps the one it states
    let (f, text) = head(
        204,
        &[("content-length", "0")],
        false,
        BodyHint::Ended,
        false,
    );
    assert_eq!(f, BodyFraming::Nothing);
    assert!(!text.contains("content-length"), "{text}");
    let (f, text) = head(
        304,
        &[("content-length", "10")],
        false,
        BodyHint::Ended,
        false,
    );
    assert_eq!(f, BodyFraming::Nothing);
    assert!(text.contains("content-length: 10\r\n"), "{text}");
    let (f, _) = head(103, &[], false, BodyHint::Unknown, false);
    assert_eq!(f, BodyFraming::Nothing);
}

#[test]
fn close_and_date_are_added_only_when_the_fields_lack_them() {
    let (_, text) = head(200, &[], false, BodyHint::Ended, true);
    assert!(text.contains("connection: close\r\n"), "{text}");
    let (_, text) = head(
        400,
        &[("connection", "close")],
        false,
        BodyHint::Ended,
        true,
    );
    assert_eq!(text.matches("close").count(), 1, "{text}");
    let (_, text) = head(
        200,
        &[("date", "upstream's")],
        false,
        BodyHint::Ended,
        false,
    );
    assert!(
        text.contains("date: upstream's\r\n") && !text.contains("date: D"),
        "{text}"
    );
    let (_, text) = head(599, &[], false, BodyHint::Ended, false);
    assert!(text.starts_with("HTTP/1.1 599 \r\n"), "{text}");
}

#[test]
fn asks_close_reads_every_connection_token() {
    assert!(asks_close(&map(&[("connection", "keep-alive, Close")])));
    assert!(asks_close(&map(&[
        ("connection", "x"),
        ("connection", "close")
    ])));
    assert!(!asks_close(&map(&[("connection", "keep-alive")])));
    assert!(!asks_close(&map(&[])));
}
