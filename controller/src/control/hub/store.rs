//! Where a hub keeps its routes and its next generation across restarts: a file in local
//! mode, a ConfigMap on a cluster (so that a new leader continues the generations the old
//! one gave). The hub writes through this before any proxy can see a generation, from a thread
//! where blocking is allowed.

use std::path::PathBuf;

/// A place for the hub's persisted routes.
pub trait RouteStore: Send + Sync {
    /// What was written last; `None` when nothing was yet.
    fn read(&self) -> Result<Option<Vec<u8>>, String>;
    /// Writes `bytes` whole and durably; blocks until done.
    fn write(&self, bytes: &[u8]) -> Result<(), String>;
    /// Where it is, for messages.
    fn describe(&self) -> String;
}

/// A file, written atomically.
#[derive(Debug, Clone)]
pub struct FileStore(pub PathBuf);

impl RouteStore for FileStore {
    fn read(&self) -> Result<Option<Vec<u8>>, String> {
        match std::fs::read(&self.0) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    fn write(&self, bytes: &[u8]) -> Result<(), String> {
        sluice_io::files::write_atomically(&self.0, bytes).map_err(|e| e.to_string())
    }

    fn describe(&self) -> String {
        self.0.display().to_string()
    }
}
