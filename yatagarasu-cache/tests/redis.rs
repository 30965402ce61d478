//! The Redis tier against a real `redis-server` started by the test on a free loopback port
//! (`scripts/test.sh` installs it). Redis going away is a real kill of that process.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::sync::Arc;
use std::time::Duration;

mod common;
use common::wrapping_record;
use yatagarasu_cache::{CacheEntry, CacheTier, MemoryTier, RedisOptions, RedisTier, TieredCache};
use yatagarasu_testkit::RedisServer;

fn tier(url: &str, prefix: &str) -> RedisTier {
    tier_with(RedisOptions::new(url), prefix)
}

fn tier_with(mut o: RedisOptions, prefix: &str) -> RedisTier {
    o.key_prefix = prefix.into();
    o.op_timeout = Duration::from_millis(300);
    o.open_for = Duration::from_secs(60);
    RedisTier::new(o).unwrap()
}

#[tokio::test]
async fn stores_entries_with_ttl_prefix_and_empty_bodies() {
    let server = RedisServer::start();
    let t = tier(&server.url(), "test-a:");
    t.put(
        b"k1",
        CacheEntry::new("meta", "body", Some(Duration::from_secs(30))),
    )
    .await
    .unwrap();
    t.put(b"empty", CacheEntry::new("meta", "", None))
        .await
        .unwrap();
    let got = t.get(b"k1").await.unwrap().unwrap();
    assert_eq!(
        (got.metadata.as_ref(), got.body.as_ref()),
        (&b"meta"[..], &b"body"[..])
    );
    assert!(t.get(b"empty").await.unwrap().unwrap().body.is_empty());
    assert!(t.get(b"absent").await.unwrap().is_none());

    // TTL set from the entry, key under the prefix: check with Redis itself.
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg("test-a:k1")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((1..=30_000).contains(&ttl), "{ttl}");
    let no_ttl: i64 = redis::cmd("PTTL")
        .arg("test-a:empty")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(no_ttl, -1);

    // Another prefix does not see these; a second instance with the same prefix does.
    assert!(
        tier(&server.url(), "test-b:")
            .get(b"k1")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        tier(&server.url(), "test-a:")
            .get(b"k1")
            .await
            .unwrap()
            .is_some()
    );

    // Prefix purge, with glob characters in keys taken literally.
    t.put(b"b/x*1", CacheEntry::new("", "1", None))
        .await
        .unwrap();
    t.put(b"b/x*2", CacheEntry::new("", "2", None))
        .await
        .unwrap();
    t.put(b"b/xy", CacheEntry::new("", "3", None))
        .await
        .unwrap();
    assert_eq!(t.delete_prefix(b"b/x*").await.unwrap(), 2);
    assert!(t.get(b"b/xy").await.unwrap().is_some());
    t.delete(b"b/xy").await.unwrap();
    assert!(t.get(b"b/xy").await.unwrap().is_none());
}

#[tokio::test]
async fn a_dead_redis_degrades_to_misses_and_opens_the_circuit() {
    let mut server = RedisServer::start();
    let t = tier(&server.url(), "test-c:");
    t.put(b"k", CacheEntry::new("m", "v", None)).await.unwrap();
    assert!(t.get(b"k").await.unwrap().is_some());
    server.kill();
    // Failures are errors (callers treat them as misses), never hangs: bounded by the op timeout.
    for _ in 0..3 {
        let r = tokio::time::timeout(Duration::from_secs(5), t.get(b"k"))
            .await
            .unwrap();
        assert!(r.is_err());
    }
    assert!(t.circuit_open(), "three failures open the circuit");
    // With the circuit open Redis is not even tried.
    let r = tokio::time::timeout(Duration::from_millis(50), t.get(b"k"))
        .await
        .unwrap();
    assert!(matches!(r, Err(yatagarasu_cache::CacheError::Redis(m)) if m.contains("circuit open")));
    assert!(t.stats().errors >= 3);
}

#[tokio::test]
async fn redis_down_at_start_is_only_misses() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let t = tier(&format!("redis://127.0.0.1:{port}/"), "x:");
    assert!(t.get(b"k").await.is_err());
    // Through the tiered cache the caller just sees a miss, and the memory tier still works.
    let memory = Arc::new(MemoryTier::builder(1 << 20).max_item_bytes(1 << 20).build());
    let cache = TieredCache::new(vec![memory, Arc::new(t)]);
    assert!(cache.get(b"k").await.is_none());
    cache.insert(b"k", CacheEntry::new("m", "v", None)).await;
    assert_eq!(cache.get(b"k").await.unwrap().tier, "memory");
}

#[tokio::test]
async fn two_caches_share_entries_through_redis() {
    let server = RedisServer::start();
    let instance = |url: &str| {
        TieredCache::new(vec![
            Arc::new(MemoryTier::builder(1 << 20).max_item_bytes(1 << 20).build()),
            Arc::new(tier(url, "shared:")),
        ])
    };
    let a = instance(&server.url());
    let b = instance(&server.url());
    a.insert(b"obj", CacheEntry::new("m", "from instance a", None))
        .await;
    // Redis is written in the background (a slow network never slows the caller): wait for it.
    let redis_inserts = |c: &TieredCache| {
        c.stats()
            .iter()
            .find(|(n, _)| *n == "redis")
            .map_or(0, |(_, s)| s.inserts)
    };
    tokio::time::timeout(Duration::from_secs(10), async {
        while redis_inserts(&a) == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    let hit = b.get(b"obj").await.unwrap();
    assert_eq!(hit.tier, "redis");
    assert_eq!(hit.entry.body, "from instance a");
}

#[tokio::test]
async fn a_slow_redis_costs_one_operation_timeout_not_a_hang() {
    let server = RedisServer::start();
    let t = tier(&server.url(), "slow:");
    t.put(b"k", CacheEntry::new("m", "v", None)).await.unwrap();
    // Pause every client for 3 s (the reply comes once the pause is in force): Redis answers nothing.
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(3000)
        .arg("ALL")
        .query_async(&mut conn)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let r = t.get(b"k").await;
    assert!(
        r.is_err(),
        "a stalled Redis is an error (a miss), not a late answer"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "bounded by the 300 ms operation timeout"
    );
}

#[tokio::test]
async fn a_crafted_record_in_redis_is_deleted_and_never_promoted() {
    let server = RedisServer::start();
    let key = b"obj/crafted";
    // Lengths that wrap u64 to the record's real length, and a valid checksum.
    let r = wrapping_record(key);
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let full_key = [&b"crafted:"[..], key].concat();
    redis::cmd("SET")
        .arg(&full_key)
        .arg(r)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();

    let memory = Arc::new(MemoryTier::builder(1 << 20).max_item_bytes(1 << 20).build());
    let cache = TieredCache::new(vec![
        memory.clone() as Arc<dyn CacheTier>,
        Arc::new(tier(&server.url(), "crafted:")),
    ]);
    assert!(cache.get(key).await.is_none());
    assert!(memory.get(key).await.unwrap().is_none(), "never promoted");
    let left: Option<Vec<u8>> = redis::cmd("GET")
        .arg(&full_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(left.is_none(), "deleted from Redis");
}

/// Every `n` entries written under `prefix` read back (bounded retries while a cluster settles).
async fn all_readable(t: &RedisTier, prefix: &str, n: usize) -> bool {
    for i in 0..n {
        let key = format!("{prefix}{i}");
        match t.get(key.as_bytes()).await {
            Ok(Some(e)) if e.body.as_ref() == key.as_bytes() => {}
            _ => return false,
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_spreads_entries_purges_across_every_primary_and_survives_a_failover() {
    let mut cluster = yatagarasu_testkit::RedisCluster::start(3, 1);
    // A short open circuit, so the tier tries again soon after the failover.
    let mut o = RedisOptions::cluster(cluster.urls());
    o.open_for = Duration::from_millis(200);
    o.key_prefix = "cl:".into();
    let t = RedisTier::new(o).unwrap();
    for i in 0..200 {
        let k = format!("{}/{i}", if i % 2 == 0 { "p" } else { "q" });
        t.put(k.as_bytes(), CacheEntry::new("m", k.clone(), None))
            .await
            .unwrap();
    }
    for i in 0..200 {
        let k = format!("{}/{i}", if i % 2 == 0 { "p" } else { "q" });
        let got = t.get(k.as_bytes()).await.unwrap().unwrap();
        assert_eq!(got.body, k.as_bytes());
    }
    // A prefix purge reaches the keys on every primary (SCAN walks one node at a time). Right
    // after the cluster formed, the client may not know every primary yet: the purge then fails
    // (an error, which an operator sees and repeats), and is repeated here, bounded.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut attempts = 0;
    loop {
        attempts += 1;
        match t.delete_prefix(b"p/").await {
            Ok(n) => {
                if attempts == 1 {
                    assert_eq!(n, 100);
                }
                break;
            }
            Err(e) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the purge kept failing: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    for i in 0..200 {
        let k = format!("{}/{i}", if i % 2 == 0 { "p" } else { "q" });
        assert_eq!(
            t.get(k.as_bytes()).await.unwrap().is_some(),
            i % 2 == 1,
            "{k}"
        );
    }
    // A primary dies: its replica takes over its slots (what it had not yet replicated is lost:
    // for a cache, misses).
    let primaries = cluster.primaries();
    assert_eq!(primaries.len(), 3);
    cluster.kill(primaries[0]);
    // Meanwhile the tier answers (misses or errors, which the cache treats as misses), never
    // hangs; once the replica is promoted, writes and reads work on every slot again.
    let started = std::time::Instant::now();
    let mut round = 0;
    loop {
        round += 1;
        let prefix = format!("after-{round}/");
        let ok = tokio::time::timeout(Duration::from_secs(10), async {
            for i in 0..50 {
                let k = format!("{prefix}{i}");
                if t.put(k.as_bytes(), CacheEntry::new("m", k.clone(), None))
                    .await
                    .is_err()
                {
                    return false;
                }
            }
            all_readable(&t, &prefix, 50).await
        })
        .await
        .expect("a cluster in failover never hangs the tier");
        if ok {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the tier never recovered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "cluster failover: the tier wrote and read every slot again {:?} after the kill",
        started.elapsed()
    );
    cluster.wait_ok(Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_managed_primary_is_followed_through_a_failover() {
    let mut s = yatagarasu_testkit::RedisSentinel::start();
    let mut o = RedisOptions::sentinel("mymaster", [s.sentinel_url()]);
    o.open_for = Duration::from_millis(200);
    o.key_prefix = "st:".into();
    let t = RedisTier::new(o).unwrap();
    t.put(b"k", CacheEntry::new("m", "before", None))
        .await
        .unwrap();
    assert_eq!(t.get(b"k").await.unwrap().unwrap().body, "before");
    let old = s.current_primary_port().unwrap();
    assert_eq!(old, s.primary.port());
    // Replication is asynchronous: let the replica have the entry before the primary dies.
    let primary = redis::Client::open(format!("redis://127.0.0.1:{old}")).unwrap();
    let mut c = primary.get_multiplexed_async_connection().await.unwrap();
    let mut acked = 0;
    for _ in 0..50 {
        acked = redis::cmd("WAIT")
            .arg(1)
            .arg(200)
            .query_async(&mut c)
            .await
            .unwrap();
        if acked == 1 {
            break;
        }
    }
    assert_eq!(acked, 1, "the replica acknowledged the write");
    s.primary.kill();
    // The Sentinel promotes the replica; the tier asks it again after a failure and follows.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ok = tokio::time::timeout(Duration::from_secs(5), async {
            t.put(b"k2", CacheEntry::new("m", "after", None))
                .await
                .is_ok()
                && t.get(b"k2").await.ok().flatten().is_some()
        })
        .await
        .expect("no operation hangs");
        if ok {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never followed the failover"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(s.current_primary_port(), Some(s.replica.port()));
    assert_eq!(
        t.get(b"k").await.unwrap().unwrap().body,
        "before",
        "replicated"
    );
}
