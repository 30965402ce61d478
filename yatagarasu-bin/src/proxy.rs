//! The proxy: its builder, its long-lived state, the route table it swaps whole, and
//! [`Proxy::handle`], the one function that runs a request through the stages in order.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use http::header::HeaderValue;
use http::{Request, Response, StatusCode};
use yatagarasu_core::{Error, ErrorKind};

use crate::audit::{AuditError, AuditLog};
use crate::cache::ObjectCache;
use crate::fetch::{CoalescingStats, FetchOptions, Fetcher};
use crate::metrics::{MetricsRecorder, NoMetrics};
use crate::otel::{self, RequestTrace};
use crate::routes::{BucketCacheStats, BucketRoute, RouteTable};
use crate::stages::access::AccessControl;
use crate::stages::access_log::{self, AuditDraft, RequestLog};
use crate::stages::cors::{self, Next};
use crate::stages::response::{ProxyBody, error_response, json_response};
use crate::stages::routing::{self, Routed};
use crate::stages::{limits, object, request_id};
use crate::state::State;

// Header names as constants: inserting by `&str` copies a name that is not one of the standard
// ones into a fresh allocation on every response.
const X_CACHE: http::HeaderName = http::HeaderName::from_static("x-cache");
const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// The client's address, as a request extension, for servers that mount the [`Proxy`] themselves
/// ([`serve`](crate::serve) passes it without one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// Builds a [`Proxy`].
#[derive(Debug)]
pub struct ProxyBuilder {
    routes: Vec<BucketRoute>,
    max_uri_bytes: usize,
    ready_cache: Duration,
    probe_timeout: Duration,
    fetch: FetchOptions,
    cache: Option<ObjectCache>,
    metrics: Arc<dyn MetricsRecorder>,
    prometheus: Option<crate::prometheus::PrometheusMetrics>,
    trusted_proxies: Vec<ipnet::IpNet>,
    audit: Option<AuditLog>,
    tracing: Option<crate::otel::Tracing>,
    limits: crate::ratelimit::ProxyLimits,
    instance_id: Option<String>,
    fleet: Option<crate::fleet::Fleet>,
}

impl Default for ProxyBuilder {
    fn default() -> Self {
        Self {
            cache: None,
            fetch: FetchOptions::default(),
            routes: Vec::new(),
            max_uri_bytes: 8 * 1024,
            ready_cache: Duration::from_secs(5),
            probe_timeout: Duration::from_secs(5),
            metrics: Arc::new(NoMetrics),
            prometheus: None,
            trusted_proxies: Vec::new(),
            audit: None,
            tracing: None,
            limits: crate::ratelimit::ProxyLimits::default(),
            instance_id: None,
            fleet: None,
        }
    }
}

impl ProxyBuilder {
    /// Serve a bucket under a path prefix.
    pub fn route(mut self, route: BucketRoute) -> Self {
        self.routes.push(route);
        self
    }

    /// Proxies (networks) in front of this one: only from these peers are `Forwarded` and
    /// `X-Forwarded-For` believed when IP filters decide who the client is.
    pub fn trusted_proxies(mut self, networks: Vec<ipnet::IpNet>) -> Self {
        self.trusted_proxies = networks;
        self
    }

    /// Longest request target (path and query) accepted; longer gets 414 (default 8 KiB).
    pub fn max_uri_bytes(mut self, n: usize) -> Self {
        self.max_uri_bytes = n;
        self
    }

    /// How long a `/ready` probe result is reused (default 5 s), so probes cannot flood the origins.
    pub fn ready_cache(mut self, d: Duration) -> Self {
        self.ready_cache = d;
        self
    }

    /// How long one readiness probe may take before the bucket counts as down (default 5 s).
    pub fn probe_timeout(mut self, d: Duration) -> Self {
        self.probe_timeout = d;
        self
    }

    /// Cache objects in these tiers (see `yatagarasu_cache`). Stale records and their slices are kept
    /// `stale_retention` past freshness so they can be revalidated without moving bodies.
    pub fn cache(
        mut self,
        tiers: yatagarasu_cache::TieredCache,
        stale_retention: Duration,
    ) -> Self {
        self.cache = Some(ObjectCache::new(tiers, stale_retention, Duration::ZERO));
        self
    }

    /// Like [`cache`](Self::cache), and remember 404 answers for `negative_ttl` (zero: never).
    pub fn cache_with_negative_ttl(
        mut self,
        tiers: yatagarasu_cache::TieredCache,
        stale_retention: Duration,
        negative_ttl: Duration,
    ) -> Self {
        self.cache = Some(ObjectCache::new(tiers, stale_retention, negative_ttl));
        self
    }

    /// Slice size, flight buffer and subscriber limit of origin fetches.
    pub fn fetch_options(mut self, options: FetchOptions) -> Self {
        self.fetch = options;
        self
    }

    /// Report every finished request to `recorder` (default: [`NoMetrics`]).
    pub fn metrics(mut self, recorder: Arc<dyn MetricsRecorder>) -> Self {
        self.metrics = recorder;
        self
    }

    /// Prometheus metrics: every request and origin request counted, and `GET /metrics` answered
    /// on the proxy's own listener (replaces [`metrics`](Self::metrics)).
    pub fn prometheus(mut self, metrics: crate::prometheus::PrometheusMetrics) -> Self {
        self.metrics = Arc::new(metrics.clone());
        self.prometheus = Some(metrics);
        self
    }

    /// Limit bucket requests of all clients together to `rate` (429 with `Retry-After` past it).
    pub fn global_rate_limit(mut self, rate: crate::ratelimit::Rate) -> Self {
        self.limits.global = Some(crate::ratelimit::RateLimit::new(rate));
        self
    }

    /// Limit each client address (as [`trusted_proxies`](Self::trusted_proxies) decides it) to
    /// `rate`, tracking at most `max_clients` addresses at once.
    pub fn per_client_rate_limit(mut self, rate: crate::ratelimit::Rate, max_clients: u64) -> Self {
        self.limits.per_client = Some(crate::ratelimit::PerClientLimit::new(rate, max_clients));
        self
    }

    /// Write an audit record for every request (see [`crate::audit`]).
    pub fn audit(mut self, audit: AuditLog) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Trace requests with OpenTelemetry (see [`crate::otel`]; the `otel` cargo feature).
    #[cfg(feature = "otel")]
    pub fn tracing(mut self, tracing: crate::otel::OtelTracing) -> Self {
        self.tracing = Some(tracing);
        self
    }

    /// What this instance calls itself in admin stats, metrics (`yatagarasu_instance_info`) and
    /// fleet messages (default: the host name).
    pub fn instance_id(mut self, id: impl Into<String>) -> Self {
        self.instance_id = Some(id.into());
        self
    }

    /// Share purges with the other instances of a fleet (see [`crate::fleet`]): purges made here
    /// are announced, and others' purges are applied to this instance's local tiers (the listener
    /// starts with [`build`](Self::build), which must then run inside a Tokio runtime). Needs a
    /// cache.
    pub fn fleet(mut self, fleet: crate::fleet::Fleet) -> Self {
        self.fleet = Some(fleet);
        self
    }

    /// Finish.
    pub fn build(self) -> Proxy {
        let instance_id: Arc<str> = match (&self.instance_id, &self.fleet) {
            (Some(id), _) => id.as_str().into(),
            (None, Some(f)) => f.instance_id().into(),
            (None, None) => crate::fleet::default_instance_id().into(),
        };
        let mut cache = self.cache;
        let fleet = match (self.fleet, cache.take()) {
            (Some(f), Some(c)) => {
                if !f.invalidation() {
                    // Coalescing only: nothing to listen for.
                } else if tokio::runtime::Handle::try_current().is_ok() {
                    let _listener = f.listen(&c);
                } else {
                    tracing::warn!(
                        "fleet: built outside a Tokio runtime; not listening for purges"
                    );
                }
                cache = Some(c.with_fleet(f.clone()));
                Some(f)
            }
            (_, c) => {
                cache = c;
                None
            }
        };
        Proxy {
            state: Arc::new(State {
                instance_id,
                fleet,
                cache,
                fetcher: Fetcher::new(self.fetch),
                revalidations: yatagarasu_coalesce::Group::new(),
                metrics: self.metrics,
                prometheus: self.prometheus.clone(),
                audit: self.audit,
                tracing: self.tracing.clone(),
                live: Arc::default(),
                ready_cache: self.ready_cache,
                probe_timeout: self.probe_timeout,
                ready: tokio::sync::Mutex::new(None),
            }),
            routes: Arc::new(RwLock::new(Arc::new(
                RouteTable::new(self.routes, None)
                    .measured(self.prometheus.as_ref())
                    .traced(self.tracing.as_ref()),
            ))),
            access: Arc::new({
                let mut access = AccessControl::with_trusted_proxies(self.trusted_proxies);
                access.limits = Arc::new(self.limits);
                access
            }),
            max_uri_bytes: self.max_uri_bytes,
        }
    }
}

/// The read-only S3 proxy as a hyper (and tower) service. Cheap to clone; mount it in any server, or
/// use [`serve`](crate::serve).
#[derive(Debug, Clone)]
pub struct Proxy {
    state: Arc<State>,
    /// The current route table; a request takes the table once and keeps it to its end.
    routes: Arc<RwLock<Arc<RouteTable>>>,
    access: Arc<AccessControl>,
    /// Longest request target accepted (the builder's, or less where a listener asks for less).
    max_uri_bytes: usize,
}

impl Proxy {
    /// Start building a proxy.
    pub fn builder() -> ProxyBuilder {
        ProxyBuilder::default()
    }

    /// The route table now (requests already running keep theirs).
    fn table(&self) -> Arc<RouteTable> {
        let guard = self
            .routes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(&guard)
    }

    /// Replace every route at once. Requests already running finish on the routes they started
    /// with; the cache, coalescing groups and counters of buckets that keep their name carry over.
    pub fn replace_routes(&self, routes: Vec<BucketRoute>) {
        let mut guard = self
            .routes
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let next = RouteTable::new(routes, Some(&guard))
            .measured(self.state.prometheus.as_ref())
            .traced(self.state.tracing.as_ref());
        *guard = Arc::new(next);
    }

    /// This proxy, accepting request targets of at most `n` bytes where its own limit is larger
    /// (a listener's limit, see `ServerOptions::max_uri_bytes`). Shares everything else.
    pub(crate) fn with_max_uri_bytes_at_most(mut self, n: usize) -> Self {
        self.max_uri_bytes = self.max_uri_bytes.min(n);
        self
    }

    /// Requests in flight now, and open connections by protocol (connections are counted by
    /// [`serve`](crate::serve); a proxy mounted in another server counts requests only).
    pub fn live_stats(&self) -> crate::metrics::LiveStats {
        self.state.live.snapshot()
    }

    /// The Prometheus metrics given to the builder, if any.
    pub fn prometheus_metrics(&self) -> Option<crate::prometheus::PrometheusMetrics> {
        self.state.prometheus.clone()
    }

    /// The OpenTelemetry tracer given to the builder, if any (flush it before exiting).
    #[cfg(feature = "otel")]
    pub fn otel_tracing(&self) -> Option<&crate::otel::OtelTracing> {
        self.state.tracing.as_ref()
    }

    /// Requests refused by rate limits so far: proxy-wide (`global`, `per_ip`) and per bucket.
    pub fn rate_limited(&self) -> Vec<(&'static str, Option<String>, u64)> {
        use crate::ratelimit::Scope;
        let l = &self.access.limits;
        let mut out = Vec::new();
        if let Some(g) = &l.global {
            out.push((Scope::Global.as_str(), None, g.refused()));
        }
        if let Some(p) = &l.per_client {
            out.push((Scope::PerClient.as_str(), None, p.refused()));
        }
        for r in self.routes() {
            if let Some(b) = &r.rate_limit {
                out.push((Scope::Bucket.as_str(), Some(r.name.clone()), b.refused()));
            }
        }
        out
    }

    /// The audit log given to the builder, if any.
    pub fn audit_log(&self) -> Option<&AuditLog> {
        self.state.audit.as_ref()
    }

    pub(crate) fn live(&self) -> Arc<crate::metrics::Live> {
        Arc::clone(&self.state.live)
    }

    /// Counters of shared origin fetches (flights started, joined, timed out, failed).
    pub fn coalescing_stats(&self) -> CoalescingStats {
        self.state.fetcher.stats()
    }

    /// Cache outcomes per bucket (by config name).
    pub fn bucket_cache_stats(&self) -> Vec<(String, BucketCacheStats)> {
        let table = self.table();
        let mut out: Vec<(String, BucketCacheStats)> = table
            .mounted()
            .iter()
            .map(|m| (m.route.name.clone(), m.counters.snapshot()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Each cache tier's counters (`None` without a cache).
    pub fn cache_stats(&self) -> Option<Vec<(&'static str, yatagarasu_cache::TierStats)>> {
        self.state.cache.as_ref().map(|c| c.tiers().stats())
    }

    /// Remove cached objects across all tiers; returns how many entries were removed.
    pub async fn purge(&self, target: &PurgeTarget) -> Result<PurgeReport, Error> {
        let cache = self
            .state
            .cache
            .as_ref()
            .ok_or_else(|| Error::new(ErrorKind::NotFound, "this proxy has no cache"))?;
        let table = self.table();
        let route = |name: &str| {
            table
                .by_name(name)
                .map(|m| m.target.id.to_string())
                .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no bucket named `{name}`")))
        };
        use crate::fleet::FleetPurge;
        let (purged, announcement) = match target {
            PurgeTarget::All => (cache.purge_all().await, FleetPurge::All),
            PurgeTarget::Bucket(b) => {
                let origin = route(b)?;
                let n = cache.purge_prefix(&origin, "").await;
                let prefix = String::new();
                (n, FleetPurge::Prefix { origin, prefix })
            }
            PurgeTarget::Prefix(b, p) => {
                let origin = route(b)?;
                let n = cache.purge_prefix(&origin, p).await;
                let prefix = p.clone();
                (n, FleetPurge::Prefix { origin, prefix })
            }
            PurgeTarget::Object(b, k) => {
                let origin = route(b)?;
                let n = cache.purge_object(&origin, k).await;
                let key = k.clone();
                (n, FleetPurge::Object { origin, key })
            }
        };
        if let Some(f) = self.state.fleet.as_ref().filter(|f| f.coalescing()) {
            f.drop_claims(&announcement.claims_prefix()).await;
        }
        let fleet = match self.state.fleet.as_ref().filter(|f| f.invalidation()) {
            Some(f) => Some(f.announce(announcement).await),
            None => None,
        };
        Ok(PurgeReport { purged, fleet })
    }

    /// This instance's id (see [`ProxyBuilder::instance_id`]).
    pub fn instance_id(&self) -> &str {
        &self.state.instance_id
    }

    /// Its fleet membership, when it has one.
    pub fn fleet(&self) -> Option<&crate::fleet::Fleet> {
        self.state.fleet.as_ref()
    }

    /// The mounted routes, longest prefix first.
    pub fn routes(&self) -> Vec<BucketRoute> {
        self.table()
            .mounted()
            .iter()
            .map(|m| m.route.clone())
            .collect()
    }

    /// Answer one request. Never fails: errors become JSON responses.
    ///
    /// The stages, in order: limits, request id, routing, access control, CORS and the method
    /// policy, then for objects: preconditions and range plan, cache, shared fetch, response; and
    /// for every answer: CORS headers, `x-request-id`, the access log and metrics.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<ProxyBody> {
        let client_addr = req.extensions().get::<ClientAddr>().map(|a| a.0);
        self.handle_from(req, client_addr).await
    }

    /// [`handle`](Self::handle), with the client's address given by the server that accepted the
    /// connection (no request extension to allocate).
    pub(crate) async fn handle_from<B>(
        &self,
        req: Request<B>,
        client_addr: Option<SocketAddr>,
    ) -> Response<ProxyBody> {
        // A read-only proxy never reads request bodies.
        let (req, _body) = req.into_parts();
        let started = Instant::now();
        let arrived = if self.state.audit.is_some() {
            SystemTime::now()
        } else {
            SystemTime::UNIX_EPOCH
        };
        let in_flight = crate::metrics::InFlight::enter(&self.state.live);
        let within_limits = limits::check_target(&req.uri, self.max_uri_bytes);
        let id = request_id::assign(&req.headers);
        let table = self.table();

        let mut bucket = None;
        let mut cache_status = None;
        let audit = self.state.audit.as_ref();
        let mut principal = None;
        let mut key = None;
        let tracing = self.state.tracing.as_ref();
        let trace = RequestTrace::start(tracing, &req.method, req.uri.path(), &req.headers);
        let answer: Result<Response<ProxyBody>, Error> = trace
            .instrument(async {
                within_limits?;
                let ctx = match routing::route(&table, req.uri.path(), &id, client_addr)? {
                    Routed::Health => {
                        return Ok(json_response(StatusCode::OK, r#"{"status":"ok"}"#));
                    }
                    Routed::Ready => return Ok(self.ready().await),
                    Routed::Metrics => return self.metrics_response(&req.headers),
                    Routed::Bucket(ctx) => ctx,
                };
                bucket = Some(ctx.route);
                trace.routed(
                    &req.method,
                    &ctx.route.route.path_prefix,
                    &ctx.route.route.name,
                );
                if audit.is_some() {
                    key = Some(ctx.key.to_string());
                }
                let check = self.access.check(&ctx, &req);
                let claims =
                    otel::in_span(tracing, "access_control", otel::Kind::Internal, &[], check)
                        .await?;
                if audit.is_some() {
                    principal = claims.as_deref().and_then(subject);
                }
                let method = match cors::run(&ctx, &req)? {
                    Next::Answered(resp) => return Ok(resp),
                    Next::Object(method) => method,
                };
                let served = object::serve(&self.state, &ctx, method, &req.headers).await;
                cache_status = served.cache;
                served.response
            })
            .await
            .map_err(|e| {
                let e = e.with_request_id(id.clone());
                match bucket {
                    Some(m) => e.with_bucket(m.route.name.clone()),
                    None => e,
                }
            });
        if let (Some(m), Some(status)) = (bucket, cache_status) {
            m.counters.count(status);
        }
        let mut audit_error = None;
        let mut resp = answer.unwrap_or_else(|e| {
            if audit.is_some() {
                audit_error = Some(AuditError {
                    code: e.code().to_owned(),
                    message: e.message().to_owned(),
                });
            }
            error_response(&req.method, &e)
        });
        if let Some(status) = cache_status {
            resp.headers_mut()
                .insert(X_CACHE, HeaderValue::from_static(status.header_value()));
        }
        if let Some(m) = bucket {
            cors::apply(&m.route, &req.method, &req.headers, resp.headers_mut());
        }
        if let Ok(v) = HeaderValue::from_str(&id) {
            resp.headers_mut().insert(X_REQUEST_ID, v);
        }
        let log = RequestLog {
            method: req.method,
            path: req.uri.path().to_owned(),
            bucket: bucket.map(|m| m.route.name.clone()),
            request_id: id,
            cache: cache_status,
            started,
            trace,
            audit: audit.map(|log| {
                Box::new(AuditDraft {
                    log: log.clone(),
                    time: arrived,
                    client_ip: self.access.client_ip(client_addr, &req.headers),
                    principal,
                    key,
                    error: audit_error,
                })
            }),
            _in_flight: in_flight,
        };
        access_log::wrap(resp, log, Arc::clone(&self.state.metrics))
    }

    /// `/metrics`: Prometheus text, or OpenMetrics when the scraper asks for it; 404 without
    /// Prometheus metrics.
    fn metrics_response(&self, headers: &http::HeaderMap) -> Result<Response<ProxyBody>, Error> {
        let metrics = self.state.prometheus.as_ref().ok_or_else(|| {
            Error::new(ErrorKind::NotFound, "metrics are not enabled on this proxy")
        })?;
        Ok(crate::prometheus::response(metrics, self, headers))
    }

    /// `/ready`: every bucket's origin answered a probe within the cache window.
    async fn ready(&self) -> Response<ProxyBody> {
        let state = &self.state;
        let table = self.table();
        let mut cached = state.ready.lock().await;
        let fresh = cached
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < state.ready_cache);
        if !fresh {
            let probes = table.mounted().iter().map(|m| async move {
                // `/ready` is unauthenticated: it says each bucket's state and error code; the
                // origin's message (account ids, role ARNs, addresses) goes to the log only.
                let outcome =
                    match tokio::time::timeout(state.probe_timeout, m.route.origin.probe()).await {
                        Ok(Ok(())) => None,
                        Ok(Err(e)) => {
                            tracing::warn!(bucket = %m.route.name, error = %e, "readiness probe failed");
                            Some(e.code().to_owned())
                        }
                        Err(_) => {
                            tracing::warn!(bucket = %m.route.name, timeout = ?state.probe_timeout, "readiness probe timed out");
                            Some("ProbeTimeout".to_owned())
                        }
                    };
                (m.route.name.clone(), outcome)
            });
            let results = futures_util::future::join_all(probes).await;
            *cached = Some((Instant::now(), results));
        }
        let results = cached
            .as_ref()
            .map(|(_, r)| r.as_slice())
            .unwrap_or_default();
        let all_ok = results.iter().all(|(_, e)| e.is_none());
        let mut buckets = serde_json::Map::new();
        for (name, err) in results {
            let mut v = match err {
                None => serde_json::json!({ "ready": true }),
                Some(code) => serde_json::json!({ "ready": false, "code": code }),
            };
            // The breaker's state now (the probe itself bypasses it); with replicas, each one's
            // breaker and whether this probe reached it.
            if let Some(m) = table.by_name(name) {
                let stats = m.route.origin.origin_stats();
                if let Some(b) = stats.breaker {
                    v["breaker"] = serde_json::json!(b.state.as_str());
                }
                if let Some(set) = stats.replicas {
                    let replicas: Vec<_> = set
                        .replicas
                        .iter()
                        .map(|r| {
                            serde_json::json!({
                                "name": r.name,
                                "priority": r.priority,
                                "reachable": r.reachable,
                                "breaker": r.origin.breaker.map(|b| b.state.as_str()),
                            })
                        })
                        .collect();
                    v["replicas"] = serde_json::json!(replicas);
                }
            }
            buckets.insert(name.clone(), v);
        }
        let body = serde_json::json!({ "status": if all_ok { "ready" } else { "not_ready" }, "buckets": buckets });
        let status = if all_ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        json_response(status, body.to_string())
    }
}

/// The token's `sub` claim as the audit log's principal (a string, or a number written out).
fn subject(claims: &serde_json::Value) -> Option<String> {
    match claims.get("sub")? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// What a purge did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PurgeReport {
    /// Entries removed from this instance's tiers and the shared one (records and slices, per
    /// tier; an object's record counts once).
    pub purged: u64,
    /// With a fleet: whether the other instances were told (`Err` says why not).
    pub fleet: Option<Result<(), String>>,
}

/// What to purge from the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PurgeTarget {
    /// Everything.
    All,
    /// Every object of a bucket (by its config name).
    Bucket(String),
    /// Objects of a bucket whose key starts with a prefix.
    Prefix(String, String),
    /// One object of a bucket.
    Object(String, String),
}

/// As a `tower::Service`, for axum, tonic and other tower-based servers (see `examples/axum_embed.rs`).
impl<B: Send + 'static> tower_service::Service<Request<B>> for Proxy {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(req).await) })
    }
}

impl<B: Send + 'static> hyper::service::Service<Request<B>> for Proxy {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(req).await) })
    }
}
