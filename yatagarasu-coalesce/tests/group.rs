//! Singleflight `Group`: sharing, cancellation, panics, timeouts, cleanup.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use yatagarasu_coalesce::{FlightError, Group, Role};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_share_one_execution() {
    let group: Group<u32, String, String> = Group::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let (release, gate) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let group = group.clone();
        let calls = calls.clone();
        let mut gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            group
                .run(1, move || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    let _ = gate.wait_for(|open| *open).await;
                    Ok("shared".to_owned())
                })
                .await
        }));
    }
    // Every caller is either the leader or waiting before the work may finish.
    while group.stats().started + group.stats().joined < 200 {
        tokio::task::yield_now().await;
    }
    release.send(true).unwrap();
    let mut leaders = 0;
    for t in tasks {
        let o = t.await.unwrap();
        assert_eq!(o.result.as_deref(), Ok("shared"));
        leaders += usize::from(o.role == Role::Leader);
    }
    assert_eq!(leaders, 1);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(group.in_flight(), 0, "the key is released");
}

#[tokio::test]
async fn errors_reach_every_waiter_and_are_not_remembered() {
    let group: Group<&str, u32, String> = Group::new();
    let a = group.run("k", || async {
        tokio::task::yield_now().await;
        Err::<u32, _>("origin down".to_owned())
    });
    let b = group.run("k", || async { Ok(1) });
    let (a, b) = tokio::join!(a, b);
    assert_eq!(a.result, Err(FlightError::Failed("origin down".to_owned())));
    assert_eq!(b.result, Err(FlightError::Failed("origin down".to_owned())));
    // The next call starts afresh.
    assert_eq!(group.run("k", || async { Ok(7) }).await.result, Ok(7));
    assert_eq!(group.stats().failed, 1);
}

#[tokio::test]
async fn a_panic_becomes_an_error_not_a_hang() {
    let group: Group<&str, u32, String> = Group::new();
    let a = group.run("k", || async {
        tokio::task::yield_now().await;
        panic!("bug in the work");
    });
    let b = group.run("k", || async { Ok(1) });
    let (a, b) = tokio::time::timeout(Duration::from_secs(10), async { tokio::join!(a, b) })
        .await
        .unwrap();
    assert_eq!(a.result, Err(FlightError::Panicked));
    assert_eq!(b.result, Err(FlightError::Panicked));
    assert_eq!(group.in_flight(), 0);
    assert_eq!(group.run("k", || async { Ok(2) }).await.result, Ok(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_goes_away_does_not_cancel_the_work() {
    let group: Group<&str, u32, String> = Group::new();
    let (release, gate) = tokio::sync::oneshot::channel::<()>();
    let g = group.clone();
    let leader = tokio::spawn(async move {
        g.run("k", move || async move {
            let _ = gate.await;
            Ok(99)
        })
        .await
    });
    while group.in_flight() == 0 {
        tokio::task::yield_now().await;
    }
    let g = group.clone();
    let waiter = tokio::spawn(async move { g.run("k", || async { Ok(0) }).await });
    while group.stats().joined == 0 {
        tokio::task::yield_now().await;
    }
    leader.abort(); // the first client disconnects
    let _ = leader.await;
    release.send(()).unwrap();
    let o = waiter.await.unwrap();
    assert_eq!(o.result, Ok(99));
    assert_eq!(o.role, Role::Joined);
}

#[tokio::test]
async fn waiter_timeout_leaves_the_work_running_for_others() {
    let group: Group<&str, u32, String> = Group::new();
    let (release, gate) = tokio::sync::oneshot::channel::<()>();
    let patient = group.run("k", move || async move {
        let _ = gate.await;
        Ok(5)
    });
    let impatient = async {
        let o = group
            .run_with_timeout("k", Some(Duration::from_millis(20)), || async { Ok(0) })
            .await;
        release.send(()).unwrap();
        o
    };
    let (patient, impatient) = tokio::join!(patient, impatient);
    assert_eq!(impatient.result, Err(FlightError::TimedOut));
    assert_eq!(patient.result, Ok(5));
    assert_eq!(group.stats().timed_out, 1);
}

#[tokio::test]
async fn forget_starts_a_new_flight_and_old_waiters_keep_theirs() {
    let group: Group<&str, u32, String> = Group::new();
    let (release, gate) = tokio::sync::oneshot::channel::<()>();
    let old = group.run("k", move || async move {
        let _ = gate.await;
        Ok(1)
    });
    let fresh = async {
        tokio::task::yield_now().await;
        assert!(group.forget(&"k"));
        let o = group.run("k", || async { Ok(2) }).await;
        release.send(()).unwrap();
        o
    };
    let (old, fresh) = tokio::join!(old, fresh);
    assert_eq!(old.result, Ok(1));
    assert_eq!(fresh.result, Ok(2));
    assert_eq!(fresh.role, Role::Leader);
    assert_eq!(
        group.in_flight(),
        0,
        "the old flight did not remove the new one's entry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_joins_and_cancellations() {
    let group: Group<u8, u64, String> = Group::new();
    let executions = Arc::new(AtomicUsize::new(0));
    let mut rng = fastrand::Rng::with_seed(7);
    let mut tasks = Vec::new();
    for i in 0..500u64 {
        let group = group.clone();
        let executions = executions.clone();
        let key = rng.u8(0..4);
        let yields = rng.usize(0..20);
        let cancel_after = rng.bool().then(|| rng.usize(0..20));
        let task = tokio::spawn(async move {
            for _ in 0..yields {
                tokio::task::yield_now().await;
            }
            group
                .run(key, move || async move {
                    executions.fetch_add(1, Ordering::SeqCst);
                    for _ in 0..10 {
                        tokio::task::yield_now().await;
                    }
                    Ok(u64::from(key) * 1000)
                })
                .await
                .result
        });
        if let Some(n) = cancel_after {
            let handle = task.abort_handle();
            tokio::spawn(async move {
                for _ in 0..n {
                    tokio::task::yield_now().await;
                }
                handle.abort();
            });
        }
        tasks.push((i, task));
    }
    for (_, t) in tasks {
        if let Ok(r) = t.await {
            let v = r.unwrap();
            assert_eq!(v % 1000, 0);
        }
    }
    // Every flight ended and released its key, cancelled callers included.
    tokio::time::timeout(Duration::from_secs(10), async {
        while group.in_flight() > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    assert!(
        executions.load(Ordering::SeqCst) < 500,
        "coalescing happened"
    );
}

#[tokio::test]
async fn work_is_dropped_once_every_caller_has_gone() {
    struct Dropped(std::sync::Arc<std::sync::atomic::AtomicBool>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
    let group: yatagarasu_coalesce::Group<u8, u8, String> = yatagarasu_coalesce::Group::new();
    let dropped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = Dropped(dropped.clone());
    let call = group.run(1, move || async move {
        let _flag = flag;
        std::future::pending::<Result<u8, String>>().await
    });
    // The caller gives up (a client that left): nobody else waits, so the work stops.
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(20), call)
            .await
            .is_err()
    );
    tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while !dropped.load(std::sync::atomic::Ordering::SeqCst) || group.in_flight() > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the work of a flight nobody waits for is dropped");
}

/// A value and an error that are not `Clone`.
#[derive(Debug)]
struct Blob(Vec<u8>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_results_need_no_clone_and_every_waiter_gets_the_same_one() {
    let group: Group<String, Blob, std::io::Error> = Group::new();
    let (release, gate) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let group = group.clone();
        let mut gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            group
                .run_shared("cat.jpg".to_owned(), move || async move {
                    let _ = gate.wait_for(|open| *open).await;
                    Ok(Blob(vec![7; 1024]))
                })
                .await
        }));
    }
    while group.stats().started + group.stats().joined < 20 {
        tokio::task::yield_now().await;
    }
    // A borrowed key finds the flight of an owned one.
    assert!(group.is_in_flight("cat.jpg"));
    release.send(true).unwrap();
    let mut values = Vec::new();
    for t in tasks {
        values.push(t.await.unwrap().result.unwrap());
    }
    assert!(
        values.iter().all(|v| Arc::ptr_eq(v, &values[0])),
        "one shared value"
    );
    assert_eq!(values[0].0.len(), 1024);
    assert!(!group.is_in_flight("cat.jpg"));

    // The error is shared too: an `io::Error` loader compiles and every waiter sees its kind.
    let (release, mut gate) = tokio::sync::watch::channel(false);
    let leader = tokio::spawn({
        let group = group.clone();
        async move {
            group
                .run_shared("gone".to_owned(), move || async move {
                    let _ = gate.wait_for(|open| *open).await;
                    Err(std::io::Error::from(std::io::ErrorKind::NotFound))
                })
                .await
        }
    });
    while !group.is_in_flight("gone") {
        tokio::task::yield_now().await;
    }
    let joined_before = group.stats().joined;
    let joined = tokio::spawn({
        let group = group.clone();
        async move {
            group
                .run_shared("gone".to_owned(), || async { Ok(Blob(Vec::new())) })
                .await
        }
    });
    while group.stats().joined == joined_before {
        tokio::task::yield_now().await;
    }
    release.send(true).unwrap();
    for outcome in [leader.await.unwrap(), joined.await.unwrap()] {
        let err = outcome.result.unwrap_err();
        assert_eq!(err.failed().unwrap().kind(), std::io::ErrorKind::NotFound);
    }
}

#[tokio::test]
async fn forget_takes_a_borrowed_key() {
    let group: Group<String, u32, String> = Group::new();
    let (release, mut gate) = tokio::sync::watch::channel(false);
    let first = tokio::spawn({
        let group = group.clone();
        async move {
            group
                .run("k".to_owned(), move || async move {
                    let _ = gate.wait_for(|open| *open).await;
                    Ok(1)
                })
                .await
        }
    });
    while !group.is_in_flight("k") {
        tokio::task::yield_now().await;
    }
    assert!(group.forget("k"));
    // The next call starts a flight of its own while the forgotten one is still running.
    assert_eq!(
        group.run("k".to_owned(), || async { Ok(2) }).await.result,
        Ok(2)
    );
    release.send(true).unwrap();
    assert_eq!(first.await.unwrap().result, Ok(1));
}
