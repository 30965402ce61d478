//! The axum embedding example's app, over a real socket: app routes and bucket routes side by side.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use yatagarasu::{BucketRoute, Proxy};
use yatagarasu_examples::app_with_proxy;
use yatagarasu_s3::{Credentials, S3Client};
use yatagarasu_testkit::TestOrigin;

#[tokio::test]
async fn app_routes_and_bucket_routes_share_one_server() {
    let origin = TestOrigin::start("AKIDAXUMTEST", "axum-test-secret").await;
    origin.create_bucket("assets");
    origin.put_object("assets", "app.css", b"body { color: black }");
    let client = S3Client::builder("assets")
        .endpoint(origin.endpoint())
        .credentials(Credentials::new("AKIDAXUMTEST", "axum-test-secret"))
        .build()
        .unwrap();
    let proxy = Proxy::builder()
        .route(BucketRoute::new("assets", "/assets", client))
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app_with_proxy(proxy)).await });

    let r = reqwest::get(format!("{base}/api/hello")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "hello from the app's own route\n");
    let r = reqwest::get(format!("{base}/assets/app.css"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    assert_eq!(r.text().await.unwrap(), "body { color: black }");
    let r = reqwest::get(format!("{base}/assets/missing.css"))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/json");
}
