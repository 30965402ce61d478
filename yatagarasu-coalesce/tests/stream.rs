//! Streaming fan-out: late joiners, failures at every position, slow and vanishing subscribers.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use tokio::sync::mpsc;
use yatagarasu_coalesce::{FlightError, Role, StreamGroup, StreamOptions, Subscription};

type Sub = Subscription<u64, Bytes, String>;
type G = StreamGroup<u32, u64, Bytes, String>;

fn chunk(i: u64) -> Bytes {
    Bytes::from(format!("chunk-{i:04};"))
}

/// A producer fed by hand through a channel, so tests decide exactly when each chunk exists.
fn manual(
    rx: mpsc::UnboundedReceiver<Result<Bytes, String>>,
) -> impl FnOnce() -> futures_util::future::Ready<Result<(u64, tokio_stream_like::Rx), String>> {
    move || futures_util::future::ready(Ok((77, tokio_stream_like::Rx(rx))))
}

mod tokio_stream_like {
    use super::*;
    pub(crate) struct Rx(pub(crate) mpsc::UnboundedReceiver<Result<Bytes, String>>);
    impl futures_core::Stream for Rx {
        type Item = Result<Bytes, String>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            self.0.poll_recv(cx)
        }
    }
}

async fn drain(mut s: Sub) -> (Vec<Bytes>, Option<FlightError<String>>) {
    let mut got = Vec::new();
    while let Some(item) = s.next().await {
        match item {
            Ok(c) => got.push(c),
            Err(e) => return (got, Some(e)),
        }
    }
    (got, None)
}

fn expected(n: u64) -> Vec<Bytes> {
    (0..n).map(chunk).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joiners_get_everything_from_the_first_chunk() {
    let group: G = StreamGroup::new(StreamOptions::default());
    let (tx, rx) = mpsc::unbounded_channel();
    let (first, role) = group.subscribe(1, manual(rx)).unwrap();
    assert_eq!(role, Role::Leader);
    let mut joiners = vec![tokio::spawn(drain(first))];
    for i in 0..100u64 {
        tx.send(Ok(chunk(i))).unwrap();
        // Join at every point of the stream, several times.
        if i % 3 == 0 {
            let (mut sub, role) = group
                .subscribe(1, || async {
                    Err::<(u64, tokio_stream_like::Rx), _>(
                        "second producer must not run".to_owned(),
                    )
                })
                .unwrap();
            assert_eq!(role, Role::Joined);
            assert_eq!(sub.head().await, Ok(77));
            joiners.push(tokio::spawn(drain(sub)));
        }
        tokio::task::yield_now().await;
    }
    drop(tx); // producer finishes cleanly
    for j in joiners {
        let (got, err) = j.await.unwrap();
        assert_eq!(err, None);
        assert_eq!(got, expected(100), "no gap, no duplicate");
    }
    assert_eq!(group.in_flight(), 0);
    assert_eq!(group.stats().started, 1);
}

#[tokio::test]
async fn producer_failing_before_the_head_fails_everyone() {
    let group: G = StreamGroup::new(StreamOptions::default());
    let start = || async {
        tokio::task::yield_now().await;
        Err::<(u64, tokio_stream_like::Rx), _>("NoSuchKey".to_owned())
    };
    let (mut a, _) = group.subscribe(1, start).unwrap();
    let (mut b, _) = group.subscribe(1, start).unwrap();
    assert_eq!(
        a.head().await,
        Err(FlightError::Failed("NoSuchKey".to_owned()))
    );
    assert_eq!(
        b.head().await,
        Err(FlightError::Failed("NoSuchKey".to_owned()))
    );
    assert_eq!(
        drain(a).await.1,
        Some(FlightError::Failed("NoSuchKey".to_owned()))
    );
}

#[tokio::test]
async fn failures_at_first_middle_and_end_are_never_a_clean_end() {
    for fail_at in [0u64, 5, 10] {
        let group: G = StreamGroup::new(StreamOptions::default());
        let (tx, rx) = mpsc::unbounded_channel();
        let (a, _) = group.subscribe(1, manual(rx)).unwrap();
        let (b, _) = group
            .subscribe(1, manual(mpsc::unbounded_channel().1))
            .unwrap();
        for i in 0..fail_at {
            tx.send(Ok(chunk(i))).unwrap();
        }
        tx.send(Err("connection reset".to_owned())).unwrap();
        for s in [a, b] {
            let (got, err) = drain(s).await;
            assert_eq!(got, expected(fail_at), "fail_at {fail_at}");
            assert_eq!(
                err,
                Some(FlightError::Failed("connection reset".to_owned()))
            );
        }
        assert_eq!(group.in_flight(), 0);
    }
}

#[tokio::test]
async fn a_panicking_producer_reaches_subscribers_as_an_error() {
    let group: G = StreamGroup::new(StreamOptions::default());
    let start = || async {
        let s = futures_util::stream::iter(0..3u64).map(|i| {
            if i == 2 {
                panic!("bug mid-stream");
            }
            Ok(chunk(i))
        });
        Ok::<_, String>((1u64, s))
    };
    let (a, _) = group.subscribe(1, start).unwrap();
    let (got, err) = tokio::time::timeout(Duration::from_secs(10), drain(a))
        .await
        .unwrap();
    assert_eq!(got, expected(2));
    assert_eq!(err, Some(FlightError::Panicked));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanishing_subscribers_do_not_disturb_the_others() {
    let group: G = StreamGroup::new(StreamOptions::default());
    let (tx, rx) = mpsc::unbounded_channel();
    let (keeper, _) = group.subscribe(1, manual(rx)).unwrap();
    let keeper = tokio::spawn(drain(keeper));
    let mut rng = fastrand::Rng::with_seed(11);
    let mut quitters = Vec::new();
    for _ in 0..50 {
        let (mut sub, _) = group
            .subscribe(1, manual(mpsc::unbounded_channel().1))
            .unwrap();
        let stop_after = rng.usize(0..30);
        quitters.push(tokio::spawn(async move {
            let mut n = 0;
            while n < stop_after {
                if sub.next().await.is_none() {
                    break;
                }
                n += 1;
            }
            // dropped here, mid-stream
        }));
    }
    for i in 0..40 {
        tx.send(Ok(chunk(i))).unwrap();
        tokio::task::yield_now().await;
    }
    drop(tx);
    for q in quitters {
        q.await.unwrap();
    }
    let (got, err) = keeper.await.unwrap();
    assert_eq!(err, None);
    assert_eq!(got, expected(40));
}

#[tokio::test]
async fn a_slow_subscriber_is_dropped_at_the_bound_and_never_slows_the_producer() {
    let options = StreamOptions::default()
        .with_buffer_bytes(10 * chunk(0).len())
        .with_max_subscribers(100);
    let group: G = StreamGroup::new(options);
    let (tx, rx) = mpsc::unbounded_channel();
    let (slow, _) = group.subscribe(1, manual(rx)).unwrap();
    let (mut fast, _) = group
        .subscribe(1, manual(mpsc::unbounded_channel().1))
        .unwrap();
    // The producer and the fast subscriber move in step; the slow one reads nothing.
    for i in 0..100 {
        tx.send(Ok(chunk(i))).unwrap();
        assert_eq!(fast.next().await.unwrap().unwrap(), chunk(i));
    }
    drop(tx);
    assert!(
        fast.next().await.is_none(),
        "the fast subscriber ends cleanly"
    );
    let (got, err) = drain(slow).await;
    assert_eq!(err, Some(FlightError::Lagged));
    assert!(got.is_empty());
    assert_eq!(group.stats().lagged, 1);
}

#[tokio::test]
async fn past_the_bound_newcomers_start_their_own_flight() {
    let options = StreamOptions::default()
        .with_buffer_bytes(5 * chunk(0).len())
        .with_max_subscribers(100);
    let group: G = StreamGroup::new(options);
    let (tx, rx) = mpsc::unbounded_channel();
    let (mut reader, _) = group.subscribe(1, manual(rx)).unwrap();
    for i in 0..8 {
        tx.send(Ok(chunk(i))).unwrap();
        assert_eq!(reader.next().await.unwrap().unwrap(), chunk(i));
    }
    // The first chunks are gone, so a newcomer cannot get the stream from its start: it leads anew.
    let (tx2, rx2) = mpsc::unbounded_channel();
    let (late, role) = group.subscribe(1, manual(rx2)).unwrap();
    assert_eq!(role, Role::Leader);
    tx2.send(Ok(chunk(0))).unwrap();
    drop(tx2);
    assert_eq!(drain(late).await.0, expected(1));
    drop(tx);
    assert_eq!(drain(reader).await, (vec![], None));
}

#[tokio::test]
async fn max_subscribers_refuses_extra_callers() {
    let options = StreamOptions::default()
        .with_buffer_bytes(1 << 20)
        .with_max_subscribers(2);
    let group: G = StreamGroup::new(options);
    let (_tx, rx) = mpsc::unbounded_channel();
    let _a = group.subscribe(1, manual(rx)).unwrap();
    let _b = group
        .subscribe(1, manual(mpsc::unbounded_channel().1))
        .unwrap();
    assert!(
        group
            .subscribe(1, manual(mpsc::unbounded_channel().1))
            .is_none()
    );
    assert_eq!(group.stats().refused_full, 1);
    assert!(group.join(&2).is_none(), "join never starts a flight");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_joins_cancels_and_failures() {
    let mut rng = fastrand::Rng::with_seed(2024);
    for round in 0..20 {
        let group: G = StreamGroup::new(StreamOptions::default());
        let n = rng.u64(1..60);
        let fail = rng.bool();
        let (tx, rx) = mpsc::unbounded_channel();
        let (first, _) = group.subscribe(round, manual(rx)).unwrap();
        let mut tasks = vec![(false, tokio::spawn(drain(first)))];
        for i in 0..n {
            tx.send(Ok(chunk(i))).unwrap();
            if rng.u8(0..4) == 0 {
                let (sub, _) = group
                    .subscribe(round, manual(mpsc::unbounded_channel().1))
                    .unwrap();
                let cancel = rng.u8(0..3) == 0;
                let t = tokio::spawn(drain(sub));
                if cancel {
                    t.abort();
                }
                tasks.push((cancel, t));
            }
            if rng.bool() {
                tokio::task::yield_now().await;
            }
        }
        if fail {
            tx.send(Err("boom".to_owned())).unwrap();
        }
        drop(tx);
        for (cancelled, t) in tasks {
            match t.await {
                Ok((got, err)) => {
                    assert_eq!(got, expected(n));
                    assert_eq!(err, fail.then(|| FlightError::Failed("boom".to_owned())));
                }
                Err(e) => assert!(cancelled && e.is_cancelled()),
            }
        }
        assert_eq!(group.in_flight(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_slow_subscriber_gets_backpressure_not_an_error() {
    let options = StreamOptions::default()
        .with_buffer_bytes(10 * chunk(0).len())
        .with_max_subscribers(100);
    let group: G = StreamGroup::new(options);
    let produced = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let p = produced.clone();
    let start = move || async move {
        let s = futures_util::stream::iter(0..200u64).map(move |i| {
            p.store(i + 1, std::sync::atomic::Ordering::SeqCst);
            Ok(chunk(i))
        });
        Ok::<_, String>((1u64, s))
    };
    let (mut sub, _) = group.subscribe(1, start).unwrap();
    let mut read = 0u64;
    while let Some(c) = sub.next().await {
        assert_eq!(c.unwrap(), chunk(read));
        read += 1;
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        let ahead = produced.load(std::sync::atomic::Ordering::SeqCst) - read;
        assert!(
            ahead <= 12,
            "the producer ran {ahead} chunks ahead of its only reader"
        );
    }
    assert_eq!(read, 200);
    assert_eq!(group.stats().lagged, 0);
}

/// A producer's head and endless chunk stream.
type Endless = futures_util::future::Ready<
    Result<
        (
            u64,
            futures_util::stream::BoxStream<'static, Result<Bytes, String>>,
        ),
        String,
    >,
>;

/// Counts the chunks a producer was asked for; never ends by itself.
fn counting(pulled: std::sync::Arc<std::sync::atomic::AtomicU64>) -> impl FnOnce() -> Endless {
    move || {
        let s = futures_util::stream::iter(0u64..).then(move |i| {
            let pulled = std::sync::Arc::clone(&pulled);
            async move {
                pulled.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::task::yield_now().await;
                Ok(chunk(i % 10_000))
            }
        });
        futures_util::future::ready(Ok((77, s.boxed())))
    }
}

#[tokio::test]
async fn a_flight_whose_readers_all_left_stops_pulling() {
    let pulled = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let group: G = StreamGroup::new(StreamOptions::default().with_buffer_bytes(1 << 30));
    let (mut sub, _) = group.subscribe(1, counting(pulled.clone())).unwrap();
    assert_eq!(sub.head().await, Ok(77));
    for _ in 0..5 {
        sub.next().await.unwrap().unwrap();
    }
    drop(sub);
    // The flight ends (it leaves the group) within a bounded number of further chunks.
    tokio::time::timeout(Duration::from_secs(5), async {
        while group.in_flight() > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the abandoned flight ended");
    let at_end = pulled.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        at_end < 100,
        "pulled {at_end} chunks for a reader that took 5"
    );
    // And a newcomer starts afresh rather than joining a flight nobody reads.
    let (_, role) = group.subscribe(1, counting(pulled.clone())).unwrap();
    assert_eq!(role, Role::Leader);
}

#[tokio::test]
async fn a_flight_abandoned_before_its_head_drops_the_start() {
    struct Dropped(std::sync::Arc<std::sync::atomic::AtomicBool>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
    let dropped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let group: G = StreamGroup::new(StreamOptions::default());
    let flag = Dropped(dropped.clone());
    let start = move || async move {
        let _flag = flag;
        std::future::pending::<Result<(u64, tokio_stream_like::Rx), String>>().await
    };
    let (sub, _) = group.subscribe(1, start).unwrap();
    tokio::task::yield_now().await; // the producer task starts and waits for the head
    drop(sub);
    tokio::time::timeout(Duration::from_secs(5), async {
        while !dropped.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the origin request of a flight nobody waits for is dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_budget_bounds_what_stalled_flights_hold() {
    let budget = yatagarasu_coalesce::BufferBudget::new(20 * chunk(0).len());
    let group: G = StreamGroup::new(
        StreamOptions::default()
            .with_buffer_bytes(1 << 30)
            .with_budget(budget.clone()),
    );
    // Ten flights, each with a subscriber that never reads past the head.
    let pulled = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut stalled = Vec::new();
    for key in 0..10 {
        let (mut sub, _) = group.subscribe(key, counting(pulled.clone())).unwrap();
        assert_eq!(sub.head().await, Ok(77));
        stalled.push(sub);
    }
    // The producers fill the budget, then wait: what they hold never exceeds it.
    tokio::time::timeout(Duration::from_secs(5), async {
        while budget.in_use() < budget.capacity() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the producers use the budget");
    let before = pulled.load(std::sync::atomic::Ordering::SeqCst);
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert!(budget.in_use() <= budget.capacity());
    // Each stalled flight holds at most one chunk beyond the budget, and one more in hand.
    let after = pulled.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        after <= 20 + 2 * 10,
        "pulled {after} chunks with room for 20 (had {before})"
    );
    // A reader that goes on gets everything in order while the others stay stalled.
    let mut reader = stalled.pop().unwrap();
    for i in 0..200 {
        assert_eq!(reader.next().await.unwrap().unwrap(), chunk(i));
    }
    drop(stalled);
    drop(reader);
    tokio::time::timeout(Duration::from_secs(5), async {
        while budget.in_use() > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the budget is given back when the flights end");
}
