//! The streaming object body, with idle timeouts and resume-on-break.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use futures_util::StreamExt as _;
use yatagarasu_core::{EntityTag, Error, ErrorKind, Result};

use crate::client::S3Client;

type ChunkStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// The body of a `GetObject`, as a stream of chunks.
///
/// Each chunk must arrive within the client's idle timeout. If the connection breaks or stalls, and the
/// object has an ETag, the remaining bytes are fetched with `Range` + `If-Match` (up to
/// [`RetryPolicy::max_resumes`](crate::RetryPolicy::max_resumes) times), so the caller sees one
/// uninterrupted stream. If the object changed meanwhile, or resuming is not possible, the stream
/// yields an error and ends: it never ends early without one, and never splices two versions.
pub struct ObjectBody {
    inner: Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>,
}

impl std::fmt::Debug for ObjectBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectBody").finish_non_exhaustive()
    }
}

struct State {
    client: S3Client,
    key: String,
    version_id: Option<String>,
    etag: Option<EntityTag>,
    stream: ChunkStream,
    /// Absolute offset of the next byte.
    next: u64,
    /// Absolute offset one past the last byte, when the length is known.
    end: Option<u64>,
    resumes_left: u32,
    idle: Duration,
    finished: bool,
}

impl ObjectBody {
    pub(crate) fn new(
        client: S3Client,
        key: String,
        version_id: Option<String>,
        etag: Option<EntityTag>,
        resp: reqwest::Response,
        start: u64,
        len: Option<u64>,
    ) -> Self {
        let (idle, resumes) = client.body_settings();
        let state = State {
            client,
            key,
            version_id,
            etag,
            stream: Box::pin(resp.bytes_stream()),
            next: start,
            end: len.map(|l| start + l),
            resumes_left: resumes,
            idle,
            finished: false,
        };
        Self {
            inner: Box::pin(futures_util::stream::unfold(state, step)),
        }
    }

    /// A body over chunks already in memory (for tests and for callers that build outputs themselves).
    pub fn from_chunks(chunks: Vec<Bytes>) -> Self {
        Self {
            inner: Box::pin(futures_util::stream::iter(chunks.into_iter().map(Ok))),
        }
    }

    /// A body over any stream of chunks: for [`Origin`](crate::Origin) decorators that watch or
    /// transform the bytes of the origin they wrap (count them, time them, fail over mid-body).
    pub fn from_stream(stream: impl Stream<Item = Result<Bytes>> + Send + 'static) -> Self {
        Self {
            inner: Box::pin(stream),
        }
    }

    /// Read the whole body into memory. For small objects; large ones should be streamed.
    pub async fn collect(mut self) -> Result<Bytes> {
        let mut chunks = Vec::new();
        while let Some(c) = self.next().await {
            chunks.push(c?);
        }
        Ok(crate::client::concat(chunks))
    }
}

impl Stream for ObjectBody {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

fn body_error(st: &State, kind: ErrorKind, message: String) -> Error {
    Error::new(kind, message)
        .with_bucket(st.client.bucket())
        .with_key(st.key.clone())
        .with_operation("GetObject")
}

async fn step(mut st: State) -> Option<(Result<Bytes>, State)> {
    if st.finished {
        return None;
    }
    loop {
        if st.end.is_some_and(|e| st.next >= e) {
            return None;
        }
        let failure = match tokio::time::timeout(st.idle, st.stream.next()).await {
            Ok(Some(Ok(chunk))) => {
                if chunk.is_empty() {
                    continue;
                }
                let len = chunk.len() as u64;
                if let Some(end) = st.end
                    && st.next + len > end
                {
                    st.finished = true;
                    let e = body_error(
                        &st,
                        ErrorKind::Upstream,
                        format!("origin sent more bytes than announced (expected {})", end),
                    );
                    return Some((Err(e), st));
                }
                st.next += len;
                return Some((Ok(chunk), st));
            }
            Ok(Some(Err(e))) => body_error(
                &st,
                ErrorKind::Upstream,
                format!(
                    "body broke at byte {}: {}",
                    st.next,
                    crate::describe_transport_error(&e)
                ),
            ),
            Ok(None) => match st.end {
                None => return None,
                Some(end) => body_error(
                    &st,
                    ErrorKind::Upstream,
                    format!("body ended at byte {} of {end}", st.next),
                ),
            },
            Err(_) => body_error(
                &st,
                ErrorKind::UpstreamTimeout,
                format!("no body bytes for {:?} at byte {}", st.idle, st.next),
            ),
        };
        let (Some(end), Some(etag), true) = (st.end, st.etag.clone(), st.resumes_left > 0) else {
            st.finished = true;
            return Some((Err(failure), st));
        };
        st.resumes_left -= 1;
        st.client
            .inner
            .counters
            .body_resumes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(bucket = st.client.bucket(), key = %st.key, offset = st.next, error = %failure, "resuming broken object body");
        match st
            .client
            .get_remainder(&st.key, st.version_id.as_deref(), &etag, st.next, end)
            .await
        {
            Ok(resp) => st.stream = Box::pin(resp.bytes_stream()),
            Err(e) => {
                st.finished = true;
                let e = if e.kind() == ErrorKind::PreconditionFailed {
                    tracing::warn!(bucket = st.client.bucket(), key = %st.key, "object changed while it was being read");
                    body_error(
                        &st,
                        ErrorKind::Upstream,
                        format!("object changed while it was being read (at byte {}); not splicing versions", st.next),
                    )
                    .with_upstream_code("PreconditionFailed")
                } else {
                    e
                };
                return Some((Err(e), st));
            }
        }
    }
}
