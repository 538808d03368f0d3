//! Exhaustive tests of the routing decision, on tables built from YAML.

use super::*;
use crate::config::parse_yaml;
use crate::route::split::STICKY_BUCKETS;
use crate::route::table::{BuildContext, Plain};
use crate::telemetry::metrics::TelemetryRegistry;
use sluice_api::table::TableSpec;

type Table = RouteTable<Plain>;

fn table(yaml: &str) -> Table {
    let spec: TableSpec = parse_yaml(yaml).unwrap();
    RouteTable::build(
        spec,
        &BuildContext {
            previous: None,
            telemetry: &TelemetryRegistry::default(),
        },
    )
    .unwrap()
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    h
}

const BACKENDS: &str = r#"
backends:
  - {name: v1, endpoints: ["127.0.0.1:9001"]}
  - {name: v2, endpoints: ["127.0.0.1:9002"]}
  - {name: v3, endpoints: ["127.0.0.1:9003"]}
"#;

fn rules_table(weight: u32) -> Table {
    table(&format!(
        r#"{BACKENDS}
routes:
  - name: app
    hosts: [app.example.com, preview.example.com, beta.example.com]
    stable: v1
    canary: v2
    weight: {weight}
    header_rules:
      - {{name: x-canary, match: always-never}}
      - {{name: x-version, match: {{exact: "3"}}, backend: v3}}
      - {{name: x-group, match: {{prefix: beta-}}, backend: v2}}
      - {{name: x-user, match: {{regex: "^[0-9]+-internal$"}}, backend: v3}}
    cookie_rules:
      - {{name: canary, match: always-never}}
      - {{name: tier, match: {{exact: gold}}, backend: v3}}
    host_rules:
      - {{host: preview.example.com, backend: v2}}
      - {{host: beta.example.com, backend: v3}}
"#
    ))
}

fn name_of(route: &Route<Plain>, d: Decision) -> &str {
    &route.targets[d.target].backend.name
}

#[test]
fn precedence_table() {
    // (host, headers, weight, expected backend, expected reason)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], u32, &'a str, Reason);
    let cases: &[Case] = &[
        ("app.example.com", &[], 0, "v1", Reason::Weight),
        ("app.example.com", &[], 100, "v2", Reason::Weight),
        (
            "app.example.com",
            &[("x-canary", "always")],
            0,
            "v2",
            Reason::Header,
        ),
        (
            "app.example.com",
            &[("x-canary", "never")],
            100,
            "v1",
            Reason::Header,
        ),
        // any other value of an always-never header falls through
        (
            "app.example.com",
            &[("x-canary", "sometimes")],
            0,
            "v1",
            Reason::Weight,
        ),
        (
            "app.example.com",
            &[("x-version", "3")],
            0,
            "v3",
            Reason::Header,
        ),
        (
            "app.example.com",
            &[("x-version", "33")],
            0,
            "v1",
            Reason::Weight,
        ),
        (
            "app.example.com",
            &[("x-group", "beta-testers")],
            0,
            "v2",
            Reason::Header,
        ),
        (
            "app.example.com",
            &[("x-group", "alpha-beta-")],
            0,
            "v1",
            Reason::Weight,
        ),
        (
            "app.example.com",
            &[("x-user", "42-internal")],
            0,
            "v3",
            Reason::Header,
        ),
        (
            "app.example.com",
            &[("x-user", "x42-internal")],
            0,
            "v1",
            Reason::Weight,
        ),
        // the first header rule wins over later ones
        (
            "app.example.com",
            &[("x-version", "3"), ("x-canary", "never")],
            0,
            "v1",
            Reason::Header,
        ),
        (
            "app.example.com",
            &[("x-group", "beta-1"), ("x-version", "3")],
            0,
            "v3",
            Reason::Header,
        ),
        // headers beat cookies, cookies beat hosts, hosts beat weight
        (
            "app.example.com",
            &[("x-canary", "never"), ("cookie", "canary=always")],
            0,
            "v1",
            Reason::Header,
        ),
        (
            "app.example.com",
            &[("cookie", "canary=always")],
            0,
            "v2",
            Reason::Cookie,
        ),
        (
            "app.example.com",
            &[("cookie", "a=b; canary=never")],
            100,
            "v1",
            Reason::Cookie,
        ),
        (
            "app.example.com",
            &[("cookie", "tier=gold")],
            0,
            "v3",
            Reason::Cookie,
        ),
        (
            "app.example.com",
            &[("cookie", "tier=silver")],
            0,
            "v1",
            Reason::Weight,
        ),
        (
            "preview.example.com",
            &[("cookie", "canary=never")],
            0,
            "v1",
            Reason::Cookie,
        ),
        ("preview.example.com", &[], 0, "v2", Reason::Host),
        ("PREVIEW.example.com", &[], 0, "v2", Reason::Host),
        ("beta.example.com", &[], 100, "v3", Reason::Host),
        (
            "beta.example.com",
            &[("x-canary", "always")],
            0,
            "v2",
            Reason::Header,
        ),
        // a header value that is not UTF-8 text never matches a regex
        (
            "app.example.com",
            &[("cookie", "canary=maybe")],
            0,
            "v1",
            Reason::Weight,
        ),
    ];
    for (i, (host, hs, weight, want, reason)) in cases.iter().enumerate() {
        let t = rules_table(*weight);
        let route = select(&t, Some(host), "/").unwrap();
        let d = decide(route, Some(host), &headers(hs));
        assert_eq!(
            (name_of(route, d), d.reason),
            (*want, *reason),
            "case {i}: {host} {hs:?} weight {weight}"
        );
    }
}

#[test]
fn rule_decisions_consume_no_counter_value() {
    let t = rules_table(50);
    let route = select(&t, Some("app.example.com"), "/").unwrap();
    for _ in 0..7 {
        decide(route, None, &headers(&[("x-canary", "always")]));
    }
    assert_eq!(route.counter.load(Relaxed), 0);
    decide(route, None, &headers(&[]));
    assert_eq!(route.counter.load(Relaxed), 1);
}

#[test]
fn routes_by_host_then_longest_prefix() {
    let t = table(&format!(
        r#"{BACKENDS}
routes:
  - {{name: any-root, stable: v1}}
  - {{name: any-api, path_prefix: /api, stable: v2}}
  - {{name: host-root, hosts: [shop.example.com], stable: v3}}
  - {{name: wildcard-api, hosts: ["*.example.com"], path_prefix: /api/v2, stable: v3}}
"#
    ));
    let pick = |host: Option<&str>, path| select(&t, host, path).map(|r| r.name.as_str());
    assert_eq!(pick(None, "/"), Some("any-root"));
    assert_eq!(pick(None, "/api/x"), Some("any-api"));
    assert_eq!(pick(Some("shop.example.com"), "/api/x"), Some("host-root"));
    assert_eq!(
        pick(Some("a.example.com"), "/api/v2/x"),
        Some("wildcard-api")
    );
    assert_eq!(pick(Some("a.example.com"), "/api/v1"), Some("any-api"));
    // the wildcard needs a label before the suffix
    assert_eq!(pick(Some("example.com"), "/api/v2"), Some("any-api"));
    assert_eq!(pick(Some("other.org"), "/"), Some("any-root"));

    // the same table grown past the walk: looked up in the index, the same answers
    let mut routes = String::new();
    for i in 0..20 {
        routes.push_str(&format!(
            "  - {{name: pad-{i}, hosts: [pad{i}.test], path_prefix: /pad/{i}, stable: v1}}\n"
        ));
    }
    let big = table(&format!(
        r#"{BACKENDS}
routes:
  - {{name: any-root, stable: v1}}
  - {{name: any-api, path_prefix: /api, stable: v2}}
  - {{name: host-root, hosts: [shop.example.com], stable: v3}}
  - {{name: wildcard-api, hosts: ["*.example.com"], path_prefix: /api/v2, stable: v3}}
{routes}"#
    ));
    assert!(big.routes.len() > WALK_MAX);
    for (host, path) in [
        (None, "/"),
        (None, "/api/x"),
        (Some("shop.example.com"), "/api/x"),
        (Some("a.example.com"), "/api/v2/x"),
        (Some("a.example.com"), "/api/v1"),
        (Some("example.com"), "/api/v2"),
        (Some("other.org"), "/"),
        (Some("PAD7.test"), "/pad/7/x"),
        (Some("pad7.test"), "/pad/8"),
    ] {
        let small = pick(host, path);
        let found = select(&big, host, path).map(|r| r.name.as_str());
        if host.is_some_and(|h| h.eq_ignore_ascii_case("pad7.test")) {
            assert_eq!(
                found,
                if path == "/pad/7/x" {
                    Some("pad-7")
                } else {
                    Some("any-root")
                }
            );
        } else {
            assert_eq!(found, small, "{host:?} {path}");
        }
    }
    assert_eq!(big.route("pad-13").map(|r| r.name.as_str()), Some("pad-13"));
    assert!(big.route("pad-20").is_none());

    let only_host = table(&format!(
        "{BACKENDS}\nroutes:\n  - {{name: h, hosts: [a.test], stable: v1}}\n"
    ));
    assert!(select(&only_host, Some("b.test"), "/").is_none());
    assert!(select(&only_host, None, "/").is_none());
}

#[test]
fn host_comes_from_the_uri_or_the_host_header_without_port() {
    let h = headers(&[("host", "Example.com:8080")]);
    let uri: http::Uri = "/x".parse().unwrap();
    assert_eq!(
        request_host(&uri, &h),
        Some("Example.com:8080").map(|_| "Example.com")
    );
    let uri: http::Uri = "http://a.test:1/x".parse().unwrap();
    assert_eq!(request_host(&uri, &h), Some("a.test"));
    let h6 = headers(&[("host", "[::1]:80")]);
    assert_eq!(request_host(&"/".parse().unwrap(), &h6), Some("::1"));
    assert_eq!(request_host(&"/".parse().unwrap(), &HeaderMap::new()), None);
}

#[test]
fn exact_split_any_t_consecutive_decisions_hold_w_canaries() {
    for total in [1u32, 3, 7, 100, 10_000] {
        for weight in [0, 1, total / 3, total / 2, total.saturating_sub(1), total] {
            let canaries = |from: u64| {
                (from..from + u64::from(total))
                    .filter(|k| exact_is_canary(*k, weight, total))
                    .count() as u32
            };
            for from in [
                0u64,
                1,
                17,
                u64::from(total) * 5 + 3,
                u64::MAX - u64::from(total) - 1,
            ] {
                assert_eq!(canaries(from), weight, "w={weight} T={total} from {from}");
            }
            // any prefix is within ±1 of N·w/T
            let mut seen = 0u64;
            for n in 1..=u64::from(total).min(500) {
                if exact_is_canary(n - 1, weight, total) {
                    seen += 1;
                }
                let ideal = n as f64 * f64::from(weight) / f64::from(total);
                assert!((seen as f64 - ideal).abs() <= 1.0);
            }
        }
    }
    assert!(!exact_is_canary(5, 3, 0));
}

#[test]
fn sticky_hash_is_pinned() {
    // Golden values: changing the hash would move users between versions on upgrade.
    let salt = crate::route::split::sticky_salt("shop", "rev-2");
    assert_eq!(salt, b"shop\0rev-2\0");
    assert_eq!(sticky_bucket(&salt, b"user-1"), GOLDEN_USER_1);
    assert_eq!(sticky_bucket(&salt, b"user-2"), GOLDEN_USER_2);
    assert_eq!(sticky_bucket(b"", b""), GOLDEN_EMPTY);
    assert_eq!(
        sticky_bucket(b"", b""),
        xxhash_rust::xxh3::xxh3_64_with_seed(b"", 0) % 10_000
    );
}

const GOLDEN_USER_1: u64 = 6780;
const GOLDEN_USER_2: u64 = 4858;
/// xxh3-64 of the empty input with seed 0 is 0x2D06800538D394C2 (the reference test vector).
const GOLDEN_EMPTY: u64 = 0x2D06_8005_38D3_94C2 % 10_000;

#[test]
fn sticky_raising_the_weight_only_adds_keys() {
    for total in [100u32, 10_000] {
        for bucket in 0..STICKY_BUCKETS {
            let mut was = false;
            for w in 0..=total {
                let now = sticky_is_canary(bucket, w, total);
                assert!(
                    !was || now,
                    "bucket {bucket} left the canary at {w}/{total}"
                );
                was = now;
            }
            assert!(!sticky_is_canary(bucket, 0, total));
            assert!(sticky_is_canary(bucket, total, total));
        }
    }
}

#[test]
fn sticky_routes_use_the_key_and_fall_back_to_exact() {
    let t = table(&format!(
        r#"{BACKENDS}
routes:
  - name: s
    stable: v1
    canary: v2
    weight: 30
    split: {{mode: sticky, cookie: uid}}
"#
    ));
    let route = select(&t, None, "/").unwrap();
    let mut canary = 0;
    for i in 0..10_000 {
        let h = headers(&[("cookie", &format!("uid=user-{i}"))]);
        let d = decide(route, None, &h);
        assert_eq!(d.reason, Reason::Sticky);
        // the same key always gets the same answer
        assert_eq!(decide(route, None, &h), d);
        canary += usize::from(name_of(route, d) == "v2");
    }
    assert!((2850..=3150).contains(&canary), "{canary}");
    assert_eq!(route.counter.load(Relaxed), 0);
    let d = decide(route, None, &headers(&[]));
    assert_eq!(d.reason, Reason::Weight);
    assert_eq!(route.counter.load(Relaxed), 1);
}

#[test]
fn cookies_are_found_among_several() {
    let h = headers(&[("cookie", "a=1; b=\"two\""), ("cookie", "c=3")]);
    assert_eq!(cookie(&h, "b"), Some("two"));
    assert_eq!(cookie(&h, "c"), Some("3"));
    assert_eq!(cookie(&h, "d"), None);
    assert_eq!(cookie(&headers(&[("cookie", "junk; ;=x")]), "x"), None);
}

/// The rule order as the rules read: each rule in turn, each of its header's values in turn.
fn header_rule_by_lookup(route: &Route<Plain>, headers: &HeaderMap) -> Option<usize> {
    route.header_rules.iter().find_map(|rule| {
        let name = rule.header.as_ref()?;
        headers
            .get_all(name)
            .iter()
            .find_map(|v| rule_target(route, rule, v.as_bytes()))
    })
}

proptest::proptest! {
    /// The one-pass header rule search decides exactly as trying each rule in order does,
    /// whatever headers come, repeated or not, in any order.
    #[test]
    fn header_rules_decide_as_the_rule_order_says(
        pairs in proptest::collection::vec(
            (
                proptest::sample::select(vec![
                    "x-canary", "x-version", "x-group", "x-user", "accept", "x-other",
                ]),
                proptest::sample::select(vec![
                    "always", "never", "3", "beta-1", "beta", "42-internal", "x-internal", "",
                ]),
            ),
            0..8,
        )
    ) {
        let t = rules_table(10);
        let route = t.route("app").unwrap();
        let h = headers(&pairs);
        proptest::prop_assert_eq!(header_rule(route, &h), header_rule_by_lookup(route, &h));
    }
}

proptest::proptest! {
    /// Name keys are equal exactly when names of up to 16 bytes are equal.
    #[test]
    fn name_keys_tell_short_names_apart(
        a in "[a-z0-9-]{1,20}",
        b in "[a-z0-9-]{1,20}",
    ) {
        let (ka, kb) = (NameKey::of(a.as_bytes()), NameKey::of(b.as_bytes()));
        if a.len() <= 16 && b.len() <= 16 {
            proptest::prop_assert_eq!(ka == kb, a == b);
        } else if a == b {
            proptest::prop_assert_eq!(ka, kb);
        }
        proptest::prop_assert_eq!(NameKey::of(a.as_bytes()), ka);
    }
}

#[test]
fn name_keys_of_names_sharing_ends_differ_by_their_middle_only_past_16_bytes() {
    assert_ne!(
        NameKey::of(b"x-abcdefgh-12345"),
        NameKey::of(b"x-abcdefgX-12345")
    );
    // 17 bytes: the ninth byte is in neither end; the full compare tells them apart
    assert_eq!(
        NameKey::of(b"x-abcdefg-1234567"),
        NameKey::of(b"x-abcdefZ-1234567")
    );
}

#[test]
fn the_host_is_read_only_when_a_route_uses_it() {
    let any_host = table(&format!(
        "{BACKENDS}routes:\n  - {{name: app, stable: v1}}\n  - {{name: api, path_prefix: /api, stable: v2}}\n"
    ));
    assert!(!any_host.uses_host);
    let by_host = rules_table(0);
    assert!(by_host.uses_host);
    let uri: http::Uri = "/api/x".parse().unwrap();
    let (r, d) = route(&any_host, &uri, &headers(&[("host", "whatever.example")])).unwrap();
    assert_eq!((r.name.as_str(), name_of(r, d)), ("api", "v2"));
    let uri: http::Uri = "/".parse().unwrap();
    let h = headers(&[("host", "beta.example.com:8443")]);
    let (r, d) = route(&by_host, &uri, &h).unwrap();
    assert_eq!((r.name.as_str(), name_of(r, d)), ("app", "v3"));
    assert_eq!(d.reason, Reason::Host);
    assert!(route(&by_host, &uri, &headers(&[("host", "other.example")])).is_none());
}
