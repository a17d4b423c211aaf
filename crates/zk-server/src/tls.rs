//! TLS on the client port, configured the way ZooKeeper users already do it: `ssl.keyStore.*`
//! and `ssl.trustStore.*` (PEM or PKCS#12), `ssl.clientAuth`, `ssl.enabledProtocols`,
//! `ssl.ciphersuites`; a client certificate authenticates its session as scheme `x509` with
//! the certificate's subject DN (RFC 2253, as Java's `X500Principal.getName()` prints it).
//!
//! Changed key or trust store files are picked up without a restart: new connections use
//! the new material, open ones keep theirs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    ClientConfig, RootCertStore, ServerConfig, SupportedCipherSuite, SupportedProtocolVersion,
};

/// The format of a key or trust store file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreType {
    /// Key (PKCS#8, PKCS#1 or SEC1) and certificates in one PEM file, as ZooKeeper's PEM type.
    Pem,
    Pkcs12,
    /// Java KeyStore: refused with instructions to convert it.
    Jks,
}

impl StoreType {
    /// `ssl.*.type`, or guessed from the file name as ZooKeeper does.
    pub fn from_config(kind: Option<&str>, path: &Path) -> Result<StoreType, String> {
        let kind = match kind {
            Some(k) => k.to_ascii_uppercase(),
            None => {
                let name = path.to_string_lossy().to_ascii_lowercase();
                if name.ends_with(".pem") || name.ends_with(".crt") || name.ends_with(".key") {
                    "PEM".into()
                } else if name.ends_with(".p12") || name.ends_with(".pfx") {
                    "PKCS12".into()
                } else if name.ends_with(".jks") {
                    "JKS".into()
                } else {
                    return Err(format!(
                        "cannot tell the store type of {}: set its ssl.*.type to PEM or PKCS12",
                        path.display()
                    ));
                }
            }
        };
        match kind.as_str() {
            "PEM" => Ok(StoreType::Pem),
            "PKCS12" => Ok(StoreType::Pkcs12),
            "JKS" => Ok(StoreType::Jks),
            other => Err(format!(
                "store type {other} is not supported (PEM or PKCS12)"
            )),
        }
    }
}

/// One key or trust store.
#[derive(Clone, PartialEq, Eq)]
pub struct Store {
    pub location: PathBuf,
    /// Never logged.
    pub password: Option<String>,
    pub kind: Option<String>,
}

impl std::fmt::Debug for Store {
    /// Never shows the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("location", &self.location)
            .field("password", &self.password.as_ref().map(|_| "********"))
            .field("kind", &self.kind)
            .finish()
    }
}

/// `ssl.clientAuth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// ZooKeeper's default: a client must present a certificate the trust store vouches for.
    #[default]
    Need,
    /// A certificate is checked when presented, but not required.
    Want,
    None,
}

impl ClientAuth {
    pub fn parse(v: &str) -> Option<ClientAuth> {
        match v.trim().to_ascii_lowercase().as_str() {
            "need" => Some(ClientAuth::Need),
            "want" => Some(ClientAuth::Want),
            "none" => Some(ClientAuth::None),
            _ => None,
        }
    }
}

/// The TLS settings of the client port.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsSettings {
    pub key_store: Option<Store>,
    pub trust_store: Option<Store>,
    pub client_auth: ClientAuth,
    /// `ssl.protocol`: the preferred version.
    pub protocol: Option<String>,
    /// `ssl.enabledProtocols`.
    pub enabled_protocols: Vec<String>,
    /// `ssl.ciphersuites`, Java names.
    pub ciphersuites: Vec<String>,
    /// `X509AuthenticationProvider.superUser`: this subject DN is a superuser.
    pub super_user: Option<String>,
    /// `ssl.handshakeDetectionTimeoutMillis`: a handshake that does not finish in time is
    /// dropped.
    pub handshake_timeout_ms: u64,
}

/// A TLS setting that cannot be used, with the key to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct TlsError {
    pub key: String,
    pub problem: String,
}

fn err(key: &str, problem: impl Into<String>) -> TlsError {
    TlsError {
        key: key.to_string(),
        problem: problem.into(),
    }
}

/// What a store file holds.
struct Material {
    certs: Vec<CertificateDer<'static>>,
    key: Option<PrivateKeyDer<'static>>,
}

fn load_store(store: &Store, key_prefix: &str) -> Result<Material, TlsError> {
    let loc_key = format!("{key_prefix}.location");
    let kind = StoreType::from_config(store.kind.as_deref(), &store.location)
        .map_err(|p| err(&format!("{key_prefix}.type"), p))?;
    let bytes = std::fs::read(&store.location).map_err(|e| {
        err(
            &loc_key,
            format!("cannot read {}: {e}", store.location.display()),
        )
    })?;
    match kind {
        StoreType::Jks => Err(err(
            &format!("{key_prefix}.type"),
            format!(
                "{} is a Java KeyStore (JKS), which only the JVM reads; convert it once with \
                 `keytool -importkeystore -srckeystore {0} -destkeystore {0}.p12 -deststoretype PKCS12` \
                 and point {loc_key} at the .p12",
                store.location.display()
            ),
        )),
        StoreType::Pem => {
            let mut certs = Vec::new();
            let mut key = None;
            let mut reader = std::io::BufReader::new(bytes.as_slice());
            for item in rustls_pemfile::read_all(&mut reader) {
                match item {
                    Ok(rustls_pemfile::Item::X509Certificate(c)) => certs.push(c),
                    Ok(rustls_pemfile::Item::Pkcs8Key(k)) => key = key.or(Some(k.into())),
                    Ok(rustls_pemfile::Item::Pkcs1Key(k)) => key = key.or(Some(k.into())),
                    Ok(rustls_pemfile::Item::Sec1Key(k)) => key = key.or(Some(k.into())),
                    Ok(_) => {}
                    Err(e) => {
                        return Err(err(
                            &loc_key,
                            format!("{} is not valid PEM: {e}", store.location.display()),
                        ))
                    }
                }
            }
            if key.is_none() && String::from_utf8_lossy(&bytes).contains("ENCRYPTED PRIVATE KEY") {
                return Err(err(
                    &loc_key,
                    format!(
                        "{}: encrypted PEM keys are not supported yet; store the key unencrypted \
                         (file permissions protect it) or use PKCS12",
                        store.location.display()
                    ),
                ));
            }
            Ok(Material { certs, key })
        }
        StoreType::Pkcs12 => {
            let password = store.password.as_deref().unwrap_or("");
            let ks = p12_keystore::KeyStore::from_pkcs12(&bytes, password).map_err(|e| {
                err(
                    &format!("{key_prefix}.password"),
                    format!(
                        "cannot open {} (wrong password or not PKCS12): {e}",
                        store.location.display()
                    ),
                )
            })?;
            let mut certs = Vec::new();
            let mut key = None;
            for (_, entry) in ks.entries() {
                match entry {
                    p12_keystore::KeyStoreEntry::PrivateKeyChain(chain) => {
                        if key.is_none() {
                            key = Some(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                                chain.key().to_vec(),
                            )));
                            certs.extend(
                                chain
                                    .chain()
                                    .iter()
                                    .map(|c| CertificateDer::from(c.as_der().to_vec())),
                            );
                        }
                    }
                    p12_keystore::KeyStoreEntry::Certificate(c) => {
                        certs.push(CertificateDer::from(c.as_der().to_vec()))
                    }
                }
            }
            Ok(Material { certs, key })
        }
    }
}

fn versions(s: &TlsSettings) -> Result<Vec<&'static SupportedProtocolVersion>, TlsError> {
    let (key, names): (&str, Vec<String>) = if !s.enabled_protocols.is_empty() {
        ("ssl.enabledProtocols", s.enabled_protocols.clone())
    } else if let Some(p) = &s.protocol {
        // ZooKeeper: TLSv1.3 also enables TLSv1.2; any other protocol stands alone.
        if p == "TLSv1.3" {
            ("ssl.protocol", vec!["TLSv1.3".into(), "TLSv1.2".into()])
        } else {
            ("ssl.protocol", vec![p.clone()])
        }
    } else {
        ("ssl.protocol", vec!["TLSv1.3".into(), "TLSv1.2".into()])
    };
    let mut out = Vec::new();
    for n in names {
        match n.trim() {
            "TLSv1.3" => out.push(&rustls::version::TLS13),
            "TLSv1.2" => out.push(&rustls::version::TLS12),
            other => {
                return Err(err(
                    key,
                    format!("{other} is not supported (TLSv1.2 and TLSv1.3 are)"),
                ))
            }
        }
    }
    Ok(out)
}

fn cipher_suites(s: &TlsSettings) -> Result<Vec<SupportedCipherSuite>, TlsError> {
    let all = rustls::crypto::ring::ALL_CIPHER_SUITES;
    if s.ciphersuites.is_empty() {
        return Ok(all.to_vec());
    }
    let mut out = Vec::new();
    for name in &s.ciphersuites {
        let name = name.trim();
        // Java names TLS 1.3 suites without the "13" rustls puts in.
        let wanted = match name.strip_prefix("TLS_") {
            Some(rest) if rest.starts_with("AES_") || rest.starts_with("CHACHA20_") => {
                format!("TLS13_{rest}")
            }
            _ => name.to_string(),
        };
        match all.iter().find(|cs| format!("{:?}", cs.suite()) == wanted) {
            Some(cs) => out.push(*cs),
            None => {
                return Err(err(
                    "ssl.ciphersuites",
                    format!(
                        "{name} has no equivalent here; supported: {}",
                        suite_names()
                    ),
                ))
            }
        }
    }
    Ok(out)
}

fn suite_names() -> String {
    rustls::crypto::ring::ALL_CIPHER_SUITES
        .iter()
        .map(|cs| format!("{:?}", cs.suite()).replace("TLS13_", "TLS_"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Builds the rustls configuration from the stores; every failure names its key.
pub fn server_config(s: &TlsSettings) -> Result<Arc<ServerConfig>, TlsError> {
    let Some(ks) = &s.key_store else {
        return Err(err(
            "ssl.keyStore.location",
            "is required to serve TLS (secureClientPort)",
        ));
    };
    let keys = load_store(ks, "ssl.keyStore")?;
    let Some(key) = keys.key else {
        return Err(err(
            "ssl.keyStore.location",
            format!("{} holds no private key", ks.location.display()),
        ));
    };
    if keys.certs.is_empty() {
        return Err(err(
            "ssl.keyStore.location",
            format!("{} holds no certificate", ks.location.display()),
        ));
    }
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = cipher_suites(s)?;
    let provider = Arc::new(provider);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions(s)?)
        .map_err(|e| err("ssl.enabledProtocols", e.to_string()))?;
    let builder = match s.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        auth => {
            let Some(ts) = &s.trust_store else {
                return Err(err(
                    "ssl.trustStore.location",
                    "is required to check client certificates (ssl.clientAuth is need or want; \
                     set ssl.clientAuth=none to accept clients without one)",
                ));
            };
            let trusted = load_store(ts, "ssl.trustStore")?;
            let mut roots = RootCertStore::empty();
            for c in trusted.certs {
                roots
                    .add(c)
                    .map_err(|e| err("ssl.trustStore.location", e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(err(
                    "ssl.trustStore.location",
                    format!("{} holds no certificate", ts.location.display()),
                ));
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let verifier = if auth == ClientAuth::Want {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| err("ssl.trustStore.location", e.to_string()))?,
            )
        }
    };
    let config = builder
        .with_single_cert(keys.certs, key)
        .map_err(|e| err("ssl.keyStore.location", format!("key and certificate: {e}")))?;
    Ok(Arc::new(config))
}

/// TLS between ensemble members (`sslQuorum`, `ssl.quorum.*`): each side presents its key
/// store's certificate and requires the other's, signed by the trust store; the dialler
/// checks the certificate against the host of the member's `server.N` line.
pub fn peer_configs(s: &TlsSettings) -> Result<(Arc<ServerConfig>, Arc<ClientConfig>), TlsError> {
    let server = server_config(&TlsSettings {
        client_auth: ClientAuth::Need,
        ..s.clone()
    })?;
    let (Some(ks), Some(ts)) = (&s.key_store, &s.trust_store) else {
        return Err(err(
            "ssl.quorum.keyStore.location",
            "sslQuorum needs ssl.quorum.keyStore.location and ssl.quorum.trustStore.location",
        ));
    };
    let keys = load_store(ks, "ssl.quorum.keyStore")?;
    let Some(key) = keys.key else {
        return Err(err(
            "ssl.quorum.keyStore.location",
            format!("{} holds no private key", ks.location.display()),
        ));
    };
    let mut roots = RootCertStore::empty();
    for c in load_store(ts, "ssl.quorum.trustStore")?.certs {
        roots
            .add(c)
            .map_err(|e| err("ssl.quorum.trustStore.location", e.to_string()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions(s)?)
        .map_err(|e| err("ssl.quorum.enabledProtocols", e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(keys.certs, key)
        .map_err(|e| {
            err(
                "ssl.quorum.keyStore.location",
                format!("key and certificate: {e}"),
            )
        })?;
    Ok((server, Arc::new(client)))
}

/// The acceptor in use, swapped when the store files change.
#[derive(Clone)]
pub struct Acceptor {
    current: Arc<RwLock<tokio_rustls::TlsAcceptor>>,
    settings: Arc<TlsSettings>,
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptor").finish_non_exhaustive()
    }
}

impl Acceptor {
    /// Loads the stores; fails at startup with the key to fix.
    pub fn new(settings: TlsSettings) -> Result<Acceptor, TlsError> {
        let config = server_config(&settings)?;
        Ok(Acceptor {
            current: Arc::new(RwLock::new(tokio_rustls::TlsAcceptor::from(config))),
            settings: Arc::new(settings),
        })
    }

    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.settings.handshake_timeout_ms.max(1))
    }

    /// The identities a verified client certificate gives its session: `x509:<DN>`, and
    /// `super:<DN>` when it is the configured superuser.
    pub fn identities(&self, conn: &rustls::ServerConnection) -> Vec<zk_proto::Id> {
        let Some(dn) = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| subject_dn(c))
        else {
            return Vec::new();
        };
        let mut ids = vec![zk_proto::Id {
            scheme: "x509".into(),
            id: dn.clone(),
        }];
        if self.settings.super_user.as_deref() == Some(dn.as_str()) {
            ids.push(zk_proto::Id {
                scheme: "super".into(),
                id: dn,
            });
        }
        ids
    }

    /// Watches the store files and rebuilds the configuration when one changes.
    pub fn spawn_reloader(&self, every: Duration) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut seen = this.mtimes();
            loop {
                tokio::time::sleep(every).await;
                let now = this.mtimes();
                if now == seen {
                    continue;
                }
                seen = now;
                match server_config(&this.settings) {
                    Ok(config) => {
                        if let Ok(mut cur) = this.current.write() {
                            *cur = tokio_rustls::TlsAcceptor::from(config);
                        }
                        tracing::info!("reloaded TLS key and trust stores");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "TLS stores changed but cannot be used; keeping the previous ones")
                    }
                }
            }
        });
    }

    fn mtimes(&self) -> Vec<Option<SystemTime>> {
        [&self.settings.key_store, &self.settings.trust_store]
            .iter()
            .map(|s| {
                s.as_ref()
                    .and_then(|s| std::fs::metadata(&s.location).ok())
                    .and_then(|m| m.modified().ok())
            })
            .collect()
    }
}

/// A certificate's subject as Java's `X500Principal.getName()` (RFC 2253) prints it:
/// most specific RDN first, `,` between RDNs, `+` inside one, special characters escaped.
pub fn subject_dn(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let rdns: Vec<String> = parsed
        .subject()
        .iter()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| {
                    let oid = atv.attr_type().to_id_string();
                    let name = match oid.as_str() {
                        "2.5.4.3" => "CN",
                        "2.5.4.6" => "C",
                        "2.5.4.7" => "L",
                        "2.5.4.8" => "ST",
                        "2.5.4.10" => "O",
                        "2.5.4.11" => "OU",
                        "2.5.4.9" => "STREET",
                        "0.9.2342.19200300.100.1.25" => "DC",
                        "0.9.2342.19200300.100.1.1" => "UID",
                        _ => "",
                    };
                    match (name, atv.as_str()) {
                        ("", _) | (_, Err(_)) => {
                            let any = atv.attr_value();
                            let hex: String = der_of(any.tag().0, any.data)
                                .iter()
                                .map(|b| format!("{b:02x}"))
                                .collect();
                            format!("{oid}=#{hex}")
                        }
                        (name, Ok(v)) => format!("{name}={}", escape_rdn_value(v)),
                    }
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    Some(rdns.into_iter().rev().collect::<Vec<_>>().join(","))
}

/// DER encoding of a universal primitive value (Java prints unknown attributes this way).
fn der_of(tag: u32, data: &[u8]) -> Vec<u8> {
    let mut out = vec![u8::try_from(tag).unwrap_or(4)];
    let len = data.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(data);
    out
}

fn escape_rdn_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let n = v.chars().count();
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i + 1 == n && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_in_rfc2253_order() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "US");
        dn.push(rcgen::DnType::OrganizationName, "Acme, Inc");
        dn.push(rcgen::DnType::CommonName, "client1");
        params.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            subject_dn(cert.der()).as_deref(),
            Some("CN=client1,O=Acme\\, Inc,C=US")
        );
    }

    #[test]
    fn store_types() {
        assert_eq!(
            StoreType::from_config(None, Path::new("a/b.pem")),
            Ok(StoreType::Pem)
        );
        assert_eq!(
            StoreType::from_config(Some("pkcs12"), Path::new("x")),
            Ok(StoreType::Pkcs12)
        );
        assert!(StoreType::from_config(None, Path::new("x.bin")).is_err());
        let jks = Store {
            location: PathBuf::from("/nonexistent.jks"),
            password: None,
            kind: None,
        };
        let settings = TlsSettings {
            key_store: Some(jks),
            ..TlsSettings::default()
        };
        // Missing file first: the message names the key and the file.
        let e = server_config(&settings).unwrap_err();
        assert_eq!(e.key, "ssl.keyStore.location");
    }

    #[test]
    fn protocols_and_suites_name_their_key() {
        let s = TlsSettings {
            enabled_protocols: vec!["TLSv1.1".into()],
            ..TlsSettings::default()
        };
        assert_eq!(versions(&s).unwrap_err().key, "ssl.enabledProtocols");
        let s = TlsSettings {
            ciphersuites: vec!["TLS_AES_128_GCM_SHA256".into(), "TLS_RSA_WITH_RC4".into()],
            ..TlsSettings::default()
        };
        assert_eq!(cipher_suites(&s).unwrap_err().key, "ssl.ciphersuites");
        let s = TlsSettings {
            ciphersuites: vec![
                "TLS_AES_128_GCM_SHA256".into(),
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into(),
            ],
            ..TlsSettings::default()
        };
        assert_eq!(cipher_suites(&s).unwrap().len(), 2);
    }
}
