//! The origin trait: what the proxy reads objects through.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use yatagarasu_core::{ObjectMeta, Result};

use crate::client::{GetObjectOutput, GetObjectRequest, HeadObjectRequest, S3Client};

/// The future an [`Origin`] method returns: boxed, so that `dyn Origin` works and decorators can
/// wrap one another.
pub type OriginFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// Where objects are read from: one bucket of an S3-compatible store ([`S3Client`]), or a decorator
/// around another origin (a circuit breaker, replica failover, a concurrency limit, a counter), in the
/// way `object_store` wraps an `ObjectStore`. Code that reads through `Arc<dyn Origin>` never knows
/// which.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use yatagarasu_s3::{
///     GetObjectOutput, GetObjectRequest, HeadObjectRequest, ObjectMeta, Origin, OriginFuture,
///     S3Client,
/// };
///
/// /// Counts the GETs that reach the wrapped origin.
/// #[derive(Debug)]
/// struct CountGets<O> {
///     inner: O,
///     gets: AtomicU64,
/// }
///
/// impl<O: Origin> Origin for CountGets<O> {
///     fn bucket(&self) -> &str {
///         self.inner.bucket()
///     }
///     fn get_object<'a>(
///         &'a self,
///         key: &'a str,
///         req: &'a GetObjectRequest,
///     ) -> OriginFuture<'a, GetObjectOutput> {
///         self.gets.fetch_add(1, Ordering::Relaxed);
///         self.inner.get_object(key, req)
///     }
///     fn head_object<'a>(
///         &'a self,
///         key: &'a str,
///         req: &'a HeadObjectRequest,
///     ) -> OriginFuture<'a, ObjectMeta> {
///         self.inner.head_object(key, req)
///     }
///     fn probe(&self) -> OriginFuture<'_, ()> {
///         self.inner.probe()
///     }
///     fn identity(&self) -> String {
///         self.inner.identity()
///     }
/// }
///
/// let client = S3Client::builder("media").anonymous().build()?;
/// let origin: Arc<dyn Origin> = Arc::new(CountGets { inner: client, gets: AtomicU64::new(0) });
/// assert_eq!(origin.bucket(), "media");
/// # Ok::<(), yatagarasu_s3::Error>(())
/// ```
pub trait Origin: Send + Sync + fmt::Debug + 'static {
    /// The bucket read (for logs and error context).
    fn bucket(&self) -> &str;

    /// Fetch an object (or a range of it), streaming its body. Same contract as
    /// [`S3Client::get_object`].
    fn get_object<'a>(
        &'a self,
        key: &'a str,
        req: &'a GetObjectRequest,
    ) -> OriginFuture<'a, GetObjectOutput>;

    /// Fetch an object's metadata. Same contract as [`S3Client::head_object`].
    fn head_object<'a>(
        &'a self,
        key: &'a str,
        req: &'a HeadObjectRequest,
    ) -> OriginFuture<'a, ObjectMeta>;

    /// A cheap check that the origin answers and the bucket is readable (readiness).
    fn probe(&self) -> OriginFuture<'_, ()>;

    /// What identifies the objects this origin reads: two origins with the same identity serve
    /// the same objects, so caches key entries by it (never by a route's name, which two
    /// deployments may share and a re-pointed route keeps). [`S3Client`] gives its endpoint,
    /// addressing style and bucket. The default is the bucket name alone: a decorator should
    /// forward its inner origin's identity.
    fn identity(&self) -> String {
        format!("bucket:{}", self.bucket())
    }

    /// What this origin and the decorators around it report, for metrics and admin stats: the
    /// S3 client's retries and resumed bodies, a circuit breaker's state, a concurrency cap's
    /// load, a replica set's replicas. The default is empty; a decorator returns its inner origin's with its own part
    /// filled in.
    fn origin_stats(&self) -> OriginStats {
        OriginStats::default()
    }
}

/// What an [`Origin`] and its decorators report (see [`Origin::origin_stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OriginStats {
    /// The S3 client's retries and resumed bodies.
    pub client: Option<crate::ClientStats>,
    /// A [`CircuitBreaker`](crate::CircuitBreaker)'s state and counters.
    pub breaker: Option<crate::BreakerStats>,
    /// A [`ConcurrencyLimit`](crate::ConcurrencyLimit)'s load.
    pub concurrency: Option<crate::ConcurrencyStats>,
    /// A [`ReplicaSet`](crate::ReplicaSet)'s replicas (each with its own stats) and failovers.
    pub replicas: Option<crate::ReplicaSetStats>,
}

impl Origin for S3Client {
    fn bucket(&self) -> &str {
        S3Client::bucket(self)
    }

    fn get_object<'a>(
        &'a self,
        key: &'a str,
        req: &'a GetObjectRequest,
    ) -> OriginFuture<'a, GetObjectOutput> {
        Box::pin(S3Client::get_object(self, key, req))
    }

    fn head_object<'a>(
        &'a self,
        key: &'a str,
        req: &'a HeadObjectRequest,
    ) -> OriginFuture<'a, ObjectMeta> {
        Box::pin(S3Client::head_object(self, key, req))
    }

    fn probe(&self) -> OriginFuture<'_, ()> {
        Box::pin(S3Client::probe(self))
    }

    fn identity(&self) -> String {
        S3Client::identity(self)
    }

    fn origin_stats(&self) -> OriginStats {
        OriginStats {
            client: Some(self.stats()),
            ..OriginStats::default()
        }
    }
}

impl<T: Origin + ?Sized> Origin for Arc<T> {
    fn bucket(&self) -> &str {
        (**self).bucket()
    }

    fn get_object<'a>(
        &'a self,
        key: &'a str,
        req: &'a GetObjectRequest,
    ) -> OriginFuture<'a, GetObjectOutput> {
        (**self).get_object(key, req)
    }

    fn head_object<'a>(
        &'a self,
        key: &'a str,
        req: &'a HeadObjectRequest,
    ) -> OriginFuture<'a, ObjectMeta> {
        (**self).head_object(key, req)
    }

    fn probe(&self) -> OriginFuture<'_, ()> {
        (**self).probe()
    }

    fn identity(&self) -> String {
        (**self).identity()
    }

    fn origin_stats(&self) -> OriginStats {
        (**self).origin_stats()
    }
}
