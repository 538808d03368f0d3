//! The proxy crate's one error type, and the one place where an error becomes a status code.

use std::path::PathBuf;

use http::StatusCode;

pub use sluice_api::{ClientErrorKind, FieldError, UpstreamErrorKind};

/// Everything that can go wrong in the proxy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A config file, route table or API body is invalid; nothing was changed.
    #[error("{}", sluice_api::error_line(.0))]
    Invalid(Vec<FieldError>),
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The reason.
        source: std::io::Error,
    },
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The reason.
        source: std::io::Error,
    },
    /// A route named in a request does not exist.
    #[error("no route named {0:?}")]
    UnknownRoute(String),
    /// No route takes this host and path.
    #[error("no route for this host and path")]
    NoRoute,
    /// The upstream exchange failed.
    #[error("upstream {}: {detail}", kind.label())]
    Upstream {
        /// What kind of failure.
        kind: UpstreamErrorKind,
        /// Detail for logs (never a metrics label).
        detail: String,
    },
    /// The client failed its own request (see [`ClientErrorKind`]).
    #[error("client {}: {detail}", kind.label())]
    Client {
        /// What kind of failure.
        kind: ClientErrorKind,
        /// Detail for logs (never a metrics label).
        detail: String,
    },
    /// A write was refused because a controller owns the table.
    #[error("{0}")]
    Conflict(String),
}

impl From<sluice_api::Error> for Error {
    fn from(e: sluice_api::Error) -> Self {
        Self::Invalid(e.into_fields())
    }
}

impl Error {
    /// One invalid field.
    pub fn invalid(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(path, reason)])
    }

    /// The status code a client sees for this error. The only place that decides it.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Invalid(_) => StatusCode::BAD_REQUEST,
            Self::UnknownRoute(_) | Self::NoRoute => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Upstream { kind, .. } => match kind {
                UpstreamErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
                UpstreamErrorKind::NoEndpoint => StatusCode::SERVICE_UNAVAILABLE,
                UpstreamErrorKind::Connect
                | UpstreamErrorKind::Closed
                | UpstreamErrorKind::Protocol => StatusCode::BAD_GATEWAY,
            },
            Self::Client { kind, .. } => match kind {
                ClientErrorKind::BodyBroken => StatusCode::BAD_REQUEST,
                ClientErrorKind::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            },
            Self::Read { .. } | Self::Bind { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Errors a body (the client's, the upstream's, the proxy's answer) can end with.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_errors_map_to_gateway_statuses() {
        let e = |kind| Error::Upstream {
            kind,
            detail: String::new(),
        };
        assert_eq!(e(UpstreamErrorKind::Timeout).status(), 504);
        assert_eq!(e(UpstreamErrorKind::Connect).status(), 502);
        assert_eq!(e(UpstreamErrorKind::Closed).status(), 502);
        assert_eq!(e(UpstreamErrorKind::NoEndpoint).status(), 503);
        assert_eq!(Error::NoRoute.status(), 404);
        let c = |kind| Error::Client {
            kind,
            detail: String::new(),
        };
        assert_eq!(c(ClientErrorKind::BodyBroken).status(), 400);
        assert_eq!(c(ClientErrorKind::BodyTimeout).status(), 408);
        assert_eq!(Error::invalid("a", "b").status(), 400);
    }
}
