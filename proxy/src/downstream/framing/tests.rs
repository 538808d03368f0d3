use super::*;

const GET: &str = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
const POST_FIXED: &str = "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 63\r\n\r\n\
    GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
const POST_CHUNKED: &str = "POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
    5;name=\"v\"\r\nhello\r\n1A \r\nContent-Length: 5\r\n\r\nxxxxx\r\n0\r\nX-Trailer: 1\r\n\r\n";
const BOTH: &str = "POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
const BOTH_TE_FIRST: &str =
    "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\ncontent-length: 5\r\n\r\n0\r\n\r\n";

/// Feeds `stream` in pieces of `size` bytes; returns the flagged index and the scanner.
fn scan(stream: &str, size: usize) -> (Option<u64>, Scanner) {
    let mut s = Scanner::new(8192);
    let mut flagged = None;
    for piece in stream.as_bytes().chunks(size.max(1)) {
        if let Some(i) = s.feed(piece) {
            assert!(flagged.is_none(), "flagged twice");
            flagged = Some(i);
        }
    }
    (flagged, s)
}

/// Every way of cutting the stream into equal pieces gives the same answer.
fn scan_all_ways(stream: &str) -> (Option<u64>, u64, bool) {
    let (want, s) = scan(stream, stream.len());
    for size in 1..stream.len() {
        let (got, other) = scan(stream, size);
        assert_eq!(got, want, "pieces of {size}");
        assert_eq!(other.next_index, s.next_index, "pieces of {size}");
        assert_eq!(other.is_off(), s.is_off(), "pieces of {size}");
    }
    (want, s.next_index, s.is_off())
}

#[test]
fn plain_requests_are_followed_and_never_flagged() {
    let stream = [GET, POST_FIXED, POST_CHUNKED, GET].concat();
    assert_eq!(scan_all_ways(&stream), (None, 4, false));
}

#[test]
fn a_request_with_both_lengths_is_flagged_by_its_index_in_either_order() {
    for both in [BOTH, BOTH_TE_FIRST] {
        assert_eq!(scan_all_ways(both), (Some(0), 1, true));
        let stream = [GET, POST_FIXED, POST_CHUNKED, both, GET].concat();
        assert_eq!(scan_all_ways(&stream), (Some(3), 4, true));
    }
}

#[test]
fn a_conflicting_head_inside_a_body_is_body_not_a_request() {
    // POST_FIXED's and POST_CHUNKED's bodies both hold a head with both lengths
    let stream = [POST_FIXED, POST_CHUNKED].concat();
    assert_eq!(scan_all_ways(&stream), (None, 2, false));
}

#[test]
fn http2_upgrades_and_connect_stop_the_scanner() {
    let h2 = ["PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", BOTH].concat();
    assert_eq!(scan_all_ways(&h2), (None, 0, true));
    let upgrade = [
        "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
        BOTH,
    ]
    .concat();
    assert_eq!(scan_all_ways(&upgrade), (None, 1, true));
    let connect = ["CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", BOTH].concat();
    assert_eq!(scan_all_ways(&connect), (None, 1, true));
}

#[test]
fn the_http2_preface_is_recognised_however_it_is_split_and_only_first() {
    let h2 = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    for split in 1..h2.len() {
        let mut s = Scanner::new(8192);
        s.feed(&h2[..split]);
        s.feed(&h2[split..]);
        assert!(s.is_http2() && s.is_off(), "split at {split}");
    }
    let mut s = Scanner::new(8192);
    s.feed(GET.as_bytes());
    s.feed(h2);
    assert!(!s.is_http2(), "a preface after a request is not HTTP/2");
    let mut s = Scanner::new(8192);
    s.feed(GET.as_bytes());
    assert!(!s.is_http2() && !s.is_off());
}

#[test]
fn what_hyper_refuses_stops_the_scanner_instead_of_guessing() {
    for stream in [
        // not HTTP
        "\x16\x03\x01\x02\x00",
        // a chunk size that is not hex, a missing CRLF after data, bare LF line ends in chunks
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\nab\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\n\r\n",
        // a chunk size that overflows
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\n",
        // framing that hyper answers with an error
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\nhello",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
        "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
    ] {
        let stream = [stream, BOTH].concat();
        let (flagged, _, off) = scan_all_ways(&stream);
        assert_eq!(flagged, None, "{stream:?}");
        assert!(off, "{stream:?}");
    }
}

#[test]
fn a_head_over_the_limit_stops_the_scanner() {
    let big = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(9000));
    assert_eq!(scan(&[&big, BOTH].concat(), 100).0, None);
    assert!(scan(&big, 100).1.is_off());
    assert!(scan(&big, big.len()).1.is_off());
    // just under the limit is still followed
    let fits = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(8000));
    assert_eq!(scan(&[&fits, BOTH].concat(), 100).0, Some(1));
}

#[test]
fn leading_blank_lines_and_zero_lengths_keep_the_count() {
    let stream = [
        "\r\n",
        GET,
        "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        BOTH,
    ]
    .concat();
    assert_eq!(scan_all_ways(&stream), (Some(2), 3, true));
}

#[test]
fn verdicts_answer_for_the_flagged_request_only() {
    let v = Verdicts::default();
    v.flagged.store(3, Relaxed); // request index 2
    let answers: Vec<bool> = (0..5).map(|_| v.next_refused().is_some()).collect();
    assert_eq!(answers, [false, false, true, false, false]);
    let none = Verdicts::default();
    assert!((0..5).all(|_| none.next_refused().is_none()));
}

#[tokio::test]
async fn the_watched_io_passes_every_byte_through_and_records_the_verdict() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client, server) = tokio::io::duplex(64);
    let verdicts = Arc::new(Verdicts::default());
    let mut watched = Watched::new(server, 8192, verdicts.clone());
    let stream = [GET, POST_CHUNKED, BOTH].concat();
    let sent = stream.clone();
    let writer = tokio::spawn(async move {
        client.write_all(sent.as_bytes()).await.unwrap();
        client.shutdown().await.unwrap();
        let mut back = Vec::new();
        client.read_to_end(&mut back).await.unwrap();
        back
    });
    let mut got = Vec::new();
    watched.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, stream.as_bytes());
    watched.write_all(b"answer").await.unwrap();
    watched.shutdown().await.unwrap();
    drop(watched);
    assert_eq!(writer.await.unwrap(), b"answer");
    let answers: Vec<bool> = (0..3).map(|_| verdicts.next_refused().is_some()).collect();
    assert_eq!(answers, [false, false, true]);
}

#[test]
fn a_bare_lf_in_a_head_is_flagged_with_its_reason_and_a_bare_lf_in_a_body_is_not() {
    for (stream, index) in [
        ("GET / HTTP/1.1\nHost: x\r\n\r\n", 0),
        ("GET / HTTP/1.1\r\nHost: x\n\r\n", 0),
        ("GET / HTTP/1.1\r\nHost: x\r\n\n", 0),
        ("\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 0),
        (
            &*[GET, "POST / HTTP/1.1\nContent-Length: 0\n\n", GET].concat(),
            1,
        ),
    ] {
        let (flagged, _, off) = scan_all_ways(stream);
        assert_eq!(flagged, Some(index), "{stream:?}");
        assert!(off);
        assert_eq!(scan(stream, 1).1.why(), BARE_LF);
    }
    let body = "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\na\nb";
    assert_eq!(scan_all_ways(&[body, GET].concat()), (None, 2, false));
    assert_eq!(scan(BOTH, 1).1.why(), BOTH_LENGTHS);
    let v = Verdicts::default();
    let _ = v.why.set(BARE_LF);
    v.flagged.store(1, Relaxed);
    assert_eq!(v.next_refused(), Some(BARE_LF));
    assert_eq!(v.next_refused(), None);
}
