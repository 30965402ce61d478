//! Shared by the integration tests: serving a proxy (or the admin API) on a loopback port.

#![allow(dead_code, unreachable_pub)] // each test file uses a part

use yatagarasu::{AdminApi, Config, Proxy, ServerOptions};

/// Serve `proxy` on a free 127.0.0.1 port until the test ends; its `http://127.0.0.1:PORT`.
pub async fn serve_on_loopback(proxy: Proxy) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(yatagarasu::serve(
        listener,
        proxy,
        ServerOptions::default(),
        std::future::pending(),
    ));
    base
}

/// Serve the admin API `api` the same way; its `http://127.0.0.1:PORT`.
pub async fn serve_admin_on_loopback(api: AdminApi) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(yatagarasu::serve_admin(
        listener,
        api,
        ServerOptions::default(),
        std::future::pending(),
    ));
    base
}

/// The proxy a YAML configuration describes (no environment variables), built.
pub async fn proxy_from_yaml(yaml: &str) -> Proxy {
    Config::from_yaml_with_env(yaml, &|_| None)
        .unwrap()
        .build_proxy()
        .await
        .unwrap()
}

/// That proxy served on a free 127.0.0.1 port until the test ends; its `http://127.0.0.1:PORT`.
pub async fn serve_yaml(yaml: &str) -> String {
    serve_on_loopback(proxy_from_yaml(yaml).await).await
}

/// Scrape `GET /metrics` at `base` and check that each of `samples` is one of its lines.
pub async fn assert_metrics(base: &str, samples: &[&str]) {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for want in samples {
        assert!(text.lines().any(|l| l == *want), "no {want} in:\n{text}");
    }
}

/// Wait until `done()` holds, checking every 5 ms; fail the test naming `what` after 30 s.
pub async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}
