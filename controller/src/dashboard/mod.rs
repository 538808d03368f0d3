//! The dashboard: a page that lists every rollout and shows one live — steps, the weight set
//! and the weight each proxy serves, per-revision charts, analysis, events — with its
//! actions. It is a client of the control API only: what it shows is what `get rollout`
//! shows, and every action is the API call the CLI makes, with the operator's bearer token
//! (without it the page is read-only and says so).
//!
//! Served by the controller (`--dashboard ADDR`, the assets beside the control API on one
//! listener, so that the page's calls are same-origin) and by `sluice dashboard` (the assets,
//! and the API calls forwarded to a controller). Every asset is embedded in the binary; the
//! page loads nothing from elsewhere, and every answer carries a strict
//! Content-Security-Policy.

mod assets;
pub mod forward;

pub use assets::{CONTENT_SECURITY_POLICY, router};
