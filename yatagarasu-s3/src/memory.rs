//! An in-memory [`Origin`] for testing code that reads through one (feature `test-util`).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use yatagarasu_core::{
    ContentRange, EntityTag, EntityTagList, Error, ErrorKind, ObjectMeta, Result,
};

use crate::{
    GetObjectOutput, GetObjectRequest, HeadObjectRequest, ObjectBody, Origin, OriginFuture,
};

/// Bodies are handed out in chunks of this size, as a network origin would stream them.
const CHUNK: usize = 64 * 1024;

/// An [`Origin`] holding objects in memory, answering as S3 does: ranges (206, and
/// [`ErrorKind::InvalidRange`] for an unsatisfiable one), `If-Match` / `If-None-Match` /
/// `If-(Un)Modified-Since` with S3's precedence, version ids, `NoSuchKey`. It counts the requests
/// it answers and fails the next ones on demand, so code that reads through an `Origin` (a
/// [`Proxy`](https://docs.rs/yatagarasu) route, a decorator of your own) can be tested without a
/// network or an S3 server. Clones share the objects.
///
/// ```
/// use futures_util::StreamExt;
/// use yatagarasu_s3::{ErrorKind, GetObjectRequest, MemoryOrigin, Origin};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> yatagarasu_s3::Result<()> {
/// let origin = MemoryOrigin::new("media");
/// origin.put("hello.txt", "hello, world");
///
/// let mut part = origin.get_object("hello.txt", &GetObjectRequest::range(0, 4)).await?;
/// let mut bytes = Vec::new();
/// while let Some(chunk) = part.body.next().await {
///     bytes.extend_from_slice(&chunk?);
/// }
/// assert_eq!(bytes, b"hello");
/// assert_eq!(part.meta.size, 12);
///
/// origin.fail_next(ErrorKind::Unavailable);
/// let err = origin.get_object("hello.txt", &GetObjectRequest::default()).await.unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Unavailable);
/// assert_eq!(origin.gets(), 2);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct MemoryOrigin {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    bucket: String,
    /// Tells origins apart in [`Origin::identity`]: two of them hold different objects.
    instance: u64,
    objects: Mutex<HashMap<String, Stored>>,
    failures: Mutex<VecDeque<ErrorKind>>,
    puts: AtomicU64,
    gets: AtomicU64,
    heads: AtomicU64,
}

#[derive(Debug, Clone)]
struct Stored {
    meta: ObjectMeta,
    body: Bytes,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MemoryOrigin {
    /// An empty origin for `bucket`.
    pub fn new(bucket: impl Into<String>) -> Self {
        static INSTANCES: AtomicU64 = AtomicU64::new(0);
        Self {
            inner: Arc::new(Inner {
                bucket: bucket.into(),
                instance: INSTANCES.fetch_add(1, Ordering::Relaxed),
                objects: Mutex::new(HashMap::new()),
                failures: Mutex::new(VecDeque::new()),
                puts: AtomicU64::new(0),
                gets: AtomicU64::new(0),
                heads: AtomicU64::new(0),
            }),
        }
    }

    /// Store `body` under `key` (type `application/octet-stream`), replacing any object there;
    /// returns the new version's ETag (a fresh one on every put).
    pub fn put(&self, key: impl Into<String>, body: impl Into<Bytes>) -> EntityTag {
        let mut meta = ObjectMeta::default();
        meta.content_type = Some("application/octet-stream".to_owned());
        self.put_with_meta(key, body, meta)
    }

    /// Store `body` under `key` with `meta` (content type, cache control, user metadata, a
    /// version id...). Its size is the body's; an ETag and a last-modified time (whole seconds,
    /// as HTTP dates carry) are filled in when `meta` has none. Returns the ETag.
    pub fn put_with_meta(
        &self,
        key: impl Into<String>,
        body: impl Into<Bytes>,
        mut meta: ObjectMeta,
    ) -> EntityTag {
        let body = body.into();
        let n = self.inner.puts.fetch_add(1, Ordering::Relaxed);
        meta.size = body.len() as u64;
        let etag = meta.etag.clone().unwrap_or_else(|| {
            EntityTag::strong(format!("m{}-{n}", self.inner.instance))
                .unwrap_or_else(|| unreachable!("letters, digits and a dash make an ETag"))
        });
        meta.etag = Some(etag.clone());
        if meta.last_modified.is_none() {
            let secs = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            meta.last_modified = Some(UNIX_EPOCH + Duration::from_secs(secs));
        }
        lock(&self.inner.objects).insert(key.into(), Stored { meta, body });
        etag
    }

    /// Remove `key`; whether it was there.
    pub fn remove(&self, key: &str) -> bool {
        lock(&self.inner.objects).remove(key).is_some()
    }

    /// Make the next request (`get_object`, `head_object` or `probe`) fail with an error of
    /// `kind`, as if the store had answered so; calls queue up, one failure each.
    pub fn fail_next(&self, kind: ErrorKind) {
        lock(&self.inner.failures).push_back(kind);
    }

    /// `GetObject` requests answered so far (failed ones included).
    pub fn gets(&self) -> u64 {
        self.inner.gets.load(Ordering::Relaxed)
    }

    /// `HeadObject` requests answered so far (failed ones included).
    pub fn heads(&self) -> u64 {
        self.inner.heads.load(Ordering::Relaxed)
    }

    fn injected_failure(&self, op: &'static str, key: Option<&str>) -> Result<()> {
        match lock(&self.inner.failures).pop_front() {
            None => Ok(()),
            Some(kind) => {
                let e = Error::new(kind, "injected failure")
                    .with_bucket(self.inner.bucket.clone())
                    .with_operation(op);
                Err(match key {
                    Some(k) => e.with_key(k.to_owned()),
                    None => e,
                })
            }
        }
    }

    fn lookup(&self, op: &'static str, key: &str, version_id: Option<&str>) -> Result<Stored> {
        let not_found = |code: &str| {
            Error::new(ErrorKind::NotFound, "the object does not exist")
                .with_bucket(self.inner.bucket.clone())
                .with_key(key.to_owned())
                .with_operation(op)
                .with_upstream_code(code.to_owned())
        };
        let stored = lock(&self.inner.objects)
            .get(key)
            .cloned()
            .ok_or_else(|| not_found("NoSuchKey"))?;
        match version_id {
            Some(v) if stored.meta.version_id.as_deref() != Some(v) => {
                Err(not_found("NoSuchVersion"))
            }
            _ => Ok(stored),
        }
    }

    /// S3's order: `If-Match` (else `If-Unmodified-Since`) fails with 412; then `If-None-Match`
    /// (else `If-Modified-Since`) answers 304.
    fn check_conditions(
        &self,
        op: &'static str,
        key: &str,
        meta: &ObjectMeta,
        conditions: Conditions<'_>,
    ) -> Result<()> {
        let fail = |kind: ErrorKind, code: &str| {
            Err(Error::new(kind, "a condition of the request does not hold")
                .with_bucket(self.inner.bucket.clone())
                .with_key(key.to_owned())
                .with_operation(op)
                .with_upstream_code(code.to_owned()))
        };
        let etag_matches = |list: &str, weak: bool| match (EntityTagList::parse(list), &meta.etag) {
            (Some(EntityTagList::Any), _) => true,
            (Some(tags), Some(current)) if weak => tags.matches_weak(current),
            (Some(tags), Some(current)) => tags.matches_strong(current),
            _ => false,
        };
        let modified_after = |t: SystemTime| meta.last_modified.is_some_and(|lm| lm > t);
        if let Some(list) = conditions.if_match {
            if !etag_matches(list, false) {
                return fail(ErrorKind::PreconditionFailed, "PreconditionFailed");
            }
        } else if conditions.if_unmodified_since.is_some_and(modified_after) {
            return fail(ErrorKind::PreconditionFailed, "PreconditionFailed");
        }
        if let Some(list) = conditions.if_none_match {
            if etag_matches(list, true) {
                return fail(ErrorKind::NotModified, "NotModified");
            }
        } else if conditions
            .if_modified_since
            .is_some_and(|t| !modified_after(t))
        {
            return fail(ErrorKind::NotModified, "NotModified");
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
struct Conditions<'a> {
    if_match: Option<&'a str>,
    if_none_match: Option<&'a str>,
    if_modified_since: Option<SystemTime>,
    if_unmodified_since: Option<SystemTime>,
}

fn chunked(body: Bytes) -> ObjectBody {
    let mut chunks = Vec::with_capacity(body.len() / CHUNK + 1);
    let mut rest = body;
    while rest.len() > CHUNK {
        chunks.push(rest.split_to(CHUNK));
    }
    if !rest.is_empty() {
        chunks.push(rest);
    }
    ObjectBody::from_chunks(chunks)
}

impl Origin for MemoryOrigin {
    fn bucket(&self) -> &str {
        &self.inner.bucket
    }

    fn get_object<'a>(
        &'a self,
        key: &'a str,
        req: &'a GetObjectRequest,
    ) -> OriginFuture<'a, GetObjectOutput> {
        Box::pin(async move {
            const OP: &str = "GetObject";
            self.inner.gets.fetch_add(1, Ordering::Relaxed);
            self.injected_failure(OP, Some(key))?;
            let Stored { meta, body } = self.lookup(OP, key, req.version_id.as_deref())?;
            self.check_conditions(
                OP,
                key,
                &meta,
                Conditions {
                    if_match: req.if_match.as_deref(),
                    if_none_match: req.if_none_match.as_deref(),
                    if_modified_since: req.if_modified_since,
                    if_unmodified_since: req.if_unmodified_since,
                },
            )?;
            let Some(spec) = req.range else {
                return Ok(GetObjectOutput::new(meta, chunked(body)));
            };
            let Some(range) = spec.resolve(meta.size) else {
                return Err(
                    Error::new(ErrorKind::InvalidRange, "the range is not satisfiable")
                        .with_bucket(self.inner.bucket.clone())
                        .with_key(key.to_owned())
                        .with_operation(OP)
                        .with_upstream_code("InvalidRange")
                        .with_object_size(meta.size),
                );
            };
            let (start, end) = (
                usize::try_from(range.start).unwrap_or(usize::MAX),
                usize::try_from(range.end).unwrap_or(usize::MAX),
            );
            let part = body.slice(start..=end);
            let content_range = ContentRange::Bytes {
                range,
                complete: Some(meta.size),
            };
            Ok(GetObjectOutput::partial(
                meta,
                content_range,
                range.len(),
                chunked(part),
            ))
        })
    }

    fn head_object<'a>(
        &'a self,
        key: &'a str,
        req: &'a HeadObjectRequest,
    ) -> OriginFuture<'a, ObjectMeta> {
        Box::pin(async move {
            const OP: &str = "HeadObject";
            self.inner.heads.fetch_add(1, Ordering::Relaxed);
            self.injected_failure(OP, Some(key))?;
            let stored = self.lookup(OP, key, req.version_id.as_deref())?;
            self.check_conditions(
                OP,
                key,
                &stored.meta,
                Conditions {
                    if_match: req.if_match.as_deref(),
                    if_none_match: req.if_none_match.as_deref(),
                    if_modified_since: None,
                    if_unmodified_since: None,
                },
            )?;
            Ok(stored.meta)
        })
    }

    fn probe(&self) -> OriginFuture<'_, ()> {
        Box::pin(async move { self.injected_failure("HeadBucket", None) })
    }

    fn identity(&self) -> String {
        format!("memory:{}/{}", self.inner.instance, self.inner.bucket)
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt as _;
    use yatagarasu_core::RangeSpec;

    use super::*;

    async fn read(mut out: GetObjectOutput) -> Vec<u8> {
        let mut bytes = Vec::new();
        while let Some(chunk) = out.body.next().await {
            bytes.extend_from_slice(&chunk.expect("in-memory bodies do not fail"));
        }
        bytes
    }

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn answers_ranges_and_conditions_as_s3_does() {
        run(async {
            let origin = MemoryOrigin::new("media");
            let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
            let etag = origin.put("big.bin", body.clone());

            let whole = origin
                .get_object("big.bin", &GetObjectRequest::default())
                .await
                .expect("whole");
            assert_eq!(whole.content_range, None);
            assert_eq!(whole.content_length, 200_000);
            assert_eq!(read(whole).await, body);

            let tail = origin
                .get_object(
                    "big.bin",
                    &GetObjectRequest::default().with_range(RangeSpec::Suffix(10)),
                )
                .await
                .expect("suffix");
            assert_eq!(
                tail.content_range,
                Some(ContentRange::Bytes {
                    range: yatagarasu_core::ByteRange::new(199_990, 199_999),
                    complete: Some(200_000)
                })
            );
            assert_eq!(read(tail).await, body[199_990..]);

            let past = origin
                .get_object("big.bin", &GetObjectRequest::range(300_000, 300_001))
                .await
                .unwrap_err();
            assert_eq!(past.kind(), ErrorKind::InvalidRange);
            assert_eq!(past.context().object_size, Some(200_000));

            let tag = etag.to_string();
            let fresh = GetObjectRequest::default().with_if_none_match(tag.clone());
            let e = origin.get_object("big.bin", &fresh).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NotModified);
            let other = GetObjectRequest::default().with_if_match("\"other\"");
            let e = origin.get_object("big.bin", &other).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::PreconditionFailed);
            let same = GetObjectRequest::range(0, 0).with_if_match(tag);
            assert_eq!(
                read(origin.get_object("big.bin", &same).await.expect("same")).await,
                [0]
            );

            // A new put is a new version: the old ETag no longer matches.
            let new_etag = origin.put("big.bin", "v2");
            assert_ne!(new_etag, etag);
            let stale = GetObjectRequest::default().with_if_match(etag.to_string());
            let e = origin.get_object("big.bin", &stale).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::PreconditionFailed);

            let e = origin
                .head_object("missing", &HeadObjectRequest::default())
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NotFound);
            assert_eq!(e.context().key.as_deref(), Some("missing"));
            assert_eq!(origin.gets(), 7);
            assert_eq!(origin.heads(), 1);
        });
    }

    #[test]
    fn injected_failures_come_one_per_request_and_identities_differ() {
        run(async {
            let origin = MemoryOrigin::new("media");
            origin.put("a", "x");
            origin.fail_next(ErrorKind::Unavailable);
            origin.fail_next(ErrorKind::UpstreamTimeout);
            assert_eq!(
                origin.probe().await.unwrap_err().kind(),
                ErrorKind::Unavailable
            );
            let e = origin
                .head_object("a", &HeadObjectRequest::default())
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::UpstreamTimeout);
            assert_eq!(
                origin
                    .head_object("a", &HeadObjectRequest::default())
                    .await
                    .expect("recovered")
                    .size,
                1
            );
            assert_ne!(origin.identity(), MemoryOrigin::new("media").identity());
            assert_eq!(origin.identity(), origin.clone().identity());
        });
    }
}
