//! A document the controller keeps in the API server, in one key of a ConfigMap of its
//! namespace, so that it survives a restart and a change of leader. Written with optimistic
//! concurrency: each write carries the resourceVersion of the last read or write, so a
//! controller that lost the lead and did not notice yet cannot overwrite what the new leader
//! wrote — its write is refused (409) and it says so.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta};
use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::Error;

/// One document in a ConfigMap.
pub struct Stored {
    api: Api<ConfigMap>,
    name: String,
    key: String,
    /// The resourceVersion last read or written; `None`: the ConfigMap does not exist.
    version: Mutex<Option<String>>,
}

impl Stored {
    /// The document `key` of ConfigMap `name`.
    pub fn new(api: Api<ConfigMap>, name: &str, key: &str) -> Self {
        Self {
            api,
            name: name.to_owned(),
            key: key.to_owned(),
            version: Mutex::new(None),
        }
    }

    fn at(&self) -> String {
        format!("configmap {} key {}", self.name, self.key)
    }

    /// Reads the document; `None` when there is none yet.
    pub async fn read(&self) -> Result<Option<String>, Error> {
        let cm = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| Error::State(format!("cannot read {}: {e}", self.at())))?;
        let Some(cm) = cm else {
            *self.version.lock().unwrap_or_else(|p| p.into_inner()) = None;
            return Ok(None);
        };
        *self.version.lock().unwrap_or_else(|p| p.into_inner()) = cm.metadata.resource_version;
        Ok(cm.data.and_then(|mut d| d.remove(&self.key)))
    }

    /// Writes the document whole: creates the ConfigMap on the first write, else replaces it
    /// at the resourceVersion last seen.
    pub async fn write(&self, text: String) -> Result<(), Error> {
        let version = self
            .version
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                resource_version: version.clone(),
                labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/managed-by".to_owned(),
                    "sluice".to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(self.key.clone(), text)])),
            ..ConfigMap::default()
        };
        let pp = super::params::post_params();
        let written = match version {
            None => self.api.create(&pp, &cm).await,
            Some(_) => self.api.replace(&self.name, &pp, &cm).await,
        };
        match written {
            Ok(cm) => {
                *self.version.lock().unwrap_or_else(|p| p.into_inner()) =
                    cm.metadata.resource_version;
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Err(Error::State(format!(
                "{} was written by another controller since this one read it: not writing over it",
                self.at()
            ))),
            Err(e) => Err(Error::State(format!("cannot write {}: {e}", self.at()))),
        }
    }
}

/// The hub's routes in a ConfigMap. The hub reads them once when it opens (they were read
/// here before, asynchronously) and writes them from blocking threads: each write is run on
/// the async runtime and waited for.
pub struct RoutesStore {
    stored: std::sync::Arc<Stored>,
    read: Mutex<Option<Option<String>>>,
    runtime: tokio::runtime::Handle,
}

impl RoutesStore {
    /// The routes kept in `stored`, read now.
    pub async fn open(stored: Stored) -> Result<Self, Error> {
        let read = stored.read().await?;
        Ok(Self {
            stored: std::sync::Arc::new(stored),
            read: Mutex::new(Some(read)),
            runtime: tokio::runtime::Handle::current(),
        })
    }
}

impl crate::control::hub::RouteStore for RoutesStore {
    fn read(&self) -> Result<Option<Vec<u8>>, String> {
        Ok(self
            .read
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .flatten()
            .map(String::into_bytes))
    }

    fn write(&self, bytes: &[u8]) -> Result<(), String> {
        let text = String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string())?;
        let stored = self.stored.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        self.runtime.spawn(async move {
            let _ = tx.send(stored.write(text).await);
        });
        rx.recv()
            .map_err(|_| "the write was dropped".to_owned())?
            .map_err(|e| e.to_string())
    }

    fn describe(&self) -> String {
        self.stored.at()
    }
}
