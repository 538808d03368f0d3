//! Checks a parsed Rollout or AnalysisTemplate for impossible values, naming each field path.
//! What passes here, the engine can run.

use sluice_api::FieldError;

use super::rollout::{AnalysisArg, CanaryStep, Rollout, StringMatch, TrafficRouting};
use super::template::{AnalysisTemplate, IntOrString, Metric};
use crate::analysis::expr::Expr;

/// The largest `maxTrafficWeight`.
pub const MAX_TOTAL: u32 = sluice_api::limits::MAX_TOTAL;

struct Errors(Vec<FieldError>);

impl Errors {
    fn add(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        self.0.push(FieldError::new(path, reason));
    }
}

/// A DNS-1123 label-ish name: lower-case letters, digits and `-`, at most 253 characters.
pub fn valid_object_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Every problem in a Rollout.
pub fn rollout(r: &Rollout) -> Vec<FieldError> {
    let mut e = Errors(Vec::new());
    if !valid_object_name(&r.metadata.name) {
        e.add(
            "metadata.name",
            format!(
                "{:?} must be lower-case letters, digits, '-' or '.'",
                r.metadata.name
            ),
        );
    }
    let s = &r.spec;
    if s.replicas.is_some_and(|n| n < 0) {
        e.add("spec.replicas", "must not be negative");
    }
    if s.revision_history_limit.is_some_and(|n| n < 0) {
        e.add("spec.revisionHistoryLimit", "must not be negative");
    }
    if s.progress_deadline_seconds == Some(0) {
        e.add("spec.progressDeadlineSeconds", "must be above 0");
    }
    if s.rollback_window.as_ref().is_some_and(|w| w.revisions == 0) {
        e.add("spec.rollbackWindow.revisions", "must be above 0");
    }
    if let Some(w) = &s.workload_ref {
        if s.template.is_some() {
            e.add("spec.workloadRef", "set template or workloadRef, not both");
        }
        if w.api_version != "apps/v1" || w.kind != "Deployment" {
            e.add(
                "spec.workloadRef",
                "must refer to an apps/v1 Deployment (apiVersion: apps/v1, kind: Deployment)",
            );
        }
        if !valid_object_name(&w.name) {
            e.add("spec.workloadRef.name", "required: a Deployment name");
        }
    }
    match &s.template {
        None if s.workload_ref.is_some() => {}
        None => e.add(
            "spec.template",
            "required: the pod template whose hash names the revision",
        ),
        Some(t) => {
            if let Err((path, reason)) = t.containers() {
                e.add(format!("spec.template.{path}"), reason);
            }
            if let Some(sel) = &s.selector {
                let labels = t.labels();
                for (k, v) in &sel.match_labels {
                    if labels.get(k) != Some(v) {
                        e.add(
                            format!("spec.selector.matchLabels.{k}"),
                            format!("the template's labels must include {k}: {v}"),
                        );
                    }
                }
            }
        }
    }
    match (&s.strategy.canary, &s.strategy.blue_green) {
        (Some(_), Some(_)) => e.add("spec.strategy", "set canary or blueGreen, not both"),
        (None, None) => e.add("spec.strategy", "set canary or blueGreen"),
        (Some(c), None) => {
            let base = "spec.strategy.canary";
            let total = routing(&mut e, base, c.traffic_routing.as_ref());
            for (i, step) in c.steps.iter().enumerate() {
                canary_step(&mut e, &format!("{base}.steps[{i}]"), step, total);
            }
            if let Some(a) = &c.analysis {
                analysis_ref(&mut e, &format!("{base}.analysis"), &a.templates, &a.args);
                rules(
                    &mut e,
                    &format!("{base}.analysis"),
                    &a.dry_run,
                    &a.measurement_retention,
                );
                if let Some(start) = a.starting_step
                    && start as usize > c.steps.len()
                {
                    e.add(
                        format!("{base}.analysis.startingStep"),
                        format!("{start} is past the last step ({} steps)", c.steps.len()),
                    );
                }
            }
        }
        (None, Some(b)) => {
            let base = "spec.strategy.blueGreen";
            if !valid_object_name(&b.active_service) {
                e.add(format!("{base}.activeService"), "required: a Service name");
            }
            if let Some(p) = &b.preview_service {
                if !valid_object_name(p) {
                    e.add(format!("{base}.previewService"), "must be a Service name");
                } else if *p == b.active_service {
                    e.add(
                        format!("{base}.previewService"),
                        "must differ from activeService",
                    );
                }
            }
            if b.preview_replica_count.is_some_and(|n| n < 0) {
                e.add(
                    format!("{base}.previewReplicaCount"),
                    "must not be negative",
                );
            }
            routing(&mut e, base, b.traffic_routing.as_ref());
            for (field, a) in [
                ("prePromotionAnalysis", &b.pre_promotion_analysis),
                ("postPromotionAnalysis", &b.post_promotion_analysis),
            ] {
                if let Some(a) = a {
                    analysis_ref(&mut e, &format!("{base}.{field}"), &a.templates, &a.args);
                    rules(
                        &mut e,
                        &format!("{base}.{field}"),
                        &a.dry_run,
                        &a.measurement_retention,
                    );
                }
            }
        }
    }
    e.0
}

fn routing(e: &mut Errors, base: &str, r: Option<&TrafficRouting>) -> u32 {
    let Some(r) = r else { return 100 };
    let total = r
        .max_traffic_weight
        .unwrap_or(super::defaults::MAX_TRAFFIC_WEIGHT);
    if total == 0 || total > MAX_TOTAL {
        e.add(
            format!("{base}.trafficRouting.maxTrafficWeight"),
            format!("{total} must be between 1 and {MAX_TOTAL}"),
        );
    }
    if let Some(s) = &r.sluice {
        let p = format!("{base}.trafficRouting.sluice");
        if s.sticky_header.is_some() && s.sticky_cookie.is_some() {
            e.add(
                format!("{p}.stickyCookie"),
                "set stickyHeader or stickyCookie, not both",
            );
        }
        if let Some(prefix) = &s.path_prefix
            && !prefix.starts_with('/')
        {
            e.add(
                format!("{p}.pathPrefix"),
                format!("{prefix:?} must start with '/'"),
            );
        }
        if let Some(route) = &s.route
            && route.is_empty()
        {
            e.add(format!("{p}.route"), "must not be empty");
        }
        if let Some(f) = &s.failover {
            for (i, code) in f.statuses.iter().enumerate() {
                if !(100..=599).contains(code) {
                    e.add(
                        format!("{p}.failover.statuses[{i}]"),
                        format!("{code} is not an HTTP status"),
                    );
                }
            }
            for (i, m) in f.safe_methods.iter().enumerate() {
                if m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()) {
                    e.add(
                        format!("{p}.failover.safeMethods[{i}]"),
                        format!("{m:?} is not a method in capitals (GET, HEAD, …)"),
                    );
                }
            }
        }
    }
    total
}

fn canary_step(e: &mut Errors, path: &str, step: &CanaryStep, total: u32) {
    let set = [
        step.set_weight.is_some(),
        step.pause.is_some(),
        step.analysis.is_some(),
        step.set_header_route.is_some(),
        step.set_mirror_route.is_some(),
        step.set_canary_scale.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if set != 1 {
        e.add(
            path,
            "a step sets exactly one of setWeight, pause, analysis, setHeaderRoute, setMirrorRoute, setCanaryScale",
        );
        return;
    }
    if let Some(w) = step.set_weight
        && w > total
    {
        e.add(
            format!("{path}.setWeight"),
            format!("{w} exceeds maxTrafficWeight {total}"),
        );
    }
    if let Some(a) = &step.analysis {
        analysis_ref(e, &format!("{path}.analysis"), &a.templates, &a.args);
        rules(
            e,
            &format!("{path}.analysis"),
            &a.dry_run,
            &a.measurement_retention,
        );
    }
    if let Some(h) = &step.set_header_route {
        if h.name.is_empty() {
            e.add(format!("{path}.setHeaderRoute.name"), "required");
        }
        for (i, m) in h.matches.iter().enumerate() {
            let p = format!("{path}.setHeaderRoute.match[{i}]");
            if http_header_name_invalid(&m.header_name) {
                e.add(
                    format!("{p}.headerName"),
                    format!("{:?} is not a header name", m.header_name),
                );
            }
            string_match(e, &format!("{p}.headerValue"), &m.header_value);
        }
    }
    if let Some(m) = &step.set_mirror_route {
        if m.name.is_empty() {
            e.add(format!("{path}.setMirrorRoute.name"), "required");
        }
        if m.percentage.is_some_and(|p| p > 100) {
            e.add(
                format!("{path}.setMirrorRoute.percentage"),
                "must be 0 to 100",
            );
        }
        for (i, rm) in m.matches.iter().enumerate() {
            let p = format!("{path}.setMirrorRoute.match[{i}]");
            if let Some(sm) = &rm.method {
                string_match(e, &format!("{p}.method"), sm);
            }
            if let Some(sm) = &rm.path {
                string_match(e, &format!("{p}.path"), sm);
            }
            for (name, sm) in &rm.headers {
                string_match(e, &format!("{p}.headers.{name}"), sm);
            }
        }
    }
    if let Some(s) = &step.set_canary_scale {
        let n = [
            s.replicas.is_some(),
            s.weight.is_some(),
            s.match_traffic_weight,
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if n != 1 {
            e.add(
                format!("{path}.setCanaryScale"),
                "set exactly one of replicas, weight or matchTrafficWeight",
            );
        }
        if s.replicas.is_some_and(|r| r < 0) {
            e.add(
                format!("{path}.setCanaryScale.replicas"),
                "must not be negative",
            );
        }
        if s.weight.is_some_and(|w| w > 100) {
            e.add(format!("{path}.setCanaryScale.weight"), "must be 0 to 100");
        }
    }
}

fn http_header_name_invalid(name: &str) -> bool {
    http_name_ok(name).is_none()
}

fn http_name_ok(name: &str) -> Option<()> {
    (!name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)))
    .then_some(())
}

fn string_match(e: &mut Errors, path: &str, m: &StringMatch) {
    let n = [m.exact.is_some(), m.prefix.is_some(), m.regex.is_some()]
        .iter()
        .filter(|x| **x)
        .count();
    if n != 1 {
        e.add(path, "set exactly one of exact, prefix or regex");
    }
    if let Some(re) = &m.regex
        && let Err(err) = regex_check(re)
    {
        e.add(format!("{path}.regex"), err);
    }
}

fn regex_check(re: &str) -> Result<(), String> {
    // The proxy compiles the same pattern; check it with the same rules here.
    sluice_api::limits::check_regex(re)
}

/// `dryRun` and `measurementRetention` rules: their metric names are regular expressions
/// (`*` for all).
fn rules(
    e: &mut Errors,
    path: &str,
    dry_run: &[super::template::DryRun],
    retention: &[super::template::MeasurementRetention],
) {
    let check = |e: &mut Errors, at: String, name: &str| {
        if name.is_empty() {
            e.add(at, "required");
        } else if name != "*"
            && let Err(err) = sluice_api::limits::check_regex(name)
        {
            e.add(at, err);
        }
    };
    for (i, d) in dry_run.iter().enumerate() {
        check(e, format!("{path}.dryRun[{i}].metricName"), &d.metric_name);
    }
    for (i, r) in retention.iter().enumerate() {
        check(
            e,
            format!("{path}.measurementRetention[{i}].metricName"),
            &r.metric_name,
        );
    }
}

fn analysis_ref(
    e: &mut Errors,
    path: &str,
    templates: &[super::rollout::TemplateRef],
    args: &[AnalysisArg],
) {
    if templates.is_empty() {
        e.add(
            format!("{path}.templates"),
            "required: at least one template",
        );
    }
    for (i, t) in templates.iter().enumerate() {
        if !valid_object_name(&t.template_name) {
            e.add(
                format!("{path}.templates[{i}].templateName"),
                "required: a template name",
            );
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (i, a) in args.iter().enumerate() {
        if let Some(from) = &a.value_from {
            let at = format!("{path}.args[{i}].valueFrom");
            let given = [
                from.pod_template_hash_value.is_some(),
                from.field_ref.is_some(),
                from.secret_key_ref.is_some(),
            ]
            .into_iter()
            .filter(|x| *x)
            .count();
            if given != 1 {
                e.add(
                    &at,
                    "set exactly one of podTemplateHashValue, fieldRef and secretKeyRef",
                );
            }
            if let Some(f) = &from.field_ref {
                let meta = super::meta::ObjectMeta::default();
                if let Err(why) = f.value(super::rollout::ArgFields { metadata: &meta }) {
                    e.add(format!("{at}.fieldRef.fieldPath"), why);
                }
            }
            if let Some(k) = &from.secret_key_ref
                && (!valid_object_name(&k.name) || k.key.is_empty())
            {
                e.add(
                    format!("{at}.secretKeyRef"),
                    "required: a Secret name and a key",
                );
            }
        }
        if a.name.is_empty() {
            e.add(format!("{path}.args[{i}].name"), "required");
        } else if !seen.insert(a.name.as_str()) {
            e.add(
                format!("{path}.args[{i}].name"),
                format!("duplicate argument {:?}", a.name),
            );
        }
        if a.value.is_some() == a.value_from.is_some() {
            e.add(
                format!("{path}.args[{i}]"),
                "set exactly one of value or valueFrom",
            );
        }
    }
}

/// Every problem in an AnalysisTemplate.
pub fn analysis_template(t: &AnalysisTemplate) -> Vec<FieldError> {
    let mut e = Errors(Vec::new());
    if !valid_object_name(&t.metadata.name) {
        e.add(
            "metadata.name",
            format!(
                "{:?} must be lower-case letters, digits, '-' or '.'",
                t.metadata.name
            ),
        );
    }
    if t.spec.metrics.is_empty() && t.spec.templates.is_empty() {
        e.add(
            "spec.metrics",
            "required: at least one metric, or templates to include",
        );
    }
    for (i, r) in t.spec.templates.iter().enumerate() {
        if !valid_object_name(&r.template_name) {
            e.add(
                format!("spec.templates[{i}].templateName"),
                format!("{:?} is not a template name", r.template_name),
            );
        }
    }
    let mut names = std::collections::HashSet::new();
    for (i, m) in t.spec.metrics.iter().enumerate() {
        let p = format!("spec.metrics[{i}]");
        if m.name.is_empty() {
            e.add(format!("{p}.name"), "required");
        } else if !names.insert(m.name.as_str()) {
            e.add(
                format!("{p}.name"),
                format!("duplicate metric name {:?}", m.name),
            );
        }
        metric(&mut e, &p, m);
    }
    let mut args = std::collections::HashSet::new();
    for (i, a) in t.spec.args.iter().enumerate() {
        if a.name.is_empty() {
            e.add(format!("spec.args[{i}].name"), "required");
        } else if !args.insert(a.name.as_str()) {
            e.add(
                format!("spec.args[{i}].name"),
                format!("duplicate argument {:?}", a.name),
            );
        }
    }
    rules(
        &mut e,
        "spec",
        &t.spec.dry_run,
        &t.spec.measurement_retention,
    );
    // without included templates, every rule must name one of these metrics
    if t.spec.templates.is_empty() {
        let matches = |pattern: &str| {
            let p = if pattern == "*" { ".*" } else { pattern };
            sluice_api::limits::compile_regex(p)
                .is_ok_and(|re| names.iter().any(|n| re.is_match(n)))
        };
        let written = t
            .spec
            .dry_run
            .iter()
            .map(|d| ("dryRun", &d.metric_name))
            .enumerate()
            .chain(
                t.spec
                    .measurement_retention
                    .iter()
                    .map(|r| ("measurementRetention", &r.metric_name))
                    .enumerate(),
            );
        for (i, (field, name)) in written {
            if !name.is_empty() && !matches(name) {
                e.add(
                    format!("spec.{field}[{i}].metricName"),
                    format!("{name:?} matches no metric"),
                );
            }
        }
    }
    e.0
}

/// Header names of a provider's `headers`.
fn headers(e: &mut Errors, path: &str, list: &[super::template::WebHeader]) {
    for (i, h) in list.iter().enumerate() {
        if http_header_name_invalid(&h.key) {
            e.add(
                format!("{path}.headers[{i}].key"),
                format!("{:?} is not a header name", h.key),
            );
        }
    }
}

/// Whether a text still holds an unsubstituted `{{args.…}}`.
fn templated(s: &str) -> bool {
    s.contains("{{")
}

/// An http(s) URL, or a text still holding an argument.
fn url_ok(s: &str) -> bool {
    templated(s) || s.starts_with("http://") || s.starts_with("https://")
}

fn int_field(e: &mut Errors, path: String, v: &Option<IntOrString>, min: i64) {
    match v {
        None => {}
        Some(IntOrString::Int(n)) if *n < min => e.add(path, format!("{n} must be at least {min}")),
        Some(IntOrString::Int(_)) => {}
        Some(IntOrString::String(s)) if templated(s) => {}
        Some(IntOrString::String(s)) => match s.trim().parse::<i64>() {
            Ok(n) if n < min => e.add(path, format!("{n} must be at least {min}")),
            Ok(_) => {}
            Err(_) => e.add(path, format!("{s:?} is not a whole number")),
        },
    }
}

fn metric(e: &mut Errors, p: &str, m: &Metric) {
    int_field(e, format!("{p}.count"), &m.count, 0);
    int_field(e, format!("{p}.failureLimit"), &m.failure_limit, -1);
    int_field(
        e,
        format!("{p}.inconclusiveLimit"),
        &m.inconclusive_limit,
        -1,
    );
    int_field(
        e,
        format!("{p}.consecutiveErrorLimit"),
        &m.consecutive_error_limit,
        0,
    );
    if m.interval.as_ref().is_some_and(|d| d.value.is_zero()) {
        e.add(format!("{p}.interval"), "must be above 0");
    }
    for (field, cond) in [
        ("successCondition", &m.success_condition),
        ("failureCondition", &m.failure_condition),
    ] {
        if let Some(c) = cond
            && !templated(c)
            && let Err(err) = Expr::parse(c)
        {
            e.add(format!("{p}.{field}"), err.to_string());
        }
    }
    let pr = &m.provider;
    let n = [
        pr.proxy.is_some(),
        pr.prometheus.is_some(),
        pr.web.is_some(),
        pr.job.is_some(),
        pr.load.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if n != 1 {
        e.add(
            format!("{p}.provider"),
            "set exactly one of proxy, prometheus, web, job or load",
        );
    }
    if let Some(x) = &pr.proxy {
        if let Some(q) = x.quantile
            && !(q > 0.0 && q <= 1.0)
        {
            e.add(
                format!("{p}.provider.proxy.quantile"),
                "must be above 0 and at most 1",
            );
        }
        if x.window.as_ref().is_some_and(|w| w.value.as_secs() < 1) {
            e.add(format!("{p}.provider.proxy.window"), "must be at least 1s");
        }
        let sequential = [
            ("worseRatio", x.worse_ratio),
            ("falseFailure", x.false_failure),
            ("falsePass", x.false_pass),
        ];
        if x.query != crate::spec::template::ProxyQuery::CanaryVsStable {
            let slower = ("slowerThan", x.slower_than.as_ref().map(|_| 0.0));
            for (field, value) in sequential.into_iter().chain([slower]) {
                if value.is_some() {
                    e.add(
                        format!("{p}.provider.proxy.{field}"),
                        "applies to query canary-vs-stable only",
                    );
                }
            }
        } else {
            if let Err(reason) = x.sequential().check() {
                e.add(format!("{p}.provider.proxy"), reason);
            }
            if x.slower_than.as_ref().is_some_and(|d| d.value.is_zero()) {
                e.add(format!("{p}.provider.proxy.slowerThan"), "must be above 0");
            }
        }
    }
    if let Some(x) = &pr.prometheus {
        if !url_ok(&x.address) {
            e.add(
                format!("{p}.provider.prometheus.address"),
                "must be an http:// or https:// URL",
            );
        }
        if x.query.trim().is_empty() {
            e.add(format!("{p}.provider.prometheus.query"), "required");
        }
        headers(e, &format!("{p}.provider.prometheus"), &x.headers);
        if let Some(r) = &x.range_query {
            let rp = format!("{p}.provider.prometheus.rangeQuery");
            for (field, text) in [("start", &r.start), ("end", &r.end)] {
                if !templated(text)
                    && let Err(err) = Expr::parse(text)
                {
                    e.add(format!("{rp}.{field}"), err.to_string());
                }
            }
            if !templated(&r.step) {
                match super::duration::ArgoDuration::parse(&r.step) {
                    Ok(d) if d.value.is_zero() => e.add(format!("{rp}.step"), "must be above 0"),
                    Ok(_) => {}
                    Err(err) => e.add(format!("{rp}.step"), err),
                }
            }
        }
    }
    if let Some(x) = &pr.web {
        if !url_ok(&x.url) {
            e.add(
                format!("{p}.provider.web.url"),
                "must be an http:// or https:// URL",
            );
        }
        if let Some(method) = &x.method
            && !matches!(method.as_str(), "GET" | "POST" | "PUT")
        {
            e.add(
                format!("{p}.provider.web.method"),
                format!("{method:?} must be GET, POST or PUT"),
            );
        }
        if x.body.is_some() && x.json_body.is_some() {
            e.add(
                format!("{p}.provider.web.jsonBody"),
                "set body or jsonBody, not both",
            );
        }
        if (x.body.is_some() || x.json_body.is_some())
            && x.method.as_deref().unwrap_or("GET") == "GET"
        {
            e.add(
                format!("{p}.provider.web.method"),
                "body and jsonBody need POST or PUT",
            );
        }
        headers(e, &format!("{p}.provider.web"), &x.headers);
        if let Some(path) = &x.json_path
            && !templated(path)
            && let Err(err) = crate::providers::jsonpath::JsonPath::parse(path)
        {
            e.add(format!("{p}.provider.web.jsonPath"), err);
        }
    }
    if let Some(x) = &pr.job
        && x.command.is_empty()
        && x.spec.is_none()
    {
        e.add(
            format!("{p}.provider.job"),
            "set spec (a Kubernetes Job) or command (local mode)",
        );
    }
    if let Some(x) = &pr.load {
        if x.requests == 0 {
            e.add(format!("{p}.provider.load.requests"), "must be above 0");
        }
        if x.concurrency == Some(0) {
            e.add(format!("{p}.provider.load.concurrency"), "must be above 0");
        }
    }
}
