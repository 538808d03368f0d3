//! Wire types of the control API between proxies and the controller: the snapshot a proxy
//! polls for, the report it sends, and its goodbye.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::counters::Totals;
use crate::table::TableSpec;

/// `GET /v1/routes?proxy=ID&after=G`: the whole table, as soon as its generation passes G.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Generation of the table: the highest generation of its routes.
    pub generation: u64,
    /// The table; every route carries its own generation.
    pub table: TableSpec,
}

/// Counters of one (route, revision) pair in a report: cumulative since the proxy started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
pub struct Unsubscribe {
    /// Proxy id.
    pub proxy: String,
    /// Instance id.
    pub instance: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_json;

    #[test]
    fn reports_with_unknown_fields_are_refused_with_the_path() {
        let ok = r#"{"proxy": "p", "instance": "i", "table_generation": 1, "applied": {},
            "stats": [{"route": "r", "revision": "h", "in_flight": 0,
                "totals": {"by_class": [0,0,0,0,0], "errors": [0,0,0,0,0], "buckets": []}}]}"#;
        assert!(parse_json::<Report>(ok.as_bytes()).is_ok());
        let top = ok.replacen(r#""proxy": "p""#, r#""proxy": "p", "role": "admin""#, 1);
        let e = parse_json::<Report>(top.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `role`"), "{e}");
        let deep = ok.replacen(r#""buckets": []"#, r#""buckets": [], "extra": 1"#, 1);
        let e = parse_json::<Report>(deep.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("stats[0].totals"), "{e}");
    }
}
