//! Cost of coalescing: an uncontended flight, and 1,000 waiters on one key.
#![allow(missing_docs)] // criterion_group! generates undocumented items
#![allow(clippy::unwrap_used)] // benches: a panic is the failure report

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::StreamExt as _;
use yatagarasu_coalesce::{Group, StreamGroup, StreamOptions};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let group: Group<u64, u64, ()> = Group::new();
    c.bench_function("group/uncontended_flight", |b| {
        b.to_async(&rt)
            .iter(|| async { group.run(7, || async { Ok(1) }).await })
    });

    c.bench_function("group/1000_waiters_one_key", |b| {
        b.to_async(&rt).iter(|| {
            let group = group.clone();
            async move {
                let (release, gate) = tokio::sync::watch::channel(false);
                let before = group.stats();
                let callers: Vec<_> = (0..1000)
                    .map(|_| {
                        let g = group.clone();
                        let mut gate = gate.clone();
                        tokio::spawn(async move {
                            g.run(1, move || async move {
                                let _ = gate.wait_for(|open| *open).await;
                                Ok(42)
                            })
                            .await
                        })
                    })
                    .collect();
                // Release only once all 1000 are in: one leader, 999 waiters.
                loop {
                    let now = group.stats();
                    if now.started + now.joined - before.started - before.joined == 1000 {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
                release.send(true).unwrap();
                for c in callers {
                    assert_eq!(c.await.unwrap().result, Ok(42));
                }
            }
        })
    });

    let streams: StreamGroup<u64, u64, Bytes, ()> = StreamGroup::new(StreamOptions::default());
    let chunk = Bytes::from(vec![7u8; 64 * 1024]);
    c.bench_function("stream/100_subscribers_1mib_in_64k_chunks", |b| {
        b.to_async(&rt).iter(|| {
            let chunk = chunk.clone();
            let streams = streams.clone();
            async move {
                let start = move || async move {
                    let items = futures_util::stream::iter((0..16).map(move |_| Ok(chunk.clone())));
                    Ok((1u64, items))
                };
                let subs: Vec<_> = (0..100)
                    .map(|_| streams.subscribe(3, start.clone()).unwrap().0)
                    .collect();
                let tasks: Vec<_> = subs
                    .into_iter()
                    .map(|s| {
                        tokio::spawn(async move {
                            s.fold(0usize, |n, c| async move { n + c.unwrap().len() })
                                .await
                        })
                    })
                    .collect();
                for t in tasks {
                    assert_eq!(t.await.unwrap(), 1024 * 1024);
                }
            }
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
