//! The HTTP connection pool the client and the credential providers send requests through.
//!
//! The HTTP stack is this crate's own business: [`HttpClient`] is built from [`HttpOptions`]
//! (timeouts, pool, extra CA roots, proxy), so an application on another version of the
//! underlying HTTP library can still configure and share it, and this crate can change that
//! library without breaking anyone.

use std::fmt;
use std::time::Duration;

use yatagarasu_core::{Error, ErrorKind, Result};

/// Settings of an [`HttpClient`]. `HttpOptions::default()` suits S3; change fields or use the
/// setters.
///
/// ```
/// use std::time::Duration;
/// use yatagarasu_s3::{HttpClient, HttpOptions};
///
/// let http = HttpClient::new(
///     &HttpOptions::default()
///         .with_connect_timeout(Duration::from_secs(2))
///         .with_max_idle_per_host(64),
/// )?;
/// # let _ = http;
/// # Ok::<(), yatagarasu_s3::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpOptions {
    /// Establishing a TCP (and TLS) connection. Default 5 s.
    pub connect_timeout: Duration,
    /// Idle keep-alive connections kept per origin host. Default: unbounded (the pool keeps
    /// what concurrency opened, and closes connections idle for [`Self::pool_idle_timeout`]).
    pub max_idle_per_host: Option<usize>,
    /// How long an idle keep-alive connection is kept. Default 60 s.
    pub pool_idle_timeout: Duration,
    /// Extra trusted root certificates (PEM, one or more per entry) for HTTPS origins signed by a
    /// private CA, on top of the built-in web roots.
    pub extra_root_certificates_pem: Vec<Vec<u8>>,
    /// Send every request through this HTTP(S) proxy (`http://host:port`). Default: none set here,
    /// so the `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` variables apply.
    pub proxy: Option<String>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            max_idle_per_host: None,
            pool_idle_timeout: Duration::from_secs(60),
            extra_root_certificates_pem: Vec::new(),
            proxy: None,
        }
    }
}

impl HttpOptions {
    /// Set [`Self::connect_timeout`].
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Set [`Self::max_idle_per_host`].
    #[must_use]
    pub fn with_max_idle_per_host(mut self, max_idle: usize) -> Self {
        self.max_idle_per_host = Some(max_idle);
        self
    }

    /// Set [`Self::pool_idle_timeout`].
    #[must_use]
    pub fn with_pool_idle_timeout(mut self, timeout: Duration) -> Self {
        self.pool_idle_timeout = timeout;
        self
    }

    /// Add a PEM bundle to [`Self::extra_root_certificates_pem`].
    #[must_use]
    pub fn with_root_certificates_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.extra_root_certificates_pem.push(pem.into());
        self
    }

    /// Set [`Self::proxy`].
    #[must_use]
    pub fn with_proxy(mut self, url: impl Into<String>) -> Self {
        self.proxy = Some(url.into());
        self
    }
}

/// A pool of HTTP connections suited to S3: no automatic decompression (objects pass through as
/// stored), no redirects (an S3 redirect is an error to report), keep-alive, `TCP_NODELAY`.
/// Cheap to clone; clones share the pool. Pass one to several
/// [`S3ClientBuilder::http_client`](crate::S3ClientBuilder::http_client)s to share connections.
#[derive(Clone)]
pub struct HttpClient {
    pub(crate) inner: reqwest::Client,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient").finish_non_exhaustive()
    }
}

impl HttpClient {
    /// Build a client. Fails with [`ErrorKind::Config`] on a certificate that is not PEM or a
    /// proxy that is not a URL.
    pub fn new(options: &HttpOptions) -> Result<Self> {
        let config = |m: String| Error::new(ErrorKind::Config, m);
        let mut builder = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true)
            .pool_idle_timeout(options.pool_idle_timeout);
        if let Some(max_idle) = options.max_idle_per_host {
            builder = builder.pool_max_idle_per_host(max_idle);
        }
        for pem in &options.extra_root_certificates_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| config(format!("extra root certificate is not PEM: {e}")))?;
            if certs.is_empty() {
                return Err(config(
                    "extra root certificate holds no PEM certificate".to_owned(),
                ));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let Some(url) = &options.proxy {
            let proxy = reqwest::Proxy::all(url)
                .map_err(|e| config(format!("proxy `{url}` is not a URL: {e}")))?;
            builder = builder.proxy(proxy);
        }
        let inner = builder
            .build()
            .map_err(|e| config(format!("cannot build HTTP client: {e}")))?;
        Ok(Self { inner })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_options_are_config_errors_naming_the_problem() {
        let err = HttpClient::new(&HttpOptions::default().with_root_certificates_pem("not pem"))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("PEM"), "{err}");
        let err = HttpClient::new(&HttpOptions::default().with_proxy("::")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("proxy `::`"), "{err}");
        HttpClient::new(&HttpOptions::default().with_max_idle_per_host(4)).expect("defaults build");
    }
}
