//! The `LocalRuntime` document of a local config file: where the control API listens, where
//! state is kept, which proxies are required, how endpoints are health-checked, and — the heart
//! of it — which addresses run each image, so that a revision (a pod template) maps to the
//! addresses of its version.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sluice_api::FieldError;

use super::meta::ObjectMeta;

/// The document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalRuntime {
    /// `sluice.dev/v1alpha1`.
    pub api_version: String,
    /// `LocalRuntime`.
    pub kind: String,
    /// Name (informational).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Settings.
    pub spec: LocalRuntimeSpec,
}

/// Settings of the local runtime.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalRuntimeSpec {
    /// Control API listener (`127.0.0.1:9700` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// Directory for state (`.sluice` beside the config file by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<PathBuf>,
    /// File holding the bearer token for state-changing calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// Environment variable holding the bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// File of proxy tokens, one `SCOPE TOKEN` a line: a proxy holding one may poll and
    /// report only as an id its scope covers (`edge-1`, or a prefix like `edge-*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_tokens_file: Option<PathBuf>,
    /// Proxies always expected to acknowledge, even before they subscribe.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_proxies: Vec<String>,
    /// A proxy silent for this long leaves the expected set (10 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_seconds: Option<u32>,
    /// Image → addresses where that version runs.
    pub images: BTreeMap<String, Vec<String>>,
    /// How endpoints are checked.
    #[serde(default)]
    pub health_check: HealthCheck,
    /// Routes add `x-sluice-backend` and `x-sluice-generation` to responses.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub debug_headers: bool,
}

/// Endpoint health checks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheck {
    /// HTTP path to GET (a 2xx or 3xx is healthy); a TCP connect when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Milliseconds between checks (1000 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_millis: Option<u64>,
    /// Milliseconds a check may take (500 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_millis: Option<u64>,
}

/// Every problem in a LocalRuntime document.
pub fn validate(r: &LocalRuntime) -> Vec<FieldError> {
    let mut e = Vec::new();
    let s = &r.spec;
    if let Some(l) = &s.listen
        && l.parse::<std::net::SocketAddr>().is_err()
    {
        e.push(FieldError::new(
            "spec.listen",
            format!("{l:?} is not an IP:port address"),
        ));
    }
    if s.images.is_empty() {
        e.push(FieldError::new(
            "spec.images",
            "required: the addresses of at least one image",
        ));
    }
    for (image, addrs) in &s.images {
        if addrs.is_empty() {
            e.push(FieldError::new(
                format!("spec.images.{image}"),
                "must list at least one address",
            ));
        }
        for (i, a) in addrs.iter().enumerate() {
            let ok = a
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !ok {
                e.push(FieldError::new(
                    format!("spec.images.{image}[{i}]"),
                    format!("{a:?} is not host:port"),
                ));
            }
        }
    }
    if s.lease_seconds == Some(0) {
        e.push(FieldError::new("spec.leaseSeconds", "must be above 0"));
    }
    if s.health_check.interval_millis == Some(0) {
        e.push(FieldError::new(
            "spec.healthCheck.intervalMillis",
            "must be above 0",
        ));
    }
    if let Some(p) = &s.health_check.path
        && !p.starts_with('/')
    {
        e.push(FieldError::new(
            "spec.healthCheck.path",
            format!("{p:?} must start with '/'"),
        ));
    }
    e
}
