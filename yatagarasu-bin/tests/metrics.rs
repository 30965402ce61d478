//! Prometheus metrics end to end: known traffic through a proxy built from config, then `/metrics`
//! scraped over a real socket (Prometheus text and OpenMetrics) and its numbers checked.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::collections::HashMap;

use yatagarasu_testkit::TestOrigin;

async fn proxy(origin: &TestOrigin, metrics: bool) -> String {
    let yaml = format!(
        r#"
buckets:
  - name: media
    path_prefix: /media
    s3: {{bucket: media, endpoint: "{ep}", access_key: AKIDMETRICS, secret_key: metrics-secret}}
cache:
  cache_layers: [memory]
metrics:
  enabled: {metrics}
"#,
        ep = origin.endpoint()
    );
    common::serve_yaml(&yaml).await
}

/// Samples by `name{labels}` (labels as written).
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap();
            (name.to_owned(), value.parse::<f64>().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn metrics_count_known_traffic() {
    let origin = TestOrigin::start("AKIDMETRICS", "metrics-secret").await;
    origin.create_bucket("media");
    origin.put_object("media", "a.txt", &[b'x'; 1024]);
    let base = proxy(&origin, true).await;
    let http = reqwest::Client::new();
    let status = |u: String, head: bool| {
        let http = http.clone();
        async move {
            let r = if head { http.head(u) } else { http.get(u) };
            let r = r.send().await.unwrap();
            let s = r.status().as_u16();
            let _ = r.bytes().await.unwrap();
            s
        }
    };
    // 1 miss (its origin request answered 503 once, and retried) and 10 hits, one 404 from the
    // origin, one HEAD (a hit).
    origin.inject(yatagarasu_testkit::Fault::status(503, "SlowDown"), 1);
    for _ in 0..11 {
        assert_eq!(status(format!("{base}/media/a.txt"), false).await, 200);
    }
    assert_eq!(
        status(format!("{base}/media/missing.txt"), false).await,
        404
    );
    assert_eq!(status(format!("{base}/media/a.txt"), true).await, 200);

    let r = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = r.text().await.unwrap();
    let s = samples(&text);
    let get = |k: &str| {
        *s.get(k)
            .unwrap_or_else(|| panic!("no sample {k} in:\n{text}"))
    };
    assert_eq!(
        get(r#"yatagarasu_requests_total{bucket="media",method="GET",status="2xx"}"#),
        11.0
    );
    assert_eq!(
        get(r#"yatagarasu_requests_total{bucket="media",method="GET",status="4xx"}"#),
        1.0
    );
    assert_eq!(
        get(r#"yatagarasu_requests_total{bucket="media",method="HEAD",status="2xx"}"#),
        1.0
    );
    assert_eq!(
        get(r#"yatagarasu_cache_requests_total{bucket="media",outcome="hit"}"#),
        11.0
    );
    assert_eq!(
        get(r#"yatagarasu_cache_requests_total{bucket="media",outcome="miss"}"#),
        2.0
    );
    assert!(get(r#"yatagarasu_response_body_bytes_total{bucket="media"}"#) >= 11.0 * 1024.0);
    assert_eq!(
        get(r#"yatagarasu_request_duration_seconds_count{bucket="media"}"#),
        13.0
    );
    assert_eq!(
        get(r#"yatagarasu_response_head_seconds_count{bucket="media"}"#),
        13.0
    );
    assert_eq!(
        get(r#"yatagarasu_responses_ended_total{bucket="media",outcome="complete"}"#),
        13.0
    );
    // The origin: what it counted, by operation and outcome.
    let origin_gets =
        get(r#"yatagarasu_origin_requests_total{bucket="media",operation="get",outcome="ok"}"#);
    let not_found: f64 = s
        .iter()
        .filter(|(k, _)| {
            k.starts_with("yatagarasu_origin_requests_total") && k.contains(r#"outcome="NotFound""#)
        })
        .map(|(_, v)| v)
        .sum();
    assert_eq!(not_found, 1.0);
    // The origin saw one attempt more than the proxy's requests: the retried 503.
    assert_eq!(
        origin_gets + not_found + 1.0,
        origin.stats().requests() as f64
    );
    assert_eq!(
        get(r#"yatagarasu_origin_retries_total{bucket="media"}"#),
        1.0
    );
    assert_eq!(
        get(r#"yatagarasu_origin_body_resumes_total{bucket="media"}"#),
        0.0
    );
    // Scrape-time state: the scrape itself is the one request in flight, on an HTTP/1.1 connection.
    assert_eq!(get("yatagarasu_in_flight_requests"), 1.0);
    assert!(get(r#"yatagarasu_open_connections{protocol="http1"}"#) >= 1.0);
    assert!(get(r#"yatagarasu_cache_tier_hits_total{tier="memory"}"#) >= 11.0);
    // Entries and bytes held are moka's own counts, updated by its housekeeping: present, maybe late.
    get(r#"yatagarasu_cache_tier_bytes{tier="memory"}"#);
    get(r#"yatagarasu_cache_tier_entries{tier="memory"}"#);
    assert!(get(r#"yatagarasu_coalescing_flights_total{kind="object"}"#) >= 1.0);
    // Bounded labels: no object key, no client address.
    assert!(!text.contains("a.txt") && !text.contains("missing") && !text.contains("127.0.0.1"));

    // An HTTP/2 (h2c) client holding its connection open shows under its protocol.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = h2.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    let s = samples(&r.text().await.unwrap());
    assert_eq!(s[r#"yatagarasu_open_connections{protocol="http2"}"#], 1.0);

    // OpenMetrics when asked; the earlier scrapes are counted under no bucket.
    let r = http
        .get(format!("{base}/metrics"))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
        )
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = r.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"));
    assert_eq!(
        samples(&text)[r#"yatagarasu_requests_total{bucket="",method="GET",status="2xx"}"#],
        2.0
    );
}

#[tokio::test]
async fn without_metrics_the_path_is_a_404() {
    let origin = TestOrigin::start("AKIDMETRICS", "metrics-secret").await;
    origin.create_bucket("media");
    let base = proxy(&origin, false).await;
    let r = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(r.status(), 404);
}
