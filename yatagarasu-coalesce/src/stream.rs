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

use crate::budget::{BufferBudget, Reservation};
use crate::error::FlightError;
use crate::group::Role;
use crate::stats::{FlightStats, FlightStatsSnapshot};

/// Limits of a [`StreamGroup`]'s flights. `StreamOptions::default()`, then fields or setters.
#[derive(Debug, Clone)]
#[non_exhaustive]
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
    /// Bytes a producer may still yield after its last subscriber left (for side effects such as
    /// filling a cache; a newcomer may join meanwhile). Past this the flight is cancelled. A
    /// producer started with [`StreamGroup::subscribe_with`] sees the moment through
    /// [`Audience::is_gone`] and may end sooner with [`Audience::close_if_unread`]. Default 0: a
    /// flight nobody reads stops at its next chunk.
    pub linger_bytes: u64,
    /// A budget shared with other groups for the chunks flights keep; `None`: only
    /// `buffer_bytes` per flight bounds memory.
    pub budget: Option<Arc<BufferBudget>>,
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self {
            buffer_bytes: 64 * 1024 * 1024,
            max_subscribers: 10_000,
            linger_bytes: 0,
            budget: None,
        }
    }
}

impl StreamOptions {
    /// Set [`Self::buffer_bytes`].
    #[must_use]
    pub fn with_buffer_bytes(mut self, bytes: usize) -> Self {
        self.buffer_bytes = bytes;
        self
    }

    /// Set [`Self::max_subscribers`].
    #[must_use]
    pub fn with_max_subscribers(mut self, subscribers: usize) -> Self {
        self.max_subscribers = subscribers;
        self
    }

    /// Set [`Self::linger_bytes`].
    #[must_use]
    pub fn with_linger_bytes(mut self, bytes: u64) -> Self {
        self.linger_bytes = bytes;
        self
    }

    /// Set [`Self::budget`].
    #[must_use]
    pub fn with_budget(mut self, budget: Arc<BufferBudget>) -> Self {
        self.budget = Some(budget);
        self
    }
}

struct State<H, T, E> {
    head: Option<H>,
    chunks: VecDeque<T>,
    /// Budget held for each chunk in `chunks`.
    reservations: VecDeque<Reservation>,
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
    /// False once a chunk was dropped, or once the last subscriber left: newcomers could not get
    /// the stream from its start, or there is nobody to share it with.
    joinable: bool,
    /// One waker per waiting subscriber (by id): polling again replaces it, so a subscriber polled
    /// many times while pending never grows this.
    wakers: HashMap<u64, Waker>,
}

impl<H, T, E> State<H, T, E> {
    fn wake_all(&mut self) {
        for (_, w) in self.wakers.drain() {
            w.wake();
        }
    }

    fn park(&mut self, id: u64, waker: &Waker) {
        match self.wakers.get_mut(&id) {
            Some(w) if w.will_wake(waker) => {}
            Some(w) => w.clone_from(waker),
            None => {
                self.wakers.insert(id, waker.clone());
            }
        }
    }

    /// Drop the oldest chunk (and its budget).
    fn pop_chunk(&mut self) -> bool
    where
        T: AsRef<[u8]>,
    {
        let Some(c) = self.chunks.pop_front() else {
            return false;
        };
        self.offsets.pop_front();
        self.reservations.pop_front();
        self.retained_bytes -= c.as_ref().len();
        self.first_index += 1;
        true
    }

    /// Drop every chunk all subscribers have read (all of them without subscribers).
    fn drop_read_chunks(&mut self)
    where
        T: AsRef<[u8]>,
    {
        let newest = self.first_index + self.chunks.len() as u64;
        let keep_from = self.positions.values().copied().min().unwrap_or(newest);
        while self.first_index < keep_from && self.pop_chunk() {}
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

/// What a producer started with [`StreamGroup::subscribe_with`] may ask of its flight.
pub struct Audience<H, T, E> {
    flight: Arc<Flight<H, T, E>>,
}

impl<H, T, E> Clone for Audience<H, T, E> {
    fn clone(&self) -> Self {
        Self {
            flight: Arc::clone(&self.flight),
        }
    }
}

impl<H, T, E> std::fmt::Debug for Audience<H, T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audience")
            .field("gone", &self.is_gone())
            .finish()
    }
}

impl<H, T, E> Audience<H, T, E> {
    /// Whether no subscriber reads the flight right now. A newcomer may still join while the
    /// flight holds its stream from the start; the producer is cut off once it has yielded
    /// [`StreamOptions::linger_bytes`] without anyone reading.
    pub fn is_gone(&self) -> bool {
        lock(&self.flight.state).positions.is_empty()
    }

    /// End the flight's audience if nobody reads it: from now on nobody can join, so the producer
    /// may stop early without anyone seeing a short stream. Returns `false` (and changes nothing)
    /// when someone reads.
    pub fn close_if_unread(&self) -> bool {
        let mut st = lock(&self.flight.state);
        if st.positions.is_empty() {
            st.joinable = false;
            true
        } else {
            false
        }
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
    ///
    /// A flight stops when its last subscriber leaves: before its head arrives, `start`'s future is
    /// dropped; after, at the next chunk (see [`StreamOptions::linger_bytes`]).
    pub fn subscribe<F, Fut, S>(&self, key: K, start: F) -> Option<(Subscription<H, T, E>, Role)>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(H, S), E>> + Send + 'static,
        S: Stream<Item = Result<T, E>> + Send + 'static,
    {
        self.subscribe_with(key, move |_| start())
    }

    /// Like [`subscribe`](Self::subscribe), and `start` gets the flight's [`Audience`]: a producer
    /// with side effects (filling a cache) can see that nobody reads any more and end at a point
    /// of its choosing, within [`StreamOptions::linger_bytes`].
    pub fn subscribe_with<F, Fut, S>(
        &self,
        key: K,
        start: F,
    ) -> Option<(Subscription<H, T, E>, Role)>
    where
        F: FnOnce(Audience<H, T, E>) -> Fut + Send + 'static,
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
                reservations: VecDeque::new(),
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
                wakers: HashMap::new(),
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
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move {
            let audience = Audience {
                flight: Arc::clone(&guard.flight),
            };
            let produced = AssertUnwindSafe(produce(&guard, start(audience), &inner))
                .catch_unwind()
                .await;
            match produced {
                Ok(result) => guard.end(result),
                Err(_) => guard.end(Err(FlightError::Panicked)),
            }
        });
        Some((sub, Role::Leader))
    }

    /// Join the flight for `key` (any borrowed form of it) only if one is under way and
    /// joinable; never starts one.
    pub fn join<Q>(&self, key: &Q) -> Option<Subscription<H, T, E>>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
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

/// Drive the producer: head, then chunks, enforcing the buffer bound and the budget. Returns how
/// the stream ended.
async fn produce<K, H, T, E, Fut, S>(
    guard: &ProducerGuard<K, H, T, E>,
    start: Fut,
    inner: &Inner<K, H, T, E>,
) -> Result<(), FlightError<E>>
where
    K: Hash + Eq,
    T: AsRef<[u8]>,
    Fut: Future<Output = Result<(H, S), E>>,
    S: Stream<Item = Result<T, E>>,
{
    let options = &inner.options;
    // Before the head: give up the origin request as soon as nobody waits for it.
    let started = {
        let start = std::pin::pin!(start);
        let mut start = start;
        std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = start.as_mut().poll(cx) {
                return Poll::Ready(Some(r));
            }
            let mut st = lock(&guard.flight.state);
            if st.positions.is_empty() {
                st.joinable = false;
                return Poll::Ready(None);
            }
            st.producer_waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    };
    let Some(started) = started else {
        return Err(FlightError::Cancelled);
    };
    let (head, stream) = started.map_err(FlightError::Failed)?;
    {
        let mut st = lock(&guard.flight.state);
        st.head = Some(head);
        st.wake_all();
    }
    let mut stream = std::pin::pin!(stream);
    // Bytes yielded since the last subscriber left (reset when someone joins).
    let mut lingered: u64 = 0;
    while let Some(item) = stream.next().await {
        let chunk = item.map_err(FlightError::Failed)?;
        let len = chunk.as_ref().len();
        let unread = {
            let mut st = lock(&guard.flight.state);
            if st.positions.is_empty() {
                lingered += len as u64;
                if lingered > options.linger_bytes || !st.joinable {
                    // Nobody reads, and nobody will: stop.
                    st.joinable = false;
                    st.drop_read_chunks();
                    true
                } else {
                    false
                }
            } else {
                lingered = 0;
                false
            }
        };
        if unread {
            guard.unregister();
            return Err(FlightError::Cancelled);
        }
        let reservation = match &options.budget {
            None => None,
            Some(budget) => Some(reserve(guard, budget, len).await),
        };
        push_chunk(
            guard,
            chunk,
            reservation,
            options.buffer_bytes,
            &inner.stats,
        );
        // Backpressure from the fastest subscriber only: never run more than the bound ahead of it.
        let bound = options.buffer_bytes as u64;
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

/// Budget for a chunk of `len` bytes. When the budget is spent, the flight first gives back the
/// chunks it kept only for late joiners (it stops being joinable), then waits for budget:
/// backpressure towards the origin. A flight whose fastest reader has read everything gets its
/// next chunk without waiting (over budget by that one chunk), so readers that read are never
/// starved by others that stalled.
async fn reserve<K: Hash + Eq, H, T: AsRef<[u8]>, E>(
    guard: &ProducerGuard<K, H, T, E>,
    budget: &BufferBudget,
    len: usize,
) -> Reservation {
    if let Some(r) = budget.try_reserve(len) {
        return r;
    }
    let was_joinable = {
        let mut st = lock(&guard.flight.state);
        let was = st.joinable;
        st.joinable = false;
        st.drop_read_chunks();
        was
    };
    if was_joinable {
        guard.unregister();
    }
    let acquire = budget.reserve(len);
    let mut acquire = std::pin::pin!(acquire);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = acquire.as_mut().poll(cx) {
            return Poll::Ready(r);
        }
        let mut st = lock(&guard.flight.state);
        if st.positions.is_empty() || st.ahead_of_fastest() == 0 {
            return Poll::Ready(Reservation::none());
        }
        st.producer_waker = Some(cx.waker().clone());
        Poll::Pending
    })
    .await
}

/// Append a chunk, enforce the bound, wake readers.
fn push_chunk<K: Hash + Eq, H, T: AsRef<[u8]>, E>(
    guard: &ProducerGuard<K, H, T, E>,
    chunk: T,
    reservation: Option<Reservation>,
    buffer_bytes: usize,
    stats: &FlightStats,
) {
    let mut st = lock(&guard.flight.state);
    let len = chunk.as_ref().len();
    let offset = st.produced_bytes;
    st.offsets.push_back(offset);
    st.chunks.push_back(chunk);
    st.reservations
        .push_back(reservation.unwrap_or(Reservation::none()));
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
        while st.first_index < keep_from && st.pop_chunk() {}
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
            st.park(self.id, cx.waker());
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
                st.park(this.id, cx.waker());
                Poll::Pending
            }
        }
    }
}

impl<H, T, E> Drop for Subscription<H, T, E> {
    fn drop(&mut self) {
        let mut st = lock(&self.flight.state);
        st.positions.remove(&self.id);
        st.wakers.remove(&self.id);
        st.lagged.retain(|id| *id != self.id);
        st.wake_producer();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Wake;

    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }

    #[tokio::test]
    async fn polling_a_pending_subscriber_again_and_again_keeps_one_waker() {
        let group: StreamGroup<u8, u8, Vec<u8>, ()> = StreamGroup::new(StreamOptions::default());
        let start =
            || async { Ok::<_, ()>((1u8, futures_util::stream::pending::<Result<Vec<u8>, ()>>())) };
        let (mut sub, _) = group.subscribe(0, start).expect("room");
        assert_eq!(sub.head().await, Ok(1));
        for _ in 0..1000 {
            // A new waker every time, as a task moved between threads would present.
            let waker = Waker::from(Arc::new(Noop));
            let mut cx = Context::from_waker(&waker);
            assert!(Pin::new(&mut sub).poll_next(&mut cx).is_pending());
        }
        assert_eq!(lock(&sub.flight.state).wakers.len(), 1);
        drop(sub);
    }
}
