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
mod object;
mod slices;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use yatagarasu_coalesce::{FlightError, FlightStatsSnapshot, Group, StreamGroup, StreamOptions};
use yatagarasu_core::{Error, Result};
use yatagarasu_s3::{HeadObjectRequest, Origin};

pub(crate) use body::{BodyStream, Head};
use body::{ObjectKey, SliceKey, Sub, flight_error, sub_stream};
use object::whole_object;
pub(crate) use slices::{Fill, SliceSource, is_version_change, same_version, window};
use slices::{SliceChain, open_slice};

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
        let (origin, slice_size) = (Arc::clone(&target.origin), self.options.slice_size);
        if target.coalescing.enabled {
            let owned = (Arc::clone(&origin), key.to_owned(), fill.clone());
            let start = move || whole_object(owned.0, owned.1, slice_size, owned.2);
            if let Some((mut sub, _role)) = self
                .objects
                .subscribe((Arc::clone(&target.id), key.to_owned()), start)
                && let Some(head) = self.head_of(target, &mut sub).await
            {
                return Ok((head?, sub_stream(sub)));
            }
        }
        whole_object(origin, key.to_owned(), slice_size, fill).await
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
            let outcome = self
                .heads
                .run_with_timeout(
                    object_key,
                    Some(target.coalescing.wait_timeout),
                    move || async move {
                        origin
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
        Some(head.map(|h| (h, sub_stream(sub))))
    }

    /// Bytes `start..=end` of the version described by `head`, fetching only the slices they touch,
    /// each through a slice flight shared with concurrent overlapping ranges.
    pub(crate) async fn range(
        &self,
        target: &FetchTarget,
        key: &str,
        head: &Head,
        (start, end): (u64, u64),
        source: SliceSource,
    ) -> Result<BodyStream> {
        let s = self.options.slice_size;
        let (first, last) = (start / s, end / s);
        let coalesce = target.coalescing.enabled;
        let first_body =
            open_slice(&self.slices, target, key, head, first, s, coalesce, &source).await?;
        let stream = if first == last {
            first_body
        } else {
            let rest = SliceChain {
                target: target.clone(),
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
