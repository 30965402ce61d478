//! Origin fetches: sliced, coalesced, pinned to one object version.
//!
//! Objects are fetched in fixed-size slices. The first slice's response gives the object's size and
//! ETag; every later slice carries `If-Match` with that ETag and its response's ETag is checked too
//! (some S3-compatible stores ignore `If-Match` on GET), so a change of object mid-read fails the
//! read instead of splicing two versions.
//!
//! Coalescing happens at two levels. A full-object read is one *object flight* (keyed by bucket and
//! key) that fetches slice after slice with one slice of read-ahead; every concurrent full GET, HEAD
//! and Range request of that object joins it while it still holds the object from its first byte.
//! Range requests that find no such flight fetch only the slices they touch, each a *slice flight*
//! (keyed by bucket, key and slice index) shared by concurrent overlapping ranges. HEADs that find
//! no flight share one HEAD request.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use futures_util::StreamExt as _;
use yatagarasu_coalesce::{
    FlightError, FlightStatsSnapshot, Group, StreamGroup, StreamOptions, Subscription,
};
use yatagarasu_core::{ContentRange, EntityTag, Error, ErrorKind, ObjectMeta, Result};
use yatagarasu_s3::{GetObjectRequest, HeadObjectRequest, ObjectBody, S3Client};

use crate::cache::{ObjectCache, freshness};
use crate::router::BucketRoute;

/// A response body as the proxy streams it.
pub(crate) type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;
/// Object metadata shared by the subscribers of a flight.
pub(crate) type Head = Arc<ObjectMeta>;

type ObjectKey = (String, String);
type SliceKey = (String, String, u64);
type Sub = Subscription<Head, Bytes, Error>;

/// Coalescing settings of one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoalescingOptions {
    /// Share origin fetches between concurrent requests (default on).
    pub enabled: bool,
    /// How long a request waits for a shared fetch's first response before fetching on its own.
    pub wait_timeout: Duration,
}

impl Default for CoalescingOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            wait_timeout: Duration::from_secs(30),
        }
    }
}

/// Proxy-wide fetch settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchOptions {
    /// Bytes per origin request (the last slice of an object may be shorter).
    pub slice_size: u64,
    /// Most bytes one shared flight holds (see `yatagarasu_coalesce::StreamOptions::buffer_bytes`).
    pub buffer_bytes: usize,
    /// Most clients sharing one flight; more fetch on their own.
    pub max_subscribers: usize,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            slice_size: 4 * 1024 * 1024,
            // Two slices: late joiners get objects up to 8 MiB from their first byte, and a large
            // download costs at most this much memory however slow its readers.
            buffer_bytes: 8 * 1024 * 1024,
            max_subscribers: 10_000,
        }
    }
}

/// Counters of the proxy's coalescing, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CoalescingStats {
    /// Full-object flights.
    pub objects: FlightStatsSnapshot,
    /// Slice flights (Range requests without an object flight).
    pub slices: FlightStatsSnapshot,
    /// Shared HEAD requests.
    pub heads: FlightStatsSnapshot,
    /// Requests that waited longer than the wait timeout and fetched on their own.
    pub wait_timeouts: u64,
}

pub(crate) struct Fetcher {
    options: FetchOptions,
    objects: StreamGroup<ObjectKey, Head, Bytes, Error>,
    slices: StreamGroup<SliceKey, Head, Bytes, Error>,
    heads: Group<ObjectKey, Head, Error>,
    wait_timeouts: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn flight_error(e: FlightError<Error>) -> Error {
    match e {
        FlightError::Failed(e) => e,
        FlightError::Panicked => {
            Error::new(ErrorKind::Internal, "the shared origin fetch panicked")
        }
        FlightError::Cancelled => Error::new(
            ErrorKind::Unavailable,
            "the shared origin fetch was cancelled",
        ),
        FlightError::TimedOut => Error::new(
            ErrorKind::UpstreamTimeout,
            "timed out waiting for the shared origin fetch",
        ),
        FlightError::Lagged => Error::new(
            ErrorKind::Upstream,
            "this client fell too far behind the shared origin fetch and was dropped",
        ),
    }
}

fn sub_stream(sub: Sub) -> BodyStream {
    Box::pin(sub.map(|r| r.map_err(flight_error)))
}

fn object_body_stream(body: ObjectBody) -> BodyStream {
    Box::pin(body)
}

/// The range request for slice `index` of an object of `size` bytes.
fn slice_request(
    index: u64,
    slice_size: u64,
    size: Option<u64>,
    etag: Option<&EntityTag>,
) -> GetObjectRequest {
    let start = index * slice_size;
    let mut end = start + slice_size - 1;
    if let Some(size) = size {
        end = end.min(size.saturating_sub(1));
    }
    GetObjectRequest {
        if_match: etag.map(ToString::to_string),
        ..GetObjectRequest::range(start, end)
    }
}

/// Fetch one slice; when `etag` is given, the slice must belong to that version.
async fn fetch_slice(
    client: &S3Client,
    key: &str,
    index: u64,
    slice_size: u64,
    size: Option<u64>,
    etag: Option<&EntityTag>,
) -> Result<yatagarasu_s3::GetObjectOutput> {
    let out = client
        .get_object(key, &slice_request(index, slice_size, size, etag))
        .await?;
    if let Some(expected) = etag
        && !out
            .meta
            .etag
            .as_ref()
            .is_some_and(|t| t.strong_eq(expected))
    {
        tracing::warn!(
            bucket = client.bucket(),
            key,
            slice = index,
            "object changed while it was being read"
        );
        return Err(changed_mid_read(client, key));
    }
    match out.content_range {
        Some(ContentRange::Bytes { range, .. }) if range.start == index * slice_size => Ok(out),
        _ => Err(Error::new(
            ErrorKind::Upstream,
            format!("the origin did not answer slice {index} with its range"),
        )
        .with_bucket(client.bucket())
        .with_key(key)),
    }
}

fn changed_mid_read(client: &S3Client, key: &str) -> Error {
    Error::new(
        ErrorKind::Upstream,
        "the object changed while it was being read; not splicing versions",
    )
    .with_bucket(client.bucket())
    .with_key(key)
    .with_upstream_code("PreconditionFailed")
}

/// Where a fetch stores what it reads: the object's record once its metadata is known, and every
/// complete slice as it finishes. A slice cut short by an error is never stored.
#[derive(Debug, Clone)]
pub(crate) struct Fill {
    pub(crate) cache: ObjectCache,
    pub(crate) route: String,
    pub(crate) key: String,
    pub(crate) default_ttl: Duration,
}

impl Fill {
    /// Store the record; returns how long slices of this version are kept, or `None` when the object
    /// must not be stored (`no-store`, `private`).
    async fn record(&self, meta: &ObjectMeta) -> Option<Duration> {
        let fresh_for = freshness(meta, self.default_ttl)?;
        self.cache
            .store_record(&self.route, &self.key, meta, fresh_for)
            .await;
        Some(self.cache.slice_retention(fresh_for))
    }
}

/// Re-chunks a body into slices and stores each complete one.
#[derive(Clone)]
struct SliceSink {
    fill: Fill,
    etag: EntityTag,
    keep: Duration,
    size: u64,
    slice_size: u64,
    index: u64,
    buf: Vec<u8>,
}

impl SliceSink {
    async fn push(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() {
            let slice_len = self
                .slice_size
                .min(self.size.saturating_sub(self.index * self.slice_size));
            let room = usize::try_from(slice_len)
                .unwrap_or(usize::MAX)
                .saturating_sub(self.buf.len());
            let take = room.min(chunk.len());
            self.buf.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.buf.len() as u64 == slice_len && slice_len > 0 {
                let body = Bytes::from(std::mem::take(&mut self.buf));
                let f = &self.fill;
                f.cache
                    .store_slice(&f.route, &f.key, &self.etag, self.index, body, self.keep)
                    .await;
                self.index += 1;
            } else if take == 0 {
                return; // more bytes than the object has: never store them
            }
        }
    }
}

/// Aborts a spawned task when dropped (a read-ahead nobody will read).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Fetch a whole object slice by slice with one slice of read-ahead. Yields the metadata first.
async fn whole_object(
    client: S3Client,
    key: String,
    slice_size: u64,
    fill: Option<Fill>,
) -> Result<(Head, BodyStream)> {
    let first = match client
        .get_object(&key, &slice_request(0, slice_size, None, None))
        .await
    {
        Ok(out) => out,
        // An empty object has no byte 0: S3 answers a ranged GET with 416. Fetch it plainly.
        Err(e) if e.kind() == ErrorKind::InvalidRange => {
            let out = client
                .get_object(&key, &GetObjectRequest::default())
                .await?;
            if let Some(f) = &fill
                && out.meta.size == 0
            {
                f.record(&out.meta).await;
            }
            return Ok((Arc::new(out.meta), object_body_stream(out.body)));
        }
        Err(e) => return Err(e),
    };
    let size = first.meta.size;
    let head = Arc::new(first.meta.clone());
    let slices = size.div_ceil(slice_size).max(1);
    let sink = match (&fill, &first.meta.etag) {
        (Some(f), Some(etag)) => f.record(&first.meta).await.map(|keep| SliceSink {
            fill: f.clone(),
            etag: etag.clone(),
            keep,
            size,
            slice_size,
            index: 0,
            buf: Vec::new(),
        }),
        _ => None,
    };
    let Some(etag) = first.meta.etag.clone() else {
        if slices == 1 {
            return Ok((head, object_body_stream(first.body)));
        }
        // No ETag to pin later slices to: fetch the object in one piece instead.
        drop(first);
        let out = client
            .get_object(&key, &GetObjectRequest::default())
            .await?;
        return Ok((Arc::new(out.meta), object_body_stream(out.body)));
    };
    struct State {
        client: S3Client,
        key: String,
        etag: EntityTag,
        size: u64,
        slice_size: u64,
        slices: u64,
        next: u64,
        current: Option<ObjectBody>,
        ahead: Option<AbortOnDrop<Result<yatagarasu_s3::GetObjectOutput>>>,
        failed: bool,
        sink: Option<SliceSink>,
    }
    let state = State {
        client,
        key,
        etag,
        size,
        slice_size,
        slices,
        next: 1,
        current: Some(first.body),
        ahead: None,
        failed: false,
        sink,
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        if st.failed {
            return None;
        }
        loop {
            if let Some(body) = st.current.as_mut() {
                if st.ahead.is_none() && st.next < st.slices {
                    // Read-ahead: the next slice's request goes out while this one streams.
                    let (client, key, etag) = (st.client.clone(), st.key.clone(), st.etag.clone());
                    let (i, s, size) = (st.next, st.slice_size, st.size);
                    st.ahead = Some(AbortOnDrop(tokio::spawn(async move {
                        fetch_slice(&client, &key, i, s, Some(size), Some(&etag)).await
                    })));
                }
                match body.next().await {
                    Some(Ok(chunk)) => {
                        if let Some(sink) = st.sink.as_mut() {
                            sink.push(&chunk).await;
                        }
                        return Some((Ok(chunk), st));
                    }
                    Some(Err(e)) => {
                        st.failed = true;
                        return Some((Err(e), st));
                    }
                    None => st.current = None,
                }
            }
            if st.next >= st.slices {
                return None;
            }
            let next = match st.ahead.take() {
                Some(mut task) => match (&mut task.0).await {
                    Ok(r) => r,
                    Err(_) => Err(Error::new(
                        ErrorKind::Internal,
                        "slice read-ahead task failed",
                    )),
                },
                None => {
                    fetch_slice(
                        &st.client,
                        &st.key,
                        st.next,
                        st.slice_size,
                        Some(st.size),
                        Some(&st.etag),
                    )
                    .await
                }
            };
            match next {
                Ok(out) => {
                    st.next += 1;
                    st.current = Some(out.body);
                }
                Err(e) => {
                    st.failed = true;
                    return Some((Err(e), st));
                }
            }
        }
    });
    Ok((head, Box::pin(stream)))
}

/// Skip the first `skip` bytes of a stream and end it after `take` more.
pub(crate) fn window(stream: BodyStream, skip: u64, take: u64) -> BodyStream {
    let s = futures_util::stream::unfold(
        (stream, skip, take),
        |(mut s, mut skip, mut take)| async move {
            loop {
                if take == 0 {
                    return None;
                }
                match s.next().await? {
                    Err(e) => return Some((Err(e), (s, 0, 0))),
                    Ok(mut chunk) => {
                        let len = chunk.len() as u64;
                        if skip >= len {
                            skip -= len;
                            continue;
                        }
                        let from = usize::try_from(skip).unwrap_or(usize::MAX);
                        chunk = chunk.slice(from..);
                        skip = 0;
                        let keep =
                            usize::try_from(take.min(chunk.len() as u64)).unwrap_or(usize::MAX);
                        chunk.truncate(keep);
                        take -= chunk.len() as u64;
                        return Some((Ok(chunk), (s, skip, take)));
                    }
                }
            }
        },
    );
    Box::pin(s)
}

impl Fetcher {
    pub(crate) fn new(options: FetchOptions) -> Self {
        let stream_options = StreamOptions {
            buffer_bytes: options.buffer_bytes,
            max_subscribers: options.max_subscribers,
        };
        Self {
            options,
            objects: StreamGroup::new(stream_options),
            slices: StreamGroup::new(stream_options),
            heads: Group::new(),
            wait_timeouts: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub(crate) fn stats(&self) -> CoalescingStats {
        CoalescingStats {
            objects: self.objects.stats(),
            slices: self.slices.stats(),
            heads: self.heads.stats(),
            wait_timeouts: self
                .wait_timeouts
                .load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Wait for a subscription's head within the bucket's wait timeout; `None` on timeout.
    async fn head_of(&self, route: &BucketRoute, sub: &mut Sub) -> Option<Result<Head>> {
        match tokio::time::timeout(route.coalescing.wait_timeout, sub.head()).await {
            Ok(r) => Some(r.map_err(flight_error)),
            Err(_) => {
                self.wait_timeouts
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                None
            }
        }
    }

    /// The whole object: metadata, then the body.
    pub(crate) async fn object(
        &self,
        route: &BucketRoute,
        key: &str,
        fill: Option<Fill>,
    ) -> Result<(Head, BodyStream)> {
        let (client, slice_size) = (route.client.clone(), self.options.slice_size);
        if route.coalescing.enabled {
            let owned = (client.clone(), key.to_owned(), fill.clone());
            let start = move || whole_object(owned.0, owned.1, slice_size, owned.2);
            if let Some((mut sub, _role)) = self
                .objects
                .subscribe((route.name.clone(), key.to_owned()), start)
                && let Some(head) = self.head_of(route, &mut sub).await
            {
                return Ok((head?, sub_stream(sub)));
            }
        }
        whole_object(client, key.to_owned(), slice_size, fill).await
    }

    /// The metadata only: from an object flight under way, else one shared HEAD.
    pub(crate) async fn head(&self, route: &BucketRoute, key: &str) -> Result<Head> {
        let object_key = (route.name.clone(), key.to_owned());
        if route.coalescing.enabled {
            if let Some(mut sub) = self.objects.join(&object_key)
                && let Some(head) = self.head_of(route, &mut sub).await
            {
                return head;
            }
            let client = route.client.clone();
            let k = key.to_owned();
            let outcome = self
                .heads
                .run_with_timeout(
                    object_key,
                    Some(route.coalescing.wait_timeout),
                    move || async move {
                        client
                            .head_object(&k, &HeadObjectRequest::default())
                            .await
                            .map(Arc::new)
                    },
                )
                .await;
            match outcome.result {
                Err(FlightError::TimedOut) => {}
                other => return other.map_err(flight_error),
            }
        }
        route
            .client
            .head_object(key, &HeadObjectRequest::default())
            .await
            .map(Arc::new)
    }

    /// Join a full-object flight under way, if any: its metadata and the body from the first byte.
    /// `None` when there is none (or coalescing is off, or its head did not come within the wait timeout).
    pub(crate) async fn join_object(
        &self,
        route: &BucketRoute,
        key: &str,
    ) -> Option<Result<(Head, BodyStream)>> {
        if !route.coalescing.enabled {
            return None;
        }
        let mut sub = self.objects.join(&(route.name.clone(), key.to_owned()))?;
        let head = self.head_of(route, &mut sub).await?;
        Some(head.map(|h| (h, sub_stream(sub))))
    }

    /// Bytes `start..=end` of the version described by `head`, fetching only the slices they touch,
    /// each through a slice flight shared with concurrent overlapping ranges.
    pub(crate) async fn range(
        &self,
        route: &BucketRoute,
        key: &str,
        head: &Head,
        (start, end): (u64, u64),
        source: SliceSource,
    ) -> Result<BodyStream> {
        let s = self.options.slice_size;
        let (first, last) = (start / s, end / s);
        let coalesce = route.coalescing.enabled;
        let first_body =
            open_slice(&self.slices, route, key, head, first, s, coalesce, &source).await?;
        let stream = if first == last {
            first_body
        } else {
            let rest = SliceChain {
                route: route.clone(),
                key: key.to_owned(),
                head: Arc::clone(head),
                next: first + 1,
                last,
                slice_size: s,
                group: self.slices.clone(),
                coalesce,
                source,
            };
            Box::pin(first_body.chain(rest.into_stream()))
        };
        Ok(window(stream, start - first * s, end - start + 1))
    }
}

/// Whether two metadata describe the same version of an object (strong ETag match, else size and
/// modification time).
pub(crate) fn same_version(a: &ObjectMeta, b: &ObjectMeta) -> bool {
    a.size == b.size
        && match (&a.etag, &b.etag) {
            (Some(x), Some(y)) => x.strong_eq(y),
            (None, None) => a.last_modified == b.last_modified,
            _ => false,
        }
}

/// Where the slices of a range read come from besides the origin.
#[derive(Debug, Clone, Default)]
pub(crate) struct SliceSource {
    /// The cache to read slices from first and to store fetched slices in, and how long to keep them.
    pub(crate) cache: Option<(Fill, Duration)>,
}

/// Open slice `index` of the version described by `head`: from the cache when it holds it, else
/// from the origin, through a slice flight when coalescing (stored in the cache once complete).
#[allow(clippy::too_many_arguments)]
async fn open_slice(
    group: &StreamGroup<SliceKey, Head, Bytes, Error>,
    route: &BucketRoute,
    key: &str,
    head: &Head,
    index: u64,
    slice_size: u64,
    coalesce: bool,
    source: &SliceSource,
) -> Result<BodyStream> {
    if let (Some((fill, _)), Some(etag)) = (&source.cache, &head.etag)
        && let Some(body) = fill.cache.slice(&fill.route, key, etag, index).await
    {
        let expected = slice_size.min(head.size.saturating_sub(index * slice_size));
        if body.len() as u64 == expected {
            return Ok(Box::pin(futures_util::stream::once(
                async move { Ok(body) },
            )));
        }
    }
    let client = route.client.clone();
    let size = head.size;
    let etag = head.etag.clone();
    let sink = match (&source.cache, &etag) {
        (Some((fill, keep)), Some(etag)) => Some(SliceSink {
            fill: fill.clone(),
            etag: etag.clone(),
            keep: *keep,
            size,
            slice_size,
            index,
            buf: Vec::new(),
        }),
        _ => None,
    };
    let fetch = {
        let (client, key, etag) = (client.clone(), key.to_owned(), etag.clone());
        move || async move {
            let out =
                fetch_slice(&client, &key, index, slice_size, Some(size), etag.as_ref()).await?;
            let body = object_body_stream(out.body);
            let body: BodyStream = match sink {
                None => body,
                Some(sink) => Box::pin(futures_util::stream::unfold(
                    (body, sink),
                    |(mut body, mut sink)| async move {
                        let item = body.next().await?;
                        if let Ok(chunk) = &item {
                            sink.push(chunk).await;
                        }
                        Some((item, (body, sink)))
                    },
                )),
            };
            Ok::<_, Error>((Arc::new(out.meta), body))
        }
    };
    let opened = async {
        if coalesce
            && let Some((mut sub, _)) =
                group.subscribe((route.name.clone(), key.to_owned(), index), fetch.clone())
        {
            match tokio::time::timeout(route.coalescing.wait_timeout, sub.head()).await {
                Ok(Ok(slice_head)) => {
                    if !same_version(&slice_head, head) {
                        return Err(changed_mid_read(&client, key));
                    }
                    return Ok(sub_stream(sub));
                }
                Ok(Err(e)) => return Err(flight_error(e)),
                Err(_) => {}
            }
        }
        fetch().await.map(|(_, body)| body)
    }
    .await;
    // The origin no longer has the version a cached record describes: forget the record, so the
    // next request fetches the current version instead of failing until the record expires.
    if let (Err(e), Some((fill, _))) = (&opened, &source.cache)
        && is_version_change(e)
    {
        fill.cache.purge_object(&fill.route, key).await;
    }
    opened
}

/// Whether an error says the object is no longer the version being read.
pub(crate) fn is_version_change(e: &Error) -> bool {
    e.context().upstream_code.as_deref() == Some("PreconditionFailed")
}

/// The slices after the first of a Range read. Each slice is opened (its origin request sent, or its
/// cache entry read) while the one before it streams: one slice of read-ahead, as full GETs have.
#[derive(Clone)]
struct SliceChain {
    route: BucketRoute,
    key: String,
    head: Head,
    next: u64,
    last: u64,
    slice_size: u64,
    group: StreamGroup<SliceKey, Head, Bytes, Error>,
    coalesce: bool,
    source: SliceSource,
}

type Opening = AbortOnDrop<Result<BodyStream>>;

impl SliceChain {
    /// Start opening slice `index` in the background.
    fn open_ahead(&self, index: u64) -> Opening {
        let c = self.clone();
        AbortOnDrop(tokio::spawn(async move {
            open_slice(
                &c.group,
                &c.route,
                &c.key,
                &c.head,
                index,
                c.slice_size,
                c.coalesce,
                &c.source,
            )
            .await
        }))
    }

    /// The stream of slices `next..=last`; the first of them starts opening now.
    fn into_stream(self) -> BodyStream {
        let ahead = (self.next <= self.last).then(|| self.open_ahead(self.next));
        let s = futures_util::stream::unfold(Some((self, ahead)), |state| async move {
            let (st, ahead) = state?;
            let mut task = ahead?;
            let opened = match (&mut task.0).await {
                Ok(r) => r,
                Err(_) => Err(Error::new(
                    ErrorKind::Internal,
                    "slice read-ahead task failed",
                )),
            };
            let following = st.next + 1;
            let ahead = (following <= st.last).then(|| st.open_ahead(following));
            let next = SliceChain {
                next: following,
                ..st
            };
            match opened {
                Ok(body) => Some((body, Some((next, ahead)))),
                Err(e) => Some((
                    Box::pin(futures_util::stream::once(async move { Err(e) })) as BodyStream,
                    None,
                )),
            }
        })
        .flatten();
        Box::pin(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_requests_cover_the_object_exactly() {
        let r = slice_request(2, 100, Some(250), None);
        assert_eq!(r.range, GetObjectRequest::range(200, 249).range);
        let r = slice_request(0, 100, None, None);
        assert_eq!(r.range, GetObjectRequest::range(0, 99).range);
    }

    #[tokio::test]
    async fn window_cuts_across_chunk_boundaries() {
        let chunks: Vec<Result<Bytes>> = ["abc", "def", "ghi"]
            .iter()
            .map(|s| Ok(Bytes::from(*s)))
            .collect();
        let s: BodyStream = Box::pin(futures_util::stream::iter(chunks));
        let out: Vec<Bytes> = window(s, 2, 5).map(|r| r.unwrap()).collect().await;
        assert_eq!(out.concat(), b"cdefg");
    }
}
