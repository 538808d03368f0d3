//! The proxies the controller expects and what each applied: leases renewed by every poll
//! and report, the required ones, the acknowledgements, the time each generation took to
//! reach every expected proxy, and the events of proxies joining and leaving.
//!
//! Queries take the time and change nothing: a proxy whose lease ended is no longer expected
//! whether or not [`Fleet::expire`] has recorded it yet; `expire` is the one place that marks
//! it gone, with an event.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::time::Time;

/// Events kept in memory.
const EVENTS_KEPT: usize = 500;
/// Acknowledgement latencies kept in memory.
const LATENCIES_KEPT: usize = 500;
/// Generations waited for at most; older ones were superseded long ago.
const PENDING_KEPT: usize = 1_000;

/// Why a proxy event happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProxyReason {
    /// A proxy subscribed, or came back.
    ProxySubscribed,
    /// A proxy reported as a new instance.
    ProxyRestarted,
    /// A proxy left on purpose.
    ProxyUnsubscribed,
    /// A proxy stopped polling and reporting for longer than its lease.
    ProxyLeaseExpired,
}

/// Something that happened to the proxies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubEvent {
    /// When.
    pub time: Time,
    /// Why.
    pub reason: ProxyReason,
    /// Details.
    pub message: String,
}

/// One proxy as the hub sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyView {
    /// Id.
    pub id: String,
    /// Current instance.
    pub instance: String,
    /// Whether it is in the expected set.
    pub expected: bool,
    /// Its lease ends at.
    pub lease_until: Time,
    /// Generation applied per route.
    pub applied: BTreeMap<String, u64>,
}

/// How long a generation took to reach every expected proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AckLatency {
    /// Route.
    pub route: String,
    /// Generation.
    pub generation: u64,
    /// Proxies that acknowledged it.
    pub proxies: u32,
    /// Milliseconds from publishing to the last acknowledgement.
    pub millis: u64,
}

#[derive(Debug, Clone)]
struct Member {
    instance: String,
    lease_until: Time,
    left: bool,
    /// Generation applied per route, hashed: every tick asks it for every rollout.
    applied: HashMap<String, u64>,
    /// The newest table generation a poll of this instance acknowledged: a report built
    /// from an older table (sent before, taken after) moves no route back.
    acknowledged_through: u64,
}

impl Member {
    fn live(&self, now: Time) -> bool {
        !self.left && self.lease_until >= now
    }
}

/// What a report changed in the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The proxy was known, as this instance, and applied nothing new.
    Same,
    /// It applied a generation that an expected proxy still has not: nothing a decision waits
    /// for has changed (a rollout waits for every expected proxy).
    Applied,
    /// Something a decision waits for changed: it joined or came back, or its generation
    /// was the last one a publication waited for.
    News,
    /// The proxy reported as a new instance: its old instance's counters retire.
    Restarted,
}

/// The proxies.
#[derive(Debug)]
pub struct Fleet {
    lease: Duration,
    required: BTreeSet<String>,
    members: BTreeMap<String, Member>,
    events: VecDeque<HubEvent>,
    /// Generations published and not yet applied by every expected proxy: (route, when).
    pending: BTreeMap<u64, (String, Time)>,
    latencies: VecDeque<AckLatency>,
}

impl Fleet {
    /// A fleet with this lease and these required proxies.
    pub fn new(lease: Duration, required: BTreeSet<String>) -> Self {
        Self {
            lease,
            required,
            members: BTreeMap::new(),
            events: VecDeque::new(),
            pending: BTreeMap::new(),
            latencies: VecDeque::new(),
        }
    }

    fn event(&mut self, time: Time, reason: ProxyReason, message: String) {
        tracing::info!(reason = ?reason, message = %message, "proxy event");
        self.events.push_back(HubEvent {
            time,
            reason,
            message,
        });
        while self.events.len() > EVENTS_KEPT {
            self.events.pop_front();
        }
    }

    /// The instance a proxy reports as now, if it is known.
    pub fn instance(&self, proxy: &str) -> Option<&str> {
        self.members.get(proxy).map(|m| m.instance.as_str())
    }

    /// Whether a proxy counts toward requests in flight (it has not left).
    pub fn present(&self, proxy: &str) -> bool {
        self.members.get(proxy).is_some_and(|m| !m.left)
    }

    /// A poll: renews the lease of a known proxy.
    pub fn polled(&mut self, proxy: &str, now: Time) {
        let lease = self.lease;
        let Some(m) = self.members.get_mut(proxy) else {
            return;
        };
        m.lease_until = now.plus(lease);
        if m.left {
            m.left = false;
            self.event(
                now,
                ProxyReason::ProxySubscribed,
                format!("proxy {proxy} is back"),
            );
        }
    }

    /// An acknowledgement carried by a poll: `instance` holds `routes` at these generations,
    /// those of the table at `generation`. Taken only from the instance whose reports the
    /// fleet holds, still here (a new instance says who it is in its first report, which
    /// carries what it applied).
    pub fn acknowledged<'a>(
        &mut self,
        proxy: &str,
        instance: &str,
        generation: u64,
        routes: impl Iterator<Item = (&'a str, u64)>,
        now: Time,
    ) -> Arrival {
        let Some(m) = self.members.get_mut(proxy) else {
            return Arrival::Same;
        };
        if m.instance != instance || m.left {
            return Arrival::Same;
        }
        m.acknowledged_through = m.acknowledged_through.max(generation);
        let mut newer = false;
        for (route, g) in routes {
            newer |= raise(&mut m.applied, route, g);
        }
        if !newer {
            return Arrival::Same;
        }
        if self.settle_pending(now) {
            Arrival::News
        } else {
            Arrival::Applied
        }
    }

    /// A report (already checked) of a table at `table_generation`: renews the lease and
    /// records what the proxy applied (`None`: the same as this instance's last report said).
    pub fn reported(
        &mut self,
        proxy: &str,
        instance: &str,
        table_generation: u64,
        applied: Option<BTreeMap<String, u64>>,
        now: Time,
    ) -> Arrival {
        let arrival = match self.members.get(proxy) {
            None => {
                self.event(
                    now,
                    ProxyReason::ProxySubscribed,
                    format!("proxy {proxy} subscribed"),
                );
                Arrival::News
            }
            Some(old) if old.instance != instance => {
                self.event(
                    now,
                    ProxyReason::ProxyRestarted,
                    format!("proxy {proxy} restarted (instance {instance})"),
                );
                Arrival::Restarted
            }
            Some(old) if old.left => {
                self.event(
                    now,
                    ProxyReason::ProxySubscribed,
                    format!("proxy {proxy} is back"),
                );
                Arrival::News
            }
            Some(old)
                if applied
                    .as_ref()
                    .is_some_and(|a| !same_applied(&old.applied, a)) =>
            {
                Arrival::Applied
            }
            Some(_) => Arrival::Same,
        };
        let lease_until = now.plus(self.lease);
        match self.members.get_mut(proxy) {
            // the same instance, still here, with the same generations: only the lease moves
            Some(m) if arrival == Arrival::Same => m.lease_until = lease_until,
            _ => {
                // the entry is replaced: what it held is moved, not copied
                let (held, through) = match self.members.remove(proxy) {
                    Some(m) if m.instance == instance => (m.applied, m.acknowledged_through),
                    Some(m) => (m.applied, 0),
                    None => (HashMap::new(), 0),
                };
                let applied = match applied {
                    // built before the table a poll acknowledged since
                    Some(a) if table_generation < through => {
                        let mut merged = held;
                        for (route, g) in &a {
                            raise(&mut merged, route, *g);
                        }
                        merged
                    }
                    Some(a) => a.into_iter().collect(),
                    None => held,
                };
                self.members.insert(
                    proxy.to_owned(),
                    Member {
                        instance: instance.to_owned(),
                        lease_until,
                        left: false,
                        applied,
                        acknowledged_through: through,
                    },
                );
            }
        }
        let completed = self.settle_pending(now);
        match arrival {
            Arrival::Applied if completed => Arrival::News,
            other => other,
        }
    }

    /// A proxy leaving on purpose; true when it was there.
    pub fn unsubscribe(&mut self, proxy: &str, instance: &str, now: Time) -> bool {
        match self.members.get_mut(proxy) {
            Some(m) if m.instance == instance && !m.left => m.left = true,
            _ => return false,
        }
        self.event(
            now,
            ProxyReason::ProxyUnsubscribed,
            format!("proxy {proxy} unsubscribed"),
        );
        true
    }

    /// Marks the proxies whose lease ended as gone, with an event each; true when any was.
    pub fn expire(&mut self, now: Time) -> bool {
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| !m.left && m.lease_until < now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            if let Some(m) = self.members.get_mut(id) {
                m.left = true;
            }
            self.event(
                now,
                ProxyReason::ProxyLeaseExpired,
                format!("proxy {id} left the expected set: its lease expired"),
            );
        }
        !expired.is_empty()
    }

    /// The proxies with a live lease, plus the required ones.
    pub fn expected(&self, now: Time) -> BTreeSet<&str> {
        self.members
            .iter()
            .filter(|(_, m)| m.live(now))
            .map(|(id, _)| id.as_str())
            .chain(self.required.iter().map(String::as_str))
            .collect()
    }

    /// (expected proxies, those that applied at least `generation` of `route`).
    /// The same proxies as [`Fleet::expected`], counted without collecting them (every tick
    /// asks, for every rollout).
    pub fn acknowledgements(&self, route: &str, generation: u64, now: Time) -> (u32, u32) {
        let (mut expected, mut acked) = (0u32, 0u32);
        for (id, m) in &self.members {
            if m.live(now) || self.required.contains(id) {
                expected += 1;
                if m.applied.get(route).is_some_and(|g| *g >= generation) {
                    acked += 1;
                }
            }
        }
        // required proxies never seen: expected, and acknowledged nothing
        let unseen = self
            .required
            .iter()
            .filter(|id| !self.members.contains_key(*id))
            .count();
        (expected + unseen as u32, acked)
    }

    fn applied(&self, proxy: &str, route: &str) -> Option<u64> {
        self.members
            .get(proxy)
            .and_then(|m| m.applied.get(route))
            .copied()
    }

    /// A generation was published at `now`: its acknowledgement latency will be recorded.
    pub fn published(&mut self, route: &str, generation: u64, now: Time) {
        self.pending.insert(generation, (route.to_owned(), now));
        while self.pending.len() > PENDING_KEPT {
            self.pending.pop_first();
        }
    }

    /// Records the latency of generations every expected proxy applied; true when there
    /// were any.
    fn settle_pending(&mut self, now: Time) -> bool {
        if self.pending.is_empty() {
            return false;
        }
        let expected = self.expected(now);
        if expected.is_empty() {
            return false;
        }
        let done: Vec<u64> = self
            .pending
            .iter()
            .filter(|(g, (route, _))| {
                expected
                    .iter()
                    .all(|id| self.applied(id, route).is_some_and(|a| a >= **g))
            })
            .map(|(g, _)| *g)
            .collect();
        let proxies = expected.len() as u32;
        let any = !done.is_empty();
        for g in done {
            if let Some((route, at)) = self.pending.remove(&g) {
                self.latencies.push_back(AckLatency {
                    route,
                    generation: g,
                    proxies,
                    millis: u64::try_from(now.0 - at.0).unwrap_or(0),
                });
                while self.latencies.len() > LATENCIES_KEPT {
                    self.latencies.pop_front();
                }
            }
        }
        any
    }

    /// Acknowledgement latencies of recent generations, oldest first.
    pub fn latencies(&self) -> Vec<AckLatency> {
        self.latencies.iter().cloned().collect()
    }

    /// Events, oldest first.
    pub fn events(&self) -> Vec<HubEvent> {
        self.events.iter().cloned().collect()
    }

    /// Every proxy, and the required ones not seen yet.
    pub fn views(&self, now: Time) -> Vec<ProxyView> {
        let expected = self.expected(now);
        let mut out: Vec<ProxyView> = self
            .members
            .iter()
            .map(|(id, m)| ProxyView {
                id: id.clone(),
                instance: m.instance.clone(),
                expected: expected.contains(id.as_str()),
                lease_until: m.lease_until,
                applied: m.applied.iter().map(|(r, g)| (r.clone(), *g)).collect(),
            })
            .collect();
        for id in &self.required {
            if !self.members.contains_key(id) {
                out.push(ProxyView {
                    id: id.clone(),
                    instance: String::new(),
                    expected: true,
                    lease_until: Time(0),
                    applied: BTreeMap::new(),
                });
            }
        }
        out
    }
}

/// Whether a proxy reports the same generations it reported before.
/// Records that `route` is applied at `g` at least: a generation held never goes back. True
/// when it moved.
fn raise(applied: &mut HashMap<String, u64>, route: &str, g: u64) -> bool {
    match applied.get_mut(route) {
        Some(held) if *held >= g => false,
        Some(held) => {
            *held = g;
            true
        }
        None => {
            applied.insert(route.to_owned(), g);
            true
        }
    }
}

fn same_applied(held: &HashMap<String, u64>, reported: &BTreeMap<String, u64>) -> bool {
    held.len() == reported.len() && reported.iter().all(|(r, g)| held.get(r) == Some(g))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(g: u64) -> Option<BTreeMap<String, u64>> {
        Some(BTreeMap::from([("r".to_owned(), g)]))
    }

    #[test]
    fn a_lapsed_lease_is_not_expected_before_expire_records_it_and_queries_change_nothing() {
        let mut f = Fleet::new(Duration::from_secs(10), BTreeSet::new());
        let t0 = Time(0);
        f.reported("p1", "i1", 0, applied(1), t0);
        let later = t0.plus(Duration::from_secs(11));
        assert_eq!(f.acknowledgements("r", 1, later), (0, 0));
        assert!(
            f.events()
                .iter()
                .all(|e| e.reason != ProxyReason::ProxyLeaseExpired)
        );
        assert!(f.expire(later));
        assert!(!f.expire(later), "recorded once");
        assert_eq!(
            f.events().last().map(|e| e.reason),
            Some(ProxyReason::ProxyLeaseExpired)
        );
    }

    #[test]
    fn the_expected_are_the_live_and_the_required_whether_seen_or_not() {
        let required = BTreeSet::from(["late".to_owned(), "never".to_owned(), "p1".to_owned()]);
        let mut f = Fleet::new(Duration::from_secs(10), required);
        f.reported("p1", "i1", 0, applied(5), Time(0));
        f.reported("p2", "i2", 0, applied(4), Time(0));
        f.reported("late", "i3", 0, applied(5), Time(0));
        f.reported("gone", "i4", 0, applied(5), Time(0));
        let later = Time(0).plus(Duration::from_secs(11));
        for p in ["p1", "p2"] {
            f.reported(p, "i", 0, applied(5), later);
        }
        f.reported("p2", "i", 0, applied(4), later);
        // live: p1 (5), p2 (4); required: late (lapsed, 5), never (unseen), p1; gone lapsed
        assert_eq!(f.expected(later).len(), 4);
        assert_eq!(f.acknowledgements("r", 5, later), (4, 2));
        assert_eq!(f.acknowledgements("r", 4, later), (4, 3));
        assert_eq!(f.acknowledgements("other", 1, later), (4, 0));
    }

    #[test]
    fn the_latency_of_a_generation_is_recorded_when_the_last_expected_proxy_applies_it() {
        let mut f = Fleet::new(Duration::from_secs(10), BTreeSet::new());
        f.reported("p1", "i1", 0, applied(0), Time(0));
        f.reported("p2", "i2", 0, applied(0), Time(0));
        f.published("r", 5, Time(100));
        f.reported("p1", "i1", 0, applied(5), Time(104));
        assert!(f.latencies().is_empty());
        f.reported("p2", "i2", 0, applied(5), Time(107));
        assert_eq!(
            f.latencies(),
            [AckLatency {
                route: "r".into(),
                generation: 5,
                proxies: 2,
                millis: 7
            }]
        );
    }

    #[test]
    fn a_report_says_what_it_changed() {
        let mut f = Fleet::new(Duration::from_secs(10), BTreeSet::new());
        assert_eq!(f.reported("p", "a", 0, applied(1), Time(0)), Arrival::News);
        assert_eq!(f.reported("p", "a", 0, applied(1), Time(1)), Arrival::Same);
        assert_eq!(
            f.reported("p", "a", 0, applied(2), Time(2)),
            Arrival::Applied
        );
        assert_eq!(
            f.reported("p", "b", 0, applied(2), Time(3)),
            Arrival::Restarted
        );
        assert!(f.unsubscribe("p", "b", Time(4)));
        assert!(!f.unsubscribe("p", "b", Time(4)));
        assert_eq!(f.reported("p", "b", 0, applied(2), Time(5)), Arrival::News);
    }

    #[test]
    fn only_the_last_expected_proxy_to_apply_a_publication_brings_news() {
        let mut f = Fleet::new(Duration::from_secs(10), BTreeSet::new());
        f.reported("p", "a", 0, applied(1), Time(0));
        f.reported("q", "a", 0, applied(1), Time(0));
        f.published("r", 2, Time(1));
        assert_eq!(
            f.reported("p", "a", 0, applied(2), Time(2)),
            Arrival::Applied
        );
        assert_eq!(f.reported("q", "a", 0, applied(2), Time(3)), Arrival::News);
        // a generation nobody waits for (published before this hub started) is news to nobody
        assert_eq!(
            f.reported("p", "a", 0, applied(3), Time(4)),
            Arrival::Applied
        );
        assert_eq!(
            f.reported("q", "a", 0, applied(3), Time(4)),
            Arrival::Applied
        );
    }

    #[test]
    fn a_report_without_its_generations_keeps_the_last_ones_and_renews_the_lease() {
        let mut f = Fleet::new(Duration::from_secs(10), BTreeSet::new());
        f.reported("p", "a", 0, applied(3), Time(0));
        assert_eq!(f.reported("p", "a", 0, None, Time(9_000)), Arrival::Same);
        // the lease runs from the last report: still expected after the first one's lease
        assert_eq!(f.acknowledgements("r", 3, Time(15_000)), (1, 1));
        assert_eq!(f.views(Time(15_000))[0].applied, applied(3).unwrap());
        assert_eq!(
            f.reported("p", "a", 0, applied(4), Time(9_500)),
            Arrival::Applied
        );
        assert_eq!(f.acknowledgements("r", 4, Time(9_500)), (1, 1));
    }
}
