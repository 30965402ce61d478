//! Environment variables, and the provider that reads credentials from them.

use std::collections::HashMap;
use std::sync::Arc;

use yatagarasu_core::Result;

use super::{BoxFuture, Credentials, ProvideCredentials, credentials_error};

/// Where providers read environment variables from: the process, or a fixed map (for tests and for
/// embedding applications that keep configuration elsewhere).
#[derive(Debug, Clone, Default)]
pub struct Env {
    fixed: Option<Arc<HashMap<String, String>>>,
}

impl Env {
    /// The process environment.
    pub fn process() -> Self {
        Self { fixed: None }
    }

    /// A fixed set of variables; the process environment is not consulted.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            fixed: Some(Arc::new(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            )),
        }
    }

    /// A variable's value; empty values count as unset.
    pub fn get(&self, name: &str) -> Option<String> {
        let v = match &self.fixed {
            Some(map) => map.get(name).cloned(),
            None => std::env::var(name).ok(),
        };
        v.filter(|v| !v.is_empty())
    }

    /// The region from `AWS_REGION` or `AWS_DEFAULT_REGION`.
    pub fn region(&self) -> Option<String> {
        self.get("AWS_REGION")
            .or_else(|| self.get("AWS_DEFAULT_REGION"))
    }
}

/// Credentials from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and optionally `AWS_SESSION_TOKEN`.
#[derive(Debug, Clone)]
pub struct EnvironmentProvider {
    env: Env,
}

impl EnvironmentProvider {
    /// Read from `env`.
    pub fn new(env: Env) -> Self {
        Self { env }
    }

    fn load(&self) -> Result<Option<Credentials>> {
        let id = self.env.get("AWS_ACCESS_KEY_ID");
        let secret = self.env.get("AWS_SECRET_ACCESS_KEY");
        match (id, secret) {
            (None, None) => Ok(None),
            (Some(id), Some(secret)) => {
                let mut c = Credentials::new(id, secret);
                if let Some(t) = self.env.get("AWS_SESSION_TOKEN") {
                    c = c.with_session_token(t);
                }
                Ok(Some(c))
            }
            (Some(_), None) => Err(credentials_error(
                "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not",
            )),
            (None, Some(_)) => Err(credentials_error(
                "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not",
            )),
        }
    }
}

impl ProvideCredentials for EnvironmentProvider {
    fn provide_credentials(&self) -> BoxFuture<'_, Result<Option<Credentials>>> {
        let r = self.load();
        Box::pin(async move { r })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_keys_and_token() {
        let env = Env::from_pairs([
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "SECRET"),
            ("AWS_SESSION_TOKEN", "TOKEN"),
        ]);
        let c = EnvironmentProvider::new(env).load().unwrap().unwrap();
        assert_eq!(c.access_key_id(), "AKID");
        assert_eq!(c.secret_access_key(), "SECRET");
        assert_eq!(c.session_token(), Some("TOKEN"));
    }

    #[test]
    fn unset_is_none_and_half_set_is_an_error() {
        let none = EnvironmentProvider::new(Env::from_pairs::<&str, &str>([]));
        assert!(none.load().unwrap().is_none());
        let half = EnvironmentProvider::new(Env::from_pairs([("AWS_ACCESS_KEY_ID", "AKID")]));
        let err = half.load().unwrap_err();
        assert!(err.message().contains("AWS_SECRET_ACCESS_KEY"), "{err}");
        let empty = EnvironmentProvider::new(Env::from_pairs([
            ("AWS_ACCESS_KEY_ID", ""),
            ("AWS_SECRET_ACCESS_KEY", ""),
        ]));
        assert!(empty.load().unwrap().is_none());
    }

    #[test]
    fn region_prefers_aws_region() {
        let env = Env::from_pairs([
            ("AWS_REGION", "eu-west-1"),
            ("AWS_DEFAULT_REGION", "us-east-2"),
        ]);
        assert_eq!(env.region().as_deref(), Some("eu-west-1"));
        let env = Env::from_pairs([("AWS_DEFAULT_REGION", "us-east-2")]);
        assert_eq!(env.region().as_deref(), Some("us-east-2"));
    }
}
