//! Coalescing on the request path: a thousand concurrent clients of one cold object cause exactly one
//! origin request per slice, whatever mix of full GETs, Range requests, HEADs and conditional requests
//! they send, with clients leaving mid-body, and with the origin failing mid-object.
//!
//! Real sockets on 127.0.0.1, the proxy served by `serve`, s3s-fs with SigV4 on. The origin holds its
//! first answer back until the proxy reports that every client has joined the shared fetch, so every
//! client provably arrives while the object is still cold.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use futures_util::StreamExt as _;
use yatagarasu::{BucketRoute, FetchOptions, Proxy, ServerOptions, serve};
use yatagarasu_s3::{Credentials, S3Client};
use yatagarasu_testkit::{Fault, TestOrigin, pattern_byte};

const SLICE: u64 = 64 * 1024;
/// Three full slices and a partial one.
const LEN: u64 = 3 * SLICE + 20_000;
const SLICES: u64 = 4;

struct Setup {
    origin: TestOrigin,
    base: String,
    proxy: Proxy,
}

async fn setup() -> Setup {
    let origin = TestOrigin::start("AKIDCOALESCE", "coalesce-secret").await;
    origin.create_bucket("media");
    origin.put_pattern_object("media", "cold.bin", LEN);
    let client = S3Client::builder("media")
        .endpoint(origin.endpoint())
        .credentials(Credentials::new("AKIDCOALESCE", "coalesce-secret"))
        .build()
        .unwrap();
    let proxy = Proxy::builder()
        .fetch_options({
            let mut v = FetchOptions::default();
            v.slice_size = SLICE;
            v.buffer_bytes = 1024 * 1024;
            v
        })
        .route(BucketRoute::new("media", "/media", client))
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(
        listener,
        proxy.clone(),
        ServerOptions::default(),
        std::future::pending(),
    ));
    Setup {
        origin,
        base,
        proxy,
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

fn check_bytes(body: &[u8], offset: u64) {
    for (i, b) in body.iter().enumerate() {
        assert_eq!(
            *b,
            pattern_byte(offset + i as u64),
            "byte {}",
            offset + i as u64
        );
    }
}

/// Wait (bounded) until `n` requests joined the object flight, then let the origin answer.
async fn release_when_joined(s: &Setup, n: u64) {
    tokio::time::timeout(Duration::from_secs(30), async {
        while s.proxy.coalescing_stats().objects.joined < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "every client joins the shared fetch: {:?}",
            s.proxy.coalescing_stats()
        )
    });
    s.origin.release_held();
}

/// Send the first request and wait (bounded) until the origin has received its first request, which
/// it holds until released.
async fn first_request_in_flight(
    s: &Setup,
    http: &reqwest::Client,
) -> tokio::task::JoinHandle<reqwest::Result<bytes::Bytes>> {
    s.origin.inject(Fault::Hold, 1);
    let url = format!("{}/media/cold.bin", s.base);
    let c = http.clone();
    // Requests made before this one (a HEAD learning the ETag, say) must not count.
    let before = s.origin.stats().requests();
    let first = tokio::spawn(async move { c.get(url).send().await?.bytes().await });
    tokio::time::timeout(Duration::from_secs(10), async {
        while s.origin.stats().requests() == before {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the first request reaches the origin");
    first
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_cold_gets_cause_one_origin_request_per_slice() {
    let s = setup().await;
    let http = http();
    let first = first_request_in_flight(&s, &http).await;
    let mut clients = Vec::new();
    for _ in 0..999 {
        let c = http.clone();
        let url = format!("{}/media/cold.bin", s.base);
        clients.push(tokio::spawn(async move {
            let r = c.get(url).send().await.unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.content_length(), Some(LEN));
            r.bytes().await.unwrap()
        }));
    }
    release_when_joined(&s, 999).await;
    let body = first.await.unwrap().unwrap();
    assert_eq!(body.len() as u64, LEN);
    check_bytes(&body, 0);
    for c in clients {
        let body = c.await.unwrap();
        assert_eq!(body.len() as u64, LEN);
        check_bytes(&body, 0);
    }
    assert_eq!(
        s.origin.stats().requests(),
        SLICES,
        "exactly one origin request per slice"
    );
    let stats = s.proxy.coalescing_stats();
    assert_eq!(stats.objects.started, 1);
    assert_eq!(stats.objects.joined, 999);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mix_of_gets_ranges_heads_and_conditionals_shares_the_fetches() {
    let s = setup().await;
    let http = http();
    // Learn the ETag through the proxy first (one HEAD), then measure from a cold start.
    let etag = http
        .head(format!("{}/media/cold.bin", s.base))
        .send()
        .await
        .unwrap()
        .headers()["etag"]
        .to_str()
        .unwrap()
        .to_owned();
    let before = s.origin.stats().requests();
    let first = first_request_in_flight(&s, &http).await;
    let mut rng = fastrand::Rng::with_seed(99);
    let mut tasks = Vec::new();
    for i in 0..999u32 {
        let c = http.clone();
        let url = format!("{}/media/cold.bin", s.base);
        let etag = etag.clone();
        let kind = i % 4;
        let (a, b) = {
            let x = rng.u64(0..LEN);
            let y = rng.u64(0..LEN);
            (x.min(y), x.max(y))
        };
        tasks.push(tokio::spawn(async move {
            match kind {
                0 => {
                    let body = c.get(url).send().await.unwrap().bytes().await.unwrap();
                    assert_eq!(body.len() as u64, LEN);
                    check_bytes(&body, 0);
                }
                1 => {
                    let r = c
                        .get(url)
                        .header("range", format!("bytes={a}-{b}"))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 206);
                    assert_eq!(
                        r.headers()["content-range"].to_str().unwrap(),
                        format!("bytes {a}-{b}/{LEN}")
                    );
                    let body = r.bytes().await.unwrap();
                    assert_eq!(body.len() as u64, b - a + 1);
                    check_bytes(&body, a);
                }
                2 => {
                    let r = c.head(url).send().await.unwrap();
                    assert_eq!(r.status(), 200);
                    assert_eq!(
                        r.headers()["content-length"].to_str().unwrap(),
                        LEN.to_string()
                    );
                }
                _ => {
                    let r = c
                        .get(url)
                        .header("if-none-match", etag)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 304);
                }
            }
        }));
    }
    release_when_joined(&s, 999).await;
    check_bytes(&first.await.unwrap().unwrap(), 0);
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        s.origin.stats().requests() - before,
        SLICES,
        "ranges, HEADs and conditionals rode on the full GET's fetch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_the_clients_leaving_mid_body_disturbs_nobody() {
    let s = setup().await;
    let http = http();
    let first = first_request_in_flight(&s, &http).await;
    let mut tasks = Vec::new();
    for i in 0..399u32 {
        let c = http.clone();
        let url = format!("{}/media/cold.bin", s.base);
        tasks.push(tokio::spawn(async move {
            let r = c.get(url).send().await.unwrap();
            if i % 2 == 0 {
                let mut s = r.bytes_stream();
                let chunk = s.next().await.unwrap().unwrap();
                check_bytes(&chunk, 0);
                drop(s); // hang up mid-body
                None
            } else {
                Some(r.bytes().await.unwrap())
            }
        }));
    }
    release_when_joined(&s, 399).await;
    check_bytes(&first.await.unwrap().unwrap(), 0);
    for t in tasks {
        if let Some(body) = t.await.unwrap() {
            assert_eq!(body.len() as u64, LEN);
            check_bytes(&body, 0);
        }
    }
    assert_eq!(s.origin.stats().requests(), SLICES);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_failing_mid_object_aborts_every_response() {
    let s = setup().await;
    let http = http();
    // Slice 0 is held back so every client joins; slice 1 passes; every attempt at slice 2 fails.
    s.origin.inject(Fault::Hold, 1);
    s.origin.inject(Fault::Pass, 1);
    s.origin.inject(Fault::status(500, "InternalError"), 10);
    let url = format!("{}/media/cold.bin", s.base);
    let fetch = |c: reqwest::Client, url: String| async move {
        let r = c.get(url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.content_length(), Some(LEN));
        r.bytes().await
    };
    let mut tasks = vec![tokio::spawn(fetch(http.clone(), url.clone()))];
    tokio::time::timeout(Duration::from_secs(10), async {
        while s.origin.stats().requests() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    for _ in 0..199 {
        tasks.push(tokio::spawn(fetch(http.clone(), url.clone())));
    }
    release_when_joined(&s, 199).await;
    let mut aborted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(body) => panic!(
                "a response of {} bytes completed although the origin failed",
                body.len()
            ),
            Err(_) => aborted += 1,
        }
    }
    assert_eq!(
        aborted, 200,
        "every client saw an aborted response, none a truncated 200 that looks complete"
    );
    s.origin.clear_faults();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_replaced_mid_read_aborts_instead_of_splicing() {
    let s = setup().await;
    // Slice 0 passes; slice 1 (fetched ahead while slice 0 streams) is held until the object changed.
    s.origin.inject(Fault::Pass, 1);
    s.origin.inject(Fault::Hold, 1);
    let url = format!("{}/media/cold.bin", s.base);
    let resp = http().get(url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    tokio::time::timeout(Duration::from_secs(10), async {
        while s.origin.stats().requests() < 2 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    s.origin
        .put_object("media", "cold.bin", &vec![0xEE; LEN as usize]);
    s.origin.release_held();
    let mut body = resp.bytes_stream();
    let mut received = Vec::new();
    let mut failed = false;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(c) => received.extend_from_slice(&c),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(
        failed,
        "the response must be aborted, not completed with a second version"
    );
    assert!((received.len() as u64) < LEN);
    check_bytes(&received, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_over_several_slices_reads_one_slice_ahead() {
    let s = setup().await;
    // The HEAD passes; the first slice's body stalls after 1,000 bytes; the next slice passes.
    s.origin.inject(Fault::Pass, 1);
    s.origin.inject(Fault::StallBodyAfter(1000), 1);
    s.origin.inject(Fault::Pass, 1);
    let resp = http()
        .get(format!("{}/media/cold.bin", s.base))
        .header("range", format!("bytes=10-{}", 2 * SLICE + 500))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
    // While the first slice is stuck, the next slice's request has already gone out: without
    // read-ahead it would wait for the first slice to finish.
    tokio::time::timeout(Duration::from_secs(10), async {
        while s.origin.stats().requests() < 3 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the next slice is requested while the first one still streams");
    assert_eq!(s.origin.stats().gets(), 2);
    drop(resp);
}

/// A proxy with a 256 MiB memory tier, `slice`-sized slices and a 2 MiB flight window, in front
/// of an origin holding `big.bin` (`len` pattern bytes).
async fn cached_setup(slice: u64, len: u64) -> (TestOrigin, String, Proxy) {
    let origin = TestOrigin::start("AKIDCOALESCE", "coalesce-secret").await;
    origin.create_bucket("media");
    origin.put_pattern_object("media", "big.bin", len);
    let client = S3Client::builder("media")
        .endpoint(origin.endpoint())
        .credentials(Credentials::new("AKIDCOALESCE", "coalesce-secret"))
        .build()
        .unwrap();
    let memory = yatagarasu_cache::TieredCache::new(vec![std::sync::Arc::new(
        yatagarasu_cache::MemoryTier::builder(256 << 20)
            .max_item_bytes(4 << 20)
            .build(),
    )]);
    let proxy = Proxy::builder()
        .fetch_options({
            let mut v = FetchOptions::default();
            v.slice_size = slice;
            v.buffer_bytes = 2 * 1024 * 1024;
            v
        })
        .cache(memory, Duration::from_secs(3600))
        .route(BucketRoute::new("media", "/media", client))
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(
        listener,
        proxy.clone(),
        ServerOptions::default(),
        std::future::pending(),
    ));
    (origin, base, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_cache_late_joiners_read_finished_slices_from_it_and_never_refetch_one() {
    // 16 slices of 1 MiB; a flight keeps 2 MiB for late joiners. Clients arriving once the
    // object's record is stored read it through the cache: stored slices from there, and the slice
    // the flight is fetching by waiting for it to land, never by fetching it again (31 origin GETs
    // without that, measured).
    const SLICE: u64 = 1024 * 1024;
    const LEN: u64 = 16 * SLICE;
    let (origin, base, proxy) = cached_setup(SLICE, LEN).await;
    let expected: std::sync::Arc<Vec<u8>> =
        std::sync::Arc::new((0..LEN).map(pattern_byte).collect());
    let http = http();
    // Arrivals spread over the first flight's life (one every 3 ms), so later ones find it past
    // its window.
    let mut arrivals = tokio::time::interval(Duration::from_millis(3));
    let mut reads = Vec::new();
    for _ in 0..100 {
        arrivals.tick().await;
        let (http, url, expected) = (
            http.clone(),
            format!("{base}/media/big.bin"),
            std::sync::Arc::clone(&expected),
        );
        reads.push(tokio::spawn(async move {
            let r = http.get(url).send().await.unwrap();
            assert_eq!(r.status(), 200);
            let body = r.bytes().await.unwrap();
            assert!(body[..] == expected[..], "the object's bytes, whole");
        }));
    }
    for r in reads {
        r.await.unwrap();
    }
    let stats = proxy.coalescing_stats();
    eprintln!(
        "100 cold GETs of 16 MiB: {} origin GETs, {} object flights",
        origin.stats().gets(),
        stats.objects.started
    );
    assert_eq!(origin.stats().gets(), 16, "one origin GET per slice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_reading_holds_nobody_else_back() {
    const SLICE: u64 = 1024 * 1024;
    // Larger than what socket buffers between the proxy and the stalled client can absorb.
    const LEN: u64 = 64 * SLICE;
    let (origin, base, _proxy) = cached_setup(SLICE, LEN).await;
    let http = http();
    // The first reader takes a few slices, then stops reading (its connection stays open): its
    // flight stops at its window, holding the slice it was fetching.
    let r = http
        .get(format!("{base}/media/big.bin"))
        .send()
        .await
        .unwrap();
    let mut stalled = r.bytes_stream();
    let mut read = 0;
    while read < 3 * SLICE {
        read += stalled.next().await.unwrap().unwrap().len() as u64;
    }
    // Another reader gets the whole object (after at most a short wait on the stalled slice),
    // not after the stalled reader resumes.
    let started = std::time::Instant::now();
    // Bounded well below the 30 s a waiter would otherwise wait for the stalled holder.
    let body = tokio::time::timeout(Duration::from_secs(20), async {
        http.get(format!("{base}/media/big.bin"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
    })
    .await
    .expect("a stalled reader holds nobody else back");
    assert_eq!(body.len() as u64, LEN);
    check_bytes(&body[..4096], 0);
    eprintln!(
        "second reader done in {:?} beside a stalled one; {} origin GETs",
        started.elapsed(),
        origin.stats().gets()
    );
    drop(stalled);
}
