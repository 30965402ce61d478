//! The disk tier: one self-checking record per file, an in-memory index rebuilt at start, LRU by use.

use std::collections::{BTreeMap, HashMap};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::entry::{self, CacheEntry, HEADER_LEN, RecordCheck};
use crate::error::CacheError;
use crate::stats::{Counters, TierStats};
use crate::{BoxFuture, CacheTier};

type Hash = [u8; 32];

struct Slot {
    key: Vec<u8>,
    size: u64,
    tick: u64,
    expires_at: Option<SystemTime>,
    /// The whole record, for small records (object metadata, small bodies): a hit needs no I/O.
    inline: Option<Bytes>,
}

/// Records up to this size are also kept in memory, within [`INLINE_BUDGET`] bytes in total.
const INLINE_MAX: usize = 4 * 1024;
const INLINE_BUDGET: u64 = 32 * 1024 * 1024;

#[derive(Default)]
struct Index {
    /// Bytes of records held inline.
    inline_bytes: u64,
    slots: HashMap<Hash, Slot>,
    /// Last use → entry, oldest first.
    lru: BTreeMap<u64, Hash>,
    tick: u64,
    bytes: u64,
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

    fn insert(&mut self, h: Hash, key: Vec<u8>, size: u64, expires_at: Option<SystemTime>) {
        self.remove(&h);
        self.tick += 1;
        self.lru.insert(self.tick, h);
        self.bytes += size;
        self.slots.insert(
            h,
            Slot {
                key,
                size,
                tick: self.tick,
                expires_at,
                inline: None,
            },
        );
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
        }
    }

    fn remove(&mut self, h: &Hash) -> Option<Slot> {
        let slot = self.slots.remove(h)?;
        self.lru.remove(&slot.tick);
        self.bytes -= slot.size;
        if let Some(i) = &slot.inline {
            self.inline_bytes -= i.len() as u64;
        }
        Some(slot)
    }
}

struct Inner {
    dir: PathBuf,
    check: RecordCheck,
    max_bytes: u64,
    max_item_bytes: u64,
    index: Mutex<Index>,
    counters: Counters,
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

impl DiskTier {
    /// Open (creating if needed) a tier in `dir`, holding at most `max_bytes` and refusing entries over
    /// `max_item_bytes`. Rebuilds the index from the records present; drops damaged and expired ones.
    pub async fn open(
        dir: impl AsRef<Path>,
        max_bytes: u64,
        max_item_bytes: u64,
    ) -> Result<Self, CacheError> {
        Self::open_with_check(dir, max_bytes, max_item_bytes, RecordCheck::default()).await
    }

    /// Like [`open`](Self::open), checking records with `check` (e.g. an HMAC under a secret, so
    /// files planted by anyone without it are rejected). Records of another kind are dropped.
    pub async fn open_with_check(
        dir: impl AsRef<Path>,
        max_bytes: u64,
        max_item_bytes: u64,
        check: RecordCheck,
    ) -> Result<Self, CacheError> {
        let dir = dir.as_ref().to_path_buf();
        let scan_dir = dir.clone();
        let scan_check = check.clone();
        let index = blocking(move || scan(&scan_dir, &scan_check)).await?;
        let tier = Self {
            inner: Arc::new(Inner {
                dir,
                check,
                max_bytes,
                max_item_bytes,
                index: Mutex::new(index),
                counters: Counters::default(),
            }),
        };
        tier.evict_over_budget().await;
        Ok(tier)
    }

    fn path_for(dir: &Path, h: &Hash) -> PathBuf {
        let hex = hex::encode(h);
        dir.join("objects").join(&hex[..2]).join(&hex[2..])
    }

    async fn evict_over_budget(&self) {
        let mut victims = Vec::new();
        {
            let mut idx = lock(&self.inner.index);
            while idx.bytes > self.inner.max_bytes {
                let Some((_, h)) = idx.lru.pop_first() else {
                    break;
                };
                if let Some(slot) = idx.slots.remove(&h) {
                    idx.bytes -= slot.size;
                    victims.push(h);
                    Counters::inc(&self.inner.counters.evictions);
                }
            }
        }
        if !victims.is_empty() {
            let dir = self.inner.dir.clone();
            let _ = blocking(move || {
                for h in victims {
                    let _ = std::fs::remove_file(Self::path_for(&dir, &h));
                }
                Ok(())
            })
            .await;
        }
    }

    async fn remove_file(&self, h: Hash) {
        let path = Self::path_for(&self.inner.dir, &h);
        let _ = blocking(move || {
            let _ = std::fs::remove_file(path);
            Ok(())
        })
        .await;
    }
}

/// Read every record header under `dir/objects`, removing temporary files and damaged records.
fn scan(dir: &Path, check: &RecordCheck) -> Result<Index, CacheError> {
    std::fs::create_dir_all(dir.join("objects"))?;
    let tmp = dir.join("tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir_all(&tmp)?;
    let now = SystemTime::now();
    // (modified, hash, key, size, expires_at) of each valid record.
    type Found = (SystemTime, Hash, Vec<u8>, u64, Option<SystemTime>);
    let mut found: Vec<Found> = Vec::new();
    for sub in std::fs::read_dir(dir.join("objects"))? {
        let sub = sub?.path();
        if !sub.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&sub)? {
            let path = file?.path();
            match read_header(&path, check) {
                Some((key, size, expires_at, mtime)) if expires_at.is_none_or(|e| e > now) => {
                    let h = hash(&key);
                    if path == DiskTier::path_for(dir, &h) {
                        found.push((mtime, h, key, size, expires_at));
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
    found.sort_by_key(|f| f.0);
    let mut index = Index::default();
    for (_, h, key, size, expires_at) in found {
        index.insert(h, key, size, expires_at);
    }
    Ok(index)
}

/// A record's key, file size, expiry and mtime, if its header is sane and matches the file's length.
fn read_header(
    path: &Path,
    check: &RecordCheck,
) -> Option<(Vec<u8>, u64, Option<SystemTime>, SystemTime)> {
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
    Some((key, meta.len(), h.expires_at, meta.modified().ok()?))
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
            let inline = {
                let idx = lock(&self.inner.index);
                match idx.slots.get(&h) {
                    None => {
                        drop(idx);
                        Counters::inc(&self.inner.counters.misses);
                        return Ok(None);
                    }
                    Some(slot) => slot.inline.clone(),
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
            let path = Self::path_for(&self.inner.dir, &h);
            let read = blocking(move || match std::fs::read(&path) {
                Ok(b) => Ok(Some(Bytes::from(b))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            })
            .await;
            let record = match read {
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
            match entry::decode(&record, &self.inner.check) {
                Ok((k, e)) if k.as_ref() == key && !e.is_expired_at(SystemTime::now()) => {
                    let mut idx = lock(&self.inner.index);
                    idx.touch(&h);
                    idx.inline(&h, &record);
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
            let written = blocking(move || {
                let final_path = Self::path_for(&dir, &h);
                if let Some(parent) = final_path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                let tmp = dir.join("tmp").join(format!(
                    "{}.{:016x}",
                    hex::encode(&h[..8]),
                    fastrand::u64(..)
                ));
                let result =
                    std::fs::write(&tmp, &record).and_then(|()| std::fs::rename(&tmp, &final_path));
                if result.is_err() {
                    let _ = std::fs::remove_file(&tmp);
                }
                Ok(result?)
            })
            .await;
            if let Err(e) = written {
                Counters::inc(&self.inner.counters.errors);
                return Err(e);
            }
            {
                let mut idx = lock(&self.inner.index);
                idx.insert(h, key.to_vec(), size, entry.expires_at);
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
            blocking(move || {
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
