//! Request log lines written fast: a `tracing` layer that takes the access log's events (target
//! [`TARGET`]), writes each as one text or JSON line straight from its typed fields (no `fmt`
//! machinery, no allocation per line), and hands the lines to a writer in batches every 5 ms.
//! Other events go through `tracing-subscriber`'s formatter as usual. The binary installs it.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;

/// The target of request log events.
pub const TARGET: &str = "yatagarasu::request";

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

/// `YYYY-MM-DDTHH:MM:SS.uuuuuuZ` for `t` (UTC).
fn timestamp(out: &mut Vec<u8>, t: SystemTime) {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let two = |out: &mut Vec<u8>, v: u64| {
        out.push(b'0' + (v / 10 % 10) as u8);
        out.push(b'0' + (v % 10) as u8);
    };
    out.extend_from_slice(itoa::Buffer::new().format(year).as_bytes());
    out.push(b'-');
    two(out, month as u64);
    out.push(b'-');
    two(out, day as u64);
    out.push(b'T');
    two(out, rem / 3600);
    out.push(b':');
    two(out, rem / 60 % 60);
    out.push(b':');
    two(out, rem % 60);
    out.push(b'.');
    let micros = since.subsec_micros();
    let digits = itoa::Buffer::new().format(micros).len();
    out.extend(std::iter::repeat_n(b'0', 6 - digits));
    out.extend_from_slice(itoa::Buffer::new().format(micros).as_bytes());
    out.push(b'Z');
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
            timestamp(out, SystemTime::now());
            out.extend_from_slice(b"\",\"level\":\"INFO\",\"message\":\"request\"");
        } else {
            timestamp(out, SystemTime::now());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        for (secs, micros, want) in [
            (0, 0, "1970-01-01T00:00:00.000000Z"),
            (951_782_400, 7, "2000-02-29T00:00:00.000007Z"),
            (1_795_719_599, 999_999, "2026-11-26T18:59:59.999999Z"),
            (4_102_444_800, 120_000, "2100-01-01T00:00:00.120000Z"),
        ] {
            let mut out = Vec::new();
            timestamp(
                &mut out,
                UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros),
            );
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }
}
