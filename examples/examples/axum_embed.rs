//! Mount the proxy inside an axum application, beside the application's own routes.
//!
//! ```text
//! cargo run -p yatagarasu-examples --example axum_embed
//! curl http://127.0.0.1:8081/api/hello
//! curl http://127.0.0.1:8081/assets/logo.svg
//! ```
//!
//! The bucket comes from an in-process S3 origin (s3s-fs) so the example runs anywhere.

use yatagarasu::{BucketRoute, Proxy};
use yatagarasu_examples::app_with_proxy;
use yatagarasu_s3::{Credentials, S3Client};
use yatagarasu_testkit::{ObjectAttributes, TestOrigin};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let origin = TestOrigin::start("AKIDAXUM", "axum-secret").await;
    origin.create_bucket("assets");
    origin.put_object_with(
        "assets",
        "logo.svg",
        br#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>"#,
        &ObjectAttributes {
            content_type: Some("image/svg+xml".into()),
            ..ObjectAttributes::default()
        },
    );
    let client = S3Client::builder("assets")
        .endpoint(origin.endpoint())
        .credentials(Credentials::new("AKIDAXUM", "axum-secret"))
        .build()?;
    let proxy = Proxy::builder()
        .route(BucketRoute::new("assets", "/assets", client))
        .build();

    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8081);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let base = format!("http://{}", listener.local_addr()?);
    println!("axum app with the proxy mounted: {base}");
    println!("  curl {base}/api/hello        # the app's own route");
    println!("  curl {base}/assets/logo.svg  # served from the bucket by the proxy");
    axum::serve(listener, app_with_proxy(proxy))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
