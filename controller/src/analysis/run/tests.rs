//! Verdict rules with Argo's edge cases, scheduling, and the property that failing
//! measurements only make verdicts worse.

use super::*;
use crate::spec::template::ProxyProvider;
use proptest::prelude::*;

use MeasurementPhase::{Error as E, Failed as F, Inconclusive as I, Successful as S};

fn metric(
    count: Option<u64>,
    failure_limit: i64,
    inconclusive_limit: i64,
    error_limit: i64,
) -> MetricSpec {
    MetricSpec {
        retention: DEFAULT_MEASUREMENT_RETENTION,
        name: "m".into(),
        interval: Some(Duration::from_secs(10)),
        initial_delay: Duration::ZERO,
        count,
        success: Some(Expr::parse("result >= 0.95").unwrap()),
        failure: None,
        failure_limit,
        inconclusive_limit,
        consecutive_error_limit: error_limit,
        dry_run: false,
        provider: Provider {
            proxy: Some(ProxyProvider {
                query: crate::spec::template::ProxyQuery::SuccessRate,
                quantile: None,
                window: None,
                min_requests: None,
                revision: Default::default(),
                worse_ratio: None,
                false_failure: None,
                false_pass: None,
                slower_than: None,
            }),
            ..Default::default()
        },
    }
}

fn state_of(phases: &[MeasurementPhase]) -> MetricState {
    let mut s = MetricState {
        name: "m".into(),
        ..Default::default()
    };
    for (i, p) in phases.iter().enumerate() {
        let m = Measurement {
            phase: *p,
            value: None,
            message: None,
            finished_at: Time(i as i64),
        };
        record(
            &mut s,
            &ProviderOutcome::Value(Value::Number(0.0)),
            Some(m),
            Time(i as i64),
        );
    }
    s
}

#[test]
fn verdict_table() {
    // (count, failureLimit, inconclusiveLimit, consecutiveErrorLimit, measurements, terminating, phase)
    type Case = (
        Option<u64>,
        i64,
        i64,
        i64,
        Vec<MeasurementPhase>,
        bool,
        RunPhase,
    );
    let cases: Vec<Case> = vec![
        // failureLimit 0: the first failure fails the metric
        (Some(3), 0, 0, 4, vec![S], false, RunPhase::Running),
        (Some(3), 0, 0, 4, vec![S, F], false, RunPhase::Failed),
        (Some(3), 0, 0, 4, vec![S, S, S], false, RunPhase::Successful),
        // failureLimit 1: one failure is allowed, the second fails
        (Some(3), 1, 0, 4, vec![F, S], false, RunPhase::Running),
        (Some(3), 1, 0, 4, vec![F, S, S], false, RunPhase::Successful),
        (Some(3), 1, 0, 4, vec![F, S, F], false, RunPhase::Failed),
        // failureLimit -1: failures never fail the metric
        (
            Some(3),
            -1,
            0,
            4,
            vec![F, F, F],
            false,
            RunPhase::Successful,
        ),
        (None, -1, 0, 4, vec![F; 50], false, RunPhase::Running),
        // inconclusive limits
        (Some(3), 0, 0, 4, vec![I], false, RunPhase::Inconclusive),
        (Some(3), 0, 1, 4, vec![I, S], false, RunPhase::Running),
        (
            Some(3),
            0,
            1,
            4,
            vec![I, S, I],
            false,
            RunPhase::Inconclusive,
        ),
        (
            Some(3),
            0,
            -1,
            4,
            vec![I, I, I],
            false,
            RunPhase::Successful,
        ),
        // consecutive errors: more than the limit in a row
        (
            Some(10),
            0,
            0,
            4,
            vec![E, E, E, E],
            false,
            RunPhase::Running,
        ),
        (
            Some(10),
            0,
            0,
            4,
            vec![E, E, E, E, E],
            false,
            RunPhase::Error,
        ),
        // a success resets the streak
        (
            Some(10),
            0,
            0,
            4,
            vec![E, E, E, E, S, E, E, E, E],
            false,
            RunPhase::Running,
        ),
        (Some(10), 0, 0, 0, vec![E], false, RunPhase::Error),
        // errors do not count toward count, as in Argo: a provider that cannot measure is
        // asked again, and never lets the metric pass
        (Some(2), 0, 0, 4, vec![E, S], false, RunPhase::Running),
        (Some(1), 0, 0, 4, vec![E], false, RunPhase::Running),
        (
            Some(2),
            0,
            0,
            4,
            vec![E, S, E, S],
            false,
            RunPhase::Successful,
        ),
        // failed wins over inconclusive and error
        (Some(5), 0, 0, 0, vec![I, E, F], false, RunPhase::Failed),
        // early termination: Successful unless a limit was already passed
        (None, 0, 0, 4, vec![S, S], true, RunPhase::Successful),
        (None, 0, 0, 4, vec![], true, RunPhase::Successful),
        (None, 0, 0, 4, vec![S, F], true, RunPhase::Failed),
        (None, 1, 0, 4, vec![S, F], true, RunPhase::Successful),
        (Some(3), 0, 0, 4, vec![], false, RunPhase::Pending),
    ];
    for (i, (count, fl, il, el, ms, term, want)) in cases.into_iter().enumerate() {
        let m = metric(count, fl, il, el);
        let got = metric_phase(&m, &state_of(&ms), term);
        assert_eq!(got, want, "case {i}: {ms:?}");
    }
}

#[test]
fn run_takes_its_worst_metric_and_ignores_dry_runs() {
    let mut a = metric(Some(1), 0, 0, 4);
    a.name = "a".into();
    let mut b = metric(Some(2), 0, 0, 4);
    b.name = "b".into();
    let spec = RunSpec {
        metrics: vec![a.clone(), b.clone()],
    };
    let named = |name: &str, ms: &[MeasurementPhase]| MetricState {
        name: name.into(),
        ..state_of(ms)
    };
    // one metric done, the other still measuring
    assert_eq!(
        run_phase(&spec, &[named("a", &[S]), named("b", &[S])], false),
        RunPhase::Running
    );
    assert_eq!(
        run_phase(&spec, &[named("a", &[S]), named("b", &[S, S])], false),
        RunPhase::Successful
    );
    // a failure decides at once, even with another metric still running
    assert_eq!(
        run_phase(&spec, &[named("a", &[F]), named("b", &[S])], false),
        RunPhase::Failed
    );
    assert_eq!(
        run_phase(&spec, &[named("a", &[I]), named("b", &[])], false),
        RunPhase::Inconclusive
    );
    // a dry-run metric is measured but never decides
    let mut dry = a.clone();
    dry.dry_run = true;
    let spec = RunSpec {
        metrics: vec![dry, b],
    };
    assert_eq!(
        run_phase(&spec, &[named("a", &[F]), named("b", &[S, S])], false),
        RunPhase::Successful
    );
    // terminating early: the unfinished metric counts as done
    assert_eq!(
        run_phase(&spec, &[named("a", &[F]), named("b", &[S])], true),
        RunPhase::Successful
    );
}

#[test]
fn conditions_decide_measurements() {
    let mut m = metric(Some(1), 0, 0, 4);
    let num = |x: f64| ProviderOutcome::Value(Value::Number(x));
    let phase = |m: &MetricSpec, o: &ProviderOutcome| assess(m, o, Time(0)).map(|x| x.phase);
    // success only
    assert_eq!(phase(&m, &num(0.99)), Some(S));
    assert_eq!(phase(&m, &num(0.5)), Some(F));
    // both set: failure wins; neither matching is inconclusive
    m.failure = Some(Expr::parse("result < 0.5").unwrap());
    assert_eq!(phase(&m, &num(0.3)), Some(F));
    assert_eq!(phase(&m, &num(0.7)), Some(I));
    assert_eq!(phase(&m, &num(0.99)), Some(S));
    // failure only
    m.success = None;
    assert_eq!(phase(&m, &num(0.7)), Some(S));
    assert_eq!(phase(&m, &num(0.3)), Some(F));
    // neither set
    m.failure = None;
    assert_eq!(phase(&m, &num(0.3)), Some(I));
    // provider errors and evaluation errors are Error measurements
    m.success = Some(Expr::parse("result[2] > 1").unwrap());
    assert_eq!(phase(&m, &num(1.0)), Some(E));
    assert_eq!(
        phase(&m, &ProviderOutcome::Error("timeout".into())),
        Some(E)
    );
    // too little data is not a measurement
    assert_eq!(
        phase(
            &m,
            &ProviderOutcome::NotEnoughData("3 of 20 requests".into())
        ),
        None
    );
    // NaN fails a >= condition
    m.success = Some(Expr::parse("result >= 0.95").unwrap());
    assert_eq!(phase(&m, &num(f64::NAN)), Some(F));
}

#[test]
fn scheduling_follows_initial_delay_interval_and_count() {
    let start = Time(1_000_000);
    let mut m = metric(Some(2), 0, 0, 4);
    m.initial_delay = Duration::from_secs(5);
    let mut s = MetricState {
        name: "m".into(),
        ..Default::default()
    };
    assert_eq!(next_due(&m, &s, start), Some(Time(1_005_000)));
    let outcome = ProviderOutcome::Value(Value::Number(1.0));
    let meas = assess(&m, &outcome, Time(1_005_000));
    record(&mut s, &outcome, meas, Time(1_005_000));
    assert_eq!(next_due(&m, &s, start), Some(Time(1_015_000)));
    // waiting for traffic is retried at the next interval and does not count
    let waiting = ProviderOutcome::NotEnoughData("waiting for traffic".into());
    record(&mut s, &waiting, None, Time(1_015_000));
    assert_eq!(s.measurements.len(), 1);
    assert_eq!(s.waiting.as_deref(), Some("waiting for traffic"));
    assert_eq!(next_due(&m, &s, start), Some(Time(1_025_000)));
    let meas = assess(&m, &outcome, Time(1_025_000));
    record(&mut s, &outcome, meas, Time(1_025_000));
    assert_eq!(next_due(&m, &s, start), None, "count reached");

    // no interval: one measurement; waiting retries after a second
    let mut once = metric(None, 0, 0, 4);
    once.interval = None;
    once.count = Some(1);
    let mut s = MetricState::default();
    record(&mut s, &waiting, None, Time(0));
    assert_eq!(next_due(&once, &s, Time(0)), Some(Time(1_000)));
    let meas = assess(&once, &outcome, Time(1_000));
    record(&mut s, &outcome, meas, Time(1_000));
    assert_eq!(next_due(&once, &s, Time(0)), None);

    // interval without count: until stopped; a failure ends it
    let bg = metric(None, 0, 0, 4);
    let mut s = MetricState::default();
    for t in 0..100 {
        let meas = assess(&bg, &outcome, Time(t));
        record(&mut s, &outcome, meas, Time(t));
    }
    assert!(next_due(&bg, &s, Time(0)).is_some());
    let bad = ProviderOutcome::Value(Value::Number(0.1));
    let meas = assess(&bg, &bad, Time(200));
    record(&mut s, &bad, meas, Time(200));
    assert_eq!(next_due(&bg, &s, Time(0)), None);
}

fn template(yaml: &str) -> AnalysisTemplate {
    match crate::spec::parse_documents(yaml)
        .unwrap()
        .remove(0)
        .unwrap()
    {
        crate::spec::Document::AnalysisTemplate(t) => *t,
        other => panic!("{other:?}"),
    }
}

#[test]
fn runs_merge_templates_and_substitute_arguments() {
    let a = template(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: a}
spec:
  args: [{name: service}, {name: threshold, value: "0.95"}]
  dryRun: [{metricName: shadow}]
  metrics:
    - name: rate
      successCondition: "result >= {{args.threshold}}"
      count: "{{args.threshold}}"
      provider:
        prometheus: {address: "http://prom:9090", query: "up{service=\"{{args.service}}\"}"}
    - name: shadow
      provider: {proxy: {query: error-rate}}
"#,
    );
    let args = BTreeMap::from([("service".to_owned(), "chip".to_owned())]);
    // count "0.95" is not a whole number: the error names the template and field
    let errors = build_run(&[&a], &args, &Rules::default()).unwrap_err();
    assert_eq!(errors[0].path, "AnalysisTemplate a: spec.metrics[0].count");

    let b = template(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: b}
spec:
  args: [{name: service}, {name: threshold, value: "0.95"}]
  metrics:
    - name: rate
      interval: 5s
      successCondition: "result >= {{args.threshold}}"
      provider:
        prometheus: {address: "http://prom:9090", query: "up{service=\"{{args.service}}\"}"}
"#,
    );
    let run = build_run(&[&b], &args, &Rules::default()).unwrap();
    let m = &run.metrics[0];
    assert_eq!(m.success.as_ref().unwrap().text(), "result >= 0.95");
    assert_eq!(m.conditions(), ["success: result >= 0.95"]);
    assert_eq!(
        m.provider.prometheus.as_ref().unwrap().query,
        "up{service=\"chip\"}"
    );
    assert_eq!(m.count, None, "interval without count runs until stopped");
    assert_eq!(m.consecutive_error_limit, DEFAULT_CONSECUTIVE_ERROR_LIMIT);

    // a required argument without a value is an error naming it
    let errors = build_run(&[&b], &BTreeMap::new(), &Rules::default()).unwrap_err();
    assert_eq!(errors[0].path, "AnalysisTemplate b: spec.args.service");
    // the same metric name from two templates is an error
    let errors = build_run(&[&b, &b], &args, &Rules::default()).unwrap_err();
    assert!(
        errors[0].reason.contains("more than one template"),
        "{errors:?}"
    );

    let shadow = template(
        r#"
apiVersion: sluice.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: s}
spec:
  dryRun: [{metricName: shadow}]
  metrics:
    - name: shadow
      provider: {proxy: {query: error-rate}}
"#,
    );
    let run = build_run(&[&shadow], &BTreeMap::new(), &Rules::default()).unwrap();
    assert!(run.metrics[0].dry_run);
    assert!(run.metrics[0].conditions().is_empty());
    assert_eq!(run.metrics[0].count, Some(1));
}

#[test]
fn templates_include_others_at_any_depth_once_and_never_in_a_loop() {
    let doc = |name: &str, includes: &str, metric: &str| {
        template(&format!(
            r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: {name}}}
spec:
  templates: [{includes}]
  args: [{{name: service}}]
  metrics:{metric}
"#
        ))
    };
    let m =
        |n: &str| format!("\n    - name: {n}\n      provider: {{proxy: {{query: error-rate}}}}");
    let world = BTreeMap::from([
        (
            "all".to_owned(),
            doc(
                "all",
                "{templateName: errors}, {templateName: latency, clusterScope: true}",
                " []",
            ),
        ),
        (
            "errors".to_owned(),
            doc("errors", "{templateName: base}", &m("errors")),
        ),
        (
            "/latency".to_owned(),
            doc("latency", "{templateName: base}", &m("p99")),
        ),
        ("base".to_owned(), doc("base", "", &m("rate"))),
        (
            "loop-a".to_owned(),
            doc("loop-a", "{templateName: loop-b}", &m("a")),
        ),
        (
            "loop-b".to_owned(),
            doc("loop-b", "{templateName: loop-a}", &m("b")),
        ),
    ]);
    let lookup = |n: &str| world.get(n);
    let found = included(&["all".to_owned()], lookup).unwrap();
    let names: Vec<&str> = found.iter().map(|t| t.metadata.name.as_str()).collect();
    assert_eq!(names, ["all", "errors", "base", "latency"], "base once");
    let run = build_run(
        &found,
        &BTreeMap::from([("service".to_owned(), "chip".to_owned())]),
        &Rules::default(),
    )
    .unwrap();
    let metrics: Vec<&str> = run.metrics.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(metrics, ["errors", "rate", "p99"]);
    match included(&["loop-a".to_owned()], lookup) {
        Err(crate::Error::Invalid(e)) => {
            assert!(e[0].reason.contains("loop-a -> loop-b -> loop-a"), "{e:?}")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        included(&["errors".to_owned(), "nowhere".to_owned()], lookup),
        Err(crate::Error::NotFound(_))
    ));
}

#[test]
fn dry_run_and_retention_rules_match_metric_names_as_argo_does() {
    use crate::spec::template::{DryRun, MeasurementRetention};
    let t = template(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: t}
spec:
  args: [{name: a, value: "1"}]
  dryRun: [{metricName: "^shadow-"}]
  measurementRetention: [{metricName: ".*", limit: 3}]
  metrics:
    - {name: shadow-errors, provider: {proxy: {query: error-rate}}}
    - {name: errors, provider: {proxy: {query: error-rate}}}
    - {name: latency, provider: {proxy: {query: latency}}}
"#,
    );
    let dry = [DryRun {
        metric_name: "lat".into(),
    }];
    let keep = [MeasurementRetention {
        metric_name: "errors$".into(),
        limit: 20,
    }];
    let rules = Rules {
        dry_run: &dry,
        retention: &keep,
    };
    let run = build_run(&[&t], &BTreeMap::new(), &rules).unwrap();
    let got: Vec<(&str, bool, usize)> = run
        .metrics
        .iter()
        .map(|m| (m.name.as_str(), m.dry_run, m.retention))
        .collect();
    assert_eq!(
        got,
        [
            ("shadow-errors", true, 20),
            ("errors", false, 20),
            ("latency", true, 3)
        ]
    );
    // a rule that matches nothing is an error, as in Argo; so is a bad pattern
    let none = [DryRun {
        metric_name: "nothing".into(),
    }];
    let bad = [MeasurementRetention {
        metric_name: "(".into(),
        limit: 1,
    }];
    let errors = build_run(
        &[&t],
        &BTreeMap::new(),
        &Rules {
            dry_run: &none,
            retention: &bad,
        },
    )
    .unwrap_err();
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        ["dryRun[0].metricName", "measurementRetention[0].metricName"]
    );
    // defaults: every measurement counts, only the newest are kept
    let plain = build_run(&[&t], &BTreeMap::new(), &Rules::default()).unwrap();
    let m = &plain.metrics[1];
    let mut state = MetricState::default();
    let outcome = ProviderOutcome::Value(Value::Number(0.0));
    for i in 0..5 {
        let meas = assess(m, &outcome, Time(i));
        record(&mut state, &outcome, meas, Time(i));
        retain(&mut state, m.retention);
    }
    assert_eq!(state.measurements.len(), 3);
    assert_eq!(state.taken(), 5);
    assert_eq!(state.measurements[0].finished_at, Time(2));
}

#[test]
fn arguments_given_twice_by_templates_must_agree() {
    let t = |name: &str, value: &str| {
        template(&format!(
            r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: {name}}}
spec:
  args: [{{name: threshold, value: "{value}"}}]
  metrics:
    - name: m-{name}
      successCondition: "result < {{{{args.threshold}}}}"
      provider: {{proxy: {{query: error-rate}}}}
"#
        ))
    };
    let (a, b, c) = (t("a", "0.1"), t("b", "0.1"), t("c", "0.2"));
    assert!(build_run(&[&a, &b], &BTreeMap::new(), &Rules::default()).is_ok());
    let errors = build_run(&[&a, &c], &BTreeMap::new(), &Rules::default()).unwrap_err();
    assert!(errors[0].reason.contains("different values"), "{errors:?}");
    // a value given by the rollout wins over both
    let args = BTreeMap::from([("threshold".to_owned(), "0.3".to_owned())]);
    let run = build_run(&[&a, &c], &args, &Rules::default());
    assert!(run.is_err(), "the templates still disagree");
}

#[test]
fn arguments_resolve_from_values_and_hashes() {
    use crate::spec::rollout::{ArgValueFrom, PodTemplateHashValue};
    let args = vec![
        AnalysisArg {
            name: "a".into(),
            value: Some("x".into()),
            value_from: None,
        },
        AnalysisArg {
            name: "s".into(),
            value: None,
            value_from: Some(ArgValueFrom {
                pod_template_hash_value: Some(PodTemplateHashValue::Stable),
                field_ref: None,
                secret_key_ref: None,
            }),
        },
        AnalysisArg {
            name: "l".into(),
            value: None,
            value_from: Some(ArgValueFrom {
                pod_template_hash_value: Some(PodTemplateHashValue::Latest),
                field_ref: None,
                secret_key_ref: None,
            }),
        },
        AnalysisArg {
            name: "team".into(),
            value: None,
            value_from: Some(ArgValueFrom {
                pod_template_hash_value: None,
                field_ref: Some(crate::spec::rollout::FieldRef {
                    field_path: "metadata.labels['team']".into(),
                }),
                secret_key_ref: None,
            }),
        },
        AnalysisArg {
            name: "ns".into(),
            value: None,
            value_from: Some(ArgValueFrom {
                pod_template_hash_value: None,
                field_ref: Some(crate::spec::rollout::FieldRef {
                    field_path: "metadata.namespace".into(),
                }),
                secret_key_ref: None,
            }),
        },
        AnalysisArg {
            name: "token".into(),
            value: None,
            value_from: Some(ArgValueFrom {
                pod_template_hash_value: None,
                field_ref: None,
                secret_key_ref: Some(crate::spec::rollout::SecretKeyRef {
                    name: "api".into(),
                    key: "token".into(),
                }),
            }),
        },
    ];
    let metadata: crate::spec::ObjectMeta = serde_json::from_value(serde_json::json!({
        "name": "chip", "namespace": "shop", "labels": {"team": "web"}
    }))
    .unwrap();
    let fields = crate::spec::rollout::ArgFields {
        metadata: &metadata,
    };
    let r = resolve_args(&args, "stablehash", "newhash", fields);
    assert_eq!(r["a"], "x");
    assert_eq!(r["s"], "stablehash");
    assert_eq!(r["l"], "newhash");
    assert_eq!(r["team"], "web");
    assert_eq!(r["ns"], "shop");
    assert!(
        !r.contains_key("token"),
        "a secret is read when the run starts"
    );
    assert_eq!(secret_args(&args).keys().collect::<Vec<_>>(), ["token"]);
}

fn phase_strategy() -> impl Strategy<Value = MeasurementPhase> {
    prop_oneof![Just(S), Just(F), Just(I), Just(E)]
}

proptest! {
    #[test]
    fn a_failing_measurement_never_improves_a_verdict(
        ms in proptest::collection::vec(phase_strategy(), 0..30),
        flip in 0usize..30,
        count in proptest::option::of(1u64..20),
        fl in -1i64..3, il in -1i64..3, el in 0i64..5,
        terminating in any::<bool>(),
    ) {
        let m = metric(count, fl, il, el);
        let before = metric_phase(&m, &state_of(&ms), terminating);
        // a measurement that succeeded fails instead
        let mut worse = ms.clone();
        if let Some(x) = worse.get_mut(flip).filter(|x| **x == S) {
            *x = F;
        }
        let after = metric_phase(&m, &state_of(&worse), terminating);
        prop_assert!(after.badness() >= before.badness(), "{:?} -> {:?}", before, after);
        // appending a failure never turns a failed metric into anything else
        if before == RunPhase::Failed {
            let mut more = ms.clone();
            more.push(F);
            prop_assert_eq!(metric_phase(&m, &state_of(&more), terminating), RunPhase::Failed);
        }
    }
}
