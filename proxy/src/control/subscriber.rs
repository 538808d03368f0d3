//! Keeps a proxy subscribed to its controller: holds the long poll for route snapshots,
//! applies each (validated, swapped) and acknowledges it with the next poll (as Envoy's xDS
//! does: no request of its own), reports every second (sooner while a canary's counters
//! move, and a report with nothing new only to renew the lease), caches the last good table
//! on disk ([`cache`], in a task of its own: a slow disk never holds back the next poll, and
//! tables that come faster than the disk writes them are written newest only), and
//! unsubscribes on shutdown.
//!
//! Guarantees: a proxy that loses its controller keeps serving its last table and reconnects
//! with exponential backoff and jitter; a proxy that cannot reach its controller at start
//! serves the table it cached; it reports ready only once it has a table.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{Notify, watch};

use crate::config::parse_json;
use crate::control::cache::{self, TableCache};
use crate::control::report;
use crate::state::Shared;
use sluice_api::protocol::{PairReport, Report, Snapshot, Unsubscribe};

/// How a proxy subscribes.
#[derive(Debug, Clone)]
pub struct SubscribeOptions {
    /// Base URL of the controller's control API, e.g. `http://127.0.0.1:9700`.
    pub url: String,
    /// This proxy's id.
    pub proxy_id: String,
    /// Bearer token for reports and unsubscribing.
    pub token: Option<String>,
    /// Where the last good table is cached.
    pub cache_dir: Option<PathBuf>,
    /// Time between reports.
    pub report_interval: Duration,
    /// Time between reports while a canary takes traffic (a route of the table has a canary
    /// with a weight): the controller weighs each report as it comes, so a bad canary is
    /// seen this much sooner.
    pub canary_report_interval: Duration,
    /// How long the controller may hold a poll.
    pub poll_wait: Duration,
}

struct Subscriber {
    shared: Arc<Shared>,
    opts: SubscribeOptions,
    instance: String,
    client: sluice_io::http::HttpClient,
    report_now: Notify,
    /// What the controller holds of this proxy's counters (`None`: send every pair).
    taken: std::sync::Mutex<Option<report::Taken>>,
    /// The newest table applied, for the cache writer (when there is a cache).
    to_cache: Option<watch::Sender<Option<Snapshot>>>,
}

/// Starts the subscription on a thread of its own with a single-threaded event loop, so that
/// a table's arrival wakes that one thread, and nothing else on the control runtime (the
/// admin API, a metrics scrape of a big table, health checks) can hold it back. The receiver
/// resolves when the subscription has ended (after `shutdown`).
pub fn spawn(
    shared: Arc<Shared>,
    opts: SubscribeOptions,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<tokio::sync::oneshot::Receiver<()>> {
    let (ended, done) = tokio::sync::oneshot::channel();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("sluice-control".into())
        .spawn(move || {
            runtime.block_on(run(shared, opts, shutdown));
            // a cache write still blocked on the disk is not waited for past this
            runtime.shutdown_timeout(Duration::from_secs(1));
            let _ = ended.send(());
        })?;
    Ok(done)
}

/// Runs the subscription until `shutdown` turns true, then unsubscribes.
pub async fn run(shared: Arc<Shared>, opts: SubscribeOptions, mut shutdown: watch::Receiver<bool>) {
    shared.set_controlled(true);
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(2)));
    let (to_cache, cache_writer) = match &opts.cache_dir {
        Some(dir) => {
            let (tx, rx) = watch::channel(None);
            (Some(tx), Some(tokio::spawn(cache_loop(dir.clone(), rx))))
        }
        None => (None, None),
    };
    let sub = Arc::new(Subscriber {
        shared,
        instance: format!("{:016x}", rand::random::<u64>()),
        client: Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector),
        opts,
        report_now: Notify::new(),
        taken: std::sync::Mutex::new(None),
        to_cache,
    });
    let reporter = tokio::spawn(sub.clone().report_loop());
    let poller = tokio::spawn(sub.clone().poll_loop());
    let _ = shutdown.wait_for(|s| *s).await;
    poller.abort();
    reporter.abort();
    let _ = (poller.await, reporter.await);
    sub.unsubscribe().await;
    // the last holder of the sender: the writer writes the newest table left, then ends
    drop(sub);
    if let Some(writer) = cache_writer
        && tokio::time::timeout(Duration::from_secs(2), writer)
            .await
            .is_err()
    {
        tracing::warn!("the table cache was still being written at shutdown");
    }
}

/// Writes each newest table applied to the cache (synced, off the runtime's threads), one
/// write at a time, until the subscriber is gone.
async fn cache_loop(dir: PathBuf, mut newest: watch::Receiver<Option<Snapshot>>) {
    let mut cache = Some(TableCache::open(&dir));
    while newest.changed().await.is_ok() {
        let Some(snapshot) = newest.borrow_and_update().clone() else {
            continue;
        };
        let Some(mut writer) = cache.take() else {
            return;
        };
        let written = tokio::task::spawn_blocking(move || {
            let r = writer.write(&snapshot);
            (writer, r)
        })
        .await;
        match written {
            Ok((writer, r)) => {
                cache = Some(writer);
                if let Err(e) = r {
                    tracing::warn!(error = %e, dir = %dir.display(), "cannot cache the table");
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "the table cache writer failed; no longer caching");
                return;
            }
        }
    }
}

impl Subscriber {
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), String> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.opts.url.trim_end_matches('/')));
        if let Some(t) = &self.opts.token {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| e.to_string())?;
        sluice_io::http::exchange(&self.client, req, timeout)
            .await
            .map_err(|e| e.to_string())
    }

    async fn poll_loop(self: Arc<Self>) {
        let mut after = 0u64;
        let mut backoff = Backoff::new();
        let mut first = true;
        // a table applied, to acknowledge with the next poll: the generation, and the routes'
        // generations the controller then holds
        let mut ack: Option<(u64, BTreeMap<String, u64>)> = None;
        loop {
            let wait = if first {
                Duration::ZERO
            } else {
                self.opts.poll_wait
            };
            let mut path = format!(
                "/v1/routes?proxy={}&after={after}&wait={}",
                self.opts.proxy_id,
                wait.as_secs()
            );
            if let Some((g, applied)) = &ack {
                path.push_str(&format!("&instance={}&applied={g}", self.instance));
                // taken as the poll arrives, long before it is answered: reports from now
                // on need not say it again
                if let Some(taken) = self.taken().as_mut() {
                    taken.acknowledged(applied.clone());
                }
            }
            let result = self
                .send(Method::GET, &path, None, wait + Duration::from_secs(10))
                .await;
            let refused = !matches!(&result, Ok((status, _)) if status.is_success());
            if ack.take().is_some() && refused {
                // perhaps not taken: a report says it instead, now
                if let Some(taken) = self.taken().as_mut() {
                    taken.forget_applied();
                }
                self.report_now.notify_one();
            }
            match result {
                Ok((StatusCode::OK, body)) => {
                    backoff.reset();
                    match parse_json::<Snapshot>(&body) {
                        Ok(snapshot) => {
                            after = snapshot.generation;
                            if self.apply(snapshot).await {
                                // the controller holds this instance's reports: the next
                                // poll says what it applied; else a report says it, now
                                if self.taken().is_some() {
                                    ack = Some((after, self.applied()));
                                } else {
                                    self.report_now.notify_one();
                                }
                            }
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "controller sent an unreadable snapshot")
                        }
                    }
                }
                Ok((StatusCode::NO_CONTENT, _)) => backoff.reset(),
                Ok((status, body)) => {
                    tracing::warn!(%status, body = %String::from_utf8_lossy(&body), "controller refused the poll");
                    tokio::time::sleep(backoff.next()).await;
                }
                Err(e) => {
                    if first {
                        self.start_from_cache().await;
                    }
                    tracing::warn!(error = %e, "controller unreachable; serving the last table");
                    tokio::time::sleep(backoff.next()).await;
                }
            }
            first = false;
        }
    }

    /// Applies a table from the controller; true when it now serves it.
    async fn apply(&self, snapshot: Snapshot) -> bool {
        let generation = snapshot.generation;
        match self.shared.apply(snapshot.table.clone()).await {
            Ok(_) => {
                self.shared.set_ready(true);
                tracing::info!(generation, "applied the controller's table");
                if let Some(to_cache) = &self.to_cache {
                    to_cache.send_replace(Some(snapshot));
                }
                true
            }
            Err(e) => {
                tracing::error!(generation, error = %e, "refused the controller's table; keeping the last one");
                false
            }
        }
    }

    async fn start_from_cache(&self) {
        let Some(dir) = &self.opts.cache_dir else {
            return;
        };
        if self.shared.is_ready() {
            return;
        }
        match cache::read(dir) {
            Ok(Some(snapshot)) => {
                let generation = snapshot.generation;
                match self.shared.apply(snapshot.table).await {
                    Ok(_) => {
                        self.shared.set_ready(true);
                        tracing::warn!(
                            generation,
                            "controller unreachable at start: serving the cached table"
                        );
                    }
                    Err(e) => tracing::error!(error = %e, "the cached table is invalid"),
                }
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "cannot read the cached table"),
        }
    }

    fn report(&self) -> Report {
        let table = self.shared.table();
        let mut stats = Vec::new();
        for r in table.routes() {
            for t in &r.targets {
                stats.push(PairReport {
                    route: r.name.clone(),
                    revision: t.backend.revision.clone(),
                    totals: t.telemetry.stats.totals(),
                    in_flight: t
                        .backend
                        .endpoints
                        .iter()
                        .map(|e| e.in_flight.load(Relaxed) as u64)
                        .sum(),
                });
            }
        }
        Report {
            proxy: self.opts.proxy_id.clone(),
            instance: self.instance.clone(),
            table_generation: table
                .routes()
                .iter()
                .map(|r| r.generation)
                .max()
                .unwrap_or(0),
            applied: Some(applied_of(&table)),
            stats,
            changes_only: false,
        }
    }

    /// The generation of each route served now.
    fn applied(&self) -> BTreeMap<String, u64> {
        applied_of(&self.shared.table())
    }

    fn taken(&self) -> std::sync::MutexGuard<'_, Option<report::Taken>> {
        self.taken
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The time until the next report: shorter while a canary takes traffic (it has a weight,
    /// and the counters moved within the normal interval).
    fn report_period(&self, since_counted: Option<Duration>) -> Duration {
        let live = counting(since_counted, self.opts.report_interval)
            && self
                .shared
                .table()
                .routes()
                .iter()
                .any(|r| r.canary.is_some() && r.weight > 0);
        report_period(
            live,
            self.opts.report_interval,
            self.opts.canary_report_interval,
        )
    }

    async fn report_loop(self: Arc<Self>) {
        let mut last_sent: Option<tokio::time::Instant> = None;
        // when a report last carried counters that moved
        let mut last_counted: Option<tokio::time::Instant> = None;
        loop {
            let period = self.report_period(last_counted.map(|t| t.elapsed()));
            tokio::select! {
                () = tokio::time::sleep(period) => {}
                () = self.report_now.notified() => {}
            }
            if !self.shared.is_ready() {
                continue;
            }
            let full = self.report();
            let holds = report::taken(&full);
            let sent = report::only_changes(full, self.taken().as_ref());
            if !worth_sending(
                &sent,
                last_sent.map(|t| t.elapsed()),
                self.opts.report_interval,
            ) {
                continue;
            }
            last_sent = Some(tokio::time::Instant::now());
            if !sent.stats.is_empty() {
                last_counted = last_sent;
            }
            let body = match serde_json::to_vec(&sent) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "cannot encode a report");
                    continue;
                }
            };
            match self
                .send(
                    Method::POST,
                    "/v1/report",
                    Some(body),
                    Duration::from_secs(5),
                )
                .await
            {
                Ok((s, _)) if s.is_success() => *self.taken() = Some(holds),
                // the controller has no earlier report of this instance (it restarted): every
                // pair, at once
                Ok((StatusCode::CONFLICT, _)) if sent.changes_only => {
                    *self.taken() = None;
                    self.report_now.notify_one();
                }
                Ok((s, body)) => {
                    tracing::warn!(status = %s, body = %String::from_utf8_lossy(&body), "report refused")
                }
                Err(e) => tracing::debug!(error = %e, "report not delivered"),
            }
        }
    }

    async fn unsubscribe(&self) {
        let body = serde_json::to_vec(&Unsubscribe {
            proxy: self.opts.proxy_id.clone(),
            instance: self.instance.clone(),
        })
        .unwrap_or_default();
        match self
            .send(
                Method::POST,
                "/v1/unsubscribe",
                Some(body),
                Duration::from_secs(2),
            )
            .await
        {
            Ok((s, _)) if s.is_success() => tracing::info!("unsubscribed from the controller"),
            Ok((s, _)) => tracing::warn!(status = %s, "unsubscribe refused"),
            Err(e) => tracing::warn!(error = %e, "could not unsubscribe"),
        }
    }
}

/// The generation of each route of `table`.
fn applied_of(table: &crate::RouteTable) -> BTreeMap<String, u64> {
    table
        .routes()
        .iter()
        .map(|r| (r.name.clone(), r.generation))
        .collect()
}

/// Whether a report goes out now. One with something new always does. One with nothing new
/// (changes only, and none) only renews the proxy's lease, so it waits for the normal interval
/// since the last report sent: a hundred proxies with an idle canary would otherwise send the
/// controller a thousand empty reports a second.
fn worth_sending(sent: &Report, since_last_sent: Option<Duration>, normal: Duration) -> bool {
    let nothing_new = sent.changes_only && sent.stats.is_empty() && sent.applied.is_none();
    !nothing_new || since_last_sent.is_none_or(|t| t >= normal)
}

/// Whether counters moved within the normal interval (`since_counted`: since a report last
/// carried some). A canary that takes no requests has nothing to weigh: its proxies report at
/// the normal interval until its counters move, then at the canary's.
fn counting(since_counted: Option<Duration>, normal: Duration) -> bool {
    since_counted.is_some_and(|t| t < normal)
}

/// The time between two reports: `canary` while a canary takes traffic (never longer than
/// `normal`), else `normal`; at least 10 ms either way.
fn report_period(canary_live: bool, normal: Duration, canary: Duration) -> Duration {
    let period = if canary_live {
        canary.min(normal)
    } else {
        normal
    };
    period.max(Duration::from_millis(10))
}

/// Exponential backoff from 100 ms to 1 s, with ±50 % jitter: a proxy is back on its
/// controller within about a second and a half of the controller's return (a restarted
/// controller needs its proxies' acknowledgements before a rollout moves on), at the cost of at
/// most one or two attempts a second from each proxy while it is away.
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Self {
            next: Duration::from_millis(100),
        }
    }

    fn reset(&mut self) {
        self.next = Duration::from_millis(100);
    }

    fn next(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(Duration::from_secs(1));
        let jitter = rand::random_range(0.5..1.5);
        base.mul_f64(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_come_sooner_while_a_canary_takes_traffic() {
        let ms = Duration::from_millis;
        assert_eq!(report_period(false, ms(1000), ms(100)), ms(1000));
        assert_eq!(report_period(true, ms(1000), ms(100)), ms(100));
        // never slower than the normal interval, never a busy loop
        assert_eq!(report_period(true, ms(50), ms(100)), ms(50));
        assert_eq!(report_period(true, ms(1000), ms(0)), ms(10));
        assert_eq!(report_period(false, ms(0), ms(0)), ms(10));
    }

    #[test]
    fn a_canary_is_reported_on_sooner_only_while_its_counters_move() {
        let ms = Duration::from_millis;
        assert!(!counting(None, ms(1000)), "never counted");
        assert!(counting(Some(ms(0)), ms(1000)));
        assert!(counting(Some(ms(999)), ms(1000)));
        assert!(!counting(Some(ms(1000)), ms(1000)), "idle for an interval");
    }

    #[test]
    fn a_report_with_nothing_new_waits_for_the_normal_interval() {
        let ms = Duration::from_millis;
        let mut quiet = Report {
            proxy: "p".into(),
            instance: "i".into(),
            table_generation: 1,
            applied: None,
            stats: Vec::new(),
            changes_only: true,
        };
        assert!(!worth_sending(&quiet, Some(ms(100)), ms(1000)));
        assert!(!worth_sending(&quiet, Some(ms(999)), ms(1000)));
        assert!(worth_sending(&quiet, Some(ms(1000)), ms(1000)), "the lease");
        assert!(worth_sending(&quiet, None, ms(1000)), "nothing sent yet");
        let mut applied = quiet.clone();
        applied.applied = Some(Default::default());
        assert!(
            worth_sending(&applied, Some(ms(1)), ms(1000)),
            "a generation"
        );
        let mut counted = quiet.clone();
        counted.stats.push(PairReport {
            route: "r".into(),
            revision: "h".into(),
            totals: Default::default(),
            in_flight: 0,
        });
        assert!(worth_sending(&counted, Some(ms(1)), ms(1000)), "counters");
        quiet.changes_only = false;
        assert!(
            worth_sending(&quiet, Some(ms(1)), ms(1000)),
            "a whole report (the controller lacks the earlier one)"
        );
    }

    #[test]
    fn backoff_grows_to_one_second_with_jitter() {
        let mut b = Backoff::new();
        let waits: Vec<Duration> = (0..10).map(|_| b.next()).collect();
        assert!(waits[0] >= Duration::from_millis(50) && waits[0] <= Duration::from_millis(150));
        assert!(waits[2] >= Duration::from_millis(200) && waits[2] <= Duration::from_millis(600));
        assert!(waits[9] >= Duration::from_millis(500) && waits[9] <= Duration::from_millis(1500));
        b.reset();
        assert!(b.next() <= Duration::from_millis(150));
    }

    #[tokio::test]
    async fn the_cache_writer_ends_with_the_newest_table_written() {
        let dir =
            std::env::temp_dir().join(format!("sluice-cache-writer-test-{}", std::process::id()));
        let (tx, rx) = watch::channel(None);
        let writer = tokio::spawn(cache_loop(dir.clone(), rx));
        for generation in 1..=5 {
            tx.send_replace(Some(Snapshot {
                generation,
                table: Default::default(),
            }));
        }
        // the subscriber gone, what is left is written before the writer ends
        drop(tx);
        writer.await.unwrap();
        assert_eq!(cache::read(&dir).unwrap().map(|s| s.generation), Some(5));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
