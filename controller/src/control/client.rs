//! A client for the control API, used by the CLI, the tests and the demo.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde::de::DeserializeOwned;

use super::hub::{HubEvent, ProxyView};
use super::service::{RolloutSummary, RolloutView};
use crate::error::{Error, Result};

/// A control API client.
#[derive(Clone)]
pub struct ControlClient {
    base: String,
    token: Option<String>,
    http: sluice_io::http::HttpClient,
}

/// How long a connection to the control API may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long an answer of the control API may take, whole.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

impl ControlClient {
    /// A client for the API at `base` (e.g. `http://127.0.0.1:9700`).
    pub fn new(base: &str, token: Option<String>) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http: sluice_io::http::client(CONNECT_TIMEOUT),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<String>) -> Result<Bytes> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| Error::Remote(e.to_string()))?;
        let (status, body) = sluice_io::http::exchange(&self.http, req, ANSWER_TIMEOUT)
            .await
            .map_err(|e| Error::Unreachable(format!("{}: {e}", self.base)))?;
        if status.is_success() {
            return Ok(body);
        }
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        Err(match status {
            StatusCode::UNAUTHORIZED => Error::Unauthorized(message),
            StatusCode::NOT_FOUND => Error::NotFound(message),
            StatusCode::CONFLICT => Error::Refused(message),
            StatusCode::BAD_REQUEST => {
                Error::Invalid(vec![sluice_api::FieldError::new("", message)])
            }
            _ => Error::Remote(format!("{status}: {message}")),
        })
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let body = self.call(Method::GET, path, None).await?;
        serde_json::from_slice(&body).map_err(|e| Error::Remote(format!("unreadable answer: {e}")))
    }

    /// Every rollout.
    pub async fn list(&self) -> Result<Vec<RolloutSummary>> {
        self.get_json("/v1/rollouts").await
    }

    /// One rollout.
    pub async fn get(&self, name: &str) -> Result<RolloutView> {
        self.get_json(&format!("/v1/rollouts/{name}")).await
    }

    /// Proxies.
    pub async fn proxies(&self) -> Result<Vec<ProxyView>> {
        self.get_json("/v1/proxies").await
    }

    /// How long recent generations took to reach every expected proxy.
    pub async fn acks(&self) -> Result<Vec<super::hub::AckLatency>> {
        self.get_json("/v1/acks").await
    }

    /// Proxy events.
    pub async fn events(&self) -> Result<Vec<HubEvent>> {
        self.get_json("/v1/events").await
    }

    /// Merged figures of a (route, revision), over a window or since start.
    pub async fn stats(
        &self,
        route: &str,
        revision: &str,
        window: Option<u64>,
    ) -> Result<serde_json::Value> {
        let mut path = format!(
            "/v1/stats?route={}&revision={revision}",
            route.replace('/', "%2F")
        );
        if let Some(w) = window {
            path.push_str(&format!("&window={w}"));
        }
        self.get_json(&path).await
    }

    /// A command: `promote`, `promote-full`, `abort`, `retry`, `pause`, `resume`, `undo`.
    pub async fn command(
        &self,
        name: &str,
        command: &str,
        to_revision: Option<u32>,
    ) -> Result<String> {
        let body = to_revision.map(|n| serde_json::json!({"toRevision": n}).to_string());
        let answer = self
            .call(
                Method::POST,
                &format!("/v1/rollouts/{name}/{command}"),
                body,
            )
            .await?;
        Ok(message(&answer))
    }

    /// Changes a container's image.
    pub async fn set_image(&self, name: &str, container: &str, image: &str) -> Result<String> {
        let body = serde_json::json!({"container": container, "image": image}).to_string();
        let answer = self
            .call(
                Method::POST,
                &format!("/v1/rollouts/{name}/set-image"),
                Some(body),
            )
            .await?;
        Ok(message(&answer))
    }

    /// Follows a rollout's server-sent events, calling `on_view` with each view until it
    /// returns false or the stream ends.
    pub async fn watch(
        &self,
        name: &str,
        mut on_view: impl FnMut(RolloutView) -> bool,
    ) -> Result<()> {
        let mut req = Request::builder()
            .method(Method::GET)
            .uri(format!("{}/v1/rollouts/{name}/watch", self.base))
            .header(http::header::ACCEPT, "text/event-stream");
        if let Some(t) = &self.token {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = req
            .body(Full::new(Bytes::new()))
            .map_err(|e| Error::Remote(e.to_string()))?;
        let resp = self
            .http
            .request(req)
            .await
            .map_err(|e| Error::Unreachable(format!("{}: {e}", self.base)))?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(Error::NotFound(format!("no rollout named {name:?}")));
        }
        if !resp.status().is_success() {
            return Err(Error::Remote(resp.status().to_string()));
        }
        let mut body = resp.into_body();
        let mut buf = String::new();
        let mut data = String::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| Error::Unreachable(e.to_string()))?;
            let Some(chunk) = frame.data_ref() else {
                continue;
            };
            buf.push_str(&String::from_utf8_lossy(chunk));
            while let Some(i) = buf.find('\n') {
                let line: String = buf.drain(..=i).collect();
                let line = line.trim_end_matches(['\r', '\n']);
                if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim_start());
                } else if line.is_empty() && !data.is_empty() {
                    let view: RolloutView = serde_json::from_str(&data)
                        .map_err(|e| Error::Remote(format!("unreadable event: {e}")))?;
                    data.clear();
                    if !on_view(view) {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// Any GET, raw (for tests).
    pub async fn raw_get(&self, path: &str) -> Result<Bytes> {
        self.call(Method::GET, path, None).await
    }

    /// Any POST, raw (for tests).
    pub async fn raw_post(&self, path: &str, body: &str) -> Result<Bytes> {
        self.call(Method::POST, path, Some(body.to_owned())).await
    }
}

fn message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_default()
}
