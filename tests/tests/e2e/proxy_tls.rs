//! TLS termination with real clients (`openssl s_client`, `curl`): certificates chosen by SNI,
//! replaced without a restart, TLS 1.1 refused, HTTP/2 by ALPN.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sluice_tests::{Backend, Proxy};

fn write_cert(dir: &Path, stem: &str, cn: &str, names: &[&str]) {
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    // write to temporary files and rename, so that a reload never sees half a file
    for (ext, text) in [("crt", cert.pem()), ("key", key.serialize_pem())] {
        let tmp = dir.join(format!(".{stem}.{ext}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, dir.join(format!("{stem}.{ext}"))).unwrap();
    }
}

fn tls_proxy(dir: &Path, backend: SocketAddr) -> (Proxy, SocketAddr) {
    write_cert(dir, "a", "a.test", &["a.test"]);
    write_cert(dir, "b", "b.test", &["b.test"]);
    let proxy = Proxy::start(&format!(
        "tls:
  listen: 127.0.0.1:0
  reload_interval: 200ms
  certificates:
    - {{cert: {d}/a.crt, key: {d}/a.key, server_names: [a.test]}}
    - {{cert: {d}/b.crt, key: {d}/b.key, server_names: [b.test]}}
backends: [{{name: v1, endpoints: [\"{backend}\"]}}]
routes: [{{name: app, stable: v1}}]
",
        d = dir.display()
    ));
    let tls = proxy.tls.expect("a TLS listener");
    (proxy, tls)
}

fn s_client(addr: SocketAddr, extra: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string()])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("openssl is installed");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn subject(addr: SocketAddr, name: &str) -> String {
    let out = s_client(addr, &["-servername", name]);
    out.lines()
        .find(|l| l.starts_with("subject="))
        .unwrap_or_else(|| panic!("no certificate for {name}: {out}"))
        .to_owned()
}

#[test]
fn sni_picks_the_certificate_and_a_replaced_one_is_used_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let b = Backend::start("v1");
    let (_proxy, tls) = tls_proxy(dir.path(), b.addr);
    assert!(subject(tls, "a.test").contains("CN = a.test"));
    assert!(subject(tls, "b.test").contains("CN = b.test"));
    assert!(
        subject(tls, "unknown.test").contains("CN = a.test"),
        "the first certificate is the default"
    );

    // a long download on an old connection, while the certificate is replaced
    let download = Command::new("curl")
        .args([
            "-sk",
            "--limit-rate",
            "40M",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_download}",
        ])
        .args(["--resolve", &format!("a.test:{}:127.0.0.1", tls.port())])
        .arg(format!("https://a.test:{}/?bytes=120000000", tls.port()))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    write_cert(dir.path(), "a", "a.test renewed", &["a.test"]);
    let mut renewed = false;
    for _ in 0..50 {
        if subject(tls, "a.test").contains("CN = a.test renewed") {
            renewed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(renewed, "the replaced certificate was not picked up");
    let out = download.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "200 120000000",
        "the download on the old connection broke"
    );
}

#[test]
fn a_tls_1_1_client_is_refused_while_the_same_client_works_against_a_tls_1_1_server() {
    let dir = tempfile::tempdir().unwrap();
    let b = Backend::start("v1");
    let (_proxy, tls) = tls_proxy(dir.path(), b.addr);
    let old_client = ["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"];

    // first: the client can speak TLS 1.1 at all (so the check below can fail)
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new("openssl")
        .args([
            "s_server",
            "-tls1_1",
            "-cipher",
            "DEFAULT@SECLEVEL=0",
            "-accept",
            &port.to_string(),
        ])
        .arg("-cert")
        .arg(dir.path().join("a.crt"))
        .arg("-key")
        .arg(dir.path().join("a.key"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // s_server takes a moment to listen, longer on a loaded machine
    let listening = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
        && listening.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let against_old = s_client(format!("127.0.0.1:{port}").parse().unwrap(), &old_client);
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        against_old.contains("Protocol  : TLSv1.1") || against_old.contains("Protocol: TLSv1.1"),
        "{against_old}"
    );

    let against_proxy = s_client(tls, &old_client);
    assert!(
        against_proxy.contains("alert protocol version"),
        "{against_proxy}"
    );
    assert!(
        against_proxy.contains("no peer certificate available"),
        "{against_proxy}"
    );
}

#[test]
fn alpn_gives_http2_over_tls_and_forwarding_headers_say_https() {
    let dir = tempfile::tempdir().unwrap();
    let b = Backend::start("v1");
    let (_proxy, tls) = tls_proxy(dir.path(), b.addr);
    let out = Command::new("curl")
        .args(["-sk", "--http2", "-w", "\n%{http_version}"])
        .args(["--resolve", &format!("b.test:{}:127.0.0.1", tls.port())])
        .arg(format!("https://b.test:{}/echo", tls.port()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, version) = text.rsplit_once('\n').unwrap();
    assert_eq!(version, "2", "{text}");
    let echo: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(echo["headers"]["x-forwarded-proto"][0], "https");
}

/// Sends `n` concurrent requests on one HTTP/2 connection and counts answers by version.
async fn h2_burst<IO>(
    io: IO,
    authority: &str,
    n: usize,
) -> std::collections::BTreeMap<String, usize>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use http_body_util::{BodyExt, Empty};
    let (sender, conn) = hyper::client::conn::http2::handshake::<_, _, Empty<bytes::Bytes>>(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(io),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let mut tasks = Vec::new();
    for _ in 0..n {
        let mut s = sender.clone();
        let uri = format!("http://{authority}/");
        tasks.push(tokio::spawn(async move {
            let req = http::Request::get(uri).body(Empty::new()).unwrap();
            let resp = s.send_request(req).await.unwrap();
            assert_eq!(resp.status(), 200);
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            String::from_utf8_lossy(&body).trim().to_owned()
        }));
    }
    let mut by = std::collections::BTreeMap::new();
    for t in tasks {
        *by.entry(t.await.unwrap()).or_insert(0) += 1;
    }
    by
}

#[test]
fn http2_with_a_hundred_concurrent_streams_splits_80_20_in_clear_and_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (v1, v2) = (Backend::start("v1"), Backend::start("v2"));
    write_cert(dir.path(), "a", "a.test", &["a.test"]);
    let proxy = Proxy::start(&format!(
        "tls:
  listen: 127.0.0.1:0
  certificates: [{{cert: {d}/a.crt, key: {d}/a.key, server_names: [a.test]}}]
backends:
  - {{name: v1, endpoints: [\"{}\"]}}
  - {{name: v2, endpoints: [\"{}\"], protocol: h2c}}
routes: [{{name: app, stable: v1, canary: v2, weight: 20}}]
",
        v1.addr,
        v2.addr,
        d = dir.path().display()
    ));
    let tls = proxy.tls.unwrap();
    sluice_tests::world::block(async {
        // h2c with prior knowledge
        let tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
        let by = h2_burst(tcp, "a.test", 100).await;
        assert_eq!(
            (by.get("v1"), by.get("v2")),
            (Some(&80), Some(&20)),
            "{by:?}"
        );

        // h2 over TLS, chosen by ALPN
        let pem = std::fs::read(dir.path().join("a.crt")).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        use rustls_pki_types::pem::PemObject as _;
        for c in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
            roots.add(c.unwrap()).unwrap();
        }
        let mut cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg));
        let tcp = tokio::net::TcpStream::connect(tls).await.unwrap();
        let stream = connector
            .connect(
                rustls_pki_types::ServerName::try_from("a.test").unwrap(),
                tcp,
            )
            .await
            .unwrap();
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let by = h2_burst(stream, "a.test", 100).await;
        assert_eq!(
            (by.get("v1"), by.get("v2")),
            (Some(&80), Some(&20)),
            "{by:?}"
        );
    });
}

#[test]
fn backends_over_tls_are_verified_with_their_ca_and_server_name() {
    let dir = tempfile::tempdir().unwrap();
    let b = Backend::start("v1");
    // the "backend" speaking TLS is another proxy terminating TLS in front of v1
    let (_front, tls) = tls_proxy(dir.path(), b.addr);
    for protocol in ["https", "h2"] {
        let proxy = Proxy::start(&format!(
            "backends:
  - name: secure
    endpoints: [\"{tls}\"]
    protocol: {protocol}
    tls: {{ca_file: {d}/a.crt, server_name: a.test}}
  - name: wrong
    endpoints: [\"{tls}\"]
    protocol: {protocol}
    tls: {{ca_file: {d}/a.crt, server_name: c.test}}
routes:
  - {{name: good, hosts: [good.test], stable: secure}}
  - {{name: bad, hosts: [bad.test], stable: wrong}}
",
            d = dir.path().display()
        ));
        let client = sluice_tests::Client::new();
        let a =
            sluice_tests::world::block(client.get(proxy.addr, "/echo", &[("host", "good.test")]))
                .unwrap_or_else(|e| panic!("{protocol}: {e}\n{}", proxy.log()));
        assert_eq!(a.status, 200, "{protocol}: {}", a.text());
        let echo = a.json();
        assert_eq!(echo["name"], "v1");
        assert_eq!(echo["headers"]["x-forwarded-proto"][0], "https", "{echo}");
        // a name the certificate does not carry is refused by verification
        let a = sluice_tests::world::block(client.get(proxy.addr, "/", &[("host", "bad.test")]))
            .unwrap();
        assert_eq!(a.status, 502, "{protocol}: {}", a.text());
    }
}
