//! The runtime-independent shell around the pure engine: one loop (observe → decide until
//! settled → save → act) over a [`Port`] that a runtime implements, the analysis-run driver,
//! the views every client reads, and the translation of route intents into proxy tables with
//! the check of what the proxies can express. A runtime (local, Kubernetes) says only how to
//! see its world and carry out effects in it.

mod port;
mod reconciler;
pub mod runs;
pub mod settle;
mod state;
pub mod translate;
pub mod views;

pub use port::{Port, Refresh, World, template};
pub use reconciler::Reconciler;
pub use runs::RunRecord;
pub use state::{Entry, Problems, State};
