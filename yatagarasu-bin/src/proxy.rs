//! The proxy service: one request in, one response out.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

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

use crate::cors::Preflight;
use crate::fetch::{BodyStream, CoalescingStats, FetchOptions, Fetcher, Head};
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
}

impl Default for ProxyBuilder {
    fn default() -> Self {
        Self {
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

    /// Slice size, flight buffer and subscriber limit of origin fetches.
    pub fn fetch_options(mut self, options: FetchOptions) -> Self {
        self.fetch = options;
        self
    }

    /// Finish.
    pub fn build(self) -> Proxy {
        Proxy {
            inner: Arc::new(Inner {
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

#[derive(Debug)]
struct Inner {
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
        result
            .map(|r| (bucket, r))
            .map_err(|e| (bucket, e.with_bucket(route.name.clone())))
    }

    async fn head(
        &self,
        route: &BucketRoute,
        key: &str,
        headers: &HeaderMap,
    ) -> Result<Response<ProxyBody>, Error> {
        let meta = self.inner.fetcher.head(route, key).await?;
        match preconditions(headers).evaluate(&meta.validators(), true) {
            Precondition::NotModified => return Ok(not_modified(&meta)),
            Precondition::Failed => return Err(precondition_failed(key)),
            Precondition::Proceed => {}
        }
        let mut resp = empty_response(StatusCode::OK);
        object_headers(resp.headers_mut(), &meta, route.expose_user_metadata);
        set_u64(resp.headers_mut(), header::CONTENT_LENGTH, meta.size);
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

        // A full-object fetch under way serves everything: conditions, ranges, the whole body.
        if let Some(joined) = fetcher.join_object(route, key).await {
            let (head, body) = joined?;
            return respond(route, key, &conditions, range.as_ref(), head, body);
        }
        if range.is_none() && conditions.is_empty() {
            let (head, body) = fetcher.object(route, key).await?;
            return respond(route, key, &conditions, None, head, body);
        }
        // The decision needs the metadata first: one (shared) HEAD, no body moved.
        let head = fetcher.head(route, key).await?;
        match conditions.evaluate(&head.validators(), true) {
            Precondition::NotModified => return Ok(not_modified(&head)),
            Precondition::Failed => return Err(precondition_failed(key)),
            Precondition::Proceed => {}
        }
        match single_range(&conditions, range.as_ref(), &head) {
            RangePlan::Unsatisfiable => Err(unsatisfiable(key, head.size)),
            RangePlan::Whole => {
                let (head, body) = fetcher.object(route, key).await?;
                // The object may have changed since the HEAD: decide on what is being sent.
                respond(route, key, &conditions, range.as_ref(), head, body)
            }
            RangePlan::Bytes(start, end) => {
                let body = fetcher.range(route, key, &head, start, end).await?;
                Ok(partial_response(route, &head, start, end, body))
            }
        }
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
