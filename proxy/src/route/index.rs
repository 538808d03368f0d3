//! Finds a request's route without walking the table: routes are grouped by the host they
//! name (exact hosts, `*.` suffixes, and any host), and each group maps its path prefixes to
//! the best route that has them. A lookup tries the request's host, each of its parent
//! domains, and the any-host group, and in each only the prefix lengths that group has.
//!
//! It gives what a walk of the table in match order would (host-specific routes before
//! any-host ones, then the longest prefix, then the spec's order): every route is known by
//! its position in that order, and the best match is the smallest position found.
//!
//! The maps hash with foldhash (hashbrown's default, seeded per process): a lookup hashes the
//! request's host once per parent domain and its path once per prefix length, and SipHash
//! took most of a decision's time at 10 000 routes.

use hashbrown::HashMap;

use crate::route::matcher::HostPattern;

/// Routes of one host group, by path prefix.
#[derive(Debug, Default)]
struct Group {
    /// Prefix → the smallest position of a route with it.
    prefixes: HashMap<Box<[u8]>, usize>,
    /// The prefixes' lengths, longest first, each once.
    lengths: Vec<usize>,
}

impl Group {
    fn add(&mut self, prefix: &str, position: usize) {
        let e = self
            .prefixes
            .entry(prefix.as_bytes().into())
            .or_insert(position);
        *e = (*e).min(position);
        if let Err(at) = self.lengths.binary_search_by(|l| prefix.len().cmp(l)) {
            self.lengths.insert(at, prefix.len());
        }
    }

    /// The best position whose prefix starts `path`.
    fn best(&self, path: &[u8]) -> Option<usize> {
        // longest first: a longer prefix always has a smaller position within one group
        self.lengths
            .iter()
            .filter(|&&len| len <= path.len())
            .find_map(|&len| self.prefixes.get(&path[..len]).copied())
    }
}

/// The lookup structure of a table's routes.
#[derive(Debug, Default)]
pub struct RouteIndex {
    exact: HashMap<Box<str>, Group>,
    /// Keyed by the suffix with its leading dot (`.example.com`).
    suffix: HashMap<Box<str>, Group>,
    any: Group,
    /// Whether any route names a suffix (else parent domains are not looked up).
    has_suffixes: bool,
}

impl RouteIndex {
    /// Indexes routes given in match order as (host patterns, path prefix).
    pub(crate) fn new<'a>(routes: impl Iterator<Item = (&'a [HostPattern], &'a str)>) -> Self {
        let mut index = RouteIndex::default();
        for (position, (hosts, prefix)) in routes.enumerate() {
            if hosts.is_empty() {
                index.any.add(prefix, position);
            }
            for h in hosts {
                match h {
                    HostPattern::Exact(name) => index
                        .exact
                        .entry(name.as_str().into())
                        .or_default()
                        .add(prefix, position),
                    HostPattern::Suffix(suffix) => {
                        index.has_suffixes = true;
                        index
                            .suffix
                            .entry(suffix.as_str().into())
                            .or_default()
                            .add(prefix, position);
                    }
                }
            }
        }
        index
    }

    /// The position of the route for `host` (lower-case or not) and `path`.
    pub fn select(&self, host: Option<&str>, path: &str) -> Option<usize> {
        let path = path.as_bytes();
        let mut best: Option<usize> = None;
        let consider = |best: &mut Option<usize>, found: Option<usize>| {
            if let Some(p) = found {
                *best = Some(best.map_or(p, |b| b.min(p)));
            }
        };
        if let Some(host) = host.filter(|_| !self.exact.is_empty() || self.has_suffixes) {
            let lowered;
            let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
                lowered = host.to_ascii_lowercase();
                lowered.as_str()
            } else {
                host
            };
            consider(&mut best, self.exact.get(host).and_then(|g| g.best(path)));
            if self.has_suffixes {
                // `*.example.com` takes `a.example.com` and `a.b.example.com`, never
                // `example.com` itself
                for (i, _) in host.match_indices('.').filter(|(i, _)| *i > 0) {
                    consider(
                        &mut best,
                        self.suffix.get(&host[i..]).and_then(|g| g.best(path)),
                    );
                }
            }
        }
        if best.is_none() {
            consider(&mut best, self.any.best(path));
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn pattern(h: &str) -> HostPattern {
        match h.strip_prefix("*.") {
            Some(rest) => HostPattern::Suffix(format!(".{rest}")),
            None => HostPattern::Exact(h.to_owned()),
        }
    }

    /// The walk the index replaces: the first route in match order that takes the request.
    fn walk(
        routes: &[(Vec<HostPattern>, String)],
        host: Option<&str>,
        path: &str,
    ) -> Option<usize> {
        routes.iter().position(|(hosts, prefix)| {
            (hosts.is_empty() || host.is_some_and(|h| hosts.iter().any(|p| p.matches(h))))
                && path.starts_with(prefix.as_str())
        })
    }

    /// Routes in match order, as the table sorts them.
    fn sorted(mut routes: Vec<(Vec<HostPattern>, String)>) -> Vec<(Vec<HostPattern>, String)> {
        routes
            .sort_by(|a, b| (a.0.is_empty().cmp(&b.0.is_empty())).then(b.1.len().cmp(&a.1.len())));
        routes
    }

    fn index(routes: &[(Vec<HostPattern>, String)]) -> RouteIndex {
        RouteIndex::new(routes.iter().map(|(h, p)| (h.as_slice(), p.as_str())))
    }

    #[test]
    fn host_specific_before_any_host_then_the_longest_prefix() {
        let routes = sorted(vec![
            (vec![], "/".into()),
            (vec![], "/api".into()),
            (vec![pattern("shop.example.com")], "/".into()),
            (vec![pattern("*.example.com")], "/api/v2".into()),
            (
                vec![pattern("a.example.com"), pattern("b.example.com")],
                "/api".into(),
            ),
        ]);
        let ix = index(&routes);
        for (host, path) in [
            (None, "/"),
            (None, "/api/x"),
            (Some("shop.example.com"), "/api/v2/x"),
            (Some("SHOP.Example.com"), "/"),
            (Some("a.example.com"), "/api/v2/x"),
            (Some("a.example.com"), "/api/v1"),
            (Some("a.example.com"), "/other"),
            (Some("x.y.example.com"), "/api/v2"),
            (Some("example.com"), "/api/v2"),
            (Some(".example.com"), "/api/v2"),
            (Some("other.org"), "/api"),
            (Some(""), "/"),
        ] {
            assert_eq!(
                ix.select(host, path),
                walk(&routes, host, path),
                "{host:?} {path}"
            );
        }
        assert_eq!(index(&[]).select(Some("a"), "/"), None);
    }

    fn host() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "a.example.com",
            "b.example.com",
            "x.a.example.com",
            "example.com",
            "Shop.Example.COM",
            "shop.example.com",
            "other.org",
            "",
        ])
        .prop_map(str::to_owned)
    }

    fn host_pattern() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "a.example.com",
            "b.example.com",
            "*.example.com",
            "*.a.example.com",
            "example.com",
            "shop.example.com",
            "*.org",
        ])
        .prop_map(str::to_owned)
    }

    fn prefix() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "/", "/a", "/ab", "/a/b", "/api", "/api/", "/api/v2", "/é",
        ])
        .prop_map(str::to_owned)
    }

    proptest! {
        #[test]
        fn the_index_finds_what_the_walk_finds(
            routes in prop::collection::vec(
                (prop::collection::vec(host_pattern(), 0..3), prefix()),
                0..12,
            ),
            requests in prop::collection::vec(
                (prop::option::of(host()), prop::sample::select(vec![
                    "/", "/a", "/ab/c", "/a/b/c", "/api", "/api/v2/x", "/apix", "/éa", "", "/b",
                ])),
                1..20,
            ),
        ) {
            let routes = sorted(
                routes
                    .into_iter()
                    .map(|(hosts, p)| (hosts.iter().map(|h| pattern(h)).collect(), p))
                    .collect(),
            );
            let ix = index(&routes);
            for (host, path) in &requests {
                prop_assert_eq!(
                    ix.select(host.as_deref(), path),
                    walk(&routes, host.as_deref(), path),
                    "{:?} {}", host, path
                );
            }
        }
    }
}
