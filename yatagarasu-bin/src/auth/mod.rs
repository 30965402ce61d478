//! Authentication of requests to private buckets with JSON Web Tokens, and claim rules.
//!
//! [`JwtAuth`] is usable without the proxy: give it keys, the checks to make and where tokens come
//! from, then [`authenticate`](JwtAuth::authenticate) a request's headers and query string.
//!
//! - **The key decides the algorithm.** Each key has one algorithm; a token whose `alg` differs is
//!   refused, so `none`, HS/RS confusion (an HMAC made with the RSA public key) and the like never
//!   verify. A token's `kid` selects among several keys; `jku`, `x5u` and embedded `jwk` headers are
//!   never followed.
//! - Signature, `exp` (required), `nbf`, and when configured `iss` and `aud` are checked, with a
//!   leeway for clock skew.
//! - Then every [`ClaimRule`] must hold (403 otherwise).
//!
//! Errors never carry a token or a claim value: 401 `MissingToken` / `InvalidToken` (with the check
//! that failed), 403 `ClaimRuleFailed` (with the claim's name).
//!
//! ```
//! use yatagarasu::auth::{JwtAuth, TokenSource};
//!
//! let auth = JwtAuth::builder()
//!     .hmac_key(jsonwebtoken::Algorithm::HS256, b"a secret of at least 32 bytes!!!")
//!     .issuer("https://issuer.example")
//!     .source(TokenSource::Bearer)
//!     .build();
//! let refused = auth.authenticate(&http::HeaderMap::new(), None);
//! assert_eq!(refused.unwrap_err().code(), "MissingToken");
//! ```

mod claims;
mod ip;
mod jwks;
mod policy;
mod token;

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use yatagarasu_core::{Error, ErrorKind};

pub use claims::{ClaimRule, Operator};
pub use ip::{IpFilter, client_ip, parse_net};
pub use policy::{
    FailMode, INPUT_HEADERS, Opa, OpenFga, Policy, PolicyBuilder, PolicyEngine, PolicyInput,
    PolicyStats, Rego,
};
pub use token::TokenSource;

/// Longest token accepted (longer ones are refused before any parsing).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// A verification key and the one algorithm it verifies.
#[derive(Clone)]
struct Key {
    algorithm: Algorithm,
    key: DecodingKey,
}

/// Verifies JWTs and applies claim rules. Cheap to clone.
#[derive(Clone)]
pub struct JwtAuth {
    inner: Arc<Inner>,
}

struct Inner {
    verified: VerifiedCache,
    jwks: Option<Arc<jwks::Jwks>>,
    default_key: Option<Key>,
    by_kid: HashMap<String, Key>,
    issuer: Option<String>,
    audience: Vec<String>,
    leeway_seconds: u64,
    sources: Vec<TokenSource>,
    rules: Vec<ClaimRule>,
}

impl std::fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuth")
            .field(
                "default_key",
                &self.inner.default_key.as_ref().map(|k| k.algorithm),
            )
            .field("kids", &self.inner.by_kid.keys().collect::<Vec<_>>())
            .field("issuer", &self.inner.issuer)
            .field("audience", &self.inner.audience)
            .field("sources", &self.inner.sources)
            .field("rules", &self.inner.rules.len())
            .finish()
    }
}

/// Builds a [`JwtAuth`].
#[derive(Default)]
pub struct JwtAuthBuilder {
    jwks: Option<(String, std::time::Duration, std::time::Duration)>,
    jwks_timeout: Option<std::time::Duration>,
    default_key: Option<Key>,
    by_kid: HashMap<String, Key>,
    issuer: Option<String>,
    audience: Vec<String>,
    leeway_seconds: Option<u64>,
    sources: Vec<TokenSource>,
    rules: Vec<ClaimRule>,
}

impl std::fmt::Debug for JwtAuthBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuthBuilder").finish_non_exhaustive()
    }
}

/// An error naming why a key could not be loaded.
fn key_error(what: &str, e: &jsonwebtoken::errors::Error) -> Error {
    Error::new(ErrorKind::Config, format!("{what}: {e}"))
}

fn family(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => "hmac",
        Algorithm::ES256 | Algorithm::ES384 => "ec",
        Algorithm::EdDSA => "ed",
        _ => "rsa",
    }
}

/// A verification key for `algorithm` from PEM text (RSA and PS algorithms: an RSA public key;
/// ES: an EC public key; EdDSA: an Ed25519 public key).
pub fn pem_key(algorithm: Algorithm, pem: &[u8]) -> Result<DecodingKey, Error> {
    match family(algorithm) {
        "rsa" => DecodingKey::from_rsa_pem(pem).map_err(|e| key_error("RSA public key", &e)),
        "ec" => DecodingKey::from_ec_pem(pem).map_err(|e| key_error("EC public key", &e)),
        "ed" => DecodingKey::from_ed_pem(pem).map_err(|e| key_error("Ed25519 public key", &e)),
        _ => Err(Error::new(
            ErrorKind::Config,
            "HMAC algorithms take a secret, not a PEM key",
        )),
    }
}

impl JwtAuthBuilder {
    /// The key for tokens without a `kid`: an HMAC secret.
    pub fn hmac_key(mut self, algorithm: Algorithm, secret: &[u8]) -> Self {
        self.default_key = Some(Key {
            algorithm,
            key: DecodingKey::from_secret(secret),
        });
        self
    }

    /// The key for tokens without a `kid` (see [`pem_key`]).
    pub fn key(mut self, algorithm: Algorithm, key: DecodingKey) -> Self {
        self.default_key = Some(Key { algorithm, key });
        self
    }

    /// A key chosen by tokens whose header carries `kid`.
    pub fn key_with_id(
        mut self,
        kid: impl Into<String>,
        algorithm: Algorithm,
        key: DecodingKey,
    ) -> Self {
        self.by_kid.insert(kid.into(), Key { algorithm, key });
        self
    }

    /// Keys (by `kid`) from a JWKS endpoint, fetched in the background (when a Tokio runtime runs
    /// the build), refreshed every `interval`, and again when a token names an unknown `kid`, at
    /// most once per `min_refetch`. Until a first set arrives, requests get 503; a failed or
    /// garbage refresh keeps the last good set.
    pub fn jwks(
        mut self,
        url: impl Into<String>,
        interval: std::time::Duration,
        min_refetch: std::time::Duration,
    ) -> Self {
        self.jwks = Some((url.into(), interval, min_refetch));
        self
    }

    /// How long one JWKS fetch may take (default 5 s); a request waiting for keys waits at most
    /// this long before its 503.
    pub fn jwks_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.jwks_timeout = Some(timeout);
        self
    }

    /// Require this `iss`.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Require one of these in `aud`.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience.push(audience.into());
        self
    }

    /// Clock skew allowed for `exp` and `nbf` (default 60 s).
    pub fn leeway_seconds(mut self, seconds: u64) -> Self {
        self.leeway_seconds = Some(seconds);
        self
    }

    /// Where tokens are looked for, in order (default: `Authorization: Bearer`).
    pub fn source(mut self, source: TokenSource) -> Self {
        self.sources.push(source);
        self
    }

    /// A rule every token's claims must satisfy.
    pub fn rule(mut self, rule: ClaimRule) -> Self {
        self.rules.push(rule);
        self
    }

    /// The verifier.
    pub fn build(self) -> JwtAuth {
        let sources = if self.sources.is_empty() {
            vec![TokenSource::Bearer]
        } else {
            self.sources
        };
        JwtAuth {
            inner: Arc::new(Inner {
                verified: VerifiedCache::default(),
                jwks: self.jwks.map(|(url, interval, min)| {
                    let timeout = self
                        .jwks_timeout
                        .unwrap_or(std::time::Duration::from_secs(5));
                    jwks::Jwks::new(url, interval, min, timeout)
                }),
                default_key: self.default_key,
                by_kid: self.by_kid,
                issuer: self.issuer,
                audience: self.audience,
                leeway_seconds: self.leeway_seconds.unwrap_or(60),
                sources,
                rules: self.rules,
            }),
        }
    }
}

fn unauthenticated(code: &str, message: &str) -> Error {
    Error::new(ErrorKind::Unauthenticated, message).with_upstream_code(code)
}

fn invalid(message: &str) -> Error {
    unauthenticated("InvalidToken", message)
}

const NO_KEY: &str = "no key for the token's key id";
const KEYS_NOT_LOADED: &str = "the signing keys are not available yet";

impl JwtAuth {
    /// Start building.
    pub fn builder() -> JwtAuthBuilder {
        JwtAuthBuilder::default()
    }

    /// A verifier with the same keys (a JWKS endpoint included: one key set, fetched once) and the
    /// same `iss`, `aud` and leeway checks, but its own token sources and claim rules: e.g. the
    /// admin API's, which accepts only bearer tokens whose claims pass stricter rules.
    pub fn with_rules(&self, sources: Vec<TokenSource>, rules: Vec<ClaimRule>) -> JwtAuth {
        let i = &self.inner;
        JwtAuth {
            inner: Arc::new(Inner {
                verified: VerifiedCache::default(),
                jwks: i.jwks.clone(),
                default_key: i.default_key.clone(),
                by_kid: i.by_kid.clone(),
                issuer: i.issuer.clone(),
                audience: i.audience.clone(),
                leeway_seconds: i.leeway_seconds,
                sources: if sources.is_empty() {
                    vec![TokenSource::Bearer]
                } else {
                    sources
                },
                rules,
            }),
        }
    }

    /// Find the request's token, verify it and apply the claim rules; the claims on success
    /// (shared: a remembered token's claims are not copied per request).
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Arc<Value>, Error> {
        let token = token::find(&self.inner.sources, headers, query)?;
        let claims = self.verify(&token)?;
        for rule in &self.inner.rules {
            if !rule.holds(&claims) {
                return Err(Error::new(
                    ErrorKind::AccessDenied,
                    format!(
                        "the token's `{}` claim does not satisfy a rule",
                        rule.claim()
                    ),
                )
                .with_upstream_code("ClaimRuleFailed"));
            }
        }
        Ok(claims)
    }

    /// [`authenticate`](Self::authenticate), and when the token names a key the JWKS does not
    /// have (or no key set arrived yet), fetch the set again first (throttled) and retry once.
    pub async fn authenticate_async(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Arc<Value>, Error> {
        match self.authenticate(headers, query) {
            Err(e)
                if matches!(e.message(), NO_KEY | KEYS_NOT_LOADED) && self.inner.jwks.is_some() =>
            {
                match &self.inner.jwks {
                    Some(j) if j.refetch().await => self.authenticate(headers, query),
                    _ => Err(e),
                }
            }
            other => other,
        }
    }

    /// Verify a token's signature and registered claims; its claims on success. Tokens that
    /// verified are remembered (by their SHA-256, at most 10,000, never past their `exp`), so a
    /// client sending the same token again costs a hash instead of a signature check.
    pub fn verify(&self, token: &str) -> Result<Arc<Value>, Error> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(invalid("the token is too long"));
        }
        let digest = VerifiedCache::digest(token);
        if let Some(claims) = self.inner.verified.get(&digest) {
            return Ok(claims);
        }
        let claims = Arc::new(self.verify_uncached(token)?);
        self.inner.verified.put(digest, &claims);
        Ok(claims)
    }

    fn verify_uncached(&self, token: &str) -> Result<Value, Error> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            invalid("the token is not a well-formed JWT with a supported algorithm")
        })?;
        let from_jwks;
        let key = match &header.kid {
            Some(kid) => match self.inner.by_kid.get(kid) {
                Some(k) => k,
                None => match &self.inner.jwks {
                    Some(j) => match j.lookup(kid) {
                        jwks::Lookup::Found(k) => {
                            from_jwks = k;
                            &from_jwks
                        }
                        jwks::Lookup::Unknown => return Err(invalid(NO_KEY)),
                        jwks::Lookup::NotLoaded => {
                            return Err(Error::new(ErrorKind::Unavailable, KEYS_NOT_LOADED)
                                .with_upstream_code("SigningKeysUnavailable"));
                        }
                    },
                    // A single configured key verifies tokens whatever their kid.
                    None if self.inner.by_kid.is_empty() => self
                        .inner
                        .default_key
                        .as_ref()
                        .ok_or_else(|| invalid(NO_KEY))?,
                    None => return Err(invalid(NO_KEY)),
                },
            },
            None => self
                .inner
                .default_key
                .as_ref()
                .ok_or_else(|| invalid(NO_KEY))?,
        };
        if header.alg != key.algorithm {
            return Err(invalid("the token's algorithm is not its key's"));
        }
        let mut v = Validation::new(key.algorithm);
        v.leeway = self.inner.leeway_seconds;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp"]);
        if let Some(iss) = &self.inner.issuer {
            v.set_issuer(&[iss]);
        }
        if self.inner.audience.is_empty() {
            v.validate_aud = false;
        } else {
            v.set_audience(&self.inner.audience);
        }
        jsonwebtoken::decode::<Value>(token, &key.key, &v)
            .map(|data| data.claims)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                invalid(match e.kind() {
                    K::ExpiredSignature => "the token has expired",
                    K::ImmatureSignature => "the token is not valid yet (nbf)",
                    K::InvalidIssuer => "the token's issuer is not accepted",
                    K::InvalidAudience => "the token's audience is not accepted",
                    K::MissingRequiredClaim(_) => "the token lacks a required claim (exp)",
                    K::InvalidSignature => "the token's signature does not verify",
                    _ => "the token could not be verified",
                })
            })
    }
}

/// Tokens that verified, by SHA-256 of the whole token (the token itself is never kept), with
/// their claims, until their `exp`. Bounded: when full, it is emptied (a burst of distinct tokens
/// costs their verification, never memory).
#[derive(Default)]
struct VerifiedCache {
    entries: std::sync::Mutex<Verified>,
}

/// Token digest -> (`exp`, claims).
type Verified = HashMap<[u8; 32], (u64, Arc<Value>)>;

impl VerifiedCache {
    const MAX_ENTRIES: usize = 10_000;

    fn digest(token: &str) -> [u8; 32] {
        use sha2::Digest as _;
        sha2::Sha256::digest(token.as_bytes()).into()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Verified> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, digest: &[u8; 32]) -> Option<Arc<Value>> {
        let now = jsonwebtoken::get_current_timestamp();
        let mut entries = self.lock();
        match entries.get(digest) {
            Some((exp, claims)) if now < *exp => Some(Arc::clone(claims)),
            Some(_) => {
                entries.remove(digest);
                None
            }
            None => None,
        }
    }

    fn put(&self, digest: [u8; 32], claims: &Arc<Value>) {
        let Some(exp) = claims.get("exp").and_then(Value::as_u64) else {
            return;
        };
        let mut entries = self.lock();
        if entries.len() >= Self::MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(digest, (exp, Arc::clone(claims)));
    }
}

#[cfg(test)]
mod tests;
