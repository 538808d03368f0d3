//! sluice on Kubernetes. Here now: the CLI's side of a cluster — Rollout objects listed, shown
//! and commanded through the API server with the patches Argo Rollouts' plugin sends
//! ([`rollouts`], [`patch`]). The CRDs are [`crate::crd`]'s. The controller's Kubernetes
//! runtime (a [`crate::reconcile::Port`] on the API server) is not built yet.

pub mod patch;
pub mod rollouts;

pub use rollouts::ClusterRollouts;
