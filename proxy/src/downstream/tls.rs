//! TLS termination with rustls (the `ring` provider: it builds quickly and needs no C
//! toolchain beyond the one Rust already uses, where aws-lc-rs triples the build here).
//!
//! Certificates and keys come from PEM files; each is served for the server names the config
//! gives it, chosen by SNI (the first certificate answers clients without SNI or with an
//! unknown name). The files are watched: a replaced certificate is used by the next handshake,
//! while connections already open keep theirs. TLS 1.2 and 1.3 only; ALPN `h2` and
//! `http/1.1`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

use crate::error::{Error, FieldError, Result};

/// The TLS listener's settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Address of the TLS listener.
    pub listen: String,
    /// Certificates, the first one being the default.
    pub certificates: Vec<CertificateConfig>,
    /// How often the files are checked for changes.
    #[serde(default = "default_reload", with = "sluice_api::parse::duration")]
    pub reload_interval: Duration,
}

fn default_reload() -> Duration {
    Duration::from_secs(2)
}

/// One certificate and the names it serves.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    /// PEM file with the certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM file with the private key.
    pub key: PathBuf,
    /// Server names (SNI) it serves.
    pub server_names: Vec<String>,
}

struct Loaded {
    by_name: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

/// Picks the certificate by SNI; swapped whole when files change.
pub struct SniResolver {
    loaded: ArcSwap<Loaded>,
}

impl std::fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SniResolver")
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let loaded = self.loaded.load();
        hello
            .server_name()
            .and_then(|n| loaded.by_name.get(&n.to_ascii_lowercase()).cloned())
            .or_else(|| loaded.default.clone())
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn load_one(c: &CertificateConfig, i: usize) -> std::result::Result<CertifiedKey, FieldError> {
    let path = |f: &str| format!("tls.certificates[{i}].{f}");
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&c.cert)
        .map_err(|e| FieldError::new(path("cert"), format!("{}: {e}", c.cert.display())))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| FieldError::new(path("cert"), format!("{}: {e}", c.cert.display())))?;
    if chain.is_empty() {
        return Err(FieldError::new(
            path("cert"),
            format!("{} holds no certificate", c.cert.display()),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&c.key)
        .map_err(|e| FieldError::new(path("key"), format!("{}: {e}", c.key.display())))?;
    let signer = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| FieldError::new(path("key"), format!("{}: {e}", c.key.display())))?;
    let ck = CertifiedKey::new(chain, signer);
    ck.keys_match().map_err(|e| {
        FieldError::new(path("key"), format!("does not match the certificate: {e}"))
    })?;
    Ok(ck)
}

fn load_all(cfg: &TlsConfig) -> Result<Loaded> {
    let mut errors = Vec::new();
    let mut by_name = HashMap::new();
    let mut default = None;
    if cfg.certificates.is_empty() {
        errors.push(FieldError::new(
            "tls.certificates",
            "must list at least one certificate",
        ));
    }
    for (i, c) in cfg.certificates.iter().enumerate() {
        if c.server_names.is_empty() {
            errors.push(FieldError::new(
                format!("tls.certificates[{i}].server_names"),
                "must list at least one name",
            ));
        }
        match load_one(c, i) {
            Ok(ck) => {
                let ck = Arc::new(ck);
                if default.is_none() {
                    default = Some(ck.clone());
                }
                for n in &c.server_names {
                    by_name.insert(n.to_ascii_lowercase(), ck.clone());
                }
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(Loaded { by_name, default })
    } else {
        Err(Error::Invalid(errors))
    }
}

fn mtimes(cfg: &TlsConfig) -> Vec<Option<SystemTime>> {
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    cfg.certificates
        .iter()
        .flat_map(|c| [mtime(&c.cert), mtime(&c.key)])
        .collect()
}

/// A loaded TLS setup: the acceptor to use, and the resolver to reload.
pub struct Tls {
    /// Accepts TLS connections.
    pub acceptor: tokio_rustls::TlsAcceptor,
    resolver: Arc<SniResolver>,
    config: TlsConfig,
}

impl Tls {
    /// Loads the certificates and builds the server config.
    pub fn load(cfg: &TlsConfig) -> Result<Self> {
        let resolver = Arc::new(SniResolver {
            loaded: ArcSwap::from_pointee(load_all(cfg)?),
        });
        let mut server = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| Error::invalid("tls", e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
            resolver,
            config: cfg.clone(),
        })
    }

    /// Watches the files and reloads them when they change; a bad set of files is logged
    /// and the certificates in use stay.
    pub async fn watch(self: Arc<Self>) {
        let mut seen = mtimes(&self.config);
        let mut tick = tokio::time::interval(self.config.reload_interval);
        loop {
            tick.tick().await;
            let now = mtimes(&self.config);
            if now == seen {
                continue;
            }
            seen = now;
            match load_all(&self.config) {
                Ok(loaded) => {
                    self.resolver.loaded.store(Arc::new(loaded));
                    tracing::info!("TLS certificates reloaded");
                }
                Err(e) => {
                    tracing::error!(error = %e, "TLS certificates not reloaded; the ones in use stay")
                }
            }
        }
    }
}

/// The fatal `protocol_version` alert (RFC 8446 §6), in a TLS 1.0 record as old clients expect.
const PROTOCOL_VERSION_ALERT: [u8; 7] = [0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x46];

/// Whether the first bytes of a connection are a ClientHello from a client that cannot speak
/// TLS 1.2 or later: its `client_version` is below 1.2 (clients offering 1.2 or 1.3 always put
/// at least 1.2 there).
pub fn is_outdated_hello(head: &[u8]) -> bool {
    matches!(head, [0x16, _, _, _, _, 0x01, _, _, _, major, minor, ..] if u16::from_be_bytes([*major, *minor]) < 0x0303)
}

/// Answers an outdated client with a `protocol_version` alert and returns true; returns false
/// (reading nothing) for every other client.
pub async fn refuse_outdated(stream: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncWriteExt as _;
    let mut head = [0u8; 11];
    let mut seen = 0;
    for _ in 0..20 {
        match stream.peek(&mut head).await {
            Ok(n) if n >= head.len() => {
                seen = n;
                break;
            }
            Ok(0) | Err(_) => return false,
            Ok(n) => {
                seen = n;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    if seen >= head.len() && is_outdated_hello(&head) {
        let _ = stream.write_all(&PROTOCOL_VERSION_ALERT).await;
        let _ = stream.shutdown().await;
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outdated_hellos_are_recognised() {
        // record header, handshake type ClientHello, length, client_version
        let tls11 = [
            0x16, 0x03, 0x01, 0x00, 0x80, 0x01, 0x00, 0x00, 0x7c, 0x03, 0x02,
        ];
        let tls12 = [
            0x16, 0x03, 0x01, 0x00, 0x80, 0x01, 0x00, 0x00, 0x7c, 0x03, 0x03,
        ];
        let ssl3 = [
            0x16, 0x03, 0x00, 0x00, 0x80, 0x01, 0x00, 0x00, 0x7c, 0x03, 0x00,
        ];
        assert!(is_outdated_hello(&tls11));
        assert!(is_outdated_hello(&ssl3));
        assert!(!is_outdated_hello(&tls12));
        assert!(!is_outdated_hello(b"GET / HTTP/1.1\r\n"));
        assert!(!is_outdated_hello(&tls11[..5]));
    }
}
