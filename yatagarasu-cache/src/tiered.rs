//! Tiers composed: read fastest to slowest, promote on hit, write through.

use std::sync::Arc;

use crate::CacheTier;
use crate::entry::CacheEntry;
use crate::stats::TierStats;

/// A lookup that found an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Hit {
    /// The entry.
    pub entry: CacheEntry,
    /// The tier that had it.
    pub tier: &'static str,
    /// Its position (0 = fastest).
    pub level: usize,
}

/// Tiers in order, fastest first.
///
/// `get` asks each tier in turn; a hit in a slower tier is copied into the faster ones in the
/// background (promotion). `insert` writes every tier whose item limit admits the entry, so an entry
/// too big for memory still reaches disk and Redis. A tier error is logged and treated as a miss or a
/// skipped write: the cache never fails a caller.
#[derive(Debug, Clone)]
pub struct TieredCache {
    /// Shared, not copied, by clones: the proxy clones its cache per request that may fill it.
    tiers: Arc<[Arc<dyn CacheTier>]>,
}

/// Builds a [`TieredCache`]: [`TieredCache::builder`].
#[derive(Debug, Default)]
#[must_use]
pub struct TieredCacheBuilder {
    tiers: Vec<Arc<dyn CacheTier>>,
}

impl TieredCacheBuilder {
    /// Add the next (slower) tier.
    pub fn tier(mut self, tier: impl CacheTier + 'static) -> Self {
        self.tiers.push(Arc::new(tier));
        self
    }

    /// Add the next (slower) tier, shared with other code (to read its stats, say).
    pub fn shared_tier(mut self, tier: Arc<dyn CacheTier>) -> Self {
        self.tiers.push(tier);
        self
    }

    /// The cache.
    pub fn build(self) -> TieredCache {
        TieredCache {
            tiers: self.tiers.into(),
        }
    }
}

impl TieredCache {
    /// Compose `tiers`, fastest first.
    pub fn new(tiers: Vec<Arc<dyn CacheTier>>) -> Self {
        Self {
            tiers: tiers.into(),
        }
    }

    /// Start composing tiers, fastest first.
    pub fn builder() -> TieredCacheBuilder {
        TieredCacheBuilder::default()
    }

    /// The tiers, fastest first.
    pub fn tiers(&self) -> &[Arc<dyn CacheTier>] {
        &self.tiers
    }

    /// The same cache without its remote tiers ([`CacheTier::is_remote`]): what one instance of a
    /// fleet holds on its own, for dropping entries another instance has already removed from the
    /// shared tier.
    pub fn local(&self) -> Self {
        Self {
            tiers: self
                .tiers
                .iter()
                .filter(|t| !t.is_remote())
                .cloned()
                .collect(),
        }
    }

    /// Look `key` up, fastest tier first; promote a hit into the faster tiers in the background.
    pub async fn get(&self, key: &[u8]) -> Option<Hit> {
        for (level, tier) in self.tiers.iter().enumerate() {
            match tier.get(key).await {
                Ok(Some(entry)) => {
                    if level > 0 {
                        let faster: Vec<Arc<dyn CacheTier>> = self.tiers[..level].to_vec();
                        let (key, promoted) = (key.to_vec(), entry.clone());
                        tokio::spawn(async move {
                            for t in faster {
                                if promoted.weight() <= t.max_item_bytes()
                                    && let Err(e) = t.put(&key, promoted.clone()).await
                                {
                                    tracing::debug!(tier = t.name(), error = %e, "cache promotion skipped");
                                }
                            }
                        });
                    }
                    return Some(Hit {
                        entry,
                        tier: tier.name(),
                        level,
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(tier = tier.name(), error = %e, "cache read failed; treated as a miss")
                }
            }
        }
        None
    }

    /// Write `entry` to every tier that admits its size; errors are logged. Local tiers (memory,
    /// disk) are written before this returns; remote ones (Redis) in the background, so a slow
    /// network never slows the caller.
    pub async fn insert(&self, key: &[u8], entry: CacheEntry) {
        for t in self
            .tiers
            .iter()
            .filter(|t| t.is_remote() && entry.weight() <= t.max_item_bytes())
        {
            let (t, key, e) = (Arc::clone(t), key.to_vec(), entry.clone());
            tokio::spawn(async move {
                if let Err(err) = t.put(&key, e).await {
                    tracing::warn!(tier = t.name(), error = %err, "cache write failed; skipped");
                }
            });
        }
        let writes = self
            .tiers
            .iter()
            .filter(|t| !t.is_remote() && entry.weight() <= t.max_item_bytes())
            .map(|t| {
                let e = entry.clone();
                async move {
                    if let Err(err) = t.put(key, e).await {
                        tracing::warn!(tier = t.name(), error = %err, "cache write failed; skipped");
                    }
                }
            });
        futures_util::future::join_all(writes).await;
    }

    /// [`insert`](Self::insert) in a spawned task, off the caller's path.
    pub fn insert_in_background(&self, key: Vec<u8>, entry: CacheEntry) {
        let this = self.clone();
        tokio::spawn(async move { this.insert(&key, entry).await });
    }

    /// Remove `key` from every tier.
    pub async fn delete(&self, key: &[u8]) {
        for t in self.tiers.iter() {
            if let Err(e) = t.delete(key).await {
                tracing::warn!(tier = t.name(), error = %e, "cache delete failed");
            }
        }
    }

    /// Remove every key starting with `prefix` from every tier; returns the count removed per tier.
    pub async fn delete_prefix(
        &self,
        prefix: &[u8],
    ) -> Vec<(&'static str, Result<u64, crate::CacheError>)> {
        let mut out = Vec::new();
        for t in self.tiers.iter() {
            out.push((t.name(), t.delete_prefix(prefix).await));
        }
        out
    }

    /// Each tier's counters.
    pub fn stats(&self) -> Vec<(&'static str, TierStats)> {
        self.tiers.iter().map(|t| (t.name(), t.stats())).collect()
    }
}
