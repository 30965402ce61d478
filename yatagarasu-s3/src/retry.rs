//! Retries: exponential backoff with full jitter within a deadline, for idempotent requests.
//!
//! [`RetryPolicy`] says how often and how long to wait; `retry` runs an attempt until it succeeds,
//! fails for good ([`Error::is_retryable`] is false), runs out of attempts, or would sleep past the
//! deadline.

use std::future::Future;
use std::time::{Duration, Instant};

use yatagarasu_core::{Error, Result};

/// Retries with exponential backoff and full jitter, for idempotent requests that failed on a
/// connection error, a timeout, a 5xx, or throttling (429 / `SlowDown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in total (1 = no retry).
    pub max_attempts: u32,
    /// The first backoff's upper bound; doubles each retry.
    pub base_delay: Duration,
    /// Upper bound of any backoff.
    pub max_delay: Duration,
    /// How many times a body that breaks mid-stream is resumed (ranged GET with `If-Match`) before the
    /// read fails. Bytes already handed to the caller are never sent again.
    pub max_resumes: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
            max_resumes: 3,
        }
    }
}

impl RetryPolicy {
    /// Set [`Self::max_attempts`].
    #[must_use]
    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// Set [`Self::base_delay`].
    #[must_use]
    pub fn with_base_delay(mut self, base_delay: Duration) -> Self {
        self.base_delay = base_delay;
        self
    }

    /// Set [`Self::max_delay`].
    #[must_use]
    pub fn with_max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// Set [`Self::max_resumes`].
    #[must_use]
    pub fn with_max_resumes(mut self, max_resumes: u32) -> Self {
        self.max_resumes = max_resumes;
        self
    }

    /// No retries and no resumes.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            max_resumes: 0,
            ..Self::default()
        }
    }

    /// The backoff before retry number `retry` (1-based): uniformly random in `[0, min(max, base * 2^(retry-1))]`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self.base_delay.saturating_mul(
            1u32.checked_shl(retry.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        let cap = exp.min(self.max_delay);
        let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(fastrand::u64(0..=nanos))
    }
}

/// Run `attempt` until it succeeds or fails for good, sleeping per `policy` between tries; a retry
/// whose backoff would end after `deadline` is not started. `label` names the operation in logs.
pub(crate) async fn retry<T, F, Fut>(
    policy: &RetryPolicy,
    deadline: Instant,
    label: &str,
    retries: &std::sync::atomic::AtomicU64,
    mut attempt: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut tries = 0u32;
    loop {
        tries += 1;
        let err: Error = match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if !err.is_retryable() || tries >= policy.max_attempts {
            return Err(err);
        }
        let delay = policy.backoff(tries);
        if Instant::now() + delay >= deadline {
            return Err(err);
        }
        tracing::debug!(operation = label, attempt = tries, ?delay, error = %err, "retrying");
        retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yatagarasu_core::ErrorKind;

    #[test]
    fn backoff_is_bounded_by_exponential_cap() {
        let p = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
            ..RetryPolicy::default()
        };
        for _ in 0..200 {
            assert!(p.backoff(1) <= Duration::from_millis(100));
            assert!(p.backoff(2) <= Duration::from_millis(200));
            assert!(p.backoff(3) <= Duration::from_millis(350));
            assert!(p.backoff(40) <= Duration::from_millis(350));
        }
        // Full jitter spreads values: 200 draws are not all equal.
        let draws: std::collections::HashSet<_> = (0..200).map(|_| p.backoff(3)).collect();
        assert!(draws.len() > 10);
    }

    #[tokio::test]
    async fn retries_only_what_may_succeed_and_stops_at_max_attempts() {
        let policy = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
            ..RetryPolicy::default()
        };
        let far = Instant::now() + Duration::from_secs(10);
        let mut calls = 0;
        let r: Result<()> = retry(&policy, far, "t", &Default::default(), || {
            calls += 1;
            async { Err(Error::new(ErrorKind::Unavailable, "down")) }
        })
        .await;
        assert_eq!(r.unwrap_err().kind(), ErrorKind::Unavailable);
        assert_eq!(calls, 3, "max_attempts counts the first try");

        let mut calls = 0;
        let r: Result<()> = retry(&policy, far, "t", &Default::default(), || {
            calls += 1;
            async { Err(Error::new(ErrorKind::NotFound, "gone")) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls, 1, "a 404 is never retried");

        let mut calls = 0;
        let r = retry(&policy, far, "t", &Default::default(), || {
            calls += 1;
            let n = calls;
            async move {
                if n < 2 {
                    Err(Error::new(ErrorKind::Upstream, "502"))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(r.unwrap(), 2);
    }

    #[tokio::test]
    async fn no_retry_past_the_deadline() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_secs(5),
            max_delay: Duration::from_secs(5),
            ..RetryPolicy::default()
        };
        // Full jitter can draw a zero delay; a deadline already passed refuses every retry.
        let past = Instant::now();
        let mut calls = 0;
        let r: Result<()> = retry(&policy, past, "t", &Default::default(), || {
            calls += 1;
            async { Err(Error::new(ErrorKind::Unavailable, "down")) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls, 1);
    }
}
