//! The `proxy` provider: the proxies' own counters, merged by the hub, over a window — an
//! error rate, a success rate, a latency quantile, a request rate — and the sequential
//! `canary-vs-stable` verdict over the steps of the proxies' reports.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::analysis::expr::Value;
use crate::analysis::run::ProviderOutcome;
use crate::analysis::sequential;
use crate::spec::defaults;
use crate::spec::template::{ProxyProvider, ProxyQuery, RevisionRole};
use crate::time::Time;

/// Requests, server errors (5xx) and the latency histogram counted over a span.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counted {
    /// Responses.
    pub requests: u64,
    /// Of which 5xx.
    pub errors: u64,
    /// Timed responses per latency bucket ([`sluice_api::counters::bucket_upper_seconds`]),
    /// the non-empty buckets only.
    pub latency: Vec<(usize, u64)>,
}

impl Counted {
    /// The counts of a span of the proxies' counters.
    pub fn of(t: &sluice_api::Totals) -> Self {
        Self {
            requests: t.requests(),
            errors: t.server_errors(),
            latency: t
                .buckets
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(i, n)| (i, *n))
                .collect(),
        }
    }

    /// Timed responses, and those surely slower than `seconds` (their bucket lies wholly
    /// above it).
    pub fn slower_than(&self, seconds: f64) -> (u64, u64) {
        let timed = self.latency.iter().map(|(_, n)| n).sum();
        let slow = self
            .latency
            .iter()
            .filter(|(i, _)| *i > 0 && sluice_api::counters::bucket_upper_seconds(i - 1) >= seconds)
            .map(|(_, n)| n)
            .sum();
        (timed, slow)
    }
}

/// What one proxy counted for each revision of a route between two of its reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// When the second report was merged.
    pub at: Time,
    /// Per revision.
    pub counts: BTreeMap<String, Counted>,
}

/// The proxies' counters of a (route, revision) over the last `window` before `now`, merged
/// across proxies, with the span they cover (what the `proxy` provider reads).
pub trait CounterWindow: Send + Sync {
    /// Counters over the window and the span covered.
    fn window(
        &self,
        route: &str,
        revision: &str,
        window: Duration,
        now: Time,
    ) -> (sluice_api::Totals, Duration);
    /// The steps of a route's reports (what one proxy counted per revision between two of
    /// its reports) merged at or after `since`, oldest first.
    fn steps(&self, route: &str, since: Time) -> Vec<Step>;
}

/// The `canary-vs-stable` verdict over the steps of the route's reports: each step is what one
/// proxy counted for both revisions between two of its reports — the same moments, the same
/// traffic — and is one window of the sequential test, weighed as soon as its report is
/// merged. Fewer than `min_requests` canary responses, or no verdict yet, is not a
/// measurement.
///
/// With `slower_than`, what is compared is the share of timed responses slower than that
/// many seconds instead of the share of 5xx: the same test, on latency.
pub fn canary_vs_stable(
    params: &sequential::Params,
    steps: &[Step],
    canary: &str,
    stable: &str,
    min_requests: u64,
    slower_than: Option<f64>,
) -> ProviderOutcome {
    if canary == stable {
        return ProviderOutcome::NotEnoughData("no canary to compare with stable".to_owned());
    }
    let counts = |s: &Step, revision: &str| match (s.counts.get(revision), slower_than) {
        (None, _) => sequential::Counts::default(),
        (Some(c), None) => sequential::Counts {
            requests: c.requests,
            errors: c.errors,
        },
        (Some(c), Some(seconds)) => {
            let (timed, slow) = c.slower_than(seconds);
            sequential::Counts {
                requests: timed,
                errors: slow,
            }
        }
    };
    let what = match slower_than {
        None => "failed".to_owned(),
        Some(s) => format!("slower than {}", humantime_secs(s)),
    };
    let mut evidence = sequential::Evidence::default();
    for s in steps {
        evidence.add(params, counts(s, canary), counts(s, stable));
    }
    let figures = format!(
        "canary {} of {} {what} ({}), stable {} of {} ({}), statistic {:.2} (worse at {:.2}, not worse at {:.2})",
        evidence.canary.errors,
        evidence.canary.requests,
        rate_text(sequential::Evidence::rate(evidence.canary)),
        evidence.stable.errors,
        evidence.stable.requests,
        rate_text(sequential::Evidence::rate(evidence.stable)),
        evidence.statistic,
        params.upper(),
        params.lower(),
    );
    if evidence.canary.requests < min_requests {
        return ProviderOutcome::NotEnoughData(format!(
            "waiting for traffic: {} of {min_requests} canary requests",
            evidence.canary.requests
        ));
    }
    match evidence.verdict(params) {
        sequential::Verdict::Worse => ProviderOutcome::Decided {
            success: false,
            detail: format!("worse than stable: {figures}"),
        },
        sequential::Verdict::NotWorse => ProviderOutcome::Decided {
            success: true,
            detail: format!("not worse than stable: {figures}"),
        },
        sequential::Verdict::Undecided => {
            ProviderOutcome::NotEnoughData(format!("undecided: {figures}"))
        }
    }
}

/// Seconds as a person writes them: `250ms`, `1.5s`.
fn humantime_secs(s: f64) -> String {
    if s < 1.0 {
        format!("{}ms", (s * 1000.0).round())
    } else {
        format!("{s}s")
    }
}

fn rate_text(rate: Option<f64>) -> String {
    rate.map_or_else(|| "-".to_owned(), |r| format!("{:.2} %", r * 100.0))
}

/// What a `proxy` metric reads: the merged counters of a route, and the revisions compared.
pub struct Counters<'a> {
    /// The merged counters.
    pub window: &'a dyn CounterWindow,
    /// The rollout's route.
    pub route: &'a str,
    /// The revision under analysis.
    pub revision: &'a str,
    /// The stable revision.
    pub stable: &'a str,
}

/// One measurement of a `proxy` metric.
pub fn measure(x: &ProxyProvider, target: &Counters<'_>, now: Time) -> ProviderOutcome {
    let revision = match x.revision {
        RevisionRole::Canary => target.revision,
        RevisionRole::Stable => target.stable,
    };
    let window = x
        .window
        .as_ref()
        .map_or(defaults::PROXY_WINDOW, |w| w.value);
    let min = x.min_requests.unwrap_or(defaults::PROXY_MIN_REQUESTS);
    if x.query == ProxyQuery::CanaryVsStable {
        let since = Time(now.0 - i64::try_from(window.as_millis()).unwrap_or(i64::MAX));
        let steps = target.window.steps(target.route, since);
        return canary_vs_stable(
            &x.sequential(),
            &steps,
            target.revision,
            target.stable,
            min,
            x.slower_than.as_ref().map(|d| d.value.as_secs_f64()),
        );
    }
    let (t, span) = target.window.window(target.route, revision, window, now);
    proxy_value(
        x.query,
        x.quantile.unwrap_or(defaults::PROXY_QUANTILE),
        &t,
        span,
        window,
        min,
    )
}

/// The proxy provider's figure from merged counters over a window.
pub fn proxy_value(
    query: ProxyQuery,
    quantile: f64,
    t: &sluice_api::Totals,
    span: Duration,
    window: Duration,
    min_requests: u64,
) -> ProviderOutcome {
    let n = t.requests();
    if n < min_requests {
        return ProviderOutcome::NotEnoughData(format!(
            "waiting for traffic: {n} of {min_requests} requests in the last {}s",
            window.as_secs()
        ));
    }
    let v = match query {
        ProxyQuery::SuccessRate => t.success_rate().unwrap_or(1.0),
        ProxyQuery::ErrorRate => t.error_rate().unwrap_or(0.0),
        ProxyQuery::RequestRate => n as f64 / span.as_secs_f64().max(1.0),
        ProxyQuery::CanaryVsStable => {
            return ProviderOutcome::Error(
                "canary-vs-stable is measured over samples, not one window".into(),
            );
        }
        ProxyQuery::Latency => match t.quantile_seconds(quantile) {
            Some(q) => q,
            None => return ProviderOutcome::NotEnoughData("no timed responses yet".into()),
        },
    };
    ProviderOutcome::Value(Value::Number(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (requests, 5xx).
    type Pair = (u64, u64);

    /// Report steps, one per (canary, stable) pair of (requests, 5xx).
    fn steps(pairs: &[(Pair, Pair)]) -> Vec<Step> {
        pairs
            .iter()
            .enumerate()
            .map(|(i, ((cn, ce), (sn, se)))| Step {
                at: Time(100 * i as i64),
                counts: [
                    (
                        "c",
                        Counted {
                            requests: *cn,
                            errors: *ce,
                            latency: vec![],
                        },
                    ),
                    (
                        "s",
                        Counted {
                            requests: *sn,
                            errors: *se,
                            latency: vec![],
                        },
                    ),
                ]
                .into_iter()
                .filter(|(_, c)| c.requests > 0)
                .map(|(r, c)| (r.to_owned(), c))
                .collect(),
            })
            .collect()
    }

    #[test]
    fn canary_vs_stable_fails_a_canary_erring_alone_and_passes_one_erring_like_stable() {
        let p = crate::analysis::sequential::Params::default();
        let bad = steps(&[((40, 12), (160, 1)); 8]);
        match canary_vs_stable(&p, &bad, "c", "s", 20, None) {
            ProviderOutcome::Decided { success, detail } => {
                assert!(!success);
                assert!(detail.starts_with("worse than stable: canary "), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        // the same spike on both: no evidence against the canary
        let spike = steps(&[((40, 10), (160, 40)); 30]);
        assert!(matches!(
            canary_vs_stable(&p, &spike, "c", "s", 20, None),
            ProviderOutcome::Decided { success: true, .. }
        ));
        // too little canary traffic is not a measurement
        assert!(matches!(
            canary_vs_stable(&p, &steps(&[((3, 3), (160, 0))]), "c", "s", 20, None),
            ProviderOutcome::NotEnoughData(m) if m.starts_with("waiting for traffic")
        ));
        // a step where the stable revision served nothing carries no comparison: the
        // canary's errors alone weigh nothing
        let alone = steps(&[((40, 12), (0, 0)); 8]);
        assert!(matches!(
            canary_vs_stable(&p, &alone, "c", "s", 20, None),
            ProviderOutcome::NotEnoughData(m) if m.starts_with("undecided")
        ));
        // no canary (the revision under analysis is the stable one)
        assert!(matches!(
            canary_vs_stable(&p, &bad, "s", "s", 20, None),
            ProviderOutcome::NotEnoughData(_)
        ));
    }

    #[test]
    fn canary_vs_stable_on_latency_compares_the_shares_of_slow_responses() {
        use sluice_api::counters::{bucket_index, bucket_upper_seconds};
        let p = crate::analysis::sequential::Params::default();
        let at = |ms: u64| bucket_index(ms * 1000);
        // 40 canary responses, `slow` of them at 800 ms, the rest at 20 ms; 160 stable ones
        // at 20 ms with one at 800 ms
        let step = |slow: u64| Step {
            at: Time(0),
            counts: [
                (
                    "c".to_owned(),
                    Counted {
                        requests: 40,
                        errors: 0,
                        latency: vec![(at(20), 40 - slow), (at(800), slow)],
                    },
                ),
                (
                    "s".to_owned(),
                    Counted {
                        requests: 160,
                        errors: 0,
                        latency: vec![(at(20), 159), (at(800), 1)],
                    },
                ),
            ]
            .into(),
        };
        let c = &step(10).counts["c"];
        assert_eq!(c.slower_than(0.25), (40, 10));
        // a threshold inside a bucket counts none of it: only surely slower responses
        let inside = bucket_upper_seconds(at(800)) - 0.001;
        assert_eq!(c.slower_than(inside), (40, 0));
        match canary_vs_stable(&p, &vec![step(10); 8], "c", "s", 20, Some(0.25)) {
            ProviderOutcome::Decided { success, detail } => {
                assert!(!success);
                assert!(detail.contains("of 320 slower than 250ms"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        // no error at all: on the error rate there is nothing to weigh
        assert!(matches!(
            canary_vs_stable(&p, &vec![step(10); 8], "c", "s", 20, None),
            ProviderOutcome::NotEnoughData(m) if m.starts_with("undecided")
        ));
        // as slow as stable: passes in time
        assert!(matches!(
            canary_vs_stable(&p, &vec![step(0); 200], "c", "s", 20, Some(0.25)),
            ProviderOutcome::Decided { success: true, .. }
        ));
    }

    #[test]
    fn proxy_figures_need_min_requests() {
        let mut t = sluice_api::Totals::default();
        t.by_class[1] = 95;
        t.by_class[4] = 5;
        t.buckets[10] = 100;
        let w = Duration::from_secs(10);
        assert_eq!(
            proxy_value(ProxyQuery::ErrorRate, 0.99, &t, w, w, 20),
            ProviderOutcome::Value(Value::Number(0.05))
        );
        assert_eq!(
            proxy_value(ProxyQuery::RequestRate, 0.99, &t, w, w, 20),
            ProviderOutcome::Value(Value::Number(10.0))
        );
        assert!(matches!(
            proxy_value(ProxyQuery::SuccessRate, 0.99, &t, w, w, 101),
            ProviderOutcome::NotEnoughData(_)
        ));
        assert!(matches!(
            proxy_value(ProxyQuery::Latency, 0.99, &t, w, w, 1),
            ProviderOutcome::Value(Value::Number(_))
        ));
    }
}
