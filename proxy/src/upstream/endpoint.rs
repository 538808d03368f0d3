//! What the request path keeps per endpoint, across table swaps: requests in flight, health
//! (ejection and probes) and kept HTTP/1.1 connections. The compiled route table points at
//! these ([`crate::route::table::EndpointState`]) and carries them over while it lists the
//! endpoint; they live here, on the upstream side, because they are connections and counts,
//! not routing.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use http::uri::Authority;
use sluice_api::table::UpstreamTlsSpec;

use crate::route::table::EndpointState;

/// One endpoint of a backend.
pub struct Endpoint {
    /// `host:port`.
    pub authority: Authority,
    /// Requests sent and not yet answered.
    pub in_flight: AtomicUsize,
    /// Ejection and probe state.
    pub health: super::health::EndpointHealth,
    /// Kept HTTP/1.1 connections (backends with `protocol: http1`).
    pub h1: Arc<super::h1pool::H1Pool<super::h1client::H1Conn>>,
}

impl EndpointState for Endpoint {
    fn new(authority: Authority) -> Self {
        Self {
            authority,
            in_flight: AtomicUsize::new(0),
            health: Default::default(),
            h1: Default::default(),
        }
    }

    fn authority(&self) -> &Authority {
        &self.authority
    }

    fn check_tls(spec: &UpstreamTlsSpec) -> Result<(), String> {
        super::tls::client_tls_config(Some(spec)).map(|_| ())
    }
}
