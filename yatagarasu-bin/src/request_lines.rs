//! Request log lines written fast: a `tracing` layer that takes the access log's events (target
//! [`TARGET`]), writes each as one text or JSON line straight from its typed fields (no `fmt`
//! machinery, no allocation per line), and hands the lines to a writer in batches every 5 ms.
//! Other events go through `tracing-subscriber`'s formatter as usual. The binary installs it.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;

/// The target of request log events.
pub const TARGET: &str = crate::REQUEST_LOG_TARGET;

/// Most bytes held between two hand-offs; lines past it are dropped (and counted).
const MAX_PENDING: usize = 8 * 1024 * 1024;

/// A [`tracing_subscriber::Layer`] writing request lines; see the module docs.
#[derive(Debug, Clone)]
pub struct RequestLines {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    json: bool,
    pending: Mutex<Vec<u8>>,
    dropped: std::sync::atomic::AtomicU64,
}

/// Hands the pending lines to the writer every 5 ms; flushes the rest when dropped.
#[derive(Debug)]
pub struct RequestLinesFlusher {
    shared: Arc<Shared>,
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RequestLines {
    /// A layer writing text (or JSON) lines to `writer`, and what flushes it: keep that until exit.
    pub fn new<W: Write + Send + 'static>(
        json: bool,
        mut writer: W,
    ) -> (Self, RequestLinesFlusher) {
        let shared = Arc::new(Shared {
            json,
            pending: Mutex::new(Vec::with_capacity(64 * 1024)),
            dropped: std::sync::atomic::AtomicU64::new(0),
        });
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let flushing = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("yatagarasu-request-log".into())
            .spawn(move || {
                let mut batch = Vec::with_capacity(64 * 1024);
                loop {
                    let last = !matches!(
                        stopped.recv_timeout(Duration::from_millis(5)),
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout)
                    );
                    std::mem::swap(&mut batch, &mut *flushing.lock());
                    if !batch.is_empty() {
                        let _ = writer.write_all(&batch);
                        let _ = writer.flush();
                        batch.clear();
                    }
                    if last {
                        return;
                    }
                }
            })
            .ok();
        let flusher = RequestLinesFlusher {
            shared: Arc::clone(&shared),
            stop: Some(stop),
            thread,
        };
        (Self { shared }, flusher)
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl RequestLinesFlusher {
    /// Lines dropped because the writer fell more than 8 MiB behind.
    pub fn dropped(&self) -> u64 {
        self.shared
            .dropped
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for RequestLinesFlusher {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Writes each field of the event as it is visited, straight into the line.
struct LineWriter<'b> {
    out: &'b mut Vec<u8>,
    json: bool,
}

impl LineWriter<'_> {
    fn key(&mut self, name: &str) {
        if self.json {
            self.out.extend_from_slice(b",\"");
            self.out.extend_from_slice(name.as_bytes());
            self.out.extend_from_slice(b"\":");
        } else {
            self.out.push(b' ');
            self.out.extend_from_slice(name.as_bytes());
            self.out.push(b'=');
        }
    }
}

impl Visit for LineWriter<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field.name());
        if self.json {
            let _ = serde_json::to_writer(&mut *self.out, value);
        } else {
            self.out.extend_from_slice(value.as_bytes());
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field.name());
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field.name());
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        // The message ("request") is written by the line's head.
        if field.name() == "message" {
            return;
        }
        let text = format!("{value:?}");
        self.record_str(field, &text);
    }
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for RequestLines {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != TARGET {
            return;
        }
        let mut pending = self.shared.lock();
        if pending.len() > MAX_PENDING {
            drop(pending);
            self.shared
                .dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return;
        }
        let json = self.shared.json;
        let out = &mut *pending;
        if json {
            out.extend_from_slice(b"{\"timestamp\":\"");
            crate::utc::write_rfc3339(out, SystemTime::now(), crate::utc::Fraction::Micros);
            out.extend_from_slice(b"\",\"level\":\"INFO\",\"message\":\"request\"");
        } else {
            crate::utc::write_rfc3339(out, SystemTime::now(), crate::utc::Fraction::Micros);
            out.extend_from_slice(b"  INFO request:");
        }
        event.record(&mut LineWriter { out, json });
        if json {
            out.extend_from_slice(b",\"target\":\"");
            out.extend_from_slice(TARGET.as_bytes());
            out.extend_from_slice(b"\"}\n");
        } else {
            out.push(b'\n');
        }
    }
}
