//! yatagarasu-s3 against a real S3 implementation: s3s-fs in-process, SigV4 verification on, over a
//! real socket. Faults are injected by the origin itself (testkit), not simulated in the client.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use futures_util::StreamExt as _;
use yatagarasu_core::{ContentRange, ErrorKind, RangeSpec};
use yatagarasu_s3::{
    Credentials, GetObjectRequest, HeadObjectRequest, ListObjectsV2Request, RetryPolicy, S3Client,
    Timeouts,
};
use yatagarasu_testkit::{Fault, ObjectAttributes, TestOrigin, pattern_byte};

const AK: &str = "AKIDYATAGARASU";
const SK: &str = "secret/with+special=chars";

async fn origin() -> TestOrigin {
    let o = TestOrigin::start(AK, SK).await;
    o.create_bucket("media");
    o
}

fn client_for(o: &TestOrigin) -> S3Client {
    S3Client::builder("media")
        .endpoint(o.endpoint())
        .region("us-east-1")
        .credentials(Credentials::new(AK, SK))
        .retry_policy(
            RetryPolicy::default()
                .with_base_delay(Duration::from_millis(5))
                .with_max_delay(Duration::from_millis(20)),
        )
        .build()
        .unwrap()
}

async fn get_all(c: &S3Client, key: &str) -> yatagarasu_core::Result<bytes::Bytes> {
    c.get_object(key, &GetObjectRequest::default())
        .await?
        .body
        .collect()
        .await
}

#[tokio::test]
async fn keys_with_special_characters_round_trip() {
    let o = origin().await;
    let c = client_for(&o);
    let keys = [
        "plain.txt",
        "with space.txt",
        "plus+sign.txt",
        "percent%41.txt",
        "tilde~file.txt",
        "unicode/日本語/ファイル.txt",
        "emoji 🐦.bin",
        "deep/a/b/c/d/e/f/g/h/object.json",
        "equals=and&amp;?.txt",
        "semi;colon,comma'quote(paren).txt",
    ];
    for (i, key) in keys.iter().enumerate() {
        o.put_object("media", key, format!("body #{i} of {key}").as_bytes());
    }
    for (i, key) in keys.iter().enumerate() {
        let got = get_all(&c, key)
            .await
            .unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(got, format!("body #{i} of {key}").as_bytes(), "{key}");
        let meta = c
            .head_object(key, &HeadObjectRequest::default())
            .await
            .unwrap();
        assert_eq!(meta.size, got.len() as u64, "{key}");
    }
}

#[tokio::test]
async fn zero_byte_object() {
    let o = origin().await;
    let c = client_for(&o);
    o.put_object("media", "empty", b"");
    let out = c
        .get_object("empty", &GetObjectRequest::default())
        .await
        .unwrap();
    assert_eq!(out.content_length, 0);
    assert_eq!(out.meta.size, 0);
    assert_eq!(
        out.meta.etag.as_ref().unwrap().opaque(),
        "d41d8cd98f00b204e9800998ecf8427e"
    );
    assert!(out.body.collect().await.unwrap().is_empty());
    assert_eq!(
        c.head_object("empty", &HeadObjectRequest::default())
            .await
            .unwrap()
            .size,
        0
    );
}

#[tokio::test]
async fn metadata_comes_back() {
    let o = origin().await;
    let c = client_for(&o);
    o.put_object_with(
        "media",
        "cat.png",
        b"\x89PNG....",
        &ObjectAttributes {
            content_type: Some("image/png".into()),
            cache_control: Some("max-age=60".into()),
            content_disposition: Some("inline; filename=\"cat.png\"".into()),
            content_encoding: Some("identity".into()),
            user_metadata: vec![("owner".into(), "alice".into())],
        },
    );
    let out = c
        .get_object("cat.png", &GetObjectRequest::default())
        .await
        .unwrap();
    let m = &out.meta;
    assert_eq!(m.size, 8);
    assert_eq!(m.content_type.as_deref(), Some("image/png"));
    assert_eq!(m.cache_control.as_deref(), Some("max-age=60"));
    assert_eq!(
        m.content_disposition.as_deref(),
        Some("inline; filename=\"cat.png\"")
    );
    assert_eq!(m.content_encoding.as_deref(), Some("identity"));
    assert_eq!(
        m.user_metadata.get("owner").map(String::as_str),
        Some("alice")
    );
    assert!(m.last_modified.is_some());
    assert!(m.etag.is_some());
    let head = c
        .head_object("cat.png", &HeadObjectRequest::default())
        .await
        .unwrap();
    assert_eq!(head.etag, m.etag);
    assert_eq!(head.content_type, m.content_type);
}

#[tokio::test]
async fn missing_key_and_bucket_are_not_found_with_context() {
    let o = origin().await;
    let c = client_for(&o);
    let err = c
        .get_object("nope/missing.txt", &GetObjectRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.code(), "NoSuchKey");
    assert_eq!(err.context().bucket.as_deref(), Some("media"));
    assert_eq!(err.context().key.as_deref(), Some("nope/missing.txt"));
    assert_eq!(err.context().operation, Some("GetObject"));
    assert_eq!(o.stats().requests(), 1, "a 404 is not retried");

    let head = c
        .head_object("nope", &HeadObjectRequest::default())
        .await
        .unwrap_err();
    assert_eq!(head.kind(), ErrorKind::NotFound);
    assert_eq!(head.context().operation, Some("HeadObject"));

    let other = S3Client::builder("no-such-bucket")
        .endpoint(o.endpoint())
        .credentials(Credentials::new(AK, SK))
        .build()
        .unwrap();
    let err = other
        .get_object("k", &GetObjectRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    // s3s-fs answers a GET in a missing bucket with NoSuchKey; AWS with NoSuchBucket.
    assert!(matches!(err.code(), "NoSuchBucket" | "NoSuchKey"), "{err}");
    assert_eq!(other.probe().await.unwrap_err().kind(), ErrorKind::NotFound);
    c.probe().await.unwrap();
}

#[tokio::test]
async fn wrong_secret_is_access_denied_and_leaks_nothing() {
    let o = origin().await;
    o.put_object("media", "k", b"v");
    let c = S3Client::builder("media")
        .endpoint(o.endpoint())
        .credentials(Credentials::new(AK, "the-wrong-secret"))
        .build()
        .unwrap();
    let err = c
        .get_object("k", &GetObjectRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AccessDenied, "{err}");
    assert_eq!(err.code(), "SignatureDoesNotMatch");
    let rendered = format!("{err} {err:?}");
    assert!(!rendered.contains("the-wrong-secret"));
    assert!(!rendered.contains("Signature="), "{rendered}");
    assert_eq!(o.stats().requests(), 1, "auth failures are not retried");

    let anon = S3Client::builder("media")
        .endpoint(o.endpoint())
        .anonymous()
        .build()
        .unwrap();
    assert_eq!(
        anon.get_object("k", &GetObjectRequest::default())
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::AccessDenied
    );
}

#[tokio::test]
async fn ranges_answer_like_s3() {
    let o = origin().await;
    let c = client_for(&o);
    let data: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    o.put_object("media", "r", &data);
    let cases: [(RangeSpec, std::ops::Range<usize>); 5] = [
        (
            RangeSpec::Int {
                first: 0,
                last: Some(9),
            },
            0..10,
        ),
        (
            RangeSpec::Int {
                first: 990,
                last: None,
            },
            990..1000,
        ),
        (RangeSpec::Suffix(100), 900..1000),
        (
            RangeSpec::Int {
                first: 500,
                last: Some(5000),
            },
            500..1000,
        ),
        (
            RangeSpec::Int {
                first: 0,
                last: Some(999),
            },
            0..1000,
        ),
    ];
    for (spec, want) in cases {
        let req = GetObjectRequest::default().with_range(spec);
        let out = c.get_object("r", &req).await.unwrap();
        assert_eq!(out.meta.size, 1000, "{spec:?}");
        assert_eq!(out.content_length, want.len() as u64, "{spec:?}");
        match out.content_range {
            Some(ContentRange::Bytes { range, complete }) => {
                assert_eq!(range.start, want.start as u64);
                assert_eq!(range.end, want.end as u64 - 1);
                assert_eq!(complete, Some(1000));
            }
            other => panic!("{spec:?}: {other:?}"),
        }
        assert_eq!(
            out.body.collect().await.unwrap(),
            &data[want.clone()],
            "{spec:?}"
        );
    }
    let err = c
        .get_object("r", &GetObjectRequest::range(1000, 1010))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRange);
}

#[tokio::test]
async fn list_objects_paginates() {
    let o = origin().await;
    let c = client_for(&o);
    for i in 0..7 {
        o.put_object("media", &format!("logs/2024/{i:02}.log"), b"x");
    }
    o.put_object("media", "logs/readme with space.txt", b"y");
    o.put_object("media", "other/z", b"z");

    let mut keys = Vec::new();
    let mut req = ListObjectsV2Request::default()
        .with_prefix("logs/")
        .with_max_keys(3);
    let mut pages = 0;
    loop {
        let page = c.list_objects_v2(&req).await.unwrap();
        pages += 1;
        assert!(page.objects.len() <= 3);
        keys.extend(page.objects.iter().map(|o| o.key.clone()));
        match (page.is_truncated, page.next_continuation_token) {
            (true, Some(t)) => req.continuation_token = Some(t),
            _ => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(keys.len(), 8);
    assert!(keys.contains(&"logs/readme with space.txt".to_owned()));

    let all: Vec<_> = c.list_all("logs/2024/").collect().await;
    let all: Vec<String> = all.into_iter().map(|r| r.unwrap().key).collect();
    assert_eq!(all.len(), 7);

    let delim = c
        .list_objects_v2(&ListObjectsV2Request::default().with_delimiter("/"))
        .await
        .unwrap();
    assert!(delim.objects.is_empty());
    let mut prefixes = delim.common_prefixes.clone();
    prefixes.sort();
    assert_eq!(prefixes, vec!["logs/", "other/"]);
}

#[tokio::test]
async fn throttling_and_5xx_are_retried_with_backoff() {
    let o = origin().await;
    let c = client_for(&o);
    o.put_object("media", "k", b"value");
    o.inject(Fault::status(503, "SlowDown"), 1);
    o.inject(Fault::status(500, "InternalError"), 1);
    assert_eq!(get_all(&c, "k").await.unwrap(), "value");
    assert_eq!(o.stats().requests(), 3);
    assert_eq!(c.stats().retries, 2, "the client counts what it retried");

    o.inject(Fault::status(500, "InternalError"), 5);
    let err = get_all(&c, "k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Upstream);
    assert_eq!(err.code(), "InternalError");
    assert_eq!(o.stats().requests(), 6, "three attempts, then the error");
    o.clear_faults();

    o.inject(Fault::status(503, "SlowDown"), 5);
    let err = get_all(&c, "k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooManyRequests);
    assert!(err.is_retryable(), "throttling may succeed later");
}

#[tokio::test]
async fn slow_headers_time_out_then_retry_succeeds() {
    let o = origin().await;
    o.put_object("media", "k", b"value");
    let timeouts = Timeouts::default().with_first_byte(Duration::from_millis(200));
    let single = S3Client::builder("media")
        .endpoint(o.endpoint())
        .credentials(Credentials::new(AK, SK))
        .timeouts(timeouts)
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    o.inject(Fault::DelayHeaders(Duration::from_secs(5)), 1);
    let err = get_all(&single, "k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UpstreamTimeout, "{err}");

    let retrying = S3Client::builder("media")
        .endpoint(o.endpoint())
        .credentials(Credentials::new(AK, SK))
        .timeouts(timeouts)
        .build()
        .unwrap();
    o.inject(Fault::DelayHeaders(Duration::from_secs(5)), 1);
    assert_eq!(get_all(&retrying, "k").await.unwrap(), "value");
}

#[tokio::test]
async fn origin_down_is_unavailable() {
    let o = origin().await;
    let c = client_for(&o);
    o.stop();
    let err = get_all(&c, "k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_retryable(), "an origin that is down may come back");
    assert!(
        !err.to_string().contains("127.0.0.1"),
        "no URL in errors: {err}"
    );
}

#[tokio::test]
async fn broken_body_resumes_with_range_and_if_match() {
    let o = origin().await;
    let c = client_for(&o);
    let len = 3 * 1024 * 1024 + 17;
    o.put_pattern_object("media", "big.bin", len);
    o.inject(Fault::BreakBodyAfter(1_000_000), 1);
    o.inject(Fault::BreakBodyAfter(500_000), 1);
    let body = get_all(&c, "big.bin").await.unwrap();
    assert_eq!(body.len() as u64, len);
    assert!(
        body.iter()
            .enumerate()
            .all(|(i, b)| *b == pattern_byte(i as u64)),
        "bytes spliced or shifted"
    );
    assert_eq!(o.stats().gets(), 3, "first GET, then two resumes");
    assert_eq!(c.stats().body_resumes, 2);
    // The resumes fetched only what was missing (a restart from byte 0 would send 1.5 MB more); the
    // origin's count includes the few bytes lost in socket buffers when the connection broke.
    assert!(
        o.stats().body_bytes() < len + 200_000,
        "{}",
        o.stats().body_bytes()
    );
}

#[tokio::test]
async fn stalled_body_resumes_after_idle_timeout() {
    let o = origin().await;
    let c = S3Client::builder("media")
        .endpoint(o.endpoint())
        .credentials(Credentials::new(AK, SK))
        .timeouts(Timeouts::default().with_idle(Duration::from_millis(300)))
        .build()
        .unwrap();
    o.put_pattern_object("media", "s.bin", 200_000);
    o.inject(Fault::StallBodyAfter(50_000), 1);
    let body = get_all(&c, "s.bin").await.unwrap();
    assert_eq!(body.len(), 200_000);
    assert!(
        body.iter()
            .enumerate()
            .all(|(i, b)| *b == pattern_byte(i as u64))
    );
}

#[tokio::test]
async fn ranged_read_resumes_within_its_range() {
    let o = origin().await;
    let c = client_for(&o);
    o.put_pattern_object("media", "r.bin", 1_000_000);
    o.inject(Fault::BreakBodyAfter(100_000), 1);
    let out = c
        .get_object("r.bin", &GetObjectRequest::range(250_000, 749_999))
        .await
        .unwrap();
    let body = out.body.collect().await.unwrap();
    assert_eq!(body.len(), 500_000);
    assert!(
        body.iter()
            .enumerate()
            .all(|(i, b)| *b == pattern_byte(250_000 + i as u64))
    );
}

#[tokio::test]
async fn broken_body_without_resume_fails_loudly() {
    let o = origin().await;
    let c = S3Client::builder("media")
        .endpoint(o.endpoint())
        .credentials(Credentials::new(AK, SK))
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    o.put_pattern_object("media", "b.bin", 400_000);
    o.inject(Fault::BreakBodyAfter(100_000), 1);
    let mut out = c
        .get_object("b.bin", &GetObjectRequest::default())
        .await
        .unwrap();
    let mut got = 0usize;
    let mut failed = None;
    while let Some(chunk) = out.body.next().await {
        match chunk {
            Ok(b) => got += b.len(),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    let err = failed.expect("a truncated body must end in an error, not a short success");
    // Bytes the origin wrote just before the connection broke may never arrive; none beyond the break can.
    assert!(got > 0 && got <= 100_000, "{got}");
    assert_eq!(err.kind(), ErrorKind::Upstream);
    assert!(
        out.body.next().await.is_none(),
        "the stream ends after its error"
    );
}

#[tokio::test]
async fn object_changed_mid_read_is_never_spliced() {
    let o = origin().await;
    let c = client_for(&o);
    o.put_pattern_object("media", "v.bin", 2_000_000);
    o.inject(Fault::BreakBodyAfter(1_000_000), 1);
    let mut out = c
        .get_object("v.bin", &GetObjectRequest::default())
        .await
        .unwrap();
    let first = out.body.next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    let mut received = first.to_vec();
    // A new version replaces the object while the first response is being read.
    o.put_object("media", "v.bin", &vec![0xAB; 2_000_000]);
    let mut err = None;
    while let Some(chunk) = out.body.next().await {
        match chunk {
            Ok(b) => received.extend_from_slice(&b),
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    let err = err.expect("the read must fail rather than splice versions");
    assert!(received.len() < 2_000_000);
    assert!(
        received
            .iter()
            .enumerate()
            .all(|(i, b)| *b == pattern_byte(i as u64)),
        "every byte handed out belongs to the first version"
    );
    assert!(err.message().contains("changed"), "{err}");
    assert_eq!(err.code(), "PreconditionFailed");
}

#[tokio::test]
async fn presigned_urls_are_accepted_by_the_origin() {
    let o = origin().await;
    let c = client_for(&o);
    o.put_object("media", "shared file+1.txt", b"presigned!");
    let url = c
        .presign_get("shared file+1.txt", Duration::from_secs(300))
        .await
        .unwrap();
    let resp = reqwest::get(url).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap(), "presigned!");
}

#[tokio::test]
async fn unsigned_payload_is_accepted() {
    let o = origin().await;
    o.put_object("media", "u.txt", b"unsigned payload");
    let c = S3Client::builder("media")
        .endpoint(o.endpoint())
        .credentials(Credentials::new(AK, SK))
        .unsigned_payload(true)
        .build()
        .unwrap();
    assert_eq!(get_all(&c, "u.txt").await.unwrap(), "unsigned payload");
}

#[tokio::test]
async fn retries_stop_at_the_total_deadline() {
    let o = origin().await;
    o.put_object("media", "k", b"v");
    let c = S3Client::builder("media")
        .endpoint(o.endpoint())
        .credentials(Credentials::new(AK, SK))
        .timeouts(
            Timeouts::default()
                .with_first_byte(Duration::from_millis(250))
                .with_total(Duration::from_secs(1)),
        )
        .retry_policy(
            RetryPolicy::default()
                .with_max_attempts(50)
                .with_base_delay(Duration::from_millis(10))
                .with_max_delay(Duration::from_millis(50))
                .with_max_resumes(0),
        )
        .build()
        .unwrap();
    o.inject(Fault::DelayHeaders(Duration::from_secs(10)), 50);
    let err = get_all(&c, "k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UpstreamTimeout);
    // 1 s of deadline holds at most 4 attempts of 250 ms, far from the 50 allowed.
    let attempts = o.stats().requests();
    assert!((2..=5).contains(&attempts), "{attempts} attempts");
}
