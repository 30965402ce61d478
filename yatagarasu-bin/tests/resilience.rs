//! Origin resilience end to end, proxies built from config in front of s3s-fs origins: the circuit
//! breaker (the origin stopped, replaced by a socket that accepts and never answers, and started
//! again on the same port) and per-bucket retry policies against injected 503s.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use yatagarasu_testkit::TestOrigin;

/// Bind 127.0.0.1:`port` once the stopped origin has let go of it (bounded).
async fn bind_when_free(port: u16) -> tokio::net::TcpListener {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => return l,
            Err(e) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "port {port} stays taken: {e}"
                );
                tokio::task::yield_now().await;
            }
        }
    }
}

struct Answer {
    status: u16,
    code: Option<String>,
    retry_after: Option<u64>,
}

async fn get(http: &reqwest::Client, url: &str) -> Answer {
    let r = tokio::time::timeout(Duration::from_secs(20), http.get(url).send())
        .await
        .expect("no request hangs")
        .unwrap();
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let body = r.bytes().await.unwrap();
    let code = (status >= 400).then(|| {
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        v["error"]["code"].as_str().unwrap().to_owned()
    });
    Answer {
        status,
        code,
        retry_after,
    }
}

#[tokio::test]
async fn a_dead_origin_opens_the_breaker_which_fails_fast_and_closes_after_recovery() {
    let root = tempfile::tempdir().unwrap();
    let origin = TestOrigin::start_in(root.path(), "AKIDCB", "cb-secret", 0).await;
    origin.create_bucket("media");
    origin.put_object("media", "a.txt", b"still here");
    let port = origin.addr().port();
    let yaml = format!(
        r#"
buckets:
  - name: media
    path_prefix: /media
    s3:
      bucket: media
      endpoint: "{ep}"
      access_key: AKIDCB
      secret_key: cb-secret
      max_attempts: 1
      circuit_breaker: {{failure_threshold: 3, success_threshold: 1, timeout_seconds: 3, half_open_max_requests: 1}}
metrics: {{enabled: true}}
"#,
        ep = origin.endpoint()
    );
    let base = common::serve_yaml(&yaml).await;
    let url = format!("{base}/media/a.txt");
    let http = reqwest::Client::new();
    assert_eq!(get(&http, &url).await.status, 200);

    // The origin dies: three faults (connection refused), then the breaker is open.
    origin.stop();
    let hung = bind_when_free(port).await;
    drop(hung); // refused from here on
    for _ in 0..3 {
        let a = get(&http, &url).await;
        assert_eq!(
            (a.status, a.code.as_deref()),
            (503, Some("ServiceUnavailable"))
        );
    }
    // /ready names the breaker's state (its probe bypasses the breaker).
    let ready = http
        .get(format!("{base}/ready"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let ready: serde_json::Value = serde_json::from_slice(&ready).unwrap();
    assert_eq!(ready["buckets"]["media"]["breaker"], "open", "{ready}");
    // While open, a hung origin on the port is never even connected to: requests fail at once,
    // with CircuitOpen and a Retry-After.
    let hung = bind_when_free(port).await;
    let accepted = Arc::new(AtomicUsize::new(0));
    let counting = Arc::clone(&accepted);
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hung.accept().await {
            counting.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    let mut wait = 0;
    for _ in 0..20 {
        let a = get(&http, &url).await;
        assert_eq!((a.status, a.code.as_deref()), (503, Some("CircuitOpen")));
        wait = a.retry_after.expect("a Retry-After header");
        assert!((1..=3).contains(&wait), "Retry-After: {wait}");
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "no connection while open"
    );
    // Operators see it: /metrics counts it.
    common::assert_metrics(
        &base,
        &[
            r#"yatagarasu_origin_breaker_state{bucket="media",state="open"} 1"#,
            r#"yatagarasu_origin_breaker_state{bucket="media",state="closed"} 0"#,
            r#"yatagarasu_origin_breaker_opened_total{bucket="media"} 1"#,
            r#"yatagarasu_origin_breaker_rejected_total{bucket="media"} 20"#,
        ],
    )
    .await;
    hold.abort();
    let _ = hold.await;

    // The origin comes back on the same port; after Retry-After one probe goes through, succeeds
    // and closes the breaker.
    let _back = TestOrigin::start_in(root.path(), "AKIDCB", "cb-secret", port).await;
    // A client doing what Retry-After says: by then the open time is over (it is rounded up).
    tokio::time::sleep(Duration::from_secs(wait)).await;
    assert_eq!(
        get(&http, &url).await.status,
        200,
        "the probe reached the origin"
    );
    for _ in 0..5 {
        assert_eq!(get(&http, &url).await.status, 200);
    }
}

#[tokio::test]
async fn answers_that_are_not_faults_never_open_the_breaker() {
    let origin = TestOrigin::start("AKIDCB", "cb-secret").await;
    origin.create_bucket("media");
    origin.put_object("media", "a.txt", b"here");
    let yaml = format!(
        r#"
buckets:
  - name: media
    path_prefix: /media
    s3:
      bucket: media
      endpoint: "{ep}"
      access_key: AKIDCB
      secret_key: cb-secret
      circuit_breaker: {{failure_threshold: 2, timeout_seconds: 60}}
"#,
        ep = origin.endpoint()
    );
    let base = common::serve_yaml(&yaml).await;
    let http = reqwest::Client::new();
    // 404s, a 412 and a 416 are the origin answering: ten of them leave the breaker closed.
    for i in 0..10 {
        let a = get(&http, &format!("{base}/media/missing-{i}.txt")).await;
        assert_eq!(a.status, 404);
    }
    let r = http
        .get(format!("{base}/media/a.txt"))
        .header("if-match", "\"nope\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412);
    let r = http
        .get(format!("{base}/media/a.txt"))
        .header("range", "bytes=100-200")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(get(&http, &format!("{base}/media/a.txt")).await.status, 200);
}

#[tokio::test]
async fn each_bucket_retries_as_its_retry_section_says() {
    let origin = TestOrigin::start("AKIDCB", "cb-secret").await;
    origin.create_bucket("media");
    origin.put_object("media", "a.txt", b"after retries");
    let bucket = |name: &str, retry: &str| {
        format!(
            "  - name: {name}\n    path_prefix: /{name}\n    s3: {{bucket: media, endpoint: \"{}\", access_key: AKIDCB, secret_key: cb-secret, retry: {retry}}}\n",
            origin.endpoint()
        )
    };
    let yaml = format!(
        "buckets:\n{}{}",
        bucket(
            "patient",
            "{max_attempts: 4, initial_backoff_ms: 1, max_backoff_ms: 5}"
        ),
        bucket("hasty", "{max_attempts: 1}")
    );
    let base = common::serve_yaml(&yaml).await;
    let http = reqwest::Client::new();
    // Three 503s in a row: four attempts get through, one does not.
    origin.inject(
        yatagarasu_testkit::Fault::status(503, "ServiceUnavailable"),
        3,
    );
    let before = origin.stats().gets();
    assert_eq!(
        get(&http, &format!("{base}/patient/a.txt")).await.status,
        200
    );
    assert_eq!(origin.stats().gets() - before, 4);
    origin.inject(
        yatagarasu_testkit::Fault::status(503, "ServiceUnavailable"),
        1,
    );
    let before = origin.stats().gets();
    let a = get(&http, &format!("{base}/hasty/a.txt")).await;
    assert_eq!(a.status, 503);
    assert_eq!(origin.stats().gets() - before, 1);
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after_per_client_per_bucket_and_in_metrics() {
    let origin = TestOrigin::start("AKIDCB", "cb-secret").await;
    origin.create_bucket("media");
    origin.put_object("media", "a.txt", b"limited");
    // Per client: 3 at once, then one a minute; the forwarded address counts (trusted proxy).
    // Bucket `slow`: 2 at once for everyone, then one a minute.
    let yaml = format!(
        r#"
server:
  trusted_proxies: [127.0.0.1/32]
  rate_limit:
    enabled: true
    per_ip: {{requests_per_second: 0.0167, burst: 3}}
    global: {{requests_per_second: 10000, burst: 10000}}
buckets:
  - name: media
    path_prefix: /media
    s3: {{bucket: media, endpoint: "{ep}", access_key: AKIDCB, secret_key: cb-secret}}
  - name: slow
    path_prefix: /slow
    s3: {{bucket: media, endpoint: "{ep}", access_key: AKIDCB, secret_key: cb-secret, rate_limit: {{requests_per_second: 0.0167, burst: 2}}}}
metrics: {{enabled: true}}
"#,
        ep = origin.endpoint()
    );
    let base = common::serve_yaml(&yaml).await;
    let http = reqwest::Client::new();
    let from = |client: &'static str, path: &'static str| {
        let (http, url) = (http.clone(), format!("{base}{path}"));
        async move {
            let r = http
                .get(url)
                .header("x-forwarded-for", client)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let retry_after = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let body = r.bytes().await.unwrap();
            (status, retry_after, body)
        }
    };
    for _ in 0..3 {
        assert_eq!(from("203.0.113.1", "/media/a.txt").await.0, 200);
    }
    let (status, retry_after, body) = from("203.0.113.1", "/media/a.txt").await;
    assert_eq!(status, 429);
    let wait: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((50..=61).contains(&wait), "Retry-After {wait}");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "RateLimited");
    // Another client is not held back by the first one's flood.
    assert_eq!(from("203.0.113.2", "/media/a.txt").await.0, 200);
    // The bucket limit holds across clients.
    assert_eq!(from("198.51.100.1", "/slow/a.txt").await.0, 200);
    assert_eq!(from("198.51.100.2", "/slow/a.txt").await.0, 200);
    assert_eq!(from("198.51.100.3", "/slow/a.txt").await.0, 429);
    // /health is never limited.
    for _ in 0..5 {
        assert_eq!(from("203.0.113.1", "/health").await.0, 200);
    }
    common::assert_metrics(
        &base,
        &[
            r#"yatagarasu_rate_limited_total{scope="per_ip",bucket=""} 1"#,
            r#"yatagarasu_rate_limited_total{scope="global",bucket=""} 0"#,
            r#"yatagarasu_rate_limited_total{scope="bucket",bucket="slow"} 1"#,
        ],
    )
    .await;
}

#[tokio::test]
async fn a_flood_of_distinct_keys_never_has_more_requests_at_the_origin_than_the_cap() {
    let origin = TestOrigin::start("AKIDCB", "cb-secret").await;
    origin.create_bucket("media");
    for i in 0..40 {
        origin.put_object("media", &format!("k{i}"), b"one of many");
    }
    let yaml = format!(
        r#"
buckets:
  - name: media
    path_prefix: /media
    s3: {{bucket: media, endpoint: "{ep}", access_key: AKIDCB, secret_key: cb-secret, max_attempts: 1, max_concurrent_requests: 4, queue_timeout_ms: 300, connection_pool_size: 4}}
metrics: {{enabled: true}}
"#,
        ep = origin.endpoint()
    );
    let base = common::serve_yaml(&yaml).await;
    // A stalled origin: every request is held until released.
    origin.inject(yatagarasu_testkit::Fault::Hold, 1000);
    let http = reqwest::Client::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..40 {
        let (http, url, tx) = (http.clone(), format!("{base}/media/k{i}"), tx.clone());
        tokio::spawn(async move {
            let a = get(&http, &url).await;
            let _ = tx.send(a);
        });
    }
    // Thirty-six wait their queue timeout out and get 503 OriginBusy with a Retry-After.
    for _ in 0..36 {
        let a = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("queued requests time out")
            .unwrap();
        assert_eq!((a.status, a.code.as_deref()), (503, Some("OriginBusy")));
        assert_eq!(a.retry_after, Some(1));
    }
    assert_eq!(
        origin.stats().requests(),
        4,
        "never more than the cap at the origin"
    );
    common::assert_metrics(
        &base,
        &[
            r#"yatagarasu_origin_in_flight{bucket="media"} 4"#,
            r#"yatagarasu_origin_concurrency_limit{bucket="media"} 4"#,
            r#"yatagarasu_origin_queue_timeouts_total{bucket="media"} 36"#,
        ],
    )
    .await;
    // The origin answers again: the four in flight complete.
    origin.clear_faults();
    origin.release_held();
    for _ in 0..4 {
        let a = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a.status, 200);
    }
    assert_eq!(get(&http, &format!("{base}/media/k0")).await.status, 200);
}
