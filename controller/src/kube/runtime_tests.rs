//! The Kubernetes runtime against an API server in memory ([`super::fake`]): for each
//! situation, the exact API calls the controller makes, in order, and what they carry.

use std::sync::Arc;
use std::time::Duration;

use sluice_api::protocol::Report;

use serde_json::{Value, json};

use super::cache::Cache;
use super::fake::{Call, FakeApi};
use super::port::KubePort;
use super::{ClusterRollouts, rbac};
use crate::commands::Command;
use crate::control::hub::{Hub, HubConfig};
use crate::reconcile::Reconciler;
use crate::time::Time;

const ROLLOUT: &str = "/apis/sluice.dev/v1alpha1/namespaces/shop/rollouts/chip";
const STATE: &str = "/api/v1/namespaces/shop/configmaps/sluice-controller-state";
const CONFIGMAPS: &str = "/api/v1/namespaces/shop/configmaps";
const RS: &str = "/apis/apps/v1/namespaces/shop/replicasets";
const SERVICES: &str = "/api/v1/namespaces/shop/services";

fn canary(image: &str) -> Value {
    json!({
        "apiVersion": "sluice.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "chip", "namespace": "shop"},
        "spec": {
            "replicas": 5,
            "selector": {"matchLabels": {"app": "chip"}},
            "template": {"metadata": {"labels": {"app": "chip"}},
                         "spec": {"containers": [{"name": "chip", "image": image,
                                                  "ports": [{"containerPort": 8080}]}]}},
            "strategy": {"canary": {"stableService": "chip-stable", "canaryService": "chip-canary",
                                    "steps": [{"setWeight": 20}, {"pause": {}}]}}
        }
    })
}

fn service(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "namespace": "shop"},
           "spec": {"selector": {"app": "chip"}, "ports": [{"port": 80}]}})
}

struct Cluster {
    api: FakeApi,
    hub: Arc<Hub>,
    runtime: Arc<Reconciler<KubePort>>,
    client: kube::Client,
    now: Time,
}

impl Cluster {
    async fn new(rollout: Value, services: &[&str]) -> Self {
        let (cache, writers) = Cache::new();
        let (client, api) = FakeApi::start(writers);
        api.put(ROLLOUT, rollout);
        for s in services {
            api.put(&format!("{SERVICES}/{s}"), service(s));
        }
        let port = KubePort::open(client.clone(), "shop", cache, false)
            .await
            .unwrap();
        let hub = Arc::new(Hub::open(HubConfig::default()).unwrap());
        let runtime = Reconciler::open(port, hub.clone()).unwrap();
        Self {
            api,
            hub,
            runtime,
            client,
            now: Time::now(),
        }
    }

    /// One tick `after` the previous one; the calls it made, each checked against the
    /// permissions the install grants.
    async fn tick(&mut self, after: Duration) -> Vec<Call> {
        self.now = self.now.plus(after);
        self.api.set_now(self.now);
        self.runtime.tick(self.now).await;
        let calls = self.api.take_calls();
        granted(&calls);
        calls
    }

    /// The pods start and a proxy applies the routes.
    fn settle(&self) {
        self.api.kubelet();
        let snap = self.hub.snapshot();
        let applied = Some(
            snap.table
                .routes
                .iter()
                .map(|r| (r.name.clone(), r.generation.unwrap_or(0)))
                .collect(),
        );
        self.hub
            .report(
                Report {
                    proxy: "p1".into(),
                    instance: "i1".into(),
                    table_generation: snap.generation,
                    applied,
                    stats: Vec::new(),
                    changes_only: false,
                },
                self.now,
            )
            .unwrap();
    }

    /// Three looks on v1 with pods and a proxy, then v2 set and four more looks; the calls
    /// of those four.
    async fn released_then_v2(&mut self) -> Vec<Call> {
        for _ in 0..3 {
            self.tick(Duration::from_secs(1)).await;
            self.settle();
        }
        self.set_image("chip:v2");
        let mut calls = Vec::new();
        for _ in 0..4 {
            calls.extend(self.tick(Duration::from_secs(1)).await);
            self.settle();
        }
        calls
    }

    fn set_image(&self, image: &str) {
        let mut r = self.api.get(ROLLOUT).unwrap();
        r["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image);
        self.api.put(ROLLOUT, r);
    }

    fn status(&self) -> Value {
        self.api.get(ROLLOUT).unwrap()["status"].clone()
    }
}

const EVENTS: &str = "POST /api/v1/namespaces/shop/events";

/// The calls, but the Events (checked on their own).
/// Fails unless the install's RBAC grants every call (the controller's namespace is `shop`
/// here).
fn granted(calls: &[Call]) {
    for c in calls {
        let (group, resource, verb, ns) = rbac::request_of(&c.method, &c.path, &c.query)
            .unwrap_or_else(|| panic!("{} is no API call", c.line()));
        assert!(
            rbac::allows(&group, &resource, &verb, &ns, "shop"),
            "{} needs {verb} on {group}/{resource}, which the install does not grant",
            c.line()
        );
    }
}

fn lines(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .map(Call::line)
        .filter(|l| l != EVENTS)
        .collect()
}

/// The reasons of the Events among `calls`.
fn events(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.line() == EVENTS)
        .map(|c| c.body["reason"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn body_of<'a>(calls: &'a [Call], line: &str) -> &'a Value {
    &calls
        .iter()
        .find(|c| c.line() == line)
        .unwrap_or_else(|| panic!("no call {line}"))
        .body
}

const STATUS: &str = "PATCH /apis/sluice.dev/v1alpha1/namespaces/shop/rollouts/chip/status";
const SAVE: &str = "PUT /api/v1/namespaces/shop/configmaps/sluice-controller-state";
const V1: &str = "2bcp6knj56";
const V2: &str = "x4wwvspktq";

fn rs(hash: &str) -> String {
    format!("{RS}/chip-{hash}")
}

/// Fails unless `calls` scale revision `hash`'s ReplicaSet to zero.
fn scaled_to_zero(calls: &[Call], hash: &str) {
    assert!(
        lines(calls).contains(&patch(&rs(hash))),
        "{:?}",
        lines(calls)
    );
    assert_eq!(
        body_of(calls, &patch(&rs(hash))),
        &json!({"spec": {"replicas": 0}})
    );
}

fn patch(path: &str) -> String {
    format!("PATCH {path}")
}

/// A canary deployed once and healthy on v1, with a proxy; the calls so far are taken.
async fn healthy_canary() -> Cluster {
    let mut c = Cluster::new(canary("chip:v1"), &["chip-stable", "chip-canary"]).await;
    c.tick(Duration::ZERO).await;
    c.settle();
    c.tick(Duration::from_secs(1)).await;
    c.settle();
    c.tick(Duration::from_secs(1)).await;
    assert_eq!(c.status()["phase"], "Healthy", "{}", c.status());
    // the generation the proxies got is kept with the state on the next look
    c.tick(Duration::from_secs(1)).await;
    c.api.take_calls();
    c
}

/// [`healthy_canary`] moved to v2 and paused at 20 %.
async fn paused_canary() -> Cluster {
    let mut c = healthy_canary().await;
    c.set_image("chip:v2");
    c.tick(Duration::from_secs(1)).await;
    c.settle();
    c.tick(Duration::from_secs(1)).await;
    c.settle();
    c.tick(Duration::from_secs(1)).await;
    assert_eq!(c.status()["phase"], "Paused", "{}", c.status());
    c.tick(Duration::from_secs(1)).await;
    c.api.take_calls();
    c
}

#[tokio::test]
async fn a_first_deploy_creates_the_state_the_replica_set_and_points_both_services_at_it() {
    let (cache, writers) = Cache::new();
    let (client, api) = FakeApi::start(writers);
    api.put(ROLLOUT, canary("chip:v1"));
    for s in ["chip-stable", "chip-canary"] {
        api.put(&format!("{SERVICES}/{s}"), service(s));
    }
    let port = KubePort::open(client, "shop", cache, false).await.unwrap();
    let calls = api.take_calls();
    granted(&calls);
    assert_eq!(lines(&calls), [format!("GET {STATE}")]);
    let hub = Arc::new(Hub::open(HubConfig::default()).unwrap());
    let runtime = Reconciler::open(port, hub).unwrap();
    runtime.tick(Time::now()).await;
    let calls = api.take_calls();
    assert_eq!(
        lines(&calls),
        [
            format!("POST {CONFIGMAPS}"),
            format!("POST {RS}"),
            patch(&format!("{SERVICES}/chip-stable")),
            patch(&format!("{SERVICES}/chip-canary")),
            STATUS.to_owned(),
        ]
    );
    let created = body_of(&calls, &format!("POST {RS}"));
    assert_eq!(created["metadata"]["name"], format!("chip-{V1}"));
    assert_eq!(created["spec"]["replicas"], 5);
    assert_eq!(created["metadata"]["ownerReferences"][0]["uid"], "uid-1");
    let selector = json!({"spec": {"selector": {"rollouts-pod-template-hash": V1}}});
    assert_eq!(
        body_of(&calls, &patch(&format!("{SERVICES}/chip-stable"))),
        &selector
    );
    assert_eq!(
        body_of(&calls, &patch(&format!("{SERVICES}/chip-canary"))),
        &selector
    );
    let status = &body_of(&calls, STATUS)["status"];
    assert_eq!(status["stableRS"], V1);
    assert_eq!(status["currentPodHash"], V1);
    assert_eq!(status["selector"], "app=chip");
    let state: Value = serde_json::from_str(
        body_of(&calls, &format!("POST {CONFIGMAPS}"))["data"]["state.json"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(state["rollouts"]["shop/chip"]["replicas"][V1], 5);
}

#[tokio::test]
async fn a_canary_through_its_steps_scales_patches_and_writes_its_status_on_change_only() {
    let mut c = healthy_canary().await;
    let quiet = c.tick(Duration::from_secs(1)).await;

    assert!(
        quiet.is_empty(),
        "nothing changed, nothing written: {quiet:?}"
    );
    c.set_image("chip:v2");
    let calls = c.tick(Duration::from_secs(1)).await;
    assert_eq!(
        lines(&calls),
        [
            SAVE.to_owned(),
            format!("POST {RS}"),
            patch(&format!("{SERVICES}/chip-canary")),
            STATUS.to_owned(),
        ]
    );
    assert_eq!(events(&calls), ["RolloutUpdated", "RolloutPhaseChanged"]);
    let created = body_of(&calls, &format!("POST {RS}"));
    assert_eq!(created["metadata"]["name"], format!("chip-{V2}"));
    assert_eq!(created["spec"]["replicas"], 1, "ceil(5 x 20 / 100)");
    assert_eq!(
        created["metadata"]["annotations"]["rollout.sluice.dev/revision"],
        "2"
    );
    c.settle();
    let calls = c.tick(Duration::from_secs(1)).await;
    assert_eq!(lines(&calls), [SAVE, STATUS]);
    assert_eq!(
        body_of(&calls, STATUS)["status"]["canary"]["weights"]["canary"]["weight"],
        20
    );
    c.settle();
    let calls = c.tick(Duration::from_secs(1)).await;
    assert_eq!(lines(&calls), [SAVE, STATUS]);
    assert_eq!(body_of(&calls, STATUS)["status"]["phase"], "Paused");
    assert_eq!(
        body_of(&calls, STATUS)["status"]["canary"]["weights"]["verifiedWeight"],
        20
    );

    // the plugin's promote: the status subresource alone
    ClusterRollouts::new(c.client.clone(), "shop")
        .command("chip", Command::Promote)
        .await
        .unwrap();
    let calls = c.api.take_calls();
    assert_eq!(lines(&calls), [format!("GET {ROLLOUT}"), STATUS.to_owned()]);
    assert_eq!(
        body_of(&calls, STATUS),
        &json!({"status": {"pauseConditions": null}})
    );
    let calls = c.tick(Duration::from_secs(1)).await;
    assert_eq!(
        lines(&calls),
        [SAVE.to_owned(), patch(&rs(V2)), STATUS.to_owned()]
    );
    assert_eq!(
        body_of(&calls, &patch(&rs(V2))),
        &json!({"spec": {"replicas": 5}})
    );
    c.settle();
    let calls = c.tick(Duration::from_secs(1)).await;
    assert_eq!(
        lines(&calls),
        [
            SAVE.to_owned(),
            patch(&format!("{SERVICES}/chip-stable")),
            STATUS.to_owned()
        ]
    );
    assert_eq!(body_of(&calls, STATUS)["status"]["stableRS"], V2);
    c.settle();
    let calls = c.tick(Duration::from_secs(1)).await;
    assert_eq!(
        lines(&calls),
        [SAVE.to_owned(), patch(&rs(V1)), STATUS.to_owned()]
    );
    assert_eq!(body_of(&calls, STATUS)["status"]["phase"], "Healthy");
    // the old stable waits for its delay, as Argo marks it
    let deadline =
        body_of(&calls, &patch(&rs(V1)))["metadata"]["annotations"]["scale-down-deadline"]
            .as_str()
            .unwrap()
            .to_owned();
    assert_eq!(
        body_of(&calls, STATUS)["status"]["scaleDowns"][0]["after"]
            .as_str()
            .unwrap()[..19],
        deadline[..19]
    );
    // the old revision goes once scaleDownDelaySeconds (30 s) have passed, not before
    c.settle();
    assert!(!lines(&c.tick(Duration::from_secs(20)).await).contains(&patch(&rs(V1))));
    c.settle();
    scaled_to_zero(&c.tick(Duration::from_secs(11)).await, V1);
}

#[tokio::test]
async fn a_paused_rollout_writes_nothing_while_it_waits() {
    let mut c = paused_canary().await;
    for _ in 0..3 {
        let calls = c.tick(Duration::from_secs(1)).await;
        assert!(calls.is_empty(), "{:?}", lines(&calls));
    }
}

#[tokio::test]
async fn an_abort_sends_the_canary_service_back_to_stable_and_scales_the_canary_down_later() {
    let mut c = paused_canary().await;
    ClusterRollouts::new(c.client.clone(), "shop")
        .command("chip", Command::Abort)
        .await
        .unwrap();
    let calls = c.api.take_calls();
    assert_eq!(lines(&calls), [format!("GET {ROLLOUT}"), STATUS.to_owned()]);
    assert_eq!(body_of(&calls, STATUS)["status"]["abort"], true);
    let calls = c.tick(Duration::from_secs(1)).await;
    assert_eq!(
        lines(&calls),
        [
            SAVE.to_owned(),
            patch(&format!("{SERVICES}/chip-canary")),
            STATUS.to_owned()
        ],
        "the canary keeps its one pod until abortScaleDownDelaySeconds"
    );
    assert_eq!(
        body_of(&calls, &patch(&format!("{SERVICES}/chip-canary"))),
        &json!({"spec": {"selector": {"rollouts-pod-template-hash": V1}}})
    );
    let status = &body_of(&calls, STATUS)["status"];
    assert_eq!(status["phase"], "Degraded");
    assert_eq!(status["canary"]["weights"]["stable"]["weight"], 100);
    assert_eq!(events(&calls), ["Command", "RolloutPhaseChanged"]);
    let aborted = calls.iter().find(|c| c.line() == EVENTS).unwrap();
    assert_eq!(aborted.body["message"], "aborted through the API");
    c.settle();
    let calls = c.tick(Duration::from_secs(1)).await;
    assert_eq!(
        lines(&calls),
        [SAVE.to_owned(), patch(&rs(V2)), STATUS.to_owned()]
    );
    assert!(
        body_of(&calls, &patch(&rs(V2)))["metadata"]["annotations"]["scale-down-deadline"]
            .is_string()
    );
    assert_eq!(
        body_of(&calls, STATUS)["status"]["canary"]["weights"]["verified"],
        true
    );
    c.settle();
    scaled_to_zero(&c.tick(Duration::from_secs(31)).await, V2);
}

fn blue_green(image: &str) -> Value {
    let mut r = canary(image);
    r["spec"]["strategy"] = json!({"blueGreen": {"activeService": "chip-active",
        "previewService": "chip-preview", "autoPromotionEnabled": false}});
    r
}

#[tokio::test]
async fn a_blue_green_promote_switches_the_active_service_then_scales_the_old_side_down() {
    let mut c = Cluster::new(blue_green("chip:v1"), &["chip-active", "chip-preview"]).await;
    for _ in 0..4 {
        c.tick(Duration::from_secs(1)).await;
        c.settle();
    }
    assert_eq!(c.status()["phase"], "Healthy", "{}", c.status());
    c.set_image("chip:v2");
    let calls = c.tick(Duration::from_secs(1)).await;
    assert_eq!(
        lines(&calls),
        [SAVE.to_owned(), format!("POST {RS}"), STATUS.to_owned()]
    );
    assert_eq!(
        body_of(&calls, &format!("POST {RS}"))["spec"]["replicas"],
        5,
        "a full preview"
    );
    c.settle();
    let calls = c.tick(Duration::from_secs(1)).await;
    assert_eq!(
        lines(&calls),
        [
            SAVE.to_owned(),
            patch(&format!("{SERVICES}/chip-preview")),
            STATUS.to_owned()
        ]
    );
    c.settle();
    let calls = c.tick(Duration::from_secs(1)).await;
    assert_eq!(lines(&calls), [SAVE, STATUS]);
    assert_eq!(body_of(&calls, STATUS)["status"]["phase"], "Paused");
    assert!(
        !c.api
            .take_calls()
            .iter()
            .any(|c| c.path.ends_with("/chip-active")),
        "the active service stays on v1 until promoted"
    );
    ClusterRollouts::new(c.client.clone(), "shop")
        .command("chip", Command::Promote)
        .await
        .unwrap();
    c.api.take_calls();
    c.settle();
    let calls = c.tick(Duration::from_secs(1)).await;
    assert_eq!(
        lines(&calls),
        [
            SAVE.to_owned(),
            patch(&format!("{SERVICES}/chip-active")),
            STATUS.to_owned()
        ]
    );
    assert_eq!(
        body_of(&calls, &patch(&format!("{SERVICES}/chip-active"))),
        &json!({"spec": {"selector": {"rollouts-pod-template-hash": V2}}})
    );
    assert_eq!(
        body_of(&calls, STATUS)["status"]["blueGreen"]["activeSelector"],
        V2
    );
    c.settle();
    let calls = c.tick(Duration::from_secs(1)).await;
    assert_eq!(body_of(&calls, STATUS)["status"]["phase"], "Healthy");
    c.settle();
    scaled_to_zero(&c.tick(Duration::from_secs(31)).await, V1);
}

#[tokio::test]
async fn a_scale_change_mid_rollout_rescales_both_sides_without_moving_a_step_or_the_route() {
    let mut c = paused_canary().await;
    let generation = c.hub.generation();
    let mut r = c.api.get(ROLLOUT).unwrap();
    r["spec"]["replicas"] = json!(10);
    c.api.put(ROLLOUT, r);
    let calls = c.tick(Duration::from_secs(1)).await;
    assert_eq!(
        lines(&calls),
        [SAVE.to_owned(), patch(&rs(V1)), patch(&rs(V2))],
        "no status change until the pods are there"
    );
    assert_eq!(
        body_of(&calls, &patch(&rs(V1))),
        &json!({"spec": {"replicas": 10}})
    );
    assert_eq!(
        body_of(&calls, &patch(&rs(V2))),
        &json!({"spec": {"replicas": 2}}),
        "ceil(10 x 20 %)"
    );
    c.settle();
    let calls = c.tick(Duration::from_secs(1)).await;
    assert_eq!(lines(&calls), [STATUS]);
    assert_eq!(
        body_of(&calls, STATUS)["status"],
        json!({"HPAReplicas": 12, "availableReplicas": 12, "readyReplicas": 12, "replicas": 12,
               "updatedReplicas": 2})
    );
    assert_eq!(c.status()["currentStepIndex"], 1);
    assert_eq!(c.hub.generation(), generation, "the route did not change");
}

#[tokio::test]
async fn an_invalid_spec_is_degraded_with_its_field_and_nothing_else_is_touched() {
    let mut c = paused_canary().await;
    let generation = c.hub.generation();
    let mut r = c.api.get(ROLLOUT).unwrap();
    r["spec"]["strategy"]["canary"]["steps"][0]["setWeight"] = json!(150);
    r["spec"]["template"]["spec"]["containers"][0]["image"] = json!("chip:v3");
    c.api.put(ROLLOUT, r);
    let calls = c.tick(Duration::from_secs(1)).await;
    assert_eq!(lines(&calls), [STATUS]);
    let status = &body_of(&calls, STATUS)["status"];
    assert_eq!(status["phase"], "Degraded");
    let why = "rollout shop/chip: spec.strategy.canary.steps[0].setWeight: 150 exceeds maxTrafficWeight 100";
    assert_eq!(status["message"], why);
    assert_eq!(status["conditions"][0]["type"], "InvalidSpec");
    assert_eq!(status["conditions"][0]["reason"], "InvalidSpec");
    assert_eq!(status["conditions"][0]["message"], why);
    assert!(
        c.tick(Duration::from_secs(1)).await.is_empty(),
        "written once"
    );
    assert_eq!(c.hub.generation(), generation);
    let view = crate::control::service::RolloutService::get(&*c.runtime, "shop/chip").unwrap();
    assert!(
        format!("{view:?}").contains("exceeds maxTrafficWeight"),
        "{view:?}"
    );
    // fixed: it goes on from where it was
    let mut r = c.api.get(ROLLOUT).unwrap();
    r["spec"]["strategy"]["canary"]["steps"][0]["setWeight"] = json!(20);
    r["spec"]["template"]["spec"]["containers"][0]["image"] = json!("chip:v2");
    c.api.put(ROLLOUT, r);
    let calls = c.tick(Duration::from_secs(1)).await;
    assert_eq!(lines(&calls), [STATUS]);
    let status = &body_of(&calls, STATUS)["status"];
    assert_eq!(status["phase"], "Paused");
    assert_eq!(
        status["currentStepIndex"],
        json!(null),
        "unchanged, not in the patch"
    );
}

#[tokio::test]
async fn a_deleted_rollout_leaves_the_state_its_route_the_proxies_and_its_replica_sets_to_the_garbage_collector()
 {
    let mut c = paused_canary().await;
    // a route no rollout drives (left by a controller that stopped before withdrawing it)
    // goes at the next tick
    c.hub
        .publish(
            sluice_api::table::RouteSpec::new("shop/ghost", "a"),
            vec![],
            c.now,
        )
        .unwrap();
    assert_eq!(c.hub.route_names(), ["shop/chip", "shop/ghost"]);
    c.tick(Duration::from_secs(1)).await;
    assert_eq!(c.hub.route_names(), ["shop/chip"]);
    let before = c.hub.generation();
    c.api.remove(ROLLOUT);
    let calls = c.tick(Duration::from_secs(1)).await;
    assert_eq!(lines(&calls), [SAVE]);
    let state: Value =
        serde_json::from_str(calls[0].body["data"]["state.json"].as_str().unwrap()).unwrap();
    assert_eq!(state["rollouts"], json!({}));
    assert!(c.hub.route_names().is_empty(), "the route is withdrawn");
    let snap = c.hub.snapshot();
    assert!(snap.table.routes.is_empty() && snap.generation > before);
    assert!(c.tick(Duration::from_secs(1)).await.is_empty());
}

#[tokio::test]
async fn a_leader_change_fences_the_old_leader_out_of_the_state() {
    use super::leader::Elector;
    use k8s_openapi::api::coordination::v1::Lease;
    let mut c = paused_canary().await;
    let leases = kube::Api::<Lease>::namespaced(c.client.clone(), "shop");
    let lease = "/apis/coordination.k8s.io/v1/namespaces/shop/leases/sluice-controller";
    let a = Elector::new(
        leases.clone(),
        "sluice-controller",
        "a",
        Duration::from_secs(15),
    );
    let b = Elector::new(leases, "sluice-controller", "b", Duration::from_secs(15));
    let t0 = c.now;
    assert!(a.round(t0).await.unwrap());
    let calls = c.api.take_calls();
    granted(&calls);
    assert_eq!(
        lines(&calls),
        [
            format!("GET {lease}"),
            "POST /apis/coordination.k8s.io/v1/namespaces/shop/leases".to_owned()
        ]
    );
    assert!(
        !b.round(t0.plus(Duration::from_secs(5))).await.unwrap(),
        "a leads"
    );
    assert_eq!(lines(&c.api.take_calls()), [format!("GET {lease}")]);
    // a stops renewing; b takes over once the lease has expired
    assert!(b.round(t0.plus(Duration::from_secs(16))).await.unwrap());
    let calls = c.api.take_calls();
    granted(&calls);
    assert_eq!(
        lines(&calls),
        [format!("GET {lease}"), format!("PUT {lease}")]
    );
    assert_eq!(c.api.get(lease).unwrap()["spec"]["holderIdentity"], "b");
    assert_eq!(c.api.get(lease).unwrap()["spec"]["leaseTransitions"], 1);
    assert!(
        !a.round(t0.plus(Duration::from_secs(17))).await.unwrap(),
        "a follows now"
    );

    // b starts from what a saved, and writes the state; a, not knowing yet, cannot write over it
    let (cache, writers) = Cache::new();
    drop(writers);
    let b_port = KubePort::open(c.client.clone(), "shop", cache, false)
        .await
        .unwrap();
    let saved = crate::reconcile::Port::load(&b_port).unwrap();
    assert_eq!(
        saved.rollouts["shop/chip"].status.current_step_index,
        Some(1)
    );
    crate::reconcile::Port::save(&b_port, saved).await.unwrap();
    c.api.take_calls();
    let mut r = c.api.get(ROLLOUT).unwrap();
    r["spec"]["replicas"] = json!(7);
    c.api.put(ROLLOUT, r);
    let calls = c.tick(Duration::from_secs(1)).await;
    assert_eq!(lines(&calls), [SAVE], "refused: nothing is carried out");
    let view = crate::control::service::RolloutService::get(&*c.runtime, "shop/chip").unwrap();
    assert!(
        format!("{view:?}").contains("written by another controller"),
        "{view:?}"
    );
    assert!(
        c.api
            .paths(&format!("{RS}/"))
            .iter()
            .all(|p| { c.api.get(p).unwrap()["spec"]["replicas"] != json!(7) })
    );
}

#[tokio::test]
async fn a_candidate_labels_its_pod_so_that_the_control_service_selects_the_leader() {
    let (_cache, writers) = Cache::new();
    let (client, api) = FakeApi::start(writers);
    let pod = "/api/v1/namespaces/shop/pods/sluice-controller-0";
    api.put(
        pod,
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "sluice-controller-0", "namespace": "shop"}}),
    );
    let pods = kube::Api::namespaced(client, "shop");
    super::leader::mark(&pods, "sluice-controller-0", false)
        .await
        .unwrap();
    super::leader::mark(&pods, "sluice-controller-0", true)
        .await
        .unwrap();
    let calls = api.take_calls();
    granted(&calls);
    assert_eq!(lines(&calls), [patch(pod), patch(pod)]);
    assert_eq!(
        calls[1].body,
        json!({"metadata": {"labels": {"sluice.dev/leader": "true"}}})
    );
    assert_eq!(
        api.get(pod).unwrap()["metadata"]["labels"]["sluice.dev/leader"],
        "true"
    );
}

#[tokio::test]
async fn a_replica_set_past_the_revision_history_limit_is_deleted_once_scaled_down() {
    let mut spec = canary("chip:v1");
    spec["spec"]["revisionHistoryLimit"] = json!(0);
    spec["spec"]["strategy"]["canary"]["steps"] = json!([{"setWeight": 50}]);
    let mut c = Cluster::new(spec, &["chip-stable", "chip-canary"]).await;
    for _ in 0..3 {
        c.tick(Duration::from_secs(1)).await;
        c.settle();
    }
    c.set_image("chip:v2");
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.extend(lines(&c.tick(Duration::from_secs(1)).await));
        c.settle();
    }
    assert_eq!(c.status()["phase"], "Healthy", "{}", c.status());
    assert!(
        !seen.iter().any(|l| l.starts_with("DELETE")),
        "not before the delay: {seen:?}"
    );
    let calls = c.tick(Duration::from_secs(31)).await;
    assert_eq!(
        lines(&calls),
        [
            SAVE.to_owned(),
            format!("DELETE {}", rs(V1)),
            STATUS.to_owned()
        ]
    );
    assert_eq!(c.api.paths(&format!("{RS}/")), [rs(V2)]);
}

#[tokio::test]
async fn an_analysis_run_is_an_analysis_run_object_owned_by_the_rollout() {
    let mut spec = canary("chip:v1");
    spec["spec"]["strategy"]["canary"]["steps"] = json!([
        {"setWeight": 20},
        {"analysis": {"templates": [{"templateName": "errors"}]}},
        {"pause": {}}
    ]);
    let mut c = Cluster::new(spec, &["chip-stable", "chip-canary"]).await;
    c.api.put(
        "/apis/sluice.dev/v1alpha1/namespaces/shop/analysistemplates/errors",
        json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "AnalysisTemplate",
               "metadata": {"name": "errors", "namespace": "shop"},
               "spec": {"metrics": [{"name": "errors", "interval": "10s", "count": 3,
                                     "failureCondition": "result > 0.05",
                                     "provider": {"proxy": {"query": "error-rate"}}}]}}),
    );
    let calls = c.released_then_v2().await;
    let runs = "/apis/sluice.dev/v1alpha1/namespaces/shop/analysisruns";
    let created = calls
        .iter()
        .find(|c| c.line() == format!("POST {runs}"))
        .unwrap_or_else(|| panic!("no run created: {:?}", lines(&calls)));
    let name = created.body["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(name, format!("chip-{V2}-0-step1"));
    assert_eq!(
        created.body["metadata"]["ownerReferences"][0]["kind"],
        "Rollout"
    );
    assert_eq!(
        created.body["metadata"]["labels"]["rollouts-pod-template-hash"],
        V2
    );
    assert_eq!(created.body["spec"]["metrics"][0]["name"], "errors");
    let status = calls
        .iter()
        .rfind(|c| c.line() == format!("PATCH {runs}/{name}/status"))
        .unwrap_or_else(|| panic!("no run status: {:?}", lines(&calls)));
    assert!(
        status.body["status"]["phase"].is_string(),
        "{}",
        status.body
    );
    let shown = c.api.get(&format!("{runs}/{name}")).unwrap();
    assert_eq!(shown["status"]["phase"], status.body["status"]["phase"]);
    assert_eq!(
        c.status()["canary"]["currentStepAnalysisRunStatus"]["name"],
        json!(name)
    );
    // its verdict is an Event of the rollout
    crate::reconcile::runs::RunHost::update_run(&*c.runtime, &name, |r| {
        r.phase = crate::analysis::phase::RunPhase::Failed;
    });
    let calls = c.tick(Duration::from_secs(1)).await;
    let verdict = calls
        .iter()
        .find(|c| c.line() == EVENTS && c.body["reason"] == "AnalysisRunFailed")
        .unwrap_or_else(|| panic!("no verdict event: {:?}", events(&calls)));
    assert_eq!(verdict.body["type"], "Warning");
    assert_eq!(
        verdict.body["message"],
        format!("analysis run {name} failed")
    );
}

#[tokio::test]
async fn each_roles_pods_carry_its_labels_and_a_promoted_canary_changes_them_in_place() {
    let mut spec = canary("chip:v1");
    spec["spec"]["strategy"]["canary"]["canaryMetadata"] = json!({"labels": {"role": "canary"}});
    spec["spec"]["strategy"]["canary"]["stableMetadata"] =
        json!({"labels": {"role": "stable"}, "annotations": {"tier": "gold"}});
    let mut c = Cluster::new(spec, &["chip-stable", "chip-canary"]).await;
    for _ in 0..4 {
        c.tick(Duration::from_secs(1)).await;
        c.settle();
    }
    let pod = |c: &Cluster, hash: &str| {
        c.api
            .get(&format!("/api/v1/namespaces/shop/pods/chip-{hash}-0"))
            .unwrap()["metadata"]
            .clone()
    };
    let template = |c: &Cluster, hash: &str| {
        c.api.get(&rs(hash)).unwrap()["spec"]["template"]["metadata"].clone()
    };
    assert_eq!(pod(&c, V1)["labels"]["role"], "stable");
    assert_eq!(pod(&c, V1)["annotations"]["tier"], "gold");
    assert_eq!(
        template(&c, V1)["labels"]["role"],
        "stable",
        "for pods to come"
    );
    c.set_image("chip:v2");
    let mut calls = Vec::new();
    for _ in 0..3 {
        calls.extend(c.tick(Duration::from_secs(1)).await);
        c.settle();
    }
    assert_eq!(pod(&c, V2)["labels"]["role"], "canary");
    assert_eq!(pod(&c, V1)["labels"]["role"], "stable");
    assert!(
        calls.iter().any(
            |c| c.line() == format!("PATCH /api/v1/namespaces/shop/pods/chip-{V2}-0")
                && c.body == json!({"metadata": {"labels": {"role": "canary"}}})
        ),
        "{:?}",
        lines(&calls)
    );
    ClusterRollouts::new(c.client.clone(), "shop")
        .command("chip", Command::PromoteFull)
        .await
        .unwrap();
    c.api.take_calls();
    for _ in 0..4 {
        c.tick(Duration::from_secs(1)).await;
        c.settle();
    }
    assert_eq!(c.status()["stableRS"], V2);
    assert_eq!(pod(&c, V2)["labels"]["role"], "stable", "promoted in place");
    assert_eq!(pod(&c, V2)["annotations"]["tier"], "gold");
    assert_eq!(template(&c, V2)["labels"]["role"], "stable");
    assert_eq!(
        pod(&c, V1)["labels"]["role"],
        json!(null),
        "no role any more"
    );
    assert_eq!(
        pod(&c, V1)["labels"]["app"],
        "chip",
        "the rest is left as it was"
    );
}

fn deployment() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "chip", "namespace": "shop"},
           "spec": {"replicas": 5, "selector": {"matchLabels": {"app": "chip"}},
                    "template": {"metadata": {"labels": {"app": "chip"}},
                                 "spec": {"containers": [{"name": "chip", "image": "chip:v1",
                                                          "ports": [{"containerPort": 8080}]}]}}}})
}

fn referring(scale_down: &str) -> Value {
    let mut r = canary("chip:v1");
    let spec = r["spec"].as_object_mut().unwrap();
    spec.remove("template");
    spec.remove("selector");
    spec.insert(
        "workloadRef".into(),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "chip",
               "scaleDown": scale_down}),
    );
    r
}

const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/shop/deployments/chip";

#[tokio::test]
async fn a_workload_ref_runs_the_deployments_template_and_scales_it_down_as_asked() {
    for scale_down in ["onsuccess", "progressively", "never"] {
        let (cache, writers) = Cache::new();
        let (client, api) = FakeApi::start(writers);
        api.put(DEPLOYMENT, deployment());
        api.put(ROLLOUT, referring(scale_down));
        for s in ["chip-stable", "chip-canary"] {
            api.put(&format!("{SERVICES}/{s}"), service(s));
        }
        let port = KubePort::open(client.clone(), "shop", cache, false)
            .await
            .unwrap();
        let hub = Arc::new(Hub::open(HubConfig::default()).unwrap());
        let runtime = Reconciler::open(port, hub.clone()).unwrap();
        let mut c = Cluster {
            api,
            hub,
            runtime,
            client,
            now: Time::now(),
        };
        let calls = c.tick(Duration::ZERO).await;
        let created = body_of(&calls, &format!("POST {RS}"));
        assert_eq!(
            created["metadata"]["name"],
            format!("chip-{V1}"),
            "the same hash as written out"
        );
        assert_eq!(
            created["spec"]["template"]["spec"]["containers"][0]["image"],
            "chip:v1"
        );
        assert!(
            !lines(&calls).contains(&patch(DEPLOYMENT)),
            "{scale_down}: nothing before the rollout's pods are there"
        );
        let mut later = Vec::new();
        for _ in 0..3 {
            c.settle();
            later.extend(c.tick(Duration::from_secs(1)).await);
        }
        assert_eq!(c.status()["phase"], "Healthy", "{}", c.status());
        let scaled: Vec<&Call> = later
            .iter()
            .filter(|x| x.line() == patch(DEPLOYMENT))
            .collect();
        if scale_down == "never" {
            assert!(scaled.is_empty(), "{:?}", lines(&later));
            assert_eq!(c.api.get(DEPLOYMENT).unwrap()["spec"]["replicas"], 5);
        } else {
            assert_eq!(scaled.len(), 1, "{scale_down}: {:?}", lines(&later));
            assert_eq!(scaled[0].body, json!({"spec": {"replicas": 0}}));
        }
    }
}

#[tokio::test]
async fn a_workload_ref_to_a_missing_deployment_is_an_invalid_spec() {
    let (cache, writers) = Cache::new();
    let (client, api) = FakeApi::start(writers);
    api.put(ROLLOUT, referring("onsuccess"));
    let port = KubePort::open(client.clone(), "shop", cache, false)
        .await
        .unwrap();
    let hub = Arc::new(Hub::open(HubConfig::default()).unwrap());
    let runtime = Reconciler::open(port, hub.clone()).unwrap();
    api.take_calls();
    let mut c = Cluster {
        api,
        hub,
        runtime,
        client,
        now: Time::now(),
    };
    let calls = c.tick(Duration::ZERO).await;
    assert_eq!(lines(&calls), [STATUS]);
    assert_eq!(
        body_of(&calls, STATUS)["status"]["message"],
        "rollout shop/chip: spec.workloadRef: no Deployment \"chip\" in namespace shop"
    );
}

#[tokio::test]
async fn a_cluster_scoped_reference_uses_the_cluster_analysis_template_and_not_the_namespaces() {
    let mut spec = canary("chip:v1");
    spec["spec"]["strategy"]["canary"]["steps"] = json!([
        {"setWeight": 20},
        {"analysis": {"templates": [{"templateName": "errors", "clusterScope": true}]}},
        {"pause": {}}
    ]);
    let mut c = Cluster::new(spec, &["chip-stable", "chip-canary"]).await;
    let template = |metric: &str| {
        json!({"spec": {"metrics": [{"name": metric, "interval": "10s", "count": 3,
                                     "failureCondition": "result > 0.05",
                                     "provider": {"proxy": {"query": "error-rate"}}}]}})
    };
    let mut namespaced = template("namespaced");
    namespaced["apiVersion"] = json!("sluice.dev/v1alpha1");
    namespaced["kind"] = json!("AnalysisTemplate");
    namespaced["metadata"] = json!({"name": "errors", "namespace": "shop"});
    c.api.put(
        "/apis/sluice.dev/v1alpha1/namespaces/shop/analysistemplates/errors",
        namespaced,
    );
    let mut cluster = template("cluster-wide");
    cluster["apiVersion"] = json!("sluice.dev/v1alpha1");
    cluster["kind"] = json!("ClusterAnalysisTemplate");
    cluster["metadata"] = json!({"name": "errors"});
    c.api.put(
        "/apis/sluice.dev/v1alpha1/clusteranalysistemplates/errors",
        cluster,
    );
    let calls = c.released_then_v2().await;
    let created = calls
        .iter()
        .find(|c| c.line() == "POST /apis/sluice.dev/v1alpha1/namespaces/shop/analysisruns")
        .unwrap_or_else(|| panic!("no run: {:?}", lines(&calls)));
    assert_eq!(created.body["spec"]["metrics"][0]["name"], "cluster-wide");
}

#[tokio::test]
async fn restart_at_restarts_the_older_pods_one_at_a_time_while_the_others_are_ready() {
    let mut c = healthy_canary().await;
    let restart_at = c.now.plus(Duration::from_secs(5));
    let mut r = c.api.get(ROLLOUT).unwrap();
    r["spec"]["restartAt"] = json!(restart_at.to_string());
    c.api.put(ROLLOUT, r);
    assert!(
        !lines(&c.tick(Duration::from_secs(1)).await)
            .iter()
            .any(|l| l.starts_with("DELETE")),
        "not before its time"
    );
    let mut deleted = Vec::new();
    for _ in 0..8 {
        let calls = c.tick(Duration::from_secs(5)).await;
        let now: Vec<String> = lines(&calls)
            .into_iter()
            .filter(|l| l.starts_with("DELETE /api/v1/namespaces/shop/pods/"))
            .collect();
        assert!(now.len() <= 1, "one at a time: {now:?}");
        deleted.extend(now);
        c.settle();
    }
    assert_eq!(deleted.len(), 5, "each of the 5 pods once: {deleted:?}");
    assert_eq!(c.status()["restartedAt"], json!(restart_at.to_string()));
    assert!(
        c.tick(Duration::from_secs(5)).await.is_empty(),
        "done: nothing more"
    );
}

#[tokio::test]
async fn a_secret_argument_is_read_when_the_run_starts_and_kept_nowhere() {
    for with_secret in [false, true] {
        let mut spec = canary("chip:v1");
        spec["spec"]["strategy"]["canary"]["steps"] = json!([
            {"setWeight": 20},
            {"analysis": {"templates": [{"templateName": "smoke"}],
                          "args": [{"name": "token", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}},
                                   {"name": "team", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['team']"}}}]}},
            {"pause": {}}
        ]);
        spec["metadata"]["labels"] = json!({"team": "web"});
        let mut c = Cluster::new(spec, &["chip-stable", "chip-canary"]).await;
        c.api.put(
            "/apis/sluice.dev/v1alpha1/namespaces/shop/analysistemplates/smoke",
            json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "AnalysisTemplate",
                   "metadata": {"name": "smoke", "namespace": "shop"},
                   "spec": {"args": [{"name": "token"}, {"name": "team"}],
                            "metrics": [{"name": "smoke", "interval": "1h", "count": 1,
                                         "successCondition": "result == 1",
                                         "provider": {"web": {"url": "http://127.0.0.1:9/{{args.team}}",
                                                              "headers": [{"key": "authorization", "value": "Bearer {{args.token}}"}]}}}]}}),
        );
        if with_secret {
            c.api.put(
                "/api/v1/namespaces/shop/secrets/api",
                json!({"apiVersion": "v1", "kind": "Secret",
                       "metadata": {"name": "api", "namespace": "shop"},
                       "data": {"token": "czNjcjN0"}}),
            );
        }
        for _ in 0..3 {
            c.tick(Duration::from_secs(1)).await;
            c.settle();
        }
        c.set_image("chip:v2");
        let mut calls = Vec::new();
        for _ in 0..4 {
            calls.extend(c.tick(Duration::from_secs(1)).await);
            c.settle();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let run = format!("chip-{V2}-0-step1");
        let record = crate::reconcile::runs::RunHost::run(&*c.runtime, &run).unwrap();
        assert_eq!(record.request.args["team"], "web", "fieldRef");
        assert!(!record.request.args.contains_key("token"));
        if with_secret {
            assert_eq!(record.error, None, "{record:?}");
            let read = calls
                .iter()
                .any(|c| c.line() == "GET /api/v1/namespaces/shop/secrets/api");
            assert!(read, "{:?}", lines(&calls));
        } else {
            let error = record.error.clone().unwrap_or_default();
            assert!(
                error.contains("args.token.valueFrom.secretKeyRef") && error.contains("shop/api"),
                "{error}"
            );
        }
        let saved = c.api.get(STATE).unwrap()["data"]["state.json"].clone();
        assert!(
            !saved.as_str().unwrap().contains("s3cr3t"),
            "never in the state"
        );
        let objects = c
            .api
            .paths("/apis/sluice.dev/v1alpha1/namespaces/shop/analysisruns/");
        for o in objects {
            assert!(!c.api.get(&o).unwrap().to_string().contains("s3cr3t"));
        }
    }
}
