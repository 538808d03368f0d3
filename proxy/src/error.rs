//! The proxy crate's one error type, and the one place where an error becomes a status code.

use std::fmt;
use std::path::PathBuf;

use http::StatusCode;

/// A problem with one field of a config file, route table or API body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Where the problem is, e.g. `routes[1].weight`.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FieldError {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() || self.path == "." {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "{}: {}", self.path, self.reason)
        }
    }
}

/// Why an upstream exchange failed; a closed set, used as the `kind` metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpstreamErrorKind {
    /// The TCP connection could not be made (refused, unreachable, connect timeout).
    Connect,
    /// No response head arrived within the request timeout.
    Timeout,
    /// The connection closed or was reset before a complete response head.
    Closed,
    /// The upstream spoke something that is not valid HTTP.
    Protocol,
    /// The backend had no endpoint to send to.
    NoEndpoint,
}

impl UpstreamErrorKind {
    /// Every kind, in label order.
    pub const ALL: [UpstreamErrorKind; 5] = [
        Self::Connect,
        Self::Timeout,
        Self::Closed,
        Self::Protocol,
        Self::NoEndpoint,
    ];

    /// The metrics label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::Closed => "closed",
            Self::Protocol => "protocol",
            Self::NoEndpoint => "no_endpoint",
        }
    }

    /// Position in [`Self::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// How a client failed its own request; a closed set, used as the `kind` label of
/// `sluice_client_errors_total`. These are never the backend's: they count neither as its
/// 5xx nor as its upstream errors, and feed neither ejection nor analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientErrorKind {
    /// The request body broke off: a malformed chunk, or the client closed or reset the
    /// connection before the body's end.
    BodyBroken,
    /// The client was still sending its body when the request timeout came.
    BodyTimeout,
}

impl ClientErrorKind {
    /// Every kind, in label order.
    pub const ALL: [ClientErrorKind; 2] = [Self::BodyBroken, Self::BodyTimeout];

    /// The metrics label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::BodyBroken => "body_broken",
            Self::BodyTimeout => "body_timeout",
        }
    }

    /// Position in [`Self::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Everything that can go wrong in the proxy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A config file, route table or API body is invalid; nothing was changed.
    #[error("{}", join(.0))]
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

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
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

    #[test]
    fn invalid_lists_every_field() {
        let e = Error::Invalid(vec![
            FieldError::new("routes[0].weight", "120 exceeds total 100"),
            FieldError::new("backends[1].endpoints", "must not be empty"),
        ]);
        assert_eq!(
            e.to_string(),
            "routes[0].weight: 120 exceeds total 100; backends[1].endpoints: must not be empty"
        );
    }

    #[test]
    fn kind_indices_follow_all() {
        for (i, k) in UpstreamErrorKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
        for (i, k) in ClientErrorKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
    }
}
