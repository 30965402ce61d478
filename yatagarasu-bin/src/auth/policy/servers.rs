//! Policy servers asked over HTTP: OPA's data API and OpenFGA's Check API.

use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use yatagarasu_core::{Error, ErrorKind};

use super::{PolicyInput, Question};

/// Largest answer read from a policy server; a larger one is a failure (its decision is a boolean).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

fn config_error(message: String) -> Error {
    Error::new(ErrorKind::Config, message)
}

/// An `http(s)://host[:port][/base]` URL without query or fragment, with no trailing `/`.
fn base_url(what: &str, url: &str) -> Result<String, Error> {
    match url::Url::parse(url) {
        Ok(u)
            if matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some()
                && u.query().is_none()
                && u.fragment().is_none() =>
        {
            Ok(url.trim_end_matches('/').to_owned())
        }
        Ok(_) => Err(config_error(format!(
            "{what}: `{url}` must be an http:// or https:// URL without query or fragment"
        ))),
        Err(e) => Err(config_error(format!("{what}: `{url}` is not a URL ({e})"))),
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .unwrap_or_default()
}

/// POST `body` as JSON to `url`; the JSON answer of a 2xx response.
async fn post_json(
    http: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
    body: &Value,
    timeout: Duration,
) -> Result<Value, String> {
    let mut req = http
        .post(url)
        .timeout(timeout)
        .header(::http::header::CONTENT_TYPE, "application/json")
        .body(body.to_string());
    if let Some(token) = bearer {
        req = req.bearer_auth(token);
    }
    let mut resp = req.send().await.map_err(|e| {
        if e.is_timeout() {
            format!("no answer within {} ms", timeout.as_millis())
        } else {
            // reqwest's message names the URL; the policy server is ours to name in logs.
            format!("request failed: {e}")
        }
    })?;
    let status = resp.status();
    let mut answer = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("answer broken: {e}"))?
    {
        if answer.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(format!("answer longer than {MAX_ANSWER_BYTES} bytes"));
        }
        answer.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        return Err(format!("answered {status}"));
    }
    serde_json::from_slice(&answer).map_err(|e| format!("answer is not JSON: {e}"))
}

/// An Open Policy Agent server: `POST <url>/v1/data/<policy_path>` with `{"input": ...}`. Allowed
/// when the answer's `result` is `true`; `false` or no `result` (the rule is undefined for this
/// input) is a denial; anything else is a failure (see [`FailMode`](super::FailMode)).
#[derive(Debug, Clone)]
pub struct Opa {
    url: String,
    http: reqwest::Client,
}

impl Opa {
    /// The server at `url` (e.g. `http://127.0.0.1:8181`) and the rule at `policy_path`, slash
    /// separated (e.g. `yatagarasu/authz/allow`, i.e. `data.yatagarasu.authz.allow`).
    pub fn new(url: &str, policy_path: &str) -> Result<Self, Error> {
        let base = base_url("opa_url", url)?;
        let path = policy_path.trim_matches('/');
        let valid = !path.is_empty()
            && path.split('/').all(|s| {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            });
        if !valid {
            return Err(config_error(format!(
                "opa_policy_path: `{policy_path}` must be a rule path like `yatagarasu/authz/allow` \
                 (letters, digits, `_` and `-` between slashes)"
            )));
        }
        Ok(Self {
            url: format!("{base}/v1/data/{path}"),
            http: client(),
        })
    }

    pub(super) async fn ask(&self, input: Value, timeout: Duration) -> Result<bool, String> {
        let answer = post_json(
            &self.http,
            &self.url,
            None,
            &json!({ "input": input }),
            timeout,
        )
        .await?;
        match answer.get("result") {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err("the policy's result is not a boolean".to_owned()),
        }
    }
}

/// An OpenFGA server's Check API: `POST <endpoint>/stores/<store_id>/check`, asking whether
/// `user:<claim value>` has the relation (`viewer`) on `object:<bucket>/<key>`. The claim is `sub`
/// unless [`user_claim`](Self::user_claim) says otherwise; a token without it (or with a value that
/// is not a string) is denied without asking. OpenFGA object ids cannot hold whitespace or exceed
/// 256 bytes: such keys are denied without asking.
#[derive(Debug, Clone)]
pub struct OpenFga {
    url: String,
    http: reqwest::Client,
    model_id: Option<String>,
    api_token: Option<String>,
    user_claim: String,
    relation: String,
}

/// Longest OpenFGA object (`object:<bucket>/<key>`) and user (`user:<id>`).
const MAX_OBJECT_BYTES: usize = 256;
const MAX_USER_BYTES: usize = 512;

impl OpenFga {
    /// The server at `endpoint` (e.g. `http://127.0.0.1:8080`) and the store `store_id`.
    pub fn new(endpoint: &str, store_id: &str) -> Result<Self, Error> {
        let base = base_url("openfga_endpoint", endpoint)?;
        if store_id.is_empty() || !store_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(config_error(format!(
                "openfga_store_id: `{store_id}` must be a store id (letters and digits)"
            )));
        }
        Ok(Self {
            url: format!("{base}/stores/{store_id}/check"),
            http: client(),
            model_id: None,
            api_token: None,
            user_claim: "sub".to_owned(),
            relation: "viewer".to_owned(),
        })
    }

    /// Check against this authorization model (default: the store's latest).
    pub fn authorization_model_id(mut self, id: impl Into<String>) -> Self {
        self.model_id = Some(id.into());
        self
    }

    /// Send `Authorization: Bearer <token>` (OpenFGA's preshared-key authentication).
    pub fn api_token(mut self, token: impl Into<String>) -> Self {
        self.api_token = Some(token.into());
        self
    }

    /// The claim naming the user (default `sub`); a dotted path reaches nested claims.
    pub fn user_claim(mut self, claim: impl Into<String>) -> Self {
        self.user_claim = claim.into();
        self
    }

    /// The relation checked (default `viewer`).
    pub fn relation(mut self, relation: impl Into<String>) -> Self {
        self.relation = relation.into();
        self
    }

    pub(super) fn question(&self, input: &PolicyInput) -> Result<Question, Error> {
        let refuse = |why: &str| {
            Error::new(
                ErrorKind::AccessDenied,
                format!("the authorization policy denies this request: {why}"),
            )
            .with_upstream_code("PolicyDenied")
        };
        let subject = self
            .user_claim
            .split('.')
            .try_fold(input.claims_value(), |v, part| v.get(part))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| refuse(&format!("the token has no `{}` claim", self.user_claim)))?;
        let user = format!("user:{subject}");
        let object = format!("object:{}/{}", input.bucket(), input.key());
        if object.len() > MAX_OBJECT_BYTES || object.chars().any(char::is_whitespace) {
            return Err(refuse(
                "the object name cannot be checked (whitespace, or longer than 256 bytes)",
            ));
        }
        if user.len() > MAX_USER_BYTES || user.chars().any(char::is_whitespace) {
            return Err(refuse("the user name cannot be checked"));
        }
        let key = {
            let mut h = Sha256::new();
            for part in [&user, &self.relation, &object] {
                h.update(part.as_bytes());
                h.update([0]);
            }
            h.finalize().into()
        };
        let mut body = json!({
            "tuple_key": { "user": user, "relation": self.relation, "object": object },
        });
        if let Some(id) = &self.model_id {
            body["authorization_model_id"] = id.clone().into();
        }
        Ok(Question {
            key,
            body: Some(body),
        })
    }

    pub(super) async fn ask(&self, body: Value, timeout: Duration) -> Result<bool, String> {
        let answer = post_json(
            &self.http,
            &self.url,
            self.api_token.as_deref(),
            &body,
            timeout,
        )
        .await?;
        match answer.get("allowed") {
            Some(Value::Bool(b)) => Ok(*b),
            _ => Err("the check's answer has no boolean `allowed`".to_owned()),
        }
    }
}
