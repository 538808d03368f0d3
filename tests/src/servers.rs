//! Small servers the tests need beside the real binaries: each listens on a loopback port the
//! kernel picks, on its own thread and runtime, and handles every connection in its own task.

use std::future::Future;
use std::net::SocketAddr;

/// Starts a server calling `handle` for each accepted connection; returns its address.
pub fn spawn_loopback<F, Fut>(handle: F) -> SocketAddr
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    l.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(l).unwrap();
            loop {
                let (s, _) = l.accept().await.unwrap();
                tokio::spawn(handle(s));
            }
        });
    });
    addr
}
