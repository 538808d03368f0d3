//! The local runtime: rollouts on any machine, no Kubernetes. Revisions are sets of addresses
//! (from the config's image map), scale effects are recorded rather than performed, state is
//! written atomically and a restarted controller resumes where it was.

pub mod config;
pub mod health;
pub mod providers;
pub mod runs;
pub mod runtime;
pub mod translate;
