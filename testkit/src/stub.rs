//! A tiny HTTP server answering from a closure: for services that speak a fixed wire format (STS,
//! ECS and IMDS credential endpoints, an S3 that honours conditional headers).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A request the stub received, with its whole body.
#[derive(Debug, Clone)]
pub struct StubRequest {
    /// Method.
    pub method: http::Method,
    /// Request target.
    pub uri: http::Uri,
    /// Headers.
    pub headers: http::HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl StubRequest {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

type Handler = dyn Fn(&StubRequest) -> http::Response<Bytes> + Send + Sync;

/// An HTTP/1.1 and h2c server on 127.0.0.1 answering with an async handler: the accept loop the
/// test servers share. Stops (listener and every open connection) when stopped or dropped.
pub(crate) struct HttpLoop {
    pub(crate) addr: SocketAddr,
    task: JoinHandle<()>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl HttpLoop {
    /// Serve `handler`, each request with its whole body read.
    pub(crate) async fn start<F, Fut>(handler: F) -> Self
    where
        F: Fn(StubRequest) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = http::Response<Bytes>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let handler = Arc::new(handler);
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let open = Arc::clone(&connections);
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let _ = socket.set_nodelay(true);
                let handler = Arc::clone(&handler);
                let svc = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                    let handler = Arc::clone(&handler);
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let req = StubRequest {
                            method: parts.method,
                            uri: parts.uri,
                            headers: parts.headers,
                            body,
                        };
                        let resp = handler(req).await;
                        Ok::<_, std::convert::Infallible>(resp.map(Full::new))
                    }
                });
                let conn = tokio::spawn(async move {
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let _ = builder.serve_connection(TokioIo::new(socket), svc).await;
                });
                let mut open = open.lock().expect("connections");
                open.retain(|c| !c.is_finished());
                open.push(conn);
            }
        });
        Self {
            addr,
            task,
            connections,
        }
    }

    /// Close the listener and every open connection (later connects are refused).
    pub(crate) fn stop(&self) {
        self.task.abort();
        for c in self.connections.lock().expect("connections").drain(..) {
            c.abort();
        }
    }
}

impl Drop for HttpLoop {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An HTTP/1.1 server on 127.0.0.1 that records requests and answers with a closure. Stops when dropped.
pub struct StubServer {
    server: HttpLoop,
    requests: Arc<Mutex<Vec<StubRequest>>>,
}

impl std::fmt::Debug for StubServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StubServer")
            .field("addr", &self.server.addr)
            .finish_non_exhaustive()
    }
}

impl StubServer {
    /// Start serving `handler`.
    ///
    /// # Panics
    /// If no port can be bound on 127.0.0.1.
    pub async fn start(
        handler: impl Fn(&StubRequest) -> http::Response<Bytes> + Send + Sync + 'static,
    ) -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let log = Arc::clone(&requests);
        let server = HttpLoop::start(move |req: StubRequest| {
            let resp = handler(&req);
            if let Ok(mut l) = log.lock() {
                l.push(req);
            }
            std::future::ready(resp)
        })
        .await;
        Self { server, requests }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// The requests received so far.
    ///
    /// # Panics
    /// If the request log's lock is poisoned.
    pub fn requests(&self) -> Vec<StubRequest> {
        self.requests.lock().expect("requests").clone()
    }
}

/// A response with a status, headers and body.
///
/// # Panics
/// If a header name or value is invalid (a bug in the test).
pub fn response(
    status: u16,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> http::Response<Bytes> {
    let mut b = http::Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(body.into()).expect("valid response")
}
