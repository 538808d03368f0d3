//! The client against scripted upstreams on loopback: raw bytes in, raw bytes out.

use super::*;
use crate::upstream::endpoint::Endpoint;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http_body_util::{BodyExt as _, Empty};
use tokio::net::TcpListener;

type NoBody = Empty<Bytes>;

fn endpoint(addr: std::net::SocketAddr) -> Arc<Endpoint> {
    Arc::new(Endpoint {
        authority: addr.to_string().parse().unwrap(),
        in_flight: AtomicUsize::new(0),
        health: Default::default(),
        h1: Default::default(),
    })
}

fn home(e: &Arc<Endpoint>) -> Home {
    Home {
        pool: e.h1.clone(),
        max_idle: 8,
        slot: crate::upstream::h1pool::slot(),
    }
}

/// Reads one request head (and a body by its content-length) off `s`; `None` at the end.
async fn read_request(s: &mut TcpStream, pending: &mut Vec<u8>) -> Option<Vec<u8>> {
    loop {
        if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end]).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |v| v.trim().parse().unwrap());
            if pending.len() >= end + 4 + len {
                let req: Vec<u8> = pending.drain(..end + 4 + len).collect();
                return Some(req);
            }
        }
        let mut b = [0u8; 4096];
        let n = s.read(&mut b).await.ok()?;
        if n == 0 {
            return None;
        }
        pending.extend_from_slice(&b[..n]);
    }
}

/// An upstream answering every request with `answer`, counting its connections.
async fn upstream(answer: &'static [u8]) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut pending = Vec::new();
                while read_request(&mut s, &mut pending).await.is_some() {
                    if s.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

/// An upstream whose every connection answers one request, then takes the next one and closes
/// unanswered; counts its connections.
async fn answers_once_then_closes() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut pending = Vec::new();
                read_request(&mut s, &mut pending).await.unwrap();
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n1")
                    .await
                    .unwrap();
                read_request(&mut s, &mut pending).await.unwrap();
            });
        }
    });
    (addr, accepted)
}

fn get() -> Request<()> {
    Request::builder()
        .uri("/p?q=1")
        .header("host", "up")
        .body(())
        .unwrap()
}

async fn fresh(addr: std::net::SocketAddr) -> Result<H1Conn, Error> {
    Ok(H1Conn::new(TcpStream::connect(addr).await.unwrap()))
}

/// `exchange` on `conn` (a fresh connection to `addr` when it turns out closed), with no
/// fields replaced, going back to `e`'s pool.
async fn exchange_via<B>(
    conn: H1Conn,
    addr: std::net::SocketAddr,
    req: Request<()>,
    body: SendBody<B>,
    e: &Arc<Endpoint>,
) -> Result<Response<H1Body>, Error>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let replacing = codec::Replacing::default();
    exchange(conn, || fresh(addr), req, replacing, body, home(e), false).await
}

fn assert_closed(err: &Error) {
    assert!(
        matches!(
            err,
            Error::Upstream {
                kind: UpstreamErrorKind::Closed,
                ..
            }
        ),
        "{err}"
    );
}

/// One GET through the endpoint's pool, as the upstream module does it.
async fn send(e: &Arc<Endpoint>, addr: std::net::SocketAddr) -> Result<Response<H1Body>, Error> {
    let conn = match e.h1.checkout(Instant::now(), Duration::from_secs(60)) {
        Some(c) => c,
        None => fresh(addr).await?,
    };
    exchange_via(conn, addr, get(), SendBody::<NoBody>::Full(Bytes::new()), e).await
}

#[tokio::test]
async fn a_connection_goes_back_to_its_pool_when_the_body_has_been_read() {
    let (addr, accepted) =
        upstream(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-a: 1\r\n\r\nok").await;
    let e = endpoint(addr);
    for _ in 0..3 {
        let resp = send(&e, addr).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-a"], "1");
        assert_eq!(resp.body().size_hint().exact(), Some(2));
        assert!(e.h1.is_empty(), "out of the pool while its body is unread");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ok");
        assert_eq!(e.h1.len(), 1);
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one connection for all three"
    );
}

#[tokio::test]
async fn a_body_dropped_half_read_takes_its_connection_with_it() {
    let (addr, accepted) =
        upstream(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n").await;
    let e = endpoint(addr);
    let mut resp = send(&e, addr).await.unwrap();
    let first = resp.body_mut().frame().await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "ok");
    drop(resp);
    assert!(e.h1.is_empty());
    let _ = send(&e, addr).await.unwrap();
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn chunked_bodies_and_trailers_come_through_and_close_ends_the_keep() {
    let (addr, _) = upstream(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n3\r\nabc\r\n0\r\nx-t: 9\r\n\r\n",
    )
    .await;
    let e = endpoint(addr);
    let resp = send(&e, addr).await.unwrap();
    let collected = resp.into_body().collect().await.unwrap();
    assert_eq!(collected.trailers().unwrap()["x-t"], "9");
    assert_eq!(&collected.to_bytes()[..], b"abc");
    assert!(e.h1.is_empty(), "connection: close is not kept");
}

#[tokio::test]
async fn a_body_until_close_ends_with_the_connection() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        read_request(&mut s, &mut Vec::new()).await.unwrap();
        s.write_all(b"HTTP/1.0 200 OK\r\n\r\nsome bytes")
            .await
            .unwrap();
    });
    let e = endpoint(addr);
    let resp = send(&e, addr).await.unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"some bytes");
    assert!(e.h1.is_empty());
}

#[tokio::test]
async fn a_kept_connection_closed_under_a_request_sends_it_again_on_a_new_one() {
    let (addr, accepted) = answers_once_then_closes().await;
    let e = endpoint(addr);
    let resp = send(&e, addr).await.unwrap();
    resp.into_body().collect().await.unwrap();
    assert_eq!(e.h1.len(), 1);
    let resp = send(&e, addr).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(accepted.load(Ordering::SeqCst), 2);

    // a streamed body cannot be sent again: the failure is the answer
    let (tx, body) = channel_body();
    tx.send(Frame::data(Bytes::from_static(b"abc")))
        .await
        .unwrap();
    drop(tx);
    resp.into_body().collect().await.unwrap();
    let conn =
        e.h1.checkout(Instant::now(), Duration::from_secs(60))
            .unwrap();
    let post = Request::builder().method("POST").uri("/").body(()).unwrap();
    let err = exchange_via(conn, addr, post, SendBody::Streamed(body, Some(3)), &e)
        .await
        .unwrap_err();
    assert_closed(&err);
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "not sent again");
}

#[tokio::test]
async fn a_request_that_may_have_been_acted_on_is_not_sent_twice() {
    let (addr, accepted) = answers_once_then_closes().await;
    let e = endpoint(addr);
    send(&e, addr)
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap();
    let conn =
        e.h1.checkout(Instant::now(), Duration::from_secs(60))
            .unwrap();
    let post = Request::builder()
        .method("POST")
        .uri("/pay")
        .body(())
        .unwrap();
    let err = exchange_via(
        conn,
        addr,
        post,
        SendBody::<NoBody>::Full(Bytes::from_static(b"once")),
        &e,
    )
    .await
    .unwrap_err();
    assert_closed(&err);
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "a POST that was written is not sent again"
    );
}

/// A request body fed through a channel, frame by frame, as a client sends it.
struct ChannelBody(tokio::sync::mpsc::Receiver<Frame<Bytes>>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.get_mut().0.poll_recv(cx).map(|f| f.map(Ok))
    }
}

fn channel_body() -> (tokio::sync::mpsc::Sender<Frame<Bytes>>, ChannelBody) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    (tx, ChannelBody(rx))
}

/// An upstream that takes one connection, hands what it read to the test, and answers
/// `answer` once `read` bytes have come (or at once, when `read` is 0).
async fn recording_upstream(
    answer: &'static [u8],
    until: &'static [u8],
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Receiver<Vec<u8>>,
) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut seen = Vec::new();
        while !seen.ends_with(until) {
            let mut b = [0u8; 4096];
            let n = s.read(&mut b).await.unwrap();
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&b[..n]);
        }
        s.write_all(answer).await.unwrap();
        let _ = tx.send(seen);
        // keep the connection open a while, as an upstream does
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    (addr, rx)
}

#[tokio::test]
async fn a_streamed_body_of_unknown_length_goes_chunked_with_its_trailers() {
    let (addr, seen) = recording_upstream(
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"\r\n0\r\nx-sum: 7\r\n\r\n",
    )
    .await;
    let e = endpoint(addr);
    let (tx, body) = channel_body();
    tokio::spawn(async move {
        tx.send(Frame::data(Bytes::from_static(b"hello ")))
            .await
            .unwrap();
        tx.send(Frame::data(Bytes::new())).await.unwrap();
        tx.send(Frame::data(Bytes::from_static(b"world")))
            .await
            .unwrap();
        let mut t = http::HeaderMap::new();
        t.insert("x-sum", http::HeaderValue::from_static("7"));
        tx.send(Frame::trailers(t)).await.unwrap();
    });
    let req = Request::builder()
        .method("POST")
        .uri("/up")
        .header("content-length", "11")
        .body(())
        .unwrap();
    let conn = fresh(addr).await.unwrap();
    let resp = exchange_via(conn, addr, req, SendBody::Streamed(body, None), &e)
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert!(resp.body().is_end_stream());
    assert_eq!(e.h1.len(), 1, "an empty body: home at once");
    let seen = String::from_utf8(seen.await.unwrap()).unwrap();
    assert_eq!(
        seen,
        "POST /up HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\nx-sum: 7\r\n\r\n"
    );
}

#[tokio::test]
async fn an_answer_before_the_whole_body_is_passed_on_and_the_connection_not_kept() {
    let (addr, seen) = recording_upstream(
        b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\n\r\n",
        b"first",
    )
    .await;
    let e = endpoint(addr);
    let (tx, body) = channel_body();
    tx.send(Frame::data(Bytes::from_static(b"first")))
        .await
        .unwrap();
    let req = Request::builder().method("PUT").uri("/").body(()).unwrap();
    let conn = fresh(addr).await.unwrap();
    // the rest of the body never comes
    let resp = exchange_via(conn, addr, req, SendBody::Streamed(body, Some(1000)), &e)
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert!(
        e.h1.is_empty(),
        "a connection with half a body sent is not kept"
    );
    assert!(
        String::from_utf8(seen.await.unwrap())
            .unwrap()
            .ends_with("content-length: 1000\r\n\r\nfirst")
    );
    drop(tx);
}

#[tokio::test]
async fn garbage_and_early_closes_are_errors_of_their_kind() {
    for (answer, kind) in [
        (
            &b"SSH-2.0-OpenSSH_9.2\r\n\r\n"[..],
            UpstreamErrorKind::Protocol,
        ),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n",
            UpstreamErrorKind::Protocol,
        ),
        (b"HTTP/1.1 200 OK\r\ncontent-le", UpstreamErrorKind::Closed),
        (b"", UpstreamErrorKind::Closed),
    ] {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            read_request(&mut s, &mut Vec::new()).await.unwrap();
            s.write_all(answer).await.unwrap();
        });
        let e = endpoint(addr);
        let err = send(&e, addr).await.unwrap_err();
        assert!(
            matches!(&err, Error::Upstream { kind: k, .. } if *k == kind),
            "{:?}: {err}",
            String::from_utf8_lossy(answer)
        );
    }
    // a body cut short is an error of the body
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        read_request(&mut s, &mut Vec::new()).await.unwrap();
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort")
            .await
            .unwrap();
    });
    let e = endpoint(addr);
    let resp = send(&e, addr).await.unwrap();
    assert!(resp.into_body().collect().await.is_err());
    assert!(e.h1.is_empty());
}
