//! Credentials and where they come from.
//!
//! A [`ProvideCredentials`] answers `Ok(Some(credentials))`, `Ok(None)` ("not configured here": the
//! chain tries the next provider) or `Err` (configured but failing: the chain stops, so a broken setup
//! is loud instead of silently falling through to other credentials). [`CachingProvider`] keeps
//! credentials until shortly before they expire, refreshes them once for all concurrent callers, and
//! never caches a failure.

mod env;
mod profile;
mod remote;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use yatagarasu_core::{Error, ErrorKind, Result};

pub use env::{Env, EnvironmentProvider};
pub use profile::ProfileProvider;
pub use remote::{EcsProvider, ImdsProvider, WebIdentityProvider};

/// An AWS access key pair, optionally with a session token and an expiry.
///
/// `Debug` never shows the secret or the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
    expires_at: Option<SystemTime>,
}

impl Credentials {
    /// Long-lived credentials.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
            expires_at: None,
        }
    }

    /// Add a session token (temporary credentials).
    pub fn with_session_token(mut self, token: impl Into<String>) -> Self {
        self.session_token = Some(token.into());
        self
    }

    /// Set when the credentials stop working.
    pub fn with_expiry(mut self, expires_at: SystemTime) -> Self {
        self.expires_at = Some(expires_at);
        self
    }

    /// The access key id.
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The secret access key.
    pub fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }

    /// The session token, if any.
    pub fn session_token(&self) -> Option<&str> {
        self.session_token.as_deref()
    }

    /// When the credentials expire, if they do.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }

    /// Whether the credentials expire within `margin` of `now` (or have expired).
    pub fn expires_within(&self, now: SystemTime, margin: Duration) -> bool {
        self.expires_at.is_some_and(|exp| exp <= now + margin)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"** redacted **")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "** redacted **"),
            )
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A boxed future, as returned by [`ProvideCredentials`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A source of credentials.
pub trait ProvideCredentials: Send + Sync + fmt::Debug {
    /// Fetch credentials: `Ok(None)` when this source is not configured.
    fn provide_credentials(&self) -> BoxFuture<'_, Result<Option<Credentials>>>;
}

/// Fixed credentials.
#[derive(Debug, Clone)]
pub struct StaticProvider(Credentials);

impl StaticProvider {
    /// Always answer with `credentials`.
    pub fn new(credentials: Credentials) -> Self {
        Self(credentials)
    }
}

impl ProvideCredentials for StaticProvider {
    fn provide_credentials(&self) -> BoxFuture<'_, Result<Option<Credentials>>> {
        let c = self.0.clone();
        Box::pin(async move { Ok(Some(c)) })
    }
}

/// Tries providers in order; the first that has credentials wins, the first error stops the chain.
#[derive(Debug, Default)]
pub struct ChainProvider {
    providers: Vec<Arc<dyn ProvideCredentials>>,
}

impl ChainProvider {
    /// An empty chain.
    pub fn new() -> Self {
        Self::default()
    }

    /// Append a provider.
    pub fn push(mut self, provider: impl ProvideCredentials + 'static) -> Self {
        self.providers.push(Arc::new(provider));
        self
    }

    /// The AWS default chain: environment variables, shared config/credentials files (profile from
    /// `AWS_PROFILE`), web identity (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`), ECS container
    /// credentials, EC2 instance metadata (IMDSv2).
    pub fn default_chain(env: Env, http: crate::HttpClient) -> Self {
        Self::new()
            .push(EnvironmentProvider::new(env.clone()))
            .push(ProfileProvider::new(env.clone(), http.clone()))
            .push(WebIdentityProvider::new(env.clone(), http.clone()))
            .push(EcsProvider::new(env.clone(), http.clone()))
            .push(ImdsProvider::new(env, http))
    }
}

impl ProvideCredentials for ChainProvider {
    fn provide_credentials(&self) -> BoxFuture<'_, Result<Option<Credentials>>> {
        Box::pin(async move {
            for p in &self.providers {
                if let Some(c) = p.provide_credentials().await? {
                    return Ok(Some(c));
                }
            }
            Ok(None)
        })
    }
}

/// Caches another provider's credentials until `refresh_before` their expiry.
///
/// Concurrent callers during a refresh wait for the one refresh. A failed refresh is not cached: while
/// the old credentials have not actually expired they keep being used (and the failure is logged);
/// after that the error is returned, and the next call tries again.
#[derive(Debug)]
pub struct CachingProvider {
    inner: Arc<dyn ProvideCredentials>,
    cached: Mutex<Option<Credentials>>,
    refresh: tokio::sync::Mutex<()>,
    refresh_before: Duration,
}

impl CachingProvider {
    /// Cache `inner`, refreshing 5 minutes before expiry.
    pub fn new(inner: Arc<dyn ProvideCredentials>) -> Self {
        Self::with_refresh_margin(inner, Duration::from_secs(300))
    }

    /// Cache `inner`, refreshing `margin` before expiry.
    pub fn with_refresh_margin(inner: Arc<dyn ProvideCredentials>, margin: Duration) -> Self {
        Self {
            inner,
            cached: Mutex::new(None),
            refresh: tokio::sync::Mutex::new(()),
            refresh_before: margin,
        }
    }

    fn fresh(&self) -> Option<Credentials> {
        let guard = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        guard
            .as_ref()
            .filter(|c| !c.expires_within(SystemTime::now(), self.refresh_before))
            .cloned()
    }

    /// Credentials, from the cache when fresh.
    pub async fn credentials(&self) -> Result<Credentials> {
        if let Some(c) = self.fresh() {
            return Ok(c);
        }
        let _refreshing = self.refresh.lock().await;
        if let Some(c) = self.fresh() {
            return Ok(c);
        }
        match self.inner.provide_credentials().await {
            Ok(Some(c)) => {
                *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = Some(c.clone());
                Ok(c)
            }
            Ok(None) => Err(Error::new(
                ErrorKind::AccessDenied,
                "no credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile, web identity, \
                 a container or instance role, or configure anonymous access",
            )
            .with_operation("GetCredentials")),
            Err(e) => {
                let still_valid = self
                    .cached
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
                    .filter(|c| !c.expires_within(SystemTime::now(), Duration::ZERO));
                match still_valid {
                    Some(c) => {
                        tracing::warn!(error = %e, "credential refresh failed; using credentials until they expire");
                        Ok(c)
                    }
                    None => Err(e),
                }
            }
        }
    }
}

pub(crate) fn credentials_error(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::AccessDenied, message).with_operation("GetCredentials")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Debug)]
    struct Scripted {
        calls: AtomicUsize,
        answers: Mutex<Vec<Result<Option<Credentials>>>>,
    }

    impl ProvideCredentials for Scripted {
        fn provide_credentials(&self) -> BoxFuture<'_, Result<Option<Credentials>>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let next = self.answers.lock().unwrap().remove(0);
            Box::pin(async move { next })
        }
    }

    fn scripted(answers: Vec<Result<Option<Credentials>>>) -> Arc<Scripted> {
        Arc::new(Scripted {
            calls: AtomicUsize::new(0),
            answers: Mutex::new(answers),
        })
    }

    #[test]
    fn debug_redacts_secrets() {
        let c = Credentials::new("AKID", "very-secret").with_session_token("tok-123");
        let s = format!("{c:?}");
        assert!(s.contains("AKID"));
        assert!(!s.contains("very-secret"));
        assert!(!s.contains("tok-123"));
    }

    #[tokio::test]
    async fn caches_until_refresh_window() {
        let far = SystemTime::now() + Duration::from_secs(3600);
        let p = scripted(vec![Ok(Some(Credentials::new("A", "s").with_expiry(far)))]);
        let cache = CachingProvider::new(p.clone());
        for _ in 0..5 {
            assert_eq!(cache.credentials().await.unwrap().access_key_id(), "A");
        }
        assert_eq!(p.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn refreshes_inside_window() {
        let soon = SystemTime::now() + Duration::from_secs(60);
        let far = SystemTime::now() + Duration::from_secs(3600);
        let p = scripted(vec![
            Ok(Some(Credentials::new("OLD", "s").with_expiry(soon))),
            Ok(Some(Credentials::new("NEW", "s").with_expiry(far))),
        ]);
        let cache = CachingProvider::new(p.clone());
        assert_eq!(cache.credentials().await.unwrap().access_key_id(), "OLD");
        assert_eq!(cache.credentials().await.unwrap().access_key_id(), "NEW");
        assert_eq!(cache.credentials().await.unwrap().access_key_id(), "NEW");
        assert_eq!(p.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn failure_is_never_cached() {
        let far = SystemTime::now() + Duration::from_secs(3600);
        let p = scripted(vec![
            Err(credentials_error("sts down")),
            Ok(Some(Credentials::new("A", "s").with_expiry(far))),
        ]);
        let cache = CachingProvider::new(p.clone());
        assert!(cache.credentials().await.is_err());
        assert_eq!(cache.credentials().await.unwrap().access_key_id(), "A");
        assert_eq!(p.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn failed_refresh_keeps_unexpired_credentials() {
        let soon = SystemTime::now() + Duration::from_secs(60);
        let p = scripted(vec![
            Ok(Some(Credentials::new("OLD", "s").with_expiry(soon))),
            Err(credentials_error("sts down")),
        ]);
        let cache = CachingProvider::new(p.clone());
        assert_eq!(cache.credentials().await.unwrap().access_key_id(), "OLD");
        assert_eq!(cache.credentials().await.unwrap().access_key_id(), "OLD");
    }

    #[tokio::test]
    async fn expired_credentials_are_not_served_after_failure() {
        let past = SystemTime::now() - Duration::from_secs(1);
        let p = scripted(vec![
            Ok(Some(Credentials::new("OLD", "s").with_expiry(past))),
            Err(credentials_error("sts down")),
        ]);
        let cache = CachingProvider::new(p.clone());
        assert_eq!(cache.credentials().await.unwrap().access_key_id(), "OLD");
        assert!(cache.credentials().await.is_err());
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_refresh() {
        let far = SystemTime::now() + Duration::from_secs(3600);
        let p = scripted(vec![Ok(Some(Credentials::new("A", "s").with_expiry(far)))]);
        let cache = Arc::new(CachingProvider::new(p.clone()));
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let c = cache.clone();
                tokio::spawn(async move { c.credentials().await.unwrap() })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().access_key_id(), "A");
        }
        assert_eq!(p.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn chain_takes_first_configured_and_stops_on_error() {
        let none = scripted(vec![Ok(None)]);
        let some = scripted(vec![Ok(Some(Credentials::new("B", "s")))]);
        let chain = ChainProvider {
            providers: vec![none.clone(), some.clone()],
        };
        let got = chain.provide_credentials().await.unwrap().unwrap();
        assert_eq!(got.access_key_id(), "B");

        let err = scripted(vec![Err(credentials_error("broken profile"))]);
        let unused = scripted(vec![Ok(Some(Credentials::new("C", "s")))]);
        let chain = ChainProvider {
            providers: vec![err, unused.clone()],
        };
        assert!(chain.provide_credentials().await.is_err());
        assert_eq!(unused.calls.load(Ordering::SeqCst), 0);
    }
}
