//! How the proxy is steered: its admin API ([`admin`]), and the subscription that keeps its
//! table in step with a controller ([`subscriber`], with what each report carries in
//! [`report`] and the table it last applied kept on disk by [`cache`]; the messages are
//! `sluice_api::protocol`'s).

pub mod admin;
pub mod cache;
pub mod report;
pub mod subscriber;
