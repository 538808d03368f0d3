//! The end-to-end harness: starts the real binaries (built once by cargo for the whole
//! workspace) on loopback ports chosen by the kernel, talks HTTP to them, and stops them by PID
//! when dropped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod cluster;
pub mod http_client;
pub mod netns;
pub mod procs;
pub mod servers;
pub mod world;

pub use http_client::{Answer, Client, h2c};
pub use procs::{Backend, Proxy, bin, proxy_exit, two_backends};
