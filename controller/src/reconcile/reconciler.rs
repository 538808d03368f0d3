//! The reconcile loop every runtime shares: observe (the hub's acknowledgements and counters,
//! the port's endpoints and health, the analysis runs), decide (the engine, until each
//! rollout settles), save (through the port), then act (publish routes, start runs, and show
//! the state — the scales recorded in it among the rest — through the port).
//!
//! Guarantees:
//! - the state is saved before any effect of a decision is carried out; if it cannot be
//!   saved, nothing advances and the views say why — except an abort, which is never gated:
//!   its route reaches the proxies all the same;
//! - saving happens with no blocking lock held: the decision is taken under the state's
//!   mutex, which is released before the port saves; one writer at a time (ticks and
//!   commands) is kept by an async lock;
//! - a restarted controller resumes where it was: timed pauses keep their start, runs keep
//!   their measurements, generations continue upward;
//! - a command or a report wakes the loop at once; timers wake it when due.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::{Notify, watch};

use super::port::{Port, Refresh, World};
use super::runs::{self, Measured, RunHost, RunRecord};
use super::settle::{self, RunChange, Sight};
use super::state::{Entry, Problems, State};
use super::{translate, views};
use crate::Error;
use crate::commands::{self, Command};
use crate::control::hub::{CounterWindow, Hub};
use crate::control::service::{RolloutService, RolloutSummary, RolloutView};
use crate::engine::{Reason, RouteIntent};
use crate::revision::pod_template_hash;
use crate::spec::PodTemplate;
use crate::spec::rollout::{Rollout, RolloutSpec};
use crate::status::RolloutStatus;
use crate::time::Time;

/// Longest sleep of the loop between two looks.
const LONGEST_SLEEP: Duration = Duration::from_millis(250);
/// How long a command waits for the tick that carries it out.
const COMMAND_WAIT: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Inner {
    state: State,
    /// The entries as last saved (or carried out unsaved: an abort the state could not be
    /// written for): what views show, so that no view shows a decision a restart would not
    /// find.
    shown: BTreeMap<String, Entry>,
    problems: Problems,
    /// Ticks that have taken the state so far (the number of the latest).
    ticks_started: u64,
}

/// The route an entry has published or decided, if any.
fn route_of(e: &Entry) -> Option<&str> {
    e.live
        .as_ref()
        .map(|(i, _)| i.route.as_str())
        .or_else(|| e.published.as_ref().map(|i| i.route.as_str()))
}

/// The loop, over a runtime's port.
pub struct Reconciler<P: Port> {
    port: Arc<P>,
    hub: Arc<Hub>,
    inner: Mutex<Inner>,
    /// One writer at a time (ticks and commands); holds the state as last saved.
    writer: tokio::sync::Mutex<Option<State>>,
    wake: Notify,
    version: watch::Sender<u64>,
    /// The number of the latest tick that has finished (published what it decided).
    ticks_done: watch::Sender<u64>,
}

/// The loop's view of the world through the hub and the port.
struct Seen<'a, P: Port> {
    hub: &'a Hub,
    port: &'a P,
    now: Time,
}

impl<P: Port> Sight for Seen<'_, P> {
    fn acknowledgements(&self, route: &str, generation: Option<u64>) -> (u32, u32) {
        self.hub
            .acknowledgements(route, generation.unwrap_or(u64::MAX), self.now)
    }

    fn generation(&self, route: &str) -> u64 {
        self.hub
            .route(route)
            .and_then(|(r, _)| r.generation)
            .unwrap_or(0)
    }

    fn revision(&self, rollout: &str, route: &str, template: &PodTemplate) -> (u32, u64) {
        let addresses = self.port.addresses(rollout, template);
        let in_flight = self.hub.in_flight(route, &pod_template_hash(template));
        (self.port.healthy(rollout, &addresses), in_flight)
    }
}

/// What a command sent to the cluster's API did to a status, in words (Argo Rollouts' plugin
/// and ours send each command as a patch of the status subresource).
fn commanded(before: &RolloutStatus, after: &RolloutStatus) -> &'static str {
    if after.abort && !before.abort {
        "aborted through the API"
    } else if before.abort && !after.abort {
        "retried through the API"
    } else if after.promote_full && !before.promote_full {
        "fully promoted through the API"
    } else if after.pause_conditions.is_empty() && !before.pause_conditions.is_empty()
        || after.current_step_index != before.current_step_index
    {
        "promoted through the API"
    } else {
        "status changed through the API"
    }
}

/// The event of a run's verdict, and its word, when the run has ended.
fn verdict(phase: crate::analysis::phase::RunPhase) -> Option<(Reason, &'static str)> {
    use crate::analysis::phase::RunPhase as P;
    match phase {
        P::Successful => Some((Reason::AnalysisRunSuccessful, "successful")),
        P::Failed => Some((Reason::AnalysisRunFailed, "failed")),
        P::Inconclusive => Some((Reason::AnalysisRunInconclusive, "inconclusive")),
        P::Error => Some((Reason::AnalysisRunError, "error")),
        P::Pending | P::Running => None,
    }
}

/// What a tick decided and must carry out once saved.
struct Plan {
    publishes: Vec<(String, RouteIntent)>,
    runs: Vec<RunChange>,
    next: Option<Time>,
}

impl<P: Port> Reconciler<P> {
    /// Opens the loop on a port and a hub, with the state the port saved last.
    pub fn open(port: P, hub: Arc<Hub>) -> Result<Arc<Self>, Error> {
        let state = port.load()?;
        let reconciler = Arc::new(Self {
            port: Arc::new(port),
            hub,
            inner: Mutex::new(Inner {
                shown: state.rollouts.clone(),
                state: state.clone(),
                ..Inner::default()
            }),
            writer: tokio::sync::Mutex::new(Some(state)),
            wake: Notify::new(),
            version: watch::channel(0).0,
            ticks_done: watch::channel(0).0,
        });
        reconciler.follow_world();
        Ok(reconciler)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The runtime's port.
    pub fn port(&self) -> &Arc<P> {
        &self.port
    }

    /// Wakes the loop.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    fn changed(&self) {
        self.version.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Brings the entries in line with the world: new rollouts, removed ones, new templates.
    fn follow_world(&self) {
        let world = self.port.world();
        let mut inner = self.lock();
        for name in inner.state.rollouts.keys() {
            if !world.rollouts.contains_key(name) {
                tracing::info!(rollout = %name, "the rollout is gone");
            }
        }
        let rollouts = &mut inner.state.rollouts;
        rollouts.retain(|name, _| world.rollouts.contains_key(name));
        for (name, r) in &world.rollouts {
            let e = rollouts.entry(name.clone()).or_default();
            let had = e.file_template.is_some();
            if e.follow(r.spec.template.as_ref()) && had {
                tracing::info!(rollout = %name, "the owners' pod template changed");
            }
            if let Some(status) = world.commanded.get(name)
                && *status != e.status
            {
                let what = commanded(&e.status, status);
                tracing::info!(rollout = %name, "{what}");
                e.status = status.clone();
                e.record(Time::now(), Reason::Command, what);
            }
        }
        let invalid = world.invalid.clone();
        inner.problems.invalid = invalid;
    }

    fn refresh(&self) {
        match self.port.refresh() {
            Refresh::Unchanged => {}
            Refresh::Changed => {
                self.lock().problems.world = None;
                self.follow_world();
                self.changed();
            }
            Refresh::Invalid(e) => {
                let msg = e.to_string();
                let mut inner = self.lock();
                if inner.problems.world.as_deref() != Some(msg.as_str()) {
                    tracing::error!("{msg}");
                    inner.problems.world = Some(msg);
                    drop(inner);
                    self.changed();
                }
            }
        }
    }

    /// Decides every rollout until it settles (in memory, under the state's mutex).
    fn decide_all(&self, world: &World, now: Time) -> Plan {
        let mut inner = self.lock();
        inner.ticks_started += 1;
        let sight = Seen {
            hub: &self.hub,
            port: &*self.port,
            now,
        };
        let mut plan = Plan {
            publishes: Vec::new(),
            runs: Vec::new(),
            next: None,
        };
        let names: Vec<String> = inner.state.rollouts.keys().cloned().collect();
        for name in names {
            let Some(rollout) = world.rollouts.get(&name) else {
                continue;
            };
            if world.invalid.contains_key(&name) {
                // left as it is until its owners fix it
                continue;
            }
            let settled = settle::settle(&mut inner.state, &name, rollout, &sight, now);
            if let Some(intent) = settled.publish {
                plan.publishes.push((name.clone(), intent));
            }
            plan.runs.extend(settled.runs);
            if let Some(w) = inner.state.rollouts.get(&name).and_then(|e| e.next_wake) {
                plan.next = Some(plan.next.map_or(w, |n| n.min(w)));
            }
        }
        plan
    }

    /// One round: decide every rollout until it settles, save, act. Returns the next time a
    /// timer is due.
    pub async fn tick(self: &Arc<Self>, now: Time) -> Option<Time> {
        let mut saved = self.writer.lock().await;
        self.refresh();
        // proxies whose lease lapsed leave the expected set, with their event, before the
        // decisions that count on it
        self.hub.expire(now);
        let world = self.port.world();
        // what a failed save restores: a copy of the rollouts as they are, unless they are
        // the ones saved (most ticks at rest), which then serve
        let before = {
            let inner = self.lock();
            (saved.as_ref().map(|s| &s.rollouts) != Some(&inner.state.rollouts))
                .then(|| inner.state.rollouts.clone())
        };
        let plan = self.decide_all(&world, now);
        // the state is copied only when it changed (most ticks at rest decide nothing new)
        let (this_tick, changed) = {
            let inner = self.lock();
            let unchanged = saved.as_ref() == Some(&inner.state);
            (
                inner.ticks_started,
                (!unchanged).then(|| inner.state.clone()),
            )
        };
        let written = match &changed {
            None => Ok(()),
            Some(state) => self.port.save(state.clone()).await,
        };
        let next = match written {
            Ok(()) => {
                if let Some(state) = changed {
                    self.lock().shown = state.rollouts.clone();
                    *saved = Some(state);
                }
                if self.lock().problems.state.take().is_some() {
                    tracing::info!("the state is written again");
                }
                self.carry_out(world.clone(), plan.publishes, false).await;
                self.withdraw_gone().await;
                for change in &plan.runs {
                    if let RunChange::Started(run) = change {
                        tokio::spawn(runs::drive(self.clone(), run.clone()));
                    }
                }
                self.reflect(now).await;
                plan.next
            }
            Err(e) => {
                // nothing advances, but an abort is never gated: an aborted rollout keeps its
                // decision in memory and its route goes to the proxies all the same
                let before = match before {
                    Some(before) => before,
                    None => saved
                        .as_ref()
                        .map(|s| s.rollouts.clone())
                        .unwrap_or_default(),
                };
                let aborting = self.hold_back(before, &plan, &e);
                {
                    let mut inner = self.lock();
                    inner.shown = inner.state.rollouts.clone();
                }
                let aborts = plan
                    .publishes
                    .into_iter()
                    .filter(|(n, _)| aborting.contains(n))
                    .collect();
                self.carry_out(world.clone(), aborts, true).await;
                Some(now.plus(Duration::from_secs(1)))
            }
        };
        drop(saved);
        self.changed();
        self.ticks_done.send_replace(this_tick);
        next
    }

    /// Shows the state where the runtime's owners look ([`Port::reflect`]); what cannot be
    /// shown is a problem in the views until it can.
    async fn reflect(&self, now: Time) {
        let shown = {
            let inner = self.lock();
            self.port.reflect(&inner.state, now)
        };
        let shown = shown.await;
        let mut inner = self.lock();
        match shown {
            Ok(()) => {
                if inner.problems.reflect.take().is_some() {
                    tracing::info!("the state is shown again");
                }
            }
            Err(e) => {
                let msg = e.to_string();
                if inner.problems.reflect.as_deref() != Some(msg.as_str()) {
                    tracing::error!("cannot show the state: {msg}");
                }
                inner.problems.reflect = Some(msg);
            }
        }
    }

    /// Undoes what a tick decided when its state could not be saved, except the aborts (never
    /// gated), and says so in the views; returns the rollouts whose abort goes out anyway.
    fn hold_back(&self, before: BTreeMap<String, Entry>, plan: &Plan, e: &Error) -> Vec<String> {
        let mut inner = self.lock();
        let aborting: Vec<String> = plan
            .publishes
            .iter()
            .map(|(n, _)| n.clone())
            .filter(|n| inner.state.rollouts.get(n).is_some_and(|e| e.status.abort))
            .collect();
        let mut msg = format!("{e}; not advancing");
        if !aborting.is_empty() {
            msg.push_str(&format!(
                "; abort of {} carried out but not persisted",
                aborting.join(", ")
            ));
        }
        tracing::error!("{msg}");
        let mut restored = before;
        for n in &aborting {
            if let Some(entry) = inner.state.rollouts.remove(n) {
                restored.insert(n.clone(), entry);
            }
        }
        inner.state.rollouts = restored;
        settle::undo_runs(&mut inner.state, &plan.runs);
        inner.problems.state = Some(msg);
        aborting
    }

    /// Waits (up to [`COMMAND_WAIT`]) until a tick that took the state after tick `seen` has
    /// finished, so that a command answers once what it changed has been decided and
    /// published.
    async fn decided_after(&self, seen: u64) {
        let mut done = self.ticks_done.subscribe();
        let _ = tokio::time::timeout(COMMAND_WAIT, done.wait_for(|t| *t > seen)).await;
    }

    /// Publishes the routes a tick decided, on a thread where waiting for the disk blocks no
    /// task; `aborts` when they are aborts the state could not keep (served all the same, see
    /// [`Hub::publish_abort`]).
    async fn carry_out(
        self: &Arc<Self>,
        world: Arc<World>,
        publishes: Vec<(String, RouteIntent)>,
        aborts: bool,
    ) {
        if publishes.is_empty() {
            return;
        }
        let me = self.clone();
        let published = tokio::task::spawn_blocking(move || {
            me.publish_all(&world, publishes, aborts, Time::now());
        })
        .await;
        if let Err(e) = published {
            tracing::error!(error = %e, "publishing stopped");
        }
    }

    /// Withdraws the routes no rollout drives any more: served by the hub, but neither the
    /// route of a rollout of the world nor one an entry of the state has published (a route
    /// renamed in the spec stays until the new one is out). Level-based, after each saved
    /// tick, so a route left behind by a controller that stopped at the wrong moment goes too.
    /// Done on a thread where waiting for the disk blocks no task; one that cannot be written
    /// is tried again on the next tick.
    async fn withdraw_gone(self: &Arc<Self>) {
        let served = self.hub.route_names();
        if served.is_empty() {
            return;
        }
        let world = self.port.world();
        let driven: BTreeSet<String> = {
            let inner = self.lock();
            world
                .rollouts
                .values()
                .map(settle::route_of)
                .chain(
                    inner
                        .state
                        .rollouts
                        .values()
                        .filter_map(|e| route_of(e).map(str::to_owned)),
                )
                .collect()
        };
        let orphans: Vec<String> = served.into_iter().filter(|r| !driven.contains(r)).collect();
        if orphans.is_empty() {
            return;
        }
        let me = self.clone();
        let done = tokio::task::spawn_blocking(move || {
            for name in orphans {
                match me.hub.withdraw(&name) {
                    Ok(Some(g)) => {
                        tracing::info!(route = %name, generation = g, "route withdrawn: no rollout drives it");
                    }
                    Ok(None) => {}
                    Err(e) => tracing::error!(route = %name, error = %e, "cannot withdraw the route"),
                }
            }
        })
        .await;
        if let Err(e) = done {
            tracing::error!(error = %e, "withdrawing stopped");
        }
    }

    fn publish_all(
        &self,
        world: &World,
        publishes: Vec<(String, RouteIntent)>,
        aborts: bool,
        now: Time,
    ) {
        for (name, intent) in publishes {
            let Some(rollout) = world.rollouts.get(&name) else {
                continue;
            };
            let addresses = |hash: &str| self.addresses_of(&name, rollout, hash);
            let built = translate::to_proxy(&intent, addresses, self.port.debug_headers());
            let published = built.and_then(|(route, backends)| {
                if aborts {
                    Ok(self.hub.publish_abort(route, backends, now).0)
                } else {
                    self.hub.publish(route, backends, now)
                }
            });
            let mut inner = self.lock();
            match published {
                Ok(generation) => {
                    inner.problems.rollouts.remove(&name);
                    if let Some(e) = inner.state.rollouts.get_mut(&name) {
                        e.live = Some((intent, generation));
                    }
                }
                Err(e) => {
                    tracing::error!(rollout = %name, error = %e, "cannot publish the route");
                    if let Some(en) = inner.state.rollouts.get_mut(&name) {
                        en.published = None;
                    }
                    let problem = format!("rollout {name}: {e}");
                    inner.problems.rollouts.insert(name, problem);
                }
            }
        }
    }

    /// The addresses of a rollout's revision: from its recorded template, or the spec's.
    fn addresses_of(&self, name: &str, rollout: &Rollout, hash: &str) -> Vec<String> {
        let template = {
            let inner = self.lock();
            inner.state.rollouts.get(name).and_then(|e| {
                e.status
                    .revision(hash)
                    .map(|r| r.template.clone())
                    .or_else(|| {
                        e.effective(rollout)
                            .template
                            .filter(|t| pod_template_hash(t) == hash)
                    })
            })
        };
        template
            .map(|t| self.port.addresses(name, &t))
            .unwrap_or_default()
    }

    /// Resumes runs left unfinished by a previous process.
    pub fn resume_runs(self: &Arc<Self>) {
        let names: Vec<String> = self
            .lock()
            .state
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
            let next = self.tick(Time::now()).await;
            let sleep = next
                .map(|t| t.since(Time::now()))
                .unwrap_or(LONGEST_SLEEP)
                .min(LONGEST_SLEEP);
            tokio::select! {
                () = self.wake.notified() => {}
                _ = activity.changed() => {}
                _ = table.changed() => {}
                () = tokio::time::sleep(sleep) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// Applies a command to a rollout's spec and status and saves it before answering. When
    /// the state cannot be saved, the command is not carried out and says so, unless it is
    /// `never_gated` (an abort): that one is carried out all the same, and says it was not
    /// persisted.
    async fn apply_command(
        &self,
        name: &str,
        never_gated: bool,
        f: impl FnOnce(&mut RolloutSpec, &mut RolloutStatus) -> Result<String, Error>,
    ) -> Result<(String, u64), Error> {
        let mut saved = self.writer.lock().await;
        let world = self.port.world();
        let not_found = || Error::NotFound(format!("no rollout named {name:?}"));
        let rollout = world.rollouts.get(name).ok_or_else(not_found)?;
        let (seen, before, state, mut msg) = {
            let mut inner = self.lock();
            let seen = inner.ticks_started;
            let e = inner.state.rollouts.get_mut(name).ok_or_else(not_found)?;
            let before = e.clone();
            let mut spec = e.effective(rollout);
            let mut status = e.status.clone();
            let msg = f(&mut spec, &mut status)?;
            let owners = e.effective(rollout);
            if spec.template != owners.template {
                e.template_override = spec.template.clone();
            }
            if spec.paused != owners.paused {
                e.paused_override = Some(spec.paused);
            }
            e.status = status;
            e.record(Time::now(), Reason::Command, &msg);
            (seen, before, inner.state.clone(), msg)
        };
        match self.port.save(state.clone()).await {
            Ok(()) => {
                self.lock().shown = state.rollouts.clone();
                *saved = Some(state);
            }
            Err(err) => {
                if !never_gated {
                    self.lock().state.rollouts.insert(name.to_owned(), before);
                    return Err(Error::NotCarriedOut(err.to_string()));
                }
                {
                    let mut inner = self.lock();
                    inner.shown = inner.state.rollouts.clone();
                }
                tracing::error!(rollout = %name, "{err}; the abort is carried out all the same");
                msg = format!("{msg} (not persisted: {err})");
            }
        }
        drop(saved);
        self.wake();
        Ok((msg, seen))
    }

    /// Checks that a template a command would put in force can run here.
    fn check_template(&self, spec: &RolloutSpec) -> Result<(), Error> {
        match &spec.template {
            Some(t) => self.port.check_template(t),
            None => Ok(()),
        }
    }
}

impl<P: Port> RolloutService for Reconciler<P> {
    fn list(&self) -> Vec<RolloutSummary> {
        let world = self.port.world();
        let inner = self.lock();
        inner
            .state
            .rollouts
            .iter()
            .filter_map(|(name, e)| {
                let r = world.rollouts.get(name)?;
                let e = inner.shown.get(name).unwrap_or(e);
                Some(views::summary(
                    name,
                    &r.metadata.name,
                    r.metadata.namespace(),
                    &e.effective(r),
                    &e.status,
                ))
            })
            .collect()
    }

    fn get(&self, name: &str) -> Option<RolloutView> {
        let world = self.port.world();
        let r = world.rollouts.get(name)?;
        let (entry, runs, problem) = {
            let inner = self.lock();
            let e = inner
                .shown
                .get(name)
                .or_else(|| inner.state.rollouts.get(name))?
                .clone();
            let runs: Vec<(String, RunRecord)> = inner
                .state
                .runs
                .iter()
                .filter(|(_, run)| run.rollout == name)
                .map(|(n, run)| (n.clone(), run.clone()))
                .collect();
            (e, runs, inner.problems.of(name))
        };
        let route = settle::route_of(r);
        let now = Time::now();
        let figures = |template: &PodTemplate, hash: &str| {
            let addresses = self.port.addresses(name, template);
            let (totals, span) = self.hub.window(&route, hash, views::VIEW_WINDOW, now);
            views::Figures {
                healthy: self.port.healthy(name, &addresses),
                addresses,
                totals,
                span,
            }
        };
        Some(views::rollout(views::Sources {
            rollout: r,
            spec: &entry.effective(r),
            entry: &entry,
            runs: &runs,
            figures: &figures,
            problem,
        }))
    }

    fn command(&self, name: &str, command: Command) -> BoxFuture<'_, Result<String, Error>> {
        let name = name.to_owned();
        Box::pin(async move {
            let now = Time::now();
            let (message, seen) = self
                .apply_command(&name, command == Command::Abort, |spec, status| {
                    if let Command::Undo { .. } = command {
                        // the target revision must be able to run here
                        let (mut s2, mut st2) = (spec.clone(), status.clone());
                        commands::apply(command, &mut s2, &mut st2, now)
                            .map_err(|e| Error::Refused(e.to_string()))?;
                        self.check_template(&s2)
                            .map_err(|e| Error::Refused(e.to_string()))?;
                    }
                    commands::apply(command, spec, status, now)
                        .map_err(|e| Error::Refused(e.to_string()))
                })
                .await?;
            self.decided_after(seen).await;
            Ok(message)
        })
    }

    fn set_image(
        &self,
        name: &str,
        container: &str,
        image: &str,
    ) -> BoxFuture<'_, Result<String, Error>> {
        let (name, container, image) = (name.to_owned(), container.to_owned(), image.to_owned());
        Box::pin(async move {
            let (message, seen) = self
                .apply_command(&name, false, |spec, _status| {
                    let mut t = spec.template.clone().ok_or_else(|| {
                        Error::field("spec.template", "the rollout has no pod template")
                    })?;
                    if !t.set_image(&container, &image) {
                        return Err(Error::field(
                            "container",
                            format!("no container named {container:?}"),
                        ));
                    }
                    spec.template = Some(t);
                    self.check_template(spec)?;
                    Ok(format!("{container} image set to {image}"))
                })
                .await?;
            self.decided_after(seen).await;
            Ok(message)
        })
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }
}

impl<P: Port> RunHost for Reconciler<P> {
    fn run(&self, name: &str) -> Option<RunRecord> {
        self.lock().state.runs.get(name).cloned()
    }

    fn reports(&self) -> Option<watch::Receiver<u64>> {
        Some(self.hub.subscribe_reports())
    }

    fn update_run(&self, name: &str, f: impl FnOnce(&mut RunRecord)) {
        let verdict_changed = {
            let mut inner = self.lock();
            let ended = match inner.state.runs.get_mut(name) {
                Some(r) => {
                    let before = r.phase;
                    f(r);
                    (before != r.phase).then(|| (r.rollout.clone(), r.phase, r.error.clone()))
                }
                None => None,
            };
            // the verdict of a run that has just ended is an event of its rollout
            if let Some((rollout, phase, error)) = &ended
                && let Some((reason, word)) = verdict(*phase)
                && let Some(e) = inner.state.rollouts.get_mut(rollout)
            {
                let why = error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default();
                e.record(
                    Time::now(),
                    reason,
                    &format!("analysis run {name} {word}{why}"),
                );
            }
            ended.is_some()
        };
        self.changed();
        if verdict_changed {
            self.wake();
        }
    }

    fn wake(&self) {
        Reconciler::wake(self);
    }

    fn template(&self, rollout: &str, name: &str) -> Option<crate::spec::AnalysisTemplate> {
        super::port::template(&self.port.world(), rollout, name).cloned()
    }

    fn secret(
        &self,
        rollout: &str,
        secret: &str,
        key: &str,
    ) -> BoxFuture<'_, Result<String, Error>> {
        let (rollout, secret, key) = (rollout.to_owned(), secret.to_owned(), key.to_owned());
        Box::pin(async move { self.port.secret(&rollout, &secret, &key).await })
    }

    fn target_of(&self, rec: &RunRecord) -> Option<Measured> {
        let world = self.port.world();
        let r = world.rollouts.get(&rec.rollout)?;
        if !self.lock().state.rollouts.contains_key(&rec.rollout) {
            return None;
        }
        let route = settle::route_of(r);
        Some(Measured {
            rollout: rec.rollout.clone(),
            jobs: self.port.jobs(),
            counters: self.hub.clone(),
            route,
            revision: rec.request.revision.clone(),
            stable: rec.request.stable.clone(),
            revision_addresses: self.addresses_of(&rec.rollout, r, &rec.request.revision),
            stable_addresses: self.addresses_of(&rec.rollout, r, &rec.request.stable),
        })
    }
}
