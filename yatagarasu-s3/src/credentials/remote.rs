//! Providers that fetch credentials over HTTP: STS web identity, ECS container credentials, EC2 IMDSv2.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use yatagarasu_core::Result;

use super::{BoxFuture, Credentials, Env, ProvideCredentials, credentials_error};
use crate::time::parse_rfc3339;
use crate::xml;

const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

fn transport_error(what: &str, e: &reqwest::Error) -> yatagarasu_core::Error {
    credentials_error(format!("{what}: {}", crate::describe_transport_error(e)))
}

/// Settings for [`WebIdentityProvider`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WebIdentitySettings {
    /// File holding the OIDC token (re-read on every refresh: it is rotated by the platform).
    pub token_file: PathBuf,
    /// The role to assume.
    pub role_arn: String,
    /// Session name; a generated one if `None`.
    pub session_name: Option<String>,
    /// Region for the regional STS endpoint; the global endpoint if `None`.
    pub region: Option<String>,
    /// Override of the STS endpoint URL (`AWS_ENDPOINT_URL_STS`).
    pub sts_endpoint: Option<String>,
}

impl WebIdentitySettings {
    /// Assume `role_arn` with the token in `token_file`; the other settings unset.
    pub fn new(token_file: impl Into<PathBuf>, role_arn: impl Into<String>) -> Self {
        Self {
            token_file: token_file.into(),
            role_arn: role_arn.into(),
            session_name: None,
            region: None,
            sts_endpoint: None,
        }
    }

    /// Set [`Self::session_name`].
    #[must_use]
    pub fn with_session_name(mut self, session_name: impl Into<String>) -> Self {
        self.session_name = Some(session_name.into());
        self
    }

    /// Set [`Self::region`].
    #[must_use]
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Set [`Self::sts_endpoint`].
    #[must_use]
    pub fn with_sts_endpoint(mut self, sts_endpoint: impl Into<String>) -> Self {
        self.sts_endpoint = Some(sts_endpoint.into());
        self
    }
}

/// Credentials from STS `AssumeRoleWithWebIdentity` (EKS IRSA, GitHub OIDC, ...), configured by
/// `AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_ARN`, `AWS_ROLE_SESSION_NAME`, `AWS_REGION` and
/// `AWS_ENDPOINT_URL_STS`, or by explicit settings.
#[derive(Debug, Clone)]
pub struct WebIdentityProvider {
    source: WebIdentitySource,
    http: reqwest::Client,
}

#[derive(Debug, Clone)]
enum WebIdentitySource {
    Env(Env),
    Fixed(WebIdentitySettings),
}

impl WebIdentityProvider {
    /// Configured from environment variables at each fetch.
    pub fn new(env: Env, http: crate::HttpClient) -> Self {
        Self {
            source: WebIdentitySource::Env(env),
            http: http.inner,
        }
    }

    /// Configured explicitly.
    pub fn with_settings(settings: WebIdentitySettings, http: crate::HttpClient) -> Self {
        Self {
            source: WebIdentitySource::Fixed(settings),
            http: http.inner,
        }
    }

    fn settings(&self) -> Result<Option<WebIdentitySettings>> {
        match &self.source {
            WebIdentitySource::Fixed(s) => Ok(Some(s.clone())),
            WebIdentitySource::Env(env) => {
                match (
                    env.get("AWS_WEB_IDENTITY_TOKEN_FILE"),
                    env.get("AWS_ROLE_ARN"),
                ) {
                    (None, None) => Ok(None),
                    (Some(file), Some(role)) => Ok(Some(WebIdentitySettings {
                        token_file: PathBuf::from(file),
                        role_arn: role,
                        session_name: env.get("AWS_ROLE_SESSION_NAME"),
                        region: env.region(),
                        sts_endpoint: env.get("AWS_ENDPOINT_URL_STS"),
                    })),
                    (Some(_), None) => Err(credentials_error(
                        "AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not",
                    )),
                    (None, Some(_)) => Ok(None),
                }
            }
        }
    }

    async fn load(&self) -> Result<Option<Credentials>> {
        let Some(s) = self.settings()? else {
            return Ok(None);
        };
        let token = std::fs::read_to_string(&s.token_file).map_err(|e| {
            credentials_error(format!(
                "cannot read web identity token file {}: {e}",
                s.token_file.display()
            ))
        })?;
        let endpoint = s.sts_endpoint.clone().unwrap_or_else(|| match &s.region {
            Some(r) => format!("https://sts.{r}.amazonaws.com/"),
            None => "https://sts.amazonaws.com/".to_owned(),
        });
        let session = s.session_name.clone().unwrap_or_else(|| {
            let ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            format!("yatagarasu-{ms}")
        });
        let form = [
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", "2011-06-15"),
            ("RoleArn", s.role_arn.as_str()),
            ("RoleSessionName", session.as_str()),
            ("WebIdentityToken", token.trim()),
        ];
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", crate::sigv4::uri_encode(v, false)))
            .collect::<Vec<_>>()
            .join("&");
        let resp = self
            .http
            .post(&endpoint)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/xml")
            .body(body)
            .timeout(HTTP_TIMEOUT)
            .send()
            .await
            .map_err(|e| transport_error("STS AssumeRoleWithWebIdentity", &e))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| transport_error("STS AssumeRoleWithWebIdentity", &e))?;
        let els = xml::flatten(&text)
            .map_err(|e| credentials_error(format!("STS answered with unreadable XML: {e}")))?;
        if !status.is_success() {
            let code = xml::first_text(&els, "Code").unwrap_or_else(|| status.to_string());
            let msg = xml::first_text(&els, "Message").unwrap_or_default();
            return Err(credentials_error(format!(
                "STS AssumeRoleWithWebIdentity failed: {code}: {msg}"
            ))
            .with_upstream_code(code));
        }
        let get = |n: &str| {
            xml::first_text(&els, n)
                .ok_or_else(|| credentials_error(format!("STS response lacks {n}")))
        };
        let expiration = get("Expiration")?;
        let expires = parse_rfc3339(&expiration).ok_or_else(|| {
            credentials_error(format!("STS Expiration is not a timestamp: {expiration}"))
        })?;
        Ok(Some(
            Credentials::new(get("AccessKeyId")?, get("SecretAccessKey")?)
                .with_session_token(get("SessionToken")?)
                .with_expiry(expires),
        ))
    }
}

impl ProvideCredentials for WebIdentityProvider {
    fn provide_credentials(&self) -> BoxFuture<'_, Result<Option<Credentials>>> {
        Box::pin(self.load())
    }
}

/// The JSON both the ECS endpoint and IMDS answer with.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct JsonCredentials {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    token: Option<String>,
    expiration: Option<String>,
}

fn parse_json_credentials(source: &str, body: &str) -> Result<Credentials> {
    let j: JsonCredentials = serde_json::from_str(body)
        .map_err(|e| credentials_error(format!("{source} answered with unreadable JSON: {e}")))?;
    if let Some(code) = j.code.as_deref()
        && code != "Success"
    {
        return Err(credentials_error(format!(
            "{source} answered {code}: {}",
            j.message.unwrap_or_default()
        )));
    }
    let (Some(id), Some(secret)) = (j.access_key_id, j.secret_access_key) else {
        return Err(credentials_error(format!(
            "{source} answered without AccessKeyId/SecretAccessKey"
        )));
    };
    let mut c = Credentials::new(id, secret);
    if let Some(t) = j.token {
        c = c.with_session_token(t);
    }
    if let Some(exp) = j.expiration {
        let t = parse_rfc3339(&exp).ok_or_else(|| {
            credentials_error(format!("{source} Expiration is not a timestamp: {exp}"))
        })?;
        c = c.with_expiry(t);
    }
    Ok(c)
}

/// ECS / EKS Pod Identity container credentials: `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` (against
/// `169.254.170.2`) or `AWS_CONTAINER_CREDENTIALS_FULL_URI`, with the authorization token from
/// `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` or `AWS_CONTAINER_AUTHORIZATION_TOKEN`.
#[derive(Debug, Clone)]
pub struct EcsProvider {
    env: Env,
    http: reqwest::Client,
}

impl EcsProvider {
    /// Configured from `env` at each fetch.
    pub fn new(env: Env, http: crate::HttpClient) -> Self {
        Self {
            env,
            http: http.inner,
        }
    }

    async fn load(&self) -> Result<Option<Credentials>> {
        let url = if let Some(rel) = self.env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
            format!("http://169.254.170.2{rel}")
        } else if let Some(full) = self.env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
            full
        } else {
            return Ok(None);
        };
        let token = match self.env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") {
            Some(file) => Some(
                std::fs::read_to_string(&file)
                    .map_err(|e| {
                        credentials_error(format!(
                            "cannot read container authorization token file {file}: {e}"
                        ))
                    })?
                    .trim()
                    .to_owned(),
            ),
            None => self.env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN"),
        };
        let mut req = self
            .http
            .get(&url)
            .timeout(HTTP_TIMEOUT)
            .header("accept", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", t);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| transport_error("container credentials endpoint", &e))?;
        let status = resp.status();
        let body = resp
            .text()
            .await
            .map_err(|e| transport_error("container credentials endpoint", &e))?;
        if !status.is_success() {
            return Err(credentials_error(format!(
                "container credentials endpoint answered {status}"
            )));
        }
        parse_json_credentials("container credentials endpoint", &body).map(Some)
    }
}

impl ProvideCredentials for EcsProvider {
    fn provide_credentials(&self) -> BoxFuture<'_, Result<Option<Credentials>>> {
        Box::pin(self.load())
    }
}

/// EC2 instance-profile credentials through IMDSv2 (a session token first, then the role's credentials).
/// Endpoint from `AWS_EC2_METADATA_SERVICE_ENDPOINT` (default `http://169.254.169.254`); off with
/// `AWS_EC2_METADATA_DISABLED=true`. An unreachable endpoint means "not on EC2": `Ok(None)`.
#[derive(Debug, Clone)]
pub struct ImdsProvider {
    env: Env,
    http: reqwest::Client,
}

const IMDS_TIMEOUT: Duration = Duration::from_secs(1);

impl ImdsProvider {
    /// Configured from `env` at each fetch.
    pub fn new(env: Env, http: crate::HttpClient) -> Self {
        Self {
            env,
            http: http.inner,
        }
    }

    async fn load(&self) -> Result<Option<Credentials>> {
        if self
            .env
            .get("AWS_EC2_METADATA_DISABLED")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            return Ok(None);
        }
        let base = self
            .env
            .get("AWS_EC2_METADATA_SERVICE_ENDPOINT")
            .unwrap_or_else(|| "http://169.254.169.254".to_owned());
        let base = base.trim_end_matches('/');
        let token = match self
            .http
            .put(format!("{base}/latest/api/token"))
            .header("x-aws-ec2-metadata-token-ttl-seconds", "21600")
            .timeout(IMDS_TIMEOUT)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => r
                .text()
                .await
                .map_err(|e| transport_error("IMDS token", &e))?,
            Ok(r) => {
                return Err(credentials_error(format!(
                    "IMDS refused a session token: {}",
                    r.status()
                )));
            }
            // Nothing listening: this is not an EC2 instance.
            Err(e) if e.is_connect() || e.is_timeout() => return Ok(None),
            Err(e) => return Err(transport_error("IMDS token", &e)),
        };
        let path = format!("{base}/latest/meta-data/iam/security-credentials/");
        let get = |url: String| {
            self.http
                .get(url)
                .header("x-aws-ec2-metadata-token", token.trim())
                .timeout(IMDS_TIMEOUT)
                .send()
        };
        let resp = get(path.clone())
            .await
            .map_err(|e| transport_error("IMDS role list", &e))?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None); // An instance without a role.
        }
        if !resp.status().is_success() {
            return Err(credentials_error(format!(
                "IMDS role list answered {}",
                resp.status()
            )));
        }
        let roles = resp
            .text()
            .await
            .map_err(|e| transport_error("IMDS role list", &e))?;
        let Some(role) = roles.lines().map(str::trim).find(|l| !l.is_empty()) else {
            return Ok(None);
        };
        let resp = get(format!("{path}{role}"))
            .await
            .map_err(|e| transport_error("IMDS credentials", &e))?;
        let status = resp.status();
        let body = resp
            .text()
            .await
            .map_err(|e| transport_error("IMDS credentials", &e))?;
        if !status.is_success() {
            return Err(credentials_error(format!(
                "IMDS credentials answered {status}"
            )));
        }
        parse_json_credentials("IMDS", &body).map(Some)
    }
}

impl ProvideCredentials for ImdsProvider {
    fn provide_credentials(&self) -> BoxFuture<'_, Result<Option<Credentials>>> {
        Box::pin(self.load())
    }
}
