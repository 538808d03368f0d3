//! How the proxy is steered: its admin API ([`admin`]), and the subscription that keeps its
//! table in step with a controller ([`subscriber`]; the messages are `sluice_api::protocol`'s).

pub mod admin;
pub mod subscriber;
