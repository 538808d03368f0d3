//! sluice-loadtest: a load generator that tallies answers by the version that served them, and a
//! tiny versioned backend. Used by the tests, the benchmarks, the demo's request loop and the
//! warm-up analysis.

pub mod backend;
pub mod error;
pub mod load;
pub mod paced;
pub mod report;

pub use error::{Error, Result};
pub use load::{LoadConfig, run};
pub use report::Report;
