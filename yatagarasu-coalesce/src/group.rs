//! Singleflight: one execution of the work per key at a time, its result shared by every caller.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt as _;
use tokio::sync::watch;

use crate::error::FlightError;
use crate::stats::{FlightStats, FlightStatsSnapshot};

/// Whether a caller started the flight or joined one under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Role {
    /// This call started the work.
    Leader,
    /// This call joined work another call started.
    Joined,
}

/// What a caller of [`Group::run`] (or, with `Arc`s, [`Group::run_shared`]) gets.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Outcome<T, E> {
    /// The shared result.
    pub result: Result<T, FlightError<E>>,
    /// Whether this call did the work.
    pub role: Role,
}

/// A flight's result as every waiter shares it: behind `Arc`s, so neither the value nor the error
/// has to be `Clone` (see [`Group::run_shared`]).
type Shared<T, E> = Result<Arc<T>, FlightError<Arc<E>>>;
type Slot<T, E> = Option<Shared<T, E>>;

struct Call<T, E> {
    tx: watch::Sender<Slot<T, E>>,
}

struct Inner<K, T, E> {
    calls: Mutex<HashMap<K, Arc<Call<T, E>>>>,
    stats: FlightStats,
}

/// A singleflight group: concurrent [`run`](Group::run)s with the same key share one execution.
///
/// The work runs in its own task, so a caller that goes away (client disconnect, its own timeout)
/// neither cancels the work for the others nor leaves them waiting; once *every* caller has gone,
/// the work is dropped (nobody could receive its result). The key is always released when
/// the work ends, also when it panics or its task is dropped; a panic reaches every waiter as
/// [`FlightError::Panicked`]. With [`run`](Group::run) every waiter gets a clone of the value or
/// the error; with [`run_shared`](Group::run_shared) every waiter gets an `Arc` of it, and neither
/// needs to be `Clone` (an `io::Error` loader, a large buffer).
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use yatagarasu_coalesce::Group;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let group: Group<&str, u64, String> = Group::new();
/// let fetches = Arc::new(AtomicUsize::new(0));
/// let calls = (0..10).map(|_| {
///     let fetches = fetches.clone();
///     group.run("object", move || async move {
///         fetches.fetch_add(1, Ordering::SeqCst);
///         tokio::task::yield_now().await;
///         Ok::<_, String>(42)
///     })
/// });
/// let results = futures_util::future::join_all(calls).await;
/// assert!(results.iter().all(|o| o.result == Ok(42)));
/// assert_eq!(fetches.load(Ordering::SeqCst), 1);
/// # }
/// ```
pub struct Group<K, T, E> {
    inner: Arc<Inner<K, T, E>>,
}

impl<K, T, E> Clone for Group<K, T, E> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K, T, E> Default for Group<K, T, E> {
    fn default() -> Self {
        Self {
            inner: Arc::new(Inner {
                calls: Mutex::new(HashMap::new()),
                stats: FlightStats::default(),
            }),
        }
    }
}

impl<K, T, E> std::fmt::Debug for Group<K, T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("stats", &self.inner.stats.snapshot())
            .finish_non_exhaustive()
    }
}

/// Releases the key and publishes a result when the flight's task ends, however it ends.
struct Completion<K: Hash + Eq, T, E> {
    inner: Arc<Inner<K, T, E>>,
    key: Option<K>,
    call: Arc<Call<T, E>>,
}

impl<K: Hash + Eq, T, E> Completion<K, T, E> {
    fn finish(&mut self, result: Shared<T, E>) {
        if result.is_err() {
            FlightStats::inc(&self.inner.stats.failed);
        }
        self.release();
        self.call.tx.send_replace(Some(result));
    }

    /// Called when the last waiter left: if still nobody waits (joins subscribe under the same
    /// lock), release the key so nobody can join a flight that is about to stop, and say so. A
    /// caller that joined between the last one leaving and this check keeps the flight going.
    fn abandon_if_unwatched(&mut self) -> bool {
        let mut calls = lock(&self.inner.calls);
        if self.call.tx.receiver_count() > 0 {
            return false;
        }
        if let Some(key) = self.key.take()
            && calls.get(&key).is_some_and(|c| Arc::ptr_eq(c, &self.call))
        {
            calls.remove(&key);
        }
        true
    }

    fn release(&mut self) {
        if let Some(key) = self.key.take() {
            let mut calls = lock(&self.inner.calls);
            // Only remove our own call: `forget` may have replaced it with a newer one.
            if calls.get(&key).is_some_and(|c| Arc::ptr_eq(c, &self.call)) {
                calls.remove(&key);
            }
        }
    }
}

impl<K: Hash + Eq, T, E> Drop for Completion<K, T, E> {
    fn drop(&mut self) {
        if self.key.is_some() {
            // The task was dropped before finishing: never leave waiters hanging.
            self.finish(Err(FlightError::Cancelled));
        }
    }
}

fn lock<V>(m: &Mutex<V>) -> std::sync::MutexGuard<'_, V> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<K, T, E> Group<K, T, E>
where
    K: Hash + Eq + Clone + Send + 'static,
    T: Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
{
    /// Run `work` for `key`, or join the run already under way, and wait for the result; every
    /// waiter gets a clone of it. [`run_shared`](Self::run_shared) needs no `Clone`.
    ///
    /// `work` is called at most once per flight, inside a spawned task (so this needs a Tokio runtime).
    pub async fn run<F, Fut>(&self, key: K, work: F) -> Outcome<T, E>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        self.run_with_timeout(key, None, work).await
    }

    /// As [`run`](Self::run), but this caller stops waiting after `timeout` with
    /// [`FlightError::TimedOut`]; the work goes on for the others.
    pub async fn run_with_timeout<F, Fut>(
        &self,
        key: K,
        timeout: Option<Duration>,
        work: F,
    ) -> Outcome<T, E>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let shared = self.run_shared_with_timeout(key, timeout, work).await;
        Outcome {
            result: match shared.result {
                Ok(v) => Ok(T::clone(&v)),
                Err(e) => Err(e.map_failed(|e| E::clone(&e))),
            },
            role: shared.role,
        }
    }
}

impl<K, T, E> Group<K, T, E>
where
    K: Hash + Eq + Clone + Send + 'static,
    T: Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    /// An empty group.
    pub fn new() -> Self {
        Self::default()
    }

    /// As [`run`](Self::run), but every waiter gets an `Arc` of the one value or error, so neither
    /// has to be `Clone`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use yatagarasu_coalesce::{FlightError, Group};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // `std::io::Error` is not `Clone`: every waiter shares the one error.
    /// let files: Group<String, Vec<u8>, std::io::Error> = Group::new();
    /// let outcome = files
    ///     .run_shared("/no/such/file".to_owned(), || async { std::fs::read("/no/such/file") })
    ///     .await;
    /// match outcome.result {
    ///     Err(FlightError::Failed(e)) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound),
    ///     other => panic!("{other:?}"),
    /// }
    /// # }
    /// ```
    pub async fn run_shared<F, Fut>(&self, key: K, work: F) -> Outcome<Arc<T>, Arc<E>>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        self.run_shared_with_timeout(key, None, work).await
    }

    /// As [`run_shared`](Self::run_shared), but this caller stops waiting after `timeout` with
    /// [`FlightError::TimedOut`]; the work goes on for the others.
    pub async fn run_shared_with_timeout<F, Fut>(
        &self,
        key: K,
        timeout: Option<Duration>,
        work: F,
    ) -> Outcome<Arc<T>, Arc<E>>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let (mut rx, role) = {
            let mut calls = lock(&self.inner.calls);
            match calls.get(&key) {
                Some(call) => {
                    FlightStats::inc(&self.inner.stats.joined);
                    (call.tx.subscribe(), Role::Joined)
                }
                None => {
                    let (tx, rx) = watch::channel(None);
                    let call = Arc::new(Call { tx });
                    calls.insert(key.clone(), Arc::clone(&call));
                    FlightStats::inc(&self.inner.stats.started);
                    let mut completion = Completion {
                        inner: Arc::clone(&self.inner),
                        key: Some(key),
                        call,
                    };
                    let watched = Arc::clone(&completion.call);
                    tokio::spawn(async move {
                        let mut work = std::pin::pin!(
                            AssertUnwindSafe(async move { work().await }).catch_unwind()
                        );
                        let result = loop {
                            // Every caller gone (none waits, none can see the result): stop
                            // working, unless one joined meanwhile.
                            let abandoned = watched.tx.closed();
                            match futures_util::future::select(
                                work.as_mut(),
                                std::pin::pin!(abandoned),
                            )
                            .await
                            {
                                futures_util::future::Either::Left((Ok(Ok(v)), _)) => {
                                    break Ok(Arc::new(v));
                                }
                                futures_util::future::Either::Left((Ok(Err(e)), _)) => {
                                    break Err(FlightError::Failed(Arc::new(e)));
                                }
                                futures_util::future::Either::Left((Err(_), _)) => {
                                    break Err(FlightError::Panicked);
                                }
                                futures_util::future::Either::Right(_) => {
                                    if completion.abandon_if_unwatched() {
                                        break Err(FlightError::Cancelled);
                                    }
                                }
                            }
                        };
                        completion.finish(result);
                    });
                    (rx, Role::Leader)
                }
            }
        };
        let wait = async {
            match rx.wait_for(Option::is_some).await {
                Ok(v) => v.clone().unwrap_or(Err(FlightError::Cancelled)),
                Err(_) => Err(FlightError::Cancelled),
            }
        };
        let result = match timeout {
            None => wait.await,
            Some(t) => match tokio::time::timeout(t, wait).await {
                Ok(r) => r,
                Err(_) => {
                    FlightStats::inc(&self.inner.stats.timed_out);
                    Err(FlightError::TimedOut)
                }
            },
        };
        Outcome { result, role }
    }

    /// Forget the flight for `key`, if any: the next call starts a new one. Callers already waiting
    /// still get the old flight's result. Returns whether a flight was forgotten. Takes any
    /// borrowed form of the key (`&str` for `String` keys).
    pub fn forget<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        lock(&self.inner.calls).remove(key).is_some()
    }

    /// Whether a flight for `key` is under way (any borrowed form of the key).
    pub fn is_in_flight<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        lock(&self.inner.calls).contains_key(key)
    }

    /// Flights under way.
    pub fn in_flight(&self) -> usize {
        lock(&self.inner.calls).len()
    }

    /// The group's counters.
    pub fn stats(&self) -> FlightStatsSnapshot {
        self.inner.stats.snapshot()
    }
}
