//! The cache stage: what the cache knows of an object before the origin is asked. A fresh record
//! answers (`Hit`); a stale one is served while one background revalidation runs
//! (stale-while-revalidate), or revalidated with a HEAD that moves no body (`Revalidated`), or served
//! when the origin fails (stale-if-error); a remembered 404 answers 404 without the origin.

use std::sync::Arc;
use std::time::SystemTime;

use yatagarasu_core::{Error, ErrorKind};

use super::routing::RequestContext;
use crate::cache::ObjectCache;
use crate::fetch::{FetchTarget, Fill, Head, same_version};
use crate::outcome::CacheStatus;
use crate::routes::BucketRoute;
use crate::state::State;

/// What the cache said.
#[derive(Debug)]
pub(crate) enum Lookup<'s> {
    /// This request does not use the cache.
    Bypass,
    /// The cache has nothing usable: fetch, and store what comes back.
    Miss(&'s ObjectCache),
    /// The object's metadata, from the cache: `Hit`, `Stale` or `Revalidated`.
    Found {
        /// The cache the body's slices are read from.
        cache: &'s ObjectCache,
        /// The metadata of the cached version.
        meta: Head,
        /// How it was found.
        status: CacheStatus,
    },
    /// A remembered 404.
    Missing,
}

/// The cache for this request, unless the bucket does not cache.
///
/// `Authorization` and `Cookie` never reach the origin (the proxy signs with its own credentials),
/// so they cannot change the response: requests carrying them are served from and fill the cache
/// like any other. Access control runs before this on every request, so on a bucket with `auth` or
/// a policy the cache is shared by the requests that pass it, unless `cache_authenticated` is off.
pub(crate) fn cache_for<'s>(state: &'s State, route: &BucketRoute) -> Option<&'s ObjectCache> {
    let cache = state.cache.as_ref()?;
    let guarded = route.auth.is_some() || route.policy.is_some();
    (route.cache.enabled && (!guarded || route.cache.cache_authenticated)).then_some(cache)
}

/// Look the object up.
pub(crate) async fn lookup<'s>(
    state: &'s Arc<State>,
    ctx: &RequestContext<'_>,
) -> Result<Lookup<'s>, Error> {
    let route = &ctx.route.route;
    let Some(cache) = cache_for(state, route) else {
        return Ok(Lookup::Bypass);
    };
    let key: &str = &ctx.key;
    let target = &ctx.route.target;
    let Some(record) = cache.record(&target.id, key).await else {
        return Ok(Lookup::Miss(cache));
    };
    let now = SystemTime::now();
    if record.is_fresh(now) {
        if record.missing {
            return Ok(Lookup::Missing);
        }
        let meta = Arc::new(record.meta);
        return Ok(Lookup::Found {
            cache,
            meta,
            status: CacheStatus::Hit,
        });
    }
    if record.missing {
        return Ok(Lookup::Miss(cache));
    }
    let fill = Fill {
        cache: cache.clone(),
        origin: Arc::clone(&target.id),
        key: Arc::clone(&ctx.key),
        default_ttl: route.cache.ttl,
    };
    if now < record.stale_while_revalidate_until {
        // Serve the stale copy now; one revalidation per object runs in the background.
        let (state_owned, target_owned) = (Arc::clone(state), target.clone());
        let flight = (Arc::clone(&target.id), key.to_owned());
        let revalidations = state.revalidations.clone();
        let trace = crate::otel::Current::capture();
        tokio::spawn(trace.wrap(async move {
            let _ = revalidations
                .run(flight, move || async move {
                    revalidate(&state_owned, &target_owned, &fill)
                        .await
                        .map(|_| ())
                })
                .await;
        }));
        return Ok(Lookup::Found {
            cache,
            meta: Arc::new(record.meta),
            status: CacheStatus::Stale,
        });
    }
    match revalidate(state, target, &fill).await {
        Ok(meta) if same_version(&meta, &record.meta) => Ok(Lookup::Found {
            cache,
            meta,
            status: CacheStatus::Revalidated,
        }),
        Ok(_) => Ok(Lookup::Miss(cache)), // a new version: fetch it
        Err(e) if is_origin_fault(e.kind()) && now < record.stale_if_error_until => {
            tracing::warn!(bucket = %route.name, key, request_id = ctx.id, error = %e, "origin failed; serving stale (stale-if-error)");
            Ok(Lookup::Found {
                cache,
                meta: Arc::new(record.meta),
                status: CacheStatus::Stale,
            })
        }
        Err(e) => Err(e),
    }
}

/// Errors a stale copy may stand in for (RFC 5861 `stale-if-error`: what would be a 500, 502,
/// 503 or 504): the origin failing or unreachable. Never an answer about the object or the
/// proxy's rights to it (404, 403, 412), which a stale copy would contradict.
fn is_origin_fault(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Upstream | ErrorKind::Unavailable | ErrorKind::UpstreamTimeout
    )
}

/// Ask the origin for the current metadata and update the record: renewed when the ETag holds,
/// replaced by the new version's otherwise, removed (and the 404 remembered) when the object is gone.
async fn revalidate(state: &State, target: &FetchTarget, fill: &Fill) -> Result<Head, Error> {
    match state.fetcher.head(target, &fill.key).await {
        Ok(meta) => {
            fill.record(&meta).await;
            Ok(meta)
        }
        Err(e) => {
            if e.kind() == ErrorKind::NotFound {
                fill.cache.purge_object(&fill.origin, &fill.key).await;
                fill.cache.store_missing(&fill.origin, &fill.key).await;
            }
            Err(e)
        }
    }
}
