//! # yatagarasu-cache
//!
//! Cache tiers behind one async trait, and their composition, for the
//! [Yatagarasu](https://github.com/yatagarasu-rs/yatagarasu) S3 proxy and anyone else:
//!
//! - [`MemoryTier`]: moka (TinyLFU admission), bounded in bytes, per-entry expiry.
//! - [`DiskTier`]: bounded in bytes, survives restarts (index rebuilt from record headers at start),
//!   crash-safe (records are written to a temporary file and renamed; every read verifies length and
//!   CRC-32), LRU eviction by last use. A full or read-only disk degrades to misses and counted errors.
//! - [`RedisTier`]: shared between proxy instances, on one server, a Redis Cluster or a
//!   Sentinel-managed primary ([`RedisTarget`]); compact binary records, TTL from the entry, key
//!   prefix, operation timeout, and a circuit breaker that stops trying for a while after failures.
//! - [`TieredCache`]: read fastest to slowest, promote on hit, write through (per-tier item limits: an
//!   entry too big for memory still goes to disk and Redis).
//!
//! Keys are bytes; the caller decides them. Entries are opaque metadata bytes + body bytes + a
//! retention deadline. Errors never propagate as request failures: every tier operation returns a
//! [`CacheError`] the caller logs and treats as a miss.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use yatagarasu_cache::{CacheEntry, MemoryTier, TieredCache};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let cache = TieredCache::new(vec![Arc::new(MemoryTier::builder(64 << 20).max_item_bytes(8 << 20).build())]);
//! cache.insert(b"photos/cat.jpg", CacheEntry::new("image/jpeg", "…bytes…", Some(Duration::from_secs(60)))).await;
//! let hit = cache.get(b"photos/cat.jpg").await.expect("cached");
//! assert_eq!(hit.entry.body, "…bytes…");
//! assert_eq!(hit.tier, "memory");
//! # }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "disk")]
mod disk;
mod entry;
mod error;
#[cfg(feature = "memory")]
mod memory;
#[cfg(feature = "disk")]
mod read_buffers;
#[cfg(feature = "redis")]
mod redis_conn;
#[cfg(feature = "redis")]
mod redis_tier;
mod stats;
mod tiered;

use std::future::Future;
use std::pin::Pin;

#[cfg(feature = "disk")]
#[cfg_attr(docsrs, doc(cfg(feature = "disk")))]
pub use disk::{DiskOptions, DiskTier, DiskTierBuilder};

/// Entry points for the cargo-fuzz targets in `fuzz/` (built with `--cfg fuzzing` only).
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    /// Decode `record` as the disk and Redis tiers do (CRC, or HMAC under `secret`): never
    /// panics, and whatever decodes lies within the record.
    pub fn decode_record(record: &[u8], secret: Option<&[u8]>) {
        let check = secret.map_or_else(crate::RecordCheck::default, crate::RecordCheck::hmac);
        let bytes = bytes::Bytes::copy_from_slice(record);
        if let Ok((key, entry)) = crate::entry::decode(&bytes, &check) {
            assert!(key.len() + entry.metadata.len() + entry.body.len() <= record.len());
        }
    }
}
pub use entry::{CacheEntry, MAX_TTL, RecordCheck};
pub use error::CacheError;
#[cfg(feature = "memory")]
#[cfg_attr(docsrs, doc(cfg(feature = "memory")))]
pub use memory::{MemoryTier, MemoryTierBuilder};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis_conn::{RedisConnection, RedisTarget, delete_matching, delete_prefixed};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis_tier::{RedisOptions, RedisTier};
pub use stats::TierStats;
pub use tiered::{Hit, TieredCache, TieredCacheBuilder};

/// A boxed future, as tier methods return (the trait is object-safe so tiers can be composed).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One cache tier.
pub trait CacheTier: Send + Sync + std::fmt::Debug {
    /// A short name for logs and stats (`memory`, `disk`, `redis`).
    fn name(&self) -> &'static str;

    /// Largest entry (metadata + body bytes) the tier stores.
    fn max_item_bytes(&self) -> u64;

    /// Whether the tier is across a network. [`TieredCache::insert`] writes such tiers in the
    /// background, so a slow one never slows the caller.
    fn is_remote(&self) -> bool {
        false
    }

    /// Look an entry up. Expired entries are never returned.
    fn get<'a>(&'a self, key: &'a [u8]) -> BoxFuture<'a, Result<Option<CacheEntry>, CacheError>>;

    /// Store an entry, replacing any under the same key.
    fn put<'a>(&'a self, key: &'a [u8], entry: CacheEntry)
    -> BoxFuture<'a, Result<(), CacheError>>;

    /// Remove one entry (absent is fine).
    fn delete<'a>(&'a self, key: &'a [u8]) -> BoxFuture<'a, Result<(), CacheError>>;

    /// Remove every entry whose key starts with `prefix`; returns how many (if the tier knows).
    fn delete_prefix<'a>(&'a self, prefix: &'a [u8]) -> BoxFuture<'a, Result<u64, CacheError>>;

    /// Counters.
    fn stats(&self) -> TierStats;
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
