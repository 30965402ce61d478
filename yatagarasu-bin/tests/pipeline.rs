//! The request pipeline's seams and the bugs found on its way, end to end over real sockets against
//! an s3s-fs origin (SigV4 on): origin decorators, the metrics recorder and how bodies end, the
//! route table swapped under running requests, the listener's target limit, negative caching that
//! expires, and the proxy's own If-Match never reaching a client.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use yatagarasu::{
    BucketRoute, CacheStatus, Completion, FetchOptions, MetricsRecorder, Proxy, RequestRecord,
    ServerOptions, serve,
};
use yatagarasu_cache::{DiskTier, MemoryTier, TieredCache};
use yatagarasu_s3::{
    Credentials, GetObjectOutput, GetObjectRequest, HeadObjectRequest, ObjectMeta, Origin,
    OriginFuture, S3Client,
};
use yatagarasu_testkit::{Fault, TestOrigin, pattern_byte};

const SLICE: u64 = 64 * 1024;

async fn origin() -> TestOrigin {
    let o = TestOrigin::start("AKIDPIPE", "pipe-secret").await;
    o.create_bucket("media");
    o
}

fn client(o: &TestOrigin) -> S3Client {
    S3Client::builder("media")
        .endpoint(o.endpoint())
        .credentials(Credentials::new("AKIDPIPE", "pipe-secret"))
        .build()
        .unwrap()
}

async fn start(proxy: Proxy, options: ServerOptions) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(listener, proxy, options, std::future::pending()));
    base
}

fn builder() -> yatagarasu::ProxyBuilder {
    Proxy::builder().fetch_options({
        let mut v = FetchOptions::default();
        v.slice_size = SLICE;
        v
    })
}

/// Waits (bounded) until `cond` holds.
async fn until(what: &str, cond: impl Fn() -> bool) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

/// Counts what reaches the wrapped origin.
#[derive(Debug)]
struct Counting<O> {
    inner: O,
    gets: AtomicU64,
    heads: AtomicU64,
}

impl<O: Origin> Origin for Counting<O> {
    fn bucket(&self) -> &str {
        self.inner.bucket()
    }
    fn get_object<'a>(
        &'a self,
        key: &'a str,
        req: &'a GetObjectRequest,
    ) -> OriginFuture<'a, GetObjectOutput> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get_object(key, req)
    }
    fn head_object<'a>(
        &'a self,
        key: &'a str,
        req: &'a HeadObjectRequest,
    ) -> OriginFuture<'a, ObjectMeta> {
        self.heads.fetch_add(1, Ordering::SeqCst);
        self.inner.head_object(key, req)
    }
    fn probe(&self) -> OriginFuture<'_, ()> {
        self.inner.probe()
    }
}

#[tokio::test]
async fn an_origin_decorator_sees_every_origin_request_and_nothing_else() {
    let o = origin().await;
    o.put_pattern_object("media", "a.bin", 3 * SLICE + 7);
    let counting = Arc::new(Counting {
        inner: client(&o),
        gets: AtomicU64::new(0),
        heads: AtomicU64::new(0),
    });
    let proxy = builder()
        .cache(
            TieredCache::new(vec![Arc::new(
                MemoryTier::builder(16 << 20)
                    .max_item_bytes(8 << 20)
                    .build(),
            )]),
            Duration::from_secs(3600),
        )
        .route(BucketRoute::new("media", "/media", Arc::clone(&counting)))
        .build();
    let base = start(proxy, ServerOptions::default()).await;
    let url = format!("{base}/media/a.bin");
    let body = reqwest::get(&url).await.unwrap().bytes().await.unwrap();
    assert_eq!(body.len() as u64, 3 * SLICE + 7);
    assert!(
        body.iter()
            .enumerate()
            .all(|(i, b)| *b == pattern_byte(i as u64))
    );
    assert_eq!(counting.gets.load(Ordering::SeqCst), 4, "one GET per slice");
    assert_eq!(counting.gets.load(Ordering::SeqCst), o.stats().gets());
    // A hit never reaches the decorator.
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.headers()["x-cache"], "HIT");
    assert_eq!(r.bytes().await.unwrap(), body);
    assert_eq!(counting.gets.load(Ordering::SeqCst), 4);
    assert_eq!(counting.heads.load(Ordering::SeqCst), 0);
}

/// One reported request: bucket, status, cache outcome, bytes sent, how the body ended.
type Record = (Option<String>, u16, Option<CacheStatus>, u64, Completion);

/// Collects what the proxy reports.
#[derive(Debug, Default)]
struct Recorded(Mutex<Vec<Record>>);

impl MetricsRecorder for Recorded {
    fn record_request(&self, r: &RequestRecord<'_>) {
        self.0.lock().unwrap().push((
            r.bucket.map(str::to_owned),
            r.status,
            r.cache,
            r.bytes_sent,
            r.completion,
        ));
    }
}

#[tokio::test]
async fn the_metrics_recorder_gets_typed_outcomes_and_full_bodies_end_complete() {
    let o = origin().await;
    o.put_pattern_object("media", "big.bin", 2_000_000);
    o.put_object("media", "small.txt", b"hello");
    let recorded = Arc::new(Recorded::default());
    let proxy = builder()
        .cache(
            TieredCache::new(vec![Arc::new(
                MemoryTier::builder(16 << 20)
                    .max_item_bytes(8 << 20)
                    .build(),
            )]),
            Duration::from_secs(3600),
        )
        .metrics(recorded.clone())
        .route(BucketRoute::new("media", "/media", client(&o)))
        .build();
    let base = start(proxy, ServerOptions::default()).await;
    let records = || recorded.0.lock().unwrap().clone();

    // A body sent in full is complete (hyper stops polling at Content-Length; that is not a client
    // leaving).
    for expected in [CacheStatus::Miss, CacheStatus::Hit] {
        let n = records().len();
        let body = reqwest::get(format!("{base}/media/big.bin"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(body.len(), 2_000_000);
        until("the request's record", || records().len() > n).await;
        let last = records()[n].clone();
        assert_eq!(
            last,
            (
                Some("media".into()),
                200,
                Some(expected),
                2_000_000,
                Completion::Complete
            )
        );
    }
    let n = records().len();
    assert_eq!(
        reqwest::get(format!("{base}/media/small.txt"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
        &b"hello"[..]
    );
    let r = reqwest::get(format!("{base}/health")).await.unwrap();
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();
    until("two more records", || records().len() >= n + 2).await;
    let rs = records();
    assert!(rs[n..].contains(&(
        Some("media".into()),
        200,
        Some(CacheStatus::Miss),
        5,
        Completion::Complete
    )));
    assert!(
        rs[n..]
            .iter()
            .any(|r| r.0.is_none() && r.1 == 200 && r.2.is_none() && r.4 == Completion::Complete),
        "/health is recorded without a bucket or a cache status: {rs:?}"
    );

    // A client that hangs up mid-body is `client_gone`, with the bytes it was sent.
    o.put_pattern_object("media", "huge.bin", 32_000_000);
    let n = records().len();
    let r = reqwest::get(format!("{base}/media/huge.bin"))
        .await
        .unwrap();
    let mut s = r.bytes_stream();
    let _ = futures_util::StreamExt::next(&mut s).await;
    drop(s);
    until("the abandoned request's record", || records().len() > n).await;
    let gone = records()[n].clone();
    assert_eq!(gone.4, Completion::ClientGone, "{gone:?}");
    assert!(gone.3 < 32_000_000, "{gone:?}");
}

#[tokio::test]
async fn a_request_keeps_the_route_table_it_started_with() {
    let o = origin().await;
    o.put_object("media", "held.txt", b"from the old table");
    let proxy = builder()
        .route(BucketRoute::new("media", "/media", client(&o)))
        .build();
    let base = start(proxy.clone(), ServerOptions::default()).await;
    o.inject(Fault::Hold, 1);
    let running = tokio::spawn({
        let url = format!("{base}/media/held.txt");
        async move {
            let r = reqwest::get(url).await.unwrap();
            (r.status().as_u16(), r.bytes().await.unwrap())
        }
    });
    until("the held request at the origin", || {
        o.stats().requests() >= 1
    })
    .await;
    // The bucket moves to another prefix while the request is held at the origin.
    proxy.replace_routes(vec![BucketRoute::new("media", "/moved", client(&o))]);
    o.release_held();
    let (status, body) = running.await.unwrap();
    assert_eq!((status, &body[..]), (200, &b"from the old table"[..]));
    let old = reqwest::get(format!("{base}/media/held.txt"))
        .await
        .unwrap();
    assert_eq!(old.status(), 404, "new requests use the new table");
    let new = reqwest::get(format!("{base}/moved/held.txt"))
        .await
        .unwrap();
    assert_eq!(new.status(), 200);
    // Counters carry over by bucket name.
    let stats = proxy.bucket_cache_stats();
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].1.bypass, 2, "{stats:?}");
}

#[tokio::test]
async fn the_listeners_own_target_limit_applies() {
    let o = origin().await;
    let proxy = builder()
        .route(BucketRoute::new("media", "/media", client(&o)))
        .build();
    let options = {
        let mut v = ServerOptions::default();
        v.max_uri_bytes = 64;
        v
    };
    let base = start(proxy, options).await;
    let r = reqwest::get(format!("{base}/media/{}", "k".repeat(100)))
        .await
        .unwrap();
    assert_eq!(r.status(), 414);
    assert!(r.headers().contains_key("x-request-id"));
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v["error"]["code"], "UriTooLong");
    assert_eq!(o.stats().requests(), 0, "the origin is never asked");
    let r = reqwest::get(format!("{base}/media/short")).await.unwrap();
    assert_eq!(r.status(), 404, "shorter targets go through");
}

#[tokio::test]
async fn a_remembered_404_expires_even_when_polled_faster_than_its_ttl() {
    let o = origin().await;
    let proxy = builder()
        .cache_with_negative_ttl(
            TieredCache::new(vec![Arc::new(
                MemoryTier::builder(16 << 20)
                    .max_item_bytes(8 << 20)
                    .build(),
            )]),
            Duration::from_secs(3600),
            Duration::from_millis(400),
        )
        .route(BucketRoute::new("media", "/media", client(&o)))
        .build();
    let base = start(proxy.clone(), ServerOptions::default()).await;
    let url = format!("{base}/media/later.txt");
    let first = reqwest::get(&url).await.unwrap();
    assert_eq!(first.status(), 404);
    assert_eq!(first.headers()["x-cache"], "MISS");
    o.put_object("media", "later.txt", b"uploaded");
    // Poll every 50 ms: each poll inside the TTL is answered from the remembered 404, and that
    // answer must not renew it.
    let mut negative_hits = 0;
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let r = reqwest::get(&url).await.unwrap();
            if r.status() == 200 {
                return r.bytes().await.unwrap();
            }
            assert_eq!(r.status(), 404);
            assert_eq!(r.headers()["x-cache"], "HIT");
            negative_hits += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the upload is seen once the negative TTL has passed");
    assert_eq!(&found[..], b"uploaded");
    assert!(negative_hits >= 1, "the 404 was remembered for a while");
    let stats = proxy.bucket_cache_stats();
    assert_eq!(stats[0].1.negative_hit, negative_hits, "{stats:?}");
}

#[tokio::test]
async fn the_proxys_own_if_match_never_reaches_a_client() {
    let o = origin().await;
    o.put_pattern_object("media", "r.bin", 3 * SLICE);
    let proxy = builder()
        .route(BucketRoute::new("media", "/media", client(&o)))
        .build();
    let base = start(proxy, ServerOptions::default()).await;
    // The range read sends a HEAD (answered), then a GET of the slice with If-Match: held at the
    // origin while the object is replaced, so the origin answers it 412.
    o.inject(Fault::Pass, 1);
    o.inject(Fault::Hold, 1);
    let read = tokio::spawn({
        let url = format!("{base}/media/r.bin");
        async move {
            let r = reqwest::Client::new()
                .get(url)
                .header("range", "bytes=10-19")
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.bytes().await.unwrap())
        }
    });
    until("the held slice GET", || o.stats().gets() >= 1).await;
    o.put_object("media", "r.bin", b"a new version, shorter than before");
    o.release_held();
    let (status, body) = read.await.unwrap();
    assert_eq!(
        status, 206,
        "the client sent no precondition; it must not see 412"
    );
    assert_eq!(&body[..], &b"a new version, shorter than before"[10..20]);
}

#[tokio::test]
async fn memorys_own_ttl_moves_hits_to_the_disk_tier_without_ending_freshness() {
    let o = origin().await;
    o.put_object("media", "m.txt", b"memory, then disk");
    let dir = tempfile::tempdir().unwrap();
    let memory = Arc::new(
        MemoryTier::builder(16 << 20)
            .max_item_bytes(8 << 20)
            .max_ttl(Duration::from_millis(50))
            .build(),
    );
    let disk = Arc::new(
        DiskTier::builder(dir.path(), 64 << 20)
            .max_item_bytes(8 << 20)
            .open()
            .await
            .unwrap(),
    );
    let proxy = builder()
        .cache(
            TieredCache::new(vec![memory, disk]),
            Duration::from_secs(3600),
        )
        .route(BucketRoute::new("media", "/media", client(&o)))
        .build();
    let base = start(proxy.clone(), ServerOptions::default()).await;
    let url = format!("{base}/media/m.txt");
    let get = || async {
        let r = reqwest::get(&url).await.unwrap();
        let x = r.headers()["x-cache"].to_str().unwrap().to_owned();
        (x, r.bytes().await.unwrap())
    };
    assert_eq!(get().await.0, "MISS");
    let disk_hits = |p: &Proxy| {
        p.cache_stats()
            .unwrap()
            .iter()
            .find(|(n, _)| *n == "disk")
            .unwrap()
            .1
            .hits
    };
    let before = disk_hits(&proxy);
    tokio::time::sleep(Duration::from_millis(100)).await; // let memory's own TTL pass
    let (x, body) = get().await;
    assert_eq!(
        (x.as_str(), &body[..]),
        ("HIT", &b"memory, then disk"[..]),
        "still fresh"
    );
    assert!(
        disk_hits(&proxy) > before,
        "answered from disk once memory let go"
    );
    assert_eq!(o.stats().gets(), 1, "the origin was not asked again");
}
