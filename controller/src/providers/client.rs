//! One HTTP or HTTPS call of a provider (`prometheus`, `web`): the request sent with its
//! headers and body, the answer's status and body read whole (at most [`MAX_BODY`]), all
//! within the timeout. HTTPS verifies the server against the system's roots
//! (`SSL_CERT_FILE`/`SSL_CERT_DIR` are honoured); `insecure: true` accepts any certificate,
//! as Argo's `insecure` does, while still checking the handshake's signatures.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// Largest answer body read.
pub const MAX_BODY: usize = 16 << 20;

/// A provider's request.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    /// GET, POST or PUT.
    pub method: Method,
    /// `http://` or `https://`.
    pub url: &'a str,
    /// Headers, as written.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Bytes,
    /// For the whole exchange.
    pub timeout: Duration,
    /// Accept any server certificate.
    pub insecure: bool,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Accepts any certificate; the handshake's signatures are still verified.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The TLS settings: verifying against the system's roots, or accepting any certificate.
fn tls(insecure: bool) -> Result<rustls::ClientConfig, String> {
    static VERIFYING: OnceLock<Result<rustls::ClientConfig, String>> = OnceLock::new();
    static ANY: OnceLock<Result<rustls::ClientConfig, String>> = OnceLock::new();
    let build = |insecure: bool| {
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        Ok(if insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
                .with_no_client_auth()
        } else {
            let mut roots = rustls::RootCertStore::empty();
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        })
    };
    let cell = if insecure { &ANY } else { &VERIFYING };
    cell.get_or_init(|| build(insecure)).clone()
}

/// Makes the call: the answer's status and body.
pub async fn call(c: Call<'_>) -> Result<(u16, Bytes), String> {
    let uri: http::Uri = c.url.parse().map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err("only http:// and https:// URLs can be called".into());
    }
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(c.timeout));
    connector.set_nodelay(true);
    connector.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls(c.insecure)?)
        .https_or_http()
        .enable_http1()
        .wrap_connector(connector);
    let client: Client<_, Full<Bytes>> =
        Client::builder(hyper_util::rt::TokioExecutor::new()).build(https);
    let mut req = Request::builder().method(c.method).uri(uri);
    for (k, v) in &c.headers {
        req = req.header(k, v);
    }
    let req = req.body(Full::new(c.body)).map_err(|e| e.to_string())?;
    let whole = async {
        let resp = client.request(req).await.map_err(|e| {
            // hyper's own text ("client error (Connect)") hides the cause
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text = format!("{text}: {s}");
                source = s.source();
            }
            text
        })?;
        let status = resp.status().as_u16();
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(c.timeout, whole)
        .await
        .map_err(|_| format!("no answer within {:?}", c.timeout))?
}
