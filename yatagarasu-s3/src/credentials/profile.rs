//! The shared AWS config and credentials files (`~/.aws/credentials`, `~/.aws/config`).

use std::collections::HashMap;
use std::path::PathBuf;

use yatagarasu_core::Result;

use super::remote::{WebIdentityProvider, WebIdentitySettings};
use super::{BoxFuture, Credentials, Env, ProvideCredentials, credentials_error};

/// Credentials from a profile of the shared files. The profile is `AWS_PROFILE` (else `default`); the
/// files are `AWS_SHARED_CREDENTIALS_FILE` and `AWS_CONFIG_FILE` (else under `$HOME/.aws/`).
///
/// Supported in a profile: static keys (`aws_access_key_id`, `aws_secret_access_key`,
/// `aws_session_token`) and web identity (`role_arn` + `web_identity_token_file`, optional
/// `role_session_name`). A profile that relies on `source_profile` or `credential_process` is an error
/// naming the key, rather than a silent fall-through to other credentials.
#[derive(Debug, Clone)]
pub struct ProfileProvider {
    env: Env,
    http: reqwest::Client,
}

/// One section's keys.
type Section = HashMap<String, String>;

/// Parse the INI dialect of the AWS files: `[name]` sections, `key = value`, `#`/`;` comments,
/// indented continuation lines (nested settings such as `s3 =`) skipped.
pub(crate) fn parse_ini(text: &str) -> HashMap<String, Section> {
    let mut sections: HashMap<String, Section> = HashMap::new();
    let mut current: Option<String> = None;
    for raw in text.lines() {
        if raw.starts_with([' ', '\t']) {
            continue;
        }
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim().to_owned();
            sections.entry(name.clone()).or_default();
            current = Some(name);
            continue;
        }
        if let (Some(section), Some((k, v))) = (&current, line.split_once('=')) {
            let v = v.trim();
            // Inline comments are only recognised after whitespace, as the AWS CLI does.
            let v = v
                .split(" #")
                .next()
                .unwrap_or(v)
                .split(" ;")
                .next()
                .unwrap_or(v)
                .trim();
            if let Some(s) = sections.get_mut(section) {
                s.insert(k.trim().to_ascii_lowercase(), v.to_owned());
            }
        }
    }
    sections
}

impl ProfileProvider {
    /// Read files located through `env`; `http` is used for web identity profiles.
    pub fn new(env: Env, http: crate::HttpClient) -> Self {
        Self {
            env,
            http: http.inner,
        }
    }

    fn home_file(&self, var: &str, name: &str) -> Option<PathBuf> {
        if let Some(p) = self.env.get(var) {
            return Some(PathBuf::from(p));
        }
        self.env
            .get("HOME")
            .or_else(|| self.env.get("USERPROFILE"))
            .map(|h| PathBuf::from(h).join(".aws").join(name))
    }

    /// The merged keys of the selected profile (credentials file wins), or `None` if absent.
    fn profile(&self) -> Result<Option<(String, Section)>> {
        let explicit = self.env.get("AWS_PROFILE");
        let name = explicit.clone().unwrap_or_else(|| "default".to_owned());
        let mut merged: Option<Section> = None;
        if let Some(path) = self.home_file("AWS_CONFIG_FILE", "config")
            && let Ok(text) = std::fs::read_to_string(&path)
        {
            let mut sections = parse_ini(&text);
            let key = if name == "default" {
                "default".to_owned()
            } else {
                format!("profile {name}")
            };
            if let Some(s) = sections.remove(&key) {
                merged = Some(s);
            }
        }
        if let Some(path) = self.home_file("AWS_SHARED_CREDENTIALS_FILE", "credentials")
            && let Ok(text) = std::fs::read_to_string(&path)
            && let Some(s) = parse_ini(&text).remove(&name)
        {
            merged.get_or_insert_with(Section::new).extend(s);
        }
        match merged {
            Some(s) => Ok(Some((name, s))),
            None if explicit.is_some() => Err(credentials_error(format!(
                "AWS_PROFILE names profile `{name}`, which is in neither the shared credentials nor the config file"
            ))),
            None => Ok(None),
        }
    }

    async fn load(&self) -> Result<Option<Credentials>> {
        let Some((name, p)) = self.profile()? else {
            return Ok(None);
        };
        if let Some(id) = p.get("aws_access_key_id") {
            let secret = p.get("aws_secret_access_key").ok_or_else(|| {
                credentials_error(format!(
                    "profile `{name}`: aws_access_key_id is set but aws_secret_access_key is not"
                ))
            })?;
            let mut c = Credentials::new(id.clone(), secret.clone());
            if let Some(t) = p.get("aws_session_token") {
                c = c.with_session_token(t.clone());
            }
            return Ok(Some(c));
        }
        if let (Some(role), Some(token_file)) =
            (p.get("role_arn"), p.get("web_identity_token_file"))
        {
            let settings = WebIdentitySettings {
                token_file: PathBuf::from(token_file),
                role_arn: role.clone(),
                session_name: p.get("role_session_name").cloned(),
                region: p.get("region").cloned().or_else(|| self.env.region()),
                sts_endpoint: self.env.get("AWS_ENDPOINT_URL_STS"),
            };
            return WebIdentityProvider::with_settings(
                settings,
                crate::HttpClient {
                    inner: self.http.clone(),
                },
            )
            .provide_credentials()
            .await;
        }
        for unsupported in [
            "source_profile",
            "credential_process",
            "sso_session",
            "sso_start_url",
        ] {
            if p.contains_key(unsupported) {
                return Err(credentials_error(format!(
                    "profile `{name}` uses {unsupported}, which yatagarasu-s3 does not support; \
                     use static keys, web identity, or environment variables"
                )));
            }
        }
        Ok(None)
    }
}

impl ProvideCredentials for ProfileProvider {
    fn provide_credentials(&self) -> BoxFuture<'_, Result<Option<Credentials>>> {
        Box::pin(self.load())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(dir: &std::path::Path, extra: &[(&str, &str)]) -> ProfileProvider {
        let mut pairs: Vec<(String, String)> = vec![("HOME".into(), dir.display().to_string())];
        pairs.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        ProfileProvider::new(
            Env::from_pairs(pairs),
            crate::HttpClient::new(&crate::HttpOptions::default()).expect("default HTTP client"),
        )
    }

    fn write(dir: &std::path::Path, name: &str, text: &str) {
        std::fs::create_dir_all(dir.join(".aws")).unwrap();
        std::fs::write(dir.join(".aws").join(name), text).unwrap();
    }

    #[test]
    fn parses_the_aws_ini_dialect() {
        let s = parse_ini(
            "# comment\n[default]\naws_access_key_id = AKID ; trailing\nAWS_Secret_Access_Key=abc#def\ns3 =\n  max_concurrent_requests = 5\n[profile x]\nregion = eu-west-1\n",
        );
        assert_eq!(s["default"]["aws_access_key_id"], "AKID");
        assert_eq!(s["default"]["aws_secret_access_key"], "abc#def");
        assert!(!s["default"].contains_key("max_concurrent_requests"));
        assert_eq!(s["profile x"]["region"], "eu-west-1");
    }

    #[tokio::test]
    async fn default_profile_from_credentials_file() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "credentials",
            "[default]\naws_access_key_id=AKID\naws_secret_access_key=SECRET\naws_session_token=TOK\n",
        );
        let c = provider(dir.path(), &[]).load().await.unwrap().unwrap();
        assert_eq!(c.access_key_id(), "AKID");
        assert_eq!(c.secret_access_key(), "SECRET");
        assert_eq!(c.session_token(), Some("TOK"));
    }

    #[tokio::test]
    async fn named_profile_from_config_file_and_credentials_file_wins() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "config",
            "[profile dev]\naws_access_key_id=FROMCONFIG\naws_secret_access_key=S1\n",
        );
        write(
            dir.path(),
            "credentials",
            "[dev]\naws_access_key_id=FROMCREDS\naws_secret_access_key=S2\n",
        );
        let c = provider(dir.path(), &[("AWS_PROFILE", "dev")])
            .load()
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.access_key_id(), "FROMCREDS");
        assert_eq!(c.secret_access_key(), "S2");
    }

    #[tokio::test]
    async fn explicit_files_and_missing_profiles() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("my-creds");
        std::fs::write(
            &creds,
            "[default]\naws_access_key_id=X\naws_secret_access_key=Y\n",
        )
        .unwrap();
        let p = provider(
            dir.path(),
            &[("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().unwrap())],
        );
        assert_eq!(p.load().await.unwrap().unwrap().access_key_id(), "X");

        // No files at all: not configured.
        let empty = tempfile::tempdir().unwrap();
        assert!(provider(empty.path(), &[]).load().await.unwrap().is_none());
        // A named profile that does not exist is an error naming it.
        let err = provider(empty.path(), &[("AWS_PROFILE", "prod")])
            .load()
            .await
            .unwrap_err();
        assert!(err.message().contains("`prod`"), "{err}");
    }

    #[tokio::test]
    async fn unsupported_profile_kinds_are_loud() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "config",
            "[default]\nrole_arn=arn:aws:iam::1:role/r\nsource_profile=base\n",
        );
        let err = provider(dir.path(), &[]).load().await.unwrap_err();
        assert!(err.message().contains("source_profile"), "{err}");
    }
}
