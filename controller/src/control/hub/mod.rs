//! The controller's side of every proxy subscription, in three parts behind one lock:
//! [`routes`] (the table, its generations and what is on disk), [`fleet`] (leases, the
//! expected set, acknowledgements, proxy events) and [`counters`] (the proxies' counters,
//! merged, and their windows).
//!
//! Guarantees:
//! - a route's generation only grows; the next generation is on disk before any proxy can
//!   see it, except an abort's when the disk refuses it ([`Hub::publish_abort`]): a hub
//!   opened again starts [`RESTART_GAP`] past the persisted one, so no generation is reused;
//! - the disk is written with no lock held that a poll or a report waits for: publications
//!   are staged, written, then committed, one publisher at a time;
//! - the expected set is the proxies with a live lease (renewed by every poll and report)
//!   plus the required ones; a proxy leaves it by unsubscribing or when its lease expires,
//!   and each is recorded as an event;
//! - merged counters are the sum over proxies; a proxy that restarts (new instance) starts
//!   again from zero without losing what its previous instance counted;
//! - a report is taken whole or not at all: it must have exactly the shape the proxies send
//!   (the bucket count, routes and revisions this hub published, each pair once, counters
//!   that never go down within one instance), so nothing a reporter sends grows memory
//!   beyond what the published routes allow, and sums saturate instead of wrapping.
//!
//! Every method takes the time as an argument; the API layer passes the wall clock. Queries
//! change nothing.

mod counters;
mod fleet;
mod routes;
pub mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_api::FieldError;
use sluice_api::Totals;
use sluice_api::protocol::{Report, Snapshot, Unsubscribe};
use sluice_api::table::{BackendSpec, RouteSpec};
use tokio::sync::watch;

use counters::Counters;
pub use counters::{Pair, Point};
pub use fleet::{AckLatency, HubEvent, ProxyReason, ProxyView};
use fleet::{Arrival, Fleet};
use routes::Routes;
pub use routes::{RESTART_GAP, share_of};
pub use store::{FileStore, RouteStore};

use crate::Error;
pub use crate::providers::CounterWindow;
use crate::time::Time;

/// Settings of the hub.
#[derive(Clone)]
pub struct HubConfig {
    /// A proxy that has not polled or reported for this long leaves the expected set.
    pub lease: Duration,
    /// Proxies always expected, even before they first subscribe.
    pub required: BTreeSet<String>,
    /// Where routes and the next generation are kept across restarts.
    pub store: Option<Arc<dyn RouteStore>>,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(u64::from(crate::spec::defaults::LEASE_SECONDS)),
            required: BTreeSet::new(),
            store: None,
        }
    }
}

struct State {
    routes: Routes,
    fleet: Fleet,
    counters: Counters,
    /// The canary's share (percent) each route had at the generations it was published at,
    /// the newest [`WEIGHTS_KEPT`] per route: what a proxy that applied a generation serves.
    weights: BTreeMap<String, BTreeMap<u64, (f64, Time)>>,
}

/// Generations whose weight is kept per route.
const WEIGHTS_KEPT: usize = 256;

/// The controller's side of every proxy subscription.
pub struct Hub {
    store: Option<Arc<dyn RouteStore>>,
    state: Mutex<State>,
    /// One publisher at a time, from staging to commit.
    publishing: Mutex<()>,
    table_tx: watch::Sender<u64>,
    activity: watch::Sender<u64>,
    /// Bumped on every report merged.
    reports: watch::Sender<u64>,
}

/// Longest proxy id or instance id a report may carry.
const MAX_ID_BYTES: usize = 253;

/// Why a report was refused.
#[derive(Debug)]
pub enum ReportRefused {
    /// It is not of the known shape: the fields and why.
    Invalid(Vec<FieldError>),
    /// It carries only the changed pairs, and the controller has no earlier report of that
    /// instance to add them to (it restarted, or the proxy did): the proxy sends every pair.
    NoEarlierReport,
}

/// Every way `r` differs from what a proxy of this hub sends: ids, routes and revisions the
/// hub never published, generations it never gave, a pair counted twice, a bucket count other
/// than the proxies', more timed or failed responses than responses, and a counter that went
/// down without a new instance.
fn check_report(s: &State, r: &Report) -> Result<(), Vec<FieldError>> {
    let mut e = Vec::new();
    let id_ok = |id: &str| {
        !id.is_empty()
            && id.len() <= MAX_ID_BYTES
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    };
    if !id_ok(&r.proxy) {
        e.push(FieldError::new(
            "proxy",
            "must be 1 to 253 letters, digits, '-', '_', '.' or ':'",
        ));
    }
    if !id_ok(&r.instance) {
        e.push(FieldError::new(
            "instance",
            "must be 1 to 253 letters, digits, '-', '_', '.' or ':'",
        ));
    }
    if !s.routes.was_given(r.table_generation) {
        e.push(FieldError::new(
            "table_generation",
            format!("{} was never published", r.table_generation),
        ));
    }
    if r.applied.is_none() && !r.changes_only {
        e.push(FieldError::new(
            "applied",
            "missing: only a changes_only report may leave it out",
        ));
    }
    for (route, g) in r.applied.iter().flatten() {
        if !s.routes.has(route) {
            e.push(FieldError::new(
                format!("applied.{route}"),
                "no route of that name is published",
            ));
        } else if !s.routes.was_given(*g) {
            e.push(FieldError::new(
                format!("applied.{route}"),
                format!("generation {g} was never published"),
            ));
        }
    }
    let same_instance = s.fleet.instance(&r.proxy) == Some(r.instance.as_str());
    let mut seen = BTreeSet::new();
    for (i, p) in r.stats.iter().enumerate() {
        let at = |field: &str| format!("stats[{i}].{field}");
        let known = s.routes.known(&p.route);
        if known.is_none() {
            e.push(FieldError::new(
                at("route"),
                "no route of that name is published",
            ));
            continue;
        }
        if !known.is_some_and(|k| k.contains(&p.revision)) {
            e.push(FieldError::new(
                at("revision"),
                format!("{:?} is not a revision of route {:?}", p.revision, p.route),
            ));
            continue;
        }
        if !seen.insert((&p.route, &p.revision)) {
            e.push(FieldError::new(
                at("revision"),
                "this pair is reported twice",
            ));
            continue;
        }
        let t = &p.totals;
        if t.buckets.len() != sluice_api::counters::BUCKETS {
            e.push(FieldError::new(
                at("totals.buckets"),
                format!(
                    "{} entries; a report has exactly {}",
                    t.buckets.len(),
                    sluice_api::counters::BUCKETS
                ),
            ));
            continue;
        }
        let requests = t.by_class.iter().fold(0u64, |a, b| a.saturating_add(*b));
        let sum = |xs: &[u64]| xs.iter().fold(0u64, |a, b| a.saturating_add(*b));
        if sum(&t.buckets) > requests {
            e.push(FieldError::new(
                at("totals.buckets"),
                "more timed responses than responses",
            ));
        }
        if sum(&t.errors) > requests {
            e.push(FieldError::new(
                at("totals.errors"),
                "more upstream errors than responses",
            ));
        }
        let pair = (p.route.clone(), p.revision.clone());
        if same_instance
            && let Some((old, _)) = s.counters.last(&r.proxy, &pair)
            && let Some(field) = went_down(old, t)
        {
            e.push(FieldError::new(
                at(&format!("totals.{field}")),
                "went down without a new instance",
            ));
        }
    }
    if e.is_empty() { Ok(()) } else { Err(e) }
}

/// The first counter of `new` below its value in `old`, by field path.
fn went_down(old: &Totals, new: &Totals) -> Option<String> {
    let lists: [(&str, &[u64], &[u64]); 4] = [
        ("by_class", &old.by_class, &new.by_class),
        ("errors", &old.errors, &new.errors),
        ("client_errors", &old.client_errors, &new.client_errors),
        ("buckets", &old.buckets, &new.buckets),
    ];
    lists.iter().find_map(|(name, o, n)| {
        o.iter()
            .zip(n.iter())
            .position(|(a, b)| b < a)
            .map(|i| format!("{name}[{i}]"))
    })
}

impl Hub {
    /// A hub, with the routes and generations it persisted, if any.
    pub fn open(config: HubConfig) -> Result<Self, Error> {
        let routes = match &config.store {
            None => Routes::default(),
            Some(store) => match store.read() {
                Ok(Some(bytes)) => Routes::from_persisted(&bytes).map_err(|e| {
                    Error::State(format!("{} is not a routes file: {e}", store.describe()))
                })?,
                Ok(None) => Routes::default(),
                Err(e) => {
                    return Err(Error::State(format!(
                        "cannot read {}: {e}",
                        store.describe()
                    )));
                }
            },
        };
        let (table_tx, _) = watch::channel(routes.generation());
        Ok(Self {
            store: config.store,
            state: Mutex::new(State {
                routes,
                fleet: Fleet::new(config.lease, config.required),
                counters: Counters::default(),
                weights: BTreeMap::new(),
            }),
            publishing: Mutex::new(()),
            table_tx,
            activity: watch::channel(0).0,
            reports: watch::channel(0).0,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets a route (and the backends it uses). Returns its generation: the same as before
    /// when nothing changed, else a new one, persisted before any proxy can see it.
    pub fn publish(
        &self,
        route: RouteSpec,
        backends: Vec<BackendSpec>,
        now: Time,
    ) -> Result<u64, Error> {
        self.publish_with(route, backends, false, now)
            .map(|(g, _)| g)
    }

    /// Sets an aborted rollout's route: like [`Hub::publish`], but the proxies get it even
    /// when it cannot be persisted (an abort is never gated). Returns the generation and,
    /// when the route could not be written, why.
    pub fn publish_abort(
        &self,
        route: RouteSpec,
        backends: Vec<BackendSpec>,
        now: Time,
    ) -> (u64, Option<String>) {
        self.publish_with(route, backends, true, now)
            .unwrap_or_else(|e| (self.generation(), Some(e.to_string())))
    }

    fn publish_with(
        &self,
        route: RouteSpec,
        backends: Vec<BackendSpec>,
        serve_unpersisted: bool,
        now: Time,
    ) -> Result<(u64, Option<String>), Error> {
        let _one_publisher = self.publishing.lock().unwrap_or_else(|p| p.into_inner());
        let staged = match self.lock().routes.stage(route, backends) {
            Ok(staged) => staged,
            Err(unchanged) => return Ok((unchanged, None)),
        };
        let unpersisted = match &self.store {
            None => None,
            Some(store) => match store.write(&staged.bytes) {
                Ok(()) => None,
                // a generation that is not persisted must not be served, except an abort's
                Err(e) if serve_unpersisted => {
                    Some(format!("cannot write {}: {e}", store.describe()))
                }
                Err(e) => {
                    return Err(Error::State(format!(
                        "cannot write {}: {e}",
                        store.describe()
                    )));
                }
            },
        };
        let share = share_of(staged.route());
        let mut s = self.lock();
        let name = staged.route_name().to_owned();
        let generation = s.routes.commit(staged);
        s.fleet.published(&name, generation, now);
        let kept = s.weights.entry(name.clone()).or_default();
        kept.insert(generation, (share, now));
        while kept.len() > WEIGHTS_KEPT {
            kept.pop_first();
        }
        drop(s);
        self.table_tx.send_replace(generation);
        Ok((generation, unpersisted))
    }

    /// Removes a route whose rollout is gone: persisted, then served at a new generation, so
    /// the proxies drop it. `None` when it was not served.
    pub fn withdraw(&self, name: &str) -> Result<Option<u64>, Error> {
        let _one_publisher = self.publishing.lock().unwrap_or_else(|p| p.into_inner());
        let Some(withdrawal) = self.lock().routes.stage_withdrawal(name) else {
            return Ok(None);
        };
        if let Some(store) = &self.store {
            store
                .write(&withdrawal.bytes)
                .map_err(|e| Error::State(format!("cannot write {}: {e}", store.describe())))?;
        }
        let generation = self.lock().routes.commit_withdrawal(withdrawal);
        self.table_tx.send_replace(generation);
        Ok(Some(generation))
    }

    /// The names of the routes served.
    pub fn route_names(&self) -> Vec<String> {
        self.lock().routes.names().map(str::to_owned).collect()
    }

    /// The whole table now.
    pub fn snapshot(&self) -> Snapshot {
        self.lock().routes.snapshot()
    }

    /// The route a rollout published, with its generation.
    pub fn route(&self, name: &str) -> Option<(RouteSpec, Vec<BackendSpec>)> {
        self.lock().routes.get(name).cloned()
    }

    /// The table generation.
    pub fn generation(&self) -> u64 {
        self.lock().routes.generation()
    }

    /// Waits up to `wait` for a table newer than `after`.
    pub async fn wait_newer(&self, after: u64, wait: Duration) -> Option<Snapshot> {
        let mut rx = self.table_tx.subscribe();
        let newer = async {
            let _ = rx.wait_for(|g| *g > after).await;
        };
        if self.generation() <= after {
            let _ = tokio::time::timeout(wait, newer).await;
        }
        (self.generation() > after).then(|| self.snapshot())
    }

    /// Bumps when a proxy joins, leaves or restarts, and when the last expected proxy applies a
    /// published generation.
    pub fn subscribe_activity(&self) -> watch::Receiver<u64> {
        self.activity.subscribe()
    }

    fn bump(&self) {
        self.activity.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// A signal on every report merged, for verdicts that weigh each report as it comes.
    pub fn subscribe_reports(&self) -> watch::Receiver<u64> {
        self.reports.subscribe()
    }

    /// A changed-table signal, for waking rollout decisions.
    pub fn subscribe_table(&self) -> watch::Receiver<u64> {
        self.table_tx.subscribe()
    }

    /// A poll from a proxy: renews its lease.
    pub fn polled(&self, proxy: &str, now: Time) {
        self.lock().fleet.polled(proxy, now);
    }

    /// A poll that says its proxy's instance applied the table at `generation`: records the
    /// routes it holds at the generation served now, as a report would. The next poll is
    /// the proxy's acknowledgement, as in Envoy's xDS, and costs no request of its own.
    /// Errors when `generation` was never given.
    pub fn acknowledged(
        &self,
        proxy: &str,
        instance: &str,
        generation: u64,
        now: Time,
    ) -> Result<(), FieldError> {
        let mut guard = self.lock();
        let s = &mut *guard;
        if !s.routes.was_given(generation) {
            return Err(FieldError::new(
                "applied",
                format!("{generation} was never published"),
            ));
        }
        let arrival = s.fleet.acknowledged(
            proxy,
            instance,
            generation,
            s.routes.unchanged_since(generation),
            now,
        );
        drop(guard);
        if arrival == Arrival::News {
            self.bump();
        }
        Ok(())
    }

    /// A report: renews the lease, records what the proxy applied and counted. A report
    /// that is not of the known shape ([`check_report`]) changes nothing, and neither does one
    /// with only the changed pairs from an instance whose earlier report is not here.
    pub fn report(&self, r: Report, now: Time) -> Result<(), ReportRefused> {
        let mut s = self.lock();
        check_report(&s, &r).map_err(ReportRefused::Invalid)?;
        if r.changes_only
            && !(s.fleet.instance(&r.proxy) == Some(r.instance.as_str())
                && s.counters.holds(&r.proxy))
        {
            return Err(ReportRefused::NoEarlierReport);
        }
        let arrival = s
            .fleet
            .reported(&r.proxy, &r.instance, r.table_generation, r.applied, now);
        let stats = r
            .stats
            .into_iter()
            .map(|p| ((p.route, p.revision), (p.totals, p.in_flight)))
            .collect();
        s.counters.record(
            &r.proxy,
            stats,
            r.changes_only,
            arrival == Arrival::Restarted,
            now,
        );
        drop(s);
        self.reports.send_modify(|v| *v = v.wrapping_add(1));
        // a decision waits for every expected proxy: the reports before the last one it waits
        // for wake nothing (the shown count of proxies that applied a generation moves with the
        // next tick)
        if matches!(arrival, Arrival::News | Arrival::Restarted) {
            self.bump();
        }
        Ok(())
    }

    /// Acknowledgement latencies of recent generations, oldest first.
    pub fn ack_latencies(&self) -> Vec<AckLatency> {
        self.lock().fleet.latencies()
    }

    /// A proxy leaving on purpose.
    pub fn unsubscribe(&self, u: &Unsubscribe, now: Time) {
        let left = self.lock().fleet.unsubscribe(&u.proxy, &u.instance, now);
        if left {
            self.bump();
        }
    }

    /// Records the proxies whose lease ended as gone, with an event each.
    pub fn expire(&self, now: Time) {
        let any = self.lock().fleet.expire(now);
        if any {
            self.bump();
        }
    }

    /// (expected proxies, those that applied at least `generation` of `route`).
    pub fn acknowledgements(&self, route: &str, generation: u64, now: Time) -> (u32, u32) {
        self.lock().fleet.acknowledgements(route, generation, now)
    }

    /// Every proxy.
    pub fn proxies(&self, now: Time) -> Vec<ProxyView> {
        self.lock().fleet.views(now)
    }

    /// Events, oldest first.
    pub fn events(&self) -> Vec<HubEvent> {
        self.lock().fleet.events()
    }

    /// Counters of a (route, revision) since the start, summed over proxies, and requests in
    /// flight now.
    pub fn merged(&self, route: &str, revision: &str) -> (Totals, u64) {
        let s = self.lock();
        let pair = (route.to_owned(), revision.to_owned());
        s.counters.merged(&pair, |p| s.fleet.present(p))
    }

    /// Requests of a (route, revision) in flight now at the proxies still there: what
    /// [`Hub::merged`] says, without summing the counters (every tick asks, for every rollout).
    pub fn in_flight(&self, route: &str, revision: &str) -> u64 {
        let s = self.lock();
        let pair = (route.to_owned(), revision.to_owned());
        s.counters.in_flight(&pair, |p| s.fleet.present(p))
    }

    /// The canary's share (percent) of `route` as served by a proxy that applied `generation`
    /// of it: the weight published at the newest generation not past it; `None` when that
    /// is no longer known (published before the hub's start and changed since).
    pub fn weight_at(&self, route: &str, generation: u64) -> Option<f64> {
        let s = self.lock();
        if let Some((_, w)) = s
            .weights
            .get(route)
            .and_then(|k| k.range(..=generation).next_back())
        {
            return Some(w.0);
        }
        // the route as persisted before this start
        let (spec, _) = s.routes.get(route)?;
        (spec.generation.unwrap_or(0) <= generation).then(|| share_of(spec))
    }

    /// When the canary's share of `route` changed since `since`, and to what (percent), as
    /// published (the moments the dashboard marks).
    pub fn weight_changes(&self, route: &str, since: Time) -> Vec<(Time, f64)> {
        let s = self.lock();
        let mut out: Vec<(Time, f64)> = Vec::new();
        let mut last = None;
        for (share, at) in s.weights.get(route).into_iter().flat_map(|k| k.values()) {
            if last != Some(*share) && *at >= since {
                out.push((*at, *share));
            }
            last = Some(*share);
        }
        out
    }

    /// A (route, revision)'s figures since `since`, a point per `step` at least.
    pub fn series(
        &self,
        route: &str,
        revision: &str,
        since: Time,
        step: Duration,
    ) -> Vec<counters::Point> {
        self.lock()
            .counters
            .series(&(route.to_owned(), revision.to_owned()), since, step)
    }

    /// Samples every pair's merged counters (call about once a second).
    pub fn sample(&self, now: Time) {
        self.lock().counters.sample(now);
    }
}

impl CounterWindow for Hub {
    fn steps(&self, route: &str, since: Time) -> Vec<crate::providers::Step> {
        self.lock().counters.steps_since(route, since)
    }

    /// Counters of a (route, revision) over the last `window`: now minus the sample taken
    /// `window` ago (or the oldest one). Also returns the covered span.
    fn window(
        &self,
        route: &str,
        revision: &str,
        window: Duration,
        now: Time,
    ) -> (Totals, Duration) {
        let pair = (route.to_owned(), revision.to_owned());
        self.lock().counters.window(&pair, window, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_api::protocol::PairReport;
    use std::collections::BTreeMap;

    fn route(name: &str, weight: u32) -> RouteSpec {
        RouteSpec::new(name, "a").with_canary("b", weight)
    }

    fn totals(ok: u64, bad: u64) -> Totals {
        let mut t = Totals::default();
        t.by_class[1] = ok;
        t.by_class[4] = bad;
        t.buckets[10] = ok + bad;
        t
    }

    fn backend(rev: &str) -> BackendSpec {
        BackendSpec::new(format!("b-{rev}"), vec!["127.0.0.1:1".into()]).of_revision(rev)
    }

    /// A hub that published route `r` (revision `h`) six times: generations 1 to 6.
    fn hub_with_route(config: HubConfig) -> Hub {
        let hub = Hub::open(config).unwrap();
        for w in 1..=6 {
            hub.publish(route("r", w), vec![backend("h")], Time(0))
                .unwrap();
        }
        hub
    }

    fn report(proxy: &str, instance: &str, applied: u64, ok: u64, bad: u64) -> Report {
        Report {
            proxy: proxy.into(),
            instance: instance.into(),
            table_generation: applied,
            applied: Some(BTreeMap::from([("r".to_owned(), applied)])),
            stats: vec![PairReport {
                route: "r".into(),
                revision: "h".into(),
                totals: totals(ok, bad),
                in_flight: 1,
            }],
            changes_only: false,
        }
    }

    #[test]
    fn the_weight_a_proxy_serves_is_the_one_published_at_the_generation_it_applied() {
        let hub = Hub::open(HubConfig::default()).unwrap();
        let g1 = hub
            .publish(route("r", 20), vec![backend("h")], Time(1_000))
            .unwrap();
        let g2 = hub
            .publish(RouteSpec::new("other", "a"), vec![], Time(1_500))
            .unwrap();
        let g3 = hub
            .publish(route("r", 50), vec![backend("h")], Time(2_000))
            .unwrap();
        let g4 = hub
            .publish(RouteSpec::new("r", "a"), vec![backend("h")], Time(3_000))
            .unwrap();
        assert_eq!(hub.weight_at("r", g1), Some(20.0));
        assert_eq!(
            hub.weight_at("r", g2),
            Some(20.0),
            "another route's generation"
        );
        assert_eq!(hub.weight_at("r", g3), Some(50.0));
        assert_eq!(hub.weight_at("r", g4), Some(0.0), "no canary");
        assert_eq!(hub.weight_at("r", g1 - 1), None, "before it was published");
        assert_eq!(
            hub.weight_changes("r", Time(1_500)),
            vec![(Time(2_000), 50.0), (Time(3_000), 0.0)]
        );
        assert_eq!(hub.weight_changes("r", Time(0)).len(), 3);
    }

    #[test]
    fn generations_only_grow_and_survive_a_restart() {
        let dir = std::env::temp_dir().join(format!("sluice-hub-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("routes.json");
        let _ = std::fs::remove_file(&file);
        let cfg = HubConfig {
            store: Some(Arc::new(FileStore(file.clone()))),
            ..Default::default()
        };
        let hub = Hub::open(cfg.clone()).unwrap();
        assert_eq!(hub.publish(route("r", 10), vec![], Time(0)).unwrap(), 1);
        assert_eq!(
            hub.publish(route("r", 10), vec![], Time(0)).unwrap(),
            1,
            "unchanged keeps its generation"
        );
        assert_eq!(hub.publish(route("r", 20), vec![], Time(0)).unwrap(), 2);
        assert_eq!(hub.publish(route("q", 5), vec![], Time(0)).unwrap(), 3);
        assert_eq!(hub.snapshot().generation, 3);
        drop(hub);
        let hub = Hub::open(cfg).unwrap();
        assert_eq!(hub.snapshot().generation, 3);
        assert_eq!(hub.snapshot().table.routes.len(), 2);
        assert_eq!(
            hub.publish(route("r", 30), vec![], Time(0)).unwrap(),
            4 + RESTART_GAP,
            "a reopened hub starts past any generation an unpersisted abort may have used"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_abort_is_served_when_the_disk_refuses_it_and_nothing_else_is() {
        let dir = tempfile_dir("unwritable");
        let state = dir.join("state");
        let hub = Hub::open(HubConfig {
            store: Some(Arc::new(FileStore(state.join("routes.json")))),
            ..Default::default()
        })
        .unwrap();
        // the state directory becomes a file: every write fails, whoever runs the test
        std::fs::write(&state, b"").unwrap();
        assert!(hub.publish(route("r", 20), vec![], Time(0)).is_err());
        assert_eq!(hub.generation(), 0, "a refused publish is not served");
        let (g, unpersisted) = hub.publish_abort(route("r", 0), vec![], Time(0));
        assert_eq!(g, 1);
        assert!(unpersisted.is_some_and(|e| e.contains("cannot write")));
        assert_eq!(hub.snapshot().generation, 1, "the proxies get the abort");
        assert_eq!(hub.snapshot().table.routes[0].weight, 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("sluice-hub-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn expected_set_follows_leases_and_acknowledgements() {
        let hub = hub_with_route(HubConfig {
            required: BTreeSet::from(["p3".to_owned()]),
            ..Default::default()
        });
        let t0 = Time(1_000_000);
        hub.report(report("p1", "i1", 5, 0, 0), t0).unwrap();
        hub.report(report("p2", "i2", 4, 0, 0), t0).unwrap();
        assert_eq!(
            hub.acknowledgements("r", 5, t0),
            (3, 1),
            "p3 is required but silent"
        );
        hub.report(report("p3", "i3", 5, 0, 0), t0).unwrap();
        assert_eq!(hub.acknowledgements("r", 4, t0), (3, 3));
        assert_eq!(hub.acknowledgements("r", 5, t0), (3, 2));
        // p2 stops reporting: after its lease it leaves the expected set, with an event
        let later = t0.plus(Duration::from_secs(11));
        hub.report(report("p1", "i1", 5, 0, 0), later).unwrap();
        hub.report(report("p3", "i3", 5, 0, 0), later).unwrap();
        hub.expire(later);
        assert_eq!(hub.acknowledgements("r", 5, later), (2, 2));
        assert!(
            hub.events()
                .iter()
                .any(|e| e.reason == ProxyReason::ProxyLeaseExpired && e.message.contains("p2"))
        );
        // unsubscribing leaves at once, but a required proxy stays expected: it applied 5,
        // and nobody will apply 6 for it
        hub.unsubscribe(
            &Unsubscribe {
                proxy: "p3".into(),
                instance: "i3".into(),
            },
            later,
        );
        assert_eq!(hub.acknowledgements("r", 5, later), (2, 2));
        assert_eq!(hub.acknowledgements("r", 6, later), (2, 0));
        hub.report(report("p1", "i1", 6, 0, 0), later).unwrap();
        assert_eq!(hub.acknowledgements("r", 6, later), (2, 1));
    }

    #[test]
    fn a_poll_acknowledges_the_routes_its_instance_holds_of_the_table_it_applied() {
        let hub = hub_with_route(HubConfig::default());
        let t0 = Time(1_000);
        let g7 = hub
            .publish(RouteSpec::new("other", "a"), vec![], t0)
            .unwrap();
        hub.report(report("p1", "i1", 6, 0, 0), t0).unwrap();
        hub.report(report("p2", "i2", 6, 0, 0), t0).unwrap();
        let mut activity = hub.subscribe_activity();
        activity.mark_unchanged();
        // p1 applied the table at 7: both routes, r at 6 and other at 7
        hub.acknowledged("p1", "i1", g7, t0).unwrap();
        assert_eq!(hub.acknowledgements("other", g7, t0), (2, 1));
        assert_eq!(hub.acknowledgements("r", 6, t0), (2, 2));
        assert!(
            !activity.has_changed().unwrap(),
            "p2 has not: nothing to decide"
        );
        // an acknowledgement from another instance, or of a table never given, counts nothing
        hub.acknowledged("p2", "old", g7, t0).unwrap();
        assert_eq!(hub.acknowledgements("other", g7, t0), (2, 1));
        let never = hub.acknowledged("p2", "i2", g7 + 1, t0).unwrap_err();
        assert_eq!(never.path, "applied");
        hub.acknowledged("p2", "i2", g7, t0).unwrap();
        assert_eq!(hub.acknowledgements("other", g7, t0), (2, 2));
        assert!(
            activity.has_changed().unwrap(),
            "the last one wakes decisions"
        );
        assert_eq!(
            hub.ack_latencies()
                .last()
                .map(|a| (a.generation, a.proxies)),
            Some((g7, 2))
        );
        // a route published again after the table a proxy applied is not acknowledged by it
        let g8 = hub.publish(route("r", 90), vec![backend("h")], t0).unwrap();
        hub.acknowledged("p1", "i1", g7, t0).unwrap();
        assert_eq!(hub.acknowledgements("r", g8, t0), (2, 0));
        hub.acknowledged("p1", "i1", g8, t0).unwrap();
        assert_eq!(hub.acknowledgements("r", g8, t0), (2, 1));
        // a report sent before the proxy applied 8 and taken after its poll said so does
        // not take the acknowledgement back
        hub.report(report("p1", "i1", 7, 0, 0), t0).unwrap();
        assert_eq!(hub.acknowledgements("r", g8, t0), (2, 1));
    }

    #[test]
    fn a_report_of_changes_only_adds_to_the_earlier_one_of_its_instance_or_is_refused() {
        let hub = hub_with_route(HubConfig::default());
        let t0 = Time(0);
        let requests = || hub.merged("r", "h").0.requests();
        let partial = |instance: &str, ok: u64, pairs: bool| {
            let mut r = report("p1", instance, 6, ok, 0);
            r.changes_only = true;
            if !pairs {
                r.stats.clear();
            }
            r
        };
        assert!(matches!(
            hub.report(partial("i1", 10, true), t0),
            Err(ReportRefused::NoEarlierReport)
        ));
        assert_eq!(requests(), 0, "refused: nothing taken");
        hub.report(report("p1", "i1", 6, 10, 0), t0).unwrap();
        hub.report(partial("i1", 0, false), t0).unwrap();
        assert_eq!(requests(), 10, "a pair left out keeps its counters");
        hub.report(partial("i1", 15, true), t0).unwrap();
        assert_eq!(requests(), 15, "a pair sent replaces them");
        assert!(
            matches!(
                hub.report(partial("i2", 1, true), t0),
                Err(ReportRefused::NoEarlierReport)
            ),
            "another instance sends every pair first"
        );
        assert_eq!(requests(), 15);
    }

    #[test]
    fn reports_of_another_shape_are_refused_whole() {
        let hub = hub_with_route(HubConfig::default());
        let t0 = Time(0);
        hub.report(report("p1", "i1", 6, 10, 0), t0).unwrap();
        let refused = |r: Report| -> Vec<String> {
            let before = hub.merged("r", "h");
            let e = hub.report(r, t0).unwrap_err();
            assert_eq!(
                hub.merged("r", "h"),
                before,
                "a refused report changes nothing"
            );
            match e {
                ReportRefused::Invalid(e) => e.into_iter().map(|f| f.to_string()).collect(),
                ReportRefused::NoEarlierReport => panic!("not a shape error"),
            }
        };
        // a million buckets (memory), or a few: exactly the proxies' count
        let mut r = report("p1", "i1", 6, 10, 0);
        r.stats[0].totals.buckets = vec![0; 1_000_000];
        assert_eq!(
            refused(r),
            ["stats[0].totals.buckets: 1000000 entries; a report has exactly 88"]
        );
        // a full report says what it applied
        let mut r = report("p1", "i1", 6, 10, 0);
        r.applied = None;
        assert_eq!(
            refused(r),
            ["applied: missing: only a changes_only report may leave it out"]
        );
        // routes, revisions and generations the hub never published
        let mut r = report("p1", "i1", 6, 10, 0);
        r.stats[0].route = "other".into();
        let applied = r.applied.get_or_insert_default();
        applied.insert("ghost".into(), 1);
        applied.insert("r".into(), 99);
        r.table_generation = 99;
        assert_eq!(
            refused(r),
            [
                "table_generation: 99 was never published",
                "applied.ghost: no route of that name is published",
                "applied.r: generation 99 was never published",
                "stats[0].route: no route of that name is published",
            ]
        );
        let mut r = report("p1", "i1", 6, 10, 0);
        r.stats[0].revision = "forged".into();
        r.stats.push(report("p1", "i1", 6, 10, 0).stats[0].clone());
        r.stats.push(report("p1", "i1", 6, 10, 0).stats[0].clone());
        assert_eq!(
            refused(r),
            [
                "stats[0].revision: \"forged\" is not a revision of route \"r\"",
                "stats[2].revision: this pair is reported twice",
            ]
        );
        // absurd counters: more timed or failed responses than responses, ids of any text
        let mut r = report("p1 x", "", 6, 10, 0);
        r.stats[0].totals.buckets[3] = 1_000;
        r.stats[0].totals.errors[0] = u64::MAX;
        assert_eq!(
            refused(r),
            [
                "proxy: must be 1 to 253 letters, digits, '-', '_', '.' or ':'",
                "instance: must be 1 to 253 letters, digits, '-', '_', '.' or ':'",
                "stats[0].totals.buckets: more timed responses than responses",
                "stats[0].totals.errors: more upstream errors than responses",
            ]
        );
        // a counter going down is refused, unless a new instance says it started again
        assert_eq!(
            refused(report("p1", "i1", 6, 3, 0)),
            ["stats[0].totals.by_class[1]: went down without a new instance"]
        );
        hub.report(report("p1", "i2", 6, 3, 0), t0).unwrap();
        assert_eq!(hub.merged("r", "h").0.requests(), 13);
    }

    #[test]
    fn a_proxy_a_generation_behind_may_still_count_the_old_revision() {
        let hub = hub_with_route(HubConfig::default());
        hub.publish(route("r", 50), vec![backend("next")], Time(0))
            .unwrap();
        let mut r = report("p1", "i1", 6, 1, 0);
        r.stats.push(PairReport {
            revision: "next".into(),
            ..r.stats[0].clone()
        });
        hub.report(r, Time(0)).unwrap();
    }

    #[test]
    fn merged_counters_saturate_instead_of_wrapping() {
        let hub = hub_with_route(HubConfig::default());
        hub.report(report("p1", "a", 6, u64::MAX - 1, 0), Time(0))
            .unwrap();
        hub.report(report("p2", "b", 6, 5, 0), Time(0)).unwrap();
        assert_eq!(hub.merged("r", "h").0.by_class[1], u64::MAX);
    }

    #[test]
    fn merged_counters_survive_a_proxy_restart() {
        let hub = hub_with_route(HubConfig::default());
        let t0 = Time(0);
        hub.report(report("p1", "a", 1, 90, 10), t0).unwrap();
        hub.report(report("p2", "b", 1, 50, 0), t0).unwrap();
        hub.sample(t0);
        assert_eq!(hub.merged("r", "h").0.requests(), 150);
        assert_eq!(hub.merged("r", "h").1, 2);
        // p1 restarts: its counters start from zero; nothing it counted before is lost
        let t1 = Time(10_000);
        hub.report(report("p1", "c", 1, 5, 0), t1).unwrap();
        let (t, _) = hub.merged("r", "h");
        assert_eq!(t.requests(), 155);
        assert_eq!(t.by_class[4], 10);
        // the window counts only what came after the sample
        let (w, span) = hub.window("r", "h", Duration::from_secs(10), t1);
        assert_eq!(w.requests(), 5);
        assert_eq!(span, Duration::from_secs(10));
    }
}
