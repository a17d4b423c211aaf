//! TLS to the servers, configured like the Java client's `zookeeper.ssl.*` properties: a
//! trust store (PEM CA certificates) and, for servers that ask for one, a key store (PEM key
//! and certificate chain in one file, or two files).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;

use crate::error::{Error, Result};

/// Where the client's TLS material lives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM file with the CA certificates that sign the servers' certificates.
    pub trust_store: Option<PathBuf>,
    /// PEM file with this client's key and certificate chain (ZooKeeper's PEM key store).
    pub key_store: Option<PathBuf>,
    /// Check that the server's certificate names the host connected to (default on).
    pub hostname_verification: bool,
}

/// A ready-to-use TLS client configuration.
#[derive(Clone)]
pub(crate) struct ClientTls {
    config: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls").finish_non_exhaustive()
    }
}

fn pem_items(path: &Path) -> Result<Vec<rustls_pemfile::Item>> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::BadArguments(format!("cannot read {}: {e}", path.display())))?;
    rustls_pemfile::read_all(&mut bytes.as_slice())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::BadArguments(format!("{} is not PEM: {e}", path.display())))
}

impl ClientTls {
    pub(crate) fn new(opts: &TlsOptions) -> Result<ClientTls> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        if let Some(ts) = &opts.trust_store {
            for item in pem_items(ts)? {
                if let rustls_pemfile::Item::X509Certificate(c) = item {
                    roots
                        .add(c)
                        .map_err(|e| Error::BadArguments(format!("{}: {e}", ts.display())))?;
                }
            }
        }
        if roots.is_empty() {
            return Err(Error::BadArguments(
                "TLS needs a trust store (zookeeper.ssl.trustStore.location) with the CA of the servers"
                    .into(),
            ));
        }
        let roots = Arc::new(roots);
        let webpki =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| Error::BadArguments(e.to_string()))?;
        let verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> =
            if opts.hostname_verification {
                webpki
            } else {
                // Java's zookeeper.ssl.hostnameVerification=false: the chain is still
                // checked, only the name is not.
                Arc::new(NoHostname(webpki))
            };
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::BadArguments(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match &opts.key_store {
            Some(ks) => {
                let mut certs: Vec<CertificateDer<'static>> = Vec::new();
                let mut key: Option<PrivateKeyDer<'static>> = None;
                for item in pem_items(ks)? {
                    match item {
                        rustls_pemfile::Item::X509Certificate(c) => certs.push(c),
                        rustls_pemfile::Item::Pkcs8Key(k) => key = key.or(Some(k.into())),
                        rustls_pemfile::Item::Pkcs1Key(k) => key = key.or(Some(k.into())),
                        rustls_pemfile::Item::Sec1Key(k) => key = key.or(Some(k.into())),
                        _ => {}
                    }
                }
                let key = key.ok_or_else(|| {
                    Error::BadArguments(format!("{} holds no private key", ks.display()))
                })?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| Error::BadArguments(format!("{}: {e}", ks.display())))?
            }
            None => builder.with_no_client_auth(),
        };
        Ok(ClientTls {
            config: Arc::new(config),
        })
    }

    /// Runs the TLS handshake over `tcp` to `host` (`name:port`).
    pub(crate) async fn connect(
        &self,
        host: &str,
        tcp: TcpStream,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let name = host
            .rsplit_once(':')
            .map_or(host, |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let server_name = ServerName::try_from(name.to_string())
            .map_err(|e| std::io::Error::other(format!("bad server name {name}: {e}")))?;
        tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(server_name, tcp)
            .await
    }
}

/// Chain verification without the name check.
#[derive(Debug)]
struct NoHostname(Arc<rustls::client::WebPkiServerVerifier>);

impl rustls::client::danger::ServerCertVerifier for NoHostname {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
