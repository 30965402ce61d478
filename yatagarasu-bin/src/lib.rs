//! # yatagarasu
//!
//! A read-only S3 proxy, usable as a library: mount [`Proxy`] (a hyper service) in your own server,
//! or run it with [`serve`]. Each bucket is served under a URL path prefix and read through
//! [`yatagarasu_s3`] (SigV4, retries, resumable streaming).
//!
//! - GET and HEAD stream the object, never buffering it whole; OPTIONS answers with `Allow`; other
//!   methods get 405.
//! - Routing takes the longest `path_prefix` on a path-segment boundary; the rest of the path,
//!   percent-decoded once, is the key. `..`/`.` segments, encoded slashes and NUL get 400.
//! - Range (RFC 9110 14): one range gives 206 with `Content-Range`; an unsatisfiable one gives 416 with
//!   `Content-Range: bytes */LEN`; several ranges are served as one 206 when they merge into one
//!   contiguous range, else as the whole object with 200.
//! - Conditional requests are evaluated by the proxy itself (RFC 9110 13.2.2) from the object's
//!   metadata, so the answer is right whatever the origin does with those headers.
//! - Every error is JSON: `{"error":{"code":…,"message":…,"bucket":…,"key":…,"request_id":…}}`, and
//!   every response carries `x-request-id`.
//! - Origin fetches are sliced ([`FetchOptions::slice_size`]) and shared: concurrent requests for one
//!   object ride on one fetch ([`CoalescingOptions`]), late joiners included.
//! - With a cache ([`ProxyBuilder::cache`], tiers from [`yatagarasu_cache`]), objects are served
//!   from memory, disk or Redis while fresh, revalidated without moving bodies when stale, and every
//!   object response says how in `x-cache`.
//! - [`Config`] reads the YAML file the binary uses; [`AdminApi`] serves purge and stats.
//!
//! ## The request pipeline
//!
//! [`Proxy::handle`] runs every request through these stages, in this order; each is its own
//! module (`src/stages/`) with a typed input and output:
//!
//! 1. **limits**: the request target's length (414); header size and count are the server's.
//! 2. **request id**: the client's `x-request-id` when well-formed, else a new one.
//! 3. **routing**: `/health`, `/ready`, or the longest matching bucket prefix and the object key;
//!    the request context (id, route, key, client address) is built here, once.
//! 4. **access control**: a list of checks that may refuse the request (empty today;
//!    authentication, authorization and rate limits go here).
//! 5. **CORS and methods**: OPTIONS and CORS preflights are answered; GET and HEAD go on; anything
//!    else is 405.
//! 6. **preconditions and range plan**: `If-*` and `Range` read once and decided from metadata
//!    (304, 412, 416, whole, one range).
//! 7. **cache**: a fresh record, a stale one (served while revalidating, or revalidated, or served
//!    on origin errors), a remembered 404, or a miss.
//! 8. **shared fetch**: sliced, coalesced origin reads through the bucket's [`Origin`] (an
//!    `S3Client` or any decorator), filling the cache as they stream.
//! 9. **response**: headers from metadata; every error becomes its status and JSON body in one place.
//! 10. **access log and metrics**: when the body ends (complete, aborted, or the client gone), the log
//!     line and a [`RequestRecord`] for the [`MetricsRecorder`] given to [`ProxyBuilder::metrics`].
//!
//! Outcomes are types ([`CacheStatus`], [`Completion`]), and per-bucket counters are fed from them.
//! The route table is immutable and swapped whole ([`Proxy::replace_routes`]): a request keeps the
//! table it started with, while cache tiers, coalescing groups and counters live beside it.
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use yatagarasu::{BucketRoute, Proxy, ServerOptions, serve};
//! use yatagarasu_cache::{MemoryTier, TieredCache};
//! use yatagarasu_s3::{Credentials, S3Client};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = S3Client::builder("media")
//!     .endpoint("http://127.0.0.1:9000")
//!     .credentials(Credentials::new("minioadmin", "minioadmin"))
//!     .build()?;
//! let memory = TieredCache::new(vec![Arc::new(MemoryTier::builder(256 << 20).max_item_bytes(16 << 20).build())]);
//! let proxy = Proxy::builder()
//!     .cache(memory, Duration::from_secs(86_400))
//!     .route(BucketRoute::new("media", "/media", client))
//!     .build();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! serve(listener, proxy, ServerOptions::default(), async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await?;
//! # Ok(())
//! # }
//! ```

mod admin;
pub mod audit;
pub mod auth;
mod cache;
pub mod config;
mod cors;
mod fetch;
pub mod fleet;
#[cfg(fuzzing)]
pub mod fuzzing;
#[cfg(all(test, not(fuzzing)))]
mod fuzzing;
mod lenient;
mod metrics;
pub mod otel;
mod outcome;
mod prometheus;
mod proxy;
pub mod ratelimit;
mod reload;
#[cfg(feature = "cli")]
#[cfg_attr(docsrs, doc(cfg(feature = "cli")))]
pub mod request_lines;
mod routes;
mod server;
mod stages;
mod state;
mod utc;

pub use admin::{AdminApi, serve_admin};
pub use cache::CachePolicy;
pub use config::{Config, ConfigError};
pub use cors::CorsPolicy;
pub use fetch::{CoalescingOptions, CoalescingStats, FetchOptions};
pub use metrics::{LiveStats, MetricsRecorder, NoMetrics, RequestRecord};
pub use outcome::{CacheStatus, Completion};
pub use prometheus::{PrometheusMetrics, serve_metrics};
pub use proxy::{ClientAddr, Proxy, ProxyBuilder, PurgeReport, PurgeTarget};
pub use reload::{Reloaded, Reloader};
pub use routes::{BucketCacheStats, BucketRoute, RESERVED_PATHS};
pub use server::{ServerOptions, ServerTls, TlsError, serve, serve_tls};
pub use stages::response::ProxyBody;
pub use yatagarasu_s3::Origin;
// The workspace's other crates, for embedders who build routes, origins and tiers themselves
// without a direct dependency on each (same versions as this crate uses).
pub use {yatagarasu_cache, yatagarasu_coalesce, yatagarasu_core, yatagarasu_s3};

/// The `tracing` target of the request log events (one per request, at `info`); the binary's
/// `request_lines` layer writes them as lines, any other subscriber may filter on it.
pub const REQUEST_LOG_TARGET: &str = "yatagarasu::request";

/// The version of this crate.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The workspace README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// This crate's README (its crates.io page) examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct CrateReadmeDoctests;
