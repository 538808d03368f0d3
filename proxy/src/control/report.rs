//! What a report carries: every (route, revision) pair the first time, then only the pairs
//! whose counters or requests in flight changed since the last report the controller took. A
//! hundred proxies at rest with a hundred routes each would otherwise send and make the
//! controller read a few megabytes of unchanged counters every second.

use std::collections::BTreeMap;

use sluice_api::counters::Totals;
use sluice_api::protocol::Report;

/// What the controller holds of this proxy: every pair's counters and requests in flight,
/// as the last report it took said.
pub type Taken = BTreeMap<(String, String), (Totals, u64)>;

/// Every pair of a full report, to remember once the controller has taken it.
pub fn taken(full: &Report) -> Taken {
    full.stats
        .iter()
        .map(|p| {
            (
                (p.route.clone(), p.revision.clone()),
                (p.totals.clone(), p.in_flight),
            )
        })
        .collect()
}

/// `full` as it should be sent: with only the pairs that changed since `last` when it is over
/// the same pairs, else whole.
pub fn only_changes(mut full: Report, last: Option<&Taken>) -> Report {
    let Some(last) = last else {
        return full;
    };
    let same_pairs = last.len() == full.stats.len()
        && full
            .stats
            .iter()
            .all(|p| last.contains_key(&(p.route.clone(), p.revision.clone())));
    if !same_pairs {
        return full;
    }
    full.stats.retain(|p| {
        last.get(&(p.route.clone(), p.revision.clone()))
            .is_none_or(|(t, f)| *t != p.totals || *f != p.in_flight)
    });
    full.changes_only = true;
    full
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_api::protocol::PairReport;

    fn pair(route: &str, ok: u64, in_flight: u64) -> PairReport {
        let mut totals = Totals::default();
        totals.by_class[1] = ok;
        PairReport {
            route: route.into(),
            revision: "h".into(),
            totals,
            in_flight,
        }
    }

    fn report(stats: Vec<PairReport>) -> Report {
        Report {
            proxy: "p".into(),
            instance: "i".into(),
            table_generation: 1,
            applied: BTreeMap::new(),
            stats,
            changes_only: false,
        }
    }

    #[test]
    fn the_first_report_and_one_over_other_pairs_carry_every_pair() {
        let full = report(vec![pair("a", 1, 0), pair("b", 2, 0)]);
        assert_eq!(only_changes(full.clone(), None), full);
        let last = taken(&report(vec![pair("a", 1, 0)]));
        assert_eq!(only_changes(full.clone(), Some(&last)), full, "a pair more");
        let last = taken(&report(vec![pair("a", 1, 0), pair("c", 2, 0)]));
        assert_eq!(
            only_changes(full.clone(), Some(&last)),
            full,
            "another pair"
        );
    }

    #[test]
    fn then_only_the_pairs_that_changed_counters_or_requests_in_flight() {
        let last = taken(&report(vec![
            pair("a", 1, 0),
            pair("b", 2, 0),
            pair("c", 3, 0),
        ]));
        let next = report(vec![pair("a", 1, 0), pair("b", 5, 0), pair("c", 3, 1)]);
        let sent = only_changes(next, Some(&last));
        assert!(sent.changes_only);
        assert_eq!(sent.stats, [pair("b", 5, 0), pair("c", 3, 1)]);
        let at_rest = only_changes(
            report(vec![pair("a", 1, 0), pair("b", 2, 0), pair("c", 3, 0)]),
            Some(&last),
        );
        assert!(at_rest.changes_only);
        assert!(at_rest.stats.is_empty(), "nothing changed, nothing sent");
    }
}
