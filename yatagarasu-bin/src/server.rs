//! Serving the proxy on a socket: HTTP/1.1 and h2c, keep-alive, graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::proxy::Proxy;

/// Limits and timings of the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerOptions {
    /// How long in-flight requests may run after shutdown begins.
    pub grace_period: Duration,
    /// Largest request head (request line + headers) accepted on HTTP/1.1, in bytes; larger gets 431.
    /// Also the HTTP/2 header list limit.
    pub max_header_bytes: usize,
    /// Most header fields in one HTTP/1.1 request; more gets 431.
    pub max_headers: usize,
    /// Longest request target (path and query) this listener accepts; longer gets 414. The
    /// [`Proxy`] has its own limit (`ProxyBuilder::max_uri_bytes`); the smaller of the two applies.
    pub max_uri_bytes: usize,
    /// Most concurrent connections; further ones wait in the kernel's accept queue.
    pub max_connections: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            grace_period: Duration::from_secs(30),
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            max_uri_bytes: 8 * 1024,
            max_connections: 10_000,
        }
    }
}

/// Serve `proxy` on `listener` until `shutdown` completes; then stop accepting, let in-flight
/// requests finish within the grace period, and return.
pub async fn serve(
    listener: TcpListener,
    proxy: Proxy,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .keep_alive(true)
        .max_buf_size(options.max_header_bytes.max(8192))
        .max_headers(options.max_headers)
        .header_read_timeout(Duration::from_secs(30))
        .timer(hyper_util::rt::TokioTimer::new());
    builder
        .http2()
        .max_header_list_size(u32::try_from(options.max_header_bytes).unwrap_or(u32::MAX))
        .timer(hyper_util::rt::TokioTimer::new());
    let proxy = proxy.with_max_uri_bytes_at_most(options.max_uri_bytes);
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // At the connection limit, stop accepting until a connection closes.
        let permit = tokio::select! {
            p = Arc::clone(&permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = socket.set_nodelay(true);
        let proxy = proxy.clone();
        let service = hyper::service::service_fn(move |req: http::Request<_>| {
            let proxy = proxy.clone();
            async move { Ok::<_, std::convert::Infallible>(proxy.handle_from(req, Some(peer)).await) }
        });
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(socket), service);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(options.grace_period) => tracing::warn!("grace period over; closing remaining connections"),
    }
    Ok(())
}
