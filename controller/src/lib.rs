//! sluice-controller: the rollout engine, analysis, control plane and CLI of sluice.

pub mod analysis;
pub mod cli;
pub mod commands;
pub mod control;
pub mod crd;
pub mod dashboard;
pub mod demo;
pub mod engine;
pub mod error;
pub mod kube;
pub mod lint;
pub mod local;
pub mod providers;
pub mod reconcile;
pub mod revision;
pub mod server;
pub mod spec;
pub mod status;
pub mod time;

pub use error::{Error, Result};
