//! Rollouts on a cluster, as the CLI sees them through the API server alone: list, get, and
//! the commands as patches ([`super::patch`]), the status one through the status subresource
//! first, as Argo Rollouts' plugin sends them. Without a sluice controller's control API
//! there are no per-revision figures, endpoints or analysis measurements to show.

use kube::api::{Api, ListParams, Patch, PatchParams};

use super::patch::{self, Patches};
use crate::Error;
use crate::commands::Command;
use crate::control::service::{RolloutSummary, RolloutView};
use crate::reconcile::views;
use crate::spec::rollout::RolloutResource;
use crate::time::Time;

/// The Rollouts of one namespace of a cluster.
#[derive(Clone)]
pub struct ClusterRollouts {
    api: Api<RolloutResource>,
    namespace: String,
}

/// What a failed API call means to a person (and to the CLI's exit code).
fn api_error(e: kube::Error) -> Error {
    match e {
        kube::Error::Api(status) => {
            let message = status.message.clone();
            match status.code {
                404 => Error::NotFound(message),
                401 | 403 => Error::Unauthorized(message),
                409 => Error::Refused(message),
                400 | 422 => Error::field("", message),
                _ => Error::Remote(format!("{}: {message}", status.code)),
            }
        }
        other => Error::Unreachable(other.to_string()),
    }
}

/// A rollout object as `get rollout` shows it.
pub fn view(r: &RolloutResource) -> RolloutView {
    let status = r.status.clone().unwrap_or_default();
    let current = status.current_pod_hash.clone().unwrap_or_default();
    let stable = status.stable_rs.clone().unwrap_or_default();
    let blue_green = r.spec.strategy.blue_green.is_some();
    let mut revisions: Vec<_> = status
        .revisions
        .iter()
        .map(|rev| views::bare_revision(rev, &stable, &current, blue_green))
        .collect();
    revisions.sort_by_key(|rev| std::cmp::Reverse(rev.revision));
    RolloutView {
        step_list: views::step_list(&r.spec),
        name: r.metadata.name.clone().unwrap_or_default(),
        namespace: r.metadata.namespace.clone().unwrap_or_default(),
        strategy: views::strategy(&r.spec).to_owned(),
        steps: r
            .spec
            .strategy
            .canary
            .as_ref()
            .map_or(0, |c| c.steps.len() as u32),
        paused: r.spec.paused,
        route: None,
        generation: 0,
        revisions,
        analysis_runs: Vec::new(),
        events: Vec::new(),
        runtime_error: None,
        status,
    }
}

impl ClusterRollouts {
    /// The Rollouts of `namespace` through `client`.
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
        }
    }

    /// Connects with the kubeconfig (or the pod's service account), in `namespace` or the
    /// kubeconfig's.
    pub async fn connect(namespace: Option<&str>) -> Result<Self, Error> {
        let client = kube::Client::try_default()
            .await
            .map_err(|e| Error::Unreachable(format!("no cluster: {e}")))?;
        let namespace =
            namespace.map_or_else(|| client.default_namespace().to_owned(), str::to_owned);
        Ok(Self::new(client, &namespace))
    }

    /// Every Rollout of the namespace.
    pub async fn list(&self) -> Result<Vec<RolloutSummary>, Error> {
        let list = self
            .api
            .list(&ListParams::default())
            .await
            .map_err(api_error)?;
        Ok(list
            .items
            .iter()
            .map(|r| {
                let name = r.metadata.name.as_deref().unwrap_or_default();
                views::summary(
                    name,
                    name,
                    &self.namespace,
                    &r.spec,
                    &r.status.clone().unwrap_or_default(),
                )
            })
            .collect())
    }

    /// One Rollout.
    pub async fn get(&self, name: &str) -> Result<RolloutView, Error> {
        let r = self.api.get(name).await.map_err(api_error)?;
        Ok(view(&r))
    }

    async fn send(&self, name: &str, patches: Patches) -> Result<String, Error> {
        let params = PatchParams {
            field_manager: Some(super::params::CLI_FIELD_MANAGER.to_owned()),
            ..Default::default()
        };
        if let Some(status) = &patches.status {
            self.api
                .patch_status(name, &params, &Patch::Merge(status))
                .await
                .map_err(api_error)?;
        }
        if let Some(spec) = &patches.spec {
            self.api
                .patch(name, &params, &Patch::Merge(spec))
                .await
                .map_err(api_error)?;
        }
        Ok(patches.message)
    }

    /// A command, as the patches of the fields it changes.
    pub async fn command(&self, name: &str, command: Command) -> Result<String, Error> {
        let r = self.api.get(name).await.map_err(api_error)?;
        let patches = patch::of_command(&r, command, Time::now())?;
        self.send(name, patches).await
    }

    /// `set image`: the container's image in `spec.template`.
    pub async fn set_image(
        &self,
        name: &str,
        container: &str,
        image: &str,
    ) -> Result<String, Error> {
        let r = self.api.get(name).await.map_err(api_error)?;
        let patches = patch::of_set_image(&r, container, image)?;
        self.send(name, patches).await
    }
}

#[cfg(test)]
mod tests {
    use http::{Request, Response, StatusCode};
    use kube::client::Body;
    use serde_json::{Value, json};

    use super::*;

    type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

    const ROLLOUT: &str = "/apis/sluice.dev/v1alpha1/namespaces/shop/rollouts/chip";

    fn cluster() -> (ClusterRollouts, Handle) {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        (
            ClusterRollouts::new(kube::Client::new(service, "shop"), "shop"),
            handle,
        )
    }

    fn object(status: Value, paused: bool) -> Value {
        super::super::rollout_object(status, paused)
    }

    /// One call the CLI must make, and the API server's answer.
    struct Call {
        method: &'static str,
        path: String,
        content_type: Option<&'static str>,
        body: Option<Value>,
        status: StatusCode,
        answer: Value,
    }

    fn get(answer: Value) -> Call {
        Call {
            method: "GET",
            path: ROLLOUT.into(),
            content_type: None,
            body: None,
            status: StatusCode::OK,
            answer,
        }
    }

    fn merge_patch(path: String, body: Value, answer: Value) -> Call {
        Call {
            method: "PATCH",
            path,
            content_type: Some("application/merge-patch+json"),
            body: Some(body),
            status: StatusCode::OK,
            answer,
        }
    }

    /// Answers exactly `calls`, in order, checking each request; then checks that nothing
    /// else was sent.
    async fn serve(mut handle: Handle, calls: Vec<Call>) {
        for (i, call) in calls.into_iter().enumerate() {
            let (request, send) = handle
                .next_request()
                .await
                .unwrap_or_else(|| panic!("call {i} ({} {}) never came", call.method, call.path));
            assert_eq!(request.method().as_str(), call.method, "call {i}");
            assert_eq!(request.uri().path(), call.path, "call {i}");
            assert_eq!(
                request
                    .headers()
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok()),
                call.content_type,
                "call {i}"
            );
            let bytes = request.into_body().collect_bytes().await.unwrap();
            match &call.body {
                Some(expected) => {
                    let sent: Value = serde_json::from_slice(&bytes).unwrap();
                    assert_eq!(&sent, expected, "call {i}");
                }
                None => assert!(bytes.is_empty(), "call {i} has a body"),
            }
            send.send_response(
                Response::builder()
                    .status(call.status)
                    .body(Body::from(serde_json::to_vec(&call.answer).unwrap()))
                    .unwrap(),
            );
        }
        drop(handle);
    }

    #[tokio::test]
    async fn promote_at_a_pause_gets_then_patches_the_status_subresource_alone() {
        let (rollouts, handle) = cluster();
        let paused = object(
            json!({"phase": "Paused", "currentStepIndex": 1, "controllerPause": true,
                   "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2026-12-06T10:00:00Z"}]}),
            false,
        );
        let server = tokio::spawn(serve(
            handle,
            vec![
                get(paused.clone()),
                merge_patch(
                    format!("{ROLLOUT}/status"),
                    json!({"status": {"pauseConditions": null}}),
                    paused,
                ),
            ],
        ));
        let msg = rollouts.command("chip", Command::Promote).await.unwrap();
        assert!(!msg.is_empty());
        server.await.unwrap();
    }

    #[tokio::test]
    async fn pause_and_set_image_patch_the_spec_alone() {
        let (rollouts, handle) = cluster();
        let healthy = object(json!({"phase": "Healthy"}), false);
        let mut template = healthy["spec"]["template"].clone();
        template["spec"]["containers"][0]["image"] = json!("chip:v2");
        let server = tokio::spawn(serve(
            handle,
            vec![
                get(healthy.clone()),
                merge_patch(
                    ROLLOUT.into(),
                    json!({"spec": {"paused": true}}),
                    healthy.clone(),
                ),
                get(healthy.clone()),
                merge_patch(
                    ROLLOUT.into(),
                    json!({"spec": {"template": template}}),
                    healthy,
                ),
            ],
        ));
        rollouts.command("chip", Command::Pause).await.unwrap();
        assert_eq!(
            rollouts.set_image("chip", "chip", "chip:v2").await.unwrap(),
            "chip image set to chip:v2"
        );
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_command_that_does_not_apply_sends_no_patch_and_a_missing_rollout_is_not_found() {
        let (rollouts, handle) = cluster();
        let healthy = object(json!({"phase": "Healthy"}), false);
        let server = tokio::spawn(serve(
            handle,
            vec![
                get(healthy),
                Call {
                    status: StatusCode::NOT_FOUND,
                    answer: json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                   "message": "rollouts.sluice.dev \"chip\" not found",
                                   "reason": "NotFound", "code": 404}),
                    ..get(Value::Null)
                },
            ],
        ));
        let refused = rollouts.command("chip", Command::Retry).await;
        assert!(matches!(refused, Err(Error::Refused(_))), "{refused:?}");
        let missing = rollouts.get("chip").await;
        assert!(matches!(missing, Err(Error::NotFound(_))), "{missing:?}");
        server.await.unwrap();
    }

    #[tokio::test]
    async fn list_shows_each_rollout_with_its_step_and_weight() {
        let (rollouts, handle) = cluster();
        let mut item = object(
            json!({"phase": "Paused", "currentStepIndex": 1,
                   "canary": {"weights": {"canary": {"weight": 20, "podTemplateHash": "h2"},
                                          "stable": {"weight": 80, "podTemplateHash": "h1"},
                                          "total": 100, "verified": true,
                                          "acknowledged": 2, "expected": 2}}}),
            false,
        );
        item["metadata"]["resourceVersion"] = json!("7");
        let server = tokio::spawn(serve(
            handle,
            vec![Call {
                path: "/apis/sluice.dev/v1alpha1/namespaces/shop/rollouts".into(),
                answer: json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "RolloutList",
                               "metadata": {"resourceVersion": "7"}, "items": [item]}),
                ..get(Value::Null)
            }],
        ));
        let list = rollouts.list().await.unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].step, Some((1, 2)));
        assert_eq!(list[0].weight, Some((20, 100, true)));
        server.await.unwrap();
    }
}
