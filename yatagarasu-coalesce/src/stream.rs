//! Streaming fan-out: one producer, any number of subscribers, each of which receives the whole
//! stream from its first chunk however late it joins.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::hash::Hash;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use futures_core::Stream;
use futures_util::{FutureExt as _, StreamExt as _};

use crate::error::FlightError;
use crate::group::Role;
use crate::stats::{FlightStats, FlightStatsSnapshot};

/// Limits of a [`StreamGroup`]'s flights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamOptions {
    /// Most bytes one flight keeps. While everything produced is kept, anyone may join and gets the
    /// stream from its first byte. Past this bound the flight drops chunks every subscriber has read
    /// and stops accepting new subscribers (they start a flight of their own). The producer never runs
    /// more than this far ahead of the *fastest* subscriber (backpressure), and a subscriber that
    /// trails a faster one by more than this is dropped with [`FlightError::Lagged`]. So a flight never
    /// holds much more than this, a lone slow reader is simply slowed down, and a slow subscriber never
    /// slows the others.
    pub buffer_bytes: usize,
    /// Most subscribers of one flight; further calls are refused (`None`) and should do the work
    /// themselves.
    pub max_subscribers: usize,
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self {
            buffer_bytes: 64 * 1024 * 1024,
            max_subscribers: 10_000,
        }
    }
}

struct State<H, T, E> {
    head: Option<H>,
    chunks: VecDeque<T>,
    /// Byte offset in the stream of each chunk in `chunks`.
    offsets: VecDeque<u64>,
    /// Stream index of `chunks[0]`.
    first_index: u64,
    retained_bytes: usize,
    produced_bytes: u64,
    /// Set while the producer waits for the fastest subscriber to make room.
    producer_waker: Option<Waker>,
    /// `Some` once the producer has finished: `Ok` after the last chunk, or the error.
    end: Option<Result<(), FlightError<E>>>,
    /// Position (next index to read) of each live subscriber.
    positions: HashMap<u64, u64>,
    /// Subscribers dropped for lagging, told on their next poll.
    lagged: Vec<u64>,
    next_id: u64,
    /// False once a chunk was dropped: newcomers could not get the stream from its start.
    joinable: bool,
    wakers: Vec<Waker>,
}

impl<H, T, E> State<H, T, E> {
    fn wake_all(&mut self) {
        for w in self.wakers.drain(..) {
            w.wake();
        }
    }

    fn wake_producer(&mut self) {
        if let Some(w) = self.producer_waker.take() {
            w.wake();
        }
    }

    /// Byte offset of stream index `pos` (the end of the stream so far if `pos` is past it).
    fn offset_of(&self, pos: u64) -> u64 {
        pos.checked_sub(self.first_index)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.offsets.get(i).copied())
            .unwrap_or(self.produced_bytes)
    }

    /// How far the producer is ahead of the fastest subscriber, in bytes (0 without subscribers).
    fn ahead_of_fastest(&self) -> u64 {
        self.positions
            .values()
            .copied()
            .max()
            .map_or(0, |fastest| self.produced_bytes - self.offset_of(fastest))
    }
}

struct Flight<H, T, E> {
    state: Mutex<State<H, T, E>>,
}

fn lock<V>(m: &Mutex<V>) -> MutexGuard<'_, V> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The flights under way, by key.
type FlightMap<K, H, T, E> = Mutex<HashMap<K, Arc<Flight<H, T, E>>>>;

struct Inner<K, H, T, E> {
    flights: FlightMap<K, H, T, E>,
    options: StreamOptions,
    stats: FlightStats,
}

/// A group of streaming flights keyed by `K`. The producer of a flight first yields a head `H`
/// (response metadata, say), then chunks `T`; subscribers read the head, then every chunk in order.
///
/// - A subscriber that joins late first receives the chunks produced so far, then live ones: never a
///   gap, never a duplicate.
/// - The producer runs in its own task and never waits for subscribers; a subscriber that goes away
///   affects nobody else. When no subscriber is left and nobody can join any more, the producer stops.
/// - Memory is bounded per flight by [`StreamOptions::buffer_bytes`].
/// - An error (or panic) of the producer reaches every subscriber after the chunks produced before it;
///   a stream ends without an error only when the producer finished successfully.
///
/// ```
/// use bytes::Bytes;
/// use futures_util::StreamExt;
/// use yatagarasu_coalesce::{StreamGroup, StreamOptions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let group: StreamGroup<&str, u64, Bytes, String> = StreamGroup::new(StreamOptions::default());
/// let start = || async {
///     let chunks = futures_util::stream::iter(vec![Ok(Bytes::from("hel")), Ok(Bytes::from("lo"))]);
///     Ok::<_, String>((5u64, chunks))
/// };
/// let (mut a, _) = group.subscribe("k", start).expect("room for subscribers");
/// let (mut b, _) = group.subscribe("k", start).expect("room for subscribers");
/// assert_eq!(a.head().await, Ok(5));
/// assert_eq!(b.head().await, Ok(5));
/// let a: Vec<_> = a.map(Result::unwrap).collect().await;
/// let b: Vec<_> = b.map(Result::unwrap).collect().await;
/// assert_eq!(a, b);
/// # }
/// ```
pub struct StreamGroup<K, H, T, E> {
    inner: Arc<Inner<K, H, T, E>>,
}

impl<K, H, T, E> Clone for StreamGroup<K, H, T, E> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K, H, T, E> std::fmt::Debug for StreamGroup<K, H, T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamGroup")
            .field("options", &self.inner.options)
            .field("stats", &self.inner.stats.snapshot())
            .finish_non_exhaustive()
    }
}

/// One subscriber's view of a flight: [`head`](Subscription::head), then a `Stream` of chunks.
pub struct Subscription<H, T, E> {
    flight: Arc<Flight<H, T, E>>,
    id: u64,
    pos: u64,
    finished: bool,
}

impl<H, T, E> std::fmt::Debug for Subscription<H, T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

/// Removes the flight from the group and ends it when the producer task ends, however it ends.
struct ProducerGuard<K: Hash + Eq, H, T, E> {
    inner: Arc<Inner<K, H, T, E>>,
    key: K,
    flight: Arc<Flight<H, T, E>>,
}

impl<K: Hash + Eq, H, T, E> ProducerGuard<K, H, T, E> {
    fn unregister(&self) {
        let mut flights = lock(&self.inner.flights);
        if flights
            .get(&self.key)
            .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
        {
            flights.remove(&self.key);
        }
    }

    fn end(&self, result: Result<(), FlightError<E>>) {
        // Leave the group first: a newcomer after this point starts a fresh flight.
        self.unregister();
        let mut st = lock(&self.flight.state);
        if st.end.is_none() {
            if result.is_err() {
                FlightStats::inc(&self.inner.stats.failed);
            }
            st.end = Some(result);
        }
        st.joinable = false;
        st.wake_all();
    }
}

impl<K: Hash + Eq, H, T, E> Drop for ProducerGuard<K, H, T, E> {
    fn drop(&mut self) {
        self.end(Err(FlightError::Cancelled));
    }
}

impl<K, H, T, E> StreamGroup<K, H, T, E>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    H: Clone + Send + 'static,
    T: AsRef<[u8]> + Clone + Send + 'static,
    E: Clone + Send + 'static,
{
    /// An empty group.
    pub fn new(options: StreamOptions) -> Self {
        Self {
            inner: Arc::new(Inner {
                flights: Mutex::new(HashMap::new()),
                options,
                stats: FlightStats::default(),
            }),
        }
    }

    /// Join the flight for `key` if one is under way and still has the stream from its start, else
    /// start one with `start` (called at most once, in a spawned task). `None` when the flight has its
    /// maximum of subscribers: do the work without coalescing.
    pub fn subscribe<F, Fut, S>(&self, key: K, start: F) -> Option<(Subscription<H, T, E>, Role)>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(H, S), E>> + Send + 'static,
        S: Stream<Item = Result<T, E>> + Send + 'static,
    {
        let mut flights = lock(&self.inner.flights);
        if let Some(flight) = flights.get(&key) {
            match self.add_subscriber(flight) {
                Ok(Some(sub)) => {
                    FlightStats::inc(&self.inner.stats.joined);
                    return Some((sub, Role::Joined));
                }
                Ok(None) => {
                    FlightStats::inc(&self.inner.stats.refused_full);
                    return None;
                }
                // Not joinable any more: replace it below (it finishes for its own subscribers).
                Err(()) => {}
            }
        }
        let flight = Arc::new(Flight {
            state: Mutex::new(State {
                head: None,
                chunks: VecDeque::new(),
                offsets: VecDeque::new(),
                first_index: 0,
                retained_bytes: 0,
                produced_bytes: 0,
                producer_waker: None,
                end: None,
                positions: HashMap::new(),
                lagged: Vec::new(),
                next_id: 0,
                joinable: true,
                wakers: Vec::new(),
            }),
        });
        flights.insert(key.clone(), Arc::clone(&flight));
        drop(flights);
        FlightStats::inc(&self.inner.stats.started);
        let sub = match self.add_subscriber(&flight) {
            Ok(Some(s)) => s,
            // A fresh flight is joinable and empty; max_subscribers is at least 1.
            _ => Subscription {
                flight: Arc::clone(&flight),
                id: u64::MAX,
                pos: 0,
                finished: false,
            },
        };
        let guard = ProducerGuard {
            inner: Arc::clone(&self.inner),
            key,
            flight,
        };
        let buffer_bytes = self.inner.options.buffer_bytes;
        let stats = Arc::clone(&self.inner);
        tokio::spawn(async move {
            let produced = AssertUnwindSafe(produce(&guard, start, buffer_bytes, &stats.stats))
                .catch_unwind()
                .await;
            match produced {
                Ok(result) => guard.end(result),
                Err(_) => guard.end(Err(FlightError::Panicked)),
            }
        });
        Some((sub, Role::Leader))
    }

    /// Join the flight for `key` only if one is under way and joinable; never starts one.
    pub fn join(&self, key: &K) -> Option<Subscription<H, T, E>> {
        let flights = lock(&self.inner.flights);
        let flight = flights.get(key)?;
        match self.add_subscriber(flight) {
            Ok(Some(sub)) => {
                FlightStats::inc(&self.inner.stats.joined);
                Some(sub)
            }
            _ => None,
        }
    }

    /// `Err` if the flight is not joinable, `Ok(None)` if it is full.
    fn add_subscriber(
        &self,
        flight: &Arc<Flight<H, T, E>>,
    ) -> Result<Option<Subscription<H, T, E>>, ()> {
        let mut st = lock(&flight.state);
        if !st.joinable || st.end.is_some() {
            return Err(());
        }
        if st.positions.len() >= self.inner.options.max_subscribers.max(1) {
            return Ok(None);
        }
        let id = st.next_id;
        st.next_id += 1;
        st.positions.insert(id, 0);
        Ok(Some(Subscription {
            flight: Arc::clone(flight),
            id,
            pos: 0,
            finished: false,
        }))
    }

    /// Flights under way (joinable or not yet finished).
    pub fn in_flight(&self) -> usize {
        lock(&self.inner.flights).len()
    }

    /// The group's counters.
    pub fn stats(&self) -> FlightStatsSnapshot {
        self.inner.stats.snapshot()
    }
}

/// Drive the producer: head, then chunks, enforcing the buffer bound. Returns how the stream ended.
async fn produce<K, H, T, E, F, Fut, S>(
    guard: &ProducerGuard<K, H, T, E>,
    start: F,
    buffer_bytes: usize,
    stats: &FlightStats,
) -> Result<(), FlightError<E>>
where
    K: Hash + Eq,
    T: AsRef<[u8]>,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(H, S), E>>,
    S: Stream<Item = Result<T, E>>,
{
    let (head, stream) = start().await.map_err(FlightError::Failed)?;
    {
        let mut st = lock(&guard.flight.state);
        st.head = Some(head);
        st.wake_all();
    }
    let mut stream = std::pin::pin!(stream);
    while let Some(item) = stream.next().await {
        let chunk = item.map_err(FlightError::Failed)?;
        let nobody_left = push_chunk(guard, chunk, buffer_bytes, stats);
        if nobody_left {
            return Err(FlightError::Cancelled);
        }
        // Backpressure from the fastest subscriber only: never run more than the bound ahead of it.
        let bound = buffer_bytes as u64;
        std::future::poll_fn(|cx| {
            let mut st = lock(&guard.flight.state);
            if st.positions.is_empty() || st.ahead_of_fastest() <= bound {
                Poll::Ready(())
            } else {
                st.producer_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
    }
    Ok(())
}

/// Append a chunk, enforce the bound, wake readers. Returns whether nobody can read the flight any more.
fn push_chunk<K: Hash + Eq, H, T: AsRef<[u8]>, E>(
    guard: &ProducerGuard<K, H, T, E>,
    chunk: T,
    buffer_bytes: usize,
    stats: &FlightStats,
) -> bool {
    let mut st = lock(&guard.flight.state);
    let len = chunk.as_ref().len();
    let offset = st.produced_bytes;
    st.offsets.push_back(offset);
    st.chunks.push_back(chunk);
    st.produced_bytes += len as u64;
    st.retained_bytes += len;
    if st.retained_bytes > buffer_bytes {
        if st.joinable {
            st.joinable = false;
            drop(st);
            guard.unregister();
            st = lock(&guard.flight.state);
        }
        enforce_bound(&mut st, buffer_bytes, stats);
    }
    st.wake_all();
    st.positions.is_empty() && !st.joinable
}

/// Drop chunks everyone has read; then, while still over the bound, drop the furthest-behind
/// subscribers (they are told `Lagged`) and the chunks only they needed.
fn enforce_bound<H, T: AsRef<[u8]>, E>(
    st: &mut State<H, T, E>,
    buffer_bytes: usize,
    stats: &FlightStats,
) {
    loop {
        let min_pos = st.positions.values().copied().min();
        let newest = st.first_index + st.chunks.len() as u64;
        // Drop every chunk below the slowest reader (all of them if nobody reads).
        let keep_from = min_pos.unwrap_or(newest);
        while st.first_index < keep_from {
            let Some(c) = st.chunks.pop_front() else {
                break;
            };
            st.offsets.pop_front();
            st.retained_bytes -= c.as_ref().len();
            st.first_index += 1;
        }
        // Never drop the newest chunk: a single chunk larger than the bound still gets delivered.
        if st.retained_bytes <= buffer_bytes || st.chunks.len() <= 1 {
            return;
        }
        let Some(slowest) = min_pos else { return };
        // Only those behind someone faster are dropped: a lone or uniformly slow audience gets
        // backpressure instead.
        if st.positions.values().all(|p| *p == slowest) {
            return;
        }
        let laggards: Vec<u64> = st
            .positions
            .iter()
            .filter(|(_, p)| **p == slowest)
            .map(|(id, _)| *id)
            .collect();
        for id in laggards {
            st.positions.remove(&id);
            st.lagged.push(id);
            FlightStats::inc(&stats.lagged);
        }
    }
}

impl<H: Clone, T: Clone, E: Clone> Subscription<H, T, E> {
    /// Wait for the head (the producer's first result). Errors if the producer failed before it.
    pub async fn head(&mut self) -> Result<H, FlightError<E>> {
        std::future::poll_fn(|cx| {
            let mut st = lock(&self.flight.state);
            if let Some(h) = &st.head {
                return Poll::Ready(Ok(h.clone()));
            }
            if let Some(Err(e)) = &st.end {
                return Poll::Ready(Err(e.clone()));
            }
            if st.end.is_some() {
                return Poll::Ready(Err(FlightError::Cancelled));
            }
            st.wakers.push(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

impl<H, T: Clone, E: Clone> Stream for Subscription<H, T, E> {
    type Item = Result<T, FlightError<E>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        let mut st = lock(&this.flight.state);
        if let Some(i) = st.lagged.iter().position(|id| *id == this.id) {
            st.lagged.swap_remove(i);
            drop(st);
            this.finished = true;
            return Poll::Ready(Some(Err(FlightError::Lagged)));
        }
        let newest = st.first_index + st.chunks.len() as u64;
        if this.pos < st.first_index {
            // Only possible for a subscriber dropped for lagging; kept for safety.
            drop(st);
            this.finished = true;
            return Poll::Ready(Some(Err(FlightError::Lagged)));
        }
        if this.pos < newest {
            let idx = usize::try_from(this.pos - st.first_index).unwrap_or(usize::MAX);
            let chunk = st.chunks.get(idx).cloned();
            this.pos += 1;
            let pos = this.pos;
            if let Some(p) = st.positions.get_mut(&this.id) {
                *p = pos;
            }
            st.wake_producer();
            return match chunk {
                Some(c) => Poll::Ready(Some(Ok(c))),
                None => Poll::Ready(Some(Err(FlightError::Lagged))),
            };
        }
        match &st.end {
            Some(Ok(())) => {
                drop(st);
                this.finished = true;
                Poll::Ready(None)
            }
            Some(Err(e)) => {
                let e = e.clone();
                drop(st);
                this.finished = true;
                Poll::Ready(Some(Err(e)))
            }
            None => {
                st.wakers.push(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl<H, T, E> Drop for Subscription<H, T, E> {
    fn drop(&mut self) {
        let mut st = lock(&self.flight.state);
        st.positions.remove(&self.id);
        st.lagged.retain(|id| *id != self.id);
        st.wake_producer();
    }
}
