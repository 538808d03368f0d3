//! How the proxy is steered: its admin API ([`admin`]), and the subscription that keeps its
//! table in step with a controller ([`subscriber`], with what each report carries in
//! [`report`]; the messages are `sluice_api::protocol`'s).

pub mod admin;
pub mod report;
pub mod subscriber;
