//! Keys from a JWKS endpoint: fetched in the background, refreshed on an interval and when a token
//! names an unknown `kid` (throttled, so tokens with random `kid`s cannot flood the issuer); the last
//! good set is kept when a refresh fails or returns garbage.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use super::Key;

/// What the key set says about a `kid`.
pub(super) enum Lookup {
    /// No key set has been fetched yet.
    NotLoaded,
    /// The set has no such key.
    Unknown,
    /// The key.
    Found(Key),
}

pub(super) struct Jwks {
    url: String,
    http: reqwest::Client,
    interval: Duration,
    /// Shortest time between two fetches asked for by requests (unknown `kid`, no keys yet).
    min_refetch: Duration,
    keys: RwLock<Option<Arc<HashMap<String, Key>>>>,
    last_fetch: Mutex<Option<Instant>>,
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks")
            .field("url", &self.url)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl Jwks {
    pub(super) fn new(
        url: String,
        interval: Duration,
        min_refetch: Duration,
        timeout: Duration,
    ) -> Arc<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .unwrap_or_default();
        let jwks = Arc::new(Self {
            url,
            http,
            interval,
            min_refetch,
            keys: RwLock::new(None),
            last_fetch: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(refresh_loop(Arc::downgrade(&jwks)));
        }
        jwks
    }

    pub(super) fn lookup(&self, kid: &str) -> Lookup {
        let keys = self
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match keys.as_ref() {
            None => Lookup::NotLoaded,
            Some(k) => k.get(kid).cloned().map_or(Lookup::Unknown, Lookup::Found),
        }
    }

    /// Fetch now, unless a fetch happened within `min_refetch` (then wait for a fetch under way);
    /// whether a retry with the key set may now succeed.
    pub(super) async fn refetch(&self) -> bool {
        let throttled = self
            .last_fetch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some_and(|t| t.elapsed() < self.min_refetch);
        if throttled {
            // A fetch may be under way (the first one, just after start): its keys are worth
            // waiting for, rather than a 503 or 401 while they are on the wire.
            drop(self.fetching.lock().await);
            return self
                .keys
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .is_some();
        }
        self.fetch().await
    }

    /// Fetch and, when the answer holds at least one usable key, replace the set.
    async fn fetch(&self) -> bool {
        let _one_at_a_time = self.fetching.lock().await;
        *self
            .last_fetch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
        let set = match self.http.get(&self.url).send().await {
            Ok(r) if r.status().is_success() => r
                .bytes()
                .await
                .ok()
                .and_then(|b| serde_json::from_slice::<JwkSet>(&b).ok()),
            _ => None,
        };
        let keys = set.as_ref().map(usable_keys).unwrap_or_default();
        if keys.is_empty() {
            tracing::warn!(url = %self.url, "JWKS fetch failed or held no usable key; keeping the last good set");
            return false;
        }
        tracing::debug!(url = %self.url, keys = keys.len(), "JWKS refreshed");
        *self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(keys));
        true
    }
}

/// Signature keys with a `kid`: RSA, EC (P-256, P-384) and Ed25519. Symmetric keys are never taken
/// from a JWKS.
fn usable_keys(set: &JwkSet) -> HashMap<String, Key> {
    let mut out = HashMap::new();
    for jwk in &set.keys {
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            continue;
        }
        let inferred = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => Some(Algorithm::ES256),
                EllipticCurve::P384 => Some(Algorithm::ES384),
                _ => None,
            },
            AlgorithmParameters::OctetKeyPair(_) => Some(Algorithm::EdDSA),
            AlgorithmParameters::OctetKey(_) => None,
        };
        let Some(inferred) = inferred else { continue };
        let algorithm = jwk
            .common
            .key_algorithm
            .and_then(|a| a.to_string().parse::<Algorithm>().ok())
            .unwrap_or(inferred);
        if super::family(algorithm) != super::family(inferred) {
            continue; // an `alg` that does not fit the key type
        }
        if let Ok(key) = DecodingKey::from_jwk(jwk) {
            out.insert(kid, Key { algorithm, key });
        }
    }
    out
}

/// Fetch at once, then every interval (sooner, every few seconds, while no set was ever fetched);
/// ends when the verifier is dropped.
async fn refresh_loop(jwks: Weak<Jwks>) {
    loop {
        let Some(j) = jwks.upgrade() else { return };
        let ok = j.fetch().await;
        let loaded = j
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some();
        let wait = if ok || loaded {
            j.interval
        } else {
            j.min_refetch.max(Duration::from_secs(1))
        };
        drop(j);
        tokio::time::sleep(wait).await;
    }
}
