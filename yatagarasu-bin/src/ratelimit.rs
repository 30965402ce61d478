//! Rate limits with the generic cell rate algorithm (GCRA): a limit of `r` requests per second
//! with a burst of `b` lets `b` requests through at once and then one every `1/r` seconds; a
//! refused request learns how long to wait. One atomic word of state per limit (per client for
//! per-address limits), updated without a lock.
//!
//! Per-address state lives in a bounded cache (moka, `max_clients` entries, each forgotten once
//! idle long enough to be back at a full burst anyway), so a flood of distinct addresses costs
//! bounded memory; under such a flood a real client's state may be evicted, which gives it a fresh
//! burst, never a refusal it did not earn.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A rate: so many requests per second, with a burst.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Rate {
    /// Sustained requests per second (> 0).
    pub requests_per_second: f64,
    /// Requests allowed at once (at least 1).
    pub burst: u32,
}

impl Rate {
    /// `requests_per_second` sustained, `burst` at once.
    pub fn new(requests_per_second: f64, burst: u32) -> Self {
        Self {
            requests_per_second,
            burst: burst.max(1),
        }
    }

    /// Nanoseconds between two requests at the sustained rate.
    fn interval(self) -> u64 {
        let nanos = 1e9 / self.requests_per_second.max(1e-9);
        if nanos >= u64::MAX as f64 {
            u64::MAX
        } else {
            (nanos as u64).max(1)
        }
    }
}

/// One GCRA cell: the theoretical arrival time of the next request, in nanoseconds since the
/// limiter's epoch.
#[derive(Debug, Default)]
struct Cell(AtomicU64);

/// The rule for a [`Cell`].
#[derive(Debug, Clone, Copy)]
struct Gcra {
    interval: u64,
    /// How far ahead of now the theoretical arrival time may run (`interval * (burst - 1)`).
    tolerance: u64,
}

impl Gcra {
    fn new(rate: Rate) -> Self {
        let interval = rate.interval();
        Self {
            interval,
            tolerance: interval.saturating_mul(u64::from(rate.burst - 1)),
        }
    }

    /// Take one request at `now`: `Ok`, or how long until one would be allowed.
    fn take(&self, cell: &Cell, now: u64) -> Result<(), Duration> {
        let mut tat = cell.0.load(Ordering::Acquire);
        loop {
            let base = tat.max(now);
            if base - now > self.tolerance {
                return Err(Duration::from_nanos(base - now - self.tolerance));
            }
            match cell.0.compare_exchange_weak(
                tat,
                base.saturating_add(self.interval),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(current) => tat = current,
            }
        }
    }

    /// How long a cell stays interesting: after this idle, it is back at a full burst.
    fn horizon(&self) -> Duration {
        Duration::from_nanos(self.tolerance.saturating_add(self.interval))
    }
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Global,
    PerClient,
    Bucket,
}

impl Scope {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Global => "global",
            Self::PerClient => "per_ip",
            Self::Bucket => "bucket",
        }
    }
}

/// A single shared limit (the whole proxy, or one bucket).
#[derive(Debug)]
pub struct RateLimit {
    gcra: Gcra,
    cell: Cell,
    epoch: Instant,
    refused: AtomicU64,
}

impl RateLimit {
    /// A limit at `rate`.
    pub fn new(rate: Rate) -> Self {
        Self {
            gcra: Gcra::new(rate),
            cell: Cell::default(),
            epoch: Instant::now(),
            refused: AtomicU64::new(0),
        }
    }

    /// Take one request now: `Ok`, or how long to wait.
    pub fn check(&self) -> Result<(), Duration> {
        self.check_at(nanos_since(self.epoch))
    }

    fn check_at(&self, now: u64) -> Result<(), Duration> {
        let r = self.gcra.take(&self.cell, now);
        if r.is_err() {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    /// Requests refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// A limit per client address, with bounded memory (see the module docs).
#[derive(Debug)]
pub struct PerClientLimit {
    gcra: Gcra,
    cells: moka::sync::Cache<IpAddr, Arc<Cell>>,
    epoch: Instant,
    refused: AtomicU64,
}

impl PerClientLimit {
    /// `rate` for each address, tracking at most `max_clients` addresses at once.
    pub fn new(rate: Rate, max_clients: u64) -> Self {
        let gcra = Gcra::new(rate);
        Self {
            gcra,
            cells: moka::sync::Cache::builder()
                .max_capacity(max_clients)
                .time_to_idle(gcra.horizon().max(Duration::from_millis(1)))
                .build(),
            epoch: Instant::now(),
            refused: AtomicU64::new(0),
        }
    }

    /// Take one request of `client` now: `Ok`, or how long it should wait.
    pub fn check(&self, client: IpAddr) -> Result<(), Duration> {
        self.check_at(client, nanos_since(self.epoch))
    }

    fn check_at(&self, client: IpAddr, now: u64) -> Result<(), Duration> {
        let cell = self.cells.get_with(client, Arc::default);
        let r = self.gcra.take(&cell, now);
        if r.is_err() {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    /// Requests refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Addresses tracked now (after pending evictions are applied).
    pub fn tracked(&self) -> u64 {
        self.cells.run_pending_tasks();
        self.cells.entry_count()
    }
}

fn nanos_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The proxy-wide limits (`server.rate_limit`).
#[derive(Debug, Default)]
pub(crate) struct ProxyLimits {
    pub(crate) global: Option<RateLimit>,
    pub(crate) per_client: Option<PerClientLimit>,
}

impl ProxyLimits {
    /// Check `client` against the per-address limit, then the global one.
    pub(crate) fn check(&self, client: Option<IpAddr>) -> Result<(), (Scope, Duration)> {
        if let (Some(l), Some(ip)) = (&self.per_client, client) {
            l.check(ip).map_err(|d| (Scope::PerClient, d))?;
        }
        if let Some(l) = &self.global {
            l.check().map_err(|d| (Scope::Global, d))?;
        }
        Ok(())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.global.is_none() && self.per_client.is_none()
    }
}

/// The 429 a refused request gets.
pub(crate) fn refusal(scope: Scope, wait: Duration) -> yatagarasu_core::Error {
    let who = match scope {
        Scope::Global => "this proxy is receiving more requests than it is configured to serve",
        Scope::PerClient => "too many requests from this client address",
        Scope::Bucket => "too many requests for this bucket",
    };
    yatagarasu_core::Error::new(
        yatagarasu_core::ErrorKind::TooManyRequests,
        format!("{who}; retry after the time in Retry-After"),
    )
    .with_upstream_code("RateLimited")
    .with_retry_after(wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn a_burst_goes_through_at_once_then_one_per_interval() {
        let l = RateLimit::new(Rate::new(10.0, 5));
        for _ in 0..5 {
            assert!(l.check_at(0).is_ok());
        }
        let wait = l.check_at(0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        assert!(l.check_at(SECOND / 10 - 1).is_err());
        assert!(l.check_at(SECOND / 10).is_ok());
        assert!(l.check_at(SECOND / 10).is_err());
        // Idle for a second: a full burst again, not more.
        let t = 2 * SECOND;
        for _ in 0..5 {
            assert!(l.check_at(t).is_ok());
        }
        assert!(l.check_at(t).is_err());
        assert_eq!(l.refused(), 4);
    }

    #[test]
    fn a_flood_at_ten_times_the_rate_gets_the_rate_plus_the_burst() {
        // 100 req/s, burst 10; 1,000 req/s offered for 10 s: 1,000 sustained + 10 burst admitted.
        let l = RateLimit::new(Rate::new(100.0, 10));
        let admitted = (0..10_000u64)
            .filter(|i| l.check_at(i * SECOND / 1000).is_ok())
            .count();
        assert!((1000..=1010).contains(&admitted), "{admitted}");
    }

    #[test]
    fn concurrent_takers_never_exceed_the_burst() {
        let l = Arc::new(RateLimit::new(Rate::new(0.001, 50)));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let l = Arc::clone(&l);
                std::thread::spawn(move || (0..100).filter(|_| l.check_at(7).is_ok()).count())
            })
            .collect();
        let admitted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(admitted, 50);
    }

    #[test]
    fn per_client_limits_are_separate_and_bounded_under_a_million_addresses() {
        let l = PerClientLimit::new(Rate::new(1.0, 2), 10_000);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        assert!(l.check_at(a, 0).is_ok() && l.check_at(a, 0).is_ok());
        assert!(l.check_at(a, 0).is_err());
        assert!(
            l.check_at(b, 0).is_ok(),
            "another client has its own budget"
        );
        for i in 0..1_000_000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            let _ = l.check_at(ip, 0);
        }
        let tracked = l.tracked();
        assert!(tracked <= 10_000, "{tracked} addresses tracked");
    }
}
