//! The controller crate's one error type, for every layer: the spec and config checks, the
//! commands, the reconcile loop and its ports, the control API (which maps each kind to a
//! status code in one place) and its client (which maps the status codes back).

use sluice_api::{FieldError, error_line};

/// Everything that can go wrong in the controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A document, command argument or API body is invalid, at these fields; nothing was
    /// changed.
    #[error("{}", error_line(.0))]
    Invalid(Vec<FieldError>),
    /// No rollout (or other object) of that name.
    #[error("{0}")]
    NotFound(String),
    /// The command does not apply to the rollout as it stands.
    #[error("{0}")]
    Refused(String),
    /// The command was valid but the state holding it could not be saved, so it was not
    /// carried out.
    #[error("not carried out: {0}")]
    NotCarriedOut(String),
    /// A config file is invalid; the lines name the document and field.
    #[error("{0}")]
    Config(String),
    /// State could not be read or written.
    #[error("{0}")]
    State(String),
    /// The controller could not start (a listener, a token, a directory).
    #[error("{0}")]
    Start(String),
    /// The demo could not go on.
    #[error("{0}")]
    Demo(String),
    /// The controller could not be reached.
    #[error("controller unreachable: {0}")]
    Unreachable(String),
    /// The controller refused the token.
    #[error("token refused: {0}")]
    Unauthorized(String),
    /// Any other answer from the controller.
    #[error("controller error: {0}")]
    Remote(String),
}

impl Error {
    /// One invalid field.
    pub fn field(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(path, reason)])
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
