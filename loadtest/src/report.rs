//! What a load run saw: answers by status, by backend and by route generation, transport
//! errors, and latency quantiles from an HDR histogram.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latency figures in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest.
    pub max_us: u64,
}

/// The result of a load run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Responses received (any status).
    pub responses: u64,
    /// Requests that got no response (connection refused, reset, …).
    pub transport_errors: u64,
    /// Responses by status code.
    pub by_status: BTreeMap<u16, u64>,
    /// Responses by the backend or version that served them.
    pub by_backend: BTreeMap<String, u64>,
    /// Responses by `x-sluice-generation`, then backend (only responses carrying it).
    pub by_generation: BTreeMap<u64, BTreeMap<String, u64>>,
    /// Latency of responses.
    pub latency: Latency,
    /// Wall time of the run in seconds.
    pub elapsed_seconds: f64,
    /// Responses per second.
    pub rate: f64,
}

impl Report {
    /// Responses with a 5xx status plus transport errors.
    pub fn failures(&self) -> u64 {
        self.transport_errors
            + self
                .by_status
                .iter()
                .filter(|(s, _)| **s >= 500)
                .map(|(_, n)| n)
                .sum::<u64>()
    }

    /// Share of responses that were not failures (1.0 with no requests).
    pub fn success_rate(&self) -> f64 {
        let total = self.responses + self.transport_errors;
        if total == 0 {
            1.0
        } else {
            1.0 - self.failures() as f64 / total as f64
        }
    }

    /// A short human summary.
    pub fn summary(&self) -> String {
        let backends: Vec<String> = self
            .by_backend
            .iter()
            .map(|(b, n)| {
                format!(
                    "{b}={n} ({:.1}%)",
                    100.0 * *n as f64 / self.responses.max(1) as f64
                )
            })
            .collect();
        let statuses: Vec<String> = self
            .by_status
            .iter()
            .map(|(s, n)| format!("{s}={n}"))
            .collect();
        format!(
            "{} responses in {:.2}s ({:.0}/s), {} transport errors\nbackends: {}\nstatus: {}\nlatency: p50 {}µs p90 {}µs p99 {}µs p99.9 {}µs max {}µs",
            self.responses,
            self.elapsed_seconds,
            self.rate,
            self.transport_errors,
            backends.join(" "),
            statuses.join(" "),
            self.latency.p50_us,
            self.latency.p90_us,
            self.latency.p99_us,
            self.latency.p999_us,
            self.latency.max_us
        )
    }
}

/// Per-connection tallies, merged into a [`Report`] at the end.
pub(crate) struct Tally {
    pub(crate) report: Report,
    pub(crate) histogram: Histogram<u64>,
}

impl Tally {
    pub(crate) fn new() -> Self {
        Self {
            report: Report::default(),
            histogram: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("1 µs to 1 h at 3 significant digits are valid bounds"),
        }
    }

    pub(crate) fn response(
        &mut self,
        status: u16,
        backend: &str,
        generation: Option<u64>,
        latency: Duration,
    ) {
        let r = &mut self.report;
        r.responses += 1;
        *r.by_status.entry(status).or_default() += 1;
        *r.by_backend.entry(backend.to_owned()).or_default() += 1;
        if let Some(g) = generation {
            *r.by_generation
                .entry(g)
                .or_default()
                .entry(backend.to_owned())
                .or_default() += 1;
        }
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        self.histogram.saturating_record(us);
    }

    pub(crate) fn merge(&mut self, other: Tally) {
        let r = &mut self.report;
        let o = other.report;
        r.responses += o.responses;
        r.transport_errors += o.transport_errors;
        for (k, v) in o.by_status {
            *r.by_status.entry(k).or_default() += v;
        }
        for (k, v) in o.by_backend {
            *r.by_backend.entry(k).or_default() += v;
        }
        for (g, m) in o.by_generation {
            let e = r.by_generation.entry(g).or_default();
            for (k, v) in m {
                *e.entry(k).or_default() += v;
            }
        }
        let _ = self.histogram.add(&other.histogram);
    }

    pub(crate) fn finish(mut self, elapsed: Duration) -> Report {
        let h = &self.histogram;
        if !h.is_empty() {
            self.report.latency = Latency {
                p50_us: h.value_at_quantile(0.5),
                p90_us: h.value_at_quantile(0.9),
                p99_us: h.value_at_quantile(0.99),
                p999_us: h.value_at_quantile(0.999),
                max_us: h.max(),
            };
        }
        self.report.elapsed_seconds = elapsed.as_secs_f64();
        self.report.rate = self.report.responses as f64 / elapsed.as_secs_f64().max(1e-9);
        self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_tallies_add_up() {
        let mut a = Tally::new();
        a.response(200, "v1", Some(3), Duration::from_micros(100));
        let mut b = Tally::new();
        b.response(503, "v2", Some(3), Duration::from_micros(300));
        b.report.transport_errors = 1;
        a.merge(b);
        let r = a.finish(Duration::from_secs(1));
        assert_eq!(r.responses, 2);
        assert_eq!(r.by_backend["v1"], 1);
        assert_eq!(r.by_generation[&3]["v2"], 1);
        assert_eq!(r.failures(), 2);
        assert!((r.success_rate() - 1.0 / 3.0).abs() < 1e-9);
        assert!(r.latency.max_us >= 300);
    }
}
