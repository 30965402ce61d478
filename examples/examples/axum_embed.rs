//! Mount the proxy inside an axum application, beside the application's own routes.
//!
//! ```text
//! cargo run -p yatagarasu-examples --example axum_embed
//! curl http://127.0.0.1:8081/api/hello
//! curl http://127.0.0.1:8081/assets/logo.svg
//! curl http://127.0.0.1:8081/media/cat.txt
//! ```
//!
//! Everything is in this file; copy it. Two ways to mount the proxy:
//!
//! - **`fallback_service(proxy)`**: the proxy sees the full path, so its routes keep their full
//!   prefixes (`/media` here).
//! - **`nest_service("/assets", proxy)`**: axum strips `/assets` before the proxy sees the path,
//!   so the route under it has the prefix `/` (a route of prefix `/assets` would never match). The
//!   request id, logs and errors then show the stripped path.
//!
//! Wherever it is mounted, the proxy also answers `/health`, `/ready` and `/metrics` under that
//! mount point (`/assets/health` here), and keys with those names cannot be read through a route
//! of prefix `/`.
//!
//! The buckets are in-memory origins (`yatagarasu_s3::MemoryOrigin`, feature `test-util`) so the
//! example runs anywhere; in an application they are S3 clients:
//!
//! ```no_run
//! # fn main() -> Result<(), yatagarasu_s3::Error> {
//! let media = yatagarasu_s3::S3Client::builder("media")
//!     .endpoint("http://127.0.0.1:9000")
//!     .credentials(yatagarasu_s3::Credentials::new("AKID", "secret"))
//!     .build()?;
//! # let _ = media;
//! # Ok(())
//! # }
//! ```

use axum::Router;
use axum::routing::get;
use yatagarasu::{BucketRoute, Proxy};
use yatagarasu_s3::MemoryOrigin;

/// The application: its own routes under `/api`, bucket `media` under `/media` (fallback) and
/// bucket `assets` nested under `/assets`.
pub fn app(media: Proxy, assets: Proxy) -> Router {
    Router::new()
        .route(
            "/api/hello",
            get(|| async { "hello from the app's own route\n" }),
        )
        .route("/api/version", get(|| async { yatagarasu::VERSION }))
        .nest_service("/assets", assets)
        .fallback_service(media)
}

/// The two proxies of [`app`], over the given origins.
pub fn proxies(media: MemoryOrigin, assets: MemoryOrigin) -> (Proxy, Proxy) {
    let media = Proxy::builder()
        .route(BucketRoute::new("media", "/media", media))
        .build();
    // Nested under `/assets`: the proxy sees `/logo.svg`, so the route's prefix is `/`.
    let assets = Proxy::builder()
        .route(BucketRoute::new("assets", "/", assets))
        .build();
    (media, assets)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let media = MemoryOrigin::new("media");
    media.put("cat.txt", "a cat, in text\n");
    let assets = MemoryOrigin::new("assets");
    let mut svg = yatagarasu_s3::ObjectMeta::default();
    svg.content_type = Some("image/svg+xml".to_owned());
    assets.put_with_meta(
        "logo.svg",
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>"#,
        svg,
    );
    let (media, assets) = proxies(media, assets);

    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8081);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let base = format!("http://{}", listener.local_addr()?);
    println!("axum app with the proxy mounted: {base}");
    println!("  curl {base}/api/hello        # the app's own route");
    println!("  curl {base}/media/cat.txt    # bucket `media`, proxy as the fallback");
    println!("  curl {base}/assets/logo.svg  # bucket `assets`, proxy nested under /assets");
    axum::serve(listener, app(media, assets))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
