//! A circuit breaker around any [`Origin`]: after `failure_threshold` origin faults in a row it
//! opens and fails requests at once (no connection attempt) for `open_timeout`; then it lets at
//! most `half_open_max_requests` probes through at a time, and closes after `success_threshold`
//! of them succeed (one fault re-opens it).
//!
//! Faults are what says the origin is unwell: connect errors, timeouts, 5xx answers (throttling
//! included) and bodies that break. A 404, 403, 412, 304 or 416 is the origin answering and counts
//! as a success; a request whose caller went away before it ended counts as nothing, and a probe
//! cancelled that way gives its permit back.
//!
//! ```
//! use std::time::Duration;
//! use yatagarasu_s3::{BreakerOptions, CircuitBreaker, S3Client};
//!
//! let client = S3Client::builder("media").anonymous().build()?;
//! let origin = CircuitBreaker::new(
//!     client,
//!     BreakerOptions::default()
//!         .failure_threshold(5)
//!         .open_timeout(Duration::from_secs(30)),
//! );
//! assert_eq!(origin.state(), yatagarasu_s3::BreakerState::Closed);
//! # Ok::<(), yatagarasu_s3::Error>(())
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use yatagarasu_core::{Error, ErrorKind, ObjectMeta};

use crate::{
    GetObjectOutput, GetObjectRequest, HeadObjectRequest, ObjectBody, Origin, OriginFuture,
};

/// When a [`CircuitBreaker`] opens and closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BreakerOptions {
    /// Faults in a row that open the breaker (default 5).
    pub failure_threshold: u32,
    /// Successful probes that close it again (default 2).
    pub success_threshold: u32,
    /// How long it stays open before probing (default 30 s).
    pub open_timeout: Duration,
    /// Probes let through at a time while half-open (default 1).
    pub half_open_max_requests: u32,
}

impl Default for BreakerOptions {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            success_threshold: 2,
            open_timeout: Duration::from_secs(30),
            half_open_max_requests: 1,
        }
    }
}

impl BreakerOptions {
    /// Faults in a row that open the breaker (at least 1).
    #[must_use]
    pub fn failure_threshold(mut self, n: u32) -> Self {
        self.failure_threshold = n.max(1);
        self
    }

    /// Successful probes that close it (at least 1).
    #[must_use]
    pub fn success_threshold(mut self, n: u32) -> Self {
        self.success_threshold = n.max(1);
        self
    }

    /// How long it stays open before probing.
    #[must_use]
    pub fn open_timeout(mut self, d: Duration) -> Self {
        self.open_timeout = d;
        self
    }

    /// Probes let through at a time while half-open (at least 1).
    #[must_use]
    pub fn half_open_max_requests(mut self, n: u32) -> Self {
        self.half_open_max_requests = n.max(1);
        self
    }
}

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BreakerState {
    /// Requests go through; faults are counted.
    Closed,
    /// Requests fail at once.
    Open,
    /// A few probes go through; their outcome decides.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half_open`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// A breaker's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BreakerStats {
    /// Where it stands now.
    pub state: BreakerState,
    /// Times it opened.
    pub opened: u64,
    /// Requests failed at once because it was open (or half-open with every probe taken).
    pub rejected: u64,
}

#[derive(Debug)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probes: u32, successes: u32 },
}

/// How a request through the breaker ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Success,
    Fault,
    /// The caller went away first: no verdict on the origin.
    Abandoned,
}

/// An [`Origin`] behind a circuit breaker (see the module docs).
#[derive(Debug)]
pub struct CircuitBreaker<O> {
    inner: O,
    shared: Arc<Shared>,
}

/// The breaker's state, shared with the bodies it lets through (a body that breaks is a fault).
#[derive(Debug)]
struct Shared {
    options: BreakerOptions,
    state: Mutex<State>,
    opened: AtomicU64,
    rejected: AtomicU64,
}

impl<O: Origin> CircuitBreaker<O> {
    /// Put `inner` behind a breaker, closed.
    pub fn new(inner: O, options: BreakerOptions) -> Self {
        Self {
            inner,
            shared: Arc::new(Shared {
                options,
                state: Mutex::new(State::Closed { failures: 0 }),
                opened: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
            }),
        }
    }

    /// Where the breaker stands (an open breaker whose timeout has passed reads as half-open).
    pub fn state(&self) -> BreakerState {
        self.shared.state()
    }

    /// Its counters.
    pub fn stats(&self) -> BreakerStats {
        BreakerStats {
            state: self.shared.state(),
            opened: self.shared.opened.load(Ordering::Relaxed),
            rejected: self.shared.rejected.load(Ordering::Relaxed),
        }
    }

    /// Let a request through (as a probe when half-open), or refuse it.
    fn admit(&self, operation: &'static str) -> Result<Permit<'_>, Error> {
        self.shared.admit().map_err(|wait| {
            self.shared.rejected.fetch_add(1, Ordering::Relaxed);
            Error::new(
                ErrorKind::Unavailable,
                "the origin's circuit breaker is open after repeated failures; not asking it until it has had time to recover",
            )
            .with_upstream_code("CircuitOpen")
            .with_operation(operation)
            .with_bucket(self.inner.bucket())
            .with_retry_after(wait)
        })
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn state(&self) -> BreakerState {
        match *self.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until } if Instant::now() < until => BreakerState::Open,
            State::Open { .. } | State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// A permit, or how long to wait before asking again.
    fn admit(&self) -> Result<Permit<'_>, Duration> {
        let now = Instant::now();
        let mut state = self.lock();
        let probe = match *state {
            State::Closed { .. } => false,
            State::Open { until } if now < until => return Err(until - now),
            State::Open { .. } => {
                *state = State::HalfOpen {
                    probes: 1,
                    successes: 0,
                };
                true
            }
            State::HalfOpen { ref mut probes, .. }
                if *probes < self.options.half_open_max_requests =>
            {
                *probes += 1;
                true
            }
            State::HalfOpen { .. } => return Err(Duration::from_secs(1)),
        };
        Ok(Permit {
            shared: self,
            probe,
            settled: false,
        })
    }

    fn record(&self, probe: bool, outcome: Outcome) {
        let now = Instant::now();
        let mut state = self.lock();
        match (&mut *state, outcome) {
            (_, Outcome::Abandoned) if !probe => {}
            (State::HalfOpen { probes, .. }, Outcome::Abandoned) => {
                *probes = probes.saturating_sub(1);
            }
            (State::Closed { failures }, Outcome::Success) => *failures = 0,
            (State::Closed { failures }, Outcome::Fault) => {
                *failures += 1;
                if *failures >= self.options.failure_threshold {
                    self.open(&mut state, now);
                }
            }
            (State::HalfOpen { probes, successes }, Outcome::Success) if probe => {
                *probes = probes.saturating_sub(1);
                *successes += 1;
                if *successes >= self.options.success_threshold {
                    *state = State::Closed { failures: 0 };
                }
            }
            (State::HalfOpen { .. }, Outcome::Fault) if probe => self.open(&mut state, now),
            // Late results of requests let through before the state changed: no say.
            _ => {}
        }
    }

    fn open(&self, state: &mut State, now: Instant) {
        *state = State::Open {
            until: now + self.options.open_timeout,
        };
        self.opened.fetch_add(1, Ordering::Relaxed);
    }
}

/// Whether an error says the origin is unwell (rather than answering "no").
pub(crate) fn is_fault(e: &Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Unavailable
            | ErrorKind::UpstreamTimeout
            | ErrorKind::Upstream
            | ErrorKind::TooManyRequests
            | ErrorKind::Internal
    )
}

/// A request let through; settles as abandoned when dropped unsettled (the caller went away).
struct Permit<'b> {
    shared: &'b Shared,
    probe: bool,
    settled: bool,
}

impl Permit<'_> {
    fn settle<T>(mut self, r: &Result<T, Error>) {
        self.settled = true;
        let outcome = match r {
            Err(e) if is_fault(e) => Outcome::Fault,
            _ => Outcome::Success,
        };
        self.shared.record(self.probe, outcome);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.shared.record(self.probe, Outcome::Abandoned);
        }
    }
}

impl<O: Origin> Origin for CircuitBreaker<O>
where
    O: Origin,
{
    fn bucket(&self) -> &str {
        self.inner.bucket()
    }

    fn get_object<'a>(
        &'a self,
        key: &'a str,
        req: &'a GetObjectRequest,
    ) -> OriginFuture<'a, GetObjectOutput> {
        Box::pin(async move {
            let permit = self.admit("GetObject")?;
            let r = self.inner.get_object(key, req).await;
            permit.settle(&r);
            // A body that breaks later is a fault too (counted while the breaker is closed).
            let shared = Arc::clone(&self.shared);
            Ok(r?.map_body(|body| {
                ObjectBody::from_stream(body.inspect(move |chunk| {
                    if let Err(e) = chunk
                        && is_fault(e)
                    {
                        shared.record(false, Outcome::Fault);
                    }
                }))
            }))
        })
    }

    fn head_object<'a>(
        &'a self,
        key: &'a str,
        req: &'a HeadObjectRequest,
    ) -> OriginFuture<'a, ObjectMeta> {
        Box::pin(async move {
            let permit = self.admit("HeadObject")?;
            let r = self.inner.head_object(key, req).await;
            permit.settle(&r);
            r
        })
    }

    fn probe(&self) -> OriginFuture<'_, ()> {
        self.inner.probe()
    }

    fn identity(&self) -> String {
        self.inner.identity()
    }

    fn origin_stats(&self) -> crate::OriginStats {
        let mut s = self.inner.origin_stats();
        s.breaker = Some(self.stats());
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(failures: u32, successes: u32, probes: u32, open: Duration) -> Shared {
        Shared {
            options: BreakerOptions::default()
                .failure_threshold(failures)
                .success_threshold(successes)
                .half_open_max_requests(probes)
                .open_timeout(open),
            state: Mutex::new(State::Closed { failures: 0 }),
            opened: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        }
    }

    fn fail(s: &Shared) {
        let p = s.admit().unwrap();
        p.settle::<()>(&Err(Error::new(ErrorKind::Unavailable, "down")));
    }

    #[test]
    fn faults_in_a_row_open_it_and_a_success_between_resets_the_count() {
        let s = shared(3, 1, 1, Duration::from_secs(60));
        fail(&s);
        fail(&s);
        s.admit().unwrap().settle(&Ok(()));
        fail(&s);
        fail(&s);
        assert_eq!(s.state(), BreakerState::Closed);
        fail(&s);
        assert_eq!(s.state(), BreakerState::Open);
        let wait = s.admit().err().unwrap();
        assert!(wait > Duration::from_secs(59) && wait <= Duration::from_secs(60));
        // Answers that are not faults count as successes.
        let s = shared(1, 1, 1, Duration::from_secs(60));
        for kind in [
            ErrorKind::NotFound,
            ErrorKind::AccessDenied,
            ErrorKind::PreconditionFailed,
        ] {
            s.admit()
                .unwrap()
                .settle::<()>(&Err(Error::new(kind, "no")));
        }
        assert_eq!(s.state(), BreakerState::Closed);
    }

    #[test]
    fn half_open_admits_a_bounded_number_of_probes_and_cancelled_ones_give_their_permit_back() {
        let s = shared(1, 2, 2, Duration::ZERO);
        fail(&s);
        // Open with a zero timeout: the next request is the first probe.
        let a = s.admit().unwrap();
        let b = s.admit().unwrap();
        assert!(s.admit().is_err(), "at most two probes at a time");
        drop(a); // its caller went away: no verdict, the permit comes back
        let c = s.admit().unwrap();
        assert!(s.admit().is_err());
        b.settle(&Ok(()));
        assert_eq!(
            s.state(),
            BreakerState::HalfOpen,
            "one success of two needed"
        );
        c.settle(&Ok(()));
        assert_eq!(s.state(), BreakerState::Closed);
        // A late result of a request let through before it opened has no say.
        let early = s.admit().unwrap();
        fail(&s);
        early.settle(&Ok(()));
        assert_eq!(s.opened.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_failed_probe_reopens_it() {
        let s = shared(1, 1, 1, Duration::ZERO);
        fail(&s);
        fail(&s); // the probe fails
        assert_eq!(s.opened.load(Ordering::Relaxed), 2);
        let s = shared(1, 1, 1, Duration::from_secs(60));
        fail(&s);
        assert!(s.admit().is_err());
    }
}
