//! The proxy's config file, and parsing of YAML and JSON documents with errors that name the
//! field path (`routes[0].weight: invalid type …`).
//!
//! Documents are read into a generic tree first and then into the typed structs through
//! `serde_path_to_error`, so every error says where it is. Unknown fields are refused.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, FieldError, Result};
use crate::upstream::UpstreamSettings;
use sluice_api::table::{BackendSpec, RouteSpec, TableSpec};

/// The whole config file of `sluice-proxy --config FILE`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Address of the traffic listener.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The admin API.
    #[serde(default)]
    pub admin: AdminConfig,
    /// Upstream timeouts and pools.
    #[serde(default)]
    pub upstream: UpstreamConfig,
    /// How long in-flight requests may finish after SIGTERM.
    #[serde(default = "default_drain", with = "duration")]
    pub drain_timeout: Duration,
    /// Limits and headers on the client side.
    #[serde(default)]
    pub downstream: DownstreamConfig,
    /// TLS termination on a second listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<crate::downstream::tls::TlsConfig>,
    /// Log one line per request (target `access`).
    #[serde(default)]
    pub access_log: bool,
    /// Backends of the route table.
    #[serde(default)]
    pub backends: Vec<BackendSpec>,
    /// Routes of the route table.
    #[serde(default)]
    pub routes: Vec<RouteSpec>,
}

/// The admin API's listener and token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of the admin listener; loopback by default.
    #[serde(default = "default_admin_listen")]
    pub listen: String,
    /// A file holding the bearer token that writes must present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// An environment variable holding the bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// Admin connections open at most (64): one more evicts the one idle the longest.
    #[serde(default = "default_admin_connections")]
    pub max_connections: usize,
    /// An admin connection that sends no request head for this long is closed (10s).
    #[serde(default = "d10s", with = "duration")]
    pub idle_timeout: Duration,
    /// The largest body an admin write may carry (1 MiB).
    #[serde(default = "default_admin_body")]
    pub max_body_bytes: usize,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: default_admin_listen(),
            token_file: None,
            token_env: None,
            max_connections: default_admin_connections(),
            idle_timeout: d10s(),
            max_body_bytes: default_admin_body(),
        }
    }
}

fn default_admin_connections() -> usize {
    sluice_io::listener::ApiLimits::default().max_connections
}

fn default_admin_body() -> usize {
    sluice_io::listener::ApiLimits::default().max_body_bytes
}

impl AdminConfig {
    /// The admin listener's limits.
    pub fn limits(&self) -> sluice_io::listener::ApiLimits {
        sluice_io::listener::ApiLimits {
            max_connections: self.max_connections,
            idle_timeout: self.idle_timeout,
            max_body_bytes: self.max_body_bytes,
            ..Default::default()
        }
    }
}

/// Upstream settings as written in the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Time allowed to connect (502 after).
    #[serde(default = "d5s", with = "duration")]
    pub connect_timeout: Duration,
    /// Time allowed to the response head (504 after).
    #[serde(default = "d60s", with = "duration")]
    pub request_timeout: Duration,
    /// How long an idle upstream connection is kept.
    #[serde(default = "d90s", with = "duration")]
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per endpoint.
    #[serde(default = "default_pool")]
    pub pool_max_idle_per_endpoint: usize,
    /// Consecutive failures (connect errors, timeouts, resets, 502/503/504) that eject an
    /// endpoint; 0 never ejects.
    #[serde(default = "default_eject_after")]
    pub eject_after_failures: u32,
    /// First ejection time; doubles on each repeat.
    #[serde(default = "d10s", with = "duration")]
    pub ejection_time: Duration,
    /// Longest ejection.
    #[serde(default = "d300s", with = "duration")]
    pub max_ejection_time: Duration,
}

/// What happens to a new connection when `max_connections` are open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnMaxConnections {
    /// Close the connection idle the longest and serve the new one; wait if none is idle.
    #[default]
    EvictIdle,
    /// Stop accepting until one closes.
    Wait,
    /// Close the new connection at once.
    Refuse,
}

/// How new client connections are spread over the worker threads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionBalance {
    /// The worker that accepts a connection hands it to the worker serving the fewest, so
    /// that the workers' counts stay within one of each other.
    #[default]
    Exact,
    /// Each connection stays on the worker whose socket the kernel chose (by a hash).
    Kernel,
}

/// Which server reads HTTP/1.1 requests from clients.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Http1Server {
    /// sluice's own, for the requests it serves on one parse of their head (no body or a
    /// `Content-Length` one); hyper takes the connection from any other request on.
    #[default]
    Sluice,
    /// hyper's, for every request.
    Hyper,
}

/// How `X-Forwarded-For` and `Forwarded` are set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardedMode {
    /// Append the client's address when it is a trusted proxy; replace otherwise.
    #[default]
    Append,
    /// Always replace with the client's address.
    Replace,
}

/// Client-side limits and forwarding headers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DownstreamConfig {
    /// A client must send a whole request head within this (also the idle keep-alive time).
    #[serde(default = "d30s", with = "duration")]
    pub header_read_timeout: Duration,
    /// Largest request head, in bytes (at least 8192).
    #[serde(default = "default_header_bytes")]
    pub max_header_bytes: usize,
    /// Most request headers.
    #[serde(default = "default_headers")]
    pub max_headers: usize,
    /// Most open client connections.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// What happens beyond `max_connections`.
    #[serde(default)]
    pub on_max_connections: OnMaxConnections,
    /// `append` (default) or `replace`.
    #[serde(default)]
    pub forwarded: ForwardedMode,
    /// Proxies in front of this one (`10.0.0.0/8`, `127.0.0.1`) whose forwarding headers are
    /// kept and appended to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<String>,
    /// Threads serving clients, each with its own event loop, listening socket
    /// (`SO_REUSEPORT`) and upstream connections; 0 (the default) means one per core.
    #[serde(default)]
    pub workers: usize,
    /// `exact` (default): new connections go to the worker serving the fewest; `kernel`:
    /// they stay where the kernel's hash put them.
    #[serde(default)]
    pub connection_balance: ConnectionBalance,
    /// `sluice` (default): HTTP/1.1 requests are read by sluice's own server, and a
    /// connection goes on under hyper from a request that server leaves to it; `hyper`:
    /// hyper reads them all.
    #[serde(default)]
    pub http1_server: Http1Server,
}

impl Default for DownstreamConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: d30s(),
            max_header_bytes: default_header_bytes(),
            max_headers: default_headers(),
            max_connections: default_max_connections(),
            on_max_connections: OnMaxConnections::default(),
            forwarded: ForwardedMode::default(),
            trusted_proxies: Vec::new(),
            workers: 0,
            connection_balance: ConnectionBalance::default(),
            http1_server: Http1Server::default(),
        }
    }
}

/// The most worker threads accepted.
pub const MAX_WORKERS: usize = 256;

impl DownstreamConfig {
    /// The worker threads to start: `workers`, or one per core when it is 0.
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
        .min(MAX_WORKERS)
    }
}

fn default_eject_after() -> u32 {
    5
}
fn d10s() -> Duration {
    Duration::from_secs(10)
}
fn d30s() -> Duration {
    Duration::from_secs(30)
}
fn d300s() -> Duration {
    Duration::from_secs(300)
}
fn default_header_bytes() -> usize {
    32 * 1024
}
fn default_headers() -> usize {
    100
}
fn default_max_connections() -> usize {
    10_000
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        let d = UpstreamSettings::default();
        Self {
            connect_timeout: d.connect_timeout,
            request_timeout: d.request_timeout,
            pool_idle_timeout: d.pool_idle_timeout,
            pool_max_idle_per_endpoint: d.pool_max_idle_per_endpoint,
            eject_after_failures: d.ejection.after_failures,
            ejection_time: d.ejection.base,
            max_ejection_time: d.ejection.max,
        }
    }
}

impl From<&UpstreamConfig> for UpstreamSettings {
    fn from(c: &UpstreamConfig) -> Self {
        Self {
            connect_timeout: c.connect_timeout,
            request_timeout: c.request_timeout,
            pool_idle_timeout: c.pool_idle_timeout,
            pool_max_idle_per_endpoint: c.pool_max_idle_per_endpoint,
            ejection: crate::upstream::health::EjectionPolicy {
                after_failures: c.eject_after_failures,
                base: c.ejection_time,
                max: c.max_ejection_time.max(c.ejection_time),
            },
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".to_owned()
}
fn default_admin_listen() -> String {
    "127.0.0.1:9901".to_owned()
}
fn default_drain() -> Duration {
    Duration::from_secs(30)
}
fn d5s() -> Duration {
    Duration::from_secs(5)
}
fn d60s() -> Duration {
    Duration::from_secs(60)
}
fn d90s() -> Duration {
    Duration::from_secs(90)
}
fn default_pool() -> usize {
    256
}

impl ProxyConfig {
    /// Reads and checks a config file (the route table is checked when it is built).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        let cfg: Self = parse_yaml(&text)?;
        cfg.check()?;
        Ok(cfg)
    }

    /// Checks the listener addresses and timeouts.
    pub fn check(&self) -> Result<()> {
        let mut errors = Vec::new();
        for (field, addr) in [
            ("listen", &self.listen),
            ("admin.listen", &self.admin.listen),
        ] {
            if addr.parse::<SocketAddr>().is_err() {
                errors.push(FieldError::new(
                    field,
                    format!("{addr:?} is not an IP:port address"),
                ));
            }
        }
        if self.upstream.connect_timeout.is_zero() {
            errors.push(FieldError::new(
                "upstream.connect_timeout",
                "must be above 0",
            ));
        }
        if let Some(t) = &self.tls
            && t.listen.parse::<SocketAddr>().is_err()
        {
            errors.push(FieldError::new(
                "tls.listen",
                format!("{:?} is not an IP:port address", t.listen),
            ));
        }
        if self.downstream.header_read_timeout.is_zero() {
            errors.push(FieldError::new(
                "downstream.header_read_timeout",
                "must be above 0",
            ));
        }
        if self.downstream.max_header_bytes < 8192 {
            errors.push(FieldError::new(
                "downstream.max_header_bytes",
                "must be at least 8192",
            ));
        }
        if self.downstream.max_headers == 0 {
            errors.push(FieldError::new("downstream.max_headers", "must be above 0"));
        }
        if self.downstream.workers > MAX_WORKERS {
            errors.push(FieldError::new(
                "downstream.workers",
                format!("must be at most {MAX_WORKERS} (0 means one per core)"),
            ));
        }
        if self.downstream.max_connections == 0 {
            errors.push(FieldError::new(
                "downstream.max_connections",
                "must be above 0",
            ));
        }
        for (i, t) in self.downstream.trusted_proxies.iter().enumerate() {
            if crate::downstream::headers::Cidr::parse(t).is_none() {
                errors.push(FieldError::new(
                    format!("downstream.trusted_proxies[{i}]"),
                    format!("{t:?} is not an address or CIDR"),
                ));
            }
        }
        if self.upstream.request_timeout.is_zero() {
            errors.push(FieldError::new(
                "upstream.request_timeout",
                "must be above 0",
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(errors))
        }
    }

    /// The route table part of the file.
    pub fn table(&self) -> TableSpec {
        TableSpec {
            backends: self.backends.clone(),
            routes: self.routes.clone(),
        }
    }

    /// The admin token, from the file or the environment variable, if one is configured.
    pub fn admin_token(&self) -> Result<Option<String>> {
        use sluice_io::token::{Source, TokenError, read};
        let source = Source::configured(
            self.admin.token_file.as_deref(),
            self.admin.token_env.as_deref(),
        );
        let field = match source {
            Some(Source::File(_)) => "admin.token_file",
            _ => "admin.token_env",
        };
        read(source).map_err(|e| match e {
            TokenError::Read { path, source } => Error::Read { path, source },
            e => Error::invalid(field, e.to_string()),
        })
    }
}

pub use sluice_api::parse::{duration, from_tree, parse_json, parse_yaml};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_names_its_path() {
        let e = parse_yaml::<ProxyConfig>("routes:\n  - name: a\n    stable: v1\n    wieght: 3\n")
            .unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("routes[0]"), "{msg}");
        assert!(msg.contains("wieght"), "{msg}");
    }

    #[test]
    fn wrong_type_names_its_path() {
        let e =
            parse_yaml::<ProxyConfig>("routes:\n  - name: a\n    stable: v1\n    weight: lots\n")
                .unwrap_err();
        assert!(e.to_string().starts_with("routes[0].weight:"), "{e}");
    }

    #[test]
    fn durations_parse_and_bad_ones_are_named() {
        let c: ProxyConfig = parse_yaml("upstream:\n  connect_timeout: 250ms\n").unwrap();
        assert_eq!(c.upstream.connect_timeout, Duration::from_millis(250));
        let e = parse_yaml::<ProxyConfig>("drain_timeout: soon\n").unwrap_err();
        assert!(e.to_string().starts_with("drain_timeout:"), "{e}");
    }

    #[test]
    fn bad_listen_address_is_refused() {
        let c: ProxyConfig = parse_yaml("listen: localhost\n").unwrap();
        let e = c.check().unwrap_err();
        assert!(e.to_string().starts_with("listen:"), "{e}");
    }

    #[test]
    fn broken_yaml_is_an_error_not_a_panic() {
        assert!(parse_yaml::<ProxyConfig>("routes: [").is_err());
        assert!(parse_json::<TableSpec>(b"{").is_err());
    }
}
