//! Coalescing benchmark: 100 concurrent cold requests of a 16 MiB object through the proxy, with
//! coalescing on and off. Reports origin requests, time to first byte (fastest client, median, p99)
//! and total time. Proxy and origin (s3s-fs, SigV4 on) run in this process on 127.0.0.1; clients
//! use their own connections.
//!
//! ```text
//! cargo run --release -p yatagarasu-examples --example coalesce_bench
//! ```

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use yatagarasu::{BucketRoute, Proxy, ServerOptions, serve};
use yatagarasu_s3::{Credentials, S3Client};
use yatagarasu_testkit::TestOrigin;

const CLIENTS: usize = 100;
const LEN: u64 = 16 * 1024 * 1024;

struct Run {
    origin_requests: u64,
    ttfb: Vec<Duration>,
    total: Duration,
}

async fn run(coalescing: bool) -> Result<Run, Box<dyn std::error::Error>> {
    let origin = TestOrigin::start("AKIDBENCH", "bench-secret").await;
    origin.create_bucket("media");
    origin.put_pattern_object("media", "video.bin", LEN);
    let client = S3Client::builder("media")
        .endpoint(origin.endpoint())
        .credentials(Credentials::new("AKIDBENCH", "bench-secret"))
        .build()?;
    let mut route = BucketRoute::new("media", "/media", client);
    route.coalescing.enabled = coalescing;
    let proxy = Proxy::builder().route(route).build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/media/video.bin", listener.local_addr()?);
    tokio::spawn(serve(
        listener,
        proxy,
        ServerOptions::default(),
        std::future::pending(),
    ));

    let start = Instant::now();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(CLIENTS));
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let url = url.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                barrier.wait().await;
                let sent = Instant::now();
                let resp = http.get(&url).send().await?;
                let mut body = resp.bytes_stream();
                let mut ttfb = None;
                let mut n = 0u64;
                while let Some(chunk) = body.next().await {
                    let chunk = chunk?;
                    if ttfb.is_none() && !chunk.is_empty() {
                        ttfb = Some(sent.elapsed());
                    }
                    n += chunk.len() as u64;
                }
                assert_eq!(n, LEN, "complete body");
                Ok::<_, reqwest::Error>(ttfb.unwrap_or_default())
            })
        })
        .collect();
    let mut ttfb = Vec::new();
    for t in tasks {
        ttfb.push(t.await??);
    }
    let total = start.elapsed();
    ttfb.sort();
    Ok(Run {
        origin_requests: origin.stats().requests(),
        ttfb,
        total,
    })
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "| coalescing | origin requests | TTFB fastest | TTFB median | TTFB p99 | median / fastest | total |"
    );
    println!("|---|---|---|---|---|---|---|");
    for on in [true, false] {
        let r = run(on).await?;
        let fastest = r.ttfb[0];
        let median = r.ttfb[r.ttfb.len() / 2];
        let p99 = r.ttfb[(r.ttfb.len() * 99 / 100).min(r.ttfb.len() - 1)];
        println!(
            "| {} | {} | {} | {} | {} | {:.2}x | {} |",
            if on { "on" } else { "off" },
            r.origin_requests,
            ms(fastest),
            ms(median),
            ms(p99),
            median.as_secs_f64() / fastest.as_secs_f64().max(1e-9),
            ms(r.total)
        );
    }
    println!();
    println!(
        "{CLIENTS} concurrent cold GETs of a 16 MiB object, 4 MiB slices, proxy and s3s-fs origin in one process on {} cores.",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    Ok(())
}
