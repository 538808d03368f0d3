//! The controller crate's one error type.

use sluice_proxy::FieldError;

/// Everything that can go wrong in the controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A document, command or API body is invalid; nothing was changed.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    /// A command does not apply to the rollout's state.
    #[error("{0}")]
    Command(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
