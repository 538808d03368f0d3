//! What the proxy tells about the traffic: Prometheus metrics ([`metrics`]) and the
//! mergeable per-(route, backend) statistics behind `/stats` and the reports ([`stats`]).

pub mod metrics;
pub mod stats;
