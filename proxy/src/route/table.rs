//! The validated, compiled route table: what the request path reads.
//!
//! [`RouteTable::build`] checks a [`TableSpec`] completely (every problem, each with its field
//! path), compiles regexes and header names, numbers generations and carries state that must
//! survive a swap over from the previous table: the exact-split counter of a route whose weights
//! did not change, endpoint state, and telemetry. A table that exists is valid; it is
//! never mutated after it is built, only replaced whole.
//!
//! The table is generic over what the request path keeps per endpoint ([`EndpointState`]:
//! in-flight count, health, kept connections), which the upstream side defines: compiling and
//! deciding need none of it, so this module stays free of sockets and runtimes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize};

use http::HeaderValue;
use http::header::HeaderName;
use http::uri::Authority;

use crate::error::{Error, FieldError, Result};
use crate::route::index::RouteIndex;
use crate::route::matcher::{HostPattern, Matcher, Rule, StickyKey};
use crate::route::names::NameIndex;
use crate::route::split::{Split, sticky_salt};
use crate::telemetry::metrics::{PairTelemetry, TelemetryRegistry};
use sluice_api::table::UpstreamTlsSpec;
use sluice_api::table::{
    BackendSpec, RouteSpec, SplitMode, SplitSpec, TableSpec, UpstreamProtocol, ValueMatch,
};

use sluice_api::limits::{MAX_TOTAL, NAME_RULE, compile_regex, valid_name};

/// What the request path keeps per endpoint, across table swaps: made once for an endpoint
/// that appears, and carried over for as long as a table lists it.
pub trait EndpointState: Send + Sync + 'static {
    /// The state of a new endpoint at `authority`.
    fn new(authority: Authority) -> Self;
    /// Where it is.
    fn authority(&self) -> &Authority;
    /// Whether a backend's TLS settings can be used (its CA file read and parsed), or why not.
    fn check_tls(spec: &UpstreamTlsSpec) -> std::result::Result<(), String>;
}

/// A validated route table.
pub struct RouteTable<E> {
    /// Routes in match order: host-specific before any-host, then longest prefix first.
    pub(crate) routes: Vec<Arc<Route<E>>>,
    backends: HashMap<String, Arc<Backend<E>>>,
    /// The spec this table was built from, with every route's generation filled in.
    spec: TableSpec,
    /// The highest generation any route has had in this process.
    max_generation: u64,
    /// Whether any route matches or decides by host; when none does, a request's host is
    /// never looked at.
    pub(crate) uses_host: bool,
    /// The routes by host and path prefix, for tables too big to walk.
    pub(crate) index: RouteIndex,
    /// Routes by name: positions in `spec.routes`.
    by_name: NameIndex,
    /// For each route of `spec.routes`, its position in `routes`.
    route_at: Vec<u32>,
}

/// A validated backend.
pub struct Backend<E> {
    /// Name, as in metrics labels.
    pub name: String,
    /// Revision (salts the sticky hash).
    pub revision: String,
    /// Upstream protocol.
    pub protocol: UpstreamProtocol,
    /// Endpoints; never empty.
    pub endpoints: Vec<Arc<E>>,
    /// The name as a header value, for `x-sluice-backend`.
    pub name_header: HeaderValue,
    /// The spec it was built from.
    pub spec: BackendSpec,
}

/// A backend as a route uses it: the backend and the route's telemetry for it.
pub struct Target<E> {
    /// The backend.
    pub backend: Arc<Backend<E>>,
    /// Where requests this route sends to it are recorded.
    pub telemetry: Arc<PairTelemetry>,
}

/// A validated route.
pub struct Route<E> {
    /// Name.
    pub name: String,
    pub(crate) hosts: Vec<HostPattern>,
    pub(crate) path_prefix: String,
    /// Generation; only grows.
    pub generation: u64,
    /// The generation as a header value, for `x-sluice-generation`.
    pub generation_header: HeaderValue,
    /// Canary weight out of `total`.
    pub weight: u32,
    /// Total.
    pub total: u32,
    pub(crate) stable: usize,
    pub(crate) canary: Option<usize>,
    pub(crate) split: Split,
    /// Exact-split decision counter, shared by every connection; survives swaps that keep the
    /// weights.
    pub(crate) counter: Arc<AtomicU64>,
    pub(crate) header_rules: Vec<Rule>,
    /// Bit `len % 64` is set for the length of every header rule's name: a request header
    /// whose length has no bit names no rule.
    pub(crate) header_rule_lengths: u64,
    pub(crate) cookie_rules: Vec<Rule>,
    pub(crate) host_rules: Vec<(String, usize)>,
    /// Whether responses carry `x-sluice-backend` and `x-sluice-generation`.
    pub debug_headers: bool,
    /// Every backend this route can send to.
    pub targets: Vec<Target<E>>,
    /// Failover from the canary to stable, if enabled.
    pub failover: Option<Failover>,
    /// Which gRPC status codes (0..=16) are errors.
    pub grpc_errors: Arc<[bool; 17]>,
    /// Mirroring, if enabled.
    pub mirror: Option<Mirror>,
}

/// Mirroring, compiled.
pub struct Mirror {
    /// Index of the mirror backend in the route's targets.
    pub target: usize,
    /// Share copied, percent.
    pub percentage: u32,
    /// Methods copied (any when empty).
    pub methods: Vec<http::Method>,
    /// Path prefix copied.
    pub path_prefix: Option<String>,
    /// Headers that must match exactly.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Bound on copies in flight.
    pub in_flight: Arc<CopyLimit>,
    /// Largest body copied.
    pub max_body_bytes: u64,
    /// Exact sampling counter.
    pub counter: AtomicU64,
}

impl Mirror {
    /// Whether this request is copied (matching, and picked by the exact share).
    pub fn wants(&self, method: &http::Method, path: &str, headers: &http::HeaderMap) -> bool {
        let matches = (self.methods.is_empty() || self.methods.contains(method))
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|p| path.starts_with(p))
            && self.headers.iter().all(|(k, v)| headers.get(k) == Some(v));
        matches
            && crate::route::split::exact_is_canary(
                self.counter
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                self.percentage,
                100,
            )
    }
}

/// A bound on a route's mirror copies in flight: a copy takes a [`CopyPermit`], or is
/// skipped when every one is out.
pub struct CopyLimit {
    max: usize,
    taken: AtomicUsize,
}

impl CopyLimit {
    /// At most `max` at once.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            taken: AtomicUsize::new(0),
        }
    }

    /// A permit, or `None` when `max` are out.
    pub fn try_take(self: &Arc<Self>) -> Option<CopyPermit> {
        use std::sync::atomic::Ordering::{AcqRel, Acquire};
        self.taken
            .fetch_update(AcqRel, Acquire, |n| (n < self.max).then_some(n + 1))
            .ok()
            .map(|_| CopyPermit(self.clone()))
    }
}

/// One mirror copy in flight; given back when dropped.
pub struct CopyPermit(Arc<CopyLimit>);

impl Drop for CopyPermit {
    fn drop(&mut self) {
        self.0
            .taken
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Failover settings, compiled.
pub struct Failover {
    /// Canary statuses that send a safe request to stable.
    pub statuses: Vec<u16>,
    /// Methods safe to send twice.
    pub safe_methods: Vec<http::Method>,
    /// Largest body held for sending again.
    pub max_replay_bytes: u64,
}

impl<E> Route<E> {
    /// The stable target.
    pub fn stable_target(&self) -> Option<&Target<E>> {
        self.targets.get(self.stable)
    }

    /// Index of the stable target in [`Route::targets`].
    pub fn stable_index(&self) -> usize {
        self.stable
    }

    /// Index of the canary target in [`Route::targets`], if any.
    pub fn canary_index(&self) -> Option<usize> {
        self.canary
    }

    /// The canary target, if the route has one.
    pub fn canary_target(&self) -> Option<&Target<E>> {
        self.canary.and_then(|i| self.targets.get(i))
    }
}

/// What a build may reuse from the running table.
pub struct BuildContext<'a, E> {
    /// The table being replaced.
    pub previous: Option<&'a RouteTable<E>>,
    /// Telemetry that outlives tables.
    pub telemetry: &'a TelemetryRegistry,
}

impl<E> RouteTable<E> {
    /// An empty table.
    pub fn empty() -> Self {
        Self {
            routes: Vec::new(),
            backends: HashMap::new(),
            spec: TableSpec::default(),
            max_generation: 0,
            uses_host: false,
            index: RouteIndex::default(),
            by_name: NameIndex::default(),
            route_at: Vec::new(),
        }
    }

    /// The spec of this table, generations included.
    pub fn spec(&self) -> &TableSpec {
        &self.spec
    }

    /// Routes in match order.
    pub fn routes(&self) -> &[Arc<Route<E>>] {
        &self.routes
    }

    /// A route by name.
    pub fn route(&self, name: &str) -> Option<&Arc<Route<E>>> {
        self.route_and_spec(name).map(|(r, _)| r)
    }

    /// A route by name, with its spec.
    fn route_and_spec(&self, name: &str) -> Option<(&Arc<Route<E>>, &RouteSpec)> {
        let i = self.by_name.find(name, |i| {
            self.spec.routes.get(i).map_or("", |r| r.name.as_str())
        })?;
        let route = self.routes.get(*self.route_at.get(i)? as usize)?;
        Some((route, self.spec.routes.get(i)?))
    }

    /// A backend by name.
    pub fn backend(&self, name: &str) -> Option<&Arc<Backend<E>>> {
        self.backends.get(name)
    }

    /// Every backend.
    pub fn backends(&self) -> impl Iterator<Item = &Arc<Backend<E>>> {
        self.backends.values()
    }
}

impl<E: EndpointState> RouteTable<E> {
    /// Validates `spec` and compiles it. Every problem is reported, each with its field path.
    pub fn build(spec: TableSpec, ctx: &BuildContext<'_, E>) -> Result<Self> {
        let mut errors = Vec::new();
        let backends = build_backends(&spec.backends, ctx.previous, &mut errors);
        let mut by_name = NameIndex::with_capacity(spec.routes.len());
        let mut seen_matches = HashSet::with_capacity(spec.routes.len());
        for (i, r) in spec.routes.iter().enumerate() {
            if !by_name.insert(i, |j| spec.routes[j].name.as_str()) {
                errors.push(FieldError::new(
                    format!("routes[{i}].name"),
                    format!("duplicate route name {:?}", r.name),
                ));
            }
            if !seen_matches.insert((HostsKey::of(&r.hosts), r.path_prefix.as_str())) {
                errors.push(FieldError::new(
                    format!("routes[{i}].path_prefix"),
                    format!(
                        "another route already takes these hosts and path prefix {:?}",
                        r.path_prefix
                    ),
                ));
            }
        }
        let mut max_generation = ctx.previous.map_or(0, |p| p.max_generation);
        let mut routes = Vec::with_capacity(spec.routes.len());
        // each route's generation, filled into the spec once the routes are built
        let mut generations: Vec<(usize, u64)> = Vec::with_capacity(spec.routes.len());
        for (i, r) in spec.routes.iter().enumerate() {
            let before = errors.len();
            // the route of that name in the previous table, and its spec there
            let (prev, old) = ctx.previous.and_then(|p| p.route_and_spec(&r.name)).unzip();
            let generation =
                match next_generation(r, prev, old, &backends, ctx.previous, &mut max_generation) {
                    Ok(g) => g,
                    Err(e) => {
                        errors.push(FieldError::new(format!("routes[{i}].generation"), e));
                        continue;
                    }
                };
            if let (Some(p), Some(old)) = (prev, old)
                && generation == p.generation
                && reusable(r, old, p, &backends)
            {
                // nothing about it changed: the compiled route is kept as it is
                generations.push((i, generation));
                routes.push(p.clone());
                continue;
            }
            if let Some(route) = build_route(
                &format!("routes[{i}]"),
                r,
                generation,
                prev,
                &backends,
                ctx.telemetry,
                &mut errors,
            ) && errors.len() == before
            {
                generations.push((i, generation));
                routes.push(Arc::new(route));
            }
        }
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }
        // every route of the spec was built, in its order: sorted into match order, each
        // remembers where it went
        let mut in_order: Vec<(usize, Arc<Route<E>>)> = routes.into_iter().enumerate().collect();
        in_order.sort_by(|(_, a), (_, b)| {
            (a.hosts.is_empty().cmp(&b.hosts.is_empty()))
                .then(b.path_prefix.len().cmp(&a.path_prefix.len()))
        });
        let mut route_at = vec![0u32; in_order.len()];
        let routes: Vec<Arc<Route<E>>> = in_order
            .into_iter()
            .enumerate()
            .map(|(at, (i, r))| {
                route_at[i] = at as u32;
                r
            })
            .collect();
        Ok(Self {
            uses_host: routes
                .iter()
                .any(|r| !r.hosts.is_empty() || !r.host_rules.is_empty()),
            index: RouteIndex::new(
                routes
                    .iter()
                    .map(|r| (r.hosts.as_slice(), r.path_prefix.as_str())),
            ),
            by_name,
            route_at,
            routes,
            backends,
            spec: filled_in(spec, &generations),
            max_generation,
        })
    }
}

/// A route's hosts as they clash with another's: lowercase, in any order. One host (most
/// routes) or none is kept without a list of its own.
#[derive(PartialEq, Eq, Hash)]
enum HostsKey<'a> {
    One(std::borrow::Cow<'a, str>),
    /// None, or two or more, sorted.
    Many(Vec<std::borrow::Cow<'a, str>>),
}

impl<'a> HostsKey<'a> {
    fn of(hosts: &'a [String]) -> Self {
        let lower = |h: &'a String| -> std::borrow::Cow<'a, str> {
            if h.bytes().any(|b| b.is_ascii_uppercase()) {
                h.to_ascii_lowercase().into()
            } else {
                h.as_str().into()
            }
        };
        match hosts {
            [one] => Self::One(lower(one)),
            _ => {
                let mut all: Vec<_> = hosts.iter().map(lower).collect();
                all.sort();
                Self::Many(all)
            }
        }
    }
}

/// The generation of route `r`: the one it names, or the previous one when nothing about the
/// route changed, or a new one above every generation seen so far.
fn next_generation<E>(
    r: &RouteSpec,
    prev: Option<&Arc<Route<E>>>,
    old: Option<&RouteSpec>,
    backends: &HashMap<String, Arc<Backend<E>>>,
    previous: Option<&RouteTable<E>>,
    max_generation: &mut u64,
) -> std::result::Result<u64, String> {
    if let Some(g) = r.generation {
        if let Some(p) = prev
            && g < p.generation
        {
            return Err(format!(
                "{g} is older than the applied generation {}",
                p.generation
            ));
        }
        *max_generation = (*max_generation).max(g);
        return Ok(g);
    }
    if let (Some(p), Some(old), Some(previous)) = (prev, old, previous)
        && unchanged(r, old, backends, previous)
    {
        return Ok(p.generation);
    }
    *max_generation += 1;
    Ok(*max_generation)
}

/// Whether a route (without a generation of its own) and every backend it uses are the same
/// as in the previous table (`old` is its spec there).
fn unchanged<E>(
    r: &RouteSpec,
    old: &RouteSpec,
    backends: &HashMap<String, Arc<Backend<E>>>,
    previous: &RouteTable<E>,
) -> bool {
    let old = RouteSpec {
        generation: None,
        ..old.clone()
    };
    if old != *r {
        return false;
    }
    referenced_backends(r).all(|name| {
        let new = backends.get(name).map(|b| &b.spec);
        let old = previous.backends.get(name).map(|b| &b.spec);
        new.is_some() && new == old
    })
}

/// `spec` with the generation of each route in `generations` (by index) filled in.
fn filled_in(mut spec: TableSpec, generations: &[(usize, u64)]) -> TableSpec {
    for &(i, g) in generations {
        if let Some(r) = spec.routes.get_mut(i) {
            r.generation = Some(g);
        }
    }
    spec
}

/// Whether compiled route `p` (built from `old`) can serve for `r` as it is: the same spec
/// (generations aside) and the very same backends.
fn reusable<E>(
    r: &RouteSpec,
    old: &RouteSpec,
    p: &Route<E>,
    backends: &HashMap<String, Arc<Backend<E>>>,
) -> bool {
    let same_spec = if r.generation == old.generation {
        r == old
    } else {
        *r == RouteSpec {
            generation: r.generation,
            ..old.clone()
        }
    };
    same_spec
        && referenced_backends(r).all(|name| {
            backends.get(name).is_some_and(|b| {
                p.targets
                    .iter()
                    .any(|t| t.backend.name == name && Arc::ptr_eq(&t.backend, b))
            })
        })
}

fn referenced_backends(r: &RouteSpec) -> impl Iterator<Item = &str> {
    std::iter::once(r.stable.as_str())
        .chain(r.canary.as_deref())
        .chain(
            r.header_rules
                .iter()
                .chain(&r.cookie_rules)
                .filter_map(|x| x.backend.as_deref()),
        )
        .chain(r.host_rules.iter().map(|h| h.backend.as_str()))
        .chain(r.mirror.iter().map(|m| m.backend.as_str()))
}

fn build_backends<E: EndpointState>(
    specs: &[BackendSpec],
    previous: Option<&RouteTable<E>>,
    errors: &mut Vec<FieldError>,
) -> HashMap<String, Arc<Backend<E>>> {
    let mut out = HashMap::new();
    for (i, b) in specs.iter().enumerate() {
        let path = format!("backends[{i}]");
        let before = errors.len();
        if !valid_name(&b.name) {
            errors.push(FieldError::new(format!("{path}.name"), NAME_RULE));
        } else if out.contains_key(&b.name) {
            errors.push(FieldError::new(
                format!("{path}.name"),
                format!("duplicate backend name {:?}", b.name),
            ));
        }
        if b.endpoints.is_empty() {
            errors.push(FieldError::new(
                format!("{path}.endpoints"),
                "must list at least one endpoint",
            ));
        }
        let old = previous.and_then(|p| p.backends.get(&b.name));
        let mut endpoints = Vec::new();
        for (j, e) in b.endpoints.iter().enumerate() {
            match parse_endpoint(e) {
                Ok(authority) => {
                    let kept = old.and_then(|o| {
                        o.endpoints
                            .iter()
                            .find(|x| *x.authority() == authority)
                            .cloned()
                    });
                    endpoints.push(kept.unwrap_or_else(|| Arc::new(E::new(authority))));
                }
                Err(reason) => {
                    errors.push(FieldError::new(format!("{path}.endpoints[{j}]"), reason));
                }
            }
        }
        if let Some(hc) = &b.health_check {
            if hc.path.as_ref().is_some_and(|p| !p.starts_with('/')) {
                errors.push(FieldError::new(
                    format!("{path}.health_check.path"),
                    "must start with '/'",
                ));
            }
            if hc.interval.is_zero() {
                errors.push(FieldError::new(
                    format!("{path}.health_check.interval"),
                    "must be above 0",
                ));
            }
            if hc.timeout.is_zero() {
                errors.push(FieldError::new(
                    format!("{path}.health_check.timeout"),
                    "must be above 0",
                ));
            }
        }
        if let Some(tls) = &b.tls {
            use sluice_api::table::UpstreamProtocol as P;
            if !matches!(b.protocol, P::Https | P::H2) {
                errors.push(FieldError::new(
                    format!("{path}.tls"),
                    "needs protocol https or h2",
                ));
            } else if let Err(reason) = E::check_tls(tls) {
                errors.push(FieldError::new(format!("{path}.tls.ca_file"), reason));
            }
            if let Some(n) = &tls.server_name
                && rustls_pki_types::ServerName::try_from(n.as_str()).is_err()
            {
                errors.push(FieldError::new(
                    format!("{path}.tls.server_name"),
                    format!("{n:?} is not a server name"),
                ));
            }
        }
        if let Some(rev) = &b.revision
            && (rev.is_empty() || rev.len() > 128)
        {
            errors.push(FieldError::new(
                format!("{path}.revision"),
                "must be 1 to 128 characters",
            ));
        }
        if errors.len() > before {
            continue;
        }
        // an unchanged backend is the same backend: the routes that use it can be kept whole
        if let Some(o) = old
            && o.spec == *b
        {
            out.insert(b.name.clone(), o.clone());
            continue;
        }
        let Ok(name_header) = HeaderValue::from_str(&b.name) else {
            continue;
        };
        out.insert(
            b.name.clone(),
            Arc::new(Backend {
                name: b.name.clone(),
                revision: b.revision.clone().unwrap_or_else(|| b.name.clone()),
                protocol: b.protocol,
                endpoints,
                name_header,
                spec: b.clone(),
            }),
        );
    }
    out
}

/// Parses `host:port`, where host is an IP address (IPv6 in brackets) or a DNS name.
fn parse_endpoint(s: &str) -> std::result::Result<Authority, String> {
    let bad = |why: &str| format!("{s:?} is not host:port ({why})");
    let authority: Authority = s.parse().map_err(|_| bad("not an authority"))?;
    if s.contains('@') {
        return Err(bad("user info is not allowed"));
    }
    match authority.port_u16() {
        Some(0) => Err(bad("port 0")),
        Some(_) => Ok(authority),
        None => Err(bad("missing port")),
    }
}

#[allow(clippy::too_many_arguments)]
fn build_route<E>(
    path: &str,
    r: &RouteSpec,
    generation: u64,
    prev: Option<&Arc<Route<E>>>,
    backends: &HashMap<String, Arc<Backend<E>>>,
    telemetry: &TelemetryRegistry,
    errors: &mut Vec<FieldError>,
) -> Option<Route<E>> {
    let err = |errors: &mut Vec<FieldError>, field: &str, reason: String| {
        errors.push(FieldError::new(format!("{path}.{field}"), reason));
    };
    if !valid_name(&r.name) {
        err(errors, "name", NAME_RULE.to_owned());
    }
    if !r.path_prefix.starts_with('/') {
        err(
            errors,
            "path_prefix",
            format!("{:?} must start with '/'", r.path_prefix),
        );
    }
    let mut hosts = Vec::new();
    for (j, h) in r.hosts.iter().enumerate() {
        match parse_host_pattern(h) {
            Ok(p) => hosts.push(p),
            Err(reason) => err(errors, &format!("hosts[{j}]"), reason),
        }
    }
    if r.total == 0 || r.total > MAX_TOTAL {
        err(
            errors,
            "total",
            format!("{} must be between 1 and {MAX_TOTAL}", r.total),
        );
    } else if r.weight > r.total {
        err(
            errors,
            "weight",
            format!("{} exceeds total {}", r.weight, r.total),
        );
    }
    if r.canary.is_none() && r.weight > 0 {
        err(
            errors,
            "weight",
            format!("{} needs a canary backend", r.weight),
        );
    }
    if r.canary.as_deref() == Some(r.stable.as_str()) {
        err(errors, "canary", "must differ from stable".to_owned());
    }

    let mut targets: Vec<Target<E>> = Vec::new();
    let mut target_of = |errors: &mut Vec<FieldError>, field: &str, name: &str| -> usize {
        if let Some(i) = targets.iter().position(|t| t.backend.name == name) {
            return i;
        }
        match backends.get(name) {
            Some(b) => {
                targets.push(Target {
                    backend: b.clone(),
                    telemetry: telemetry.pair(&r.name, name),
                });
                targets.len() - 1
            }
            None => {
                errors.push(FieldError::new(
                    format!("{path}.{field}"),
                    format!("unknown backend {name:?}"),
                ));
                usize::MAX
            }
        }
    };
    let stable = target_of(errors, "stable", &r.stable);
    let canary = r.canary.as_deref().map(|c| target_of(errors, "canary", c));

    let canary_revision = r
        .canary
        .as_ref()
        .and_then(|c| backends.get(c))
        .map(|b| b.revision.as_str());
    let split = match compile_split(&r.split, r, canary_revision) {
        Ok(s) => s,
        Err((field, reason)) => {
            err(errors, &format!("split.{field}"), reason);
            Split::Exact
        }
    };

    let mut compile_rules = |errors: &mut Vec<FieldError>, kind: &str, is_header: bool| {
        let rules = if is_header {
            &r.header_rules
        } else {
            &r.cookie_rules
        };
        let mut out = Vec::new();
        for (j, rule) in rules.iter().enumerate() {
            let rp = format!("{kind}[{j}]");
            let before = errors.len();
            let header = if is_header {
                match HeaderName::from_bytes(rule.name.as_bytes()) {
                    Ok(h) => Some(h),
                    Err(_) => {
                        err(
                            errors,
                            &format!("{rp}.name"),
                            format!("{:?} is not a valid header name", rule.name),
                        );
                        None
                    }
                }
            } else {
                if rule.name.is_empty()
                    || rule
                        .name
                        .bytes()
                        .any(|b| b <= b' ' || b == b';' || b == b'=' || b >= 0x7f)
                {
                    err(
                        errors,
                        &format!("{rp}.name"),
                        format!("{:?} is not a valid cookie name", rule.name),
                    );
                }
                None
            };
            let matcher = match &rule.matcher {
                ValueMatch::Exact(v) => Matcher::Exact(v.clone()),
                ValueMatch::Prefix(v) => Matcher::Prefix(v.clone()),
                ValueMatch::Regex(v) => match compile_regex(v) {
                    Ok(re) => Matcher::Regex(re),
                    Err(why) => {
                        err(errors, &format!("{rp}.match.regex"), why);
                        Matcher::AlwaysNever
                    }
                },
                ValueMatch::AlwaysNever => Matcher::AlwaysNever,
            };
            let target = match (&rule.matcher, &rule.backend) {
                (ValueMatch::AlwaysNever, Some(_)) => {
                    err(
                        errors,
                        &format!("{rp}.backend"),
                        "not allowed with always-never, which picks the route's canary or stable"
                            .to_owned(),
                    );
                    usize::MAX
                }
                (ValueMatch::AlwaysNever, None) => {
                    if canary.is_none() {
                        err(
                            errors,
                            &format!("{rp}.match"),
                            "always-never needs the route to have a canary".to_owned(),
                        );
                    }
                    usize::MAX
                }
                (_, None) => {
                    err(
                        errors,
                        &format!("{rp}.backend"),
                        "required: the backend a matching request goes to".to_owned(),
                    );
                    usize::MAX
                }
                (_, Some(b)) => target_of(errors, &format!("{rp}.backend"), b),
            };
            if errors.len() == before {
                out.push(Rule {
                    name: rule.name.to_ascii_lowercase(),
                    key: header.as_ref().map_or_else(Default::default, |h| {
                        crate::route::matcher::NameKey::of(h.as_str().as_bytes())
                    }),
                    header,
                    matcher,
                    target,
                });
            }
        }
        out
    };
    let header_rules = compile_rules(errors, "header_rules", true);
    let cookie_rules = compile_rules(errors, "cookie_rules", false);
    // cookie names are case-sensitive; keep them as written
    let cookie_rules = cookie_rules
        .into_iter()
        .zip(&r.cookie_rules)
        .map(|(mut c, s)| {
            c.name = s.name.clone();
            c
        })
        .collect();

    let mut host_rules = Vec::new();
    for (j, h) in r.host_rules.iter().enumerate() {
        let host = h.host.to_ascii_lowercase();
        if parse_host_pattern(&host).is_err() || host.starts_with("*.") {
            err(
                errors,
                &format!("host_rules[{j}].host"),
                format!("{:?} is not a host name", h.host),
            );
            continue;
        }
        if !hosts.is_empty() && !hosts.iter().any(|p| p.matches(&host)) {
            err(
                errors,
                &format!("host_rules[{j}].host"),
                format!(
                    "{:?} is not among the route's hosts, so the rule could never match",
                    h.host
                ),
            );
            continue;
        }
        let t = target_of(errors, &format!("host_rules[{j}].backend"), &h.backend);
        host_rules.push((host, t));
    }

    let mut grpc_errors = [false; 17];
    for c in r
        .grpc_error_codes
        .as_deref()
        .unwrap_or(&sluice_api::table::DEFAULT_GRPC_ERRORS)
    {
        match grpc_errors.get_mut(*c as usize) {
            Some(e) => *e = true,
            None => err(
                errors,
                "grpc_error_codes",
                format!("{c} is not a gRPC status code (0 to 16)"),
            ),
        }
    }
    let mut mirror = None;
    if let Some(m) = &r.mirror {
        if m.percentage > 100 {
            err(
                errors,
                "mirror.percentage",
                format!("{} must be 0 to 100", m.percentage),
            );
        }
        if m.max_in_flight == 0 {
            err(errors, "mirror.max_in_flight", "must be above 0".to_owned());
        }
        let mut methods = Vec::new();
        for (j, x) in m.methods.iter().enumerate() {
            match http::Method::from_bytes(x.as_bytes()) {
                Ok(x) => methods.push(x),
                Err(_) => err(
                    errors,
                    &format!("mirror.methods[{j}]"),
                    format!("{x:?} is not a method"),
                ),
            }
        }
        let mut hs = Vec::new();
        for (k, v) in &m.headers {
            match (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                (Ok(k), Ok(v)) => hs.push((k, v)),
                _ => err(
                    errors,
                    &format!("mirror.headers.{k}"),
                    "is not a valid header".to_owned(),
                ),
            }
        }
        let t = target_of(errors, "mirror.backend", &m.backend);
        mirror = Some(Mirror {
            target: t,
            percentage: m.percentage.min(100),
            methods,
            path_prefix: m.path_prefix.clone(),
            headers: hs,
            in_flight: Arc::new(CopyLimit::new(m.max_in_flight.max(1))),
            max_body_bytes: m.max_body_bytes,
            counter: AtomicU64::new(0),
        });
    }
    let mut failover = None;
    if let Some(f) = &r.failover {
        if canary.is_none() {
            err(
                errors,
                "failover",
                "needs a canary to fail over from".to_owned(),
            );
        }
        for (j, s) in f.statuses.iter().enumerate() {
            if !(500..=599).contains(s) {
                err(
                    errors,
                    &format!("failover.statuses[{j}]"),
                    format!("{s} is not a 5xx status"),
                );
            }
        }
        let mut methods = Vec::new();
        for (j, m) in f.safe_methods.iter().enumerate() {
            match http::Method::from_bytes(m.as_bytes()) {
                Ok(m) => methods.push(m),
                Err(_) => err(
                    errors,
                    &format!("failover.safe_methods[{j}]"),
                    format!("{m:?} is not a method"),
                ),
            }
        }
        failover = Some(Failover {
            statuses: f.statuses.clone(),
            safe_methods: methods,
            max_replay_bytes: f.max_replay_bytes,
        });
    }
    if !errors.is_empty() {
        return None;
    }
    let counter = match prev {
        Some(p)
            if p.weight == r.weight
                && p.total == r.total
                && p.canary.is_some() == canary.is_some() =>
        {
            p.counter.clone()
        }
        _ => Arc::new(AtomicU64::new(0)),
    };
    Some(Route {
        name: r.name.clone(),
        hosts,
        path_prefix: r.path_prefix.clone(),
        generation,
        generation_header: HeaderValue::from(generation),
        weight: r.weight,
        total: r.total,
        stable,
        canary,
        split,
        counter,
        header_rule_lengths: header_rules
            .iter()
            .filter_map(|r| r.header.as_ref())
            .fold(0, |mask, h| mask | 1 << (h.as_str().len() % 64)),
        header_rules,
        cookie_rules,
        host_rules,
        debug_headers: r.debug_headers,
        targets,
        failover,
        grpc_errors: Arc::new(grpc_errors),
        mirror,
    })
}

fn compile_split(
    s: &SplitSpec,
    r: &RouteSpec,
    canary_revision: Option<&str>,
) -> std::result::Result<Split, (&'static str, String)> {
    match s.mode {
        SplitMode::Exact => {
            if s.header.is_some() || s.cookie.is_some() {
                return Err((
                    "mode",
                    "exact mode takes no header or cookie; use mode: sticky".to_owned(),
                ));
            }
            Ok(Split::Exact)
        }
        SplitMode::Sticky => {
            let key = match (&s.header, &s.cookie) {
                (Some(h), None) => StickyKey::Header(
                    HeaderName::from_bytes(h.as_bytes())
                        .map_err(|_| ("header", format!("{h:?} is not a valid header name")))?,
                ),
                (None, Some(c)) if !c.is_empty() => StickyKey::Cookie(c.clone()),
                _ => {
                    return Err((
                        "mode",
                        "sticky mode needs exactly one of header or cookie".to_owned(),
                    ));
                }
            };
            Ok(Split::Sticky {
                key,
                salt: sticky_salt(&r.name, canary_revision.unwrap_or_default()),
            })
        }
    }
}

fn parse_host_pattern(h: &str) -> std::result::Result<HostPattern, String> {
    let lower = h.to_ascii_lowercase();
    let (pattern, name) = match lower.strip_prefix("*.") {
        Some(rest) => (HostPattern::Suffix(format!(".{rest}")), rest.to_owned()),
        None => (HostPattern::Exact(lower.clone()), lower.clone()),
    };
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if ok {
        Ok(pattern)
    } else {
        Err(format!("{h:?} is not a host name or *.suffix pattern"))
    }
}

#[cfg(test)]
/// Endpoints as the table sees them, without the request path's state.
pub(crate) struct Plain(Authority);

#[cfg(test)]
impl EndpointState for Plain {
    fn new(authority: Authority) -> Self {
        Self(authority)
    }
    fn authority(&self) -> &Authority {
        &self.0
    }
    fn check_tls(spec: &UpstreamTlsSpec) -> std::result::Result<(), String> {
        match &spec.ca_file {
            Some(f) if !f.exists() => Err(format!("cannot read {}", f.display())),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_yaml;

    type Table = RouteTable<Plain>;

    const BACKENDS: &str = r#"
backends:
  - {name: v1, endpoints: ["127.0.0.1:9001"]}
  - {name: v2, endpoints: ["127.0.0.1:9002", "localhost:9003"]}
"#;

    fn build(yaml: &str, previous: Option<&Table>, reg: &TelemetryRegistry) -> Result<Table> {
        let spec: TableSpec = parse_yaml(yaml)?;
        RouteTable::build(
            spec,
            &BuildContext {
                previous,
                telemetry: reg,
            },
        )
    }

    fn route(body: &str) -> String {
        format!("{BACKENDS}routes:\n  - name: app\n    stable: v1\n{body}")
    }

    #[test]
    fn every_kind_of_bad_table_names_its_field() {
        let cases: &[(String, &str)] = &[
            (route("    canary: v2\n    weight: 120\n"), "routes[0].weight: 120 exceeds total 100"),
            (route("    total: 0\n"), "routes[0].total"),
            (route("    total: 10001\n"), "routes[0].total"),
            (route("    weight: 5\n"), "routes[0].weight: 5 needs a canary"),
            (route("    canary: v9\n"), "routes[0].canary: unknown backend \"v9\""),
            (route("    canary: v1\n"), "routes[0].canary: must differ from stable"),
            (route("    path_prefix: api\n"), "routes[0].path_prefix"),
            (route("    hosts: [\"bad host\"]\n"), "routes[0].hosts[0]"),
            (route("    canary: v2\n    header_rules:\n      - {name: x, match: {regex: \"(\"}, backend: v2}\n"), "routes[0].header_rules[0].match.regex"),
            (route("    canary: v2\n    header_rules:\n      - {name: \"bad header\", match: {exact: a}, backend: v2}\n"), "routes[0].header_rules[0].name"),
            (route("    canary: v2\n    header_rules:\n      - {name: x, match: {exact: a}}\n"), "routes[0].header_rules[0].backend: required"),
            (route("    canary: v2\n    cookie_rules:\n      - {name: c, match: always-never, backend: v2}\n"), "routes[0].cookie_rules[0].backend: not allowed"),
            (route("    cookie_rules:\n      - {name: c, match: always-never}\n"), "routes[0].cookie_rules[0].match: always-never needs"),
            (route("    canary: v2\n    split: {mode: sticky}\n"), "routes[0].split.mode: sticky mode needs"),
            (route("    split: {mode: exact, header: x}\n"), "routes[0].split.mode: exact mode takes"),
            (route("    hosts: [a.test]\n    host_rules: [{host: b.test, backend: v1}]\n"), "routes[0].host_rules[0].host"),
            (format!("{BACKENDS}routes:\n  - {{name: a, stable: v1}}\n  - {{name: a, stable: v2, path_prefix: /x}}\n"), "routes[1].name: duplicate route name"),
            (format!("{BACKENDS}routes:\n  - {{name: a, stable: v1}}\n  - {{name: b, stable: v2}}\n"), "routes[1].path_prefix: another route"),
            (format!("{BACKENDS}routes:\n  - {{name: a, stable: v1, hosts: [B.test, a.test]}}\n  - {{name: b, stable: v2, hosts: [A.test, b.TEST]}}\n"), "routes[1].path_prefix: another route"),
            (format!("{BACKENDS}routes:\n  - {{name: \"a b\", stable: v1}}\n"), "routes[0].name: must be"),
            ("backends:\n  - {name: v1, endpoints: []}\n".to_owned(), "backends[0].endpoints: must list"),
            ("backends:\n  - {name: v1, endpoints: [\"127.0.0.1\"]}\n".to_owned(), "backends[0].endpoints[0]: \"127.0.0.1\" is not host:port (missing port)"),
            ("backends:\n  - {name: v1, endpoints: [\"127.0.0.1:0\"]}\n".to_owned(), "backends[0].endpoints[0]"),
            ("backends:\n  - {name: v1, endpoints: [\"a:1\"]}\n  - {name: v1, endpoints: [\"a:2\"]}\n".to_owned(), "backends[1].name: duplicate backend"),
            (route("    wieght: 3\n"), "routes[0].wieght: unknown field `wieght`"),
            (route("    weight: -1\n"), "routes[0].weight"),
            (route("    split: {mode: random}\n"), "routes[0].split.mode"),
        ];
        let reg = TelemetryRegistry::default();
        for (yaml, want) in cases {
            let err = build(yaml, None, &reg)
                .err()
                .unwrap_or_else(|| panic!("accepted: {yaml}"));
            let msg = err.to_string();
            assert!(msg.starts_with(want), "want {want:?}, got {msg:?}");
            assert_eq!(err.status(), 400);
        }
    }

    #[test]
    fn every_route_is_found_by_name_in_a_table_kept_in_match_order() {
        let reg = TelemetryRegistry::default();
        // spec order is not match order: any-host routes and short prefixes go last
        let yaml = format!(
            "{BACKENDS}routes:\n  - {{name: any, stable: v1}}\n  - {{name: short, stable: v1, path_prefix: /a}}\n  - {{name: one-host, stable: v1, hosts: [a.test]}}\n  - {{name: two-hosts, stable: v2, hosts: [a.test, b.test]}}\n  - {{name: long, stable: v2, hosts: [a.test], path_prefix: /a/b}}\n"
        );
        let t1 = build(&yaml, None, &reg).unwrap();
        let order: Vec<&str> = t1.routes().iter().map(|r| r.name.as_str()).collect();
        assert_eq!(order, ["long", "one-host", "two-hosts", "short", "any"]);
        let t2 = build(&yaml, Some(&t1), &reg).unwrap();
        for t in [&t1, &t2] {
            for name in ["any", "short", "one-host", "two-hosts", "long"] {
                assert_eq!(t.route(name).map(|r| r.name.as_str()), Some(name));
            }
            assert!(t.route("none").is_none());
        }
        // nothing changed: every compiled route is the previous table's
        for r in t2.routes() {
            assert!(Arc::ptr_eq(r, t1.route(&r.name).unwrap()));
        }
    }

    #[test]
    fn generations_grow_only_when_a_route_changes() {
        let reg = TelemetryRegistry::default();
        let yaml = |w: u32| route(&format!("    canary: v2\n    weight: {w}\n"));
        let t1 = build(&yaml(10), None, &reg).unwrap();
        assert_eq!(t1.route("app").unwrap().generation, 1);
        let t2 = build(&yaml(10), Some(&t1), &reg).unwrap();
        assert_eq!(t2.route("app").unwrap().generation, 1);
        // the exact counter survives a swap that keeps the weights
        assert!(Arc::ptr_eq(
            &t1.route("app").unwrap().counter,
            &t2.route("app").unwrap().counter
        ));
        let t3 = build(&yaml(20), Some(&t2), &reg).unwrap();
        assert_eq!(t3.route("app").unwrap().generation, 2);
        assert!(!Arc::ptr_eq(
            &t2.route("app").unwrap().counter,
            &t3.route("app").unwrap().counter
        ));
        // a backend change bumps the routes that use it
        let moved = yaml(20).replace("localhost:9003", "localhost:9004");
        let t4 = build(&moved, Some(&t3), &reg).unwrap();
        assert_eq!(t4.route("app").unwrap().generation, 3);
        // endpoint state is kept for endpoints that stay
        let ep = |t: &Table| t.backend("v2").unwrap().endpoints[0].clone();
        assert!(Arc::ptr_eq(&ep(&t3), &ep(&t4)));
        // a named generation is used as is, and an older one is refused
        let named = yaml(30).replace("    weight: 30\n", "    weight: 30\n    generation: 40\n");
        let t5 = build(&named, Some(&t4), &reg).unwrap();
        assert_eq!(t5.route("app").unwrap().generation, 40);
        let old = yaml(30).replace("    weight: 30\n", "    weight: 30\n    generation: 39\n");
        let e = build(&old, Some(&t5), &reg).err().unwrap();
        assert!(
            e.to_string()
                .starts_with("routes[0].generation: 39 is older"),
            "{e}"
        );
        // a route removed and added again does not reuse a generation
        let t6 = build(BACKENDS, Some(&t5), &reg).unwrap();
        let t7 = build(&yaml(30), Some(&t6), &reg).unwrap();
        assert_eq!(t7.route("app").unwrap().generation, 41);
        assert_eq!(t7.spec().routes[0].generation, Some(41));
    }
}
