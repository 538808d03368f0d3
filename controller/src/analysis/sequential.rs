//! A sequential canary-versus-stable verdict: is the canary's error rate worse than the stable
//! revision's, judged over the same moments, as soon as the data can say so?
//!
//! **Method.** Wald's sequential probability ratio test (A. Wald, *Sequential Tests of
//! Statistical Hypotheses*, Ann. Math. Statist. 16(2), 1945) on the conditional binomial
//! model of two Poisson rates (E. L. Lehmann, *Testing Statistical Hypotheses*, §4.5): given
//! that an error happened at a moment when the canary served a share `w` of the traffic, it
//! is the canary's with probability `π(ρ) = wρ / (wρ + 1 − w)`, where `ρ` is the ratio of the
//! canary's error rate to the stable one's. The test weighs
//! - H0: `ρ = 1` (the canary is no worse), against
//! - H1: `ρ = ρ1` (worse by the configured ratio, e.g. 2: twice the stable error rate).
//!
//! Each window of counts adds `e_c·ln(π1/π0) + e_s·ln((1−π1)/(1−π0))` to the log-likelihood
//! ratio `Λ`, with `e_c`, `e_s` the errors of each version in it and `π0 = w`, `π1 = π(ρ1)`.
//! The verdict is *worse* once `Λ ≥ ln((1−β)/α)`, *not worse* once `Λ ≤ ln(β/(1−α))`, and
//! undecided between.
//!
//! **Guarantee** (Wald's bounds): a canary that is no worse is judged worse with probability at
//! most `α/(1−β)`, and one that is `ρ1` times worse is judged not worse with probability at
//! most `β/(1−α)`, however often the verdict is looked at. Conditioning on the errors removes
//! the common error rate: a spike that hits both versions at once adds errors to both sides in
//! proportion to their traffic and carries no evidence either way. The assumption is that,
//! within a window, an error is as likely for any request of the same version (windows short
//! enough that the traffic share does not move within one).
//!
//! Pure and clock-free: the caller adds the counts of each window, in order.

/// The test's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Largest chance of judging a no-worse canary worse (e.g. 0.01).
    pub alpha: f64,
    /// Largest chance of judging a `worse_ratio`-times-worse canary not worse (e.g. 0.05).
    pub beta: f64,
    /// How many times the stable error rate counts as worse (> 1, e.g. 2).
    pub worse_ratio: f64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            alpha: 0.01,
            beta: 0.05,
            worse_ratio: 2.0,
        }
    }
}

impl Params {
    /// Why these settings cannot be used, if they cannot (named as a metric spells them).
    pub fn check(&self) -> Result<(), String> {
        let open = |x: f64| x > 0.0 && x < 1.0;
        if !open(self.alpha) {
            return Err(format!(
                "falseFailure {} is not between 0 and 1",
                self.alpha
            ));
        }
        if !open(self.beta) {
            return Err(format!("falsePass {} is not between 0 and 1", self.beta));
        }
        if self.alpha + self.beta >= 1.0 {
            return Err("falseFailure + falsePass must be below 1".to_owned());
        }
        if !(self.worse_ratio > 1.0 && self.worse_ratio.is_finite()) {
            return Err(format!("worseRatio {} is not above 1", self.worse_ratio));
        }
        Ok(())
    }

    /// The log-likelihood ratio at which the canary is judged worse.
    pub fn upper(&self) -> f64 {
        ((1.0 - self.beta) / self.alpha).ln()
    }

    /// The log-likelihood ratio at which the canary is judged not worse.
    pub fn lower(&self) -> f64 {
        (self.beta / (1.0 - self.alpha)).ln()
    }
}

/// What the test concluded so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Worse than stable by the ratio, at the configured confidence.
    Worse,
    /// Not worse, at the configured confidence.
    NotWorse,
    /// Not enough evidence either way yet.
    Undecided,
}

/// The requests and errors of one version over one window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Responses.
    pub requests: u64,
    /// Of which errors.
    pub errors: u64,
}

/// The evidence gathered so far, with the figures a person sees beside the verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Evidence {
    /// The log-likelihood ratio Λ (positive: toward worse).
    pub statistic: f64,
    /// The canary's counts, summed.
    pub canary: Counts,
    /// The stable revision's counts, summed.
    pub stable: Counts,
}

impl Evidence {
    /// Adds one window's counts of both versions (the same moments for both).
    pub fn add(&mut self, p: &Params, canary: Counts, stable: Counts) {
        let errors = |c: Counts| c.errors.min(c.requests);
        let (ec, es) = (errors(canary), errors(stable));
        self.canary.requests += canary.requests;
        self.canary.errors += ec;
        self.stable.requests += stable.requests;
        self.stable.errors += es;
        let total = canary.requests + stable.requests;
        if ec + es == 0 || canary.requests == 0 || stable.requests == 0 {
            // no error, or one version alone served: nothing to compare in this window
            return;
        }
        let w = canary.requests as f64 / total as f64;
        let pi0 = w;
        let pi1 = w * p.worse_ratio / (w * p.worse_ratio + 1.0 - w);
        self.statistic +=
            ec as f64 * (pi1 / pi0).ln() + es as f64 * ((1.0 - pi1) / (1.0 - pi0)).ln();
    }

    /// The verdict now.
    pub fn verdict(&self, p: &Params) -> Verdict {
        if self.statistic >= p.upper() {
            Verdict::Worse
        } else if self.statistic <= p.lower() {
            Verdict::NotWorse
        } else {
            Verdict::Undecided
        }
    }

    /// An error rate, `None` without requests.
    pub fn rate(c: Counts) -> Option<f64> {
        (c.requests > 0).then(|| c.errors as f64 / c.requests as f64)
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    use super::*;

    fn counts(requests: u64, errors: u64) -> Counts {
        Counts { requests, errors }
    }

    #[test]
    fn the_thresholds_and_the_settings_are_checked() {
        let p = Params::default();
        assert!((p.upper() - (0.95f64 / 0.01).ln()).abs() < 1e-12);
        assert!((p.lower() - (0.05f64 / 0.99).ln()).abs() < 1e-12);
        assert!(p.check().is_ok());
        for bad in [
            Params { alpha: 0.0, ..p },
            Params { beta: 1.0, ..p },
            Params {
                alpha: 0.6,
                beta: 0.5,
                ..p
            },
            Params {
                worse_ratio: 1.0,
                ..p
            },
            Params {
                worse_ratio: f64::NAN,
                ..p
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn errors_on_the_canary_alone_soon_say_worse_and_a_shared_spike_says_nothing() {
        let p = Params::default();
        let mut e = Evidence::default();
        // the canary serves 20 %: each of its errors weighs ln(π1/π0) = ln(1/0.6) ≈ 0.51
        let mut windows = 0;
        while e.verdict(&p) == Verdict::Undecided {
            e.add(&p, counts(40, 1), counts(160, 0));
            windows += 1;
        }
        assert_eq!(e.verdict(&p), Verdict::Worse);
        assert_eq!(windows, 9, "ln(95)/ln(1/0.6) = 8.9 canary errors");
        // a spike in proportion to the traffic: the statistic moves toward "not worse" only
        // by what H1 predicted and did not happen, never toward "worse"
        let mut spike = Evidence::default();
        spike.add(&p, counts(40, 20), counts(160, 80));
        assert!(spike.statistic < 0.0);
        // one version alone, or no error: no evidence
        let mut none = Evidence::default();
        none.add(&p, counts(40, 5), counts(0, 0));
        none.add(&p, counts(40, 0), counts(160, 0));
        assert_eq!(none.statistic, 0.0);
        assert_eq!(none.canary, counts(80, 5));
    }

    /// One simulated rollout: windows of 0.2 s at 200 requests/s, the canary at 20 %, with the
    /// given error rates (a window's rates may be raised for both by a spike), until a verdict
    /// or 120 s. Returns the verdict and the canary requests it took.
    fn simulate(
        rng: &mut StdRng,
        p: &Params,
        stable_rate: f64,
        canary_rate: f64,
        spike: Option<(usize, usize, f64)>,
    ) -> (Verdict, u64) {
        let mut e = Evidence::default();
        for window in 0..600 {
            let boost = spike
                .filter(|(from, to, _)| (*from..*to).contains(&window))
                .map_or(0.0, |(_, _, extra)| extra);
            let draw = |rng: &mut StdRng, n: u64, rate: f64| {
                let rate = (rate + boost).min(1.0);
                (0..n).filter(|_| rng.random_range(0.0..1.0) < rate).count() as u64
            };
            let (nc, ns) = (8, 32);
            let c = counts(nc, draw(rng, nc, canary_rate));
            let s = counts(ns, draw(rng, ns, stable_rate));
            e.add(p, c, s);
            let v = e.verdict(p);
            if v != Verdict::Undecided {
                return (v, e.canary.requests);
            }
        }
        (Verdict::Undecided, e.canary.requests)
    }

    #[test]
    fn healthy_canaries_are_rarely_judged_worse_and_bad_ones_are_caught() {
        let p = Params::default();
        let mut rng = StdRng::seed_from_u64(7);
        let runs = 1000;
        let mut false_aborts = 0;
        let mut passed = 0;
        for i in 0..runs {
            // every third healthy canary sees a 2 s spike of 30 % more errors on both versions
            let spike = (i % 3 == 0).then_some((20, 30, 0.3));
            match simulate(&mut rng, &p, 0.01, 0.01, spike) {
                (Verdict::Worse, _) => false_aborts += 1,
                (Verdict::NotWorse, _) => passed += 1,
                (Verdict::Undecided, _) => {}
            }
        }
        let bound = p.alpha / (1.0 - p.beta);
        eprintln!(
            "healthy canaries: {false_aborts} of {runs} judged worse (bound {bound:.4}), {passed} passed"
        );
        // the bound in expectation, with room for the binomial spread of 1 000 runs (3 σ)
        let expected = bound * runs as f64;
        assert!(
            (false_aborts as f64) <= expected + 3.0 * expected.sqrt(),
            "{false_aborts} false aborts"
        );
        assert!(
            passed >= runs * 9 / 10,
            "only {passed} healthy canaries passed"
        );
        for canary_rate in [0.05, 0.30, 1.0] {
            let mut needed = Vec::new();
            let tries = 200;
            for _ in 0..tries {
                let (v, requests) = simulate(&mut rng, &p, 0.01, canary_rate, None);
                if v == Verdict::Worse {
                    needed.push(requests);
                }
            }
            needed.sort_unstable();
            eprintln!(
                "canary at {:.0} % errors (stable 1 %): {} of {tries} caught, after {} canary requests (median), {} at most",
                canary_rate * 100.0,
                needed.len(),
                needed[needed.len() / 2],
                needed[needed.len() - 1]
            );
            // five times the stable rate and more: missed at most β/(1−α) of the time at
            // twice, far less here; 30 % and 100 % never
            let must = if canary_rate < 0.1 {
                tries * 95 / 100
            } else {
                tries
            };
            assert!(
                needed.len() >= must,
                "{} of {tries} caught at {canary_rate}",
                needed.len()
            );
        }
    }
}
