//! TLS to upstreams: the client config of a backend, from its CA file or the system's roots.

use std::sync::Arc;

use sluice_api::table::UpstreamTlsSpec;

/// The client TLS config for a backend: its CA file or the system's roots.
/// ALPN is left to the connector, which sets h2 or http/1.1 as the protocol says.
pub fn client_tls_config(spec: Option<&UpstreamTlsSpec>) -> Result<rustls::ClientConfig, String> {
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    match spec.and_then(|s| s.ca_file.as_ref()) {
        Some(file) => {
            let certs = rustls_pki_types::CertificateDer::pem_file_iter(file)
                .map_err(|e| format!("{}: {e}", file.display()))?;
            for c in certs {
                let c = c.map_err(|e| format!("{}: {e}", file.display()))?;
                roots
                    .add(c)
                    .map_err(|e| format!("{}: {e}", file.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("{} holds no certificate", file.display()));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                let _ = roots.add(c);
            }
        }
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}
