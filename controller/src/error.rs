//! The controller crate's one error type.

use sluice_api::FieldError;

/// Everything that can go wrong in the controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A document, command or API body is invalid; nothing was changed.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    /// A command does not apply to the rollout's state.
    #[error("{0}")]
    Command(String),
    /// The controller could not be reached.
    #[error("controller unreachable: {0}")]
    Unreachable(String),
    /// The controller refused the token.
    #[error("token refused: {0}")]
    Unauthorized(String),
    /// The controller has no such rollout.
    #[error("{0}")]
    NotFound(String),
    /// The controller refused the request as it stands.
    #[error("{0}")]
    Refused(String),
    /// Any other answer from the controller.
    #[error("controller error: {0}")]
    Remote(String),
    /// Local state could not be read or written.
    #[error("state: {0}")]
    State(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
