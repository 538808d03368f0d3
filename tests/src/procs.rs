//! Every child process of the tests: test backends, proxies, controllers and subscribed
//! proxies, each started with `--addr-file` so that it can bind port 0 and tell us where it
//! listens, all waited for by one helper. Dropping one kills it.

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

/// Sends a signal to a process we started.
pub fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{sig} {pid} failed");
}

/// A `sluice controller` process.
pub struct Controller {
    /// Control API address.
    pub addr: SocketAddr,
    child: Child,
    config: PathBuf,
    log: PathBuf,
    extra: Vec<String>,
    /// Flags of `sluice controller` itself (after `-c FILE`).
    flags: Vec<String>,
    nofile: Option<u64>,
}

impl Controller {
    /// Starts a controller on a config file.
    pub fn start(config: &Path, extra: &[&str]) -> Self {
        Self::start_limited(config, extra, None)
    }

    /// Starts a controller with at most `nofile` open descriptors, when given.
    pub fn start_limited(config: &Path, extra: &[&str], nofile: Option<u64>) -> Self {
        Self::start_flagged(config, extra, &[], nofile)
    }

    /// Starts a controller with global arguments `extra` and flags of `sluice controller`
    /// itself (`--dashboard ADDR`), with at most `nofile` open descriptors, when given.
    pub fn start_flagged(
        config: &Path,
        extra: &[&str],
        flags: &[&str],
        nofile: Option<u64>,
    ) -> Self {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let flags: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
        Self::start_on(config, &extra, &flags, None, nofile)
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Its PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills it with SIGKILL.
    pub fn kill9(&mut self) {
        signal(self.child.id(), "KILL");
        let _ = self.child.wait();
    }

    /// Starts it again on the same config and state, on the same port.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let listen = self.addr.to_string();
        let fresh = Self::start_on(
            &self.config,
            &self.extra,
            &self.flags,
            Some(&listen),
            self.nofile,
        );
        *self = fresh;
    }

    fn start_on(
        config: &Path,
        extra: &[String],
        flags: &[String],
        listen: Option<&str>,
        nofile: Option<u64>,
    ) -> Self {
        let dir = config.parent().expect("config in a directory");
        let addr_file = dir.join(format!("controller-{}.addr", rand_suffix()));
        let log = dir.join("controller.log");
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut child = limited(&bin("sluice"), nofile)
            .args(extra)
            .arg("controller")
            .arg("-c")
            .arg(config)
            .args(flags)
            .args(listen.map(|l| ["--listen", l]).into_iter().flatten())
            .arg("--addr-file")
            .arg(&addr_file)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start sluice controller");
        let v = wait_for_addr_file(&mut child, &addr_file, "controller");
        Self {
            addr: v["listen"].as_str().unwrap().parse().unwrap(),
            child,
            config: config.to_owned(),
            log,
            extra: extra.to_vec(),
            flags: flags.to_vec(),
            nofile,
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed) + u64::from(std::process::id()) * 1000
}

/// A proxy subscribed to a controller.
pub struct SubscribedProxy {
    /// Traffic address.
    pub addr: SocketAddr,
    /// Admin address.
    pub admin: SocketAddr,
    /// Its id.
    pub id: String,
    child: Child,
    dir: PathBuf,
    control: String,
    extra: Vec<String>,
}

impl SubscribedProxy {
    /// Starts `sluice-proxy --control-plane URL --proxy-id ID`.
    pub fn start(dir: &Path, control: &str, id: &str, extra: &[&str]) -> Self {
        Self::start_on(dir, control, id, extra, "127.0.0.1:0", "127.0.0.1:0")
    }

    fn start_on(
        dir: &Path,
        control: &str,
        id: &str,
        extra: &[&str],
        listen: &str,
        admin: &str,
    ) -> Self {
        let addr_file = dir.join(format!("{id}-{}.addr", rand_suffix()));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("{id}.log")))
            .unwrap();
        let mut child = Command::new(bin("sluice-proxy"))
            .args([
                "--listen",
                listen,
                "--admin-listen",
                admin,
                "--control-plane",
                control,
                "--proxy-id",
                id,
                "--report-interval",
                "200ms",
            ])
            .arg("--cache-dir")
            .arg(dir.join(format!("{id}-cache")))
            .arg("--addr-file")
            .arg(&addr_file)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sluice-proxy");
        let v = wait_for_addr_file(&mut child, &addr_file, "proxy");
        Self {
            addr: v["listen"].as_str().unwrap().parse().unwrap(),
            admin: v["admin"].as_str().unwrap().parse().unwrap(),
            id: id.to_owned(),
            child,
            dir: dir.to_owned(),
            control: control.to_owned(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Its PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills it and starts it again on the same ports and cache.
    pub fn restart(&mut self) {
        self.kill9();
        self.start_again();
    }

    /// Kills it with SIGKILL.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again, after [`Self::kill9`], on the same ports and cache.
    pub fn start_again(&mut self) {
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        let fresh = Self::start_on(
            &self.dir,
            &self.control,
            &self.id,
            &extra,
            &self.addr.to_string(),
            &self.admin.to_string(),
        );
        *self = fresh;
    }

    /// The URL of a path on its traffic listener.
    pub fn url(&self, path: &str) -> http::Uri {
        format!("http://{}{path}", self.addr).parse().unwrap()
    }
}

impl Drop for SubscribedProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a command to its end: its exit code (-1 when a signal ended it) and its standard
/// output followed by its standard error.
pub fn finished(cmd: &mut Command) -> (i32, String) {
    let out = cmd.output().expect("the command starts");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
