//! `sluice lint` against the real binary: every example manifest is valid, and broken variants
//! are refused naming the right field.

use std::path::Path;
use std::process::Command;

use sluice_tests::bin;

fn lint(path: &Path) -> (i32, String) {
    sluice_tests::procs::finished(Command::new(bin("sluice")).args(["lint", "-f"]).arg(path))
}

fn examples() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/examples");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_manifest_is_valid() {
    let files = examples();
    assert!(files.len() >= 10, "{files:?}");
    for f in files {
        let (code, out) = lint(&f);
        assert_eq!(code, 0, "{}:\n{out}", f.display());
        assert!(out.contains("(Rollout \"chip\"): ok"), "{out}");
    }
}

#[test]
fn broken_variants_are_refused_naming_the_field() {
    let c1 = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/examples/c1-canary-auto.yaml"),
    )
    .unwrap();
    let b2 = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../manifests/examples/b2-blue-green-warm-up.yaml"),
    )
    .unwrap();
    let cases: Vec<(String, &str)> =
        vec![
        (
            c1.replace("setWeight: 40", "setWeight: 140"),
            "spec.strategy.canary.steps[2].setWeight: 140 exceeds maxTrafficWeight 100",
        ),
        (
            c1.replace(
                "pause: {duration: 10}\n      - setWeight: 60",
                "pause: {duration: 10x}\n      - setWeight: 60",
            ),
            "spec.strategy.canary.steps[3].pause.duration: \"10x\": unknown unit",
        ),
        (
            c1.replace(
                "      - setWeight: 100",
                "      - setWeight: 100\n        pause: {}",
            ),
            "spec.strategy.canary.steps[8]: a step sets exactly one of",
        ),
        (
            c1.replace(
                "canaryService: chip-canary",
                "canaryService: chip-canary\n      maxSurge: 1",
            ),
            "spec.strategy.canary.maxSurge: unsupported Argo field: spec.strategy.canary.maxSurge",
        ),
        (
            c1.replace(
                "canaryService: chip-canary",
                "canaryService: chip-canary\n      trafficRouting:\n        istio: {}",
            ),
            "unsupported Argo field: spec.strategy.canary.trafficRouting.istio",
        ),
        (
            c1.replace("      - setWeight: 20", "      - experiment: {}"),
            "unsupported Argo field: spec.strategy.canary.steps[0].experiment",
        ),
        (
            c1.replace(
                "revisionHistoryLimit: 2",
                "revisionHistoryLimit: 2\n  revisonHistoryLimit: 3",
            ),
            "spec.revisonHistoryLimit: unknown field `revisonHistoryLimit`",
        ),
        (
            c1.replace("replicas: 10", "replicas: ten"),
            "spec.replicas: invalid type",
        ),
        (
            c1.replace("image: fidelissauro/chip:v1", "imag: fidelissauro/chip:v1"),
            "spec.template.spec.containers[0].image: required",
        ),
        (
            c1.replace("      app: chip\n  template", "      app: chop\n  template"),
            "spec.selector.matchLabels.app",
        ),
        (
            b2.replace("activeService: chip-active", "activeService: chip-preview"),
            "spec.strategy.blueGreen.previewService: must differ from activeService",
        ),
        (
            b2.replace(
                "successCondition: result >= 0.99",
                "successCondition: result >= ",
            ),
            "spec.metrics[0].successCondition: syntax error in `result >=` at position 9",
        ),
        (
            b2.replace("        load:", "        datadog: {}\n        load:"),
            "unsupported Argo field: spec.metrics[0].provider.datadog",
        ),
        (
            b2.replace("requests: 1000", "requests: 0"),
            "spec.metrics[0].provider.load.requests: must be above 0",
        ),
        (
            std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../manifests/examples/a1-canary-analysis.yaml"),
            )
            .unwrap()
            .replace("query: error-rate", "query: error-rate\n          worseRatio: 3"),
            "spec.metrics[0].provider.proxy.worseRatio: applies to query canary-vs-stable only",
        ),
        (
            std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../manifests/examples/a1-canary-analysis.yaml"),
            )
            .unwrap()
            .replace(
                "query: error-rate",
                "query: canary-vs-stable\n          falseFailure: 0.7\n          falsePass: 0.5",
            ),
            "spec.metrics[0].provider.proxy: falseFailure + falsePass must be below 1",
        ),
        (
            c1.replace(
                "apiVersion: argoproj.io/v1alpha1\nkind: Rollout",
                "apiVersion: argoproj.io/v2\nkind: Rollout",
            ),
            "apiVersion: \"argoproj.io/v2\" must be",
        ),
        ("a: [".to_owned(), "not valid YAML"),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (i, (text, want)) in cases.iter().enumerate() {
        assert_ne!(text, &c1, "case {i} did not change the manifest");
        let f = dir.path().join(format!("case{i}.yaml"));
        std::fs::write(&f, text).unwrap();
        let (code, out) = lint(&f);
        assert_eq!(code, 1, "case {i}: {out}");
        assert!(out.contains(want), "case {i}: want {want:?} in:\n{out}");
    }
    let (code, out) = lint(&dir.path().join("missing.yaml"));
    assert_eq!(code, 2, "{out}");
}

#[test]
fn sluice_crd_prints_the_crds_of_manifests_crds_and_writes_them_to_a_folder() {
    let out = Command::new(bin("sluice")).arg("crd").output().unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/crds");
    for kind in [
        "rollouts",
        "analysistemplates",
        "clusteranalysistemplates",
        "analysisruns",
    ] {
        let file = std::fs::read_to_string(dir.join(format!("{kind}.sluice.dev.yaml"))).unwrap();
        assert!(
            printed.contains(&file),
            "{kind} is not printed as the file has it"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let status = Command::new(bin("sluice"))
        .args(["crd", "--dir"])
        .arg(tmp.path())
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 4);
}

/// Argo documents using every analysis and rollout field sluice reads (`argo-analysis.yaml`
/// beside this file): accepted; what sluice will not do is refused as an unsupported Argo
/// field, naming it; a field of the right kind with a wrong value names the field and why.
#[test]
fn argo_analysis_fields_are_accepted_or_refused_by_name() {
    let argo = include_str!("argo-analysis.yaml");
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("argo.yaml");
    std::fs::write(&f, argo).unwrap();
    let (code, out) = lint(&f);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.lines().filter(|l| l.ends_with(": ok")).count(),
        6,
        "{out}"
    );
    let unsupported = |path: &str| format!("{path}: unsupported Argo field: {path}");
    let cases: Vec<(String, String)> = vec![
        (
            argo.replace("        timeout: 40\n", "        timeout: 40\n        authentication: {sigv4: {region: eu-west-1}}\n"),
            unsupported("spec.metrics[0].provider.prometheus.authentication"),
        ),
        (
            argo.replace("        timeoutSeconds: 5\n", "        timeoutSeconds: 5\n        authentication: {oauth2: {tokenUrl: \"https://x/token\"}}\n"),
            unsupported("spec.metrics[0].provider.web.authentication"),
        ),
        (
            argo.replace("      prometheus: {address: http://prometheus.example:9090, query: \"slo\"}", "      datadog: {query: \"avg:x\"}"),
            unsupported("spec.metrics[0].provider.datadog"),
        ),
        (
            argo.replace("        measurementRetention: [{metricName: \".*\", limit: 20}]\n", "        measurementRetention: [{metricName: \".*\", limit: 20}]\n        analysisRunMetadata: {labels: {a: b}}\n"),
            unsupported("spec.strategy.canary.analysis.analysisRunMetadata"),
        ),
        (
            argo.replace("  - name: text\n", "  - name: text\n    consecutiveSuccessLimit: 2\n"),
            unsupported("spec.metrics[1].consecutiveSuccessLimit"),
        ),
        (
            argo.replace("        insecure: true\n        timeoutSeconds", "        insecure: true\n        verbose: true\n        timeoutSeconds"),
            "spec.metrics[0].provider.web.verbose: unknown field `verbose`".to_owned(),
        ),
        (
            argo.replace("jsonPath: \"{$.data}\"", "jsonPath: \"{$.data[x]}\""),
            "spec.metrics[0].provider.web.jsonPath: \"{$.data[x]}\": \"x\" is not an index".to_owned(),
        ),
        (
            argo.replace("method: PUT, body", "body"),
            "spec.metrics[1].provider.web.method: body and jsonBody need POST or PUT".to_owned(),
        ),
        (
            argo.replace("step: 1m}", "step: 0s}"),
            "spec.metrics[0].provider.prometheus.rangeQuery.step: must be above 0".to_owned(),
        ),
        (
            argo.replace("{start: 'now() - duration(\"5m\")'", "{start: 'now() - '"),
            "spec.metrics[0].provider.prometheus.rangeQuery.start: syntax error in `now() - ` at position 8".to_owned(),
        ),
        (
            argo.replace("        headers: [{key: X-Scope-OrgID", "        headers: [{key: \"X Scope\""),
            "spec.metrics[0].provider.prometheus.headers[0].key: \"X Scope\" is not a header name".to_owned(),
        ),
        (
            argo.replace("dryRun: [{metricName: \"^shadow\"}]", "dryRun: [{metricName: \"(shadow\"}]"),
            "spec.strategy.canary.analysis.dryRun[0].metricName: invalid regex \"(shadow\"".to_owned(),
        ),
        (
            argo.replace("metadata: {name: platform-slo}\nspec:\n", "metadata: {name: platform-slo}\nspec:\n  dryRun: [{metricName: nothing}]\n"),
            "spec.dryRun[0].metricName: \"nothing\" matches no metric".to_owned(),
        ),
        (
            argo.replace("all(result.latencies, {# < 1000})", "all(result.latencies, {# < 1000)"),
            "spec.metrics[0].successCondition: syntax error in".to_owned(),
        ),
        (
            argo.replace("  - templateName: prometheus-checks\n", "  - templateName: Prometheus_Checks\n"),
            "spec.templates[1].templateName: \"Prometheus_Checks\" is not a template name".to_owned(),
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        assert_ne!(text, argo, "case {i} did not change the manifest");
        let f = dir.path().join(format!("case{i}.yaml"));
        std::fs::write(&f, text).unwrap();
        let (code, out) = lint(&f);
        assert_eq!(code, 1, "case {i}: {out}");
        assert!(
            out.contains(want.as_str()),
            "case {i}: want {want:?} in:\n{out}"
        );
    }
}
