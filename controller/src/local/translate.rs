//! From a rollout's route intent (revisions) to a proxy route (backends with addresses).

use sluice_proxy::spec::{
    BackendSpec, HostRule, MatchRule, RouteSpec, SplitMode, SplitSpec, ValueMatch,
};

use crate::engine::RouteIntent;
use crate::engine::route::Sticky;
use crate::spec::rollout::StringMatch;

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

/// Builds the proxy route and its backends; `addresses(hash)` gives a revision's endpoints.
/// Fails when a revision has no address.
pub fn to_proxy(
    intent: &RouteIntent,
    addresses: impl Fn(&str) -> Vec<String>,
    debug_headers: bool,
) -> Result<(RouteSpec, Vec<BackendSpec>), String> {
    let mut backends = Vec::new();
    let mut backend = |hash: &str| -> Result<String, String> {
        let endpoints = addresses(hash);
        if endpoints.is_empty() {
            return Err(format!("revision {hash} has no addresses"));
        }
        let name = backend_name(&intent.route, hash);
        backends.push(BackendSpec {
            name: name.clone(),
            revision: Some(hash.to_owned()),
            endpoints,
            protocol: Default::default(),
            health_check: None,
        });
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
            failover: None,
            grpc_error_codes: None,
            mirror: None,
            generation: None,
        },
        backends,
    ))
}
