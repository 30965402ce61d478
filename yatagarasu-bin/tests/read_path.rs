//! The proxy end to end: real sockets on 127.0.0.1, the proxy served by `serve`, two s3s-fs origins
//! with SigV4 verification on and different credentials, requests from an HTTP client.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use yatagarasu::config::CorsConfig;
use yatagarasu::{BucketRoute, CorsPolicy, Proxy, ServerOptions, serve};
use yatagarasu_s3::{Credentials, S3Client};
use yatagarasu_testkit::{ObjectAttributes, TestOrigin, pattern_byte};

struct Harness {
    base: String,
    media: TestOrigin,
    _private: TestOrigin,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn harness() -> Harness {
    let media = TestOrigin::start("AKIDMEDIA", "media-secret").await;
    media.create_bucket("media");
    let private = TestOrigin::start("AKIDPRIVATE", "private-secret").await;
    private.create_bucket("vault");
    private.put_object("vault", "report.txt", b"private bytes");
    let route = |name: &str, prefix: &str, o: &TestOrigin, ak: &str, sk: &str| {
        BucketRoute::new(
            name,
            prefix,
            S3Client::builder(name)
                .endpoint(o.endpoint())
                .credentials(Credentials::new(ak, sk))
                .build()
                .unwrap(),
        )
    };
    let mut media_route = route("media", "/media", &media, "AKIDMEDIA", "media-secret");
    media_route.cors = Some(
        CorsPolicy::from_config(&{
            let mut cors = CorsConfig::default();
            cors.allowed_origins = vec!["https://app.example".into()];
            cors.allowed_headers = vec!["range".into()];
            cors.expose_headers = vec!["etag".into(), "content-range".into()];
            cors.max_age_seconds = Some(600);
            cors
        })
        .unwrap(),
    );
    let proxy = Proxy::builder()
        .max_uri_bytes(1024)
        .route(media_route)
        .route(route(
            "vault",
            "/media/private",
            &private,
            "AKIDPRIVATE",
            "private-secret",
        ))
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let options = {
        let mut v = ServerOptions::default();
        v.max_headers = 20;
        v.max_header_bytes = 8192;
        v
    };
    tokio::spawn(serve(listener, proxy, options, async {
        let _ = rx.await;
    }));
    Harness {
        base,
        media,
        _private: private,
        _stop: tx,
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Send a request with an exact request-target (no client-side normalisation) and return the status.
async fn raw_status(base: &str, target: &str) -> u16 {
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn routes_two_buckets_with_their_own_credentials() {
    let h = harness().await;
    h.media.put_object("media", "a.txt", b"public bytes");
    let c = http();
    let r = c
        .get(format!("{}/media/a.txt", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "public bytes");
    let r = c
        .get(format!("{}/media/private/report.txt", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "longest prefix wins");
    assert_eq!(r.text().await.unwrap(), "private bytes");
    // `/mediaX` is not under `/media`.
    let r = c
        .get(format!("{}/mediaX/a.txt", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn keys_with_spaces_unicode_and_plus() {
    let h = harness().await;
    let c = http();
    for (key, path) in [
        ("with space.txt", "with%20space.txt"),
        ("plus+sign.txt", "plus+sign.txt"),
        ("plus+encoded.txt", "plus%2Bencoded.txt"),
        (
            "日本語/ファイル.txt",
            "%E6%97%A5%E6%9C%AC%E8%AA%9E/%E3%83%95%E3%82%A1%E3%82%A4%E3%83%AB.txt",
        ),
        ("percent%20literal", "percent%2520literal"),
    ] {
        h.media.put_object("media", key, key.as_bytes());
        let r = c
            .get(format!("{}/media/{path}", h.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{key}");
        assert_eq!(r.text().await.unwrap(), key);
    }
}

#[tokio::test]
async fn traversal_attempts_get_400() {
    let h = harness().await;
    h.media.put_object("media", "a.txt", b"x");
    for target in [
        "/media/../media/a.txt",
        "/media/%2e%2e/secret",
        "/media/a%2Fb",
        "/media/a%00b",
        "/media/./a.txt",
    ] {
        assert_eq!(raw_status(&h.base, target).await, 400, "{target}");
    }
}

#[tokio::test]
async fn errors_are_json_with_request_id() {
    let h = harness().await;
    let c = http();
    let r = c
        .get(format!("{}/media/missing.txt", h.base))
        .header("x-request-id", "client-id-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["x-request-id"], "client-id-123");
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v["error"]["code"], "NoSuchKey");
    assert_eq!(v["error"]["bucket"], "media");
    assert_eq!(v["error"]["key"], "missing.txt");
    assert_eq!(v["error"]["request_id"], "client-id-123");

    // A malformed request id is replaced.
    let r = c
        .get(format!("{}/media/missing.txt", h.base))
        .header("x-request-id", "bad id!")
        .send()
        .await
        .unwrap();
    assert_ne!(r.headers()["x-request-id"], "bad id!");

    let r = c
        .delete(format!("{}/media/a.txt", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, HEAD, OPTIONS");
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v["error"]["code"], "MethodNotAllowed");
    assert_eq!(
        h.media.stats().requests(),
        2,
        "405 never reaches the origin"
    );
}

#[tokio::test]
async fn head_and_response_headers() {
    let h = harness().await;
    h.media.put_object_with(
        "media",
        "doc.pdf",
        b"%PDF-1.7 ...",
        &ObjectAttributes {
            content_type: Some("application/pdf".into()),
            cache_control: Some("max-age=300".into()),
            content_disposition: Some("attachment; filename=\"doc.pdf\"".into()),
            content_encoding: None,
            user_metadata: vec![("secret-owner".into(), "alice".into())],
        },
    );
    let c = http();
    for method in [reqwest::Method::HEAD, reqwest::Method::GET] {
        let r = c
            .request(method.clone(), format!("{}/media/doc.pdf", h.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let hd = r.headers();
        assert_eq!(hd["content-length"], "12", "{method}");
        assert_eq!(hd["content-type"], "application/pdf");
        assert_eq!(hd["cache-control"], "max-age=300");
        assert_eq!(
            hd["content-disposition"],
            "attachment; filename=\"doc.pdf\""
        );
        assert_eq!(hd["accept-ranges"], "bytes");
        assert!(hd.contains_key("etag") && hd.contains_key("last-modified"));
        assert!(
            !hd.contains_key("x-amz-meta-secret-owner"),
            "user metadata only when allowed"
        );
        assert!(
            !hd.keys().any(|k| k.as_str().starts_with("x-amz-")),
            "no upstream internals"
        );
        assert!(!hd.contains_key("server"));
    }
}

#[tokio::test]
async fn every_range_form() {
    let h = harness().await;
    let data: Vec<u8> = (0..1000u32).map(|i| pattern_byte(u64::from(i))).collect();
    h.media.put_object("media", "r.bin", &data);
    let c = http();
    let url = format!("{}/media/r.bin", h.base);
    let cases: [(&str, u16, Option<&str>, std::ops::Range<usize>); 8] = [
        ("bytes=0-99", 206, Some("bytes 0-99/1000"), 0..100),
        ("bytes=900-", 206, Some("bytes 900-999/1000"), 900..1000),
        ("bytes=-10", 206, Some("bytes 990-999/1000"), 990..1000),
        ("bytes=0-999", 206, Some("bytes 0-999/1000"), 0..1000),
        (
            "bytes=500-99999",
            206,
            Some("bytes 500-999/1000"),
            500..1000,
        ),
        ("bytes=0-9,10-19", 206, Some("bytes 0-19/1000"), 0..20),
        ("bytes=0-9,500-509", 200, None, 0..1000),
        ("garbage", 200, None, 0..1000),
    ];
    for (range, status, content_range, want) in cases {
        let r = c.get(&url).header("range", range).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{range}");
        assert_eq!(
            r.headers()
                .get("content-range")
                .map(|v| v.to_str().unwrap()),
            content_range,
            "{range}"
        );
        assert_eq!(r.bytes().await.unwrap(), &data[want], "{range}");
    }
    let r = c
        .get(&url)
        .header("range", "bytes=1000-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["content-range"], "bytes */1000");
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v["error"]["code"], "InvalidRange");
}

#[tokio::test]
async fn conditional_requests_are_evaluated_by_the_proxy() {
    let h = harness().await;
    h.media.put_object("media", "c.txt", b"conditional");
    let c = http();
    let url = format!("{}/media/c.txt", h.base);
    let first = c.get(&url).send().await.unwrap();
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let last_modified = first.headers()["last-modified"]
        .to_str()
        .unwrap()
        .to_owned();

    let r = c
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(r.headers()["etag"], etag.as_str());
    assert!(r.bytes().await.unwrap().is_empty());
    let r = c
        .get(&url)
        .header("if-modified-since", &last_modified)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = c
        .head(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = c
        .get(&url)
        .header("if-match", "\"not-it\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412);
    let r = c
        .get(&url)
        .header("if-unmodified-since", "Sun, 06 Nov 1994 08:49:37 GMT")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412);
    let r = c.get(&url).header("if-match", &etag).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "conditional");
    // If-Range: a current validator honours the Range, a stale one gets the whole object.
    let r = c
        .get(&url)
        .header("range", "bytes=0-3")
        .header("if-range", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    let r = c
        .get(&url)
        .header("range", "bytes=0-3")
        .header("if-range", "\"old\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "conditional");
}

#[tokio::test]
async fn health_and_options() {
    let h = harness().await;
    let c = http();
    let r = c.get(format!("{}/health", h.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .request(reqwest::Method::OPTIONS, format!("{}/media/x", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["allow"], "GET, HEAD, OPTIONS");
}

#[tokio::test]
async fn cors_preflight_and_actual_responses() {
    let h = harness().await;
    h.media.put_object("media", "app.js", b"console.log(1)");
    let c = http();
    let url = format!("{}/media/app.js", h.base);
    let r = c
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "https://app.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "Range")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(r.headers()["access-control-allow-methods"], "GET, HEAD");
    assert_eq!(r.headers()["access-control-max-age"], "600");
    let r = c
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(!r.headers().contains_key("access-control-allow-origin"));

    let r = c
        .get(&url)
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(
        r.headers()["access-control-expose-headers"],
        "etag, content-range"
    );
    assert_eq!(r.headers()["vary"], "Origin");
    // Errors carry CORS headers too, so scripts can read the JSON.
    let r = c
        .get(format!("{}/media/missing", h.base))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    // Another bucket without CORS sends none.
    let r = c
        .get(format!("{}/media/private/report.txt", h.base))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert!(!r.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn h2c_prior_knowledge_is_served() {
    let h = harness().await;
    h.media.put_pattern_object("media", "h2.bin", 300_000);
    let c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = c
        .get(format!("{}/media/h2.bin", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.unwrap();
    assert_eq!(body.len(), 300_000);
    assert!(
        body.iter()
            .enumerate()
            .all(|(i, b)| *b == pattern_byte(i as u64))
    );
}

#[tokio::test]
async fn request_limits() {
    let h = harness().await;
    let c = http();
    let long = "a".repeat(2000);
    let r = c
        .get(format!("{}/media/{long}", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 414);
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v["error"]["code"], "UriTooLong");
    let mut req = c.get(format!("{}/media/x", h.base));
    for i in 0..40 {
        req = req.header(format!("x-filler-{i}"), "v");
    }
    assert_eq!(req.send().await.unwrap().status(), 431, "too many headers");
    let r = c
        .get(format!("{}/media/x", h.base))
        .header("x-big", "v".repeat(10_000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431, "header section too large");
    assert_eq!(
        h.media.stats().requests(),
        0,
        "rejected requests never reach the origin"
    );
}

#[tokio::test]
async fn origin_failing_mid_object_aborts_the_response() {
    let h = harness().await;
    h.media
        .put_pattern_object("media", "fragile.bin", 2_000_000);
    // One break more than the client's resume budget (3).
    h.media
        .inject(yatagarasu_testkit::Fault::BreakBodyAfter(300_000), 4);
    let r = http()
        .get(format!("{}/media/fragile.bin", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.content_length(), Some(2_000_000));
    let err = r
        .bytes()
        .await
        .expect_err("a truncated body must not look complete");
    assert!(
        err.is_body() || err.is_decode() || err.is_request(),
        "{err}"
    );

    // With one break, the proxy resumes and the client never notices.
    h.media
        .inject(yatagarasu_testkit::Fault::BreakBodyAfter(300_000), 1);
    let body = http()
        .get(format!("{}/media/fragile.bin", h.base))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body.len(), 2_000_000);
    assert!(
        body.iter()
            .enumerate()
            .all(|(i, b)| *b == pattern_byte(i as u64))
    );
}

#[tokio::test]
async fn origin_errors_map_to_statuses() {
    let h = harness().await;
    h.media.put_object("media", "k", b"v");
    let c = http();
    let url = format!("{}/media/k", h.base);
    h.media
        .inject(yatagarasu_testkit::Fault::status(403, "AccessDenied"), 1);
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v["error"]["code"], "AccessDenied");
    h.media
        .inject(yatagarasu_testkit::Fault::status(500, "InternalError"), 3);
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let body = String::from_utf8(r.bytes().await.unwrap().to_vec()).unwrap();
    assert!(
        !body.contains("<Error>"),
        "S3 XML never passes through: {body}"
    );
    // HEAD errors keep the status and carry no body.
    let r = c
        .head(format!("{}/media/missing", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn clients_leaving_mid_body_do_not_disturb_others() {
    let h = harness().await;
    h.media.put_pattern_object("media", "big.bin", 8_000_000);
    let url = format!("{}/media/big.bin", h.base);
    for _ in 0..5 {
        let r = http().get(&url).send().await.unwrap();
        let mut s = r.bytes_stream();
        let _ = futures_util::StreamExt::next(&mut s).await;
        drop(s); // hang up after the first chunk
    }
    let body = http()
        .get(&url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body.len(), 8_000_000);
}

#[tokio::test]
async fn connection_limit_holds_new_connections_until_one_closes() {
    let origin = TestOrigin::start("AKIDLIMIT", "limit-secret").await;
    origin.create_bucket("media");
    origin.put_object("media", "k", b"v");
    let proxy = Proxy::builder()
        .route(BucketRoute::new(
            "media",
            "/media",
            S3Client::builder("media")
                .endpoint(origin.endpoint())
                .credentials(Credentials::new("AKIDLIMIT", "limit-secret"))
                .build()
                .unwrap(),
        ))
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = {
        let mut v = ServerOptions::default();
        v.max_connections = 1;
        v
    };
    tokio::spawn(serve(listener, proxy, options, std::future::pending()));
    let request = b"GET /media/k HTTP/1.1\r\nHost: x\r\n\r\n";

    // Connection A is served and stays open (keep-alive).
    let mut a = tokio::net::TcpStream::connect(addr).await.unwrap();
    a.write_all(request).await.unwrap();
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), a.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    // Connection B waits in the accept queue while A holds the only slot.
    let mut b = tokio::net::TcpStream::connect(addr).await.unwrap();
    b.write_all(request).await.unwrap();
    let waited = tokio::time::timeout(Duration::from_millis(500), b.read(&mut buf)).await;
    assert!(waited.is_err(), "B must not be served while A is open");

    // Closing A frees the slot and B is answered.
    drop(a);
    let n = tokio::time::timeout(Duration::from_secs(10), b.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn proxy_credentials_rejected_is_403_and_origin_timeout_is_504() {
    let origin = TestOrigin::start("AKIDREAL", "real-secret").await;
    origin.create_bucket("media");
    origin.put_object("media", "k", b"v");
    let client = |secret: &str, first_byte: Duration| {
        S3Client::builder("media")
            .endpoint(origin.endpoint())
            .credentials(Credentials::new("AKIDREAL", secret))
            .timeouts(yatagarasu_s3::Timeouts::default().with_first_byte(first_byte))
            .retry_policy(yatagarasu_s3::RetryPolicy::none())
            .build()
            .unwrap()
    };
    let route = |name: &str, prefix: &str, c: S3Client| BucketRoute::new(name, prefix, c);
    let proxy = Proxy::builder()
        .route(route(
            "wrong",
            "/wrong",
            client("not-the-secret", Duration::from_secs(30)),
        ))
        .route(route(
            "slow",
            "/slow",
            client("real-secret", Duration::from_millis(300)),
        ))
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(
        listener,
        proxy,
        ServerOptions::default(),
        std::future::pending(),
    ));

    let r = http().get(format!("{base}/wrong/k")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v["error"]["code"], "SignatureDoesNotMatch");
    assert!(!v.to_string().contains("not-the-secret"));

    origin.inject(
        yatagarasu_testkit::Fault::DelayHeaders(Duration::from_secs(10)),
        1,
    );
    let r = http().get(format!("{base}/slow/k")).send().await.unwrap();
    assert_eq!(r.status(), 504);
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v["error"]["code"], "UpstreamTimeout");
}
