//! The route a rollout wants its proxies to have, in revision terms (hashes, not addresses):
//! the runtime fills in each revision's endpoints and numbers the generation.

use serde::{Deserialize, Serialize};

use crate::spec::rollout::{CanaryStep, HeaderMatch, RolloutSpec, RouteMatch, TrafficRouting};

/// Requests matching every header match go to the canary (Argo's `setHeaderRoute`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderRoute {
    /// Route name.
    pub name: String,
    /// Header matches, all of which must hold.
    pub matches: Vec<HeaderMatch>,
}

/// A share of matching requests is copied to the canary (Argo's `setMirrorRoute`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MirrorRoute {
    /// Route name.
    pub name: String,
    /// Share copied, percent.
    pub percentage: u32,
    /// Request matches (any).
    pub matches: Vec<RouteMatch>,
}

/// How the weighted split is keyed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Sticky {
    /// By a header's value.
    Header(String),
    /// By a cookie's value.
    Cookie(String),
}

/// The desired state of one proxy route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteIntent {
    /// Proxy route name (`<namespace>/<name>` by default).
    pub route: String,
    /// Hosts the route answers (any when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Path prefix.
    pub path_prefix: String,
    /// Revision taking the traffic not sent to the canary.
    pub stable: String,
    /// Revision taking `weight` of `total`, header routes and preview traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<String>,
    /// Canary weight.
    pub weight: u32,
    /// Total.
    pub total: u32,
    /// Header routes to the canary.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub header_routes: Vec<HeaderRoute>,
    /// Mirror routes to the canary.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirror_routes: Vec<MirrorRoute>,
    /// Hosts that reach the canary whatever the weight (blue/green preview).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preview_hosts: Vec<String>,
    /// Header whose `always` reaches the canary and `never` the stable revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_header: Option<String>,
    /// Sticky split key, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky: Option<Sticky>,
    /// The proxies' failover from the canary to stable, if on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<crate::spec::rollout::Failover>,
}

/// The default preview header.
pub use crate::spec::defaults::PREVIEW_HEADER as DEFAULT_PREVIEW_HEADER;

/// The traffic routing of a rollout's strategy, canary or blue/green.
pub fn routing_of(spec: &RolloutSpec) -> Option<&TrafficRouting> {
    let s = &spec.strategy;
    s.canary
        .as_ref()
        .and_then(|c| c.traffic_routing.as_ref())
        .or_else(|| {
            s.blue_green
                .as_ref()
                .and_then(|b| b.traffic_routing.as_ref())
        })
}

/// The proxy route a rollout drives: `trafficRouting.sluice.route`, else `namespace/name`.
pub fn route_name(namespace: &str, name: &str, spec: &RolloutSpec) -> String {
    name_on(namespace, name, routing_of(spec))
}

fn name_on(namespace: &str, name: &str, routing: Option<&TrafficRouting>) -> String {
    routing
        .and_then(|r| r.sluice.as_ref())
        .and_then(|s| s.route.clone())
        .unwrap_or_else(|| format!("{namespace}/{name}"))
}

/// The route's static shape from the spec: name, hosts, prefix, sticky key, total.
pub fn base(
    namespace: &str,
    name: &str,
    routing: Option<&TrafficRouting>,
    stable: &str,
) -> RouteIntent {
    let sluice = routing.and_then(|r| r.sluice.as_ref());
    RouteIntent {
        route: name_on(namespace, name, routing),
        hosts: sluice.map(|s| s.hosts.clone()).unwrap_or_default(),
        path_prefix: sluice
            .and_then(|s| s.path_prefix.clone())
            .unwrap_or_else(|| "/".to_owned()),
        stable: stable.to_owned(),
        canary: None,
        weight: 0,
        total: routing
            .and_then(|r| r.max_traffic_weight)
            .unwrap_or(crate::spec::defaults::MAX_TRAFFIC_WEIGHT),
        header_routes: Vec::new(),
        mirror_routes: Vec::new(),
        preview_hosts: Vec::new(),
        preview_header: None,
        sticky: sluice.and_then(|s| {
            s.sticky_header
                .clone()
                .map(Sticky::Header)
                .or_else(|| s.sticky_cookie.clone().map(Sticky::Cookie))
        }),
        failover: sluice.and_then(|s| s.failover.clone()),
    }
}

/// Header and mirror routes in force after the steps before `upto` ran: each
/// `setHeaderRoute` / `setMirrorRoute` replaces the route of its name; one with no match
/// removes it.
pub fn managed_routes(steps: &[CanaryStep], upto: usize) -> (Vec<HeaderRoute>, Vec<MirrorRoute>) {
    let mut headers: Vec<HeaderRoute> = Vec::new();
    let mut mirrors: Vec<MirrorRoute> = Vec::new();
    for step in steps.iter().take(upto) {
        if let Some(h) = &step.set_header_route {
            headers.retain(|x| x.name != h.name);
            if !h.matches.is_empty() {
                headers.push(HeaderRoute {
                    name: h.name.clone(),
                    matches: h.matches.clone(),
                });
            }
        }
        if let Some(m) = &step.set_mirror_route {
            mirrors.retain(|x| x.name != m.name);
            if !m.matches.is_empty() {
                mirrors.push(MirrorRoute {
                    name: m.name.clone(),
                    percentage: m
                        .percentage
                        .unwrap_or(crate::spec::defaults::MIRROR_PERCENTAGE),
                    matches: m.matches.clone(),
                });
            }
        }
    }
    (headers, mirrors)
}
