//! How an exchange is counted: one outcome (status and upstream error kind) from its result,
//! and one call that records it for the route's target. Every site of the request path that
//! ends an exchange records through here (a gRPC answer's body records itself, when its
//! status arrives, through the same telemetry).

use std::time::Duration;

use http::Response;

use crate::error::{Error, UpstreamErrorKind};
use crate::telemetry::metrics::PairTelemetry;

/// What an exchange is counted as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The status the client got (or would have, for an exchange given up and retried).
    pub status: u16,
    /// The upstream's failure, if it failed.
    pub kind: Option<UpstreamErrorKind>,
}

impl Outcome {
    /// The outcome of an exchange's result.
    pub fn of<B>(result: &Result<Response<B>, Error>) -> Self {
        match result {
            Ok(r) => Self::answered(r.status().as_u16()),
            Err(e) => Self::failed(e),
        }
    }

    /// An answer with this status.
    pub fn answered(status: u16) -> Self {
        Self { status, kind: None }
    }

    /// A failure: the status it is answered with, and its kind when it is the upstream's.
    pub fn failed(e: &Error) -> Self {
        Self {
            status: e.status().as_u16(),
            kind: match e {
                Error::Upstream { kind, .. } => Some(*kind),
                _ => None,
            },
        }
    }
}

/// Records `outcome` for `telemetry` at second `sec`, timed when `latency` is given.
pub fn record(telemetry: &PairTelemetry, sec: u64, outcome: Outcome, latency: Option<Duration>) {
    telemetry.record(sec, outcome.status, latency, outcome.kind);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcome_is_the_status_the_client_gets_and_the_upstreams_failure() {
        let ok: Result<Response<()>, Error> = Ok(Response::builder().status(503).body(()).unwrap());
        assert_eq!(
            Outcome::of(&ok),
            Outcome {
                status: 503,
                kind: None
            }
        );
        let timeout: Result<Response<()>, Error> = Err(Error::Upstream {
            kind: UpstreamErrorKind::Timeout,
            detail: String::new(),
        });
        assert_eq!(
            Outcome::of(&timeout),
            Outcome {
                status: 504,
                kind: Some(UpstreamErrorKind::Timeout)
            }
        );
        let client = Error::Client {
            kind: crate::error::ClientErrorKind::BodyBroken,
            detail: String::new(),
        };
        assert_eq!(
            Outcome::failed(&client),
            Outcome {
                status: 400,
                kind: None
            }
        );
    }
}
