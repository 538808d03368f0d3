//! Upgrades: an HTTP/1.1 `Upgrade` (WebSocket and the like) and HTTP/2's extended CONNECT,
//! tunnelled byte for byte once the upstream agrees.

use std::sync::Arc;

use http::Request;
use http::header::{CONNECTION, HeaderValue, UPGRADE};

use crate::telemetry::metrics::PairTelemetry;

/// The protocol an HTTP/1.1 request asks to upgrade to (`Connection: upgrade` and `Upgrade`).
pub fn upgrade_protocol<B>(req: &Request<B>) -> Option<HeaderValue> {
    let h = req.headers();
    let asks = h
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if asks && req.version() == http::Version::HTTP_11 {
        h.get(UPGRADE).cloned()
    } else {
        None
    }
}

/// Copies bytes both ways between an upgraded client connection and its upstream, counted as
/// an open upgraded connection of the backend while it lasts.
pub async fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    telemetry: Arc<PairTelemetry>,
    route: String,
) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(route = %route, error = %e, "upgrade did not complete");
            return;
        }
    };
    let _open = telemetry.upgraded();
    let mut client = hyper_util::rt::TokioIo::new(client);
    let mut upstream = hyper_util::rt::TokioIo::new(upstream);
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        tracing::debug!(route = %route, error = %e, "upgraded connection ended with an error");
    }
}
