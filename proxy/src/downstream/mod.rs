//! The client's side of the proxy: accepting connections (the cap, eviction, the head
//! deadline, the balance over the workers), TLS termination, the framing checks on the bytes as
//! they arrive, the header hygiene between client and upstream, and the request body as the
//! client sends it.

pub mod balance;
pub mod client_body;
pub mod conns;
pub mod framing;
pub mod h1;
pub mod headers;
pub mod server;
pub mod tls;
