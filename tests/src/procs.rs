//! Child processes of the tests: test backends and proxies, each started with `--addr-file`
//! so that it can bind port 0 and tell us where it listens. Dropping one kills it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The path of a workspace binary (`sluice-proxy`, `sluice-load`, `sluice`), next to the test
/// executable's own directory (`target/<profile>/`), or in `SLUICE_BIN_DIR`.
pub fn bin(name: &str) -> PathBuf {
    if let Ok(dir) = std::env::var("SLUICE_BIN_DIR") {
        return Path::new(&dir).join(name);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace binaries first (cargo build --workspace --bins)",
        path.display()
    );
    path
}

/// Runs `sluice-proxy` on a config file given as text, expecting it to exit by itself (a bad
/// file, a taken address): its exit code and what it wrote to stderr.
pub fn proxy_exit(config: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("proxy.yaml");
    std::fs::write(&cfg, config).unwrap();
    let out = Command::new(bin("sluice-proxy"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits for a JSON address file written by a child, failing if the child exits first.
fn wait_for_addr_file(child: &mut Child, path: &Path, what: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(v) = serde_json::from_str::<Value>(&text)
        {
            return v;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not start listening in 20 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn addr(v: &Value, key: &str) -> SocketAddr {
    v[key]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("address file has no {key}: {v}"))
}

/// A command for `program`, run with at most `nofile` open descriptors when given (through
/// util-linux's `prlimit`, which every Debian has).
pub fn limited(program: &std::path::Path, nofile: Option<u64>) -> Command {
    match nofile {
        None => Command::new(program),
        Some(n) => {
            let mut c = Command::new("prlimit");
            c.arg(format!("--nofile={n}:{n}")).arg(program);
            c
        }
    }
}

/// A `sluice-load serve` backend.
pub struct Backend {
    /// Where it listens.
    pub addr: SocketAddr,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Backend {
    /// A healthy backend answering `name`.
    pub fn start(name: &str) -> Self {
        Self::start_with(name, &[])
    }

    /// A backend with extra `serve` flags (`--delay 2s`, `--error-rate 0.5`, …).
    pub fn start_with(name: &str, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("addr.json");
        let mut child = Command::new(bin("sluice-load"))
            .args([
                "serve",
                "--name",
                name,
                "--listen",
                "127.0.0.1:0",
                "--addr-file",
            ])
            .arg(&file)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sluice-load serve");
        let v = wait_for_addr_file(&mut child, &file, "backend");
        Self {
            addr: addr(&v, "listen"),
            child,
            _dir: dir,
        }
    }

    /// The PID, to signal it.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `sluice-proxy` process.
pub struct Proxy {
    /// Traffic listener.
    pub addr: SocketAddr,
    /// Admin listener.
    pub admin: SocketAddr,
    /// TLS listener, when configured.
    pub tls: Option<SocketAddr>,
    child: Child,
    dir: tempfile::TempDir,
}

impl Proxy {
    /// Starts a proxy on `config` (YAML); `listen` and `admin.listen` are set to port 0 unless
    /// the config sets them.
    pub fn start(config: &str) -> Self {
        Self::start_limited(config, None)
    }

    /// Starts a proxy as [`Proxy::start`] does, with at most `nofile` open descriptors.
    pub fn start_limited(config: &str, nofile: Option<u64>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cfg_path = dir.path().join("proxy.yaml");
        let mut text = String::new();
        if !config.contains("\nlisten:") && !config.starts_with("listen:") {
            text.push_str("listen: 127.0.0.1:0\n");
        }
        if !config.contains("admin:") {
            text.push_str("admin:\n  listen: 127.0.0.1:0\n");
        }
        text.push_str(config);
        std::fs::write(&cfg_path, text).unwrap();
        let file = dir.path().join("addr.json");
        let log = std::fs::File::create(dir.path().join("proxy.log")).unwrap();
        let mut child = limited(&bin("sluice-proxy"), nofile)
            .arg("--config")
            .arg(&cfg_path)
            .arg("--addr-file")
            .arg(&file)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sluice-proxy");
        let v = wait_for_addr_file(&mut child, &file, "proxy");
        Self {
            addr: addr(&v, "listen"),
            admin: addr(&v, "admin"),
            tls: v["tls"].as_str().and_then(|s| s.parse().ok()),
            child,
            dir,
        }
    }

    /// The PID, to signal it.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The config file it was started with (rewrite it and send SIGHUP to reload).
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("proxy.yaml")
    }

    /// What the proxy logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("proxy.log")).unwrap_or_default()
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Backends `v1` and `v2` and the YAML `backends:` section naming them.
pub fn two_backends() -> (Backend, Backend, String) {
    let (a, b) = (Backend::start("v1"), Backend::start("v2"));
    let yaml = format!(
        "backends:\n  - {{name: v1, endpoints: [\"{}\"]}}\n  - {{name: v2, endpoints: [\"{}\"]}}\n",
        a.addr, b.addr
    );
    (a, b, yaml)
}
