//! The request pipeline, one module per stage, in the order a request meets them (the order
//! `Proxy::handle` runs them in):
//!
//! 1. [`limits`]: request-target length (414).
//! 2. [`request_id`]: the request's id.
//! 3. [`routing`]: `/health`, `/ready`, or a bucket and key; builds the [`RequestContext`](routing::RequestContext).
//! 4. [`access`]: access control (rate limits, IP filters, authentication, authorization).
//! 5. [`cors`]: OPTIONS / CORS preflight and the read-only method policy.
//! 6. [`plan`]: preconditions and the range plan, decided from metadata.
//! 7. [`lookup`]: the cache: fresh, stale, revalidated, a remembered 404, or a miss.
//! 8. [`object`]: the shared fetch (coalesced, sliced origin reads, via `crate::fetch`) when the
//!    cache cannot answer, and the object response.
//! 9. [`response`]: headers from metadata, and every error as an HTTP response.
//! 10. [`access_log`]: the log line and the metrics record when the body ends.

pub(crate) mod access;
pub(crate) mod access_log;
pub(crate) mod cors;
pub(crate) mod limits;
pub(crate) mod lookup;
pub(crate) mod object;
pub(crate) mod plan;
pub(crate) mod request_id;
pub(crate) mod response;
pub(crate) mod routing;
