//! The proxy service: one request in, one response out.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::TryStreamExt as _;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use yatagarasu_core::{
    ContentRange, Error, ErrorKind, ObjectMeta, Precondition, Preconditions, RangeHeader,
    RangeResolution, coalesce_ranges, format_http_date,
};

use crate::cache::{ObjectCache, freshness};
use crate::cors::Preflight;
use crate::fetch::{
    BodyStream, CoalescingStats, FetchOptions, Fetcher, Fill, Head, SliceSource, is_version_change,
    same_version,
};
use crate::router::{BucketRoute, Router};

/// The body type of every proxy response.
pub type ProxyBody = UnsyncBoxBody<Bytes, Error>;

/// The methods a read-only proxy answers.
const ALLOW: &str = "GET, HEAD, OPTIONS";

/// Builds a [`Proxy`].
#[derive(Debug)]
pub struct ProxyBuilder {
    routes: Vec<BucketRoute>,
    max_uri_bytes: usize,
    ready_cache: Duration,
    probe_timeout: Duration,
    fetch: FetchOptions,
    cache: Option<ObjectCache>,
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
        }
    }
}

impl ProxyBuilder {
    /// Serve a bucket under a path prefix.
    pub fn route(mut self, route: BucketRoute) -> Self {
        self.routes.push(route);
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

    /// Finish.
    pub fn build(self) -> Proxy {
        Proxy {
            inner: Arc::new(Inner {
                bucket_stats: self
                    .routes
                    .iter()
                    .map(|r| (r.name.clone(), BucketCounters::default()))
                    .collect(),
                cache: self.cache,
                revalidations: yatagarasu_coalesce::Group::new(),
                fetcher: Fetcher::new(self.fetch),
                router: Router::new(self.routes),
                max_uri_bytes: self.max_uri_bytes,
                ready_cache: self.ready_cache,
                probe_timeout: self.probe_timeout,
                ready: tokio::sync::Mutex::new(None),
            }),
        }
    }
}

/// One readiness check of every bucket: when, and each bucket's error if it failed.
type ReadyReport = (Instant, Vec<(String, Option<String>)>);

/// Per-bucket cache outcomes, counted from each response's `x-cache`.
#[derive(Debug, Default)]
struct BucketCounters {
    hit: std::sync::atomic::AtomicU64,
    miss: std::sync::atomic::AtomicU64,
    revalidated: std::sync::atomic::AtomicU64,
    stale: std::sync::atomic::AtomicU64,
    bypass: std::sync::atomic::AtomicU64,
}

/// How one bucket's requests used the cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BucketCacheStats {
    /// Answered from a fresh record.
    pub hit: u64,
    /// Fetched from the origin.
    pub miss: u64,
    /// Revalidated with the origin, body from the cache.
    pub revalidated: u64,
    /// Stale copy served (stale-while-revalidate or stale-if-error).
    pub stale: u64,
    /// Cache not used.
    pub bypass: u64,
}

#[derive(Debug)]
struct Inner {
    bucket_stats: std::collections::HashMap<String, BucketCounters>,
    cache: Option<ObjectCache>,
    /// Background revalidations, one per object at a time.
    revalidations: yatagarasu_coalesce::Group<(String, String), (), Error>,
    fetcher: Fetcher,
    router: Router,
    max_uri_bytes: usize,
    ready_cache: Duration,
    probe_timeout: Duration,
    ready: tokio::sync::Mutex<Option<ReadyReport>>,
}

/// The read-only S3 proxy as a hyper service. Cheap to clone; mount it in any hyper server, or use
/// [`serve`](crate::serve).
#[derive(Debug, Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

/// Context of one request, for errors and logs.
struct RequestCtx {
    id: String,
    method: Method,
}

impl Proxy {
    /// Start building a proxy.
    pub fn builder() -> ProxyBuilder {
        ProxyBuilder::default()
    }

    /// Counters of shared origin fetches (flights started, joined, timed out, failed).
    pub fn coalescing_stats(&self) -> CoalescingStats {
        self.inner.fetcher.stats()
    }

    /// Cache outcomes per bucket (by config name), from the `x-cache` of every object response.
    pub fn bucket_cache_stats(&self) -> Vec<(String, BucketCacheStats)> {
        let l = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        let mut out: Vec<(String, BucketCacheStats)> = self
            .inner
            .bucket_stats
            .iter()
            .map(|(name, c)| {
                let s = BucketCacheStats {
                    hit: l(&c.hit),
                    miss: l(&c.miss),
                    revalidated: l(&c.revalidated),
                    stale: l(&c.stale),
                    bypass: l(&c.bypass),
                };
                (name.clone(), s)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Each cache tier's counters (`None` without a cache).
    pub fn cache_stats(&self) -> Option<Vec<(&'static str, yatagarasu_cache::TierStats)>> {
        self.inner.cache.as_ref().map(|c| c.tiers().stats())
    }

    /// Remove cached objects across all tiers; returns how many entries were removed.
    pub async fn purge(&self, target: &PurgeTarget) -> Result<u64, Error> {
        let cache = self
            .inner
            .cache
            .as_ref()
            .ok_or_else(|| Error::new(ErrorKind::NotFound, "this proxy has no cache"))?;
        let route = |name: &str| {
            self.inner
                .router
                .routes()
                .iter()
                .find(|r| r.name == name)
                .map(|r| r.name.clone())
                .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no bucket named `{name}`")))
        };
        Ok(match target {
            PurgeTarget::All => cache.purge_all().await,
            PurgeTarget::Bucket(b) => cache.purge_prefix(&route(b)?, "").await,
            PurgeTarget::Prefix(b, p) => cache.purge_prefix(&route(b)?, p).await,
            PurgeTarget::Object(b, k) => cache.purge_object(&route(b)?, k).await,
        })
    }

    /// The mounted routes, longest prefix first.
    pub fn routes(&self) -> &[BucketRoute] {
        self.inner.router.routes()
    }

    /// Answer one request. Never fails: errors become JSON responses.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<ProxyBody> {
        // A read-only proxy never reads request bodies.
        let (req, _body) = req.into_parts();
        let started = Instant::now();
        let ctx = RequestCtx {
            id: request_id(&req.headers),
            method: req.method.clone(),
        };
        let (route, mut resp) = match self.dispatch(&req).await {
            Ok((route, resp)) => (route, resp),
            Err((route, err)) => (
                route,
                error_response(&ctx, err.with_request_id(ctx.id.clone())),
            ),
        };
        if let Some(cors) = route.and_then(|r| r.cors.as_ref())
            && req.method != Method::OPTIONS
        {
            cors.apply(&req.headers, resp.headers_mut());
        }
        if let Ok(v) = HeaderValue::from_str(&ctx.id) {
            resp.headers_mut().insert("x-request-id", v);
        }
        let log = RequestLog {
            method: ctx.method,
            path: req.uri.path().to_owned(),
            bucket: route.map(|r| r.name.clone()),
            status: resp.status().as_u16(),
            request_id: ctx.id,
            started,
        };
        resp.map(|body| LoggedBody::new(body, log).boxed_unsync())
    }

    /// `/ready`: every bucket's origin answered a probe (HeadBucket) within the cache window.
    async fn ready(&self) -> Response<ProxyBody> {
        let inner = &self.inner;
        let mut cached = inner.ready.lock().await;
        let fresh = cached
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < inner.ready_cache);
        if !fresh {
            let probes = inner.router.routes().iter().map(|r| async move {
                let outcome =
                    match tokio::time::timeout(inner.probe_timeout, r.client.probe()).await {
                        Ok(Ok(())) => None,
                        Ok(Err(e)) => Some(format!("{}: {}", e.code(), e.message())),
                        Err(_) => Some(format!("no answer within {:?}", inner.probe_timeout)),
                    };
                (r.name.clone(), outcome)
            });
            let results = futures_util::future::join_all(probes).await;
            *cached = Some((Instant::now(), results));
        }
        let Some((_, results)) = cached.as_ref() else {
            return json_response(StatusCode::INTERNAL_SERVER_ERROR, "{}");
        };
        let all_ok = results.iter().all(|(_, e)| e.is_none());
        let mut buckets = serde_json::Map::new();
        for (name, err) in results {
            let v = match err {
                None => serde_json::json!({ "ready": true }),
                Some(e) => serde_json::json!({ "ready": false, "error": e }),
            };
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

    async fn dispatch(
        &self,
        req: &http::request::Parts,
    ) -> Result<(Option<&BucketRoute>, Response<ProxyBody>), (Option<&BucketRoute>, Error)> {
        let uri_len = req.uri.path_and_query().map_or(0, |p| p.as_str().len());
        if uri_len > self.inner.max_uri_bytes {
            return Err((
                None,
                Error::new(
                    ErrorKind::UriTooLong,
                    format!(
                        "the request target is {uri_len} bytes; the limit is {}",
                        self.inner.max_uri_bytes
                    ),
                ),
            ));
        }
        let path = req.uri.path();
        if path == "/health" {
            return Ok((None, json_response(StatusCode::OK, r#"{"status":"ok"}"#)));
        }
        if path == "/ready" {
            return Ok((None, self.ready().await));
        }
        let (route, key) = match self.inner.router.resolve(path) {
            Ok(Some(found)) => found,
            Ok(None) => {
                return Err((
                    None,
                    Error::new(ErrorKind::NotFound, "no bucket is served under this path"),
                ));
            }
            Err(e) => return Err((None, e)),
        };
        let bucket = Some(route);
        let method = &req.method;
        if method == Method::OPTIONS {
            let preflight = route
                .cors
                .as_ref()
                .map_or(Preflight::PlainOptions, |c| c.preflight(&req.headers));
            let mut resp = empty_response(StatusCode::NO_CONTENT);
            match preflight {
                Preflight::Allowed(h) => resp.headers_mut().extend(h),
                Preflight::Refused(why) => {
                    return Err((
                        bucket,
                        Error::new(
                            ErrorKind::AccessDenied,
                            format!("CORS preflight refused: {why}"),
                        )
                        .with_bucket(route.name.clone()),
                    ));
                }
                Preflight::PlainOptions => {}
            }
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(ALLOW));
            return Ok((bucket, resp));
        }
        if method != Method::GET && method != Method::HEAD {
            return Err((
                bucket,
                Error::new(
                    ErrorKind::MethodNotAllowed,
                    format!("{method} is not allowed: this proxy is read-only"),
                )
                .with_bucket(route.name.clone()),
            ));
        }
        if key.is_empty() {
            return Err((
                bucket,
                Error::new(ErrorKind::NotFound, "no object key in the path")
                    .with_bucket(route.name.clone()),
            ));
        }
        let result = if method == Method::HEAD {
            self.head(route, &key, &req.headers).await
        } else {
            self.get(route, &key, &req.headers).await
        };
        if let (Ok(resp), Some(counters)) = (&result, self.inner.bucket_stats.get(&route.name)) {
            let counter = match resp.headers().get("x-cache").map(HeaderValue::as_bytes) {
                Some(b"HIT") => Some(&counters.hit),
                Some(b"MISS") => Some(&counters.miss),
                Some(b"REVALIDATED") => Some(&counters.revalidated),
                Some(b"STALE") => Some(&counters.stale),
                Some(b"BYPASS") => Some(&counters.bypass),
                _ => None,
            };
            if let Some(c) = counter {
                c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        if let Err(e) = &result
            && e.kind() == ErrorKind::NotFound
            && e.context().upstream_code.as_deref() == Some("NoSuchKey")
            && let Some(cache) = self.cache_for(route, &req.headers)
        {
            cache.store_missing(&route.name, &key).await;
        }
        result
            .map(|r| (bucket, r))
            .map_err(|e| (bucket, e.with_bucket(route.name.clone())))
    }

    /// The cache for this request, unless the bucket does not cache or the request carries
    /// credentials the bucket does not allow caching for.
    fn cache_for(&self, route: &BucketRoute, headers: &HeaderMap) -> Option<&ObjectCache> {
        let cache = self.inner.cache.as_ref()?;
        let credentials =
            headers.contains_key(header::AUTHORIZATION) || headers.contains_key(header::COOKIE);
        (route.cache.enabled && (!credentials || route.cache.cache_authenticated)).then_some(cache)
    }

    fn fill(&self, route: &BucketRoute, key: &str, cache: Option<&ObjectCache>) -> Option<Fill> {
        cache.map(|c| Fill {
            cache: c.clone(),
            route: route.name.clone(),
            key: key.to_owned(),
            default_ttl: route.cache.ttl,
        })
    }

    /// The object's metadata from a cached record: fresh (`HIT`) or revalidated with a HEAD whose
    /// ETag still matches (`REVALIDATED`, no body moved). `None` when there is no usable record.
    async fn cached_meta(
        &self,
        route: &BucketRoute,
        key: &str,
        cache: &ObjectCache,
    ) -> Result<Option<(Head, CacheStatus)>, Error> {
        let Some(record) = cache.record(&route.name, key).await else {
            return Ok(None);
        };
        let now = SystemTime::now();
        if record.is_fresh(now) {
            if record.missing {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    "the object does not exist (cached answer)",
                )
                .with_key(key)
                .with_upstream_code("NoSuchKey"));
            }
            return Ok(Some((Arc::new(record.meta), CacheStatus::Hit)));
        }
        if record.missing {
            return Ok(None);
        }
        if now < record.stale_while_revalidate_until {
            // Serve the stale copy now; one revalidation per object runs in the background.
            let (this, route_owned, key_owned, cache_owned) =
                (self.clone(), route.clone(), key.to_owned(), cache.clone());
            let flight = (route.name.clone(), key.to_owned());
            let revalidations = self.inner.revalidations.clone();
            tokio::spawn(async move {
                let _ = revalidations
                    .run(flight, move || async move {
                        this.revalidate(&route_owned, &key_owned, &cache_owned)
                            .await
                            .map(|_| ())
                    })
                    .await;
            });
            return Ok(Some((Arc::new(record.meta), CacheStatus::Stale)));
        }
        match self.revalidate(route, key, cache).await {
            Ok(Some(meta)) if same_version(&meta, &record.meta) => {
                Ok(Some((meta, CacheStatus::Revalidated)))
            }
            Ok(_) => Ok(None), // a new version (or gone): fetch it
            Err(e) if e.kind() != ErrorKind::NotFound && now < record.stale_if_error_until => {
                tracing::warn!(bucket = %route.name, key, error = %e, "origin failed; serving stale (stale-if-error)");
                Ok(Some((Arc::new(record.meta), CacheStatus::Stale)))
            }
            Err(e) => Err(e),
        }
    }

    /// Ask the origin for the current metadata and update the record: renewed when the ETag holds,
    /// replaced by the new version's otherwise, removed when the object is gone.
    async fn revalidate(
        &self,
        route: &BucketRoute,
        key: &str,
        cache: &ObjectCache,
    ) -> Result<Option<Head>, Error> {
        match self.inner.fetcher.head(route, key).await {
            Ok(meta) => {
                if let Some(fresh_for) = freshness(&meta, route.cache.ttl) {
                    cache.store_record(&route.name, key, &meta, fresh_for).await;
                }
                Ok(Some(meta))
            }
            Err(e) => {
                if e.kind() == ErrorKind::NotFound {
                    cache.purge_object(&route.name, key).await;
                    cache.store_missing(&route.name, key).await;
                }
                Err(e)
            }
        }
    }

    async fn head(
        &self,
        route: &BucketRoute,
        key: &str,
        headers: &HeaderMap,
    ) -> Result<Response<ProxyBody>, Error> {
        let cache = self.cache_for(route, headers);
        let (meta, status) = match cache {
            Some(c) => match self.cached_meta(route, key, c).await? {
                Some(found) => found,
                None => {
                    let meta = self.inner.fetcher.head(route, key).await?;
                    if let Some(fresh_for) = freshness(&meta, route.cache.ttl) {
                        c.store_record(&route.name, key, &meta, fresh_for).await;
                    }
                    (meta, CacheStatus::Miss)
                }
            },
            None => (
                self.inner.fetcher.head(route, key).await?,
                CacheStatus::Bypass,
            ),
        };
        let mut resp = match preconditions(headers).evaluate(&meta.validators(), true) {
            Precondition::NotModified => not_modified(&meta),
            Precondition::Failed => return Err(precondition_failed(key)),
            Precondition::Proceed => {
                let mut resp = empty_response(StatusCode::OK);
                object_headers(resp.headers_mut(), &meta, route.expose_user_metadata);
                set_u64(resp.headers_mut(), header::CONTENT_LENGTH, meta.size);
                resp
            }
        };
        status.set(&mut resp);
        Ok(resp)
    }

    async fn get(
        &self,
        route: &BucketRoute,
        key: &str,
        headers: &HeaderMap,
    ) -> Result<Response<ProxyBody>, Error> {
        let fetcher = &self.inner.fetcher;
        let conditions = preconditions(headers);
        let range = headers
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| RangeHeader::parse(v).ok());
        let cache = self.cache_for(route, headers);

        // A cached (or revalidated) record: the body comes from cached slices, missing ones from the origin.
        if let Some(c) = cache
            && let Some((head, status)) = self.cached_meta(route, key, c).await?
        {
            match self
                .serve_cached(route, key, c, &conditions, range.as_ref(), head)
                .await
            {
                Ok(mut resp) => {
                    status.set(&mut resp);
                    return Ok(resp);
                }
                // The cached record described a version the origin no longer has (its slices were
                // evicted meanwhile): the record is gone now; fetch the current version below.
                Err(e) if is_version_change(&e) => {
                    tracing::info!(bucket = %route.name, key, "cached record outdated; refetching");
                }
                Err(e) => return Err(e),
            }
        }
        let status = if cache.is_some() {
            CacheStatus::Miss
        } else {
            CacheStatus::Bypass
        };
        let fill = self.fill(route, key, cache);

        // A full-object fetch under way serves everything: conditions, ranges, the whole body.
        if let Some(joined) = fetcher.join_object(route, key).await {
            let (head, body) = joined?;
            return respond(route, key, &conditions, range.as_ref(), head, body)
                .map(|r| status.with(r));
        }
        if range.is_none() && conditions.is_empty() {
            let (head, body) = fetcher.object(route, key, fill).await?;
            return respond(route, key, &conditions, None, head, body).map(|r| status.with(r));
        }
        // The decision needs the metadata first: one (shared) HEAD, no body moved.
        let head = fetcher.head(route, key).await?;
        let keep = match (&fill, freshness(&head, route.cache.ttl)) {
            (Some(f), Some(fresh_for)) => {
                f.cache
                    .store_record(&route.name, key, &head, fresh_for)
                    .await;
                Some(f.cache.slice_retention(fresh_for))
            }
            _ => None,
        };
        match conditions.evaluate(&head.validators(), true) {
            Precondition::NotModified => return Ok(status.with(not_modified(&head))),
            Precondition::Failed => return Err(precondition_failed(key)),
            Precondition::Proceed => {}
        }
        match single_range(&conditions, range.as_ref(), &head) {
            RangePlan::Unsatisfiable => Err(unsatisfiable(key, head.size)),
            RangePlan::Whole => {
                let (head, body) = fetcher.object(route, key, fill).await?;
                // The object may have changed since the HEAD: decide on what is being sent.
                respond(route, key, &conditions, range.as_ref(), head, body).map(|r| status.with(r))
            }
            RangePlan::Bytes(start, end) => {
                let source = SliceSource {
                    cache: fill.zip(keep),
                };
                let body = fetcher
                    .range(route, key, &head, (start, end), source)
                    .await?;
                Ok(status.with(partial_response(route, &head, start, end, body)))
            }
        }
    }

    /// Answer from a cached record: conditions and ranges decided on its metadata, the body read
    /// slice by slice from the cache (slices it lacks are fetched, pinned to the record's ETag, and stored).
    async fn serve_cached(
        &self,
        route: &BucketRoute,
        key: &str,
        cache: &ObjectCache,
        conditions: &Preconditions,
        range: Option<&RangeHeader>,
        head: Head,
    ) -> Result<Response<ProxyBody>, Error> {
        match conditions.evaluate(&head.validators(), true) {
            Precondition::NotModified => return Ok(not_modified(&head)),
            Precondition::Failed => return Err(precondition_failed(key)),
            Precondition::Proceed => {}
        }
        let keep = cache.slice_retention(freshness(&head, route.cache.ttl).unwrap_or_default());
        let source = SliceSource {
            cache: self.fill(route, key, Some(cache)).map(|f| (f, keep)),
        };
        match single_range(conditions, range, &head) {
            RangePlan::Unsatisfiable => Err(unsatisfiable(key, head.size)),
            RangePlan::Whole if head.size == 0 => {
                let empty: BodyStream = Box::pin(futures_util::stream::empty());
                Ok(full_response(route, &head, empty))
            }
            RangePlan::Whole => {
                let body = self
                    .inner
                    .fetcher
                    .range(route, key, &head, (0, head.size - 1), source)
                    .await?;
                Ok(full_response(route, &head, body))
            }
            RangePlan::Bytes(start, end) => {
                let body = self
                    .inner
                    .fetcher
                    .range(route, key, &head, (start, end), source)
                    .await?;
                Ok(partial_response(route, &head, start, end, body))
            }
        }
    }
}

/// What to purge from the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// Whether a response came from the cache (`x-cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CacheStatus {
    /// Answered from a fresh cached record.
    Hit,
    /// Fetched from the origin (and stored when cacheable).
    Miss,
    /// A stale record revalidated with the origin (ETag unchanged) and served from the cache.
    Revalidated,
    /// A stale record served without waiting for the origin (stale-while-revalidate, or
    /// stale-if-error when the origin failed).
    Stale,
    /// The cache was not used for this request.
    Bypass,
}

impl CacheStatus {
    fn set(self, resp: &mut Response<ProxyBody>) {
        let v = match self {
            Self::Hit => "HIT",
            Self::Miss => "MISS",
            Self::Revalidated => "REVALIDATED",
            Self::Stale => "STALE",
            Self::Bypass => "BYPASS",
        };
        resp.headers_mut()
            .insert("x-cache", HeaderValue::from_static(v));
    }

    fn with(self, mut resp: Response<ProxyBody>) -> Response<ProxyBody> {
        self.set(&mut resp);
        resp
    }
}

/// What to send for a Range request, given the object's metadata.
enum RangePlan {
    /// The whole object (no Range, a Range that does not apply, or ranges that do not merge into one).
    Whole,
    /// One contiguous range, inclusive.
    Bytes(u64, u64),
    /// 416.
    Unsatisfiable,
}

fn single_range(
    conditions: &Preconditions,
    range: Option<&RangeHeader>,
    head: &ObjectMeta,
) -> RangePlan {
    let Some(range) = range.filter(|_| conditions.range_applies(&head.validators())) else {
        return RangePlan::Whole;
    };
    match range.resolve(head.size) {
        RangeResolution::Full => RangePlan::Whole,
        RangeResolution::Unsatisfiable => RangePlan::Unsatisfiable,
        // Several ranges are served as one 206 when they merge into one contiguous range, else as
        // the whole object with 200 (RFC 9110 14.2 lets a server ignore a Range header).
        RangeResolution::Ranges(ranges) => match coalesce_ranges(&ranges).as_slice() {
            [only] => RangePlan::Bytes(only.start, only.end),
            _ => RangePlan::Whole,
        },
    }
}

/// Answer from metadata and a body that starts at the object's first byte.
fn respond(
    route: &BucketRoute,
    key: &str,
    conditions: &Preconditions,
    range: Option<&RangeHeader>,
    head: Head,
    body: BodyStream,
) -> Result<Response<ProxyBody>, Error> {
    match conditions.evaluate(&head.validators(), true) {
        Precondition::NotModified => return Ok(not_modified(&head)),
        Precondition::Failed => return Err(precondition_failed(key)),
        Precondition::Proceed => {}
    }
    match single_range(conditions, range, &head) {
        RangePlan::Unsatisfiable => Err(unsatisfiable(key, head.size)),
        RangePlan::Whole => Ok(full_response(route, &head, body)),
        RangePlan::Bytes(start, end) => {
            let body = crate::fetch::window(body, start, end - start + 1);
            Ok(partial_response(route, &head, start, end, body))
        }
    }
}

fn body_response(body: BodyStream) -> Response<ProxyBody> {
    Response::new(StreamBody::new(body.map_ok(Frame::data)).boxed_unsync())
}

fn full_response(route: &BucketRoute, head: &ObjectMeta, body: BodyStream) -> Response<ProxyBody> {
    let mut resp = body_response(body);
    object_headers(resp.headers_mut(), head, route.expose_user_metadata);
    set_u64(resp.headers_mut(), header::CONTENT_LENGTH, head.size);
    resp
}

fn partial_response(
    route: &BucketRoute,
    head: &ObjectMeta,
    start: u64,
    end: u64,
    body: BodyStream,
) -> Response<ProxyBody> {
    let mut resp = body_response(body);
    *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
    let h = resp.headers_mut();
    object_headers(h, head, route.expose_user_metadata);
    set_u64(h, header::CONTENT_LENGTH, end - start + 1);
    let cr = ContentRange::Bytes {
        range: yatagarasu_core::ByteRange::new(start, end),
        complete: Some(head.size),
    };
    if let Ok(v) = HeaderValue::from_str(&cr.to_string()) {
        h.insert(header::CONTENT_RANGE, v);
    }
    resp
}

fn unsatisfiable(key: &str, size: u64) -> Error {
    Error::new(
        ErrorKind::InvalidRange,
        format!("no requested range overlaps the object's {size} bytes"),
    )
    .with_key(key)
    .with_object_size(size)
}

fn precondition_failed(key: &str) -> Error {
    Error::new(
        ErrorKind::PreconditionFailed,
        "a precondition (If-Match / If-Unmodified-Since) did not hold",
    )
    .with_key(key)
}

fn preconditions(h: &HeaderMap) -> Preconditions {
    let joined = |name: HeaderName| -> Option<String> {
        let values: Vec<&str> = h
            .get_all(&name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    };
    let mut p = Preconditions::default();
    if let Some(v) = joined(header::IF_MATCH) {
        p.set_if_match(&v);
    }
    if let Some(v) = joined(header::IF_NONE_MATCH) {
        p.set_if_none_match(&v);
    }
    if let Some(v) = h
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
    {
        p.set_if_modified_since(v);
    }
    if let Some(v) = h
        .get(header::IF_UNMODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
    {
        p.set_if_unmodified_since(v);
    }
    if h.contains_key(header::RANGE)
        && let Some(v) = h.get(header::IF_RANGE).and_then(|v| v.to_str().ok())
    {
        p.set_if_range(v);
    }
    p
}

fn set_u64(h: &mut HeaderMap, name: HeaderName, v: u64) {
    h.insert(name, HeaderValue::from(v));
}

fn set_str(h: &mut HeaderMap, name: HeaderName, v: Option<&str>) {
    if let Some(v) = v
        && let Ok(v) = HeaderValue::from_str(v)
    {
        h.insert(name, v);
    }
}

/// The validators a 304 must carry (RFC 9110 15.4.5).
fn validator_headers(h: &mut HeaderMap, meta: &ObjectMeta) {
    set_str(
        h,
        header::ETAG,
        meta.etag.as_ref().map(ToString::to_string).as_deref(),
    );
    set_str(
        h,
        header::LAST_MODIFIED,
        meta.last_modified.map(format_http_date).as_deref(),
    );
    set_str(h, header::CACHE_CONTROL, meta.cache_control.as_deref());
    set_str(h, header::EXPIRES, meta.expires.as_deref());
}

fn object_headers(h: &mut HeaderMap, meta: &ObjectMeta, user_metadata: bool) {
    validator_headers(h, meta);
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    set_str(
        h,
        header::CONTENT_TYPE,
        Some(
            meta.content_type
                .as_deref()
                .unwrap_or("application/octet-stream"),
        ),
    );
    set_str(
        h,
        header::CONTENT_ENCODING,
        meta.content_encoding.as_deref(),
    );
    set_str(
        h,
        header::CONTENT_DISPOSITION,
        meta.content_disposition.as_deref(),
    );
    set_str(
        h,
        header::CONTENT_LANGUAGE,
        meta.content_language.as_deref(),
    );
    if user_metadata {
        for (k, v) in &meta.user_metadata {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(format!("x-amz-meta-{k}").as_bytes()),
                HeaderValue::from_str(v),
            ) {
                h.insert(name, value);
            }
        }
    }
}

fn not_modified(meta: &ObjectMeta) -> Response<ProxyBody> {
    let mut resp = empty_response(StatusCode::NOT_MODIFIED);
    validator_headers(resp.headers_mut(), meta);
    resp
}

fn empty_response(status: StatusCode) -> Response<ProxyBody> {
    let mut resp = Response::new(
        Full::new(Bytes::new())
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *resp.status_mut() = status;
    resp
}

fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Response<ProxyBody> {
    let body: Bytes = body.into();
    let len = body.len() as u64;
    let mut resp = Response::new(
        Full::new(body)
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    set_u64(resp.headers_mut(), header::CONTENT_LENGTH, len);
    resp
}

fn error_response(ctx: &RequestCtx, err: Error) -> Response<ProxyBody> {
    // A 416 reports the object's length (RFC 9110 15.5.17).
    let unsatisfied_len = err
        .context()
        .object_size
        .filter(|_| err.kind() == ErrorKind::InvalidRange);
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() {
        tracing::warn!(error = %err, "request failed");
    }
    let mut resp = if status == StatusCode::NOT_MODIFIED {
        empty_response(status)
    } else {
        json_response(status, err.to_json())
    };
    if status == StatusCode::METHOD_NOT_ALLOWED {
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(ALLOW));
    }
    if let Some(len) = unsatisfied_len
        && let Ok(v) =
            HeaderValue::from_str(&ContentRange::Unsatisfied { complete: len }.to_string())
    {
        resp.headers_mut().insert(header::CONTENT_RANGE, v);
    }
    if ctx.method == Method::HEAD {
        // Same status and headers, no body.
        let (parts, _) = resp.into_parts();
        let mut head = Response::from_parts(
            parts,
            Full::new(Bytes::new())
                .map_err(|never| match never {})
                .boxed_unsync(),
        );
        head.headers_mut().remove(header::CONTENT_LENGTH);
        return head;
    }
    resp
}

/// What the request log line says.
struct RequestLog {
    method: Method,
    path: String,
    bucket: Option<String>,
    status: u16,
    request_id: String,
    started: Instant,
}

/// Counts the bytes of a response body and writes the request's log line when the body ends, fails,
/// or is dropped early (client gone): `outcome` says which.
struct LoggedBody {
    inner: ProxyBody,
    bytes: u64,
    log: Option<RequestLog>,
}

impl LoggedBody {
    fn new(inner: ProxyBody, log: RequestLog) -> Self {
        Self {
            inner,
            bytes: 0,
            log: Some(log),
        }
    }

    fn finish(&mut self, outcome: &str) {
        if let Some(l) = self.log.take() {
            tracing::info!(
                method = %l.method,
                path = %l.path,
                bucket = l.bucket.as_deref().unwrap_or("-"),
                status = l.status,
                bytes = self.bytes,
                duration_ms = (l.started.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
                request_id = %l.request_id,
                outcome,
                "request"
            );
        }
    }
}

impl http_body::Body for LoggedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    self.bytes += d.len() as u64;
                }
                if self.inner.is_end_stream() {
                    self.finish("complete");
                }
            }
            Poll::Ready(Some(Err(e))) => {
                tracing::warn!(error = %e, "response body aborted");
                self.finish("aborted");
            }
            Poll::Ready(None) => self.finish("complete"),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        let outcome = if http_body::Body::is_end_stream(&self.inner) {
            "complete"
        } else {
            "client_gone"
        };
        self.finish(outcome);
    }
}

/// The client's `x-request-id` when well-formed (1–128 of `A-Za-z0-9._-`), else a new one.
fn request_id(h: &HeaderMap) -> String {
    if let Some(v) = h.get("x-request-id").and_then(|v| v.to_str().ok())
        && (1..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return v.to_owned();
    }
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
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
