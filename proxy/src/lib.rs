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
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod route;
mod state;
mod telemetry;
mod upstream;
mod worker;

pub use downstream::conns::EVICT_AFTER_MS;
pub use error::{Error, FieldError, Result};
pub use route::decide as router;
pub use route::split::{sticky_bucket, sticky_salt};
pub use sluice_api::TableSpec;
pub use state::Shared;
pub use upstream::UpstreamSettings;

/// The route table as the request path uses it: compiled routes pointing at this proxy's
/// endpoint state.
pub type RouteTable = route::table::RouteTable<upstream::endpoint::Endpoint>;
/// What a table build may reuse from the running one.
pub type BuildContext<'a> = route::table::BuildContext<'a, upstream::endpoint::Endpoint>;
/// A compiled route of a [`RouteTable`].
type Route = route::table::Route<upstream::endpoint::Endpoint>;
/// A backend of a [`RouteTable`].
type Backend = route::table::Backend<upstream::endpoint::Endpoint>;
/// A backend as a route of a [`RouteTable`] uses it.
type Target = route::table::Target<upstream::endpoint::Endpoint>;
