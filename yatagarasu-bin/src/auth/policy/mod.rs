//! Authorization policies: once a request's token is verified (or for a bucket without tokens),
//! a policy decides whether this request may read this object.
//!
//! Three engines, one [`Policy`] around them:
//! - [`Opa`]: an [Open Policy Agent](https://www.openpolicyagent.org/) server, asked through its
//!   REST data API (`POST /v1/data/<path>` with `{"input": ...}`; allowed when `result` is `true`).
//! - [`OpenFga`]: an [OpenFGA](https://openfga.dev/) server, asked through its Check API whether
//!   `user:<claim>` has the relation `viewer` on `object:<bucket>/<key>`.
//! - [`Rego`]: a Rego policy evaluated in the process (with [regorus](https://docs.rs/regorus)),
//!   no policy server to run.
//!
//! [`Policy`] adds what every request path needs around an engine: decisions cached per input for a
//! TTL (allow and deny alike; failures never), concurrent identical checks coalesced into one call,
//! a timeout, and a [`FailMode`] for when the engine cannot answer.
//!
//! ```
//! use yatagarasu::auth::{Policy, PolicyInput, Rego};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let rego = Rego::new(
//!     "authz.rego",
//!     r#"
//!     package yatagarasu.authz
//!     default allow := false
//!     allow if input.claims.role == "reader"
//!     "#,
//!     "data.yatagarasu.authz.allow",
//! )
//! .unwrap();
//! let policy = Policy::builder(rego).build();
//! let reader = PolicyInput::new("GET", "media", "a.txt").claims(serde_json::json!({"role": "reader"}));
//! assert!(policy.authorize(&reader).await.is_ok());
//! let guest = PolicyInput::new("GET", "media", "a.txt").claims(serde_json::json!({"role": "guest"}));
//! assert_eq!(policy.authorize(&guest).await.unwrap_err().code(), "PolicyDenied");
//! # }
//! ```

mod input;
mod rego;
mod servers;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use yatagarasu_coalesce::{FlightError, Group};
use yatagarasu_core::{Error, ErrorKind};

pub use input::{INPUT_HEADERS, PolicyInput};
pub use rego::Rego;
pub use servers::{Opa, OpenFga};

/// What to do when the policy engine cannot answer (down, too slow, a malformed answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FailMode {
    /// Refuse the request with 503 `PolicyUnavailable` (the default).
    #[default]
    Closed,
    /// Let the request through, logging a warning.
    Open,
}

/// The engine a [`Policy`] asks. Built from [`Opa`], [`OpenFga`] or [`Rego`] (each converts into it).
#[derive(Debug)]
#[non_exhaustive]
pub enum PolicyEngine {
    /// An OPA server.
    Opa(Opa),
    /// An OpenFGA server.
    OpenFga(OpenFga),
    /// Rego in the process.
    Rego(Rego),
}

impl From<Opa> for PolicyEngine {
    fn from(e: Opa) -> Self {
        Self::Opa(e)
    }
}

impl From<OpenFga> for PolicyEngine {
    fn from(e: OpenFga) -> Self {
        Self::OpenFga(e)
    }
}

impl From<Rego> for PolicyEngine {
    fn from(e: Rego) -> Self {
        Self::Rego(e)
    }
}

/// One question for an engine: the decision-cache key, and what to send (built only when the
/// decision is not cached).
pub(crate) struct Question {
    key: [u8; 32],
    body: Option<serde_json::Value>,
}

impl PolicyEngine {
    /// The question for `input`, or the reason the engine must say no without being asked
    /// (OpenFGA: no subject claim, an object name it cannot express).
    fn question(&self, input: &PolicyInput) -> Result<Question, Error> {
        match self {
            Self::OpenFga(f) => f.question(input),
            Self::Opa(_) | Self::Rego(_) => Ok(Question {
                key: input.digest(),
                body: None,
            }),
        }
    }

    async fn ask(&self, body: serde_json::Value, timeout: Duration) -> Result<bool, String> {
        match self {
            Self::Opa(o) => o.ask(body, timeout).await,
            Self::OpenFga(f) => f.ask(body, timeout).await,
            Self::Rego(r) => r.ask(body, timeout),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Opa(_) => "opa",
            Self::OpenFga(_) => "openfga",
            Self::Rego(_) => "rego",
        }
    }
}

/// Counters of a [`Policy`]'s decisions, for stats and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PolicyStats {
    /// Requests allowed (cached decisions included).
    pub allowed: u64,
    /// Requests denied (cached decisions included).
    pub denied: u64,
    /// Decisions answered from the decision cache.
    pub cache_hits: u64,
    /// Calls made to the engine (each may answer many coalesced requests).
    pub engine_calls: u64,
    /// Requests the engine could not decide (refused with 503, or let through when failing open).
    pub unavailable: u64,
}

#[derive(Debug, Default)]
struct Counters {
    allowed: AtomicU64,
    denied: AtomicU64,
    cache_hits: AtomicU64,
    engine_calls: Arc<AtomicU64>,
    unavailable: AtomicU64,
}

/// A policy engine with a decision cache, coalescing, a timeout and a fail mode. Cheap to clone.
#[derive(Clone)]
pub struct Policy {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Arc<PolicyEngine>,
    decisions: Option<moka::sync::Cache<[u8; 32], bool>>,
    flights: Group<[u8; 32], bool, String>,
    timeout: Duration,
    fail_mode: FailMode,
    counters: Counters,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("engine", &self.inner.engine)
            .field("timeout", &self.inner.timeout)
            .field("fail_mode", &self.inner.fail_mode)
            .field("cached", &self.inner.decisions.is_some())
            .finish()
    }
}

/// Builds a [`Policy`].
#[derive(Debug)]
pub struct PolicyBuilder {
    engine: PolicyEngine,
    timeout: Duration,
    cache_ttl: Duration,
    cache_capacity: u64,
    fail_mode: FailMode,
}

impl PolicyBuilder {
    /// How long the engine may take to answer (default 100 ms): the HTTP request to a policy
    /// server, or the evaluation of a Rego policy.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long a decision is remembered for the same input (default 60 s; zero: never).
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// How many decisions are remembered at most (default 100,000).
    pub fn cache_capacity(mut self, entries: u64) -> Self {
        self.cache_capacity = entries;
        self
    }

    /// What to do when the engine cannot answer (default [`FailMode::Closed`]).
    pub fn fail_mode(mut self, mode: FailMode) -> Self {
        self.fail_mode = mode;
        self
    }

    /// The policy.
    pub fn build(self) -> Policy {
        let decisions = (!self.cache_ttl.is_zero()).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(self.cache_capacity)
                .time_to_live(self.cache_ttl)
                .build()
        });
        Policy {
            inner: Arc::new(Inner {
                engine: Arc::new(self.engine),
                decisions,
                flights: Group::new(),
                timeout: self.timeout,
                fail_mode: self.fail_mode,
                counters: Counters::default(),
            }),
        }
    }
}

/// 403: the policy said no.
fn denied() -> Error {
    Error::new(
        ErrorKind::AccessDenied,
        "the authorization policy denies this request",
    )
    .with_upstream_code("PolicyDenied")
}

impl Policy {
    /// Start building a policy around `engine`.
    pub fn builder(engine: impl Into<PolicyEngine>) -> PolicyBuilder {
        PolicyBuilder {
            engine: engine.into(),
            timeout: Duration::from_millis(100),
            cache_ttl: Duration::from_secs(60),
            cache_capacity: 100_000,
            fail_mode: FailMode::Closed,
        }
    }

    /// `Ok` when the policy allows `input`; 403 `PolicyDenied` when it does not; when the engine
    /// cannot answer, 503 `PolicyUnavailable` (fail closed) or `Ok` (fail open).
    pub async fn authorize(&self, input: &PolicyInput) -> Result<(), Error> {
        let inner = &self.inner;
        let question = match inner.engine.question(input) {
            Ok(q) => q,
            Err(e) => {
                inner.counters.denied.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        let cached = inner.decisions.as_ref().and_then(|c| c.get(&question.key));
        let allowed = if let Some(allowed) = cached {
            inner.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
            Ok(allowed)
        } else {
            let engine = Arc::clone(&inner.engine);
            let calls = Arc::clone(&inner.counters.engine_calls);
            let timeout = inner.timeout;
            let body = question.body.unwrap_or_else(|| input.to_json());
            let outcome = inner
                .flights
                .run(question.key, move || async move {
                    calls.fetch_add(1, Ordering::Relaxed);
                    engine.ask(body, timeout).await
                })
                .await;
            match outcome.result {
                Ok(allowed) => {
                    if let Some(c) = &inner.decisions {
                        c.insert(question.key, allowed);
                    }
                    Ok(allowed)
                }
                Err(FlightError::Failed(reason)) => Err(reason),
                Err(other) => Err(other.to_string()),
            }
        };
        match allowed {
            Ok(true) => {
                inner.counters.allowed.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Ok(false) => {
                inner.counters.denied.fetch_add(1, Ordering::Relaxed);
                Err(denied())
            }
            Err(reason) => {
                inner.counters.unavailable.fetch_add(1, Ordering::Relaxed);
                let engine = inner.engine.name();
                match inner.fail_mode {
                    FailMode::Open => {
                        tracing::warn!(engine, %reason, "authorization policy unavailable; allowing (fail mode open)");
                        Ok(())
                    }
                    FailMode::Closed => {
                        tracing::warn!(engine, %reason, "authorization policy unavailable; refusing (fail mode closed)");
                        Err(Error::new(
                            ErrorKind::Unavailable,
                            "the authorization policy could not be evaluated; retry later",
                        )
                        .with_upstream_code("PolicyUnavailable"))
                    }
                }
            }
        }
    }

    /// Decision counters so far.
    pub fn stats(&self) -> PolicyStats {
        let c = &self.inner.counters;
        PolicyStats {
            allowed: c.allowed.load(Ordering::Relaxed),
            denied: c.denied.load(Ordering::Relaxed),
            cache_hits: c.cache_hits.load(Ordering::Relaxed),
            engine_calls: c.engine_calls.load(Ordering::Relaxed),
            unavailable: c.unavailable.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests;
