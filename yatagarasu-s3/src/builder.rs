//! Building an [`S3Client`]: endpoint, addressing, credentials, HTTP client, timeouts, retries.

use std::sync::Arc;

use url::Url;
use yatagarasu_core::{Error, ErrorKind, Result};

use crate::client::{Inner, S3Client};
use crate::config::{AddressingStyle, CredentialsSource, Timeouts};
use crate::credentials::{CachingProvider, ChainProvider, Credentials, Env, StaticProvider};
use crate::http::{HttpClient, HttpOptions};
use crate::retry::RetryPolicy;
use crate::sigv4::{EMPTY_PAYLOAD_SHA256, Signer, UNSIGNED_PAYLOAD, uri_encode};

impl S3Client {
    /// Start building a client for `bucket`.
    pub fn builder(bucket: impl Into<String>) -> S3ClientBuilder {
        S3ClientBuilder::new(bucket)
    }
}

/// Builds an [`S3Client`] for one bucket.
#[derive(Debug, Clone)]
pub struct S3ClientBuilder {
    bucket: String,
    region: Option<String>,
    endpoint: Option<String>,
    addressing: AddressingStyle,
    credentials: CredentialsSource,
    http: Option<HttpClient>,
    timeouts: Timeouts,
    retry: RetryPolicy,
    unsigned_payload: bool,
    env: Env,
}

impl S3ClientBuilder {
    /// Start building a client for `bucket`.
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            region: None,
            endpoint: None,
            addressing: AddressingStyle::Auto,
            credentials: CredentialsSource::DefaultChain,
            http: None,
            timeouts: Timeouts::default(),
            retry: RetryPolicy::default(),
            unsigned_payload: false,
            env: Env::process(),
        }
    }

    /// The region (default: `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// A custom endpoint, e.g. `http://127.0.0.1:9000` for MinIO. Without one, AWS S3 is used.
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Path-style or virtual-hosted addressing (default: [`AddressingStyle::Auto`]).
    pub fn addressing_style(mut self, style: AddressingStyle) -> Self {
        self.addressing = style;
        self
    }

    /// Fixed credentials.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = CredentialsSource::Static(credentials);
        self
    }

    /// Any credentials source (the default is the AWS default chain).
    pub fn credentials_source(mut self, source: CredentialsSource) -> Self {
        self.credentials = source;
        self
    }

    /// Send unsigned requests (public buckets).
    pub fn anonymous(mut self) -> Self {
        self.credentials = CredentialsSource::Anonymous;
        self
    }

    /// Share an HTTP client (and its connection pool) between several S3 clients, or set its
    /// options ([`HttpOptions`]: pool, CA roots, proxy). Its own connect timeout applies instead of
    /// [`Timeouts::connect`].
    pub fn http_client(mut self, client: HttpClient) -> Self {
        self.http = Some(client);
        self
    }

    /// Time limits.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Retry and resume policy.
    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sign `UNSIGNED-PAYLOAD` instead of the empty-body hash (both are valid for GET and HEAD).
    pub fn unsigned_payload(mut self, yes: bool) -> Self {
        self.unsigned_payload = yes;
        self
    }

    /// Where the default credentials chain and the region default read variables from.
    pub fn env(mut self, env: Env) -> Self {
        self.env = env;
        self
    }

    /// Build the client. Fails with [`ErrorKind::Config`] on an empty bucket, a bad endpoint URL, or
    /// virtual-hosted addressing with a bucket name that cannot be a host name.
    pub fn build(self) -> Result<S3Client> {
        let config_err =
            |m: String| Error::new(ErrorKind::Config, m).with_bucket(self.bucket.clone());
        if self.bucket.is_empty() {
            return Err(Error::new(ErrorKind::Config, "bucket name is empty"));
        }
        let region = self
            .region
            .clone()
            .or_else(|| self.env.region())
            .unwrap_or_else(|| "us-east-1".to_owned());
        let dns_safe = is_dns_safe_bucket(&self.bucket);
        let (endpoint, custom) = match &self.endpoint {
            Some(e) => {
                let url = Url::parse(e)
                    .map_err(|err| config_err(format!("endpoint `{e}` is not a URL: {err}")))?;
                if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                    return Err(config_err(format!(
                        "endpoint `{e}` must be an http:// or https:// URL with a host"
                    )));
                }
                if url.query().is_some() || url.fragment().is_some() {
                    return Err(config_err(format!(
                        "endpoint `{e}` must not have a query or fragment"
                    )));
                }
                (url, true)
            }
            None => (
                Url::parse(&format!("https://s3.{region}.amazonaws.com")).map_err(|err| {
                    config_err(format!(
                        "region `{region}` does not make a valid host: {err}"
                    ))
                })?,
                false,
            ),
        };
        let path_style = match self.addressing {
            AddressingStyle::Path => true,
            AddressingStyle::VirtualHosted => {
                if !dns_safe {
                    return Err(config_err(format!(
                        "bucket `{}` is not a valid host name label; use path-style addressing",
                        self.bucket
                    )));
                }
                false
            }
            AddressingStyle::Auto => custom || !dns_safe,
        };
        let host = endpoint.host_str().unwrap_or_default();
        let host = if path_style {
            host.to_owned()
        } else {
            format!("{}.{host}", self.bucket)
        };
        let authority = match endpoint.port() {
            Some(p) => format!("{host}:{p}"),
            None => host,
        };
        let mut prefix = endpoint.path().trim_end_matches('/').to_owned();
        if path_style {
            prefix.push('/');
            prefix.push_str(&uri_encode(&self.bucket, false));
        }
        let base = format!("{}://{authority}{prefix}", endpoint.scheme());
        let base_url = Url::parse(&format!("{base}/"))
            .map_err(|e| config_err(format!("endpoint and bucket do not form a URL: {e}")))?;

        let http = match self.http {
            Some(c) => c,
            None => {
                HttpClient::new(&HttpOptions::default().with_connect_timeout(self.timeouts.connect))
                    .map_err(|e| config_err(e.message().to_owned()))?
            }
        };
        let credentials = match self.credentials {
            CredentialsSource::Anonymous => None,
            CredentialsSource::Static(c) => {
                Some(CachingProvider::new(Arc::new(StaticProvider::new(c))))
            }
            CredentialsSource::Provider(p) => Some(CachingProvider::new(p)),
            CredentialsSource::DefaultChain => Some(CachingProvider::new(Arc::new(
                ChainProvider::default_chain(self.env.clone(), http.clone()),
            ))),
        };
        Ok(S3Client {
            inner: Arc::new(Inner {
                bucket: self.bucket,
                region,
                base,
                base_url,
                credentials,
                signer: Signer::new(),
                http: http.inner,
                timeouts: self.timeouts,
                retry: self.retry,
                payload_hash: if self.unsigned_payload {
                    UNSIGNED_PAYLOAD
                } else {
                    EMPTY_PAYLOAD_SHA256
                },
                counters: crate::client::Counters::default(),
            }),
        })
    }
}

/// Bucket names that can be a DNS label (and so virtual-hosted): lowercase letters, digits, hyphens;
/// no dots (they break TLS wildcard certificates).
fn is_dns_safe_bucket(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !b.starts_with('-')
        && !b.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::tests::client;

    #[test]
    fn bad_config_is_rejected() {
        assert_eq!(
            client(Some("not a url"), "b", AddressingStyle::Auto)
                .unwrap_err()
                .kind(),
            ErrorKind::Config
        );
        assert_eq!(
            client(Some("ftp://x"), "b", AddressingStyle::Auto)
                .unwrap_err()
                .kind(),
            ErrorKind::Config
        );
        assert_eq!(
            client(None, "", AddressingStyle::Auto).unwrap_err().kind(),
            ErrorKind::Config
        );
        assert_eq!(
            client(None, "My_Bucket", AddressingStyle::VirtualHosted)
                .unwrap_err()
                .kind(),
            ErrorKind::Config
        );
    }
}
