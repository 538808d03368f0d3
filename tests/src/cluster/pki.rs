//! The test control plane's keys and certificates: one CA, the API server's serving
//! certificate (for loopback and the in-cluster names), an admin client certificate (group
//! `system:masters`, for the cluster's own components and the tests' `kubectl`) and the key
//! that signs service-account tokens. Written as PEM files into the cluster's directory.

use std::path::{Path, PathBuf};

use anyhow::Result;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// Where each file of the PKI lies.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA's certificate, trusted for the API server and for client certificates.
    pub ca: PathBuf,
    /// The API server's serving certificate and key.
    pub serving_cert: PathBuf,
    /// The key of [`Pki::serving_cert`].
    pub serving_key: PathBuf,
    /// The admin client certificate (`system:masters`).
    pub admin_cert: PathBuf,
    /// The key of [`Pki::admin_cert`].
    pub admin_key: PathBuf,
    /// The service-account signing key (private) and its public half.
    pub sa_key: PathBuf,
    /// The public half of [`Pki::sa_key`].
    pub sa_pub: PathBuf,
}

fn named(cn: &str, org: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    if let Some(o) = org {
        dn.push(DnType::OrganizationName, o);
    }
    dn
}

/// Generates every key and certificate into `dir`.
pub fn generate(dir: &Path) -> Result<Pki> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name = named("sluice-test-cluster-ca", None);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let serving_key = KeyPair::generate()?;
    let mut serving = CertificateParams::new(
        [
            "127.0.0.1",
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            "10.96.0.1",
        ]
        .map(String::from)
        .to_vec(),
    )?;
    serving.distinguished_name = named("kube-apiserver", None);
    serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let serving_cert = serving.signed_by(&serving_key, &issuer)?;

    let admin_key = KeyPair::generate()?;
    let mut admin = CertificateParams::new(Vec::<String>::new())?;
    admin.distinguished_name = named("sluice-test-admin", Some("system:masters"));
    admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let admin_cert = admin.signed_by(&admin_key, &issuer)?;

    let sa_key = KeyPair::generate()?;

    let pki = Pki {
        ca: dir.join("ca.crt"),
        serving_cert: dir.join("apiserver.crt"),
        serving_key: dir.join("apiserver.key"),
        admin_cert: dir.join("admin.crt"),
        admin_key: dir.join("admin.key"),
        sa_key: dir.join("sa.key"),
        sa_pub: dir.join("sa.pub"),
    };
    std::fs::write(&pki.ca, ca_cert.pem())?;
    std::fs::write(&pki.serving_cert, serving_cert.pem())?;
    std::fs::write(&pki.serving_key, serving_key.serialize_pem())?;
    std::fs::write(&pki.admin_cert, admin_cert.pem())?;
    std::fs::write(&pki.admin_key, admin_key.serialize_pem())?;
    std::fs::write(&pki.sa_key, sa_key.serialize_pem())?;
    std::fs::write(&pki.sa_pub, sa_key.public_key_pem())?;
    Ok(pki)
}
