//! The local runtime's side of the reconcile port: the world is a config file (re-read when it
//! changes; a bad file keeps the previous one), a revision runs at the addresses the config
//! maps its images to, health comes from our own checks, the state is a JSON file written
//! atomically, and scales are recorded in the state, not performed — no process is started.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use futures_util::future::BoxFuture;

use super::config::LocalConfig;
use super::health::Health;
use crate::Error;
use crate::reconcile::{Port, Refresh, State, World};
use crate::spec::PodTemplate;

/// The local runtime's port.
pub struct LocalPort {
    config: RwLock<(Arc<LocalConfig>, Arc<World>)>,
    config_mtime: Mutex<Option<SystemTime>>,
    state_file: PathBuf,
    health: Arc<Health>,
}

fn world_of(config: &LocalConfig) -> Arc<World> {
    Arc::new(World {
        rollouts: config.rollouts.clone(),
        templates: config.templates.clone(),
        ..World::default()
    })
}

fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl LocalPort {
    /// The port of a loaded config; health checks watch every address it names.
    pub fn new(config: LocalConfig) -> Self {
        let health = Arc::new(Health::default());
        health.watch(config.all_addresses());
        Self {
            config_mtime: Mutex::new(modified(&config.path)),
            state_file: config.state_dir().join("state.json"),
            config: RwLock::new((Arc::new(config.clone()), world_of(&config))),
            health,
        }
    }

    /// The config in force.
    pub fn config(&self) -> Arc<LocalConfig> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }

    /// The health checker.
    pub fn health(&self) -> Arc<Health> {
        self.health.clone()
    }
}

impl Port for LocalPort {
    fn refresh(&self) -> Refresh {
        let path = self.config().path.clone();
        let mtime = modified(&path);
        {
            let mut seen = self.config_mtime.lock().unwrap_or_else(|p| p.into_inner());
            if *seen == mtime {
                return Refresh::Unchanged;
            }
            *seen = mtime;
        }
        match LocalConfig::load(&path) {
            Ok(config) => {
                tracing::info!(file = %path.display(), "config reloaded");
                self.health.watch(config.all_addresses());
                let world = world_of(&config);
                *self.config.write().unwrap_or_else(|p| p.into_inner()) = (Arc::new(config), world);
                Refresh::Changed
            }
            Err(e) => Refresh::Invalid(Error::Config(format!(
                "config {} is invalid, keeping the previous one: {e}",
                path.display()
            ))),
        }
    }

    fn world(&self) -> Arc<World> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone()
    }

    fn addresses(&self, _rollout: &str, template: &PodTemplate) -> Vec<String> {
        self.config().addresses(template)
    }

    fn healthy(&self, rollout: &str, addresses: &[String]) -> u32 {
        let min_ready = self
            .config()
            .rollouts
            .get(rollout)
            .and_then(|r| r.spec.min_ready_seconds)
            .unwrap_or(0);
        self.health.available_count(
            addresses,
            std::time::Duration::from_secs(u64::from(min_ready)),
            crate::time::Time::now(),
        )
    }

    fn check_template(&self, template: &PodTemplate) -> Result<(), Error> {
        self.config()
            .check_images(template)
            .map_err(|e| Error::field("spec.template", e))
    }

    fn debug_headers(&self) -> bool {
        self.config().runtime.debug_headers
    }

    fn load(&self) -> Result<State, Error> {
        let path = &self.state_file;
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| Error::State(format!("{} is not a state file: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(Error::State(format!("cannot read {}: {e}", path.display()))),
        }
    }

    fn save(&self, state: State) -> BoxFuture<'_, Result<(), Error>> {
        let path = self.state_file.clone();
        Box::pin(async move {
            let cannot = |e: &dyn std::fmt::Display| {
                Error::State(format!("cannot write state {}: {e}", path.display()))
            };
            let bytes = serde_json::to_vec_pretty(&state).map_err(|e| cannot(&e))?;
            let target = path.clone();
            tokio::task::spawn_blocking(move || sluice_io::files::write_atomically(&target, &bytes))
                .await
                .map_err(|e| cannot(&e))?
                .map_err(|e| cannot(&e))
        })
    }
}
