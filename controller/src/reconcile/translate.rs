//! From a rollout's route intent (revisions) to a proxy route (backends with addresses), and
//! the check of what the proxies can express, which every runtime runs on a rollout before
//! it takes it: one mirror route at a time, mirrors on exact methods, path prefixes and exact
//! header values, one header per header route.

use sluice_api::table::{
    BackendSpec, HostRule, MatchRule, RouteSpec, SplitMode, SplitSpec, ValueMatch,
};

use sluice_api::FieldError;

use crate::Error;
use crate::engine::RouteIntent;
use crate::engine::route::Sticky;
use crate::spec::rollout::{Rollout, StringMatch};

/// Every step of `r` the proxies cannot carry out, by field path.
pub fn check(r: &Rollout) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let Some(c) = &r.spec.strategy.canary else {
        return errors;
    };
    let exact_only = |s: &StringMatch| s.regex.is_none() && s.prefix.is_none();
    for (i, s) in c.steps.iter().enumerate() {
        let step = format!("spec.strategy.canary.steps[{i}]");
        if let Some(m) = &s.set_mirror_route {
            let path = format!("{step}.setMirrorRoute.match");
            if m.matches.len() > 1 {
                errors.push(FieldError::new(
                    &path,
                    "sluice mirrors on one match per route",
                ));
            }
            for x in &m.matches {
                if x.method.as_ref().is_some_and(|s| !exact_only(s))
                    || x.path.as_ref().is_some_and(|s| s.regex.is_some())
                    || x.headers.values().any(|s| !exact_only(s))
                {
                    errors.push(FieldError::new(
                        &path,
                        "sluice mirrors on exact methods, path prefixes and exact header values",
                    ));
                }
            }
        }
        if let Some(h) = &s.set_header_route
            && h.matches.len() > 1
        {
            errors.push(FieldError::new(
                format!("{step}.setHeaderRoute.match"),
                "sluice routes on one header per route; split it into several setHeaderRoute steps",
            ));
        }
    }
    let mirrors: std::collections::BTreeSet<&str> = c
        .steps
        .iter()
        .filter_map(|s| s.set_mirror_route.as_ref().map(|m| m.name.as_str()))
        .collect();
    if mirrors.len() > 1 {
        errors.push(FieldError::new(
            "spec.strategy.canary.steps",
            "sluice mirrors one route at a time; use one setMirrorRoute name",
        ));
    }
    errors
}

/// The backend name of a revision on a route.
pub fn backend_name(route: &str, hash: &str) -> String {
    format!("{route}:{hash}")
}

fn value_match(m: &StringMatch) -> Option<ValueMatch> {
    if let Some(v) = &m.exact {
        Some(ValueMatch::Exact(v.clone()))
    } else if let Some(v) = &m.prefix {
        Some(ValueMatch::Prefix(v.clone()))
    } else {
        m.regex.as_ref().map(|v| ValueMatch::Regex(v.clone()))
    }
}

/// The proxy's mirror for the first mirror route ([`check`] refuses what the proxy cannot
/// express: several mirror routes, or matches other than exact methods, path prefixes
/// and exact headers).
fn mirror(intent: &RouteIntent, canary: &str) -> Option<sluice_api::table::MirrorSpec> {
    let m = intent.mirror_routes.first()?;
    let first = m.matches.first();
    Some(sluice_api::table::MirrorSpec {
        backend: canary.to_owned(),
        percentage: m.percentage.min(100),
        methods: first
            .and_then(|x| x.method.as_ref())
            .and_then(|s| s.exact.clone())
            .into_iter()
            .collect(),
        path_prefix: first
            .and_then(|x| x.path.as_ref())
            .and_then(|s| s.prefix.clone().or_else(|| s.exact.clone())),
        headers: first
            .map(|x| {
                x.headers
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.exact.clone()?)))
                    .collect()
            })
            .unwrap_or_default(),
        max_in_flight: crate::spec::defaults::MIRROR_MAX_IN_FLIGHT,
        max_body_bytes: crate::spec::defaults::MIRROR_MAX_BODY_BYTES,
    })
}

/// Builds the proxy route and its backends; `addresses(hash)` gives a revision's endpoints.
/// Fails when a revision has no address.
pub fn to_proxy(
    intent: &RouteIntent,
    addresses: impl Fn(&str) -> Vec<String>,
    debug_headers: bool,
) -> Result<(RouteSpec, Vec<BackendSpec>), Error> {
    let mut backends = Vec::new();
    let mut backend = |hash: &str| -> Result<String, Error> {
        let endpoints = addresses(hash);
        if endpoints.is_empty() {
            return Err(Error::NotFound(format!("revision {hash} has no addresses")));
        }
        let name = backend_name(&intent.route, hash);
        backends.push(BackendSpec::new(name.clone(), endpoints).of_revision(hash));
        Ok(name)
    };
    let stable = backend(&intent.stable)?;
    let canary = match &intent.canary {
        Some(c) if *c != intent.stable => Some(backend(c)?),
        _ => None,
    };
    let mut header_rules = Vec::new();
    let mut host_rules = Vec::new();
    if let Some(c) = &canary {
        if let Some(h) = &intent.preview_header {
            header_rules.push(MatchRule {
                name: h.clone(),
                matcher: ValueMatch::AlwaysNever,
                backend: None,
            });
        }
        for hr in &intent.header_routes {
            if let Some(m) = hr.matches.first()
                && let Some(v) = value_match(&m.header_value)
            {
                header_rules.push(MatchRule {
                    name: m.header_name.clone(),
                    matcher: v,
                    backend: Some(c.clone()),
                });
            }
        }
        for h in &intent.preview_hosts {
            host_rules.push(HostRule {
                host: h.clone(),
                backend: c.clone(),
            });
        }
    }
    let mut hosts = intent.hosts.clone();
    if !hosts.is_empty() {
        for h in &intent.preview_hosts {
            if !hosts.contains(h) {
                hosts.push(h.clone());
            }
        }
    }
    let split = match &intent.sticky {
        None => SplitSpec::default(),
        Some(Sticky::Header(h)) => SplitSpec {
            mode: SplitMode::Sticky,
            header: Some(h.clone()),
            cookie: None,
        },
        Some(Sticky::Cookie(c)) => SplitSpec {
            mode: SplitMode::Sticky,
            header: None,
            cookie: Some(c.clone()),
        },
    };
    let mirror = canary.as_ref().and_then(|c| mirror(intent, c));
    // the proxies fail over from a canary only
    let failover = canary
        .as_ref()
        .and(intent.failover.as_ref())
        .map(failover_of);
    Ok((
        RouteSpec {
            name: intent.route.clone(),
            hosts,
            path_prefix: intent.path_prefix.clone(),
            stable,
            weight: if canary.is_some() { intent.weight } else { 0 },
            canary,
            total: intent.total,
            split,
            header_rules,
            cookie_rules: Vec::new(),
            host_rules,
            debug_headers,
            failover,
            grpc_error_codes: None,
            mirror,
            generation: None,
        },
        backends,
    ))
}

/// The proxies' failover from a rollout's `trafficRouting.sluice.failover` (the proxies'
/// defaults for what it leaves out).
fn failover_of(f: &crate::spec::rollout::Failover) -> sluice_api::table::FailoverSpec {
    let defaults = sluice_api::table::FailoverSpec::default();
    sluice_api::table::FailoverSpec {
        statuses: if f.statuses.is_empty() {
            defaults.statuses
        } else {
            f.statuses.clone()
        },
        safe_methods: if f.safe_methods.is_empty() {
            defaults.safe_methods
        } else {
            f.safe_methods.clone()
        },
        max_replay_bytes: f.max_replay_bytes.unwrap_or(defaults.max_replay_bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::rollout::Failover;

    fn intent(canary: Option<&str>, failover: Option<Failover>) -> RouteIntent {
        let mut i = crate::engine::route::base("shop", "chip", None, "a");
        i.canary = canary.map(str::to_owned);
        i.weight = 20;
        i.failover = failover;
        i
    }

    fn route(i: &RouteIntent) -> RouteSpec {
        to_proxy(i, |_| vec!["127.0.0.1:1".to_owned()], false)
            .unwrap()
            .0
    }

    #[test]
    fn a_rollouts_failover_reaches_the_route_of_a_canary_with_the_proxies_defaults() {
        let given = Failover {
            statuses: vec![503],
            ..Failover::default()
        };
        let r = route(&intent(Some("b"), Some(given)));
        let f = r.failover.expect("failover on");
        assert_eq!(f.statuses, [503]);
        let defaults = sluice_api::table::FailoverSpec::default();
        assert_eq!(f.safe_methods, defaults.safe_methods);
        assert_eq!(f.max_replay_bytes, defaults.max_replay_bytes);
        // no canary, nothing to fail over from (the proxies refuse it)
        assert!(
            route(&intent(None, Some(Failover::default())))
                .failover
                .is_none()
        );
        assert!(route(&intent(Some("b"), None)).failover.is_none());
    }
}
