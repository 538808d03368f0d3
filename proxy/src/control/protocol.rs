//! Wire types of the control API between proxies and the controller. Defined here because the
//! controller depends on the proxy crate, never the reverse.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::spec::TableSpec;
use crate::stats::Totals;

/// `GET /v1/routes?proxy=ID&after=G`: the whole table, as soon as its generation passes G.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Generation of the table: the highest generation of its routes.
    pub generation: u64,
    /// The table; every route carries its own generation.
    pub table: TableSpec,
}

/// Counters of one (route, revision) pair in a report: cumulative since the proxy started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairReport {
    /// Route name.
    pub route: String,
    /// Revision (the backend's `revision`).
    pub revision: String,
    /// Responses by class, errors by kind, latency buckets.
    pub totals: Totals,
    /// Requests in flight right now.
    pub in_flight: u64,
}

/// `POST /v1/report`: sent every second and right after each apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The proxy's stable id (`--proxy-id`).
    pub proxy: String,
    /// This process's random id: a new one means counters started again from zero.
    pub instance: String,
    /// Generation of the table applied.
    pub table_generation: u64,
    /// Generation applied per route.
    pub applied: BTreeMap<String, u64>,
    /// Cumulative counters per (route, revision).
    pub stats: Vec<PairReport>,
}

/// `POST /v1/unsubscribe`: a proxy leaving on purpose (SIGTERM).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unsubscribe {
    /// Proxy id.
    pub proxy: String,
    /// Instance id.
    pub instance: String,
}
