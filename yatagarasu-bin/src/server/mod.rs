//! Serving on a socket: HTTP/1.1 and h2c on one port, connection limit, timeouts for sockets that
//! send nothing, idle or stop reading, HTTP/2 keep-alive pings, graceful shutdown. The proxy and
//! the admin API are served by this same code.

mod conn;
mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use self::conn::{Activity, TrackedIo, Verdict};
use crate::proxy::Proxy;
pub use tls::{ServerTls, TlsError};

/// Limits and timings of the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
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
    /// A new connection must deliver its first complete request (HTTP/1.1 head, or HTTP/2 preface
    /// and first request) within this, and every later HTTP/1.1 head must arrive within this once
    /// begun; else the connection is closed. Bytes trickling in do not extend it.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight is closed after this long (HTTP/2 with GOAWAY).
    pub idle_timeout: Duration,
    /// A connection whose responses are all waiting for the client (nothing written, nothing
    /// owed by the origin) is dropped after this long: a client that stops reading gives its
    /// connection slot and buffers back. On HTTP/2 this holds when every open stream is stalled.
    pub send_timeout: Duration,
    /// HTTP/2: send a PING after this long without frames from the client ...
    pub http2_keep_alive_interval: Duration,
    /// ... and close the connection when it is not answered within this.
    pub http2_keep_alive_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            grace_period: Duration::from_secs(30),
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            max_uri_bytes: 8 * 1024,
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(30),
            http2_keep_alive_interval: Duration::from_secs(30),
            http2_keep_alive_timeout: Duration::from_secs(10),
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
    serve_proxy(listener, proxy, options, None, shutdown).await
}

/// [`serve`] over TLS: each connection's handshake (ALPN `h2` or `http/1.1`) must finish within
/// `options.header_read_timeout`; then it is served as on a plain listener.
pub async fn serve_tls(
    listener: TcpListener,
    proxy: Proxy,
    options: ServerOptions,
    tls: ServerTls,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_proxy(listener, proxy, options, Some(tls.acceptor()), shutdown).await
}

async fn serve_proxy(
    listener: TcpListener,
    proxy: Proxy,
    options: ServerOptions,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    // One `Arc` per request rather than a clone of the proxy (three): with worker threads each
    // worker has its own, so requests do not contend on shared reference counts.
    let proxy = Arc::new(proxy.with_max_uri_bytes_at_most(options.max_uri_bytes));
    let live = Some(proxy.live());
    serve_with(listener, options, tls, shutdown, live, move |req, peer| {
        let proxy = Arc::clone(&proxy);
        async move { proxy.handle_from(req, Some(peer)).await }
    })
    .await
}

/// hyper's HTTP/1.1 header count limit when none is set (`hyper::proto::h1::role`).
const HYPER_MAX_HEADERS: usize = 100;

/// Where a running server stands, as told to each connection: serving (0), draining (1), closing
/// what is left (2).
const DRAINING: u8 = 1;
const CLOSING: u8 = 2;

/// The accept loop and connection handling shared by every listener.
pub(crate) async fn serve_with<F, Fut, B>(
    listener: TcpListener,
    options: ServerOptions,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
    live: Option<Arc<crate::metrics::Live>>,
    handler: F,
) -> std::io::Result<()>
where
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .keep_alive(true)
        .max_buf_size(options.max_header_bytes.max(8192))
        // The head timeout is the connection watchdog's (see `conn`): hyper's arms a timer per
        // request, and defaults to 30 s when not turned off.
        .header_read_timeout(None)
        .timer(TokioTimer::new());
    if options.max_headers != HYPER_MAX_HEADERS {
        // Only when it differs: with a limit set, hyper sizes its header arrays on the heap
        // and initialises them on every request; at its own default they live on the stack.
        builder.http1().max_headers(options.max_headers);
    }
    builder
        .http2()
        .max_header_list_size(u32::try_from(options.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(options.http2_keep_alive_interval)
        .keep_alive_timeout(options.http2_keep_alive_timeout)
        .timer(TokioTimer::new());
    let max = options.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let permits = Arc::new(Semaphore::new(max));
    let connections = Arc::new(Connections::default());
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
        let activity = Activity::new();
        let handler = handler.clone();
        let on_request = Arc::clone(&activity);
        if let Some(live) = &live {
            live.connection_opened();
        }
        let live_conn = live.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            if let (Some(live), Some(p)) = (&live_conn, on_request.note_protocol(req.version())) {
                live.connection_identified(p);
            }
            let guard = on_request.begin();
            // Boxed: the request's future is large (every stage's state), and hyper moves the
            // future it is given into its per-connection slot on every request.
            let response = Box::pin(handler(req, peer));
            async move {
                let response = response.await;
                Ok::<_, std::convert::Infallible>(response.map(|body| guard.track(body)))
            }
        });
        let signal = connections.register();
        let connections = Arc::clone(&connections);
        let live = live.clone();
        let ended = move |activity: &Activity, signal: &ConnSignal| {
            if let Some(live) = &live {
                live.connection_closed(activity.protocol());
            }
            connections.remove(signal);
            drop(permit);
        };
        let Some(acceptor) = tls.clone() else {
            let io = TokioIo::new(TrackedIo::new(socket, Arc::clone(&activity)));
            let conn = builder
                .serve_connection_with_upgrades(io, service)
                .into_owned();
            tokio::spawn(async move {
                if let Err(e) = supervise(conn, &activity, &signal, &options).await {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                ended(&activity, &signal);
            });
            continue;
        };
        let builder = builder.clone();
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(options.header_read_timeout, async {
                // A drain or close signal during the handshake ends it: nothing was asked yet.
                tokio::select! {
                    r = acceptor.accept(socket) => Some(r),
                    () = signal.stopped() => None,
                }
            });
            match handshake.await {
                Ok(Some(Ok(stream))) => {
                    let io = TokioIo::new(TrackedIo::new(stream, Arc::clone(&activity)));
                    let conn = builder.serve_connection_with_upgrades(io, service);
                    if let Err(e) = supervise(conn, &activity, &signal, &options).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                Ok(Some(Err(e))) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Ok(None) => {}
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
            ended(&activity, &signal);
        });
    }
    drop(listener);
    connections.signal_all(DRAINING);
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    tokio::select! {
        _ = permits.acquire_many(all) => tracing::info!("all connections closed"),
        () = tokio::time::sleep(options.grace_period) => {
            tracing::warn!("grace period over; closing remaining connections");
            connections.signal_all(CLOSING);
        }
    }
    Ok(())
}

/// Drive one connection: the connection itself, its clock (first request, idle, send timeouts) and
/// the server's drain and close signals. Polled on every wake of the connection, so it only
/// touches per-connection state (no lock shared with other connections).
async fn supervise<C, E>(
    conn: C,
    activity: &Activity,
    signal: &ConnSignal,
    options: &ServerOptions,
) -> Result<(), E>
where
    C: Future<Output = Result<(), E>> + GracefulShutdown,
{
    let mut conn = std::pin::pin!(conn);
    let now = tokio::time::Instant::now();
    let mut timer = std::pin::pin!(tokio::time::sleep_until(now));
    // Set once the connection was asked to close: past this instant it is dropped.
    let mut close_by: Option<tokio::time::Instant> = None;
    let mut drained = false;
    // The timer is polled once after each reset (to register it); afterwards only its state is
    // read, so the many wakes of a busy connection cost no timer poll (and no cooperative-budget
    // unit that would make the connection's own I/O yield sooner).
    let mut armed = false;
    let mut seen_head = conn::NO_HEAD;
    std::future::poll_fn(|cx| {
        loop {
            if let Poll::Ready(r) = conn.as_mut().poll(cx) {
                return Poll::Ready(r);
            }
            signal.waker.register(cx.waker());
            match signal.state.load(Ordering::Acquire) {
                CLOSING => return Poll::Ready(Ok(())),
                DRAINING if !drained => {
                    drained = true;
                    conn.as_mut().graceful_shutdown();
                    // Draining has its own limit (the grace period), not the idle one.
                    let by = tokio::time::Instant::now() + options.grace_period;
                    close_by = Some(by);
                    timer.as_mut().reset(by);
                    armed = false;
                    continue;
                }
                _ => {}
            }
            // A request head began arriving since the timer was set: its deadline may be
            // sooner than the one the timer holds. (Rare: a head that arrives whole is parsed
            // and its request begun within the same poll, which ends the head's clock.)
            let head = activity.head_started();
            let new_head = head != seen_head && head != conn::NO_HEAD && close_by.is_none();
            seen_head = head;
            if !new_head {
                if armed {
                    if !timer.is_elapsed() {
                        return Poll::Pending;
                    }
                } else if timer.as_mut().poll(cx).is_pending() {
                    armed = true;
                    return Poll::Pending;
                }
                if close_by.is_some_and(|by| tokio::time::Instant::now() >= by) {
                    return Poll::Ready(Ok(()));
                }
            }
            armed = false;
            if let Some(by) = close_by {
                timer.as_mut().reset(by);
                continue;
            }
            match activity.verdict(options, std::time::Instant::now()) {
                Verdict::WaitUntil(t) => timer.as_mut().reset(tokio::time::Instant::from_std(t)),
                Verdict::CloseIdle => {
                    conn.as_mut().graceful_shutdown();
                    // Closing politely: give the peer a moment, then drop.
                    let by = tokio::time::Instant::now() + Duration::from_secs(1);
                    close_by = Some(by);
                    timer.as_mut().reset(by);
                }
                Verdict::Abort => return Poll::Ready(Ok(())),
            }
        }
    })
    .await
}

/// What can be asked to shut down gracefully.
trait GracefulShutdown {
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<I, S, E> GracefulShutdown
    for hyper_util::server::conn::auto::UpgradeableConnection<'_, I, S, E>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming>,
    S::Future: 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: http_body::Body + Send + 'static,
    <S::ResBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, S::ResBody>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        hyper_util::server::conn::auto::UpgradeableConnection::graceful_shutdown(self);
    }
}

/// The server's word to one connection: drain, or close now.
#[derive(Debug, Default)]
struct ConnSignal {
    id: u64,
    state: AtomicU8,
    waker: futures_util::task::AtomicWaker,
}

impl ConnSignal {
    /// Completes once the server asks this connection to drain or close.
    async fn stopped(&self) {
        std::future::poll_fn(|cx| {
            self.waker.register(cx.waker());
            if self.state.load(Ordering::Acquire) == 0 {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
    }
}

/// The open connections, to signal them all at shutdown (locked per connection, never per request).
#[derive(Debug, Default)]
struct Connections {
    next: std::sync::atomic::AtomicU64,
    open: std::sync::Mutex<std::collections::HashMap<u64, Arc<ConnSignal>>>,
}

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, Arc<ConnSignal>>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn register(&self) -> Arc<ConnSignal> {
        let signal = Arc::new(ConnSignal {
            id: self.next.fetch_add(1, Ordering::Relaxed),
            ..ConnSignal::default()
        });
        self.lock().insert(signal.id, Arc::clone(&signal));
        signal
    }

    fn remove(&self, signal: &ConnSignal) {
        self.lock().remove(&signal.id);
    }

    fn signal_all(&self, state: u8) {
        for s in self.lock().values() {
            s.state.store(state, Ordering::Release);
            s.waker.wake();
        }
    }
}
