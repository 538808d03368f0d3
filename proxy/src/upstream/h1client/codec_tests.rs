use super::*;

fn head_bytes(method: Method, target: &str, headers: &[(&str, &str)], f: RequestFraming) -> String {
    let mut h = HeaderMap::new();
    for (n, v) in headers {
        h.append(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let mut out = Vec::new();
    encode_request_head(&method, target, &h, Replacing::default(), f, &mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn the_request_head_carries_the_headers_and_the_framing_chosen() {
    assert_eq!(
        head_bytes(
            Method::GET,
            "/a?b=1",
            &[("host", "x"), ("x-a", "1"), ("x-a", "2")],
            RequestFraming::None
        ),
        "GET /a?b=1 HTTP/1.1\r\nhost: x\r\nx-a: 1\r\nx-a: 2\r\n\r\n"
    );
    // the client's own framing headers never go through: the framing chosen replaces them
    assert_eq!(
        head_bytes(
            Method::POST,
            "/",
            &[("content-length", "99"), ("transfer-encoding", "chunked")],
            RequestFraming::Sized(5)
        ),
        "POST / HTTP/1.1\r\ncontent-length: 5\r\n\r\n"
    );
    assert_eq!(
        head_bytes(
            Method::PUT,
            "/",
            &[("content-length", "5")],
            RequestFraming::Chunked
        ),
        "PUT / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    assert_eq!(
        head_bytes(Method::POST, "/", &[], RequestFraming::Sized(0)),
        "POST / HTTP/1.1\r\ncontent-length: 0\r\n\r\n"
    );
    assert_eq!(
        head_bytes(Method::POST, "/", &[], RequestFraming::Sized(u64::MAX)),
        format!("POST / HTTP/1.1\r\ncontent-length: {}\r\n\r\n", u64::MAX)
    );
}

#[test]
fn replaced_fields_are_left_out_and_their_lines_written_after_the_rest() {
    let mut h = HeaderMap::new();
    h.append("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
    h.append("host", HeaderValue::from_static("x"));
    h.append("x-forwarded-for", HeaderValue::from_static("7.7.7.7"));
    h.append("x-other", HeaderValue::from_static("1"));
    let names = [HeaderName::from_static("x-forwarded-for")];
    let replacing = Replacing {
        names: &names,
        lines: b"x-forwarded-for: 10.0.0.1\r\n",
    };
    let mut out = Vec::new();
    encode_request_head(
        &Method::GET,
        "/",
        &h,
        replacing,
        RequestFraming::Sized(3),
        &mut out,
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "GET / HTTP/1.1\r\nhost: x\r\nx-other: 1\r\nx-forwarded-for: 10.0.0.1\r\ncontent-length: 3\r\n\r\n"
    );
}

#[test]
fn chunks_and_the_last_chunk_with_trailers() {
    let mut out = Vec::new();
    chunk_header(300, &mut out);
    assert_eq!(out, b"12c\r\n");
    out.clear();
    last_chunk(None, &mut out);
    assert_eq!(out, b"0\r\n\r\n");
    out.clear();
    let mut t = HeaderMap::new();
    t.insert("grpc-status", HeaderValue::from_static("0"));
    last_chunk(Some(&t), &mut out);
    assert_eq!(out, b"0\r\ngrpc-status: 0\r\n\r\n");
}

fn parse(bytes: &[u8]) -> (Result<Option<ResponseHead>, ProtocolError>, BytesMut) {
    let mut buf = BytesMut::from(bytes);
    let r = parse_response_head(&mut buf, false);
    (r, buf)
}

#[test]
fn a_response_head_is_read_whole_or_not_at_all() {
    let full = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\nX-A: 2\r\n\r\nok";
    for cut in 0..full.len() {
        let (r, buf) = parse(&full[..cut]);
        if cut < full.len() - 2 {
            assert!(r.unwrap().is_none(), "cut at {cut}");
            assert_eq!(buf.len(), cut, "nothing taken while incomplete");
        } else {
            assert!(r.unwrap().is_some(), "cut at {cut}");
        }
    }
    let (r, buf) = parse(full);
    let head = r.unwrap().unwrap();
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.version, Version::HTTP_11);
    assert_eq!(head.headers.get_all("x-a").iter().count(), 2);
    assert_eq!(&buf[..], b"ok", "the body stays in the buffer");
}

#[test]
fn interim_heads_are_skipped_and_101_is_not() {
    let (r, buf) = parse(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\nHTTP/1.0 404 Not Found\r\n\r\n");
    let head = r.unwrap().unwrap();
    assert_eq!(head.status, StatusCode::NOT_FOUND);
    assert_eq!(head.version, Version::HTTP_10);
    assert!(buf.is_empty());
    // an interim head alone: taken, and more is needed
    let (r, buf) = parse(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 2");
    assert!(r.unwrap().is_none());
    assert_eq!(&buf[..], b"HTTP/1.1 2");
    let (r, _) = parse(b"HTTP/1.1 101 Switching Protocols\r\n\r\n");
    assert_eq!(r.unwrap().unwrap().status, StatusCode::SWITCHING_PROTOCOLS);
}

#[test]
fn malformed_and_oversized_heads_are_errors() {
    for bad_head in [
        &b"HTTP/1.1 2000 OK\r\n\r\n"[..],
        b"HTTP/2 200 OK\r\n\r\n",
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\x01b\r\n\r\n",
    ] {
        let (r, _) = parse(bad_head);
        assert!(r.is_err(), "{:?}", String::from_utf8_lossy(bad_head));
    }
    let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..=MAX_HEADERS {
        many.extend_from_slice(format!("x-{i}: y\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert!(parse(&many).0.unwrap_err().0.contains("fields"));
    let mut long = b"HTTP/1.1 200 OK\r\nx: ".to_vec();
    long.resize(MAX_HEAD_BYTES + 10, b'a');
    assert!(parse(&long).0.unwrap_err().0.contains("over"));
}

fn framing(method: Method, head: &[u8]) -> Result<(BodyLength, bool, ResponseHead), ProtocolError> {
    let mut buf = BytesMut::from(head);
    let mut h = parse_response_head(&mut buf, false)?.unwrap();
    let (l, keep) = response_body(&method, &mut h)?;
    Ok((l, keep, h))
}

#[test]
fn the_body_length_follows_rfc_9112() {
    use BodyLength::*;
    let cases: [(Method, &[u8], BodyLength, bool); 12] = [
        (
            Method::GET,
            b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n",
            Sized(12),
            true,
        ),
        (
            Method::GET,
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            Empty,
            true,
        ),
        (
            Method::GET,
            b"HTTP/1.1 200 OK\r\ncontent-length: 7, 7\r\ncontent-length: 7\r\n\r\n",
            Sized(7),
            true,
        ),
        (
            Method::HEAD,
            b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n",
            Empty,
            true,
        ),
        (Method::GET, b"HTTP/1.1 204 No Content\r\n\r\n", Empty, true),
        (
            Method::GET,
            b"HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\n\r\n",
            Empty,
            true,
        ),
        (
            Method::GET,
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            Chunked,
            true,
        ),
        (
            Method::GET,
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, Chunked\r\n\r\n",
            Chunked,
            true,
        ),
        (
            Method::GET,
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n",
            UntilClose,
            false,
        ),
        (Method::GET, b"HTTP/1.1 200 OK\r\n\r\n", UntilClose, false),
        (
            Method::GET,
            b"HTTP/1.1 200 OK\r\nconnection: keep-alive, close\r\ncontent-length: 1\r\n\r\n",
            Sized(1),
            false,
        ),
        (
            Method::GET,
            b"HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n",
            Sized(1),
            false,
        ),
    ];
    for (m, head, length, keep) in cases {
        let (l, k, _) = framing(m, head).unwrap();
        assert_eq!((l, k), (length, keep), "{}", String::from_utf8_lossy(head));
    }
    // both: the length goes, and so does the connection after this response
    let (l, k, h) = framing(
        Method::GET,
        b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n",
    )
    .unwrap();
    assert_eq!((l, k), (Chunked, false));
    assert!(!h.headers.contains_key(CONTENT_LENGTH));
    for bad_length in ["-1", "1e3", "", "+5", "5 5", "3, 4", "99999999999999999999"] {
        let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {bad_length}\r\n\r\n");
        assert!(
            framing(Method::GET, head.as_bytes()).is_err(),
            "{bad_length:?}"
        );
    }
    // the first fault found is the one told; a body-less answer is not measured at all
    let told = |head: &[u8]| framing(Method::GET, head).unwrap_err().0;
    assert_eq!(
        told(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\ncontent-length: x\r\n\r\n"),
        "conflicting content-length values"
    );
    assert_eq!(
        told(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\ncontent-length: 4\r\n\r\n"),
        "invalid content-length"
    );
    let (l, _, _) = framing(
        Method::HEAD,
        b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n",
    )
    .unwrap();
    assert_eq!(l, Empty);
    // codings over several fields: the last one named counts, an empty field names none
    for (fields, length) in [
        (
            "transfer-encoding: chunked\r\ntransfer-encoding: \r\n",
            Chunked,
        ),
        (
            "transfer-encoding: gzip\r\ntransfer-encoding: chunked\r\n",
            Chunked,
        ),
        (
            "transfer-encoding: chunked\r\ntransfer-encoding: gzip\r\n",
            UntilClose,
        ),
        ("transfer-encoding: \r\n", UntilClose),
        (
            "Connection: Close\r\nTransfer-Encoding: CHUNKED\r\n",
            Chunked,
        ),
    ] {
        let head = format!("HTTP/1.1 200 OK\r\n{fields}\r\n");
        let (l, keep, _) = framing(Method::GET, head.as_bytes()).unwrap();
        assert_eq!(l, length, "{fields:?}");
        assert_eq!(
            keep,
            length == Chunked && !fields.contains("Close"),
            "{fields:?}"
        );
    }
}

/// Decodes `wire` fed in pieces of `step` bytes, then the end of the connection when `eof`.
fn decode_all(
    length: BodyLength,
    wire: &[u8],
    step: usize,
    eof: bool,
) -> Result<(Vec<u8>, Option<HeaderMap>, BytesMut), ProtocolError> {
    let mut d = Decoder::new(length);
    let mut buf = BytesMut::new();
    let (mut body, mut trailers) = (Vec::new(), None);
    let mut fed = 0;
    loop {
        match d.decode(&mut buf)? {
            Decoded::Data(b) => body.extend_from_slice(&b),
            Decoded::Trailers(t) => trailers = Some(t),
            Decoded::Done => return Ok((body, trailers, buf)),
            Decoded::NeedMore if fed < wire.len() => {
                let n = step.min(wire.len() - fed);
                buf.extend_from_slice(&wire[fed..fed + n]);
                fed += n;
            }
            Decoded::NeedMore if eof => {
                d.eof()?;
                assert!(d.is_done());
            }
            Decoded::NeedMore => return Err(ProtocolError("stalled".into())),
        }
    }
}

#[test]
fn bodies_decode_the_same_in_pieces_of_every_size() {
    let chunked = b"5;ext=1\r\nhello\r\n6\r\n world\r\nA \r\n0123456789\r\n0\r\nx-t: 1\r\n\r\nNEXT";
    let plain_end = b"3\r\nabc\r\n0\r\n\r\nNEXT";
    for step in 1..=chunked.len() {
        let (body, trailers, rest) = decode_all(BodyLength::Chunked, chunked, step, false).unwrap();
        assert_eq!(body, b"hello world0123456789", "step {step}");
        assert_eq!(trailers.unwrap().get("x-t").unwrap(), "1");
        // what follows the body is left for the next response (or makes the connection unfit)
        assert!(b"NEXT".starts_with(&rest), "step {step}: {rest:?}");
        let (body, trailers, _) = decode_all(BodyLength::Chunked, plain_end, step, false).unwrap();
        assert_eq!((body.as_slice(), trailers), (&b"abc"[..], None));
        let (body, _, rest) =
            decode_all(BodyLength::Sized(10), b"0123456789NEXT", step, false).unwrap();
        assert_eq!(body, b"0123456789");
        assert!(b"NEXT".starts_with(&rest));
        let (body, _, _) = decode_all(BodyLength::UntilClose, b"all of it", step, true).unwrap();
        assert_eq!(body, b"all of it");
    }
    let (body, _, _) = decode_all(BodyLength::Empty, b"", 1, false).unwrap();
    assert!(body.is_empty());
}

#[test]
fn broken_bodies_are_errors() {
    for (length, wire) in [
        (BodyLength::Chunked, &b"zz\r\n"[..]),
        (BodyLength::Chunked, b"\r\n"),
        (BodyLength::Chunked, b"1234567890abcdef0\r\n"),
        (BodyLength::Chunked, b"3\r\nabcX\r\n"),
        (BodyLength::Chunked, b"0\r\nbad trailer\r\n\r\n"),
    ] {
        assert!(
            decode_all(length, wire, 64, true).is_err(),
            "{:?}",
            String::from_utf8_lossy(wire)
        );
    }
    let long_line = vec![b'1'; MAX_CHUNK_LINE + 2];
    assert!(
        decode_all(BodyLength::Chunked, &long_line, 64, false)
            .unwrap_err()
            .0
            .contains("too long")
    );
    // closed too early
    for (length, wire) in [
        (BodyLength::Sized(10), &b"01234"[..]),
        (BodyLength::Chunked, b"5\r\nhel"),
        (BodyLength::Chunked, b"5\r\nhello\r\n"),
    ] {
        let e = decode_all(length, wire, 3, true).unwrap_err();
        assert!(e.0.contains("closed"), "{e}");
    }
}
