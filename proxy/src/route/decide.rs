//! The routing decision: which route takes a request, and which backend of that route serves it.
//!
//! Pure functions of the table and the request head, with DESIGN §3's precedence, first match
//! wins: header rules, cookie rules, host rules, then weight (exact or sticky). The only state
//! is the exact-split counter each route carries, which a decision advances only when it
//! reaches the weight step.

use std::sync::atomic::Ordering::Relaxed;

use http::HeaderMap;
use http::header::COOKIE;

use crate::route::matcher::{Matcher, NameKey, Rule, StickyKey};
use crate::route::split::{Split, exact_is_canary, sticky_bucket, sticky_is_canary};
use crate::route::table::{Route, RouteTable};

/// Why a backend was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A header rule matched.
    Header,
    /// A cookie rule matched.
    Cookie,
    /// A host rule matched.
    Host,
    /// The exact split.
    Weight,
    /// The sticky split, by the request's key.
    Sticky,
}

/// The outcome of [`decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Index into the route's targets.
    pub target: usize,
    /// Why.
    pub reason: Reason,
}

/// The route of a request and its decision: `None` when no route takes it. The host is
/// looked at only when some route matches or decides by host.
pub fn route<'t, E>(
    table: &'t RouteTable<E>,
    uri: &http::Uri,
    headers: &HeaderMap,
) -> Option<(&'t std::sync::Arc<Route<E>>, Decision)> {
    let host = if table.uses_host {
        request_host(uri, headers)
    } else {
        None
    };
    let route = select(table, host, uri.path())?;
    Some((route, decide(route, host, headers)))
}

/// The host of a request without port, from the URI (HTTP/2, absolute form) or `Host`.
pub fn request_host<'a>(uri: &'a http::Uri, headers: &'a HeaderMap) -> Option<&'a str> {
    let raw = match uri.host() {
        Some(h) => return Some(h.trim_start_matches('[').trim_end_matches(']')),
        None => headers.get(http::header::HOST)?.to_str().ok()?,
    };
    if let Some(rest) = raw.strip_prefix('[') {
        return rest.split(']').next();
    }
    // hosts are short: a plain scan beats the general substring search
    Some(match raw.bytes().rposition(|b| b == b':') {
        Some(i) => &raw[..i],
        None => raw,
    })
}

/// Tables with at most this many routes are walked: a few comparisons cost less than the
/// index's hashing.
const WALK_MAX: usize = 8;

/// The route for a host and path: host-specific routes before any-host routes, then the
/// longest path prefix. A small table is walked in that order; a bigger one is looked up in
/// its index, which finds the same route.
pub fn select<'t, E>(
    table: &'t RouteTable<E>,
    host: Option<&str>,
    path: &str,
) -> Option<&'t std::sync::Arc<Route<E>>> {
    if table.routes.len() > WALK_MAX {
        return table.routes.get(table.index.select(host, path)?);
    }
    table.routes.iter().find(|r| {
        let host_ok =
            r.hosts.is_empty() || host.is_some_and(|h| r.hosts.iter().any(|p| p.matches(h)));
        host_ok && path.starts_with(r.path_prefix.as_str())
    })
}

/// Chooses the backend of `route` for a request with this host and headers.
pub fn decide<E>(route: &Route<E>, host: Option<&str>, headers: &HeaderMap) -> Decision {
    if let Some(target) = header_rule(route, headers) {
        return Decision {
            target,
            reason: Reason::Header,
        };
    }
    if !route.cookie_rules.is_empty() {
        for rule in &route.cookie_rules {
            if let Some(value) = cookie(headers, &rule.name)
                && let Some(target) = rule_target(route, rule, value.as_bytes())
            {
                return Decision {
                    target,
                    reason: Reason::Cookie,
                };
            }
        }
    }
    if let Some(h) = host
        && let Some((_, target)) = route
            .host_rules
            .iter()
            .find(|(rh, _)| rh.eq_ignore_ascii_case(h))
    {
        return Decision {
            target: *target,
            reason: Reason::Host,
        };
    }
    weighted(route, headers)
}

/// The target of the first header rule (in rule order) that one of the request's headers
/// matches; for a rule, its header's values are tried in the order they came.
///
/// One pass over the request's headers, comparing names, instead of a map lookup per rule:
/// a header-map lookup hashes and compares the name, which costs more than comparing it
/// with the few rule names (a standard header differs from a rule's custom name by kind).
fn header_rule<E>(route: &Route<E>, headers: &HeaderMap) -> Option<usize> {
    if route.header_rules.is_empty() {
        return None;
    }
    // (rule index, target) of the best match so far
    let mut best: Option<(usize, usize)> = None;
    for (name, value) in headers {
        let name = name.as_str().as_bytes();
        if route.header_rule_lengths & 1 << (name.len() % 64) == 0 {
            continue;
        }
        let key = NameKey::of(name);
        for (i, rule) in route.header_rules.iter().enumerate() {
            if best.is_some_and(|(b, _)| b <= i) {
                break;
            }
            if rule.key != key {
                continue;
            }
            if name.len() > 16 && rule.header.as_ref().map(|h| h.as_str().as_bytes()) != Some(name)
            {
                continue;
            }
            if let Some(target) = rule_target(route, rule, value.as_bytes()) {
                best = Some((i, target));
                break;
            }
        }
        if best.is_some_and(|(b, _)| b == 0) {
            break;
        }
    }
    best.map(|(_, target)| target)
}

fn weighted<E>(route: &Route<E>, headers: &HeaderMap) -> Decision {
    let Some(canary) = route.canary else {
        return Decision {
            target: route.stable,
            reason: Reason::Weight,
        };
    };
    let pick = |to_canary: bool, reason| Decision {
        target: if to_canary { canary } else { route.stable },
        reason,
    };
    if let Split::Sticky { key, salt } = &route.split {
        let value = match key {
            StickyKey::Header(h) => headers.get(h).map(|v| v.as_bytes()),
            StickyKey::Cookie(c) => cookie(headers, c).map(str::as_bytes),
        };
        if let Some(v) = value {
            let bucket = sticky_bucket(salt, v);
            return pick(
                sticky_is_canary(bucket, route.weight, route.total),
                Reason::Sticky,
            );
        }
    }
    let k = route.counter.fetch_add(1, Relaxed);
    pick(
        exact_is_canary(k, route.weight, route.total),
        Reason::Weight,
    )
}

fn rule_target<E>(route: &Route<E>, rule: &Rule, value: &[u8]) -> Option<usize> {
    let matched = match &rule.matcher {
        Matcher::Exact(s) => value == s.as_bytes(),
        Matcher::Prefix(s) => value.starts_with(s.as_bytes()),
        Matcher::Regex(re) => std::str::from_utf8(value).is_ok_and(|v| re.is_match(v)),
        Matcher::AlwaysNever => {
            return match value {
                b"always" => route.canary,
                b"never" => Some(route.stable),
                _ => None,
            };
        }
    };
    matched.then_some(rule.target)
}

/// The value of the first cookie called `name` in the request's `Cookie` headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k.trim() == name).then(|| v.trim().trim_matches('"'))
        })
}

#[cfg(test)]
mod tests;
