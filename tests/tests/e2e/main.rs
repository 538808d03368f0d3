//! End-to-end tests: the real binaries on loopback with real backends. One test binary, so the
//! workspace is linked once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod analysis_providers;
mod cli_cluster;
mod control_plane;
mod dashboard;
mod faults;
mod hostile_clients;
mod hostile_floods;
mod lint;
mod load_tool;
mod local_runtime;
mod partition;
mod proxy_admin;
mod proxy_grpc;
mod proxy_hardening;
mod proxy_protocols;
mod proxy_split;
mod proxy_tls;
mod readme;
mod reliability;
mod scenarios;
