//! The quickstart's embedded origin and proxy (kept here so the quickstart's test exercises the
//! same code).

use std::sync::Arc;
use std::time::Duration;

use yatagarasu::{BucketRoute, Proxy};
use yatagarasu_cache::{CacheTier, MemoryTier, TieredCache};
use yatagarasu_s3::{Credentials, S3Client};
use yatagarasu_testkit::{ObjectAttributes, TestOrigin};

/// The quickstart's embedded origin and the proxy in front of it.
pub struct Demo {
    /// The in-process S3 origin (s3s-fs, SigV4 on) holding the sample objects.
    pub origin: TestOrigin,
    /// The proxy serving bucket `demo` under `/demo`.
    pub proxy: Proxy,
}

/// Start an embedded S3 origin, fill bucket `demo` with sample objects, and build a proxy for it.
///
/// # Errors
/// If the S3 client cannot be built (it can: the endpoint is local and valid).
pub async fn demo() -> Result<Demo, yatagarasu_core::Error> {
    let (access_key, secret_key) = ("AKIDQUICKSTART", "quickstart-secret-key");
    let origin = TestOrigin::start(access_key, secret_key).await;
    origin.create_bucket("demo");
    let text = |ct: &str| ObjectAttributes {
        content_type: Some(ct.to_owned()),
        cache_control: Some("public, max-age=60".to_owned()),
        ..ObjectAttributes::default()
    };
    origin.put_object_with(
        "demo",
        "hello.txt",
        b"Hello from Yatagarasu!\n",
        &text("text/plain; charset=utf-8"),
    );
    origin.put_object_with(
        "demo",
        "data/catalog.json",
        br#"{"items":[{"id":1,"name":"crow"},{"id":2,"name":"raven"}]}"#,
        &text("application/json"),
    );
    origin.put_object_with(
        "demo",
        "docs/file with spaces.txt",
        b"Keys may contain spaces, + signs and unicode.\n",
        &text("text/plain; charset=utf-8"),
    );
    origin.put_object_with(
        "demo",
        "docs/日本語.txt",
        "八咫烏\n".as_bytes(),
        &text("text/plain; charset=utf-8"),
    );
    origin.put_pattern_object("demo", "media/sample-8mib.bin", 8 * 1024 * 1024);

    let client = S3Client::builder("demo")
        .endpoint(origin.endpoint())
        .region("us-east-1")
        .credentials(Credentials::new(access_key, secret_key))
        .build()?;
    // A 64 MiB memory cache: the second request for an object says `x-cache: HIT`.
    let memory: Arc<dyn CacheTier> = Arc::new(
        MemoryTier::builder(64 << 20)
            .max_item_bytes(16 << 20)
            .build(),
    );
    let proxy = Proxy::builder()
        .cache(TieredCache::new(vec![memory]), Duration::from_secs(3600))
        .route(BucketRoute::new("demo", "/demo", client))
        .build();
    Ok(Demo { origin, proxy })
}
