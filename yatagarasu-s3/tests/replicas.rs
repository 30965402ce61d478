//! `ReplicaSet` against real S3 origins (s3s-fs in-process, SigV4 on, real sockets): failover before
//! the first byte, a body continued from another replica, a replica holding another version, a
//! recovered primary taking traffic back. Origins are stopped and started for real.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use futures_util::StreamExt as _;
use yatagarasu_core::ErrorKind;
use yatagarasu_s3::{
    BreakerOptions, BreakerState, CircuitBreaker, Credentials, GetObjectRequest, HeadObjectRequest,
    Origin, Replica, ReplicaSet, RetryPolicy, S3Client, Timeouts,
};
use yatagarasu_testkit::{Fault, TestOrigin, pattern_byte};

const AK: &str = "AKIDREPLICA";
const SK: &str = "replica-secret";

async fn origin() -> TestOrigin {
    let o = TestOrigin::start(AK, SK).await;
    o.create_bucket("media");
    o
}

/// A client with no retries and no resumes of its own, so every fault reaches the set. Bodies
/// are broken by stalling them (the idle timeout ends them): a connection reset could reach the
/// client before the response head and turn a mid-body break into an earlier one.
fn client_for(o: &TestOrigin) -> S3Client {
    S3Client::builder("media")
        .endpoint(o.endpoint())
        .region("us-east-1")
        .credentials(Credentials::new(AK, SK))
        .timeouts(Timeouts::default().with_idle(Duration::from_millis(300)))
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap()
}

fn breaker(open: Duration) -> BreakerOptions {
    BreakerOptions::default()
        .failure_threshold(2)
        .success_threshold(1)
        .open_timeout(open)
}

/// `primary` (priority 1) and `backup` (priority 2), each behind its own breaker.
fn pair(primary: &TestOrigin, backup: &TestOrigin, open: Duration) -> ReplicaSet {
    ReplicaSet::new(vec![
        // Given out of order: priority decides, not position.
        Replica::new(
            "backup",
            2,
            CircuitBreaker::new(client_for(backup), breaker(open)),
        ),
        Replica::new(
            "primary",
            1,
            CircuitBreaker::new(client_for(primary), breaker(open)),
        ),
    ])
    .unwrap()
}

async fn get_all(set: &ReplicaSet, key: &str) -> yatagarasu_core::Result<bytes::Bytes> {
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        set.get_object(key, &GetObjectRequest::default()),
    )
    .await
    .expect("no request hangs")?;
    out.body.collect().await
}

fn breaker_state(set: &ReplicaSet, name: &str) -> BreakerState {
    let stats = set.stats();
    let r = stats.replicas.iter().find(|r| r.name == name).unwrap();
    r.origin.breaker.unwrap().state
}

#[tokio::test]
async fn reads_go_to_the_best_priority_and_move_on_before_the_first_byte() {
    let (p, b) = (origin().await, origin().await);
    for o in [&p, &b] {
        o.put_object("media", "a.txt", b"same bytes");
    }
    let set = pair(&p, &b, Duration::from_secs(60));
    assert_eq!(set.stats().replicas[0].name, "primary");
    assert_eq!(get_all(&set, "a.txt").await.unwrap(), "same bytes");
    assert_eq!((p.stats().gets(), b.stats().gets()), (1, 0));

    // A 503 from the primary: the same call is answered by the backup.
    p.inject(Fault::status(503, "SlowDown"), 1);
    assert_eq!(get_all(&set, "a.txt").await.unwrap(), "same bytes");
    assert_eq!((p.stats().gets(), b.stats().gets()), (2, 1));
    assert_eq!(set.stats().failovers, 1);

    // A 404 is an answer, not a fault: returned without asking the backup.
    let err = get_all(&set, "only-on-backup.txt").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(b.stats().gets(), 1);

    // HEAD fails over too.
    p.inject(Fault::status(500, "InternalError"), 1);
    let meta = set
        .head_object("a.txt", &HeadObjectRequest::default())
        .await
        .unwrap();
    assert_eq!(meta.size, 10);
    assert_eq!(b.stats().heads(), 1);

    // The primary dies: every read succeeds; after two faults its breaker is open and it is not
    // asked any more (its request count stops).
    p.stop();
    for _ in 0..10 {
        assert_eq!(get_all(&set, "a.txt").await.unwrap(), "same bytes");
    }
    assert_eq!(breaker_state(&set, "primary"), BreakerState::Open);
    let stats = set.stats();
    let primary = stats.replicas.iter().find(|r| r.name == "primary").unwrap();
    assert_eq!(primary.origin.breaker.unwrap().opened, 1);
    assert_eq!(
        primary.origin.breaker.unwrap().rejected,
        0,
        "an open replica is put last, not asked and refused"
    );
    // Requests: the first GET, the 503, the 404 (a success: the fault count starts again), the 500
    // HEAD, then one refused connection (the second fault in a row) and none after.
    assert_eq!(primary.requests, 5);

    // Both gone: the error is the last replica's fault.
    b.stop();
    let err = get_all(&set, "a.txt").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
}

#[tokio::test]
async fn a_recovered_primary_takes_traffic_back_once_its_breaker_closes() {
    let root = tempfile::tempdir().unwrap();
    let p = TestOrigin::start_in(root.path(), AK, SK, 0).await;
    p.create_bucket("media");
    p.put_object("media", "a.txt", b"v1");
    let b = origin().await;
    b.put_object("media", "a.txt", b"v1");
    let port = p.addr().port();
    let set = pair(&p, &b, Duration::from_millis(300));

    p.stop();
    drop(p);
    for _ in 0..4 {
        assert_eq!(get_all(&set, "a.txt").await.unwrap(), "v1");
    }
    assert_eq!(breaker_state(&set, "primary"), BreakerState::Open);
    let backup_before = b.stats().gets();

    let p = TestOrigin::restart_in(root.path(), AK, SK, port).await;
    // Readers keep being served while the breaker waits out its open time; the first request after
    // it is a probe of the primary, which succeeds and closes the breaker.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while p.stats().gets() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "primary never probed"
        );
        assert_eq!(get_all(&set, "a.txt").await.unwrap(), "v1");
        tokio::task::yield_now().await;
    }
    assert_eq!(breaker_state(&set, "primary"), BreakerState::Closed);
    let backup_after_probe = b.stats().gets();
    assert!(backup_after_probe >= backup_before);
    for _ in 0..5 {
        assert_eq!(get_all(&set, "a.txt").await.unwrap(), "v1");
    }
    assert_eq!(
        b.stats().gets(),
        backup_after_probe,
        "traffic is back on the primary"
    );
    assert_eq!(p.stats().gets(), 6);
}

#[tokio::test]
async fn a_body_that_breaks_continues_from_a_replica_with_the_same_version() {
    let (p, b) = (origin().await, origin().await);
    let len = 1_000_000;
    for o in [&p, &b] {
        o.put_pattern_object("media", "big.bin", len);
    }
    let set = pair(&p, &b, Duration::from_secs(60));
    p.inject(Fault::StallBodyAfter(300_000), 1);
    let mut out = set
        .get_object("big.bin", &GetObjectRequest::default())
        .await
        .unwrap();
    let first = out.body.next().await.unwrap().unwrap();
    let rest = out.body.collect().await.unwrap();
    let body = [first.as_ref(), rest.as_ref()].concat();
    assert_eq!(body.len() as u64, len);
    assert!(
        body.iter()
            .enumerate()
            .all(|(i, x)| *x == pattern_byte(i as u64)),
        "bytes spliced or shifted"
    );
    assert_eq!(set.stats().body_failovers, 1);
    assert_eq!(b.stats().gets(), 1);
    // The backup sent only what was missing: never the bytes already handed out.
    assert!(
        b.stats().body_bytes() <= len - first.len() as u64,
        "{}",
        b.stats().body_bytes()
    );

    // A ranged read continues within its range.
    p.inject(Fault::StallBodyAfter(50_000), 1);
    let out = set
        .get_object("big.bin", &GetObjectRequest::range(100_000, 299_999))
        .await
        .unwrap();
    let body = out.body.collect().await.unwrap();
    assert_eq!(body.len(), 200_000);
    assert!(
        body.iter()
            .enumerate()
            .all(|(i, x)| *x == pattern_byte(100_000 + i as u64))
    );
    assert_eq!(set.stats().body_failovers, 2);
}

#[tokio::test]
async fn a_replica_holding_another_version_ends_the_body_with_an_error_never_a_splice() {
    let (p, b) = (origin().await, origin().await);
    let len = 600_000;
    p.put_pattern_object("media", "v.bin", len);
    // Same length, other bytes, so another ETag: replication has not caught up.
    b.put_object("media", "v.bin", &vec![0xAB; 600_000]);
    let set = pair(&p, &b, Duration::from_secs(60));
    p.inject(Fault::StallBodyAfter(200_000), 1);
    let mut out = set
        .get_object("v.bin", &GetObjectRequest::default())
        .await
        .unwrap();
    let mut received = Vec::new();
    let mut err = None;
    while let Some(chunk) = out.body.next().await {
        match chunk {
            Ok(c) => received.extend_from_slice(&c),
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    let err = err.expect("the body must fail rather than splice versions");
    assert!(received.len() <= 200_000, "{}", received.len());
    assert!(
        received
            .iter()
            .enumerate()
            .all(|(i, x)| *x == pattern_byte(i as u64)),
        "every byte handed out is the primary's version"
    );
    assert_eq!(err.code(), "PreconditionFailed");
    assert!(err.message().contains("another version"), "{err}");
    assert!(
        out.body.next().await.is_none(),
        "the stream ends after its error"
    );
    let stats = set.stats();
    assert_eq!((stats.version_mismatches, stats.body_failovers), (1, 0));
}

#[tokio::test]
async fn readiness_probes_every_replica_and_needs_one() {
    let (p, b) = (origin().await, origin().await);
    let set = pair(&p, &b, Duration::from_secs(60));
    assert_eq!(set.stats().replicas[0].reachable, None);
    set.probe().await.unwrap();
    p.stop();
    set.probe().await.unwrap();
    let reach: Vec<_> = set
        .stats()
        .replicas
        .iter()
        .map(|r| (r.name.clone(), r.reachable))
        .collect();
    assert_eq!(
        reach,
        [
            ("primary".to_owned(), Some(false)),
            ("backup".to_owned(), Some(true))
        ]
    );
    b.stop();
    assert!(set.probe().await.is_err());
    // The identity is the primary's: entries cached through the set stay valid across failover.
    assert_eq!(set.identity(), client_for(&p).identity());
}

#[test]
fn a_set_needs_replicas_with_distinct_names() {
    let c = || S3Client::builder("media").anonymous().build().unwrap();
    let err = ReplicaSet::new(Vec::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    let err =
        ReplicaSet::new(vec![Replica::new("a", 1, c()), Replica::new("a", 2, c())]).unwrap_err();
    assert!(err.message().contains("`a`"), "{err}");
}
