//! Client settings: addressing, timeouts, retries, credentials source.

use std::sync::Arc;
use std::time::Duration;

use crate::credentials::{Credentials, ProvideCredentials};

/// How the bucket appears in request URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressingStyle {
    /// Path-style for custom endpoints (MinIO, Ceph, R2, s3s expect it) and for bucket names that are
    /// not DNS-safe; virtual-hosted for AWS.
    #[default]
    Auto,
    /// `https://endpoint/bucket/key`.
    Path,
    /// `https://bucket.endpoint/key`.
    VirtualHosted,
}

/// Time limits for each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing a TCP (and TLS) connection. Only applies when the client builds its own HTTP client.
    pub connect: Duration,
    /// From sending a request to receiving the response headers.
    pub first_byte: Duration,
    /// Longest pause between two chunks of a response body.
    pub idle: Duration,
    /// Deadline for one operation including all its retries, up to the response headers.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            first_byte: Duration::from_secs(30),
            idle: Duration::from_secs(30),
            total: Duration::from_secs(60),
        }
    }
}

/// Retries with exponential backoff and full jitter, for idempotent requests that failed on a
/// connection error, a timeout, a 5xx, or throttling (429 / `SlowDown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// Where the client's credentials come from.
#[derive(Clone, Default)]
pub enum CredentialsSource {
    /// The AWS default chain (environment, profile files, web identity, ECS, IMDSv2).
    #[default]
    DefaultChain,
    /// Fixed keys.
    Static(Credentials),
    /// Any provider (cached by the client).
    Provider(Arc<dyn ProvideCredentials>),
    /// Unsigned requests, for public buckets.
    Anonymous,
}

impl std::fmt::Debug for CredentialsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::DefaultChain => f.write_str("DefaultChain"),
            Self::Static(c) => f.debug_tuple("Static").field(c).finish(),
            Self::Provider(p) => f.debug_tuple("Provider").field(p).finish(),
            Self::Anonymous => f.write_str("Anonymous"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
