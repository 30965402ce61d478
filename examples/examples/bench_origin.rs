//! An S3 origin for the load benchmarks (`scripts/bench-load.sh`, `bench-cache.sh`): s3s-fs with
//! SigV4 on, in its own process, holding `bench/obj-1k`, `bench/obj-64k` and `bench/obj-1m`. Prints
//! one presigned URL per object (so a load generator can hit the origin directly), then serves until
//! killed.
//!
//! With `OPEN=1` it needs no signature (for nginx, which cannot sign) and with `MISS_OBJECTS=N` it
//! also holds `bench/miss/0000000` .. `N-1`, 4 KiB each, for the miss-path benchmark
//! (`scripts/bench-miss.sh`), where every request asks for a key nobody asked for before.
//!
//! ```text
//! cargo run --release -p yatagarasu-examples --example bench_origin -- 9100
//! ```

use std::time::Duration;

use yatagarasu_s3::{Credentials, S3Client};
use yatagarasu_testkit::TestOrigin;

const ACCESS_KEY: &str = "AKIDBENCH";
const SECRET_KEY: &str = "bench-secret-key";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(9100);
    let dir = tempfile::tempdir()?;
    let open = std::env::var("OPEN").is_ok_and(|v| v == "1");
    let origin = if open {
        TestOrigin::start_open_in(dir.path(), port).await
    } else {
        TestOrigin::start_in(dir.path(), ACCESS_KEY, SECRET_KEY, port).await
    };
    origin.create_bucket("bench");
    let misses: u64 = std::env::var("MISS_OBJECTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    for i in 0..misses {
        origin.put_pattern_object("bench", &format!("miss/{i:07}"), 4096);
    }
    let client = S3Client::builder("bench")
        .endpoint(origin.endpoint())
        .credentials(Credentials::new(ACCESS_KEY, SECRET_KEY))
        .build()?;
    for (key, len) in [
        ("obj-1k", 1024),
        ("obj-64k", 64 * 1024),
        ("obj-1m", 1024 * 1024),
    ] {
        origin.put_pattern_object("bench", key, len);
        let url = client.presign_get(key, Duration::from_secs(3600)).await?;
        println!("{key} {url}");
    }
    println!("ready {}", origin.endpoint());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
