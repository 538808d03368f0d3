//! What the proxy tells about the traffic: Prometheus metrics ([`metrics`]) and the
//! mergeable per-(route, backend) statistics behind `/stats` and the reports ([`stats`]), and
//! how the work spreads over the worker threads ([`workers`]).

pub mod metrics;
pub mod stats;
pub mod workers;
