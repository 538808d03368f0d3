//! For tests: an API server in memory behind kube's client (the `tower-test` mock of kube-rs's
//! controller-rs fixtures), that records every call, keeps the objects written to it with
//! resourceVersions (a stale replace is refused with 409, as the real one does), and feeds
//! each change to the runtime's watch stores as a watch would. [`FakeApi::kubelet`] plays the
//! rest of the cluster: each ReplicaSet gets its pods, Ready, with an IP.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use kube::client::Body;
use kube::runtime::watcher::Event;
use serde_json::{Value, json};

use kube::runtime::reflector::store::Writer;

use super::cache::Writers;

/// One call the client made.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// `GET`, `POST`, `PUT`, `PATCH`, `DELETE`.
    pub method: String,
    /// The path.
    pub path: String,
    /// The query.
    pub query: String,
    /// The body sent, if any.
    pub body: Value,
}

impl Call {
    /// `METHOD path`, for comparing sequences.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

#[derive(Default)]
struct Objects {
    by_path: BTreeMap<String, Value>,
    version: u64,
    /// The time objects are created at (set by the test).
    now: Option<crate::time::Time>,
}

impl Objects {
    fn created(&self, object: &mut Value) {
        if object["metadata"]["creationTimestamp"].is_null() {
            let now = self.now.unwrap_or_else(crate::time::Time::now);
            object["metadata"]["creationTimestamp"] = json!(now.to_string());
        }
    }
}

/// The fake API server.
#[derive(Clone)]
pub struct FakeApi {
    calls: Arc<Mutex<Vec<Call>>>,
    objects: Arc<Mutex<Objects>>,
    writers: Arc<Mutex<Writers>>,
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn status(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason,
           "message": reason, "code": code})
}

impl FakeApi {
    /// A client on a fresh fake API server feeding `writers`.
    pub fn start(writers: Writers) -> (kube::Client, Self) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let api = Self {
            calls: Arc::default(),
            objects: Arc::default(),
            writers: Arc::new(Mutex::new(writers)),
        };
        let server = api.clone();
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let method = request.method().as_str().to_owned();
                let path = request.uri().path().to_owned();
                let query = request.uri().query().unwrap_or_default().to_owned();
                let bytes = request
                    .into_body()
                    .collect_bytes()
                    .await
                    .unwrap_or_default();
                let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let (code, answer) = server.answer(&method, &path, &query, body);
                send.send_response(
                    Response::builder()
                        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::OK))
                        .body(Body::from(serde_json::to_vec(&answer).unwrap_or_default()))
                        .expect("a response"),
                );
            }
        });
        (kube::Client::new(service, "shop"), api)
    }

    /// Every call so far, and forgets them.
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }

    /// The time objects are created at from now on.
    pub fn set_now(&self, now: crate::time::Time) {
        self.objects.lock().unwrap().now = Some(now);
    }

    /// The object at `path`.
    pub fn get(&self, path: &str) -> Option<Value> {
        self.objects.lock().unwrap().by_path.get(path).cloned()
    }

    /// Paths of the objects under `prefix`.
    pub fn paths(&self, prefix: &str) -> Vec<String> {
        let objects = self.objects.lock().unwrap();
        objects
            .by_path
            .keys()
            .filter(|p| p.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Stores `object` at `path` as its owners would (not recorded as a call).
    pub fn put(&self, path: &str, mut object: Value) {
        {
            let mut objects = self.objects.lock().unwrap();
            objects.version += 1;
            object["metadata"]["resourceVersion"] = json!(objects.version.to_string());
            objects.created(&mut object);
            if object["metadata"]["uid"].is_null() {
                object["metadata"]["uid"] = json!(format!("uid-{}", objects.version));
            }
            objects.by_path.insert(path.to_owned(), object.clone());
        }
        self.feed(path, &object, false);
    }

    /// Removes the object at `path` as its owners would (not recorded as a call).
    pub fn remove(&self, path: &str) {
        let gone = self.objects.lock().unwrap().by_path.remove(path);
        if let Some(o) = gone {
            self.feed(path, &o, true);
        }
    }

    /// Plays the kubelet and the ReplicaSet controller: every ReplicaSet gets as many pods as
    /// it asks for, Ready with an IP, and its status says so; pods beyond that go.
    pub fn kubelet(&self) {
        let sets = self.paths("/apis/apps/v1/namespaces/shop/replicasets/");
        for (n, path) in sets.iter().enumerate() {
            let Some(mut rs) = self.get(path) else {
                continue;
            };
            let name = rs["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let wanted = rs["spec"]["replicas"].as_i64().unwrap_or(1);
            let template = rs["spec"]["template"].clone();
            let hash = template["metadata"]["labels"][super::replicaset::HASH_LABEL].clone();
            for i in 0..wanted {
                let pod_path = format!("/api/v1/namespaces/shop/pods/{name}-{i}");
                if self.get(&pod_path).is_some() {
                    continue;
                }
                let mut pod = json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": format!("{name}-{i}"), "namespace": "shop",
                                 "labels": template["metadata"]["labels"].clone(),
                                 "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                     "name": name, "uid": rs["metadata"]["uid"], "controller": true}]},
                    "spec": template["spec"].clone(),
                    "status": {"phase": "Running", "podIP": format!("10.0.{n}.{}", i + 1),
                               "conditions": [{"type": "Ready", "status": "True",
                                               "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
                });
                pod["metadata"]["labels"][super::replicaset::HASH_LABEL] = hash.clone();
                self.put(&pod_path, pod);
            }
            for extra in self.paths(&format!("/api/v1/namespaces/shop/pods/{name}-")) {
                let i: i64 = extra
                    .rsplit('-')
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                if i >= wanted {
                    self.remove(&extra);
                }
            }
            let ready = json!({"replicas": wanted, "readyReplicas": wanted,
                               "availableReplicas": wanted, "observedGeneration": 1});
            if rs["status"] != ready {
                rs["status"] = ready;
                self.put(path, rs);
            }
        }
    }

    /// Feeds a change of the object at `path` to the store of its kind, as a watch would.
    fn feed(&self, path: &str, o: &Value, gone: bool) {
        fn apply<K>(w: &mut Writer<K>, o: &Value, gone: bool)
        where
            K: kube::Resource + Clone + serde::de::DeserializeOwned + 'static,
            K::DynamicType: Eq + std::hash::Hash + Clone,
        {
            if let Ok(o) = serde_json::from_value::<K>(o.clone()) {
                w.apply_watcher_event(&if gone {
                    Event::Delete(o)
                } else {
                    Event::Apply(o)
                });
            }
        }
        let mut w = self.writers.lock().unwrap();
        // the collection: the segment before the object's name
        match path.rsplit('/').nth(1).unwrap_or_default() {
            "rollouts" => apply(&mut w.rollouts, o, gone),
            "analysistemplates" => apply(&mut w.templates, o, gone),
            "clusteranalysistemplates" => apply(&mut w.cluster_templates, o, gone),
            "replicasets" => apply(&mut w.replica_sets, o, gone),
            "pods" => apply(&mut w.pods, o, gone),
            "services" => apply(&mut w.services, o, gone),
            "deployments" => apply(&mut w.deployments, o, gone),
            _ => {}
        }
    }

    fn answer(&self, method: &str, path: &str, query: &str, body: Value) -> (u16, Value) {
        self.calls.lock().unwrap().push(Call {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            body: body.clone(),
        });
        let (object_path, subresource) = match path.strip_suffix("/status") {
            Some(p) if method == "PATCH" => (p.to_owned(), true),
            _ => (path.to_owned(), false),
        };
        let mut objects = self.objects.lock().unwrap();
        let written = match method {
            "GET" => {
                return match objects.by_path.get(&object_path) {
                    Some(o) => (200, o.clone()),
                    None => (404, status(404, "NotFound")),
                };
            }
            "POST" => {
                let name = body["metadata"]["name"].as_str().unwrap_or_default();
                let at = format!("{path}/{name}");
                if objects.by_path.contains_key(&at) {
                    return (409, status(409, "AlreadyExists"));
                }
                objects.version += 1;
                let mut o = body;
                o["metadata"]["resourceVersion"] = json!(objects.version.to_string());
                o["metadata"]["uid"] = json!(format!("uid-{}", objects.version));
                objects.created(&mut o);
                objects.by_path.insert(at.clone(), o.clone());
                (at, o)
            }
            "PUT" => {
                let Some(old) = objects.by_path.get(path).cloned() else {
                    return (404, status(404, "NotFound"));
                };
                if old["metadata"]["resourceVersion"] != body["metadata"]["resourceVersion"] {
                    return (409, status(409, "Conflict"));
                }
                objects.version += 1;
                let mut o = body;
                o["metadata"]["resourceVersion"] = json!(objects.version.to_string());
                o["metadata"]["uid"] = old["metadata"]["uid"].clone();
                objects.by_path.insert(path.to_owned(), o.clone());
                (path.to_owned(), o)
            }
            "PATCH" => {
                let Some(mut o) = objects.by_path.get(&object_path).cloned() else {
                    return (404, status(404, "NotFound"));
                };
                let patch = if subresource {
                    json!({"status": body["status"].clone()})
                } else {
                    let mut b = body;
                    if let Some(m) = b.as_object_mut() {
                        m.remove("status");
                    }
                    b
                };
                merge(&mut o, &patch);
                objects.version += 1;
                o["metadata"]["resourceVersion"] = json!(objects.version.to_string());
                objects.by_path.insert(object_path.clone(), o.clone());
                (object_path, o)
            }
            "DELETE" => {
                let Some(o) = objects.by_path.remove(path) else {
                    return (404, status(404, "NotFound"));
                };
                drop(objects);
                self.feed(path, &o, true);
                return (200, o);
            }
            _ => return (405, status(405, "MethodNotAllowed")),
        };
        drop(objects);
        self.feed(&written.0, &written.1, false);
        (if method == "POST" { 201 } else { 200 }, written.1)
    }
}
