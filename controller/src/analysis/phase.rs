//! The phase of an analysis metric or run, as Argo Rollouts names them. A leaf: the rollout
//! status records it without depending on the rest of the analysis.

use serde::{Deserialize, Serialize};

/// Phase of a metric or a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum RunPhase {
    /// Nothing measured yet.
    Pending,
    /// Measuring.
    Running,
    /// Done, within every limit.
    Successful,
    /// Too many inconclusive measurements.
    Inconclusive,
    /// Too many consecutive provider errors.
    Error,
    /// Too many failed measurements.
    Failed,
}

impl RunPhase {
    /// Rank from best to worst: Successful, Pending, Running, Inconclusive, Error, Failed.
    pub fn badness(self) -> u8 {
        match self {
            Self::Successful => 0,
            Self::Pending => 1,
            Self::Running => 2,
            Self::Inconclusive => 3,
            Self::Error => 4,
            Self::Failed => 5,
        }
    }

    /// Whether nothing more will change it.
    pub fn is_complete(self) -> bool {
        matches!(
            self,
            Self::Successful | Self::Inconclusive | Self::Error | Self::Failed
        )
    }

    /// The worse of two phases.
    pub fn worst(self, other: Self) -> Self {
        if other.badness() > self.badness() {
            other
        } else {
            self
        }
    }
}
