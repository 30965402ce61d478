//! The proxy end to end: real sockets on 127.0.0.1, the proxy served by `serve`, two s3s-fs origins
//! with SigV4 verification on and different credentials, requests from an HTTP client.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use yatagarasu::{BucketRoute, Proxy, ServerOptions, serve};
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
    let route = |name: &str, prefix: &str, o: &TestOrigin, ak: &str, sk: &str| BucketRoute {
        name: name.into(),
        path_prefix: prefix.into(),
        client: S3Client::builder(name)
            .endpoint(o.endpoint())
            .credentials(Credentials::new(ak, sk))
            .build()
            .unwrap(),
        expose_user_metadata: false,
        cors: None,
    };
    let proxy = Proxy::builder()
        .route(route(
            "media",
            "/media",
            &media,
            "AKIDMEDIA",
            "media-secret",
        ))
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
    tokio::spawn(serve(listener, proxy, ServerOptions::default(), async {
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
