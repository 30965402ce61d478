//! Use `yatagarasu-coalesce` on its own: collapse concurrent lookups of the same key into one, and
//! fan one stream out to many readers.
//!
//! ```text
//! cargo run -p yatagarasu-examples --example coalesce_alone
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use yatagarasu_coalesce::{Group, Role, StreamGroup, StreamOptions};

#[tokio::main]
async fn main() {
    // 1. Singleflight: 50 concurrent requests for one user profile, one database query.
    let queries = Arc::new(AtomicUsize::new(0));
    let group: Group<u64, String, String> = Group::new();
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let group = group.clone();
            let queries = queries.clone();
            tokio::spawn(async move {
                group
                    .run(42, move || async move {
                        queries.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await; // a slow query
                        Ok::<_, String>("profile of user 42".to_owned())
                    })
                    .await
            })
        })
        .collect();
    let mut leaders = 0;
    for c in calls {
        let outcome = c.await.expect("task");
        assert_eq!(outcome.result.as_deref(), Ok("profile of user 42"));
        leaders += usize::from(outcome.role == Role::Leader);
    }
    println!(
        "singleflight: 50 callers, {} query, {leaders} leader, stats {:?}",
        queries.load(Ordering::SeqCst),
        group.stats()
    );

    // 2. Streaming fan-out: one producer, readers joining at different times all get every chunk.
    let streams: StreamGroup<&str, &str, Bytes, String> =
        StreamGroup::new(StreamOptions::default());
    let start = || async {
        let chunks = futures_util::stream::iter(0..20).then(|i| async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok(Bytes::from(format!("chunk {i:02}\n")))
        });
        Ok::<_, String>(("text/plain", chunks))
    };
    let mut readers = Vec::new();
    for delay_ms in [0u64, 20, 40, 60] {
        let streams = streams.clone();
        readers.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            let (mut sub, role) = streams.subscribe("feed", start).expect("room for readers");
            let head = sub.head().await.expect("head");
            let body: Vec<Bytes> = sub.map(|c| c.expect("chunk")).collect().await;
            (delay_ms, role, head, body.len())
        }));
    }
    for r in readers {
        let (delay, role, head, chunks) = r.await.expect("task");
        println!("reader joining after {delay:>2} ms: {role:?}, head {head}, {chunks} chunks");
    }
}
