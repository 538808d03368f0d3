//! An analysis run: its metrics (merged from templates, arguments substituted), when each is
//! measured next, what a measurement means, and the verdicts — all with Argo Rollouts'
//! semantics, as pure functions of the run and the time given.
//!
//! Guarantees:
//! - a measurement is Successful, Failed, Inconclusive or Error; a provider that has too
//!   little data ("waiting for traffic") is not a measurement and is tried again at the next
//!   interval;
//! - a metric fails when failed measurements exceed `failureLimit` (-1: never), is
//!   inconclusive when inconclusive ones exceed `inconclusiveLimit` (-1: never), errors when
//!   consecutive errors exceed `consecutiveErrorLimit` (default 4; a non-error resets it);
//! - a run takes its worst metric, dry-run metrics excluded; Failed, Error and Inconclusive
//!   decide at once, Successful only when every metric is done; a run terminated early is
//!   Successful unless a limit was already passed;
//! - with more measurements failing, a verdict only moves toward worse.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use sluice_api::FieldError;

use super::expr::{Expr, Value};
use crate::spec::rollout::AnalysisArg;
use crate::spec::template::{
    AnalysisTemplate, DryRun, IntOrString, MeasurementRetention, Metric, Provider,
};
use crate::time::Time;

/// Default `consecutiveErrorLimit`, as in Argo.
pub const DEFAULT_CONSECUTIVE_ERROR_LIMIT: i64 = 4;
/// Measurements kept per metric without a `measurementRetention` rule, as in Argo.
pub const DEFAULT_MEASUREMENT_RETENTION: usize = 10;
/// Retry delay for a metric with no interval whose provider had too little data.
pub const WAIT_RETRY: Duration = Duration::from_secs(1);

pub use super::phase::RunPhase;

/// What one measurement concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum MeasurementPhase {
    /// The success condition held (or the failure condition did not).
    Successful,
    /// The failure condition held (or the success condition did not).
    Failed,
    /// Neither condition decided.
    Inconclusive,
    /// The provider or the expression failed.
    Error,
}

/// One measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Measurement {
    /// What it concluded.
    pub phase: MeasurementPhase,
    /// The value measured, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Why, for errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When it was taken.
    pub finished_at: Time,
}

/// What a provider returned.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderOutcome {
    /// A value for `result`.
    Value(Value),
    /// The provider failed.
    Error(String),
    /// Too little data to measure (e.g. fewer than `minRequests`): not a measurement.
    NotEnoughData(String),
    /// The provider decided by itself (a job's exit status), with what it saw.
    Decided {
        /// Whether it succeeded.
        success: bool,
        /// What to keep (e.g. the command's output).
        detail: String,
    },
}

/// A metric ready to run: arguments substituted, expressions parsed, limits resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSpec {
    /// Name.
    pub name: String,
    /// Time between measurements.
    pub interval: Option<Duration>,
    /// Wait before the first.
    pub initial_delay: Duration,
    /// Measurements wanted (`None`: until stopped).
    pub count: Option<u64>,
    /// Success condition.
    pub success: Option<Expr>,
    /// Failure condition.
    pub failure: Option<Expr>,
    /// Failed measurements allowed (-1: any).
    pub failure_limit: i64,
    /// Inconclusive measurements allowed (-1: any).
    pub inconclusive_limit: i64,
    /// Consecutive errors allowed.
    pub consecutive_error_limit: i64,
    /// Measured but never deciding.
    pub dry_run: bool,
    /// Measurements kept (the newest).
    pub retention: usize,
    /// Where values come from.
    pub provider: Provider,
}

/// A run ready to execute.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    /// Metrics, in template order.
    pub metrics: Vec<MetricSpec>,
}

/// Measurements of one metric so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricState {
    /// Metric name.
    pub name: String,
    /// The newest measurements (see [`MetricSpec::retention`]), oldest first.
    #[serde(default)]
    pub measurements: Vec<Measurement>,
    /// Counts by phase.
    pub successful: u64,
    /// Failed measurements.
    pub failed: u64,
    /// Inconclusive measurements.
    pub inconclusive: u64,
    /// Error measurements.
    pub error: u64,
    /// Errors in a row.
    pub consecutive_error: u64,
    /// Last time the provider was asked, measurement or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt: Option<Time>,
    /// Why the last attempt was not a measurement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
    /// Its success and failure conditions, as the run resolved them (what a measurement is
    /// judged by, to show beside it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<String>,
}

impl MetricSpec {
    /// Its conditions in words: `success: …`, `failure: …`.
    pub fn conditions(&self) -> Vec<String> {
        [("success", &self.success), ("failure", &self.failure)]
            .into_iter()
            .filter_map(|(k, e)| e.as_ref().map(|e| format!("{k}: {}", e.text())))
            .collect()
    }
}

impl MetricState {
    /// Measurements that count toward `count`, including those no longer kept: as in Argo,
    /// an Error is not one (it is retried, and `consecutiveErrorLimit` decides), so a provider
    /// that cannot measure never lets a metric pass.
    pub fn taken(&self) -> u64 {
        self.successful + self.failed + self.inconclusive
    }
}

/// Keeps the newest `limit` measurements (the counts keep every one).
pub fn retain(state: &mut MetricState, limit: usize) {
    let extra = state.measurements.len().saturating_sub(limit);
    state.measurements.drain(..extra);
}

/// Resolves the arguments a run gets: the rollout's (literal, or a revision's hash) over the
/// templates' defaults. `stable` and `latest` are the hashes `valueFrom` may name.
pub fn resolve_args(
    given: &[AnalysisArg],
    stable: &str,
    latest: &str,
    fields: crate::spec::rollout::ArgFields<'_>,
) -> BTreeMap<String, String> {
    use crate::spec::rollout::PodTemplateHashValue as H;
    given
        .iter()
        .filter_map(|a| {
            let v = match (&a.value, &a.value_from) {
                (Some(v), _) => v.clone(),
                (None, Some(from)) => match (from.pod_template_hash_value, &from.field_ref) {
                    (Some(H::Stable), _) => stable.to_owned(),
                    (Some(H::Latest), _) => latest.to_owned(),
                    (None, Some(f)) => f.value(fields).ok().flatten()?,
                    // a Secret's key is read by the runtime when the run starts
                    (None, None) => return None,
                },
                (None, None) => return None,
            };
            Some((a.name.clone(), v))
        })
        .collect()
}

/// The arguments taken from a Secret's key, by argument name (read when the run starts).
pub fn secret_args(given: &[AnalysisArg]) -> BTreeMap<String, crate::spec::rollout::SecretKeyRef> {
    given
        .iter()
        .filter(|a| a.value.is_none())
        .filter_map(|a| {
            let k = a.value_from.as_ref()?.secret_key_ref.clone()?;
            Some((a.name.clone(), k))
        })
        .collect()
}

/// Most templates one run may include, all levels together.
pub const MAX_INCLUDED_TEMPLATES: usize = 100;

/// The templates a run uses: each requested one followed by those it includes through
/// `spec.templates`, at any depth, each once (as Argo flattens them). `lookup` finds a
/// template by the name an analysis requests it as ([`TemplateRef::requested`]). A missing
/// template is [`crate::Error::NotFound`]; a template that includes itself, directly or
/// not, is refused.
///
/// [`TemplateRef::requested`]: crate::spec::template::TemplateRef::requested
pub fn included<T: std::borrow::Borrow<AnalysisTemplate>>(
    requested: &[String],
    lookup: impl Fn(&str) -> Option<T>,
) -> Result<Vec<T>, crate::Error> {
    fn visit<T: std::borrow::Borrow<AnalysisTemplate>>(
        name: &str,
        lookup: &dyn Fn(&str) -> Option<T>,
        stack: &mut Vec<String>,
        seen: &mut HashSet<String>,
        out: &mut Vec<T>,
    ) -> Result<(), crate::Error> {
        if stack.iter().any(|s| s == name) {
            let mut chain = stack.clone();
            chain.push(name.to_owned());
            return Err(crate::Error::field(
                format!(
                    "AnalysisTemplate {}: spec.templates",
                    stack.last().map_or("", |s| s)
                ),
                format!(
                    "templates include each other in a loop: {}",
                    chain.join(" -> ")
                ),
            ));
        }
        if !seen.insert(name.to_owned()) {
            return Ok(());
        }
        if seen.len() > MAX_INCLUDED_TEMPLATES {
            return Err(crate::Error::field(
                "spec.templates",
                format!("a run includes more than {MAX_INCLUDED_TEMPLATES} templates"),
            ));
        }
        let t = lookup(name)
            .ok_or_else(|| crate::Error::NotFound(format!("no AnalysisTemplate named {name:?}")))?;
        let inner: Vec<String> = t
            .borrow()
            .spec
            .templates
            .iter()
            .map(crate::spec::template::TemplateRef::requested)
            .collect();
        out.push(t);
        stack.push(name.to_owned());
        for i in &inner {
            visit(i, lookup, stack, seen, out)?;
        }
        stack.pop();
        Ok(())
    }
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for name in requested {
        visit(name, &lookup, &mut Vec::new(), &mut seen, &mut out)?;
    }
    Ok(out)
}

/// What a run adds to its templates: the rollout's own dry-run and retention rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rules<'a> {
    /// `dryRun` of the rollout's analysis.
    pub dry_run: &'a [DryRun],
    /// `measurementRetention` of the rollout's analysis.
    pub retention: &'a [MeasurementRetention],
}

/// The templates' arguments merged as Argo merges them: a name declared by several templates
/// is one argument, whose default is the one value they give (two different ones are an
/// error).
fn merged_defaults(
    templates: &[&AnalysisTemplate],
    errors: &mut Vec<FieldError>,
) -> BTreeMap<String, Option<String>> {
    let mut out: BTreeMap<String, Option<String>> = BTreeMap::new();
    for t in templates {
        for a in &t.spec.args {
            match out.get_mut(&a.name) {
                None => {
                    out.insert(a.name.clone(), a.value.clone());
                }
                Some(prev) => match (prev.as_ref(), &a.value) {
                    (Some(p), Some(v)) if p != v => errors.push(FieldError::new(
                        format!("AnalysisTemplate {}: spec.args.{}", t.metadata.name, a.name),
                        format!(
                            "argument given different values by two templates: {p:?} and {v:?}"
                        ),
                    )),
                    (None, Some(v)) => *prev = Some(v.clone()),
                    _ => {}
                },
            }
        }
    }
    out
}

/// A rule's metric-name pattern: `*` for all, else a regular expression matched anywhere in
/// the name, as Argo matches it.
fn pattern(p: &str) -> Result<regex::Regex, String> {
    let p = if p == "*" { ".*" } else { p };
    sluice_api::limits::compile_regex(p)
}

/// The metric names each rule names: (where the rule is written, the names it matches).
fn matched<'n>(
    path: String,
    metric_name: &str,
    names: &[&'n str],
    errors: &mut Vec<FieldError>,
) -> Vec<&'n str> {
    match pattern(metric_name) {
        Err(e) => {
            errors.push(FieldError::new(path, e));
            Vec::new()
        }
        Ok(re) => {
            let hits: Vec<&str> = names.iter().copied().filter(|n| re.is_match(n)).collect();
            if hits.is_empty() {
                errors.push(FieldError::new(
                    path,
                    format!("{metric_name:?} matches no metric of the run"),
                ));
            }
            hits
        }
    }
}

/// Builds a run from templates (those included through `spec.templates` already among them),
/// arguments and the rollout's rules. Errors name the template and field.
pub fn build_run(
    templates: &[&AnalysisTemplate],
    args: &BTreeMap<String, String>,
    rules: &Rules<'_>,
) -> Result<RunSpec, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut values = BTreeMap::new();
    for (name, default) in merged_defaults(templates, &mut errors) {
        match args.get(&name).or(default.as_ref()) {
            Some(v) => {
                values.insert(name, v.clone());
            }
            None => {
                let owner = templates
                    .iter()
                    .find(|t| t.spec.args.iter().any(|a| a.name == name))
                    .map_or("", |t| t.metadata.name.as_str());
                errors.push(FieldError::new(
                    format!("AnalysisTemplate {owner}: spec.args.{name}"),
                    "required argument has no value",
                ));
            }
        }
    }
    let mut written = Vec::new();
    let mut seen = HashSet::new();
    for t in templates {
        let tname = &t.metadata.name;
        for (i, m) in t.spec.metrics.iter().enumerate() {
            let path = format!("AnalysisTemplate {tname}: spec.metrics[{i}]");
            if !seen.insert(m.name.clone()) {
                errors.push(FieldError::new(
                    format!("{path}.name"),
                    format!("metric {:?} is defined by more than one template", m.name),
                ));
                continue;
            }
            written.push((path, m));
        }
    }
    let names: Vec<&str> = written.iter().map(|(_, m)| m.name.as_str()).collect();
    let mut dry = HashSet::new();
    let mut retention: BTreeMap<&str, u32> = BTreeMap::new();
    for t in templates {
        let tname = &t.metadata.name;
        for (i, d) in t.spec.dry_run.iter().enumerate() {
            let p = format!("AnalysisTemplate {tname}: spec.dryRun[{i}].metricName");
            dry.extend(matched(p, &d.metric_name, &names, &mut errors));
        }
        for (i, r) in t.spec.measurement_retention.iter().enumerate() {
            let p = format!("AnalysisTemplate {tname}: spec.measurementRetention[{i}].metricName");
            for n in matched(p, &r.metric_name, &names, &mut errors) {
                retention.insert(n, r.limit);
            }
        }
    }
    // the rollout's own rules come last and win
    for (i, d) in rules.dry_run.iter().enumerate() {
        let p = format!("dryRun[{i}].metricName");
        dry.extend(matched(p, &d.metric_name, &names, &mut errors));
    }
    for (i, r) in rules.retention.iter().enumerate() {
        let p = format!("measurementRetention[{i}].metricName");
        for n in matched(p, &r.metric_name, &names, &mut errors) {
            retention.insert(n, r.limit);
        }
    }
    let mut metrics = Vec::new();
    for (path, m) in &written {
        match substitute(m, &values) {
            Ok(m) => match resolve_metric(&m, dry.contains(m.name.as_str())) {
                Ok(mut spec) => {
                    if let Some(limit) = retention.get(m.name.as_str()) {
                        spec.retention = *limit as usize;
                    }
                    metrics.push(spec);
                }
                Err((field, reason)) => {
                    errors.push(FieldError::new(format!("{path}.{field}"), reason))
                }
            },
            Err(reason) => errors.push(FieldError::new(path.clone(), reason)),
        }
    }
    if errors.is_empty() {
        Ok(RunSpec { metrics })
    } else {
        Err(errors)
    }
}

/// The metrics of a run as its templates wrote them, with the arguments substituted (what an
/// AnalysisRun object shows), and the arguments with their values; a metric whose text cannot
/// be substituted is left out (the run itself says why it could not start).
pub fn written_metrics(
    templates: &[&AnalysisTemplate],
    args: &BTreeMap<String, String>,
) -> (Vec<Metric>, Vec<crate::spec::template::ArgSpec>) {
    let values: BTreeMap<String, String> = merged_defaults(templates, &mut Vec::new())
        .into_iter()
        .filter_map(|(name, default)| {
            let v = args.get(&name).cloned().or(default)?;
            Some((name, v))
        })
        .collect();
    let metrics = templates
        .iter()
        .flat_map(|t| t.spec.metrics.iter())
        .filter_map(|m| substitute(m, &values).ok())
        .collect();
    let args = values
        .into_iter()
        .map(|(name, value)| crate::spec::template::ArgSpec {
            name,
            value: Some(value),
        })
        .collect();
    (metrics, args)
}

/// Replaces `{{args.NAME}}` in every text of a metric.
fn substitute(m: &Metric, values: &BTreeMap<String, String>) -> Result<Metric, String> {
    fn walk(v: &mut Json, values: &BTreeMap<String, String>) -> Result<(), String> {
        match v {
            Json::String(s) => {
                let mut out = String::with_capacity(s.len());
                let mut rest = s.as_str();
                while let Some(start) = rest.find("{{") {
                    out.push_str(&rest[..start]);
                    let after = &rest[start + 2..];
                    let end = after
                        .find("}}")
                        .ok_or_else(|| format!("unclosed `{{{{` in {s:?}"))?;
                    let key = after[..end].trim();
                    let name = key.strip_prefix("args.").ok_or_else(|| {
                        format!("`{{{{{key}}}}}` is not an argument (use {{{{args.NAME}}}})")
                    })?;
                    let value = values
                        .get(name)
                        .ok_or_else(|| format!("argument {name:?} is not declared in spec.args"))?;
                    out.push_str(value);
                    rest = &after[end + 2..];
                }
                out.push_str(rest);
                *s = out;
            }
            Json::Array(items) => {
                for i in items {
                    walk(i, values)?;
                }
            }
            Json::Object(map) => {
                for (_, v) in map.iter_mut() {
                    walk(v, values)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
    let mut tree = serde_json::to_value(m).map_err(|e| e.to_string())?;
    walk(&mut tree, values)?;
    serde_json::from_value(tree).map_err(|e| format!("after substituting arguments: {e}"))
}

fn int(
    v: &Option<IntOrString>,
    default: i64,
    field: &'static str,
) -> Result<i64, (&'static str, String)> {
    match v {
        None => Ok(default),
        Some(IntOrString::Int(n)) => Ok(*n),
        Some(IntOrString::String(s)) => s
            .trim()
            .parse()
            .map_err(|_| (field, format!("{s:?} is not a whole number"))),
    }
}

fn resolve_metric(m: &Metric, dry_run: bool) -> Result<MetricSpec, (&'static str, String)> {
    let parse = |c: &Option<String>, field: &'static str| {
        c.as_deref()
            .map(Expr::parse)
            .transpose()
            .map_err(|e| (field, e.to_string()))
    };
    let count = int(&m.count, 0, "count")?;
    Ok(MetricSpec {
        name: m.name.clone(),
        interval: m.interval.as_ref().map(|d| d.value),
        initial_delay: m.initial_delay.as_ref().map_or(Duration::ZERO, |d| d.value),
        count: match (count, &m.interval) {
            (n, _) if n > 0 => Some(n.unsigned_abs()),
            (_, None) => Some(1),
            (_, Some(_)) => None,
        },
        success: parse(&m.success_condition, "successCondition")?,
        failure: parse(&m.failure_condition, "failureCondition")?,
        failure_limit: int(&m.failure_limit, 0, "failureLimit")?,
        inconclusive_limit: int(&m.inconclusive_limit, 0, "inconclusiveLimit")?,
        consecutive_error_limit: int(
            &m.consecutive_error_limit,
            DEFAULT_CONSECUTIVE_ERROR_LIMIT,
            "consecutiveErrorLimit",
        )?,
        dry_run,
        retention: DEFAULT_MEASUREMENT_RETENTION,
        provider: m.provider.clone(),
    })
}

/// What a provider outcome means under a metric's conditions.
pub fn assess(metric: &MetricSpec, outcome: &ProviderOutcome, now: Time) -> Option<Measurement> {
    let value = match outcome {
        ProviderOutcome::NotEnoughData(_) => return None,
        ProviderOutcome::Decided { success, detail } => {
            return Some(Measurement {
                phase: if *success {
                    MeasurementPhase::Successful
                } else {
                    MeasurementPhase::Failed
                },
                value: Some(if *success { "succeeded" } else { "failed" }.to_owned()),
                message: Some(detail.clone()),
                finished_at: now,
            });
        }
        ProviderOutcome::Error(msg) => {
            return Some(Measurement {
                phase: MeasurementPhase::Error,
                value: None,
                message: Some(msg.clone()),
                finished_at: now,
            });
        }
        ProviderOutcome::Value(v) => v,
    };
    let at = now.0 as f64 / 1000.0;
    let eval = |e: &Option<Expr>| e.as_ref().map(|x| x.condition_at(value, at)).transpose();
    let decided = eval(&metric.failure).and_then(|f| Ok((f, eval(&metric.success)?)));
    let (phase, message) = match decided {
        Err(e) => (MeasurementPhase::Error, Some(e.to_string())),
        Ok((failed, succeeded)) => (
            match (failed, succeeded) {
                (Some(true), _) => MeasurementPhase::Failed,
                (Some(false), Some(true)) => MeasurementPhase::Successful,
                (Some(false), Some(false)) => MeasurementPhase::Inconclusive,
                (Some(false), None) => MeasurementPhase::Successful,
                (None, Some(true)) => MeasurementPhase::Successful,
                (None, Some(false)) => MeasurementPhase::Failed,
                (None, None) => MeasurementPhase::Inconclusive,
            },
            None,
        ),
    };
    Some(Measurement {
        phase,
        value: Some(value.to_string()),
        message,
        finished_at: now,
    })
}

/// Records an attempt: a measurement, or a "not enough data" that is not one.
pub fn record(
    state: &mut MetricState,
    outcome: &ProviderOutcome,
    measurement: Option<Measurement>,
    now: Time,
) {
    state.last_attempt = Some(now);
    let Some(m) = measurement else {
        if let ProviderOutcome::NotEnoughData(why) = outcome {
            state.waiting = Some(why.clone());
        }
        return;
    };
    state.waiting = None;
    match m.phase {
        MeasurementPhase::Successful => state.successful += 1,
        MeasurementPhase::Failed => state.failed += 1,
        MeasurementPhase::Inconclusive => state.inconclusive += 1,
        MeasurementPhase::Error => state.error += 1,
    }
    if m.phase == MeasurementPhase::Error {
        state.consecutive_error += 1;
    } else {
        state.consecutive_error = 0;
    }
    state.measurements.push(m);
}

fn over(n: u64, limit: i64) -> bool {
    limit >= 0 && n > limit.unsigned_abs()
}

/// The phase of one metric; `terminating` when the run is being stopped early.
pub fn metric_phase(metric: &MetricSpec, state: &MetricState, terminating: bool) -> RunPhase {
    if over(state.failed, metric.failure_limit) {
        return RunPhase::Failed;
    }
    if over(state.inconclusive, metric.inconclusive_limit) {
        return RunPhase::Inconclusive;
    }
    if over(state.consecutive_error, metric.consecutive_error_limit) {
        return RunPhase::Error;
    }
    let taken = state.taken();
    if metric.count.is_some_and(|c| taken >= c) || terminating {
        return RunPhase::Successful;
    }
    if state.taken() + state.error == 0 && state.last_attempt.is_none() {
        RunPhase::Pending
    } else {
        RunPhase::Running
    }
}

/// The phase of a run: its worst deciding metric. Failed, Error and Inconclusive decide at
/// once; Successful needs every metric done.
pub fn run_phase(spec: &RunSpec, states: &[MetricState], terminating: bool) -> RunPhase {
    let mut worst = RunPhase::Successful;
    let mut all_done = true;
    for m in spec.metrics.iter().filter(|m| !m.dry_run) {
        let phase = states.iter().find(|s| s.name == m.name).map_or(
            if terminating {
                RunPhase::Successful
            } else {
                RunPhase::Pending
            },
            |s| metric_phase(m, s, terminating),
        );
        all_done &= phase.is_complete();
        worst = worst.worst(phase);
    }
    match worst {
        RunPhase::Failed | RunPhase::Error | RunPhase::Inconclusive => worst,
        _ if all_done => RunPhase::Successful,
        _ => RunPhase::Running,
    }
}

/// When a metric is due to be measured next; `None` when it is done.
pub fn next_due(metric: &MetricSpec, state: &MetricState, started: Time) -> Option<Time> {
    if metric_phase(metric, state, false).is_complete() {
        return None;
    }
    match state.last_attempt {
        None => Some(started.plus(metric.initial_delay)),
        Some(last) => Some(last.plus(metric.interval.unwrap_or(WAIT_RETRY))),
    }
}

#[cfg(test)]
mod tests;
