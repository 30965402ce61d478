//! The audit log: one JSON line per request (who, what, the answer, and why a refusal), to a
//! rotating file and/or syslog.
//!
//! Requests never wait for it: a finished request's record goes into a bounded queue with a
//! non-blocking send, and one writer thread drains the queue to the outputs. When the queue is
//! full the record is dropped and counted ([`AuditStats::dropped`], the
//! `yatagarasu_audit_records_total{outcome="dropped"}` metric), so a slow disk or a stalled syslog
//! server costs records, never latency.
//!
//! ```
//! use yatagarasu::audit::{AuditLog, FileOutput, Rotation};
//!
//! let dir = tempfile::tempdir()?;
//! let audit = AuditLog::builder()
//!     .file(FileOutput::new(dir.path().join("audit.log")).rotation(Rotation::Daily))
//!     .start()?;
//! let proxy = yatagarasu::Proxy::builder().audit(audit.clone()).build();
//! # drop(proxy);
//! assert_eq!(audit.stats().dropped, 0);
//! # Ok::<(), std::io::Error>(())
//! ```

mod file;
mod record;
mod syslog;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::{Duration, SystemTime};

pub use file::{FileOutput, Rotation};
pub(crate) use record::{AuditError, AuditRecord};
pub(crate) use syslog::{FACILITIES, facility_code};
pub use syslog::{SyslogOutput, SyslogProtocol};

/// Records waiting for the writer by default.
const DEFAULT_QUEUE: usize = 16 * 1024;

/// Builds an [`AuditLog`].
#[derive(Debug, Default)]
pub struct AuditLogBuilder {
    file: Option<FileOutput>,
    syslog: Option<SyslogOutput>,
    queue: Option<usize>,
}

impl AuditLogBuilder {
    /// Write records to a file.
    pub fn file(mut self, output: FileOutput) -> Self {
        self.file = Some(output);
        self
    }

    /// Send records to syslog.
    pub fn syslog(mut self, output: SyslogOutput) -> Self {
        self.syslog = Some(output);
        self
    }

    /// Records that may wait for the writer before new ones are dropped (default 16384).
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue = Some(n.max(1));
        self
    }

    /// Open the outputs (create the file, resolve the syslog address) and start the writer
    /// thread. Fails when an output cannot be opened.
    pub fn start(self) -> std::io::Result<AuditLog> {
        let file = self.file.map(file::RotatingFile::open).transpose()?;
        let syslog = self.syslog.map(syslog::SyslogSink::open).transpose()?;
        let (tx, rx) = mpsc::sync_channel(self.queue.unwrap_or(DEFAULT_QUEUE));
        let counters = Arc::new(Counters::default());
        let writer = Writer {
            file,
            syslog,
            counters: Arc::clone(&counters),
            failing: [false; 2],
        };
        std::thread::Builder::new()
            .name("yatagarasu-audit".to_owned())
            .spawn(move || writer.run(&rx))?;
        Ok(AuditLog {
            inner: Arc::new(Inner { tx, counters }),
        })
    }
}

/// The audit log's handle: cheap to clone, shared by every request. The writer thread ends when
/// the last handle is dropped, after writing what is queued.
#[derive(Debug, Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    tx: SyncSender<Message>,
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    written: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
}

enum Message {
    Record(Box<AuditRecord>),
    /// Answered once everything queued before it is written and flushed.
    Flush(mpsc::Sender<()>),
}

/// What happened to the records so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct AuditStats {
    /// Taken by every output.
    pub written: u64,
    /// Dropped because the queue was full (the writer could not keep up).
    pub dropped: u64,
    /// Refused by at least one output (a write error, a full disk, syslog unreachable over TCP).
    pub failed: u64,
}

impl AuditLog {
    /// Start building an audit log.
    pub fn builder() -> AuditLogBuilder {
        AuditLogBuilder::default()
    }

    /// What happened to the records so far.
    pub fn stats(&self) -> AuditStats {
        let c = &self.inner.counters;
        AuditStats {
            written: c.written.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
        }
    }

    /// Wait (up to `timeout`) until every record queued so far is written and flushed; `false`
    /// when the writer did not get there in time. Blocks: call it at shutdown or from tests, not
    /// on a request path.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (ack, done) = mpsc::channel();
        let deadline = std::time::Instant::now() + timeout;
        let mut msg = Message::Flush(ack);
        loop {
            match self.inner.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(m)) => {
                    if std::time::Instant::now() >= deadline {
                        return false;
                    }
                    msg = m;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        done.recv_timeout(left).is_ok()
    }

    /// Queue a record, or count it as dropped when the queue is full. Never blocks.
    pub(crate) fn submit(&self, record: AuditRecord) {
        if self
            .inner
            .tx
            .try_send(Message::Record(Box::new(record)))
            .is_err()
        {
            self.inner.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The writer thread's state.
struct Writer {
    file: Option<file::RotatingFile>,
    syslog: Option<syslog::SyslogSink>,
    counters: Arc<Counters>,
    /// Whether the file, and syslog, failed last time: a failure is logged when it starts and
    /// when it ends, not once per record.
    failing: [bool; 2],
}

/// Records written since the file was last flushed: they count as written only once the flush
/// succeeds, so a full disk shows as failed records, not as written ones that vanished.
#[derive(Default)]
struct Batch {
    records: u64,
    /// Of those, the ones syslog refused.
    syslog_failed: u64,
    file_failed: bool,
    /// Flush requests to answer once the batch is flushed.
    acks: Vec<mpsc::Sender<()>>,
}

/// How long the writer pauses after a batch of more than one record.
const PAUSE: Duration = Duration::from_millis(5);

/// Most records written between two flushes of the file.
const MAX_BATCH: u64 = 1024;

impl Writer {
    fn run(mut self, rx: &Receiver<Message>) {
        while let Ok(msg) = rx.recv() {
            let mut next = Some(msg);
            // Under load, pause between batches instead of going back to sleep on the queue: a
            // thread asleep on the queue must be woken (a futex call) by the next request that
            // finishes, i.e. by nearly every request; a pausing one is not, and takes what was
            // queued meanwhile in one go. Records reach the outputs at most about 5 ms late.
            while let Some(msg) = next.take() {
                let mut batch = Batch::default();
                self.handle(msg, &mut batch);
                // Write what else is queued, then flush the file once.
                while batch.records < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(msg) => self.handle(msg, &mut batch),
                        Err(_) => break,
                    }
                }
                let busy = batch.records > 1;
                self.finish(batch);
                if busy {
                    std::thread::sleep(PAUSE);
                    next = rx.try_recv().ok();
                }
            }
        }
    }

    fn handle(&mut self, msg: Message, batch: &mut Batch) {
        let record = match msg {
            Message::Record(r) => r,
            Message::Flush(ack) => {
                batch.acks.push(ack);
                return;
            }
        };
        let line = record.to_json_line();
        batch.records += 1;
        if let Some(f) = &mut self.file {
            let written = f.write(&line, SystemTime::now());
            batch.file_failed |= !self.note(0, "file", written);
        }
        if let Some(s) = &mut self.syslog {
            let json = line.strip_suffix(b"\n").unwrap_or(&line);
            let sent = s.send(json, record.time);
            if !self.note(1, "syslog", sent) {
                batch.syslog_failed += 1;
            }
        }
    }

    fn finish(&mut self, mut batch: Batch) {
        if let Some(f) = &mut self.file {
            let flushed = f.flush();
            batch.file_failed |= !self.note(0, "file", flushed);
        }
        let failed = if batch.file_failed {
            batch.records
        } else {
            batch.syslog_failed
        };
        let c = &self.counters;
        c.failed.fetch_add(failed, Ordering::Relaxed);
        c.written
            .fetch_add(batch.records - failed, Ordering::Relaxed);
        for ack in batch.acks {
            let _ = ack.send(());
        }
    }

    /// Log an output's failure when it starts and its recovery when it ends; `false` on failure.
    fn note(&mut self, output: usize, name: &str, result: std::io::Result<()>) -> bool {
        let was_failing = std::mem::replace(&mut self.failing[output], result.is_err());
        match (result, was_failing) {
            (Err(e), false) => {
                tracing::warn!(output = name, error = %e, "audit log: output failing; records are counted as failed until it recovers");
            }
            (Ok(()), true) => tracing::info!(output = name, "audit log: output recovered"),
            _ => {}
        }
        !self.failing[output]
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::net::UdpSocket;

    use super::*;

    fn record(i: usize) -> AuditRecord {
        AuditRecord {
            time: SystemTime::now(),
            request_id: format!("req-{i}"),
            client_ip: None,
            principal: Some("alice".into()),
            method: http::Method::GET,
            path: format!("/media/object-{i}.bin"),
            bucket: Some("media".into()),
            key: Some(format!("object-{i}.bin")),
            status: 200,
            bytes: 1024,
            duration_us: 250,
            cache: Some("hit"),
            outcome: "complete",
            error: None,
        }
    }

    #[test]
    fn a_full_disk_fails_the_file_records_and_syslog_still_gets_them() {
        let listener = UdpSocket::bind("127.0.0.1:0").unwrap();
        listener
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let audit = AuditLog::builder()
            // Every write to /dev/full fails with ENOSPC, as on a full disk.
            .file(FileOutput::new("/dev/full"))
            .syslog(SyslogOutput::new(
                listener.local_addr().unwrap().to_string(),
                SyslogProtocol::Udp,
            ))
            .start()
            .unwrap();
        for i in 0..20 {
            audit.submit(record(i));
        }
        assert!(audit.flush(Duration::from_secs(10)));
        let s = audit.stats();
        assert_eq!((s.written, s.failed, s.dropped), (0, 20, 0));
        let mut buf = [0u8; 4096];
        for i in 0..20 {
            let n = listener.recv(&mut buf).unwrap();
            let msg = std::str::from_utf8(&buf[..n]).unwrap();
            assert!(msg.contains(&format!(r#""request_id":"req-{i}""#)), "{msg}");
        }
    }

    #[test]
    fn a_stalled_output_drops_and_counts_records_and_never_blocks_a_submit() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("audit.pipe");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // The reader opens the pipe but reads nothing until told: the writer stalls once the
        // pipe's buffer (64 KiB) is full, as on a hung disk.
        let (go, wait) = mpsc::channel::<()>();
        let reader = std::thread::spawn({
            let fifo = fifo.clone();
            move || {
                let pipe = std::fs::File::open(fifo).unwrap();
                wait.recv().unwrap();
                BufReader::new(pipe).lines().map(Result::unwrap).count()
            }
        });
        let audit = AuditLog::builder()
            .file(FileOutput::new(&fifo))
            .queue_capacity(8)
            .start()
            .unwrap();
        let submitted = 5000;
        for i in 0..submitted {
            audit.submit(record(i));
        }
        let stalled = audit.stats();
        assert!(stalled.dropped > 0, "{stalled:?}");
        go.send(()).unwrap();
        assert!(audit.flush(Duration::from_secs(30)));
        let s = audit.stats();
        assert_eq!(s.written + s.dropped, submitted as u64, "{s:?}");
        assert_eq!(s.failed, 0);
        drop(audit); // the writer closes the pipe: the reader sees its end
        assert_eq!(reader.join().unwrap() as u64, s.written);
    }
}
