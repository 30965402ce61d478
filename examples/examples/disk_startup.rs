//! Measure the disk tier's start-up: write N entries, reopen, time the index rebuild.
//!
//! ```text
//! cargo run --release -p yatagarasu-examples --example disk_startup -- 100000
//! ```

use std::time::Instant;

use yatagarasu_cache::{CacheEntry, CacheTier, DiskTier};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir()?;
    let disk = DiskTier::builder(dir.path(), 1 << 40)
        .max_item_bytes(1 << 20)
        .open()
        .await?;
    let started = Instant::now();
    for i in 0..n {
        let key = format!("r\0media\0objects/{i:08}.json");
        disk.put(
            key.as_bytes(),
            CacheEntry::new("meta", vec![b'x'; 1024], None),
        )
        .await?;
    }
    let write = started.elapsed();
    drop(disk);
    let started = Instant::now();
    let reopened = DiskTier::builder(dir.path(), 1 << 40)
        .max_item_bytes(1 << 20)
        .open()
        .await?;
    let open = started.elapsed();
    assert_eq!(reopened.stats().entries, n as u64);
    println!(
        "{n} entries of 1 KiB: written in {:.2} s ({:.0}/s); reopened (index rebuilt) in {:.3} s",
        write.as_secs_f64(),
        n as f64 / write.as_secs_f64(),
        open.as_secs_f64()
    );
    Ok(())
}
