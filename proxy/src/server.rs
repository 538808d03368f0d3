//! The downstream side: accepts connections and serves HTTP/1.1 and HTTP/2 (h2c, by prior
//! knowledge) on each with hyper-util's auto builder, upgrades included; stops accepting and
//! drains in-flight requests on shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::forward;
use crate::state::Shared;
use crate::telemetry;

/// Serves `listener` until `shutdown` completes, then lets open connections finish their
/// in-flight requests for up to `drain` (HTTP/1 connections close after their current
/// response, HTTP/2 connections get GOAWAY). Returns whether everything drained in time.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> bool {
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let open = metrics::gauge!(telemetry::OPEN_CONNECTIONS);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, client) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // e.g. too many open files: back off briefly instead of spinning
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let svc = service_fn(move |req| forward::handle(shared.clone(), client, req));
                let conn = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                    .into_owned();
                let conn = graceful.watch(conn);
                let open = open.clone();
                open.increment(1.0);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(client = %client, error = %e, "connection ended with an error");
                    }
                    open.decrement(1.0);
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => true,
        () = tokio::time::sleep(drain) => false,
    }
}
