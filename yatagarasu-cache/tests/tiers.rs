//! Memory and disk tiers and their composition, on a real file system.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::sync::Arc;
use std::time::Duration;

mod common;
use common::wrapping_record;
use yatagarasu_cache::{CacheEntry, CacheError, CacheTier, DiskTier, MemoryTier, TieredCache};

fn entry(body: &str, ttl: Option<Duration>) -> CacheEntry {
    CacheEntry::new(format!("meta:{body}"), body.to_owned(), ttl)
}

/// Every record file a disk tier keeps under `dir`.
fn record_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for sub in std::fs::read_dir(dir.join("objects")).unwrap() {
        for f in std::fs::read_dir(sub.unwrap().path()).unwrap() {
            files.push(f.unwrap().path());
        }
    }
    files
}

/// The one record file under `dir`.
fn only_record_file(dir: &std::path::Path) -> std::path::PathBuf {
    let mut files = record_files(dir);
    assert_eq!(files.len(), 1, "{files:?}");
    files.pop().unwrap()
}

/// Where a disk tier in `dir` keeps the record of `key` (the layout is part of the format: a
/// tier finds its records there after a restart).
fn record_path(dir: &std::path::Path, key: &[u8]) -> std::path::PathBuf {
    use sha2::Digest as _;
    let hex = hex::encode(sha2::Sha256::digest(key));
    dir.join("objects").join(&hex[..2]).join(&hex[2..])
}

/// Damage a record's bytes where its check covers them (the last byte).
fn flip_last_byte(bytes: &mut [u8]) {
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
}

#[tokio::test]
async fn memory_tier_stores_expires_and_respects_limits() {
    let m = MemoryTier::builder(1024 * 1024)
        .max_item_bytes(1000)
        .build();
    m.put(b"a", entry("alpha", None)).await.unwrap();
    assert_eq!(m.get(b"a").await.unwrap().unwrap().body, "alpha");
    assert!(m.get(b"missing").await.unwrap().is_none());
    // Per-entry expiry: a short-lived entry goes, a long-lived one stays.
    m.put(
        b"short",
        CacheEntry::new("m", "x", Some(Duration::from_millis(1))),
    )
    .await
    .unwrap();
    m.put(
        b"long",
        CacheEntry::new("m", "y", Some(Duration::from_secs(600))),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await; // let the short entry's deadline pass
    assert!(m.get(b"short").await.unwrap().is_none());
    assert!(m.get(b"long").await.unwrap().is_some());
    // Item limit.
    let big = CacheEntry::new("", vec![0u8; 2000], None);
    assert!(matches!(
        m.put(b"big", big).await,
        Err(CacheError::TooLarge { .. })
    ));
    // Prefix deletion.
    m.put(b"bucket/x/1", entry("1", None)).await.unwrap();
    m.put(b"bucket/x/2", entry("2", None)).await.unwrap();
    m.put(b"bucket/y/1", entry("3", None)).await.unwrap();
    assert_eq!(m.delete_prefix(b"bucket/x/").await.unwrap(), 2);
    assert!(m.get(b"bucket/x/1").await.unwrap().is_none());
    assert!(m.get(b"bucket/y/1").await.unwrap().is_some());
    let s = m.stats();
    assert!(s.hits >= 3 && s.misses >= 3, "{s:?}");
}

#[tokio::test]
async fn memory_tier_max_ttl_caps_how_long_memory_holds_an_entry() {
    let m = MemoryTier::builder(1024 * 1024)
        .max_item_bytes(1000)
        .max_ttl(Duration::from_millis(30))
        .build();
    m.put(b"k", entry("v", Some(Duration::from_secs(600))))
        .await
        .unwrap();
    m.put(b"forever", entry("w", None)).await.unwrap();
    assert!(m.get(b"k").await.unwrap().is_some(), "held right after put");
    tokio::time::sleep(Duration::from_millis(60)).await; // let the cap pass
    assert!(
        m.get(b"k").await.unwrap().is_none(),
        "gone after the cap although its own TTL is 600 s"
    );
    assert!(
        m.get(b"forever").await.unwrap().is_none(),
        "the cap applies to entries without a TTL too"
    );
    // Without a cap the entry's own deadline rules.
    let plain = MemoryTier::builder(1024 * 1024)
        .max_item_bytes(1000)
        .build();
    plain
        .put(b"k", entry("v", Some(Duration::from_secs(600))))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert!(plain.get(b"k").await.unwrap().is_some());
}

#[tokio::test]
async fn memory_tier_is_bounded_in_bytes() {
    let m = MemoryTier::builder(100_000).max_item_bytes(10_000).build();
    for i in 0..100u32 {
        m.put(
            format!("k{i}").as_bytes(),
            CacheEntry::new("", vec![1u8; 5_000], None),
        )
        .await
        .unwrap();
    }
    m.run_pending_tasks().await;
    let s = m.stats();
    assert!(s.bytes <= 100_000, "{s:?}");
    assert!(s.entries < 100);
}

#[tokio::test]
async fn small_entries_count_what_they_take_in_memory_against_the_capacity() {
    // Object records are a few hundred bytes; the bookkeeping of each entry is about as much
    // again. Counted by their bytes alone, a tier of 1 MiB held 10,000 records (several MiB).
    let m = MemoryTier::builder(1 << 20).build();
    for i in 0..10_000u32 {
        m.put(
            format!("r\0origin\0key-{i}").as_bytes(),
            CacheEntry::new(vec![1u8; 100], Vec::<u8>::new(), None),
        )
        .await
        .unwrap();
    }
    m.run_pending_tasks().await;
    let s = m.stats();
    assert!(s.bytes <= 1 << 20, "{s:?}");
    let smallest = 100 + "r\0origin\0key-0".len() as u64 + MemoryTier::ENTRY_OVERHEAD;
    assert!(s.entries <= (1 << 20) / smallest, "{s:?}");
}

#[tokio::test]
async fn disk_tier_survives_restart_and_detects_damage() {
    let dir = tempfile::tempdir().unwrap();
    {
        let d = DiskTier::builder(dir.path(), 1 << 20)
            .max_item_bytes(1 << 20)
            .open()
            .await
            .unwrap();
        d.put(b"obj/1", entry("one", None)).await.unwrap();
        d.put(b"obj/2", entry("two", Some(Duration::from_secs(600))))
            .await
            .unwrap();
        d.put(b"obj/empty", CacheEntry::new("meta", "", None))
            .await
            .unwrap();
        d.put(
            b"obj/expiring",
            CacheEntry::new("m", "x", Some(Duration::from_millis(1))),
        )
        .await
        .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(20)).await; // let obj/expiring's deadline pass
    let d = DiskTier::builder(dir.path(), 1 << 20)
        .max_item_bytes(1 << 20)
        .open()
        .await
        .unwrap();
    assert_eq!(
        d.stats().entries,
        3,
        "the expired record is dropped at start"
    );
    assert_eq!(d.get(b"obj/1").await.unwrap().unwrap().body, "one");
    assert_eq!(d.get(b"obj/2").await.unwrap().unwrap().metadata, "meta:two");
    let empty = d.get(b"obj/empty").await.unwrap().unwrap();
    assert!(empty.body.is_empty());
    // Damage every record on disk (while no tier has it open): a read fails its check, counts an
    // error, and is a miss afterwards. (A running tier keeps small records it has read in memory.)
    drop(d);
    let files = record_files(dir.path());
    assert_eq!(files.len(), 3);
    for f in &files {
        let mut bytes = std::fs::read(f).unwrap();
        flip_last_byte(&mut bytes);
        std::fs::write(f, bytes).unwrap();
    }
    let d = DiskTier::builder(dir.path(), 1 << 20)
        .max_item_bytes(1 << 20)
        .open()
        .await
        .unwrap();
    assert!(d.get(b"obj/1").await.is_err());
    assert!(d.get(b"obj/1").await.unwrap().is_none());
    assert!(d.stats().errors >= 1);
}

#[tokio::test]
async fn a_record_file_changed_after_it_passed_its_check_is_checked_again() {
    // A running tier checks a file's CRC once, then trusts that file while it is unchanged. A
    // file replaced (a new inode) or rewritten (a new modification time) is checked again.
    let dir = tempfile::tempdir().unwrap();
    let d = DiskTier::builder(dir.path(), 1 << 20)
        .max_item_bytes(1 << 20)
        .open()
        .await
        .unwrap();
    let body = vec![7u8; 10_000]; // over the size kept in memory: every hit reads the file
    d.put(b"big", CacheEntry::new("m", body.clone(), None))
        .await
        .unwrap();
    for _ in 0..2 {
        assert_eq!(d.get(b"big").await.unwrap().unwrap().body, body);
    }
    let file = only_record_file(dir.path());

    // Replaced by a damaged copy, renamed over it as a writer would.
    let mut bytes = std::fs::read(&file).unwrap();
    flip_last_byte(&mut bytes);
    let tmp = dir.path().join("replacement");
    std::fs::write(&tmp, &bytes).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    assert!(matches!(d.get(b"big").await, Err(CacheError::Corrupt(_))));
    assert!(
        d.get(b"big").await.unwrap().is_none(),
        "dropped once found damaged"
    );

    // Rewritten in place, with a modification time of its own.
    d.put(b"big", CacheEntry::new("m", body.clone(), None))
        .await
        .unwrap();
    assert_eq!(d.get(b"big").await.unwrap().unwrap().body, body);
    let file = only_record_file(dir.path());
    let mut bytes = std::fs::read(&file).unwrap();
    flip_last_byte(&mut bytes);
    let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    std::io::Write::write_all(&mut &f, &bytes).unwrap();
    f.set_modified(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000))
        .unwrap();
    drop(f);
    assert!(matches!(d.get(b"big").await, Err(CacheError::Corrupt(_))));
    assert_eq!(d.stats().errors, 2);
}

#[tokio::test]
async fn large_records_read_into_reused_buffers_keep_their_own_bytes() {
    // Large records are read into buffers that come back for the next read once a body is
    // dropped. Records of nearly the same size share buffers; none may show another's bytes,
    // whether bodies are held while others are read or dropped at once, and a record cut short
    // on disk must not be padded out with what a buffer held before.
    let dir = tempfile::tempdir().unwrap();
    let d = DiskTier::builder(dir.path(), 16 << 20)
        .max_item_bytes(1 << 20)
        .open()
        .await
        .unwrap();
    let body = |i: usize| -> Vec<u8> {
        (0..200_000 + i * 37)
            .map(|b| (b * 31 + i * 7) as u8)
            .collect()
    };
    for i in 0..8 {
        d.put(
            format!("k{i}").as_bytes(),
            CacheEntry::new("m", body(i), None),
        )
        .await
        .unwrap();
    }
    let mut held = Vec::new();
    for round in 0..4 {
        for i in 0..8 {
            let got = d.get(format!("k{i}").as_bytes()).await.unwrap().unwrap();
            assert!(got.body == body(i), "round {round}, record {i}");
            if (i + round) % 3 == 0 {
                held.push((i, got.body));
            }
        }
    }
    for (i, b) in &held {
        assert!(*b == body(*i), "record {i} changed while held");
    }
    drop(held);

    // Cut one record short behind the tier's back (same inode: a damaged write).
    let victim = record_files(dir.path())
        .into_iter()
        .max_by_key(|f| std::fs::metadata(f).unwrap().len())
        .unwrap();
    let len = std::fs::metadata(&victim).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&victim)
        .unwrap()
        .set_len(len - 1000)
        .unwrap();
    let mut corrupt = 0;
    for i in 0..8 {
        match d.get(format!("k{i}").as_bytes()).await {
            Ok(Some(e)) => assert!(e.body == body(i), "record {i}"),
            Err(CacheError::Corrupt(_)) => corrupt += 1,
            other => panic!("record {i}: {other:?}"),
        }
    }
    assert_eq!(corrupt, 1, "the shortened record, and only it, is refused");
}

#[tokio::test]
async fn small_records_are_served_from_memory_after_their_first_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = DiskTier::builder(dir.path(), 1 << 20)
        .max_item_bytes(1 << 20)
        .open()
        .await
        .unwrap();
    d.put(b"small", entry("tiny", None)).await.unwrap();
    d.put(b"large", CacheEntry::new("m", vec![7u8; 10_000], None))
        .await
        .unwrap();
    // Remove the files behind the tier's back: the small record still answers (held in memory),
    // the large one is gone (read from disk every time).
    std::fs::remove_dir_all(dir.path().join("objects")).unwrap();
    assert_eq!(d.get(b"small").await.unwrap().unwrap().body, "tiny");
    assert!(d.get(b"large").await.unwrap().is_none());
}

/// How many of this process's open files are under `dir`.
#[cfg(target_os = "linux")]
fn open_files_under(dir: &std::path::Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .count()
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn record_files_kept_open_between_hits_are_bounded_and_never_stale() {
    // A hit keeps its record's file open for the next hits (no path lookup, open or close):
    // at most `max_open_files` of them, closed with their records, and never read once the
    // record is replaced or its file removed.
    use yatagarasu_cache::DiskOptions;
    let dir = tempfile::tempdir().unwrap();
    let d = DiskTier::builder(dir.path(), 1 << 20)
        .max_item_bytes(1 << 20)
        .options(DiskOptions::default().with_max_open_files(3))
        .open()
        .await
        .unwrap();
    let key = |i: u8| format!("k{i}").into_bytes();
    let body = |i: u8| vec![i; 10_000]; // over the size kept in memory: hits read the file
    for i in 0..6 {
        d.put(&key(i), CacheEntry::new("m", body(i), None))
            .await
            .unwrap();
    }
    assert_eq!(open_files_under(dir.path()), 0, "writes keep nothing open");
    for _ in 0..2 {
        for i in 0..6 {
            assert_eq!(d.get(&key(i)).await.unwrap().unwrap().body, body(i));
        }
    }
    assert_eq!(
        open_files_under(dir.path()),
        3,
        "hits keep files, up to the bound"
    );

    // Replaced by the tier's own write with a record of the same size: the new bytes.
    assert_eq!(d.get(&key(5)).await.unwrap().unwrap().body, body(5));
    d.put(&key(5), CacheEntry::new("m", body(50), None))
        .await
        .unwrap();
    for _ in 0..2 {
        assert_eq!(d.get(&key(5)).await.unwrap().unwrap().body, body(50));
    }

    // Removed by hand after a hit: a miss, not the bytes of the file still open.
    assert_eq!(d.get(&key(4)).await.unwrap().unwrap().body, body(4));
    std::fs::remove_file(record_path(dir.path(), &key(4))).unwrap();
    assert!(d.get(&key(4)).await.unwrap().is_none());

    // Records deleted: their files closed.
    assert!(open_files_under(dir.path()) > 0);
    d.delete_prefix(b"k").await.unwrap();
    assert_eq!(open_files_under(dir.path()), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_racing_overwrites_never_keep_reading_an_old_version() {
    // Readers keep record files open between hits while a writer replaces the record with new
    // versions of the same size. A read racing a write may return the previous version, never a
    // mix; once the last write has returned, every read returns the last version.
    let dir = tempfile::tempdir().unwrap();
    let d = DiskTier::builder(dir.path(), 1 << 24)
        .max_item_bytes(1 << 20)
        .open()
        .await
        .unwrap();
    let version = |v: u8| vec![v; 20_000];
    d.put(b"k", CacheEntry::new("m", version(0), None))
        .await
        .unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (d, done) = (d.clone(), Arc::clone(&done));
            tokio::spawn(async move {
                let mut reads = 0u32;
                while !done.load(std::sync::atomic::Ordering::Acquire) || reads == 0 {
                    if let Some(e) = d.get(b"k").await.unwrap() {
                        let first = e.body[0];
                        assert!(e.body.iter().all(|&b| b == first), "a mixed record");
                    }
                    reads += 1;
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for v in 1..=200 {
        d.put(b"k", CacheEntry::new("m", version(v), None))
            .await
            .unwrap();
        tokio::task::yield_now().await;
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    for r in readers {
        r.await.unwrap();
    }
    for _ in 0..3 {
        assert_eq!(d.get(b"k").await.unwrap().unwrap().body, version(200));
    }
}

#[tokio::test]
async fn disk_tier_evicts_least_recently_used() {
    let dir = tempfile::tempdir().unwrap();
    let record = 5_000u64;
    // The budget counts what records take on disk: two 4 KiB blocks each.
    let on_disk = 8192u64;
    let d = DiskTier::builder(dir.path(), 4 * on_disk + 100)
        .max_item_bytes(1 << 20)
        .open()
        .await
        .unwrap();
    for i in 0..4 {
        d.put(
            format!("k{i}").as_bytes(),
            CacheEntry::new("", vec![0u8; record as usize], None),
        )
        .await
        .unwrap();
    }
    // Use k0 so that k1 is now the least recently used.
    assert!(d.get(b"k0").await.unwrap().is_some());
    d.put(b"k4", CacheEntry::new("", vec![0u8; record as usize], None))
        .await
        .unwrap();
    assert!(
        d.get(b"k0").await.unwrap().is_some(),
        "recently used survives"
    );
    assert!(
        d.get(b"k1").await.unwrap().is_none(),
        "least recently used goes first"
    );
    assert!(d.stats().evictions >= 1);
    assert!(d.stats().bytes <= 4 * on_disk + 100);
}

#[tokio::test]
async fn torn_temporary_files_are_ignored_at_start() {
    let dir = tempfile::tempdir().unwrap();
    {
        let d = DiskTier::builder(dir.path(), 1 << 20)
            .max_item_bytes(1 << 20)
            .open()
            .await
            .unwrap();
        d.put(b"good", entry("good", None)).await.unwrap();
    }
    // What a kill -9 mid-write leaves: a partial temporary file, and a partial record in place.
    std::fs::write(dir.path().join("tmp").join("partial.tmp"), b"YCE1garbage").unwrap();
    let stray = dir.path().join("objects").join("00");
    std::fs::create_dir_all(&stray).unwrap();
    std::fs::write(stray.join("00deadbeef"), b"YCE1\x00\x00").unwrap();
    let d = DiskTier::builder(dir.path(), 1 << 20)
        .max_item_bytes(1 << 20)
        .open()
        .await
        .unwrap();
    assert_eq!(d.stats().entries, 1);
    assert_eq!(d.get(b"good").await.unwrap().unwrap().body, "good");
    assert!(!stray.join("00deadbeef").exists());
}

#[tokio::test]
async fn tiered_reads_fastest_first_promotes_and_respects_item_limits() {
    let dir = tempfile::tempdir().unwrap();
    let memory = Arc::new(MemoryTier::builder(1 << 20).max_item_bytes(100).build());
    let disk = Arc::new(
        DiskTier::builder(dir.path(), 1 << 20)
            .max_item_bytes(1 << 20)
            .open()
            .await
            .unwrap(),
    );
    let cache = TieredCache::new(vec![memory.clone(), disk.clone()]);

    // Too big for memory: still goes to disk.
    let big = CacheEntry::new("m", vec![7u8; 1000], None);
    cache.insert(b"big", big).await;
    assert!(memory.get(b"big").await.unwrap().is_none());
    let hit = cache.get(b"big").await.unwrap();
    assert_eq!(hit.tier, "disk");

    // A small entry only on disk is promoted to memory after a hit.
    disk.put(b"small", entry("s", None)).await.unwrap();
    let hit = cache.get(b"small").await.unwrap();
    assert_eq!((hit.tier, hit.level), ("disk", 1));
    tokio::time::timeout(Duration::from_secs(5), async {
        while memory.get(b"small").await.unwrap().is_none() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    assert_eq!(cache.get(b"small").await.unwrap().tier, "memory");

    // Purge across tiers.
    cache.insert(b"p/1", entry("1", None)).await;
    cache.insert(b"p/2", entry("2", None)).await;
    let removed = cache.delete_prefix(b"p/").await;
    assert!(
        removed.iter().all(|(_, r)| *r.as_ref().unwrap() == 2),
        "{removed:?}"
    );
    assert!(cache.get(b"p/1").await.is_none());
}

/// The deterministic content every writer process stores under `key`.
fn body_for(key: &str) -> Vec<u8> {
    key.bytes()
        .cycle()
        .take(20_000 + key.len() * 97 % 5_000)
        .collect()
}

/// Not a test on its own: the writer process `kill_9_during_writes_never_leaves_a_torn_entry` starts
/// and kills. Writes entries as fast as it can for at most 60 s.
#[tokio::test]
#[ignore = "helper process for kill_9_during_writes_never_leaves_a_torn_entry"]
async fn disk_writer_child() {
    let Ok(dir) = std::env::var("YATAGARASU_DISK_WRITER_DIR") else {
        return;
    };
    let d = DiskTier::builder(&dir, 1 << 30)
        .max_item_bytes(1 << 20)
        .open()
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut i = 0u64;
    while std::time::Instant::now() < deadline {
        let key = format!("key-{}", i % 500);
        d.put(
            key.as_bytes(),
            CacheEntry::new(key.clone(), body_for(&key), None),
        )
        .await
        .unwrap();
        i += 1;
    }
}

#[tokio::test]
async fn kill_9_during_writes_never_leaves_a_torn_entry() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..3 {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "disk_writer_child", "--nocapture"])
            .env("YATAGARASU_DISK_WRITER_DIR", dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Let it write for a while (an observable amount: files on disk), then SIGKILL mid-stream.
        let objects = dir.path().join("objects");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let files: usize = std::fs::read_dir(&objects)
                .map(|subs| {
                    subs.filter_map(Result::ok)
                        .map(|s| std::fs::read_dir(s.path()).map_or(0, Iterator::count))
                        .sum()
                })
                .unwrap_or(0);
            if files >= 100 * (round + 1) || std::time::Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let d = DiskTier::builder(dir.path(), 1 << 30)
            .max_item_bytes(1 << 20)
            .open()
            .await
            .unwrap();
        let entries = d.stats().entries;
        assert!(
            entries >= 100,
            "round {round}: only {entries} entries were written before the kill"
        );
        let mut checked = 0;
        for i in 0..500 {
            let key = format!("key-{i}");
            if let Some(e) = d.get(key.as_bytes()).await.unwrap() {
                assert_eq!(
                    e.body,
                    body_for(&key),
                    "round {round}: {key} holds another key's or a torn body"
                );
                assert_eq!(e.metadata, key.as_bytes());
                checked += 1;
            }
        }
        assert_eq!(checked as u64, entries);
        assert_eq!(
            d.stats().errors,
            0,
            "round {round}: no damaged record survives a restart"
        );
    }
}

#[tokio::test]
async fn a_record_with_wrapping_lengths_is_removed_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let key = b"obj/crafted";
    drop(
        DiskTier::builder(dir.path(), 1 << 20)
            .max_item_bytes(1 << 20)
            .open()
            .await
            .unwrap(),
    );
    let path = record_path(dir.path(), key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, wrapping_record(key)).unwrap();

    let d = DiskTier::builder(dir.path(), 1 << 20)
        .max_item_bytes(1 << 20)
        .open()
        .await
        .unwrap();
    assert!(matches!(d.get(key).await, Ok(None) | Err(_)));
    assert_eq!(d.stats().entries, 0);
    assert!(!path.exists(), "the crafted record is deleted");
}

#[cfg(unix)]
#[tokio::test]
async fn cached_files_are_private_to_the_proxy_user() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    let d = DiskTier::builder(&cache_dir, 1 << 20)
        .max_item_bytes(1 << 20)
        .open()
        .await
        .unwrap();
    d.put(b"private/object", entry("secret", None))
        .await
        .unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&cache_dir), 0o700);
    let mut checked = 0;
    for sub in std::fs::read_dir(cache_dir.join("objects")).unwrap() {
        let sub = sub.unwrap().path();
        assert_eq!(mode(&sub), 0o700, "{}", sub.display());
        for f in std::fs::read_dir(&sub).unwrap() {
            assert_eq!(mode(&f.unwrap().path()), 0o600);
            checked += 1;
        }
    }
    assert_eq!(checked, 1);
}

#[cfg(unix)]
#[tokio::test]
async fn a_directory_that_is_not_ours_is_refused_and_links_are_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    // Not empty, not ours: refused, and nothing in it is touched.
    let foreign = dir.path().join("home");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "keep me").unwrap();
    let err = DiskTier::builder(&foreign, 1 << 20)
        .max_item_bytes(1 << 20)
        .open()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("not a yatagarasu cache directory"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(foreign.join("notes.txt")).unwrap(),
        "keep me"
    );

    // Ours, but with links planted inside: the links go, their targets stay.
    let cache = dir.path().join("cache");
    drop(
        DiskTier::builder(&cache, 1 << 20)
            .max_item_bytes(1 << 20)
            .open()
            .await
            .unwrap(),
    );
    std::os::unix::fs::symlink(&foreign, cache.join("objects").join("ab")).unwrap();
    std::fs::create_dir_all(cache.join("objects").join("cd")).unwrap();
    std::os::unix::fs::symlink(
        foreign.join("notes.txt"),
        cache.join("objects").join("cd").join("ef"),
    )
    .unwrap();
    drop(
        DiskTier::builder(&cache, 1 << 20)
            .max_item_bytes(1 << 20)
            .open()
            .await
            .unwrap(),
    );
    assert_eq!(
        std::fs::read_to_string(foreign.join("notes.txt")).unwrap(),
        "keep me"
    );
    assert!(std::fs::symlink_metadata(cache.join("objects").join("ab")).is_err());

    // `tmp` or `objects` as a link: refused outright.
    let cache2 = dir.path().join("cache2");
    drop(
        DiskTier::builder(&cache2, 1 << 20)
            .max_item_bytes(1 << 20)
            .open()
            .await
            .unwrap(),
    );
    std::fs::remove_dir(cache2.join("tmp")).unwrap();
    std::os::unix::fs::symlink(&foreign, cache2.join("tmp")).unwrap();
    let err = DiskTier::builder(&cache2, 1 << 20)
        .max_item_bytes(1 << 20)
        .open()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert_eq!(
        std::fs::read_to_string(foreign.join("notes.txt")).unwrap(),
        "keep me"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn the_size_budget_counts_what_files_take_on_disk() {
    use std::os::unix::fs::MetadataExt as _;
    let dir = tempfile::tempdir().unwrap();
    let d = DiskTier::builder(dir.path(), 64 << 20)
        .max_item_bytes(1 << 20)
        .open()
        .await
        .unwrap();
    for i in 0..1000 {
        d.put(format!("small/{i}").as_bytes(), entry("x", None))
            .await
            .unwrap();
    }
    let used: u64 = record_files(dir.path())
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().blocks() * 512)
        .sum();
    let counted = d.stats().bytes;
    assert!(
        counted >= used,
        "counted {counted} bytes, files take {used}"
    );
    assert!(counted >= 1000 * 4096, "counted {counted}");
}

#[cfg(unix)]
#[tokio::test]
async fn a_hung_disk_read_is_a_miss_after_the_io_timeout() {
    use yatagarasu_cache::DiskOptions;
    let dir = tempfile::tempdir().unwrap();
    let options = DiskOptions::default()
        .with_io_timeout(Duration::from_millis(300))
        .with_max_concurrent_io(2);
    let d = DiskTier::builder(dir.path(), 1 << 20)
        .max_item_bytes(1 << 20)
        .options(options)
        .open()
        .await
        .unwrap();
    // Larger than what the tier keeps in memory, so a read goes to the file.
    let big = CacheEntry::new("m", vec![7u8; 64 * 1024], None);
    d.put(b"hung", big.clone()).await.unwrap();
    // Replace the record with a FIFO nobody writes to: reading it blocks for ever, like a hung disk.
    let record = only_record_file(dir.path());
    std::fs::remove_file(&record).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&record)
        .status()
        .unwrap();
    assert!(made.success());
    for _ in 0..3 {
        let read = tokio::time::timeout(Duration::from_secs(5), d.get(b"hung")).await;
        assert!(read.expect("bounded by the I/O timeout").is_err());
    }
    // Two reads hang (the concurrency limit); other work on the tier still answers within the timeout.
    let answered =
        tokio::time::timeout(Duration::from_secs(5), d.put(b"other", entry("o", None))).await;
    assert!(answered.is_ok());
    // Unblock the hung reads so the test leaves no thread behind (the runtime waits for them):
    // opening the FIFO for writing releases every reader waiting in open(). Non-blocking, so it
    // never waits itself; it fails with ENXIO once no reader is left.
    use std::os::unix::fs::OpenOptionsExt as _;
    for _ in 0..1000 {
        let opened = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&record);
        if opened.is_err() {
            break;
        }
        tokio::task::yield_now().await;
    }
}
