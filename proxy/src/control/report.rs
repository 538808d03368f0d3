//! What a report carries: every (route, revision) pair and every route's applied generation
//! the first time, then only the pairs whose counters or requests in flight changed since the
//! last report the controller took, and the applied generations only when they changed. A
//! hundred proxies at rest with a hundred routes each would otherwise send and make the
//! controller read a few megabytes of unchanged counters every second.

use std::collections::BTreeMap;

use sluice_api::counters::Totals;
use sluice_api::protocol::Report;

/// What the controller holds of this proxy, as the last report it took said.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Taken {
    /// Every pair's counters and requests in flight.
    pairs: BTreeMap<(String, String), (Totals, u64)>,
    /// The generation applied per route.
    applied: Option<BTreeMap<String, u64>>,
}

impl Taken {
    /// The controller took these generations from a poll that acknowledged them: a report
    /// need not send them again.
    pub fn acknowledged(&mut self, applied: BTreeMap<String, u64>) {
        self.applied = Some(applied);
    }

    /// The controller may not hold the generations last sent: the next report says them.
    pub fn forget_applied(&mut self) {
        self.applied = None;
    }
}

/// What a full report says, to remember once the controller has taken it.
pub fn taken(full: &Report) -> Taken {
    Taken {
        pairs: full
            .stats
            .iter()
            .map(|p| {
                (
                    (p.route.clone(), p.revision.clone()),
                    (p.totals.clone(), p.in_flight),
                )
            })
            .collect(),
        applied: full.applied.clone(),
    }
}

/// `full` as it should be sent: with only the pairs that changed since `last` when it is over
/// the same pairs, else whole.
pub fn only_changes(mut full: Report, last: Option<&Taken>) -> Report {
    let Some(last) = last else {
        return full;
    };
    let pairs = &last.pairs;
    let same_pairs = pairs.len() == full.stats.len()
        && full
            .stats
            .iter()
            .all(|p| pairs.contains_key(&(p.route.clone(), p.revision.clone())));
    if !same_pairs {
        return full;
    }
    full.stats.retain(|p| {
        pairs
            .get(&(p.route.clone(), p.revision.clone()))
            .is_none_or(|(t, f)| *t != p.totals || *f != p.in_flight)
    });
    if full.applied == last.applied {
        full.applied = None;
    }
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
            applied: Some(BTreeMap::new()),
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
        assert_eq!(
            at_rest.applied, None,
            "the same generations are not sent again"
        );
    }

    #[test]
    fn the_applied_generations_go_out_when_they_changed() {
        let mut first = report(vec![pair("a", 1, 0)]);
        first.applied = Some(BTreeMap::from([("a".to_owned(), 3)]));
        let last = taken(&first);
        let mut next = first.clone();
        next.applied = Some(BTreeMap::from([("a".to_owned(), 4)]));
        let sent = only_changes(next.clone(), Some(&last));
        assert!(sent.changes_only);
        assert!(sent.stats.is_empty());
        assert_eq!(sent.applied, next.applied, "a new generation is sent");
        // a route more changes the pairs too: the report goes whole
        next.stats.push(pair("b", 0, 0));
        assert_eq!(only_changes(next.clone(), Some(&last)), next);
    }

    #[test]
    fn generations_a_poll_acknowledged_are_not_sent_again() {
        let mut first = report(vec![pair("a", 1, 0)]);
        first.applied = Some(BTreeMap::from([("a".to_owned(), 3)]));
        let mut last = taken(&first);
        let mut next = first.clone();
        next.applied = Some(BTreeMap::from([("a".to_owned(), 4)]));
        last.acknowledged(BTreeMap::from([("a".to_owned(), 4)]));
        let sent = only_changes(next.clone(), Some(&last));
        assert!(sent.changes_only);
        assert_eq!(sent.applied, None);
        // a poll that failed: the report says them
        last.forget_applied();
        let sent = only_changes(next.clone(), Some(&last));
        assert_eq!(sent.applied, next.applied);
    }
}
