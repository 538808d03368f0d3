use std::collections::VecDeque;
use std::pin::Pin;
use std::task::Context;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::{BodyExt as _, Full};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};

use super::*;
use crate::downstream::conns::Conns;

const LIMITS: Limits = Limits {
    max_bytes: 8192,
    max_headers: 100,
};

/// A body of frames given in advance, of a length it does not tell.
struct Frames(VecDeque<Frame<Bytes>>);

impl crate::downstream::h1::answer::Passing for Frames {}

impl Body for Frames {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.get_mut().0.pop_front().map(Ok))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// What the test handler answers: the method, the target and the body it read, as one body
/// of known length.
async fn echo(req: Request<RequestBody>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
        Err(e) => format!("broken: {e}"),
    };
    Response::new(Full::new(Bytes::from(format!(
        "{} {} [{body}]",
        parts.method, parts.uri
    ))))
}

/// Serves one end of a pipe with `handle`; returns the other end and the serving task.
fn start<H, F, B>(
    handle: H,
) -> (
    DuplexStream,
    tokio::task::JoinHandle<Ended<DuplexStream>>,
    Arc<Conns>,
)
where
    H: FnMut(Request<RequestBody>) -> F + Send + 'static,
    F: Future<Output = Response<B>> + Send,
    B: Body<Data = Bytes> + Send + crate::downstream::h1::answer::Passing,
    B::Data: Send,
    B::Error: std::fmt::Display + Send,
{
    let (client, server) = tokio::io::duplex(1 << 16);
    let conns = Arc::new(Conns::default());
    let (_, conn) = conns.add(0);
    let task = tokio::spawn(async move { serve(server, &conn, LIMITS, handle).await });
    (client, task, conns)
}

/// Reads until the proxy closes its side.
async fn read_to_close(c: &mut DuplexStream) -> String {
    let mut all = Vec::new();
    c.read_to_end(&mut all).await.unwrap();
    String::from_utf8(all).unwrap()
}

/// The bodies of the answers in `text`, in order (answers of known length only).
fn bodies(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(end) = rest.find("\r\n\r\n") {
        let head = &rest[..end];
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map_or(0, |n| n.parse().unwrap());
        out.push(rest[end + 4..end + 4 + len].to_owned());
        rest = &rest[end + 4 + len..];
    }
    out
}

#[tokio::test]
async fn pipelined_requests_and_bodies_are_answered_in_order_on_one_connection() {
    let (mut c, task, _conns) = start(echo);
    c.write_all(
        b"GET /one HTTP/1.1\r\nHost: h\r\n\r\n\
          POST /two HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello\
          GET /three HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let text = read_to_close(&mut c).await;
    assert_eq!(
        bodies(&text),
        ["GET /one []", "POST /two [hello]", "GET /three []"],
        "{text}"
    );
    assert_eq!(text.matches("HTTP/1.1 200 OK\r\n").count(), 3);
    assert!(text.contains("connection: close\r\n"), "{text}");
    assert!(matches!(task.await.unwrap(), Ended::Closed));
}

#[tokio::test]
async fn a_body_sent_in_pieces_is_read_as_it_comes() {
    let (mut c, _task, _conns) = start(echo);
    c.write_all(b"PUT /up HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhel")
        .await
        .unwrap();
    tokio::task::yield_now().await;
    c.write_all(b"lo wor").await.unwrap();
    tokio::task::yield_now().await;
    c.write_all(b"ld").await.unwrap();
    c.write_all(b"GET /after HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let text = read_to_close(&mut c).await;
    assert_eq!(bodies(&text), ["PUT /up [hello world]", "GET /after []"]);
}

#[tokio::test]
async fn a_body_the_answer_left_unread_closes_the_connection_after_the_answer() {
    let (mut c, task, _conns) =
        start(|_req| async { Response::new(Full::new(Bytes::from("early"))) });
    c.write_all(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789GET /smuggled HTTP/1.1\r\n\r\n",
    )
    .await
    .unwrap();
    let text = read_to_close(&mut c).await;
    assert_eq!(bodies(&text), ["early"], "{text}");
    assert!(text.contains("connection: close\r\n"), "{text}");
    assert!(matches!(task.await.unwrap(), Ended::Closed));
}

#[tokio::test]
async fn a_client_that_closes_mid_body_breaks_the_body() {
    let (mut c, _task, _conns) = start(echo);
    c.write_all(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123")
        .await
        .unwrap();
    c.shutdown().await.unwrap();
    let text = read_to_close(&mut c).await;
    assert!(text.contains("[broken: the client closed"), "{text}");
}

#[tokio::test]
async fn a_request_left_to_hyper_comes_back_with_its_bytes_and_what_followed() {
    let (mut c, task, _conns) = start(echo);
    let chunked =
        "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    c.write_all(format!("GET /first HTTP/1.1\r\nHost: h\r\n\r\n{chunked}").as_bytes())
        .await
        .unwrap();
    let mut first = vec![0; 256];
    let n = c.read(&mut first).await.unwrap();
    assert_eq!(
        bodies(&String::from_utf8_lossy(&first[..n])),
        ["GET /first []"]
    );
    let Ended::Elsewhere {
        mut io,
        read,
        served,
    } = task.await.unwrap()
    else {
        panic!("not left to hyper")
    };
    assert!(served);
    assert_eq!(read, chunked.as_bytes(), "the request comes back whole");
    // the connection still works both ways
    c.write_all(b"more").await.unwrap();
    let mut more = [0; 4];
    io.read_exact(&mut more).await.unwrap();
    assert_eq!(&more, b"more");
}

#[tokio::test]
async fn an_http2_preface_goes_to_hyper_before_anything_is_served() {
    let (mut c, task, _conns) = start(echo);
    c.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    let Ended::Elsewhere { read, served, .. } = task.await.unwrap() else {
        panic!("not left to hyper")
    };
    assert!(!served);
    assert_eq!(read, &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..]);
}

#[tokio::test]
async fn a_body_of_unknown_length_is_chunked_with_trailers_only_for_a_client_that_takes_them() {
    let answer = || {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        Frames(VecDeque::from([
            Frame::data(Bytes::from("ab")),
            Frame::data(Bytes::new()),
            Frame::data(Bytes::from("cde")),
            Frame::trailers(trailers),
        ]))
    };
    let (mut c, _task, _conns) = start(move |_req| async move { Response::new(answer()) });
    c.write_all(b"GET / HTTP/1.1\r\nHost: h\r\nTE: trailers\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let text = read_to_close(&mut c).await;
    let answers: Vec<&str> = text.split("HTTP/1.1 200 OK\r\n").skip(1).collect();
    assert_eq!(answers.len(), 2, "{text}");
    assert!(
        answers[0].contains("transfer-encoding: chunked\r\n"),
        "{text}"
    );
    assert!(
        answers[0].ends_with("\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\ngrpc-status: 0\r\n\r\n"),
        "{text}"
    );
    assert!(
        answers[1].ends_with("\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"),
        "{text}"
    );
}

#[tokio::test]
async fn an_answer_to_head_has_no_body_and_the_next_request_follows() {
    let (mut c, _task, _conns) = start(echo);
    c.write_all(b"HEAD /h HTTP/1.1\r\nHost: h\r\n\r\nGET /g HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let text = read_to_close(&mut c).await;
    let at = text[1..].find("HTTP/1.1 200 OK").unwrap() + 1;
    let (first, second) = text.split_at(at);
    assert!(first.contains("content-length: 10\r\n"), "{text}");
    assert!(first.ends_with("\r\n\r\n"), "{text}");
    assert!(!first.contains("HEAD /h"), "HEAD got a body: {text}");
    assert_eq!(bodies(second), ["GET /g []"]);
}

#[tokio::test]
async fn an_answer_longer_than_its_length_is_cut_and_the_connection_closed() {
    let (mut c, task, _conns) = start(|_req| async {
        let mut r = Response::new(Full::new(Bytes::from("0123456789")));
        r.headers_mut()
            .insert("content-length", http::HeaderValue::from_static("4"));
        r
    });
    c.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .unwrap();
    let text = read_to_close(&mut c).await;
    assert_eq!(text.matches("HTTP/1.1").count(), 1, "{text}");
    assert!(!text.contains("0123"), "{text}");
    assert!(matches!(task.await.unwrap(), Ended::Closed));
}

#[tokio::test]
async fn a_connection_told_to_finish_closes_when_no_whole_head_has_come() {
    let (mut c, task, conns) = start(echo);
    c.write_all(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HT")
        .await
        .unwrap();
    let mut first = vec![0; 256];
    let n = c.read(&mut first).await.unwrap();
    assert_eq!(bodies(&String::from_utf8_lossy(&first[..n])), ["GET /a []"]);
    conns.finish_all();
    assert!(matches!(task.await.unwrap(), Ended::Closed));
    assert_eq!(read_to_close(&mut c).await, "");
}
