//! Hostile and careless clients, over real sockets against an s3s-fs origin (SigV4 on): sockets
//! that send nothing or stop reading, huge cache directives, crafted cache records, confusable
//! cache keys and paths. Each test reproduces an attack that once worked.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use yatagarasu::{BucketRoute, Proxy, ServerOptions, serve};
use yatagarasu_s3::{Credentials, S3Client};
use yatagarasu_testkit::{Fault, TestOrigin};

async fn origin() -> TestOrigin {
    let o = TestOrigin::start("AKIDHARD", "hard-secret").await;
    o.create_bucket("media");
    o
}

fn client(o: &TestOrigin) -> S3Client {
    S3Client::builder("media")
        .endpoint(o.endpoint())
        .credentials(Credentials::new("AKIDHARD", "hard-secret"))
        .build()
        .unwrap()
}

/// A proxy serving `o`'s bucket `media` under `/media`, with `options`.
async fn start_media(o: &TestOrigin, options: ServerOptions) -> SocketAddr {
    start(
        Proxy::builder()
            .route(BucketRoute::new("media", "/media", client(o)))
            .build(),
        options,
    )
    .await
}

async fn start(proxy: Proxy, options: ServerOptions) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, proxy, options, std::future::pending()));
    addr
}

/// Sends one HTTP/1.1 request on a fresh connection and returns the status line's code.
async fn status_of(addr: SocketAddr, path: &str) -> u16 {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).await.unwrap();
    String::from_utf8_lossy(&head[9..12]).parse().unwrap()
}

/// Reads until the peer closes (EOF or reset); panics if that takes longer than `limit`.
async fn closed_within(s: &mut TcpStream, limit: Duration) {
    tokio::time::timeout(limit, async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("the proxy kept the connection open");
}

/// Sends a request head for `path` one byte every 50 ms (each well inside a 300 ms timeout; the
/// head never completes, over about 3 s): true when the proxy cut the connection meanwhile.
async fn trickled_head_is_cut(s: &mut TcpStream, path: &str) -> bool {
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nX-Slow: {}",
        "a".repeat(47)
    );
    let trickle = async {
        for b in head.as_bytes() {
            if s.write_all(&[*b]).await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    };
    tokio::time::timeout(Duration::from_secs(10), trickle)
        .await
        .unwrap()
}

fn quick_timeouts() -> ServerOptions {
    {
        let mut v = ServerOptions::default();
        v.max_connections = 4;
        v.header_read_timeout = Duration::from_millis(300);
        v.idle_timeout = Duration::from_millis(300);
        v.send_timeout = Duration::from_millis(300);
        v
    }
}

#[tokio::test]
async fn silent_and_half_preface_sockets_are_closed_and_free_their_slots() {
    let o = origin().await;
    let addr = start_media(&o, quick_timeouts()).await;
    // Every slot taken: two send nothing, one half an HTTP/2 preface, one half a request head.
    let mut hogs = Vec::new();
    for opening in [
        &b""[..],
        b"",
        b"PRI * HTTP/2.0\r\n",
        b"GET /health HTTP/1.1\r\nHo",
    ] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(opening).await.unwrap();
        hogs.push(s);
    }
    for s in &mut hogs {
        closed_within(s, Duration::from_secs(10)).await;
    }
    let answered = tokio::time::timeout(Duration::from_secs(10), status_of(addr, "/health")).await;
    assert_eq!(
        answered.expect("/health must be answered once the hogs are cut"),
        200
    );
}

#[tokio::test]
async fn a_trickled_request_head_does_not_keep_a_socket_alive() {
    let o = origin().await;
    let addr = start_media(&o, quick_timeouts()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    assert!(
        trickled_head_is_cut(&mut s, "/health").await,
        "a head trickled over 3 s outlived a 300 ms header timeout"
    );
}

#[tokio::test]
async fn a_trickled_head_after_a_first_request_is_cut_by_the_header_timeout_not_the_idle_one() {
    let o = origin().await;
    o.put_object("media", "k", b"value");
    let options = {
        let mut v = quick_timeouts();
        // Long enough that only the header timeout can end this within the test.
        v.idle_timeout = Duration::from_secs(60);
        v
    };
    let addr = start_media(&o, options).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /media/k HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // The second head, trickled: never complete, never idle.
    assert!(
        trickled_head_is_cut(&mut s, "/media/k").await,
        "a second head trickled over 3 s outlived a 300 ms header timeout"
    );
}

#[tokio::test]
async fn keep_alive_connections_close_when_idle() {
    let o = origin().await;
    o.put_object("media", "k", b"value");
    let addr = start_media(&o, quick_timeouts()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /media/k HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    closed_within(&mut s, Duration::from_secs(10)).await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_and_its_slot_freed() {
    let o = origin().await;
    o.put_pattern_object("media", "big", 32 * 1024 * 1024);
    let options = {
        let mut v = quick_timeouts();
        v.max_connections = 1;
        v
    };
    let addr = start_media(&o, options).await;
    // Asks for 32 MiB and reads nothing: socket buffers fill, then nothing moves.
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled
        .write_all(b"GET /media/big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answered = tokio::time::timeout(Duration::from_secs(15), status_of(addr, "/health")).await;
    assert_eq!(
        answered.expect("the only slot stayed with a client that does not read"),
        200
    );
    drop(stalled);
}

#[tokio::test]
async fn a_slow_origin_is_not_mistaken_for_a_slow_client() {
    let o = origin().await;
    o.put_object("media", "k", b"value");
    let addr = start_media(&o, quick_timeouts()).await;
    // The origin takes five send timeouts to answer: the request is ours to finish, not cut.
    o.inject(Fault::DelayHeaders(Duration::from_millis(1500)), 1);
    let status = tokio::time::timeout(Duration::from_secs(10), status_of(addr, "/media/k")).await;
    assert_eq!(status.unwrap(), 200);
}

#[tokio::test]
async fn the_admin_listener_cuts_silent_sockets_like_the_proxy() {
    let o = origin().await;
    let proxy = Proxy::builder()
        .route(BucketRoute::new("media", "/media", client(&o)))
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = {
        let mut v = quick_timeouts();
        v.max_connections = 1;
        v
    };
    let api = yatagarasu::AdminApi::new(proxy, "admin-token-0123456789");
    tokio::spawn(yatagarasu::serve_admin(
        listener,
        api,
        options,
        std::future::pending(),
    ));
    let mut silent = TcpStream::connect(addr).await.unwrap();
    closed_within(&mut silent, Duration::from_secs(10)).await;
    // The slot is free again: an unauthenticated call is answered (401), not left waiting.
    let answered =
        tokio::time::timeout(Duration::from_secs(10), status_of(addr, "/admin/stats")).await;
    assert_eq!(answered.unwrap(), 401);
}

#[tokio::test]
async fn huge_cache_control_values_are_clamped_not_a_panic() {
    use yatagarasu_cache::{CacheTier, DiskTier, MemoryTier, TieredCache};
    let o = origin().await;
    for (key, cc) in [
        ("max-age", "max-age=10000000000000000000"),
        (
            "swr",
            "max-age=0, stale-while-revalidate=18446744073709551615",
        ),
        (
            "sie",
            "s-maxage=99999999999999999999999, stale-if-error=18446744073709551615",
        ),
    ] {
        o.put_object_with(
            "media",
            key,
            b"value",
            &yatagarasu_testkit::ObjectAttributes {
                cache_control: Some(cc.into()),
                ..Default::default()
            },
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let tiers: Vec<std::sync::Arc<dyn CacheTier>> = vec![
        std::sync::Arc::new(MemoryTier::builder(1 << 20).max_item_bytes(1 << 20).build()),
        std::sync::Arc::new(
            DiskTier::builder(dir.path(), 1 << 20)
                .max_item_bytes(1 << 20)
                .open()
                .await
                .unwrap(),
        ),
    ];
    let proxy = Proxy::builder()
        .route(BucketRoute::new("media", "/media", client(&o)))
        .cache(TieredCache::new(tiers), Duration::from_secs(86_400))
        .build();
    let base = format!("http://{}", start(proxy, ServerOptions::default()).await);
    let http = reqwest::Client::new();
    for key in ["max-age", "swr", "sie"] {
        let url = format!("{base}/media/{key}");
        let head = http.head(&url).send().await.unwrap();
        assert_eq!(head.status(), 200, "{key}: HEAD");
        for _ in 0..2 {
            let r = http.get(&url).send().await.unwrap();
            assert_eq!(r.status(), 200, "{key}: GET");
            assert_eq!(r.bytes().await.unwrap(), "value");
        }
    }
    let r = http
        .get(format!("{base}/media/max-age"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["x-cache"],
        "HIT",
        "a year of freshness is still cached"
    );
}

fn client_for(o: &TestOrigin, bucket: &str) -> S3Client {
    S3Client::builder(bucket)
        .endpoint(o.endpoint())
        .credentials(Credentials::new("AKIDHARD", "hard-secret"))
        .build()
        .unwrap()
}

/// GETs `url` until the answer is a cache hit (bounded), returning the body.
async fn get_until_hit(http: &reqwest::Client, url: &str) -> bytes::Bytes {
    for _ in 0..200 {
        let r = http.get(url).send().await.unwrap();
        let hit = r.headers()["x-cache"] == "HIT";
        let body = r.bytes().await.unwrap();
        if hit {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{url} never became a cache hit");
}

#[tokio::test]
async fn cache_entries_belong_to_the_origin_not_the_route_name() {
    use std::sync::Arc;
    use yatagarasu_cache::{RedisOptions, RedisTier, TieredCache};
    let o = origin().await;
    o.create_bucket("other");
    o.put_object("media", "a.txt", b"from media");
    o.put_object("other", "a.txt", b"from other");
    let redis = yatagarasu_testkit::RedisServer::start();
    // Two deployments share one Redis with the default key prefix; each calls its route `media`.
    let shared = || {
        TieredCache::new(vec![Arc::new(
            RedisTier::new(RedisOptions::new(redis.url())).unwrap(),
        )])
    };
    let day = Duration::from_secs(86_400);
    let a = Proxy::builder()
        .route(BucketRoute::new("media", "/media", client_for(&o, "media")))
        .cache(shared(), day)
        .build();
    let b = Proxy::builder()
        .route(BucketRoute::new("media", "/media", client_for(&o, "other")))
        .cache(shared(), day)
        .build();
    let (base_a, base_b) = (
        format!(
            "http://{}",
            start(a.clone(), ServerOptions::default()).await
        ),
        format!("http://{}", start(b, ServerOptions::default()).await),
    );
    let http = reqwest::Client::new();
    assert_eq!(
        get_until_hit(&http, &format!("{base_a}/media/a.txt")).await,
        "from media"
    );
    let r = http
        .get(format!("{base_b}/media/a.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.bytes().await.unwrap(),
        "from other",
        "B served A's object"
    );

    // A's route re-pointed at the other bucket reads that bucket, not the old bucket's entries.
    a.replace_routes(vec![BucketRoute::new(
        "media",
        "/media",
        client_for(&o, "other"),
    )]);
    let r = http
        .get(format!("{base_a}/media/a.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.bytes().await.unwrap(),
        "from other",
        "a re-pointed route kept old entries"
    );
}

#[tokio::test]
async fn records_under_a_secret_reject_entries_written_without_it() {
    use std::sync::Arc;
    use yatagarasu_cache::{RecordCheck, RedisOptions, RedisTier, TieredCache};
    let o = origin().await;
    o.put_object("media", "a.txt", b"the real object");
    let redis = yatagarasu_testkit::RedisServer::start();
    let tier = |check: RecordCheck| {
        TieredCache::new(vec![Arc::new(
            RedisTier::new({
                let mut o = RedisOptions::new(redis.url());
                o.record_check = check;
                o
            })
            .unwrap(),
        )])
    };
    // A writer without the secret fills the shared Redis for the same origin and key; then the
    // object changes, so an entry it wrote would show as a stale body.
    let day = Duration::from_secs(86_400);
    let writer = Proxy::builder()
        .route(BucketRoute::new("media", "/media", client(&o)))
        .cache(tier(RecordCheck::Crc32), day)
        .build();
    let base_w = format!("http://{}", start(writer, ServerOptions::default()).await);
    let http = reqwest::Client::new();
    get_until_hit(&http, &format!("{base_w}/media/a.txt")).await;
    o.put_object("media", "a.txt", b"the new object");

    // A proxy with a secret does not trust those entries: it reads the origin.
    let reader = Proxy::builder()
        .route(BucketRoute::new("media", "/media", client(&o)))
        .cache(tier(RecordCheck::hmac("a secret of sixteen+")), day)
        .build();
    let base_r = format!("http://{}", start(reader, ServerOptions::default()).await);
    let r = http
        .get(format!("{base_r}/media/a.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-cache"], "MISS");
    assert_eq!(r.bytes().await.unwrap(), "the new object");
}

#[tokio::test]
async fn an_encoded_prefix_routes_to_its_own_bucket() {
    let o = origin().await;
    o.create_bucket("other");
    o.put_object("media", "a.txt", b"from media");
    o.put_object("other", "media/a.txt", b"from the root bucket");
    let proxy = Proxy::builder()
        .route(BucketRoute::new("media", "/media", client_for(&o, "media")))
        .route(BucketRoute::new("root", "/", client_for(&o, "other")))
        .build();
    let base = format!("http://{}", start(proxy, ServerOptions::default()).await);
    for path in ["/media/a.txt", "/medi%61/a.txt", "/%6d%65%64%69%61/a.txt"] {
        let r = reqwest::get(format!("{base}{path}")).await.unwrap();
        assert_eq!(r.bytes().await.unwrap(), "from media", "{path}");
    }
}

#[tokio::test]
async fn origin_error_messages_stay_in_the_log() {
    let o = origin().await;
    o.put_object("media", "k", b"v");
    let proxy = Proxy::builder()
        .route(BucketRoute::new("media", "/media", client(&o)))
        .ready_cache(Duration::ZERO)
        .build();
    let base = format!("http://{}", start(proxy, ServerOptions::default()).await);
    // The origin's message names an account and a role (as AWS AccessDenied messages do).
    o.inject(Fault::status(403, "AccessDenied"), 10);
    let r = reqwest::get(format!("{base}/media/k")).await.unwrap();
    assert_eq!(r.status(), 403);
    let body = r.text().await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "AccessDenied");
    assert!(
        !body.contains("arn:aws") && !body.contains("123456789012"),
        "{body}"
    );
    o.clear_faults();

    o.inject(Fault::status(403, "AccessDenied"), 10);
    let r = reqwest::get(format!("{base}/ready")).await.unwrap();
    assert_eq!(r.status(), 503);
    let body = r.text().await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["buckets"]["media"]["ready"], false);
    assert_eq!(v["buckets"]["media"]["code"], "AccessDenied");
    assert!(
        !body.contains("arn:aws") && !body.contains("123456789012"),
        "{body}"
    );
}

/// Waits (bounded) until the origin has sent no body byte for 100 ms.
async fn origin_quiet(o: &TestOrigin) {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let before = o.stats().body_bytes();
            tokio::time::sleep(Duration::from_millis(100)).await;
            if o.stats().body_bytes() == before {
                break;
            }
        }
    })
    .await
    .expect("the origin goes quiet once no client reads");
}

/// Sends a GET, reads its status line and a little more, waits `hold`, hangs up.
async fn get_and_hang_up(addr: SocketAddr, path: &str, hold: Duration) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).await.unwrap();
    assert_eq!(&head[9..12], b"200");
    tokio::time::sleep(hold).await;
    drop(s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_requests_stop_pulling_from_the_origin() {
    const MIB: u64 = 1024 * 1024;
    let o = origin().await;
    let rounds = 20u64;
    for i in 0..rounds {
        o.put_sparse_object(
            "media",
            &format!("big{i}.bin"),
            48 * MIB,
            &format!("big-v{i}"),
        );
    }
    let proxy = Proxy::builder()
        .fetch_options({
            let mut v = yatagarasu::FetchOptions::default();
            v.slice_size = MIB;
            v
        })
        .route(BucketRoute::new("media", "/media", client(&o)))
        .build();
    let addr = start(proxy.clone(), ServerOptions::default()).await;
    // Each its own object, so no request joins another's fetch. What the origin sends after the
    // client hung up is the waste: at most the slice in progress and the read-ahead request.
    let mut after_hang_up = 0;
    for i in 0..rounds {
        get_and_hang_up(
            addr,
            &format!("/media/big{i}.bin"),
            Duration::from_millis(50),
        )
        .await;
        let at_hang_up = o.stats().body_bytes();
        origin_quiet(&o).await;
        after_hang_up += o.stats().body_bytes() - at_hang_up;
    }
    let total = o.stats().body_bytes();
    eprintln!(
        "origin bytes per request abandoned after 50 ms: {} in all, {} after the hang-up",
        total / rounds,
        after_hang_up / rounds
    );
    assert!(
        after_hang_up / rounds <= 2 * MIB + 256 * 1024,
        "{} bytes per request after the client left",
        after_hang_up / rounds
    );
    assert_eq!(proxy.coalescing_stats().objects.started, rounds);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_reader_never_aborts_slower_ones() {
    const MIB: u64 = 1024 * 1024;
    let len = 32 * MIB;
    let o = origin().await;
    o.put_pattern_object("media", "shared.bin", len);
    let proxy = Proxy::builder()
        .fetch_options({
            let mut v = yatagarasu::FetchOptions::default();
            v.slice_size = 256 * 1024;
            v.buffer_bytes = MIB as usize;
            v
        })
        .route(BucketRoute::new("media", "/media", client(&o)))
        .build();
    let base = format!(
        "http://{}",
        start(proxy.clone(), ServerOptions::default()).await
    );
    let url = format!("{base}/media/shared.bin");
    let expected: std::sync::Arc<Vec<u8>> =
        std::sync::Arc::new((0..len).map(yatagarasu_testkit::pattern_byte).collect());
    // One reader as fast as it can, two that pause after every chunk: they fall far out of the
    // shared window (1 MiB) and must go on with their own reads, not be aborted.
    let read = |pause: Option<Duration>| {
        let url = url.clone();
        let expected = std::sync::Arc::clone(&expected);
        tokio::spawn(async move {
            let r = reqwest::get(&url).await.unwrap();
            assert_eq!(r.status(), 200);
            let mut body = r.bytes_stream();
            let mut at = 0u64;
            while let Some(chunk) = futures_util::StreamExt::next(&mut body).await {
                let chunk = chunk.expect("the body is never cut");
                let from = usize::try_from(at).unwrap();
                assert!(
                    expected.get(from..from + chunk.len()) == Some(&chunk[..]),
                    "bytes from {at} differ"
                );
                at += chunk.len() as u64;
                if let Some(per_8k) = pause {
                    // A reader of about 4 MB/s: well below the origin even on a loaded machine, so it
                    // drifts out of the 1 MiB window despite what socket buffers absorb.
                    tokio::time::sleep(per_8k * u32::try_from(chunk.len() / 8192).unwrap()).await;
                }
            }
            at
        })
    };
    let readers = [
        read(None),
        read(Some(Duration::from_millis(2))),
        read(Some(Duration::from_millis(2))),
    ];
    for r in readers {
        let got = tokio::time::timeout(Duration::from_secs(60), r)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, len);
    }
    assert!(
        proxy.coalescing_stats().resumed >= 1,
        "{:?}",
        proxy.coalescing_stats()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_reset_before_the_answer_cost_no_origin_body() {
    const MIB: u64 = 1024 * 1024;
    const STREAMS: u64 = 50;
    let o = origin().await;
    for i in 0..STREAMS {
        o.put_sparse_object("media", &format!("o{i}.bin"), 16 * MIB, &format!("v{i}"));
    }
    let proxy = Proxy::builder()
        .fetch_options({
            let mut v = yatagarasu::FetchOptions::default();
            v.slice_size = MIB;
            v
        })
        .route(BucketRoute::new("media", "/media", client(&o)))
        .build();
    let base = format!(
        "http://{}",
        start(proxy.clone(), ServerOptions::default()).await
    );
    // The origin holds its answers until the clients have reset their streams.
    o.inject(Fault::Hold, STREAMS as usize);
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let streams: Vec<_> = (0..STREAMS)
        .map(|i| tokio::spawn(h2.get(format!("{base}/media/o{i}.bin")).send()))
        .collect();
    tokio::time::timeout(Duration::from_secs(10), async {
        while o.stats().gets() < STREAMS {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("every stream reached the origin");
    for s in &streams {
        s.abort(); // HEADERS, then RST_STREAM
    }
    // Every shared fetch notices nobody waits and drops its origin request.
    tokio::time::timeout(Duration::from_secs(10), async {
        while proxy.coalescing_stats().objects.failed < STREAMS {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the abandoned fetches end");
    o.release_held();
    origin_quiet(&o).await;
    let sent = o.stats().body_bytes();
    eprintln!("origin body bytes for {STREAMS} reset streams: {sent}");
    assert!(
        sent <= STREAMS * 256 * 1024,
        "{sent} origin bytes for {STREAMS} reset streams"
    );
}
