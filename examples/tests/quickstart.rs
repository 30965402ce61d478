//! The quickstart's origin and proxy answer the URLs the quickstart prints.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use yatagarasu::{ServerOptions, serve};

#[tokio::test]
async fn quickstart_urls_answer() {
    let demo = yatagarasu_examples::demo().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(
        listener,
        demo.proxy,
        ServerOptions::default(),
        std::future::pending(),
    ));
    let get = |path: &str| reqwest::get(format!("{base}{path}"));

    let r = get("/demo/hello.txt").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-cache"], "MISS");
    assert_eq!(r.text().await.unwrap(), "Hello from Yatagarasu!\n");
    let r = get("/demo/hello.txt").await.unwrap();
    assert_eq!(r.headers()["x-cache"], "HIT");
    assert_eq!(get("/demo/data/catalog.json").await.unwrap().status(), 200);
    assert_eq!(
        get("/demo/docs/file%20with%20spaces.txt")
            .await
            .unwrap()
            .status(),
        200
    );
    let r = get("/demo/docs/%E6%97%A5%E6%9C%AC%E8%AA%9E.txt")
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "八咫烏\n");
    let r = get("/demo/media/sample-8mib.bin").await.unwrap();
    assert_eq!(r.bytes().await.unwrap().len(), 8 * 1024 * 1024);
    assert_eq!(get("/demo/missing.txt").await.unwrap().status(), 404);
    assert_eq!(get("/health").await.unwrap().status(), 200);
    assert_eq!(get("/ready").await.unwrap().status(), 200);
    drop(demo.origin);
}
