//! The proxies' counters, merged: the cumulative totals each proxy instance reported per
//! (route, revision), what earlier instances counted before they restarted, samples of the
//! merged totals over time, so that a window is "now minus then", and each report's steps:
//! what one proxy counted for each revision of a route between two of its reports — the
//! versions' counts over the very same moments, which the canary-vs-stable verdict weighs as
//! soon as each report is merged. Pure; sums saturate.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use sluice_api::Totals;

use crate::providers::{Counted, Step};
use crate::time::Time;

/// How long samples of merged counters are kept (longest analysis window).
const SAMPLE_HISTORY: Duration = Duration::from_secs(15 * 60);

/// Most report steps kept per route (ten proxies reporting every 100 ms for over three
/// minutes); older ones go first, as do those past [`SAMPLE_HISTORY`].
const STEPS_KEPT: usize = 20_000;

/// A (route, revision) pair.
pub type Pair = (String, String);

/// What one proxy reported last, per pair: cumulative totals and requests in flight.
pub type Reported = BTreeMap<Pair, (Totals, u64)>;

/// The merged counters.
#[derive(Debug, Default)]
pub struct Counters {
    /// Per proxy, its current instance's latest report.
    reported: BTreeMap<String, Reported>,
    /// What instances that restarted had counted.
    retired: BTreeMap<Pair, Totals>,
    samples: BTreeMap<Pair, VecDeque<(Time, Totals)>>,
    /// Per route, the steps of every report, oldest first.
    steps: BTreeMap<String, VecDeque<Step>>,
    /// Pairs whose merged totals may have changed since the last sample: only those are
    /// summed again over the proxies (a hundred proxies at rest change none).
    changed: BTreeSet<Pair>,
    /// Pairs some proxy or retired instance has: the ones sampled.
    live: BTreeSet<Pair>,
    /// Per pair, the proxies with requests of it in flight, and how many (none at rest).
    busy: BTreeMap<Pair, BTreeMap<String, u64>>,
}

impl Counters {
    /// What a proxy's current instance reported last for a pair.
    pub fn last(&self, proxy: &str, pair: &Pair) -> Option<&(Totals, u64)> {
        self.reported.get(proxy).and_then(|r| r.get(pair))
    }

    /// Whether a report of `proxy` is held.
    pub fn holds(&self, proxy: &str) -> bool {
        self.reported.contains_key(proxy)
    }

    /// Takes a proxy's report, merged at `now`; `restarted` when it comes from a new
    /// instance, whose old counters are kept as retired. With `changes_only`, `stats` holds
    /// the pairs that changed and the others keep their counters. The report's steps (what it
    /// counted since the same instance's last report) are kept per route.
    pub fn record(
        &mut self,
        proxy: &str,
        stats: Reported,
        changes_only: bool,
        restarted: bool,
        now: Time,
    ) {
        if restarted && let Some(old) = self.reported.remove(proxy) {
            for (pair, (totals, _)) in old {
                self.note_in_flight(proxy, &pair, 0);
                self.retired.entry(pair).or_default().add(&totals);
            }
        }
        if !changes_only && let Some(before) = self.reported.get(proxy) {
            let gone: Vec<Pair> = before
                .keys()
                .filter(|p| !stats.contains_key(*p))
                .cloned()
                .collect();
            for pair in gone {
                self.note_in_flight(proxy, &pair, 0);
            }
        }
        for (pair, (_, f)) in &stats {
            self.note_in_flight(proxy, pair, *f);
        }
        match self.reported.get(proxy) {
            Some(before) => {
                for (pair, (totals, _)) in &stats {
                    if before.get(pair).is_none_or(|(t, _)| t != totals) {
                        self.changed.insert(pair.clone());
                    }
                }
                if !changes_only {
                    // a pair the proxy no longer reports leaves its sum
                    for pair in before.keys().filter(|p| !stats.contains_key(*p)) {
                        self.changed.insert(pair.clone());
                    }
                }
            }
            None => self.changed.extend(stats.keys().cloned()),
        }
        if let Some(before) = self.reported.get(proxy) {
            let mut by_route: BTreeMap<&str, BTreeMap<String, Counted>> = BTreeMap::new();
            for (pair, (totals, _)) in &stats {
                // a pair the last report did not have counts from zero (a new revision)
                let d = match before.get(pair) {
                    Some((earlier, _)) => totals.minus(earlier),
                    None => totals.clone(),
                };
                if d.requests() > 0 {
                    by_route
                        .entry(pair.0.as_str())
                        .or_default()
                        .insert(pair.1.clone(), Counted::of(&d));
                }
            }
            for (route, counts) in by_route {
                let q = self.steps.entry(route.to_owned()).or_default();
                q.push_back(Step { at: now, counts });
                while q.len() > STEPS_KEPT
                    || q.front().is_some_and(|s| now.since(s.at) > SAMPLE_HISTORY)
                {
                    q.pop_front();
                }
            }
        }
        match self.reported.get_mut(proxy) {
            Some(held) if changes_only => held.extend(stats),
            _ => {
                self.reported.insert(proxy.to_owned(), stats);
            }
        }
    }

    /// The steps of a route's reports merged at or after `since`, oldest first.
    pub fn steps_since(&self, route: &str, since: Time) -> Vec<Step> {
        self.steps
            .get(route)
            .map(|q| q.iter().filter(|s| s.at >= since).cloned().collect())
            .unwrap_or_default()
    }

    /// Counters of a pair since the start, summed over proxies, and the requests in flight
    /// at the proxies `present` says are still there.
    pub fn merged(&self, pair: &Pair, present: impl Fn(&str) -> bool) -> (Totals, u64) {
        let mut t = self.retired.get(pair).cloned().unwrap_or_default();
        let mut in_flight = 0u64;
        for (proxy, reported) in &self.reported {
            if let Some((pt, f)) = reported.get(pair) {
                t.add(pt);
                if present(proxy) {
                    in_flight = in_flight.saturating_add(*f);
                }
            }
        }
        (t, in_flight)
    }

    /// The requests of a pair in flight at the proxies `present` says are still there.
    pub fn in_flight(&self, pair: &Pair, present: impl Fn(&str) -> bool) -> u64 {
        self.busy.get(pair).map_or(0, |by_proxy| {
            by_proxy
                .iter()
                .filter(|(proxy, _)| present(proxy))
                .fold(0u64, |sum, (_, f)| sum.saturating_add(*f))
        })
    }

    /// Keeps `busy` in step with what `proxy` last said of `pair`.
    fn note_in_flight(&mut self, proxy: &str, pair: &Pair, in_flight: u64) {
        if in_flight > 0 {
            self.busy
                .entry(pair.clone())
                .or_default()
                .insert(proxy.to_owned(), in_flight);
        } else if let Some(by_proxy) = self.busy.get_mut(pair) {
            by_proxy.remove(proxy);
            if by_proxy.is_empty() {
                self.busy.remove(pair);
            }
        }
    }

    /// Counters of a pair over the last `window`: now minus the sample taken `window` ago
    /// (or the oldest one), with the span covered.
    pub fn window(&self, pair: &Pair, window: Duration, now: Time) -> (Totals, Duration) {
        let (current, _) = self.merged(pair, |_| false);
        let since = Time(now.0 - i64::try_from(window.as_millis()).unwrap_or(i64::MAX));
        let base = self.samples.get(pair).and_then(|q| {
            q.iter()
                .rev()
                .find(|(t, _)| *t <= since)
                .or_else(|| q.front())
        });
        match base {
            Some((t, totals)) => (current.minus(totals), now.since(*t)),
            None => (current, Duration::ZERO),
        }
    }

    /// A pair's figures over time, from the samples taken at or after `since`: one point
    /// per `step` at least, each over the span since the point before (what the dashboard
    /// charts).
    pub fn series(&self, pair: &Pair, since: Time, step: Duration) -> Vec<Point> {
        let Some(q) = self.samples.get(pair) else {
            return Vec::new();
        };
        let step = step.max(Duration::from_secs(1));
        let mut out = Vec::new();
        let mut prev: Option<&(Time, Totals)> = None;
        for s in q.iter().filter(|(t, _)| *t >= since) {
            let Some(p) = prev else {
                prev = Some(s);
                continue;
            };
            let span = s.0.since(p.0);
            if span < step {
                continue;
            }
            let d = s.1.minus(&p.1);
            out.push(Point {
                at: s.0,
                rate: d.requests() as f64 / span.as_secs_f64(),
                error_rate: d.error_rate(),
                p99_seconds: d.quantile_seconds(0.99),
            });
            prev = Some(s);
        }
        out
    }

    /// Samples every pair's merged counters (about once a second): summed again over the
    /// proxies for the pairs whose counters changed, the last sample again for the others.
    pub fn sample(&mut self, now: Time) {
        for pair in std::mem::take(&mut self.changed) {
            let held = self.retired.contains_key(&pair)
                || self.reported.values().any(|r| r.contains_key(&pair));
            if held {
                let (t, _) = self.merged(&pair, |_| false);
                self.samples
                    .entry(pair.clone())
                    .or_default()
                    .push_back((now, t));
                self.live.insert(pair);
            } else {
                self.live.remove(&pair);
            }
        }
        for pair in &self.live {
            let Some(q) = self.samples.get_mut(pair) else {
                continue;
            };
            if q.back().is_none_or(|(t, _)| *t != now) {
                let last = q.back().map(|(_, t)| t.clone()).unwrap_or_default();
                q.push_back((now, last));
            }
            while q
                .front()
                .is_some_and(|(t0, _)| now.since(*t0) > SAMPLE_HISTORY)
            {
                q.pop_front();
            }
        }
    }
}

/// A revision's figures at a moment, over the span since the point before.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Point {
    /// When.
    pub at: Time,
    /// Responses per second.
    pub rate: f64,
    /// Share of 5xx and upstream errors; none without responses.
    pub error_rate: Option<f64>,
    /// 99th percentile latency, seconds; none without timed responses.
    pub p99_seconds: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(route: &str, revisions: &[(&str, u64, u64)]) -> Reported {
        revisions
            .iter()
            .map(|(rev, requests, errors)| {
                let mut t = Totals::default();
                t.by_class[1] = requests - errors;
                t.by_class[4] = *errors;
                ((route.to_owned(), (*rev).to_owned()), (t, 0))
            })
            .collect()
    }

    #[test]
    fn each_report_adds_what_its_proxy_counted_since_its_last_one_per_revision() {
        let mut c = Counters::default();
        c.record(
            "p1",
            counts("r", &[("a", 10, 0), ("b", 2, 0)]),
            false,
            false,
            Time(0),
        );
        assert!(
            c.steps_since("r", Time(0)).is_empty(),
            "a first report is no step"
        );
        c.record("p2", counts("r", &[("a", 4, 0)]), false, false, Time(50));
        c.record(
            "p1",
            counts("r", &[("a", 18, 1), ("b", 5, 2)]),
            false,
            false,
            Time(100),
        );
        // a new revision counts from zero; an unchanged pair adds nothing
        c.record(
            "p2",
            counts("r", &[("a", 4, 0), ("c", 3, 3)]),
            false,
            false,
            Time(150),
        );
        // a restarted instance's first report is no step either
        c.record("p1", counts("r", &[("a", 1, 0)]), false, true, Time(200));
        let steps = c.steps_since("r", Time(0));
        /// A step as (when, [(revision, requests, errors)]).
        type Seen<'a> = (i64, Vec<(&'a str, u64, u64)>);
        let seen: Vec<Seen<'_>> = steps
            .iter()
            .map(|s| {
                (
                    s.at.0,
                    s.counts
                        .iter()
                        .map(|(r, n)| (r.as_str(), n.requests, n.errors))
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (100, vec![("a", 8, 1), ("b", 3, 2)]),
                (150, vec![("c", 3, 3)]),
            ]
        );
        assert_eq!(c.steps_since("r", Time(101)).len(), 1);
        assert!(c.steps_since("other", Time(0)).is_empty());
    }

    fn pair() -> Pair {
        ("r".into(), "h".into())
    }

    fn ok(n: u64) -> Reported {
        let mut t = Totals::default();
        t.by_class[1] = n;
        t.buckets[10] = n;
        BTreeMap::from([(pair(), (t, 2))])
    }

    /// Whatever proxies report (full or only changes, restarting or not, pairs coming and
    /// going), each sample of a pair is what summing every proxy's counters gives, and only
    /// pairs some proxy or retired instance holds are sampled.
    #[test]
    fn samples_summed_only_for_changed_pairs_equal_the_sums_over_every_proxy() {
        let mut c = Counters::default();
        let mut seed = 0x5eed_u64;
        let mut next = move |n: u64| {
            // SplitMix64
            seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) % n
        };
        let mut counted: BTreeMap<String, u64> = BTreeMap::new();
        for step in 0..3_000i64 {
            let proxy = format!("p{}", next(4));
            let restarted = next(20) == 0;
            let changes_only = !restarted && c.holds(&proxy) && next(2) == 0;
            let mut stats = Reported::new();
            for rev in ["a", "b", "c"] {
                if next(3) == 0 {
                    continue;
                }
                let n = counted.entry(format!("{proxy}{rev}")).or_default();
                if restarted {
                    *n = 0;
                }
                *n += next(3);
                let mut pair = counts("r", &[(rev, *n, 0)]);
                pair.values_mut().for_each(|(_, f)| *f = next(3));
                stats.extend(pair);
            }
            c.record(&proxy, stats, changes_only, restarted, Time(step));
            if next(3) == 0 {
                c.sample(Time(step));
                for rev in ["a", "b", "c"] {
                    let pair = ("r".to_owned(), rev.to_owned());
                    let held = c.retired.contains_key(&pair)
                        || c.reported.values().any(|r| r.contains_key(&pair));
                    let last = c.samples.get(&pair).and_then(|q| q.back());
                    if held {
                        let (at, t) = last.expect("a held pair is sampled");
                        assert_eq!(*at, Time(step));
                        assert_eq!(*t, c.merged(&pair, |_| false).0, "step {step}");
                        let present = |p: &str| p != "p1";
                        assert_eq!(c.in_flight(&pair, present), c.merged(&pair, present).1);
                    } else {
                        assert!(last.is_none_or(|(at, _)| *at != Time(step)));
                    }
                }
            }
        }
    }

    #[test]
    fn a_restarted_instance_keeps_what_the_old_one_counted_and_windows_subtract() {
        let mut c = Counters::default();
        c.record("p1", ok(100), false, false, Time(0));
        c.record("p2", ok(50), false, false, Time(0));
        c.sample(Time(0));
        c.record("p1", ok(5), false, true, Time(0));
        let (t, in_flight) = c.merged(&pair(), |p| p == "p1");
        assert_eq!(c.in_flight(&pair(), |p| p == "p1"), in_flight);
        assert_eq!(
            c.in_flight(&pair(), |_| true),
            c.merged(&pair(), |_| true).1
        );
        assert_eq!((t.requests(), in_flight), (155, 2));
        let (w, span) = c.window(&pair(), Duration::from_secs(10), Time(10_000));
        assert_eq!((w.requests(), span), (5, Duration::from_secs(10)));
        assert_eq!(
            c.window(
                &("r".into(), "other".into()),
                Duration::from_secs(1),
                Time(0)
            ),
            (Totals::default(), Duration::ZERO)
        );
    }

    #[test]
    fn series_give_a_rate_per_step_from_the_samples() {
        let mut c = Counters::default();
        for (i, n) in [0u64, 100, 300, 300, 600].iter().enumerate() {
            let at = Time(i as i64 * 1000);
            c.record("p1", ok(*n), false, false, at);
            c.sample(at);
        }
        let s = c.series(&pair(), Time(0), Duration::from_secs(1));
        let rates: Vec<f64> = s.iter().map(|p| p.rate).collect();
        assert_eq!(rates, [100.0, 200.0, 0.0, 300.0]);
        assert_eq!((s[0].error_rate, s[2].error_rate), (Some(0.0), None));
        let every_two = c.series(&pair(), Time(0), Duration::from_secs(2));
        let rates: Vec<f64> = every_two.iter().map(|p| p.rate).collect();
        assert_eq!(rates, [150.0, 150.0]);
        assert_eq!(
            c.series(&pair(), Time(3000), Duration::from_secs(1)).len(),
            1
        );
        assert!(
            c.series(&("r".into(), "x".into()), Time(0), Duration::from_secs(1))
                .is_empty()
        );
    }
}
