//! The route table as users and the controller write it: plain serde types with no behaviour.
//!
//! These types are the wire format of `PUT /routes`, of the proxy's config file and of the
//! snapshots a controller publishes. They say nothing about validity: the proxy compiles a
//! [`TableSpec`] into a table that cannot be invalid, or explains why not (with the rules of
//! [`crate::limits`]).

use serde::{Deserialize, Serialize};

/// A whole route table: the backends and the routes that split traffic between them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    /// Named groups of endpoints.
    #[serde(default)]
    pub backends: Vec<BackendSpec>,
    /// Routes, selected by host and path prefix.
    #[serde(default)]
    pub routes: Vec<RouteSpec>,
}

/// A backend: one version of a service, reachable at one or more endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendSpec {
    /// Unique name; used in routes, metrics labels and the `x-sluice-backend` header.
    pub name: String,
    /// The revision this backend runs (e.g. a pod-template hash). Salts the sticky hash so that
    /// a new rollout reshuffles users. Defaults to the backend name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// `host:port` addresses.
    pub endpoints: Vec<String>,
    /// The protocol spoken to the endpoints.
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    /// Active health checks of the endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheckSpec>,
    /// TLS to the endpoints (with `protocol: https` or `h2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<UpstreamTlsSpec>,
}

/// How the proxy verifies a backend's TLS certificates.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsSpec {
    /// PEM file of the certificate authorities to trust; the system's roots when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<std::path::PathBuf>,
    /// The name to send (SNI) and verify; the endpoint's host when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
}

/// Active health checks: an endpoint failing `unhealthy_threshold` probes in a row gets no
/// requests until it passes `healthy_threshold` in a row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckSpec {
    /// HTTP path to GET (2xx or 3xx is healthy); a TCP connect when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Time between probes.
    #[serde(default = "default_probe_interval", with = "crate::parse::duration")]
    pub interval: std::time::Duration,
    /// Time a probe may take.
    #[serde(default = "default_probe_timeout", with = "crate::parse::duration")]
    pub timeout: std::time::Duration,
    /// Passing probes in a row that bring an endpoint back.
    #[serde(default = "one")]
    pub healthy_threshold: u32,
    /// Failing probes in a row that take an endpoint out.
    #[serde(default = "two")]
    pub unhealthy_threshold: u32,
}

fn default_probe_interval() -> std::time::Duration {
    std::time::Duration::from_secs(5)
}
fn default_probe_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(1)
}
fn one() -> u32 {
    1
}
fn two() -> u32 {
    2
}

/// How the proxy talks to a backend's endpoints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamProtocol {
    /// HTTP/1.1 over TCP, keep-alive connections pooled.
    #[default]
    Http1,
    /// HTTP/2 over cleartext TCP with prior knowledge; streams multiplexed on pooled connections.
    H2c,
    /// HTTP/1.1 over TLS.
    Https,
    /// HTTP/2 over TLS (ALPN h2).
    H2,
}

/// One route: which requests it takes, and how it splits them between `stable` and `canary`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// Unique name; used in metrics labels, the admin API and the sticky salt.
    pub name: String,
    /// Host names this route answers (`example.com`, `*.example.com`); empty means any host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Path prefix this route answers; the longest matching prefix wins.
    #[serde(default = "default_path_prefix")]
    pub path_prefix: String,
    /// Backend that takes the traffic not sent elsewhere.
    pub stable: String,
    /// Backend that takes `weight` out of `total` of the weighted traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<String>,
    /// Canary weight, out of `total`.
    #[serde(default)]
    pub weight: u32,
    /// The total the weight is out of (Argo's `maxTrafficWeight`): 1 to 10 000.
    #[serde(default = "default_total")]
    pub total: u32,
    /// How the weighted decision is made.
    #[serde(default)]
    pub split: SplitSpec,
    /// Header rules, tried first, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub header_rules: Vec<MatchRule>,
    /// Cookie rules, tried after header rules, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cookie_rules: Vec<MatchRule>,
    /// Host rules, tried after cookie rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_rules: Vec<HostRule>,
    /// Add `x-sluice-backend` and `x-sluice-generation` to responses.
    #[serde(default)]
    pub debug_headers: bool,
    /// gRPC status codes that count as errors (2, 4, 12, 13, 14, 15 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_error_codes: Option<Vec<u32>>,
    /// Copy a share of requests to another backend (answers discarded, measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<MirrorSpec>,
    /// Send requests the canary fails to stable instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<FailoverSpec>,
    /// Generation of this route. Set by a controller; when absent the proxy numbers changes
    /// itself. It only grows: an older generation than the one applied is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
}

fn default_path_prefix() -> String {
    "/".to_owned()
}

impl RouteSpec {
    /// A route `name` on every host and path that sends everything to `stable`, with every
    /// option at its default (as a file that names only these two fields reads).
    pub fn new(name: impl Into<String>, stable: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            hosts: Vec::new(),
            path_prefix: default_path_prefix(),
            stable: stable.into(),
            canary: None,
            weight: 0,
            total: default_total(),
            split: SplitSpec::default(),
            header_rules: Vec::new(),
            cookie_rules: Vec::new(),
            host_rules: Vec::new(),
            debug_headers: false,
            grpc_error_codes: None,
            mirror: None,
            failover: None,
            generation: None,
        }
    }

    /// The same route, sending `weight` (of its total) to `canary`.
    pub fn with_canary(mut self, canary: impl Into<String>, weight: u32) -> Self {
        self.canary = Some(canary.into());
        self.weight = weight;
        self
    }
}

impl BackendSpec {
    /// A backend of plain HTTP/1.1 endpoints, with no health check and no TLS.
    pub fn new(name: impl Into<String>, endpoints: Vec<String>) -> Self {
        Self {
            name: name.into(),
            revision: None,
            endpoints,
            protocol: UpstreamProtocol::default(),
            health_check: None,
            tls: None,
        }
    }

    /// The same backend, serving `revision`.
    pub fn of_revision(mut self, revision: impl Into<String>) -> Self {
        self.revision = Some(revision.into());
        self
    }
}

fn default_total() -> u32 {
    crate::limits::DEFAULT_TOTAL
}

/// Failover from the canary to stable. A request whose connection to the canary could not be
/// made is sent to stable whatever its method (nothing reached the canary); a request of a safe
/// method is also sent to stable when the canary answers one of `statuses`. Bodies up to
/// `max_replay_bytes` are held so they can be sent again; larger ones stream and are not
/// failed over. A failed-over request still counts as a canary failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailoverSpec {
    /// Canary answers that send a safe request to stable (502 and 503 by default).
    #[serde(default = "default_failover_statuses")]
    pub statuses: Vec<u16>,
    /// Methods safe to send twice (GET, HEAD and OPTIONS by default).
    #[serde(default = "default_safe_methods")]
    pub safe_methods: Vec<String>,
    /// Largest body held for sending again (64 KiB by default).
    #[serde(default = "default_replay_bytes")]
    pub max_replay_bytes: u64,
}

impl Default for FailoverSpec {
    fn default() -> Self {
        Self {
            statuses: default_failover_statuses(),
            safe_methods: default_safe_methods(),
            max_replay_bytes: default_replay_bytes(),
        }
    }
}

fn default_failover_statuses() -> Vec<u16> {
    vec![502, 503]
}
fn default_safe_methods() -> Vec<String> {
    vec!["GET".into(), "HEAD".into(), "OPTIONS".into()]
}
fn default_replay_bytes() -> u64 {
    64 * 1024
}

/// Mirroring (Argo's `setMirrorRoute`): `percentage` of the matching requests are copied to
/// `backend`; the copy's answer is discarded (and measured under that backend); copies never
/// delay or fail the real request, at most `max_in_flight` are in flight (more are skipped),
/// and a body is copied only up to `max_body_bytes` (larger ones are not mirrored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorSpec {
    /// Where copies go.
    pub backend: String,
    /// Share of matching requests copied, 0 to 100.
    pub percentage: u32,
    /// Only these methods (any when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Only paths with this prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// Only requests with these headers (name → exact value).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub headers: std::collections::BTreeMap<String, String>,
    /// Copies in flight at most.
    #[serde(default = "default_mirror_in_flight")]
    pub max_in_flight: usize,
    /// Largest body copied.
    #[serde(default = "default_replay_bytes")]
    pub max_body_bytes: u64,
}

fn default_mirror_in_flight() -> usize {
    100
}

/// How weighted traffic is split.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitSpec {
    /// `exact` (default) or `sticky`.
    #[serde(default)]
    pub mode: SplitMode,
    /// Sticky mode: the request header whose value keys the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// Sticky mode: the cookie whose value keys the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<String>,
}

/// The two ways of splitting by weight (DESIGN §3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SplitMode {
    /// A shared counter: any `total` consecutive decisions give exactly `weight` canary picks.
    #[default]
    Exact,
    /// A stable hash of a header or cookie: the same key always gets the same answer.
    Sticky,
}

/// A header or cookie rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchRule {
    /// Header or cookie name.
    pub name: String,
    /// How the value is matched.
    #[serde(rename = "match")]
    pub matcher: ValueMatch,
    /// The backend a matching request goes to. Not allowed with `always-never`, which picks
    /// the route's canary (`always`) or stable (`never`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
}

/// How a header or cookie value is matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum ValueMatch {
    /// The value equals this string.
    Exact(String),
    /// The value starts with this string.
    Prefix(String),
    /// The value matches this regular expression (unanchored unless the pattern anchors it).
    Regex(String),
    /// ingress-nginx semantics: `always` → canary, `never` → stable, anything else → no match.
    AlwaysNever,
}

/// A host rule: requests for this host go to this backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostRule {
    /// Exact host name (case-insensitive, port ignored).
    pub host: String,
    /// Backend for that host.
    pub backend: String,
}

/// The gRPC codes that count as errors when a route does not list its own: UNKNOWN,
/// DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS.
pub const DEFAULT_GRPC_ERRORS: [u32; 6] = [2, 4, 12, 13, 14, 15];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_constructors_read_as_a_file_naming_only_their_fields_does() {
        let route: RouteSpec = crate::parse::parse_json(
            br#"{"name": "r", "stable": "a", "canary": "b", "weight": 7}"#,
        )
        .unwrap();
        assert_eq!(route, RouteSpec::new("r", "a").with_canary("b", 7));
        let backend: BackendSpec = crate::parse::parse_json(
            br#"{"name": "b", "revision": "h", "endpoints": ["127.0.0.1:1"]}"#,
        )
        .unwrap();
        assert_eq!(
            backend,
            BackendSpec::new("b", vec!["127.0.0.1:1".into()]).of_revision("h")
        );
    }
}
