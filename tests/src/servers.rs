//! Small servers the tests need beside the real binaries: each listens on a loopback port the
//! kernel picks, on its own thread and runtime, and handles every connection in its own task.

use std::future::Future;
use std::net::SocketAddr;

/// Starts a server calling `handle` for each accepted connection; returns its address.
pub fn spawn_loopback<F, Fut>(handle: F) -> SocketAddr
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    l.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(l).unwrap();
            loop {
                let (s, _) = l.accept().await.unwrap();
                tokio::spawn(handle(s));
            }
        });
    });
    addr
}

/// A request as a [`Recorder`] saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// Whether the body arrived whole (not cut off by a reset or a framing error).
    pub complete: bool,
}

/// A loopback HTTP server (over TLS with a self-signed certificate for `127.0.0.1` when asked)
/// that keeps every request it receives and answers each with the same status, content type
/// and body, after `delay`: what a provider's call is checked against.
pub struct Recorder {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it received, oldest first.
    pub seen: std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
}

/// What a [`Recorder`] answers.
#[derive(Debug, Clone)]
pub struct Canned {
    /// Status.
    pub status: u16,
    /// Content type.
    pub content_type: &'static str,
    /// Body.
    pub body: String,
    /// Wait before answering.
    pub delay: std::time::Duration,
}

impl Canned {
    /// 200 with a JSON body, at once.
    pub fn json(body: &str) -> Self {
        Self {
            status: 200,
            content_type: "application/json",
            body: body.to_owned(),
            delay: std::time::Duration::ZERO,
        }
    }
}

impl Recorder {
    /// Starts one, plain or over TLS.
    pub fn start(answer: Canned, tls: bool) -> Self {
        use http_body_util::BodyExt as _;
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let acceptor = tls.then(|| {
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            let key = rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
            let cfg = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key)
            .unwrap();
            tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(cfg))
        });
        let kept = seen.clone();
        let addr = spawn_loopback(move |s| {
            let (kept, answer, acceptor) = (kept.clone(), answer.clone(), acceptor.clone());
            async move {
                let svc =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (kept, answer) = (kept.clone(), answer.clone());
                        async move {
                            let (head, body) = req.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes().to_vec());
                            let complete = body.is_ok();
                            let body = body.unwrap_or_default();
                            kept.lock().unwrap().push(Seen {
                                method: head.method.to_string(),
                                target: head.uri.to_string(),
                                headers: head
                                    .headers
                                    .iter()
                                    .map(|(k, v)| {
                                        (
                                            k.as_str().to_owned(),
                                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                        )
                                    })
                                    .collect(),
                                body,
                                complete,
                            });
                            tokio::time::sleep(answer.delay).await;
                            Ok::<_, std::convert::Infallible>(
                                http::Response::builder()
                                    .status(answer.status)
                                    .header("content-type", answer.content_type)
                                    .body(http_body_util::Full::new(bytes::Bytes::from(
                                        answer.body,
                                    )))
                                    .unwrap(),
                            )
                        }
                    });
                let http = hyper::server::conn::http1::Builder::new();
                match acceptor {
                    Some(a) => {
                        if let Ok(tls) = a.accept(s).await {
                            let _ = http
                                .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                                .await;
                        }
                    }
                    None => {
                        let _ = http
                            .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                            .await;
                    }
                }
            }
        });
        Self { addr, seen }
    }

    /// What it received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// A loopback port free when asked (for a program that must be told its port up front).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real Prometheus (Debian's, installed by `scripts/install-test-deps.sh`) on loopback,
/// scraping its targets every second, its data in a folder; stopped when dropped.
pub struct Prometheus {
    /// Where its HTTP API listens.
    pub addr: SocketAddr,
    child: std::process::Child,
    config: std::path::PathBuf,
}

fn write_config(cfg: &std::path::Path, targets: &[String]) {
    let quoted: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    std::fs::write(
        cfg,
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n  - job_name: sluice\n    static_configs: [{{targets: [{}]}}]\n",
            quoted.join(", ")
        ),
    )
    .unwrap();
}

impl Prometheus {
    /// Starts one on `addr` (scraping `targets`, `HOST:PORT` each, its data in `dir`) and
    /// waits until it says it is ready.
    pub fn start(dir: &std::path::Path, addr: SocketAddr, targets: &[String]) -> Self {
        let config = dir.join("prometheus.yml");
        write_config(&config, targets);
        let child = std::process::Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prometheus is installed by scripts/install-test-deps.sh");
        let mut p = Self {
            addr,
            child,
            config,
        };
        let client = crate::Client::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        // Prometheus itself, not whatever else holds the port: it says its name
        while !crate::world::block(client.get(addr, "/-/ready", &[])).is_ok_and(|a| {
            a.status == 200 && String::from_utf8_lossy(&a.body).contains("Prometheus")
        }) {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("prometheus exited ({status}): is {addr} taken?");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "prometheus did not get ready"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        p
    }

    /// Points it at other targets: its config rewritten, then SIGHUP, which reloads it.
    pub fn retarget(&self, targets: &[String]) {
        write_config(&self.config, targets);
        crate::procs::signal(self.child.id(), "HUP");
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
