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

mod body;
mod claims;
mod object;
mod slices;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use yatagarasu_coalesce::{
    BufferBudget, FlightError, FlightStatsSnapshot, Group, StreamGroup, StreamOptions,
};
use yatagarasu_core::{Error, Result};
use yatagarasu_s3::{HeadObjectRequest, Origin};

pub(crate) use body::{BodyStream, Head};
use body::{ObjectKey, Sub, flight_error};
pub(crate) use claims::LocalClaims;
use object::{WholeRead, whole_object};
pub(crate) use slices::{Fill, SliceSource, is_version_change, same_version, window};
use slices::{SliceChain, SliceReader, open_slice};

/// What a shared fetch needs of a bucket: its name (the coalescing key), its origin (any
/// [`Origin`], decorators included) and its coalescing settings. Never the whole route.
#[derive(Debug, Clone)]
pub(crate) struct FetchTarget {
    /// The origin's cache id (see [`crate::routes::cache_id`]): what cache entries and shared
    /// fetches are keyed by.
    pub(crate) id: Arc<str>,
    pub(crate) origin: Arc<dyn Origin>,
    pub(crate) coalescing: CoalescingOptions,
}

/// Coalescing settings of one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
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
#[non_exhaustive]
pub struct FetchOptions {
    /// Bytes per origin request (the last slice of an object may be shorter).
    pub slice_size: u64,
    /// Most bytes one shared flight holds (see `yatagarasu_coalesce::StreamOptions::buffer_bytes`).
    pub buffer_bytes: usize,
    /// Most clients sharing one flight; more fetch on their own.
    pub max_subscribers: usize,
    /// Most bytes all shared flights and cache fills hold together (one budget for the process).
    /// At the limit, flights first give up what they keep for late joiners, then their origin reads
    /// wait (backpressure); cache fills are given up rather than waited for. A reader that reads
    /// always gets its next chunk, so the bound can be passed by one chunk per flight.
    pub buffer_budget_bytes: usize,
    /// When every reader of a shared fetch has left, the slice in progress is still fetched for the
    /// cache if at most this many of its bytes are left; otherwise the fetch stops at once.
    pub abandoned_fill_bytes: u64,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            slice_size: 4 * 1024 * 1024,
            // Two slices: late joiners get objects up to 8 MiB from their first byte, and a large
            // download costs at most this much memory however slow its readers.
            buffer_bytes: 8 * 1024 * 1024,
            max_subscribers: 10_000,
            buffer_budget_bytes: 256 * 1024 * 1024,
            abandoned_fill_bytes: 1024 * 1024,
        }
    }
}

/// Counters of the proxy's coalescing, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CoalescingStats {
    /// Full-object flights.
    pub objects: FlightStatsSnapshot,
    /// Slice flights (Range requests without an object flight).
    pub slices: FlightStatsSnapshot,
    /// Shared HEAD requests.
    pub heads: FlightStatsSnapshot,
    /// Requests that waited longer than the wait timeout and fetched on their own.
    pub wait_timeouts: u64,
    /// Readers that fell out of a shared fetch's window and went on with their own fetch.
    pub resumed: u64,
    /// Bytes shared fetches and cache fills hold now, and the budget they share.
    pub buffered_bytes: u64,
    /// The buffer budget (`FetchOptions::buffer_budget_bytes`).
    pub buffer_budget_bytes: u64,
}

pub(crate) struct Fetcher {
    options: FetchOptions,
    objects: StreamGroup<ObjectKey, Head, Bytes, Error>,
    slices: SliceReader,
    heads: Group<ObjectKey, Head, Error>,
    budget: Arc<BufferBudget>,
    wait_timeouts: std::sync::atomic::AtomicU64,
    resumed: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Fetcher {
    pub(crate) fn new(options: FetchOptions) -> Self {
        let budget = BufferBudget::new(options.buffer_budget_bytes);
        let stream_options = StreamOptions::default()
            .with_buffer_bytes(options.buffer_bytes)
            .with_max_subscribers(options.max_subscribers)
            // A producer that finishes a slice for the cache after its readers left ends itself;
            // this is only the backstop.
            .with_linger_bytes(options.abandoned_fill_bytes)
            .with_budget(Arc::clone(&budget));
        Self {
            options,
            objects: StreamGroup::new(stream_options.clone()),
            slices: SliceReader {
                group: StreamGroup::new(stream_options),
                slice_size: options.slice_size,
                budget: Arc::clone(&budget),
                abandoned_fill: options.abandoned_fill_bytes,
            },
            heads: Group::new(),
            budget,
            wait_timeouts: std::sync::atomic::AtomicU64::new(0),
            resumed: Arc::default(),
        }
    }

    pub(crate) fn stats(&self) -> CoalescingStats {
        let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        CoalescingStats {
            objects: self.objects.stats(),
            slices: self.slices.group.stats(),
            heads: self.heads.stats(),
            wait_timeouts: load(&self.wait_timeouts),
            resumed: load(&self.resumed),
            buffered_bytes: self.budget.in_use() as u64,
            buffer_budget_bytes: self.budget.capacity() as u64,
        }
    }

    fn whole_read(&self, fill: Option<Fill>) -> WholeRead {
        WholeRead {
            slice_size: self.options.slice_size,
            fill,
            audience: None,
            abandoned_fill: self.options.abandoned_fill_bytes,
            budget: Arc::clone(&self.budget),
        }
    }

    /// A shared whole-object body that, should this reader fall out of the flight's window, goes on
    /// with its own ranged reads from where it was (pinned to the same ETag), instead of failing.
    fn resumable(
        &self,
        sub: Sub,
        target: &FetchTarget,
        key: &str,
        head: &Head,
        fill: Option<&Fill>,
    ) -> BodyStream {
        let source = SliceSource {
            cache: fill.and_then(|f| {
                crate::cache::freshness(head, f.default_ttl)
                    .map(|fresh| (f.clone(), f.cache.slice_retention(fresh)))
            }),
        };
        let resume = head.etag.is_some().then(|| RangeRead {
            reader: self.slices.clone(),
            target: target.clone(),
            key: key.to_owned(),
            head: Arc::clone(head),
            source,
        });
        resumable(sub, resume, Arc::clone(&self.resumed))
    }

    /// Wait for a subscription's head within the bucket's wait timeout; `None` on timeout.
    async fn head_of(&self, target: &FetchTarget, sub: &mut Sub) -> Option<Result<Head>> {
        match tokio::time::timeout(target.coalescing.wait_timeout, sub.head()).await {
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
        target: &FetchTarget,
        key: &str,
        fill: Option<Fill>,
    ) -> Result<(Head, BodyStream)> {
        let origin = Arc::clone(&target.origin);
        if target.coalescing.enabled {
            let owned = (
                Arc::clone(&origin),
                key.to_owned(),
                self.whole_read(fill.clone()),
            );
            let trace = crate::otel::Current::capture();
            let start = move |audience| {
                let read = WholeRead {
                    audience: Some(audience),
                    ..owned.2
                };
                trace.wrap(whole_object(owned.0, owned.1, read))
            };
            if let Some((mut sub, _role)) = self
                .objects
                .subscribe_with((Arc::clone(&target.id), key.to_owned()), start)
                && let Some(head) = self.head_of(target, &mut sub).await
            {
                let head = head?;
                let body = self.resumable(sub, target, key, &head, fill.as_ref());
                return Ok((head, body));
            }
        }
        whole_object(origin, key.to_owned(), self.whole_read(fill)).await
    }

    /// The metadata only: from an object flight under way, else one shared HEAD.
    pub(crate) async fn head(&self, target: &FetchTarget, key: &str) -> Result<Head> {
        let object_key = (Arc::clone(&target.id), key.to_owned());
        if target.coalescing.enabled {
            if let Some(mut sub) = self.objects.join(&object_key)
                && let Some(head) = self.head_of(target, &mut sub).await
            {
                return head;
            }
            let origin = Arc::clone(&target.origin);
            let k = key.to_owned();
            let trace = crate::otel::Current::capture();
            let outcome = self
                .heads
                .run_with_timeout(
                    object_key,
                    Some(target.coalescing.wait_timeout),
                    move || {
                        trace.wrap(async move {
                            origin
                                .head_object(&k, &HeadObjectRequest::default())
                                .await
                                .map(Arc::new)
                        })
                    },
                )
                .await;
            match outcome.result {
                // Waited too long, or the shared HEAD was dropped as everyone else left just as
                // this request joined: ask on its own.
                Err(FlightError::TimedOut | FlightError::Cancelled) => {}
                other => return other.map_err(flight_error),
            }
        }
        target
            .origin
            .head_object(key, &HeadObjectRequest::default())
            .await
            .map(Arc::new)
    }

    /// Join a full-object flight under way, if any: its metadata and the body from the first byte.
    /// `None` when there is none (or coalescing is off, or its head did not come within the wait timeout).
    pub(crate) async fn join_object(
        &self,
        target: &FetchTarget,
        key: &str,
    ) -> Option<Result<(Head, BodyStream)>> {
        if !target.coalescing.enabled {
            return None;
        }
        let mut sub = self
            .objects
            .join(&(Arc::clone(&target.id), key.to_owned()))?;
        let head = self.head_of(target, &mut sub).await?;
        Some(head.map(|h| {
            let body = self.resumable(sub, target, key, &h, None);
            (h, body)
        }))
    }

    /// Bytes `start..=end` of the version described by `head`, fetching only the slices they touch,
    /// each through a slice flight shared with concurrent overlapping ranges.
    pub(crate) async fn range(
        &self,
        target: &FetchTarget,
        key: &str,
        head: &Head,
        range: (u64, u64),
        source: SliceSource,
    ) -> Result<BodyStream> {
        read_range(&self.slices, target, key, head, range, source).await
    }
}

/// A read of some bytes of one version of an object, slice by slice (cache first, then slice
/// flights or the origin): what Range requests are, and what a reader that fell out of a shared
/// fetch goes on with.
#[derive(Clone)]
struct RangeRead {
    reader: SliceReader,
    target: FetchTarget,
    key: String,
    head: Head,
    source: SliceSource,
}

impl RangeRead {
    async fn open(self, range: (u64, u64)) -> Result<BodyStream> {
        read_range(
            &self.reader,
            &self.target,
            &self.key,
            &self.head,
            range,
            self.source,
        )
        .await
    }
}

/// Bytes `start..=end` of the version `head`: the first slice opened now (borrowing everything:
/// a cached single-slice read clones nothing), the rest chained with read-ahead.
async fn read_range(
    reader: &SliceReader,
    target: &FetchTarget,
    key: &str,
    head: &Head,
    (start, end): (u64, u64),
    source: SliceSource,
) -> Result<BodyStream> {
    let s = reader.slice_size;
    let (first, last) = (start / s, end / s);
    let coalesce = target.coalescing.enabled;
    let first_body = if first == last {
        if let Some(body) = slices::cached_slice(reader, key, head, first, &source).await {
            // The common hit: one whole slice from the cache, cut to the range here (no stream
            // wrapper around it).
            let skip = usize::try_from(start - first * s).unwrap_or(usize::MAX);
            let take = usize::try_from(end - start + 1).unwrap_or(usize::MAX);
            let chunk = body.slice(skip.min(body.len())..skip.saturating_add(take).min(body.len()));
            return Ok(Box::pin(futures_util::stream::iter(Some(Ok(chunk)))));
        }
        slices::open_uncached_slice(reader, target, key, head, first, coalesce, &source).await?
    } else {
        open_slice(reader, target, key, head, first, coalesce, &source).await?
    };
    let stream = if first == last {
        first_body
    } else {
        let rest = SliceChain {
            target: target.clone(),
            key: key.to_owned(),
            head: Arc::clone(head),
            next: first + 1,
            last,
            reader: reader.clone(),
            coalesce,
            source,
        };
        Box::pin(first_body.chain(rest.into_stream()))
    };
    Ok(window(stream, start - first * s, end - start + 1))
}

/// A flight subscription as a body; on [`FlightError::Lagged`] it goes on with `resume` from the
/// byte it had reached (when there is one: without an ETag to pin them, reads cannot be resumed).
fn resumable(
    sub: Sub,
    resume: Option<RangeRead>,
    resumed: Arc<std::sync::atomic::AtomicU64>,
) -> BodyStream {
    enum Phase {
        Shared(Box<Sub>, u64),
        Own(BodyStream),
    }
    let s = futures_util::stream::unfold(
        Some((Phase::Shared(Box::new(sub), 0), resume)),
        move |state| {
            let resumed = Arc::clone(&resumed);
            async move {
                let (phase, resume) = state?;
                match phase {
                    Phase::Own(mut body) => {
                        let item = body.next().await?;
                        Some((item, Some((Phase::Own(body), resume))))
                    }
                    Phase::Shared(mut sub, offset) => match sub.next().await? {
                        Ok(chunk) => {
                            let offset = offset + chunk.len() as u64;
                            Some((Ok(chunk), Some((Phase::Shared(sub, offset), resume))))
                        }
                        Err(FlightError::Lagged) if resume.is_some() => {
                            drop(sub);
                            let read = resume?;
                            let size = read.head.size;
                            if offset >= size {
                                return None;
                            }
                            resumed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            tracing::debug!(key = %read.key, offset, "reader fell out of the shared fetch; going on with its own");
                            match read.open((offset, size - 1)).await {
                                Ok(mut body) => {
                                    let item = body.next().await?;
                                    Some((item, Some((Phase::Own(body), None))))
                                }
                                Err(e) => Some((Err(e), None)),
                            }
                        }
                        Err(e) => Some((Err(flight_error(e)), None)),
                    },
                }
            }
        },
    );
    Box::pin(s)
}
