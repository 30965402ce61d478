//! The object stage: answers a GET or HEAD from what the cache stage found, and from the shared
//! fetch (coalesced, sliced origin reads) for whatever the cache cannot give. Every decision about
//! conditions and ranges is the plan stage's; every header is the response stage's.

use std::sync::Arc;

use http::{HeaderMap, Response, StatusCode, header};
use yatagarasu_core::{Error, ErrorKind, ObjectMeta};

use super::cors::ObjectMethod;
use super::lookup::{Lookup, lookup};
use super::plan::{Decision, RequestPlan};
use super::response::{
    ProxyBody, empty_response, full_response, not_modified, object_headers, partial_response,
    set_u64,
};
use super::routing::RequestContext;
use crate::cache::{ObjectCache, freshness};
use crate::fetch::{BodyStream, Fill, Head, SliceSource, is_version_change, window};
use crate::outcome::CacheStatus;
use crate::state::State;

/// What the object stage produced: the answer, and how it used the cache (`None` when the request
/// failed before the cache was consulted). The pipeline turns the latter into `x-cache`.
#[derive(Debug)]
pub(crate) struct Served {
    pub(crate) response: Result<Response<ProxyBody>, Error>,
    pub(crate) cache: Option<CacheStatus>,
}

/// Answer an object request.
pub(crate) async fn serve(
    state: &Arc<State>,
    ctx: &RequestContext<'_>,
    method: ObjectMethod,
    headers: &HeaderMap,
) -> Served {
    if ctx.key.is_empty() {
        return Served {
            response: Err(Error::new(ErrorKind::NotFound, "no object key in the path")),
            cache: None,
        };
    }
    let plan = RequestPlan::from_headers(headers);
    let looked_up = crate::otel::in_span(
        state.tracing.as_ref(),
        "cache_lookup",
        crate::otel::Kind::Internal,
        &[],
        lookup(state, ctx),
    );
    let found = match looked_up.await {
        Ok(found) => found,
        Err(e) => {
            return Served {
                response: Err(e),
                cache: None,
            };
        }
    };
    let (cache, status) = match found {
        Lookup::Missing => {
            let err = Error::new(
                ErrorKind::NotFound,
                "the object does not exist (cached answer)",
            )
            .with_key(ctx.key.to_string())
            .with_upstream_code("NoSuchKey");
            return Served {
                response: Err(err),
                cache: Some(CacheStatus::NegativeHit),
            };
        }
        Lookup::Found {
            cache,
            meta,
            status,
        } => {
            let answered = match method {
                ObjectMethod::Head => head_response(ctx, &plan, &meta),
                ObjectMethod::Get => from_cache(state, ctx, cache, &plan, meta).await,
            };
            match answered {
                // The cached record described a version the origin no longer has (its slices were
                // evicted meanwhile): the record is gone now; fetch the current version.
                Err(e) if is_version_change(&e) => {
                    tracing::info!(bucket = %ctx.route.route.name, key = %ctx.key, request_id = ctx.id, "cached record outdated; refetching");
                    (Some(cache), CacheStatus::Miss)
                }
                response => {
                    return Served {
                        response,
                        cache: Some(status),
                    };
                }
            }
        }
        Lookup::Miss(cache) => (Some(cache), CacheStatus::Miss),
        Lookup::Bypass => (None, CacheStatus::Bypass),
    };
    let response = match method {
        ObjectMethod::Head => head_from_origin(state, ctx, cache, &plan).await,
        ObjectMethod::Get => {
            // An object replaced between the proxy's HEAD and its first slice is read again, once,
            // as the new version; a client never sees the proxy's own If-Match fail.
            match get_from_origin(state, ctx, cache, &plan).await {
                Err(e) if is_version_change(&e) => get_from_origin(state, ctx, cache, &plan).await,
                other => other,
            }
        }
    };
    // The origin says the object does not exist: remember that (negative caching). Only an origin
    // answer is stored, so a remembered 404 never renews itself.
    if let (Err(e), Some(cache)) = (&response, cache)
        && e.kind() == ErrorKind::NotFound
        && e.context().upstream_code.as_deref() == Some("NoSuchKey")
    {
        cache.store_missing(&ctx.route.target.id, &ctx.key).await;
    }
    Served {
        response,
        cache: Some(status),
    }
}

/// A HEAD answer from metadata.
fn head_response(
    ctx: &RequestContext<'_>,
    plan: &RequestPlan,
    meta: &ObjectMeta,
) -> Result<Response<ProxyBody>, Error> {
    Ok(match plan.decide_conditions(&ctx.key, meta)? {
        Decision::NotModified => not_modified(meta),
        _ => {
            let mut resp = empty_response(StatusCode::OK);
            object_headers(
                resp.headers_mut(),
                meta,
                ctx.route.route.expose_user_metadata,
            );
            set_u64(resp.headers_mut(), header::CONTENT_LENGTH, meta.size);
            resp
        }
    })
}

/// Where fetched data is stored: the object's record and its slices.
fn fill(ctx: &RequestContext<'_>, cache: Option<&ObjectCache>) -> Option<Fill> {
    cache.map(|c| Fill {
        cache: c.clone(),
        origin: Arc::clone(&ctx.route.target.id),
        key: Arc::clone(&ctx.key),
        default_ttl: ctx.route.route.cache.ttl,
    })
}

async fn head_from_origin(
    state: &State,
    ctx: &RequestContext<'_>,
    cache: Option<&ObjectCache>,
    plan: &RequestPlan,
) -> Result<Response<ProxyBody>, Error> {
    let meta = state.fetcher.head(&ctx.route.target, &ctx.key).await?;
    if let Some(fill) = fill(ctx, cache) {
        fill.record(&meta).await;
    }
    head_response(ctx, plan, &meta)
}

/// Answer a GET from a body that starts at the object's first byte.
fn from_stream(
    ctx: &RequestContext<'_>,
    plan: &RequestPlan,
    head: &Head,
    body: BodyStream,
) -> Result<Response<ProxyBody>, Error> {
    let user_metadata = ctx.route.route.expose_user_metadata;
    Ok(match plan.decide(&ctx.key, head)? {
        Decision::NotModified => not_modified(head),
        Decision::Whole => full_response(head, user_metadata, body),
        Decision::Bytes(start, end) => {
            let body = window(body, start, end - start + 1);
            partial_response(head, user_metadata, start, end, body)
        }
    })
}

async fn get_from_origin(
    state: &State,
    ctx: &RequestContext<'_>,
    cache: Option<&ObjectCache>,
    plan: &RequestPlan,
) -> Result<Response<ProxyBody>, Error> {
    let fetcher = &state.fetcher;
    let target = &ctx.route.target;
    // A full-object fetch under way serves everything: conditions, ranges, the whole body.
    if let Some(joined) = fetcher.join_object(target, &ctx.key).await {
        let (head, body) = joined?;
        return from_stream(ctx, plan, &head, body);
    }
    if !plan.needs_metadata() {
        let (head, body) = fetcher.object(target, &ctx.key, fill(ctx, cache)).await?;
        return from_stream(ctx, plan, &head, body);
    }
    // The decision needs the metadata first: one (shared) HEAD, no body moved.
    let head = fetcher.head(target, &ctx.key).await?;
    let fill = fill(ctx, cache);
    let keep = match &fill {
        Some(f) => f.record(&head).await,
        None => None,
    };
    match plan.decide(&ctx.key, &head)? {
        Decision::NotModified => Ok(not_modified(&head)),
        Decision::Whole => {
            let (head, body) = fetcher.object(target, &ctx.key, fill).await?;
            // The object may have changed since the HEAD: decide on what is being sent.
            from_stream(ctx, plan, &head, body)
        }
        Decision::Bytes(start, end) => {
            let source = SliceSource {
                cache: fill.zip(keep),
            };
            let body = fetcher
                .range(target, &ctx.key, &head, (start, end), source)
                .await?;
            let user_metadata = ctx.route.route.expose_user_metadata;
            Ok(partial_response(&head, user_metadata, start, end, body))
        }
    }
}

/// Answer a GET from a cached record: the decision made on its metadata, the body read slice by
/// slice from the cache (slices it lacks are fetched, pinned to the record's ETag, and stored).
async fn from_cache(
    state: &State,
    ctx: &RequestContext<'_>,
    cache: &ObjectCache,
    plan: &RequestPlan,
    head: Head,
) -> Result<Response<ProxyBody>, Error> {
    let decision = plan.decide(&ctx.key, &head)?;
    let keep =
        cache.slice_retention(freshness(&head, ctx.route.route.cache.ttl).unwrap_or_default());
    let source = SliceSource {
        cache: fill(ctx, Some(cache)).map(|f| (f, keep)),
    };
    let user_metadata = ctx.route.route.expose_user_metadata;
    let (start, end) = match decision {
        Decision::NotModified => return Ok(not_modified(&head)),
        Decision::Whole if head.size == 0 => {
            let empty: BodyStream = Box::pin(futures_util::stream::empty());
            return Ok(full_response(&head, user_metadata, empty));
        }
        Decision::Whole => (0, head.size - 1),
        Decision::Bytes(start, end) => (start, end),
    };
    let body = state
        .fetcher
        .range(&ctx.route.target, &ctx.key, &head, (start, end), source)
        .await?;
    Ok(match decision {
        Decision::Bytes(..) => partial_response(&head, user_metadata, start, end, body),
        _ => full_response(&head, user_metadata, body),
    })
}
