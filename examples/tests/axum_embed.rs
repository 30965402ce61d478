//! The axum example's app (compiled from the example file itself), over a real socket: app routes
//! and bucket routes side by side, with the proxy as the fallback and nested under a path.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

#[path = "../examples/axum_embed.rs"]
#[allow(dead_code, unreachable_pub)] // its `main` is the example's, not this test's
mod axum_embed;

use yatagarasu_s3::MemoryOrigin;

#[tokio::test]
async fn app_routes_and_bucket_routes_share_one_server() {
    let media = MemoryOrigin::new("media");
    media.put("cat.txt", "a cat");
    let assets = MemoryOrigin::new("assets");
    assets.put("app.css", "body { color: black }");
    let (media_proxy, assets_proxy) = axum_embed::proxies(media.clone(), assets.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        async move { axum::serve(listener, axum_embed::app(media_proxy, assets_proxy)).await },
    );

    let r = reqwest::get(format!("{base}/api/hello")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "hello from the app's own route\n");

    // The fallback proxy sees the full path.
    let r = reqwest::get(format!("{base}/media/cat.txt")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    assert_eq!(r.text().await.unwrap(), "a cat");

    // The nested proxy sees the path without `/assets`, and its route of prefix `/` serves it.
    let r = reqwest::get(format!("{base}/assets/app.css"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "body { color: black }");
    let r = reqwest::get(format!("{base}/assets/missing.css"))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(media.gets(), 1, "one origin read for the one media object");

    // The proxy answers its health check where it is mounted.
    let r = reqwest::get(format!("{base}/assets/health")).await.unwrap();
    assert_eq!(r.status(), 200);
}
