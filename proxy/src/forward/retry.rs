//! When a request is sent a second time, and where: a connection to an endpoint that could
//! not be made goes to another endpoint of the same backend (nothing reached the first), and a
//! request the canary failed goes to stable on a failover route (any method when the canary
//! could not be reached; a safe method when it answered one of the failover statuses). The
//! request path sends again only a request whose body it holds.

use std::sync::Arc;

use http::{Method, Response};

use crate::error::{Error, UpstreamErrorKind};
use crate::route::table::Failover;
use crate::upstream::balance;
use crate::upstream::endpoint::Endpoint;

/// Whether the exchange failed before anything reached the endpoint.
pub fn not_connected<B>(result: &Result<Response<B>, Error>) -> bool {
    matches!(
        result,
        Err(Error::Upstream {
            kind: UpstreamErrorKind::Connect,
            ..
        })
    )
}

/// Another available endpoint of the backend than `failed`, picked as the first one was.
pub fn other_endpoint(
    endpoints: &[Arc<Endpoint>],
    failed: &Arc<Endpoint>,
    now_ms: u64,
) -> Option<Arc<Endpoint>> {
    let others: Vec<Arc<Endpoint>> = endpoints
        .iter()
        .filter(|e| !Arc::ptr_eq(e, failed))
        .cloned()
        .collect();
    balance::pick_available(&others, now_ms, |n| rand::random_range(0..n)).cloned()
}

/// Whether the canary failed the request in a way that sends it to stable.
pub fn canary_failed<B>(
    fo: &Failover,
    method: &Method,
    result: &Result<Response<B>, Error>,
) -> bool {
    match result {
        Err(_) => not_connected(result),
        Ok(r) => fo.statuses.contains(&r.status().as_u16()) && fo.safe_methods.contains(method),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failover() -> Failover {
        Failover {
            statuses: vec![502, 503],
            safe_methods: vec![Method::GET],
            max_replay_bytes: 1024,
        }
    }

    fn answered(status: u16) -> Result<Response<()>, Error> {
        Ok(Response::builder().status(status).body(()).unwrap())
    }

    fn failed(kind: UpstreamErrorKind) -> Result<Response<()>, Error> {
        Err(Error::Upstream {
            kind,
            detail: String::new(),
        })
    }

    #[test]
    fn only_a_refused_connection_goes_to_another_endpoint() {
        assert!(not_connected(&failed(UpstreamErrorKind::Connect)));
        for kind in [UpstreamErrorKind::Timeout, UpstreamErrorKind::Closed] {
            assert!(
                !not_connected(&failed(kind)),
                "{kind:?} may have reached it"
            );
        }
        assert!(!not_connected(&answered(503)));
    }

    #[test]
    fn a_canary_failure_goes_to_stable_when_nothing_reached_it_or_a_safe_request_failed() {
        let fo = failover();
        assert!(canary_failed(
            &fo,
            &Method::POST,
            &failed(UpstreamErrorKind::Connect)
        ));
        assert!(canary_failed(&fo, &Method::GET, &answered(503)));
        assert!(
            !canary_failed(&fo, &Method::POST, &answered(503)),
            "not safe to send twice"
        );
        assert!(
            !canary_failed(&fo, &Method::GET, &answered(500)),
            "not a failover status"
        );
        assert!(!canary_failed(
            &fo,
            &Method::GET,
            &failed(UpstreamErrorKind::Timeout)
        ));
    }

    #[test]
    fn another_endpoint_is_never_the_one_that_failed() {
        let a: Arc<Endpoint> = Arc::new(crate::route::table::EndpointState::new(
            "127.0.0.1:1".parse().unwrap(),
        ));
        let b: Arc<Endpoint> = Arc::new(crate::route::table::EndpointState::new(
            "127.0.0.1:2".parse().unwrap(),
        ));
        let both = [a.clone(), b.clone()];
        for _ in 0..20 {
            assert!(Arc::ptr_eq(&other_endpoint(&both, &a, 0).unwrap(), &b));
        }
        assert!(other_endpoint(std::slice::from_ref(&a), &a, 0).is_none());
    }
}
