//! Use `yatagarasu-cache` on its own: a memory tier in front of a disk tier, optionally Redis behind.
//!
//! ```text
//! cargo run -p yatagarasu-examples --example cache_alone
//! REDIS_URL=redis://127.0.0.1:6379/ cargo run -p yatagarasu-examples --example cache_alone
//! ```

use std::sync::Arc;
use std::time::Duration;

use yatagarasu_cache::{
    CacheEntry, CacheTier, DiskTier, MemoryTier, RedisOptions, RedisTier, TieredCache,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let memory = Arc::new(
        MemoryTier::builder(64 << 20)
            .max_item_bytes(1 << 20)
            .build(),
    ); // 64 MiB, items up to 1 MiB
    let disk = Arc::new(
        DiskTier::builder(dir.path(), 1 << 30)
            .max_item_bytes(64 << 20)
            .open()
            .await?,
    ); // 1 GiB
    let mut tiers: Vec<Arc<dyn CacheTier>> = vec![memory.clone(), disk.clone()];
    if let Ok(url) = std::env::var("REDIS_URL") {
        tiers.push(Arc::new(RedisTier::new(RedisOptions::new(url))?));
    }
    let cache = TieredCache::new(tiers);

    // A small entry goes to every tier; a 4 MiB one skips memory (over its item limit).
    cache
        .insert(
            b"thumb/cat.jpg",
            CacheEntry::new(
                "image/jpeg",
                vec![1u8; 20_000],
                Some(Duration::from_secs(300)),
            ),
        )
        .await;
    cache
        .insert(
            b"video/cat.mp4",
            CacheEntry::new(
                "video/mp4",
                vec![2u8; 4 << 20],
                Some(Duration::from_secs(300)),
            ),
        )
        .await;

    for key in [&b"thumb/cat.jpg"[..], b"video/cat.mp4", b"missing"] {
        match cache.get(key).await {
            Some(hit) => println!(
                "{}: {} bytes from {}",
                String::from_utf8_lossy(key),
                hit.entry.body.len(),
                hit.tier
            ),
            None => println!("{}: miss", String::from_utf8_lossy(key)),
        }
    }
    // Restart the disk tier: its index is rebuilt from the records on disk.
    drop(cache);
    let reopened = DiskTier::builder(dir.path(), 1 << 30)
        .max_item_bytes(64 << 20)
        .open()
        .await?;
    println!(
        "after reopening the disk tier: {} entries, {} bytes",
        reopened.stats().entries,
        reopened.stats().bytes
    );
    let purged = reopened.delete_prefix(b"video/").await?;
    println!("purged {purged} entry under video/");
    for (tier, stats) in [("memory", memory.stats()), ("disk", disk.stats())] {
        println!("{tier}: {stats:?}");
    }
    Ok(())
}
