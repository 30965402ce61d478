//! Per-tier counters.

#[cfg(any(feature = "memory", feature = "disk", feature = "redis"))]
use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a tier's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TierStats {
    /// Lookups that found an entry.
    pub hits: u64,
    /// Lookups that found nothing (or something expired or corrupt).
    pub misses: u64,
    /// Entries stored.
    pub inserts: u64,
    /// Entries dropped to make room.
    pub evictions: u64,
    /// Operations that failed (I/O, Redis, corrupt records); each was treated as a miss or a skipped write.
    pub errors: u64,
    /// Entries held now (approximate for Redis: unknown, 0).
    pub entries: u64,
    /// Bytes held now (approximate for Redis: unknown, 0).
    pub bytes: u64,
}

#[cfg(any(feature = "memory", feature = "disk", feature = "redis"))]
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) inserts: AtomicU64,
    pub(crate) evictions: AtomicU64,
    pub(crate) errors: AtomicU64,
}

#[cfg(any(feature = "memory", feature = "disk", feature = "redis"))]
impl Counters {
    pub(crate) fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, entries: u64, bytes: u64) -> TierStats {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TierStats {
            hits: l(&self.hits),
            misses: l(&self.misses),
            inserts: l(&self.inserts),
            evictions: l(&self.evictions),
            errors: l(&self.errors),
            entries,
            bytes,
        }
    }
}
