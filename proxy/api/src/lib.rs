//! sluice-api: the contract between sluice's proxy and its controller, and the one place each
//! of its rules is written.
//!
//! - [`table`]: the route table as users and the controller write it;
//! - [`protocol`]: the control API's messages (snapshots, reports);
//! - [`counters`]: the counters a proxy reports, their arithmetic and their rates (the one
//!   place that knows which status class is 5xx);
//! - [`limits`]: the name rule, the largest weight total, the regex limits;
//! - [`parse`]: YAML and strict JSON into these types, every error naming its field;
//! - [`FieldError`] and [`Error`]: what is wrong, and where.
//!
//! Plain data and pure functions: serde and thiserror, no runtime, no sockets, so both sides
//! (and any tool) can depend on it.

pub mod counters;
mod error;
mod json;
pub mod limits;
pub mod parse;
pub mod protocol;
pub mod table;

pub use counters::{ClientErrorKind, Totals, UpstreamErrorKind};
pub use error::{Error, FieldError, Result, error_line};
pub use table::TableSpec;
