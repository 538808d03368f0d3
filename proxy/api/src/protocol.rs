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

/// `POST /v1/report`: sent every second and right after each apply. Once the controller has
/// taken a report of an instance, the next ones may carry only the pairs whose counters
/// changed (`changes_only`): a fleet at rest then sends next to nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// The proxy's stable id (`--proxy-id`).
    pub proxy: String,
    /// This process's random id: a new one means counters started again from zero.
    pub instance: String,
    /// Generation of the table applied.
    pub table_generation: u64,
    /// Generation applied per route. A `changes_only` report leaves it out when it is the
    /// same as in the instance's last report the controller took; every other report carries
    /// it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<BTreeMap<String, u64>>,
    /// Cumulative counters per (route, revision).
    pub stats: Vec<PairReport>,
    /// `stats` holds only the pairs whose counters or requests in flight changed since this
    /// instance's last report the controller took, over the same set of pairs; the others
    /// keep what that report said. A controller that has no earlier report of this instance
    /// answers 409, and the proxy sends every pair.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub changes_only: bool,
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
        // a report without `changes_only` carries every pair, and says so by leaving it out
        assert!(!parse_json::<Report>(ok.as_bytes()).unwrap().changes_only);
        let partial = ok.replacen('{', r#"{"changes_only": true, "#, 1);
        let r = parse_json::<Report>(partial.as_bytes()).unwrap();
        assert!(r.changes_only);
        assert!(
            serde_json::to_string(&r)
                .unwrap()
                .contains(r#""changes_only":true"#)
        );
        let full = Report {
            changes_only: false,
            ..r
        };
        assert!(
            !serde_json::to_string(&full)
                .unwrap()
                .contains("changes_only")
        );
    }
}
