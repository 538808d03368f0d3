//! sluice-io: the I/O pieces sluice's proxy and controller share, written once.
//!
//! - [`listener`]: the bounded HTTP/1.1 listener of the admin and control APIs;
//! - [`token`]: bearer tokens, read from a file or the environment and checked in constant
//!   time;
//! - [`files`]: the atomic file write (file and directory fsynced);
//! - [`http`]: one HTTP exchange with a timeout;
//! - [`probe`]: one TCP or HTTP probe of an endpoint, within a timeout;
//! - [`signal`]: waiting for SIGTERM or SIGINT;
//! - [`Holding`]: a body that holds a guard until it has been sent or given up.

mod body;
pub mod files;
pub mod http;
pub mod listener;
pub mod probe;
pub mod signal;
pub mod token;

pub use body::Holding;
