//! The local runtime: rollouts on any machine, no Kubernetes. The world is a config file,
//! revisions are sets of addresses (from the config's image map), scale effects are recorded
//! rather than performed, and the state is a file written atomically, so a restarted
//! controller resumes where it was. The loop itself is [`crate::reconcile`]'s.

pub mod config;
pub mod health;
pub mod port;

/// The local runtime: the shared loop over the local port.
pub type Runtime = crate::reconcile::Reconciler<port::LocalPort>;
