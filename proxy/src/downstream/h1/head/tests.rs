use bytes::BytesMut;

use super::*;

const LIMITS: Limits = Limits {
    max_bytes: 8192,
    max_headers: 100,
};

fn head_of(bytes: &str) -> (Head, BytesMut) {
    let mut buf = BytesMut::from(bytes);
    match parse(&mut buf, LIMITS) {
        Parsed::Head(h) => (h, buf),
        other => panic!("{bytes:?}: {other:?}"),
    }
}

fn elsewhere(bytes: &[u8], limits: Limits) -> &'static str {
    let mut buf = BytesMut::from(bytes);
    match parse(&mut buf, limits) {
        Parsed::Elsewhere(why) => {
            assert_eq!(&buf[..], bytes, "the buffer is left as it was");
            why
        }
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bytes)),
    }
}

#[test]
fn a_head_is_taken_off_the_buffer_with_its_fields_on_the_same_bytes() {
    let (h, rest) = head_of(
        "GET /a/b?c=d HTTP/1.1\r\nHost: example.com\r\nX-Two: 1\r\nx-two: 2\r\n\r\nGET /next",
    );
    assert_eq!(&rest[..], b"GET /next", "the next request stays");
    let r = &h.request;
    assert_eq!(r.method(), Method::GET);
    assert_eq!(r.uri(), "/a/b?c=d");
    assert_eq!(r.version(), Version::HTTP_11);
    assert_eq!(r.headers()["host"], "example.com");
    let twos: Vec<_> = r.headers().get_all("x-two").iter().collect();
    assert_eq!(twos, ["1", "2"], "repeated fields are kept in order");
    assert_eq!((h.body, h.close, h.trailers), (0, false, false));
}

#[test]
fn the_values_are_slices_of_the_head_not_copies() {
    let mut buf = BytesMut::from("GET /x HTTP/1.1\r\nHost: h\r\nX-Long: 0123456789\r\n\r\n");
    let start = buf.as_ptr() as usize;
    let end = start + buf.len();
    let Parsed::Head(h) = parse(&mut buf, LIMITS) else {
        panic!("not a head")
    };
    let at = h.request.headers()["x-long"].as_bytes().as_ptr() as usize;
    assert!((start..end).contains(&at), "the value was copied");
}

#[test]
fn an_empty_value_is_kept_empty() {
    let (h, _) = head_of("GET / HTTP/1.1\r\nHost: h\r\nX-Empty:\r\nX-Blank:   \r\n\r\n");
    assert_eq!(h.request.headers()["x-empty"], "");
    assert_eq!(h.request.headers()["x-blank"], "");
}

#[test]
fn a_lf_alone_is_found_at_the_end_of_any_line() {
    let lines = [
        "GET / HTTP/1.1",
        "Host: h",
        "X-A: 1",
        "X-Empty:",
        "X-B: two words  ",
        "",
    ];
    for bare in 0..lines.len() {
        let mut head = String::new();
        for (i, l) in lines.iter().enumerate() {
            head.push_str(l);
            head.push_str(if i == bare { "\n" } else { "\r\n" });
        }
        assert_eq!(
            elsewhere(head.as_bytes(), LIMITS),
            "a line ended by LF alone",
            "{head:?}"
        );
    }
}

#[test]
fn length_close_and_trailers_are_read_from_the_head() {
    let (h, rest) = head_of(
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nConnection: keep-alive, Close\r\nTE: trailers\r\n\r\nhello",
    );
    assert_eq!((h.body, h.close, h.trailers), (5, true, true));
    assert_eq!(&rest[..], b"hello", "the body stays in the buffer");
    let (h, _) = head_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(h.body, 0);
}

#[test]
fn a_head_cut_anywhere_is_partial_until_its_last_byte() {
    let whole = b"GET /p HTTP/1.1\r\nHost: h\r\nCookie: a=b\r\n\r\n";
    for cut in 0..whole.len() {
        let mut buf = BytesMut::from(&whole[..cut]);
        assert!(
            matches!(parse(&mut buf, LIMITS), Parsed::Partial),
            "cut at {cut}"
        );
        assert_eq!(&buf[..], &whole[..cut]);
    }
    let mut buf = BytesMut::from(&whole[..]);
    assert!(matches!(parse(&mut buf, LIMITS), Parsed::Head(_)));
    assert!(buf.is_empty());
}

#[test]
fn every_head_this_path_does_not_take_is_left_whole_to_hyper() {
    let forms: &[&str] = &[
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 38\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0, 38\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\n\r\n",
        "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
        "GET / HTTP/1.0\r\nHost: x\r\n\r\n",
        "GET / HTTP/2.7\r\nHost: x\r\n\r\n",
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "POST / HTTP/1.1\nHost: x\nContent-Length: 0\nX: y\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX: a\rTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n Transfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n",
        "GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n",
        "GET http://[::1 HTTP/1.1\r\nHost: x\r\n\r\n",
        "\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nhost: y\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: user@x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close, Host\r\n\r\n",
    ];
    for form in forms {
        elsewhere(form.as_bytes(), LIMITS);
    }
    elsewhere(b"GET / HTTP/1.1\r\nHost: x\r\nX\xff: a\r\n\r\n", LIMITS);
}

#[test]
fn the_limits_leave_a_head_to_hyper_as_they_would_refuse_it() {
    let fields = |n: usize| {
        let mut h = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
        for i in 1..n {
            h.push_str(&format!("x-h{i}: v\r\n"));
        }
        h + "\r\n"
    };
    assert!(matches!(
        parse(&mut BytesMut::from(fields(100).as_str()), LIMITS),
        Parsed::Head(_)
    ));
    assert_eq!(elsewhere(fields(101).as_bytes(), LIMITS), "too many fields");
    // more fields than fit on the stack
    let wide = Limits {
        max_headers: 300,
        ..LIMITS
    };
    let Parsed::Head(h) = parse(&mut BytesMut::from(fields(250).as_str()), wide) else {
        panic!("250 fields under a limit of 300")
    };
    assert_eq!(h.request.headers().len(), 250);
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(9000)
    );
    assert_eq!(elsewhere(big.as_bytes(), LIMITS), "a head over the limit");
    // a partial head already over the limit
    assert_eq!(
        elsewhere(&big.as_bytes()[..8500], LIMITS),
        "a head over the limit"
    );
}

#[test]
fn a_head_http_refuses_after_the_parse_is_put_back_whole_with_what_followed() {
    let bytes = b"GET http://[::1 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n";
    assert_eq!(elsewhere(bytes, LIMITS), "a target or field http refuses");
}
