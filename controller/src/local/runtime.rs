//! The local runtime's loop: observe (hub acknowledgements, endpoint health, analysis runs),
//! decide (the engine), persist, then act (publish routes, record scales, start and stop runs).
//!
//! Guarantees:
//! - state (statuses, spec overrides, runs, events) is written atomically before any effect is
//!   carried out; if it cannot be written, nothing advances and the views say why;
//! - a restarted controller resumes where it was: timed pauses keep their start, runs keep
//!   their measurements, generations continue upward;
//! - a command or a report wakes the loop at once; timers wake it when due.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};

use super::config::LocalConfig;
use super::health::Health;
use super::runs::{self, RunHost, RunRecord};
use super::translate;
use crate::analysis::run::RunPhase;
use crate::commands::{self, Command};
use crate::control::hub::Hub;
use crate::control::service::{
    AnalysisRunView, EventView, MetricView, RevisionStats, RevisionView, RolloutService,
    RolloutSummary, RolloutView, ServiceError,
};
use crate::engine::{
    self, Effect, Input, Observations, RevisionObservation, RouteIntent, RouteObservation,
};
use crate::revision::pod_template_hash;
use crate::spec::{PodTemplate, Rollout};
use crate::status::RolloutStatus;
use crate::time::Time;

/// Events kept per rollout.
const EVENTS_KEPT: usize = 100;
/// Window of the figures in views.
const VIEW_WINDOW: Duration = Duration::from_secs(10);

/// A rollout's runtime state (persisted).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// The template as last read from the file.
    pub file_template: Option<PodTemplate>,
    /// A template set by `set image` or `undo`, in force until the file's template changes.
    pub template_override: Option<PodTemplate>,
    /// `spec.paused` as set by `pause` / `resume` / `promote`.
    pub paused_override: Option<bool>,
    /// Status.
    pub status: RolloutStatus,
    /// The route last decided (what the engine observes as published).
    pub published: Option<RouteIntent>,
    /// The route the hub serves, with its generation (what views show).
    #[serde(default)]
    pub live: Option<(RouteIntent, u64)>,
    /// Replicas recorded per revision (scale effects are recorded, not performed).
    pub replicas: BTreeMap<String, i32>,
    /// Recent events.
    pub events: VecDeque<EventView>,
    /// When the engine asked to look again.
    pub next_wake: Option<Time>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Persisted {
    rollouts: BTreeMap<String, Entry>,
    runs: BTreeMap<String, RunRecord>,
}

#[derive(Default)]
struct Inner {
    rollouts: BTreeMap<String, Entry>,
    runs: BTreeMap<String, RunRecord>,
    runtime_error: Option<String>,
    last_written: Vec<u8>,
    /// Ticks that have taken the state so far (the number of the latest).
    ticks_started: u64,
}

/// The local runtime.
pub struct Runtime {
    config: RwLock<Arc<LocalConfig>>,
    config_mtime: Mutex<Option<std::time::SystemTime>>,
    state_file: PathBuf,
    hub: Arc<Hub>,
    health: Arc<Health>,
    inner: Mutex<Inner>,
    wake: Notify,
    version: watch::Sender<u64>,
    /// The number of the latest tick that has finished (published what it decided).
    ticks_done: watch::Sender<u64>,
}

fn effective(r: &Rollout, e: &Entry) -> crate::spec::rollout::RolloutSpec {
    let mut spec = r.spec.clone();
    if let Some(t) = &e.template_override {
        spec.template = Some(t.clone());
    }
    if let Some(p) = e.paused_override {
        spec.paused = p;
    }
    spec
}

impl Runtime {
    /// Opens the runtime: loads persisted state next to the config.
    pub fn open(config: LocalConfig, hub: Arc<Hub>) -> Result<Arc<Self>, String> {
        let state_file = config.state_dir().join("state.json");
        let persisted: Persisted = match std::fs::read(&state_file) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| format!("{} is not a state file: {e}", state_file.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Persisted::default(),
            Err(e) => return Err(format!("cannot read {}: {e}", state_file.display())),
        };
        let health = Arc::new(Health::default());
        health.watch(config.all_addresses());
        let mtime = std::fs::metadata(&config.path)
            .and_then(|m| m.modified())
            .ok();
        let rt = Arc::new(Self {
            config: RwLock::new(Arc::new(config)),
            config_mtime: Mutex::new(mtime),
            state_file,
            hub,
            health,
            inner: Mutex::new(Inner {
                rollouts: persisted.rollouts,
                runs: persisted.runs,
                ..Inner::default()
            }),
            wake: Notify::new(),
            version: watch::channel(0).0,
            ticks_done: watch::channel(0).0,
        });
        rt.sync_config();
        Ok(rt)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current config.
    pub fn config(&self) -> Arc<LocalConfig> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The hub.
    pub fn hub(&self) -> Arc<Hub> {
        self.hub.clone()
    }

    /// The health checker.
    pub fn health(&self) -> Arc<Health> {
        self.health.clone()
    }

    /// Wakes the loop.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    fn route_name(&self, r: &Rollout) -> String {
        let s = &r.spec.strategy;
        let routing = s
            .canary
            .as_ref()
            .and_then(|c| c.traffic_routing.as_ref())
            .or_else(|| {
                s.blue_green
                    .as_ref()
                    .and_then(|b| b.traffic_routing.as_ref())
            });
        engine::route::base(r.metadata.namespace(), &r.metadata.name, routing, "").route
    }

    /// The addresses of a rollout's revision.
    pub fn addresses_of_revision(&self, rollout: &str, hash: &str) -> Vec<String> {
        let cfg = self.config();
        let template = {
            let inner = self.lock();
            inner
                .rollouts
                .get(rollout)
                .and_then(|e| e.status.revision(hash).map(|r| r.template.clone()))
        };
        template.map(|t| cfg.addresses(&t)).unwrap_or_default()
    }

    /// Re-reads the config file if it changed; a bad file is logged and the old one kept.
    pub fn reload_if_changed(&self) {
        let path = self.config().path.clone();
        let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        {
            let mut seen = self.config_mtime.lock().unwrap_or_else(|p| p.into_inner());
            if *seen == mtime {
                return;
            }
            *seen = mtime;
        }
        match LocalConfig::load(&path) {
            Ok(cfg) => {
                tracing::info!(file = %path.display(), "config reloaded");
                self.health.watch(cfg.all_addresses());
                *self.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(cfg);
                self.lock().runtime_error = None;
                self.sync_config();
                self.wake();
            }
            Err(errors) => {
                let msg = format!(
                    "config {} is invalid, keeping the previous one: {}",
                    path.display(),
                    errors.join("; ")
                );
                tracing::error!("{msg}");
                self.lock().runtime_error = Some(msg);
                self.version.send_modify(|v| *v += 1);
            }
        }
    }

    /// Brings the entries in line with the config: new rollouts, removed ones, new templates.
    fn sync_config(&self) {
        let cfg = self.config();
        let mut inner = self.lock();
        inner
            .rollouts
            .retain(|name, _| cfg.rollouts.contains_key(name));
        for (name, r) in &cfg.rollouts {
            let e = inner.rollouts.entry(name.clone()).or_default();
            if e.file_template != r.spec.template {
                if e.file_template.is_some() {
                    tracing::info!(rollout = %name, "the file's pod template changed");
                }
                e.file_template = r.spec.template.clone();
                e.template_override = None;
            }
        }
    }

    /// What the engine sees of a rollout. `pending` is true when the route decided in this
    /// tick is not yet published: nobody can have acknowledged it.
    fn observe(
        &self,
        inner: &Inner,
        name: &str,
        r: &Rollout,
        e: &Entry,
        now: Time,
        pending: bool,
    ) -> Observations {
        let cfg = self.config();
        let spec = effective(r, e);
        let route = self.route_name(r);
        let generation = self
            .hub
            .route(&route)
            .and_then(|(rs, _)| rs.generation)
            .unwrap_or(0);
        let (expected, acknowledged) = if pending {
            (self.hub.acknowledgements(&route, u64::MAX, now).0, 0)
        } else if e.published.is_some() {
            self.hub.acknowledgements(&route, generation, now)
        } else {
            (self.hub.acknowledgements(&route, u64::MAX, now).0, 0)
        };
        let mut revisions = BTreeMap::new();
        let mut templates: Vec<PodTemplate> = e
            .status
            .revisions
            .iter()
            .map(|r| r.template.clone())
            .collect();
        if let Some(t) = &spec.template {
            templates.push(t.clone());
        }
        for t in templates {
            let hash = pod_template_hash(&t);
            let addrs = cfg.addresses(&t);
            revisions.insert(
                hash.clone(),
                RevisionObservation {
                    healthy_endpoints: self.health.healthy_count(&addrs),
                    in_flight: self.hub.merged(&route, &hash).1,
                    replicas: e.replicas.get(&hash).copied(),
                },
            );
        }
        let analysis = inner
            .runs
            .iter()
            .filter(|(_, r)| r.rollout == name)
            .map(|(n, r)| {
                (
                    n.clone(),
                    if r.terminated && !r.phase.is_complete() {
                        RunPhase::Successful
                    } else {
                        r.phase
                    },
                )
            })
            .collect();
        Observations {
            route: RouteObservation {
                published: e.published.clone(),
                expected,
                acknowledged,
            },
            revisions,
            analysis,
        }
    }

    /// One round: decide every rollout until it settles, persist, act. Returns the next time
    /// a timer is due.
    pub fn tick(self: &Arc<Self>, now: Time) -> Option<Time> {
        self.reload_if_changed();
        let cfg = self.config();
        let mut inner = self.lock();
        inner.ticks_started += 1;
        let this_tick = inner.ticks_started;
        let before_rollouts = inner.rollouts.clone();
        let before_runs = inner.runs.clone();
        let mut publishes: Vec<(String, RouteIntent)> = Vec::new();
        let mut new_runs: Vec<String> = Vec::new();
        let mut next: Option<Time> = None;
        let names: Vec<String> = inner.rollouts.keys().cloned().collect();
        for name in names {
            let Some(r) = cfg.rollouts.get(&name) else {
                continue;
            };
            for _round in 0..8 {
                let Some(e) = inner.rollouts.get(&name).cloned() else {
                    break;
                };
                let spec = effective(r, &e);
                let pending = publishes.iter().any(|(n, _)| *n == name);
                let obs = self.observe(&inner, &name, r, &e, now, pending);
                let d = engine::decide(&Input {
                    name: &name,
                    namespace: r.metadata.namespace(),
                    spec: &spec,
                    status: &e.status,
                    observed: &obs,
                    now,
                });
                let mut acted = false;
                let mut entry = e.clone();
                entry.status = d.status.clone();
                entry.next_wake = d.requeue_after.map(|w| now.plus(w));
                for eff in &d.effects {
                    match eff {
                        Effect::PublishRoute(intent) => {
                            publishes.retain(|(n, _)| *n != name);
                            publishes.push((name.clone(), intent.clone()));
                            // observed as published for the next round of this tick
                            entry.published = Some(intent.clone());
                            acted = true;
                        }
                        Effect::Scale { revision, replicas } => {
                            entry.replicas.insert(revision.clone(), *replicas);
                            acted = true;
                        }
                        Effect::StartAnalysis(req) => {
                            inner
                                .runs
                                .insert(req.run.clone(), RunRecord::new(&name, req.clone(), now));
                            new_runs.push(req.run.clone());
                            acted = true;
                        }
                        Effect::StopAnalysis { run } => {
                            if let Some(rec) = inner.runs.get_mut(run) {
                                rec.terminated = true;
                            }
                            acted = true;
                        }
                        Effect::DeleteRevision { revision } => {
                            entry.replicas.remove(revision);
                            let dead: Vec<String> = inner
                                .runs
                                .iter()
                                .filter(|(_, r)| {
                                    r.rollout == name && r.request.revision == *revision
                                })
                                .map(|(n, _)| n.clone())
                                .collect();
                            for n in dead {
                                inner.runs.remove(&n);
                            }
                        }
                        Effect::Event(ev) => {
                            tracing::info!(rollout = %name, reason = %ev.reason, "{}", ev.message);
                            entry.events.push_back(EventView {
                                time: now,
                                reason: ev.reason.clone(),
                                message: ev.message.clone(),
                            });
                            while entry.events.len() > EVENTS_KEPT {
                                entry.events.pop_front();
                            }
                        }
                    }
                }
                inner.rollouts.insert(name.clone(), entry);
                if !acted {
                    break;
                }
            }
            if let Some(w) = inner.rollouts.get(&name).and_then(|e| e.next_wake) {
                next = Some(next.map_or(w, |n| n.min(w)));
            }
        }
        // persist before acting; on failure, nothing advances
        match self.write_state(&mut inner) {
            Ok(false) => {}
            Err(e) => {
                // nothing advances, but an abort is never gated: an aborted rollout keeps
                // its decision in memory and its route goes to the proxies all the same
                let aborting: Vec<String> = publishes
                    .iter()
                    .map(|(n, _)| n.clone())
                    .filter(|n| inner.rollouts.get(n).is_some_and(|e| e.status.abort))
                    .collect();
                let msg = format!(
                    "cannot write state {}: {e}; not advancing{}",
                    self.state_file.display(),
                    if aborting.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "; abort of {} carried out but not persisted",
                            aborting.join(", ")
                        )
                    }
                );
                tracing::error!("{msg}");
                let mut restored = before_rollouts;
                for n in &aborting {
                    if let Some(e) = inner.rollouts.remove(n) {
                        restored.insert(n.clone(), e);
                    }
                }
                inner.rollouts = restored;
                inner.runs = before_runs;
                inner.runtime_error = Some(msg);
                drop(inner);
                publishes.retain(|(n, _)| aborting.contains(n));
                self.carry_out(&cfg, publishes, true);
                self.version.send_modify(|v| *v += 1);
                self.ticks_done.send_replace(this_tick);
                return Some(now.plus(Duration::from_secs(1)));
            }
            Ok(true) => {
                if inner
                    .runtime_error
                    .as_deref()
                    .is_some_and(|m| m.starts_with("cannot write state"))
                {
                    inner.runtime_error = None;
                }
            }
        }
        drop(inner);
        self.carry_out(&cfg, publishes, false);
        for run in new_runs {
            tokio::spawn(runs::drive(self.clone(), run));
        }
        self.version.send_modify(|v| *v += 1);
        self.ticks_done.send_replace(this_tick);
        next
    }

    /// Waits (up to two seconds) until a tick that took the state after tick `seen` has
    /// finished, so that a command answers once what it changed has been decided and
    /// published.
    async fn decided_after(&self, seen: u64) {
        let mut done = self.ticks_done.subscribe();
        let _ = tokio::time::timeout(Duration::from_secs(2), done.wait_for(|t| *t > seen)).await;
    }

    /// Publishes the routes a tick decided; `aborts` when they are aborts the state file
    /// could not keep (served all the same, see [`Hub::publish_abort`]).
    fn carry_out(&self, cfg: &LocalConfig, publishes: Vec<(String, RouteIntent)>, aborts: bool) {
        for (name, intent) in publishes {
            let addrs = |hash: &str| self.addresses_of_revision_or_spec(&name, hash);
            let published = translate::to_proxy(&intent, addrs, cfg.runtime.debug_headers).map(
                |(route, backends)| {
                    if aborts {
                        Ok(self.hub.publish_abort(route, backends).0)
                    } else {
                        self.hub.publish(route, backends)
                    }
                },
            );
            match published {
                Ok(published) => match published {
                    Ok(generation) => {
                        if let Some(en) = self.lock().rollouts.get_mut(&name) {
                            en.live = Some((intent.clone(), generation));
                        }
                    }
                    Err(e) => {
                        tracing::error!(rollout = %name, error = %e, "cannot publish the route");
                        let mut inner = self.lock();
                        if let Some(en) = inner.rollouts.get_mut(&name) {
                            en.published = None;
                        }
                        inner.runtime_error = Some(e);
                    }
                },
                Err(e) => {
                    tracing::error!(rollout = %name, error = %e, "cannot build the route");
                    let mut inner = self.lock();
                    if let Some(en) = inner.rollouts.get_mut(&name) {
                        en.published = None;
                    }
                    inner.runtime_error = Some(format!("rollout {name}: {e}"));
                }
            }
        }
    }

    fn addresses_of_revision_or_spec(&self, rollout: &str, hash: &str) -> Vec<String> {
        let a = self.addresses_of_revision(rollout, hash);
        if !a.is_empty() {
            return a;
        }
        let cfg = self.config();
        cfg.rollouts
            .get(rollout)
            .and_then(|r| r.spec.template.as_ref())
            .filter(|t| pod_template_hash(t) == hash)
            .map(|t| cfg.addresses(t))
            .unwrap_or_default()
    }

    /// Resumes runs left unfinished by a previous process.
    pub fn resume_runs(self: &Arc<Self>) {
        let names: Vec<String> = self
            .lock()
            .runs
            .iter()
            .filter(|(_, r)| !r.terminated && !r.phase.is_complete())
            .map(|(n, _)| n.clone())
            .collect();
        for n in names {
            tokio::spawn(runs::drive(self.clone(), n));
        }
    }

    /// The loop: tick on wake-ups, reports, timers, and at least every 250 ms.
    pub async fn serve(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        self.resume_runs();
        let mut table = self.hub.subscribe_table();
        let mut activity = self.hub.subscribe_activity();
        loop {
            let next = self.tick(Time::now());
            let sleep = next
                .map(|t| t.since(Time::now()))
                .unwrap_or(Duration::from_millis(250))
                .min(Duration::from_millis(250));
            tokio::select! {
                () = self.wake.notified() => {}
                _ = activity.changed() => {}
                _ = table.changed() => {}
                () = tokio::time::sleep(sleep) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    fn view(&self, name: &str, r: &Rollout, e: &Entry, inner: &Inner) -> RolloutView {
        let cfg = self.config();
        let route = self.route_name(r);
        let now = Time::now();
        let spec = effective(r, e);
        let current = e.status.current_pod_hash.clone().unwrap_or_default();
        let stable = e.status.stable_rs.clone().unwrap_or_default();
        let blue_green = spec.strategy.blue_green.is_some();
        let mut revisions: Vec<RevisionView> = e
            .status
            .revisions
            .iter()
            .map(|rev| {
                let h = &rev.pod_template_hash;
                let addrs = cfg.addresses(&rev.template);
                let (t, span) = self.hub.window(&route, h, VIEW_WINDOW, now);
                let n = t.requests();
                let secs = span.as_secs_f64().max(1.0);
                RevisionView {
                    revision: rev.revision,
                    pod_template_hash: h.clone(),
                    role: if *h == stable && *h == current {
                        "stable"
                    } else if *h == stable {
                        if blue_green { "active" } else { "stable" }
                    } else if *h == current {
                        if blue_green { "preview" } else { "canary" }
                    } else {
                        "old"
                    }
                    .to_owned(),
                    images: rev
                        .template
                        .containers()
                        .map(|cs| cs.into_iter().map(|c| c.image).collect())
                        .unwrap_or_default(),
                    healthy: self.health.healthy_count(&addrs),
                    addresses: addrs,
                    replicas: e.replicas.get(h).copied(),
                    stats: RevisionStats {
                        requests: n,
                        rate: n as f64 / secs,
                        error_rate: t.error_rate(),
                        p99_seconds: t.quantile_seconds(0.99),
                        window_seconds: span.as_secs_f64(),
                    },
                }
            })
            .collect();
        revisions.sort_by_key(|r| std::cmp::Reverse(r.revision));
        let analysis_runs = inner
            .runs
            .iter()
            .filter(|(_, rec)| rec.rollout == name && rec.request.revision == current)
            .map(|(n, rec)| AnalysisRunView {
                name: n.clone(),
                kind: rec.request.kind,
                phase: rec.phase,
                metrics: rec
                    .metrics
                    .iter()
                    .map(|m| MetricView {
                        name: m.name.clone(),
                        phase: m
                            .measurements
                            .last()
                            .map_or(RunPhase::Pending, |_| rec.phase),
                        measurements: m
                            .measurements
                            .iter()
                            .rev()
                            .take(10)
                            .rev()
                            .map(|x| {
                                (
                                    x.value
                                        .clone()
                                        .unwrap_or_else(|| x.message.clone().unwrap_or_default()),
                                    x.phase,
                                )
                            })
                            .collect(),
                        waiting: m.waiting.clone(),
                        dry_run: rec.dry_run.contains(&m.name),
                    })
                    .collect(),
                error: rec.error.clone(),
            })
            .collect();
        RolloutView {
            name: name.to_owned(),
            namespace: r.metadata.namespace().to_owned(),
            strategy: if blue_green { "blueGreen" } else { "canary" }.to_owned(),
            steps: spec
                .strategy
                .canary
                .as_ref()
                .map_or(0, |c| c.steps.len() as u32),
            status: e.status.clone(),
            paused: spec.paused,
            generation: e.live.as_ref().map_or(0, |(_, g)| *g),
            route: e.live.as_ref().map(|(r, _)| r.clone()),
            revisions,
            analysis_runs,
            events: e.events.iter().cloned().collect(),
            runtime_error: inner.runtime_error.clone(),
        }
    }

    /// Writes the rollouts and runs to the state file when they changed since the last
    /// write; `Ok(true)` when written.
    fn write_state(&self, inner: &mut Inner) -> std::io::Result<bool> {
        let bytes = serde_json::to_vec_pretty(&Persisted {
            rollouts: inner.rollouts.clone(),
            runs: inner.runs.clone(),
        })
        .unwrap_or_default();
        if bytes == inner.last_written {
            return Ok(false);
        }
        sluice_io::files::write_atomically(&self.state_file, &bytes)?;
        inner.last_written = bytes;
        Ok(true)
    }

    /// Applies a command to a rollout's state and persists it before answering. When the
    /// state cannot be written, the command is not carried out and says so, unless it is
    /// `never_gated` (an abort): that one is carried out all the same, and says it was not
    /// persisted.
    fn apply_command(
        &self,
        name: &str,
        never_gated: bool,
        f: impl FnOnce(
            &mut crate::spec::rollout::RolloutSpec,
            &mut RolloutStatus,
            &LocalConfig,
        ) -> Result<String, ServiceError>,
    ) -> Result<(String, u64), ServiceError> {
        let cfg = self.config();
        let r = cfg
            .rollouts
            .get(name)
            .ok_or_else(|| ServiceError::NotFound(format!("no rollout named {name:?}")))?;
        let mut inner = self.lock();
        let seen = inner.ticks_started;
        let e = inner
            .rollouts
            .get_mut(name)
            .ok_or_else(|| ServiceError::NotFound(format!("no rollout named {name:?}")))?;
        let before = e.clone();
        let mut spec = effective(r, e);
        let mut status = e.status.clone();
        let mut msg = f(&mut spec, &mut status, &cfg)?;
        if spec.template != effective(r, e).template {
            e.template_override = spec.template.clone();
        }
        if spec.paused != effective(r, e).paused {
            e.paused_override = Some(spec.paused);
        }
        e.status = status;
        e.events.push_back(EventView {
            time: Time::now(),
            reason: "Command".into(),
            message: msg.clone(),
        });
        match self.write_state(&mut inner) {
            Ok(_) => {}
            Err(err) => {
                let why = format!("cannot write state {}: {err}", self.state_file.display());
                if !never_gated {
                    inner.rollouts.insert(name.to_owned(), before);
                    return Err(ServiceError::Failed(format!("not carried out: {why}")));
                }
                tracing::error!(rollout = %name, "{why}; the abort is carried out all the same");
                msg = format!("{msg} (not persisted: {why})");
            }
        }
        drop(inner);
        self.wake();
        Ok((msg, seen))
    }
}

impl RolloutService for Runtime {
    fn list(&self) -> Vec<RolloutSummary> {
        let cfg = self.config();
        let inner = self.lock();
        inner
            .rollouts
            .iter()
            .filter_map(|(name, e)| {
                let r = cfg.rollouts.get(name)?;
                let steps = r
                    .spec
                    .strategy
                    .canary
                    .as_ref()
                    .map(|c| c.steps.len() as u32);
                Some(RolloutSummary {
                    name: name.clone(),
                    namespace: r.metadata.namespace().to_owned(),
                    strategy: if steps.is_some() {
                        "canary"
                    } else {
                        "blueGreen"
                    }
                    .to_owned(),
                    phase: e.status.phase,
                    step: steps.map(|n| (e.status.current_step_index.unwrap_or(0).min(n), n)),
                    weight: e.status.canary.weights.as_ref().map(|w| {
                        (
                            w.canary.as_ref().map_or(0, |c| c.weight),
                            w.total,
                            w.verified,
                        )
                    }),
                    message: e.status.message.clone(),
                })
            })
            .collect()
    }

    fn get(&self, name: &str) -> Option<RolloutView> {
        let cfg = self.config();
        let r = cfg.rollouts.get(name)?;
        let inner = self.lock();
        let e = inner.rollouts.get(name)?;
        Some(self.view(name, r, e, &inner))
    }

    fn command(&self, name: &str, command: Command) -> BoxFuture<'_, Result<String, ServiceError>> {
        let name = name.to_owned();
        Box::pin(async move {
            let now = Time::now();
            let (message, seen) =
                self.apply_command(&name, command == Command::Abort, |spec, status, cfg| {
                    if let Command::Undo { .. } = command {
                        // the target revision's images must still have addresses
                        let mut s2 = spec.clone();
                        let mut st2 = status.clone();
                        commands::apply(command, &mut s2, &mut st2, now)
                            .map_err(|e| ServiceError::Refused(e.to_string()))?;
                        if let Some(t) = &s2.template {
                            cfg.check_images(t).map_err(ServiceError::Refused)?;
                        }
                    }
                    commands::apply(command, spec, status, now)
                        .map_err(|e| ServiceError::Refused(e.to_string()))
                })?;
            self.decided_after(seen).await;
            Ok(message)
        })
    }

    fn set_image(
        &self,
        name: &str,
        container: &str,
        image: &str,
    ) -> BoxFuture<'_, Result<String, ServiceError>> {
        let (name, container, image) = (name.to_owned(), container.to_owned(), image.to_owned());
        Box::pin(async move {
            let (message, seen) = self.apply_command(&name, false, |spec, _status, cfg| {
                let mut t = spec.template.clone().ok_or_else(|| {
                    ServiceError::Invalid("the rollout has no pod template".into())
                })?;
                if !t.set_image(&container, &image) {
                    return Err(ServiceError::Invalid(format!(
                        "no container named {container:?}"
                    )));
                }
                cfg.check_images(&t).map_err(ServiceError::Invalid)?;
                spec.template = Some(t);
                Ok(format!("{container} image set to {image}"))
            })?;
            self.decided_after(seen).await;
            Ok(message)
        })
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }
}

impl RunHost for Runtime {
    /// A run's record.
    fn run(&self, name: &str) -> Option<RunRecord> {
        self.lock().runs.get(name).cloned()
    }

    /// Changes a run's record.
    fn update_run(&self, name: &str, f: impl FnOnce(&mut RunRecord)) {
        let changed = {
            let mut inner = self.lock();
            match inner.runs.get_mut(name) {
                Some(r) => {
                    let before = r.phase;
                    f(r);
                    before != r.phase
                }
                None => false,
            }
        };
        self.version.send_modify(|v| *v += 1);
        if changed {
            Runtime::wake(self);
        }
    }

    fn wake(&self) {
        Runtime::wake(self);
    }

    fn template(&self, name: &str) -> Option<crate::spec::AnalysisTemplate> {
        self.config().templates.get(name).cloned()
    }

    fn target_of(&self, rec: &RunRecord) -> Option<runs::Measured> {
        let cfg = self.config();
        let r = cfg.rollouts.get(&rec.rollout)?;
        Some(runs::Measured {
            hub: self.hub(),
            route: self.route_name(r),
            revision: rec.request.revision.clone(),
            stable: rec.request.stable.clone(),
            revision_addresses: self.addresses_of_revision(&rec.rollout, &rec.request.revision),
            stable_addresses: self.addresses_of_revision(&rec.rollout, &rec.request.stable),
        })
    }
}
