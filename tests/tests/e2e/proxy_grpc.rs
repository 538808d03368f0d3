//! gRPC through the proxy against a real tonic server: unary and server-streaming calls pass
//! with their trailers, and a `grpc-status: 14` answer counts as an error.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::StreamExt;
use sluice_tests::world::block;
use sluice_tests::{Client, Proxy};
use tonic::{Request, Response, Status};

type BoxFuture<T, E> = Pin<Box<dyn std::future::Future<Output = Result<T, E>> + Send + 'static>>;

#[derive(Clone, PartialEq, prost::Message)]
struct Msg {
    #[prost(string, tag = "1")]
    text: String,
    #[prost(uint32, tag = "2")]
    n: u32,
    #[prost(bool, tag = "3")]
    fail: bool,
}

#[derive(Clone)]
struct Echo;

impl tonic::server::NamedService for Echo {
    const NAME: &'static str = "test.Echo";
}

struct Say;
impl tonic::server::UnaryService<Msg> for Say {
    type Response = Msg;
    type Future = BoxFuture<Response<Msg>, Status>;
    fn call(&mut self, r: Request<Msg>) -> Self::Future {
        Box::pin(async move {
            let m = r.into_inner();
            if m.fail {
                return Err(Status::unavailable("asked to fail"));
            }
            Ok(Response::new(Msg {
                text: format!("said {}", m.text),
                n: 1,
                fail: false,
            }))
        })
    }
}

type MsgStream = Pin<Box<dyn futures_util::Stream<Item = Result<Msg, Status>> + Send>>;

struct Count;
impl tonic::server::ServerStreamingService<Msg> for Count {
    type Response = Msg;
    type ResponseStream = MsgStream;
    type Future = BoxFuture<Response<MsgStream>, Status>;
    fn call(&mut self, r: Request<Msg>) -> Self::Future {
        Box::pin(async move {
            let n = r.into_inner().n;
            let items: Vec<Result<Msg, Status>> = (0..n)
                .map(|i| {
                    Ok(Msg {
                        text: format!("{i}"),
                        n: i,
                        fail: false,
                    })
                })
                .collect();
            Ok(Response::new(
                Box::pin(tokio_stream::iter(items)) as MsgStream
            ))
        })
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for Echo {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(async move {
            let codec = tonic_prost::ProstCodec::<Msg, Msg>::default();
            let mut grpc = tonic::server::Grpc::new(codec);
            Ok(match req.uri().path() {
                "/test.Echo/Say" => grpc.unary(Say, req).await,
                "/test.Echo/Count" => grpc.server_streaming(Count, req).await,
                _ => http::Response::builder()
                    .status(200)
                    .header("grpc-status", "12")
                    .header("content-type", "application/grpc")
                    .body(tonic::body::Body::empty())
                    .unwrap(),
            })
        })
    }
}

fn grpc_server() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    l.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(l).unwrap();
            tonic::transport::Server::builder()
                .add_service(Echo)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(l))
                .await
                .unwrap();
        });
    });
    addr
}

#[test]
fn grpc_calls_pass_with_their_trailers_and_grpc_errors_count_as_errors() {
    let server = grpc_server();
    let proxy = Proxy::start(&format!(
        "backends: [{{name: grpc, endpoints: [\"{server}\"], protocol: h2c}}]\nroutes: [{{name: rpc, stable: grpc}}]\n"
    ));
    block(async {
        let channel = tonic::transport::Channel::from_shared(format!("http://{}", proxy.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = tonic::client::Grpc::new(channel);
        let say = http::uri::PathAndQuery::from_static("/test.Echo/Say");
        let count = http::uri::PathAndQuery::from_static("/test.Echo/Count");
        let codec = || tonic_prost::ProstCodec::<Msg, Msg>::default();

        for _ in 0..3 {
            client.ready().await.unwrap();
            let r = client
                .unary(
                    Request::new(Msg {
                        text: "hi".into(),
                        ..Default::default()
                    }),
                    say.clone(),
                    codec(),
                )
                .await
                .unwrap();
            assert_eq!(r.into_inner().text, "said hi");
        }
        client.ready().await.unwrap();
        let stream = client
            .server_streaming(
                Request::new(Msg {
                    n: 5,
                    ..Default::default()
                }),
                count.clone(),
                codec(),
            )
            .await
            .unwrap()
            .into_inner();
        let items: Vec<Msg> = stream.map(|m| m.unwrap()).collect().await;
        assert_eq!(items.len(), 5);
        client.ready().await.unwrap();
        let e = client
            .unary(
                Request::new(Msg {
                    fail: true,
                    ..Default::default()
                }),
                say.clone(),
                codec(),
            )
            .await
            .unwrap_err();
        assert_eq!(
            e.code(),
            tonic::Code::Unavailable,
            "the trailers came through"
        );
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    let client = Client::new();
    let stats = block(client.get(proxy.admin, "/stats", &[]))
        .unwrap()
        .json();
    let total = &stats["routes"][0]["backends"][0]["total"];
    // three good unary calls and one stream succeed; the UNAVAILABLE call is an error
    assert_eq!(total["by_class"]["2xx"], 4, "{stats}");
    assert_eq!(total["by_class"]["5xx"], 1, "{stats}");
    let metrics = block(client.get(proxy.admin, "/metrics", &[]))
        .unwrap()
        .text();
    assert!(
        metrics
            .contains("sluice_requests_total{route=\"rpc\",backend=\"grpc\",code_class=\"5xx\"} 1"),
        "{metrics}"
    );
    // the stream stays out of the latency histogram: 4 timed calls, not 5
    assert!(
        metrics.contains("sluice_request_duration_seconds_count{route=\"rpc\",backend=\"grpc\"} 4"),
        "{metrics}\n{}",
        proxy.log()
    );
}
