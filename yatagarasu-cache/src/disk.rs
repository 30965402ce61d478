//! The disk tier: one self-checking record per file, an in-memory index rebuilt at start, LRU by use.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::entry::{self, CacheEntry, HEADER_LEN, RecordCheck};
use crate::error::CacheError;
use crate::read_buffers::ReadBuffers;
use crate::stats::{Counters, TierStats};
use crate::{BoxFuture, CacheTier};

type Hash = [u8; 32];

struct Slot {
    key: Vec<u8>,
    /// The record's length.
    size: u64,
    /// What the record takes on disk (whole blocks): what the size budget counts.
    usage: u64,
    tick: u64,
    expires_at: Option<SystemTime>,
    /// The whole record, for small records (object metadata, small bodies): a hit needs no I/O.
    inline: Option<Bytes>,
    /// The file whose bytes passed the CRC-32 in this process: while the record's file is still
    /// that one (same inode, size, modification and change times), reads skip the checksum.
    verified: Option<FileId>,
    /// Which insertion of the key this slot is: a read that started before a newer record
    /// replaced the slot does not leave its (older) file or verified state on the new one.
    generation: u64,
    /// The record's file, kept open after a hit (see [`Index::keep_file`]).
    file: Option<Arc<File>>,
}

/// Which file, in which state, a record was read from: inode and device, length, modification and
/// status-change times. Our own writes never modify a record file in place (a new file is renamed
/// over it, so a new inode and a new change time); any other change of a file shows here too,
/// within the file system's timestamp resolution.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct FileId {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileId {
    #[cfg(unix)]
    fn of(meta: &std::fs::Metadata) -> Option<Self> {
        use std::os::unix::fs::MetadataExt as _;
        Some(Self {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        })
    }

    /// Elsewhere every read is checked.
    #[cfg(not(unix))]
    fn of(_meta: &std::fs::Metadata) -> Option<Self> {
        None
    }
}

/// Records up to this size are also kept in memory, within [`INLINE_BUDGET`] bytes in total.
const INLINE_MAX: usize = 4 * 1024;
const INLINE_BUDGET: u64 = 32 * 1024 * 1024;

/// Most record files kept open by default, and the share of the process's file descriptor
/// limit they may take (the rest is for connections).
const MAX_OPEN_FILES: usize = 1024;
const OPEN_FILES_SHARE_OF_LIMIT: u64 = 8;

/// The default [`DiskOptions::max_open_files`]: [`MAX_OPEN_FILES`], or an eighth of the soft
/// limit on file descriptors when that is lower.
fn open_files_budget() -> usize {
    #[cfg(target_os = "linux")]
    {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        limit.map_or(MAX_OPEN_FILES, |l| {
            usize::try_from(l / OPEN_FILES_SHARE_OF_LIMIT)
                .unwrap_or(MAX_OPEN_FILES)
                .min(MAX_OPEN_FILES)
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        0 // only the page-cache read path (Linux) reads through kept files
    }
}

#[derive(Default)]
struct Index {
    /// Bytes of records held inline.
    inline_bytes: u64,
    slots: HashMap<Hash, Slot>,
    /// Last use → entry, oldest first.
    lru: BTreeMap<u64, Hash>,
    tick: u64,
    bytes: u64,
    /// Slots holding an open file, and the order they got it (oldest first; may name slots that
    /// since lost theirs).
    open_files: usize,
    open_order: VecDeque<Hash>,
    max_open_files: usize,
}

impl Index {
    fn touch(&mut self, h: &Hash) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(slot) = self.slots.get_mut(h) {
            self.lru.remove(&slot.tick);
            slot.tick = tick;
            self.lru.insert(tick, *h);
        }
    }

    fn insert(
        &mut self,
        h: Hash,
        key: Vec<u8>,
        (size, usage): (u64, u64),
        expires_at: Option<SystemTime>,
    ) {
        self.remove(&h);
        self.tick += 1;
        self.lru.insert(self.tick, h);
        self.bytes += usage;
        self.slots.insert(
            h,
            Slot {
                key,
                size,
                usage,
                tick: self.tick,
                expires_at,
                inline: None,
                verified: None,
                generation: self.tick,
                file: None,
            },
        );
    }

    /// Keep `file` (the record file a hit just read and checked) open for the next hits on
    /// slot `h` of `generation`: they then cost a `fstat` and a read instead of a path lookup,
    /// `open`, `stat` and `close` (about a fifth of the system time of a 64 KiB disk hit). At
    /// most `max_open_files` are kept; past that the longest-held is closed. Inline records need
    /// no file.
    fn keep_file(&mut self, h: &Hash, generation: u64, file: File) {
        let Some(slot) = self.slots.get_mut(h) else {
            return;
        };
        if self.max_open_files == 0
            || slot.generation != generation
            || slot.file.is_some()
            || slot.inline.is_some()
        {
            return;
        }
        slot.file = Some(Arc::new(file));
        self.open_files += 1;
        self.open_order.push_back(*h);
        while self.open_files > self.max_open_files {
            let Some(oldest) = self.open_order.pop_front() else {
                break;
            };
            self.forget_file(&oldest);
        }
        if self.open_order.len() > 2 * self.max_open_files {
            // Names of slots that were removed since: drop them so the queue stays bounded.
            let slots = &self.slots;
            self.open_order
                .retain(|h| slots.get(h).is_some_and(|s| s.file.is_some()));
        }
    }

    /// Close slot `h`'s kept file, if it has one (past the bound; or it no longer reads as the
    /// record: unlinked, or not in the page cache any more; or the record is now inline).
    fn forget_file(&mut self, h: &Hash) {
        if let Some(slot) = self.slots.get_mut(h)
            && slot.file.take().is_some()
        {
            self.open_files -= 1;
        }
    }

    /// Keep a small record in memory too, within the budget.
    fn inline(&mut self, h: &Hash, record: &Bytes) {
        if record.len() > INLINE_MAX || self.inline_bytes + record.len() as u64 > INLINE_BUDGET {
            return;
        }
        if let Some(slot) = self.slots.get_mut(h)
            && slot.inline.is_none()
            && slot.size == record.len() as u64
        {
            slot.inline = Some(record.clone());
            self.inline_bytes += record.len() as u64;
            self.forget_file(h);
        }
    }

    fn remove(&mut self, h: &Hash) -> Option<Slot> {
        let slot = self.slots.remove(h)?;
        self.lru.remove(&slot.tick);
        self.bytes -= slot.usage;
        if let Some(i) = &slot.inline {
            self.inline_bytes -= i.len() as u64;
        }
        if slot.file.is_some() {
            self.open_files -= 1;
        }
        Some(slot)
    }
}

/// Settings of a [`DiskTier`] beyond its size limits. `DiskOptions::default()`, then fields or
/// setters.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DiskOptions {
    /// How records are checked (CRC-32 by default; an HMAC under a secret rejects planted files).
    pub record_check: RecordCheck,
    /// Longest one disk operation may take; past it the operation counts as a miss (a read) or a
    /// skipped write, and the response goes on without the disk. Default 5 s.
    pub io_timeout: std::time::Duration,
    /// Most disk operations in flight at once, so a hung disk holds at most this many of the
    /// runtime's blocking threads. Default 64.
    pub max_concurrent_io: usize,
    /// Most record files kept open between hits (0: none). A hit on a record whose file is
    /// open costs a `fstat` and a read instead of a path lookup, `open`, `stat` and `close`.
    /// Default 1024, or an eighth of the process's soft limit on open files when that is lower
    /// (the rest is for connections).
    pub max_open_files: usize,
}

impl Default for DiskOptions {
    fn default() -> Self {
        Self {
            record_check: RecordCheck::default(),
            io_timeout: std::time::Duration::from_secs(5),
            max_concurrent_io: 64,
            max_open_files: open_files_budget(),
        }
    }
}

impl DiskOptions {
    /// Set [`Self::record_check`].
    #[must_use]
    pub fn with_record_check(mut self, check: RecordCheck) -> Self {
        self.record_check = check;
        self
    }

    /// Set [`Self::io_timeout`].
    #[must_use]
    pub fn with_io_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.io_timeout = timeout;
        self
    }

    /// Set [`Self::max_concurrent_io`].
    #[must_use]
    pub fn with_max_concurrent_io(mut self, operations: usize) -> Self {
        self.max_concurrent_io = operations;
        self
    }

    /// Set [`Self::max_open_files`].
    #[must_use]
    pub fn with_max_open_files(mut self, files: usize) -> Self {
        self.max_open_files = files;
        self
    }
}

struct Inner {
    dir: PathBuf,
    check: RecordCheck,
    max_bytes: u64,
    max_item_bytes: u64,
    index: Mutex<Index>,
    counters: Counters,
    io_timeout: std::time::Duration,
    io_slots: Arc<tokio::sync::Semaphore>,
    /// Where large records are read into.
    buffers: ReadBuffers,
}

/// A tier on local disk, bounded in bytes, that survives restarts.
///
/// Each entry is one file holding a record (header, key, metadata, body, CRC-32). Writes go to a
/// temporary file that is then renamed into place, so a reader (or a restart after `kill -9`) sees the
/// old record or the new one, never a torn one; every read verifies length and checksum and drops a
/// record that fails (power loss can leave a renamed file without its data). The index (key, size,
/// expiry, last use) lives in memory and is rebuilt at start from the record headers alone; recency
/// after a restart is approximated by file modification time. Eviction drops the least recently
/// *used* entries. An I/O error (disk full, read-only) makes the operation a miss or a skipped write,
/// counted in [`TierStats::errors`].
///
/// Records of 16 KiB and more are read into buffers the tier reuses once the entry read is
/// dropped (at most 64 buffers and 16 MiB kept idle), so hits do not zero-fill a fresh allocation
/// each; a buffer is at most 1/16 larger than its record.
///
/// On Linux a hit keeps its record's file open for the next hits ([`DiskOptions::max_open_files`],
/// the longest-held closed first), which then cost a `fstat` and a read instead of a path lookup,
/// `open`, `stat` and `close`. A kept file is never read once its record is replaced, deleted or
/// evicted (the file closes with the record), nor once it is unlinked or changed behind the
/// tier's back (the `fstat` shows it: the path is read again, and checked again).
#[derive(Clone)]
pub struct DiskTier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DiskTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskTier")
            .field("dir", &self.inner.dir)
            .field("max_bytes", &self.inner.max_bytes)
            .finish_non_exhaustive()
    }
}

fn lock(m: &Mutex<Index>) -> MutexGuard<'_, Index> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Lowercase hex of `bytes`.
fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(2 * bytes.len());
    for b in bytes {
        hex.push(char::from(DIGITS[usize::from(b >> 4)]));
        hex.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    hex
}

fn hash(key: &[u8]) -> Hash {
    Sha256::digest(key).into()
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CacheError> + Send + 'static,
) -> Result<T, CacheError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| CacheError::Io(format!("disk task failed: {e}")))?
}

impl Inner {
    /// Run disk I/O on the blocking pool, at most `max_concurrent_io` at once and within
    /// `io_timeout` (waiting for a slot included). A timed-out operation keeps its slot until the
    /// disk answers, so a hung disk cannot take every blocking thread.
    async fn io<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, CacheError> + Send + 'static,
    ) -> Result<T, CacheError> {
        let slots = Arc::clone(&self.io_slots);
        let run = async move {
            let slot = slots
                .acquire_owned()
                .await
                .map_err(|_| CacheError::Io("disk tier closed".into()))?;
            let task = tokio::task::spawn_blocking(move || {
                let out = f();
                drop(slot);
                out
            });
            task.await
                .map_err(|e| CacheError::Io(format!("disk task failed: {e}")))?
        };
        match tokio::time::timeout(self.io_timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(CacheError::Io(format!(
                "disk operation took longer than {:?}",
                self.io_timeout
            ))),
        }
    }
}

/// Builds a [`DiskTier`]: [`DiskTier::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct DiskTierBuilder {
    dir: PathBuf,
    capacity_bytes: u64,
    max_item_bytes: Option<u64>,
    options: DiskOptions,
}

impl DiskTierBuilder {
    /// Refuse entries over this many bytes (metadata and body). Default: the capacity.
    pub fn max_item_bytes(mut self, bytes: u64) -> Self {
        self.max_item_bytes = Some(bytes);
        self
    }

    /// Record check, I/O timeout and concurrency ([`DiskOptions`]).
    pub fn options(mut self, options: DiskOptions) -> Self {
        self.options = options;
        self
    }

    /// Open (creating if needed) the tier. Rebuilds the index from the records present; drops
    /// damaged and expired ones.
    ///
    /// The directory must be missing, empty, or a directory this tier created (it holds a
    /// `.yatagarasu-cache` marker): the tier deletes files it cannot read, so it refuses to start
    /// in a directory that holds anything else.
    pub async fn open(self) -> Result<DiskTier, CacheError> {
        let max_item_bytes = self.max_item_bytes.unwrap_or(self.capacity_bytes);
        DiskTier::open_inner(self.dir, self.capacity_bytes, max_item_bytes, self.options).await
    }
}

impl DiskTier {
    /// Start building a tier in `dir` holding at most `capacity_bytes` of records.
    ///
    /// ```no_run
    /// use yatagarasu_cache::DiskTier;
    ///
    /// # async fn run() -> Result<(), yatagarasu_cache::CacheError> {
    /// let disk = DiskTier::builder("/var/cache/yatagarasu", 10 << 30)
    ///     .max_item_bytes(512 << 20)
    ///     .open()
    ///     .await?;
    /// # let _ = disk;
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder(dir: impl AsRef<Path>, capacity_bytes: u64) -> DiskTierBuilder {
        DiskTierBuilder {
            dir: dir.as_ref().to_path_buf(),
            capacity_bytes,
            max_item_bytes: None,
            options: DiskOptions::default(),
        }
    }

    async fn open_inner(
        dir: PathBuf,
        max_bytes: u64,
        max_item_bytes: u64,
        options: DiskOptions,
    ) -> Result<Self, CacheError> {
        let scan_dir = dir.clone();
        let scan_check = options.record_check.clone();
        let mut index = blocking(move || {
            claim(&scan_dir)?;
            scan(&scan_dir, &scan_check)
        })
        .await?;
        index.max_open_files = options.max_open_files;
        let tier = Self {
            inner: Arc::new(Inner {
                dir,
                check: options.record_check,
                max_bytes,
                max_item_bytes,
                index: Mutex::new(index),
                counters: Counters::default(),
                io_timeout: options.io_timeout,
                io_slots: Arc::new(tokio::sync::Semaphore::new(
                    options
                        .max_concurrent_io
                        .clamp(1, tokio::sync::Semaphore::MAX_PERMITS),
                )),
                buffers: ReadBuffers::default(),
            }),
        };
        tier.evict_over_budget().await;
        Ok(tier)
    }

    /// `dir/objects/xx/yyyy…`: the hash in hex, its first byte naming the subdirectory. Built
    /// on every disk read that has no kept file, so with one allocation for the path.
    fn path_for(dir: &Path, h: &Hash) -> PathBuf {
        let hex = to_hex(h);
        let mut path = PathBuf::with_capacity(dir.as_os_str().len() + "/objects/".len() + 65);
        path.push(dir);
        path.push("objects");
        path.push(&hex[..2]);
        path.push(&hex[2..]);
        path
    }

    async fn evict_over_budget(&self) {
        let mut victims = Vec::new();
        {
            let mut idx = lock(&self.inner.index);
            while idx.bytes > self.inner.max_bytes {
                let Some((_, h)) = idx.lru.pop_first() else {
                    break;
                };
                if idx.remove(&h).is_some() {
                    victims.push(h);
                    Counters::inc(&self.inner.counters.evictions);
                }
            }
        }
        if !victims.is_empty() {
            let dir = self.inner.dir.clone();
            let _ = self
                .inner
                .io(move || {
                    for h in victims {
                        let _ = std::fs::remove_file(Self::path_for(&dir, &h));
                    }
                    Ok(())
                })
                .await;
        }
    }

    /// Read record `h` from its file: from the page cache on this thread when it can be done
    /// without blocking (then with the file, still open, for the index to keep), else on the
    /// blocking pool. `Ok(None)`: no such file.
    async fn read_by_path(&self, h: &Hash) -> (Result<Option<Read>, CacheError>, Option<File>) {
        let path = Self::path_for(&self.inner.dir, h);
        match read_if_cached(&path, &self.inner.buffers) {
            Ok(Some((read, file))) => (Ok(Some(read)), Some(file)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Ok(None), None),
            Err(e) => (Err(e.into()), None),
            Ok(None) => {
                let buffers = self.inner.buffers.clone();
                let read = self
                    .inner
                    .io(move || match read_regular_file(&path, &buffers) {
                        Ok(read) => Ok(Some(read)),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                        Err(e) => Err(e.into()),
                    })
                    .await;
                (read, None)
            }
        }
    }

    async fn remove_file(&self, h: Hash) {
        let path = Self::path_for(&self.inner.dir, &h);
        let _ = self
            .inner
            .io(move || {
                let _ = std::fs::remove_file(path);
                Ok(())
            })
            .await;
    }
}

/// The file that marks a directory as a disk tier's: the tier only ever deletes inside a
/// directory that holds it.
const MARKER: &str = ".yatagarasu-cache";
const MARKER_TEXT: &str =
    "yatagarasu disk cache: files here are managed (and deleted) by yatagarasu\n";

/// Make `dir` ours, or refuse it: a missing or empty directory is created or adopted (marker
/// written); one with the marker is ours; one holding only `objects/` and `tmp/` directories is a
/// tier from before the marker and is adopted; anything else is refused, since the tier deletes
/// files it cannot read.
fn claim(dir: &Path) -> Result<(), CacheError> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            create_private_dir(dir)?;
        }
        Err(e) => return Err(e.into()),
        Ok(_) => {}
    }
    if !std::fs::metadata(dir)?.is_dir() {
        return Err(CacheError::Io(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    let marker = dir.join(MARKER);
    if std::fs::symlink_metadata(&marker).is_ok_and(|m| m.is_file()) {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let ours = (name == "objects" || name == "tmp") && entry.file_type()?.is_dir();
        if !ours {
            return Err(CacheError::Io(format!(
                "{} is not empty and is not a yatagarasu cache directory (no {MARKER} file; found \
                 `{}`): refusing to use it, since the disk tier deletes files it cannot read",
                dir.display(),
                name.to_string_lossy()
            )));
        }
    }
    write_private(&marker, MARKER_TEXT.as_bytes())?;
    Ok(())
}

/// Refuse a path we manage that is a symbolic link (or not a directory).
fn own_dir(path: &Path) -> Result<(), CacheError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(CacheError::Io(format!(
            "{} is a symbolic link: refusing to follow it",
            path.display()
        ))),
        Ok(m) if !m.is_dir() => Err(CacheError::Io(format!(
            "{} is not a directory",
            path.display()
        ))),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_private_dir(path),
        Err(e) => Err(e.into()),
    }
}

/// Read every record header under `dir/objects`, removing temporary files and damaged records.
/// Nothing outside `dir/objects/??/` and `dir/tmp/` is ever deleted, and no symbolic link is
/// followed: a link found there is removed itself (its target is left alone).
fn scan(dir: &Path, check: &RecordCheck) -> Result<Index, CacheError> {
    let objects = dir.join("objects");
    let tmp = dir.join("tmp");
    own_dir(&objects)?;
    own_dir(&tmp)?;
    for file in std::fs::read_dir(&tmp)? {
        let file = file?;
        if file.file_type()?.is_dir() {
            continue; // not something we write there
        }
        let _ = std::fs::remove_file(file.path());
    }
    let now = SystemTime::now();
    let mut found: Vec<(Hash, OnDisk)> = Vec::new();
    for sub in std::fs::read_dir(&objects)? {
        let sub = sub?;
        let kind = sub.file_type()?;
        if kind.is_symlink() {
            let _ = std::fs::remove_file(sub.path());
            continue;
        }
        if !kind.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(sub.path())? {
            let file = file?;
            let path = file.path();
            if !file.file_type()?.is_file() {
                // A link, a FIFO, a device, a directory: never ours, never opened.
                if !file.file_type()?.is_dir() {
                    let _ = std::fs::remove_file(&path);
                }
                continue;
            }
            match read_header(&path, check) {
                Some(r) if r.expires_at.is_none_or(|e| e > now) => {
                    let h = hash(&r.key);
                    if path == DiskTier::path_for(dir, &h) {
                        found.push((h, r));
                        continue;
                    }
                    let _ = std::fs::remove_file(&path);
                }
                _ => {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
    }
    // Oldest first, so recency after a restart follows modification time.
    found.sort_by_key(|(_, r)| r.modified);
    let mut index = Index::default();
    for (h, r) in found {
        index.insert(h, r.key, (r.size, r.usage), r.expires_at);
    }
    Ok(index)
}

/// What the index needs of a record found on disk.
struct OnDisk {
    key: Vec<u8>,
    size: u64,
    usage: u64,
    expires_at: Option<SystemTime>,
    modified: SystemTime,
}

/// A record's key, length, disk usage, expiry and mtime, if its header is sane and matches the
/// file's length.
fn read_header(path: &Path, check: &RecordCheck) -> Option<OnDisk> {
    let mut f = std::fs::File::open(path).ok()?;
    let meta = f.metadata().ok()?;
    let mut head = [0u8; HEADER_LEN];
    f.read_exact(&mut head).ok()?;
    let h = entry::decode_header(&head, check).ok()?;
    if h.total_len() != Some(meta.len()) || h.key_len > 64 * 1024 {
        return None;
    }
    let mut key = vec![0u8; h.key_len];
    f.read_exact(&mut key).ok()?;
    Some(OnDisk {
        key,
        size: meta.len(),
        usage: disk_usage(&meta),
        expires_at: h.expires_at,
        modified: meta.modified().ok()?,
    })
}

/// Bytes a file really takes: its allocated blocks, and never less than its length rounded up to
/// a 4 KiB block (a file just written may not show its blocks yet).
fn disk_usage(meta: &std::fs::Metadata) -> u64 {
    let rounded = meta.len().div_ceil(4096).saturating_mul(4096).max(4096);
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        rounded.max(meta.blocks().saturating_mul(512))
    }
    #[cfg(not(unix))]
    {
        rounded
    }
}

/// Create a directory (and its parents) readable by this user only.
fn create_private_dir(path: &Path) -> Result<(), CacheError> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        b.mode(0o700);
    }
    b.create(path)?;
    Ok(())
}

/// Write a new file readable by this user only (cached objects may be private).
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(0o600);
    }
    o.open(path)?.write_all(data)
}

/// Read a record file without leaving the calling (async) thread, when that cannot block: the
/// file is a regular file and every byte of it is in the page cache. `Ok(None)` when it is not so
/// (not cached, not a regular file, or a kernel without `RWF_NOWAIT`): the caller then reads it on
/// the blocking pool, under the I/O timeout.
///
/// This is what makes a disk hit cost about what a memory hit does (no hand-off to a blocking
/// thread and back: measured as a third of the proxy's CPU on 64 KiB disk hits). What still runs
/// on the calling thread is the `open` (a path lookup in the dentry cache for a recently read
/// record) and `fstat`; the read itself never waits for the device. The directory should be on a
/// local file system: a lookup on a hung network file system would block the thread.
#[cfg(target_os = "linux")]
fn read_if_cached(path: &Path, buffers: &ReadBuffers) -> std::io::Result<Option<(Read, File)>> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let f = std::fs::OpenOptions::new()
        .read(true)
        // Never follow a link; a FIFO in place of a record opens at once instead of blocking
        // (then is not a regular file, and goes to the blocking path like any other oddity).
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    Ok(read_open_if_cached(&f, buffers)?.map(|read| (read, f)))
}

/// Elsewhere every read goes to the blocking pool.
#[cfg(not(target_os = "linux"))]
fn read_if_cached(_path: &Path, _buffers: &ReadBuffers) -> std::io::Result<Option<(Read, File)>> {
    Ok(None)
}

/// [`read_if_cached`] from a record file already open (opened by it, kept by the index).
/// `Ok(None)` also when the file is no longer linked (removed by hand: the tier's own removals
/// close kept files first).
#[cfg(target_os = "linux")]
fn read_open_if_cached(f: &File, buffers: &ReadBuffers) -> std::io::Result<Option<Read>> {
    use rustix::io::{Errno, ReadWriteFlags, preadv2};
    use std::os::unix::fs::MetadataExt as _;
    let meta = f.metadata()?;
    if !meta.is_file() || meta.nlink() == 0 {
        return Ok(None);
    }
    let Ok(len) = usize::try_from(meta.len()) else {
        return Ok(None);
    };
    let read = read_record(len, buffers, |buf, offset| {
        let mut bufs = [std::io::IoSliceMut::new(buf)];
        preadv2(f, &mut bufs, offset, ReadWriteFlags::NOWAIT).map_err(|e| match e {
            // Not all in the page cache, or no `RWF_NOWAIT` here: read on the blocking pool.
            Errno::AGAIN | Errno::OPNOTSUPP | Errno::NOSYS | Errno::INVAL => {
                std::io::ErrorKind::WouldBlock.into()
            }
            e => e.into(),
        })
    });
    match read {
        Ok(bytes) => Ok(Some((bytes, FileId::of(&meta)))),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// Elsewhere no file is kept open.
#[cfg(not(target_os = "linux"))]
fn read_open_if_cached(_f: &File, _buffers: &ReadBuffers) -> std::io::Result<Option<Read>> {
    Ok(None)
}

/// Read a record file; anything but a regular file (a link, a device) is refused.
fn read_regular_file(path: &Path, buffers: &ReadBuffers) -> std::io::Result<Read> {
    let mut o = std::fs::OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        // Never follow a link. (A FIFO planted in place of a record blocks this open: the I/O
        // timeout bounds that, like any hung disk.)
        o.custom_flags(libc::O_NOFOLLOW);
    }
    let f = o.open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let len = usize::try_from(meta.len()).map_err(std::io::Error::other)?;
    let bytes = read_record(len, buffers, |buf, offset| {
        #[cfg(unix)]
        {
            std::os::unix::fs::FileExt::read_at(&f, buf, offset)
        }
        #[cfg(not(unix))]
        {
            let _ = offset; // reads are sequential from the start
            (&f).read(buf)
        }
    })?;
    Ok((bytes, FileId::of(&meta)))
}

/// A record read from its file, and which file it was.
type Read = (Bytes, Option<FileId>);

/// Read `len` bytes (the file's size) with `read_at(buffer, offset)` into a buffer from
/// `buffers`. A file shorter than its size said (truncated under us) gives fewer bytes: the
/// record check decides.
fn read_record(
    len: usize,
    buffers: &ReadBuffers,
    mut read_at: impl FnMut(&mut [u8], u64) -> std::io::Result<usize>,
) -> std::io::Result<Bytes> {
    let mut out = buffers.take(len);
    let mut done = 0;
    while done < len {
        match read_at(&mut out[done..len], done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(buffers.freeze(out, done))
}

impl CacheTier for DiskTier {
    fn name(&self) -> &'static str {
        "disk"
    }

    fn max_item_bytes(&self) -> u64 {
        self.inner.max_item_bytes
    }

    fn get<'a>(&'a self, key: &'a [u8]) -> BoxFuture<'a, Result<Option<CacheEntry>, CacheError>> {
        Box::pin(async move {
            let h = hash(key);
            let (inline, verified, generation, kept) = {
                let idx = lock(&self.inner.index);
                match idx.slots.get(&h) {
                    None => {
                        drop(idx);
                        Counters::inc(&self.inner.counters.misses);
                        return Ok(None);
                    }
                    Some(slot) => (
                        slot.inline.clone(),
                        slot.verified,
                        slot.generation,
                        slot.file.clone(),
                    ),
                }
            };
            if let Some(record) = inline
                && let Ok((k, e)) = entry::decode(&record, &self.inner.check)
                && k.as_ref() == key
                && !e.is_expired_at(SystemTime::now())
            {
                lock(&self.inner.index).touch(&h);
                Counters::inc(&self.inner.counters.hits);
                return Ok(Some(e));
            }
            let from_kept = kept.and_then(|f| {
                let read = read_open_if_cached(&f, &self.inner.buffers).ok().flatten();
                if read.is_none() {
                    lock(&self.inner.index).forget_file(&h);
                }
                read
            });
            let (read, opened) = match from_kept {
                Some(read) => (Ok(Some(read)), None),
                None => self.read_by_path(&h).await,
            };
            let (record, id) = match read {
                Ok(Some(r)) => r,
                Ok(None) => {
                    lock(&self.inner.index).remove(&h);
                    Counters::inc(&self.inner.counters.misses);
                    return Ok(None);
                }
                Err(e) => {
                    Counters::inc(&self.inner.counters.errors);
                    Counters::inc(&self.inner.counters.misses);
                    return Err(e);
                }
            };
            // The CRC-32 is verified once per file: while a file is unchanged since it passed,
            // its bytes come from the page cache, not the device, and are not checked again (an
            // HMAC still is: see `decode_checked`). Damage done on the device after the first
            // check to a file evicted from the page cache goes unseen until a restart.
            let trusted = id.is_some() && id == verified;
            match entry::decode_checked(&record, &self.inner.check, !trusted) {
                Ok((k, e)) if k.as_ref() == key && !e.is_expired_at(SystemTime::now()) => {
                    let mut idx = lock(&self.inner.index);
                    idx.touch(&h);
                    idx.inline(&h, &record);
                    if let Some(slot) = idx.slots.get_mut(&h)
                        && !trusted
                        && slot.generation == generation
                        && slot.size == record.len() as u64
                    {
                        slot.verified = id;
                    }
                    if let Some(file) = opened {
                        idx.keep_file(&h, generation, file);
                    }
                    drop(idx);
                    Counters::inc(&self.inner.counters.hits);
                    Ok(Some(e))
                }
                Ok(_) => {
                    // Expired (or, astronomically unlikely, a hash collision): drop it.
                    lock(&self.inner.index).remove(&h);
                    self.remove_file(h).await;
                    Counters::inc(&self.inner.counters.misses);
                    Ok(None)
                }
                Err(e) => {
                    lock(&self.inner.index).remove(&h);
                    self.remove_file(h).await;
                    Counters::inc(&self.inner.counters.errors);
                    Counters::inc(&self.inner.counters.misses);
                    Err(e)
                }
            }
        })
    }

    fn put<'a>(
        &'a self,
        key: &'a [u8],
        entry: CacheEntry,
    ) -> BoxFuture<'a, Result<(), CacheError>> {
        Box::pin(async move {
            entry.check_fits(self.inner.max_item_bytes)?;
            let h = hash(key);
            let record = Bytes::from(entry::encode(key, &entry, &self.inner.check));
            let size = record.len() as u64;
            let dir = self.inner.dir.clone();
            let written_record = record.clone();
            let written = self
                .inner
                .io(move || {
                    let final_path = Self::path_for(&dir, &h);
                    if let Some(parent) = final_path.parent() {
                        create_private_dir(parent)?;
                    }
                    let tmp = dir.join("tmp").join(format!(
                        "{}.{:016x}",
                        to_hex(&h[..8]),
                        fastrand::u64(..)
                    ));
                    let result = write_private(&tmp, &record)
                        .and_then(|()| std::fs::rename(&tmp, &final_path))
                        .and_then(|()| std::fs::symlink_metadata(&final_path));
                    if result.is_err() {
                        let _ = std::fs::remove_file(&tmp);
                    }
                    Ok(disk_usage(&result?))
                })
                .await;
            let usage = match written {
                Ok(u) => u,
                Err(e) => {
                    Counters::inc(&self.inner.counters.errors);
                    return Err(e);
                }
            };
            {
                let mut idx = lock(&self.inner.index);
                idx.insert(h, key.to_vec(), (size, usage), entry.expires_at);
                idx.inline(&h, &written_record);
            }
            Counters::inc(&self.inner.counters.inserts);
            self.evict_over_budget().await;
            Ok(())
        })
    }

    fn delete<'a>(&'a self, key: &'a [u8]) -> BoxFuture<'a, Result<(), CacheError>> {
        Box::pin(async move {
            let h = hash(key);
            if lock(&self.inner.index).remove(&h).is_some() {
                self.remove_file(h).await;
            }
            Ok(())
        })
    }

    fn delete_prefix<'a>(&'a self, prefix: &'a [u8]) -> BoxFuture<'a, Result<u64, CacheError>> {
        Box::pin(async move {
            let victims: Vec<Hash> = {
                let mut idx = lock(&self.inner.index);
                let hs: Vec<Hash> = idx
                    .slots
                    .iter()
                    .filter(|(_, s)| s.key.starts_with(prefix))
                    .map(|(h, _)| *h)
                    .collect();
                for h in &hs {
                    idx.remove(h);
                }
                hs
            };
            let n = victims.len() as u64;
            let dir = self.inner.dir.clone();
            self.inner
                .io(move || {
                    for h in victims {
                        let _ = std::fs::remove_file(Self::path_for(&dir, &h));
                    }
                    Ok(())
                })
                .await?;
            Ok(n)
        })
    }

    fn stats(&self) -> TierStats {
        let idx = lock(&self.inner.index);
        let (entries, bytes) = (idx.slots.len() as u64, idx.bytes);
        drop(idx);
        self.inner.counters.snapshot(entries, bytes)
    }
}

impl DiskTier {
    /// Entries whose retention deadline passed are dropped lazily on read; this drops them now.
    pub async fn purge_expired(&self) -> u64 {
        let now = SystemTime::now();
        let victims: Vec<Hash> = {
            let mut idx = lock(&self.inner.index);
            let hs: Vec<Hash> = idx
                .slots
                .iter()
                .filter(|(_, s)| s.expires_at.is_some_and(|e| e <= now))
                .map(|(h, _)| *h)
                .collect();
            for h in &hs {
                idx.remove(h);
            }
            hs
        };
        let n = victims.len() as u64;
        for h in victims {
            self.remove_file(h).await;
        }
        n
    }
}
