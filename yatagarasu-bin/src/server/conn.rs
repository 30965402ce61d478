//! One connection's clock: what it is waiting for and since when, so that a socket that sends
//! nothing, idles, or stops reading gives its slot back.
//!
//! A connection is in one of three states, judged from counters the request path keeps:
//! - **no request in flight**: it may wait `header_read_timeout` for its first request (HTTP/1.1
//!   head, or HTTP/2 preface and first HEADERS), then `idle_timeout` between requests. Bytes that
//!   arrive without completing a request do not extend either (a slow drip of header bytes is cut),
//!   and on HTTP/1.1 a head, once its first bytes came, must be complete within
//!   `header_read_timeout` (kept here rather than by hyper, whose timer costs an allocation and a
//!   timer-wheel entry per request);
//! - **a response owed by us** (the handler runs, or a body waits for origin bytes): no limit here;
//!   the origin's own timeouts bound it;
//! - **responses waiting for the client** (nothing owed by us, nothing written): `send_timeout`.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::ServerOptions;

/// Counters shared by a connection's socket, its requests and its watchdog.
#[derive(Debug)]
pub(crate) struct Activity {
    start: Instant,
    /// Requests whose response has not finished (handler running or body not yet dropped).
    in_flight: AtomicUsize,
    /// Of those, how many wait on us: a handler still running, or a body whose last poll was pending.
    owed: AtomicUsize,
    /// Requests seen on the connection.
    requests: AtomicU64,
    /// Milliseconds after `start` of the last request beginning or ending (the idle clock).
    idle_since_ms: AtomicU64,
    /// Milliseconds after `start` of the last progress towards the client: response bytes
    /// written, or a request beginning or ending (the send clock).
    last_progress_ms: AtomicU64,
    /// The protocol its first request came in: 0 none yet, 1 HTTP/1.x, 2 HTTP/2.
    protocol: std::sync::atomic::AtomicU8,
    /// Milliseconds after `start` of the first bytes read while no request was in flight, i.e.
    /// when the next HTTP/1.1 head began ([`NO_HEAD`] when none is under way). The head must be
    /// complete within `header_read_timeout` of this.
    head_started_ms: AtomicU64,
}

/// [`Activity::head_started_ms`] when no request head is being read.
pub(crate) const NO_HEAD: u64 = u64::MAX;

/// Writes smaller than this do not count as progress: HTTP/2 control frames (PING, SETTINGS,
/// WINDOW_UPDATE) are smaller, and must not keep a connection whose streams are stalled alive.
const MIN_PROGRESS_WRITE: usize = 64;

/// What the watchdog should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing to do before this instant.
    WaitUntil(Instant),
    /// No request in flight and none came in time: close politely (GOAWAY / keep-alive off).
    CloseIdle,
    /// Responses are stuck behind a client that does not read: drop the connection.
    Abort,
}

impl Activity {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            owed: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            idle_since_ms: AtomicU64::new(0),
            last_progress_ms: AtomicU64::new(0),
            protocol: std::sync::atomic::AtomicU8::new(0),
            head_started_ms: AtomicU64::new(NO_HEAD),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn progress(&self) {
        self.last_progress_ms
            .store(self.now_ms(), Ordering::Relaxed);
    }

    /// A request began or ended: both clocks restart, and no head is under way.
    fn turn(&self) {
        let ms = self.now_ms();
        self.idle_since_ms.store(ms, Ordering::Relaxed);
        self.last_progress_ms.store(ms, Ordering::Relaxed);
        self.head_started_ms.store(NO_HEAD, Ordering::Relaxed);
    }

    /// Bytes were read from the client. With no request in flight on HTTP/1.x they begin the
    /// next request's head, and its clock starts (HTTP/2 reads PING and WINDOW_UPDATE frames
    /// between requests, which begin nothing: its idle connections are judged by the idle clock).
    fn bytes_read(&self) {
        if self.head_started_ms.load(Ordering::Relaxed) == NO_HEAD
            && self.in_flight.load(Ordering::Acquire) == 0
            && self.protocol.load(Ordering::Relaxed) != 2
        {
            self.head_started_ms.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    /// When the head being read began, in milliseconds after the connection's start ([`NO_HEAD`]:
    /// none is). The watchdog compares it with what it saw last to notice a new one.
    pub(crate) fn head_started(&self) -> u64 {
        self.head_started_ms.load(Ordering::Relaxed)
    }

    /// A request arrived: it is in flight and owed by us until its response is handed over.
    /// Remember the protocol of the connection's first request: `Some` (1 for HTTP/1.x, 2 for
    /// HTTP/2) the first time, `None` after.
    pub(crate) fn note_protocol(&self, version: http::Version) -> Option<u8> {
        let p = if version == http::Version::HTTP_2 {
            2
        } else {
            1
        };
        self.protocol
            .compare_exchange(0, p, Ordering::Relaxed, Ordering::Relaxed)
            .ok()
            .map(|_| p)
    }

    /// The protocol noted (0: no request came).
    pub(crate) fn protocol(&self) -> u8 {
        self.protocol.load(Ordering::Relaxed)
    }

    pub(crate) fn begin(self: &Arc<Self>) -> RequestGuard {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.turn();
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.owed.fetch_add(1, Ordering::AcqRel);
        RequestGuard {
            activity: Some(Arc::clone(self)),
        }
    }

    /// Judge the connection at `now`.
    pub(crate) fn verdict(&self, options: &ServerOptions, now: Instant) -> Verdict {
        let at =
            |clock: &AtomicU64| self.start + Duration::from_millis(clock.load(Ordering::Relaxed));
        let in_flight = self.in_flight.load(Ordering::Acquire);
        if in_flight == 0 {
            let last = at(&self.idle_since_ms);
            let limit = if self.requests.load(Ordering::Relaxed) == 0 {
                options.header_read_timeout
            } else {
                options.idle_timeout
            };
            let mut deadline = last.checked_add(limit);
            let head = self.head_started_ms.load(Ordering::Relaxed);
            if head != NO_HEAD {
                let head_by = (self.start + Duration::from_millis(head))
                    .checked_add(options.header_read_timeout);
                deadline = match (deadline, head_by) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            return match deadline {
                Some(deadline) if deadline > now => Verdict::WaitUntil(deadline),
                Some(_) => Verdict::CloseIdle,
                None => Verdict::WaitUntil(now + Duration::from_secs(3600)),
            };
        }
        if self.owed.load(Ordering::Acquire) > 0 {
            // Our turn: look again later (the origin's timeouts bound how long this lasts).
            return Verdict::WaitUntil(now + options.send_timeout.max(Duration::from_millis(100)));
        }
        match at(&self.last_progress_ms).checked_add(options.send_timeout) {
            Some(deadline) if deadline > now => Verdict::WaitUntil(deadline),
            Some(_) => Verdict::Abort,
            None => Verdict::WaitUntil(now + Duration::from_secs(3600)),
        }
    }
}

/// A request in flight; dropped without [`RequestGuard::track`] (the client left before the
/// response) it ends the request.
#[derive(Debug)]
pub(crate) struct RequestGuard {
    activity: Option<Arc<Activity>>,
}

impl RequestGuard {
    /// The response is ready: from now on its body carries the request's place in flight.
    pub(crate) fn track<B>(mut self, body: B) -> TrackedBody<B> {
        let activity = self.activity.take();
        if let Some(a) = &activity {
            a.owed.fetch_sub(1, Ordering::AcqRel);
        }
        TrackedBody {
            inner: body,
            activity,
            pending: false,
        }
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        if let Some(a) = self.activity.take() {
            a.owed.fetch_sub(1, Ordering::AcqRel);
            a.turn();
            a.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that tells its connection whether it waits on us or on the client.
    #[derive(Debug)]
    pub(crate) struct TrackedBody<B> {
        #[pin]
        inner: B,
        activity: Option<Arc<Activity>>,
        pending: bool,
    }

    impl<B> PinnedDrop for TrackedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(a) = this.activity.take() {
                if *this.pending {
                    a.owed.fetch_sub(1, Ordering::AcqRel);
                }
                a.turn();
                a.in_flight.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

impl<B: Body<Data = Bytes>> Body for TrackedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Some(a) = this.activity.as_ref() {
            match (&polled, *this.pending) {
                (Poll::Pending, false) => {
                    a.owed.fetch_add(1, Ordering::AcqRel);
                    *this.pending = true;
                }
                (Poll::Ready(_), true) => {
                    a.owed.fetch_sub(1, Ordering::AcqRel);
                    *this.pending = false;
                }
                _ => {}
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// The socket, noting every successful write as progress.
    #[derive(Debug)]
    pub(crate) struct TrackedIo<T> {
        #[pin]
        inner: T,
        activity: Arc<Activity>,
    }
}

impl<T> TrackedIo<T> {
    pub(crate) fn new(inner: T, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<T: AsyncRead> AsyncRead for TrackedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        ready!(this.inner.poll_read(cx, buf))?;
        if buf.filled().len() > before {
            this.activity.bytes_read();
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite> AsyncWrite for TrackedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let n = ready!(this.inner.poll_write(cx, buf))?;
        if n >= MIN_PROGRESS_WRITE {
            this.activity.progress();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let n = ready!(this.inner.poll_write_vectored(cx, bufs))?;
        if n >= MIN_PROGRESS_WRITE {
            this.activity.progress();
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}
