//! Use `yatagarasu-s3` on its own: list a bucket page by page and fetch objects, streaming.
//!
//! Against any S3-compatible store:
//!
//! ```text
//! S3_ENDPOINT=http://127.0.0.1:9000 S3_BUCKET=media AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... \
//!     cargo run -p yatagarasu-examples --example s3_list_and_fetch
//! ```
//!
//! Without `S3_BUCKET` it starts an in-process S3 origin (s3s-fs, SigV4 on) with a few sample objects,
//! so it runs anywhere.

use futures_util::StreamExt as _;
use yatagarasu_s3::{Credentials, GetObjectRequest, S3Client};
use yatagarasu_testkit::TestOrigin;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut _origin = None;
    let client = match std::env::var("S3_BUCKET") {
        Ok(bucket) => {
            let mut b = S3Client::builder(bucket);
            if let Ok(endpoint) = std::env::var("S3_ENDPOINT") {
                b = b.endpoint(endpoint);
            }
            // Credentials come from the AWS default chain: environment, profile, web identity, ECS, IMDS.
            b.build()?
        }
        Err(_) => {
            let origin = TestOrigin::start("AKIDEXAMPLE", "example-secret").await;
            origin.create_bucket("samples");
            origin.put_object("samples", "hello.txt", b"Hello from yatagarasu-s3!\n");
            origin.put_object(
                "samples",
                "docs/readme with spaces.md",
                b"# Keys may hold spaces\n",
            );
            origin.put_object(
                "samples",
                "docs/日本語.txt",
                "unicode keys work too\n".as_bytes(),
            );
            origin.put_pattern_object("samples", "data/1mib.bin", 1024 * 1024);
            println!("started an in-process S3 origin at {}", origin.endpoint());
            let client = S3Client::builder("samples")
                .endpoint(origin.endpoint())
                .credentials(Credentials::new("AKIDEXAMPLE", "example-secret"))
                .build()?;
            _origin = Some(origin);
            client
        }
    };

    println!("objects in bucket `{}`:", client.bucket());
    let mut listing = Box::pin(client.list_all(""));
    let mut keys = Vec::new();
    while let Some(object) = listing.next().await {
        let object = object?;
        println!("  {:>10} bytes  {}", object.size, object.key);
        keys.push(object.key);
    }

    for key in keys.iter().take(5) {
        let mut out = client.get_object(key, &GetObjectRequest::default()).await?;
        let mut received = 0u64;
        while let Some(chunk) = out.body.next().await {
            received += chunk?.len() as u64;
        }
        println!(
            "fetched {key}: {received} bytes, type {}, etag {}",
            out.meta.content_type.as_deref().unwrap_or("-"),
            out.meta.etag.map(|e| e.to_string()).unwrap_or_default()
        );
    }

    // The first kilobyte only, as a ranged read.
    if let Some(key) = keys.first() {
        let out = client
            .get_object(key, &GetObjectRequest::range(0, 1023))
            .await?;
        println!(
            "range of {key}: {:?}, {} bytes",
            out.content_range, out.content_length
        );
    }
    Ok(())
}
