//! A cap on concurrent requests to an [`Origin`]: at most `max_concurrent` requests in flight
//! (a GET counts until its body has been read or dropped, as its connection is busy until then);
//! further requests wait in line up to `queue_timeout`, then fail with 503 `OriginBusy` and a
//! `Retry-After`. A flood of distinct keys cannot open unbounded connections to the origin.
//!
//! ```
//! use std::time::Duration;
//! use yatagarasu_s3::{ConcurrencyLimit, S3Client};
//!
//! let client = S3Client::builder("media").anonymous().build()?;
//! let origin = ConcurrencyLimit::new(client, 64, Duration::from_secs(5));
//! assert_eq!(origin.in_flight(), 0);
//! # Ok::<(), yatagarasu_s3::Error>(())
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use yatagarasu_core::{Error, ErrorKind, ObjectMeta};

use crate::{
    GetObjectOutput, GetObjectRequest, HeadObjectRequest, ObjectBody, Origin, OriginFuture,
};

/// A [`ConcurrencyLimit`]'s load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConcurrencyStats {
    /// Requests allowed in flight at once.
    pub limit: usize,
    /// Requests in flight now.
    pub in_flight: usize,
    /// Requests that gave up waiting for a slot (503 `OriginBusy`).
    pub timed_out: u64,
}

/// An [`Origin`] with a cap on concurrent requests (see the module docs).
#[derive(Debug)]
pub struct ConcurrencyLimit<O> {
    inner: O,
    permits: Arc<Semaphore>,
    max: usize,
    queue_timeout: Duration,
    timed_out: AtomicU64,
}

impl<O: Origin> ConcurrencyLimit<O> {
    /// At most `max_concurrent` requests (at least 1) to `inner` at once; others wait up to
    /// `queue_timeout`.
    pub fn new(inner: O, max_concurrent: usize, queue_timeout: Duration) -> Self {
        let max = max_concurrent.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            inner,
            permits: Arc::new(Semaphore::new(max)),
            max,
            queue_timeout,
            timed_out: AtomicU64::new(0),
        }
    }

    /// Requests to the origin in flight now.
    pub fn in_flight(&self) -> usize {
        self.max - self.permits.available_permits()
    }

    /// Requests that gave up waiting for a slot.
    pub fn timed_out(&self) -> u64 {
        self.timed_out.load(Ordering::Relaxed)
    }

    async fn slot(&self, operation: &'static str) -> Result<OwnedSemaphorePermit, Error> {
        let waiting = Arc::clone(&self.permits).acquire_owned();
        match tokio::time::timeout(self.queue_timeout, waiting).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => {
                self.timed_out.fetch_add(1, Ordering::Relaxed);
                Err(Error::new(
                    ErrorKind::Unavailable,
                    format!(
                        "{} requests to the origin are in flight and none finished within the queue timeout",
                        self.max
                    ),
                )
                .with_upstream_code("OriginBusy")
                .with_operation(operation)
                .with_bucket(self.inner.bucket())
                .with_retry_after(Duration::from_secs(1)))
            }
        }
    }
}

impl<O: Origin> Origin for ConcurrencyLimit<O> {
    fn bucket(&self) -> &str {
        self.inner.bucket()
    }

    fn get_object<'a>(
        &'a self,
        key: &'a str,
        req: &'a GetObjectRequest,
    ) -> OriginFuture<'a, GetObjectOutput> {
        Box::pin(async move {
            let permit = self.slot("GetObject").await?;
            let out = self.inner.get_object(key, req).await?;
            // The slot is held until the body is read or dropped.
            Ok(out.map_body(|body| {
                ObjectBody::from_stream(body.map(move |chunk| {
                    let _held = &permit;
                    chunk
                }))
            }))
        })
    }

    fn head_object<'a>(
        &'a self,
        key: &'a str,
        req: &'a HeadObjectRequest,
    ) -> OriginFuture<'a, ObjectMeta> {
        Box::pin(async move {
            let _permit = self.slot("HeadObject").await?;
            self.inner.head_object(key, req).await
        })
    }

    fn probe(&self) -> OriginFuture<'_, ()> {
        self.inner.probe()
    }

    fn identity(&self) -> String {
        self.inner.identity()
    }

    fn origin_stats(&self) -> crate::OriginStats {
        let mut s = self.inner.origin_stats();
        s.concurrency = Some(ConcurrencyStats {
            limit: self.max,
            in_flight: self.in_flight(),
            timed_out: self.timed_out(),
        });
        s
    }
}
