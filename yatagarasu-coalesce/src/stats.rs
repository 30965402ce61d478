//! Counters of what a group did, for metrics.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of a [`Group`](crate::Group) or [`StreamGroup`](crate::StreamGroup). Monotonic; read
/// through their `stats()` as a [`FlightStatsSnapshot`].
#[derive(Debug, Default)]
pub(crate) struct FlightStats {
    pub(crate) started: AtomicU64,
    pub(crate) joined: AtomicU64,
    pub(crate) timed_out: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) lagged: AtomicU64,
    pub(crate) refused_full: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlightStatsSnapshot {
    /// Flights started (the caller did the work).
    pub started: u64,
    /// Calls that joined a flight already under way.
    pub joined: u64,
    /// Callers whose wait timed out.
    pub timed_out: u64,
    /// Flights that ended in an error, a panic or a cancellation.
    pub failed: u64,
    /// Stream subscribers dropped for falling behind.
    pub lagged: u64,
    /// Calls refused because the flight had its maximum of subscribers.
    pub refused_full: u64,
}

impl FlightStats {
    pub(crate) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Read all counters.
    pub(crate) fn snapshot(&self) -> FlightStatsSnapshot {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        FlightStatsSnapshot {
            started: l(&self.started),
            joined: l(&self.joined),
            timed_out: l(&self.timed_out),
            failed: l(&self.failed),
            lagged: l(&self.lagged),
            refused_full: l(&self.refused_full),
        }
    }
}
