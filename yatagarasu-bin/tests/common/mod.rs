//! Shared by the integration tests: serving a proxy (or the admin API) on a loopback port.

#![allow(dead_code, unreachable_pub)] // each test file uses a part

use yatagarasu::{AdminApi, Proxy, ServerOptions};

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
