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
    /// A client certificate from the trusted CA whose validity ended in 2001.
    pub expired_cert: PathBuf,
    pub expired_key: PathBuf,
    /// The server key and chain as PKCS#12, password [`P12_PASSWORD`].
    pub server_p12: PathBuf,
    /// The CA certificate as a PKCS#12 trust store, password [`P12_PASSWORD`].
    pub ca_p12: PathBuf,
    /// An ensemble member's key and certificate (server and client use, localhost and
    /// 127.0.0.1), for TLS between peers.
    pub peer: PathBuf,
    /// The same from a CA the ensemble does not trust, with that CA as its trust store.
    pub other_peer: PathBuf,
    pub other_ca: PathBuf,
    /// A member's key and certificate from the trusted CA, but for another host only
    /// (`peer-a.test`): trusted, yet not for a `server.N` line naming 127.0.0.1.
    pub elsewhere_peer: PathBuf,
}

impl Pki {
    /// Server TLS settings with these PEM files (key store, CA as trust store).
    pub fn server_tls(
        &self,
        client_auth: zk_server::tls::ClientAuth,
    ) -> zk_server::tls::TlsSettings {
        use zk_server::tls::{Store, TlsSettings};
        TlsSettings {
            key_store: Some(Store {
                location: self.server.clone(),
                password: None,
                kind: Some("PEM".into()),
            }),
            trust_store: Some(Store {
                location: self.ca.clone(),
                password: None,
                kind: None,
            }),
            client_auth,
            handshake_timeout_ms: 1000,
            ..TlsSettings::default()
        }
    }
}

/// The password of the PKCS#12 stores (as in Java's default `changeit`).
pub const P12_PASSWORD: &str = "changeit";

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
    let (cert, key) = leaf_der(cn, org, purpose, issuer);
    (cert.pem(), key.serialize_pem())
}

fn leaf_der(
    cn: &str,
    org: &str,
    purpose: ExtendedKeyUsagePurpose,
    issuer: &(rcgen::Certificate, KeyPair),
) -> (rcgen::Certificate, KeyPair) {
    leaf_with(cn, org, vec![purpose], issuer)
}

fn leaf_with(
    cn: &str,
    org: &str,
    purposes: Vec<ExtendedKeyUsagePurpose>,
    issuer: &(rcgen::Certificate, KeyPair),
) -> (rcgen::Certificate, KeyPair) {
    leaf_for(cn, org, purposes, issuer, &["localhost"], true)
}

fn leaf_for(
    cn: &str,
    org: &str,
    purposes: Vec<ExtendedKeyUsagePurpose>,
    issuer: &(rcgen::Certificate, KeyPair),
    dns_names: &[&str],
    loopback_ip: bool,
) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().expect("a key");
    let mut p = CertificateParams::new(dns_names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .expect("params");
    if loopback_ip {
        p.subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
    }
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, org);
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.extended_key_usages = purposes;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let cert = p.signed_by(&key, &issuer.0, &issuer.1).expect("signed");
    (cert, key)
}

fn expired(issuer: &(rcgen::Certificate, KeyPair)) -> (String, String) {
    let key = KeyPair::generate().expect("a key");
    let mut p = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "expired");
    p.distinguished_name = dn;
    p.not_before = rcgen::date_time_ymd(2000, 1, 1);
    p.not_after = rcgen::date_time_ymd(2001, 1, 1);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = p.signed_by(&key, &issuer.0, &issuer.1).expect("signed");
    (cert.pem(), key.serialize_pem())
}

fn pkcs12(entry: p12_keystore::KeyStoreEntry) -> Vec<u8> {
    let mut ks = p12_keystore::KeyStore::new();
    ks.add_entry("zk", entry);
    ks.writer(P12_PASSWORD).write().expect("a PKCS12 store")
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
    let (server, server_kp) = leaf_der(
        "zkd",
        "zk-tests",
        ExtendedKeyUsagePurpose::ServerAuth,
        &root,
    );
    let (server_cert, server_key) = (server.pem(), server_kp.serialize_pem());
    let p12 = |der: &[u8]| p12_keystore::Certificate::from_der(der).expect("a certificate");
    let server_p12 = pkcs12(p12_keystore::KeyStoreEntry::PrivateKeyChain(
        p12_keystore::PrivateKeyChain::new(
            server_kp.serialize_der(),
            b"zkd",
            [p12(server.der()), p12(root.0.der())],
        ),
    ));
    let ca_p12 = pkcs12(p12_keystore::KeyStoreEntry::Certificate(p12(root.0.der())));
    let write_bytes = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).expect("written");
        p
    };
    let (client_cert, client_key) = leaf(
        "client1",
        "zk-tests",
        ExtendedKeyUsagePurpose::ClientAuth,
        &root,
    );
    let (expired_cert, expired_key) = expired(&root);
    let other = ca("another-ca");
    let (other_cert, other_key) = leaf(
        "intruder",
        "elsewhere",
        ExtendedKeyUsagePurpose::ClientAuth,
        &other,
    );
    let both = || {
        vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ]
    };
    let (peer, peer_kp) = leaf_with("zkd-peer", "zk-tests", both(), &root);
    let (other_peer, other_peer_kp) = leaf_with("zkd-peer", "elsewhere", both(), &other);
    let (elsewhere, elsewhere_kp) = leaf_for(
        "zkd-peer-a",
        "zk-tests",
        both(),
        &root,
        &["peer-a.test"],
        false,
    );
    Pki {
        elsewhere_peer: write(
            "elsewhere-peer.pem",
            &format!("{}{}", elsewhere_kp.serialize_pem(), elsewhere.pem()),
        ),
        peer: write(
            "peer.pem",
            &format!("{}{}", peer_kp.serialize_pem(), peer.pem()),
        ),
        other_peer: write(
            "other-peer.pem",
            &format!("{}{}", other_peer_kp.serialize_pem(), other_peer.pem()),
        ),
        other_ca: write("other-ca.pem", &other.0.pem()),
        ca: write("ca.pem", &root.0.pem()),
        server: write("server.pem", &format!("{server_key}{server_cert}")),
        client_cert: write("client.crt.pem", &client_cert),
        client_key: write("client.key.pem", &client_key),
        client_pem: write("client.pem", &format!("{client_key}{client_cert}")),
        client_dn: "CN=client1,O=zk-tests".into(),
        other_cert: write("other.crt.pem", &other_cert),
        other_key: write("other.key.pem", &other_key),
        expired_cert: write("expired.crt.pem", &expired_cert),
        expired_key: write("expired.key.pem", &expired_key),
        server_p12: write_bytes("server.p12", &server_p12),
        ca_p12: write_bytes("ca.p12", &ca_p12),
    }
}
