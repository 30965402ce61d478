//! The admin API, on its own listener and off by default: purge the cache (one object, a prefix, a
//! bucket, everything, across all tiers) and read counters. Every request needs
//! `Authorization: Bearer <token>`: the admin token, or (with [`AdminApi::with_jwt`]) a JWT whose
//! claims pass the admin rules (`jwt.admin_claims`). A JWT that verifies but fails the rules gets
//! 403; anything else 401.
//!
//! - `POST /admin/purge?bucket=NAME&key=KEY`: one object (its record and all its slices)
//! - `POST /admin/purge?bucket=NAME&prefix=P`: every object of the bucket whose key starts with P
//! - `POST /admin/purge?bucket=NAME`: the whole bucket
//! - `POST /admin/purge`: everything
//! - `GET /admin/stats`: per-tier cache counters, coalescing counters, and per-bucket policy
//!   decisions
//! - `POST /admin/reload`: re-read the configuration file (see [`Reloader`](crate::Reloader))

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode, header};
use tokio::net::TcpListener;
use yatagarasu_core::{Error, ErrorKind};

use crate::auth::JwtAuth;
use crate::proxy::{Proxy, PurgeTarget};
use crate::server::{ServerOptions, serve_with};
use crate::stages::response::{ProxyBody, error_response, json_response};

/// The admin service.
#[derive(Clone)]
pub struct AdminApi {
    proxy: Proxy,
    /// The static admin token (`None`, or empty: JWTs only).
    token: Option<Arc<str>>,
    /// Verifies admin JWTs (its claim rules are the admin rules).
    jwt: Option<JwtAuth>,
    /// Answers `POST /admin/reload`.
    reloader: Option<Arc<crate::reload::Reloader>>,
}

impl std::fmt::Debug for AdminApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminApi").finish_non_exhaustive()
    }
}

fn json(status: StatusCode, v: &serde_json::Value) -> Response<ProxyBody> {
    json_response(status, v.to_string())
}

fn error(method: &Method, kind: ErrorKind, message: &str) -> Response<ProxyBody> {
    error_response(method, &Error::new(kind, message))
}

/// Compare without leaking the position of the first difference through timing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl AdminApi {
    /// Admin API for `proxy`, accepting `token` (an empty token is never accepted).
    pub fn new(proxy: Proxy, token: impl Into<Arc<str>>) -> Self {
        let token: Arc<str> = token.into();
        Self {
            proxy,
            token: (!token.is_empty()).then_some(token),
            jwt: None,
            reloader: None,
        }
    }

    /// Answer `POST /admin/reload` with `reloader`: 200 with the buckets served and the sections
    /// that need a restart, or 400 with every problem (nothing changed).
    pub fn with_reloader(mut self, reloader: Arc<crate::reload::Reloader>) -> Self {
        self.reloader = Some(reloader);
        self
    }

    /// Also accept bearer JWTs that `auth` accepts: build it with the admin claim rules, e.g. with
    /// [`JwtAuth::with_rules`] from the buckets' verifier.
    pub fn with_jwt(mut self, auth: JwtAuth) -> Self {
        self.jwt = Some(auth);
        self
    }

    /// `Ok` when the request may use the admin API.
    async fn authorize(&self, headers: &http::HeaderMap) -> Result<(), Error> {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if let (Some(sent), Some(token)) = (bearer, &self.token)
            && constant_time_eq(sent.as_bytes(), token.as_bytes())
        {
            return Ok(());
        }
        match (&self.jwt, bearer) {
            // Only a token shaped like a JWT is worth verifying.
            (Some(auth), Some(t)) if t.matches('.').count() == 2 => {
                auth.authenticate_async(headers, None).await.map(|_| ())
            }
            _ => Err(Error::new(
                ErrorKind::Unauthenticated,
                "a valid admin bearer token is required",
            )),
        }
    }

    /// Answer one request.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<ProxyBody> {
        if let Err(e) = self.authorize(req.headers()).await {
            // A 401 gets its `WWW-Authenticate` challenge there.
            return error_response(req.method(), &e);
        }
        match (req.method(), req.uri().path()) {
            (&Method::GET, "/admin/stats") => json(StatusCode::OK, &self.stats()),
            (&Method::POST, "/admin/purge") => {
                let q: Vec<(String, String)> =
                    url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
                        .into_owned()
                        .collect();
                let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
                let target = match (get("bucket"), get("key"), get("prefix")) {
                    (None, None, None) => PurgeTarget::All,
                    (Some(b), None, None) => PurgeTarget::Bucket(b),
                    (Some(b), Some(k), None) => PurgeTarget::Object(b, k),
                    (Some(b), None, Some(p)) => PurgeTarget::Prefix(b, p),
                    _ => {
                        return error(
                            req.method(),
                            ErrorKind::BadRequest,
                            "use bucket, bucket+key or bucket+prefix (key and prefix need a bucket; not both)",
                        );
                    }
                };
                match self.proxy.purge(&target).await {
                    Ok(report) => {
                        let mut body = serde_json::json!({ "purged": report.purged });
                        if let Some(fleet) = report.fleet {
                            body["fleet"] = match fleet {
                                Ok(()) => serde_json::json!({ "notified": true }),
                                Err(e) => serde_json::json!({ "notified": false, "error": e }),
                            };
                        }
                        json(StatusCode::OK, &body)
                    }
                    Err(e) => error_response(req.method(), &e),
                }
            }
            (&Method::POST, "/admin/reload") => match &self.reloader {
                None => error(
                    req.method(),
                    ErrorKind::NotFound,
                    "reload is not available (no configuration file)",
                ),
                Some(r) => {
                    let r = Arc::clone(r);
                    match tokio::task::spawn_blocking(move || r.reload()).await {
                        Ok(Ok(done)) => {
                            tracing::info!(buckets = done.buckets, restart_needed = ?done.restart_needed, "configuration reloaded (admin API)");
                            json(
                                StatusCode::OK,
                                &serde_json::json!({
                                    "reloaded": true,
                                    "buckets": done.buckets,
                                    "restart_needed": done.restart_needed,
                                }),
                            )
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(problems = ?e.problems(), "configuration reload refused (admin API)");
                            json(
                                StatusCode::BAD_REQUEST,
                                &serde_json::json!({"error": {
                                    "code": "InvalidConfig",
                                    "message": "the configuration was refused; the running one stays",
                                    "problems": e.problems(),
                                }}),
                            )
                        }
                        Err(_) => error(req.method(), ErrorKind::Internal, "the reload failed"),
                    }
                }
            },
            (m, "/admin/stats" | "/admin/purge" | "/admin/reload") => error(
                m,
                ErrorKind::MethodNotAllowed,
                "wrong method for this admin endpoint",
            ),
            (m, _) => error(m, ErrorKind::NotFound, "no such admin endpoint"),
        }
    }

    fn stats(&self) -> serde_json::Value {
        let tiers: Vec<serde_json::Value> = self
            .proxy
            .cache_stats()
            .unwrap_or_default()
            .into_iter()
            .map(|(name, s)| {
                serde_json::json!({
                    "tier": name, "hits": s.hits, "misses": s.misses, "inserts": s.inserts,
                    "evictions": s.evictions, "errors": s.errors, "entries": s.entries, "bytes": s.bytes,
                })
            })
            .collect();
        let c = self.proxy.coalescing_stats();
        let flights = |s: yatagarasu_coalesce::FlightStatsSnapshot| {
            serde_json::json!({
                "started": s.started, "joined": s.joined, "timed_out": s.timed_out,
                "failed": s.failed, "lagged": s.lagged, "refused_full": s.refused_full,
            })
        };
        let buckets: serde_json::Map<String, serde_json::Value> = self
            .proxy
            .bucket_cache_stats()
            .into_iter()
            .map(|(name, s)| {
                let v = serde_json::json!({
                    "hit": s.hit, "miss": s.miss, "revalidated": s.revalidated,
                    "stale": s.stale, "bypass": s.bypass, "negative_hit": s.negative_hit,
                });
                (name, v)
            })
            .collect();
        // Per bucket with a policy: its decisions (allowed and denied include cached ones).
        let policies: serde_json::Map<String, serde_json::Value> = self
            .proxy
            .routes()
            .into_iter()
            .filter_map(|r| {
                let s = r.policy?.stats();
                let v = serde_json::json!({
                    "allowed": s.allowed, "denied": s.denied, "cache_hits": s.cache_hits,
                    "engine_calls": s.engine_calls, "unavailable": s.unavailable,
                });
                Some((r.name, v))
            })
            .collect();
        let audit = self.proxy.audit_log().map(|a| {
            let s = a.stats();
            serde_json::json!({ "written": s.written, "dropped": s.dropped, "failed": s.failed })
        });
        // Per bucket with a circuit breaker: where it stands; with max_concurrent_requests: its
        // load (each origin asked once).
        let mut breakers = serde_json::Map::new();
        let mut concurrency = serde_json::Map::new();
        let mut replica_sets = serde_json::Map::new();
        for r in self.proxy.routes() {
            let o = r.origin.origin_stats();
            if let Some(set) = &o.replicas {
                replica_sets.insert(r.name.clone(), replica_set_json(set));
            }
            if let Some(s) = o.breaker {
                let v = serde_json::json!({
                    "state": s.state.as_str(), "opened": s.opened, "rejected": s.rejected,
                });
                breakers.insert(r.name.clone(), v);
            }
            if let Some(s) = o.concurrency {
                let v = serde_json::json!({
                    "limit": s.limit, "in_flight": s.in_flight, "timed_out": s.timed_out,
                });
                concurrency.insert(r.name, v);
            }
        }
        let fleet = self.proxy.fleet().map(|f| {
            let s = f.stats();
            serde_json::json!({
                "subscribed": s.subscribed, "announced": s.announced,
                "announce_failures": s.announce_failures, "applied": s.applied,
                "resynced_scopes": s.resynced_scopes, "leases_taken": s.leases_taken,
                "waits_served": s.waits_served, "waits_abandoned": s.waits_abandoned,
            })
        });
        serde_json::json!({
            "instance": self.proxy.instance_id(),
            "fleet": fleet,
            "audit_log": audit,
            "breakers": breakers,
            "origin_concurrency": concurrency,
            "replicas": replica_sets,
            "policies": policies,
            "cache": { "tiers": tiers, "buckets": buckets },
            "coalescing": {
                "objects": flights(c.objects),
                "slices": flights(c.slices),
                "heads": flights(c.heads),
                "wait_timeouts": c.wait_timeouts,
                "resumed": c.resumed,
                "buffered_bytes": c.buffered_bytes,
                "buffer_budget_bytes": c.buffer_budget_bytes,
            }
        })
    }
}

impl<B: Send + 'static> hyper::service::Service<Request<B>> for AdminApi {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(req).await) })
    }
}

/// Serve the admin API on `listener` until `shutdown` completes, with the same connection
/// handling as the proxy's listener (limit, timeouts, back-off on accept errors, drain).
pub async fn serve_admin(
    listener: TcpListener,
    api: AdminApi,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_with(
        listener,
        options,
        None,
        shutdown,
        None,
        move |req, _peer| {
            let api = api.clone();
            async move { api.handle(req).await }
        },
    )
    .await
}

/// A replica set's failovers and each replica's requests, probe result, breaker and load.
fn replica_set_json(set: &yatagarasu_s3::ReplicaSetStats) -> serde_json::Value {
    let replicas: Vec<_> = set
        .replicas
        .iter()
        .map(|r| {
            let o = &r.origin;
            serde_json::json!({
                "name": r.name,
                "priority": r.priority,
                "requests": r.requests,
                "reachable": r.reachable,
                "breaker": o.breaker.map(|b| serde_json::json!({
                    "state": b.state.as_str(), "opened": b.opened, "rejected": b.rejected,
                })),
                "concurrency": o.concurrency.map(|c| serde_json::json!({
                    "limit": c.limit, "in_flight": c.in_flight, "timed_out": c.timed_out,
                })),
                "retries": o.client.map(|c| c.retries),
                "body_resumes": o.client.map(|c| c.body_resumes),
            })
        })
        .collect();
    serde_json::json!({
        "failovers": set.failovers,
        "body_failovers": set.body_failovers,
        "version_mismatches": set.version_mismatches,
        "replicas": replicas,
    })
}
