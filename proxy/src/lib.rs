//! sluice-proxy: the data plane of sluice. A reverse proxy that splits each route's traffic
//! between a stable and a canary backend by header, cookie, host and weight, with a route table
//! swapped atomically, an admin API and Prometheus metrics.
//!
//! The modules follow a request:
//!
//! ```text
//! downstream/ ──► forward/ ──► route/ (pure) ──► upstream/
//!  accept, TLS,    the request   which route,     endpoints, pools,
//!  framing,        path, phase   which backend    health, balance,
//!  headers         by phase                       deadlines
//!                      │
//!                      ▼
//!                 telemetry/ (metrics, stats) ──► control/ (admin API, subscriber)
//! ```
//!
//! `app` assembles them, `config` reads the file, `state` holds the swapped table, `cli` is
//! the `sluice-proxy` command. Everything else is private; what other crates use is
//! re-exported here.

pub mod app;
pub mod cli;
pub mod config;
mod control;
mod downstream;
mod error;
mod forward;
mod route;
mod state;
mod telemetry;
mod upstream;
mod worker;

pub use downstream::conns::EVICT_AFTER_MS;
pub use error::{Error, FieldError, Result};
pub use route::decide as router;
pub use route::table::{BuildContext, RouteTable, sticky_salt};
pub use sluice_api::TableSpec;
pub use state::Shared;
pub use upstream::UpstreamSettings;
