//! The loadtest crate's one error type.

/// Everything that can go wrong in a load run or the test backend.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The arguments do not describe a runnable load.
    #[error("invalid load: {0}")]
    Invalid(String),
    /// A socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The reason.
        source: std::io::Error,
    },
    /// No connection to the target could be opened at all.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address.
        addr: String,
        /// The reason.
        source: std::io::Error,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
