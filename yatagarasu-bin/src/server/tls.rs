//! TLS termination with rustls (TLS 1.2 and 1.3, the `ring` provider): a certificate chain and
//! key from PEM files, ALPN offering `h2` then `http/1.1`, and [`ServerTls::reload`] to swap in
//! re-read files while serving (connections already open keep the certificate they began with).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// A certificate (chain) and private key that a listener serves TLS with. Cheap to clone: clones
/// share the certificate, so a [`reload`](Self::reload) through one reaches every listener.
#[derive(Clone)]
pub struct ServerTls {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: Arc<CurrentCert>,
    config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

/// Why a certificate or key could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError {
    /// `cert_path` or `key_path`: which file the problem is with.
    pub file: &'static str,
    /// The problem.
    pub message: String,
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file, self.message)
    }
}

impl std::error::Error for TlsError {}

/// The certificate handed to each new handshake.
#[derive(Debug)]
struct CurrentCert(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let guard = self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Some(Arc::clone(&guard))
    }
}

impl ServerTls {
    /// Read a PEM certificate chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or SEC1),
    /// and check that they belong together.
    pub fn from_pem_files(
        cert_path: impl Into<PathBuf>,
        key_path: impl Into<PathBuf>,
    ) -> Result<Self, TlsError> {
        let (cert_path, key_path) = (cert_path.into(), key_path.into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = load(&cert_path, &key_path, &provider)?;
        let current = Arc::new(CurrentCert(RwLock::new(key)));
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError {
                file: "cert_path",
                message: e.to_string(),
            })?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&current) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            cert_path,
            key_path,
            current,
            config: Arc::new(config),
        })
    }

    /// Read the files again and serve new handshakes with what they hold now (a renewed
    /// certificate). On error the certificate in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let provider = self.config.crypto_provider();
        let key = load(&self.cert_path, &self.key_path, provider)?;
        *self
            .current
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = key;
        Ok(())
    }

    /// The certificate chain served now, DER-encoded, leaf first.
    pub fn certificate_chain(&self) -> Vec<Vec<u8>> {
        let guard = self
            .current
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.cert.iter().map(|c| c.as_ref().to_vec()).collect()
    }

    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(Arc::clone(&self.config))
    }
}

fn load(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let cert_err = |message: String| TlsError {
        file: "cert_path",
        message,
    };
    let key_err = |message: String| TlsError {
        file: "key_path",
        message,
    };
    let certs = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| cert_err(format!("cannot read `{}`: {e}", cert_path.display())))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(format!("`{}` is not PEM: {e}", cert_path.display())))?;
    if certs.is_empty() {
        return Err(cert_err(format!(
            "`{}` holds no CERTIFICATE block",
            cert_path.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
        key_err(format!(
            "`{}` holds no usable private key: {e}",
            key_path.display()
        ))
    })?;
    let certified = CertifiedKey::from_der(certs, key, provider).map_err(|e| {
        key_err(format!(
            "`{}` does not go with the certificate in `{}`: {e}",
            key_path.display(),
            cert_path.display()
        ))
    })?;
    Ok(Arc::new(certified))
}
