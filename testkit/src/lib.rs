//! # yatagarasu-testkit
//!
//! Test support for the Yatagarasu crates and for code built on them: a real S3 origin in-process, built on
//! `s3s-fs` with SigV4 verification on, served over a real socket on 127.0.0.1 with `TCP_NODELAY`.
//! It counts the requests and body bytes it serves, and injects faults for real: error statuses,
//! delayed headers, bodies that break or stall mid-stream, and a full stop of the server.
//!
//! ```no_run
//! # async fn demo() {
//! use yatagarasu_testkit::{Fault, TestOrigin};
//!
//! let origin = TestOrigin::start("AKIDTEST", "secret-test").await;
//! origin.create_bucket("media");
//! origin.put_object("media", "hello.txt", b"hello");
//! origin.inject(Fault::BreakBodyAfter(2), 1);
//! println!("S3 at {}", origin.endpoint());
//! # }
//! ```

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::{Body, Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use md5::Digest as _;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

mod policy;
mod redis;
mod stub;
pub use policy::PolicyServer;
pub use redis::{RedisCluster, RedisSentinel, RedisServer};
pub use stub::{StubRequest, StubServer, response};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// A fault the origin applies to the next requests, instead of or on top of answering normally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this HTTP status and S3 error code, without touching the store.
    Status {
        /// The HTTP status.
        status: u16,
        /// The S3 error code in the XML body.
        code: String,
    },
    /// Wait this long before answering.
    DelayHeaders(Duration),
    /// Send the headers and this many body bytes, then break the connection.
    BreakBodyAfter(u64),
    /// Send the headers and this many body bytes, then send nothing more (the connection stays open).
    StallBodyAfter(u64),
    /// Answer normally: a placeholder to aim later faults at later requests.
    Pass,
    /// Hold the answer until [`TestOrigin::release_held`] is called.
    Hold,
}

impl Fault {
    /// An S3-style error answer.
    pub fn status(status: u16, code: &str) -> Self {
        Self::Status {
            status,
            code: code.to_owned(),
        }
    }
}

/// What the origin has served.
#[derive(Debug, Default)]
pub struct Stats {
    requests: AtomicU64,
    gets: AtomicU64,
    heads: AtomicU64,
    body_bytes: AtomicU64,
}

impl Stats {
    /// Requests received (all methods, faults included).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// GET requests received.
    pub fn gets(&self) -> u64 {
        self.gets.load(Ordering::SeqCst)
    }

    /// HEAD requests received.
    pub fn heads(&self) -> u64 {
        self.heads.load(Ordering::SeqCst)
    }

    /// Response body bytes sent.
    pub fn body_bytes(&self) -> u64 {
        self.body_bytes.load(Ordering::SeqCst)
    }
}

/// Optional attributes of a stored object.
#[derive(Debug, Clone, Default)]
pub struct ObjectAttributes {
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Cache-Control`.
    pub cache_control: Option<String>,
    /// `Content-Encoding`.
    pub content_encoding: Option<String>,
    /// `Content-Disposition`.
    pub content_disposition: Option<String>,
    /// User metadata (`x-amz-meta-*`), names without the prefix.
    pub user_metadata: Vec<(String, String)>,
}

struct Shared {
    stats: Stats,
    faults: Mutex<VecDeque<Fault>>,
    /// Bumped by `release_held`; held requests wait for a change.
    gate: tokio::sync::watch::Sender<u64>,
}

/// An S3 server on 127.0.0.1, storing objects in a temporary directory. Stops when dropped.
pub struct TestOrigin {
    addr: SocketAddr,
    root: PathBuf,
    _dir: Option<tempfile::TempDir>,
    shared: Arc<Shared>,
    tasks: Arc<Mutex<JoinSet<()>>>,
    access_key: String,
    secret_key: String,
}

impl std::fmt::Debug for TestOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestOrigin")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl TestOrigin {
    /// Start an origin that accepts only requests signed with this key pair, in a fresh temp directory.
    ///
    /// # Panics
    /// If the temp directory or the socket cannot be created (test environment broken).
    pub async fn start(access_key: &str, secret_key: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().to_path_buf();
        Self::start_at(root, Some(dir), access_key, secret_key, 0).await
    }

    /// Start an origin again over `root` on the `port` a stopped one used (waiting for the port to
    /// be free): an origin that died and came back.
    pub async fn restart_in(root: &Path, access_key: &str, secret_key: &str, port: u16) -> Self {
        drop(bind_when_free(port).await);
        Self::start_in(root, access_key, secret_key, port).await
    }

    /// Start an origin over an existing directory (each subdirectory is a bucket) on `port` (0 = any).
    ///
    /// # Panics
    /// If the directory is unusable or the port cannot be bound.
    pub async fn start_in(root: &Path, access_key: &str, secret_key: &str, port: u16) -> Self {
        Self::start_at(root.to_path_buf(), None, access_key, secret_key, port).await
    }

    /// Start an origin over an existing directory on `port` (0 = any) that needs no signature:
    /// unsigned requests are served (a signed one is refused: it has no keys to check it with).
    /// For benchmarks against servers that cannot sign, such as nginx in front of it.
    ///
    /// # Panics
    /// If the directory is unusable or the port cannot be bound.
    pub async fn start_open_in(root: &Path, port: u16) -> Self {
        Self::start_with_auth(root.to_path_buf(), None, None, port).await
    }

    async fn start_at(
        root: PathBuf,
        dir: Option<tempfile::TempDir>,
        ak: &str,
        sk: &str,
        port: u16,
    ) -> Self {
        Self::start_with_auth(root, dir, Some((ak, sk)), port).await
    }

    async fn start_with_auth(
        root: PathBuf,
        dir: Option<tempfile::TempDir>,
        keys: Option<(&str, &str)>,
        port: u16,
    ) -> Self {
        let fs = s3s_fs::FileSystem::new(&root).expect("s3s-fs root");
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        if let Some((ak, sk)) = keys {
            builder.set_auth(s3s::auth::SimpleAuth::from_single(ak, sk));
        }
        let service = builder.build();
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            stats: Stats::default(),
            faults: Mutex::new(VecDeque::new()),
            gate: tokio::sync::watch::channel(0).0,
        });
        let tasks = Arc::new(Mutex::new(JoinSet::new()));
        let accept_tasks = Arc::clone(&tasks);
        let accept_shared = Arc::clone(&shared);
        tasks.lock().expect("tasks").spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else { continue };
                let _ = socket.set_nodelay(true);
                let service = service.clone();
                let shared = Arc::clone(&accept_shared);
                let svc = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                    let service = service.clone();
                    let shared = Arc::clone(&shared);
                    async move { Ok::<_, std::convert::Infallible>(handle(service, shared, req).await) }
                });
                accept_tasks.lock().expect("tasks").spawn(async move {
                    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let _ = builder.serve_connection(TokioIo::new(socket), svc).await;
                });
            }
        });
        Self {
            addr,
            root,
            _dir: dir,
            shared,
            tasks,
            access_key: keys.map_or_else(String::new, |(ak, _)| ak.to_owned()),
            secret_key: keys.map_or_else(String::new, |(_, sk)| sk.to_owned()),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The access key the origin accepts.
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// The secret key the origin accepts.
    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// Counters of what was served.
    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// Apply `fault` to each of the next `times` requests (after faults queued earlier).
    ///
    /// # Panics
    /// If the fault queue's lock is poisoned.
    pub fn inject(&self, fault: Fault, times: usize) {
        let mut q = self.shared.faults.lock().expect("faults");
        q.extend(std::iter::repeat_n(fault, times));
    }

    /// Let every request held by [`Fault::Hold`] proceed.
    pub fn release_held(&self) {
        self.shared.gate.send_modify(|g| *g += 1);
    }

    /// Drop all pending faults.
    ///
    /// # Panics
    /// If the fault queue's lock is poisoned.
    pub fn clear_faults(&self) {
        self.shared.faults.lock().expect("faults").clear();
    }

    /// Stop the server: the listener closes and open connections are cut.
    ///
    /// # Panics
    /// If the task set's lock is poisoned.
    pub fn stop(&self) {
        self.tasks.lock().expect("tasks").abort_all();
    }

    /// Create a bucket (a directory).
    ///
    /// # Panics
    /// If the directory cannot be created.
    pub fn create_bucket(&self, bucket: &str) {
        std::fs::create_dir_all(self.root.join(bucket)).expect("create bucket dir");
    }

    /// Store an object with no extra attributes.
    pub fn put_object(&self, bucket: &str, key: &str, data: &[u8]) {
        self.put_object_with(bucket, key, data, &ObjectAttributes::default());
    }

    /// Store an object, written straight into s3s-fs's layout (data file, attributes, stored ETag =
    /// hex MD5 as S3 computes for single-part uploads).
    ///
    /// # Panics
    /// If the files cannot be written.
    pub fn put_object_with(&self, bucket: &str, key: &str, data: &[u8], attrs: &ObjectAttributes) {
        let path = self.root.join(bucket).join(key);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create object dir");
        }
        // Write then rename: readers holding the old file keep reading the old version, as with S3.
        let tmp = path.with_extension("yatagarasu-tmp");
        std::fs::write(&tmp, data).expect("write object");
        std::fs::rename(&tmp, &path).expect("rename object");
        let etag = hex::encode(md5::Md5::digest(data));
        let info = serde_json::json!({ "e_tag": etag });
        std::fs::write(self.sidecar(bucket, key, "internal"), info.to_string())
            .expect("write internal info");
        let mut meta = serde_json::Map::new();
        let mut put = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                meta.insert(k.to_owned(), v.clone().into());
            }
        };
        put("content_type", &attrs.content_type);
        put("cache_control", &attrs.cache_control);
        put("content_encoding", &attrs.content_encoding);
        put("content_disposition", &attrs.content_disposition);
        if !attrs.user_metadata.is_empty() {
            let um: serde_json::Map<String, serde_json::Value> = attrs
                .user_metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().into()))
                .collect();
            meta.insert("user_metadata".to_owned(), um.into());
        }
        std::fs::write(
            self.sidecar(bucket, key, "metadata"),
            serde_json::Value::Object(meta).to_string(),
        )
        .expect("write metadata");
    }

    /// Store a large object of `len` bytes of a deterministic pattern (see [`pattern_byte`]) without
    /// holding it in memory.
    ///
    /// # Panics
    /// If the files cannot be written.
    pub fn put_pattern_object(&self, bucket: &str, key: &str, len: u64) {
        use std::io::Write as _;
        let path = self.root.join(bucket).join(key);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create object dir");
        }
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).expect("create object"));
        let mut md5 = md5::Md5::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut off = 0u64;
        while off < len {
            let n = usize::try_from((len - off).min(buf.len() as u64)).expect("chunk");
            for (i, b) in buf[..n].iter_mut().enumerate() {
                *b = pattern_byte(off + i as u64);
            }
            md5.update(&buf[..n]);
            f.write_all(&buf[..n]).expect("write object");
            off += n as u64;
        }
        f.flush().expect("flush object");
        let info = serde_json::json!({ "e_tag": hex::encode(md5.finalize()) });
        std::fs::write(self.sidecar(bucket, key, "internal"), info.to_string())
            .expect("write internal info");
    }

    /// Store a huge object cheaply: a sparse file of `len` zero bytes with the given ETag (no hashing),
    /// for tests about which byte ranges are fetched rather than what they hold.
    ///
    /// # Panics
    /// If the files cannot be written.
    pub fn put_sparse_object(&self, bucket: &str, key: &str, len: u64, etag: &str) {
        let path = self.root.join(bucket).join(key);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create object dir");
        }
        let f = std::fs::File::create(&path).expect("create object");
        f.set_len(len).expect("size sparse object");
        let info = serde_json::json!({ "e_tag": etag });
        std::fs::write(self.sidecar(bucket, key, "internal"), info.to_string())
            .expect("write internal info");
    }

    fn sidecar(&self, bucket: &str, key: &str, kind: &str) -> PathBuf {
        self.root.join(format!(
            ".bucket-{}.object-{}.{kind}.json",
            base64url(bucket.as_bytes()),
            base64url(key.as_bytes())
        ))
    }
}

impl Drop for TestOrigin {
    fn drop(&mut self) {
        if let Ok(mut t) = self.tasks.lock() {
            t.abort_all();
        }
    }
}

/// Bind 127.0.0.1:`port` once a stopped server has let go of it (aborted tasks release their
/// sockets a moment later).
///
/// # Panics
/// If the port is still taken after 10 s.
pub async fn bind_when_free(port: u16) -> TcpListener {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => return l,
            Err(e) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "port {port} stays taken: {e}"
                );
                tokio::task::yield_now().await;
            }
        }
    }
}

/// The byte at `offset` of a pattern object: position-dependent, so a shifted or spliced stream is
/// detected, not just a short one.
pub fn pattern_byte(offset: u64) -> u8 {
    let x = offset.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x >> 56) as u8 ^ (offset as u8)
}

fn base64url(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

async fn handle(
    service: s3s::service::S3Service,
    shared: Arc<Shared>,
    req: http::Request<Incoming>,
) -> http::Response<ResponseBody> {
    shared.stats.requests.fetch_add(1, Ordering::SeqCst);
    match *req.method() {
        http::Method::GET => shared.stats.gets.fetch_add(1, Ordering::SeqCst),
        http::Method::HEAD => shared.stats.heads.fetch_add(1, Ordering::SeqCst),
        _ => 0,
    };
    let fault = shared.faults.lock().ok().and_then(|mut q| q.pop_front());
    let mut limit = None;
    match fault {
        Some(Fault::Status { status, code }) => {
            let xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected fault: User arn:aws:iam::123456789012:role/origin-reader is not authorized</Message><RequestId>fault</RequestId></Error>"
            );
            let mut resp = http::Response::new(counted(full(xml), &shared, None));
            *resp.status_mut() = http::StatusCode::from_u16(status)
                .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
            resp.headers_mut().insert(
                "content-type",
                http::HeaderValue::from_static("application/xml"),
            );
            return resp;
        }
        Some(Fault::DelayHeaders(d)) => tokio::time::sleep(d).await,
        Some(Fault::BreakBodyAfter(n)) => limit = Some((n, false)),
        Some(Fault::StallBodyAfter(n)) => limit = Some((n, true)),
        Some(Fault::Hold) => {
            let mut rx = shared.gate.subscribe();
            let seen = *rx.borrow_and_update();
            let _ = rx.wait_for(|g| *g != seen).await;
        }
        Some(Fault::Pass) | None => {}
    }
    match service.call(req.map(s3s::Body::from)).await {
        Ok(resp) => resp.map(|b| counted(b.boxed_unsync(), &shared, limit)),
        Err(e) => {
            let mut resp = http::Response::new(counted(full(format!("{e:?}")), &shared, None));
            *resp.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
            resp
        }
    }
}

fn full(s: String) -> ResponseBody {
    http_body_util::Full::new(Bytes::from(s))
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn counted(inner: ResponseBody, shared: &Arc<Shared>, limit: Option<(u64, bool)>) -> ResponseBody {
    CountedBody {
        inner,
        shared: Arc::clone(shared),
        sent: 0,
        limit,
    }
    .boxed_unsync()
}

/// Counts body bytes, and cuts or stalls the body after a limit.
struct CountedBody {
    inner: ResponseBody,
    shared: Arc<Shared>,
    sent: u64,
    /// (bytes, stall instead of break)
    limit: Option<(u64, bool)>,
}

impl Body for CountedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some((limit, stall)) = self.limit
            && self.sent >= limit
        {
            return if stall {
                Poll::Pending
            } else {
                Poll::Ready(Some(Err("injected fault: connection broken".into())))
            };
        }
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => return other,
        };
        let mut data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => return Poll::Ready(Some(Ok(frame))),
        };
        if let Some((limit, _)) = self.limit {
            let room = usize::try_from(limit - self.sent).unwrap_or(usize::MAX);
            if data.len() > room {
                data.truncate(room);
            }
        }
        self.sent += data.len() as u64;
        self.shared
            .stats
            .body_bytes
            .fetch_add(data.len() as u64, Ordering::SeqCst);
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }

    fn is_end_stream(&self) -> bool {
        self.limit.is_none() && self.inner.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_matches_rfc4648_vectors() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }
}
