//! Analysis: what a measurement means and when a metric or a run has failed, with Argo
//! Rollouts' semantics. Pure: providers fetch numbers elsewhere; here everything decides.

pub mod expr;
pub mod phase;
pub mod run;
pub mod sequential;
