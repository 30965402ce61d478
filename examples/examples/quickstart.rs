//! Quickstart: the proxy in front of an embedded S3-compatible origin with sample objects.
//!
//! ```text
//! cargo run -p yatagarasu-examples --example quickstart
//! ```
//!
//! Starts an in-process S3 server (s3s-fs over a temporary directory, SigV4 verification on), fills a
//! bucket with sample objects, and serves it through the proxy (with a 64 MiB memory cache) under `/demo` on
//! `127.0.0.1:8080` (`PORT` overrides). Nothing else needs to be installed. Ctrl-C stops it.

use yatagarasu::{ServerOptions, serve};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "yatagarasu=info".into()),
        )
        .init();

    let yatagarasu_examples::Demo { origin, proxy } = yatagarasu_examples::demo().await?;

    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8080);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port} ({e}); set PORT to a free port"))?;
    let base = format!("http://{}", listener.local_addr()?);
    println!("Yatagarasu quickstart");
    println!(
        "  embedded S3 origin (s3s-fs, SigV4 on): {}",
        origin.endpoint()
    );
    println!("  proxy: {base}  (bucket `demo` under /demo)");
    println!();
    println!("Try:");
    println!("  curl -i {base}/demo/hello.txt          # x-cache: MISS, then HIT");
    println!("  curl -i {base}/demo/data/catalog.json");
    println!("  curl -i '{base}/demo/docs/file%20with%20spaces.txt'");
    println!("  curl -i {base}/demo/docs/%E6%97%A5%E6%9C%AC%E8%AA%9E.txt");
    println!("  curl -i -H 'Range: bytes=0-15' {base}/demo/hello.txt");
    println!("  curl -sI {base}/demo/media/sample-8mib.bin");
    println!("  curl -i {base}/demo/missing.txt        # JSON error, 404");
    println!("  curl -i -X DELETE {base}/demo/hello.txt # 405: read-only");
    println!("  curl -i {base}/health");
    println!();
    println!("Ctrl-C to stop.");
    serve(listener, proxy, ServerOptions::default(), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
