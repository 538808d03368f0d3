//! sluice-proxy: the data plane of sluice. A reverse proxy that splits each route's traffic
//! between a stable and a canary backend by header, cookie, host and weight, with a route table
//! swapped atomically, an admin API and Prometheus metrics.

pub mod admin;
pub mod app;
pub mod balance;
pub mod body;
pub mod cli;
pub mod client_body;
pub mod config;
pub mod conns;
pub mod control;
pub mod deadline;
pub mod error;
pub mod forward;
pub mod framing;
pub mod h1client;
pub mod h1pool;
pub mod headers;
pub mod health;
pub mod router;
pub mod server;
pub mod state;
pub mod stats;
pub mod table;
pub mod telemetry;
pub mod tls;
pub mod upstream;
pub mod worker;

pub use error::{Error, FieldError, Result};
pub use sluice_api::TableSpec;
pub use state::Shared;
pub use table::RouteTable;
