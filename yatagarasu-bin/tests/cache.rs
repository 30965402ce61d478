//! The cache on the request path: real sockets, s3s-fs origin (SigV4 on), real disk, real
//! `redis-server`. Origin requests and body bytes are counted by the origin itself.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::sync::Arc;
use std::time::Duration;

use yatagarasu::{BucketRoute, FetchOptions, Proxy, ServerOptions, serve};
use yatagarasu_cache::{CacheTier, DiskTier, MemoryTier, RedisOptions, RedisTier, TieredCache};
use yatagarasu_s3::{Credentials, S3Client};
use yatagarasu_testkit::{ObjectAttributes, RedisServer, TestOrigin, pattern_byte};

const SLICE: u64 = 64 * 1024;

async fn origin() -> TestOrigin {
    let o = TestOrigin::start("AKIDCACHE", "cache-secret").await;
    o.create_bucket("media");
    o
}

fn route(o: &TestOrigin) -> BucketRoute {
    let client = S3Client::builder("media")
        .endpoint(o.endpoint())
        .credentials(Credentials::new("AKIDCACHE", "cache-secret"))
        .build()
        .unwrap();
    BucketRoute::new("media", "/media", client)
}

/// Serve a proxy over `tiers`; returns its base URL and the proxy.
async fn proxy(
    o: &TestOrigin,
    tiers: Vec<Arc<dyn CacheTier>>,
) -> (String, tokio::sync::oneshot::Sender<()>) {
    let proxy = Proxy::builder()
        .fetch_options({
            let mut v = FetchOptions::default();
            v.slice_size = SLICE;
            v
        })
        .cache(TieredCache::new(tiers), Duration::from_secs(3600))
        .route(route(o))
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(listener, proxy, ServerOptions::default(), async {
        let _ = rx.await;
    }));
    (base, tx)
}

fn memory() -> Arc<dyn CacheTier> {
    Arc::new(
        MemoryTier::builder(64 << 20)
            .max_item_bytes(16 << 20)
            .build(),
    )
}

async fn get(url: &str) -> (u16, String, bytes::Bytes) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    let x = r
        .headers()
        .get("x-cache")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, x, r.bytes().await.unwrap())
}

fn check(body: &[u8], offset: u64) {
    assert!(
        body.iter()
            .enumerate()
            .all(|(i, b)| *b == pattern_byte(offset + i as u64)),
        "wrong bytes"
    );
}

#[tokio::test]
async fn a_second_get_never_reaches_the_origin() {
    let o = origin().await;
    o.put_pattern_object("media", "a.bin", 3 * SLICE + 100);
    let (base, _stop) = proxy(&o, vec![memory()]).await;
    let url = format!("{base}/media/a.bin");
    let (s, x, body) = get(&url).await;
    assert_eq!((s, x.as_str()), (200, "MISS"));
    check(&body, 0);
    let after_first = o.stats().requests();
    for _ in 0..3 {
        let (s, x, body) = get(&url).await;
        assert_eq!((s, x.as_str()), (200, "HIT"));
        assert_eq!(body.len() as u64, 3 * SLICE + 100);
        check(&body, 0);
    }
    // Ranges, HEADs and conditionals are answered from the cache too.
    let r = reqwest::Client::new()
        .get(&url)
        .header("range", "bytes=70000-70099")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["x-cache"], "HIT");
    check(&r.bytes().await.unwrap(), 70_000);
    let r = reqwest::Client::new().head(&url).send().await.unwrap();
    assert_eq!(r.headers()["x-cache"], "HIT");
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let r = reqwest::Client::new()
        .get(&url)
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(
        o.stats().requests(),
        after_first,
        "no origin request after the first GET"
    );
}

#[tokio::test]
async fn disk_hits_survive_a_proxy_restart() {
    let o = origin().await;
    o.put_pattern_object("media", "d.bin", 2 * SLICE + 5);
    let dir = tempfile::tempdir().unwrap();
    let url;
    {
        let disk: Arc<dyn CacheTier> = Arc::new(
            DiskTier::builder(dir.path(), 64 << 20)
                .max_item_bytes(16 << 20)
                .open()
                .await
                .unwrap(),
        );
        let (base, stop) = proxy(&o, vec![memory(), disk]).await;
        url = "/media/d.bin".to_owned();
        let (_, x, body) = get(&format!("{base}{url}")).await;
        assert_eq!(x, "MISS");
        check(&body, 0);
        drop(stop);
    }
    let before = o.stats().requests();
    // A new proxy (empty memory) over the same directory.
    let disk: Arc<dyn CacheTier> = Arc::new(
        DiskTier::builder(dir.path(), 64 << 20)
            .max_item_bytes(16 << 20)
            .open()
            .await
            .unwrap(),
    );
    let (base, _stop) = proxy(&o, vec![memory(), disk]).await;
    let (s, x, body) = get(&format!("{base}{url}")).await;
    assert_eq!((s, x.as_str()), (200, "HIT"));
    check(&body, 0);
    assert_eq!(o.stats().requests(), before);
}

#[tokio::test]
async fn unchanged_objects_revalidate_without_a_body_and_changed_ones_are_refetched() {
    let o = origin().await;
    // no-cache: stored, but revalidated on every use (no waiting for a TTL).
    let attrs = ObjectAttributes {
        cache_control: Some("no-cache".into()),
        ..ObjectAttributes::default()
    };
    o.put_object_with("media", "r.txt", &vec![b'v'; 100_000], &attrs);
    let (base, _stop) = proxy(&o, vec![memory()]).await;
    let url = format!("{base}/media/r.txt");
    let (_, x, _) = get(&url).await;
    assert_eq!(x, "MISS");
    let (requests, bytes) = (o.stats().requests(), o.stats().body_bytes());
    let (s, x, body) = get(&url).await;
    assert_eq!((s, x.as_str()), (200, "REVALIDATED"));
    assert_eq!(body.len(), 100_000);
    assert_eq!(o.stats().requests(), requests + 1, "one HEAD");
    assert_eq!(o.stats().heads(), 1);
    assert_eq!(o.stats().body_bytes(), bytes, "no body bytes moved");

    o.put_object_with("media", "r.txt", &vec![b'w'; 50_000], &attrs);
    let (s, x, body) = get(&url).await;
    assert_eq!((s, x.as_str()), (200, "MISS"));
    assert_eq!(body, vec![b'w'; 50_000]);
}

#[tokio::test]
async fn objects_that_must_not_be_stored_are_not() {
    let o = origin().await;
    let attrs = ObjectAttributes {
        cache_control: Some("private, max-age=600".into()),
        ..ObjectAttributes::default()
    };
    o.put_object_with("media", "p.txt", b"personal", &attrs);
    let (base, _stop) = proxy(&o, vec![memory()]).await;
    let url = format!("{base}/media/p.txt");
    assert_eq!(get(&url).await.1, "MISS");
    assert_eq!(get(&url).await.1, "MISS");
    assert_eq!(o.stats().gets(), 2);
    // Credentials never reach the origin, so they cannot change the answer: such requests are
    // served from the cache and fill it like any other (no cache-busting switch for anyone).
    o.put_object("media", "q.txt", b"q");
    let with = |name: &'static str, value: &'static str| {
        let request = reqwest::Client::new()
            .get(format!("{base}/media/q.txt"))
            .header(name, value)
            .send();
        async move {
            let r = request.await.unwrap();
            let x = r.headers()["x-cache"].to_str().unwrap().to_owned();
            assert_eq!(r.bytes().await.unwrap(), "q");
            x
        }
    };
    assert_eq!(with("authorization", "Bearer x").await, "MISS");
    assert_eq!(with("cookie", "session=1").await, "HIT");
    assert_eq!(with("authorization", "Bearer y").await, "HIT");
    assert_eq!(o.stats().gets(), 3, "one origin GET for q.txt");
}

#[tokio::test]
async fn a_range_on_a_huge_object_fetches_only_the_slices_it_needs() {
    let o = origin().await;
    const GIB: u64 = 1024 * 1024 * 1024;
    o.put_sparse_object("media", "huge.bin", GIB, "huge-v1");
    let (base, _stop) = proxy(&o, vec![memory()]).await;
    let client = reqwest::Client::new();
    let range = |a: u64, b: u64| {
        client
            .get(format!("{base}/media/huge.bin"))
            .header("range", format!("bytes={a}-{b}"))
            .send()
    };
    let start = 700 * 1024 * 1024 + 12_345;
    let r = range(start, start + 99).await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"].to_str().unwrap(),
        format!("bytes {start}-{}/{GIB}", start + 99)
    );
    assert_eq!(r.bytes().await.unwrap().len(), 100);
    assert_eq!(o.stats().heads(), 1, "metadata");
    assert_eq!(o.stats().gets(), 1, "one slice");
    assert!(
        o.stats().body_bytes() <= SLICE,
        "{} bytes moved for a 100-byte range",
        o.stats().body_bytes()
    );
    // The same slice again: from the cache. A range across two slices fetches just the second.
    let r = range(start + 10, start + 20).await.unwrap();
    assert_eq!(r.headers()["x-cache"], "HIT");
    let slice_end = (start / SLICE + 1) * SLICE;
    let r = range(slice_end - 10, slice_end + 10).await.unwrap();
    assert_eq!(r.bytes().await.unwrap().len(), 21);
    assert_eq!(o.stats().gets(), 2);
}

fn redis_tier(server: &RedisServer) -> Arc<dyn CacheTier> {
    Arc::new(RedisTier::new(RedisOptions::new(server.url())).unwrap())
}

#[tokio::test]
async fn a_second_instance_hits_redis_and_a_dead_redis_fails_no_request() {
    let o = origin().await;
    o.put_pattern_object("media", "shared.bin", SLICE + 7);
    let mut redis = RedisServer::start();
    let redis_a = redis_tier(&redis);
    let (a, _stop_a) = proxy(&o, vec![memory(), redis_a.clone()]).await;
    let (b, _stop_b) = proxy(&o, vec![memory(), redis_tier(&redis)]).await;
    assert_eq!(get(&format!("{a}/media/shared.bin")).await.1, "MISS");
    // Redis is written in the background: wait for the record and both slices.
    tokio::time::timeout(Duration::from_secs(10), async {
        while redis_a.stats().inserts < 3 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    let before = o.stats().requests();
    let (s, x, body) = get(&format!("{b}/media/shared.bin")).await;
    assert_eq!(
        (s, x.as_str()),
        (200, "HIT"),
        "instance b found instance a's entry in Redis"
    );
    check(&body, 0);
    assert_eq!(o.stats().requests(), before);

    redis.kill();
    o.put_pattern_object("media", "later.bin", 1000);
    for _ in 0..5 {
        let (s, _, body) = get(&format!("{b}/media/later.bin")).await;
        assert_eq!(s, 200);
        check(&body, 0);
    }
    // Memory still serves what it holds.
    assert_eq!(get(&format!("{b}/media/shared.bin")).await.1, "HIT");
}

async fn proxy_with(o: &TestOrigin, negative_ttl: Duration) -> String {
    let proxy = Proxy::builder()
        .fetch_options({
            let mut v = FetchOptions::default();
            v.slice_size = SLICE;
            v
        })
        .cache_with_negative_ttl(
            TieredCache::new(vec![memory()]),
            Duration::from_secs(3600),
            negative_ttl,
        )
        .route(route(o))
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(
        listener,
        proxy,
        ServerOptions::default(),
        std::future::pending(),
    ));
    base
}

#[tokio::test]
async fn stale_while_revalidate_answers_at_once_and_revalidates_in_the_background() {
    let o = origin().await;
    let attrs = ObjectAttributes {
        cache_control: Some("max-age=0, stale-while-revalidate=600".into()),
        ..ObjectAttributes::default()
    };
    o.put_object_with("media", "swr.txt", b"stale is fine", &attrs);
    let base = proxy_with(&o, Duration::ZERO).await;
    let url = format!("{base}/media/swr.txt");
    assert_eq!(get(&url).await.1, "MISS");
    let (gets, bytes) = (o.stats().gets(), o.stats().body_bytes());
    let (s, x, body) = get(&url).await;
    assert_eq!(
        (s, x.as_str(), &body[..]),
        (200, "STALE", &b"stale is fine"[..])
    );
    // The revalidation happens after the answer, in the background: wait for it (bounded).
    tokio::time::timeout(Duration::from_secs(10), async {
        while o.stats().heads() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("a background revalidation reaches the origin");
    assert_eq!(o.stats().gets(), gets, "no body fetched");
    assert_eq!(o.stats().body_bytes(), bytes);
}

#[tokio::test]
async fn stale_if_error_serves_the_cached_copy_while_the_origin_is_down() {
    let o = origin().await;
    let lasting = ObjectAttributes {
        cache_control: Some("max-age=0, stale-if-error=600".into()),
        ..ObjectAttributes::default()
    };
    o.put_object_with("media", "sie.txt", b"still here", &lasting);
    o.put_object_with(
        "media",
        "plain.txt",
        b"no grace",
        &ObjectAttributes {
            cache_control: Some("max-age=0".into()),
            ..ObjectAttributes::default()
        },
    );
    let base = proxy_with(&o, Duration::ZERO).await;
    assert_eq!(get(&format!("{base}/media/sie.txt")).await.1, "MISS");
    assert_eq!(get(&format!("{base}/media/plain.txt")).await.1, "MISS");
    o.stop();
    let (s, x, body) = get(&format!("{base}/media/sie.txt")).await;
    assert_eq!(
        (s, x.as_str(), &body[..]),
        (200, "STALE", &b"still here"[..])
    );
    let (s, _, _) = get(&format!("{base}/media/plain.txt")).await;
    assert_eq!(s, 503, "without stale-if-error the origin's failure shows");
}

#[tokio::test]
async fn a_404_is_remembered_for_the_negative_ttl_only_when_configured() {
    let o = origin().await;
    let base = proxy_with(&o, Duration::from_secs(600)).await;
    let url = format!("{base}/media/nothing.txt");
    assert_eq!(get(&url).await.0, 404);
    let seen = o.stats().requests();
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status(), 404);
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v["error"]["code"], "NoSuchKey");
    assert_eq!(
        o.stats().requests(),
        seen,
        "the second 404 came from the cache"
    );

    // Without a negative TTL errors are never cached.
    let o2 = origin().await;
    let base2 = proxy_with(&o2, Duration::ZERO).await;
    let url2 = format!("{base2}/media/nothing.txt");
    assert_eq!(get(&url2).await.0, 404);
    assert_eq!(get(&url2).await.0, 404);
    assert_eq!(o2.stats().requests(), 2);
}

/// Runs a command that must succeed (file-system fault injection needs root, as CI has).
fn sh(cmd: &str, args: &[&str]) {
    let ok = std::process::Command::new(cmd).args(args).status().unwrap();
    assert!(
        ok.success(),
        "{cmd} {args:?} failed: fault injection needs root"
    );
}

/// Undoes `chattr +i` and unmounts, whatever happens in the test.
struct FsFault {
    immutable: Option<std::path::PathBuf>,
    mounted: Option<std::path::PathBuf>,
}

impl Drop for FsFault {
    fn drop(&mut self) {
        if let Some(p) = &self.immutable {
            let _ = std::process::Command::new("chattr")
                .arg("-R")
                .arg("-i")
                .arg(p)
                .status();
        }
        if let Some(p) = &self.mounted {
            let _ = std::process::Command::new("umount").arg(p).status();
        }
    }
}

#[tokio::test]
async fn a_read_only_or_full_disk_never_fails_a_request() {
    let o = origin().await;
    o.put_pattern_object("media", "before.bin", 2 * SLICE);
    o.put_pattern_object("media", "after.bin", 2 * SLICE);
    o.put_pattern_object("media", "big.bin", 20 * SLICE);

    // Read-only: the directory (and everything in it) made immutable mid-test.
    let dir = tempfile::tempdir().unwrap();
    let disk = Arc::new(
        DiskTier::builder(dir.path(), 64 << 20)
            .max_item_bytes(16 << 20)
            .open()
            .await
            .unwrap(),
    );
    let (base, _stop) = proxy(&o, vec![memory(), disk.clone()]).await;
    assert_eq!(get(&format!("{base}/media/before.bin")).await.1, "MISS");
    let mut fault = FsFault {
        immutable: None,
        mounted: None,
    };
    sh("chattr", &["-R", "+i", dir.path().to_str().unwrap()]);
    fault.immutable = Some(dir.path().to_path_buf());
    let (s, x, body) = get(&format!("{base}/media/after.bin")).await;
    assert_eq!((s, x.as_str()), (200, "MISS"));
    check(&body, 0);
    assert!(
        disk.stats().errors >= 1,
        "the failed disk writes are counted: {:?}",
        disk.stats()
    );
    for name in ["before.bin", "after.bin"] {
        let (s, x, body) = get(&format!("{base}/media/{name}")).await;
        assert_eq!((s, x.as_str()), (200, "HIT"), "{name}");
        check(&body, 0);
    }
    drop(fault);

    // Full: a 256 KiB file system under a tier that believes it has 64 MiB.
    let full = tempfile::tempdir().unwrap();
    let mut fault = FsFault {
        immutable: None,
        mounted: None,
    };
    sh(
        "mount",
        &[
            "-t",
            "tmpfs",
            "-o",
            "size=256k",
            "tmpfs",
            full.path().to_str().unwrap(),
        ],
    );
    fault.mounted = Some(full.path().to_path_buf());
    let disk = Arc::new(
        DiskTier::builder(full.path(), 64 << 20)
            .max_item_bytes(16 << 20)
            .open()
            .await
            .unwrap(),
    );
    let (base, _stop2) = proxy(&o, vec![disk.clone()]).await;
    let (s, _, body) = get(&format!("{base}/media/big.bin")).await;
    assert_eq!(s, 200);
    assert_eq!(body.len() as u64, 20 * SLICE);
    check(&body, 0);
    assert!(
        disk.stats().errors >= 1,
        "ENOSPC writes are counted: {:?}",
        disk.stats()
    );
    // What did fit is served; the rest comes from the origin again, correctly.
    let (s, _, body) = get(&format!("{base}/media/big.bin")).await;
    assert_eq!(s, 200);
    check(&body, 0);
    drop(fault);
}

#[tokio::test]
async fn a_changed_object_is_seen_after_its_ttl_and_not_before() {
    let o = origin().await;
    let attrs = ObjectAttributes {
        cache_control: Some("max-age=1".into()),
        ..ObjectAttributes::default()
    };
    o.put_object_with("media", "t.txt", b"version one", &attrs);
    let (base, _stop) = proxy(&o, vec![memory()]).await;
    let url = format!("{base}/media/t.txt");
    assert_eq!(get(&url).await.2, "version one");
    o.put_object_with("media", "t.txt", b"version two!", &attrs);
    let (_, x, body) = get(&url).await;
    assert_eq!(
        (x.as_str(), &body[..]),
        ("HIT", &b"version one"[..]),
        "fresh for max-age=1"
    );
    // Wait out the TTL itself (the behaviour under test is time-based).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, x, body) = get(&url).await;
    assert_eq!((x.as_str(), &body[..]), ("MISS", &b"version two!"[..]));
}

#[tokio::test]
async fn a_fresh_record_whose_version_is_gone_is_dropped_not_served_as_errors() {
    let o = origin().await;
    o.put_pattern_object("media", "v.bin", 2 * SLICE);
    // A memory tier that keeps records but not slices (they exceed its item limit): the state a
    // cache reaches when slices were evicted and the record was not.
    let (base, _stop) = proxy(
        &o,
        vec![Arc::new(
            MemoryTier::builder(64 << 20).max_item_bytes(1024).build(),
        )],
    )
    .await;
    let url = format!("{base}/media/v.bin");
    assert_eq!(get(&url).await.1, "MISS");
    // The object changes at the origin while the record is still fresh.
    o.put_object("media", "v.bin", b"a new, shorter version");
    let (s, _, body) = get(&url).await;
    assert_eq!(s, 200, "served, not a 502 for the outdated record");
    assert_eq!(&body[..], b"a new, shorter version");
    let (s, _, body) = get(&url).await;
    assert_eq!((s, &body[..]), (200, &b"a new, shorter version"[..]));
}

#[tokio::test]
async fn stale_if_error_stands_in_for_origin_faults_not_for_a_403() {
    let o = origin().await;
    let lasting = ObjectAttributes {
        cache_control: Some("max-age=0, stale-if-error=600".into()),
        ..ObjectAttributes::default()
    };
    o.put_object_with("media", "sie.txt", b"still here", &lasting);
    let base = proxy_with(&o, Duration::ZERO).await;
    let url = format!("{base}/media/sie.txt");
    assert_eq!(get(&url).await.1, "MISS");
    // The origin now refuses the proxy: that is an answer, and a stale copy must not hide it.
    o.inject(yatagarasu_testkit::Fault::status(403, "AccessDenied"), 10);
    assert_eq!(get(&url).await.0, 403);
    o.clear_faults();
    // The origin failing is what stale-if-error is for.
    o.inject(yatagarasu_testkit::Fault::status(503, "SlowDown"), 10);
    let (s, x, body) = get(&url).await;
    assert_eq!(
        (s, x.as_str(), &body[..]),
        (200, "STALE", &b"still here"[..])
    );
}

/// Two proxies sharing a Redis tier as a fleet (`fleet:` prefix), each with its own memory tier,
/// checking generations every `resync_seconds`; their base URLs and the proxies.
async fn fleet_pair(
    o: &TestOrigin,
    redis: &RedisServer,
    resync_seconds: u64,
) -> [(String, Proxy); 2] {
    let member = |name: &str| {
        format!(
            r#"
server: {{instance_id: {name}}}
buckets:
  - name: media
    path_prefix: /media
    s3: {{bucket: media, endpoint: "{ep}", access_key: AKIDCACHE, secret_key: cache-secret}}
cache:
  cache_layers: [memory, redis]
  redis: {{redis_url: "{url}", redis_key_prefix: "fleet:", fleet_resync_seconds: {resync_seconds}}}
metrics: {{enabled: true}}
"#,
            ep = o.endpoint(),
            url = redis.url()
        )
    };
    let mut out = Vec::new();
    for name in ["a", "b"] {
        let proxy = common::proxy_from_yaml(&member(name)).await;
        let fleet = proxy.fleet().unwrap().clone();
        common::wait_until("the fleet subscription comes up", || {
            fleet.stats().subscribed
        })
        .await;
        out.push((common::serve_on_loopback(proxy.clone()).await, proxy));
    }
    let [a, b]: [(String, Proxy); 2] = out.try_into().unwrap();
    [a, b]
}

/// A purge of the bucket whose message is lost on its way: its entries leave the shared tier and
/// its generation moves, but nothing is published.
async fn lose_a_purge_message(redis: &RedisServer) {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    for pattern in ["fleet:r*", "fleet:s*"] {
        let keys: Vec<Vec<u8>> = redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut c)
            .await
            .unwrap();
        if !keys.is_empty() {
            redis::cmd("DEL")
                .arg(keys)
                .query_async::<()>(&mut c)
                .await
                .unwrap();
        }
    }
    let scopes: Vec<String> = redis::cmd("HKEYS")
        .arg("fleet:fleet:generations")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(scopes.len(), 1, "one origin purged so far: {scopes:?}");
    redis::cmd("HINCRBY")
        .arg("fleet:fleet:generations")
        .arg(&scopes[0])
        .arg(1)
        .query_async::<()>(&mut c)
        .await
        .unwrap();
}

/// Wait until `proxy` has written `n` entries (records and slices) to Redis: they are written in
/// the background, and one landing after a simulated purge would bring old bytes back.
async fn redis_writes_done(proxy: &Proxy, n: u64) {
    common::wait_until("the Redis writes land", || {
        proxy
            .cache_stats()
            .unwrap()
            .iter()
            .any(|(tier, s)| *tier == "redis" && s.inserts >= n)
    })
    .await;
}

async fn body_of(url: &str) -> bytes::Bytes {
    reqwest::get(url).await.unwrap().bytes().await.unwrap()
}

#[tokio::test]
async fn a_fleet_member_that_missed_a_purge_message_drops_the_bucket_at_its_next_check() {
    let o = origin().await;
    let redis = RedisServer::start();
    o.put_object("media", "k1", b"one");
    o.put_object("media", "k2", b"two");
    let [(_, a), (b_url, b)] = fleet_pair(&o, &redis, 1).await;
    for k in ["k1", "k2"] {
        body_of(&format!("{b_url}/media/{k}")).await;
    }
    redis_writes_done(&b, 4).await;
    // A purge that arrives: k1 only.
    let report = a
        .purge(&yatagarasu::PurgeTarget::Object(
            "media".into(),
            "k1".into(),
        ))
        .await
        .unwrap();
    assert_eq!(report.fleet, Some(Ok(())));
    common::wait_until("b applies the purge", || {
        b.fleet().unwrap().stats().applied == 1
    })
    .await;
    assert_eq!(b.fleet().unwrap().stats().resynced_scopes, 0);
    // One that does not: at b's next generation check (a second) the whole bucket goes.
    o.put_object("media", "k2", b"two, purged");
    lose_a_purge_message(&redis).await;
    common::wait_until("b drops the bucket it can no longer trust", || {
        b.fleet().unwrap().stats().resynced_scopes == 1
    })
    .await;
    assert_eq!(body_of(&format!("{b_url}/media/k2")).await, "two, purged");
    common::assert_metrics(
        &b_url,
        &[
            r#"yatagarasu_fleet_purges_total{direction="applied"} 1"#,
            "yatagarasu_fleet_resynced_scopes_total 1",
            "yatagarasu_fleet_subscribed 1",
            r#"yatagarasu_instance_info{instance="b",version="0.1.0"} 1"#,
        ],
    )
    .await;
}

#[tokio::test]
async fn a_purge_message_after_a_lost_one_drops_the_whole_bucket_at_once() {
    let o = origin().await;
    let redis = RedisServer::start();
    o.put_object("media", "k1", b"one");
    o.put_object("media", "k2", b"two");
    // Generations checked hourly: only the gap in the messages can make b drop the bucket.
    let [(_, a), (b_url, b)] = fleet_pair(&o, &redis, 3600).await;
    body_of(&format!("{b_url}/media/k2")).await;
    redis_writes_done(&b, 2).await;
    let k1 = yatagarasu::PurgeTarget::Object("media".into(), "k1".into());
    a.purge(&k1).await.unwrap();
    common::wait_until("b applies the first purge", || {
        b.fleet().unwrap().stats().applied == 1
    })
    .await;
    o.put_object("media", "k2", b"two, purged");
    lose_a_purge_message(&redis).await;
    a.purge(&k1).await.unwrap();
    common::wait_until("b sees the gap", || {
        b.fleet().unwrap().stats().resynced_scopes == 1
    })
    .await;
    assert_eq!(body_of(&format!("{b_url}/media/k2")).await, "two, purged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_cluster_primary_killed_under_load_fails_no_request() {
    let o = origin().await;
    for i in 0..20 {
        o.put_pattern_object("media", &format!("o{i}"), 10_000 + i);
    }
    let mut cluster = yatagarasu_testkit::RedisCluster::start(3, 1);
    let nodes: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    let yaml = format!(
        r#"
buckets:
  - name: media
    path_prefix: /media
    s3: {{bucket: media, endpoint: "{ep}", access_key: AKIDCACHE, secret_key: cache-secret}}
cache:
  cache_layers: [redis]
  redis: {{cluster_nodes: [{nodes}], redis_key_prefix: "load:"}}
"#,
        ep = o.endpoint(),
        nodes = nodes.join(", ")
    );
    let base = common::serve_yaml(&yaml).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..8u64)
        .map(|w| {
            let (stop, done, failed, base) = (
                Arc::clone(&stop),
                Arc::clone(&done),
                Arc::clone(&failed),
                base.clone(),
            );
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut n = w;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let i = n % 20;
                    n += 1;
                    let r = tokio::time::timeout(
                        Duration::from_secs(20),
                        http.get(format!("{base}/media/o{i}")).send(),
                    )
                    .await;
                    let ok = match r {
                        Ok(Ok(r)) if r.status() == 200 => match r.bytes().await {
                            Ok(b) => {
                                b.len() as u64 == 10_000 + i
                                    && b.iter()
                                        .enumerate()
                                        .all(|(j, x)| *x == pattern_byte(j as u64))
                            }
                            Err(_) => false,
                        },
                        _ => false,
                    };
                    if !ok {
                        failed.lock().unwrap().push(i);
                    }
                    done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            })
        })
        .collect();
    let until = |n: u64| {
        let done = Arc::clone(&done);
        common::wait_until("the load run goes on", move || {
            done.load(std::sync::atomic::Ordering::SeqCst) >= n
        })
    };
    until(300).await;
    let primaries = cluster.primaries();
    cluster.kill(primaries[0]);
    let at_kill = done.load(std::sync::atomic::Ordering::SeqCst);
    until(at_kill + 600).await;
    cluster.wait_ok(Duration::from_secs(30));
    let at_recovery = done.load(std::sync::atomic::Ordering::SeqCst);
    until(at_recovery + 300).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    let failed = failed.lock().unwrap();
    eprintln!(
        "redis cluster primary killed under load: {} requests, {} failed",
        done.load(std::sync::atomic::Ordering::SeqCst),
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(10)]
    );
}

#[tokio::test]
async fn a_disk_record_damaged_after_it_was_served_is_refetched_not_served() {
    // The disk tier checks a record file once, then trusts it while it is unchanged: a file
    // replaced behind its back after a served hit must still be caught, and the client gets the
    // right bytes from the origin.
    let o = origin().await;
    o.put_pattern_object("media", "r.bin", 2 * SLICE + 5);
    let dir = tempfile::tempdir().unwrap();
    let disk = Arc::new(
        DiskTier::builder(dir.path(), 64 << 20)
            .max_item_bytes(16 << 20)
            .open()
            .await
            .unwrap(),
    );
    let (base, _stop) = proxy(&o, vec![disk.clone()]).await;
    let url = format!("{base}/media/r.bin");
    assert_eq!(get(&url).await.1, "MISS");
    let (s, x, body) = get(&url).await;
    assert_eq!((s, x.as_str()), (200, "HIT"));
    check(&body, 0);
    let before = o.stats().requests();
    let mut damaged = 0;
    for sub in std::fs::read_dir(dir.path().join("objects")).unwrap() {
        for f in std::fs::read_dir(sub.unwrap().path()).unwrap() {
            let path = f.unwrap().path();
            let mut bytes = std::fs::read(&path).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 0xff;
            let tmp = dir.path().join("damaged");
            std::fs::write(&tmp, &bytes).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
            damaged += 1;
        }
    }
    assert!(damaged >= 3, "one record per slice at least: {damaged}");
    let (s, _, body) = get(&url).await;
    assert_eq!(s, 200);
    assert_eq!(body.len() as u64, 2 * SLICE + 5);
    check(&body, 0);
    assert!(o.stats().requests() > before, "refetched from the origin");
    assert!(disk.stats().errors >= 1, "{:?}", disk.stats());
}
