//! The S3 client: building requests, signing, sending with retries, mapping errors.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{Method, StatusCode};
use url::Url;
use yatagarasu_core::{ContentRange, EntityTag, ErrorKind, ObjectMeta, RangeSpec, Result};

use crate::body::ObjectBody;
use crate::config::Timeouts;
use crate::credentials::CachingProvider;
use crate::errors::{error_from_response, read_body_with_timeout};
use crate::headers::{header_u64, meta_from_headers};
use crate::list::{ListObjectsV2Page, ListObjectsV2Request, parse_list_objects_v2};
use crate::op::Op;
use crate::retry::{RetryPolicy, retry};
use crate::sigv4::{
    SessionTokenPlacement, SignableRequest, Signer, SigningSettings, UNSIGNED_PAYLOAD, uri_encode,
};

pub(crate) struct Inner {
    pub(crate) bucket: String,
    pub(crate) region: String,
    /// `scheme://authority[/prefix][/bucket]`, without a trailing slash.
    pub(crate) base: String,
    /// `base` with a trailing slash, parsed once: each request's URL is a clone with its own path
    /// (parsing the whole URL per request, host included, was 5% of a cache miss's CPU).
    pub(crate) base_url: Url,
    pub(crate) credentials: Option<CachingProvider>,
    pub(crate) signer: Signer,
    pub(crate) http: reqwest::Client,
    pub(crate) timeouts: Timeouts,
    pub(crate) retry: RetryPolicy,
    pub(crate) payload_hash: &'static str,
    /// Retried attempts and resumed bodies, for [`S3Client::stats`].
    pub(crate) counters: Counters,
}

/// Counters behind [`S3Client::stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) retries: std::sync::atomic::AtomicU64,
    pub(crate) body_resumes: std::sync::atomic::AtomicU64,
}

/// What an [`S3Client`] has done beyond single requests, since it was built (clones share them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientStats {
    /// Attempts made again after a retryable failure (each retry counts once).
    pub retries: u64,
    /// Object bodies that broke or stalled and were resumed with a Range + If-Match request.
    pub body_resumes: u64,
}

/// An S3 client bound to one bucket. Cheap to clone.
///
/// Every operation is idempotent and retried per its [`RetryPolicy`]; errors carry bucket, key,
/// operation and the S3 error code.
#[derive(Clone)]
pub struct S3Client {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for S3Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Client")
            .field("bucket", &self.inner.bucket)
            .field("region", &self.inner.region)
            .field("base", &self.inner.base)
            .field("anonymous", &self.inner.credentials.is_none())
            .finish_non_exhaustive()
    }
}

/// Options of a `GetObject`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GetObjectRequest {
    /// Fetch only these bytes.
    pub range: Option<RangeSpec>,
    /// `If-Match`: fail with [`ErrorKind::PreconditionFailed`] unless the ETag matches.
    pub if_match: Option<String>,
    /// `If-None-Match`: fail with [`ErrorKind::NotModified`] if the ETag matches.
    pub if_none_match: Option<String>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<SystemTime>,
    /// `If-Unmodified-Since`.
    pub if_unmodified_since: Option<SystemTime>,
    /// A specific version.
    pub version_id: Option<String>,
}

impl GetObjectRequest {
    /// Ask for bytes `start..=end`.
    pub fn range(start: u64, end: u64) -> Self {
        Self {
            range: Some(RangeSpec::Int {
                first: start,
                last: Some(end),
            }),
            ..Self::default()
        }
    }

    /// Fetch only these bytes ([`Self::range`]).
    #[must_use]
    pub fn with_range(mut self, range: RangeSpec) -> Self {
        self.range = Some(range);
        self
    }

    /// Set [`Self::if_match`].
    #[must_use]
    pub fn with_if_match(mut self, if_match: impl Into<String>) -> Self {
        self.if_match = Some(if_match.into());
        self
    }

    /// Set [`Self::if_none_match`].
    #[must_use]
    pub fn with_if_none_match(mut self, if_none_match: impl Into<String>) -> Self {
        self.if_none_match = Some(if_none_match.into());
        self
    }

    /// Set [`Self::if_modified_since`].
    #[must_use]
    pub fn with_if_modified_since(mut self, if_modified_since: SystemTime) -> Self {
        self.if_modified_since = Some(if_modified_since);
        self
    }

    /// Set [`Self::if_unmodified_since`].
    #[must_use]
    pub fn with_if_unmodified_since(mut self, if_unmodified_since: SystemTime) -> Self {
        self.if_unmodified_since = Some(if_unmodified_since);
        self
    }

    /// Set [`Self::version_id`].
    #[must_use]
    pub fn with_version_id(mut self, version_id: impl Into<String>) -> Self {
        self.version_id = Some(version_id.into());
        self
    }
}

/// Options of a `HeadObject`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeadObjectRequest {
    /// `If-Match`.
    pub if_match: Option<String>,
    /// `If-None-Match`.
    pub if_none_match: Option<String>,
    /// A specific version.
    pub version_id: Option<String>,
}

impl HeadObjectRequest {
    /// Set [`Self::if_match`].
    #[must_use]
    pub fn with_if_match(mut self, if_match: impl Into<String>) -> Self {
        self.if_match = Some(if_match.into());
        self
    }

    /// Set [`Self::if_none_match`].
    #[must_use]
    pub fn with_if_none_match(mut self, if_none_match: impl Into<String>) -> Self {
        self.if_none_match = Some(if_none_match.into());
        self
    }

    /// Set [`Self::version_id`].
    #[must_use]
    pub fn with_version_id(mut self, version_id: impl Into<String>) -> Self {
        self.version_id = Some(version_id.into());
        self
    }
}

/// A `GetObject` response: metadata, the range sent, and the streaming body.
#[derive(Debug)]
#[non_exhaustive]
pub struct GetObjectOutput {
    /// Object metadata; `size` is the whole object's length even for a range.
    pub meta: ObjectMeta,
    /// The `Content-Range`, when the response is partial (206).
    pub content_range: Option<ContentRange>,
    /// Bytes in this response's body.
    pub content_length: u64,
    /// The body, streamed.
    pub body: ObjectBody,
}

impl GetObjectOutput {
    /// A whole-object (200) answer: `content_length` is `meta.size`. For [`Origin`](crate::Origin)
    /// implementations, such as an in-memory origin in tests.
    pub fn new(meta: ObjectMeta, body: ObjectBody) -> Self {
        Self {
            content_length: meta.size,
            content_range: None,
            meta,
            body,
        }
    }

    /// A partial (206) answer of `content_range`, whose body holds `content_length` bytes.
    pub fn partial(
        meta: ObjectMeta,
        content_range: ContentRange,
        content_length: u64,
        body: ObjectBody,
    ) -> Self {
        Self {
            meta,
            content_range: Some(content_range),
            content_length,
            body,
        }
    }

    /// The same answer with its body replaced by `f(body)`: for [`Origin`](crate::Origin)
    /// decorators that watch a body or hold something until it ends.
    pub fn map_body(self, f: impl FnOnce(ObjectBody) -> ObjectBody) -> Self {
        Self {
            body: f(self.body),
            ..self
        }
    }
}

impl S3Client {
    /// Retries and resumed bodies so far.
    pub fn stats(&self) -> ClientStats {
        use std::sync::atomic::Ordering::Relaxed;
        ClientStats {
            retries: self.inner.counters.retries.load(Relaxed),
            body_resumes: self.inner.counters.body_resumes.load(Relaxed),
        }
    }

    /// The bucket this client reads.
    pub fn bucket(&self) -> &str {
        &self.inner.bucket
    }

    /// The signing region.
    pub fn region(&self) -> &str {
        &self.inner.region
    }

    /// Which objects this client reads: its base URL (scheme, endpoint, the bucket in the host or
    /// the path as the addressing style puts it) and its bucket. Credentials and region are not
    /// part of it: they change who asks, not what is read.
    pub fn identity(&self) -> String {
        format!("s3:{} bucket:{}", self.inner.base, self.inner.bucket)
    }

    /// Fetch an object, streaming its body.
    ///
    /// A 304 answer is [`ErrorKind::NotModified`], 412 [`ErrorKind::PreconditionFailed`], 416
    /// [`ErrorKind::InvalidRange`]. If the body breaks mid-stream and the object has an ETag, the
    /// rest is fetched with `Range` + `If-Match`; a changed object fails the read instead of splicing.
    pub async fn get_object(&self, key: &str, req: &GetObjectRequest) -> Result<GetObjectOutput> {
        let mut headers: Vec<(&'static str, String)> = Vec::new();
        if let Some(r) = &req.range {
            headers.push((
                "range",
                match r {
                    RangeSpec::Int {
                        first,
                        last: Some(l),
                    } => format!("bytes={first}-{l}"),
                    RangeSpec::Int { first, last: None } => format!("bytes={first}-"),
                    RangeSpec::Suffix(n) => format!("bytes=-{n}"),
                },
            ));
        }
        push_conditions(
            &mut headers,
            req.if_match.as_deref(),
            req.if_none_match.as_deref(),
        );
        if let Some(t) = req.if_modified_since {
            headers.push(("if-modified-since", yatagarasu_core::format_http_date(t)));
        }
        if let Some(t) = req.if_unmodified_since {
            headers.push(("if-unmodified-since", yatagarasu_core::format_http_date(t)));
        }
        let op = Op {
            name: "GetObject",
            method: Method::GET,
            key: Some(key),
            query: version_query(req.version_id.as_deref()),
            headers,
        };
        let resp = self.execute(&op).await?;
        let status = resp.status();
        let h = resp.headers();
        let content_length = header_u64(h, "content-length");
        let content_range = if status == StatusCode::PARTIAL_CONTENT {
            let cr = h
                .get("content-range")
                .and_then(|v| v.to_str().ok())
                .and_then(ContentRange::parse)
                .ok_or_else(|| {
                    op.error(
                        &self.inner.bucket,
                        ErrorKind::Upstream,
                        "206 response without a valid Content-Range",
                    )
                })?;
            Some(cr)
        } else {
            None
        };
        let (start, size) = match content_range {
            Some(ContentRange::Bytes { range, complete }) => (range.start, complete),
            _ => (0, content_length),
        };
        let body_len = match (content_range, content_length) {
            (Some(ContentRange::Bytes { range, .. }), _) => Some(range.len()),
            (_, len) => len,
        };
        let mut meta = meta_from_headers(h);
        meta.size = size.unwrap_or(0);
        let body = ObjectBody::new(
            self.clone(),
            key.to_owned(),
            req.version_id.clone(),
            meta.etag.clone(),
            resp,
            start,
            body_len,
        );
        Ok(GetObjectOutput {
            meta,
            content_range,
            content_length: body_len.unwrap_or(0),
            body,
        })
    }

    /// Fetch `start..end_exclusive` of an object whose ETag must still be `etag` (used to resume).
    pub(crate) async fn get_remainder(
        &self,
        key: &str,
        version_id: Option<&str>,
        etag: &EntityTag,
        start: u64,
        end_exclusive: u64,
    ) -> Result<reqwest::Response> {
        let op = Op {
            name: "GetObject",
            method: Method::GET,
            key: Some(key),
            query: version_query(version_id),
            headers: vec![
                ("range", format!("bytes={start}-{}", end_exclusive - 1)),
                ("if-match", etag.to_string()),
            ],
        };
        let resp = self.execute(&op).await?;
        let got = resp
            .headers()
            .get("content-range")
            .and_then(|v| v.to_str().ok())
            .and_then(ContentRange::parse);
        // Origins that ignore If-Match (s3s-fs, some gateways) still say which version they sent.
        let sent_etag = resp
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .and_then(EntityTag::parse_lenient);
        if sent_etag.as_ref().is_some_and(|t| !t.strong_eq(etag)) {
            return Err(op
                .error(
                    &self.inner.bucket,
                    ErrorKind::PreconditionFailed,
                    "object ETag changed",
                )
                .with_upstream_code("PreconditionFailed"));
        }
        match got {
            Some(ContentRange::Bytes { range, .. })
                if resp.status() == StatusCode::PARTIAL_CONTENT && range.start == start =>
            {
                Ok(resp)
            }
            _ => Err(op.error(
                &self.inner.bucket,
                ErrorKind::Upstream,
                format!("resume at byte {start} was not answered with that range"),
            )),
        }
    }

    /// Fetch an object's metadata.
    pub async fn head_object(&self, key: &str, req: &HeadObjectRequest) -> Result<ObjectMeta> {
        let mut headers = Vec::new();
        push_conditions(
            &mut headers,
            req.if_match.as_deref(),
            req.if_none_match.as_deref(),
        );
        let op = Op {
            name: "HeadObject",
            method: Method::HEAD,
            key: Some(key),
            query: version_query(req.version_id.as_deref()),
            headers,
        };
        let resp = self.execute(&op).await?;
        let mut meta = meta_from_headers(resp.headers());
        meta.size = header_u64(resp.headers(), "content-length").unwrap_or(0);
        Ok(meta)
    }

    /// One page of `ListObjectsV2`.
    pub async fn list_objects_v2(&self, req: &ListObjectsV2Request) -> Result<ListObjectsV2Page> {
        let op = Op {
            name: "ListObjectsV2",
            method: Method::GET,
            key: None,
            query: req.to_query(),
            headers: Vec::new(),
        };
        let resp = self.execute(&op).await?;
        let body = read_body_with_timeout(resp, self.inner.timeouts.idle, 64 * 1024 * 1024)
            .await
            .map_err(|m| op.error(&self.inner.bucket, ErrorKind::Upstream, m))?;
        let text = String::from_utf8_lossy(&body);
        parse_list_objects_v2(&text).map_err(|m| {
            op.error(
                &self.inner.bucket,
                ErrorKind::Upstream,
                format!("unreadable ListObjectsV2 result: {m}"),
            )
        })
    }

    /// Every object under `prefix`, following continuation tokens page by page.
    pub fn list_all(
        &self,
        prefix: impl Into<String>,
    ) -> impl futures_core::Stream<Item = Result<crate::list::ObjectSummary>> + Send + 'static {
        use futures_util::StreamExt as _;
        let client = self.clone();
        let first = ListObjectsV2Request {
            prefix: Some(prefix.into()),
            ..ListObjectsV2Request::default()
        };
        futures_util::stream::unfold(Some(first), move |next| {
            let client = client.clone();
            async move {
                let req = next?;
                match client.list_objects_v2(&req).await {
                    Ok(page) => {
                        let follow = page
                            .next_continuation_token
                            .clone()
                            .filter(|_| page.is_truncated)
                            .map(|t| ListObjectsV2Request {
                                continuation_token: Some(t),
                                ..req.clone()
                            });
                        let items: Vec<Result<_>> = page.objects.into_iter().map(Ok).collect();
                        Some((futures_util::stream::iter(items), follow))
                    }
                    Err(e) => Some((futures_util::stream::iter(vec![Err(e)]), None)),
                }
            }
        })
        .flatten()
    }

    /// A cheap readiness probe: `HeadBucket`. Succeeds when the bucket exists and the credentials may
    /// list it.
    pub async fn probe(&self) -> Result<()> {
        let op = Op {
            name: "HeadBucket",
            method: Method::HEAD,
            key: None,
            query: Vec::new(),
            headers: Vec::new(),
        };
        self.execute(&op).await.map(drop)
    }

    /// A presigned GET URL for `key`, valid for `expires` (at most 7 days).
    pub async fn presign_get(&self, key: &str, expires: Duration) -> Result<Url> {
        let op = Op {
            name: "PresignGetObject",
            method: Method::GET,
            key: Some(key),
            query: Vec::new(),
            headers: Vec::new(),
        };
        let url = self.url_for(&op)?;
        let Some(provider) = &self.inner.credentials else {
            return Ok(url);
        };
        let creds = provider.credentials().await?;
        let req = SignableRequest {
            method: "GET".to_owned(),
            canonical_uri: url.path().to_owned(),
            query: Vec::new(),
            headers: vec![("host".to_owned(), host_header(&url))],
            payload_hash: UNSIGNED_PAYLOAD.to_owned(),
        };
        let out = self
            .inner
            .signer
            .presign(&req, &creds, &self.settings(), expires);
        let mut url = url;
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in &out.params {
                q.append_pair(k, v);
            }
        }
        Ok(url)
    }

    fn settings(&self) -> SigningSettings<'_> {
        SigningSettings {
            region: &self.inner.region,
            service: "s3",
            time: SystemTime::now(),
            session_token: SessionTokenPlacement::Signed,
            content_sha256_header: true,
        }
    }

    fn url_for(&self, op: &Op<'_>) -> Result<Url> {
        let base_path = self.inner.base_url.path();
        let mut path = String::with_capacity(base_path.len() + 64);
        path.push_str(base_path);
        if let Some(key) = op.key {
            if key.is_empty() {
                return Err(op.error(
                    &self.inner.bucket,
                    ErrorKind::BadRequest,
                    "object key is empty",
                ));
            }
            if key.split('/').any(|seg| seg == "." || seg == "..") {
                return Err(op.error(
                    &self.inner.bucket,
                    ErrorKind::BadRequest,
                    "object key has a `.` or `..` path segment, which HTTP normalises away; it cannot be requested by path",
                ));
            }
            path.push_str(&uri_encode(key, true));
        }
        let mut url = self.inner.base_url.clone();
        url.set_path(&path);
        if !op.query.is_empty() {
            let mut query = String::with_capacity(64);
            for (i, (k, v)) in op.query.iter().enumerate() {
                if i > 0 {
                    query.push('&');
                }
                query.push_str(&uri_encode(k, false));
                query.push('=');
                query.push_str(&uri_encode(v, false));
            }
            url.set_query(Some(&query));
        }
        Ok(url)
    }

    /// Send `op`, retrying per policy; returns only successful (2xx) responses.
    pub(crate) async fn execute(&self, op: &Op<'_>) -> Result<reqwest::Response> {
        let url = self.url_for(op)?;
        let inner = &self.inner;
        let deadline = Instant::now() + inner.timeouts.total;
        retry(
            &inner.retry,
            deadline,
            op.name,
            &inner.counters.retries,
            || self.attempt(op, &url),
        )
        .await
    }

    async fn attempt(&self, op: &Op<'_>, url: &Url) -> Result<reqwest::Response> {
        let inner = &self.inner;
        let mut builder = inner.http.request(op.method.clone(), url.clone());
        for (n, v) in &op.headers {
            builder = builder.header(*n, v);
        }
        if let Some(provider) = &inner.credentials {
            let creds = provider
                .credentials()
                .await
                .map_err(|e| e.with_bucket(inner.bucket.clone()).with_operation(op.name))?;
            let req = SignableRequest {
                method: op.method.as_str().to_owned(),
                canonical_uri: url.path().to_owned(),
                query: op.query.clone(),
                headers: std::iter::once(("host".to_owned(), host_header(url)))
                    .chain(op.headers.iter().map(|(n, v)| ((*n).to_owned(), v.clone())))
                    .collect(),
                payload_hash: inner.payload_hash.to_owned(),
            };
            for (n, v) in inner
                .signer
                .sign_headers(&req, &creds, &self.settings())
                .params
            {
                builder = builder.header(n, v);
            }
        }
        let request = builder.build().map_err(|e| {
            op.error(
                &inner.bucket,
                ErrorKind::Internal,
                crate::describe_transport_error(&e),
            )
        })?;
        let resp = match tokio::time::timeout(
            inner.timeouts.first_byte,
            inner.http.execute(request),
        )
        .await
        {
            Err(_) => {
                return Err(op.error(
                    &inner.bucket,
                    ErrorKind::UpstreamTimeout,
                    format!("no response headers within {:?}", inner.timeouts.first_byte),
                ));
            }
            Ok(Err(e)) => {
                let kind = if e.is_connect() {
                    ErrorKind::Unavailable
                } else if e.is_timeout() {
                    ErrorKind::UpstreamTimeout
                } else {
                    ErrorKind::Upstream
                };
                return Err(op.error(&inner.bucket, kind, crate::describe_transport_error(&e)));
            }
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        Err(error_from_response(&self.inner.bucket, op, resp, self.inner.timeouts.idle).await)
    }
}

fn push_conditions(
    headers: &mut Vec<(&'static str, String)>,
    if_match: Option<&str>,
    if_none_match: Option<&str>,
) {
    if let Some(v) = if_match {
        headers.push(("if-match", v.to_owned()));
    }
    if let Some(v) = if_none_match {
        headers.push(("if-none-match", v.to_owned()));
    }
}

fn version_query(version: Option<&str>) -> Vec<(String, String)> {
    version
        .map(|v| vec![("versionId".to_owned(), v.to_owned())])
        .unwrap_or_default()
}

fn host_header(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    }
}

/// Collect a body into one buffer (convenience for small objects).
pub(crate) fn concat(chunks: Vec<Bytes>) -> Bytes {
    if chunks.len() == 1 {
        return chunks.into_iter().next().unwrap_or_default();
    }
    let mut v = Vec::with_capacity(chunks.iter().map(Bytes::len).sum());
    for c in chunks {
        v.extend_from_slice(&c);
    }
    Bytes::from(v)
}

impl S3Client {
    /// Idle timeout and resume budget for bodies.
    pub(crate) fn body_settings(&self) -> (Duration, u32) {
        (self.inner.timeouts.idle, self.inner.retry.max_resumes)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::AddressingStyle;

    pub(crate) fn client(
        endpoint: Option<&str>,
        bucket: &str,
        style: AddressingStyle,
    ) -> Result<S3Client> {
        let mut b = S3Client::builder(bucket)
            .region("eu-west-1")
            .addressing_style(style)
            .anonymous();
        if let Some(e) = endpoint {
            b = b.endpoint(e);
        }
        b.build()
    }

    fn url(c: &S3Client, key: Option<&str>) -> String {
        let op = Op {
            name: "GetObject",
            method: Method::GET,
            key,
            query: vec![],
            headers: vec![],
        };
        c.url_for(&op).unwrap().to_string()
    }

    #[test]
    fn addressing_styles() {
        let aws = client(None, "my-bucket", AddressingStyle::Auto).unwrap();
        assert_eq!(
            url(&aws, Some("a b/c")),
            "https://my-bucket.s3.eu-west-1.amazonaws.com/a%20b/c"
        );
        let dotted = client(None, "my.bucket", AddressingStyle::Auto).unwrap();
        assert_eq!(
            url(&dotted, Some("k")),
            "https://s3.eu-west-1.amazonaws.com/my.bucket/k"
        );
        let minio = client(Some("http://127.0.0.1:9000"), "b1", AddressingStyle::Auto).unwrap();
        assert_eq!(url(&minio, Some("k+1")), "http://127.0.0.1:9000/b1/k%2B1");
        assert_eq!(url(&minio, None), "http://127.0.0.1:9000/b1/");
        let vh = client(
            Some("http://localhost:9000/"),
            "bkt",
            AddressingStyle::VirtualHosted,
        )
        .unwrap();
        assert_eq!(url(&vh, Some("k")), "http://bkt.localhost:9000/k");
        assert_eq!(url(&vh, Some("/lead")), "http://bkt.localhost:9000//lead");
        assert_eq!(url(&vh, None), "http://bkt.localhost:9000/");
        let prefixed =
            client(Some("https://gw.example/s3/"), "bkt", AddressingStyle::Path).unwrap();
        assert_eq!(url(&prefixed, Some("k")), "https://gw.example/s3/bkt/k");
    }

    #[test]
    fn keys_keep_their_bytes() {
        let c = client(Some("http://127.0.0.1:9000"), "b", AddressingStyle::Path).unwrap();
        assert_eq!(url(&c, Some("a//b")), "http://127.0.0.1:9000/b/a//b");
        assert_eq!(
            url(&c, Some("100%/ü~")),
            "http://127.0.0.1:9000/b/100%25/%C3%BC~"
        );
        assert_eq!(url(&c, Some("/lead")), "http://127.0.0.1:9000/b//lead");
        for bad in ["", "a/../b", "./x", "x/."] {
            let op = Op {
                name: "GetObject",
                method: Method::GET,
                key: Some(bad),
                query: vec![],
                headers: vec![],
            };
            let err = c.url_for(&op).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::BadRequest, "{bad:?}");
        }
    }
}
