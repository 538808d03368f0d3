//! The permissions the controller needs on a cluster, and no more: what its watches read
//! (list and watch), what it writes (ReplicaSets, Services' selectors, Rollouts' status,
//! AnalysisRuns, Events, the role labels of pods — and its own leader label), and, in its own
//! namespace only, its state and routes (ConfigMaps) and its Lease.
//! `manifests/install/rbac.yaml` grants exactly these (a test reads it), and the runtime's
//! tests check that every call it makes is one of them.

/// One rule: an API group, a resource (with its subresource), the verbs.
pub type Rule = (&'static str, &'static str, &'static [&'static str]);

/// What it needs in every namespace it runs rollouts of (a ClusterRole).
pub const CLUSTER: &[Rule] = &[
    ("sluice.dev", "rollouts", &["list", "watch"]),
    ("sluice.dev", "rollouts/status", &["patch"]),
    ("sluice.dev", "analysistemplates", &["list", "watch"]),
    ("sluice.dev", "clusteranalysistemplates", &["list", "watch"]),
    ("sluice.dev", "analysisruns", &["create"]),
    ("sluice.dev", "analysisruns/status", &["patch"]),
    (
        "apps",
        "replicasets",
        &["list", "watch", "create", "patch", "delete"],
    ),
    ("", "pods", &["list", "watch", "patch", "delete"]),
    ("apps", "deployments", &["list", "watch", "patch"]),
    ("batch", "jobs", &["get", "create", "delete"]),
    ("", "secrets", &["get"]),
    ("", "services", &["list", "watch", "patch"]),
    ("", "events", &["create"]),
];

/// What it needs in its own namespace (a Role).
pub const HOME: &[Rule] = &[
    ("", "configmaps", &["get", "create", "update"]),
    (
        "coordination.k8s.io",
        "leases",
        &["get", "create", "update"],
    ),
];

/// The group, resource (with subresource), verb and namespace of an API call.
pub fn request_of(
    method: &str,
    path: &str,
    query: &str,
) -> Option<(String, String, String, String)> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", _v, rest @ ..] => (String::new(), rest),
        ["apis", g, _v, rest @ ..] => ((*g).to_owned(), rest),
        _ => return None,
    };
    let (ns, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => ((*ns).to_owned(), rest),
        _ => (String::new(), rest),
    };
    let (resource, named) = match rest {
        [r] => ((*r).to_owned(), false),
        [r, _name] => ((*r).to_owned(), true),
        [r, _name, sub] => (format!("{r}/{sub}"), true),
        _ => return None,
    };
    let verb = match (method, named) {
        ("GET", true) => "get",
        ("GET", false) if query.contains("watch=true") => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", _) => "delete",
        _ => return None,
    };
    Some((group, resource, verb.to_owned(), ns))
}

/// Whether a call in namespace `ns` is granted (`home`: the controller's own namespace).
pub fn allows(group: &str, resource: &str, verb: &str, ns: &str, home: &str) -> bool {
    let grants = |rules: &[Rule]| {
        rules
            .iter()
            .any(|(g, r, verbs)| *g == group && *r == resource && verbs.contains(&verb))
    };
    grants(CLUSTER) || (ns == home && grants(HOME))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::*;

    type Granted = BTreeSet<(String, String, String)>;

    fn granted(rules: &[Rule]) -> Granted {
        rules
            .iter()
            .flat_map(|(g, r, verbs)| {
                verbs
                    .iter()
                    .map(|v| ((*g).to_owned(), (*r).to_owned(), (*v).to_owned()))
            })
            .collect()
    }

    fn of_manifest(rule_set: &Value) -> Granted {
        let mut out = Granted::new();
        for rule in rule_set["rules"].as_array().unwrap() {
            for g in rule["apiGroups"].as_array().unwrap() {
                for r in rule["resources"].as_array().unwrap() {
                    for v in rule["verbs"].as_array().unwrap() {
                        out.insert((
                            g.as_str().unwrap().to_owned(),
                            r.as_str().unwrap().to_owned(),
                            v.as_str().unwrap().to_owned(),
                        ));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn the_install_grants_exactly_what_the_controller_uses() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../manifests/install/rbac.yaml"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
        let of_kind = |kind: &str| {
            docs.iter()
                .find(|d| d["kind"] == kind)
                .unwrap_or_else(|| panic!("no {kind} in rbac.yaml"))
        };
        assert_eq!(of_manifest(of_kind("ClusterRole")), granted(CLUSTER));
        assert_eq!(of_manifest(of_kind("Role")), granted(HOME));
        assert_eq!(
            of_kind("RoleBinding")["roleRef"]["name"],
            of_kind("Role")["metadata"]["name"]
        );
        assert_eq!(
            of_kind("ClusterRoleBinding")["roleRef"]["name"],
            of_kind("ClusterRole")["metadata"]["name"]
        );
    }

    #[test]
    fn calls_are_read_as_the_api_server_authorizes_them() {
        let r = |m, p, q| request_of(m, p, q).unwrap();
        assert_eq!(
            r(
                "PATCH",
                "/apis/sluice.dev/v1alpha1/namespaces/shop/rollouts/chip/status",
                ""
            ),
            (
                "sluice.dev".into(),
                "rollouts/status".into(),
                "patch".into(),
                "shop".into()
            )
        );
        assert_eq!(
            r(
                "GET",
                "/apis/apps/v1/replicasets",
                "labelSelector=x&watch=true"
            ),
            (
                "apps".into(),
                "replicasets".into(),
                "watch".into(),
                String::new()
            )
        );
        assert_eq!(
            r("POST", "/api/v1/namespaces/shop/events", ""),
            (
                String::new(),
                "events".into(),
                "create".into(),
                "shop".into()
            )
        );
        assert!(allows("", "configmaps", "update", "sluice", "sluice"));
        assert!(
            !allows("", "configmaps", "update", "shop", "sluice"),
            "home only"
        );
        assert!(!allows("sluice.dev", "rollouts", "get", "shop", "sluice"));
    }
}
