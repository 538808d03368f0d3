//! The control plane: the hub that proxies subscribe to, the HTTP API that proxies, the CLI
//! and the dashboard use, and the client library for that API.

pub mod api;
pub mod auth;
pub mod client;
pub mod figures;
pub mod hub;
pub mod service;
