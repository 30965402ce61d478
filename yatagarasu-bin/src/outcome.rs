//! Typed outcomes of a request: how it used the cache, and how its body ended. Headers, counters,
//! logs and metrics are all fed from these values, never by reading a response back.

/// How an object response used the cache (sent as `x-cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CacheStatus {
    /// Answered from a fresh cached record.
    Hit,
    /// Fetched from the origin (and stored when cacheable).
    Miss,
    /// A stale record revalidated with the origin (ETag unchanged) and served from the cache.
    Revalidated,
    /// A stale record served without waiting for the origin (stale-while-revalidate, or
    /// stale-if-error when the origin failed).
    Stale,
    /// The cache was not used for this request.
    Bypass,
    /// A 404 answered from a remembered 404 (negative caching); the origin was not asked.
    NegativeHit,
}

impl CacheStatus {
    /// The `x-cache` value: `HIT`, `MISS`, `REVALIDATED`, `STALE`, `BYPASS` (a remembered 404 is a `HIT`).
    pub const fn header_value(self) -> &'static str {
        match self {
            Self::Hit | Self::NegativeHit => "HIT",
            Self::Miss => "MISS",
            Self::Revalidated => "REVALIDATED",
            Self::Stale => "STALE",
            Self::Bypass => "BYPASS",
        }
    }

    /// `hit`, `miss`, `revalidated`, `stale`, `bypass`, `negative_hit`: as metrics labels and
    /// the audit log write it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Revalidated => "revalidated",
            Self::Stale => "stale",
            Self::Bypass => "bypass",
            Self::NegativeHit => "negative_hit",
        }
    }
}

/// How a response body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Completion {
    /// Every byte of the body was handed to the connection.
    Complete,
    /// The proxy cut the body short on an error (the origin failed, or the object changed mid-read).
    Aborted,
    /// The client went away before the body ended.
    ClientGone,
}

impl Completion {
    /// `complete`, `aborted` or `client_gone`, as the request log writes it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Aborted => "aborted",
            Self::ClientGone => "client_gone",
        }
    }
}
