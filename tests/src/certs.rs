//! Test certificates, made fresh by each test (no private key is ever committed): a CA, a
//! server certificate for 127.0.0.1 / localhost, a client certificate it signed, and a client
//! certificate from another CA.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

/// The files written, all PEM.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA certificate: the trust store of both sides.
    pub ca: PathBuf,
    /// Server key and certificate in one file (ZooKeeper's PEM key store layout).
    pub server: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// Client key and certificate in one file.
    pub client_pem: PathBuf,
    /// The client certificate's subject as ZooKeeper names it (RFC 2253).
    pub client_dn: String,
    /// A client certificate signed by a CA the server does not trust.
    pub other_cert: PathBuf,
    pub other_key: PathBuf,
}

fn ca(name: &str) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().expect("a key");
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    (p.self_signed(&key).expect("a CA"), key)
}

fn leaf(
    cn: &str,
    org: &str,
    purpose: ExtendedKeyUsagePurpose,
    issuer: &(rcgen::Certificate, KeyPair),
) -> (String, String) {
    let key = KeyPair::generate().expect("a key");
    let mut p = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    p.subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, org);
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.extended_key_usages = vec![purpose];
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let cert = p.signed_by(&key, &issuer.0, &issuer.1).expect("signed");
    (cert.pem(), key.serialize_pem())
}

/// Writes a fresh PKI under `dir`.
pub fn generate(dir: &Path) -> Pki {
    std::fs::create_dir_all(dir).expect("a directory");
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("written");
        p
    };
    let root = ca("zk-test-ca");
    let (server_cert, server_key) = leaf(
        "zkd",
        "zk-tests",
        ExtendedKeyUsagePurpose::ServerAuth,
        &root,
    );
    let (client_cert, client_key) = leaf(
        "client1",
        "zk-tests",
        ExtendedKeyUsagePurpose::ClientAuth,
        &root,
    );
    let other = ca("another-ca");
    let (other_cert, other_key) = leaf(
        "intruder",
        "elsewhere",
        ExtendedKeyUsagePurpose::ClientAuth,
        &other,
    );
    Pki {
        ca: write("ca.pem", &root.0.pem()),
        server: write("server.pem", &format!("{server_key}{server_cert}")),
        client_cert: write("client.crt.pem", &client_cert),
        client_key: write("client.key.pem", &client_key),
        client_pem: write("client.pem", &format!("{client_key}{client_cert}")),
        client_dn: "CN=client1,O=zk-tests".into(),
        other_cert: write("other.crt.pem", &other_cert),
        other_key: write("other.key.pem", &other_key),
    }
}
